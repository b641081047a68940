//! Fault: a service container killed by the kernel for going over the test's memory
//! limit (`[limits] memory_mb`). The user's story: the test is an `error` (the
//! environment gave way, the steps did not fail their checks) whose message says it ran
//! out of memory and names the limit, so the fix is obvious; nothing is left behind, and
//! the outcome is never cached. Needs the Docker engine and the fixture image.

mod common;

use common::{docker_ready, figures, leftovers, outcomes, TestProject, IMAGE};

const LIMIT_MB: u64 = 24;
const TRIALS: usize = 3;

/// A service whose main process (`dd`, after a moment) fills a 128 MiB buffer under a
/// 24 MB limit, while a step waits in it: the step must not be blamed (exit 137 is the
/// kill, not the step's answer).
fn hog(name: &str) -> String {
    format!(
        "[meta]\nname = \"{name}\"\nversion = \"1.0\"\n\n\
         [service.hog]\nimage = \"{IMAGE}\"\n\
         args = [\"sh\", \"-c\", \"sleep 1; exec dd if=/dev/zero of=/dev/null bs=128M count=4\"]\n\n\
         [[steps]]\nname = \"wait\"\nservice = \"hog\"\ncommand = [\"sleep\", \"5\"]\n\n\
         [limits]\nmemory_mb = {LIMIT_MB}\n"
    )
}

#[test]
fn a_container_over_its_memory_limit_is_an_error_naming_the_limit() {
    if !docker_ready() {
        return;
    }
    let name = format!("fault_oom_{}", std::process::id());
    let project = TestProject::new();
    project.write("cleanroom.toml", "");
    project.write("tests/hog.clnrm.toml", &hog(&name));

    let mut correct = 0;
    let mut wrong = Vec::new();
    for trial in 0..TRIALS {
        let run = project.clnrm(&["run", "--format", "json"]);
        let finished: Vec<_> = common::json_events(&run.stdout())
            .into_iter()
            .filter(|e| e["event"] == "test_finished")
            .collect();
        let message = finished
            .first()
            .and_then(|e| e["message"].as_str())
            .unwrap_or_default()
            .to_string();
        let right = run.code() == 1
            && outcomes(&run.stdout()).get(&name) == Some(&("error".to_string(), false))
            && message.contains("memory")
            && message.contains(&LIMIT_MB.to_string());
        let left = leftovers(&[&name]);
        if right && left.is_empty() {
            correct += 1;
        } else {
            wrong.push(format!(
                "trial {trial}: exit {}, message {message:?}, left {left:?}\n{}",
                run.code(),
                run.all()
            ));
        }
    }
    figures(
        "container OOM-killed",
        TRIALS,
        correct,
        &format!("limit {LIMIT_MB} MB"),
    );
    assert!(wrong.is_empty(), "{}", wrong.join("\n\n"));
}
