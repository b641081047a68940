//! The watcher thread: notify → crossbeam channel → ignore rules → debouncer
//! → batches. Each event is read for its completion signal (closed after
//! writing, renamed into place) so that one save is released after the settle
//! window instead of the debounce.
//!
//! Folders are watched one by one (non-recursively) rather than with notify's
//! recursive mode, so that `target/`, `.git/` and gitignored trees cost no
//! inotify watch and the watched set follows the ignore files.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use notify::event::{AccessKind, AccessMode, EventKind, ModifyKind, RenameMode};

use super::affected::{is_relevant, DependencyIndex};
use super::debounce::{
    default_max_wait, Arrival, ChangeBatch, Debouncer, Signal, DEFAULT_DEBOUNCE, DEFAULT_SETTLE,
};
use super::error::WatchError;
use super::fence::Fence;
use super::rules::{is_ignore_file, IgnoreRules};
use super::tree::{join, parent, relative, Scope, Tree};

/// How the watcher debounces and what else it ignores.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchOptions {
    /// The quiet period that ends a batch (`--debounce-ms`, default 300 ms).
    pub debounce: Duration,
    /// The quiet period after one completed save (`--settle-ms`, default 20 ms);
    /// `None` leaves every batch to the debounce.
    pub settle: Option<Duration>,
    /// The longest a batch waits after its first event; `None` is four
    /// debounce windows.
    pub max_wait: Option<Duration>,
    /// More folders to ignore, relative to the root (e.g. a cache directory
    /// configured outside `.clnrm/`).
    pub ignored_dirs: Vec<String>,
}

impl Default for WatchOptions {
    fn default() -> Self {
        WatchOptions {
            debounce: DEFAULT_DEBOUNCE,
            settle: Some(DEFAULT_SETTLE),
            max_wait: None,
            ignored_dirs: Vec::new(),
        }
    }
}

impl WatchOptions {
    /// Options with the given debounce and the default cap.
    pub fn with_debounce(debounce: Duration) -> Self {
        WatchOptions {
            debounce,
            ..Self::default()
        }
    }
}

/// A running file watcher. Batches arrive on [`Watcher::batches`]; dropping
/// the watcher stops its thread and its notify watches.
#[derive(Debug)]
pub struct Watcher {
    root: PathBuf,
    batches: Receiver<ChangeBatch>,
    /// The paths of the batch the watcher thread is still gathering.
    pending: Arc<Mutex<BTreeSet<String>>>,
    commands: Option<Sender<Command>>,
    thread: Option<JoinHandle<()>>,
    /// The barrier through the event queue ([`Watcher::catch_up`]).
    fence: Option<Arc<Fence>>,
}

/// How long [`Watcher::catch_up`] waits for the watcher thread: far more than a
/// busy machine needs to hand over the events already queued.
const CATCH_UP_PATIENCE: Duration = Duration::from_secs(2);

/// How many dropped paths are remembered for a later dependency record to claim
/// (see [`Watcher::set_dependencies`]); beyond it they are forgotten.
const DROPPED_MEMORY: usize = 4096;

