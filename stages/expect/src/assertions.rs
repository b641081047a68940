//! The original clnrm's `[assertions]` (its v0.4 format), judged on what a run observed: the
//! steps that ran and how they ended, the services that started with their environment and
//! metadata, and the spans received. Pure: an [`ObservedRun`] and the [`Assertions`] in,
//! one [`AssertionVerdict`] per assertion out.
//!
//! The original parsed these keys and never evaluated them; their meaning here is the one
//! their names state, chosen so that a run that did not do the work cannot pass:
//! `container_should_have_executed_commands = N` needs N commands that really ran in
//! containers (at least N: the `run` line of a scenario counts too), and
//! `temporal_ordering_should_be_valid` fails when no span was received to judge.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::span::Span;

/// A test's `[assertions]`; each `None` (or empty) is not asserted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Assertions {
    /// At least this many commands ran in containers (steps that got an exit code).
    pub container_should_have_executed_commands: Option<u64>,
    /// `true`: no service published a port on the host, and every container was started
    /// for this test on its own network (none reused from another test).
    pub execution_should_be_hermetic: Option<bool>,
    /// `true`: every step ran and passed (one let through by `continue_on_failure` counts
    /// as failed).
    pub all_steps_should_succeed: Option<bool>,
    /// `true`: every scenario's steps ran and passed.
    pub all_scenarios_should_pass: Option<bool>,
    /// These services started.
    pub service_should_start: Vec<String>,
    /// `true`: every service's environment had `OTEL_SERVICE_NAME` and
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub otel_environment_configured: Option<bool>,
    /// `true`: spans were received, each ends no earlier than it starts, and each lies
    /// within its parent's start..end when the parent was received.
    pub temporal_ordering_should_be_valid: Option<bool>,
    /// Every started service's metadata has these keys.
    pub service_metadata_should_contain: Vec<String>,
    /// `true`: the test is expected to fail: some step failed (and the test then passes).
    pub should_fail: Option<bool>,
}

/// Every `[assertions]` key, in the order they are judged.
pub const ASSERTION_KEYS: &[&str] = &[
    "container_should_have_executed_commands",
    "execution_should_be_hermetic",
    "all_steps_should_succeed",
    "all_scenarios_should_pass",
    "service_should_start",
    "otel_environment_configured",
    "temporal_ordering_should_be_valid",
    "service_metadata_should_contain",
    "should_fail",
];

impl Assertions {
    pub fn is_empty(&self) -> bool {
        self == &Assertions::default()
    }
}

/// One step as the run saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct ObservedStep {
    pub name: String,
    /// The scenario it belongs to, for steps of a `[[scenario]]`.
    pub scenario: Option<String>,
    /// `None` when the command never got to exit (not started, timed out).
    pub exit_code: Option<i64>,
    pub passed: bool,
}

/// One service as the run saw it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ObservedService {
    pub name: String,
    /// Its container was started (or taken warm) and became ready.
    pub started: bool,
    /// Taken from another test's run (`--reuse`) rather than started for this one.
    pub reused: bool,
    /// Container ports published on the host.
    pub host_ports: Vec<u16>,
    /// The environment its container was created with.
    pub env: BTreeMap<String, String>,
    pub metadata: BTreeMap<String, String>,
}

/// What a run observed, for judging `[assertions]`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ObservedRun {
    /// The test's steps in run order; those that never ran are absent.
    pub steps: Vec<ObservedStep>,
    /// How many steps the test declares.
    pub declared_steps: usize,
    /// The scenarios the test declares.
    pub scenarios: Vec<String>,
    pub services: Vec<ObservedService>,
    pub spans: Vec<Span>,
}

/// The judgement of one assertion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssertionVerdict {
    /// `assertions.all_steps_should_succeed`.
    pub assertion: String,
    pub passed: bool,
    pub expected: String,
    pub actual: String,
}

