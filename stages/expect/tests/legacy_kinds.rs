//! The original clnrm's other tables judged against plain spans: `[[expect.temporal]]`,
//! `[[expect.graph]]` edges, `[[expect.resource]]` and `[otel_validation]`, each with a case
//! that holds and the ways it fails, the message naming the table the user wrote.

use clnrm_expect::{
    evaluate, AttrValue, Context, ExpectationKind, Expectations, ResourceType, Span, SpanId,
    TraceId, Verdict,
};

fn span(trace: u128, id: u64, name: &str, start_ms: u64, end_ms: u64) -> Span {
    let mut s = Span::new(TraceId::from_u128(trace), SpanId::from_u64(id), name);
    s.start_unix_nanos = 1_700_000_000_000_000_000 + start_ms * 1_000_000;
    s.end_unix_nanos = 1_700_000_000_000_000_000 + end_ms * 1_000_000;
    s
}

fn child_of(mut s: Span, parent: &Span) -> Span {
    s.parent_span_id = Some(parent.span_id);
    s
}

fn with_attr(mut s: Span, key: &str, value: impl Into<AttrValue>) -> Span {
    s.attributes.insert(key.to_string(), value.into());
    s
}

/// `text` is a whole test file's tables; `[otel_validation]` goes where the config stage
/// puts it.
fn expectations(text: &str) -> Expectations {
    #[derive(serde::Deserialize, Default)]
    #[serde(default)]
    struct File {
        expect: Expectations,
        otel_validation: Option<clnrm_expect::OtelValidation>,
    }
    let file: File = toml::from_str(text).unwrap_or_else(|e| panic!("parse: {e}"));
    Expectations {
        otel_validation: file.otel_validation,
        ..file.expect
    }
}

fn judge(spans: &[Span], text: &str) -> Vec<Verdict> {
    evaluate(spans, &expectations(text), &Context::new(["api"]))
}

fn failed(verdicts: &[Verdict]) -> Vec<&Verdict> {
    verdicts.iter().filter(|v| !v.passed).collect()
}

#[test]
fn temporal_holds_when_before_ends_first_and_fails_naming_both() {
    let text = "[[expect.temporal]]\nbefore = \"auth.login\"\nafter = \"api.request\"\n";
    let ok = judge(
        &[
            span(1, 1, "auth.login", 0, 10),
            span(1, 2, "api.request", 12, 20),
        ],
        text,
    );
    assert_eq!(ok.len(), 1);
    assert!(ok[0].passed, "{}", ok[0]);
    assert_eq!(ok[0].kind, ExpectationKind::Temporal);

    let late = judge(
        &[
            span(1, 1, "auth.login", 0, 30),
            span(1, 2, "api.request", 12, 20),
        ],
        text,
    );
    assert!(!late[0].passed);
    let message = late[0].message();
    assert!(
        message.contains("expect.temporal[0] \"auth.login\" before \"api.request\" failed"),
        "{message}"
    );

    let missing = judge(&[span(1, 1, "auth.login", 0, 10)], text);
    assert!(!missing[0].passed);
    assert!(missing[0].actual.contains("no span named \"api.request\""));
}

#[test]
fn graph_edges_need_the_parent_and_the_childs_attributes() {
    let text = r#"
[[expect.graph]]
parent = "frontend"
child = "api"
relationship = "calls"
attrs.all = { "http.method" = "POST" }

[[expect.graph]]
parent = "api"
child = "db"
"#;
    let root = span(1, 1, "frontend", 0, 50);
    let api = with_attr(
        child_of(span(1, 2, "api", 5, 40), &root),
        "http.method",
        "POST",
    );
    let db = child_of(span(1, 3, "db", 10, 20), &api);
    let verdicts = judge(&[root.clone(), api, db], text);
    assert_eq!(verdicts.len(), 2);
    assert!(verdicts.iter().all(|v| v.passed), "{verdicts:?}");
    assert!(verdicts.iter().all(|v| v.kind == ExpectationKind::Graph));

    let get = with_attr(
        child_of(span(1, 2, "api", 5, 40), &root),
        "http.method",
        "GET",
    );
    let orphan = span(1, 3, "db", 10, 20);
    let verdicts = judge(&[root, get, orphan], text);
    let bad = failed(&verdicts);
    assert_eq!(bad.len(), 2, "{verdicts:?}");
    assert!(bad[0]
        .expectation
        .starts_with("expect.graph[0] \"frontend\" calls \"api\""));
    assert!(
        bad[0]
            .message()
            .contains("attribute http.method is \"GET\""),
        "{}",
        bad[0]
    );
    assert!(
        bad[1]
            .message()
            .contains("is a root span, expected parent \"api\""),
        "{}",
        bad[1]
    );
}

