//! GitHub annotations: in a pull request, the failing step's line and an invalid
//! test's bad line are marked, whether asked for (`--format github`) or because the
//! run is in a GitHub Actions log; never in a JSON stream or outside GitHub.

mod common;

use common::{clnrm_command, docker_ready, TestProject, IMAGE};

/// A repository with the clnrm project in `app/`: a test whose second step fails
/// (its table is on line 9) and a test with a bad value on line 8.
fn repository() -> TestProject {
    let repo = TestProject::new();
    repo.write(
        "app/cleanroom.toml",
        &format!("[defaults]\nimage = \"{IMAGE}\"\n"),
    );
    repo.write(
        "app/tests/deploy.clnrm.toml",
        "[meta]\nname = \"deploy\"\nversion = \"1.0\"\n\n[[steps]]\nname = \"build\"\n\
         command = [\"true\"]\n\n[[steps]]\nname = \"smoke\"\ncommand = [\"echo\", \"503\"]\n\
         expected_output_regex = \"^200$\"\n",
    );
    repo.write(
        "app/tests/typo.clnrm.toml",
        "[meta]\nname = \"typo\"\nversion = \"1.0\"\n\n[[steps]]\nname = \"s\"\n\
         command = [\"true\"]\nexpected_exit_code = \"zero\"\n",
    );
    repo
}

fn annotations(stdout: &str) -> Vec<&str> {
    stdout.lines().filter(|l| l.starts_with("::")).collect()
}

#[test]
fn a_failing_step_and_an_invalid_test_are_annotated_on_their_lines() {
    if !docker_ready() {
        return;
    }
    let repo = repository();
    let run = repo.clnrm(&["run", "app", "--format", "github"]);
    run.expect_code(1);
    let stdout = run.stdout();
    let found = annotations(&stdout);
    assert_eq!(found.len(), 2, "{stdout}");
    let failed = found
        .iter()
        .find(|a| a.contains("deploy.clnrm.toml"))
        .expect("the failing test is annotated");
    assert!(
        failed.starts_with(
            "::error file=app/tests/deploy.clnrm.toml,line=9,title=clnrm%3A deploy failed::step `smoke` failed%0A"
        ),
        "{failed}"
    );
    assert!(failed.contains("actual:"), "{failed}");
    let invalid = found
        .iter()
        .find(|a| a.contains("typo.clnrm.toml"))
        .expect("the invalid test is annotated");
    assert!(
        invalid.starts_with("::error file=app/tests/typo.clnrm.toml,line=8,title="),
        "{invalid}"
    );
    assert!(invalid.contains("expected an integer"), "{invalid}");
    // Next to the human output, not instead of it.
    run.expect_contains("FAIL tests/deploy.clnrm.toml (deploy)")
        .expect_contains("0 passed, 1 failed, 1 errors");
}

#[test]
fn a_github_actions_log_gets_annotations_without_asking_but_json_never_does() {
    if !docker_ready() {
        return;
    }
    let repo = repository();
    // stdout is a pipe here, as in an Actions log.
    let auto = repo.clnrm_with(&["run", "app"], &[("GITHUB_ACTIONS", "true")]);
    auto.expect_code(1);
    assert_eq!(annotations(&auto.stdout()).len(), 2, "{}", auto.stdout());

    let json = repo.clnrm_with(
        &["run", "app", "--format", "json"],
        &[("GITHUB_ACTIONS", "true")],
    );
    assert!(annotations(&json.stdout()).is_empty(), "{}", json.stdout());

    let elsewhere = clnrm_command()
        .current_dir(repo.root())
        .env("CLNRM_CACHE_DIR", repo.path(".clnrm/cache"))
        .env_remove("GITHUB_ACTIONS")
        .args(["run", "app"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&elsewhere.stdout);
    assert!(annotations(&stdout).is_empty(), "{stdout}");
    assert!(stdout.contains("FAIL tests/deploy.clnrm.toml"), "{stdout}");
}
