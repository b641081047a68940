//! What a `clnrm dev` session is started with: read by the loop (`engine`) and
//! kept by the session state between runs (`session`), so neither imports the other.

use std::path::PathBuf;
use std::time::Duration;

use super::CacheLocation;
use crate::project::{Overrides, Project};

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
