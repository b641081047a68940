//! A small harness so each end-to-end test reads as a story: make a project in a
//! temp dir, run the `clnrm` binary in it, look at what a user would see.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Output;

use assert_cmd::Command;

pub struct TestProject {
    dir: tempfile::TempDir,
    cache: PathBuf,
}

impl TestProject {
    /// An empty project folder with its own cache directory.
    pub fn new() -> TestProject {
        let dir = tempfile::tempdir().expect("temp dir");
        let cache = dir.path().join(".clnrm/cache");
        TestProject { dir, cache }
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn write(&self, rel: &str, text: &str) -> &Self {
        self.write_bytes(rel, text.as_bytes())
    }

    pub fn write_bytes(&self, rel: &str, bytes: &[u8]) -> &Self {
        let path = self.path(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
        self
    }

    /// `clnrm ARGS` run in the project folder, with the project's cache and a clean env.
    pub fn clnrm(&self, args: &[&str]) -> Run {
        self.clnrm_with(args, &[])
    }

    pub fn clnrm_with(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut cmd = clnrm_command();
        cmd.current_dir(self.root()).args(args);
        cmd.env("CLNRM_CACHE_DIR", &self.cache);
        for (key, value) in env {
            cmd.env(key, value);
        }
        Run(cmd.output().expect("run clnrm"))
    }
}

/// The binary under test, with an environment that does not leak the developer's settings.
pub fn clnrm_command() -> Command {
    Command::from_std(clnrm_process())
}

/// [`clnrm_command`] as a `std::process::Command`, for tests that spawn and signal it.
pub fn clnrm_process() -> std::process::Command {
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("clnrm"));
    for var in [
        "CLNRM_CACHE_DIR",
        "CLNRM_CACHE_LOCK_TIMEOUT",
        "SERVICE_NAME",
        "ENV",
        "OTEL_ENDPOINT",
        "OTEL_TRACES_EXPORTER",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "CLNRM_IMAGE",
        "FREEZE_CLOCK",
        "OTEL_TOKEN",
        "RUST_LOG",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("NO_COLOR", "1");
    cmd
}

/// What a run printed and how it exited.
pub struct Run(pub Output);

impl Run {
    pub fn code(&self) -> i32 {
        self.0.status.code().unwrap_or(-1)
    }
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.0.stdout).into_owned()
    }
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.0.stderr).into_owned()
    }
    /// stdout and stderr together, for messages that may go to either.
    pub fn all(&self) -> String {
        format!("{}{}", self.stdout(), self.stderr())
    }
    #[track_caller]
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code(),
            code,
            "exit code\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout(),
            self.stderr()
        );
        self
    }
    #[track_caller]
    pub fn expect_contains(&self, needle: &str) -> &Self {
        assert!(
            self.all().contains(needle),
            "expected output to contain {needle:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout(),
            self.stderr()
        );
        self
    }
}

/// The compatibility corpus from `$CLNRM_CORPUS`, or `None` with a visible notice naming
/// `test` when it is unset (a clone of the repository alone has no corpus).
pub fn corpus_dir(test: &str) -> Option<PathBuf> {
    clnrm_test_support::corpus_dir(test)
}

/// The repository's own folder.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The fixture image every container test uses.
pub const IMAGE: &str = "clnrm-fixture/busybox:latest";

/// Whether containers can run here: the engine answers and the fixture image exists
/// (built on demand by fixtures/images/build.sh). Where they cannot, the test is skipped
/// with a notice `cargo test` shows, except under CI (any `CI` but `false`), where that
/// is a failure.
#[track_caller]
pub fn docker_ready() -> bool {
    let engine = std::process::Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .output()
        .is_ok_and(|out| out.status.success());
    if !engine {
        skip_here("no Docker engine answers");
        return false;
    }
    let image = image_exists(IMAGE)
        || std::process::Command::new("bash")
            .arg(repo().join("fixtures/images/build.sh"))
            .status()
            .is_ok_and(|status| status.success());
    if !image {
        skip_here(&format!(
            "the fixture image {IMAGE} is missing and fixtures/images/build.sh failed"
        ));
    }
    image
}

