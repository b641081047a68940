//! `clnrm run` as one engine call: its own async runtime, the Docker engine, fresh
//! containers or the warm pool (`--reuse`), cancellation by Ctrl-C, SIGTERM or a
//! caller's stop signal (stdout closed), and a sweep of what a cancel cut short. Events
//! go to the caller's reader, which runs on a task of its own; this knows nothing of
//! terminals or report formats.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clnrm_exec::{Backend, DockerBackend, ExecError, Session, SPARE_NETWORKS_KEPT};
use tokio::sync::{mpsc, watch};

use super::{run, FreshContainers, RunOptions, TestExecutor};
use crate::cache::Memo;
use crate::dev::wait_for_interrupt;
use crate::pipeline::Checked;
use crate::pool::{project_key, Isolation, Pool, PoolOptions};
use crate::project::Project;
use crate::report::Event;

/// What one `clnrm run` runs, and on what.
pub struct RunCommand<'a> {
    pub project: &'a Project,
    pub memo: &'a Memo,
    pub checked: Vec<Checked>,
    pub options: RunOptions,
    /// Warm pooled containers, kept after the run (`--reuse`, `[run] reuse`).
    pub reuse: bool,
}

/// Why a run could not happen at all (exit 2); a test's own trouble is an event.
#[derive(Debug, thiserror::Error)]
pub enum RunCommandError {
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
    /// No engine, no run: one clear error before any test starts.
    #[error(transparent)]
    Engine(#[from] ExecError),
    /// The events' reader panicked.
    #[error("the report writer failed: {0}")]
    Reader(#[from] tokio::task::JoinError),
}

/// Runs `command`, handing every event to `read` (on a task of its own) and returning
/// what `read` returns. `stop` ends the run early as Ctrl-C does: no new test starts,
/// running ones are torn down.
pub fn run_command<R, F>(
    command: RunCommand<'_>,
    read: impl FnOnce(mpsc::UnboundedReceiver<Event>) -> F,
    stop: impl Future<Output = ()> + Send + 'static,
) -> Result<R, RunCommandError>
where
    F: Future<Output = R> + Send + 'static,
    R: Send + 'static,
{
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(command.options.jobs.clamp(2, 8))
        .enable_all()
        .build()
        .map_err(RunCommandError::Runtime)?;
    runtime.block_on(async {
        let backend: Arc<dyn Backend> = Arc::new(DockerBackend::connect().await?);
        let session = Session::current();
        let executor = executor(&command, &backend, &session).await;
        let (cancel_tx, cancel_rx) = watch::channel(false);
        tokio::spawn(async move {
            tokio::select! {
                () = wait_for_interrupt() => {}
                () = stop => {}
            }
            let _ = cancel_tx.send(true);
        });
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let reader = tokio::spawn(read(events_rx));
        run(
            backend.clone(),
            executor,
            command.memo,
            command.project,
            command.checked,
            &command.options,
            events_tx,
            cancel_rx.clone(),
        )
        .await;
        if *cancel_rx.borrow() {
            sweep_after_cancel(backend.as_ref(), &session.id).await;
        }
        // The spare networks the tests ran on stay for the next run, a few of them
        // (docs/reference.md: networks); the report is written meanwhile.
        match clnrm_exec::trim_spare_networks(backend.as_ref(), SPARE_NETWORKS_KEPT).await {
            Ok(trimmed) => {
                for error in trimmed.errors {
                    tracing::warn!("removing a spare network: {error}");
                }
            }
            Err(err) => tracing::warn!("could not look for spare networks to remove: {err}"),
        }
        Ok(reader.await?)
    })
}

/// Fresh containers for every test, or the warm pool (adopting what an earlier
/// `--reuse` or `clnrm dev` left) when asked to reuse.
async fn executor(
    command: &RunCommand<'_>,
    backend: &Arc<dyn Backend>,
    session: &Session,
) -> Arc<dyn TestExecutor> {
    let root = command.project.root.clone();
    if !command.reuse {
        return Arc::new(FreshContainers {
            backend: backend.clone(),
            session: session.clone(),
            root,
        });
    }
    let key = project_key(&root);
    let options = PoolOptions {
        isolation: Isolation::of_project(&command.project.config),
        ..PoolOptions::default()
    };
    let pool = Pool::new(backend.clone(), session.clone(), root, key, options);
    if let Err(err) = pool.adopt_existing().await {
        tracing::warn!("could not look for warm containers: {err}");
    }
    Arc::new(pool)
}

/// Removes what a cancelled run's session still has. A container create cut short
/// by the cancel goes on in the engine although its test never learns the ID, and
/// it may land a little after the run ended: sweep until the session has stayed
/// empty for a moment (bounded, so a stuck engine cannot hold the exit).
async fn sweep_after_cancel(backend: &dyn Backend, session_id: &str) {
    const QUIET_CHECKS: u32 = 3;
    const INTERVAL: Duration = Duration::from_millis(100);
    const LIMIT: Duration = Duration::from_secs(3);
    let started = Instant::now();
    let mut quiet = 0;
    while quiet < QUIET_CHECKS && started.elapsed() < LIMIT {
        match clnrm_exec::remove_session(backend, session_id).await {
            Ok(swept) if swept.containers.is_empty() && swept.networks.is_empty() => quiet += 1,
            Ok(swept) => {
                quiet = 0;
                tracing::info!(
                    "removed {} container(s) of starts cut short by the cancel",
                    swept.containers.len()
                );
            }
            Err(err) => {
                tracing::warn!("could not look for containers left by the cancel: {err}");
                return;
            }
        }
        tokio::time::sleep(INTERVAL).await;
    }
}
