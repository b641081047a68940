//! The compatibility corpus: real test files written for the original clnrm, read from
//! `$CLNRM_CORPUS` (without it each test prints a notice and returns). Every file has a
//! checked outcome. Each test file is validated on its own, as a user would run
//! `clnrm validate FILE` from outside it (the file's folder is then the project root, so
//! a template finds a `_macros.toml.tera` beside it or else the built-in library).
//! Libraries (`_*.tera`) are not tests: naming one is a usage error that says so.
//!
//! Dialect extensions a template needs are listed by the render stage's own corpus
//! table (stages/render/tests/corpus.rs).

mod common;

use common::{clnrm_command, corpus_dir, Run};

/// (path, exit code, what the output must say)
const TABLE: &[(&str, i32, &str)] = &[
    // Plain TOML tests.
    ("tests/basic.clnrm.toml", 0, "ok      basic.clnrm.toml (basic_test)"),
    ("tests/determinism_docker_test.clnrm.toml", 0, "(determinism_docker_validation)"),
    ("tests/fake_green/missing_edges.clnrm.toml", 0, "(fake_missing_edges)"),
    ("tests/integration/prd_otel_workflow.clnrm.toml", 0, "(prd_otel_workflow_integration)"),
    ("tests/red_team/attack_a_echo.clnrm.toml", 0, "(attack_a_echo_pass)"),
    ("tests/red_team/legitimate_self_test.clnrm.toml", 0, "(legitimate_clnrm_self_test)"),
    ("tests/rosetta-stone/temporal-ordering-rosetta.clnrm.toml", 0, "(rosetta_temporal_ordering)"),
    ("tests/self-test/inner-test.clnrm.toml", 0, "(inner_simple_test)"),
    ("examples/otel-validation/basic-otel-validation.clnrm.toml", 0, "(basic_otel_validation)"),
    (
        "crates/clnrm-core/examples/simple-echo.clnrm.toml",
        1,
        "simple-echo.clnrm.toml:19:10: services.framework_test.plugin: plugin `alpine` is not supported",
    ),
    (
        "examples/multi-service-demo.clnrm.toml",
        1,
        "multi-service-demo.clnrm.toml:15:10: services.database.plugin: plugin `surrealdb` is not supported",
    ),
    (
        "examples/volume-mount-demo.clnrm.toml",
        1,
        "volume-mount-demo.clnrm.toml:13:10: services.data_processor.plugin: plugin `alpine` is not supported",
    ),
    (
        "tests/surrealdb/basic-connection.clnrm.toml",
        1,
        "basic-connection.clnrm.toml:15:8: services.surrealdb.type: plugin `surrealdb` is not supported",
    ),
    // Not TOML at all (SOURCE.md says so): the exact line and column.
    (
        "examples/templates/simple-variables.clnrm.toml",
        1,
        "simple-variables.clnrm.toml:17:14: invalid TOML: invalid inline table",
    ),
    (
        "tests/fake_green_detection/clnrm_otel_full_surface.clnrm.toml",
        1,
        "clnrm_otel_full_surface.clnrm.toml:7:13: invalid TOML",
    ),
    // Templates.
    ("examples/templates/generators_full_surface.clnrm.toml.tera", 0, "(clnrm_gen_full)"),
    ("tests/examples/advanced_macros_demo.clnrm.toml.tera", 0, "(advanced-macros-demo)"),
    ("tests/integration/prd_template_rendering.clnrm.toml.tera", 0, "prd_template_rendering.clnrm.toml.tera ("),
    (
        "templates/example_usage.clnrm.toml.tera",
        1,
        "example_usage.clnrm.toml.tera:62:1: invalid TOML: invalid table header; duplicate key `order` in table `expect` (in the rendered template)",
    ),
    (
        "tests/mdbook-examples/template-mastery/template-example.clnrm.toml.tera",
        1,
        "template-example.clnrm.toml.tera:17:13: undefined variable `port`",
    ),
    (
        "tests/template/vars_rendering.clnrm.toml.tera",
        1,
        "vars_rendering.clnrm.toml.tera:36:20: undefined variable `vars.custom_var`",
    ),
    (
        "validation_tests/test_no_prefix.toml.tera",
        1,
        "test_no_prefix.toml.tera: steps: the test has no steps",
    ),
    // Libraries.
    ("templates/_macros.toml.tera", 2, "not a test file"),
    ("crates/clnrm-template/src/_macros.toml.tera", 2, "not a test file"),
    ("crates/clnrm-core/src/template/_macros.toml.tera", 2, "not a test file"),
];

