//! Human output: colours, quiet mode, one place for how things look; and whether the
//! reader of stdout is still there. Writes never panic: a closed stdout or stderr is
//! the reader's choice (`clnrm run | head -1`), not clnrm's error.

use std::io::{IsTerminal, Write};

use clnrm_config::{Diagnostic, Severity};

use super::{ColorChoice, GlobalArgs};
use crate::pipeline::TestProblem;

pub struct Printer {
    color: bool,
    quiet: bool,
}

const GREEN: &str = "32";
const RED: &str = "31";
const YELLOW: &str = "33";
const BOLD: &str = "1";

impl Printer {
    pub fn new(global: &GlobalArgs) -> Printer {
        let color = match global.color {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => {
                std::env::var_os("NO_COLOR").is_none() && std::io::stdout().is_terminal()
            }
        };
        Printer {
            color,
            quiet: global.quiet,
        }
    }

    /// For messages before the flags are known (they did not parse): no colour.
    pub fn plain() -> Printer {
        Printer {
            color: false,
            quiet: false,
        }
    }

    pub fn color(&self) -> bool {
        self.color
    }

    pub fn paint(&self, text: &str, code: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    pub fn line(&self, text: &str) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{text}");
    }

    pub fn error(&self, message: &str) {
        self.line_to_stderr(&format!("{} {message}", self.paint("error:", RED)));
    }

    // `eprintln!` panics when stderr is a closed pipe.
    fn line_to_stderr(&self, text: &str) {
        let _ = writeln!(std::io::stderr().lock(), "{text}");
    }

    pub fn diagnostic(&self, diagnostic: &Diagnostic) {
        if self.quiet && diagnostic.severity == Severity::Warning {
            return;
        }
        self.line(&diagnostic.to_string());
    }

    pub fn validated(&self, identity: &str, name: Option<&str>) {
        if self.quiet {
            return;
        }
        let name = name.map(|n| format!(" ({n})")).unwrap_or_default();
        self.line(&format!(
            "{} {identity}{name}",
            self.paint("ok     ", GREEN)
        ));
    }

    pub fn invalid(&self, identity: &str, problem: &TestProblem) {
        self.line(&format!("{} {identity}", self.paint("INVALID", RED)));
        self.line(&problem.to_string());
    }

    pub fn warn(&self, message: &str) {
        self.line_to_stderr(&format!("{} {message}", self.paint("warning:", YELLOW)));
    }

    pub fn summary(&self, text: &str) {
        self.line(&self.paint(text, BOLD));
    }
}

/// Whether the reader of stdout has gone: the pipe or socket it was has no reader
/// left. A file, a terminal or a closed descriptor never counts as gone. Asks the
/// kernel without writing, so a run can notice while no output is due.
#[cfg(unix)]
pub fn stdout_reader_gone() -> bool {
    use std::os::fd::AsRawFd;
    let mut watched = libc::pollfd {
        fd: std::io::stdout().as_raw_fd(),
        // No event asked for: POLLERR (pipe without reader) and POLLHUP (socket
        // peer gone) are reported regardless.
        events: 0,
        revents: 0,
    };
    // SAFETY: one valid pollfd for the duration of the call, timeout 0 (no wait).
    let ready = unsafe { libc::poll(&mut watched, 1, 0) };
    ready > 0 && watched.revents & (libc::POLLERR | libc::POLLHUP) != 0
}

#[cfg(not(unix))]
pub fn stdout_reader_gone() -> bool {
    false
}

/// Completes once the reader of stdout has gone (checked every 50 ms).
pub async fn reader_gone() {
    let mut ticks = tokio::time::interval(std::time::Duration::from_millis(50));
    loop {
        ticks.tick().await;
        if stdout_reader_gone() {
            return;
        }
    }
}
