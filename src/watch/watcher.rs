//! The watcher thread: notify → crossbeam channel → ignore rules → debouncer
//! → batches.
//!
//! Folders are watched one by one (non-recursively) rather than with notify's
//! recursive mode, so that `target/`, `.git/` and gitignored trees cost no
//! inotify watch and the watched set follows the ignore files.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Component, Path, PathBuf};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use notify::event::{EventKind, ModifyKind};
use notify::{RecommendedWatcher, RecursiveMode, Watcher as _};

use super::affected::PROJECT_FILE;
use super::debounce::{default_max_wait, Arrival, ChangeBatch, Debouncer, DEFAULT_DEBOUNCE};
use super::rules::{is_ignore_file, IgnoreRules};

/// How the watcher debounces and what else it ignores.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchOptions {
    /// The quiet period that ends a batch (`--debounce-ms`, default 300 ms).
    pub debounce: Duration,
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

/// Why the watcher could not start.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// A path to watch (or the root) does not exist or cannot be read.
    #[error("cannot watch {}: {source}", path.display())]
    Path {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A path to watch lies outside the project root.
    #[error("{} is outside the project root {}", path.display(), root.display())]
    OutsideRoot { path: PathBuf, root: PathBuf },
    /// The operating system's watcher refused (e.g. the inotify watch limit).
    #[error("cannot watch {}: {source}", path.display())]
    Notify {
        path: PathBuf,
        #[source]
        source: notify::Error,
    },
    /// The watcher thread has stopped.
    #[error("the file watcher has stopped")]
    Stopped,
    /// The watcher thread could not be spawned.
    #[error("cannot start the watcher thread: {0}")]
    Thread(#[source] std::io::Error),
}

/// A running file watcher. Batches arrive on [`Watcher::batches`]; dropping
/// the watcher stops its thread and its notify watches.
#[derive(Debug)]
pub struct Watcher {
    root: PathBuf,
    batches: Receiver<ChangeBatch>,
    commands: Option<Sender<Command>>,
    thread: Option<JoinHandle<()>>,
}

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

        let mut tree = Tree {
            rules: IgnoreRules::new(&root, opts.ignored_dirs.clone()),
            root: root.clone(),
            scopes,
            pinned: BTreeSet::new(),
            watched: BTreeSet::new(),
            notify,
        };
        tree.watch_initial()?;

        let debounce = opts.debounce;
        let max_wait = opts.max_wait.unwrap_or_else(|| default_max_wait(debounce));
        let (out_tx, out_rx) = crossbeam_channel::unbounded();
        let (commands_tx, commands_rx) = crossbeam_channel::unbounded::<Command>();
        let thread = std::thread::Builder::new()
            .name("clnrm-watch".into())
            .spawn(move || {
                let mut lp = Loop {
                    tree,
                    debouncer: Debouncer::new(debounce, max_wait),
                };
                lp.run(raw_rx, commands_rx, out_tx);
            })
            .map_err(WatchError::Thread)?;
        Ok(Watcher {
            root,
            batches: out_rx,
            commands: Some(commands_tx),
            thread: Some(thread),
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

    /// Also watches `path` (relative to the root, or absolute), e.g. a library
    /// outside the watched paths that a test's render read. When this returns
    /// the watches are in place.
    pub fn add_path(&self, path: &Path) -> Result<(), WatchError> {
        let scope = scope_of(&self.root, path)?;
        let (reply_tx, reply_rx) = crossbeam_channel::bounded(1);
        let stopped = || WatchError::Stopped;
        self.commands
            .as_ref()
            .ok_or_else(stopped)?
            .send(Command::Add(scope, reply_tx))
            .map_err(|_| stopped())?;
        reply_rx.recv().map_err(|_| stopped())?
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

struct RawEvent {
    at: Instant,
    wall: SystemTime,
    event: notify::Result<notify::Event>,
}

#[derive(Debug, Clone)]
enum Scope {
    Dir(String),
    File(String),
}

/// The watched folders and the rules that choose them.
struct Tree {
    root: PathBuf,
    scopes: Vec<Scope>,
    rules: IgnoreRules,
    /// Folders watched whatever the rules say: the root, parents of files.
    pinned: BTreeSet<String>,
    /// Root-relative folders with a non-recursive watch.
    watched: BTreeSet<String>,
    notify: RecommendedWatcher,
}

impl Tree {
    fn abs(&self, rel: &str) -> PathBuf {
        if rel.is_empty() {
            self.root.clone()
        } else {
            self.root.join(rel)
        }
    }

    fn watch_initial(&mut self) -> Result<(), WatchError> {
        self.pinned.insert(String::new());
        for scope in &self.scopes {
            if let Scope::File(file) = scope {
                self.pinned.insert(parent(file).to_string());
            }
        }
        let mut dirs = self.pinned.clone();
        for scope in self.scopes.clone() {
            if let Scope::Dir(dir) = scope {
                self.collect(&dir, &mut dirs);
            }
        }
        for dir in dirs {
            let abs = self.abs(&dir);
            self.notify
                .watch(&abs, RecursiveMode::NonRecursive)
                .map_err(|source| WatchError::Notify { path: abs, source })?;
            self.watched.insert(dir);
        }
        Ok(())
    }

    /// Watches one more path.
    fn add_scope(&mut self, scope: Scope) -> Result<(), WatchError> {
        let top = match &scope {
            Scope::Dir(dir) => dir.clone(),
            Scope::File(file) => parent(file).to_string(),
        };
        if !self.watched.contains(&top) {
            let abs = self.abs(&top);
            self.notify
                .watch(&abs, RecursiveMode::NonRecursive)
                .map_err(|source| WatchError::Notify { path: abs, source })?;
            self.watched.insert(top.clone());
        }
        match &scope {
            Scope::Dir(dir) => {
                let mut files = Vec::new();
                self.watch_new_tree(dir, &mut files);
            }
            Scope::File(_) => {
                self.pinned.insert(top);
            }
        }
        self.scopes.push(scope);
        Ok(())
    }

    /// Whether a change of `rel` concerns the watched paths.
    fn in_scope(&self, rel: &str) -> bool {
        if rel == PROJECT_FILE || is_ignore_file(rel) {
            return true;
        }
        self.scopes.iter().any(|scope| match scope {
            Scope::Dir(dir) => dir.is_empty() || is_same_or_under(rel, dir),
            Scope::File(file) => rel == file,
        })
    }

    /// Adds `rel_dir` and the folders under it that the rules let through to
    /// `dirs`.
    fn collect(&mut self, rel_dir: &str, dirs: &mut BTreeSet<String>) {
        if !rel_dir.is_empty() && self.rules.is_ignored(rel_dir, true) {
            return;
        }
        dirs.insert(rel_dir.to_string());
        let entries = match fs::read_dir(self.abs(rel_dir)) {
            Ok(entries) => entries,
            Err(err) => {
                tracing::debug!(dir = rel_dir, error = %err, "folder not read");
                return;
            }
        };
        for entry in entries.flatten() {
            let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                continue;
            };
            // Symbolic links are not followed: their targets may lie anywhere.
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                self.collect(&join(rel_dir, &name), dirs);
            }
        }
    }

    /// Watches a folder that just appeared and the folders under it, each
    /// before reading it, so that no file created meanwhile is missed; the
    /// files found are added to `files`.
    fn watch_new_tree(&mut self, rel_dir: &str, files: &mut Vec<String>) {
        if self.rules.is_ignored(rel_dir, true) {
            return;
        }
        if !self.watched.contains(rel_dir) {
            match self
                .notify
                .watch(&self.abs(rel_dir), RecursiveMode::NonRecursive)
            {
                Ok(()) => {
                    self.watched.insert(rel_dir.to_string());
                }
                Err(err) => {
                    // Gone already: its removal arrives as an event.
                    tracing::debug!(dir = rel_dir, error = %err, "folder not watched");
                    return;
                }
            }
        }
        let Ok(entries) = fs::read_dir(self.abs(rel_dir)) else {
            return;
        };
        for entry in entries.flatten() {
            let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                continue;
            };
            let rel = join(rel_dir, &name);
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                self.watch_new_tree(&rel, files);
            } else if !self.rules.is_ignored(&rel, false) {
                files.push(rel);
            }
        }
    }

    fn watch_dirs(&mut self, dirs: BTreeSet<String>) {
        for dir in dirs {
            if self.watched.contains(&dir) {
                continue;
            }
            match self
                .notify
                .watch(&self.abs(&dir), RecursiveMode::NonRecursive)
            {
                Ok(()) => {
                    self.watched.insert(dir);
                }
                // It may be gone already; its removal arrives as an event.
                Err(err) => tracing::debug!(dir, error = %err, "folder not watched"),
            }
        }
    }

    /// Stops watching `rel_dir` and everything under it.
    fn forget(&mut self, rel_dir: &str) {
        let gone: Vec<String> = self
            .watched
            .iter()
            .filter(|d| is_same_or_under(d, rel_dir) && !self.pinned.contains(*d))
            .cloned()
            .collect();
        for dir in gone {
            // notify drops the watch of a deleted folder by itself.
            let _ = self.notify.unwatch(&self.abs(&dir));
            self.watched.remove(&dir);
        }
    }

    /// Re-applies the rules to the whole tree after an ignore file changed.
    fn rewalk(&mut self) {
        let mut desired = self.pinned.clone();
        for scope in self.scopes.clone() {
            if let Scope::Dir(dir) = scope {
                self.collect(&dir, &mut desired);
            }
        }
        let stale: Vec<String> = self.watched.difference(&desired).cloned().collect();
        for dir in stale {
            let _ = self.notify.unwatch(&self.abs(&dir));
            self.watched.remove(&dir);
        }
        self.watch_dirs(desired);
    }
}

