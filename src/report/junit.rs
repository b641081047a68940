//! The JUnit XML consumer: one testcase per test, failures with the step, expected vs
//! actual and the output. Written once, at the end of the run.

use std::time::Duration;

use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestRerun, TestSuite};

use super::{Attempt, Event, Status, StepAttempt, TestFinished};

#[derive(Debug, Default)]
pub struct JunitReport {
    cases: Vec<TestCase>,
}

impl JunitReport {
    pub fn record(&mut self, event: &Event) {
        if let Event::TestFinished(finished) = event {
            self.record_test(finished);
        }
    }

    pub fn record_test(&mut self, finished: &TestFinished) {
        let status = finished.status;
        let mut case_status = match status {
            Status::Pass | Status::Flaky => TestCaseStatus::success(),
            Status::Skip => {
                let mut skipped = TestCaseStatus::skipped();
                if let Some(reason) = &finished.message {
                    skipped.set_message(reason.clone());
                }
                skipped
            }
            Status::Fail | Status::Error => {
                let kind = if status == Status::Fail {
                    NonSuccessKind::Failure
                } else {
                    NonSuccessKind::Error
                };
                let mut non_success = TestCaseStatus::non_success(kind);
                let mut description = String::new();
                if let Some(step) = &finished.failed_step {
                    non_success.set_message(format!("step `{step}` failed"));
                }
                if let Some(message) = &finished.message {
                    non_success.set_message(message.clone());
                }
                if let Some(failure) = &finished.failure {
                    description = format!(
                        "expected: {}\nactual:   {}\n--- stdout\n{}\n--- stderr\n{}",
                        failure.expected, failure.actual, failure.stdout, failure.stderr
                    );
                }
                if !description.is_empty() {
                    non_success.set_description(description);
                }
                non_success
            }
        };
        // nextest's convention: each failed attempt before a pass is a `<flakyFailure>`,
        // before a final failure a `<rerunFailure>`; the final attempt is the case itself.
        // Step attempts (`retries`, `wait_until`) come first: they are of the last
        // whole-test attempt's steps.
        let failed_steps: Vec<&StepAttempt> = finished
            .step_attempts
            .iter()
            .filter(|a| a.status != Status::Pass)
            .collect();
        let earlier_steps = match status {
            Status::Pass | Status::Flaky => failed_steps.len(),
            // `--flaky-result fail`: every failed attempt came before the pass.
            _ if finished.flaky_step_attempt().is_some() => failed_steps.len(),
            _ => failed_steps.len().saturating_sub(1),
        };
        case_status.add_reruns(failed_steps[..earlier_steps].iter().map(|a| step_rerun(a)));
        let earlier = finished.attempts.split_last().map_or(&[][..], |(_, e)| e);
        case_status.add_reruns(earlier.iter().map(rerun));
        let mut case = TestCase::new(finished.name.clone(), case_status);
        case.set_classname(finished.test.clone());
        case.set_time(Duration::from_secs_f64(finished.duration_ms / 1000.0));
        if finished.cached {
            case.add_property(("cached", "true"));
        }
        if let Some(isolation) = finished.isolation {
            case.add_property(("isolation", isolation));
        }
        self.cases.push(case);
    }

    pub fn cases(&self) -> usize {
        self.cases.len()
    }

    pub fn to_xml(&self, total: Duration) -> String {
        let mut suite = TestSuite::new("clnrm");
        suite.set_time(total);
        suite.add_test_cases(self.cases.clone());
        let mut report = Report::new("clnrm");
        report.set_time(total);
        report.add_test_suite(suite);
        report.to_string().expect("JUnit serializes")
    }
}

/// One failed step attempt as a JUnit rerun element.
fn step_rerun(attempt: &StepAttempt) -> TestRerun {
    let mut rerun = TestRerun::new(NonSuccessKind::Failure);
    let of = attempt.of.map(|of| format!(" of {of}")).unwrap_or_default();
    rerun.set_message(format!(
        "step `{}`: attempt {}{of} failed",
        attempt.step, attempt.attempt
    ));
    rerun.set_time(Duration::from_secs_f64(attempt.duration_ms / 1000.0));
    if let Some(failure) = &attempt.failure {
        rerun.set_description(format!(
            "expected: {}\nactual:   {}",
            failure.expected, failure.actual
        ));
        rerun.set_system_out(failure.stdout.clone());
        rerun.set_system_err(failure.stderr.clone());
    }
    rerun
}

/// One failed whole-test attempt as a JUnit rerun element.
fn rerun(attempt: &Attempt) -> TestRerun {
    let kind = if attempt.status == Status::Error {
        NonSuccessKind::Error
    } else {
        NonSuccessKind::Failure
    };
    let mut rerun = TestRerun::new(kind);
    let message = match (&attempt.failed_step, &attempt.message) {
        (Some(step), _) => format!("attempt {}: step `{step}` failed", attempt.attempt),
        (None, Some(message)) => format!("attempt {}: {message}", attempt.attempt),
        (None, None) => format!("attempt {} failed", attempt.attempt),
    };
    rerun.set_message(message);
    rerun.set_time(Duration::from_secs_f64(attempt.duration_ms / 1000.0));
    if let Some(failure) = &attempt.failure {
        rerun.set_description(format!(
            "expected: {}\nactual:   {}",
            failure.expected, failure.actual
        ));
    }
    rerun
}
