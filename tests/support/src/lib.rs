//! Test helpers shared by the stage crates' tests and the end-to-end tests of the
//! `clnrm` binary: notices that `cargo test` shows, the rule for when container tests
//! may be skipped, where the compatibility corpus is, and a switchable stand-in for the
//! Docker engine's socket. Not part of clnrm itself.

use std::io::Write;
use std::net::Shutdown;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Writes a line to the process's real stderr. The test harness captures `eprintln!`
/// (and shows it only for failing tests); a direct write to the stderr handle is not
/// captured, so a skip is visible in every `cargo test` run.
pub fn notice(message: &str) {
    let mut stderr = std::io::stderr().lock();
    let _ = writeln!(stderr, "NOTICE: {message}");
}

/// Whether container tests must run: `CI` set to any non-empty value other than
/// `false` (GitHub, GitLab and most CI systems set `CI=true`; some set `CI=1`).
pub fn containers_required() -> bool {
    ci_requires(std::env::var("CI").ok().as_deref())
}

fn ci_requires(value: Option<&str>) -> bool {
    match value.map(str::trim) {
        None | Some("") => false,
        Some(v) => !v.eq_ignore_ascii_case("false"),
    }
}

/// A container test that cannot run: a visible notice outside CI, a failure in CI.
/// Returns so the caller can `return` from the test.
pub fn skip_container_test(test: &str, why: &str) {
    if containers_required() {
        panic!("container test `{test}` cannot run under CI: {why}");
    }
    notice(&format!("skipping container test `{test}`: {why}"));
}

/// The compatibility corpus (the original clnrm's test files), from `$CLNRM_CORPUS`.
/// `None`, with a visible notice naming the test, when it is unset: a clone of the
/// repository alone has no corpus. Set but not a directory is a setup error.
pub fn corpus_dir(test: &str) -> Option<PathBuf> {
    match std::env::var_os("CLNRM_CORPUS") {
        Some(dir) if !dir.is_empty() => {
            let dir = PathBuf::from(dir);
            assert!(
                dir.is_dir(),
                "CLNRM_CORPUS={} is not a directory",
                dir.display()
            );
            Some(dir)
        }
        _ => {
            notice(&format!(
                "skipping `{test}`: CLNRM_CORPUS is not set (point it at the clnrm corpus to check compatibility)"
            ));
            None
        }
    }
}

/// A stand-in for the Docker engine's socket at `path`, forwarding to the real one
/// ([`engine_socket`]),
/// that can be switched off (closing every open connection) and on again: what clnrm
/// sees when the engine goes away mid-run or restarts. Point clnrm at it with
/// `DOCKER_HOST=unix://PATH`.
pub struct EngineProxy {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Where the real engine listens.
pub const ENGINE_SOCKET: &str = "/var/run/docker.sock";

/// The socket of the engine the tests use: `DOCKER_HOST`'s when it names a unix socket
/// (CI's Podman leg points it at Podman's), else [`ENGINE_SOCKET`]. The proxy forwards
/// there, so a test that reaches the engine both through the proxy and directly (the
/// `docker` CLI) sees one engine.
pub fn engine_socket() -> PathBuf {
    std::env::var("DOCKER_HOST")
        .ok()
        .and_then(|host| host.strip_prefix("unix://").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(ENGINE_SOCKET))
}

impl EngineProxy {
    /// Listens at `path` (replacing a stale socket file) until [`EngineProxy::stop`].
    pub fn start(path: &Path) -> EngineProxy {
        let _ = std::fs::remove_file(path);
        let listener = UnixListener::bind(path).expect("bind proxy socket");
        listener
            .set_nonblocking(true)
            .expect("non-blocking proxy socket");
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let upstream_socket = engine_socket();
        let thread = std::thread::spawn(move || {
            let mut open: Vec<UnixStream> = Vec::new();
            while !stopping.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let _ = client.set_nonblocking(false);
                        let Ok(upstream) = UnixStream::connect(&upstream_socket) else {
                            continue;
                        };
                        let (Ok(c1), Ok(c2), Ok(u1), Ok(u2)) = (
                            client.try_clone(),
                            client.try_clone(),
                            upstream.try_clone(),
                            upstream.try_clone(),
                        ) else {
                            continue;
                        };
                        for (mut from, mut to) in [(c1, u1), (u2, c2)] {
                            std::thread::spawn(move || {
                                let _ = std::io::copy(&mut from, &mut to);
                                let _ = to.shutdown(Shutdown::Both);
                            });
                        }
                        open.push(client);
                        open.push(upstream);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
            // Switched off: connections in flight break as they would if the engine died.
            for stream in open {
                let _ = stream.shutdown(Shutdown::Both);
            }
        });
        EngineProxy {
            path: path.to_path_buf(),
            stop,
            thread: Some(thread),
        }
    }

    /// The `DOCKER_HOST` value that reaches the engine through this proxy.
    pub fn docker_host(&self) -> String {
        format!("unix://{}", self.path.display())
    }

    /// Switches the engine off: open connections close and new ones are refused.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

impl Drop for EngineProxy {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Now, as `docker events --since` and `--until` take it: whole seconds since the epoch,
/// after waiting for the next second to begin (at most a second). Podman 4.3's events
/// endpoint answers a time with a fraction (`1765080225.123456789`) with no events at
/// all, so the fraction is waited out instead of written.
pub fn docker_now() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    let next_second = now.as_secs() + 1;
    std::thread::sleep(std::time::Duration::from_secs(next_second) - now);
    next_second.to_string()
}

/// One line per container the engine created since `since` ([`docker_now`]) and until
/// now: `format` (a `docker events --format` template) applied to its create event.
/// `filters` narrow the events further (`label=clnrm.managed=true`).
pub fn containers_created_since(since: &str, filters: &[&str], format: &str) -> Vec<String> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    // Asked until 2 s ahead: Podman 4.3 (file event logger) streams the events it reads back
    // only until `until` passes, and answers an `until` already past with none at all. The
    // engine keeps the query open until then (about 2 s); what it sends from after `now`
    // (another test's containers) is dropped by its time.
    let until = (now.as_secs() + 2).to_string();
    let format = format!("{{{{.TimeNano}}}} {format}");
    let mut args = vec![
        "events",
        "--since",
        since,
        "--until",
        &until,
        "--filter",
        "type=container",
        "--filter",
        "event=create",
    ];
    for filter in filters {
        args.extend(["--filter", filter]);
    }
    args.extend(["--format", &format]);
    let out = std::process::Command::new("docker")
        .args(&args)
        .output()
        .expect("docker events");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| {
            let (time, rest) = line.split_once(' ')?;
            let time: u128 = time.parse().ok()?;
            (time <= now.as_nanos()).then(|| rest.to_string())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::{ci_requires, docker_now};

    #[test]
    fn engine_event_times_are_whole_seconds_already_begun() {
        let now = docker_now();
        let seconds: u64 = now.parse().expect("whole seconds, no fraction for Podman");
        let after = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap();
        // Everything after the call happens at or after the second it names.
        assert!(after.as_secs() >= seconds, "{now} is in the future");
    }

    #[test]
    fn ci_requires_containers_for_any_value_but_false() {
        assert!(!ci_requires(None));
        assert!(!ci_requires(Some("")));
        assert!(!ci_requires(Some("false")));
        assert!(!ci_requires(Some("FALSE")));
        assert!(ci_requires(Some("true")));
        assert!(ci_requires(Some("1")));
        assert!(ci_requires(Some("yes")));
    }
}
