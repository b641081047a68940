//! `[expect]`, `[otel]` and `wait_for_span` as the config stage reads them: judged kinds kept
//! for the expect stage, mistakes located at their key, and the warning for services that send
//! their spans to their own localhost.

mod common;

use clnrm_config::Severity;
use common::*;

const STEP: &str = "[[steps]]\nname = \"s\"\ncommand = [\"true\"]\n";

#[test]
fn every_judged_kind_is_kept_for_the_expect_stage() {
    let p = ok(&format!(
        r#"{HEAD}{STEP}
[[expect.span]]
name = "db.*"
parent = "request"
kind = "client"
attrs.all = {{ "db.system" = "postgres" }}
[expect.order]
must_precede = [["a", "b"]]
[expect.status]
all = "OK"
[expect.counts]
spans_total = {{ gte = 2 }}
[[expect.window]]
outer = "request"
contains = ["db.query"]
[expect.graph]
must_include = [["request", "db.query"]]
acyclic = true
[expect.hermeticity]
no_external_services = true
"#
    ));
    assert!(p.config.unevaluated_expectations.is_empty());
    assert!(p.config.otel.collects());
    let e = p.config.otel.expect.unwrap().expectations().unwrap();
    assert_eq!(e.span[0].name.as_str(), "db.*");
    assert!(e.order.is_some() && e.status.is_some() && e.counts.is_some());
    assert_eq!(e.window.len(), 1);
    assert!(e.graph.is_some() && e.hermeticity.is_some());
}

#[test]
fn a_shape_the_stage_cannot_read_is_named_as_unevaluated_with_a_warning_at_its_kind() {
    let p = ok(&format!(
        "{HEAD}{STEP}[[expect.span]]\nname = \"x\"\nkind = \"sideways\"\n"
    ));
    assert_eq!(p.config.unevaluated_expectations, ["expect.span"]);
    let w = &p.warnings[0];
    assert_eq!(key(w), "expect.span");
    assert!(w.message.contains("sideways"), "{}", w.message);
    assert_eq!(w.line_col.map(|(line, _)| line), Some(7));
}

#[test]
fn an_unknown_key_inside_an_expectation_gets_did_you_mean() {
    let p = ok(&format!(
        "{HEAD}{STEP}[[expect.span]]\nname = \"x\"\nparnet = \"y\"\n"
    ));
    let w = &p.warnings[0];
    assert_eq!(key(w), "expect.span[0].parnet");
    assert_eq!(w.hint.as_deref(), Some("did you mean `parent`?"));
    // As everywhere in a test file, an unknown key is a warning (an error under --strict)
    // and the rest of the expectation is judged.
    assert_eq!(
        p.config.otel.expect.unwrap().expectations().unwrap().span[0].parent,
        None
    );
}

#[test]
fn the_originals_tables_are_read_for_judging() {
    let p = ok(&format!(
        "{HEAD}{STEP}[[expect.temporal]]\nbefore = \"a\"\nafter = \"b\"\n\
         [[expect.resource]]\ntype = \"container\"\nname = \"web\"\nexists = true\n\
         [[expect.graph]]\nparent = \"a\"\nchild = \"b\"\nrelationship = \"calls\"\n\
         [otel_validation]\nenabled = true\n[[otel_validation.expected_spans]]\nname = \"a\"\nmin_duration_ms = 5\n"
    ));
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
    assert!(p.config.unevaluated_expectations.is_empty());
    let e = p.config.otel.expect.unwrap().expectations().unwrap();
    assert_eq!(e.temporal.len(), 1);
    assert_eq!(e.resource.len(), 1);
    assert_eq!(e.graph.unwrap().edges.len(), 1);
    assert_eq!(
        e.otel_validation.unwrap().expected_spans[0].min_duration_ms,
        Some(5.0)
    );
}

#[test]
fn an_unknown_kind_is_named_and_a_bad_otel_validation_key_gets_did_you_mean() {
    let p = ok(&format!(
        "{HEAD}{STEP}[expect.tempral]\nx = 1\n[[expect.span]]\nname = \"a\"\n\
         [otel_validation]\n[[otel_validation.expected_spans]]\nname = \"a\"\nmin_duraton_ms = 5\n"
    ));
    assert_eq!(p.config.unevaluated_expectations, ["expect.tempral"]);
    let hints: Vec<(String, Option<String>)> = p
        .warnings
        .iter()
        .map(|w| (key(w).to_string(), w.hint.clone()))
        .collect();
    assert_eq!(
        hints,
        vec![
            (
                "expect.tempral".to_string(),
                Some("did you mean `temporal`?".to_string())
            ),
            (
                "otel_validation.expected_spans[0].min_duraton_ms".to_string(),
                Some("did you mean `min_duration_ms`?".to_string())
            ),
        ]
    );
}

#[test]
fn a_wrongly_typed_otel_validation_is_an_error_at_its_line() {
    let text =
        format!("{HEAD}{STEP}[otel_validation]\n[[otel_validation.expected_spans]]\nname = 3\n");
    let errors = parse(&text).unwrap_err();
    let e = errors.iter().find(|d| d.is_error()).unwrap();
    assert_eq!(key(e), "otel_validation");
    assert!(e.message.contains("[otel_validation]"), "{}", e.message);
    assert!(e.line_col.is_some());
}

#[test]
fn otel_flush_timeout_and_wait_for_span_are_read() {
    let p = ok(&format!(
        "{HEAD}[service.api]\nimage = \"i\"\nwait_for_span = \"server.ready\"\nwait_for_span_timeout_secs = 3\n\
         [[steps]]\nname = \"s\"\ncommand = [\"true\"]\n[otel]\nflush_timeout = \"2s\"\n"
    ));
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
    assert_eq!(p.config.otel.flush_timeout_ms, Some(2000));
    let wait = &p.config.otel.wait_for_span["api"];
    assert_eq!(
        (wait.span.as_str(), wait.timeout_ms),
        ("server.ready", Some(3000))
    );
    assert!(p.config.otel.declared);
}

#[test]
fn a_service_sending_spans_to_its_own_localhost_is_warned_about() {
    let p = ok(&format!(
        "{HEAD}[service.api]\nimage = \"i\"\nenv = {{ OTEL_EXPORTER_OTLP_ENDPOINT = \"http://localhost:4318\" }}\n{STEP}"
    ));
    let w = &p.warnings[0];
    assert_eq!(w.severity, Severity::Warning);
    assert_eq!(key(w), "service.api.env.OTEL_EXPORTER_OTLP_ENDPOINT");
    assert!(
        w.message.contains("localhost is the container itself"),
        "{}",
        w.message
    );
    assert!(w.hint.as_deref().unwrap().contains("otel-collector:4318"));
    // Not an unknown key: --strict keeps it a warning.
    assert!(parse_test_strict(&format!(
        "{HEAD}[service.api]\nimage = \"i\"\nenv = {{ E = \"127.0.0.1:4317\" }}\n{STEP}"
    )));
}

fn parse_test_strict(text: &str) -> bool {
    let mut input = input(text);
    input.strict = true;
    clnrm_config::parse_test(&input).is_ok()
}
