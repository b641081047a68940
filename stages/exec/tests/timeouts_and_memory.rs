//! Container tests of how a step ends when it should not go on: a timeout is
//! enforced inside the container (never by signalling a host process), an
//! image without a shell loses its container instead, and a step or service
//! killed for its memory is an error naming the limit.
//!
//! Skipped with a notice without an engine, a failure in CI.

use std::path::Path;
use std::time::{Duration, Instant};

use clnrm_config::{BuildSpec, Limits, TestConfig};
use clnrm_exec::{Backend, DockerBackend, Session, StepStatus, TestOutcome};

mod common;

use common::*;

/// A host process, killed when the test ends however it ends.
struct HostProcess(std::process::Child);

impl Drop for HostProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn a_timed_out_step_ends_inside_its_container_and_a_host_process_like_it_lives_on() {
    let Some(b) = engine("timeout inside the container").await else {
        return;
    };
    // The user has a `sleep 987` of their own running on this host.
    let mut host_sleep = HostProcess(
        std::process::Command::new("sleep")
            .arg("987")
            .spawn()
            .expect("start a host sleep"),
    );
    // The test's step runs the same command in its container, with a 1 s timeout;
    // a second one starts a child of its own in the background.
    let mut slow = step("slow", argv(&["sleep", "987"]));
    slow.timeout_ms = Some(1000);
    slow.continue_on_failure = true;
    let mut with_child = step("with child", sh("sleep 986 & sleep 985"));
    with_child.timeout_ms = Some(1000);
    with_child.continue_on_failure = true;
    let mut ps = step(
        "ps",
        sh("ps | grep -v grep | grep -c 'sleep 98[567]' || true"),
    );
    ps.expected_output_regex = Some("^0$".into());
    let p = planned(test("timeout inside", vec![], vec![slow, with_child, ps]));

    let started = Instant::now();
    let r = run(&b, here(), &p).await;

    let TestOutcome::Fail(f) = &r.outcome else {
        panic!("{r:#?}")
    };
    assert_eq!(f.step, "slow");
    assert_eq!(f.actual, "timed out after 1s");
    for s in &r.steps[..2] {
        assert!(s.timed_out, "{s:#?}");
        assert!(
            (1000.0..10_000.0).contains(&s.duration_ms),
            "`{}` took {} ms",
            s.name,
            s.duration_ms
        );
    }
    assert!(started.elapsed() < Duration::from_secs(30));
    // Nothing of either step is left in the container, the background child included.
    assert_eq!(r.steps[2].status, StepStatus::Pass, "{:#?}", r.steps[2]);
    // The host's own `sleep 987` was not touched.
    assert!(
        host_sleep.0.try_wait().expect("query host sleep").is_none(),
        "the host process was killed"
    );
}

#[tokio::test]
async fn an_image_without_a_shell_loses_its_container_and_later_steps_say_why() {
    let Some(b) = engine("timeout without a shell").await else {
        return;
    };
    let busybox = Path::new("/bin/busybox");
    if !busybox.is_file() {
        clnrm_test_support::skip_container_test(
            "timeout without a shell",
            "no /bin/busybox on this host to build a shell-less image from",
        );
        return;
    }
    // FROM scratch with one static binary: busybox as `/sleep` runs its sleep
    // applet, and there is no `sh` (nor `kill`) in the image.
    let root = tempfile::tempdir().unwrap();
    let ctx = root.path().join("tests/noshell");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::copy(busybox, ctx.join("sleep")).unwrap();
    // Unique content: this test's own image, removed at its end.
    std::fs::write(ctx.join("marker"), Session::current().id).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM scratch\nCOPY sleep /sleep\nCOPY marker /marker\n",
    )
    .unwrap();
    let mut app = service("app");
    app.image = None;
    app.build = Some(BuildSpec {
        context: "noshell".into(),
        dockerfile: None,
    });
    app.args = Some(vec!["/sleep".into(), "3600".into()]);
    let mut slow = on("app", step("slow", argv(&["/sleep", "987"])));
    slow.timeout_ms = Some(1000);
    slow.continue_on_failure = true;
    let after = on("app", step("after", argv(&["/sleep", "0"])));
    let p = planned(test("no shell", vec![app], vec![slow, after]));

    let r = run(&b, root.path(), &p).await;
    let image = r.services.first().map(|s| s.image_id.clone());

    let TestOutcome::Error { message } = &r.outcome else {
        panic!("{r:#?}")
    };
    assert_eq!(
        message,
        "step `after` (service `app`) cannot run: step `slow` timed out and its container \
         was killed because its image has no `sh` to end the timed-out command inside the container"
    );
    assert_eq!(r.steps.len(), 1, "{:#?}", r.steps);
    assert!(r.steps[0].timed_out);
    assert_eq!(r.steps[0].status, StepStatus::Fail);
    let took = r.steps[0].duration_ms;
    assert!((1000.0..10_000.0).contains(&took), "took {took} ms");
    if let Some(image) = image {
        b.remove_image(&image).await.unwrap();
    }
}

