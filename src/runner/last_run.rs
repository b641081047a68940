//! `clnrm run --failed` (docs/reference.md §6): how each test ended in the last run that
//! selected it, kept in the project's `.clnrm/last-run.json`. It belongs to the project,
//! not to the cache: a cache dir shared by CI jobs holds other checkouts' runs, and clearing
//! the cache must not forget what failed here.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::report::Status;

/// Where the record lives, under the project root.
pub const LAST_RUN_FILE: &str = ".clnrm/last-run.json";

/// What a test's last run was: a [`Status`] in its JSON spelling, or `not_run` for a test
/// that was selected but never finished (an interrupted run).
const NOT_RUN: &str = "not_run";

/// Each test's last outcome, by identity (`path` or `path[k=v,...]`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastRun {
    pub tests: BTreeMap<String, String>,
}

impl LastRun {
    pub fn path(root: &Path) -> PathBuf {
        root.join(LAST_RUN_FILE)
    }

    /// The record, `None` when there is none yet; an unreadable one is an error to show.
    pub fn load(root: &Path) -> Result<Option<LastRun>, String> {
        let path = LastRun::path(root);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|err| format!("{}: {err}", path.display())),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(format!("{}: {err}", path.display())),
        }
    }

    /// Whether `--failed` runs the test: it failed, errored or did not run last time, or
    /// it is new since (no outcome recorded).
    pub fn wants(&self, key: &str) -> bool {
        match self.tests.get(key).map(String::as_str) {
            None => true,
            Some(outcome) => !matches!(outcome, "pass" | "flaky" | "skip"),
        }
    }

    /// This run's outcomes over the previous ones: every selected test starts as not run,
    /// then takes the status it finished with. Tests not selected keep their record.
    pub fn record(&mut self, selected: &[String], finished: &[(String, Status)]) {
        for key in selected {
            self.tests.insert(key.clone(), NOT_RUN.to_string());
        }
        for (key, status) in finished {
            let outcome = serde_json::to_value(status)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_else(|| NOT_RUN.to_string());
            self.tests.insert(key.clone(), outcome);
        }
    }

    /// Writes the record whole (a temporary file renamed into place, so a killed run
    /// leaves the previous record, never half of one).
    pub fn save(&self, root: &Path) -> std::io::Result<()> {
        let path = LastRun::path(root);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let temporary = path.with_extension(format!("json.{}.tmp", std::process::id()));
        let text = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        std::fs::write(&temporary, text)?;
        std::fs::rename(&temporary, &path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_errored_unfinished_and_new_tests_are_wanted() {
        let mut last = LastRun::default();
        let selected: Vec<String> = ["a", "b", "c", "d", "e", "f"]
            .iter()
            .map(|k| k.to_string())
            .collect();
        last.record(
            &selected,
            &[
                ("a".into(), Status::Pass),
                ("b".into(), Status::Fail),
                ("c".into(), Status::Error),
                ("d".into(), Status::Skip),
                ("e".into(), Status::Flaky),
            ],
        );
        let wanted: Vec<&str> = ["a", "b", "c", "d", "e", "f", "new"]
            .into_iter()
            .filter(|k| last.wants(k))
            .collect();
        assert_eq!(wanted, ["b", "c", "f", "new"]);
        // A later run of one test leaves the others' outcomes as they were.
        last.record(&["b".to_string()], &[("b".into(), Status::Pass)]);
        assert!(!last.wants("b"));
        assert!(last.wants("c"));
    }
}
