//! `clnrm doctor` on a healthy machine and on broken ones: it names every check, exits 0
//! when all is well, and exits 1 naming the cause and a fix when the engine is missing,
//! unreachable or refuses us, when the remote cache refuses us, or when the cache
//! directory is read-only. And every command that cannot reach the engine says which
//! engine, where, and to run `clnrm doctor`.

mod common;
mod remote_servers;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{docker_ready, TestProject};
use remote_servers::{free_port, Fault, FaultServer};
use serde_json::Value;

const CHECKS: [&str; 8] = [
    "engine",
    "image_import",
    "network",
    "container",
    "exec",
    "otlp_reach",
    "cache",
    "remote_cache",
];

/// What `clnrm doctor --format json` said: its exit code, its object, and its pid
/// (which names what it created on the engine).
struct Doctor {
    code: i32,
    report: Value,
    pid: u32,
    stdout: String,
}

impl Doctor {
    fn from(child: std::process::Child) -> Doctor {
        let pid = child.id();
        let out = child.wait_with_output().expect("clnrm doctor ends");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let report = serde_json::from_str(&stdout).unwrap_or_else(|e| {
            panic!(
                "doctor's JSON does not parse ({e})\n--- stdout\n{stdout}\n--- stderr\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
        Doctor {
            code: out.status.code().unwrap_or(-1),
            report,
            pid,
            stdout,
        }
    }

    fn check(&self, name: &str) -> &Value {
        self.report["checks"]
            .as_array()
            .expect("a checks array")
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("no check {name} in {}", self.stdout))
    }

    fn status(&self, name: &str) -> &str {
        self.check(name)["status"].as_str().unwrap()
    }

    fn detail(&self, name: &str) -> &str {
        self.check(name)["detail"].as_str().unwrap()
    }

    fn fix(&self, name: &str) -> &str {
        self.check(name)["fix"].as_str().unwrap_or("")
    }

    fn failing(&self) -> Vec<&str> {
        self.report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["status"] == "fail")
            .map(|c| c["name"].as_str().unwrap())
            .collect()
    }

    #[track_caller]
    fn expect_broken_by(&self, name: &str, cause: &str, fix: &str) {
        assert_eq!(self.code, 1, "{}", self.stdout);
        assert_eq!(self.report["status"], "fail", "{}", self.stdout);
        assert_eq!(self.status(name), "fail", "{}", self.stdout);
        assert!(self.detail(name).contains(cause), "{}", self.stdout);
        assert!(self.fix(name).contains(fix), "{}", self.stdout);
    }
}

/// `clnrm doctor --format json` in `project` with `env` added.
fn doctor(project: &TestProject, env: &[(&str, &str)]) -> Doctor {
    let mut cmd = common::clnrm_process();
    cmd.current_dir(project.root())
        .args(["doctor", "--format", "json"])
        .env("CLNRM_CACHE_DIR", project.path(".clnrm/cache"))
        .env_remove("CLNRM_REMOTE_CACHE")
        .env_remove("CLNRM_REMOTE_CACHE_TOKEN");
    for (key, value) in env {
        cmd.env(key, value);
    }
    Doctor::from(spawn(cmd))
}

fn spawn(mut cmd: Command) -> std::process::Child {
    cmd.stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start clnrm")
}

/// Names of containers, networks and images of the doctor with this pid still on the engine.
fn leftovers(pid: u32) -> Vec<String> {
    let mine = format!("clnrm-doctor-{pid}-");
    let tag = format!("clnrm-doctor/probe:{pid}-");
    let list = |args: &[&str]| {
        let out = Command::new("docker").args(args).output().expect("docker");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let mut found = list(&["ps", "-a", "--format", "{{.Names}}"]);
    found.extend(list(&["network", "ls", "--format", "{{.Name}}"]));
    found.extend(list(&["images", "--format", "{{.Repository}}:{{.Tag}}"]));
    found
        .into_iter()
        .filter(|name| name.starts_with(&mine) || name.starts_with(&tag))
        .collect()
}

#[test]
fn a_healthy_machine_passes_every_check_and_leaves_nothing_behind() {
    if !docker_ready() {
        return;
    }
    let project = TestProject::new();
    let doctor = doctor(&project, &[]);
    assert_eq!(doctor.code, 0, "{}", doctor.stdout);
    assert_ne!(doctor.report["status"], "fail", "{}", doctor.stdout);
    let names: Vec<&str> = doctor.report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, CHECKS);
    for name in CHECKS {
        assert_eq!(doctor.status(name), "ok", "{}", doctor.stdout);
        let check = doctor.check(name);
        assert!(check["fix"].is_null(), "an ok check has no fix: {check}");
    }
    let engine = doctor.detail("engine");
    assert!(
        engine.starts_with("Docker ") || engine.starts_with("Podman "),
        "{engine}"
    );
    assert!(engine.contains(", API 1."), "{engine}");
    assert!(
        doctor.detail("otlp_reach").contains("reached"),
        "{}",
        doctor.stdout
    );
    assert_eq!(leftovers(doctor.pid), Vec::<String>::new());

    // The same checks for a person: a line each, and a summary.
    let human = project.clnrm(&["doctor"]);
    human.expect_code(0);
    let out = human.stdout();
    for name in CHECKS {
        assert!(
            out.lines()
                .any(|l| l.starts_with("ok ") && l.contains(name)),
            "{out}"
        );
    }
    assert!(out.ends_with("all checks passed\n"), "{out}");
}

#[test]
fn no_engine_at_the_socket_is_broken_with_how_to_start_one() {
    let project = TestProject::new();
    let socket = "unix:///nonexistent/docker.sock";
    let doctor = doctor(&project, &[("DOCKER_HOST", socket)]);
    doctor.expect_broken_by("engine", "no socket there", "start Docker");
    let detail = doctor.detail("engine");
    assert!(
        detail.starts_with(&format!(
            "cannot reach the Docker engine at {socket} (from DOCKER_HOST)"
        )),
        "{detail}"
    );
    assert_eq!(doctor.failing(), ["engine"], "{}", doctor.stdout);
    for name in ["image_import", "network", "container", "exec", "otlp_reach"] {
        assert_eq!(doctor.status(name), "warn", "{}", doctor.stdout);
        assert!(doctor.detail(name).starts_with("not checked"));
    }
}

#[test]
fn docker_host_at_a_closed_port_is_broken_with_how_to_correct_it() {
    let project = TestProject::new();
    let host = format!("tcp://127.0.0.1:{}", free_port());
    let doctor = doctor(&project, &[("DOCKER_HOST", &host)]);
    doctor.expect_broken_by("engine", "connection refused", "correct DOCKER_HOST");
    assert!(
        doctor
            .detail("engine")
            .starts_with(&format!("cannot reach the engine at {host}")),
        "{}",
        doctor.stdout
    );
}

/// Whether `path` and every folder above it can be entered and read by anyone.
fn open_to_all(path: &Path) -> bool {
    path.ancestors()
        .all(|p| std::fs::metadata(p).is_ok_and(|m| m.permissions().mode() & 0o005 == 0o005))
}

#[test]
fn a_socket_we_may_not_open_is_broken_with_how_to_get_access() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let socket = dir.path().join("engine.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o000)).unwrap();
    let cache = dir.path().join("cache");
    std::fs::create_dir(&cache).unwrap();
    std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o777)).unwrap();
    let host = format!("unix://{}", socket.display());

    // root opens any socket; an unprivileged user (nobody) gets EACCES, as a user
    // outside the docker group does.
    let root = unsafe { libc::geteuid() } == 0;
    let mut binary = assert_cmd::cargo::cargo_bin("clnrm");
    if root && !open_to_all(&binary) {
        let copy = dir.path().join("clnrm");
        std::fs::copy(&binary, &copy).unwrap();
        binary = copy;
    }
    let mut cmd = if root {
        let mut cmd = Command::new("setpriv");
        cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(&binary);
        cmd
    } else {
        Command::new(&binary)
    };
    cmd.args(["doctor", "--format", "json"])
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("NO_COLOR", "1")
        .env("DOCKER_HOST", &host)
        .env("CLNRM_CACHE_DIR", &cache);
    let doctor = Doctor::from(spawn(cmd));
    doctor.expect_broken_by("engine", "permission denied on the socket", "group");
    assert!(doctor.detail("engine").contains(&host), "{}", doctor.stdout);
    assert_eq!(doctor.failing(), ["engine"], "{}", doctor.stdout);
}

