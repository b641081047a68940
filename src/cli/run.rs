//! `clnrm run`: wires the runner to Docker, signals and the three report consumers.
//! A run stops starting tests when it is interrupted (Ctrl-C, SIGTERM) or when the
//! reader of its output goes away (`clnrm run | head -1`); either way the tests that
//! were running end and their containers are removed before clnrm exits.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{mpsc, watch};

use super::args::{Format, RunArgs};
use super::output::{self, Printer};
use super::{finish_memo, load, open_memo, thread_pool, CliError, Exit, GlobalArgs};
use crate::pipeline::{FsWorld, Pipeline};
use crate::pool::{project_key, Pool, PoolOptions};
use crate::report::{json_line, HumanReporter, JunitReport, RunStats};
use crate::runner::{self, FreshContainers, RunOptions, TestExecutor};

pub fn run(
    global: &GlobalArgs,
    args: &RunArgs,
    cwd: &Path,
    printer: &Printer,
) -> Result<Exit, CliError> {
    let started = Instant::now();
    let (project, mut tests) = load(global, &args.paths, cwd, printer)?;
    if let Some(shard) = args.shard {
        tests.retain(|test| runner::in_shard(&test.identity, shard));
    }
    let jobs = args
        .jobs
        .or(project.config.run_jobs)
        .filter(|&j| j > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let memo = open_memo(global, &project, printer)?;
    let pipeline = Pipeline::new(&project, &FsWorld, &memo);
    let checked = thread_pool(None)?.install(|| pipeline.check_all(&tests));

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(jobs.clamp(2, 8))
        .enable_all()
        .build()
        .map_err(CliError::Runtime)?;
    let options = RunOptions {
        jobs,
        fail_fast: args.fail_fast,
        force: args.force,
        dry_run: args.dry_run,
    };
    let reader_gone = Arc::new(AtomicBool::new(false));
    let stats = runtime.block_on(async {
        // No engine, no run: one clear error before any test starts (exit 2).
        let backend: Arc<dyn clnrm_exec::Backend> =
            Arc::new(clnrm_exec::DockerBackend::connect().await?);
        let session = clnrm_exec::Session::current();
        let executor: Arc<dyn TestExecutor> = if args.reuse || project.config.run_reuse {
            // Warm containers, kept after the run for the next `--reuse` (or `clnrm dev`).
            let pool = Pool::new(
                backend.clone(),
                session.clone(),
                project.root.clone(),
                project_key(&project.root),
                PoolOptions::default(),
            );
            if let Err(err) = pool.adopt_existing().await {
                tracing::warn!("could not look for warm containers: {err}");
            }
            Arc::new(pool)
        } else {
            Arc::new(FreshContainers {
                backend: backend.clone(),
                session: session.clone(),
                root: project.root.clone(),
            })
        };
        let (cancel_tx, cancel_rx) = watch::channel(false);
        let noticed_reader_gone = reader_gone.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = wait_for_interrupt() => {}
                () = output::reader_gone() => noticed_reader_gone.store(true, Ordering::SeqCst),
            }
            let _ = cancel_tx.send(true);
        });
        let (events_tx, mut events_rx) = mpsc::unbounded_channel();
        let format = args.format;
        let junit_wanted = args.junit.is_some();
        let mut human = HumanReporter::new(printer.color(), global.quiet);
        let consumer = tokio::spawn(async move {
            let mut stats = RunStats::default();
            let mut junit = JunitReport::default();
            while let Some(event) = events_rx.recv().await {
                stats.record(&event);
                if junit_wanted {
                    junit.record(&event);
                }
                match format {
                    Format::Human => human.record(&event),
                    Format::Json => write_json_line(&json_line(&event)),
                }
            }
            (stats, junit)
        });
        runner::run(
            backend.clone(),
            executor,
            &memo,
            &project,
            checked,
            &options,
            events_tx,
            cancel_rx.clone(),
        )
        .await;
        if *cancel_rx.borrow() {
            sweep_after_cancel(backend.as_ref(), &session.id).await;
        }
        let (stats, junit) = consumer.await?;
        if let Some(path) = &args.junit {
            std::fs::write(path, junit.to_xml(started.elapsed())).map_err(|source| {
                CliError::Write {
                    path: path.clone(),
                    source,
                }
            })?;
        }
        Ok::<RunStats, CliError>(stats)
    })?;
    finish_memo(&memo, &project, printer);
    if reader_gone.load(Ordering::SeqCst) {
        return Err(CliError::StdoutClosed);
    }
    Ok(if stats.exit_ok() {
        Exit::Ok
    } else {
        Exit::TestsFailed
    })
}

/// One event of `--format json`. A failed write is not an error here: a reader that
/// went away is noticed by [`output::reader_gone`], which cancels the run.
fn write_json_line(text: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout().lock(), "{text}");
}

/// Removes what a cancelled run's session still has. A container create cut short
/// by the cancel goes on in the engine although its test never learns the ID, and
/// it may land a little after the run ended: sweep until the session has stayed
/// empty for a moment (bounded, so a stuck engine cannot hold the exit).
async fn sweep_after_cancel(backend: &dyn clnrm_exec::Backend, session_id: &str) {
    const QUIET_CHECKS: u32 = 3;
    const INTERVAL: std::time::Duration = std::time::Duration::from_millis(100);
    const LIMIT: std::time::Duration = std::time::Duration::from_secs(3);
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

/// Ctrl-C or SIGTERM.
pub(crate) async fn wait_for_interrupt() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(term) => term,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
