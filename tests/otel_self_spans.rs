//! clnrm traces itself (docs/reference.md §14): a test that declares `[otel]` receives
//! clnrm's own spans — `clnrm.run` over its scenarios, steps and containers — in the same
//! collection as its services' spans, and a service that uses the `TRACEPARENT` it was
//! given lands under `clnrm.run` in that one trace. A test without `[otel]` gets the trace
//! context but not clnrm's spans, so an "echo success" cannot fake them. Also the original's
//! `should_fail` steps and `[assertions]`, judged on what really ran.

mod common;

use std::collections::BTreeMap;

use common::{docker_ready, json_events, TestProject, IMAGE};
use serde_json::Value;

/// A scenario whose `run` posts one span, `svc.work`, with the trace and parent its
/// `TRACEPARENT` names (OTLP/JSON by busybox `wget`), then a step of its own.
fn traced_test() -> String {
    format!(
        r#"[meta]
name = "traced"
version = "1"

[otel]
exporter = "otlp"
[otel.resources]
"env" = "ci"

[service.app]
image = "{IMAGE}"

[[scenario]]
name = "checkout"
service = "app"
run = '''
t=$(echo $TRACEPARENT | cut -d- -f2); p=$(echo $TRACEPARENT | cut -d- -f3); now=$(date +%s)
wget -q -O - --header 'Content-Type: application/json' --post-data "{{\"resourceSpans\":[{{\"scopeSpans\":[{{\"spans\":[{{\"traceId\":\"$t\",\"spanId\":\"00000000000000b2\",\"parentSpanId\":\"$p\",\"name\":\"svc.work\",\"kind\":1,\"startTimeUnixNano\":\"${{now}}000000000\",\"endTimeUnixNano\":\"${{now}}000000001\"}}]}}]}}]}}" $OTEL_EXPORTER_OTLP_ENDPOINT/v1/traces
'''
[[scenario.steps]]
name = "pay"
command = ["echo", "paid"]

[[expect.span]]
name = "clnrm.run"
attrs.all = {{ "result" = "pass", "test.case.name" = "traced" }}

[[expect.span]]
name = "svc.work"
parent = "clnrm.run"

[expect.graph]
must_include = [["clnrm.scenario.checkout", "clnrm.step:pay"], ["clnrm.step:pay", "container.exec"]]
"#
    )
}

fn finished(events: &[Value]) -> BTreeMap<String, Value> {
    events
        .iter()
        .filter(|e| e["event"] == "test_finished")
        .map(|e| (e["test"].as_str().unwrap().to_string(), e.clone()))
        .collect()
}

/// Every span of a `.jsonl` file (OTLP JSON, one export per line), with its resource.
fn spans_in(text: &str) -> Vec<(Value, Value)> {
    let mut out = Vec::new();
    for line in text.lines() {
        let export: Value = serde_json::from_str(line).unwrap();
        for rs in export["resourceSpans"].as_array().unwrap() {
            for ss in rs["scopeSpans"].as_array().unwrap() {
                for span in ss["spans"].as_array().unwrap() {
                    out.push((span.clone(), rs["resource"].clone()));
                }
            }
        }
    }
    out
}

fn attr(span: &Value, key: &str) -> Option<String> {
    span["attributes"]
        .as_array()?
        .iter()
        .find(|kv| kv["key"] == key)
        .map(|kv| {
            let v = &kv["value"];
            v["stringValue"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| v["intValue"].to_string().trim_matches('"').to_string())
        })
}

