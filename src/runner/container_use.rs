//! How many containers a test used, reported with its result and read by `[assertions]`.

use serde::{Deserialize, Serialize};

/// Containers a test used.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerUse {
    pub reused: usize,
    pub started: usize,
    pub removed: usize,
}
