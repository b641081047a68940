//! The memo seen from the outside: each `clnrm` run is its own process, and what it
//! re-does is read from `cache stats --json` and from `-v` (one line per stage and test).

mod common;

use common::TestProject;
use serde_json::Value;

fn stats(project: &TestProject) -> Value {
    let run = project.clnrm(&["cache", "stats", "--json"]);
    run.expect_code(0);
    serde_json::from_str(&run.stdout()).expect("stats JSON")
}

fn counter(stats: &Value, stage: &str, field: &str) -> u64 {
    stats["stages"][stage][field].as_u64().unwrap_or(0)
}

/// Hits and misses per stage that `run` added.
fn delta(before: &Value, after: &Value, stage: &str) -> (u64, u64) {
    (
        counter(after, stage, "hits") - counter(before, stage, "hits"),
        counter(after, stage, "misses") - counter(before, stage, "misses"),
    )
}

/// The tests a `-v` run re-did in `stage` (a miss), sorted.
fn misses(output: &str, stage: &str) -> Vec<String> {
    let mut tests: Vec<String> = output
        .lines()
        .filter(|line| line.contains(&format!("stage=\"{stage}\"")) && line.contains("miss"))
        .filter_map(|line| {
            let start = line.find("test=")? + 5;
            Some(line[start..].split_whitespace().next()?.to_string())
        })
        .collect();
    tests.sort();
    tests
}

fn project_with_libraries() -> TestProject {
    let project = TestProject::new();
    project.write("cleanroom.toml", "[vars]\nimage = \"busybox\"\n");
    project.write(
        "lib/_base.tera",
        "{% macro step(name) -%}\n[[steps]]\nname = \"{{ name }}\"\ncommand = [\"true\"]\n{%- endmacro step %}\n",
    );
    project.write(
        "lib/_outer.tera",
        "{% import \"_base.tera\" as base %}\n{% macro two(name) -%}\n{{ base::step(name=name ~ \"1\") }}\n{{ base::step(name=name ~ \"2\") }}\n{%- endmacro two %}\n",
    );
    let header = |name: &str| {
        format!("[meta]\nname = \"{name}\"\nversion = \"1\"\n[service.s]\nimage = \"{{{{ image }}}}\"\n")
    };
    project.write(
        "direct.clnrm.toml.tera",
        &format!(
            "{{% import \"lib/_base.tera\" as b %}}\n{}{{{{ b::step(name=\"x\") }}}}\n",
            header("direct")
        ),
    );
    project.write(
        "nested.clnrm.toml.tera",
        &format!(
            "{{% import \"lib/_outer.tera\" as o %}}\n{}{{{{ o::two(name=\"y\") }}}}\n",
            header("nested")
        ),
    );
    project.write(
        "env.clnrm.toml.tera",
        &format!("{}[[steps]]\nname = \"e\"\ncommand = [\"echo\", \"{{{{ env(name=\"CLNRM_TEST_FLAVOUR\", default=\"plain\") }}}}\"]\n", header("env")),
    );
    project.write(
        "plain.clnrm.toml",
        "[meta]\nname = \"plain\"\nversion = \"1\"\n[service.s]\nimage = \"busybox\"\n[[steps]]\nname = \"p\"\ncommand = [\"true\"]\n",
    );
    project
}

#[test]
fn an_unchanged_project_is_all_hits_the_second_time() {
    let project = project_with_libraries();
    project.clnrm(&["validate"]).expect_code(0);
    let before = stats(&project);
    project.clnrm(&["validate"]).expect_code(0);
    let after = stats(&project);
    assert_eq!(
        delta(&before, &after, "render"),
        (3, 0),
        "three templates, all hits"
    );
    assert_eq!(
        delta(&before, &after, "parse"),
        (4, 0),
        "four tests, all hits"
    );
}

#[test]
fn editing_one_test_redoes_that_test_alone() {
    let project = project_with_libraries();
    project.clnrm(&["validate"]).expect_code(0);
    let text = std::fs::read_to_string(project.path("direct.clnrm.toml.tera")).unwrap();
    project.write("direct.clnrm.toml.tera", &text.replace("\"x\"", "\"z\""));
    let run = project.clnrm(&["validate", "-v"]);
    run.expect_code(0);
    assert_eq!(misses(&run.stderr(), "render"), ["direct.clnrm.toml.tera"]);
    assert_eq!(misses(&run.stderr(), "parse"), ["direct.clnrm.toml.tera"]);

    let text = std::fs::read_to_string(project.path("plain.clnrm.toml")).unwrap();
    project.write("plain.clnrm.toml", &text.replace("\"p\"", "\"q\""));
    let run = project.clnrm(&["validate", "-v"]);
    assert!(misses(&run.stderr(), "render").is_empty());
    assert_eq!(misses(&run.stderr(), "parse"), ["plain.clnrm.toml"]);
}