#[test]
fn an_otel_test_holds_clnrms_spans_and_its_services_in_one_trace() {
    if !docker_ready() {
        return;
    }
    let project = TestProject::new();
    project.write("tests/traced.clnrm.toml", &traced_test());
    let run = project.clnrm(&["run", "--format", "json"]);
    let events = json_events(&run.stdout());
    let done = finished(&events);
    let traced = &done["tests/traced.clnrm.toml"];
    assert_eq!(traced["status"], "pass", "{}", run.all());
    assert_eq!(run.code(), 0);

    // The spans are in the project's .clnrm/spans, not beside the cache.
    let file = project.path(".clnrm/spans/tests__traced.clnrm.toml.jsonl");
    let spans = spans_in(&std::fs::read_to_string(&file).unwrap());
    let by_name = |name: &str| -> Vec<&Value> {
        spans
            .iter()
            .filter(|(s, _)| s["name"] == name)
            .map(|(s, _)| s)
            .collect()
    };
    let run_span = by_name("clnrm.run")[0];
    let run_id = run_span["spanId"].as_str().unwrap();
    let trace = run_span["traceId"].as_str().unwrap();
    assert!(
        spans.iter().all(|(s, _)| s["traceId"] == trace),
        "one trace"
    );
    assert_eq!(attr(run_span, "result").as_deref(), Some("pass"));
    // clnrm's resource: service.name clnrm, plus the test's [otel.resources].
    let resource = &spans.iter().find(|(s, _)| s == run_span).unwrap().1;
    assert_eq!(attr(resource, "service.name").as_deref(), Some("clnrm"));
    assert_eq!(attr(resource, "env").as_deref(), Some("ci"));
    assert_eq!(
        attr(run_span, "test.suite.name").as_deref(),
        Some("tests/traced.clnrm.toml")
    );
    // The service's span, parented by TRACEPARENT, hangs under clnrm.run.
    assert_eq!(by_name("svc.work")[0]["parentSpanId"], run_id);
    let parent_of = |s: &Value| s["parentSpanId"].as_str().unwrap_or("").to_string();
    let id_of = |s: &Value| s["spanId"].as_str().unwrap().to_string();
    let scenario = by_name("clnrm.scenario.checkout")[0];
    assert_eq!(parent_of(scenario), run_id);
    let pay = by_name("clnrm.step:pay")[0];
    assert_eq!(parent_of(pay), id_of(scenario));
    assert_eq!(attr(pay, "process.exit.code").as_deref(), Some("0"));
    let registry = by_name("clnrm.plugin.registry")[0];
    let start = by_name("container.start")[0];
    assert_eq!(parent_of(start), id_of(registry));
    assert_eq!(attr(start, "container.image.name").as_deref(), Some(IMAGE));
    assert_eq!(
        attr(start, "container.id").map(|id| id.len() >= 12),
        Some(true)
    );
    assert_eq!(by_name("container.exec").len(), 2);
    assert_eq!(parent_of(by_name("container.stop")[0]), run_id);
    // Durations: the run spans every child.
    let nanos = |s: &Value, k: &str| s[k].as_str().unwrap().parse::<u64>().unwrap();
    for (s, _) in spans.iter().filter(|(s, _)| s["name"] != "svc.work") {
        assert!(nanos(s, "startTimeUnixNano") >= nanos(run_span, "startTimeUnixNano"));
        assert!(nanos(s, "endTimeUnixNano") <= nanos(run_span, "endTimeUnixNano"));
    }
}

#[test]
fn without_otel_a_test_gets_the_trace_context_but_cannot_fake_clnrms_spans() {
    if !docker_ready() {
        return;
    }
    let project = TestProject::new();
    project.write(
        "tests/context.clnrm.toml",
        &format!(
            "[meta]\nname = \"context\"\nversion = \"1\"\n[service.app]\nimage = \"{IMAGE}\"\n\
             [[steps]]\nname = \"env\"\ncommand = [\"env\"]\n\
             expected_output_regex = \"TRACEPARENT=00-[0-9a-f]{{32}}-[0-9a-f]{{16}}-01\"\n\
             [[steps]]\nname = \"name\"\ncommand = [\"env\"]\nexpected_output_regex = \"OTEL_SERVICE_NAME=app\"\n"
        ),
    );
    // An "echo success" with [otel]: clnrm's own clnrm.run is in its collection, and
    // [otel_validation] finds it there.
    project.write(
        "tests/echo.clnrm.toml",
        &format!(
            "[meta]\nname = \"echo\"\nversion = \"1\"\n[service.red]\nimage = \"{IMAGE}\"\n\
             [[scenario]]\nname = \"fake\"\nservice = \"red\"\nrun = \"echo 'All tests passed'\"\n\
             [otel_validation]\n[[otel_validation.expected_spans]]\nname = \"clnrm.run\"\n\
             [[expect.span]]\nname = \"clnrm.run\"\nattrs.all = {{ result = \"pass\" }}\n\
             [otel]\nflush_timeout = \"300ms\"\n"
        ),
    );
    // The red team's "echo success" without [otel]: no clnrm.run from clnrm itself.
    project.write(
        "tests/bare.clnrm.toml",
        &format!(
            "[meta]\nname = \"bare\"\nversion = \"1\"\n[service.red]\nimage = \"{IMAGE}\"\n\
             [[steps]]\nname = \"fake\"\ncommand = [\"echo\", \"ok\"]\n\
             [[expect.span]]\nname = \"clnrm.run\"\n"
        ),
    );
    let run = project.clnrm(&["run", "--format", "json"]);
    let done = finished(&json_events(&run.stdout()));
    assert_eq!(
        done["tests/context.clnrm.toml"]["status"],
        "pass",
        "{}",
        run.all()
    );
    assert_eq!(
        done["tests/echo.clnrm.toml"]["status"],
        "pass",
        "{}",
        run.all()
    );
    let bare = &done["tests/bare.clnrm.toml"];
    assert_eq!(bare["status"], "fail", "{}", run.all());
    assert_eq!(bare["failed_step"], "expect.span[0] \"clnrm.run\"");
    assert_eq!(run.code(), 1);
}

