//! `[assertions]` judged on what a run observed: each key holds for a run that did the work
//! and fails, saying why, for one that did not.

use std::collections::BTreeMap;

use clnrm_expect::{
    judge_assertions, AssertionVerdict, Assertions, ObservedRun, ObservedService, ObservedStep,
    Span, SpanId, TraceId,
};

fn step(name: &str, scenario: Option<&str>, exit: Option<i64>, passed: bool) -> ObservedStep {
    ObservedStep {
        name: name.to_string(),
        scenario: scenario.map(str::to_string),
        exit_code: exit,
        passed,
    }
}

fn service(name: &str) -> ObservedService {
    ObservedService {
        name: name.to_string(),
        started: true,
        env: BTreeMap::from([
            ("OTEL_SERVICE_NAME".to_string(), name.to_string()),
            (
                "OTEL_EXPORTER_OTLP_ENDPOINT".to_string(),
                "http://otel-collector:4318".to_string(),
            ),
        ]),
        metadata: BTreeMap::from([
            ("host".to_string(), name.to_string()),
            ("port".to_string(), "8000".to_string()),
        ]),
        ..ObservedService::default()
    }
}

fn span(id: u64, parent: Option<u64>, start: u64, end: u64) -> Span {
    let mut s = Span::new(
        TraceId::from_u128(1),
        SpanId::from_u64(id),
        format!("s{id}"),
    );
    s.parent_span_id = parent.map(SpanId::from_u64);
    s.start_unix_nanos = start;
    s.end_unix_nanos = end;
    s
}

/// A run of two scenarios' steps in one service, every step passing, with spans.
fn good_run() -> ObservedRun {
    ObservedRun {
        steps: vec![
            step("a", Some("first"), Some(0), true),
            step("first/b", Some("first"), Some(0), true),
            step("second", Some("second"), Some(0), true),
        ],
        declared_steps: 3,
        scenarios: vec!["first".to_string(), "second".to_string()],
        services: vec![service("db")],
        spans: vec![span(1, None, 0, 100), span(2, Some(1), 10, 90)],
    }
}

fn every_key() -> Assertions {
    Assertions {
        container_should_have_executed_commands: Some(3),
        execution_should_be_hermetic: Some(true),
        all_steps_should_succeed: Some(true),
        all_scenarios_should_pass: Some(true),
        service_should_start: vec!["db".to_string()],
        otel_environment_configured: Some(true),
        temporal_ordering_should_be_valid: Some(true),
        service_metadata_should_contain: vec!["host".to_string(), "port".to_string()],
        should_fail: None,
    }
}

fn failed(verdicts: &[AssertionVerdict]) -> Vec<(&str, &str)> {
    verdicts
        .iter()
        .filter(|v| !v.passed)
        .map(|v| (v.assertion.as_str(), v.actual.as_str()))
        .collect()
}

#[test]
fn a_run_that_did_the_work_meets_every_assertion() {
    let verdicts = judge_assertions(&every_key(), &good_run());
    assert_eq!(verdicts.len(), 8);
    assert!(failed(&verdicts).is_empty(), "{verdicts:#?}");
    assert!(judge_assertions(&Assertions::default(), &good_run()).is_empty());
}

#[test]
fn an_echo_that_ran_nothing_fails_each_assertion_with_its_reason() {
    let run = ObservedRun {
        steps: vec![step("a", Some("first"), None, false)],
        declared_steps: 3,
        scenarios: vec!["first".to_string(), "second".to_string()],
        services: vec![ObservedService {
            name: "db".to_string(),
            host_ports: vec![8000],
            ..ObservedService::default()
        }],
        spans: Vec::new(),
    };
    let verdicts = judge_assertions(&every_key(), &run);
    assert_eq!(
        failed(&verdicts),
        vec![
            (
                "assertions.container_should_have_executed_commands",
                "0 executed"
            ),
            (
                "assertions.execution_should_be_hermetic",
                "service `db` published ports [8000] on the host"
            ),
            (
                "assertions.all_steps_should_succeed",
                "failed: a; 2 step(s) did not run"
            ),
            (
                "assertions.all_scenarios_should_pass",
                "failed or did not run: first, second"
            ),
            ("assertions.service_should_start", "it did not start"),
            (
                "assertions.otel_environment_configured",
                "`db` lacks OTEL_SERVICE_NAME, OTEL_EXPORTER_OTLP_ENDPOINT"
            ),
            (
                "assertions.temporal_ordering_should_be_valid",
                "no spans received"
            ),
            (
                "assertions.service_metadata_should_contain",
                "no service started"
            ),
        ]
    );
}

#[test]
fn counts_are_at_least_and_reuse_is_not_hermetic() {
    let mut run = good_run();
    let four = Assertions {
        container_should_have_executed_commands: Some(4),
        execution_should_be_hermetic: Some(true),
        ..Assertions::default()
    };
    run.services[0].reused = true;
    let v = judge_assertions(&four, &run);
    assert_eq!(
        failed(&v),
        vec![
            (
                "assertions.container_should_have_executed_commands",
                "3 executed"
            ),
            (
                "assertions.execution_should_be_hermetic",
                "service `db` ran in a container reused from another test"
            ),
        ]
    );
}

#[test]
fn spans_outside_their_parent_and_unknown_services_and_metadata_are_named() {
    let mut run = good_run();
    run.spans = vec![span(1, None, 0, 100), span(2, Some(1), 50, 150)];
    let a = Assertions {
        temporal_ordering_should_be_valid: Some(true),
        service_should_start: vec!["cache".to_string()],
        service_metadata_should_contain: vec!["username".to_string()],
        ..Assertions::default()
    };
    let v = judge_assertions(&a, &run);
    assert_eq!(
        failed(&v),
        vec![
            (
                "assertions.service_should_start",
                "no such service; services: db"
            ),
            (
                "assertions.temporal_ordering_should_be_valid",
                "\"s2\" runs outside its parent \"s1\""
            ),
            (
                "assertions.service_metadata_should_contain",
                "`db` lacks username (has: host, port)"
            ),
        ]
    );
}

#[test]
fn should_fail_holds_only_when_a_step_failed() {
    let a = Assertions {
        should_fail: Some(true),
        ..Assertions::default()
    };
    let v = judge_assertions(&a, &good_run());
    assert_eq!(
        failed(&v),
        vec![("assertions.should_fail", "every step passed")]
    );
    let mut run = good_run();
    run.steps[1].passed = false;
    assert!(failed(&judge_assertions(&a, &run)).is_empty());
}

#[test]
fn all_scenarios_needs_scenarios() {
    let mut run = good_run();
    run.scenarios.clear();
    let a = Assertions {
        all_scenarios_should_pass: Some(true),
        ..Assertions::default()
    };
    assert_eq!(
        failed(&judge_assertions(&a, &run)),
        vec![(
            "assertions.all_scenarios_should_pass",
            "the test has no [[scenario]]"
        )]
    );
}