#[test]
fn editing_a_macro_library_rerenders_exactly_its_importers() {
    let project = project_with_libraries();
    project.clnrm(&["validate"]).expect_code(0);
    // _outer is imported by nested alone.
    let outer = std::fs::read_to_string(project.path("lib/_outer.tera")).unwrap();
    project.write("lib/_outer.tera", &format!("{{# edited #}}\n{outer}"));
    let run = project.clnrm(&["validate", "-v"]);
    run.expect_code(0);
    assert_eq!(misses(&run.stderr(), "render"), ["nested.clnrm.toml.tera"]);
    assert!(
        run.stderr().contains("lib/_outer.tera changed"),
        "-v says why: {}",
        run.stderr()
    );
    // A comment-only change renders the same TOML: parse is a hit.
    assert!(misses(&run.stderr(), "parse").is_empty());

    // _base is imported by direct, and by nested through _outer.
    let base = std::fs::read_to_string(project.path("lib/_base.tera")).unwrap();
    project.write(
        "lib/_base.tera",
        &base.replace("[\"true\"]", "[\"true\", \"1\"]"),
    );
    let run = project.clnrm(&["validate", "-v"]);
    run.expect_code(0);
    assert_eq!(
        misses(&run.stderr(), "render"),
        ["direct.clnrm.toml.tera", "nested.clnrm.toml.tera"]
    );
}

#[test]
fn changing_an_env_var_a_template_reads_rerenders_that_template_alone() {
    let project = project_with_libraries();
    project.clnrm(&["validate"]).expect_code(0);
    let run = project.clnrm_with(&["validate", "-v"], &[("CLNRM_TEST_FLAVOUR", "spicy")]);
    run.expect_code(0);
    assert_eq!(misses(&run.stderr(), "render"), ["env.clnrm.toml.tera"]);
    assert!(run.stderr().contains("$CLNRM_TEST_FLAVOUR changed"));
    // An env var nobody reads changes nothing.
    let run = project.clnrm_with(
        &["validate", "-v"],
        &[("CLNRM_TEST_FLAVOUR", "spicy"), ("UNRELATED_VARIABLE", "1")],
    );
    assert!(
        misses(&run.stderr(), "render").is_empty(),
        "{}",
        run.stderr()
    );
}

#[test]
fn a_copy_of_the_project_elsewhere_hits_the_same_cache() {
    let project = project_with_libraries();
    let shared = tempfile::tempdir().unwrap();
    let cache = shared.path().to_str().unwrap();
    project
        .clnrm(&["validate", "--cache-dir", cache])
        .expect_code(0);

    let copy = TestProject::new();
    for entry in [
        "cleanroom.toml",
        "lib/_base.tera",
        "lib/_outer.tera",
        "direct.clnrm.toml.tera",
        "nested.clnrm.toml.tera",
        "env.clnrm.toml.tera",
        "plain.clnrm.toml",
    ] {
        copy.write(
            entry,
            &std::fs::read_to_string(project.path(entry)).unwrap(),
        );
    }
    let run = copy.clnrm(&["validate", "--cache-dir", cache, "-v"]);
    run.expect_code(0);
    assert!(
        misses(&run.stderr(), "render").is_empty(),
        "{}",
        run.stderr()
    );
    assert!(
        misses(&run.stderr(), "parse").is_empty(),
        "{}",
        run.stderr()
    );
}

#[test]
fn no_cache_reads_nothing_but_still_writes() {
    let project = project_with_libraries();
    let run = project.clnrm(&["validate", "--no-cache", "-v"]);
    run.expect_code(0);
    assert_eq!(misses(&run.stderr(), "parse").len(), 4);
    let run = project.clnrm(&["validate", "--no-cache", "-v"]);
    assert_eq!(
        misses(&run.stderr(), "parse").len(),
        4,
        "--no-cache never reads"
    );
    let run = project.clnrm(&["validate", "-v"]);
    assert!(
        misses(&run.stderr(), "parse").is_empty(),
        "but it wrote: {}",
        run.stderr()
    );
}