#[test]
fn a_socket_that_does_not_speak_the_engine_api_is_broken_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("not-an-engine.sock");
    let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    // Takes every connection and hangs up without a word.
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            drop(stream);
        }
    });
    let project = TestProject::new();
    let host = format!("unix://{}", socket.display());
    let doctor = doctor(&project, &[("DOCKER_HOST", &host)]);
    doctor.expect_broken_by(
        "engine",
        "accepts connections but does not answer the Engine API",
        "DOCKER_HOST",
    );
    assert!(doctor.detail("engine").contains(&host), "{}", doctor.stdout);
}

#[test]
fn a_remote_cache_answering_403_is_broken_and_no_credential_is_shown() {
    let server = FaultServer::start(Fault::Status(403));
    let project = TestProject::new();
    let url = server.url().replace("http://", "http://ci:hunter2@");
    let doctor = doctor(
        &project,
        &[
            ("CLNRM_REMOTE_CACHE", &url),
            ("CLNRM_REMOTE_CACHE_TOKEN", "tok-s3cret"),
        ],
    );
    doctor.expect_broken_by("remote_cache", "refused with 403", "credentials");
    let detail = doctor.detail("remote_cache");
    assert!(
        detail.starts_with(&server.url()),
        "the URL without userinfo: {detail}"
    );
    assert!(detail.contains("mode readwrite, unsigned"), "{detail}");
    assert!(server.requests() >= 1, "one cheap request was made");
    for secret in ["hunter2", "tok-s3cret", "ci:"] {
        assert!(
            !doctor.stdout.contains(secret),
            "{secret} shown: {}",
            doctor.stdout
        );
    }
    if doctor.status("engine") == "ok" {
        assert_eq!(doctor.failing(), ["remote_cache"], "{}", doctor.stdout);
    }
}

