//! clnrm, the engine: discovery, the memoized pipeline over the stage crates,
//! the on-disk cache, the watcher and the reports. Only `cli` prints.

pub mod cache;
pub mod discover;
pub mod watch;
