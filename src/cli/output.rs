//! Human output: colours, quiet mode, one place for how things look.

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
        eprintln!("{} {message}", self.paint("error:", RED));
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
        eprintln!("{} {message}", self.paint("warning:", YELLOW));
    }

    pub fn summary(&self, text: &str) {
        self.line(&self.paint(text, BOLD));
    }
}