struct Loop {
    tree: Tree,
    debouncer: Debouncer,
}

impl Loop {
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
                    Err(_) => return,
                },
                recv(timer) -> _ => {}
            }
            if let Some(batch) = self.debouncer.poll(Instant::now()) {
                tracing::debug!(
                    paths = batch.paths.len(),
                    events = batch.events,
                    rescan = batch.rescan,
                    debounce_ms = batch.debounce_time().as_millis() as u64,
                    "change batch released"
                );
                if out.send(batch).is_err() {
                    return;
                }
            }
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
        if matches!(
            event.kind,
            EventKind::Access(_) | EventKind::Modify(ModifyKind::Metadata(_))
        ) {
            return;
        }
        let mut rules_changed = false;
        for path in &event.paths {
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
                self.debouncer.push_arrival(rel, arrival(detect));
            }
            for file in found {
                if self.tree.in_scope(&file) {
                    self.debouncer.push_arrival(file, arrival(Duration::ZERO));
                }
            }
        }
        if rules_changed {
            self.tree.rewalk();
        }
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

/// `path` relative to `root` with `/` separators, if it lies under it.
fn relative(root: &Path, path: &Path) -> Option<String> {
    let rest = path.strip_prefix(root).ok()?;
    let mut parts = Vec::new();
    for component in rest.components() {
        match component {
            Component::Normal(part) => parts.push(part.to_str()?),
            Component::CurDir => {}
            _ => return None,
        }
    }
    Some(parts.join("/"))
}

