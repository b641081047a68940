//! Fault: `clnrm run` killed with SIGKILL at random moments, spread over the whole run
//! (render, parse, plan, container start, steps, cache writes, teardown). The user's
//! story: whatever moment the kill hit, the next `clnrm run` gives the right outcome for
//! every test (no `PASS (cached)` for a test that fails) and leaves none of clnrm's
//! containers or networks behind. Needs the Docker engine and the fixture image.

mod common;

use std::time::{Duration, Instant};

use common::{
    clnrm_process, docker_ready, figures, leftovers, outcomes, shell_test, Rng, TestProject,
};

const TRIALS: usize = 50;

/// Test names of this file, unique to this process so parallel test binaries never
/// see each other's containers.
fn names() -> [String; 3] {
    let pid = std::process::id();
    [
        format!("fault_kill_pass_{pid}"),
        format!("fault_kill_fail_{pid}"),
        format!("fault_kill_flip_{pid}"),
    ]
}

/// A project of three tests: one that always passes, one that always fails, and one
/// that passes in even trials and fails in odd ones (same name, different content), so a
/// result stored for the wrong content would show as a wrong pass or a wrong fail.
fn write_project(project: &TestProject, trial: usize) {
    let [pass, fail, flip] = names();
    project.write("cleanroom.toml", "");
    project.write(
        "tests/pass.clnrm.toml",
        &shell_test(&pass, "echo ready && sleep 0.2"),
    );
    project.write(
        "tests/fail.clnrm.toml",
        &shell_test(&fail, "sleep 0.1; exit 3"),
    );
    let flip_script = if trial & 1 == 0 {
        format!("echo trial {trial}; exit 0")
    } else {
        format!("echo trial {trial}; exit 1")
    };
    project.write("tests/flip.clnrm.toml", &shell_test(&flip, &flip_script));
}

/// What the next run must say of each test in `trial`.
fn expected(trial: usize) -> [(String, &'static str); 3] {
    let [pass, fail, flip] = names();
    [
        (pass, "pass"),
        (fail, "fail"),
        (flip, if trial & 1 == 0 { "pass" } else { "fail" }),
    ]
}

#[test]
fn a_run_killed_at_any_moment_leaves_the_next_run_correct_and_nothing_behind() {
    if !docker_ready() {
        return;
    }
    let project = TestProject::new();
    let cache = project.path(".clnrm/cache");
    let mut rng = Rng::from_env("kill -9 of clnrm run");

    // How long an uncached run takes: the kills are spread over that span and a bit past it.
    write_project(&project, 0);
    let start = Instant::now();
    let first = project.clnrm(&["run", "--format", "json"]);
    let span = start.elapsed();
    assert_eq!(first.code(), 1, "{}", first.all());

    let mut correct = 0;
    let mut wrong = Vec::new();
    let mut killed_before_end = 0;
    for trial in 1..=TRIALS {
        write_project(&project, trial);
        // Half the killed runs ignore the result cache, so the kill can land in the
        // steps and result writes of a test whose result is already stored too.
        let mut args = vec!["run", "--format", "json"];
        if trial % 4 < 2 {
            args.push("--force");
        }
        // Stratified: trial i is killed at a random moment in the i-th slice of the span.
        let slice = span / TRIALS as u32;
        let delay = slice * (trial as u32 - 1)
            + Duration::from_micros(rng.below(slice.as_micros().max(1) as u64));
        let mut child = clnrm_process()
            .current_dir(project.root())
            .env("CLNRM_CACHE_DIR", &cache)
            .args(&args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start clnrm run");
        std::thread::sleep(delay);
        if child.try_wait().expect("poll clnrm").is_none() {
            killed_before_end += 1;
        }
        let _ = child.kill();
        let _ = child.wait();

        let next = project.clnrm(&["run", "--format", "json"]);
        let seen = outcomes(&next.stdout());
        let mut trial_ok = next.code() == 1;
        for (name, status) in expected(trial) {
            match seen.get(&name) {
                Some((got, cached)) if got == status && (!*cached || status == "pass") => {}
                other => {
                    trial_ok = false;
                    wrong.push(format!(
                        "trial {trial} (killed after {delay:?}): {name} want {status}, got {other:?}\n{}",
                        next.all()
                    ));
                }
            }
        }
        let left = leftovers(&names().each_ref().map(String::as_str));
        if !left.is_empty() {
            trial_ok = false;
            wrong.push(format!(
                "trial {trial} (killed after {delay:?}): left {left:?}"
            ));
        }
        correct += usize::from(trial_ok);
    }
    figures(
        "kill -9 of clnrm run",
        TRIALS,
        correct,
        &format!(
            "{killed_before_end} kills landed before the run ended (kills spread over {span:?}, one uncached run)"
        ),
    );
    assert!(wrong.is_empty(), "{}", wrong.join("\n\n"));
    // The kills really hit runs in progress, not just finished processes.
    assert!(
        killed_before_end >= TRIALS / 2,
        "only {killed_before_end} of {TRIALS} kills hit a running clnrm"
    );
}