impl Watcher {
    /// Starts watching `paths` (relative to `root`, or absolute; empty means
    /// the whole root) of the project at `root`. The root folder itself is
    /// always watched for `cleanroom.toml` and its ignore files. When this
    /// returns, every watch is in place: a change made afterwards is seen.
    pub fn start(
        root: &Path,
        paths: &[PathBuf],
        opts: WatchOptions,
    ) -> Result<Watcher, WatchError> {
        let root = fs::canonicalize(root).map_err(|source| WatchError::Path {
            path: root.to_path_buf(),
            source,
        })?;
        let mut scopes = paths
            .iter()
            .map(|path| scope_of(&root, path))
            .collect::<Result<Vec<_>, _>>()?;
        if scopes.is_empty() {
            scopes.push(Scope::Dir(String::new()));
        }

        let (raw_tx, raw_rx) = crossbeam_channel::unbounded::<RawEvent>();
        let notify = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            // The receiver is gone only while the watcher shuts down.
            let _ = raw_tx.send(RawEvent {
                at: Instant::now(),
                wall: SystemTime::now(),
                event,
            });
        })
        .map_err(|source| WatchError::Notify {
            path: root.clone(),
            source,
        })?;

        let rules = IgnoreRules::new(&root, opts.ignored_dirs.clone());
        let mut tree = Tree::watch(root.clone(), scopes, rules, notify)?;
        let fence = Fence::create().and_then(|fence| match tree.watch_outside(fence.dir()) {
            Ok(()) => Some(Arc::new(fence)),
            Err(err) => {
                tracing::debug!(error = %err, "watch fence not watched");
                None
            }
        });

        let debounce = opts.debounce;
        let settle = opts.settle;
        let max_wait = opts.max_wait.unwrap_or_else(|| default_max_wait(debounce));
        let pending = Arc::new(Mutex::new(BTreeSet::new()));
        let pending_shared = Arc::clone(&pending);
        let (out_tx, out_rx) = crossbeam_channel::unbounded();
        let (commands_tx, commands_rx) = crossbeam_channel::unbounded::<Command>();
        let thread_fence = fence.clone();
        let thread = std::thread::Builder::new()
            .name("clnrm-watch".into())
            .spawn(move || {
                let mut event_loop = EventLoop {
                    tree,
                    debouncer: Debouncer::new(debounce, max_wait).with_settle(settle),
                    pending: pending_shared,
                    dependencies: None,
                    dropped: BTreeMap::new(),
                    fence: thread_fence,
                    fence_seen: 0,
                    unfinished: BTreeSet::new(),
                    closes_reported: cfg!(any(target_os = "linux", target_os = "android")),
                };
                event_loop.run(raw_rx, commands_rx, out_tx);
            })
            .map_err(WatchError::Thread)?;
        Ok(Watcher {
            root,
            batches: out_rx,
            pending,
            commands: Some(commands_tx),
            thread: Some(thread),
            fence,
        })
    }

    /// The canonical project root the batch paths are relative to.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The channel batches arrive on (for `select!` with other channels).
    pub fn batches(&self) -> &Receiver<ChangeBatch> {
        &self.batches
    }

    /// The paths of changes seen but not yet released as a batch (a save still
    /// settling), and of files changed but not yet closed after writing (a save in
    /// progress). A run's results are stale if these touch its tests.
    pub fn pending_paths(&self) -> BTreeSet<String> {
        self.pending
            .lock()
            .map(|paths| paths.clone())
            .unwrap_or_default()
    }

    /// Also watches `path` (relative to the root, or absolute), e.g. a library
    /// outside the watched paths that a test's render read. When this returns
    /// the watches are in place.
    pub fn add_path(&self, path: &Path) -> Result<(), WatchError> {
        self.add_scope(scope_of(&self.root, path)?)
    }

    /// Also watches for a file that does not exist yet (relative to the root, or
    /// absolute), e.g. a place a render looked for an import and found nothing: a
    /// library created there would be read next time. Its folder must exist.
    pub fn add_missing_file(&self, path: &Path) -> Result<(), WatchError> {
        self.add_scope(missing_file_scope(&self.root, path)?)
    }

    fn add_scope(&self, scope: Scope) -> Result<(), WatchError> {
        let (reply_tx, reply_rx) = crossbeam_channel::bounded(1);
        self.send(Command::Add(scope, reply_tx))?;
        reply_rx.recv().map_err(|_| WatchError::Stopped)?
    }

    /// From now on, lets through only events on paths that can concern a test
    /// according to `index` (what each test's last render and plan read, see
    /// [`is_relevant`]); every other event is dropped before the trigger, so churn
    /// in the project (a log, clnrm's own redirected output) never delays or starts
    /// a run. Events dropped since `since` on paths `index` now names (a library a
    /// new import reads) are taken in after all. Until the first call every path counts.
    pub fn set_dependencies(
        &self,
        index: DependencyIndex,
        since: Instant,
    ) -> Result<(), WatchError> {
        let (reply_tx, reply_rx) = crossbeam_channel::bounded(1);
        self.send(Command::Dependencies(index, since, reply_tx))?;
        reply_rx.recv().map_err(|_| WatchError::Stopped)
    }

    /// Waits until every file event raised before this call has gone through the
    /// trigger: it is in [`Watcher::pending_paths`] or in a released batch. A reader
    /// that finished reading files calls this to learn whether a save touched them
    /// meanwhile. Returns false if the watcher could not confirm it in time.
    pub fn catch_up(&self) -> bool {
        self.fence
            .as_ref()
            .is_some_and(|fence| fence.pass(CATCH_UP_PATIENCE))
    }

    fn send(&self, command: Command) -> Result<(), WatchError> {
        self.commands
            .as_ref()
            .ok_or(WatchError::Stopped)?
            .send(command)
            .map_err(|_| WatchError::Stopped)
    }

    /// Waits up to `timeout` for the next batch.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<ChangeBatch, RecvTimeoutError> {
        self.batches.recv_timeout(timeout)
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        // Disconnecting the command channel wakes the thread, which then
        // drops the notify watcher and exits.
        self.commands.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

