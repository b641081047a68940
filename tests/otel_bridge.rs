//! One-service tests collecting spans share the run's receiver on the engine's default
//! bridge, each told apart by its container's address (docs/otel.md); when another process
//! holds the bridge's ports, a test claims a network of its own and loses nothing.
//!
//! The tests of this file take turns: each decides who holds the bridge's ports.

mod common;

use std::sync::Mutex;

use common::{clnrm_process, docker_ready, json_events, Run, TestProject, IMAGE};

static PORTS: Mutex<()> = Mutex::new(());

/// A one-service test whose step posts one span named `work` (OTLP/JSON by busybox `wget`)
/// and that expects exactly one span: spans of another test mixed in would make it two.
fn one_span_test() -> String {
    let export = r#"{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{\"traceId\":\"5b8efff798038103d269b633813fc60c\",\"spanId\":\"00000000000000a1\",\"name\":\"work\",\"kind\":2,\"startTimeUnixNano\":\"1000\",\"endTimeUnixNano\":\"2000\"}]}]}]}"#;
    format!(
        "[meta]\nname = \"work\"\nversion = \"1\"\n\n[service.app]\nimage = \"{IMAGE}\"\n\n\
         [[steps]]\nname = \"emit\"\ncommand = [\"sh\", \"-c\", \"wget -q -O - --header \
         'Content-Type: application/json' --post-data '{export}' \
         $OTEL_EXPORTER_OTLP_ENDPOINT/v1/traces\"]\n\n\
         [expect.counts]\nspans_total = {{ eq = 1 }}\nby_name = {{ work = {{ eq = 1 }} }}\n"
    )
}

fn project() -> TestProject {
    let project = TestProject::new();
    project.write("tests/work.clnrm.toml", &one_span_test());
    project
}

fn run_verbose(project: &TestProject) -> Run {
    Run(clnrm_process()
        .args(["run", "--force", "-v", "--format", "json"])
        .current_dir(project.root())
        .output()
        .expect("clnrm runs"))
}

fn passed(run: &Run) -> bool {
    run.code() == 0
        && json_events(&run.stdout())
            .iter()
            .any(|e| e["event"] == "test_finished" && e["status"] == "pass")
}

/// Whether the run's one test received its spans on a network of its own (its `-v` log).
fn fell_back(run: &Run) -> bool {
    run.stderr()
        .contains("spans are received on a network per test")
}

/// The default bridge's gateway: the first address of its subnet.
/// Listens on `gateway`:4318 as another collector would. With `IP_FREEBIND`, as clnrm's
/// receiver binds: Podman's default bridge has its address only while a container is on it.
fn hold_port_4318(gateway: std::net::Ipv4Addr) -> std::net::TcpListener {
    use std::os::fd::FromRawFd;
    // SAFETY: a new socket, owned by the listener returned; options of the sizes given.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
        let listener = std::net::TcpListener::from_raw_fd(fd);
        let on: libc::c_int = 1;
        // As std's `TcpListener::bind`: the port the last run's receiver closed is free.
        for (level, option) in [
            (libc::SOL_SOCKET, libc::SO_REUSEADDR),
            (libc::SOL_IP, libc::IP_FREEBIND),
        ] {
            let set = libc::setsockopt(
                fd,
                level,
                option,
                (&on as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
            assert_eq!(set, 0, "{option}: {}", std::io::Error::last_os_error());
        }
        let address = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: 4318u16.to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from(gateway).to_be(),
            },
            sin_zero: [0; 8],
        };
        let bound = libc::bind(
            fd,
            (&address as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        );
        assert_eq!(
            bound,
            0,
            "the default bridge's port 4318 is free between runs: {}",
            std::io::Error::last_os_error()
        );
        assert_eq!(
            libc::listen(fd, 16),
            0,
            "{}",
            std::io::Error::last_os_error()
        );
        listener
    }
}

fn bridge_gateway() -> std::net::Ipv4Addr {
    let out = std::process::Command::new("docker")
        .args([
            "network",
            "inspect",
            "bridge",
            "--format",
            "{{range .IPAM.Config}}{{.Subnet}} {{end}}",
        ])
        .output()
        .expect("docker network inspect");
    let listing = String::from_utf8_lossy(&out.stdout).to_string();
    let base: std::net::Ipv4Addr = listing
        .split_whitespace()
        .find_map(|subnet| subnet.split('/').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no IPv4 subnet on the default bridge: {listing}"));
    std::net::Ipv4Addr::from(u32::from(base) + 1)
}

#[test]
fn a_one_service_test_receives_on_the_default_bridge_and_falls_back_when_its_ports_are_taken() {
    if !docker_ready() {
        return;
    }
    let _turn = PORTS.lock().unwrap_or_else(|e| e.into_inner());
    let project = project();

    let run = run_verbose(&project);
    assert!(passed(&run), "{}", run.all());
    assert!(
        !fell_back(&run),
        "with the ports free, the test runs on the default bridge: {}",
        run.all()
    );

    // Something else listens there (a collector of the user's, another clnrm): the test
    // claims a network of its own and still gets exactly its spans.
    let _held = hold_port_4318(bridge_gateway());
    let run = run_verbose(&project);
    assert!(passed(&run), "{}", run.all());
    assert!(fell_back(&run), "{}", run.all());
}

#[test]
fn two_clnrm_processes_at_once_each_judge_only_their_own_spans() {
    if !docker_ready() {
        return;
    }
    let _turn = PORTS.lock().unwrap_or_else(|e| e.into_inner());
    let projects = [project(), project()];
    let runs: Vec<Run> = std::thread::scope(|scope| {
        let running: Vec<_> = projects
            .iter()
            .map(|project| scope.spawn(|| run_verbose(project)))
            .collect();
        running
            .into_iter()
            .map(|r| r.join().expect("a run's thread"))
            .collect()
    });
    for run in &runs {
        assert!(passed(run), "{}", run.all());
    }
    // One held the bridge's ports, or the first was done before the second bound them.
    assert!(
        runs.iter().any(|run| !fell_back(run)),
        "{}\n---\n{}",
        runs[0].all(),
        runs[1].all()
    );
}
