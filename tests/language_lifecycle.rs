//! `[[setup]]`, `[[teardown]]` and the whole-test `timeout` (docs/reference.md §15): a
//! test that runs out of time ends its running step inside the container, runs its
//! teardown and fails naming that step, leaving no container behind; Ctrl-C does the same.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{clnrm_process, docker_ready, leftovers, TestProject, IMAGE};

fn project(name: &str, body: &str) -> TestProject {
    let p = TestProject::new();
    p.write("cleanroom.toml", "");
    p.write(
        &format!("tests/{name}.clnrm.toml"),
        &format!(
            "[meta]\nname = \"{name}\"\nversion = \"1.0\"\n{body}\n[service.box]\nimage = \"{IMAGE}\"\n\n"
        ),
    );
    p
}

const SLEEPY: &str = r#"
[[setup]]
name = "note"
run = "echo set up > /tmp/log"

[[steps]]
name = "sleepy"
service = "box"
command = ["sleep", "60"]

[[teardown]]
name = "dump_log"
service = "box"
run = "cat /tmp/log; echo torn down"
"#;

#[test]
fn a_whole_test_timeout_ends_the_running_step_runs_teardown_and_names_the_step() {
    if !docker_ready() {
        return;
    }
    let name = "lang_timeout";
    let p = project(name, "timeout = \"2s\"");
    p.write(
        &format!("tests/{name}.clnrm.toml"),
        &format!(
            "{}{SLEEPY}",
            std::fs::read_to_string(p.path(&format!("tests/{name}.clnrm.toml"))).unwrap()
        ),
    );
    let started = Instant::now();
    let run = p.clnrm(&["run"]);
    let took = started.elapsed();
    run.expect_code(1);
    assert!(took < Duration::from_secs(4), "took {took:?}");
    let out = run.stdout();
    assert!(
        out.contains("FAIL tests/lang_timeout.clnrm.toml (lang_timeout)"),
        "{out}"
    );
    assert!(out.contains("step `sleepy` failed"), "{out}");
    assert!(
        out.contains("expected: the test to finish within 2s (its `timeout`)"),
        "{out}"
    );
    assert!(
        out.contains("actual:   the test's timeout ended while step `sleepy` was running"),
        "{out}"
    );
    // The teardown ran: its output is shown.
    assert!(out.contains("--- teardown `dump_log`"), "{out}");
    assert!(out.contains("set up") && out.contains("torn down"), "{out}");
    assert_eq!(leftovers(&[name]), Vec::<String>::new());
}

#[test]
fn ctrl_c_during_a_step_runs_teardown_and_leaves_no_container() {
    if !docker_ready() {
        return;
    }
    let name = "lang_ctrl_c";
    let p = project(name, "");
    p.write(
        &format!("tests/{name}.clnrm.toml"),
        &format!(
            "{}{SLEEPY}",
            std::fs::read_to_string(p.path(&format!("tests/{name}.clnrm.toml"))).unwrap()
        ),
    );
    let child = clnrm_process()
        .current_dir(p.root())
        .args(["run"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Until the step runs: its container is up and the setup wrote its log.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let up = std::process::Command::new("docker")
            .args(["ps", "-q", "--filter", &format!("label=clnrm.test={name}")])
            .output()
            .unwrap();
        if !up.stdout.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the test's container never came up"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(1500));
    let signalled = Instant::now();
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let output = child.wait_with_output().unwrap();
    assert!(
        signalled.elapsed() < Duration::from_secs(10),
        "{:?}",
        signalled.elapsed()
    );
    let out = String::from_utf8_lossy(&output.stdout);
    assert!(
        out.contains("ERROR tests/lang_ctrl_c.clnrm.toml (lang_ctrl_c)"),
        "{out}"
    );
    assert!(out.contains("interrupted"), "{out}");
    assert!(out.contains("--- teardown `dump_log`"), "{out}");
    assert!(out.contains("torn down"), "{out}");
    assert_ne!(output.status.code(), Some(0));
    assert_eq!(leftovers(&[name]), Vec::<String>::new());
}

#[test]
fn a_failed_setup_step_is_an_error_naming_it_and_teardown_still_runs() {
    if !docker_ready() {
        return;
    }
    let p = project(
        "lang_setup",
        "\n[[setup]]\nname = \"migrate\"\nservice = \"box\"\nrun = \"echo no schema >&2; exit 3\"\n\n\
         [[steps]]\nname = \"never\"\nservice = \"box\"\nrun = \"true\"\n\n\
         [[teardown]]\nname = \"dump\"\nservice = \"box\"\nrun = \"echo teardown ran\"\n",
    );
    let run = p.clnrm(&["run", "--format", "json"]);
    run.expect_code(1);
    let events = common::json_events(&run.stdout());
    let t = events
        .iter()
        .find(|e| e["event"] == "test_finished")
        .unwrap();
    assert_eq!(t["status"], "error");
    assert_eq!(
        t["message"],
        "setup step `migrate` failed: expected exit code 0, actual exit code 3"
    );
    let steps: Vec<&str> = events
        .iter()
        .filter(|e| e["event"] == "step_finished")
        .map(|e| e["step"].as_str().unwrap())
        .collect();
    assert_eq!(steps, ["migrate", "dump"]);
}

#[test]
fn every_teardown_step_is_attempted_and_a_failing_one_makes_a_pass_an_error() {
    if !docker_ready() {
        return;
    }
    let p = project(
        "lang_teardown",
        "\n[[steps]]\nname = \"work\"\nservice = \"box\"\nrun = \"echo done\"\n\n\
         [[teardown]]\nname = \"first\"\nservice = \"box\"\nrun = \"exit 1\"\n\n\
         [[teardown]]\nname = \"second\"\nservice = \"box\"\nrun = \"echo second ran\"\n",
    );
    let run = p.clnrm(&["run"]);
    run.expect_code(1);
    let out = run.stdout();
    assert!(
        out.contains("ERROR tests/lang_teardown.clnrm.toml (lang_teardown)"),
        "{out}"
    );
    assert!(
        out.contains("teardown step `first` failed: expected exit code 0, actual exit code 1"),
        "{out}"
    );
    assert!(
        out.contains("second ran"),
        "the second teardown step ran: {out}"
    );
}