enum Command {
    Add(Scope, Sender<Result<(), WatchError>>),
    Dependencies(DependencyIndex, Instant, Sender<()>),
}

/// What a path to watch stands for, checked to exist under the root.
fn scope_of(root: &Path, path: &Path) -> Result<Scope, WatchError> {
    let given = root.join(path);
    let abs = fs::canonicalize(&given).map_err(|source| WatchError::Path {
        path: given.clone(),
        source,
    })?;
    let rel = relative(root, &abs).ok_or_else(|| WatchError::OutsideRoot {
        path: given,
        root: root.to_path_buf(),
    })?;
    Ok(if abs.is_dir() {
        Scope::Dir(rel)
    } else {
        Scope::File(rel)
    })
}

/// The scope of a file that may not exist yet, checked to have its folder under the root.
fn missing_file_scope(root: &Path, path: &Path) -> Result<Scope, WatchError> {
    let given = root.join(path);
    let not_a_file = || WatchError::Path {
        path: given.clone(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a file name"),
    };
    let name = given.file_name().ok_or_else(not_a_file)?;
    let name = name.to_str().ok_or_else(not_a_file)?;
    let folder = given.parent().ok_or_else(not_a_file)?;
    let folder = fs::canonicalize(folder).map_err(|source| WatchError::Path {
        path: folder.to_path_buf(),
        source,
    })?;
    let rel = relative(root, &folder).ok_or_else(|| WatchError::OutsideRoot {
        path: given.clone(),
        root: root.to_path_buf(),
    })?;
    Ok(Scope::File(join(&rel, name)))
}

struct RawEvent {
    at: Instant,
    wall: SystemTime,
    event: notify::Result<notify::Event>,
}

/// The watcher thread's state: raw events go through the ignore rules into the
/// debouncer, released batches go out, and `add_path` requests come in.
struct EventLoop {
    tree: Tree,
    debouncer: Debouncer,
    /// Shared with [`Watcher::pending_paths`].
    pending: Arc<Mutex<BTreeSet<String>>>,
    /// What the tests read; `None` (before the first run) lets every path through.
    dependencies: Option<DependencyIndex>,
    /// The last dropped event of each path, for [`Watcher::set_dependencies`] to
    /// take in when a new record names the path.
    dropped: BTreeMap<String, (Signal, Arrival)>,
    fence: Option<Arc<Fence>>,
    /// The highest fence marker seen, passed on once the events before it are in.
    fence_seen: u64,
    /// Relevant files changed and not yet closed after writing: a save in progress
    /// (published with the pending paths).
    unfinished: BTreeSet<String>,
    /// Whether this platform's watcher reports closes after writing (inotify does):
    /// only then is a change without one a write still in progress.
    closes_reported: bool,
}

impl EventLoop {
    fn run(
        &mut self,
        raw: Receiver<RawEvent>,
        commands: Receiver<Command>,
        out: Sender<ChangeBatch>,
    ) {
        loop {
            let timer = match self.debouncer.next_deadline() {
                Some(deadline) => crossbeam_channel::at(deadline),
                None => crossbeam_channel::never(),
            };
            crossbeam_channel::select! {
                recv(raw) -> msg => match msg {
                    Ok(event) => {
                        self.handle(event);
                        // Take in a burst before looking at the clock again.
                        while let Ok(event) = raw.try_recv() {
                            self.handle(event);
                        }
                    }
                    Err(_) => return,
                },
                recv(commands) -> msg => match msg {
                    Ok(Command::Add(scope, reply)) => {
                        let _ = reply.send(self.tree.add_scope(scope));
                    }
                    Ok(Command::Dependencies(index, since, reply)) => {
                        self.set_dependencies(index, since);
                        self.publish_pending();
                        let _ = reply.send(());
                    }
                    Err(_) => return,
                },
                recv(timer) -> _ => {}
            }
            let released = self.debouncer.poll(Instant::now());
            if let Some(batch) = released {
                tracing::debug!(
                    paths = batch.paths.len(),
                    events = batch.events,
                    rescan = batch.rescan,
                    trigger = ?batch.trigger,
                    debounce_ms = batch.debounce_time().as_millis() as u64,
                    "change batch released"
                );
                if out.send(batch).is_err() {
                    return;
                }
            }
            // Published after the send, so a batch is always visible in one place.
            self.publish_pending();
            // Every event before the marker is now in a batch or pending.
            if let Some(fence) = &self.fence {
                fence.passed_on(self.fence_seen);
            }
        }
    }

    fn set_dependencies(&mut self, index: DependencyIndex, since: Instant) {
        for (path, (signal, arrival)) in std::mem::take(&mut self.dropped) {
            if arrival.event_at >= since && is_relevant(&path, &index) {
                self.debouncer.push_signal_arrival(path, signal, arrival);
            }
        }
        self.dependencies = Some(index);
    }

    /// Hands one event of a watched, not ignored path to the trigger, or drops it
    /// when no test depends on the path.
    fn offer(&mut self, rel: String, signal: Signal, arrival: Arrival) {
        self.track_write(&rel, signal);
        let relevant = match &self.dependencies {
            Some(index) => is_relevant(&rel, index),
            None => true,
        };
        if relevant {
            self.debouncer.push_signal_arrival(rel, signal, arrival);
            return;
        }
        self.unfinished.remove(&rel);
        if self.dropped.len() >= DROPPED_MEMORY && !self.dropped.contains_key(&rel) {
            self.dropped.clear();
        }
        self.dropped.insert(rel, (signal, arrival));
    }

    /// Notes whether a writer may still be writing `rel`: changed (created,
    /// truncated, written) and not yet closed after writing or renamed into place.
    /// Only where the watcher reports closes, and only for files that exist.
    fn track_write(&mut self, rel: &str, signal: Signal) {
        match signal {
            Signal::Changed if self.closes_reported && self.tree.root.join(rel).is_file() => {
                self.unfinished.insert(rel.to_string());
            }
            _ => {
                self.unfinished.remove(rel);
            }
        }
    }

    fn publish_pending(&self) {
        if let Ok(mut shared) = self.pending.lock() {
            shared.clear();
            shared.extend(self.debouncer.pending_paths().map(str::to_owned));
            // A batch the cap released while its file was half written is not done.
            shared.extend(self.unfinished.iter().cloned());
        }
    }

    fn handle(&mut self, raw: RawEvent) {
        let event = match raw.event {
            Ok(event) => event,
            Err(err) => {
                tracing::warn!(error = %err, "file watcher error");
                return;
            }
        };
        if let Some(fence) = &self.fence {
            if let Some(marker) = event.paths.iter().find_map(|p| fence.marker_of(p)) {
                self.fence_seen = self.fence_seen.max(marker);
                return;
            }
        }
        let arrival = |detect| Arrival {
            event_at: raw.at,
            detected_at: Instant::now(),
            detect,
        };
        if event.need_rescan() {
            tracing::warn!("file events were lost; everything counts as changed");
            self.debouncer.push_rescan(arrival(Duration::ZERO));
            return;
        }
        let completes_write = matches!(
            event.kind,
            EventKind::Access(AccessKind::Close(AccessMode::Write))
        );
        if !completes_write
            && matches!(
                event.kind,
                EventKind::Access(_) | EventKind::Modify(ModifyKind::Metadata(_))
            )
        {
            return;
        }
        let mut rules_changed = false;
        for (index, path) in event.paths.iter().enumerate() {
            let signal = signal_of(&event.kind, index);
            let Some(rel) = relative(&self.tree.root, path) else {
                continue;
            };
            if rel.is_empty() {
                continue;
            }
            let meta = fs::symlink_metadata(path).ok();
            let is_dir = meta.as_ref().is_some_and(|m| m.is_dir());
            let was_watched = self.tree.watched.contains(&rel);
            let name = rel.rsplit('/').next().unwrap_or(&rel);
            if is_ignore_file(name) {
                self.tree.rules.invalidate(parent(&rel));
                rules_changed = true;
            }
            if self.tree.rules.is_ignored(&rel, is_dir || was_watched) || !self.tree.in_scope(&rel)
            {
                continue;
            }
            let mut found = Vec::new();
            if was_watched && !is_dir {
                // Deleted or renamed away: its watches are stale.
                self.tree.forget(&rel);
            } else if is_dir && !was_watched {
                // Created or moved in: watch it, and report what it already
                // holds (files written before the watch was in place).
                self.tree.watch_new_tree(&rel, &mut found);
            }
            // A folder that exists counts through its files; one that is gone
            // counts itself, standing for everything that was under it.
            if !is_dir {
                let detect = if self.debouncer.is_pending() {
                    Duration::ZERO
                } else {
                    detect_delay(meta.as_ref(), raw.wall)
                };
                self.offer(rel, signal, arrival(detect));
            }
            for file in found {
                if self.tree.in_scope(&file) {
                    self.offer(file.clone(), Signal::Changed, arrival(Duration::ZERO));
                    // Written before its folder was watched: no close of it is to come.
                    self.unfinished.remove(&file);
                }
            }
        }
        if rules_changed {
            self.tree.rewalk();
        }
    }
}

/// What an event says about its `index`th path: a close after writing and a
/// rename into place complete a save; the old name of a paired rename stands
/// for nothing being written; anything else is a change still in progress.
fn signal_of(kind: &EventKind, index: usize) -> Signal {
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write))
        | EventKind::Modify(ModifyKind::Name(RenameMode::To)) => Signal::Completed,
        EventKind::Modify(ModifyKind::Name(RenameMode::Both)) if index == 0 => Signal::RenamedAway,
        EventKind::Modify(ModifyKind::Name(RenameMode::Both)) => Signal::Completed,
        _ => Signal::Changed,
    }
}

