//! What a test's report says beyond its outcome (docs/reference.md §15): the attempts of
//! its polled and retried steps, whether it was flaky, the values its steps captured, and
//! what its teardown printed. Read from the exec stage's report; nothing here runs.

use clnrm_exec::{StepStatus, TestReport};
use clnrm_plan::TestPlan;

use crate::report::{CapturedValue, Status, StepAttempt, StepFailure, StepOutput};

fn status(s: StepStatus) -> Status {
    match s {
        StepStatus::Pass => Status::Pass,
        StepStatus::Fail => Status::Fail,
    }
}

/// Every attempt of the steps that may run more than once.
pub(super) fn step_attempts(report: &TestReport) -> Vec<StepAttempt> {
    report
        .steps
        .iter()
        .flat_map(|step| {
            step.attempts.iter().map(|a| StepAttempt {
                step: step.name.clone(),
                attempt: a.attempt,
                of: step.attempts_allowed,
                status: status(a.status),
                exit_code: a.exit_code,
                duration_ms: a.duration_ms,
                failure: a.failure.as_ref().map(|m| StepFailure {
                    expected: m.expected.clone(),
                    actual: m.actual.clone(),
                    stdout: a.stdout.clone(),
                    stderr: a.stderr.clone(),
                }),
            })
        })
        .collect()
}

/// The first step that passed only on a retry, with the attempt and the most it had.
pub(super) fn flaky_step(report: &TestReport) -> Option<(String, u32, u32)> {
    let step = report.steps.iter().find(|s| s.flaky)?;
    Some((
        step.name.clone(),
        step.attempts.len() as u32,
        step.attempts_allowed.unwrap_or(step.attempts.len() as u32),
    ))
}

/// The failure `--flaky-result fail` turns a flaky pass into.
pub(super) fn flaky_failure(
    report: &TestReport,
    (step, attempt, of): &(String, u32, u32),
) -> StepFailure {
    let output = report.steps.iter().find(|s| &s.name == step);
    StepFailure {
        stdout: output.map(|s| s.stdout.clone()).unwrap_or_default(),
        stderr: output.map(|s| s.stderr.clone()).unwrap_or_default(),
        ..flaky_test_failure(*attempt, *of)
    }
}

/// The failure `--flaky-result fail` turns a pass on attempt `attempt` of `of` into (a
/// whole-test retry's; a step's adds the step's output).
pub(super) fn flaky_test_failure(attempt: u32, of: u32) -> StepFailure {
    StepFailure {
        expected: "to pass on its first attempt (--flaky-result fail)".to_string(),
        actual: format!("passed on attempt {attempt} of {of}"),
        stdout: String::new(),
        stderr: String::new(),
    }
}

/// The values the steps captured, in run order.
pub(super) fn captures(report: &TestReport) -> Vec<CapturedValue> {
    report
        .steps
        .iter()
        .flat_map(|step| {
            step.captured.iter().map(|c| CapturedValue {
                step: step.name.clone(),
                name: c.name.clone(),
                value: c.value.clone(),
            })
        })
        .collect()
}

/// What each teardown step that ran printed.
pub(super) fn teardown_output(plan: &TestPlan, report: &TestReport) -> Vec<StepOutput> {
    plan.teardown
        .iter()
        .filter_map(|t| report.steps.iter().find(|s| s.name == t.name))
        .map(|s| StepOutput {
            step: s.name.clone(),
            stdout: s.stdout.clone(),
            stderr: s.stderr.clone(),
        })
        .collect()
}
