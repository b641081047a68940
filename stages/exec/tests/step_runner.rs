//! Container tests of the persistent step runner, in warm (pooled) containers
//! as `clnrm dev` keeps them and in a test's own as `clnrm run` makes them:
//! every step runs twice in the same container, once through the runner and
//! once by exec, and both must give the same result (docs/reference.md §5).
//!
//! Skipped with a notice without an engine, a failure in CI.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use clnrm_config::ServiceConfig;
use clnrm_exec::{
    resolve_images, start_service, Backend, DockerBackend, ExecOutput, ExecRequest, ServiceToStart,
    Session, LABEL_POOL,
};

mod common;

use common::*;

/// A started container labelled as pooled (so steps in it may use a
/// runner), removed when the test ends however it ends.
struct Warm {
    backend: DockerBackend,
    id: String,
}

impl Drop for Warm {
    fn drop(&mut self) {
        let backend = self.backend.clone();
        let id = self.id.clone();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Runtime::new().expect("runtime");
            rt.block_on(backend.remove_container(&id))
        })
        .join();
    }
}

async fn warm_container(backend: &DockerBackend) -> Warm {
    container(backend, true).await
}

async fn container(backend: &DockerBackend, pooled: bool) -> Warm {
    container_with_env(backend, pooled, &[]).await
}

async fn container_with_env(backend: &DockerBackend, pooled: bool, env: &[(&str, &str)]) -> Warm {
    let mut box_service = service("box");
    box_service.env = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    container_of(backend, pooled, box_service).await
}

async fn container_of(backend: &DockerBackend, pooled: bool, box_service: ServiceConfig) -> Warm {
    let plan = planned(test(
        "warm",
        vec![box_service],
        vec![step("s", argv(&["true"]))],
    ));
    let session = Session::current();
    let images = resolve_images(backend, Path::new("."), &plan)
        .await
        .expect("fixture image");
    let spec = &plan.containers[0];
    let started = start_service(
        backend,
        ServiceToStart {
            session: &session,
            root: Path::new("."),
            spec,
            image: &images[&spec.service],
            network: None,
            labels: if pooled {
                BTreeMap::from([(LABEL_POOL.to_string(), "step-runner-test".to_string())])
            } else {
                BTreeMap::new()
            },
            extra_env: BTreeMap::new(),
            extra_hosts: Vec::new(),
        },
        &|_| {},
    )
    .await
    .expect("start the warm container");
    Warm {
        backend: backend.clone(),
        id: started.id,
    }
}

/// The engine and a warm container, or `None` (with a notice) without an engine.
/// A pooled container as `clnrm dev` keeps it, and a test's own as `clnrm
/// run` makes it (its runner started with it): the runner serves both the same.
async fn warm_or_skip(test: &str) -> Vec<Warm> {
    let Some(backend) = engine(test).await else {
        return Vec::new();
    };
    vec![
        warm_container(&backend).await,
        container(&backend, false).await,
    ]
}

/// How many processes of the container run a command line matching `pattern`
/// (asked by a step whose own timeout is 7 s).
async fn running(warm: &Warm, pattern: &str) -> String {
    let mut count = shell(&format!("ps | grep -v grep | grep -c '{pattern}' || true"));
    count.timeout = Duration::from_secs(7);
    same_both_ways(warm, &count).await.stdout
}

fn request(argv: &[&str]) -> ExecRequest {
    ExecRequest {
        argv: argv.iter().map(|s| s.to_string()).collect(),
        env: BTreeMap::new(),
        workdir: None,
        timeout: Duration::from_secs(20),
    }
}

fn shell(script: &str) -> ExecRequest {
    request(&["sh", "-c", script])
}

/// Runs `request` through the runner and by exec; both results, checked to
/// have gone the way they were meant to (the runner makes no engine call).
async fn both_ways(warm: &Warm, request: &ExecRequest) -> (ExecOutput, ExecOutput) {
    let through_runner = warm
        .backend
        .exec(&warm.id, request)
        .await
        .expect("through the runner");
    let by_exec = warm
        .backend
        .without_step_runner()
        .exec(&warm.id, request)
        .await
        .expect("by exec");
    assert_eq!(
        through_runner.phases.calls, 0,
        "{:?} did not go through the runner",
        request.argv
    );
    assert!(by_exec.phases.calls >= 2, "{by_exec:?}");
    (through_runner, by_exec)
}

/// The same result both ways (timings aside).
async fn same_both_ways(warm: &Warm, request: &ExecRequest) -> ExecOutput {
    let (mut runner, mut exec) = both_ways(warm, request).await;
    runner.phases = Default::default();
    exec.phases = Default::default();
    assert_eq!(runner, exec, "{:?}", request.argv);
    runner
}