fn parent(rel: &str) -> &str {
    rel.rsplit_once('/').map_or("", |(dir, _)| dir)
}

fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

/// Whether `rel` is `dir` or lies under it (`""` holds everything).
fn is_same_or_under(rel: &str, dir: &str) -> bool {
    dir.is_empty() || rel == dir || rel.strip_prefix(dir).is_some_and(|r| r.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_use_slashes_and_stay_under_the_root() {
        let root = Path::new("/p/root");
        assert_eq!(
            relative(root, Path::new("/p/root/a/b.toml")).as_deref(),
            Some("a/b.toml")
        );
        assert_eq!(relative(root, Path::new("/p/root")).as_deref(), Some(""));
        assert_eq!(relative(root, Path::new("/p/rootx/a")), None);
        assert_eq!(relative(root, Path::new("/p/root/../x")), None);
    }

    #[test]
    fn folder_containment() {
        assert!(is_same_or_under("a/b", "a"));
        assert!(is_same_or_under("a", "a"));
        assert!(is_same_or_under("x", ""));
        assert!(!is_same_or_under("ab", "a"));
        assert_eq!(parent("a/b/c"), "a/b");
        assert_eq!(parent("c"), "");
        assert_eq!(join("", "c"), "c");
        assert_eq!(join("a", "c"), "a/c");
    }

    #[test]
    fn detect_delay_is_zero_when_unmeasurable() {
        assert_eq!(detect_delay(None, SystemTime::now()), Duration::ZERO);
    }
}
