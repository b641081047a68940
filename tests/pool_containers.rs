//! The warm container pool against a real Docker engine, with the fixture
//! image `clnrm-fixture/busybox:latest` (fixtures/images/build.sh).
//!
//! Without an engine (or the image) the tests are skipped with a NOTICE,
//! except under CI (`CI` set, and not `false`), where that is a failure. Each test has a project key
//! of its own and looks only at objects labelled with it (other test binaries
//! may run containers at the same time); a guard removes whatever is left of
//! its key, even when an assertion fails.
//!
//! Reuse trades hermeticity for speed: a reused container keeps what earlier
//! runs wrote into it. `state_persists_across_runs` pins that down, so the
//! trade-off is a documented behaviour, not an accident.

use std::sync::Arc;
use std::time::{Duration, Instant};

use clnrm::pool::{Isolation, Pool, PoolOptions, PoolUse, RunIsolation};
use clnrm_config::StepConfig;
use clnrm_exec::{
    reap_orphans, reap_pool_orphans, resolve_images, Backend, DockerBackend, ManagedKind,
    ManagedObject, ResolvedImages, Session, TestReport, LABEL_POOL,
};
use clnrm_plan::TestPlan;

#[path = "../stages/exec/tests/common/mod.rs"]
mod exec_common;
use exec_common::{
    dead_session, engine, expect_interrupted, expect_pass, here, httpd_answers_on_8080, on,
    planned, service, test,
};

/// Removes every object labelled with a project key when dropped (the test's
/// own cleanup runs first; this catches what a failed assertion left).
struct Cleanup(String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let filter = format!("label={LABEL_POOL}={}", self.0);
        for (list, remove) in [
            (vec!["ps", "-aq", "--filter"], vec!["rm", "-f"]),
            (
                vec!["network", "ls", "-q", "--filter"],
                vec!["network", "rm"],
            ),
        ] {
            let Ok(out) = std::process::Command::new("docker")
                .args(list)
                .arg(&filter)
                .output()
            else {
                return;
            };
            let ids: Vec<String> = String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .map(str::to_string)
                .collect();
            if !ids.is_empty() {
                let _ = std::process::Command::new("docker")
                    .args(&remove)
                    .args(&ids)
                    .output();
            }
        }
    }
}

fn key(test: &str) -> (String, Cleanup) {
    let k = format!("pooltest-{test}-{}", Session::current().id);
    (k.clone(), Cleanup(k))
}

/// A pool whose tests reuse their containers (`isolation = "reuse"`): what these
/// tests are about. Fresh runs are `tests/fresh_*.rs`'.
fn pool(backend: &DockerBackend, session: Session, key: &str, options: PoolOptions) -> Pool {
    Pool::new(
        Arc::new(backend.clone()),
        session,
        here().to_path_buf(),
        key.to_string(),
        PoolOptions {
            isolation: Isolation::Reuse,
            ..options
        },
    )
}

fn sh(name: &str, script: &str) -> StepConfig {
    StepConfig::shell(name, script)
}

/// A one-service test with one step.
fn simple(name: &str, script: &str) -> TestPlan {
    planned(test(name, vec![], vec![sh("s", script)]))
}

async fn images(b: &DockerBackend, p: &TestPlan) -> ResolvedImages {
    resolve_images(b, here(), p).await.expect("images")
}

async fn run(
    pool: &Pool,
    b: &DockerBackend,
    identity: &str,
    p: &TestPlan,
) -> (TestReport, PoolUse) {
    let images = images(b, p).await;
    pool.run_test(identity, p, &images, None, std::future::pending())
        .await
}

fn id_of(report: &TestReport, service: &str) -> String {
    report
        .services
        .iter()
        .find(|s| s.service == service)
        .unwrap_or_else(|| panic!("no service {service}: {report:#?}"))
        .container_id
        .clone()
}

