//! `clnrm run`: validated tests become plans, plans run in containers, results are
//! memoized. The runner produces [`Event`]s and knows nothing of terminals.
//!
//! - `inputs.rs`: what a result depends on, and planning (memoized);
//! - `volumes.rs`: the volume part of those inputs, memoized per file;
//! - `prepare.rs`: each test's fate before anything starts (run, cached, error);
//! - `execute.rs`: running prepared tests and turning reports into events;
//! - `command.rs`: `clnrm run` as one call: runtime, engine, executor, cancellation;
//! - `spans.rs`: span collection settings and expectation verdicts (docs/reference.md §9);
//! - `checks.rs`: the original clnrm's `should_fail` and `[assertions]`, the trace context
//!   services get, clnrm's own spans (docs/reference.md §14).

mod attempts;
mod checks;
mod command;
mod container_use;
mod execute;
mod inputs;
mod last_run;
mod prepare;
mod spans;
mod volumes;

use std::sync::Arc;
use std::time::Instant;

use clnrm_exec::Backend;
use tokio::sync::{mpsc, watch};

use crate::cache::{Memo, Stage};
use crate::pipeline::Checked;
use crate::project::Project;
use crate::report::Event;

pub use checks::TestChecks;
/// The future a [`TestExecutor`] returns, as every engine call does.
pub use clnrm_exec::BoxFuture;
pub use command::{run_command, RunCommand, RunCommandError};
pub use container_use::ContainerUse;
pub use execute::{execute, FreshContainers, TestExecutor, TestToRun};
pub use inputs::{plan_test, PassRecord, ResultInputs};
pub use last_run::{LastRun, LAST_RUN_FILE};
pub use prepare::{prepare, Disposition, Runnable, StageTimes};
pub use spans::{judge, Judged, SpanPlan};
pub use volumes::{volumes_hash, VolumeError, RACY_SECS, VOLUME_FILE_STAGE};

/// The default image of a test that declares no service, when cleanroom.toml names none.
pub const FALLBACK_IMAGE: &str = "alpine:3.20";
/// The default step timeout when neither the step nor cleanroom.toml sets one.
pub const FALLBACK_STEP_TIMEOUT_MS: u64 = 60_000;

/// Options of `clnrm run`.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub jobs: usize,
    pub fail_fast: bool,
    pub force: bool,
    pub dry_run: bool,
    /// Where clnrm's own trace of the run goes (`--otel-endpoint`), if anywhere.
    pub export: Option<Arc<crate::otel::export::Exporter>>,
    /// `--flaky-result fail`: a pass after a failed attempt is a failure.
    pub flaky_fails: bool,
}

/// `clnrm run`: reaps leftovers, prepares, and runs the selected tests on `executor`
/// (fresh containers, or the warm pool with `--reuse`), sending every event to
/// `events`. Returns when all ended.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    backend: Arc<dyn Backend>,
    executor: Arc<dyn TestExecutor>,
    memo: &Memo,
    project: &Project,
    checked: Vec<Checked>,
    options: &RunOptions,
    events: mpsc::UnboundedSender<Event>,
    cancel: watch::Receiver<bool>,
) {
    let started = Instant::now();
    if !options.dry_run {
        // Leftovers of killed clnrm processes go before we add our own (about 2 ms).
        match clnrm_exec::reap_orphans(backend.as_ref()).await {
            Ok(reaped) if !reaped.containers.is_empty() => tracing::warn!(
                "removed {} container(s) left by a clnrm process that is gone",
                reaped.containers.len()
            ),
            Ok(_) => {}
            Err(err) => tracing::warn!("could not look for leftover containers: {err}"),
        }
    }
    let dispositions = prepare(backend.as_ref(), memo, project, checked, options.force).await;
    if options.dry_run {
        let _ = events.send(Event::RunStarted {
            tests: dispositions.len(),
            jobs: options.jobs,
        });
        for disposition in &dispositions {
            let _ = events.send(execute::dry_run_event(disposition));
        }
        return;
    }
    execute(
        executor,
        memo,
        dispositions,
        options,
        events,
        cancel,
        started,
    )
    .await;
}

/// The stages whose values are shared through a remote cache (docs/reference.md §10): results
/// only. A result saves seconds of containers; rendering, parsing and planning take
/// microseconds to a millisecond locally, less than one round trip to a server.
pub const REMOTE_STAGES: &[&str] = &[inputs::ResultStage::NAME];

/// `--shard K/N`: whether a test belongs to shard K (1-based) of N, stably by identity.
pub fn in_shard(identity: &str, shard: (u64, u64)) -> bool {
    let hash = blake3::hash(identity.as_bytes());
    let bytes: [u8; 8] = hash.as_bytes()[..8].try_into().expect("8 bytes");
    u64::from_le_bytes(bytes) % shard.1 == shard.0 - 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_partition_the_tests() {
        let tests: Vec<String> = (0..200).map(|i| format!("tests/t{i}.clnrm.toml")).collect();
        let mut seen = 0;
        for k in 1..=3 {
            let mine = tests.iter().filter(|t| in_shard(t, (k, 3))).count();
            assert!(mine > 30, "shard {k} has {mine}");
            seen += mine;
        }
        assert_eq!(seen, tests.len());
    }
}
