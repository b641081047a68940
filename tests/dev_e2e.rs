//! `clnrm dev` driven for real: a project in a temp dir, a `clnrm dev --format json`
//! process watching it, edits made the way editors make them, and what each run did
//! read back from its JSON object.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::{docker_ready, TestProject, IMAGE};
use serde_json::Value;

// The default: wide enough that a burst of saves on a busy CI machine stays one batch.
const DEBOUNCE_MS: &str = "300";

struct Dev {
    child: Child,
    runs: mpsc::Receiver<Value>,
}

impl Dev {
    fn start(project: &TestProject, extra: &[&str]) -> Dev {
        Dev::start_with(project, extra, &[])
    }

    fn start_with(project: &TestProject, extra: &[&str], env: &[(&str, &str)]) -> Dev {
        let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("clnrm"))
            .current_dir(project.root())
            .env("CLNRM_CACHE_DIR", project.path(".clnrm/cache"))
            .env("NO_COLOR", "1")
            .envs(env.iter().copied())
            .args(["dev", "--format", "json", "--debounce-ms", DEBOUNCE_MS])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start clnrm dev");
        let stdout = child.stdout.take().unwrap();
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
        Dev { child, runs }
    }

    /// The next run's object (the first run, or one after a change).
    #[track_caller]
    fn next_run(&self) -> Value {
        self.runs
            .recv_timeout(Duration::from_secs(60))
            .expect("clnrm dev reported a run within 60 s")
    }

    /// No run within `wait`.
    #[track_caller]
    fn expect_quiet(&self, wait: Duration) {
        if let Ok(run) = self.runs.recv_timeout(wait) {
            panic!("expected no run, got {run}");
        }
    }

    fn signal(&mut self, signal: i32) {
        unsafe { libc::kill(self.child.id() as i32, signal) };
    }

    fn wait(&mut self) -> Option<i32> {
        self.child.wait().ok().and_then(|s| s.code())
    }
}

impl Drop for Dev {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.signal(libc::SIGINT);
            let _ = self.child.wait();
        }
    }
}