/// `clnrm doctor` with its cache directory on a read-only path: a read-only bind mount
/// in a mount namespace of its own for root (who writes through any mode), a 0555
/// directory for anyone else (checked to refuse this user's writes first).
fn doctor_with_read_only_cache(project: &TestProject, cache: &Path) -> Doctor {
    std::fs::create_dir_all(cache).unwrap();
    let root = unsafe { libc::geteuid() } == 0;
    let mut cmd = common::clnrm_process();
    let binary = assert_cmd::cargo::cargo_bin("clnrm");
    if root {
        cmd = Command::new("unshare");
        cmd.arg("--mount")
            .arg("sh")
            .arg("-c")
            .arg(r#"mount --bind "$CLNRM_CACHE_DIR" "$CLNRM_CACHE_DIR" && mount -o remount,bind,ro "$CLNRM_CACHE_DIR" && exec "$0" "$@""#)
            .arg(&binary)
            .env("NO_COLOR", "1");
    } else {
        std::fs::set_permissions(cache, std::fs::Permissions::from_mode(0o555)).unwrap();
        assert!(
            std::fs::write(cache.join("probe"), b"x").is_err(),
            "a 0555 directory must refuse this user's writes"
        );
    }
    cmd.args(["doctor", "--format", "json"])
        .current_dir(project.root())
        .env("CLNRM_CACHE_DIR", cache)
        .env_remove("CLNRM_REMOTE_CACHE");
    Doctor::from(spawn(cmd))
}

#[test]
fn a_cache_directory_on_a_read_only_path_is_broken_with_where_to_put_it() {
    let project = TestProject::new();
    let cache: PathBuf = project.path("ro-cache");
    let doctor = doctor_with_read_only_cache(&project, &cache);
    let cause = if unsafe { libc::geteuid() } == 0 {
        "Read-only file system"
    } else {
        "Permission denied"
    };
    doctor.expect_broken_by("cache", cause, "CLNRM_CACHE_DIR");
    assert!(
        doctor
            .detail("cache")
            .starts_with(&format!("{} is not writable", cache.display())),
        "{}",
        doctor.stdout
    );
    assert!(!cache.join("lock").exists(), "doctor wrote nothing there");
    if doctor.status("engine") == "ok" {
        assert_eq!(doctor.failing(), ["cache"], "{}", doctor.stdout);
    }
}

/// A project with one valid test, for commands that need one.
fn project_with_a_test() -> TestProject {
    let project = TestProject::new();
    project.write(
        "tests/hello.clnrm.toml",
        &remote_servers::passing_test("hello", "hi"),
    );
    project
}

#[test]
fn the_cache_line_counts_entries_and_names_who_holds_the_lock() {
    let project = project_with_a_test();
    project.clnrm(&["validate"]).expect_code(0);
    // The engine is not what this test is about: nothing to wait for there.
    let no_engine = [("DOCKER_HOST", "unix:///nonexistent/docker.sock")];
    let doctor = doctor(&project, &no_engine);
    assert_eq!(doctor.status("cache"), "ok", "{}", doctor.stdout);
    let detail = doctor.detail("cache");
    let entries: u64 = detail
        .split(", ")
        .find_map(|part| part.strip_suffix(" entries"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no entry count in {detail}"));
    let stats: Value = serde_json::from_str(&project.clnrm(&["cache", "stats", "--json"]).stdout())
        .expect("cache stats JSON");
    let stored: u64 = stats["stages"]
        .as_object()
        .unwrap()
        .values()
        .map(|s| s["entries"].as_u64().unwrap())
        .sum();
    assert!(stored >= 1, "validate stored what it parsed: {stats}");
    assert_eq!(entries, stored, "{detail}");
    assert!(detail.ends_with("lock free, writable"), "{detail}");

    // Another process (this test) holds the cache: a warning naming it, not a failure.
    let lock = std::fs::File::open(project.path(".clnrm/cache/lock")).unwrap();
    use std::os::fd::AsRawFd;
    assert_eq!(unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) }, 0);
    let busy = self::doctor(&project, &no_engine);
    assert_eq!(busy.status("cache"), "warn", "{}", busy.stdout);
    let holder = format!("held by pid {} (", std::process::id());
    assert!(busy.detail("cache").contains(&holder), "{}", busy.stdout);
    drop(lock);
}

#[test]
fn every_command_that_cannot_reach_the_engine_names_it_and_suggests_doctor() {
    let project = project_with_a_test();
    let podman = "unix:///nonexistent/podman/podman.sock";
    let run = project.clnrm_with(&["run"], &[("DOCKER_HOST", podman)]);
    assert_ne!(run.code(), 0, "{}", run.all());
    run.expect_contains(&format!("cannot reach the Podman engine at {podman}"))
        .expect_contains("`clnrm doctor` says what is wrong");

    let tcp = format!("tcp://127.0.0.1:{}", free_port());
    let run = project.clnrm_with(&["run"], &[("DOCKER_HOST", &tcp)]);
    run.expect_contains(&format!("cannot reach the engine at {tcp}"))
        .expect_contains("`clnrm doctor`");
}