/// The real-service fixture image: PostgreSQL 15 and Redis from Debian's packages
/// (fixtures/images/build-services.sh).
pub const SERVICES_IMAGE: &str = "clnrm-fixture/services:latest";

/// The fixture PostgreSQL as service `db`, ready once `pg_isready` says so.
pub fn postgres_db_service() -> String {
    format!(
        r#"[service.db]
image = "{SERVICES_IMAGE}"
args = ["start-postgres"]
health_check = {{ cmd = ["pg_isready", "--quiet"], interval = "100ms", timeout = "5s", retries = 300 }}
"#
    )
}

/// Whether the engine answers and [`SERVICES_IMAGE`] is here. Building it takes a
/// minute or more, so a test does not build it: outside CI a missing image is a
/// visible skip of `test`, under CI a failure that says how to build it.
pub fn services_image_ready(test: &str) -> bool {
    if !docker_ready() {
        return false;
    }
    let present = image_exists(SERVICES_IMAGE);
    if !present {
        clnrm_test_support::skip_container_test(
            test,
            &format!("the image {SERVICES_IMAGE} is missing; build it with `sh fixtures/images/build-services.sh`"),
        );
    }
    present
}

/// [`clnrm_test_support::skip_container_test`] naming the test that called
/// [`docker_ready`]: the harness runs each test on a thread named after it; without
/// one (`--test-threads=1` on the main thread), by the caller's file and line.
#[track_caller]
fn skip_here(why: &str) {
    let caller = std::panic::Location::caller();
    let test = match std::thread::current().name() {
        Some(name) if name != "main" => name.to_string(),
        _ => format!("{}:{}", caller.file(), caller.line()),
    };
    clnrm_test_support::skip_container_test(&test, why);
}

fn image_exists(image: &str) -> bool {
    std::process::Command::new("docker")
        .args(["image", "inspect", image])
        .output()
        .is_ok_and(|out| out.status.success())
}

