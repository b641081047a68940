//! `[matrix]` (docs/reference.md §4) as a user meets it: one template file becomes one test
//! per combination, each named `name[k=v,...]` everywhere, cached and sharded on its own;
//! a broken matrix is an invalid test naming its line and column.

mod common;

use std::collections::BTreeSet;

use common::{docker_ready, json_events, outcomes, TestProject, IMAGE};

/// 2 × 2 minus one exclude: 3 combinations. The step echoes its values and checks them, so
/// a combination rendered with another's values fails.
fn matrix_template() -> String {
    format!(
        r#"[meta]
name = "api"
version = "1.0"

[matrix]
ver = [1, 2]
os = ["alpine", "debian"]
exclude = [{{ os = "debian", ver = 1 }}]

[service.box]
image = "{IMAGE}"

[[steps]]
name = "values"
service = "box"
command = ["echo", "{{{{ os }}}}-{{{{ ver }}}}"]
expected_output_regex = "^{{{{ os }}}}-{{{{ ver }}}}$"
"#
    )
}

const NAMES: [&str; 3] = [
    "api[os=alpine,ver=1]",
    "api[os=alpine,ver=2]",
    "api[os=debian,ver=2]",
];

fn engine_project() -> Option<TestProject> {
    if !docker_ready() {
        return None;
    }
    let project = TestProject::new();
    project.write("cleanroom.toml", "");
    project.write("tests/api.clnrm.toml.tera", &matrix_template());
    Some(project)
}

