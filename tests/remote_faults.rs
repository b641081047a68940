//! A remote cache that is down, slow, failing, refusing us or talking garbage can
//! make a run neither wrong nor failed, and barely slower: the run's results are
//! those of a run without a remote, with one warning, and at most 2 s more.

mod common;
mod remote_servers;

use std::time::{Duration, Instant};

use common::{docker_ready, json_events, TestProject};
use remote_servers::{failing_test, free_port, passing_test, remote_warnings, Fault, FaultServer};

fn project() -> TestProject {
    let project = TestProject::new();
    project.write("tests/a.clnrm.toml", &passing_test("a", "alpha"));
    project.write("tests/b.clnrm.toml", &passing_test("b", "beta"));
    project.write("tests/c.clnrm.toml", &failing_test("c"));
    project
}

/// A run on a fresh local cache: (exit code, outcomes by test, stderr, seconds).
fn fresh_run(
    project: &TestProject,
    remote: Option<&str>,
) -> (i32, Vec<(String, String)>, String, f64) {
    let cache = tempfile::tempdir().unwrap();
    let mut cmd = common::clnrm_command();
    cmd.current_dir(project.root())
        .args(["run", "--format", "json"])
        .env("CLNRM_CACHE_DIR", cache.path())
        .env_remove("CLNRM_REMOTE_CACHE")
        .env_remove("CLNRM_REMOTE_CACHE_TIMEOUT");
    if let Some(url) = remote {
        cmd.args(["--remote-cache", url]);
    }
    let started = Instant::now();
    let run = common::Run(cmd.output().expect("run clnrm"));
    let seconds = started.elapsed().as_secs_f64();
    let mut outcomes: Vec<(String, String)> = json_events(&run.stdout())
        .iter()
        .filter(|e| e["event"] == "test_finished")
        .map(|e| {
            (
                e["test"].as_str().unwrap_or_default().to_string(),
                e["status"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    outcomes.sort();
    (run.code(), outcomes, run.stderr(), seconds)
}

#[test]
fn a_broken_remote_changes_nothing_but_one_warning_and_costs_under_two_seconds() {
    if !docker_ready() {
        return;
    }
    let project = project();
    let (code, expected, stderr, baseline) = fresh_run(&project, None);
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(
        expected,
        [
            ("tests/a.clnrm.toml".to_string(), "pass".to_string()),
            ("tests/b.clnrm.toml".to_string(), "pass".to_string()),
            ("tests/c.clnrm.toml".to_string(), "fail".to_string()),
        ]
    );

    let down = format!("http://127.0.0.1:{}/cache", free_port());
    let slow = FaultServer::start(Fault::Slow(Duration::from_secs(5)));
    let failing = FaultServer::start(Fault::Status(500));
    let refusing = FaultServer::start(Fault::Status(401));
    let garbage = FaultServer::start(Fault::Garbage);
    let cases = [
        ("down", down.clone(), "cannot connect"),
        ("slow", slow.url(), "no answer within 1s"),
        ("500", failing.url(), "server error 500"),
        ("401", refusing.url(), "check the credentials"),
        ("garbage", garbage.url(), "is damaged"),
    ];
    for (name, url, says) in cases {
        let (code, outcomes, stderr, mut seconds) = fresh_run(&project, Some(&url));
        if seconds > baseline + 2.0 {
            // The machine is shared: time it once more before calling it slow.
            seconds = seconds.min(fresh_run(&project, Some(&url)).3);
        }
        assert_eq!(code, 1, "{name}: {stderr}");
        assert_eq!(
            outcomes, expected,
            "{name}: the same results as without a remote"
        );
        println!("{name}: {seconds:.2}s (without a remote {baseline:.2}s)");
        let warnings = remote_warnings(&stderr);
        assert_eq!(warnings.len(), 1, "{name}: one warning\n{stderr}");
        assert!(warnings[0].contains(says), "{name}: {}", warnings[0]);
        assert!(
            seconds <= baseline + 2.0,
            "{name}: {seconds:.2}s against {baseline:.2}s without a remote"
        );
    }
    // Each misbehaving server was really asked.
    for server in [&slow, &failing, &refusing, &garbage] {
        assert!(server.requests() > 0);
    }
    // The breaker: after the first timeout nothing more is sent to the slow server
    // (three tests, so at most the three lookups that were already in flight).
    assert!(slow.requests() <= 3, "{} requests", slow.requests());
}