fn used(reused: usize, started: usize, removed: usize) -> PoolUse {
    PoolUse {
        reused,
        started,
        removed,
        isolation: Some(RunIsolation::Reused),
    }
}

async fn objects(b: &DockerBackend, key: &str) -> Vec<ManagedObject> {
    b.list_managed()
        .await
        .unwrap()
        .into_iter()
        .filter(|o| o.labels.get(LABEL_POOL).map(String::as_str) == Some(key))
        .collect()
}

async fn containers(b: &DockerBackend, key: &str) -> Vec<String> {
    objects(b, key)
        .await
        .into_iter()
        .filter(|o| o.kind == ManagedKind::Container)
        .map(|o| o.id)
        .collect()
}

async fn shutdown_clean(pool: &Pool, b: &DockerBackend, key: &str) {
    let reaped = pool.shutdown(false).await;
    assert!(reaped.errors.is_empty(), "{reaped:?}");
    assert_eq!(pool.len(), 0);
    let left = objects(b, key).await;
    assert!(left.is_empty(), "left behind: {left:#?}");
}

fn docker(args: &[&str]) {
    let out = std::process::Command::new("docker")
        .args(args)
        .output()
        .expect("docker CLI");
    assert!(out.status.success(), "docker {args:?}: {out:?}");
}

/// A server `web` whose page says `hello <VERSION>`, and a `client` that fetches
/// it by name and counts its own runs in a file.
fn web_and_client(version: &str) -> TestPlan {
    let mut web = service("web");
    web.env.insert("VERSION".into(), version.into());
    web.args = Some(vec![
        "sh".into(),
        "-c".into(),
        "mkdir -p /www && echo \"hello $VERSION\" > /www/index.html && exec httpd -f -p 8080 -h /www"
            .into(),
    ]);
    web.health_check = Some(httpd_answers_on_8080());
    let mut get = on(
        "client",
        sh("get", "timeout 5 wget -q -O- http://web:8080/"),
    );
    get.expected_output_regex = Some(format!("^hello {version}$"));
    let count = on("client", sh("count", "echo run >> /runs; wc -l < /runs"));
    planned(test("web", vec![web, service("client")], vec![get, count]))
}

#[tokio::test]
async fn a_service_keeps_its_container_until_its_spec_changes_and_state_persists_across_runs() {
    let Some(b) = engine("pool-reuse").await else {
        return;
    };
    let (key, _cleanup) = key("reuse");
    let pool = pool(&b, Session::current(), &key, PoolOptions::default());
    let v1 = web_and_client("v1");

    let (first, u) = run(&pool, &b, "tests/web.clnrm.toml", &v1).await;
    expect_pass(&first);
    assert_eq!(u, used(0, 2, 0));
    assert_eq!(pool.len(), 2);
    let (web, client) = (id_of(&first, "web"), id_of(&first, "client"));
    for n in 2..=3 {
        let (r, u) = run(&pool, &b, "tests/web.clnrm.toml", &v1).await;
        expect_pass(&r);
        assert_eq!(u, used(2, 0, 0), "run {n}");
        assert_eq!(id_of(&r, "web"), web, "run {n}");
        assert_eq!(id_of(&r, "client"), client, "run {n}");
        assert_eq!(r.timings.teardown_ms, 0.0);
        // The trade-off of reuse: what a run leaves in a container, the next sees.
        assert_eq!(r.steps[1].stdout.trim(), n.to_string(), "{r:#?}");
    }

    // Only `web` changes: only it is replaced, on the same network, where the
    // client reaches the new one by name.
    let v2 = web_and_client("v2");
    let (r, u) = run(&pool, &b, "tests/web.clnrm.toml", &v2).await;
    expect_pass(&r);
    assert_eq!(u, used(1, 1, 1));
    assert_ne!(id_of(&r, "web"), web);
    assert_eq!(id_of(&r, "client"), client);
    assert_eq!(r.steps[1].stdout.trim(), "4");
    let live = containers(&b, &key).await;
    assert_eq!(live.len(), 2, "{live:?}");
    assert!(!live.contains(&web), "the old web container is gone");

    // A service the plan no longer has is removed.
    let only_client = planned(test(
        "web",
        vec![service("client")],
        vec![on("client", sh("count", "wc -l < /runs"))],
    ));
    let (r, u) = run(&pool, &b, "tests/web.clnrm.toml", &only_client).await;
    expect_pass(&r);
    assert_eq!(u, used(1, 0, 1));
    assert_eq!(id_of(&r, "client"), client);
    assert_eq!(containers(&b, &key).await, vec![client]);
    shutdown_clean(&pool, &b, &key).await;
}

