//! End-to-end tests of the exec stage against a real Docker engine, with the
//! fixture image `clnrm-fixture/busybox:latest` (fixtures/images/build.sh).
//!
//! Without an engine (or the fixture image) they are skipped with a notice,
//! except in CI, where that is a failure (`clnrm_test_support::skip_container_test`).

use std::time::{Duration, Instant};

use clnrm_config::{BuildSpec, HealthCheck, Limits, VolumeConfig};
use clnrm_exec::{
    reap_orphans, remove_session, resolve_images, run_test_until, Backend, ImageOrigin,
    ManagedKind, Session, StepStatus, TestOutcome, TestRun, LABEL_SESSION,
};

mod common;

use common::*;

#[tokio::test]
async fn state_written_by_one_step_is_read_by_the_next() {
    let Some(b) = engine("state").await else {
        return;
    };
    let mut read = step("read", argv(&["cat", "/tmp/state"]));
    read.expected_output_regex = Some("^written by step 1$".into());
    let p = planned(test(
        "state",
        vec![],
        vec![
            step("write", sh("echo 'written by step 1' > /tmp/state")),
            read,
        ],
    ));
    let r = run(&b, here(), &p).await;
    expect_pass(&r);
    assert_eq!(r.steps.len(), 2);
    assert!(r.steps.iter().all(|s| s.status == StepStatus::Pass));
    assert_eq!(r.steps[1].stdout, "written by step 1");
}

#[tokio::test]
async fn an_expected_nonzero_exit_code_passes_and_a_wrong_one_fails() {
    let Some(b) = engine("exit code").await else {
        return;
    };
    let mut three = step("three", sh("exit 3"));
    three.expected_exit_code = 3;
    let r = run(&b, here(), &planned(test("exit3", vec![], vec![three]))).await;
    expect_pass(&r);
    assert_eq!(r.steps[0].exit_code, Some(3));

    let r = run(
        &b,
        here(),
        &planned(test("exit1", vec![], vec![step("one", sh("exit 1"))])),
    )
    .await;
    let TestOutcome::Fail(f) = &r.outcome else {
        panic!("{r:#?}")
    };
    assert_eq!(
        (f.expected.as_str(), f.actual.as_str()),
        ("exit code 0", "exit code 1")
    );
}

#[tokio::test]
async fn a_regex_mismatch_fails_with_expected_and_actual() {
    let Some(b) = engine("regex").await else {
        return;
    };
    let mut s = step("greet", argv(&["echo", "hello world"]));
    s.expected_output_regex = Some("^goodbye".into());
    let mut after = step("after", argv(&["true"]));
    after.name = "never runs".into();
    let r = run(&b, here(), &planned(test("regex", vec![], vec![s, after]))).await;
    let TestOutcome::Fail(f) = &r.outcome else {
        panic!("{r:#?}")
    };
    assert_eq!(f.step, "greet");
    assert_eq!(f.expected, "stdout matching /^goodbye/");
    assert_eq!(f.actual, "stdout: hello world");
    assert_eq!(f.stdout, "hello world");
    assert_eq!(r.steps.len(), 1, "a failing step ends the test");

    let mut s = step("err", sh("echo oops >&2"));
    s.expected_stderr_regex = Some("^oops$".into());
    expect_pass(&run(&b, here(), &planned(test("stderr", vec![], vec![s]))).await);
}

