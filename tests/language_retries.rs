//! `[meta] retries` (docs/reference.md §4): a failed test runs again on new containers; a
//! pass after a failed attempt is FLAKY in every format and never served from the cache.

mod common;

use common::{docker_ready, json_events, outcomes, TestProject, IMAGE};

/// A test whose step fails until it has run `passes_on` times: the count lives in a host
/// folder mounted into the container, since each attempt gets new containers. Each attempt
/// writes there whether its container is new (no marker left by an earlier attempt in it).
fn counting_test(retries: u32, passes_on: u32) -> String {
    format!(
        r#"[meta]
name = "counting"
version = "1.0"
retries = {retries}

[service.box]
image = "{IMAGE}"
volumes = [{{ host_path = "state", container_path = "/state" }}]

[[steps]]
name = "count"
service = "box"
command = ["sh", "-c", "if [ -e /tmp/seen ]; then echo reused; else echo new; fi >> /state/hosts; touch /tmp/seen; n=$(wc -l < /state/hosts); echo attempt $n; test $n -ge {passes_on}"]
"#
    )
}

fn project(retries: u32, passes_on: u32) -> TestProject {
    let project = TestProject::new();
    project.write("cleanroom.toml", "");
    project.write(
        "tests/counting.clnrm.toml",
        &counting_test(retries, passes_on),
    );
    project.write("tests/state/.keep", "");
    project
}

fn hosts(project: &TestProject) -> Vec<String> {
    std::fs::read_to_string(project.path("tests/state/hosts"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn a_pass_after_a_failed_attempt_is_flaky_everywhere_and_not_cached() {
    if !docker_ready() {
        return;
    }
    let project = project(2, 2);
    let run = project.clnrm(&["run", "--junit", "junit.xml", "--html", "r.html"]);
    run.expect_code(0)
        .expect_contains("FLAKY tests/counting.clnrm.toml (counting)")
        .expect_contains("(passed on attempt 2 of 3)")
        .expect_contains("attempt 1: step `count` failed")
        .expect_contains("1 passed (1 flaky), 0 failed");
    assert_eq!(
        hosts(&project),
        ["new", "new"],
        "each attempt on a new container"
    );
    let html = std::fs::read_to_string(project.path("r.html")).unwrap();
    assert!(html.contains("<span class=\"badge flaky\">FLAKY</span>"));
    assert!(html.contains("attempts (passed on attempt 2 of 3)"));
    assert!(html.contains("<td>attempt 1</td><td>fail</td><td>step `count`: "));
    let xml = std::fs::read_to_string(project.path("junit.xml")).unwrap();
    let doc = roxmltree::Document::parse(&xml).expect("JUnit parses");
    let flaky = doc
        .descendants()
        .filter(|n| n.has_tag_name("flakyFailure"))
        .count();
    assert_eq!(flaky, 1, "{xml}");
    assert_eq!(
        doc.descendants()
            .filter(|n| n.has_tag_name("failure"))
            .count(),
        0
    );

    // Not cached: the next run runs it again (and now it passes on its first attempt).
    let again = project.clnrm(&["run", "--format", "json"]);
    again.expect_code(0);
    assert_eq!(
        outcomes(&again.stdout())["counting"],
        ("pass".to_string(), false)
    );
    assert_eq!(hosts(&project).len(), 3);
}

#[test]
fn flaky_result_fail_makes_a_pass_on_a_whole_test_retry_a_failure() {
    if !docker_ready() {
        return;
    }
    let project = project(2, 2);
    let run = project.clnrm(&[
        "run",
        "--flaky-result",
        "fail",
        "--format",
        "json",
        "--junit",
        "junit.xml",
    ]);
    run.expect_code(1);
    let events = json_events(&run.stdout());
    let t = events
        .iter()
        .find(|e| e["event"] == "test_finished")
        .expect("a test_finished event");
    assert_eq!(t["status"], "fail", "{t}");
    assert_eq!(t["failed_step"], "count", "{t}");
    assert_eq!(t["actual"], "passed on attempt 2 of 3", "{t}");
    assert_eq!(t["attempts"].as_array().unwrap().len(), 2, "{t}");
    let done = events.last().unwrap();
    assert_eq!(
        (
            done["passed"].as_u64(),
            done["failed"].as_u64(),
            done["flaky"].as_u64()
        ),
        (Some(0), Some(1), Some(0)),
        "{done}"
    );
    let xml = std::fs::read_to_string(project.path("junit.xml")).unwrap();
    let doc = roxmltree::Document::parse(&xml).expect("JUnit parses");
    let count = |tag: &str| doc.descendants().filter(|n| n.has_tag_name(tag)).count();
    assert_eq!((count("failure"), count("rerunFailure")), (1, 1), "{xml}");
}

#[test]
fn a_test_failing_every_attempt_fails_with_its_attempts_shown() {
    if !docker_ready() {
        return;
    }
    let project = project(2, 99);
    let run = project.clnrm(&["run", "--format", "json", "--junit", "junit.xml"]);
    run.expect_code(1);
    let finished = json_events(&run.stdout())
        .into_iter()
        .find(|e| e["event"] == "test_finished")
        .unwrap();
    assert_eq!(finished["status"], "fail");
    let attempts = finished["attempts"].as_array().expect("attempts");
    assert_eq!(attempts.len(), 3);
    assert!(attempts.iter().all(|a| a["status"] == "fail"));
    assert_eq!(attempts[2]["attempt"], 3);
    assert_eq!(finished["max_attempts"], 3);
    assert_eq!(hosts(&project), ["new", "new", "new"]);
    let xml = std::fs::read_to_string(project.path("junit.xml")).unwrap();
    let doc = roxmltree::Document::parse(&xml).expect("JUnit parses");
    assert_eq!(
        doc.descendants()
            .filter(|n| n.has_tag_name("rerunFailure"))
            .count(),
        2,
        "{xml}"
    );
    let tap = project.clnrm(&["run", "--format", "tap"]);
    tap.expect_code(1)
        .expect_contains("  attempts: 3")
        .expect_contains("attempt 1: step `count` failed");
}

#[test]
fn a_flaky_test_in_json_and_tap_lists_its_attempts() {
    if !docker_ready() {
        return;
    }
    let project = project(1, 2);
    let run = project.clnrm(&["run", "--format", "json"]);
    run.expect_code(0);
    let events = json_events(&run.stdout());
    let finished = events
        .iter()
        .find(|e| e["event"] == "test_finished")
        .unwrap();
    assert_eq!(finished["status"], "flaky");
    assert_eq!(finished["cached"], false);
    let statuses: Vec<&str> = finished["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["fail", "pass"]);
    let summary = events
        .iter()
        .find(|e| e["event"] == "run_finished")
        .unwrap();
    assert_eq!(
        (summary["passed"].clone(), summary["flaky"].clone()),
        (1.into(), 1.into())
    );

    // Reset the count: the TAP run is flaky again.
    std::fs::remove_file(project.path("tests/state/hosts")).unwrap();
    let tap = project.clnrm(&["run", "--format", "tap"]);
    tap.expect_code(0)
        .expect_contains("ok 1 - tests/counting.clnrm.toml (counting)")
        .expect_contains("  severity: \"flaky\"")
        .expect_contains("(passed on attempt 2 of 2)");
}
