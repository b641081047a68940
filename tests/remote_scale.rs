//! A thousand cached results on the remote only: a machine with a fresh local cache
//! validates and fetches them all in under 2 s (the lookups go out concurrently,
//! not one round trip per test), and afterwards needs the remote no more: with the
//! server stopped the same run takes what a local-only warm run takes.

mod common;
mod remote_servers;

use std::time::{Duration, Instant};

use clnrm::cache::{Memo, MemoOptions, Remote, RemoteMode, RemoteOptions};
use clnrm::pipeline::{FsWorld, Pipeline};
use clnrm::runner::{prepare, Disposition, PassRecord, REMOTE_STAGES};
use common::{docker_ready, TestProject};
use remote_servers::{passing_test, Nginx};

const TESTS: usize = 1000;

/// Puts a pass for every test of `project` on the remote at `url`, the way a CI
/// machine that ran them would have, without running a thousand containers: the
/// results are keyed by the same inputs `clnrm run` computes.
fn plant_passes_on_the_remote(project: &TestProject, url: &str) -> Vec<clnrm::cache::Key> {
    let root = project.root();
    let loaded = clnrm::project::Project::load(root, &Default::default()).expect("project");
    let tests = clnrm::discover::discover(root, &[root.to_path_buf()], root).expect("tests");
    let cache = tempfile::tempdir().unwrap();
    let (mut memo, _) = Memo::open(cache.path(), MemoOptions::default());
    let remote = Remote::new(&remote_options(url, RemoteMode::Write)).expect("remote");
    memo.attach_remote(remote);
    let checked = Pipeline::new(&loaded, &FsWorld, &memo).check_all(&tests);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dispositions = runtime.block_on(async {
        let backend = clnrm_exec::DockerBackend::connect().await.expect("engine");
        prepare(&backend, &memo, &loaded, checked, true).await
    });
    let mut keys = Vec::new();
    let started = Instant::now();
    for disposition in dispositions {
        let Disposition::Run(runnable, _) = disposition else {
            panic!("every test is valid and forced to run");
        };
        let pass = PassRecord { duration_ms: 1.0 };
        keys.push(runnable.inputs.key());
        memo.put_value(REMOTE_STAGES[0], &runnable.inputs.key(), &pass);
    }
    memo.finish_remote(Duration::from_secs(120));
    println!(
        "{TESTS} results stored and uploaded (4 upload threads): {:.3}s",
        started.elapsed().as_secs_f64()
    );
    assert!(memo.take_warnings().is_empty());
    keys
}

fn remote_options(url: &str, mode: RemoteMode) -> RemoteOptions {
    RemoteOptions {
        url: url.to_string(),
        mode,
        token: None,
        signing_secret: None,
        timeout: Duration::from_secs(5),
        stages: REMOTE_STAGES.iter().map(|s| s.to_string()).collect(),
    }
}

fn timed_run(
    project: &TestProject,
    cache: &std::path::Path,
    remote: Option<&str>,
) -> (common::Run, f64) {
    let mut cmd = common::clnrm_command();
    cmd.current_dir(project.root())
        .args(["run", "-q"])
        .env("CLNRM_CACHE_DIR", cache)
        .env_remove("CLNRM_REMOTE_CACHE");
    if let Some(url) = remote {
        cmd.args(["--remote-cache", url]);
    }
    let started = Instant::now();
    let run = common::Run(cmd.output().expect("run clnrm"));
    (run, started.elapsed().as_secs_f64())
}

#[test]
fn a_thousand_results_come_from_the_remote_at_once_and_then_stay_local() {
    if !docker_ready() {
        return;
    }
    let Some(mut nginx) = Nginx::start() else {
        return;
    };
    let project = TestProject::new();
    for i in 0..TESTS {
        project.write(
            &format!("tests/t{i:04}.clnrm.toml"),
            &passing_test(&format!("t{i}"), &format!("m{i}")),
        );
    }
    let keys = plant_passes_on_the_remote(&project, &nginx.url());
    assert_eq!(nginx.stored_values().len(), TESTS);

    // One remote hit into a fresh cache, connection included.
    let single = tempfile::tempdir().unwrap();
    let (mut memo, _) = Memo::open(single.path(), MemoOptions::default());
    memo.attach_remote(Remote::new(&remote_options(&nginx.url(), RemoteMode::Read)).unwrap());
    let started = Instant::now();
    let hit = memo.get_value::<PassRecord>(REMOTE_STAGES[0], &keys[0]);
    println!(
        "one remote hit: {:.2}ms",
        started.elapsed().as_secs_f64() * 1e3
    );
    assert_eq!(hit.map(|p| p.duration_ms), Some(1.0));
    drop(memo);

    // The fetch alone: a thousand lookups into a fresh cache, concurrently.
    let fresh = tempfile::tempdir().unwrap();
    let (mut memo, _) = Memo::open(fresh.path(), MemoOptions::default());
    memo.attach_remote(Remote::new(&remote_options(&nginx.url(), RemoteMode::Read)).unwrap());
    let started = Instant::now();
    memo.prefetch(REMOTE_STAGES[0], &keys);
    let prefetch_secs = started.elapsed().as_secs_f64();
    let remote_stats = memo.stats().remote.expect("remote figures");
    assert_eq!(remote_stats.figures.hits, TESTS as u64);
    println!("{TESTS} results fetched into a fresh cache: {prefetch_secs:.3}s");
    assert!(prefetch_secs < 1.0, "{prefetch_secs:.3}s");
    drop(memo);
    let gets_before = nginx.count("GET");

    // What a fresh cache costs without any fetch: validate, plan, resolve the image
    // and decide (`--dry-run`, no remote: every test would run).
    let dry_cache = tempfile::tempdir().unwrap();
    let started = Instant::now();
    common::clnrm_command()
        .current_dir(project.root())
        .args(["run", "--dry-run", "-q"])
        .env("CLNRM_CACHE_DIR", dry_cache.path())
        .assert()
        .success();
    let dry_secs = started.elapsed().as_secs_f64();

    let cache = tempfile::tempdir().unwrap();
    let (fetching, fetch_secs) = timed_run(&project, cache.path(), Some(&nginx.url()));
    fetching.expect_code(0);
    fetching.expect_contains(&format!(
        "{TESTS} passed, 0 failed, 0 errors, {TESTS} cached"
    ));
    assert_eq!(
        nginx.count("GET") - gets_before,
        TESTS,
        "each result asked for once"
    );
    println!(
        "fresh cache: dry run {dry_secs:.2}s; run with every result from the remote {fetch_secs:.2}s"
    );
    // Absolute figures for an optimized build are in the README (benches/ci_pipeline.sh);
    // in this debug build, what fetching adds to a run that fetches nothing counts.
    assert!(
        fetch_secs - dry_secs < 1.0,
        "{fetch_secs:.2}s against {dry_secs:.2}s for a dry run"
    );

    // Everything fetched was stored locally: the remote is no longer needed.
    nginx.stop();
    let (stopped, stopped_secs) = timed_run(&project, cache.path(), Some(&nginx.url()));
    stopped.expect_code(0);
    assert!(
        !stopped.stderr().contains("remote cache"),
        "nothing was asked of the stopped remote: {}",
        stopped.stderr()
    );
    let (local, local_secs) = timed_run(&project, cache.path(), None);
    local.expect_code(0);
    println!("remote stopped: {stopped_secs:.2}s; local only: {local_secs:.2}s");
    assert!(
        stopped_secs <= local_secs * 1.3 + 0.2,
        "{stopped_secs:.2}s with the remote stopped against {local_secs:.2}s local only"
    );
}