#[tokio::test]
async fn a_step_past_its_timeout_is_killed_and_fails_in_about_a_second() {
    let Some(b) = engine("timeout").await else {
        return;
    };
    let mut s = step("slow", argv(&["sleep", "60"]));
    s.timeout_ms = Some(1000);
    s.continue_on_failure = true;
    // The killed step is gone: nothing named sleep 60 remains in the container.
    let mut ps = step("ps", sh("ps | grep -v grep | grep -c 'sleep 60' || true"));
    ps.expected_output_regex = Some("^0$".into());
    let p = planned(test("timeout", vec![], vec![s, ps]));
    let t = Instant::now();
    let r = run(&b, here(), &p).await;
    let step_ms = r.steps[0].duration_ms;
    // Killed at its timeout, not when `sleep 60` ends (the upper bound is loose: a busy
    // machine is slow, but never 60 s slow).
    assert!(
        (1000.0..20_000.0).contains(&step_ms),
        "step took {step_ms} ms"
    );
    assert!(t.elapsed() < Duration::from_secs(30), "{:?}", t.elapsed());
    let TestOutcome::Fail(f) = &r.outcome else {
        panic!("{r:#?}")
    };
    assert_eq!(f.actual, "timed out after 1s");
    assert!(r.steps[0].timed_out);
    assert_eq!(r.steps[1].status, StepStatus::Pass, "{:#?}", r.steps[1]);
}

#[tokio::test]
async fn continue_on_failure_runs_later_steps_and_the_test_still_fails() {
    let Some(b) = engine("continue").await else {
        return;
    };
    let mut bad = step("bad", sh("exit 2"));
    bad.continue_on_failure = true;
    let r = run(
        &b,
        here(),
        &planned(test(
            "cont",
            vec![],
            vec![bad, step("good", argv(&["true"]))],
        )),
    )
    .await;
    let TestOutcome::Fail(f) = &r.outcome else {
        panic!("{r:#?}")
    };
    assert_eq!(f.step, "bad");
    assert_eq!(r.steps.len(), 2);
    assert!(r.steps[0].continued);
    assert_eq!(r.steps[1].status, StepStatus::Pass);
}

#[tokio::test]
async fn a_missing_image_is_an_error_not_a_failure() {
    let Some(b) = engine("missing image").await else {
        return;
    };
    let mut s = service("app");
    s.image = Some("clnrm-test/does-not-exist:0".into());
    let r = run(
        &b,
        here(),
        &planned(test("missing", vec![s], vec![step("x", argv(&["true"]))])),
    )
    .await;
    let TestOutcome::Error { message } = &r.outcome else {
        panic!("{r:#?}")
    };
    assert!(message.contains("clnrm-test/does-not-exist:0"), "{message}");
    assert!(message.contains("could not be pulled"), "{message}");
    assert!(r.steps.is_empty());
}

#[tokio::test]
async fn services_reach_each_other_by_name_on_the_test_network() {
    let Some(b) = engine("network").await else {
        return;
    };
    let mut web = service("web");
    web.args = Some(vec![
        "sh".into(),
        "-c".into(),
        "mkdir -p /www && echo 'hello from web' > /www/index.html && exec httpd -f -p 8080 -h /www"
            .into(),
    ]);
    web.ports = vec![8080];
    web.health_check = Some(httpd_answers_on_8080());
    let mut get = on(
        "client",
        step(
            "get",
            argv(&["timeout", "5", "wget", "-q", "-O-", "http://web:8080/"]),
        ),
    );
    get.expected_output_regex = Some("^hello from web$".into());
    let mut idle = service("unused");
    idle.image = Some("clnrm-test/never-started:0".into());
    let p = planned(test("net", vec![web, service("client"), idle], vec![get]));
    assert_eq!(
        p.containers.len(),
        2,
        "the unused idle service is not planned"
    );
    let r = run(&b, here(), &p).await;
    expect_pass(&r);
    let web = r.services.iter().find(|s| s.service == "web").unwrap();
    assert!(web.ports.contains_key(&8080), "{:?}", web.ports);
}

