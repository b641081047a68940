//! `expected_json` and `*_regex_not` (docs/reference.md §15) against a busybox httpd whose
//! CGI scripts answer JSON (fixtures/language), and the failures a user reads: the key,
//! the path, the expectation, the nodes found, the line.

mod common;

use common::{docker_ready, json_events, repo, TestProject, IMAGE};

#[test]
fn the_language_example_passes_against_an_http_api_that_answers_json() {
    if !docker_ready() {
        return;
    }
    let cache = tempfile::tempdir().unwrap();
    let run = common::Run(
        common::clnrm_command()
            .current_dir(repo())
            .env("CLNRM_CACHE_DIR", cache.path())
            .args(["run", "fixtures/language", "--format", "json"])
            .output()
            .unwrap(),
    );
    let events = json_events(&run.stdout());
    let finished: Vec<_> = events
        .iter()
        .filter(|e| e["event"] == "test_finished")
        .collect();
    assert_eq!(finished.len(), 2, "{}", run.all());
    let api = finished.iter().find(|t| t["name"] == "items_api").unwrap();
    assert_eq!(api["status"], "pass", "{api}\n{}", run.all());
    // Readiness took polls: the health script answers "starting" twice.
    let polls = api["step_attempts"].as_array().unwrap();
    assert!(polls.len() >= 3, "{api}");
    assert_eq!(api["captures"][0]["value"], "item-1");
    let retried = finished.iter().find(|t| t["name"] == "retried").unwrap();
    assert_eq!(retried["status"], "flaky", "{retried}\n{}", run.all());
    run.expect_code(0);
}

fn project(name: &str, steps: &str) -> TestProject {
    let p = TestProject::new();
    p.write("cleanroom.toml", "");
    p.write(
        &format!("tests/{name}.clnrm.toml"),
        &format!(
            "[meta]\nname = \"{name}\"\nversion = \"1.0\"\n\n[service.box]\nimage = \"{IMAGE}\"\n\n{steps}"
        ),
    );
    p
}

#[test]
fn a_failed_json_check_shows_the_path_the_expectation_and_the_nodes_found() {
    if !docker_ready() {
        return;
    }
    let p = project(
        "json_fail",
        r#"[[steps]]
name = "list"
command = ["echo", "{\"items\": [{\"name\": \"a\", \"price\": 3}, {\"name\": \"b\", \"price\": 30}]}"]
expected_json = [
  { path = "$.items[*].name", count = 2 },
  { path = "$.items[?@.price > 10].name", equals = "c" },
]
"#,
    );
    let run = p.clnrm(&["run"]);
    run.expect_code(1);
    let out = run.stdout();
    assert!(
        out.contains("FAIL tests/json_fail.clnrm.toml (json_fail)"),
        "{out}"
    );
    assert!(out.contains("step `list` failed"), "{out}");
    assert!(
        out.contains(
            "expected: expected_json[1]: `$.items[?@.price > 10].name` to be exactly one node equal to \"c\""
        ),
        "{out}"
    );
    assert!(out.contains("actual:   1 node: \"b\""), "{out}");
    // The line of the failing step, in the JSON event.
    let json = p.clnrm(&["run", "--format", "json"]);
    let t = json_events(&json.stdout())
        .into_iter()
        .find(|e| e["event"] == "test_finished")
        .unwrap();
    assert_eq!(t["line"], 8, "{t}");
}

#[test]
fn output_that_is_not_json_fails_showing_where_parsing_stopped() {
    if !docker_ready() {
        return;
    }
    let p = project(
        "not_json",
        "[[steps]]\nname = \"html\"\ncommand = [\"printf\", \"{\\n  \\\"ok\\\": yes\\n}\\n\"]\n\
         expected_json = [{ path = \"$.ok\", exists = true }]\n",
    );
    let run = p.clnrm(&["run"]);
    run.expect_code(1);
    let out = run.stdout();
    assert!(
        out.contains("expected: expected_json: stdout to be JSON"),
        "{out}"
    );
    assert!(
        out.contains(
            "actual:   stdout is not JSON: expected value at line 2 column 9: `  \"ok\": yes`"
        ),
        "{out}"
    );
}

#[test]
fn a_regex_that_must_not_match_shows_the_match_and_its_line() {
    if !docker_ready() {
        return;
    }
    let p = project(
        "regex_not",
        "[[steps]]\nname = \"logs\"\nrun = \"echo starting; echo 'ERROR: disk full'; echo warn >&2\"\n\
         expected_output_regex_not = \"ERROR|panic\"\n\
         [[steps]]\nname = \"quiet\"\nrun = \"echo fine; echo careful >&2\"\n\
         expected_stderr_regex_not = \"warn\"\n",
    );
    let run = p.clnrm(&["run"]);
    run.expect_code(1);
    let out = run.stdout();
    assert!(out.contains("step `logs` failed"), "{out}");
    assert!(
        out.contains("expected: stdout not matching /ERROR|panic/"),
        "{out}"
    );
    assert!(
        out.contains("actual:   stdout matched `ERROR` on line 2: ERROR: disk full"),
        "{out}"
    );
    // Without the failing step, the other passes: its stderr has no `warn`.
    let p = project(
        "regex_not_pass",
        "[[steps]]\nname = \"quiet\"\nrun = \"echo fine; echo careful >&2\"\n\
         expected_stderr_regex_not = \"warn\"\nexpected_output_regex_not = \"ERROR\"\n",
    );
    p.clnrm(&["run"]).expect_code(0);
}

#[test]
fn a_json_path_with_a_syntax_error_fails_validate_with_line_col() {
    let p = project(
        "bad_path",
        "[[steps]]\nname = \"s\"\ncommand = [\"true\"]\n\
         expected_json = [{ path = \"$.items[?@.price >]\", exists = true }]\n",
    );
    let run = p.clnrm(&["validate"]);
    run.expect_code(1);
    let all = run.all();
    assert!(all.contains("tests/bad_path.clnrm.toml:11:27"), "{all}");
    assert!(
        all.contains("invalid JSONPath (RFC 9535) at character"),
        "{all}"
    );
}
