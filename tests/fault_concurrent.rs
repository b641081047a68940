//! Fault: two `clnrm run`s of one project on one cache directory at the same moment
//! (two terminals, or a script and an editor hook). The user's story: both finish with
//! the right outcome for every test and the right exit code (one of them may run
//! without the cache and say so), and neither leaves containers behind. Needs the
//! Docker engine and the fixture image.

mod common;

use common::{clnrm_process, docker_ready, figures, leftovers, outcomes, shell_test, TestProject};

const TRIALS: usize = 5;

#[test]
fn two_runs_on_one_cache_at_once_are_both_correct() {
    if !docker_ready() {
        return;
    }
    let pid = std::process::id();
    let pass = format!("fault_concurrent_pass_{pid}");
    let fail = format!("fault_concurrent_fail_{pid}");
    let project = TestProject::new();
    let cache = project.path(".clnrm/cache");
    project.write("cleanroom.toml", "");
    project.write("tests/fail.clnrm.toml", &shell_test(&fail, "exit 2"));

    let mut correct = 0;
    let mut wrong = Vec::new();
    for trial in 0..TRIALS {
        // A new passing test each trial, so both runs race to store its result; the
        // last trial repeats the first, so both may serve it from the cache.
        let echo = format!("echo trial {}", trial % (TRIALS - 1));
        project.write("tests/pass.clnrm.toml", &shell_test(&pass, &echo));
        let runs: Vec<_> = (0..2)
            .map(|_| {
                clnrm_process()
                    .current_dir(project.root())
                    .env("CLNRM_CACHE_DIR", &cache)
                    .args(["run", "--format", "json"])
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .expect("start clnrm run")
            })
            .collect();
        for run in runs {
            let out = run.wait_with_output().expect("clnrm run ends");
            let stdout = String::from_utf8_lossy(&out.stdout);
            let seen = outcomes(&stdout);
            let right = out.status.code() == Some(1)
                && seen.get(&pass).map(|(s, _)| s.as_str()) == Some("pass")
                && seen.get(&fail) == Some(&("fail".to_string(), false))
                && seen.len() == 2;
            if right {
                correct += 1;
            } else {
                wrong.push(format!(
                    "trial {trial}: exit {:?}, outcomes {seen:?}\n{stdout}\n{}",
                    out.status.code(),
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
        }
        let left = leftovers(&[&pass, &fail]);
        assert!(left.is_empty(), "trial {trial} left {left:?}");
    }
    figures(
        "two clnrm runs on one cache",
        TRIALS * 2,
        correct,
        "runs counted one by one",
    );
    assert!(wrong.is_empty(), "{}", wrong.join("\n\n"));
}
