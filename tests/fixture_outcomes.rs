//! No regression where a user looks: every test and step of `fixtures/example` and
//! `fixtures/failing` ends as it did before the step runner came to `clnrm run`.
//! `tests/expected/fixture_outcomes.jsonl` was captured from `clnrm run --format json`
//! on the code before that change; only times and cache counters are left out of it.

mod common;

use common::{docker_ready, json_events, repo};
use serde_json::Value;

/// What a run said about each test and step, without its times, in a fixed order.
fn outcomes(fixture: &str, stdout: &str) -> Vec<Value> {
    let mut rows: Vec<Value> = json_events(stdout)
        .into_iter()
        .filter(|e| {
            ["test_finished", "step_finished", "run_finished"]
                .contains(&e["event"].as_str().unwrap_or(""))
        })
        .map(|mut e| {
            let fields = e.as_object_mut().expect("an event is an object");
            fields.remove("duration_ms");
            fields.remove("timings");
            if fields["event"] != "run_finished" {
                fields.remove("cached");
            }
            fields.insert("fixture".into(), fixture.into());
            e
        })
        .collect();
    rows.sort_by_key(order);
    rows
}

fn order(event: &Value) -> (String, String, String) {
    let text = |key: &str| event[key].as_str().unwrap_or("").to_string();
    (text("event"), text("test"), text("step"))
}

fn expected(fixture: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(repo().join("tests/expected/fixture_outcomes.jsonl"))
        .expect("the captured outcomes");
    let mut rows: Vec<Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).expect("a captured outcome"))
        .filter(|e: &Value| e["fixture"] == fixture)
        .collect();
    rows.sort_by_key(order);
    rows
}

fn run_fixture(fixture: &str, code: i32) {
    let cache = tempfile::tempdir().unwrap();
    let run = common::Run(
        common::clnrm_command()
            .current_dir(repo())
            .env("CLNRM_CACHE_DIR", cache.path())
            .args(["run", &format!("fixtures/{fixture}"), "--format", "json"])
            .output()
            .unwrap(),
    );
    run.expect_code(code);
    let got = outcomes(fixture, &run.stdout());
    let want = expected(fixture);
    assert!(!want.is_empty(), "no captured outcomes for {fixture}");
    for (got, want) in got.iter().zip(&want) {
        assert_eq!(got, want, "fixtures/{fixture}: an outcome changed");
    }
    assert_eq!(got.len(), want.len(), "fixtures/{fixture}: {got:#?}");
}

#[test]
fn every_example_test_ends_as_it_did_before() {
    if !docker_ready() {
        return;
    }
    run_fixture("example", 0);
}

#[test]
fn every_failing_test_fails_as_it_did_before() {
    if !docker_ready() {
        return;
    }
    run_fixture("failing", 1);
}