#[tokio::test]
async fn a_killed_pools_containers_survive_reap_orphans_and_are_adopted_by_the_next() {
    let Some(b) = engine("pool-adopt").await else {
        return;
    };
    let (key, _cleanup) = key("adopt");
    // The first pool's process "was SIGKILLed": its session names a dead pid.
    let dead = dead_session();
    let dead_pid = dead.pid;
    let first = pool(&b, dead, &key, PoolOptions::default());
    let p = simple("adopt", "echo hi");
    let (r, _) = run(&first, &b, "tests/a.clnrm.toml", &p).await;
    expect_pass(&r);
    let kept = id_of(&r, "default");
    let (r, _) = run(&first, &b, "tests/stopped.clnrm.toml", &p).await;
    let stopped = id_of(&r, "default");
    drop(first); // no shutdown, as with SIGKILL
    docker(&["stop", "-t", "0", &stopped]);

    let reaped = reap_orphans(&b).await.unwrap();
    assert!(!reaped.containers.contains(&kept), "{reaped:?}");
    assert_eq!(containers(&b, &key).await.len(), 2);

    let second = pool(&b, Session::current(), &key, PoolOptions::default());
    assert_eq!(second.adopt_existing().await.unwrap(), 1);
    assert_eq!(second.len(), 1);
    assert_eq!(
        containers(&b, &key).await,
        vec![kept.clone()],
        "the stopped one is removed"
    );
    // Adopted again (idempotent): nothing new.
    assert_eq!(second.adopt_existing().await.unwrap(), 0);

    let (r, u) = run(&second, &b, "tests/a.clnrm.toml", &p).await;
    expect_pass(&r);
    assert_eq!(u, used(1, 0, 0));
    assert_eq!(id_of(&r, "default"), kept);
    assert_eq!(
        containers(&b, &key).await,
        vec![kept.clone()],
        "not duplicated"
    );

    // The adopter holds a lease: `cache gc` leaves a live pool alone although
    // its containers' own pid is dead.
    let gc = reap_pool_orphans(&b, Duration::ZERO).await.unwrap();
    assert!(!gc.containers.contains(&kept), "{gc:?}");
    assert_eq!(containers(&b, &key).await, vec![kept.clone()]);

    // Without shutdown, and no live owner left: gc removes it all.
    let third_key = format!("{key}-gc");
    let _cleanup3 = Cleanup(third_key.clone());
    let mut dead2 = Session::current();
    dead2.pid = dead_pid;
    dead2.pid_start = None;
    dead2.id = format!("{dead_pid}-deadbee2");
    let third = pool(&b, dead2, &third_key, PoolOptions::default());
    let (r, _) = run(&third, &b, "tests/a.clnrm.toml", &p).await;
    expect_pass(&r);
    drop(third);
    let young = reap_pool_orphans(&b, Duration::from_secs(3600))
        .await
        .unwrap();
    assert!(!young.containers.contains(&id_of(&r, "default")));
    let gc = reap_pool_orphans(&b, Duration::ZERO).await.unwrap();
    assert!(gc.containers.contains(&id_of(&r, "default")), "{gc:?}");
    assert!(objects(&b, &third_key).await.is_empty());

    shutdown_clean(&second, &b, &key).await;
}

