//! Reports: one stream of [`Event`]s from the runner, read by three consumers that
//! know nothing of each other — human output, JSON lines, and the JUnit file.
//! (The shape is cargo-nextest's reporter: the runner never formats anything.)

mod cache_stats;
mod human;
mod junit;

use serde::Serialize;

pub use cache_stats::{format_bytes, format_stats_human};
pub use human::HumanReporter;
pub use junit::JunitReport;

/// How a test or step ended (SPEC §5).
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Fail,
    Error,
}

/// Why a step failed: what was expected, what happened, and the tail of the output.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct StepFailure {
    pub expected: String,
    pub actual: String,
    pub stdout: String,
    pub stderr: String,
}

/// Where a test's time went, in milliseconds.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct TestTimings {
    /// Getting the service containers ready (started, or reused from the pool).
    pub containers_ms: f64,
    pub execute_ms: f64,
    pub teardown_ms: f64,
    pub containers_reused: usize,
    pub containers_started: usize,
    pub containers_removed: usize,
    /// Waiting for spans after the last step (SPEC §9's flush rule); 0 without collection.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub spans_ms: f64,
}

fn is_zero(ms: &f64) -> bool {
    *ms == 0.0
}

/// Everything a run reports, in order. Field names are the stable ones of SPEC §8.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    RunStarted {
        tests: usize,
        jobs: usize,
    },
    /// `--dry-run`: what would happen to a test, and why.
    TestPlanned {
        test: String,
        name: String,
        /// `run`, `cached` or `error`.
        action: String,
        reason: String,
    },
    TestStarted {
        test: String,
        name: String,
    },
    StepFinished {
        test: String,
        step: String,
        service: String,
        status: Status,
        exit_code: Option<i64>,
        duration_ms: f64,
        #[serde(flatten, skip_serializing_if = "Option::is_none")]
        failure: Option<StepFailure>,
    },
    TestFinished {
        test: String,
        name: String,
        status: Status,
        cached: bool,
        duration_ms: f64,
        /// For `error`: what prevented the run.
        #[serde(skip_serializing_if = "Option::is_none")]
        message: Option<String>,
        /// For `fail`: the first failing step.
        #[serde(skip_serializing_if = "Option::is_none")]
        failed_step: Option<String>,
        #[serde(flatten, skip_serializing_if = "Option::is_none")]
        failure: Option<StepFailure>,
        /// Where the time went (absent when cached or never started).
        #[serde(skip_serializing_if = "Option::is_none")]
        timings: Option<TestTimings>,
        /// One entry per judged span expectation (SPEC §8, §9).
        #[serde(skip_serializing_if = "Vec::is_empty")]
        expectations: Vec<serde_json::Value>,
    },
    RunFinished {
        passed: usize,
        failed: usize,
        errors: usize,
        cached: usize,
        duration_ms: f64,
    },
}

/// Outcome counts; [`RunStats::exit_ok`] turns them into the exit status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunStats {
    pub passed: usize,
    pub failed: usize,
    pub errors: usize,
    pub cached: usize,
}

impl RunStats {
    pub fn record(&mut self, event: &Event) {
        if let Event::TestFinished { status, cached, .. } = event {
            match status {
                Status::Pass => self.passed += 1,
                Status::Fail => self.failed += 1,
                Status::Error => self.errors += 1,
            }
            if *cached {
                self.cached += 1;
            }
        }
    }

    pub fn exit_ok(&self) -> bool {
        self.failed == 0 && self.errors == 0
    }

    pub fn finished(&self, duration_ms: f64) -> Event {
        Event::RunFinished {
            passed: self.passed,
            failed: self.failed,
            errors: self.errors,
            cached: self.cached,
            duration_ms,
        }
    }
}

/// One JSON object per line.
pub fn json_line(event: &Event) -> String {
    serde_json::to_string(event).expect("events serialize")
}

/// Milliseconds as the reports show them.
pub fn ms(duration: std::time::Duration) -> f64 {
    (duration.as_secs_f64() * 1000.0 * 10.0).round() / 10.0
}

/// The last `max_lines` lines of `text`.
pub fn tail(text: &str, max_lines: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(max_lines);
    lines[start..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_serialize_with_the_stable_field_names() {
        let event = Event::TestFinished {
            test: "tests/a.clnrm.toml".into(),
            name: "a".into(),
            status: Status::Fail,
            cached: false,
            duration_ms: 12.5,
            message: None,
            failed_step: Some("s".into()),
            failure: Some(StepFailure {
                expected: "exit code 0".into(),
                actual: "exit code 1".into(),
                stdout: "out".into(),
                stderr: "".into(),
            }),
            timings: None,
            expectations: Vec::new(),
        };
        let value: serde_json::Value = serde_json::from_str(&json_line(&event)).unwrap();
        assert_eq!(value["event"], "test_finished");
        assert_eq!(value["status"], "fail");
        assert_eq!(value["expected"], "exit code 0");
        assert_eq!(value["actual"], "exit code 1");
        assert!(value.get("message").is_none());
    }

    #[test]
    fn stats_count_outcomes_and_decide_the_exit() {
        let mut stats = RunStats::default();
        for (status, cached) in [
            (Status::Pass, true),
            (Status::Pass, false),
            (Status::Error, false),
        ] {
            stats.record(&Event::TestFinished {
                test: "t".into(),
                name: "t".into(),
                status,
                cached,
                duration_ms: 0.0,
                message: None,
                failed_step: None,
                failure: None,
                timings: None,
                expectations: Vec::new(),
            });
        }
        assert_eq!((stats.passed, stats.errors, stats.cached), (2, 1, 1));
        assert!(!stats.exit_ok());
        assert_eq!(tail("a\nb\nc", 2), "b\nc");
    }
}
