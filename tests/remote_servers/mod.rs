//! Cache servers for the remote cache tests: a real nginx with WebDAV `PUT` (what
//! teams run as a Bazel HTTP cache), started on a loopback port with its own prefix,
//! config and logs in a temp dir; and a tiny in-test server that misbehaves on
//! purpose (errors, slow answers, garbage). Not a test file: the remote_* tests
//! include it with `mod remote_servers;`.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

fn wait_for_port(port: u16, child: &mut Child, what: &str, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "{what} exited ({status}) before listening:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        assert!(
            Instant::now() < deadline,
            "{what} is not listening on {port}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// nginx serving `GET`/`PUT /ac/<key>` from a temp dir.
pub struct Nginx {
    dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
}

impl Nginx {
    /// Starts nginx, or returns `None` with a visible notice when it is not
    /// installed (`.ci/run` installs it; under CI its absence is a failure).
    pub fn start() -> Option<Nginx> {
        if Command::new("nginx").arg("-v").output().is_err() {
            clnrm_test_support::skip_container_test(
                "remote cache against nginx",
                "nginx is not installed (apt-get install nginx-light)",
            );
            return None;
        }
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir_all(dir.path().join("root")).unwrap();
        std::fs::create_dir_all(dir.path().join("body")).unwrap();
        let mut nginx = Nginx {
            dir,
            port: free_port(),
            child: None,
        };
        nginx.launch();
        Some(nginx)
    }

    fn launch(&mut self) {
        let d = self.dir.path().display();
        let port = self.port;
        let conf = format!(
            "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\n\
             error_log {d}/error.log;\nevents {{ worker_connections 256; }}\n\
             http {{\n  access_log {d}/access.log;\n  client_body_temp_path {d}/body;\n\
             \x20 server {{\n    listen 127.0.0.1:{port};\n    root {d}/root;\n\
             \x20   location / {{\n      dav_methods PUT;\n      create_full_put_path on;\n\
             \x20     client_max_body_size 64m;\n    }}\n  }}\n}}\n"
        );
        std::fs::write(self.dir.path().join("nginx.conf"), conf).unwrap();
        let mut child = Command::new("nginx")
            .arg("-p")
            .arg(self.dir.path())
            .arg("-c")
            .arg(self.dir.path().join("nginx.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nginx");
        wait_for_port(
            port,
            &mut child,
            "nginx",
            &self.dir.path().join("error.log"),
        );
        self.child = Some(child);
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/cache", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Every request line nginx logged (`GET /cache/ac/… HTTP/1.1`).
    pub fn requests(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.path().join("access.log"))
            .unwrap_or_default()
            .lines()
            .filter_map(|line| line.split('"').nth(1).map(str::to_string))
            .collect()
    }

    pub fn count(&self, method: &str) -> usize {
        self.requests()
            .iter()
            .filter(|r| r.starts_with(&format!("{method} ")))
            .count()
    }

    /// Keys (64 hex) that were asked for with `GET`, in order.
    pub fn keys_asked(&self) -> Vec<String> {
        self.requests()
            .iter()
            .filter(|r| r.starts_with("GET "))
            .filter_map(|r| {
                r.split('/')
                    .nth(3)
                    .map(|k| k.split(' ').next().unwrap_or(k).to_string())
            })
            .collect()
    }

    /// The file nginx stores the value of `key` in.
    pub fn value_path(&self, key: &str) -> PathBuf {
        self.dir.path().join("root/cache/ac").join(key)
    }

    /// The files of every stored value.
    pub fn stored_values(&self) -> Vec<PathBuf> {
        std::fs::read_dir(self.dir.path().join("root/cache/ac"))
            .map(|entries| entries.flatten().map(|e| e.path()).collect())
            .unwrap_or_default()
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        self.stop();
    }
}

/// How the misbehaving server answers every request.
#[derive(Clone, Copy, Debug)]
pub enum Fault {
    /// This status, with an HTML body.
    Status(u16),
    /// Waits this long before answering 404 (past any sensible timeout).
    Slow(Duration),
    /// 200 with bytes that are no cache value.
    Garbage,
}

/// A one-purpose HTTP server on a loopback port; stops when dropped.
pub struct FaultServer {
    port: u16,
    requests: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl FaultServer {
    pub fn start(fault: Fault) -> FaultServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (count, stopped) = (requests.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stopped.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let count = count.clone();
                        std::thread::spawn(move || answer(stream, fault, &count));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        FaultServer {
            port,
            requests,
            stop,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/cache", self.port)
    }

    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::Relaxed)
    }
}

impl Drop for FaultServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Reads requests off one keep-alive connection and answers each as `fault` says.
fn answer(stream: TcpStream, fault: Fault, count: &AtomicUsize) {
    let _ = stream.set_nonblocking(false);
    let mut reader = BufReader::new(stream.try_clone().expect("clone stream"));
    let mut writer = stream;
    loop {
        let mut length = 0usize;
        let mut first = String::new();
        if reader.read_line(&mut first).unwrap_or(0) == 0 {
            return;
        }
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let lower = line.to_ascii_lowercase();
            if let Some(value) = lower.strip_prefix("content-length:") {
                length = value.trim().parse().unwrap_or(0);
            }
            if line == "\r\n" || line == "\n" {
                break;
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        count.fetch_add(1, Ordering::Relaxed);
        let response = match fault {
            Fault::Status(code) => {
                let body = format!("<html>{code}</html>");
                format!(
                    "HTTP/1.1 {code} Fault\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                )
                .into_bytes()
            }
            Fault::Slow(delay) => {
                std::thread::sleep(delay);
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_vec()
            }
            Fault::Garbage => {
                let body = b"CLRC\x01\x00not an envelope at all, just bytes";
                let mut out = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len())
                    .into_bytes();
                out.extend_from_slice(body);
                out
            }
        };
        if writer.write_all(&response).is_err() {
            return;
        }
    }
}

/// A passing test named `name` that runs one step in the fixture image; `marker`
/// makes its content (and so its result key) its own.
pub fn passing_test(name: &str, marker: &str) -> String {
    format!(
        "[meta]\nname = \"{name}\"\nversion = \"1\"\n\n[service.box]\nimage = \"{}\"\n\n\
         [[steps]]\nname = \"say\"\nservice = \"box\"\ncommand = [\"echo\", \"{marker}\"]\n\
         expected_output_regex = \"{marker}\"\n",
        crate::common::IMAGE
    )
}

/// A test whose only step fails its exit code.
pub fn failing_test(name: &str) -> String {
    format!(
        "[meta]\nname = \"{name}\"\nversion = \"1\"\n\n[service.box]\nimage = \"{}\"\n\n\
         [[steps]]\nname = \"nope\"\nservice = \"box\"\ncommand = [\"false\"]\n",
        crate::common::IMAGE
    )
}

/// `warning:` lines about the remote cache in a run's stderr.
pub fn remote_warnings(stderr: &str) -> Vec<String> {
    stderr
        .lines()
        .filter(|l| l.contains("remote cache"))
        .map(str::to_string)
        .collect()
}

/// The local Docker engine seen through a loopback TCP port (socat), as a remote
/// engine is: `DOCKER_HOST=tcp://127.0.0.1:PORT`.
pub struct EngineOverTcp {
    port: u16,
    child: Child,
}

impl EngineOverTcp {
    /// Starts socat, or returns `None` with a visible notice when it is not
    /// installed (`.ci/run` installs it; under CI its absence is a failure).
    pub fn start() -> Option<EngineOverTcp> {
        if Command::new("socat").arg("-V").output().is_err() {
            clnrm_test_support::skip_container_test(
                "Docker engine over TCP",
                "socat is not installed (apt-get install socat)",
            );
            return None;
        }
        let port = free_port();
        let mut child = Command::new("socat")
            .arg(format!("TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork"))
            .arg("UNIX-CONNECT:/var/run/docker.sock")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start socat");
        wait_for_port(port, &mut child, "socat", Path::new("/dev/null"));
        Some(EngineOverTcp { port, child })
    }

    pub fn docker_host(&self) -> String {
        format!("tcp://127.0.0.1:{}", self.port)
    }
}

impl Drop for EngineOverTcp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