/// The time from a file's last modification to the event reaching clnrm, when
/// it looks like a measurement (under a second, clock not stepped back).
fn detect_delay(meta: Option<&fs::Metadata>, event_wall: SystemTime) -> Duration {
    meta.and_then(|m| m.modified().ok())
        .and_then(|mtime| event_wall.duration_since(mtime).ok())
        .filter(|d| *d < Duration::from_secs(1))
        .unwrap_or(Duration::ZERO)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closes_after_writing_and_renames_into_place_complete_a_save() {
        let close = EventKind::Access(AccessKind::Close(AccessMode::Write));
        let both = EventKind::Modify(ModifyKind::Name(RenameMode::Both));
        let from = EventKind::Modify(ModifyKind::Name(RenameMode::From));
        let data = EventKind::Modify(ModifyKind::Data(notify::event::DataChange::Any));
        assert_eq!(signal_of(&close, 0), Signal::Completed);
        assert_eq!(signal_of(&both, 0), Signal::RenamedAway);
        assert_eq!(signal_of(&both, 1), Signal::Completed);
        assert_eq!(signal_of(&from, 0), Signal::Changed);
        assert_eq!(signal_of(&data, 0), Signal::Changed);
    }

    #[test]
    fn detect_delay_is_zero_when_unmeasurable() {
        assert_eq!(detect_delay(None, SystemTime::now()), Duration::ZERO);
    }
}
