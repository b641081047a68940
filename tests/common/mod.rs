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

/// The compatibility corpus, or `None` (with a notice) when it is absent outside CI.
pub fn corpus_dir() -> Option<PathBuf> {
    // `$CLNRM_CORPUS`, else `shared/clnrm-corpus` beside the checkout or one of its ancestors.
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = match std::env::var_os("CLNRM_CORPUS") {
        Some(dir) => PathBuf::from(dir),
        None => manifest
            .ancestors()
            .skip(1)
            .map(|a| a.join("shared/clnrm-corpus"))
            .find(|d| d.is_dir())
            .unwrap_or_else(|| manifest.join("../shared/clnrm-corpus")),
    };
    if dir.is_dir() {
        return Some(dir);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!(
            "the clnrm corpus is missing at {} (set CLNRM_CORPUS); CI must check it",
            dir.display()
        );
    }
    eprintln!(
        "NOTICE: skipped: the clnrm corpus is not at {} (set CLNRM_CORPUS)",
        dir.display()
    );
    None
}

/// The repository's own folder.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The fixture image every container test uses.
pub const IMAGE: &str = "clnrm-fixture/busybox:latest";

/// Whether containers can run here: the engine answers and the fixture image exists
/// (built on demand by fixtures/images/build.sh). Outside CI a missing engine skips the
/// test with a visible notice; under `CI=true` it fails.
pub fn docker_ready() -> bool {
    let engine = std::process::Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .output()
        .is_ok_and(|out| out.status.success());
    let image = engine
        && (image_exists(IMAGE)
            || std::process::Command::new("bash")
                .arg(repo().join("fixtures/images/build.sh"))
                .status()
                .is_ok_and(|status| status.success()));
    if image {
        return true;
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("CI=true but containers cannot run here (Docker engine or fixture image {IMAGE} missing)");
    }
    eprintln!(
        "NOTICE: skipped: no Docker engine or fixture image {IMAGE} (run fixtures/images/build.sh)"
    );
    false
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
