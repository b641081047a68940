//! Reports: one stream of [`Event`]s from the runner, read by consumers that know
//! nothing of each other — human output, JSON lines, TAP, GitHub annotations, the
//! JUnit file and the HTML page — and
//! the `clnrm dev` session's events, read by the dev panel or its JSON object.
//! (The shape is cargo-nextest's reporter: the runner never formats anything.)

mod cache_stats;
mod dev_panel;
mod github;
mod graph;
mod html;
mod human;
mod junit;
mod lines;
mod style;
mod tap;

use serde::Serialize;

pub use cache_stats::{format_bytes, format_stats_human};
pub use dev_panel::{DevJson, DevPanel};
pub use github::{github_actions_log, GithubAnnotations};
pub use graph::{DependencyGraph, GraphEdge, GraphNode, NodeKind};
pub use html::HtmlReport;
pub use human::HumanReporter;
pub use junit::JunitReport;
pub use lines::{step_line, template_step_line, SourceLines};
pub use style::{Palette, BOLD, CLEAR_SCREEN, FAIL, PASS, SUMMARY_FAILED, SUMMARY_OK, WARN};
pub use tap::TapReporter;

/// How a skipped test's reason reads when its file gives none.
pub fn default_skip_reason(env: &str) -> String {
    format!("${env} is set")
}

/// How a test or step ended (docs/reference.md §5).
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Fail,
    Error,
    /// Not run: its `skip_if` held (`message` says why). Never a failure.
    Skip,
    /// Passed after a failed attempt (`attempts` lists them). Counted as passed, never cached.
    Flaky,
}

/// One attempt of a test run more than once (`[meta] retries`), each on fresh containers.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Attempt {
    /// 1-based.
    pub attempt: u32,
    pub status: Status,
    pub duration_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed_step: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub failure: Option<StepFailure>,
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
    /// Rendering the template (0 for a plain test file or a memo hit's lookup time).
    pub render_ms: f64,
    pub parse_ms: f64,
    pub plan_ms: f64,
    /// Getting the service containers ready (started, or reused from the pool).
    pub containers_ms: f64,
    pub execute_ms: f64,
    pub teardown_ms: f64,
    pub containers_reused: usize,
    pub containers_started: usize,
    pub containers_removed: usize,
    /// Waiting for spans after the last step (docs/reference.md §9's flush rule); 0 without collection.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub spans_ms: f64,
}

/// What ended a test's wait for spans after its last step (docs/reference.md §9, "When").
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SpansWait {
    /// `named_spans`: every span the expectations name arrived and they held; `quiet`: no
    /// span came for the quiet period; `flush_timeout`.
    pub ended: &'static str,
    /// Why the quiet period was waited for: what judges every span.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub because: Vec<String>,
}

fn is_zero(ms: &f64) -> bool {
    *ms == 0.0
}

/// How one test ended: the `test_finished` event, and one entry of a dev run's
/// `results`. Every reader takes this one struct; field names are docs/reference.md §8's.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TestFinished {
    pub test: String,
    pub name: String,
    pub status: Status,
    pub cached: bool,
    pub duration_ms: f64,
    /// For `error`: what prevented the run; for `skip`: why it was skipped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// For `fail`: the first failing step.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed_step: Option<String>,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub failure: Option<StepFailure>,
    /// Where the time went (absent when cached or never started).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timings: Option<TestTimings>,
    /// `"reused"` when the test ran on containers an earlier run used (`isolation =
    /// "reuse"`): such a result is never presented as fresh (docs/reference.md §5).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub isolation: Option<&'static str>,
    /// What ended the wait for spans (absent when the test collected none or a step failed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spans_wait: Option<SpansWait>,
    /// The 1-based line in the test file of what went wrong: the failed step, or the
    /// first error of an invalid test (absent when unknown).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    /// One entry per judged span expectation (docs/reference.md §8, §9).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub expectations: Vec<serde_json::Value>,
    /// Every attempt, when the test had whole-test retries and needed more than one.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub attempts: Vec<Attempt>,
    /// How many attempts it was allowed (`[meta] retries` + 1), when `attempts` is there.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    /// Every attempt of the steps that may run more than once (`retries`, `wait_until`),
    /// when one ran more than once.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub step_attempts: Vec<StepAttempt>,
    /// The values steps captured, by name (`redact = true` ones shown as `[redacted]`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub captures: Vec<CapturedValue>,
    /// What the `[[teardown]]` steps printed, for a test that did not pass (they dump
    /// the logs that say why).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub teardown: Vec<StepOutput>,
}

/// The output of one step, as shown.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct StepOutput {
    pub step: String,
    pub stdout: String,
    pub stderr: String,
}

/// One attempt of a step.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StepAttempt {
    pub step: String,
    /// 1-based.
    pub attempt: u32,
    /// The most attempts `retries` allows (`count + 1`); absent for `wait_until`, which is
    /// bounded by time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub of: Option<u32>,
    pub status: Status,
    pub exit_code: Option<i64>,
    pub duration_ms: f64,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub failure: Option<StepFailure>,
}

