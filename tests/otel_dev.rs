//! Span expectations on warm containers (docs/reference.md §9, §7): `clnrm run --reuse`
//! and `clnrm dev` run a test with expectations in pooled containers that send their
//! spans to `otel-collector`, judged as in a fresh run; editing an expectation re-runs
//! the test on the same containers.

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::Duration;

use common::{docker_ready, json_events, managed_containers, TestProject, IMAGE};
use serde_json::Value;

/// Held by the tests whose pool outlives one process (two `run --reuse`s, then `cache gc`):
/// another test's `cache gc` takes a pool whose process has ended for an orphan, and
/// would remove this one's between its two runs.
static POOL_BETWEEN_PROCESSES: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn pool_between_processes() -> std::sync::MutexGuard<'static, ()> {
    POOL_BETWEEN_PROCESSES
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

/// These tests are about warm containers: their projects keep them (`isolation = "reuse"`).
const REUSE: &str = "[dev]\nisolation = \"reuse\"\n";

/// A test whose service stays up, and whose step posts a `checkout` span (OTLP/JSON with
/// busybox wget) to the collector the service was given; then `expectation`.
fn warm_test(expectation: &str) -> String {
    let export = r#"{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{\"traceId\":\"5b8efff798038103d269b633813fc60c\",\"spanId\":\"00000000000000a1\",\"name\":\"checkout\",\"kind\":2,\"startTimeUnixNano\":\"1000\",\"endTimeUnixNano\":\"2000\"}]}]}]}"#;
    format!(
        "[meta]\nname = \"warm\"\nversion = \"1\"\n\n[service.app]\nimage = \"{IMAGE}\"\n\n\
         [[steps]]\nname = \"emit\"\ncommand = [\"sh\", \"-c\", \"wget -q -O - --header 'Content-Type: application/json' --post-data '{export}' $OTEL_EXPORTER_OTLP_ENDPOINT/v1/traces\"]\n\n\
         {expectation}"
    )
}

const HOLDS: &str = "[[expect.span]]\nname = \"checkout\"\nkind = \"server\"\n";
const FAILS: &str = "[[expect.span]]\nname = \"checkout\"\nkind = \"client\"\n";

fn finished(stdout: &str) -> Value {
    json_events(stdout)
        .into_iter()
        .find(|e| e["event"] == "test_finished")
        .expect("a test_finished event")
}

/// This project's pooled containers.
fn pooled(project: &TestProject) -> Vec<String> {
    let key = clnrm::pool::project_key(project.root());
    let mut ids = managed_containers(&format!("clnrm.pool={key}"));
    ids.sort();
    ids
}

#[test]
fn run_reuse_judges_spans_on_the_same_warm_container_twice() {
    if !docker_ready() {
        return;
    }
    let _pool = pool_between_processes();
    let project = TestProject::new();
    project.write("cleanroom.toml", REUSE);
    project.write("tests/warm.clnrm.toml", &warm_test(HOLDS));
    let run = project.clnrm(&["run", "--reuse", "--format", "json"]);
    let event = finished(&run.stdout());
    assert_eq!(event["status"], "pass", "{}", run.all());
    // The one named span arrived in the step: nothing more to wait for.
    assert_eq!(event["spans_wait"]["ended"], "named_spans", "{event}");
    let first = pooled(&project);
    assert_eq!(first.len(), 1, "the service container stays up");

    // The same container, a failing expectation: judged on what arrived this time.
    project.write("tests/warm.clnrm.toml", &warm_test(FAILS));
    let run = project.clnrm(&["run", "--reuse", "--format", "json"]);
    run.expect_code(1);
    let event = finished(&run.stdout());
    assert_eq!(event["status"], "fail", "{}", run.all());
    assert_eq!(event["timings"]["containers_reused"], 1, "{event}");
    assert_eq!(pooled(&project), first, "the same container ran it again");
    let message = event["expectations"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("expect.span[0] \"checkout\" failed"),
        "{message}"
    );
    assert!(
        message.contains("kind is server, expected client"),
        "{message}"
    );

    // The pool's process is gone: gc removes its container.
    project.clnrm(&["cache", "gc"]).expect_code(0);
    assert!(pooled(&project).is_empty());
}

/// A `clnrm dev` that a failed assertion does not leave running.
struct StopOnDrop(std::process::Child);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