#[tokio::test]
async fn a_failing_health_check_or_an_exited_service_is_an_error() {
    let Some(b) = engine("health").await else {
        return;
    };
    let mut s = service("app");
    s.health_check = Some(HealthCheck {
        cmd: argv(&["false"]),
        interval_ms: 50,
        timeout_ms: 1000,
        retries: 3,
    });
    let r = run(
        &b,
        here(),
        &planned(test("unhealthy", vec![s], vec![step("x", argv(&["true"]))])),
    )
    .await;
    let TestOutcome::Error { message } = &r.outcome else {
        panic!("{r:#?}")
    };
    assert!(
        message.contains("health check `false` did not succeed after 3"),
        "{message}"
    );

    let mut s = service("app");
    s.args = Some(vec!["sh".into(), "-c".into(), "echo dying; exit 7".into()]);
    // The service dies at once: before its readiness check or during the step, never
    // after the step (which outlives it), so the outcome is an error either way.
    let r = run(
        &b,
        here(),
        &planned(test(
            "exits",
            vec![s],
            vec![step("x", argv(&["sleep", "5"]))],
        )),
    )
    .await;
    let TestOutcome::Error { message } = &r.outcome else {
        panic!("{r:#?}")
    };
    assert!(message.contains("service `app`"), "{message}");
    assert!(message.contains("exited with code 7"), "{message}");
    assert!(message.contains("dying"), "{message}");
}

#[tokio::test]
async fn env_workdir_and_argv_are_honoured() {
    let Some(b) = engine("env").await else { return };
    let mut s = service("app");
    s.env.insert("SERVICE_VAR".into(), "from service".into());
    let mut st = on(
        "app",
        step("env", sh("echo \"$SERVICE_VAR|$STEP_VAR|$(pwd)\"")),
    );
    st.env.insert("STEP_VAR".into(), "from step".into());
    st.workdir = Some("/etc".into());
    st.expected_output_regex = Some("^from service\\|from step\\|/etc$".into());
    // An argv with shell syntax in it is not re-joined or re-split.
    let mut raw = on("app", step("raw", argv(&["echo", "a && b", "'c d'"])));
    raw.expected_output_regex = Some("^a && b 'c d'$".into());
    let r = run(&b, here(), &planned(test("env", vec![s], vec![st, raw]))).await;
    expect_pass(&r);
}

#[tokio::test]
async fn variables_that_are_not_shell_names_reach_the_command() {
    let Some(b) = engine("dotted env").await else {
        return;
    };
    // Common in images (`discovery.type`, `spring.profiles.active`): a shell would drop
    // them from what it passes on, so the step runs without the shell wrapper.
    let mut s = service("app");
    s.env.insert("discovery.type".into(), "single-node".into());
    let mut st = on("app", step("env", argv(&["env"])));
    st.env.insert("step.setting".into(), "on".into());
    st.expected_output_regex =
        Some("(?s)discovery\\.type=single-node.*step\\.setting=on|step\\.setting=on.*discovery\\.type=single-node".into());
    let r = run(&b, here(), &planned(test("dotted", vec![s], vec![st]))).await;
    expect_pass(&r);
}

#[tokio::test]
async fn volumes_are_mounted_read_only_when_asked() {
    let Some(b) = engine("volumes").await else {
        return;
    };
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("tests/data")).unwrap();
    std::fs::write(root.path().join("tests/data/file.txt"), "from the host\n").unwrap();
    let mut s = service("app");
    s.volumes = vec![
        VolumeConfig {
            host_path: "data".into(),
            container_path: "/data".into(),
            read_only: true,
        },
        VolumeConfig {
            host_path: "data".into(),
            container_path: "/rw".into(),
            read_only: false,
        },
    ];
    let mut read = step("read", argv(&["cat", "/data/file.txt"]));
    read.expected_output_regex = Some("^from the host$".into());
    let mut write_ro = step("write ro", sh("echo x > /data/new"));
    write_ro.expected_exit_code = 1;
    let write_rw = step("write rw", sh("echo written > /rw/new"));
    let r = run(
        &b,
        root.path(),
        &planned(test("vol", vec![s], vec![read, write_ro, write_rw])),
    )
    .await;
    expect_pass(&r);
    assert_eq!(
        std::fs::read_to_string(root.path().join("tests/data/new")).unwrap(),
        "written\n"
    );
}

