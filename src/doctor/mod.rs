//! `clnrm doctor` (docs/reference.md §6, SPEC §15): what is wrong with this machine, each
//! problem with one line saying what to do. The checks run at once: the engine's on a
//! runtime of their own (`engine.rs`), the cache directory's and the remote cache's on
//! threads (`cache_dir.rs`, `remote.rs`), so a healthy machine is done in well under 2 s.
//!
//! What this module is not: it does not print (the CLI does, `cli/doctor.rs`) and it does
//! not decide where the cache directory or the remote is (the CLI's settings do).

mod cache_dir;
mod engine;
mod remote;

use std::path::PathBuf;

use serde::Serialize;

use crate::cache::Remote;

/// How one check went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    /// Works, or could not be checked, but something deserves a look.
    Warn,
    /// Broken: `clnrm doctor` exits 1.
    Fail,
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// Stable, for `--format json`: `engine`, `image_import`, `container`, `network`,
    /// `exec`, `otlp_reach`, `cache`, `remote_cache`.
    pub name: &'static str,
    pub status: Status,
    /// What was found, in words; never a credential.
    pub detail: String,
    /// What to do, when there is something to do.
    pub fix: Option<String>,
}

impl Check {
    pub(crate) fn ok(name: &'static str, detail: impl Into<String>) -> Check {
        Check {
            name,
            status: Status::Ok,
            detail: detail.into(),
            fix: None,
        }
    }

    pub(crate) fn warn(name: &'static str, detail: impl Into<String>, fix: &str) -> Check {
        Check {
            name,
            status: Status::Warn,
            detail: detail.into(),
            fix: Some(fix.to_string()),
        }
    }

    pub(crate) fn fail(name: &'static str, detail: impl Into<String>, fix: &str) -> Check {
        Check {
            name,
            status: Status::Fail,
            detail: detail.into(),
            fix: Some(fix.to_string()),
        }
    }
}

/// Every check, in a fixed order, and the worst status among them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub status: Status,
    pub checks: Vec<Check>,
}

impl Report {
    fn new(checks: Vec<Check>) -> Report {
        let status = if checks.iter().any(|c| c.status == Status::Fail) {
            Status::Fail
        } else if checks.iter().any(|c| c.status == Status::Warn) {
            Status::Warn
        } else {
            Status::Ok
        };
        Report { status, checks }
    }
}

/// What the checks look at, as the command's settings decided.
pub struct Inputs {
    pub cache_dir: PathBuf,
    /// The remote cache: `Ok(None)` when none is configured, `Err` when its settings
    /// are unusable (the message).
    pub remote: Result<Option<Remote>, String>,
}

/// Runs every check at once and waits for all of them.
pub fn examine(inputs: Inputs) -> Report {
    let Inputs { cache_dir, remote } = inputs;
    let cache = std::thread::spawn(move || cache_dir::check(&cache_dir));
    let remote = std::thread::spawn(move || remote::check(remote));
    let mut checks = engine::checks();
    checks.push(cache.join().unwrap_or_else(|_| panicked("cache")));
    checks.push(remote.join().unwrap_or_else(|_| panicked("remote_cache")));
    Report::new(checks)
}

/// A check's thread that panicked is a broken check, not a broken doctor.
fn panicked(name: &'static str) -> Check {
    Check::fail(
        name,
        "the check itself failed (a bug in clnrm)",
        "run with RUST_BACKTRACE=1 and report it",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_is_as_bad_as_its_worst_check() {
        let ok = Check::ok("cache", "fine");
        let warn = Check::warn("exec", "slow", "wait");
        let fail = Check::fail("engine", "gone", "start it");
        assert_eq!(Report::new(vec![ok.clone()]).status, Status::Ok);
        assert_eq!(
            Report::new(vec![ok.clone(), warn.clone()]).status,
            Status::Warn
        );
        assert_eq!(Report::new(vec![warn, fail, ok]).status, Status::Fail);
    }
}