/// A value a step captured.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CapturedValue {
    pub step: String,
    pub name: String,
    pub value: String,
}

impl TestFinished {
    /// The attempt of a step with `retries` that passed after a failed one (the first such
    /// step's): what makes a test flaky on a step retry.
    pub fn flaky_step_attempt(&self) -> Option<&StepAttempt> {
        self.step_attempts
            .iter()
            .find(|a| a.attempt > 1 && a.status == Status::Pass && a.of.is_some())
    }

    /// For a test flaky on a step retry: `passed on attempt 2 of 3` (of its first flaky step).
    pub fn flaky_note(&self) -> Option<String> {
        let flaky = self.flaky_step_attempt()?;
        Some(match flaky.of {
            Some(of) => format!("passed on attempt {} of {of}", flaky.attempt),
            None => format!("passed on attempt {}", flaky.attempt),
        })
    }
}

/// The `isolation` label of a test that ran on `timings`' containers.
pub fn isolation_label(timings: &TestTimings) -> Option<&'static str> {
    (timings.containers_reused > 0).then_some("reused")
}

impl TestFinished {
    /// Whether it ran on containers an earlier run left (`isolation = "reuse"`).
    pub fn reused(&self) -> bool {
        self.isolation == Some("reused")
    }

    /// A test that ended without running a step: served from the result cache (a pass),
    /// or an error before it started (`message` says why).
    pub fn without_steps(
        test: String,
        name: String,
        status: Status,
        cached: bool,
        duration_ms: f64,
        message: Option<String>,
    ) -> TestFinished {
        TestFinished {
            test,
            name,
            status,
            cached,
            duration_ms,
            message,
            failed_step: None,
            failure: None,
            timings: None,
            isolation: None,
            spans_wait: None,
            line: None,
            expectations: Vec::new(),
            attempts: Vec::new(),
            max_attempts: None,
            step_attempts: Vec::new(),
            captures: Vec::new(),
            teardown: Vec::new(),
        }
    }

    /// `(passed on attempt 2 of 3)` for a flaky pass, `(failed 3 attempts)` after retries.
    pub fn attempts_note(&self) -> Option<String> {
        let last = self.attempts.last()?;
        let max = self.max_attempts.unwrap_or(last.attempt);
        Some(match self.status {
            Status::Flaky | Status::Pass => {
                format!("(passed on attempt {} of {max})", last.attempt)
            }
            _ => format!("(failed {} attempts)", self.attempts.len()),
        })
    }
}

/// Everything a run reports, in order. Field names are the stable ones of docs/reference.md §8.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
// `TestFinished` is the big one, and most events are one: boxing it would cost an
// allocation per test and a `Box::new` at every site that builds one, for no saving.
#[allow(clippy::large_enum_variant)]
pub enum Event {
    RunStarted {
        tests: usize,
        jobs: usize,
    },
    TestPlanned(TestPlanned),
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
        /// The 1-based line of the step in the test file, when known.
        #[serde(skip_serializing_if = "Option::is_none")]
        line: Option<usize>,
    },
    TestFinished(TestFinished),
    RunFinished(RunFinished),
}

/// `--dry-run`: what would happen to a test, and why (the `test_planned` event).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TestPlanned {
    pub test: String,
    pub name: String,
    pub action: PlannedAction,
    pub reason: String,
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum PlannedAction {
    Run,
    Cached,
    Error,
    Skip,
}

impl PlannedAction {
    pub fn as_str(self) -> &'static str {
        match self {
            PlannedAction::Run => "run",
            PlannedAction::Cached => "cached",
            PlannedAction::Error => "error",
            PlannedAction::Skip => "skip",
        }
    }
}

/// How the run ended: the `run_finished` event, read by every report's summary line.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct RunFinished {
    pub passed: usize,
    pub failed: usize,
    pub errors: usize,
    pub cached: usize,
    /// Tests whose `skip_if` held.
    pub skipped: usize,
    /// Passes after a failed attempt (also counted in `passed`).
    pub flaky: usize,
    pub duration_ms: f64,
}

impl RunFinished {
    /// `N passed, N failed, N errors, N cached in 1.23s` (docs/reference.md §8), with
    /// `N passed (N flaky)` and `N skipped` when there are any.
    pub fn summary_line(&self) -> String {
        let flaky = if self.flaky > 0 {
            format!(" ({} flaky)", self.flaky)
        } else {
            String::new()
        };
        let skipped = if self.skipped > 0 {
            format!(", {} skipped", self.skipped)
        } else {
            String::new()
        };
        format!(
            "{} passed{flaky}, {} failed, {} errors{skipped}, {} cached in {:.2}s",
            self.passed,
            self.failed,
            self.errors,
            self.cached,
            self.duration_ms / 1000.0
        )
    }

    pub fn all_passed(&self) -> bool {
        self.failed + self.errors == 0
    }
}

/// Outcome counts; [`RunStats::exit_ok`] turns them into the exit status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunStats {
    pub passed: usize,
    pub failed: usize,
    pub errors: usize,
    pub cached: usize,
    pub skipped: usize,
    pub flaky: usize,
}

