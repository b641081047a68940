//! clnrm, the engine: discovery, the memoized pipeline over the stage crates,
//! the on-disk cache, the watcher and the reports. Only `cli` and `report` print.

pub mod cache;
pub mod cli;
pub mod dev;
pub mod discover;
pub mod doctor;
pub mod otel;
pub mod pipeline;
pub mod pool;
pub mod project;
pub mod report;
pub mod runner;
mod sync;
pub mod watch;