#[test]
fn resources_are_judged_on_what_the_run_had() {
    let text = r#"
[[expect.resource]]
type = "container"
name = "api"
exists = true

[[expect.resource]]
type = "volume"
name = "/data"

[[expect.resource]]
type = "network"
name = "test_network"
exists = false
"#;
    let context = Context::new(["api"])
        .with_resource(ResourceType::Container, "api")
        .with_resource(ResourceType::Volume, "/data")
        .with_resource(ResourceType::Network, "clnrm-net-1");
    let verdicts = evaluate(&[], &expectations(text), &context);
    assert_eq!(verdicts.len(), 3);
    assert!(verdicts.iter().all(|v| v.passed), "{verdicts:?}");

    let bare = evaluate(&[], &expectations(text), &Context::new(["web"]));
    let bad = failed(&bare);
    assert_eq!(bad.len(), 2);
    assert_eq!(bad[0].expectation, "expect.resource[0] container \"api\"");
    assert_eq!(bad[0].actual, "the run had no container");
}

const ROSETTA: &str = r#"
[otel_validation]
enabled = true
validate_spans = true
validate_traces = true
validate_temporal_ordering = true

[[otel_validation.expected_spans]]
name = "db.initialize"
required = true
min_duration_ms = 2000
max_duration_ms = 3000
[otel_validation.expected_spans.attributes]
"db.system" = "postgresql"

[[otel_validation.expected_spans]]
name = "request.handle"
min_count = 2
max_duration_ms = 600

[[otel_validation.expected_spans]]
name = "cache.warm"
required = false

[[otel_validation.temporal_constraints]]
span_name = "db.initialize"
must_precede = ["server.start"]
reason = "Database must initialize before server starts"

[[otel_validation.temporal_constraints]]
span_name = "db.initialize"
must_complete_before = "server.start.begins"
max_gap_ms = 100

[[otel_validation.expected_traces]]
span_names = ["db.initialize", "server.start", "request.handle"]
complete = true
ordered = true
parent_child = [["server.start", "request.handle"]]
"#;

fn rosetta_spans(gap_ms: u64, request_ms: u64) -> Vec<Span> {
    let db = with_attr(
        span(1, 1, "db.initialize", 0, 2100),
        "db.system",
        "postgresql",
    );
    let server = span(1, 2, "server.start", 2100 + gap_ms, 3300 + gap_ms);
    let base = 3400 + gap_ms;
    let r1 = child_of(
        span(1, 3, "request.handle", base, base + request_ms),
        &server,
    );
    let r2 = child_of(
        span(1, 4, "request.handle", base + 700, base + 900),
        &server,
    );
    vec![db, server, r1, r2]
}

#[test]
fn otel_validation_holds_for_the_trace_the_rosetta_file_describes() {
    let verdicts = judge(&rosetta_spans(50, 500), ROSETTA);
    assert!(verdicts.iter().all(|v| v.passed), "{verdicts:#?}");
    assert!(verdicts
        .iter()
        .all(|v| v.kind == ExpectationKind::OtelValidation));
    // 3 spans (one with min_count), 2 temporal checks, 1 trace.
    assert_eq!(verdicts.len(), 7);
}