impl RunStats {
    pub fn record(&mut self, event: &Event) {
        if let Event::TestFinished(finished) = event {
            self.record_test(finished);
        }
    }

    pub fn record_test(&mut self, finished: &TestFinished) {
        match finished.status {
            Status::Pass => self.passed += 1,
            Status::Fail => self.failed += 1,
            Status::Error => self.errors += 1,
            Status::Skip => self.skipped += 1,
            Status::Flaky => {
                self.passed += 1;
                self.flaky += 1;
            }
        }
        if finished.cached {
            self.cached += 1;
        }
    }

    pub fn exit_ok(&self) -> bool {
        self.failed == 0 && self.errors == 0
    }

    pub fn finished(&self, duration_ms: f64) -> Event {
        Event::RunFinished(RunFinished {
            passed: self.passed,
            failed: self.failed,
            errors: self.errors,
            cached: self.cached,
            skipped: self.skipped,
            flaky: self.flaky,
            duration_ms,
        })
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
        let event = Event::TestFinished(TestFinished {
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
            isolation: None,
            spans_wait: None,
            expectations: Vec::new(),
            line: None,
            attempts: Vec::new(),
            max_attempts: None,
            step_attempts: Vec::new(),
            captures: Vec::new(),
            teardown: Vec::new(),
        });
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
            stats.record(&Event::TestFinished(TestFinished::without_steps(
                "t".into(),
                "t".into(),
                status,
                cached,
                0.0,
                None,
            )));
        }
        assert_eq!((stats.passed, stats.errors, stats.cached), (2, 1, 1));
        assert!(!stats.exit_ok());
        assert_eq!(tail("a\nb\nc", 2), "b\nc");
    }

    fn attempt(n: u32, status: Status) -> StepAttempt {
        StepAttempt {
            step: "create".into(),
            attempt: n,
            of: Some(3),
            status,
            exit_code: Some(if status == Status::Pass { 0 } else { 1 }),
            duration_ms: 2.0,
            failure: (status != Status::Pass).then(|| StepFailure {
                expected: "exit code 0".into(),
                actual: "exit code 1".into(),
                stdout: format!("try {n}"),
                stderr: String::new(),
            }),
        }
    }

    /// A test whose step `create` failed twice, then passed.
    fn flaky() -> TestFinished {
        let mut t = TestFinished::without_steps(
            "tests/f.clnrm.toml".into(),
            "f".into(),
            Status::Flaky,
            false,
            9.0,
            None,
        );
        t.step_attempts = vec![
            attempt(1, Status::Fail),
            attempt(2, Status::Fail),
            attempt(3, Status::Pass),
        ];
        t
    }

    #[test]
    fn a_flaky_pass_is_counted_and_shown_in_every_format() {
        let t = flaky();
        assert_eq!(t.flaky_note().as_deref(), Some("passed on attempt 3 of 3"));
        let json: serde_json::Value =
            serde_json::from_str(&json_line(&Event::TestFinished(t.clone()))).unwrap();
        assert_eq!(json["status"], "flaky");
        assert_eq!(json["step_attempts"].as_array().unwrap().len(), 3);
        assert_eq!(json["step_attempts"][0]["actual"], "exit code 1");

        let mut stats = RunStats::default();
        stats.record_test(&t);
        let Event::RunFinished(run) = stats.finished(1000.0) else {
            unreachable!()
        };
        assert_eq!(
            run.summary_line(),
            "1 passed (1 flaky), 0 failed, 0 errors, 0 cached in 1.00s"
        );

        let mut tap = TapReporter::default();
        let lines = tap.record(&Event::TestFinished(t.clone()));
        assert_eq!(lines[0], "ok 1 - tests/f.clnrm.toml (f)");
        assert!(
            lines.contains(&"  severity: \"flaky\"".to_string()),
            "{lines:#?}"
        );
        assert!(
            lines.iter().any(|l| l.starts_with("  step_attempts: [{")),
            "{lines:#?}"
        );

        let mut junit = JunitReport::default();
        junit.record_test(&t);
        let mut all_failed = t.clone();
        all_failed.status = Status::Fail;
        all_failed.step_attempts[2] = attempt(3, Status::Fail);
        all_failed.name = "g".into();
        junit.record_test(&all_failed);
        let xml = junit.to_xml(std::time::Duration::from_secs(1));
        let doc = roxmltree::Document::parse(&xml).unwrap();
        let case = |name: &str| {
            doc.descendants()
                .find(|n| n.has_tag_name("testcase") && n.attribute("name") == Some(name))
                .unwrap()
        };
        let count = |node: roxmltree::Node, tag: &str| {
            node.children().filter(|c| c.has_tag_name(tag)).count()
        };
        assert_eq!(count(case("f"), "flakyFailure"), 2);
        assert_eq!(count(case("f"), "failure"), 0);
        assert_eq!(count(case("g"), "failure"), 1);
        assert_eq!(count(case("g"), "rerunFailure"), 2);
    }
}