fn ran(run: &Value) -> Vec<String> {
    run["ran"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

fn status_of<'a>(run: &'a Value, test: &str) -> &'a Value {
    run["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["test"] == test)
        .map(|r| &r["status"])
        .unwrap_or(&Value::Null)
}

fn plain(name: &str, echo: &str) -> String {
    format!(
        "[meta]\nname = \"{name}\"\nversion = \"1\"\n\n[service.box]\nimage = \"{IMAGE}\"\n\n[[steps]]\nname = \"say\"\ncommand = [\"echo\", \"{echo}\"]\nexpected_output_regex = \"{echo}\"\n"
    )
}

fn templated(name: &str) -> String {
    format!(
        "{{% import \"lib/_say.tera\" as say %}}\n[meta]\nname = \"{name}\"\nversion = \"1\"\n\n[service.box]\nimage = \"{IMAGE}\"\n\n{{{{ say::step(text=\"{name}\") }}}}\n"
    )
}

const LIBRARY: &str = "{% macro step(text) -%}\n[[steps]]\nname = \"say\"\ncommand = [\"echo\", \"{{ text }}\"]\nexpected_output_regex = \"{{ text }}\"\n{%- endmacro step %}\n";

fn project() -> TestProject {
    let project = TestProject::new();
    project.write("cleanroom.toml", "");
    project.write("lib/_say.tera", LIBRARY);
    project.write("plain_a.clnrm.toml", &plain("plain_a", "a"));
    project.write("plain_b.clnrm.toml", &plain("plain_b", "b"));
    project.write("t1.clnrm.toml.tera", &templated("t1"));
    project.write("t2.clnrm.toml.tera", &templated("t2"));
    project
}

/// Pooled containers of this project (by its pool label).
fn pool_containers(project: &TestProject, extra_label: &str) -> Vec<String> {
    let key = clnrm::pool::project_key(project.root());
    let mut args = vec![
        "ps".to_string(),
        "-q".to_string(),
        "--filter".to_string(),
        format!("label=clnrm.pool={key}"),
    ];
    if !extra_label.is_empty() {
        args.extend(["--filter".to_string(), format!("label={extra_label}")]);
    }
    let out = std::process::Command::new("docker")
        .args(&args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

#[test]
fn edits_rerun_exactly_the_affected_tests() {
    if !docker_ready() {
        return;
    }
    let project = project();
    let dev = Dev::start(&project, &[]);
    let first = dev.next_run();
    assert_eq!(
        ran(&first).len(),
        4,
        "the first run runs everything: {first}"
    );

    // An idle clnrm dev does not hold the cache: another clnrm uses it at once.
    let stats = project.clnrm_with(
        &["cache", "stats", "--json"],
        &[("CLNRM_CACHE_LOCK_TIMEOUT", "0")],
    );
    stats.expect_code(0);
    assert!(!stats.stderr().contains("in use"), "{}", stats.stderr());
    let stats: Value = serde_json::from_str(&stats.stdout()).unwrap();
    assert_eq!(stats["stages"]["parse"]["entries"], 4, "{stats}");

    // A test file: that test alone.
    project.write("plain_a.clnrm.toml", &plain("plain_a", "a2"));
    let run = dev.next_run();
    assert_eq!(ran(&run), ["plain_a.clnrm.toml"]);
    assert_eq!(status_of(&run, "plain_a.clnrm.toml"), "pass");
    assert_eq!(run["changed"], serde_json::json!(["plain_a.clnrm.toml"]));

    // The macro library: exactly the templates that import it.
    project.write(
        "lib/_say.tera",
        &LIBRARY.replace("name = \"say\"", "name = \"said\""),
    );
    let run = dev.next_run();
    assert_eq!(ran(&run), ["t1.clnrm.toml.tera", "t2.clnrm.toml.tera"]);
    assert_eq!(run["cache"]["render"]["misses"], 2);

    // An edit that leaves the rendered test as it was runs nothing.
    project.write(
        "lib/_say.tera",
        &format!(
            "{{# a comment #}}\n{}",
            LIBRARY.replace("name = \"say\"", "name = \"said\"")
        ),
    );
    let run = dev.next_run();
    assert!(ran(&run).is_empty(), "nothing to run: {run}");

    // Timing panel fields are all there.
    for field in [
        "detect",
        "debounce",
        "render",
        "parse",
        "plan",
        "containers",
        "execute",
        "report",
        "total",
    ] {
        assert!(
            run["timings_ms"][field].is_number(),
            "timings_ms.{field} in {run}"
        );
    }
}

#[test]
fn editor_saves_and_bursts_run_once() {
    if !docker_ready() {
        return;
    }
    let project = project();
    let dev = Dev::start(&project, &[]);
    dev.next_run();

    // vim-ish: a swap file, a temp file renamed over the test.
    project.write(".plain_b.clnrm.toml.swp", "swap");
    project.write("plain_b.clnrm.toml.tmp", &plain("plain_b", "b2"));
    std::fs::rename(
        project.path("plain_b.clnrm.toml.tmp"),
        project.path("plain_b.clnrm.toml"),
    )
    .unwrap();
    let run = dev.next_run();
    assert_eq!(ran(&run), ["plain_b.clnrm.toml"]);
    assert_eq!(run["changed"], serde_json::json!(["plain_b.clnrm.toml"]));
    dev.expect_quiet(Duration::from_millis(1000));

    // Ten saves inside the debounce window: one run.
    for i in 0..10 {
        project.write(
            "plain_a.clnrm.toml",
            &plain("plain_a", &format!("burst{i}")),
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let run = dev.next_run();
    assert_eq!(ran(&run), ["plain_a.clnrm.toml"]);
    dev.expect_quiet(Duration::from_millis(1000));
}

#[test]
fn a_service_container_is_reused_until_its_spec_changes() {
    if !docker_ready() {
        return;
    }
    let project = TestProject::new();
    project.write("cleanroom.toml", "");
    let two_services = |echo: &str, env: &str| {
        format!(
            "[meta]\nname = \"reuse\"\nversion = \"1\"\n\n[service.box]\nimage = \"{IMAGE}\"\nenv = {{ MODE = \"{env}\" }}\n\n[service.side]\nimage = \"{IMAGE}\"\n\n[[steps]]\nname = \"say\"\nservice = \"box\"\ncommand = [\"echo\", \"{echo}\"]\n\n[[steps]]\nname = \"side\"\nservice = \"side\"\ncommand = [\"true\"]\n"
        )
    };
    project.write("reuse.clnrm.toml", &two_services("0", "one"));
    let dev = Dev::start(&project, &[]);
    dev.next_run();
    let box_id = pool_containers(&project, "clnrm.service=box");
    let side_id = pool_containers(&project, "clnrm.service=side");
    assert_eq!((box_id.len(), side_id.len()), (1, 1));
    for i in 1..=3 {
        project.write("reuse.clnrm.toml", &two_services(&i.to_string(), "one"));
        let run = dev.next_run();
        assert_eq!(ran(&run), ["reuse.clnrm.toml"]);
        assert_eq!(run["containers"]["reused"], 2, "{run}");
        assert_eq!(run["containers"]["started"], 0);
        assert_eq!(pool_containers(&project, "clnrm.service=box"), box_id);
    }
    // The spec of `box` changes: its container alone is replaced.
    project.write("reuse.clnrm.toml", &two_services("4", "two"));
    let run = dev.next_run();
    assert_eq!(run["containers"]["started"], 1, "{run}");
    assert_eq!(run["containers"]["reused"], 1);
    let new_box = pool_containers(&project, "clnrm.service=box");
    assert_eq!(new_box.len(), 1);
    assert_ne!(new_box, box_id);
    assert_eq!(pool_containers(&project, "clnrm.service=side"), side_id);
}

#[test]
fn sigint_removes_the_pool_and_sigkill_leaves_it_for_the_next_session() {
    if !docker_ready() {
        return;
    }
    let project = project();
    // SIGKILL: containers stay up, and the next clnrm dev reuses them.
    let mut dev = Dev::start(&project, &[]);
    dev.next_run();
    let before = {
        let mut ids = pool_containers(&project, "");
        ids.sort();
        ids
    };
    assert_eq!(before.len(), 4);
    dev.signal(libc::SIGKILL);
    dev.wait();
    let mut dev = Dev::start(&project, &[]);
    let first = dev.next_run();
    assert_eq!(
        first["containers"]["started"], 0,
        "nothing new starts: {first}"
    );
    project.write("plain_a.clnrm.toml", &plain("plain_a", "again"));
    let run = dev.next_run();
    assert_eq!(run["containers"]["reused"], 1, "{run}");
    assert_eq!(run["containers"]["started"], 0);
    let mut after = pool_containers(&project, "");
    after.sort();
    assert_eq!(after, before, "the same containers, not duplicates");

    // SIGINT: everything of the pool is removed, and dev exits 0.
    dev.signal(libc::SIGINT);
    assert_eq!(dev.wait(), Some(0));
    let key = clnrm::pool::project_key(project.root());
    let left = common::managed_containers(&format!("clnrm.pool={key}"));
    assert!(left.is_empty(), "left after SIGINT: {left:?}");
}

#[test]
fn bad_saves_never_stop_the_watcher() {
    if !docker_ready() {
        return;
    }
    let project = project();
    let dev = Dev::start(&project, &[]);
    dev.next_run();

    // A TOML error: shown with line and column; the watcher goes on.
    project.write(
        "plain_a.clnrm.toml",
        "[meta]\nname = \"plain_a\"\nversion = = \"1\"\n",
    );
    let run = dev.next_run();
    assert_eq!(status_of(&run, "plain_a.clnrm.toml"), "error");
    let message = run["results"][0]["message"].as_str().unwrap();
    assert!(message.contains("plain_a.clnrm.toml:3:"), "{message}");

    // The next good save runs it.
    project.write("plain_a.clnrm.toml", &plain("plain_a", "fixed"));
    let run = dev.next_run();
    assert_eq!(status_of(&run, "plain_a.clnrm.toml"), "pass", "{run}");

    // A deleted test drops out.
    std::fs::remove_file(project.path("plain_b.clnrm.toml")).unwrap();
    let run = dev.next_run();
    assert_eq!(run["removed"], serde_json::json!(["plain_b.clnrm.toml"]));
    assert!(ran(&run).is_empty());

    // A new test runs.
    project.write("new.clnrm.toml", &plain("new", "hello"));
    let run = dev.next_run();
    assert_eq!(ran(&run), ["new.clnrm.toml"]);

    // cleanroom.toml: everything that is left.
    project.write("cleanroom.toml", "[vars]\nextra = \"1\"\n");
    let run = dev.next_run();
    assert_eq!(
        ran(&run),
        [
            "new.clnrm.toml",
            "plain_a.clnrm.toml",
            "t1.clnrm.toml.tera",
            "t2.clnrm.toml.tera"
        ]
    );
}

/// A stand-in for the Docker engine's socket that can be switched off and on: what
/// clnrm sees when the engine restarts.
struct EngineProxy {
    path: std::path::PathBuf,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl EngineProxy {
    fn start(path: &std::path::Path) -> EngineProxy {
        use std::os::unix::net::{UnixListener, UnixStream};
        use std::sync::atomic::Ordering;
        let _ = std::fs::remove_file(path);
        let listener = UnixListener::bind(path).expect("bind proxy socket");
        listener.set_nonblocking(true).unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut open: Vec<UnixStream> = Vec::new();
            while !stopping.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((client, _)) => {
                        client.set_nonblocking(false).unwrap();
                        let Ok(upstream) = UnixStream::connect("/var/run/docker.sock") else {
                            continue;
                        };
                        for (mut from, mut to) in [
                            (client.try_clone().unwrap(), upstream.try_clone().unwrap()),
                            (upstream.try_clone().unwrap(), client.try_clone().unwrap()),
                        ] {
                            std::thread::spawn(move || {
                                let _ = std::io::copy(&mut from, &mut to);
                                let _ = to.shutdown(std::net::Shutdown::Both);
                            });
                        }
                        open.push(client);
                        open.push(upstream);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
            for stream in open {
                let _ = stream.shutdown(std::net::Shutdown::Both);
            }
        });
        EngineProxy {
            path: path.to_path_buf(),
            stop,
            thread: Some(thread),
        }
    }

    fn stop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
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

#[test]
fn an_engine_restart_is_a_clear_error_and_the_next_save_works() {
    if !docker_ready() || !std::path::Path::new("/var/run/docker.sock").exists() {
        return;
    }
    let project = project();
    let socket = project.path("engine.sock");
    let mut proxy = EngineProxy::start(&socket);
    let host = format!("unix://{}", socket.display());
    let dev = Dev::start_with(&project, &["plain_a.clnrm.toml"], &[("DOCKER_HOST", &host)]);
    let first = dev.next_run();
    assert_eq!(status_of(&first, "plain_a.clnrm.toml"), "pass", "{first}");

    // The engine goes away, and its containers with it.
    proxy.stop();
    for id in pool_containers(&project, "") {
        let _ = std::process::Command::new("docker")
            .args(["kill", &id])
            .output();
    }
    project.write("plain_a.clnrm.toml", &plain("plain_a", "while down"));
    let run = dev.next_run();
    assert_eq!(status_of(&run, "plain_a.clnrm.toml"), "error", "{run}");
    let message = run["results"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("cannot reach the Docker engine"),
        "{message}"
    );
    assert!(message.contains(&host), "names where it looked: {message}");

    // It is back: the next save runs, on a fresh container.
    let _proxy = EngineProxy::start(&socket);
    project.write("plain_a.clnrm.toml", &plain("plain_a", "back up"));
    let run = dev.next_run();
    assert_eq!(status_of(&run, "plain_a.clnrm.toml"), "pass", "{run}");
    assert_eq!(run["containers"]["started"], 1, "{run}");
    // dev removes its pool on the way out, through the proxy: stop it while that is up.
    drop(dev);
}

#[test]
fn the_human_display_shows_results_and_the_timing_panel() {
    if !docker_ready() {
        return;
    }
    let project = TestProject::new();
    project.write("cleanroom.toml", "");
    project.write("a.clnrm.toml", &plain("a", "one"));
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("clnrm"))
        .current_dir(project.root())
        .env("CLNRM_CACHE_DIR", project.path(".clnrm/cache"))
        .env("NO_COLOR", "1")
        .args(["dev", "--debounce-ms", DEBOUNCE_MS])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, lines) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let until = |needle: &str| -> Vec<String> {
        let mut seen = Vec::new();
        loop {
            let line = lines
                .recv_timeout(Duration::from_secs(60))
                .unwrap_or_else(|_| panic!("no line with {needle:?} after {seen:?}"));
            let done = line.contains(needle);
            seen.push(line);
            if done {
                return seen;
            }
        }
    };
    until("watching 1 tests for changes");
    project.write("a.clnrm.toml", &plain("a", "two"));
    let second = until("container reuse").join("\n");
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let _ = child.wait();
    assert!(
        second.contains("── run 2: changed a.clnrm.toml"),
        "{second}"
    );
    assert!(second.contains("PASS a.clnrm.toml (a)"), "{second}");
    assert!(
        second.contains("1 passed, 0 failed, 0 errors, 0 cached"),
        "{second}"
    );
    for part in [
        "detect",
        "debounce",
        "render",
        "parse",
        "plan",
        "containers",
        "execute",
        "report",
        "total",
    ] {
        assert!(second.contains(part), "{part} in {second}");
    }
    assert!(second.contains("(1 reused, 0 started)"), "{second}");
    assert!(second.contains("container reuse 100 %"), "{second}");
}

#[test]
fn dev_on_a_folder_still_sees_the_libraries_and_volumes_its_tests_use() {
    if !docker_ready() {
        return;
    }
    // `clnrm dev tests`: the library lives in <root>/templates/, the mounted data in
    // <root>/data/, both outside the folder given.
    let project = TestProject::new();
    project.write("cleanroom.toml", "");
    project.write("templates/_say.tera", LIBRARY);
    project.write("data/greeting.txt", "hello\n");
    project.write(
        "tests/t.clnrm.toml.tera",
        &templated("t").replace("lib/_say.tera", "_say.tera"),
    );
    project.write(
        "tests/v.clnrm.toml",
        &format!(
            "[meta]\nname = \"v\"\nversion = \"1\"\n\n[service.box]\nimage = \"{IMAGE}\"\nvolumes = [{{ host_path = \"../data\", container_path = \"/data\", read_only = true }}]\n\n[[steps]]\nname = \"read\"\ncommand = [\"cat\", \"/data/greeting.txt\"]\nexpected_output_regex = \"hello\"\n"
        ),
    );
    let dev = Dev::start(&project, &["tests"]);
    let first = dev.next_run();
    assert_eq!(
        ran(&first),
        ["tests/t.clnrm.toml.tera", "tests/v.clnrm.toml"],
        "{first}"
    );
    assert_eq!(status_of(&first, "tests/v.clnrm.toml"), "pass", "{first}");

    project.write(
        "templates/_say.tera",
        &LIBRARY.replace("name = \"say\"", "name = \"said\""),
    );
    let run = dev.next_run();
    assert_eq!(ran(&run), ["tests/t.clnrm.toml.tera"], "{run}");
    assert_eq!(run["changed"], serde_json::json!(["templates/_say.tera"]));

    project.write("data/greeting.txt", "hello again\n");
    let run = dev.next_run();
    assert_eq!(ran(&run), ["tests/v.clnrm.toml"], "{run}");
    assert_eq!(status_of(&run, "tests/v.clnrm.toml"), "pass", "{run}");
}

#[test]
fn a_cache_dir_inside_the_project_never_triggers_a_run() {
    if !docker_ready() {
        return;
    }
    let project = project();
    let cache = project.path("build-cache");
    let dev = Dev::start_with(
        &project,
        &[],
        &[("CLNRM_CACHE_DIR", cache.to_str().unwrap())],
    );
    let first = dev.next_run();
    assert_eq!(ran(&first).len(), 4, "{first}");
    assert!(cache.is_dir(), "the cache is where it was told to be");
    // The first run wrote the cache: that is no change of the project.
    dev.expect_quiet(Duration::from_millis(1500));

    project.write("plain_a.clnrm.toml", &plain("plain_a", "a2"));
    let run = dev.next_run();
    assert_eq!(ran(&run), ["plain_a.clnrm.toml"], "{run}");
    dev.expect_quiet(Duration::from_millis(1500));
}

#[test]
fn a_library_created_where_an_import_looked_first_takes_over() {
    if !docker_ready() {
        return;
    }
    // `tests/t` imports `_say.tera`: it is looked for in tests/, then the root, then
    // templates/. A new `_say.tera` at the root, outside `tests`, is the one read now.
    let project = TestProject::new();
    project.write("cleanroom.toml", "");
    project.write("templates/_say.tera", LIBRARY);
    project.write(
        "tests/t.clnrm.toml.tera",
        &templated("t").replace("lib/_say.tera", "_say.tera"),
    );
    let dev = Dev::start(&project, &["tests"]);
    let first = dev.next_run();
    assert_eq!(ran(&first), ["tests/t.clnrm.toml.tera"], "{first}");

    project.write(
        "_say.tera",
        &LIBRARY.replace("name = \"say\"", "name = \"said at the root\""),
    );
    let run = dev.next_run();
    assert_eq!(ran(&run), ["tests/t.clnrm.toml.tera"], "{run}");
    assert_eq!(run["changed"], serde_json::json!(["_say.tera"]));
}