#[test]
fn every_corpus_file_has_its_checked_outcome() {
    let Some(corpus) = corpus_dir("every_corpus_file_has_its_checked_outcome") else {
        return;
    };
    // The table covers every file of the corpus (SOURCE.md aside), and nothing else.
    let mut on_disk: Vec<String> = walk(&corpus)
        .into_iter()
        .filter(|rel| rel != "SOURCE.md")
        .collect();
    on_disk.sort();
    let mut listed: Vec<String> = TABLE.iter().map(|(path, _, _)| path.to_string()).collect();
    listed.sort();
    assert_eq!(on_disk, listed, "the table lists exactly the corpus files");

    let outside = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    for (path, code, needle) in TABLE {
        let run = Run(clnrm_command()
            .current_dir(outside.path())
            .env("CLNRM_CACHE_DIR", cache.path())
            .env("HOME", "/home/clnrm")
            .args([
                "validate",
                "--seed",
                "42",
                "--freeze-clock",
                "2025-01-01T00:00:00Z",
            ])
            .arg(corpus.join(path))
            .output()
            .unwrap());
        let text = run.all();
        if run.code() != *code || !text.contains(needle) || text.contains("panicked") {
            failures.push(format!(
                "{path}: exit {} (want {code}), want {needle:?}\n{text}",
                run.code()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    let valid = TABLE.iter().filter(|(_, code, _)| *code == 0).count();
    let tests = TABLE.iter().filter(|(_, code, _)| *code != 2).count();
    eprintln!("corpus: {valid} of {tests} test files validate");
}

fn walk(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(next) = stack.pop() {
        for entry in std::fs::read_dir(&next).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let rel = path
                    .strip_prefix(dir)
                    .unwrap()
                    .to_string_lossy()
                    .replace('\\', "/");
                out.push(rel);
            }
        }
    }
    out
}

/// Every corpus test that validates either runs, with the fixture image given through
/// `--var image=...` where the file is templated, or is an `error` that says why (an
/// image no registry can supply here, span expectations this version cannot evaluate),
/// or fails a span expectation (busybox emits no spans): never a panic, never a pass or a
/// failure it did not earn.
#[test]
fn every_valid_corpus_test_runs_or_reports_a_clear_error() {
    let Some(corpus) = corpus_dir("every_valid_corpus_test_runs_or_reports_a_clear_error") else {
        return;
    };
    if !common::docker_ready() {
        return;
    }
    let outside = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    for (path, _, _) in TABLE.iter().filter(|(_, code, _)| *code == 0) {
        let run = Run(clnrm_command()
            .current_dir(outside.path())
            // The spans directory goes beside the cache: keep both inside the temp dir.
            .env("CLNRM_CACHE_DIR", cache.path().join("cache"))
            .env("HOME", "/home/clnrm")
            .args([
                "run",
                "--format",
                "json",
                "--var",
                &format!("image={}", common::IMAGE),
            ])
            .arg(corpus.join(path))
            .output()
            .unwrap());
        let events = common::json_events(&run.stdout());
        let finished: Vec<_> = events
            .iter()
            .filter(|e| e["event"] == "test_finished")
            .collect();
        let clear = finished.len() == 1
            && match finished[0]["status"].as_str() {
                Some("pass") => run.code() == 0,
                Some("error") => {
                    let message = finished[0]["message"].as_str().unwrap_or_default();
                    run.code() == 1
                        && (message.contains("not evaluated by this version")
                            || message.contains("could not be pulled"))
                }
                Some("fail") => {
                    run.code() == 1
                        && finished[0]["failed_step"]
                            .as_str()
                            .is_some_and(|step| step.starts_with("expect."))
                        && finished[0]["expectations"]
                            .as_array()
                            .is_some_and(|verdicts| !verdicts.is_empty())
                }
                _ => false,
            };
        if !clear || run.all().contains("panicked") {
            failures.push(format!("{path}: exit {}\n{}", run.code(), run.all()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