#[tokio::test]
async fn limits_are_applied() {
    let Some(b) = engine("limits").await else {
        return;
    };
    let mut t = test(
        "limits",
        vec![],
        vec![{
            let mut s = step(
                "memory",
                sh("cat /sys/fs/cgroup/memory.max 2>/dev/null || cat /sys/fs/cgroup/memory/memory.limit_in_bytes"),
            );
            s.expected_output_regex = Some("^268435456$".into());
            s
        }],
    );
    t.limits = Limits {
        cpu_millicores: Some(500),
        memory_mb: Some(256),
    };
    expect_pass(&run(&b, here(), &planned(t)).await);
}

#[tokio::test]
async fn a_build_context_is_built_once_and_reused() {
    let Some(b) = engine("build").await else {
        return;
    };
    let root = tempfile::tempdir().unwrap();
    let ctx = root.path().join("tests/img");
    std::fs::create_dir_all(&ctx).unwrap();
    // Unique content, so this test builds its own image.
    let marker = format!("{}-{}", std::process::id(), Session::current().id);
    std::fs::write(
        ctx.join("Dockerfile"),
        format!(
            "FROM {IMAGE}\nCOPY marker /marker\nRUN [\"sh\", \"-c\", \"echo built >> /built\"]\n"
        ),
    )
    .unwrap();
    std::fs::write(ctx.join("marker"), &marker).unwrap();
    std::fs::write(ctx.join(".dockerignore"), "*.log\n").unwrap();
    let mut s = service("app");
    s.image = None;
    s.build = Some(BuildSpec {
        context: "img".into(),
        dockerfile: None,
    });
    let mut st = step("marker", argv(&["cat", "/marker"]));
    st.expected_output_regex = Some(format!("^{}$", regex::escape(&marker)));
    let p = planned(test("build", vec![s], vec![st]));

    let first = resolve_images(&b, root.path(), &p).await.unwrap();
    let first = &first["app"];
    let cleanup = first.reference.clone();
    assert_eq!(first.source, ImageOrigin::Built);
    assert!(first.reference.starts_with("clnrm-build/"));
    // An ignored file does not change the context: no rebuild.
    std::fs::write(ctx.join("noise.log"), "x").unwrap();
    let t = Instant::now();
    let second = resolve_images(&b, root.path(), &p).await.unwrap();
    let reuse_ms = t.elapsed().as_millis();
    assert_eq!(second["app"].source, ImageOrigin::Local);
    assert_eq!(second["app"].id, first.id);
    eprintln!("build reuse check: {reuse_ms} ms");
    let r = run(&b, root.path(), &p).await;
    expect_pass(&r);
    assert_eq!(r.services[0].image_id, first.id);
    // A changed context is a new image.
    std::fs::write(ctx.join("marker"), format!("{marker}-2")).unwrap();
    let third = resolve_images(&b, root.path(), &p).await.unwrap();
    assert_eq!(third["app"].source, ImageOrigin::Built);
    assert_ne!(third["app"].id, first.id);
    b.remove_image(&cleanup).await.unwrap();
    b.remove_image(&third["app"].reference).await.unwrap();
}

#[tokio::test]
async fn cancelling_a_test_removes_its_containers() {
    let Some(b) = engine("cancel").await else {
        return;
    };
    let session = Session::current();
    let p = planned(test(
        "cancel",
        vec![],
        vec![step("slow", argv(&["sleep", "60"]))],
    ));
    let t = Instant::now();
    let r = run_test_until(
        TestRun {
            backend: &b,
            session: &session,
            root: here(),
            plan: &p,
            images: None,
        },
        tokio::time::sleep(Duration::from_millis(1500)),
    )
    .await;
    assert!(t.elapsed() < Duration::from_secs(10));
    expect_interrupted(&r);
    assert_clean(&b, &session).await;
}

