//! `clnrm run --failed` (docs/reference.md §6): runs what failed, errored or did not run in
//! the previous run, plus tests new since; matrix combinations count one by one; the
//! previous run is the project's (`.clnrm/last-run.json`), not the cache's.

mod common;

use common::{docker_ready, json_events, shell_test, TestProject, IMAGE};

/// The tests a `--format json` run finished, by name, sorted.
fn ran(stdout: &str) -> Vec<String> {
    let mut names: Vec<String> = json_events(stdout)
        .iter()
        .filter(|e| e["event"] == "test_finished")
        .map(|e| e["name"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    names
}

/// Six plain tests and a matrix of two, whose `ver = 2` combination fails: eight tests.
fn eight_tests_one_failing(project: &TestProject) {
    project.write("cleanroom.toml", "");
    for i in 0..6 {
        project.write(
            &format!("tests/t{i}.clnrm.toml"),
            &shell_test(&format!("t{i}"), "true"),
        );
    }
    project.write(
        "tests/m.clnrm.toml.tera",
        &format!(
            "[meta]\nname = \"m\"\nversion = \"1.0\"\n[matrix]\nver = [1, 2]\n\
             [service.box]\nimage = \"{IMAGE}\"\n[[steps]]\nname = \"s\"\nservice = \"box\"\n\
             command = [\"sh\", \"-c\", \"test {{{{ ver }}}} = 1\"]\n"
        ),
    );
}

#[test]
fn after_one_failure_of_eight_failed_runs_that_one_plus_a_new_test() {
    if !docker_ready() {
        return;
    }
    let project = TestProject::new();
    eight_tests_one_failing(&project);
    let first = project.clnrm(&["run", "-j", "4", "--format", "json"]);
    first.expect_code(1);
    assert_eq!(ran(&first.stdout()).len(), 8, "{}", first.all());
    assert!(project.path(".clnrm/last-run.json").is_file());

    project.write("tests/new.clnrm.toml", &shell_test("new", "true"));
    let again = project.clnrm(&["run", "--failed", "--format", "json"]);
    again.expect_code(1);
    assert_eq!(ran(&again.stdout()), ["m[ver=2]", "new"], "{}", again.all());

    // The record is the project's: a different cache dir does not change what --failed picks.
    let other_cache = tempfile::tempdir().unwrap();
    let elsewhere = common::clnrm_command()
        .current_dir(project.root())
        .args(["run", "--failed", "--dry-run", "--format", "json"])
        .env("CLNRM_CACHE_DIR", other_cache.path())
        .output()
        .unwrap();
    let planned: Vec<String> = json_events(&String::from_utf8_lossy(&elsewhere.stdout))
        .iter()
        .filter(|e| e["event"] == "test_planned")
        .map(|e| e["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(planned, ["m[ver=2]"]);

    // Fixed: the failing combination passes, and then nothing is left to run.
    project.write(
        "tests/m.clnrm.toml.tera",
        &std::fs::read_to_string(project.path("tests/m.clnrm.toml.tera"))
            .unwrap()
            .replace("test {{ ver }} = 1", "test {{ ver }} -ge 1"),
    );
    let fixed = project.clnrm(&["run", "--failed", "--format", "json"]);
    fixed.expect_code(0);
    assert_eq!(ran(&fixed.stdout()), ["m[ver=2]"]);
    project
        .clnrm(&["run", "--failed"])
        .expect_code(0)
        .expect_contains("--failed: nothing to run");
}

#[test]
fn after_a_fully_passing_run_failed_runs_nothing_and_says_so() {
    if !docker_ready() {
        return;
    }
    let project = TestProject::new();
    project.write("cleanroom.toml", "");
    project.write("tests/a.clnrm.toml", &shell_test("a", "true"));
    project.write("tests/b.clnrm.toml", &shell_test("b", "true"));
    project.clnrm(&["run"]).expect_code(0);
    let nothing = project.clnrm(&["run", "--failed"]);
    nothing
        .expect_code(0)
        .expect_contains("--failed: nothing to run (no test failed, errored or was left unrun");
    assert!(!nothing.stdout().contains("PASS"), "{}", nothing.all());
}
