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
    ("crates/clnrm-core/examples/simple-echo.clnrm.toml", 0, "(framework_toml_self_test)"),
    ("tests/surrealdb/basic-connection.clnrm.toml", 0, "(surrealdb_basic_connection)"),
    // Four steps that do not say which of its two services runs them.
    (
        "examples/multi-service-demo.clnrm.toml",
        1,
        "multi-service-demo.clnrm.toml:30:1: steps[0].service: the test has several services (app_server, database); say which one runs this step",
    ),
    // Its volumes' host folders must exist, as its comments say; here they do not.
    (
        "examples/volume-mount-demo.clnrm.toml",
        1,
        "volume-mount-demo.clnrm.toml: service.data_processor.volumes[0].host_path: volume host path `/tmp/clnrm-test-data` does not exist",
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

/// How each corpus test that validates ends when run, with the `alpine` images tagged onto
/// the local busybox (no registry here has them): (path, status, what decides it) — for a
/// pass the test's name, for a failure the check that failed (`failed_step`), for an
/// error the message's key part.
const RUN_TABLE: &[(&str, &str, &str)] = &[
    ("tests/basic.clnrm.toml", "pass", "basic_test"),
    // Its service is declared with the original's `type`, which never ran `args`.
    (
        "tests/determinism_docker_test.clnrm.toml",
        "pass",
        "determinism_docker_validation",
    ),
    (
        "tests/fake_green/missing_edges.clnrm.toml",
        "pass",
        "fake_missing_edges",
    ),
    // It expects `clnrm.step.<name>`; the original's step spans are `clnrm.step:<name>`.
    (
        "tests/integration/prd_otel_workflow.clnrm.toml",
        "fail",
        r#"expect.graph.must_include[0] ["clnrm.scenario.verify_hermetic_execution", "clnrm.step.check_isolation"]"#,
    ),
    // No [otel]: clnrm.run would have to come from a clnrm inside the container, and an
    // echo emits none.
    (
        "tests/red_team/attack_a_echo.clnrm.toml",
        "fail",
        r#"expect.span[0] "clnrm.run""#,
    ),
    (
        "tests/red_team/legitimate_self_test.clnrm.toml",
        "error",
        "image `clnrm:test` is not available locally and could not be pulled",
    ),
    (
        "tests/rosetta-stone/temporal-ordering-rosetta.clnrm.toml",
        "error",
        "image `postgres:16-alpine` is not available locally and could not be pulled",
    ),
    (
        "tests/self-test/inner-test.clnrm.toml",
        "pass",
        "inner_simple_test",
    ),
    (
        "examples/otel-validation/basic-otel-validation.clnrm.toml",
        "pass",
        "basic_otel_validation",
    ),
    // `.` does not match the newlines between its three echo lines.
    (
        "crates/clnrm-core/examples/simple-echo.clnrm.toml",
        "fail",
        "test_command_chaining",
    ),
    (
        "tests/surrealdb/basic-connection.clnrm.toml",
        "error",
        "image `surrealdb/surrealdb:v2.2` is not available locally and could not be pulled",
    ),
    (
        "examples/templates/generators_full_surface.clnrm.toml.tera",
        "pass",
        "clnrm_gen_full",
    ),
    (
        "tests/examples/advanced_macros_demo.clnrm.toml.tera",
        "error",
        "image `nginx:alpine` is not available locally and could not be pulled",
    ),
    // Its clnrm.run must carry `template.test = "true"`, which clnrm does not set.
    (
        "tests/integration/prd_template_rendering.clnrm.toml.tera",
        "fail",
        r#"expect.span[0] "clnrm.run""#,
    ),
];

/// Tags the local busybox fixture as the `alpine` images the corpus names (and clnrm's
/// default image), where the engine has none of its own.
fn alpine_is_busybox() {
    for tag in ["alpine:latest", "alpine:3.20"] {
        let present = std::process::Command::new("docker")
            .args(["image", "inspect", tag])
            .output()
            .is_ok_and(|out| out.status.success());
        if !present {
            let tagged = std::process::Command::new("docker")
                .args(["tag", common::IMAGE, tag])
                .status()
                .expect("docker runs");
            assert!(tagged.success(), "docker tag {} {tag}", common::IMAGE);
        }
    }
}

/// Copies the corpus into `to`: a run writes spans into each project's `.clnrm/`, and the
/// corpus itself stays as it is.
fn copy_tree(from: &std::path::Path, to: &std::path::Path) {
    for rel in walk(from) {
        let target = to.join(&rel);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::copy(from.join(&rel), target).unwrap();
    }
}

/// Every corpus test that validates runs to its outcome in [`RUN_TABLE`]: a pass, a
/// failure naming one of its own checks, or an error naming an image no registry here can
/// supply (or the file's own service that exits). Never "not evaluated", never a panic.
#[test]
fn every_valid_corpus_test_runs_to_its_checked_outcome() {
    let Some(corpus) = corpus_dir("every_valid_corpus_test_runs_to_its_checked_outcome") else {
        return;
    };
    if !common::docker_ready() {
        return;
    }
    let mut valid: Vec<&str> = TABLE
        .iter()
        .filter(|(_, code, _)| *code == 0)
        .map(|(path, _, _)| *path)
        .collect();
    valid.sort();
    let mut listed: Vec<&str> = RUN_TABLE.iter().map(|(path, _, _)| *path).collect();
    listed.sort();
    assert_eq!(
        valid, listed,
        "the run table lists exactly the valid corpus tests"
    );
    alpine_is_busybox();
    let copy = tempfile::tempdir().unwrap();
    copy_tree(&corpus, copy.path());
    let outside = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    for (path, status, decided_by) in RUN_TABLE {
        let run = Run(clnrm_command()
            .current_dir(outside.path())
            .env("CLNRM_CACHE_DIR", cache.path())
            .env("HOME", "/home/clnrm")
            .args([
                "run",
                "--format",
                "json",
                "--var",
                &format!("image={}", common::IMAGE),
            ])
            .arg(copy.path().join(path))
            .output()
            .unwrap());
        let events = common::json_events(&run.stdout());
        let finished: Vec<_> = events
            .iter()
            .filter(|e| e["event"] == "test_finished")
            .collect();
        let text = run.all();
        let ok = finished.len() == 1 && {
            let e = finished[0];
            let what = match *status {
                "pass" => e["name"].as_str(),
                "fail" => e["failed_step"].as_str(),
                _ => e["message"].as_str(),
            }
            .unwrap_or_default();
            e["status"] == *status
                && what.contains(decided_by)
                && run.code() == if *status == "pass" { 0 } else { 1 }
        };
        let vague = ["not evaluated", "not supported", "ignored"]
            .iter()
            .any(|word| finished.iter().any(|e| e.to_string().contains(word)));
        if !ok || vague || text.contains("panicked") {
            failures.push(format!(
                "{path}: exit {}, want {status} {decided_by:?}\n{text}",
                run.code()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