#[test]
fn dev_reruns_a_test_when_its_expectation_is_edited_and_shows_the_span_wait() {
    if !docker_ready() {
        return;
    }
    let project = TestProject::new();
    project.write("cleanroom.toml", REUSE);
    project.write("warm.clnrm.toml", &warm_test(HOLDS));
    let dev = std::process::Command::new(assert_cmd::cargo::cargo_bin("clnrm"))
        .current_dir(project.root())
        .env("CLNRM_CACHE_DIR", project.path(".clnrm/cache"))
        .args(["dev", "--format", "json", "--debounce-ms", "300"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start clnrm dev");
    let mut dev = StopOnDrop(dev);
    let (tx, runs) = mpsc::channel::<Value>();
    let stdout = dev.0.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let Ok(run) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            if run["ran"].is_array() && tx.send(run).is_err() {
                break;
            }
        }
    });
    let next_run = || {
        runs.recv_timeout(Duration::from_secs(60))
            .expect("clnrm dev reported a run within 60 s")
    };

    let first = next_run();
    let result = &first["results"][0];
    assert_eq!(result["status"], "pass", "{first}");
    assert!(
        first["timings_ms"]["spans"].is_number(),
        "the span wait is its own figure: {first}"
    );
    assert_eq!(result["spans_wait"]["ended"], "named_spans", "{first}");

    project.write("warm.clnrm.toml", &warm_test(FAILS));
    let edited = next_run();
    assert_eq!(edited["ran"], serde_json::json!(["warm.clnrm.toml"]));
    assert_eq!(edited["containers"]["reused"], 1, "{edited}");
    let result = &edited["results"][0];
    assert_eq!(result["status"], "fail", "{edited}");
    let message = result["expectations"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("kind is server, expected client"),
        "{message}"
    );
    // Not held by the span that came: a later one might have been, so it waited for quiet.
    assert_eq!(result["spans_wait"]["ended"], "quiet", "{edited}");

    unsafe { libc::kill(dev.0.id() as i32, libc::SIGINT) };
    let _ = dev.0.wait();
    assert!(
        pooled(&project).is_empty(),
        "dev removed its pool on Ctrl-C"
    );
}

#[test]
fn a_warm_test_whose_services_announced_readiness_once_is_not_held_again() {
    if !docker_ready() {
        return;
    }
    let _pool = pool_between_processes();
    let project = TestProject::new();
    project.write("cleanroom.toml", REUSE);
    // `server` announces itself with a span once, as it starts; `client`'s first step
    // waits for that span (at most 3 s).
    let export = r#"{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{\"traceId\":\"5b8efff798038103d269b633813fc60c\",\"spanId\":\"00000000000000b1\",\"name\":\"server.ready\",\"kind\":1,\"startTimeUnixNano\":\"1000\",\"endTimeUnixNano\":\"2000\"}]}]}]}"#;
    project.write(
        "tests/ready.clnrm.toml",
        &format!(
            "[meta]\nname = \"ready\"\nversion = \"1\"\n\n\
             [service.server]\nimage = \"{IMAGE}\"\nargs = [\"sh\", \"-c\", \"sleep 0.3; wget -q -O - --header 'Content-Type: application/json' --post-data '{export}' $OTEL_EXPORTER_OTLP_ENDPOINT/v1/traces; sleep 600\"]\n\n\
             [service.client]\nimage = \"{IMAGE}\"\nwait_for_span = \"server.ready\"\nwait_for_span_timeout_secs = 3\n\n\
             [[steps]]\nname = \"use\"\nservice = \"client\"\ncommand = [\"true\"]\n"
        ),
    );
    let first = project.clnrm(&["run", "--reuse", "--format", "json"]);
    assert_eq!(
        finished(&first.stdout())["status"],
        "pass",
        "{}",
        first.all()
    );
    // Both containers reused: the span is not sent again, and nothing waits for it.
    let again = project.clnrm(&["run", "--reuse", "--force", "--format", "json"]);
    let event = finished(&again.stdout());
    assert_eq!(event["status"], "pass", "{}", again.all());
    assert_eq!(event["timings"]["containers_reused"], 2, "{event}");
    let execute_ms = event["timings"]["execute_ms"].as_f64().unwrap();
    assert!(
        execute_ms < 2500.0,
        "not held until the timeout: {execute_ms} ms"
    );
    project.clnrm(&["cache", "gc"]).expect_code(0);
    assert!(pooled(&project).is_empty());
}
