//! The `clnrm dev` loop: connect to the engine and warm the pool, watch, run what each
//! batch of changes affects, evict idle containers, and shut down on an interrupt.
//! Every run and state change goes to the caller's reader as a [`DevEvent`]; nothing
//! here prints or knows what a terminal is.
//!
//! Superseded results are discarded, not cancelled: a run whose tests a newer save
//! touched (released while it ran, or still settling when it ends) is not shown, and
//! the loop runs again on the newer content. No step is ever interrupted, so a warm
//! container never holds half a step's state and is never replaced for it.

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clnrm_exec::{Backend, ExecError};
use crossbeam_channel::Receiver;
use tokio::sync::watch;

use super::interrupt::wait_for_interrupt;
use super::{DevEvent, DevOptions, DevSession};
use crate::pool::{project_key, Pool, PoolOptions};
use crate::watch::{default_max_wait, ChangeBatch, WatchError, WatchOptions, Watcher};

/// How often idle containers are looked for when nothing is saved.
const IDLE_CHECK_EVERY: Duration = Duration::from_secs(60);

/// How a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionEnd {
    /// The pooled containers were left up (`--keep`).
    pub kept: bool,
    /// Pooled containers removed on the way out.
    pub removed: usize,
}

/// Why a dev session could not start or could not go on.
#[derive(Debug, thiserror::Error)]
pub enum DevError {
    #[error("cannot start the async runtime: {0}")]
    Runtime(#[source] std::io::Error),
    /// The Docker engine is unreachable at the start.
    #[error(transparent)]
    Engine(#[from] ExecError),
    #[error("cannot watch {}: {source}", root.display())]
    Watch { root: PathBuf, source: WatchError },
    /// The watcher thread ended (it panicked or lost its notify watcher): no change
    /// would ever be seen again, so the session ends instead of idling silently.
    #[error("the file watcher stopped: changes are no longer seen; restart clnrm dev")]
    WatcherStopped,
}

/// The engine connection and the pool of warm containers of one project.
pub struct WarmPool {
    pub backend: Arc<dyn Backend>,
    pub pool: Arc<Pool>,
}

/// Connects to the Docker engine, removes containers that dead clnrm processes left
/// behind, and adopts the warm containers an earlier session of this project kept.
/// Failing to look for leftovers is logged, not fatal.
pub async fn connect_warm_pool(root: &Path) -> Result<WarmPool, ExecError> {
    let backend: Arc<dyn Backend> = Arc::new(clnrm_exec::DockerBackend::connect().await?);
    let pool = Arc::new(Pool::new(
        backend.clone(),
        clnrm_exec::Session::current(),
        root.to_path_buf(),
        project_key(root),
        PoolOptions::default(),
    ));
    if let Err(err) = clnrm_exec::reap_orphans(backend.as_ref()).await {
        tracing::warn!("could not look for leftover containers: {err}");
    }
    match pool.adopt_existing().await {
        Ok(0) => {}
        Ok(n) => tracing::info!("found {n} warm container(s) of an earlier clnrm dev"),
        Err(err) => tracing::warn!("could not look for warm containers: {err}"),
    }
    Ok(WarmPool { backend, pool })
}

/// Runs a dev session until Ctrl-C/SIGTERM (`Ok`) or until it cannot go on (`Err`).
/// `reader` sees every run, each wait for changes, and the end.
pub fn run(options: DevOptions, reader: &mut dyn FnMut(DevEvent)) -> Result<SessionEnd, DevError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(options.jobs.clamp(2, 8))
        .enable_all()
        .build()
        .map_err(DevError::Runtime)?;
    let root = options.project.root.clone();
    let WarmPool { backend, pool } = runtime.block_on(connect_warm_pool(&root))?;

    // Ctrl-C / SIGTERM: cancels a run in progress and ends the session.
    let (cancel_tx, cancel_rx) = watch::channel(false);
    let (stop_tx, stop_rx) = crossbeam_channel::bounded::<()>(1);
    runtime.spawn(async move {
        wait_for_interrupt().await;
        let _ = cancel_tx.send(true);
        let _ = stop_tx.send(());
    });

    let watch_options = WatchOptions {
        ignored_dirs: ignored_cache_dir(&root, &options.cwd, &options.cache.dir)
            .into_iter()
            .collect(),
        settle: options.settle,
        ..WatchOptions::with_debounce(options.debounce)
    };
    // Longer than any batch can wait (the cap), so a settling save is always awaited.
    let settling_patience = default_max_wait(options.debounce) + Duration::from_secs(1);
    let keep = options.keep;
    let paths = options.paths.clone();
    let mut session = DevSession::new(options, backend, pool.clone());
    // Watch first: a save during the first run is one more run after it, not lost.
    let watcher =
        Watcher::start(&root, &paths, watch_options).map_err(|source| DevError::Watch {
            root: root.clone(),
            source,
        })?;
    let mut inputs_watched = BTreeSet::new();
    let mut next = Some(Work::First);
    let idle_tick = crossbeam_channel::tick(IDLE_CHECK_EVERY);
    let outcome = loop {
        let work = match next.take() {
            Some(work) => work,
            None => match wait_for_wake(watcher.batches(), &stop_rx, &idle_tick) {
                Wake::Changes(batch) => Work::Changes(batch),
                Wake::Stop => break Ok(()),
                // Containers of tests not run for a while go even when nothing is saved.
                Wake::IdleTick => {
                    runtime.block_on(pool.evict_idle());
                    continue;
                }
                Wake::WatcherStopped => break Err(DevError::WatcherStopped),
            },
        };
        let run = match &work {
            Work::First => runtime.block_on(session.first_run(cancel_rx.clone())),
            Work::Changes(batch) => runtime.block_on(session.on_change(batch, cancel_rx.clone())),
        };
        // Inputs are watched before the run is shown: an edit made on seeing it is seen.
        watch_inputs(&watcher, &session, &mut inputs_watched);
        if *cancel_rx.borrow() {
            reader(DevEvent::Run(Box::new(run)));
            break Ok(());
        }
        match newer_changes(&watcher, &session, &stop_rx, settling_patience) {
            Newer::Supersede(batch) => {
                tracing::debug!(
                    run = run.run,
                    "a newer save replaced what this run read: results discarded, running again"
                );
                session.discard_last_run();
                next = Some(match work {
                    // The first run reads everything again, the newer save included.
                    Work::First => Work::First,
                    // The same tests again, and whatever the newer save touched.
                    Work::Changes(mut merged) => {
                        merged.merge(batch);
                        Work::Changes(merged)
                    }
                });
                continue;
            }
            Newer::Stop => break Ok(()),
            Newer::After(batch) => next = batch.map(Work::Changes),
        }
        reader(DevEvent::Run(Box::new(run)));
        runtime.block_on(pool.evict_idle());
        reader(DevEvent::Watching {
            tests: session.test_count(),
        });
    };
    drop(watcher);
    // The pool goes (or stays, with --keep) however the session ended.
    let reaped = runtime.block_on(pool.shutdown(keep));
    let end = SessionEnd {
        kept: keep,
        removed: reaped.containers.len(),
    };
    outcome?;
    reader(DevEvent::Ended(end));
    Ok(end)
}

/// A run to do.
#[derive(Debug)]
enum Work {
    /// The first run: every selected test.
    First,
    /// The run for a batch of changes.
    Changes(ChangeBatch),
}

/// What woke the loop.
#[derive(Debug)]
enum Wake {
    /// A batch of changes, with every batch already queued behind it merged in.
    Changes(ChangeBatch),
    /// Ctrl-C or SIGTERM.
    Stop,
    /// Time to look for idle containers.
    IdleTick,
    /// The watcher's channel closed: its thread is gone.
    WatcherStopped,
}

/// What happened to the files while a run was running.
#[derive(Debug)]
enum Newer {
    /// A newer save replaced what the run read: this batch (every change released or
    /// settled meanwhile) is to be run instead of showing the results.
    Supersede(ChangeBatch),
    /// The results stand; these changes (if any) are the next run.
    After(Option<ChangeBatch>),
    /// Ctrl-C while waiting for a settling save.
    Stop,
}

/// Looks at the changes released while the last run ran and at the save still
/// settling in the watcher. If they touch the run's tests, waits for the settling
/// save's batch (it is due within the cap) and hands all of it back.
fn newer_changes(
    watcher: &Watcher,
    session: &DevSession,
    stop: &Receiver<()>,
    patience: Duration,
) -> Newer {
    let mut released = drain_batches(watcher.batches());
    let settling = watcher.pending_paths();
    let released_touch = released
        .as_ref()
        .is_some_and(|batch| session.is_superseded_by(&batch.paths, batch.rescan));
    let settling_touch = session.is_superseded_by(&settling, false);
    if !released_touch && !settling_touch {
        return Newer::After(released);
    }
    if settling_touch {
        // The settling save is the newest content: wait for it rather than run twice.
        crossbeam_channel::select! {
            recv(watcher.batches()) -> batch => {
                if let Ok(batch) = batch {
                    merge_into(&mut released, batch);
                }
                if let Some(more) = drain_batches(watcher.batches()) {
                    merge_into(&mut released, more);
                }
            },
            recv(stop) -> _ => return Newer::Stop,
            default(patience) => {}
        }
    }
    match released {
        Some(batch) => Newer::Supersede(batch),
        // The settling paths never became a batch (ignored after all): the run stands.
        None => Newer::After(None),
    }
}

/// Every batch waiting on the channel, merged.
fn drain_batches(batches: &Receiver<ChangeBatch>) -> Option<ChangeBatch> {
    let mut merged = None;
    while let Ok(more) = batches.try_recv() {
        merge_into(&mut merged, more);
    }
    merged
}

fn merge_into(merged: &mut Option<ChangeBatch>, batch: ChangeBatch) {
    match merged {
        Some(first) => first.merge(batch),
        None => *merged = Some(batch),
    }
}

fn wait_for_wake(
    batches: &Receiver<ChangeBatch>,
    stop: &Receiver<()>,
    idle_tick: &Receiver<Instant>,
) -> Wake {
    crossbeam_channel::select! {
        recv(batches) -> batch => match batch {
            Ok(mut batch) => {
                // Changes that arrived during the last run: one more run, coalesced.
                if let Some(more) = drain_batches(batches) {
                    batch.merge(more);
                }
                Wake::Changes(batch)
            }
            Err(_) => Wake::WatcherStopped,
        },
        recv(stop) -> _ => Wake::Stop,
        recv(idle_tick) -> _ => Wake::IdleTick,
    }
}

/// Asks the watcher to also watch each input of the known tests that it was not
/// asked for yet: a library in `templates/` or a build context outside the paths
/// given to `clnrm dev`, and the places a render looked for an import and found
/// nothing (a library created there takes over). Inputs outside the root are left out.
fn watch_inputs(watcher: &Watcher, session: &DevSession, asked: &mut BTreeSet<String>) {
    for input in session.inputs() {
        if asked.contains(&input) {
            continue;
        }
        let path = Path::new(&input);
        let added = if path.is_absolute() || watcher.root().join(path).exists() {
            watcher.add_path(path)
        } else {
            watcher.add_missing_file(path)
        };
        match added {
            Ok(()) => {
                asked.insert(input);
            }
            Err(err) => tracing::debug!(input, error = %err, "input not watched"),
        }
    }
}

/// The cache directory relative to the project root, when it lies inside the
/// project: its writes during a run must not look like changes.
fn ignored_cache_dir(root: &Path, cwd: &Path, cache_dir: &Path) -> Option<String> {
    let absolute = lexical(&cwd.join(cache_dir));
    let roots = [
        lexical(root),
        std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf()),
    ];
    // The cache folder may not exist yet; when it does, links in its path count too.
    let resolved = std::fs::canonicalize(&absolute).ok();
    roots.iter().find_map(|root| {
        [Some(&absolute), resolved.as_ref()]
            .into_iter()
            .flatten()
            .find_map(|dir| dir.strip_prefix(root).ok())
            .map(|rel| {
                rel.components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join("/")
            })
            .filter(|rel| !rel.is_empty())
    })
}

