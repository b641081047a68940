//! The human consumer: one line per finished test, failure details, a summary line,
//! and a progress bar only on a terminal (never in CI logs).

use std::io::{IsTerminal, Write};

use indicatif::{ProgressBar, ProgressStyle};

use super::style::{Palette, FAIL, PASS, SUMMARY_FAILED, SUMMARY_OK, WARN};
use super::{tail, Event, PlannedAction, Status, TestFinished, TestPlanned};

pub struct HumanReporter {
    palette: Palette,
    quiet: bool,
    progress: Option<ProgressBar>,
}

impl HumanReporter {
    pub fn new(color: bool, quiet: bool) -> HumanReporter {
        HumanReporter {
            palette: Palette::new(color),
            quiet,
            progress: None,
        }
    }

    fn paint(&self, text: &str, style: anstyle::Style) -> String {
        self.palette.paint(text, style)
    }

    fn print(&self, text: &str) {
        match &self.progress {
            Some(bar) => bar.println(text),
            None => {
                let _ = writeln!(std::io::stdout().lock(), "{text}");
            }
        }
    }

    pub fn record(&mut self, event: &Event) {
        match event {
            Event::RunStarted { tests, .. } => {
                let on_terminal =
                    std::io::stderr().is_terminal() && !running_in_ci() && !self.quiet;
                if on_terminal && *tests > 1 {
                    let bar = ProgressBar::new(*tests as u64);
                    if let Ok(style) = ProgressStyle::with_template("{bar:30} {pos}/{len} {msg}") {
                        bar.set_style(style);
                    }
                    self.progress = Some(bar);
                }
            }
            Event::TestFinished(finished) => self.record_test(finished),
            Event::RunFinished(run) => {
                if let Some(bar) = self.progress.take() {
                    bar.finish_and_clear();
                }
                let text = run.summary_line();
                let code = if run.all_passed() {
                    SUMMARY_OK
                } else {
                    SUMMARY_FAILED
                };
                self.print(&self.paint(&text, code));
            }
            Event::TestPlanned(planned) => {
                let label = match planned.action {
                    PlannedAction::Run => self.paint("would run", WARN),
                    PlannedAction::Cached => self.paint("cached   ", PASS),
                    PlannedAction::Error => self.paint("error    ", FAIL),
                    PlannedAction::Skip => self.paint("skip     ", WARN),
                };
                let TestPlanned {
                    test, name, reason, ..
                } = planned;
                self.print(&format!("{label} {test} ({name}): {reason}"));
            }
            Event::TestStarted { .. } | Event::StepFinished { .. } => {}
        }
    }

    /// One finished test: its line, and for a failure the step, expected vs actual
    /// and the tail of its output.
    pub fn record_test(&mut self, finished: &TestFinished) {
        if let Some(bar) = &self.progress {
            bar.inc(1);
        }
        let flaky = finished.flaky_note();
        let label = match (finished.status, finished.cached) {
            (Status::Pass, true) => self.paint("PASS (cached)", PASS),
            (Status::Pass, false) => self.paint("PASS", PASS),
            (Status::Fail, _) => self.paint("FAIL", FAIL),
            (Status::Error, _) => self.paint("ERROR", FAIL),
            (Status::Skip, _) => self.paint("SKIP", WARN),
            (Status::Flaky, _) => self.paint("FLAKY", WARN),
        };
        if self.quiet && matches!(finished.status, Status::Pass | Status::Skip) {
            return;
        }
        if finished.status == Status::Skip {
            let reason = finished.message.as_deref().unwrap_or("skipped");
            self.print(&format!(
                "{label} {} ({}): {reason}",
                finished.test, finished.name
            ));
            return;
        }
        let never_started = finished.status == Status::Error && finished.duration_ms == 0.0;
        let time = if finished.cached || never_started {
            String::new()
        } else {
            format!(" [{:.2}s]", finished.duration_ms / 1000.0)
        };
        // A step retry's note: `(passed on attempt 2 of 3)`.
        let note = match &flaky {
            Some(note) if finished.status == Status::Flaky => format!(" ({note})"),
            _ => String::new(),
        };
        let attempts = finished
            .attempts_note()
            .map(|note| format!(" {note}"))
            .unwrap_or_default();
        // Never presented as fresh: it ran on containers an earlier run left.
        let reused = if finished.reused() { " reused" } else { "" };
        self.print(&format!(
            "{label} {} ({}){time}{reused}{note}{attempts}",
            finished.test, finished.name
        ));
        for attempt in finished
            .attempts
            .iter()
            .filter(|a| a.status != Status::Pass)
        {
            let why = match (&attempt.failed_step, &attempt.message) {
                (Some(step), _) => format!("step `{step}` failed"),
                (None, Some(message)) => message.lines().next().unwrap_or("").to_string(),
                (None, None) => "failed".to_string(),
            };
            self.print(&format!("    attempt {}: {why}", attempt.attempt));
        }
        if let Some(step) = &finished.failed_step {
            self.print(&format!("    step `{step}` failed"));
        }
        if let Some(failure) = &finished.failure {
            self.print(&format!("    expected: {}", failure.expected));
            self.print(&format!("    actual:   {}", failure.actual));
            for (label, text) in [("stdout", &failure.stdout), ("stderr", &failure.stderr)] {
                if !text.trim().is_empty() {
                    self.print(&format!("    --- {label} (last lines)"));
                    for line in tail(text, 10).lines() {
                        self.print(&format!("    {line}"));
                    }
                }
            }
        }
        if let Some(message) = &finished.message {
            self.print(&format!("    {message}"));
        }
        for out in &finished.teardown {
            self.print(&format!("    --- teardown `{}` (last lines)", out.step));
            for text in [&out.stdout, &out.stderr] {
                for line in tail(text, 10).lines() {
                    self.print(&format!("    {line}"));
                }
            }
        }
    }
}

/// CI logs get no progress bar: `CI` set to anything but empty or `false` (GitHub and
/// GitLab set `true`, some systems `1`).
fn running_in_ci() -> bool {
    std::env::var("CI")
        .is_ok_and(|v| !v.trim().is_empty() && !v.trim().eq_ignore_ascii_case("false"))
}
