//! `retries` and `wait_until` (docs/reference.md §15) as a user meets them: a step that
//! fails twice then passes is FLAKY in every report and never cached; a step polled until
//! it passes is a plain pass showing its attempts.

mod common;

use common::{docker_ready, json_events, Run, TestProject, IMAGE};

/// One test whose step counts its runs in a file of its container (fresh each run) and
/// passes from run `passes_from` on.
fn counting_test(name: &str, passes_from: u32, attempts: &str) -> String {
    format!(
        r#"[meta]
name = "{name}"
version = "1.0"

[service.box]
image = "{IMAGE}"

[[steps]]
name = "count"
run = "n=$(cat /tmp/n 2>/dev/null || echo 0); n=$((n + 1)); echo $n > /tmp/n; echo attempt $n; [ $n -ge {passes_from} ]"
{attempts}
"#
    )
}

fn project(name: &str, passes_from: u32, attempts: &str) -> TestProject {
    let p = TestProject::new();
    p.write("cleanroom.toml", "");
    p.write(
        &format!("tests/{name}.clnrm.toml"),
        &counting_test(name, passes_from, attempts),
    );
    p
}

fn finished(run: &Run) -> serde_json::Value {
    json_events(&run.stdout())
        .into_iter()
        .find(|e| e["event"] == "test_finished")
        .expect("a test_finished event")
}

#[test]
fn a_step_failing_twice_then_passing_is_flaky_in_every_report_and_never_cached() {
    if !docker_ready() {
        return;
    }
    let p = project("flaky", 3, "retries = { count = 2, delay = \"50ms\" }");

    // Human: FLAKY with the attempt, and the summary count.
    let human = p.clnrm(&["run"]);
    human.expect_code(0);
    let out = human.stdout();
    assert!(
        out.contains("FLAKY tests/flaky.clnrm.toml (flaky)")
            && out.contains("(passed on attempt 3 of 3)"),
        "{out}"
    );
    assert!(out.contains("1 passed (1 flaky), 0 failed"), "{out}");

    // JSON and JUnit: not served from the cache (the first run's flaky pass was not
    // stored), three attempts, two `<flakyFailure>`s.
    let json = p.clnrm(&["run", "--format", "json", "--junit", "junit.xml"]);
    json.expect_code(0);
    let t = finished(&json);
    assert_eq!(t["status"], "flaky");
    assert_eq!(t["cached"], false, "a flaky pass is never cached");
    assert!(t.get("outcome").is_none(), "flaky is the status: {t}");
    let attempts = t["step_attempts"].as_array().unwrap();
    let statuses: Vec<&str> = attempts
        .iter()
        .map(|a| a["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["fail", "fail", "pass"]);
    assert_eq!(attempts[0]["of"], 3);
    assert_eq!(attempts[0]["actual"], "exit code 1");
    assert!(attempts[1]["stdout"]
        .as_str()
        .unwrap()
        .contains("attempt 2"));
    let done = json_events(&json.stdout()).pop().unwrap();
    assert_eq!(
        (done["passed"].as_u64(), done["flaky"].as_u64()),
        (Some(1), Some(1))
    );

    let xml = std::fs::read_to_string(p.path("junit.xml")).unwrap();
    let doc = roxmltree::Document::parse(&xml).expect("the JUnit report is XML");
    let case = doc
        .descendants()
        .find(|n| n.has_tag_name("testcase"))
        .unwrap();
    let flaky_failures: Vec<_> = case
        .children()
        .filter(|c| c.has_tag_name("flakyFailure"))
        .collect();
    assert_eq!(flaky_failures.len(), 2, "{xml}");
    assert_eq!(
        flaky_failures[0].attribute("message"),
        Some("step `count`: attempt 1 of 3 failed")
    );
    assert_eq!(
        case.children()
            .filter(|c| c.has_tag_name("failure"))
            .count(),
        0
    );

    // TAP carries the attempts in the YAML block.
    let tap = p.clnrm(&["run", "--format", "tap"]);
    tap.expect_code(0);
    assert!(
        tap.stdout().contains("  severity: \"flaky\""),
        "{}",
        tap.stdout()
    );

    // `--flaky-result fail`: the same run is a failure.
    let strict = p.clnrm(&["run", "--flaky-result", "fail"]);
    strict.expect_code(1);
    let out = strict.stdout();
    assert!(out.contains("FAIL tests/flaky.clnrm.toml (flaky)"), "{out}");
    assert!(out.contains("passed on attempt 3 of 3"), "{out}");
    assert!(out.contains("0 passed, 1 failed"), "{out}");
}

#[test]
fn retries_that_all_fail_are_a_failure_with_each_earlier_attempt_as_a_rerun() {
    if !docker_ready() {
        return;
    }
    let p = project("never", 9, "retries = 2");
    let run = p.clnrm(&["run", "--format", "json", "--junit", "junit.xml"]);
    run.expect_code(1);
    let t = finished(&run);
    assert_eq!(t["status"], "fail");
    assert_eq!(t["step_attempts"].as_array().unwrap().len(), 3);
    let xml = std::fs::read_to_string(p.path("junit.xml")).unwrap();
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let case = doc
        .descendants()
        .find(|n| n.has_tag_name("testcase"))
        .unwrap();
    let count = |tag: &str| case.children().filter(|c| c.has_tag_name(tag)).count();
    assert_eq!((count("failure"), count("rerunFailure")), (1, 2), "{xml}");
}

#[test]
fn a_step_polled_until_its_fifth_attempt_is_a_plain_pass_showing_five_attempts() {
    if !docker_ready() {
        return;
    }
    let p = project(
        "polled",
        5,
        "wait_until = { timeout = \"20s\", interval = \"100ms\" }",
    );
    let human = p.clnrm(&["run", "--force"]);
    human.expect_code(0);
    assert!(
        human
            .stdout()
            .contains("PASS tests/polled.clnrm.toml (polled)"),
        "{}",
        human.stdout()
    );
    assert!(!human.stdout().contains("FLAKY"));
    assert!(
        human.stdout().contains("1 passed, 0 failed"),
        "{}",
        human.stdout()
    );

    let json = p.clnrm(&["run", "--force", "--format", "json"]);
    json.expect_code(0);
    let t = finished(&json);
    assert_eq!(t["status"], "pass");
    let attempts = t["step_attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 5, "{t}");
    assert!(attempts[..4].iter().all(|a| a["status"] == "fail"));
    assert!(attempts[0].get("of").is_none());
    // A plain pass is cached.
    let again = p.clnrm(&["run"]);
    again.expect_code(0);
    assert!(
        again.stdout().contains("PASS (cached)"),
        "{}",
        again.stdout()
    );
}

#[test]
fn a_poll_that_never_passes_fails_at_its_timeout_with_the_last_attempt() {
    if !docker_ready() {
        return;
    }
    let p = project(
        "never_ready",
        1000,
        "wait_until = { timeout = \"1s\", interval = \"200ms\" }\nexpected_output_regex = \"ready\"",
    );
    let run = p.clnrm(&["run"]);
    run.expect_code(1);
    let out = run.stdout();
    assert!(out.contains("step `count` failed"), "{out}");
    assert!(out.contains("expected: exit code 0"), "{out}");
}
