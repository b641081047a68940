//! The original clnrm's checks around a run (docs/reference.md §14): `should_fail` steps,
//! `[assertions]` judged on what the run observed, the trace context every service gets,
//! and clnrm's own spans added to a test's collection. What is judged is the pure expect
//! stage's; this module gathers what the run observed and applies the verdicts.

use std::collections::{BTreeMap, BTreeSet};
use std::time::SystemTime;

use clnrm_config::TestConfig;
use clnrm_exec::{StepFailure, StepStatus, TestOutcome, TestReport};
use clnrm_expect::{
    judge_assertions, AssertionVerdict, Assertions, ObservedRun, ObservedService, ObservedStep,
    Span,
};
use clnrm_plan::TestPlan;
use serde::{Deserialize, Serialize};

use crate::otel::self_spans::{self, SelfRun, TraceIds};
use crate::otel::TestReceiver;

use super::container_use::ContainerUse;

/// What a test asks of its run besides its steps' own checks and its span expectations.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TestChecks {
    /// Steps with `should_fail = true`.
    pub should_fail: BTreeSet<String>,
    pub assertions: Assertions,
    /// Step name → its scenario, for scenario steps.
    pub scenario_of: BTreeMap<String, String>,
    /// The scenarios in file order.
    pub scenarios: Vec<String>,
    /// Service → its plugin's metadata.
    pub metadata: BTreeMap<String, BTreeMap<String, String>>,
    /// `[otel]` is declared: clnrm's own spans join the test's collection.
    pub own_spans: bool,
    /// `[otel.resources]`, for clnrm's own spans.
    pub resources: BTreeMap<String, String>,
}

impl TestChecks {
    pub fn of(config: &TestConfig) -> TestChecks {
        let mut scenarios = Vec::new();
        let mut scenario_of = BTreeMap::new();
        for step in &config.steps {
            if !step.key_path.starts_with("scenario[") {
                continue;
            }
            let scenario = step
                .name
                .split('/')
                .next()
                .unwrap_or(&step.name)
                .to_string();
            if !scenarios.contains(&scenario) {
                scenarios.push(scenario.clone());
            }
            scenario_of.insert(step.name.clone(), scenario);
        }
        TestChecks {
            should_fail: config
                .steps
                .iter()
                .filter(|s| s.should_fail)
                .map(|s| s.name.clone())
                .collect(),
            assertions: config.assertions.clone(),
            scenario_of,
            scenarios,
            metadata: config
                .services
                .iter()
                .map(|(name, s)| (name.clone(), s.metadata.clone()))
                .collect(),
            own_spans: config.otel.declared,
            resources: config.otel.resources.clone(),
        }
    }

    /// The names clnrm's own spans will have for this test (with `[otel]`): the receiver
    /// need not wait for them.
    pub fn own_span_names(&self, steps: &[String]) -> Vec<String> {
        if !self.own_spans {
            return Vec::new();
        }
        self_spans::names(
            self.scenarios.iter().map(String::as_str),
            steps.iter().map(String::as_str),
        )
    }
}

/// A `should_fail` step runs with `continue_on_failure` (so a non-zero exit does not end
/// the test); the plan marks them so.
pub fn plan_should_fail(plan: &mut TestPlan, checks: &TestChecks) {
    for step in &mut plan.steps {
        if checks.should_fail.contains(&step.name) {
            step.continue_on_failure = true;
        }
    }
}

/// The plan as it runs: every container and step gets `TRACEPARENT` (clnrm.run as the
/// parent) and every container its `OTEL_SERVICE_NAME`, unless the test sets them. The
/// cache keys were taken from the plan before: these change with every run.
pub fn with_trace_context(plan: &TestPlan, ids: &TraceIds) -> TestPlan {
    let traceparent = ids.traceparent();
    let mut plan = plan.clone();
    for container in &mut plan.containers {
        container
            .env
            .entry("TRACEPARENT".to_string())
            .or_insert_with(|| traceparent.clone());
        container
            .env
            .entry("OTEL_SERVICE_NAME".to_string())
            .or_insert_with(|| container.service.clone());
    }
    for step in &mut plan.steps {
        step.env
            .entry("TRACEPARENT".to_string())
            .or_insert_with(|| traceparent.clone());
    }
    plan
}