#[tokio::test]
async fn containers_of_a_dead_process_are_reaped_and_live_ones_kept() {
    let Some(b) = engine("reap").await else {
        return;
    };
    // A session whose process has exited.
    let dead = dead_session();
    let alive = Session::current();

    let p = planned(test("reap", vec![], vec![]));
    assert!(p.containers.is_empty());
    let spec = planned(test("reap", vec![], vec![step("x", argv(&["true"]))]));
    let images = resolve_images(&b, here(), &spec).await.unwrap();
    let mut ids = Vec::new();
    for s in [&dead, &alive] {
        let net = format!("clnrm-{}-reaptest", s.id);
        let net_id = b.create_network(&net, &s.labels()).await.unwrap();
        let request = clnrm_exec::ContainerRequest {
            spec: &spec.containers[0],
            image: &images["default"],
            name: format!("{net}-0"),
            network: Some(&net),
            labels: s.labels(),
            root: here(),
            extra_env: Default::default(),
            extra_hosts: Vec::new(),
        };
        let id = b.create_container(&request).await.unwrap();
        b.start_container(&id).await.unwrap();
        ids.push((s.id.clone(), id, net_id));
    }
    let reaped = reap_orphans(&b).await.unwrap();
    // Any clnrm on this engine reaps dead sessions when it starts (a `clnrm dev`
    // another test left winding down, say): the dead session's objects must be
    // reaped here, unless such a process took them first; either way they are gone
    // (checked below), and the live session's are kept.
    let managed_now = b.list_managed().await.unwrap();
    let still_there = |id: &str| managed_now.iter().any(|o| o.id == id);
    assert!(
        reaped.containers.contains(&ids[0].1) || !still_there(&ids[0].1),
        "{reaped:?}"
    );
    assert!(
        reaped.networks.contains(&ids[0].2) || !still_there(&ids[0].2),
        "{reaped:?}"
    );
    assert!(
        !reaped.containers.contains(&ids[1].1),
        "a live session is kept"
    );
    let managed = b.list_managed().await.unwrap();
    assert!(managed
        .iter()
        .all(|o| o.labels.get(LABEL_SESSION) != Some(&dead.id)));
    assert!(managed
        .iter()
        .any(|o| o.kind == ManagedKind::Container && o.id == ids[1].1));
    let removed = remove_session(&b, &alive.id).await.unwrap();
    assert_eq!(removed.containers, vec![ids[1].1.clone()]);
    assert_eq!(removed.networks, vec![ids[1].2.clone()]);
    assert_clean(&b, &alive).await;
}

#[tokio::test]
async fn ping_reports_the_engine_and_several_services_and_steps_run() {
    let Some(b) = engine("timings").await else {
        return;
    };
    let info = b.ping().await.unwrap();
    assert!(!info.api_version.is_empty());
    let one = planned(test("one", vec![], vec![step("x", argv(&["true"]))]));
    let three = planned(test(
        "three",
        vec![service("a"), service("b"), service("c")],
        ["a", "b", "c"]
            .iter()
            .map(|s| on(s, step(&format!("x{s}"), argv(&["true"]))))
            .collect(),
    ));
    let mut five = test("five", vec![], vec![]);
    for i in 0..5 {
        five.steps
            .push(step(&format!("s{i}"), argv(&["echo", "hi"])));
    }
    let five = planned(five);
    // Warm up (image lookup, connection pool).
    run(&b, here(), &one).await;
    let r1 = run(&b, here(), &one).await;
    let r3 = run(&b, here(), &three).await;
    let r5 = run(&b, here(), &five).await;
    for r in [&r1, &r3, &r5] {
        expect_pass(r);
    }
    let exec_ms: Vec<f64> = r5.steps.iter().map(|s| s.duration_ms).collect();
    eprintln!(
        "TIMINGS one service: containers {:.0} ms (start {:.0} ms), teardown {:.0} ms, total {:.0} ms",
        r1.timings.containers_ms, r1.services[0].start_ms, r1.timings.teardown_ms, r1.timings.total_ms
    );
    eprintln!(
        "TIMINGS three services: containers {:.0} ms, teardown {:.0} ms, total {:.0} ms",
        r3.timings.containers_ms, r3.timings.teardown_ms, r3.timings.total_ms
    );
    eprintln!(
        "TIMINGS five steps: containers {:.0} ms, execs {exec_ms:.0?} ms, execute {:.0} ms, total {:.0} ms",
        r5.timings.containers_ms, r5.timings.execute_ms, r5.timings.total_ms
    );
    for s in &r3.services {
        eprintln!(
            "TIMINGS   service {}: image {:.0} ms, create+start {:.0} ms",
            s.service, s.image_ms, s.start_ms
        );
    }
    // How long starts take is measured by benches/run_figures.py, not asserted here:
    // a timing bound flakes on a busy machine.
    assert_eq!(r3.services.len(), 3);
    assert_eq!(r5.steps.len(), 5);
}