#[test]
fn a_two_by_two_matrix_minus_one_exclude_is_three_tests_with_stable_names() {
    let Some(project) = engine_project() else {
        return;
    };
    let run = project.clnrm(&["run", "--format", "json", "--junit", "junit.xml"]);
    run.expect_code(0);
    let outcomes = outcomes(&run.stdout());
    let names: Vec<&str> = outcomes.keys().map(String::as_str).collect();
    assert_eq!(names, NAMES, "{}", run.all());
    assert!(outcomes
        .values()
        .all(|(status, cached)| status == "pass" && !cached));
    let tests: BTreeSet<String> = json_events(&run.stdout())
        .iter()
        .filter(|e| e["event"] == "test_finished")
        .map(|e| e["test"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        tests,
        NAMES
            .iter()
            .map(|n| format!("tests/api.clnrm.toml.tera{}", &n[3..]))
            .collect()
    );

    let xml = std::fs::read_to_string(project.path("junit.xml")).unwrap();
    let doc = roxmltree::Document::parse(&xml).expect("JUnit parses");
    let mut cases: Vec<&str> = doc
        .descendants()
        .filter(|n| n.has_tag_name("testcase"))
        .map(|n| n.attribute("name").unwrap())
        .collect();
    cases.sort();
    assert_eq!(cases, NAMES);

    // The second run serves each combination from the cache, by its own identity.
    let again = project.clnrm(&["run"]);
    again.expect_code(0);
    for name in NAMES {
        again.expect_contains(&format!(
            "PASS (cached) tests/api.clnrm.toml.tera{} ({name})",
            &name[3..]
        ));
    }
    again.expect_contains("3 passed, 0 failed, 0 errors, 3 cached");
}

#[test]
fn each_combination_is_rendered_with_its_own_values() {
    let Some(project) = engine_project() else {
        return;
    };
    // A step that fails only for one combination names that one alone.
    project.write(
        "tests/api.clnrm.toml.tera",
        &matrix_template().replace(
            "expected_output_regex = \"^{{ os }}-{{ ver }}$\"",
            "expected_output_regex = \"^alpine-\"",
        ),
    );
    let run = project.clnrm(&["run"]);
    run.expect_code(1)
        .expect_contains("FAIL tests/api.clnrm.toml.tera[os=debian,ver=2] (api[os=debian,ver=2])")
        .expect_contains("actual:   stdout: debian-2")
        .expect_contains("2 passed, 1 failed, 0 errors");
}

#[test]
fn shards_split_matrix_combinations() {
    let Some(project) = engine_project() else {
        return;
    };
    for i in 0..3 {
        project.write(
            &format!("tests/t{i}.clnrm.toml"),
            &common::shell_test(&format!("t{i}"), "true"),
        );
    }
    let mut all = Vec::new();
    for shard in ["1/2", "2/2"] {
        let run = project.clnrm(&["run", "--dry-run", "--shard", shard, "--format", "json"]);
        run.expect_code(0);
        all.extend(
            json_events(&run.stdout())
                .iter()
                .filter(|e| e["event"] == "test_planned")
                .map(|e| e["name"].as_str().unwrap().to_string()),
        );
    }
    all.sort();
    let mut expected: Vec<String> = NAMES.iter().map(|n| n.to_string()).collect();
    expected.extend(["t0", "t1", "t2"].map(String::from));
    expected.sort();
    assert_eq!(all, expected, "each combination in exactly one shard");
}

#[test]
fn validate_lists_every_combination() {
    let project = TestProject::new();
    project.write("tests/api.clnrm.toml.tera", &matrix_template());
    let run = project.clnrm(&["validate"]);
    run.expect_code(0).expect_contains("3 valid, 0 invalid");
    for name in NAMES {
        run.expect_contains(&format!("tests/api.clnrm.toml.tera{} ({name})", &name[3..]));
    }
}

#[test]
fn a_broken_matrix_names_the_file_line_and_column() {
    let project = TestProject::new();
    let cases = [
        (
            "os = \"alpine\"\n",
            "tests/api.clnrm.toml.tera:6:6",
            "expected an array of values, found a string",
        ),
        (
            "os = [\"alpine\"]\nexclude = [{ oss = \"alpine\" }]\n",
            "tests/api.clnrm.toml.tera:7:14",
            "did you mean `os`?",
        ),
        (
            "os = [\"alpine\"]\nexclude = [{ os = \"arch\" }]\n",
            "tests/api.clnrm.toml.tera:7:19",
            "`os` is one of: \"alpine\"",
        ),
        (
            "os = [\"alpine\"]\nexclude = [{ os = \"alpine\" }]\n",
            "tests/api.clnrm.toml.tera:5:2",
            "every combination of [matrix] is excluded",
        ),
    ];
    for (matrix, place, message) in cases {
        project.write(
            "tests/api.clnrm.toml.tera",
            &format!(
                "[meta]\nname = \"api\"\nversion = \"1.0\"\n\n[matrix]\n{matrix}\n[[steps]]\nname = \"s\"\ncommand = [\"true\"]\n"
            ),
        );
        let run = project.clnrm(&["validate"]);
        run.expect_code(1)
            .expect_contains(place)
            .expect_contains(message)
            .expect_contains("0 valid, 1 invalid");
    }
}

#[test]
fn a_matrix_in_a_plain_file_asks_for_a_template() {
    let project = TestProject::new();
    project.write(
        "tests/api.clnrm.toml",
        "[meta]\nname = \"api\"\nversion = \"1.0\"\n[matrix]\nos = [\"a\", \"b\"]\n[[steps]]\nname = \"s\"\ncommand = [\"true\"]\n",
    );
    project
        .clnrm(&["validate"])
        .expect_code(1)
        .expect_contains("tests/api.clnrm.toml:4:1")
        .expect_contains("this file is not a template")
        .expect_contains("name it `.clnrm.toml.tera`");
}

#[test]
fn the_fixture_project_runs_its_combinations_and_its_skip() {
    if !docker_ready() {
        return;
    }
    // A copy, so the run's record (.clnrm/last-run.json) is not written into the repository.
    let project = TestProject::new();
    let fixture = common::repo().join("fixtures/language-matrix");
    for file in [
        "cleanroom.toml",
        "tests/shells.clnrm.toml.tera",
        "tests/needs_builds.clnrm.toml",
    ] {
        project.write(file, &std::fs::read_to_string(fixture.join(file)).unwrap());
    }
    let run = project.clnrm_with(&["run"], &[("CLNRM_NO_DOCKER_BUILDS", "1")]);
    run.expect_code(0)
        .expect_contains("(shells[mode=login,shell=sh])")
        .expect_contains("(shells[mode=plain,shell=ash])")
        .expect_contains("(shells[mode=plain,shell=sh])")
        .expect_contains(
            "SKIP tests/needs_builds.clnrm.toml (needs_builds): needs local image builds",
        )
        .expect_contains("3 passed, 0 failed, 0 errors, 1 skipped");
}

#[test]
fn render_shows_the_combination_the_vars_pick() {
    let project = TestProject::new();
    project.write("tests/api.clnrm.toml.tera", &matrix_template());
    project
        .clnrm(&["render", "tests/api.clnrm.toml.tera"])
        .expect_code(0)
        .expect_contains("# tests/api.clnrm.toml.tera[os=alpine,ver=1]\n")
        .expect_contains("command = [\"echo\", \"alpine-1\"]");
    let picked = project.clnrm(&["--var", "os=debian", "render", "tests/api.clnrm.toml.tera"]);
    picked
        .expect_code(0)
        .expect_contains("# tests/api.clnrm.toml.tera[os=debian,ver=2]\n")
        .expect_contains("command = [\"echo\", \"debian-2\"]");
    assert!(!picked.stdout().contains("alpine-"), "{}", picked.all());
}