/// `should_fail` steps judged by their exit code: non-zero passes, zero fails naming the
/// key. The outcome is then the first failed step's, as for any step.
pub fn apply_should_fail(report: &mut TestReport, checks: &TestChecks) {
    if checks.should_fail.is_empty() {
        return;
    }
    let mut changed = false;
    for step in &mut report.steps {
        if !checks.should_fail.contains(&step.name) || step.timed_out {
            continue;
        }
        changed = true;
        match step.exit_code {
            Some(code) if code != 0 => {
                step.status = StepStatus::Pass;
                step.failure = None;
                step.continued = false;
            }
            other => {
                step.status = StepStatus::Fail;
                step.continued = false;
                step.failure = Some(clnrm_exec::Mismatch {
                    expected: "a non-zero exit code (should_fail = true)".to_string(),
                    actual: match other {
                        Some(code) => format!("exit code {code}"),
                        None => "no exit code".to_string(),
                    },
                });
            }
        }
    }
    if !changed || matches!(report.outcome, TestOutcome::Error { .. }) {
        return;
    }
    report.outcome = match report.steps.iter().find(|s| s.status == StepStatus::Fail) {
        None => TestOutcome::Pass,
        Some(step) => {
            let mismatch = step.failure.clone().unwrap_or(clnrm_exec::Mismatch {
                expected: "the step passes".to_string(),
                actual: "it failed".to_string(),
            });
            TestOutcome::Fail(StepFailure {
                step: step.name.clone(),
                service: step.service.clone(),
                expected: mismatch.expected,
                actual: mismatch.actual,
                stdout: step.stdout.clone(),
                stderr: step.stderr.clone(),
            })
        }
    };
}

/// clnrm's own spans for this run, as one export request.
pub fn own_spans(
    (name, identity): (&str, &str),
    ids: TraceIds,
    started: SystemTime,
    report: &TestReport,
    images: &BTreeMap<String, String>,
    checks: &TestChecks,
) -> opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest {
    self_spans::export_request(&SelfRun {
        name,
        suite: identity,
        ids,
        started,
        report,
        scenarios: &checks.scenario_of,
        images,
        resources: &checks.resources,
        passed: report.outcome.is_pass(),
    })
}

/// What the run observed, for `[assertions]`.
pub fn observed(
    report: &TestReport,
    plan: &TestPlan,
    checks: &TestChecks,
    used: ContainerUse,
    collecting: bool,
    spans: Vec<Span>,
) -> ObservedRun {
    let steps = report
        .steps
        .iter()
        .map(|s| ObservedStep {
            name: s.name.clone(),
            scenario: checks.scenario_of.get(&s.name).cloned(),
            exit_code: if s.timed_out { None } else { s.exit_code },
            passed: s.status == StepStatus::Pass && !s.continued,
        })
        .collect();
    let services = plan
        .containers
        .iter()
        .map(|c| {
            let start = report.services.iter().find(|s| s.service == c.service);
            let mut env = c.env.clone();
            if collecting {
                for (k, v) in TestReceiver::service_env(&c.service) {
                    env.entry(k).or_insert(v);
                }
            }
            ObservedService {
                name: c.service.clone(),
                started: start.is_some(),
                reused: used.reused > 0,
                host_ports: start
                    .map(|s| s.ports.values().copied().collect())
                    .unwrap_or_default(),
                env,
                metadata: checks.metadata.get(&c.service).cloned().unwrap_or_default(),
            }
        })
        .collect();
    ObservedRun {
        steps,
        declared_steps: plan.steps.len(),
        scenarios: checks.scenarios.clone(),
        services,
        spans,
    }
}

/// Judges `[assertions]` and applies the verdict to the outcome. With `should_fail = true`
/// only that assertion is judged: the test passes when some step failed. Otherwise the
/// assertions are judged when every step passed, and the first that fails fails the test.
pub fn apply_assertions(
    report: &mut TestReport,
    assertions: &Assertions,
    run: &ObservedRun,
) -> Vec<AssertionVerdict> {
    if assertions.is_empty() || matches!(report.outcome, TestOutcome::Error { .. }) {
        return Vec::new();
    }
    if assertions.should_fail == Some(true) {
        let only = Assertions {
            should_fail: Some(true),
            ..Assertions::default()
        };
        let verdicts = judge_assertions(&only, run);
        report.outcome = match verdicts.iter().find(|v| !v.passed) {
            None => TestOutcome::Pass,
            Some(v) => fail(v),
        };
        return verdicts;
    }
    if !report.outcome.is_pass() {
        return Vec::new();
    }
    let verdicts = judge_assertions(assertions, run);
    if let Some(v) = verdicts.iter().find(|v| !v.passed) {
        report.outcome = fail(v);
    }
    verdicts
}

fn fail(v: &AssertionVerdict) -> TestOutcome {
    TestOutcome::Fail(StepFailure {
        step: v.assertion.clone(),
        service: String::new(),
        expected: v.expected.clone(),
        actual: v.actual.clone(),
        stdout: String::new(),
        stderr: String::new(),
    })
}
