//! clnrm exports its own trace (docs/reference.md "Exporting clnrm's own trace"): with
//! `--otel-endpoint`, a run arrives at an OTLP/HTTP collector as one trace, checked here by
//! an independent decoder (tests/otlp_receiver.py, PyPI's `opentelemetry-proto`). A dead or
//! slow collector changes neither the outcome nor the exit code; it earns a warning.

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};

use common::{docker_ready, outcomes, repo, shell_test, TestProject};
use serde_json::Value;

/// The receiver, or `None` (skipped visibly; a failure under CI) when python3 or
/// `opentelemetry-proto` is missing.
struct Receiver {
    child: Child,
    port: u16,
    out: PathBuf,
}

impl Receiver {
    fn start(test: &str, dir: &Path, delay_secs: u32) -> Option<Receiver> {
        let importable = std::process::Command::new("python3")
            .args([
                "-c",
                "import opentelemetry.proto.collector.trace.v1.trace_service_pb2",
            ])
            .output()
            .is_ok_and(|out| out.status.success());
        if !importable {
            let why = "python3 with `opentelemetry-proto` is needed \
                       (python3 -m pip install opentelemetry-proto)";
            if clnrm_test_support::containers_required() {
                panic!("`{test}` cannot run under CI: {why}");
            }
            clnrm_test_support::notice(&format!("skipping `{test}`: {why}"));
            return None;
        }
        let out = dir.join("received.jsonl");
        let mut child = std::process::Command::new("python3")
            .arg(repo().join("tests/otlp_receiver.py"))
            .args(["--out", out.to_str().unwrap()])
            .args(["--delay", &delay_secs.to_string()])
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the receiver");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .expect("the receiver prints its port");
        let port = line.trim().parse().expect("a port number");
        Some(Receiver { child, port, out })
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Every request decoded so far, one JSON object each.
    fn requests(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .map(|line| serde_json::from_str(line).expect("the receiver writes JSON lines"))
            .collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Two passing tests and one failing one, on the busybox fixture.
fn project() -> TestProject {
    let project = TestProject::new();
    project
        .write("tests/alpha.clnrm.toml", &shell_test("alpha", "echo a"))
        .write("tests/beta.clnrm.toml", &shell_test("beta", "echo b"))
        .write("tests/gamma.clnrm.toml", &shell_test("gamma", "exit 3"));
    project
}

fn spans(requests: &[Value]) -> Vec<Value> {
    requests
        .iter()
        .flat_map(|r| r["spans"].as_array().cloned().unwrap_or_default())
        .collect()
}

fn named<'s>(spans: &'s [Value], name: &str) -> Vec<&'s Value> {
    spans.iter().filter(|s| s["name"] == name).collect()
}

#[test]
fn a_run_arrives_as_one_trace_with_a_child_per_test_and_per_stage() {
    let test = "a_run_arrives_as_one_trace_with_a_child_per_test_and_per_stage";
    if !docker_ready() {
        return;
    }
    let project = project();
    let Some(receiver) = Receiver::start(test, project.root(), 0) else {
        return;
    };
    let run = project.clnrm(&[
        "run",
        "--format",
        "json",
        "--otel-endpoint",
        &receiver.url(),
    ]);
    run.expect_code(1);
    assert!(!run.stderr().contains("not delivered"), "{}", run.stderr());

    let requests = receiver.requests();
    for request in &requests {
        assert_eq!(request["path"], "/v1/traces");
        assert_eq!(request["content_type"], "application/x-protobuf");
        assert!(
            request.get("error").is_none(),
            "decoder rejected: {request}"
        );
    }
    let spans = spans(&requests);
    let traces: BTreeSet<&str> = spans
        .iter()
        .map(|s| s["trace_id"].as_str().unwrap())
        .collect();
    assert_eq!(traces.len(), 1, "one trace for the run: {traces:?}");
    let roots: Vec<&Value> = spans.iter().filter(|s| s["parent_span_id"] == "").collect();
    assert_eq!(roots.len(), 1, "one root");
    let root = roots[0];
    assert_eq!(root["name"], "clnrm run");
    assert_eq!(root["resource"]["service.name"], "clnrm");
    assert_eq!(
        root["resource"]["service.version"],
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(
        root["status"], 2,
        "the run failed (gamma), so the root is an error"
    );

    // One child per test: its own `clnrm.run` subtree, under the run's root.
    let tests = named(&spans, "clnrm.run");
    let mut names: Vec<&str> = tests
        .iter()
        .map(|s| s["attributes"]["test.case.name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["alpha", "beta", "gamma"]);
    for span in &tests {
        assert_eq!(span["parent_span_id"], root["span_id"]);
        let name = span["attributes"]["test.case.name"].as_str().unwrap();
        let status = if name == "gamma" { "fail" } else { "pass" };
        assert_eq!(span["attributes"]["test.case.result.status"], status);
        assert_eq!(
            span["attributes"]["test.suite.name"],
            format!("tests/{name}.clnrm.toml")
        );
        // Its containers and steps lie under it.
        let under: Vec<&Value> = spans
            .iter()
            .filter(|s| s["parent_span_id"] == span["span_id"])
            .collect();
        assert!(
            under.iter().any(|s| s["name"] == "clnrm.step:check"),
            "{name}"
        );
        assert!(
            under.iter().any(|s| s["name"] == "clnrm.plugin.registry"),
            "{name}"
        );
    }
    let start = named(&spans, "container.start");
    assert_eq!(start.len(), 3);
    assert_eq!(
        start[0]["attributes"]["container.image.name"],
        common::IMAGE
    );
    assert!(!start[0]["attributes"]["container.id"]
        .as_str()
        .unwrap()
        .is_empty());

    // One child per stage of the run.
    for stage in [
        "clnrm.discover",
        "clnrm.render",
        "clnrm.parse",
        "clnrm.plan",
    ] {
        let found = named(&spans, stage);
        assert_eq!(found.len(), 1, "{stage}");
        assert_eq!(found[0]["parent_span_id"], root["span_id"], "{stage}");
    }
    let lookups = named(&spans, "clnrm.cache.lookup");
    assert_eq!(lookups.len(), 3);
    assert!(lookups
        .iter()
        .all(|s| s["attributes"]["cache.hit"] == false));
    // Every span lies within the root.
    for span in &spans {
        assert!(span["start"].as_u64() >= root["start"].as_u64(), "{span}");
        assert!(span["end"].as_u64() <= root["end"].as_u64(), "{span}");
    }

    // Again: the passes are served from the cache, in a trace of their own.
    std::fs::remove_file(&receiver.out).unwrap();
    let again = project.clnrm(&[
        "run",
        "--format",
        "json",
        "--otel-endpoint",
        &receiver.url(),
    ]);
    again.expect_code(1);
    let spans_again = self::spans(&receiver.requests());
    assert!(spans_again
        .iter()
        .all(|s| !traces.contains(s["trace_id"].as_str().unwrap())));
    let hits: Vec<&str> = named(&spans_again, "clnrm.cache.lookup")
        .iter()
        .filter(|s| s["attributes"]["cache.hit"] == true)
        .map(|s| s["attributes"]["test.case.name"].as_str().unwrap())
        .collect();
    assert_eq!(hits.len(), 2, "alpha and beta hit: {hits:?}");
    let cached = named(&spans_again, "clnrm.run")
        .iter()
        .filter(|s| s["attributes"]["clnrm.cached"] == true)
        .count();
    assert_eq!(cached, 2);
    assert_eq!(named(&spans_again, "clnrm.run").len(), 3);
}

/// A run with the endpoint given, against the same run without it: same outcomes and code.
/// (How much time it adds is a figure of benches/otel_export_cost.py, not asserted here.)
fn same_outcome_despite(endpoint: &str) -> String {
    let project = project();
    let without = project.clnrm(&["run", "--force", "--format", "json"]);
    without.expect_code(1);
    let with = project.clnrm(&[
        "run",
        "--force",
        "--format",
        "json",
        "--otel-endpoint",
        endpoint,
    ]);
    with.expect_code(1);
    assert_eq!(outcomes(&with.stdout()), outcomes(&without.stdout()));
    with.stderr()
}

#[test]
fn a_dead_endpoint_changes_nothing_but_a_warning() {
    if !docker_ready() {
        return;
    }
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let stderr = same_outcome_despite(&format!("http://127.0.0.1:{port}"));
    assert!(
        stderr.contains("warning: --otel-endpoint:")
            && stderr.contains("spans of this run's trace were not delivered"),
        "{stderr}"
    );
}

#[test]
fn a_slow_endpoint_changes_nothing_but_a_warning() {
    let test = "a_slow_endpoint_changes_nothing_but_a_warning";
    if !docker_ready() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let Some(receiver) = Receiver::start(test, dir.path(), 5) else {
        return;
    };
    let stderr = same_outcome_despite(&receiver.url());
    assert!(
        stderr.contains("spans of this run's trace were not delivered"),
        "{stderr}"
    );
}
