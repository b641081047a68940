//! `clnrm dev`, the engine: the watch → affected tests → pipeline → pool loop
//! ([`engine::run`]) and the state it keeps between runs ([`DevSession`]). It emits
//! [`DevEvent`]s and knows nothing of terminals: `report` draws them.

mod engine;
mod interrupt;
mod resources;
mod session;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::project::{Overrides, Project};
use crate::report::TestFinished;
use crate::runner::ContainerUse;

pub use engine::{connect_warm_pool, run, DevError, SessionEnd, WarmPool};
pub use interrupt::wait_for_interrupt;
pub use resources::{ResourceSample, RunResources};
pub use session::DevSession;

/// The budget a run's total is held against when none is given (`--budget-ms`).
pub const DEFAULT_BUDGET: std::time::Duration = std::time::Duration::from_millis(3000);

/// The `event` field of a dev run's JSON object (docs/reference.md §8).
pub const DEV_RUN_EVENT: &str = "dev_run";

/// What a dev session tells its readers, in order.
#[derive(Debug, Clone)]
pub enum DevEvent {
    /// A run finished (the first, or one after a batch of changes).
    Run(Box<DevRun>),
    /// Waiting for the next change, with this many tests known.
    Watching { tests: usize },
    /// The session is over: the pool was kept (`--keep`) or removed.
    Ended(SessionEnd),
}

/// Where a dev run's time went, in milliseconds (docs/reference.md §7).
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct DevTimings {
    pub detect: f64,
    pub debounce: f64,
    pub render: f64,
    pub parse: f64,
    pub plan: f64,
    pub containers: f64,
    pub execute: f64,
    /// Waiting for spans after the last step (tests with span expectations only).
    pub spans: f64,
    pub report: f64,
    /// From the first file event (or the start of the session) to results printed.
    pub total: f64,
}

/// A run's total against `--budget-ms` (docs/reference.md §7: "✓ 88 % under budget").
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Budget {
    pub budget_ms: f64,
    /// `total` as a share of the budget, in percent.
    pub used_percent: f64,
    /// Whether `total` stayed within the budget.
    pub within: bool,
}

impl Budget {
    /// The check of `total_ms` against `budget_ms`.
    pub fn check(budget_ms: f64, total_ms: f64) -> Budget {
        // A zero budget is refused by the flag; guard the division anyway.
        let used_percent = if budget_ms > 0.0 {
            100.0 * total_ms / budget_ms
        } else {
            0.0
        };
        Budget {
            budget_ms,
            used_percent,
            within: total_ms <= budget_ms,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct HitsMisses {
    pub hits: usize,
    pub misses: usize,
}

/// One run of `clnrm dev`, as printed (`--format json`: one object per run).
#[derive(Debug, Clone, Serialize)]
pub struct DevRun {
    pub event: &'static str,
    /// Run number in this session, from 1.
    pub run: usize,
    pub changed: Vec<String>,
    /// Exactly the tests this run executed or served from cache.
    pub ran: Vec<String>,
    /// How each test in `ran` ended, by test; `timings` are summed into the run's.
    pub results: Vec<TestFinished>,
    pub timings_ms: DevTimings,
    pub cache: BTreeMap<&'static str, HitsMisses>,
    pub containers: ContainerUse,
    /// The clnrm process's resident memory and CPU use during the run.
    pub resources: RunResources,
    /// `timings_ms.total` against `--budget-ms`.
    pub budget: Budget,
    /// Tests that dropped out (deleted).
    pub removed: Vec<String>,
    /// The whole text of each problem (invalid test), for the human display.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
    /// Problems of the session itself (cleanroom.toml invalid, engine unreachable).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// When the run's clock started (first file event), for the reader to finish `total`.
    #[serde(skip)]
    pub clock_start: Option<Instant>,
    /// Where the run's resource use is measured from, for the reader to finish
    /// `resources` once the results are printed.
    #[serde(skip)]
    pub resources_start: Option<ResourceSample>,
}

/// Everything a dev session needs, decided by the caller (flags, project file).
#[derive(Debug, Clone)]
pub struct DevOptions {
    pub project: Project,
    pub overrides: Overrides,
    /// The paths given on the command line (empty: the whole project).
    pub paths: Vec<PathBuf>,
    pub cwd: PathBuf,
    pub cache: CacheLocation,
    /// Tests run side by side.
    pub jobs: usize,
    pub debounce: Duration,
    /// The settle window after one completed save (`--settle-ms`); `None` leaves
    /// every change to the debounce.
    pub settle: Option<Duration>,
    /// The total each run is held against in the panel (`--budget-ms`).
    pub budget: Duration,
    /// Leave the pooled containers up for the next session (`--keep`).
    pub keep: bool,
}

/// A cache directory and how to open it.
#[derive(Debug, Clone)]
pub struct CacheLocation {
    pub dir: PathBuf,
    pub options: crate::cache::MemoOptions,
    /// The remote tier (docs/reference.md §10): each run reads results from it and uploads
    /// its passes, as `clnrm run` does; one connection and circuit breaker for the session.
    pub remote: Option<std::sync::Arc<crate::cache::Remote>>,
}
