//! Fault: the Docker engine becomes unreachable in the middle of `clnrm run`. clnrm talks
//! to the engine through a switchable stand-in for its socket
//! (`clnrm_test_support::EngineProxy`), which is switched off at moments spread over the
//! run. The user's story: every test the outage touched is an `error` (the engine's
//! fault, not the test's), never a `fail`; tests done before it keep their pass; once
//! the engine is back, the next run passes everything and no container or network of
//! the interrupted run is left. Needs the Docker engine and the fixture image.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use clnrm_test_support::{EngineProxy, ENGINE_SOCKET};
use common::{clnrm_process, docker_ready, figures, leftovers, outcomes, shell_test, TestProject};

const TRIALS: usize = 6;
const TESTS: usize = 4;

#[test]
fn an_engine_lost_mid_run_gives_errors_not_failures_and_nothing_left_once_back() {
    if !docker_ready() {
        return;
    }
    if !Path::new(ENGINE_SOCKET).exists() {
        clnrm_test_support::skip_container_test(
            "an_engine_lost_mid_run_gives_errors_not_failures_and_nothing_left_once_back",
            &format!("the engine does not listen on {ENGINE_SOCKET}, which the proxy forwards to"),
        );
        return;
    }
    let pid = std::process::id();
    let names: Vec<String> = (0..TESTS)
        .map(|i| format!("fault_engine_{i}_{pid}"))
        .collect();
    let project = TestProject::new();
    project.write("cleanroom.toml", "");
    for (i, name) in names.iter().enumerate() {
        project.write(
            &format!("tests/t{i}.clnrm.toml"),
            &shell_test(name, "sleep 0.5 && echo done"),
        );
    }
    let socket = project.path("engine.sock");
    let cache = project.path(".clnrm/cache");
    let name_refs: Vec<&str> = names.iter().map(String::as_str).collect();

    // How long a run through the proxy takes: the outages are spread over it.
    let proxy = EngineProxy::start(&socket);
    let host = proxy.docker_host();
    let started = Instant::now();
    project
        .clnrm_with(&["--no-cache", "run", "-j", "2"], &[("DOCKER_HOST", &host)])
        .expect_code(0);
    let span = started.elapsed();
    drop(proxy);

    let mut correct = 0;
    let mut errors_seen = 0;
    let mut messages = std::collections::BTreeSet::new();
    let mut wrong = Vec::new();
    for trial in 0..TRIALS {
        let mut proxy = EngineProxy::start(&socket);
        // From just after the start to late in the run (every outage hits a run in progress).
        let outage_at = span.mul_f64(0.1 + 0.8 * trial as f64 / (TRIALS - 1) as f64);
        let run = clnrm_process()
            .current_dir(project.root())
            .env("CLNRM_CACHE_DIR", &cache)
            .env("DOCKER_HOST", &host)
            .args(["--no-cache", "run", "-j", "2", "--format", "json"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start clnrm run");
        std::thread::sleep(outage_at);
        proxy.stop();
        let out = run.wait_with_output().expect("clnrm run ends");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let seen = outcomes(&stdout);
        let statuses: Vec<&str> = seen.values().map(|(s, _)| s.as_str()).collect();
        for event in common::json_events(&stdout) {
            if let Some(message) = event["message"].as_str() {
                // The message without the test-specific tail, to list each kind once.
                messages.insert(message.split(':').take(2).collect::<Vec<_>>().join(":"));
            }
        }
        let errors = statuses.iter().filter(|s| **s == "error").count();
        errors_seen += errors;
        let code = out.status.code();
        // Every test reported, none failed, and the exit code says whether any errored.
        let during_right = seen.len() == TESTS
            && statuses.iter().all(|s| *s == "pass" || *s == "error")
            && code == Some(if errors > 0 { 1 } else { 0 });
        // Back again: the next run cleans up what the interrupted one could not.
        let _proxy = EngineProxy::start(&socket);
        let after = project.clnrm_with(
            &["--no-cache", "run", "-j", "2", "--format", "json"],
            &[("DOCKER_HOST", &host)],
        );
        let after_seen = outcomes(&after.stdout());
        let after_right =
            after.code() == 0 && after_seen.values().filter(|(s, _)| s == "pass").count() == TESTS;
        let left = wait_for_no_leftovers(&name_refs);
        if during_right && after_right && left.is_empty() {
            correct += 1;
        } else {
            wrong.push(format!(
                "trial {trial} (outage after {outage_at:?}): exit {code:?}, {seen:?}\n{stdout}\n{}\n\
                 --- after: exit {}, {after_seen:?}\n{}\n--- left: {left:?}",
                String::from_utf8_lossy(&out.stderr),
                after.code(),
                after.all()
            ));
        }
    }
    figures(
        "Docker engine unreachable mid-run",
        TRIALS,
        correct,
        &format!(
            "{errors_seen} of {} test outcomes were `error`: {messages:?}",
            TRIALS * TESTS
        ),
    );
    assert!(wrong.is_empty(), "{}", wrong.join("\n\n"));
    assert!(errors_seen > 0, "the outages hit tests in progress");
}

/// What is left of the tests' containers and networks, waiting a moment for removals
/// the engine has accepted but not finished.
fn wait_for_no_leftovers(names: &[&str]) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = leftovers(names);
        if left.is_empty() || Instant::now() > deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