/// IDs of managed containers (running or not) carrying `label` (e.g. `clnrm.managed=true`).
pub fn managed_containers(label: &str) -> Vec<String> {
    let out = std::process::Command::new("docker")
        .args(["ps", "-aq", "--filter", &format!("label={label}")])
        .output()
        .expect("docker ps");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

/// JSON events of a `--format json` run.
pub fn json_events(stdout: &str) -> Vec<serde_json::Value> {
    stdout
        .lines()
        .filter(|line| line.starts_with('{'))
        .map(|line| serde_json::from_str(line).expect("each line is one JSON object"))
        .collect()
}

/// Containers and networks (IDs) that clnrm labelled with one of `tests`' names and that
/// are still there: what a run left behind. Fault tests give their tests names no other
/// test uses, so tests running in parallel do not see each other's containers.
pub fn leftovers(tests: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    for test in tests {
        for kind in [&["ps", "-aq"][..], &["network", "ls", "-q"][..]] {
            let out = std::process::Command::new("docker")
                .args(kind)
                .args(["--filter", &format!("label=clnrm.test={test}")])
                .output()
                .expect("docker lists its objects");
            found.extend(
                String::from_utf8_lossy(&out.stdout)
                    .split_whitespace()
                    .map(|id| format!("{} {id} of {test}", kind[0])),
            );
        }
    }
    found
}

/// `test_finished` of a `--format json` run, by test name: (status, served from cache).
pub fn outcomes(stdout: &str) -> std::collections::BTreeMap<String, (String, bool)> {
    json_events(stdout)
        .into_iter()
        .filter(|e| e["event"] == "test_finished")
        .map(|e| {
            (
                e["name"].as_str().unwrap_or_default().to_string(),
                (
                    e["status"].as_str().unwrap_or_default().to_string(),
                    e["cached"] == true,
                ),
            )
        })
        .collect()
}

/// A one-step test on the fixture image: `sh -c SCRIPT` in service `box`, which must exit 0.
pub fn shell_test(name: &str, script: &str) -> String {
    format!(
        "[meta]\nname = \"{name}\"\nversion = \"1.0\"\n\n[service.box]\nimage = \"{IMAGE}\"\n\n\
         [[steps]]\nname = \"check\"\nservice = \"box\"\ncommand = [\"sh\", \"-c\", {script:?}]\n"
    )
}

/// A seeded xorshift generator: fault tests print the seed, so a failure can be replayed
/// with `CLNRM_FAULT_SEED`.
pub struct Rng(u64);

impl Rng {
    /// From `CLNRM_FAULT_SEED`, else the clock; prints which, visibly.
    pub fn from_env(fault: &str) -> Rng {
        let seed = std::env::var("CLNRM_FAULT_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(1)
            });
        clnrm_test_support::notice(&format!("{fault}: seed {seed} (CLNRM_FAULT_SEED)"));
        Rng(seed | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Prints a fault's figures where `cargo test` shows them (the README's table).
pub fn figures(fault: &str, trials: usize, correct: usize, detail: &str) {
    clnrm_test_support::notice(&format!(
        "fault `{fault}`: {trials} trials, {correct} correct; {detail}"
    ));
}

#[allow(unused_imports)] // Not every test file that includes this module uses it.
pub use clnrm_test_support::docker_now;

/// The `clnrm.session` labels of the managed containers the engine created since
/// `since` ([`docker_now`]), one per container.
pub fn sessions_of_containers_created_since(since: &str) -> Vec<String> {
    clnrm_test_support::containers_created_since(
        since,
        &["label=clnrm.managed=true"],
        "{{index .Actor.Attributes \"clnrm.session\"}}",
    )
}

/// How many containers the clnrm process `pid` had the engine create since `since`.
/// Other clnrm processes on the same engine (other tests, other people) do not count:
/// a session's label starts with its process's pid.
pub fn containers_created_by(pid: u32, since: &str) -> usize {
    let ours = format!("{pid}-");
    sessions_of_containers_created_since(since)
        .iter()
        .filter(|session| session.starts_with(&ours))
        .count()
}

/// `clnrm dev --format json` in a project (default settings), each run's object read
/// back as it is printed; interrupted (SIGINT) when dropped.
pub struct DevRuns {
    pub child: std::process::Child,
    pub runs: std::sync::mpsc::Receiver<serde_json::Value>,
}

impl DevRuns {
    pub fn start(project: &TestProject) -> DevRuns {
        use std::io::{BufRead, BufReader};
        let mut child = clnrm_process()
            .current_dir(project.root())
            .env("CLNRM_CACHE_DIR", project.path(".clnrm/cache"))
            .args(["dev", "--format", "json"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .expect("start clnrm dev");
        let stdout = child.stdout.take().unwrap();
        let (tx, runs) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let Ok(run) = serde_json::from_str::<serde_json::Value>(&line) else {
                    continue;
                };
                if run["event"] == "dev_run" && tx.send(run).is_err() {
                    break;
                }
            }
        });
        DevRuns { child, runs }
    }

    /// The next run's object, within `within`.
    #[track_caller]
    pub fn run_within(&self, within: std::time::Duration) -> serde_json::Value {
        self.runs
            .recv_timeout(within)
            .unwrap_or_else(|_| panic!("clnrm dev reported a run within {within:?}"))
    }

    /// Sends `signal` and waits for the exit code.
    pub fn signal(&mut self, signal: i32) -> Option<i32> {
        unsafe { libc::kill(self.child.id() as i32, signal) };
        self.child.wait().ok().and_then(|s| s.code())
    }
}

impl Drop for DevRuns {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.signal(libc::SIGINT);
        }
    }
}