/// Judges every assertion present, in [`ASSERTION_KEYS`] order.
pub fn judge_assertions(assertions: &Assertions, run: &ObservedRun) -> Vec<AssertionVerdict> {
    let mut out = Vec::new();
    let mut push = |key: &str, passed: bool, expected: String, actual: String| {
        out.push(AssertionVerdict {
            assertion: format!("assertions.{key}"),
            passed,
            expected,
            actual,
        })
    };
    if let Some(n) = assertions.container_should_have_executed_commands {
        let ran = run.steps.iter().filter(|s| s.exit_code.is_some()).count() as u64;
        push(
            "container_should_have_executed_commands",
            ran >= n,
            format!("at least {n} command(s) executed in containers"),
            format!("{ran} executed"),
        );
    }
    if assertions.execution_should_be_hermetic == Some(true) {
        let leaks: Vec<String> = run
            .services
            .iter()
            .filter_map(|s| {
                if !s.host_ports.is_empty() {
                    Some(format!(
                        "service `{}` published ports {:?} on the host",
                        s.name, s.host_ports
                    ))
                } else if s.reused {
                    Some(format!(
                        "service `{}` ran in a container reused from another test",
                        s.name
                    ))
                } else {
                    None
                }
            })
            .collect();
        push(
            "execution_should_be_hermetic",
            leaks.is_empty(),
            "every service in a container of its own test, no port published on the host"
                .to_string(),
            if leaks.is_empty() {
                format!("{} service(s), all isolated", run.services.len())
            } else {
                leaks.join("; ")
            },
        );
    }
    if assertions.all_steps_should_succeed == Some(true) {
        let failed: Vec<&str> = run
            .steps
            .iter()
            .filter(|s| !s.passed)
            .map(|s| s.name.as_str())
            .collect();
        let skipped = run.declared_steps.saturating_sub(run.steps.len());
        let mut actual = Vec::new();
        if !failed.is_empty() {
            actual.push(format!("failed: {}", failed.join(", ")));
        }
        if skipped > 0 {
            actual.push(format!("{skipped} step(s) did not run"));
        }
        push(
            "all_steps_should_succeed",
            actual.is_empty(),
            format!("all {} step(s) ran and passed", run.declared_steps),
            if actual.is_empty() {
                format!("{} passed", run.steps.len())
            } else {
                actual.join("; ")
            },
        );
    }
    if assertions.all_scenarios_should_pass == Some(true) {
        let bad: Vec<&str> = run
            .scenarios
            .iter()
            .filter(|scenario| {
                let steps: Vec<&ObservedStep> = run
                    .steps
                    .iter()
                    .filter(|s| s.scenario.as_deref() == Some(scenario.as_str()))
                    .collect();
                steps.is_empty() || steps.iter().any(|s| !s.passed)
            })
            .map(String::as_str)
            .collect();
        push(
            "all_scenarios_should_pass",
            bad.is_empty() && !run.scenarios.is_empty(),
            format!("all {} scenario(s) passed", run.scenarios.len()),
            if run.scenarios.is_empty() {
                "the test has no [[scenario]]".to_string()
            } else if bad.is_empty() {
                "all passed".to_string()
            } else {
                format!("failed or did not run: {}", bad.join(", "))
            },
        );
    }
    for name in &assertions.service_should_start {
        let started = run.services.iter().any(|s| &s.name == name && s.started);
        push(
            "service_should_start",
            started,
            format!("service `{name}` started"),
            match run.services.iter().find(|s| &s.name == name) {
                Some(s) if s.started => "it started".to_string(),
                Some(_) => "it did not start".to_string(),
                None => format!(
                    "no such service; services: {}",
                    names(run.services.iter().map(|s| s.name.as_str()))
                ),
            },
        );
    }
    if assertions.otel_environment_configured == Some(true) {
        const NEEDED: [&str; 2] = ["OTEL_SERVICE_NAME", "OTEL_EXPORTER_OTLP_ENDPOINT"];
        let missing: Vec<String> = run
            .services
            .iter()
            .filter_map(|s| {
                let lacks: Vec<&str> = NEEDED
                    .iter()
                    .copied()
                    .filter(|k| !s.env.contains_key(*k))
                    .collect();
                (!lacks.is_empty()).then(|| format!("`{}` lacks {}", s.name, lacks.join(", ")))
            })
            .collect();
        push(
            "otel_environment_configured",
            missing.is_empty() && !run.services.is_empty(),
            format!("every service has {}", NEEDED.join(" and ")),
            if run.services.is_empty() {
                "no service ran".to_string()
            } else if missing.is_empty() {
                "all have them".to_string()
            } else {
                missing.join("; ")
            },
        );
    }
    if assertions.temporal_ordering_should_be_valid == Some(true) {
        let problems = temporal_problems(&run.spans);
        push(
            "temporal_ordering_should_be_valid",
            !run.spans.is_empty() && problems.is_empty(),
            "spans received, each within its parent's time".to_string(),
            if run.spans.is_empty() {
                "no spans received".to_string()
            } else if problems.is_empty() {
                format!("{} span(s), all consistent", run.spans.len())
            } else {
                problems.join("; ")
            },
        );
    }
    if !assertions.service_metadata_should_contain.is_empty() {
        let started: Vec<&ObservedService> = run.services.iter().filter(|s| s.started).collect();
        let lacking: Vec<String> = started
            .iter()
            .filter_map(|s| {
                let lacks: Vec<&str> = assertions
                    .service_metadata_should_contain
                    .iter()
                    .map(String::as_str)
                    .filter(|k| !s.metadata.contains_key(*k))
                    .collect();
                (!lacks.is_empty()).then(|| {
                    format!(
                        "`{}` lacks {} (has: {})",
                        s.name,
                        lacks.join(", "),
                        names(s.metadata.keys().map(String::as_str))
                    )
                })
            })
            .collect();
        push(
            "service_metadata_should_contain",
            lacking.is_empty() && !started.is_empty(),
            format!(
                "every started service's metadata has {}",
                assertions.service_metadata_should_contain.join(", ")
            ),
            if started.is_empty() {
                "no service started".to_string()
            } else if lacking.is_empty() {
                "all have them".to_string()
            } else {
                lacking.join("; ")
            },
        );
    }
    if assertions.should_fail == Some(true) {
        let failed: Vec<&str> = run
            .steps
            .iter()
            .filter(|s| !s.passed)
            .map(|s| s.name.as_str())
            .collect();
        push(
            "should_fail",
            !failed.is_empty(),
            "the test fails: some step fails".to_string(),
            if failed.is_empty() {
                "every step passed".to_string()
            } else {
                format!("failed: {}", failed.join(", "))
            },
        );
    }
    out
}

fn names<'a>(items: impl Iterator<Item = &'a str>) -> String {
    let all: Vec<&str> = items.collect();
    if all.is_empty() {
        "none".to_string()
    } else {
        all.join(", ")
    }
}

/// Spans that end before they start, and children outside their parent's time.
fn temporal_problems(spans: &[Span]) -> Vec<String> {
    let by_id: BTreeMap<_, &Span> = spans.iter().map(|s| ((s.trace_id, s.span_id), s)).collect();
    let mut out = Vec::new();
    for s in spans {
        if s.end_unix_nanos < s.start_unix_nanos {
            out.push(format!("{:?} ends before it starts", s.name));
        }
        let parent = s.parent_span_id.and_then(|p| by_id.get(&(s.trace_id, p)));
        if let Some(p) = parent {
            if s.start_unix_nanos < p.start_unix_nanos || s.end_unix_nanos > p.end_unix_nanos {
                out.push(format!("{:?} runs outside its parent {:?}", s.name, p.name));
            }
        }
    }
    out
}
