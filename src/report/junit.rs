//! The JUnit XML consumer: one testcase per test, failures with the step, expected vs
//! actual and the output. Written once, at the end of the run.

use std::time::Duration;

use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestRerun, TestSuite};

use super::{Attempt, Event, Status, TestFinished};

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
        let case_status = match status {
            Status::Pass => TestCaseStatus::success(),
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
        let mut case_status = case_status;
        // nextest's convention: a pass after failed attempts is a success with one
        // `<flakyFailure>` per failed attempt; a failure keeps its earlier failed attempts
        // as `<rerunFailure>`s (the last attempt is the failure itself).
        let failed: Vec<&Attempt> = finished
            .attempts
            .iter()
            .filter(|a| a.status != Status::Pass)
            .collect();
        let earlier = match status {
            Status::Pass => failed.len(),
            _ if finished.outcome.is_some() => failed.len(),
            _ => failed.len().saturating_sub(1),
        };
        case_status.add_reruns(failed[..earlier].iter().map(|a| rerun(a)));
        let mut case = TestCase::new(finished.name.clone(), case_status);
        case.set_classname(finished.test.clone());
        case.set_time(Duration::from_secs_f64(finished.duration_ms / 1000.0));
        if finished.cached {
            case.add_property(("cached", "true"));
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

/// One failed attempt as a JUnit rerun element.
fn rerun(attempt: &Attempt) -> TestRerun {
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
