//! `clnrm dev` driven for real: a project in a temp dir, a `clnrm dev --format json`
//! process watching it, edits made the way editors make them, and what each run did
//! read back from its JSON object.

mod common;
mod remote_servers;

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use clnrm_test_support::{EngineProxy, ENGINE_SOCKET};
use common::{docker_ready, TestProject, IMAGE};
use serde_json::Value;

// The default: wide enough that a burst of saves on a busy CI machine stays one batch.
const DEBOUNCE_MS: &str = "300";
/// A project whose tests keep their containers between runs (today's warm reuse,
/// state included): what the tests of reuse itself set.
const REUSE: &str = "[dev]\nisolation = \"reuse\"\n";
/// How long a burst of saves may go without a result before it counts as answered:
/// each run of it waits for the spare set being made after the last (a container
/// start and health check, seconds on a loaded machine).
const SPARE_PATIENCE: Duration = Duration::from_secs(5);
/// `--debounce-ms` when not given.
const DEFAULT_DEBOUNCE_MS: f64 = 300.0;

struct Dev {
    child: Child,
    /// Each run's object, with when it arrived.
    runs: mpsc::Receiver<(Instant, Value)>,
}

impl Dev {
    fn start(project: &TestProject, extra: &[&str]) -> Dev {
        Dev::start_with(project, extra, &[])
    }

    fn start_with(project: &TestProject, extra: &[&str], env: &[(&str, &str)]) -> Dev {
        let mut args = vec!["--debounce-ms", DEBOUNCE_MS];
        args.extend_from_slice(extra);
        Dev::spawn(project, &args, env)
    }

    /// `clnrm dev --format json` with every trigger setting at its default.
    fn start_plain(project: &TestProject) -> Dev {
        Dev::spawn(project, &[], &[])
    }