/// `path` with `.` and `..` folded away, without touching the file system.
fn lexical(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(paths: &[&str]) -> ChangeBatch {
        let now = Instant::now();
        ChangeBatch {
            paths: paths.iter().map(|p| p.to_string()).collect(),
            rescan: false,
            first_event_at: now,
            last_event_at: now,
            detected_at: now,
            released_at: now,
            detect: Duration::ZERO,
            events: paths.len(),
            trigger: crate::watch::Trigger::Debounce,
        }
    }

    #[test]
    fn a_dead_watcher_wakes_the_loop_as_a_stopped_watcher_not_as_a_stop() {
        let (batches_tx, batches_rx) = crossbeam_channel::unbounded::<ChangeBatch>();
        let (_stop_tx, stop_rx) = crossbeam_channel::bounded::<()>(1);
        let idle = crossbeam_channel::never();
        // The watcher thread's end of the channel goes away when the thread dies.
        drop(batches_tx);
        assert!(matches!(
            wait_for_wake(&batches_rx, &stop_rx, &idle),
            Wake::WatcherStopped
        ));
    }

    #[test]
    fn batches_queued_during_a_run_are_one_more_run() {
        let (batches_tx, batches_rx) = crossbeam_channel::unbounded();
        let (_stop_tx, stop_rx) = crossbeam_channel::bounded::<()>(1);
        let idle = crossbeam_channel::never();
        batches_tx.send(batch(&["a.clnrm.toml"])).unwrap();
        let mut lost = batch(&["lib/_x.tera"]);
        lost.rescan = true;
        batches_tx.send(lost).unwrap();
        let Wake::Changes(merged) = wait_for_wake(&batches_rx, &stop_rx, &idle) else {
            panic!("expected changes");
        };
        assert_eq!(
            merged.paths.into_iter().collect::<Vec<_>>(),
            ["a.clnrm.toml", "lib/_x.tera"]
        );
        assert!(merged.rescan);
        assert!(batches_rx.is_empty());
    }

    #[test]
    fn an_interrupt_stops_the_loop() {
        let (_batches_tx, batches_rx) = crossbeam_channel::unbounded::<ChangeBatch>();
        let (stop_tx, stop_rx) = crossbeam_channel::bounded::<()>(1);
        stop_tx.send(()).unwrap();
        let idle = crossbeam_channel::never();
        assert!(matches!(
            wait_for_wake(&batches_rx, &stop_rx, &idle),
            Wake::Stop
        ));
    }

    #[test]
    fn a_cache_dir_inside_the_project_is_ignored_wherever_it_is_named_from() {
        let project = tempfile::tempdir().unwrap();
        let root = project.path();
        let sub = root.join("sub");
        std::fs::create_dir_all(&sub).unwrap();
        assert_eq!(
            ignored_cache_dir(root, root, Path::new("build/cache")).as_deref(),
            Some("build/cache")
        );
        assert_eq!(
            ignored_cache_dir(root, &sub, Path::new("../my cache/./x")).as_deref(),
            Some("my cache/x")
        );
        assert_eq!(
            ignored_cache_dir(root, &sub, &root.join("c")).as_deref(),
            Some("c")
        );
        let elsewhere = tempfile::tempdir().unwrap();
        assert_eq!(ignored_cache_dir(root, root, elsewhere.path()), None);
        assert_eq!(ignored_cache_dir(root, root, root), None);
    }
}
