//! The remote cache tier against a real nginx (WebDAV `PUT`), as teams run it for
//! Bazel: results shared between cache directories (machines), read-only mode,
//! values altered on the server, signed results, and what `cache stats` and the
//! output say (never the credentials).

mod common;
mod remote_servers;

use std::sync::Mutex;

use common::{containers_created_by, docker_now, docker_ready, json_events, TestProject};
use remote_servers::{failing_test, passing_test, remote_warnings, Nginx};

/// Container counts read from the engine's events are only exact one test at a time.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn project_with_passing_tests(count: usize) -> TestProject {
    let project = TestProject::new();
    for i in 0..count {
        project.write(
            &format!("tests/t{i}.clnrm.toml"),
            &passing_test(&format!("t{i}"), &format!("shared-{i}")),
        );
    }
    project
}

/// `clnrm ARGS` in `project` with its cache in `cache` (another machine's, say).
fn clnrm_on(
    project: &TestProject,
    cache: &std::path::Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> common::Run {
    clnrm_on_with_pid(project, cache, args, env).0
}

/// [`clnrm_on`], and the process's pid (its containers' session label starts with it).
fn clnrm_on_with_pid(
    project: &TestProject,
    cache: &std::path::Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> (common::Run, u32) {
    let mut cmd = common::clnrm_process();
    cmd.current_dir(project.root())
        .args(args)
        .env("CLNRM_CACHE_DIR", cache);
    for var in [
        "CLNRM_REMOTE_CACHE",
        "CLNRM_REMOTE_CACHE_TOKEN",
        "CLNRM_REMOTE_CACHE_KEY",
        "CLNRM_REMOTE_CACHE_TIMEOUT",
    ] {
        cmd.env_remove(var);
    }
    for (key, value) in env {
        cmd.env(key, value);
    }
    let child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run clnrm");
    let pid = child.id();
    (
        common::Run(child.wait_with_output().expect("clnrm output")),
        pid,
    )
}

/// (passed, cached) of every finished test, by test identity.
fn outcomes(run: &common::Run) -> Vec<(String, String, bool)> {
    let mut out: Vec<_> = json_events(&run.stdout())
        .iter()
        .filter(|e| e["event"] == "test_finished")
        .map(|e| {
            (
                e["test"].as_str().unwrap_or_default().to_string(),
                e["status"].as_str().unwrap_or_default().to_string(),
                e["cached"] == true,
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn a_second_machine_reuses_the_first_ones_results_and_starts_no_container() {
    if !docker_ready() {
        return;
    }
    let Some(nginx) = Nginx::start() else { return };
    let _serial = serial();
    let project = project_with_passing_tests(3);
    let (first_cache, second_cache) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let url = nginx.url();

    let since = docker_now();
    let (first, pid) = clnrm_on_with_pid(
        &project,
        first_cache.path(),
        &["run", "--remote-cache", &url],
        &[],
    );
    first.expect_code(0).expect_contains("3 passed");
    assert_eq!(
        containers_created_by(pid, &since),
        3,
        "one container per test"
    );
    assert_eq!(nginx.count("PUT"), 3, "{:?}", nginx.requests());
    assert!(
        remote_warnings(&first.stderr()).is_empty(),
        "{}",
        first.stderr()
    );

    // Another machine: an empty local cache, the same remote (from the environment).
    let since = docker_now();
    let (second, pid) = clnrm_on_with_pid(
        &project,
        second_cache.path(),
        &["run"],
        &[("CLNRM_REMOTE_CACHE", &url)],
    );
    second.expect_code(0);
    assert_eq!(
        second.stdout().matches("PASS (cached)").count(),
        3,
        "{}",
        second.stdout()
    );
    assert_eq!(
        containers_created_by(pid, &since),
        0,
        "a cached run starts nothing"
    );
    assert_eq!(nginx.count("PUT"), 3, "nothing new to upload");

    // Its local cache now holds the results: with the remote gone it stays cached.
    drop(nginx);
    let third = clnrm_on(
        &project,
        second_cache.path(),
        &["run", "--format", "json"],
        &[],
    );
    third.expect_code(0);
    assert!(outcomes(&third)
        .iter()
        .all(|(_, status, cached)| status == "pass" && *cached));

    let stats = clnrm_on(
        &project,
        second_cache.path(),
        &["cache", "stats", "--json"],
        &[],
    );
    let stats: serde_json::Value = serde_json::from_str(&stats.stdout()).expect("json");
    assert_eq!(stats["remote"]["hits"], 3, "{stats}");
    assert_eq!(stats["remote"]["uploads"], 0, "{stats}");
}

#[test]
fn read_mode_asks_the_remote_but_uploads_nothing() {
    if !docker_ready() {
        return;
    }
    let Some(nginx) = Nginx::start() else { return };
    let _serial = serial();
    let project = project_with_passing_tests(2);
    let cache = tempfile::tempdir().unwrap();
    let url = nginx.url();
    let run = clnrm_on(
        &project,
        cache.path(),
        &["run", "--remote-cache", &url, "--remote-cache-mode", "read"],
        &[],
    );
    run.expect_code(0).expect_contains("2 passed");
    assert_eq!(nginx.count("GET"), 2, "{:?}", nginx.requests());
    assert_eq!(
        nginx.count("PUT"),
        0,
        "read mode never uploads: {:?}",
        nginx.requests()
    );
    assert!(nginx.stored_values().is_empty());
}

#[test]
fn a_value_altered_on_the_server_is_a_miss_with_one_warning_never_a_wrong_pass() {
    if !docker_ready() {
        return;
    }
    let Some(nginx) = Nginx::start() else { return };
    let _serial = serial();
    let project = project_with_passing_tests(2);
    let url = nginx.url();
    let first_cache = tempfile::tempdir().unwrap();
    clnrm_on(
        &project,
        first_cache.path(),
        &["run", "--remote-cache", &url],
        &[],
    )
    .expect_code(0);
    let values = nginx.stored_values();
    assert_eq!(values.len(), 2);
    for path in &values {
        let mut bytes = std::fs::read(path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x01;
        std::fs::write(path, bytes).unwrap();
    }

    let second_cache = tempfile::tempdir().unwrap();
    let second = clnrm_on(
        &project,
        second_cache.path(),
        &["run", "--format", "json", "--remote-cache", &url],
        &[],
    );
    second.expect_code(0);
    let second_outcomes = outcomes(&second);
    assert_eq!(second_outcomes.len(), 2);
    assert!(
        second_outcomes
            .iter()
            .all(|(_, status, cached)| status == "pass" && !cached),
        "damaged values are misses, the tests really run: {second_outcomes:?}"
    );
    let warnings = remote_warnings(&second.stderr());
    assert_eq!(warnings.len(), 1, "{}", second.stderr());
    assert!(warnings[0].contains("damaged"), "{}", warnings[0]);
}

#[test]
fn with_a_key_a_writer_without_it_cannot_make_a_failing_test_pass() {
    if !docker_ready() {
        return;
    }
    let Some(nginx) = Nginx::start() else { return };
    let _serial = serial();
    let project = TestProject::new();
    project.write("tests/good.clnrm.toml", &passing_test("good", "fine"));
    project.write("tests/bad.clnrm.toml", &failing_test("bad"));
    let url = nginx.url();
    let key = ("CLNRM_REMOTE_CACHE_KEY", "the team's secret");

    // A signed run: `good` passes and is uploaded, `bad` fails (asked, not found).
    let signed_cache = tempfile::tempdir().unwrap();
    clnrm_on(
        &project,
        signed_cache.path(),
        &["run", "--remote-cache", &url],
        &[key],
    )
    .expect_code(1);
    let values = nginx.stored_values();
    assert_eq!(values.len(), 1, "only the pass is uploaded");
    let asked = nginx.keys_asked();
    let bad_key = asked
        .iter()
        .find(|k| !values[0].ends_with(k.as_str()))
        .expect("the failing test's key was asked for");

    // Someone who can write to the server, without the key, plants a pass for `bad`:
    // an unsigned value of their own making, under bad's key.
    let planter_cache = tempfile::tempdir().unwrap();
    let planter = TestProject::new();
    planter.write("tests/p.clnrm.toml", &passing_test("p", "planted"));
    clnrm_on(
        &planter,
        planter_cache.path(),
        &["run", "--remote-cache", &url],
        &[],
    )
    .expect_code(0);
    let unsigned = nginx
        .stored_values()
        .into_iter()
        .find(|p| *p != values[0])
        .expect("the planter's value");
    std::fs::copy(&unsigned, nginx.value_path(bad_key)).unwrap();

    // A client with the key refuses it: `bad` runs and fails, with one warning.
    let keyed_cache = tempfile::tempdir().unwrap();
    let keyed = clnrm_on(
        &project,
        keyed_cache.path(),
        &["run", "--format", "json", "--remote-cache", &url],
        &[key],
    );
    keyed.expect_code(1);
    let keyed_outcomes = outcomes(&keyed);
    assert!(
        keyed_outcomes.contains(&("tests/bad.clnrm.toml".into(), "fail".into(), false)),
        "{keyed_outcomes:?}"
    );
    assert!(
        keyed_outcomes.contains(&("tests/good.clnrm.toml".into(), "pass".into(), true)),
        "the signed pass is used: {keyed_outcomes:?}"
    );
    let warnings = remote_warnings(&keyed.stderr());
    assert_eq!(warnings.len(), 1, "{}", keyed.stderr());
    assert!(warnings[0].contains("not signed"), "{}", warnings[0]);

    // A value signed with another key is refused the same way.
    let other_key_cache = tempfile::tempdir().unwrap();
    let other = clnrm_on(
        &project,
        other_key_cache.path(),
        &["run", "--format", "json", "--remote-cache", &url],
        &[("CLNRM_REMOTE_CACHE_KEY", "another secret")],
    );
    other.expect_code(1);
    assert!(
        outcomes(&other).iter().all(|(_, _, cached)| !cached),
        "{}",
        other.stdout()
    );
    // good's value is signed with the team's key, bad's planted one not at all:
    // whichever is read first gives the run's one warning.
    let warnings = remote_warnings(&other.stderr());
    assert_eq!(warnings.len(), 1, "{}", other.stderr());
    assert!(
        warnings[0].contains("does not match") || warnings[0].contains("not signed"),
        "{}",
        warnings[0]
    );

    // Without a key the remote is trusted as it is, and `cache stats` says so.
    let trusting_cache = tempfile::tempdir().unwrap();
    let trusting = clnrm_on(
        &project,
        trusting_cache.path(),
        &["run", "--format", "json", "--remote-cache", &url],
        &[],
    );
    assert!(
        outcomes(&trusting).contains(&("tests/bad.clnrm.toml".into(), "pass".into(), true)),
        "what an unsigned remote can do, and why the key exists"
    );
    let stats = clnrm_on(
        &project,
        trusting_cache.path(),
        &["cache", "stats", "--remote-cache", &url],
        &[],
    );
    stats.expect_contains("the remote is trusted as it is");
}

#[test]
fn credentials_never_appear_in_output_logs_or_statistics() {
    if !docker_ready() {
        return;
    }
    let Some(nginx) = Nginx::start() else { return };
    let _serial = serial();
    let project = project_with_passing_tests(1);
    let cache = tempfile::tempdir().unwrap();
    let url = nginx.url().replace("http://", "http://ci:hunter2@");
    let secrets = [
        ("CLNRM_REMOTE_CACHE_TOKEN", "token-xyzzy"),
        ("CLNRM_REMOTE_CACHE_KEY", "key-plugh"),
    ];
    let mut seen = String::new();
    for args in [
        vec!["run", "-vv", "--remote-cache", &url],
        vec!["cache", "stats", "--remote-cache", &url],
        vec!["cache", "stats", "--json", "--remote-cache", &url],
        vec!["run", "--help"],
    ] {
        seen.push_str(&clnrm_on(&project, cache.path(), &args, &secrets).all());
    }
    // Every library's logs too (ureq's request logging included).
    let mut traced = secrets.to_vec();
    traced.push(("RUST_LOG", "trace"));
    seen.push_str(
        &clnrm_on(
            &project,
            cache.path(),
            &["run", "--force", "--remote-cache", &url],
            &traced,
        )
        .all(),
    );
    assert!(
        seen.contains("GET /cache/ac/") || seen.contains("/cache/ac/"),
        "trace logs shown"
    );
    // A broken URL and an unreachable server are reported without them too.
    seen.push_str(
        &clnrm_on(
            &project,
            cache.path(),
            &["run", "--remote-cache", "ftp://ci:hunter2@x"],
            &[],
        )
        .expect_code(2)
        .all(),
    );
    let closed = format!(
        "http://ci:hunter2@127.0.0.1:{}/",
        remote_servers::free_port()
    );
    seen.push_str(
        &clnrm_on(
            &project,
            cache.path(),
            &["run", "--force", "--remote-cache", &closed],
            &[],
        )
        .all(),
    );
    assert!(seen.contains("remote cache"), "{seen}");
    for secret in ["hunter2", "token-xyzzy", "key-plugh"] {
        assert!(!seen.contains(secret), "{secret} shown in:\n{seen}");
    }
    assert!(nginx.count("PUT") >= 1);
}