/// Runs `t` with a 16 MB memory limit ([limits] memory_mb = 16) and returns the
/// error it ends with.
async fn error_within_16_mb(b: &DockerBackend, mut t: TestConfig) -> String {
    t.limits = Limits {
        cpu_millicores: None,
        memory_mb: Some(16),
    };
    let r = run(b, here(), &planned(t)).await;
    let TestOutcome::Error { message } = r.outcome else {
        panic!("{r:#?}")
    };
    message
}

#[tokio::test]
async fn a_step_killed_for_its_memory_is_an_error_naming_the_limit() {
    let Some(b) = engine("step out of memory").await else {
        return;
    };
    // dd fills a 256 MB buffer in a container allowed 16 MB.
    let hog = step(
        "hog",
        argv(&["dd", "if=/dev/zero", "of=/dev/null", "bs=256M", "count=1"]),
    );
    let message = error_within_16_mb(&b, test("oom step", vec![], vec![hog])).await;
    assert_eq!(
        message,
        "step `hog` (service `default`) was killed for using more than its memory limit \
         of 16 MB ([limits] memory_mb = 16)"
    );
}

#[tokio::test]
async fn a_service_killed_for_its_memory_is_an_error_naming_the_limit() {
    let Some(b) = engine("service out of memory").await else {
        return;
    };
    // The service's own process is the hog: the container dies of it.
    let mut app = service("app");
    app.args = Some(vec![
        "sh".into(),
        "-c".into(),
        "sleep 1; exec dd if=/dev/zero of=/dev/null bs=256M count=1".into(),
    ]);
    let mut wait = on("app", step("wait", argv(&["sleep", "10"])));
    wait.timeout_ms = Some(20_000);
    let message = error_within_16_mb(&b, test("oom service", vec![app], vec![wait])).await;
    assert!(
        message.starts_with(
            "service `app`: the container was killed for using more than its memory limit \
             of 16 MB ([limits] memory_mb = 16)"
        ),
        "{message}"
    );
}

#[tokio::test]
async fn a_step_sees_exactly_the_environment_and_exit_status_it_would_without_the_wrapper() {
    let Some(b) = engine("wrapper is invisible").await else {
        return;
    };
    // `env` lists what the step got: the container's and the step's variables,
    // none of what a shell adds (PWD, SHLVL) unless the step sets them itself.
    let mut plain = step("plain", argv(&["env"]));
    plain.env.insert("STEP_VAR".into(), "from step".into());
    let mut in_etc = step("in etc", argv(&["env"]));
    in_etc.workdir = Some("/etc".into());
    let mut own_shlvl = step("own shlvl", argv(&["env"]));
    own_shlvl.env.insert("SHLVL".into(), "it's 7".into());
    // A command that is not there: the engine's own answer, not a shell's.
    let mut missing = step("missing", argv(&["no-such-command"]));
    missing.expected_exit_code = 126;
    missing.expected_output_regex = Some("no-such-command.*executable file not found".into());
    let mut code = step("code", sh("echo out; echo err >&2; exit 42"));
    code.expected_exit_code = 42;
    code.expected_output_regex = Some("^out$".into());
    code.expected_stderr_regex = Some("^err$".into());
    let p = planned(test(
        "wrapper",
        vec![],
        vec![plain, in_etc, own_shlvl, missing, code],
    ));
    let r = run(&b, here(), &p).await;
    assert_eq!(r.outcome, TestOutcome::Pass, "{r:#?}");
    let vars = |i: usize| -> Vec<String> {
        let mut names: Vec<String> = r.steps[i]
            .stdout
            .lines()
            .filter_map(|l| l.split_once('=').map(|(k, _)| k.to_string()))
            .collect();
        names.sort();
        names
    };
    // Podman gives every container `container=podman` and `TERM=xterm` of its own.
    let podman = r.steps[0].stdout.lines().any(|l| l == "container=podman");
    let engine_adds: &[&str] = if podman { &["TERM", "container"] } else { &[] };
    let expected = |names: &[&str]| {
        let mut all: Vec<String> = names
            .iter()
            .chain(engine_adds)
            .map(|n| n.to_string())
            .collect();
        all.sort();
        all
    };
    assert_eq!(vars(0), expected(&["HOME", "HOSTNAME", "PATH", "STEP_VAR"]));
    assert_eq!(vars(1), expected(&["HOME", "HOSTNAME", "PATH"]));
    assert!(
        r.steps[2].stdout.lines().any(|l| l == "SHLVL=it's 7"),
        "{}",
        r.steps[2].stdout
    );
    assert_eq!(r.steps[4].stderr, "err", "no PID line is left on stderr");
}