#[tokio::test]
async fn least_recently_used_tests_are_evicted_beyond_the_limit() {
    let Some(b) = engine("pool-lru").await else {
        return;
    };
    let (key, _cleanup) = key("lru");
    let options = PoolOptions {
        max_containers: 2,
        ..PoolOptions::default()
    };
    let pool = pool(&b, Session::current(), &key, options);
    let p = simple("lru", "true");
    let (r1, _) = run(&pool, &b, "t1", &p).await;
    let (r2, _) = run(&pool, &b, "t2", &p).await;
    let (_, u) = run(&pool, &b, "t1", &p).await; // t2 is now the least recently used
    assert_eq!(u, used(1, 0, 0));
    let (r3, u) = run(&pool, &b, "t3", &p).await;
    expect_pass(&r3);
    assert_eq!(u, used(0, 1, 1), "t2 evicted");
    assert_eq!(pool.len(), 2);
    let live = containers(&b, &key).await;
    assert!(!live.contains(&id_of(&r2, "default")), "{live:?}");
    assert!(live.contains(&id_of(&r1, "default")));
    assert!(live.contains(&id_of(&r3, "default")));
    let (_, u) = run(&pool, &b, "t1", &p).await;
    assert_eq!(u, used(1, 0, 0));
    shutdown_clean(&pool, &b, &key).await;
}

