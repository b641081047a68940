//! The TAP 14 consumer (`clnrm run --format tap`): the version line, the plan, one
//! test point per test as it finishes, and for a failure a YAML block with the step,
//! its line, expected vs actual and the tail of its output. Steps are not test
//! points of their own: a TAP consumer counts tests, as the other reports do.

use super::{tail, Event, PlannedAction, Status, TestFinished};

/// Turns events into TAP lines; the caller writes them.
#[derive(Debug, Default)]
pub struct TapReporter {
    number: usize,
}

impl TapReporter {
    /// The TAP lines `event` adds (none for events TAP has no place for).
    pub fn record(&mut self, event: &Event) -> Vec<String> {
        match event {
            Event::RunStarted { tests, .. } => {
                vec!["TAP version 14".to_string(), format!("1..{tests}")]
            }
            Event::TestPlanned(planned) => {
                self.number += 1;
                let point = if planned.action == PlannedAction::Error {
                    "not ok"
                } else {
                    "ok"
                };
                vec![format!(
                    "{point} {} - {} # SKIP {} ({})",
                    self.number,
                    description(&planned.test, &planned.name),
                    planned.action.as_str(),
                    escape(&planned.reason)
                )]
            }
            Event::TestFinished(finished) => self.test_point(finished),
            Event::RunFinished(run) => vec![format!("# {}", run.summary_line())],
            Event::TestStarted { .. } | Event::StepFinished { .. } => Vec::new(),
        }
    }

    fn test_point(&mut self, finished: &TestFinished) -> Vec<String> {
        self.number += 1;
        let mut text = description(&finished.test, &finished.name);
        if finished.cached {
            text.push_str(" (cached)");
        }
        if finished.reused() {
            text.push_str(" (reused containers)");
        }
        match finished.status {
            // A pass after polls (`wait_until`) shows its attempts.
            Status::Pass if finished.step_attempts.is_empty() => {
                return vec![format!("ok {} - {text}", self.number)]
            }
            Status::Skip => {
                let reason = finished.message.as_deref().unwrap_or("skipped");
                return vec![format!(
                    "ok {} - {text} # SKIP {}",
                    self.number,
                    escape(reason)
                )];
            }
            _ => {}
        }
        let point = if matches!(finished.status, Status::Pass | Status::Flaky) {
            "ok"
        } else {
            "not ok"
        };
        let mut lines = vec![format!("{point} {} - {text}", self.number)];
        // YAML diagnostics; every value is JSON (a string, a number, an array), which YAML
        // reads as is.
        let mut fields: Vec<(&str, serde_json::Value)> = vec![(
            "severity",
            match finished.status {
                Status::Pass => "pass".into(),
                Status::Fail => "fail".into(),
                Status::Flaky => "flaky".into(),
                _ => "error".into(),
            },
        )];
        if let Some(note) = finished.flaky_note() {
            fields.push(("message", note.into()));
        }
        if !finished.step_attempts.is_empty() {
            let attempts =
                serde_json::to_value(&finished.step_attempts).expect("attempts serialize");
            fields.push(("step_attempts", attempts));
        }
        if let Some(note) = finished.attempts_note() {
            fields.push(("attempts", finished.attempts.len().into()));
            fields.push(("attempts_note", note.into()));
            let failed: Vec<serde_json::Value> = finished
                .attempts
                .iter()
                .filter(|a| a.status != Status::Pass)
                .map(|attempt| match (&attempt.failed_step, &attempt.message) {
                    (Some(step), _) => format!("attempt {}: step `{step}` failed", attempt.attempt),
                    (None, Some(message)) => format!("attempt {}: {message}", attempt.attempt),
                    (None, None) => format!("attempt {} failed", attempt.attempt),
                })
                .map(serde_json::Value::from)
                .collect();
            fields.push(("failed_attempts", failed.into()));
        }
        if let Some(step) = &finished.failed_step {
            fields.push(("message", format!("step `{step}` failed").into()));
            fields.push(("step", step.as_str().into()));
        }
        if let Some(message) = &finished.message {
            fields.push(("message", message.as_str().into()));
        }
        fields.push(("file", finished.test.as_str().into()));
        if let Some(line) = finished.line {
            fields.push(("line", line.into()));
        }
        if let Some(failure) = &finished.failure {
            fields.push(("expected", failure.expected.as_str().into()));
            fields.push(("actual", failure.actual.as_str().into()));
            fields.push(("stdout", tail(&failure.stdout, 10).into()));
            fields.push(("stderr", tail(&failure.stderr, 10).into()));
        }
        lines.push("  ---".to_string());
        for (key, value) in fields {
            let quoted = serde_json::to_string(&value).expect("JSON values serialize");
            lines.push(format!("  {key}: {quoted}"));
        }
        lines.push("  ...".to_string());
        lines
    }
}

fn description(test: &str, name: &str) -> String {
    escape(&format!("{test} ({name})"))
}

/// TAP reads `#` as the start of a directive and a backslash as an escape.
fn escape(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('#', "\\#")
        .replace(['\n', '\r'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::StepFailure;

    fn finished(status: Status, name: &str) -> TestFinished {
        let test = format!("tests/{name}.clnrm.toml");
        TestFinished::without_steps(test, name.to_string(), status, false, 5.0, None)
    }

    #[test]
    fn a_failure_is_a_not_ok_point_with_its_step_and_line_in_yaml() {
        let mut tap = TapReporter::default();
        let mut lines = tap.record(&Event::RunStarted { tests: 2, jobs: 1 });
        lines.extend(tap.record(&Event::TestFinished(finished(Status::Pass, "a#1"))));
        let mut failed = finished(Status::Fail, "b");
        failed.failed_step = Some("greet".into());
        failed.line = Some(9);
        failed.failure = Some(StepFailure {
            expected: "output matching `^bye`".into(),
            actual: "hello \"world\"".into(),
            stdout: "hello \"world\"\n".into(),
            stderr: String::new(),
        });
        lines.extend(tap.record(&Event::TestFinished(failed)));
        assert_eq!(
            lines[..4],
            [
                "TAP version 14",
                "1..2",
                "ok 1 - tests/a\\#1.clnrm.toml (a\\#1)",
                "not ok 2 - tests/b.clnrm.toml (b)",
            ]
        );
        assert!(lines.contains(&"  line: 9".to_string()), "{lines:#?}");
        assert!(lines.contains(&"  actual: \"hello \\\"world\\\"\"".to_string()));
        assert_eq!(lines.last().unwrap(), "  ...");
    }
}
