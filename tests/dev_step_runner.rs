//! `clnrm dev` runs the steps of a warm container through the container's step
//! runner (docs/reference.md §7), with the same results as by exec, and
//! `CLNRM_STEP_RUNNER=off` keeps every step on exec. Needs the Docker engine
//! and the fixture image (skipped with a notice otherwise, a failure in CI).

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use common::{docker_ready, TestProject, IMAGE};
use serde_json::Value;

/// A test of three steps whose argv, exit code, stderr, env and working
/// directory all matter, printing `token`.
fn three_steps(token: &str) -> String {
    format!(
        r#"[meta]
name = "runner"
version = "1"

[service.box]
image = "{IMAGE}"

[[steps]]
name = "args"
command = ["printf", "%s|", "a b", "it's", "$HOME", "{token}"]
expected_output_regex = '^a b\|it.s\|\$HOME\|{token}\|$'

[[steps]]
name = "exit and stderr"
command = ["sh", "-c", "printf err >&2; exit 3"]
expected_exit_code = 3
expected_stderr_regex = '^err$'

[[steps]]
name = "env and workdir"
command = ["sh", "-c", "echo $GREETING; pwd"]
env = {{ GREETING = "hi there" }}
workdir = "/tmp"
expected_output_regex = '^hi there\n/tmp$'
"#
    )
}

/// `clnrm dev --format json -v`, its runs and its log lines.
struct Dev {
    child: Child,
    runs: mpsc::Receiver<Value>,
    log: Arc<Mutex<Vec<String>>>,
}

impl Dev {
    fn start(project: &TestProject, env: &[(&str, &str)]) -> Dev {
        let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("clnrm"))
            .current_dir(project.root())
            .env("CLNRM_CACHE_DIR", project.path(".clnrm/cache"))
            .env("NO_COLOR", "1")
            .envs(env.iter().copied())
            .args(["dev", "--format", "json", "-v"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start clnrm dev");
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, runs) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(value) = serde_json::from_str::<Value>(&line) {
                    if tx.send(value).is_err() {
                        break;
                    }
                }
            }
        });
        let log = Arc::new(Mutex::new(Vec::new()));
        let lines = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                lines.lock().unwrap().push(line);
            }
        });
        Dev { child, runs, log }
    }

    #[track_caller]
    fn next_run(&self) -> Value {
        self.runs
            .recv_timeout(Duration::from_secs(60))
            .expect("a run within 60 s")
    }

    /// Log lines of steps run through a step runner so far.
    fn runner_steps(&self) -> usize {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains("through the container's step runner"))
            .count()
    }
}

impl Drop for Dev {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
            let _ = self.child.wait();
        }
    }
}

#[track_caller]
fn assert_passed(run: &Value) {
    let results = run["results"].as_array().expect("results");
    assert_eq!(results.len(), 1, "{run}");
    assert_eq!(results[0]["status"], "pass", "{run}");
}

/// The first run and one re-run after an edit, on the warm container.
fn first_run_and_rerun(env: &[(&str, &str)]) -> Dev {
    let project = TestProject::new();
    project.write("cleanroom.toml", "");
    project.write("runner.clnrm.toml", &three_steps("first"));
    let dev = Dev::start(&project, env);
    assert_passed(&dev.next_run());
    project.write("runner.clnrm.toml", &three_steps("second"));
    assert_passed(&dev.next_run());
    dev
}

#[test]
fn steps_on_a_warm_container_go_through_its_step_runner_with_the_same_results() {
    if !docker_ready() {
        return;
    }
    let dev = first_run_and_rerun(&[]);
    assert!(dev.runner_steps() >= 6, "{:#?}", dev.log.lock().unwrap());
}

#[test]
fn clnrm_step_runner_off_runs_every_step_by_exec() {
    if !docker_ready() {
        return;
    }
    let dev = first_run_and_rerun(&[("CLNRM_STEP_RUNNER", "off")]);
    assert_eq!(dev.runner_steps(), 0, "{:#?}", dev.log.lock().unwrap());
    let by_exec = dev
        .log
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains("engine calls"))
        .count();
    assert!(by_exec >= 6, "{:#?}", dev.log.lock().unwrap());
}