    fn spawn(project: &TestProject, args: &[&str], env: &[(&str, &str)]) -> Dev {
        let mut child = Dev::command(project, args, env)
            .stdout(Stdio::piped())
            .spawn()
            .expect("start clnrm dev");
        let stdout = child.stdout.take().unwrap();
        let (tx, runs) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(value) = serde_json::from_str::<Value>(&line) {
                    if tx.send((Instant::now(), value)).is_err() {
                        break;
                    }
                }
            }
        });
        Dev { child, runs }
    }

    /// `clnrm dev --format json > REL` with default trigger settings, the output file
    /// inside the project, as a user redirecting it there would.
    fn spawn_into(project: &TestProject, rel: &str) -> Dev {
        let out = project.path(rel);
        let child = Dev::command(project, &[], &[])
            .stdout(std::fs::File::create(&out).unwrap())
            .spawn()
            .expect("start clnrm dev");
        let (tx, runs) = mpsc::channel();
        std::thread::spawn(move || {
            // Follows the file as clnrm appends to it, one complete line at a time.
            let mut reader = BufReader::new(std::fs::File::open(out).unwrap());
            let mut line = String::new();
            loop {
                match reader.read_line(&mut line) {
                    Ok(_) if line.ends_with('\n') => {
                        if let Ok(value) = serde_json::from_str::<Value>(&line) {
                            if tx.send((Instant::now(), value)).is_err() {
                                return;
                            }
                        }
                        line.clear();
                    }
                    Ok(_) => std::thread::sleep(Duration::from_millis(5)),
                    Err(_) => return,
                }
            }
        });
        Dev { child, runs }
    }

    fn command(
        project: &TestProject,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> std::process::Command {
        let mut command = std::process::Command::new(assert_cmd::cargo::cargo_bin("clnrm"));
        command
            .current_dir(project.root())
            .env("CLNRM_CACHE_DIR", project.path(".clnrm/cache"))
            .env("NO_COLOR", "1")
            .envs(env.iter().copied())
            .args(["dev", "--format", "json"])
            .args(args)
            .stderr(Stdio::inherit());
        command
    }

    /// The next run's object (the first run, or one after a change).
    #[track_caller]
    fn next_run(&self) -> Value {
        self.runs
            .recv_timeout(Duration::from_secs(60))
            .expect("clnrm dev reported a run within 60 s")
            .1
    }

    /// Every run reported until none comes for `quiet`.
    fn runs_until_quiet(&self, quiet: Duration) -> Vec<Value> {
        self.timed_runs_until_quiet(quiet)
            .into_iter()
            .map(|(_, run)| run)
            .collect()
    }

    /// Every run reported until none comes for `quiet`, with when each arrived.
    fn timed_runs_until_quiet(&self, quiet: Duration) -> Vec<(Instant, Value)> {
        let mut runs = Vec::new();
        while let Ok(run) = self.runs.recv_timeout(quiet) {
            runs.push(run);
        }
        runs
    }

    /// Every run reported until one satisfies `last` (waiting at most `limit` for it),
    /// then every run until none comes for `quiet`: a burst's answer, however long the
    /// engine takes to give it (a spare's start on a loaded machine or on Podman).
    fn runs_until(
        &self,
        last: impl Fn(&Value) -> bool,
        limit: Duration,
        quiet: Duration,
    ) -> Vec<Value> {
        let deadline = Instant::now() + limit;
        let mut runs = Vec::new();
        while let Ok((_, run)) = self
            .runs
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            let done = last(&run);
            runs.push(run);
            if done {
                runs.extend(self.runs_until_quiet(quiet));
                break;
            }
        }
        runs
    }

    /// No run within `wait`.
    #[track_caller]
    fn expect_quiet(&self, wait: Duration) {
        if let Ok((_, run)) = self.runs.recv_timeout(wait) {
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

/// The parts of a run's timing panel (`timings_ms` in JSON).
const TIMINGS: [&str; 9] = [
    "detect",
    "debounce",
    "render",
    "parse",
    "plan",
    "containers",
    "execute",
    "report",
    "total",
];

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
    for field in TIMINGS {
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

    // Ten quick saves: each completed save may start a run, but only the run of the
    // last content is shown, and nothing else runs.
    for i in 0..10 {
        project.write(
            "plain_a.clnrm.toml",
            &plain("plain_a", &format!("burst{i}")),
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let shown = dev.runs_until_quiet(SPARE_PATIENCE);
    assert!(!shown.is_empty(), "the burst was seen");
    for run in &shown {
        assert_eq!(ran(run), ["plain_a.clnrm.toml"], "{run}");
    }
}

#[test]
fn a_service_container_is_reused_until_its_spec_changes() {
    if !docker_ready() {
        return;
    }
    let project = TestProject::new();
    project.write("cleanroom.toml", REUSE);
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
    project.write("cleanroom.toml", REUSE);
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

#[test]
fn an_engine_restart_is_a_clear_error_and_the_next_save_works() {
    if !docker_ready() || !std::path::Path::new(ENGINE_SOCKET).exists() {
        return;
    }
    let project = project();
    let socket = project.path("engine.sock");
    let mut proxy = EngineProxy::start(&socket);
    let host = proxy.docker_host();
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
    project.write("cleanroom.toml", REUSE);
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
    let second = until("budget (").join("\n");
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
    for part in TIMINGS {
        assert!(second.contains(part), "{part} in {second}");
    }
    assert!(second.contains("(1 reused, 0 started)"), "{second}");
    assert!(second.contains("container reuse 100 %"), "{second}");
    // The dashboard: clnrm's own memory and CPU during the run, and the budget line.
    assert!(second.contains("MB resident · CPU "), "{second}");
    assert!(second.contains("% of a core over"), "{second}");
    assert!(
        second.contains("% under budget (") || second.contains("% over budget ("),
        "{second}"
    );
    assert!(second.contains(" of 3000 ms)"), "{second}");
}

/// A project whose `tests/t.clnrm.toml.tera` imports `_say.tera`, which stands in
/// `templates/` (outside `tests`).
fn library_in_templates() -> TestProject {
    let project = TestProject::new();
    project.write("cleanroom.toml", "");
    project.write("templates/_say.tera", LIBRARY);
    project.write(
        "tests/t.clnrm.toml.tera",
        &templated("t").replace("lib/_say.tera", "_say.tera"),
    );
    project
}

#[test]
fn dev_on_a_folder_still_sees_the_libraries_and_volumes_its_tests_use() {
    if !docker_ready() {
        return;
    }
    // `clnrm dev tests`: the library lives in <root>/templates/, the mounted data in
    // <root>/data/, both outside the folder given.
    let project = library_in_templates();
    project.write("data/greeting.txt", "hello\n");
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
    let project = library_in_templates();
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

/// A one-step test whose step prints `token` and fails on purpose: a failure is
/// never cached and its JSON result carries the step's output, so each result
/// shows which save's content the step ran.
fn printing(token: &str) -> String {
    format!(
        "[meta]\nname = \"token\"\nversion = \"1\"\n\n[service.box]\nimage = \"{IMAGE}\"\n\n[[steps]]\nname = \"say\"\ncommand = [\"sh\", \"-c\", \"echo {token}; exit 3\"]\n"
    )
}

/// A project of one test, `say.clnrm.toml`, printing `start`.
fn printing_project() -> TestProject {
    let project = TestProject::new();
    project.write("cleanroom.toml", "");
    project.write("say.clnrm.toml", &printing("start"));
    project
}

/// The step output of the one result of `run`.
fn step_output(run: &Value) -> String {
    let results = run["results"].as_array().expect("results");
    assert_eq!(results.len(), 1, "{run}");
    results[0]["stdout"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn run_number(run: &Value) -> u64 {
    run["run"].as_u64().expect("a run number")
}

/// An editor's atomic save: a temp file beside the target, renamed over it.
fn save_atomically(project: &TestProject, rel: &str, text: &str) {
    let temp = format!("{rel}.x7f3-save");
    project.write(&temp, text);
    std::fs::rename(project.path(&temp), project.path(rel)).unwrap();
}

#[test]
fn ten_saves_30_ms_apart_always_end_on_the_result_of_the_last_save() {
    if !docker_ready() {
        return;
    }
    let project = printing_project();
    // Default trigger settings: the 20 ms settle window starts a run per save.
    let dev = Dev::start_plain(&project);
    let mut last_run = run_number(&dev.next_run());
    for round in 0..3 {
        let mut saved_at = Vec::new();
        for save in 0..10 {
            let text = printing(&format!("round{round}-save{save}"));
            if round == 1 {
                save_atomically(&project, "say.clnrm.toml", &text);
            } else {
                project.write("say.clnrm.toml", &text);
            }
            saved_at.push(Instant::now());
            std::thread::sleep(Duration::from_millis(30));
        }
        let timed = dev.timed_runs_until_quiet(SPARE_PATIENCE);
        // No result shown is for content replaced well before it arrived (100 ms is
        // ample for the replacing save's event to reach clnrm).
        for (arrived, run) in &timed {
            let output = step_output(run);
            let shown_save = (0..10)
                .find(|save| output.contains(&format!("round{round}-save{save}")))
                .unwrap_or_else(|| panic!("a result of this round: {run}"));
            let replaced_by = saved_at
                .iter()
                .rposition(|at| *at + Duration::from_millis(100) < *arrived)
                .unwrap_or(0);
            assert!(
                shown_save >= replaced_by,
                "round {round}: save {shown_save}'s result shown after save {replaced_by}"
            );
        }
        let shown: Vec<Value> = timed.into_iter().map(|(_, run)| run).collect();
        let last = shown.last().expect("a result after the saves");
        assert!(
            step_output(last).contains(&format!("round{round}-save9")),
            "round {round}: the last result on screen is for the last save: {last}"
        );
        for run in &shown {
            assert_eq!(ran(run), ["say.clnrm.toml"], "{run}");
        }
        // Run numbers count every run started, shown or discarded.
        let runs = run_number(last) - last_run;
        assert!(runs <= 10, "round {round}: {runs} runs for 10 saves");
        last_run = run_number(last);
    }
}

/// Processes that keep every core busy while they live (killed on drop).
struct BusyCores(Vec<Child>);

impl BusyCores {
    fn start() -> BusyCores {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        BusyCores(
            (0..cores)
                .map(|_| {
                    std::process::Command::new("sh")
                        .args(["-c", "while :; do :; done"])
                        .spawn()
                        .expect("a busy loop")
                })
                .collect(),
        )
    }
}

impl Drop for BusyCores {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The save number in a result of a `printing(&format!("save{n}-complete"))` test.
fn save_shown(run: &Value) -> Option<u32> {
    let output = step_output(run);
    let start = output.find("save")? + 4;
    let end = output.find("-complete")?;
    output.get(start..end)?.parse().ok()
}

#[test]
fn a_hundred_in_place_saves_on_busy_cores_only_ever_show_complete_saves() {
    if !docker_ready() {
        return;
    }
    let project = printing_project();
    let dev = Dev::start_plain(&project);
    let first_run = run_number(&dev.next_run());
    let _busy = BusyCores::start();
    // In place: each save truncates the file, then writes it; a read in between sees
    // an empty or partial file.
    for save in 0..100 {
        project.write("say.clnrm.toml", &printing(&format!("save{save}-complete")));
        std::thread::sleep(Duration::from_millis(30));
    }
    let shown = dev.runs_until(
        |run| save_shown(run) == Some(99),
        Duration::from_secs(60),
        Duration::from_secs(3),
    );
    assert!(!shown.is_empty(), "a result after the saves");
    for run in &shown {
        assert_eq!(
            run.get("problems"),
            None,
            "a half-written read shown: {run}"
        );
        assert!(
            save_shown(run).is_some_and(|save| save < 100),
            "a result of a complete save: {run}"
        );
    }
    let last = shown.last().unwrap();
    assert_eq!(save_shown(last), Some(99), "the last save's result: {last}");
    let runs = run_number(last) - first_run;
    assert!(runs <= 100, "{runs} runs for 100 saves");
}

#[test]
fn churn_in_the_project_and_its_own_redirected_output_never_delay_or_start_a_run() {
    if !docker_ready() {
        return;
    }
    let project = TestProject::new();
    project.write("cleanroom.toml", "");
    project.write("say.clnrm.toml", &plain("say", "start"));
    let dev = Dev::spawn_into(&project, "out.json");
    dev.next_run();
    // A log no test reads, rewritten every 50 ms.
    let churning = Arc::new(AtomicBool::new(true));
    let churn = {
        let churning = churning.clone();
        let log = project.path("notes.log");
        std::thread::spawn(move || {
            let mut n = 0u64;
            while churning.load(Ordering::Relaxed) {
                std::fs::write(&log, format!("line {n}\n")).unwrap();
                n += 1;
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };
    dev.expect_quiet(Duration::from_millis(1500));
    for save in 0..5 {
        project.write("say.clnrm.toml", &plain("say", &format!("save{save}")));
        let run = dev.next_run();
        assert_eq!(ran(&run), ["say.clnrm.toml"], "{run}");
        assert_eq!(
            run["changed"],
            serde_json::json!(["say.clnrm.toml"]),
            "{run}"
        );
        assert_eq!(status_of(&run, "say.clnrm.toml"), "pass", "{run}");
        // Had the churn joined the save's batch, it would have held it open for at
        // least the debounce window; a completed save alone waits the settle window.
        let debounce = run["timings_ms"]["debounce"].as_f64().unwrap();
        assert!(
            debounce < DEFAULT_DEBOUNCE_MS,
            "save {save} waited {debounce} ms: {run}"
        );
        std::thread::sleep(Duration::from_millis(400));
    }
    dev.expect_quiet(Duration::from_millis(1500));
    churning.store(false, Ordering::Relaxed);
    churn.join().unwrap();
}

#[test]
fn a_formatter_rewriting_right_after_the_save_is_what_the_last_result_shows() {
    if !docker_ready() {
        return;
    }
    let project = printing_project();
    let dev = Dev::start_plain(&project);
    dev.next_run();
    for wait_ms in [5u64, 40, 120] {
        project.write("say.clnrm.toml", &printing("as-typed"));
        std::thread::sleep(Duration::from_millis(wait_ms));
        project.write("say.clnrm.toml", &printing(&format!("formatted-{wait_ms}")));
        let shown = dev.runs_until_quiet(SPARE_PATIENCE);
        let last = shown.last().expect("a result after the save");
        assert!(
            step_output(last).contains(&format!("formatted-{wait_ms}")),
            "rewrite after {wait_ms} ms: {last}"
        );
    }
}

/// A test whose image does not exist: it ends in an error at once, without a container.
fn imageless(name: &str, version: u32) -> String {
    format!(
        "[meta]\nname = \"{name}\"\nversion = \"{version}\"\n\n[service.box]\nimage = \"clnrm-test/absent:1\"\n\n[[steps]]\nname = \"say\"\ncommand = [\"true\"]\n"
    )
}

#[test]
fn a_git_checkout_rewriting_50_tests_is_one_run_of_the_50() {
    if !docker_ready() {
        return;
    }
    let project = TestProject::new();
    project.write("cleanroom.toml", "");
    let tests: Vec<String> = (0..50).map(|i| format!("t/t{i:02}.clnrm.toml")).collect();
    for (i, test) in tests.iter().enumerate() {
        project.write(test, &imageless(&format!("t{i}"), 1));
    }
    let git = |args: &[&str]| {
        let status = std::process::Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@t"])
            .args(["-c", "init.defaultBranch=main"])
            .args(args)
            .current_dir(project.root())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("git runs");
        assert!(status.success(), "git {args:?}");
    };
    project.write(".gitignore", ".clnrm/\n");
    git(&["init", "-q"]);
    git(&["add", "."]);
    git(&["commit", "-q", "-m", "one"]);
    git(&["checkout", "-q", "-b", "two"]);
    for (i, test) in tests.iter().enumerate() {
        project.write(test, &imageless(&format!("t{i}"), 2));
    }
    git(&["commit", "-q", "-a", "-m", "two"]);

    let dev = Dev::start_plain(&project);
    assert_eq!(ran(&dev.next_run()).len(), 50);
    git(&["checkout", "-q", "main"]);
    let runs = dev.runs_until_quiet(Duration::from_millis(2000));
    assert_eq!(runs.len(), 1, "one run: {runs:?}");
    assert_eq!(ran(&runs[0]), tests);
    assert_eq!(runs[0]["changed"].as_array().unwrap().len(), 50);
}

#[test]
fn dev_starts_from_the_results_ci_shared_and_shares_its_own_passes() {
    if !docker_ready() {
        return;
    }
    let Some(nginx) = remote_servers::Nginx::start() else {
        return;
    };
    let project = TestProject::new();
    project.write("cleanroom.toml", "");
    project.write("plain_a.clnrm.toml", &plain("plain_a", "a"));
    project.write("plain_b.clnrm.toml", &plain("plain_b", "b"));
    // CI ran the tests with the team's remote cache, on a machine of its own.
    let ci_cache = tempfile::tempdir().unwrap();
    let ci = common::clnrm_process()
        .current_dir(project.root())
        .env("CLNRM_CACHE_DIR", ci_cache.path())
        .args(["run", "--remote-cache", &nginx.url()])
        .output()
        .expect("clnrm run");
    common::Run(ci).expect_code(0);
    assert_eq!(nginx.count("PUT"), 2, "{:?}", nginx.requests());

    // A developer's first `clnrm dev`, with an empty local cache: both results come
    // from the remote, and nothing starts.
    let dev = Dev::start(&project, &["--remote-cache", &nginx.url()]);
    let first = dev.next_run();
    for result in first["results"].as_array().unwrap() {
        assert_eq!(result["status"], "pass", "{first}");
        assert_eq!(result["cached"], true, "{first}");
    }
    assert_eq!(first["containers"]["started"], 0, "{first}");

    // A save of one test asks only the local cache; its pass goes to the remote for the
    // next machine.
    let asked = nginx.count("GET");
    project.write("plain_a.clnrm.toml", &plain("plain_a", "edited"));
    let run = dev.next_run();
    assert_eq!(ran(&run), ["plain_a.clnrm.toml"]);
    assert_eq!(status_of(&run, "plain_a.clnrm.toml"), "pass", "{run}");
    assert_eq!(nginx.count("GET"), asked, "{:?}", nginx.requests());
    assert_eq!(nginx.count("PUT"), 3, "{:?}", nginx.requests());
}