#[tokio::test]
async fn a_container_create_the_caller_gave_up_on_is_undone_by_the_engine_side() {
    let Some(b) = engine("cancelled create").await else {
        return;
    };
    let session = Session::current();
    let p = planned(test(
        "cancelled create",
        vec![],
        vec![step("x", argv(&["true"]))],
    ));
    let images = resolve_images(&b, here(), &p).await.unwrap();
    let request = |name: &str| clnrm_exec::ContainerRequest {
        spec: &p.containers[0],
        image: &images["default"],
        name: format!("clnrm-{}-{name}", session.id),
        network: None,
        labels: session.labels(),
        root: here(),
        extra_env: Default::default(),
        extra_hosts: Vec::new(),
    };
    // How long a create takes here, so the next one is given up on midway,
    // once the engine has the request (as Ctrl-C during a start does).
    let timed = request("timed");
    let t = Instant::now();
    let id = b.create_container(&timed).await.unwrap();
    let create_takes = t.elapsed();
    b.remove_container(&id).await.unwrap();

    // Creates vary in time: one that finishes before it is given up on is removed
    // and the next is given up on sooner.
    let mut gave_up = false;
    for (i, divisor) in [3, 6, 12, 24].into_iter().enumerate() {
        let given_up = request(&format!("given-up-{i}"));
        let midway = (create_takes / divisor).max(Duration::from_millis(2));
        match tokio::time::timeout(midway, b.create_container(&given_up)).await {
            Err(_) => {
                gave_up = true;
                break;
            }
            Ok(created) => b.remove_container(&created.unwrap()).await.unwrap(),
        }
    }
    assert!(gave_up, "every create finished before it was given up on");

    // The engine finishes the create (by then it surely has), and the
    // container is removed since nobody took its ID.
    tokio::time::sleep((create_takes * 5).max(Duration::from_secs(1))).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = session_objects(&b, &session).await;
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the abandoned create left a container: {left:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A two-service test whose `web` serves `token` to its `client` by name.
fn serving(token: &str) -> clnrm_plan::TestPlan {
    let mut web = service("web");
    web.args = Some(vec![
        "sh".into(),
        "-c".into(),
        format!("while :; do echo {token} | nc -l -p 7000; done"),
    ]);
    let mut get = on(
        "client",
        step(
            "get",
            sh("for i in $(seq 100); do nc web 7000 && exit 0; sleep 0.1; done; exit 1"),
        ),
    );
    get.expected_output_regex = Some(format!("^{token}$"));
    planned(test(token, vec![web, service("client")], vec![get]))
}

#[tokio::test]
async fn tests_running_at_once_each_get_a_network_of_their_own_and_leave_it_as_a_spare() {
    let Some(b) = engine("spare networks").await else {
        return;
    };
    // Four tests at once, the same service names in each: were two of them
    // on one network, `web` would resolve to either test's server, and a
    // client would read the other's token.
    let plans: Vec<_> = (0..4).map(|i| serving(&format!("token{i}"))).collect();
    let reports = futures_util::future::join_all(plans.iter().map(|p| run(&b, here(), p))).await;
    for r in &reports {
        expect_pass(r);
    }
    // Their networks stay on the engine for the next tests (`run` checked
    // that each test's containers, its claims included, are gone).
    let spares = b.list_spare_networks().await.unwrap();
    assert!(!spares.is_empty(), "no spare network was kept");
}