#[tokio::test]
async fn steps_through_the_runner_give_what_exec_gives() {
    for warm in warm_or_skip("step runner parity").await {
        steps_through_the_runner_give_what_exec_gives_in(&warm).await;
    }
}

async fn steps_through_the_runner_give_what_exec_gives_in(warm: &Warm) {
    for (code, script) in [(0, "exit 0"), (1, "exit 1"), (137, "kill -9 $$")] {
        let out = same_both_ways(warm, &shell(script)).await;
        assert_eq!(out.exit_code, Some(code), "{script}");
    }
    let out = same_both_ways(warm, &shell("echo o1; echo e1 >&2; echo o2; echo e2 >&2")).await;
    assert_eq!(
        (out.stdout.as_str(), out.stderr.as_str()),
        ("o1\no2\n", "e1\ne2\n")
    );
    let out = same_both_ways(warm, &shell("printf 'no newline'; printf 'err' >&2")).await;
    assert_eq!(
        (out.stdout.as_str(), out.stderr.as_str()),
        ("no newline", "err")
    );
    let out = same_both_ways(warm, &shell(r"printf 'a\000b\377\376c'")).await;
    assert_eq!(out.stdout, "a\0b\u{fffd}\u{fffd}c");

    // Arguments reach the command exactly, whatever a shell would make of them.
    let tricky = [
        "a b",
        "it's",
        "$HOME",
        "`id`",
        "line1\nline2",
        "\"q\"",
        "",
        "*",
        "-n",
        "\\",
    ];
    let mut argv = vec!["printf", "[%s]"];
    argv.extend(tricky);
    let out = same_both_ways(warm, &request(&argv)).await;
    let expected: String = tricky.iter().map(|a| format!("[{a}]")).collect();
    assert_eq!(out.stdout, expected);

    // The step's env over the container's, its working directory, and the
    // process it runs in: signals, open descriptors, stdin.
    let mut env_and_dir =
        shell("env | sort; pwd; grep -E '^Sig(Ign|Blk)' /proc/self/status; ls /proc/self/fd; cat");
    env_and_dir.env = BTreeMap::from([
        ("GREETING".into(), "hello 'you' $USER".into()),
        ("EMPTY".into(), String::new()),
        ("PATH".into(), "/bin:/usr/bin".into()),
    ]);
    env_and_dir.workdir = Some("/tmp".into());
    let out = same_both_ways(warm, &env_and_dir).await;
    assert!(
        out.stdout.contains("GREETING=hello 'you' $USER\n"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.lines().any(|l| l == "EMPTY="), "{}", out.stdout);
    assert!(out.stdout.contains("\n/tmp\n"), "{}", out.stdout);
    // A PATH of the step's own that leads nowhere hides nothing the runner needs.
    let mut lost = request(&["/bin/sh", "-c", "echo $PATH; env | sort"]);
    lost.env = BTreeMap::from([("PATH".into(), "/nowhere".into())]);
    let out = same_both_ways(warm, &lost).await;
    assert!(out.stdout.starts_with("/nowhere\n"), "{}", out.stdout);
    let out = same_both_ways(warm, &shell("env | sort; pwd")).await;
    assert!(out.stdout.ends_with("\n/\n"), "{}", out.stdout);
}

#[tokio::test]
async fn big_outputs_arrive_whole_and_are_cut_at_the_same_place() {
    for warm in warm_or_skip("step runner big outputs").await {
        big_outputs_arrive_whole_and_are_cut_at_the_same_place_in(&warm).await;
    }
}

async fn big_outputs_arrive_whole_and_are_cut_at_the_same_place_in(warm: &Warm) {
    let out = same_both_ways(
        warm,
        &shell("yes 0123456789abcdef | head -c 3000000; yes err | head -c 2000000 >&2"),
    )
    .await;
    assert_eq!((out.stdout.len(), out.stderr.len()), (3_000_000, 2_000_000));
    assert!(!out.truncated);
    let out = same_both_ways(warm, &shell("yes 0123456789abcdef | head -c 9000000")).await;
    assert_eq!(out.stdout.len(), 8 * 1024 * 1024);
    assert!(out.truncated);
}

#[tokio::test]
async fn a_timeout_kills_the_steps_group_inside_and_the_runner_goes_on() {
    for warm in warm_or_skip("step runner timeout").await {
        a_timeout_kills_the_steps_group_inside_and_the_runner_goes_on_in(&warm).await;
    }
}

async fn a_timeout_kills_the_steps_group_inside_and_the_runner_goes_on_in(warm: &Warm) {
    let mut slow = shell("echo before; sleep 976 & sleep 975");
    slow.timeout = Duration::from_millis(800);
    let t = Instant::now();
    let (mut runner, mut exec) = both_ways(warm, &slow).await;
    assert!(t.elapsed() < Duration::from_secs(6), "{:?}", t.elapsed());
    assert!(
        runner.phases.wait < Duration::from_millis(2500),
        "{runner:?}"
    );
    runner.phases = Default::default();
    exec.phases = Default::default();
    assert_eq!(runner, exec);
    assert!(runner.timed_out && runner.exit_code.is_none(), "{runner:?}");
    assert_eq!(runner.stdout, "before\n");
    assert!(runner.killed_container.is_none());
    // Nothing of either step is left running, and the runner still answers.
    assert_eq!(running(warm, "sleep 97[56]").await, "0\n");
}

/// Runs `slow` (past its timeout) both ways: the same result, timed out, and
/// nothing matching `killed` left running.
async fn times_out_both_ways_leaving_nothing(warm: &Warm, slow: &ExecRequest, killed: &str) {
    let out = same_both_ways(warm, slow).await;
    assert!(out.timed_out && out.exit_code.is_none(), "{out:?}");
    assert_eq!(running(warm, killed).await, "0\n", "{:?}", slow.argv);
}

#[tokio::test]
async fn a_timeout_ends_the_steps_descendants_and_spares_what_earlier_steps_left() {
    for warm in warm_or_skip("step runner timeout, what it kills").await {
        a_timeout_ends_the_steps_descendants_and_spares_what_earlier_steps_left_in(&warm).await;
    }
}

async fn a_timeout_ends_the_steps_descendants_and_spares_what_earlier_steps_left_in(warm: &Warm) {
    // An earlier step leaves a process that let go of its output.
    let left = same_both_ways(warm, &shell("sleep 971 >/dev/null 2>&1 & echo left")).await;
    assert_eq!(left.stdout, "left\n");
    // The step's process lives on, with a grandchild behind a shell that exits.
    let mut nested = shell("sh -c 'sleep 973 & sleep 974' & sleep 975");
    nested.timeout = Duration::from_millis(800);
    times_out_both_ways_leaving_nothing(warm, &nested, "sleep 97[345]").await;
    // The timeout did not touch what the first step left (once each way).
    assert_eq!(running(warm, "sleep 971").await, "2\n");
    let cleaned = same_both_ways(warm, &shell("pkill -f 'sleep 971'; echo done")).await;
    assert_eq!(cleaned.stdout, "done\n");
}

#[tokio::test]
async fn a_timeout_ends_an_orphan_still_holding_the_steps_output() {
    for warm in warm_or_skip("step runner timeout, an orphan").await {
        // The step's own process is gone at once; an orphan of it keeps its output open.
        let mut orphan = shell("sleep 972 & echo gone");
        orphan.timeout = Duration::from_millis(800);
        times_out_both_ways_leaving_nothing(&warm, &orphan, "sleep 972").await;
    }
}

#[tokio::test]
async fn a_step_signalling_its_own_process_group_ends_only_itself() {
    for warm in warm_or_skip("step runner, a step's kill 0").await {
        let left = same_both_ways(&warm, &shell("sleep 969 >/dev/null 2>&1 & echo left")).await;
        assert_eq!(left.stdout, "left\n");
        // A script that ends its own background jobs on the way out.
        let cleaning = shell("trap 'kill 0' EXIT; sleep 968 & echo cleaning");
        let out = same_both_ways(&warm, &cleaning).await;
        assert_eq!(
            (out.exit_code, out.stdout.as_str()),
            (Some(143), "cleaning\n")
        );
        assert_eq!(running(&warm, "sleep 968").await, "0\n");
        // The group was the step's alone: what the earlier step left lives on (once
        // each way), and the runner still serves the next step.
        assert_eq!(running(&warm, "sleep 969").await, "2\n");
        let next = warm
            .backend
            .exec(&warm.id, &shell("pkill -f 'sleep 969'; echo next"))
            .await
            .expect("step");
        assert_eq!((next.stdout.as_str(), next.phases.calls), ("next\n", 0));
    }
}

#[tokio::test]
async fn children_the_step_leaves_behind_are_waited_for_only_while_they_hold_its_output() {
    for warm in warm_or_skip("step runner background children").await {
        children_the_step_leaves_behind_are_waited_for_only_while_they_hold_its_output_in(&warm)
            .await;
    }
}

async fn children_the_step_leaves_behind_are_waited_for_only_while_they_hold_its_output_in(
    warm: &Warm,
) {
    // A child holding the step's output: its late line is the step's.
    let out = same_both_ways(warm, &shell("(sleep 0.3; echo late) & echo now")).await;
    assert_eq!(out.stdout, "now\nlate\n");
    // A child that let go of it outlives the step, which ends at once.
    let detached = shell("sleep 30 >/dev/null 2>&1 & echo started");
    let t = Instant::now();
    let out = same_both_ways(warm, &detached).await;
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    assert_eq!((out.exit_code, out.stdout.as_str()), (Some(0), "started\n"));
    let out = same_both_ways(warm, &shell("echo still here")).await;
    assert_eq!(out.stdout, "still here\n");
    // The runner's watchdogs (`sleep 20.000` for these steps' 20 s timeout)
    // end with their steps.
    assert_eq!(running(warm, "sleep 20.000").await, "0\n");
}

#[tokio::test]
async fn what_the_runner_cannot_do_as_exec_does_goes_by_exec() {
    for warm in warm_or_skip("step runner fallbacks").await {
        what_the_runner_cannot_do_as_exec_does_goes_by_exec_in(&warm).await;
    }
}

async fn what_the_runner_cannot_do_as_exec_does_goes_by_exec_in(warm: &Warm) {
    let b = warm.backend.clone();
    let exec_only = b.without_step_runner();
    // No such command, no such directory: the engine's own answer, by exec.
    let missing = request(&["no-such-command-here"]);
    let mut nowhere = request(&["pwd"]);
    nowhere.workdir = Some("/no/such/dir".into());
    // A file that is not executable; a command not on the step's own `PATH`; a
    // command that `exec` would take for an option.
    let not_executable = request(&["/etc/passwd"]);
    let mut off_path = request(&["true"]);
    off_path.env.insert("PATH".into(), "/nowhere".into());
    let dash = request(&["-true"]);
    // Found first in an empty `PATH` entry (the working directory): runc refuses it.
    let mut empty_entry = request(&["true"]);
    empty_entry
        .env
        .insert("PATH".into(), "/nowhere::/bin".into());
    empty_entry.workdir = Some("/bin".into());
    for req in [
        &missing,
        &nowhere,
        &not_executable,
        &off_path,
        &dash,
        &empty_entry,
    ] {
        let through = b.exec(&warm.id, req).await.expect("step");
        let exec = exec_only.exec(&warm.id, req).await.expect("step");
        assert!(through.phases.calls >= 2, "{through:?}");
        // The engine's own error line (on stdout from Docker, on stderr from
        // Podman). Podman sometimes adds a line of its own about the exec's attach
        // connection (`read unixpacket ... connection reset by peer`), in either of
        // two execs of the same command.
        let answer = |out: &ExecOutput| {
            let first = |text: &str| text.lines().next().unwrap_or_default().to_string();
            (out.exit_code, first(&out.stdout), first(&out.stderr))
        };
        assert_eq!(answer(&through), answer(&exec), "{req:?}");
    }
    // What the runner's search of `PATH` finds, it runs itself, as exec would: a
    // name along the step's own `PATH` past entries without it, empty ones
    // included; a path relative to the step's directory.
    let mut on_path = request(&["true"]);
    on_path.env.insert("PATH".into(), "/nowhere::/bin".into());
    let mut relative = request(&["./true"]);
    relative.workdir = Some("/bin".into());
    for req in [&on_path, &relative] {
        let out = same_both_ways(warm, req).await;
        assert_eq!(out.exit_code, Some(0), "{req:?}: {out:?}");
    }
    // A step that kills the runner fails with the reason; later steps run by exec.
    let killer = b
        .exec(&warm.id, &shell("kill -9 $PPID; sleep 1"))
        .await
        .expect_err("the runner died during the step");
    assert!(killer.to_string().contains("step runner"), "{killer}");
    let after = b
        .exec(&warm.id, &shell("echo by exec"))
        .await
        .expect("step");
    assert_eq!(after.stdout, "by exec\n");
    assert!(after.phases.calls >= 2, "{after:?}");
}

#[tokio::test]
async fn a_container_not_in_the_pool_runs_its_steps_through_a_runner_started_with_it() {
    let Some(b) = engine("step runner in clnrm run's containers").await else {
        return;
    };
    let cold = container(&b, false).await;
    // Its runner was started with the container: the first step makes no engine call.
    let out = b
        .exec(&cold.id, &request(&["echo", "x"]))
        .await
        .expect("step");
    assert_eq!(out.stdout, "x\n");
    assert_eq!(out.phases.calls, 0, "{out:?}");
    // Switched off, steps go by exec.
    let out = b
        .without_step_runner()
        .exec(&cold.id, &request(&["echo", "y"]))
        .await
        .expect("step");
    assert_eq!(out.stdout, "y\n");
    assert!(out.phases.calls >= 2, "{out:?}");
}

#[tokio::test]
async fn a_step_abandoned_mid_way_leaves_the_next_one_a_fresh_runner() {
    for warm in warm_or_skip("step runner after a cancelled step").await {
        a_step_abandoned_mid_way_leaves_the_next_one_a_fresh_runner_in(&warm).await;
    }
}

async fn a_step_abandoned_mid_way_leaves_the_next_one_a_fresh_runner_in(warm: &Warm) {
    let b = &warm.backend;
    let first = b.exec(&warm.id, &shell("echo warm")).await.expect("step");
    assert_eq!((first.stdout.as_str(), first.phases.calls), ("warm\n", 0));
    // The run is cancelled while its step is still going (dev does this when a
    // newer save supersedes it).
    let slow = shell("sleep 1; echo old output");
    let abandoned = tokio::time::timeout(Duration::from_millis(300), b.exec(&warm.id, &slow)).await;
    assert!(abandoned.is_err(), "{abandoned:?}");
    // The old step's frame never reaches the next step.
    let next = b.exec(&warm.id, &shell("echo new")).await.expect("step");
    assert_eq!(
        (next.stdout.as_str(), next.exit_code, next.phases.calls),
        ("new\n", Some(0), 0)
    );
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let later = b.exec(&warm.id, &shell("echo later")).await.expect("step");
    assert_eq!((later.stdout.as_str(), later.phases.calls), ("later\n", 0));
    // The abandoned runner ended once its step did, and took its FIFOs'
    // directory with it: one runner's is left.
    // (In /dev/shm when the container has one, else in /tmp.)
    let dirs = shell("ls -d /dev/shm/tmp.* /tmp/tmp.* 2>/dev/null | wc -l");
    let mut left = String::new();
    for _ in 0..30 {
        left = b.exec(&warm.id, &dirs).await.expect("step").stdout;
        if left.trim() == "1" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(left.trim(), "1");
}

#[tokio::test]
async fn a_container_whose_environment_a_shell_cannot_pass_on_runs_its_steps_by_exec() {
    let Some(b) = engine("step runner refused by the container's env").await else {
        return;
    };
    // A variable whose name is not a shell name cannot be exported by the
    // runner's `sh`: the runner is not used there.
    let odd = container_with_env(&b, true, &[("my.setting", "on")]).await;
    let inspected = b
        .docker()
        .inspect_container(&odd.id, None)
        .await
        .expect("inspect");
    let env = inspected.config.and_then(|c| c.env).unwrap_or_default();
    assert!(env.contains(&"my.setting=on".to_string()), "{env:?}");
    let out = b.exec(&odd.id, &request(&["env"])).await.expect("step");
    assert_eq!(out.exit_code, Some(0), "{out:?}");
    assert!(out.phases.calls >= 2, "{out:?}");
}

#[tokio::test]
async fn the_runner_leaves_no_process_behind_for_the_containers_first_process_to_reap() {
    // An orphan goes to the container's PID 1. PostgreSQL's postmaster, PID 1
    // of its image without an init, takes any unknown child that dies by a
    // signal for a crashed backend and ends every connection; so the runner
    // must reap all it starts (a watchdog's `sleep` killed with its step once
    // left one per step). The service's main process here is `tail`, which
    // reaps nothing: without an init, an orphan stays a zombie whose parent
    // is 1; under the engine's init (clnrm asks for one when a service has
    // its own main process), a live orphan still has parent 1.
    let Some(backend) = engine("step runner orphans").await else {
        return;
    };
    let mut reaps_nothing = service("box");
    reaps_nothing.args = Some(vec!["tail".into(), "-f".into(), "/dev/null".into()]);
    let warm = container_of(&backend, true, reaps_nothing).await;
    for step in ["true", "echo out", "echo err >&2; exit 3"] {
        for _ in 0..3 {
            both_ways(&warm, &shell(step)).await;
        }
    }
    let orphans = shell(
        "for s in /proc/[0-9]*/stat; do read -r p c st pp r < $s 2>/dev/null \
           && [ \"$pp\" = 1 ] && [ \"$c\" != '(tail)' ] && echo \"$p $c $st\"; done; true",
    );
    let (runner, _) = both_ways(&warm, &orphans).await;
    // Processes an exec starts have parent 0 (outside the container).
    assert_eq!(runner.stdout, "", "orphans of PID 1 (pid, name, state)");
}
