//! clnrm as a good citizen of a shared engine (README: "A test with several services
//! runs on a network of its own"): Docker's default address pools give about 31 bridge
//! networks in all, and clnrm's tests, spares and spare sets each need a network. A
//! big parallel run ends with no errors, and after it, while `clnrm dev` holds spares
//! for 30 tests, and after `dev` ends, the user's own `docker network create` works and
//! few of clnrm's networks are left. Only networks of the clnrm process under test
//! are counted (named `clnrm-<its pid>-…`, or of its project's pool): other clnrm
//! processes may share the engine.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use clnrm_exec::SPARE_NETWORKS_KEPT;
use common::{docker_ready, DevRuns, TestProject, IMAGE};

/// A test with two services: `b` answers by name on the test's network, `a` reaches it.
fn two_services(i: usize) -> String {
    format!(
        r#"[meta]
name = "two_services_{i}"
version = "1"

[service.a]
image = "{IMAGE}"

[service.b]
image = "{IMAGE}"

[[steps]]
name = "b_is_up"
service = "b"
run = "echo {i}"

[[steps]]
name = "a_reaches_b"
service = "a"
run = "ping -c 1 -W 5 b"
"#
    )
}

fn project_of(tests: usize) -> TestProject {
    let project = TestProject::new();
    project.write("cleanroom.toml", "");
    for i in 0..tests {
        project.write(&format!("tests/t{i}.clnrm.toml"), &two_services(i));
    }
    project
}

fn docker_lines(args: &[&str]) -> Vec<String> {
    let out = std::process::Command::new("docker")
        .args(args)
        .output()
        .expect("docker runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .filter(|l| !l.is_empty())
        .collect()
}

/// The networks of the clnrm process `pid` (its objects are named `clnrm-<pid>-…`),
/// each with its subnet.
fn networks_of_process(pid: u32) -> Vec<(String, String)> {
    let prefix = format!("clnrm-{pid}-");
    docker_lines(&[
        "network",
        "ls",
        "--filter",
        "label=clnrm.managed=true",
        "--format",
        "{{.Name}}",
    ])
    .into_iter()
    .filter(|name| name.starts_with(&prefix))
    .filter_map(|name| {
        let inspect = std::process::Command::new("docker")
            .args([
                "network",
                "inspect",
                &name,
                "--format",
                "{{range .IPAM.Config}}{{.Subnet}}{{end}}",
            ])
            .output()
            .expect("docker network inspect");
        // Removed between the listing and the inspect (a trimmed spare): gone, not wrong.
        if !inspect.status.success() {
            return None;
        }
        let subnet = String::from_utf8_lossy(&inspect.stdout).trim().to_string();
        Some((name, subnet))
    })
    .collect()
}

/// The networks of the project's pool: its spare sets' (its lease, an empty network
/// saying the pool is in use, aside).
fn pool_networks(project: &TestProject) -> Vec<String> {
    let label = format!(
        "label=clnrm.pool={}",
        clnrm::pool::project_key(project.root())
    );
    docker_lines(&["network", "ls", "--filter", &label, "--format", "{{.Name}}"])
        .into_iter()
        .filter(|name| !name.ends_with("-lease"))
        .collect()
}

/// What the user would do: a network of their own, created without options. Removed again.
#[track_caller]
fn users_network_create_works(when: &str) {
    let name = format!("clnrm-test-users-own-{}", std::process::id());
    let out = std::process::Command::new("docker")
        .args(["network", "create", &name])
        .output()
        .expect("docker runs");
    let _ = std::process::Command::new("docker")
        .args(["network", "rm", &name])
        .output();
    assert!(
        out.status.success(),
        "{when}: `docker network create` failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Each of `networks` is a /24 of clnrm's default range, which takes one address pool
/// of Docker's however many networks there are.
#[track_caller]
fn all_in_clnrm_range(networks: &[(String, String)]) {
    for (name, subnet) in networks {
        assert!(
            subnet.starts_with("172.31.") && subnet.ends_with("/24"),
            "{name} has {subnet}, not a /24 of 172.31.0.0/16"
        );
    }
}

#[test]
fn forty_two_service_tests_at_24_jobs_all_run_and_leave_the_engine_usable() {
    if !docker_ready() {
        return;
    }
    let project = project_of(40);
    let child = common::clnrm_process()
        .current_dir(project.root())
        .env("CLNRM_CACHE_DIR", project.path(".clnrm/cache"))
        .args(["run", "-j", "24"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start clnrm run");
    let pid = child.id();
    let out = child.wait_with_output().expect("clnrm run ends");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stdout.contains("40 passed, 0 failed, 0 errors"),
        "--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
    assert_eq!(out.status.code(), Some(0));

    let left = networks_of_process(pid);
    assert!(
        left.len() <= SPARE_NETWORKS_KEPT,
        "at most {SPARE_NETWORKS_KEPT} spare networks stay: {left:?}"
    );
    all_in_clnrm_range(&left);
    users_network_create_works("after `clnrm run -j 24`");
}

#[test]
fn while_dev_holds_spares_for_thirty_tests_the_user_can_still_create_a_network() {
    if !docker_ready() {
        return;
    }
    let project = project_of(30);
    project.write("cleanroom.toml", "[dev]\nmax_spare_sets = 30\n");
    let mut dev = DevRuns::start(&project);
    let first = dev.run_within(Duration::from_secs(300));
    let results = first["results"].as_array().expect("results");
    let passed = results.iter().filter(|r| r["status"] == "pass").count();
    assert_eq!(passed, 30, "{first}");

    // The spare sets come up in the background, each on a network of its own.
    let deadline = Instant::now() + Duration::from_secs(300);
    while pool_networks(&project).len() < 30 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
    }
    let held = pool_networks(&project).len();
    assert!(held >= 30, "dev holds a network per spare set: {held}");
    let pid = dev.child.id();
    all_in_clnrm_range(&networks_of_process(pid));
    users_network_create_works("while `clnrm dev` holds spares for 30 tests");

    assert_eq!(dev.signal(libc::SIGINT), Some(0));
    assert_eq!(pool_networks(&project), Vec::<String>::new());
    let left = networks_of_process(pid);
    assert!(
        left.len() <= SPARE_NETWORKS_KEPT,
        "at most {SPARE_NETWORKS_KEPT} spare networks stay after dev: {left:?}"
    );
    users_network_create_works("after `clnrm dev` ended");
}