#[test]
fn otel_validation_names_each_broken_part() {
    // The server starts 400 ms after the database (gap > 100), a request lasts 800 ms.
    let verdicts = judge(&rosetta_spans(400, 800), ROSETTA);
    let bad: Vec<String> = failed(&verdicts)
        .iter()
        .map(|v| v.expectation.clone())
        .collect();
    assert_eq!(
        bad,
        vec![
            "otel_validation.expected_spans[1] \"request.handle\"".to_string(),
            "otel_validation.temporal_constraints[1] \"db.initialize\" must_complete_before \"server.start\""
                .to_string(),
        ]
    );
    let gap = failed(&verdicts)[1].message();
    assert!(
        gap.contains("\"server.start\" starts 400.000 ms after"),
        "{gap}"
    );

    // Nothing received: every required part fails, the optional span holds.
    let none = judge(&[], ROSETTA);
    let bad = failed(&none);
    assert_eq!(bad.len(), none.len() - 1);
    assert!(none
        .iter()
        .any(|v| v.passed && v.expectation.contains("cache.warm")));
    let trace = bad
        .iter()
        .find(|v| {
            v.expectation
                .starts_with("otel_validation.expected_traces[0]")
        })
        .unwrap();
    assert!(
        trace.actual.contains("no span named \"db.initialize\""),
        "{trace}"
    );
}

#[test]
fn expected_traces_check_order_one_trace_and_parents() {
    let text = r#"
[[otel_validation.expected_traces]]
span_names = ["a", "b"]
complete = true
ordered = true
parent_child = [["a", "b"]]
"#;
    let a = span(1, 1, "a", 10, 20);
    let b_other_trace = span(2, 2, "b", 0, 5);
    let v = judge(&[a, b_other_trace], text);
    assert!(!v[0].passed);
    for part in [
        "no single trace holds all of them",
        "\"a\" starts at +10.000 ms, after \"b\" at +0.000 ms",
        "1 of 1 span(s) named \"b\" have no parent named \"a\"",
    ] {
        assert!(v[0].actual.contains(part), "{part}: {}", v[0].actual);
    }
}

#[test]
fn otel_validation_disabled_or_switched_off_judges_nothing_of_that_part() {
    let off = format!("{}\n", ROSETTA.replace("enabled = true", "enabled = false"));
    assert!(judge(&[], &off).is_empty());
    let no_spans = ROSETTA.replace("validate_spans = true", "validate_spans = false");
    let verdicts = judge(&[], &no_spans);
    assert!(verdicts
        .iter()
        .all(|v| !v.expectation.contains("expected_spans")));
    assert_eq!(verdicts.len(), 3);
}

#[test]
fn otel_validation_expect_tables_are_the_expect_kinds_under_its_name() {
    let text = r#"
[otel_validation]
expect_graph = { must_include = [["root", "child"]] }
expect_status = { all = "OK" }
"#;
    let root = span(1, 1, "root", 0, 10);
    let orphan = span(1, 2, "child", 1, 2);
    let verdicts = judge(&[root, orphan], text);
    let bad = failed(&verdicts);
    assert_eq!(bad.len(), 1, "{verdicts:?}");
    assert_eq!(
        bad[0].expectation,
        "otel_validation.expect_graph.must_include[0] [\"root\", \"child\"]"
    );
}

#[test]
fn awaited_names_include_the_legacy_tables() {
    let e = expectations(&format!(
        "{ROSETTA}\n[[expect.temporal]]\nbefore = \"x\"\nafter = \"y\"\n"
    ));
    let names: Vec<String> = e
        .awaited_span_names()
        .iter()
        .map(|p| p.as_str().to_string())
        .collect();
    for name in ["x", "y", "db.initialize", "server.start", "request.handle"] {
        assert!(names.contains(&name.to_string()), "{name} in {names:?}");
    }
    assert!(!names.contains(&"cache.warm".to_string()), "not required");
}
