//! Spans from the real OpenTelemetry SDK (`opentelemetry-otlp`) reach clnrm's receiver over
//! HTTP/protobuf and over gRPC, from the static emitter in `fixtures/images/otel-emitter`
//! (image built by `fixtures/images/build-otel-emitter.sh`), and are judged: parents,
//! kinds, attributes, events and status as the SDK set them.

mod common;

use common::{docker_ready, json_events, repo, TestProject};

const EMITTER: &str = "clnrm-fixture/otel-emitter:latest";

/// Builds the emitter image (quick when up to date). Outside CI a failure skips with a
/// notice; in CI it fails.
fn emitter_ready(test: &str) -> bool {
    if !docker_ready() {
        return false;
    }
    let built = std::process::Command::new("sh")
        .arg(repo().join("fixtures/images/build-otel-emitter.sh"))
        .status()
        .is_ok_and(|s| s.success());
    if !built {
        clnrm_test_support::skip_container_test(test, "the otel-emitter image could not be built");
    }
    built
}

/// A test whose one step runs the emitter with `args`, and these expectations.
fn sdk_test(name: &str, args: &str, expectations: &str) -> String {
    format!(
        "[meta]\nname = \"{name}\"\nversion = \"1\"\n\n[service.api]\nimage = \"{EMITTER}\"\n\n\
         [[steps]]\nname = \"emit\"\ncommand = [\"otel-emitter\", {args}]\n\n{expectations}"
    )
}

const TRACE: &str = r#""--PROTOCOL--", "request;kind=server;attr=http.route=/orders;ms=50", "db.query;parent=request;kind=client;attr=db.system=postgres;event=rows.fetched;ms=20", "audit;parent=request;status=error""#;

const EXPECTATIONS: &str = r#"
[[expect.span]]
name = "request"
kind = "server"
attrs.all = { "http.route" = "/orders" }

[[expect.span]]
name = "db.query"
parent = "request"
kind = "client"
events.all = ["rows.fetched"]
attrs.any = ["db.system=postgres"]

[expect.status]
by_name = { "audit" = "ERROR", "db.*" = "OK" }

[expect.graph]
must_include = [["request", "audit"]]
acyclic = true

[expect.hermeticity]
resource_attrs.must_match = { "service.name" = "api" }
"#;

fn run_and_judge(protocol: &str) {
    let project = TestProject::new();
    let args = TRACE.replace(
        "\"--PROTOCOL--\", ",
        if protocol == "grpc" {
            "\"--grpc\", "
        } else {
            ""
        },
    );
    project.write(
        &format!("tests/{protocol}.clnrm.toml"),
        &sdk_test(protocol, &args, EXPECTATIONS),
    );
    let run = project.clnrm(&["run", "--format", "json"]);
    let events = json_events(&run.stdout());
    let finished = events
        .iter()
        .find(|e| e["event"] == "test_finished")
        .expect("test_finished");
    assert_eq!(finished["status"], "pass", "{}", run.all());
    let verdicts = finished["expectations"].as_array().unwrap();
    assert!(verdicts.len() >= 7, "{verdicts:?}");
    assert!(
        verdicts.iter().all(|v| v["status"] == "pass"),
        "{verdicts:?}"
    );

    // The same spans, a wrong expectation: the message shows what the SDK sent.
    project.write(
        &format!("tests/{protocol}.clnrm.toml"),
        &sdk_test(
            protocol,
            &args,
            "[[expect.span]]\nname = \"db.query\"\nparent = \"audit\"\n",
        ),
    );
    let run = project.clnrm(&["run"]);
    run.expect_code(1);
    let out = run.all();
    assert!(out.contains("expect.span[0] \"db.query\""), "{out}");
    assert!(out.contains("parent \"request\""), "{out}");
}

#[test]
fn sdk_spans_over_http_protobuf_are_judged() {
    if !emitter_ready("sdk_spans_over_http_protobuf_are_judged") {
        return;
    }
    run_and_judge("http");
}

#[test]
fn sdk_spans_over_grpc_are_judged() {
    if !emitter_ready("sdk_spans_over_grpc_are_judged") {
        return;
    }
    run_and_judge("grpc");
}
