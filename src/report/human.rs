//! The human consumer: one line per finished test, failure details, a summary line,
//! and a progress bar only on a terminal (never in CI logs).

use std::io::{IsTerminal, Write};

use indicatif::{ProgressBar, ProgressStyle};

use super::{tail, Event, Status};

pub struct HumanReporter {
    color: bool,
    quiet: bool,
    progress: Option<ProgressBar>,
}

impl HumanReporter {
    pub fn new(color: bool, quiet: bool) -> HumanReporter {
        HumanReporter {
            color,
            quiet,
            progress: None,
        }
    }

    fn paint(&self, text: &str, code: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
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
                let on_terminal = std::io::stderr().is_terminal()
                    && std::env::var_os("CI").is_none()
                    && !self.quiet;
                if on_terminal && *tests > 1 {
                    let bar = ProgressBar::new(*tests as u64);
                    if let Ok(style) = ProgressStyle::with_template("{bar:30} {pos}/{len} {msg}") {
                        bar.set_style(style);
                    }
                    self.progress = Some(bar);
                }
            }
            Event::TestFinished {
                test,
                name,
                status,
                cached,
                duration_ms,
                message,
                failed_step,
                failure,
                ..
            } => {
                if let Some(bar) = &self.progress {
                    bar.inc(1);
                }
                let label = match (status, cached) {
                    (Status::Pass, true) => self.paint("PASS (cached)", "32"),
                    (Status::Pass, false) => self.paint("PASS", "32"),
                    (Status::Fail, _) => self.paint("FAIL", "31"),
                    (Status::Error, _) => self.paint("ERROR", "31"),
                };
                if self.quiet && *status == Status::Pass {
                    return;
                }
                let never_started = *status == Status::Error && *duration_ms == 0.0;
                let time = if *cached || never_started {
                    String::new()
                } else {
                    format!(" [{:.2}s]", duration_ms / 1000.0)
                };
                self.print(&format!("{label} {test} ({name}){time}"));
                if let Some(step) = failed_step {
                    self.print(&format!("    step `{step}` failed"));
                }
                if let Some(failure) = failure {
                    self.print(&format!("    expected: {}", failure.expected));
                    self.print(&format!("    actual:   {}", failure.actual));
                    for (label, text) in [("stdout", &failure.stdout), ("stderr", &failure.stderr)]
                    {
                        if !text.trim().is_empty() {
                            self.print(&format!("    --- {label} (last lines)"));
                            for line in tail(text, 10).lines() {
                                self.print(&format!("    {line}"));
                            }
                        }
                    }
                }
                if let Some(message) = message {
                    self.print(&format!("    {message}"));
                }
            }
            Event::RunFinished {
                passed,
                failed,
                errors,
                cached,
                duration_ms,
            } => {
                if let Some(bar) = self.progress.take() {
                    bar.finish_and_clear();
                }
                let text = format!(
                    "{passed} passed, {failed} failed, {errors} errors, {cached} cached in {:.2}s",
                    duration_ms / 1000.0
                );
                let code = if failed + errors == 0 { "1;32" } else { "1;31" };
                self.print(&self.paint(&text, code));
            }
            Event::TestPlanned {
                test,
                name,
                action,
                reason,
            } => {
                let label = match action.as_str() {
                    "run" => self.paint("would run", "33"),
                    "cached" => self.paint("cached   ", "32"),
                    _ => self.paint("error    ", "31"),
                };
                self.print(&format!("{label} {test} ({name}): {reason}"));
            }
            Event::TestStarted { .. } | Event::StepFinished { .. } => {}
        }
    }
}
