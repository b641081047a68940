//! clnrm against a Docker engine that is not on this machine, as far as clnrm can
//! tell: the local engine behind `DOCKER_HOST=tcp://127.0.0.1:PORT` (socat). Build
//! contexts go through the API, a step past its timeout is killed inside its
//! container (no host PID is assumed), and host volumes are refused with a clear
//! error rather than mounting whatever the engine's machine has at that path.

mod common;
mod remote_servers;

use std::time::Instant;

use common::{
    containers_created_by, docker_now, docker_ready, json_events, managed_containers, repo,
    TestProject, IMAGE,
};
use remote_servers::EngineOverTcp;

fn run_through(engine: &EngineOverTcp, dir: &std::path::Path, args: &[&str]) -> (common::Run, u32) {
    let cache = tempfile::tempdir().unwrap();
    let child = common::clnrm_process()
        .current_dir(dir)
        .args(args)
        .env("CLNRM_CACHE_DIR", cache.path())
        .env("DOCKER_HOST", engine.docker_host())
        .env_remove("CLNRM_REMOTE_CACHE")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run clnrm");
    let pid = child.id();
    (common::Run(child.wait_with_output().expect("output")), pid)
}

#[test]
fn a_timed_out_step_is_killed_inside_its_container_on_a_tcp_engine() {
    if !docker_ready() {
        return;
    }
    let Some(engine) = EngineOverTcp::start() else {
        return;
    };
    let project = TestProject::new();
    project.write(
        "tests/quick.clnrm.toml",
        &format!(
            "[meta]\nname = \"quick\"\nversion = \"1\"\n\n[service.box]\nimage = \"{IMAGE}\"\n\n\
             [[steps]]\nname = \"in_time\"\ncommand = [\"sleep\", \"0.1\"]\ntimeout = \"5s\"\n"
        ),
    );
    project.write(
        "tests/stuck.clnrm.toml",
        &format!(
            "[meta]\nname = \"stuck\"\nversion = \"1\"\n\n[service.box]\nimage = \"{IMAGE}\"\n\n\
             [[steps]]\nname = \"hangs\"\ncommand = [\"sleep\", \"30\"]\ntimeout = \"1s\"\n\
             continue_on_failure = true\n\n\
             [[steps]]\nname = \"nothing_left\"\ncommand = [\"sh\", \"-c\", \"ps | grep -c '[s]leep 30'\"]\n\
             expected_exit_code = 1\nexpected_output_regex = \"^0\"\n"
        ),
    );
    let since = docker_now();
    let started = Instant::now();
    let (run, pid) = run_through(&engine, project.root(), &["run", "--format", "json"]);
    let seconds = started.elapsed().as_secs_f64();
    run.expect_code(1);
    let events = json_events(&run.stdout());
    let step = |name: &str| {
        events
            .iter()
            .find(|e| e["event"] == "step_finished" && e["step"] == name)
            .unwrap_or_else(|| panic!("step {name} in {}", run.stdout()))
            .clone()
    };
    assert_eq!(step("in_time")["status"], "pass");
    assert_eq!(step("hangs")["status"], "fail");
    assert!(
        run.stdout().contains("timed out after 1s"),
        "{}",
        run.stdout()
    );
    assert_eq!(
        step("nothing_left")["status"],
        "pass",
        "the step's process was killed inside the container: {}",
        run.stdout()
    );
    assert!(
        seconds < 20.0,
        "the 30 s sleep did not hold the run: {seconds:.1}s"
    );
    assert_eq!(containers_created_by(pid, &since), 2);
    let ours: Vec<String> = managed_containers("clnrm.managed=true")
        .into_iter()
        .filter(|id| container_session(id).starts_with(&format!("{pid}-")))
        .collect();
    assert!(ours.is_empty(), "left behind: {ours:?}");
}

fn container_session(id: &str) -> String {
    let out = std::process::Command::new("docker")
        .args([
            "inspect",
            "--format",
            "{{index .Config.Labels \"clnrm.session\"}}",
            id,
        ])
        .output()
        .expect("docker inspect");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn the_example_runs_on_a_tcp_engine_with_its_build_and_refuses_its_host_volume() {
    if !docker_ready() {
        return;
    }
    let Some(engine) = EngineOverTcp::start() else {
        return;
    };
    let (run, _) = run_through(
        &engine,
        &repo(),
        &["run", "fixtures/example", "--format", "json"],
    );
    run.expect_code(1);
    let finished: Vec<_> = json_events(&run.stdout())
        .into_iter()
        .filter(|e| e["event"] == "test_finished")
        .collect();
    assert_eq!(finished.len(), 6, "{}", run.stdout());
    for event in &finished {
        let test = event["test"].as_str().unwrap_or_default();
        if test.ends_with("volume.clnrm.toml") {
            assert_eq!(event["status"], "error", "{event}");
            let message = event["message"].as_str().unwrap_or_default();
            assert!(
                message.contains("mounts host path `tests/data`")
                    && message.contains("is not on this machine"),
                "{message}"
            );
        } else {
            // `built` sends its build context through the API.
            assert_eq!(event["status"], "pass", "{test}: {event}");
        }
    }
}