#[test]
fn should_fail_steps_and_assertions_are_judged_on_what_ran() {
    if !docker_ready() {
        return;
    }
    let project = TestProject::new();
    let head = |name: &str| {
        format!("[meta]\nname = \"{name}\"\nversion = \"1\"\n[service.box]\nimage = \"{IMAGE}\"\n")
    };
    project.write(
        "tests/readonly.clnrm.toml",
        &format!(
            "{}[[steps]]\nname = \"write\"\ncommand = [\"sh\", \"-c\", \"exit 3\"]\nshould_fail = true\n\
             [[steps]]\nname = \"after\"\ncommand = [\"true\"]\n\
             [assertions]\ncontainer_should_have_executed_commands = 2\nall_steps_should_succeed = true\n\
             execution_should_be_hermetic = true\nservice_should_start = \"box\"\n",
            head("readonly")
        ),
    );
    project.write(
        "tests/zero.clnrm.toml",
        &format!(
            "{}[[steps]]\nname = \"write\"\ncommand = [\"true\"]\nshould_fail = true\n",
            head("zero")
        ),
    );
    project.write(
        "tests/count.clnrm.toml",
        &format!(
            "{}[[steps]]\nname = \"one\"\ncommand = [\"true\"]\n\
             [assertions]\ncontainer_should_have_executed_commands = 3\n",
            head("count")
        ),
    );
    project.write(
        "tests/otelenv.clnrm.toml",
        &format!(
            "{}[[steps]]\nname = \"one\"\ncommand = [\"true\"]\n\
             [assertions]\notel_environment_configured = true\n",
            head("otelenv")
        ),
    );
    let run = project.clnrm(&["run", "--format", "json"]);
    let done = finished(&json_events(&run.stdout()));
    assert_eq!(
        done["tests/readonly.clnrm.toml"]["status"],
        "pass",
        "{}",
        run.all()
    );
    let zero = &done["tests/zero.clnrm.toml"];
    assert_eq!(zero["status"], "fail");
    assert_eq!(zero["failed_step"], "write");
    assert_eq!(
        zero["expected"],
        "a non-zero exit code (should_fail = true)"
    );
    assert_eq!(zero["actual"], "exit code 0");
    let count = &done["tests/count.clnrm.toml"];
    assert_eq!(
        count["failed_step"],
        "assertions.container_should_have_executed_commands"
    );
    assert_eq!(count["actual"], "1 executed");
    // Without [otel] there is no endpoint to export to: the assertion says so.
    let otelenv = &done["tests/otelenv.clnrm.toml"];
    assert_eq!(
        otelenv["failed_step"],
        "assertions.otel_environment_configured"
    );
    assert_eq!(otelenv["actual"], "`box` lacks OTEL_EXPORTER_OTLP_ENDPOINT");
    assert_eq!(run.code(), 1);
}