#[tokio::test]
async fn a_container_that_died_is_replaced_on_the_next_run() {
    let Some(b) = engine("pool-dead").await else {
        return;
    };
    let (key, _cleanup) = key("dead");
    let pool = pool(&b, Session::current(), &key, PoolOptions::default());
    let p = simple("dead", "echo ok");
    let (r, _) = run(&pool, &b, "t", &p).await;
    let first = id_of(&r, "default");
    // Killed behind the pool's back.
    docker(&["kill", &first]);
    let (r, u) = run(&pool, &b, "t", &p).await;
    expect_pass(&r);
    assert_eq!(u, used(0, 1, 1));
    let second = id_of(&r, "default");
    assert_ne!(second, first);
    assert_eq!(containers(&b, &key).await, vec![second.clone()]);

    // A step that stops its own container (PID 1 exits on TERM).
    let killer = simple("dead", "kill 1; sleep 5");
    let (r, _) = run(&pool, &b, "t", &killer).await;
    assert!(!r.outcome.is_pass(), "{r:#?}");
    // The engine marks the container exited a moment after its PID 1 ended.
    let t = Instant::now();
    while b.container_status(&second).await.is_ok_and(|s| s.running) {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "the container did not stop"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (r, u) = run(&pool, &b, "t", &p).await;
    expect_pass(&r);
    assert_eq!(u, used(0, 1, 1));
    assert_ne!(id_of(&r, "default"), second);
    shutdown_clean(&pool, &b, &key).await;
}

#[tokio::test]
async fn idle_forgotten_and_cancelled_tests() {
    let Some(b) = engine("pool-idle").await else {
        return;
    };
    let (key, _cleanup) = key("idle");
    let options = PoolOptions {
        idle_timeout: Duration::from_millis(1500),
        ..PoolOptions::default()
    };
    let pool = pool(&b, Session::current(), &key, options);
    let p = simple("idle", "true");
    run(&pool, &b, "old", &p).await;
    run(&pool, &b, "gone", &p).await;
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let (r, _) = run(&pool, &b, "fresh", &p).await;
    let fresh = id_of(&r, "default");
    let (r, _) = run(&pool, &b, "gone", &p).await;
    let gone = id_of(&r, "default");
    let evicted = pool.evict_idle().await;
    assert_eq!(evicted.containers.len(), 1, "{evicted:?}");
    assert_eq!(pool.len(), 2);
    let forgotten = pool.forget_test("gone").await;
    assert_eq!(forgotten.containers, vec![gone]);
    assert_eq!(containers(&b, &key).await, vec![fresh.clone()]);

    // Cancelled mid-step: interrupted, but the container stays pooled and is reused.
    let slow = simple("idle", "sleep 30");
    let images = images(&b, &slow).await;
    let t = Instant::now();
    let (r, _) = pool
        .run_test(
            "fresh",
            &slow,
            &images,
            None,
            tokio::time::sleep(Duration::from_millis(500)),
        )
        .await;
    assert!(t.elapsed() < Duration::from_secs(5));
    expect_interrupted(&r);
    assert_eq!(pool.len(), 1);
    let (r, u) = run(&pool, &b, "fresh", &p).await;
    expect_pass(&r);
    assert_eq!(u, used(1, 0, 0));
    assert_eq!(id_of(&r, "default"), fresh);
    shutdown_clean(&pool, &b, &key).await;
}

#[tokio::test]
async fn shutdown_with_keep_leaves_the_containers_for_the_next_process() {
    let Some(b) = engine("pool-keep").await else {
        return;
    };
    let (key, _cleanup) = key("keep");
    let pool1 = pool(&b, Session::current(), &key, PoolOptions::default());
    let p = simple("keep", "true");
    let (r, _) = run(&pool1, &b, "t", &p).await;
    let id = id_of(&r, "default");
    let kept = pool1.shutdown(true).await;
    assert!(kept.containers.is_empty(), "{kept:?}");
    assert_eq!(pool1.len(), 0);
    assert_eq!(containers(&b, &key).await, vec![id.clone()]);
    let pool2 = pool(&b, Session::current(), &key, PoolOptions::default());
    assert_eq!(pool2.adopt_existing().await.unwrap(), 1);
    let (r, u) = run(&pool2, &b, "t", &p).await;
    expect_pass(&r);
    assert_eq!((u, id_of(&r, "default")), (used(1, 0, 0), id));
    shutdown_clean(&pool2, &b, &key).await;
}

#[tokio::test]
async fn a_warm_run_costs_about_one_exec() {
    let Some(b) = engine("pool-timing").await else {
        return;
    };
    let (key, _cleanup) = key("timing");
    let pool = pool(&b, Session::current(), &key, PoolOptions::default());
    let p = simple("timing", "echo hi");
    let images = images(&b, &p).await;
    let (cold, u) = pool
        .run_test("t", &p, &images, None, std::future::pending())
        .await;
    expect_pass(&cold);
    assert_eq!(u.started, 1);
    let mut warm = Vec::new();
    for _ in 0..5 {
        let (r, u) = pool
            .run_test("t", &p, &images, None, std::future::pending())
            .await;
        expect_pass(&r);
        assert_eq!(u, used(1, 0, 0));
        warm.push(r.timings);
    }
    // Cold without the pool: start, exec, remove.
    let session = Session::current();
    let oneoff = clnrm_exec::run_test(clnrm_exec::TestRun {
        backend: &b,
        session: &session,
        root: here(),
        plan: &p,
        images: Some(&images),
    })
    .await;
    expect_pass(&oneoff);
    eprintln!(
        "TIMINGS pool cold: containers {:.0} ms, execute {:.0} ms, total {:.0} ms",
        cold.timings.containers_ms, cold.timings.execute_ms, cold.timings.total_ms
    );
    for t in &warm {
        eprintln!(
            "TIMINGS pool warm: containers {:.1} ms, execute {:.1} ms, total {:.1} ms",
            t.containers_ms, t.execute_ms, t.total_ms
        );
    }
    eprintln!(
        "TIMINGS one-off run_test: containers {:.0} ms, execute {:.0} ms, teardown {:.0} ms, total {:.0} ms",
        oneoff.timings.containers_ms,
        oneoff.timings.execute_ms,
        oneoff.timings.teardown_ms,
        oneoff.timings.total_ms
    );
    // The figures above are for reading; what is asserted is structural (every warm
    // run reused its container and started none), since timing bounds flake under load.
    shutdown_clean(&pool, &b, &key).await;
}
