//! No regression where a user looks: every test and step of `fixtures/example` and
//! `fixtures/failing` ends through the step runner as it ends by exec
//! (`CLNRM_STEP_RUNNER=off`), compared in the same run: status, exit code, output
//! checks, counts; only times and cache counters are left out. With
//! `CLNRM_SECOND_ENGINE` set (CI's Podman leg sets it to the Docker engine), the same
//! fixtures end on that engine as on this one (`DOCKER_HOST`).

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

/// `clnrm run --format json` of a fixture with a cache of its own, with `env` set.
fn run_fixture_with(fixture: &str, code: i32, env: &[(&str, &str)]) -> Vec<Value> {
    let cache = tempfile::tempdir().unwrap();
    let run = common::Run(
        common::clnrm_command()
            .current_dir(repo())
            .env("CLNRM_CACHE_DIR", cache.path())
            .envs(env.iter().copied())
            .args(["run", &format!("fixtures/{fixture}"), "--format", "json"])
            .output()
            .unwrap(),
    );
    run.expect_code(code);
    outcomes(fixture, &run.stdout())
}

fn run_fixture(fixture: &str, code: i32, tests: usize) {
    let by_exec = run_fixture_with(fixture, code, &[("CLNRM_STEP_RUNNER", "off")]);
    let through_runner = run_fixture_with(fixture, code, &[]);
    let finished = by_exec
        .iter()
        .filter(|e| e["event"] == "test_finished")
        .count();
    assert_eq!(finished, tests, "fixtures/{fixture}: {by_exec:#?}");
    for (runner, exec) in through_runner.iter().zip(&by_exec) {
        assert_eq!(runner, exec, "fixtures/{fixture}: an outcome differs");
    }
    assert_eq!(
        through_runner.len(),
        by_exec.len(),
        "fixtures/{fixture}: {through_runner:#?}"
    );
}

#[test]
fn every_example_test_ends_through_the_runner_as_by_exec() {
    if !docker_ready() {
        return;
    }
    run_fixture("example", 0, 6);
}

#[test]
fn every_failing_test_fails_through_the_runner_as_by_exec() {
    if !docker_ready() {
        return;
    }
    run_fixture("failing", 1, 3);
}

/// The engine `CLNRM_SECOND_ENGINE` names, or `None` with a notice.
fn second_engine(test: &str) -> Option<String> {
    match std::env::var("CLNRM_SECOND_ENGINE") {
        Ok(endpoint) if !endpoint.is_empty() => Some(endpoint),
        _ => {
            eprintln!(
                "NOTICE: {test}: no second engine to compare with (CLNRM_SECOND_ENGINE is unset; \
                 CI's Podman leg sets it)"
            );
            None
        }
    }
}

fn same_on_both_engines(fixture: &str, code: i32) {
    let Some(second) = second_engine(fixture) else {
        return;
    };
    let here = run_fixture_with(fixture, code, &[]);
    let there = run_fixture_with(fixture, code, &[("DOCKER_HOST", second.as_str())]);
    for (here, there) in here.iter().zip(&there) {
        assert_eq!(
            here, there,
            "fixtures/{fixture}: an outcome differs on {second}"
        );
    }
    assert_eq!(here.len(), there.len(), "fixtures/{fixture}: {there:#?}");
}

#[test]
fn the_example_ends_on_a_second_engine_as_on_this_one() {
    if !docker_ready() {
        return;
    }
    same_on_both_engines("example", 0);
}

#[test]
fn the_failing_fixture_fails_on_a_second_engine_as_on_this_one() {
    if !docker_ready() {
        return;
    }
    same_on_both_engines("failing", 1);
}
