//! The file watcher for `clnrm dev` (docs/reference.md §7): notify events → a crossbeam
//! channel → a completion-triggered debouncer (settle window for one finished
//! save, trailing debounce otherwise, with a cap) → [`ChangeBatch`] values, and
//! the pure selection of the tests a batch affects.
//!
//! - [`Watcher`] owns the notify watcher and the debouncer thread. It watches
//!   the folders the ignore rules let through (so `target/` and gitignored
//!   trees cost no inotify watch), follows new and removed folders, and
//!   re-reads the ignore files when they change.
//! - [`Debouncer`] is the trigger as a state machine driven by the caller's
//!   clock, so it can be tested without sleeping.
//! - [`IgnoreRules`] decides which paths may trigger a run.
//! - [`affected_tests`] maps changed paths to tests through the
//!   [`DependencyIndex`] of what each test's last render read.
//!
//! Nothing here prints; problems are returned or logged through `tracing`.

mod affected;
mod debounce;
mod error;
mod fence;
mod rules;
mod tree;
mod watcher;

pub use affected::{
    affected_tests, is_relevant, is_test_path, Affected, DependencyIndex, PROJECT_FILE,
};
pub use debounce::{
    debounce_warning, default_max_wait, Arrival, ChangeBatch, Debouncer, Signal, Trigger,
    DEFAULT_DEBOUNCE, DEFAULT_SETTLE, MAX_SENSIBLE_DEBOUNCE_MS, MIN_SENSIBLE_DEBOUNCE_MS,
};
pub use error::WatchError;
pub use rules::{is_editor_temp, is_ignore_file, IgnoreRules, IGNORED_DIRS};
pub use watcher::{WatchOptions, Watcher};
