//! The JUnit XML consumer: one testcase per test, failures with the step, expected vs
//! actual and the output. Written once, at the end of the run.

use std::time::Duration;

use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};

use super::{Event, Status, TestFinished};

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
        let mut case = TestCase::new(finished.name.clone(), case_status);
        case.set_classname(finished.test.clone());
        case.set_time(Duration::from_secs_f64(finished.duration_ms / 1000.0));
        if finished.cached {
            case.add_property(("cached", "true"));
        }
        self.cases.push(case);
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
