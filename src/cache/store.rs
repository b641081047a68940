//! The one type that knows the storage engine (sled), and the layout of a
//! cache directory:
//!
//! ```text
//! <dir>/lock        flock'ed by the owning process (lock.rs); never moves
//! <dir>/CURRENT     the name of the live database, e.g. "db-3", replaced atomically
//! <dir>/db-3/       a sled database
//! ```
//!
//! sled never gives back the space that removed entries used, so shrinking
//! the cache means writing the live entries into a fresh `db-<n+1>`, flushing
//! it, and then renaming a new `CURRENT` over the old one. A crash before the
//! rename leaves the old database current (the half-written one is an orphan,
//! removed by the next open); a crash after it leaves the complete new one.
//! This is LevelDB's CURRENT file, and it is why `<dir>` itself never moves.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::{self, Write};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::RwLock;
use std::time::{Duration, Instant};

pub(crate) use sled::IVec;

/// Data tree of a stage: `s/<stage>`.
pub(crate) const DATA_PREFIX: &str = "s/";
/// Last-use stamps of a stage's entries: `u/<stage>`.
pub(crate) const LASTUSE_PREFIX: &str = "u/";
/// Persisted counters, one value per stage.
pub(crate) const STATS_TREE: &str = "stats";
/// Other bookkeeping (last gc time).
pub(crate) const META_TREE: &str = "meta";

const CURRENT: &str = "CURRENT";
const CURRENT_TMP: &str = "CURRENT.tmp";
const DB_PREFIX: &str = "db-";

/// A key-value store of named trees: sled on disk, or a map in memory when
/// the cache directory is unavailable.
pub(crate) struct Store {
    inner: Inner,
}

enum Inner {
    Sled {
        db: sled::Db,
        trees: RwLock<HashMap<String, sled::Tree>>,
        path: PathBuf,
    },
    Memory {
        trees: RwLock<HashMap<String, BTreeMap<Vec<u8>, IVec>>>,
    },
}

fn to_io(e: sled::Error) -> io::Error {
    io::Error::from(e)
}

fn panicked(what: &str) -> io::Error {
    io::Error::other(format!("sled panicked while {what}"))
}

impl Store {
    pub(crate) fn memory() -> Store {
        Store {
            inner: Inner::Memory {
                trees: RwLock::new(HashMap::new()),
            },
        }
    }

    /// Opens (creating if needed) the sled database at `path`. sled reports
    /// most damage as errors but a few shapes of garbage make it panic, so a
    /// panic is an error here too.
    pub(crate) fn open_sled(path: &Path) -> io::Result<Store> {
        let config = sled::Config::new().path(path);
        let db = catch_unwind(AssertUnwindSafe(|| config.open()))
            .map_err(|_| panicked("opening the database"))?
            .map_err(to_io)?;
        let store = Store {
            inner: Inner::Sled {
                db,
                trees: RwLock::new(HashMap::new()),
                path: path.to_path_buf(),
            },
        };
        // Touch the small bookkeeping trees so that a damaged database is
        // found now, while it can still be moved aside, rather than mid-run.
        for tree in [STATS_TREE, META_TREE] {
            store.scan(tree, |_, _| {})?;
        }
        Ok(store)
    }

    /// [`Store::open_sled`] for a holder of the directory's lock: sled's lock on its
    /// data file can then only be held by workers that outlive a handle just closed
    /// (by this process, or by one that let go of the directory a moment ago), so it
    /// waits up to `timeout` for them before it calls the database busy.
    pub(crate) fn open_sled_waiting(path: &Path, timeout: Duration) -> io::Result<Store> {
        match Store::open_sled(path) {
            Err(e) if is_sled_lock_error(&e) => {
                wait_until_released(&path.join(SLED_DATA_FILE), timeout);
                Store::open_sled(path)
            }
            opened => opened,
        }
    }

    pub(crate) fn is_persistent(&self) -> bool {
        matches!(self.inner, Inner::Sled { .. })
    }

    /// The sled database directory, if on disk.
    pub(crate) fn path(&self) -> Option<&Path> {
        match &self.inner {
            Inner::Sled { path, .. } => Some(path),
            Inner::Memory { .. } => None,
        }
    }

    fn tree(&self, name: &str) -> io::Result<sled::Tree> {
        let Inner::Sled { db, trees, .. } = &self.inner else {
            unreachable!("tree() is only called on a sled store")
        };
        if let Some(tree) = trees.read().unwrap_or_else(|e| e.into_inner()).get(name) {
            return Ok(tree.clone());
        }
        let tree = db.open_tree(name).map_err(to_io)?;
        trees
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_string(), tree.clone());
        Ok(tree)
    }

    pub(crate) fn get(&self, tree: &str, key: &[u8]) -> io::Result<Option<IVec>> {
        match &self.inner {
            Inner::Sled { .. } => {
                let t = self.tree(tree)?;
                catch_unwind(AssertUnwindSafe(|| t.get(key)))
                    .map_err(|_| panicked("reading"))?
                    .map_err(to_io)
            }
            Inner::Memory { trees } => Ok(trees
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .get(tree)
                .and_then(|t| t.get(key).cloned())),
        }
    }

    /// Stores `value`; returns the length of the value it replaced.
    pub(crate) fn insert(
        &self,
        tree: &str,
        key: &[u8],
        value: Vec<u8>,
    ) -> io::Result<Option<usize>> {
        let old = match &self.inner {
            Inner::Sled { .. } => {
                let t = self.tree(tree)?;
                catch_unwind(AssertUnwindSafe(|| t.insert(key, value)))
                    .map_err(|_| panicked("writing"))?
                    .map_err(to_io)?
            }
            Inner::Memory { trees } => trees
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .entry(tree.to_string())
                .or_default()
                .insert(key.to_vec(), IVec::from(value)),
        };
        Ok(old.map(|v| v.len()))
    }

    /// Removes an entry; returns the length of the value it had.
    pub(crate) fn remove(&self, tree: &str, key: &[u8]) -> io::Result<Option<usize>> {
        let old = match &self.inner {
            Inner::Sled { .. } => {
                let t = self.tree(tree)?;
                catch_unwind(AssertUnwindSafe(|| t.remove(key)))
                    .map_err(|_| panicked("removing"))?
                    .map_err(to_io)?
            }
            Inner::Memory { trees } => trees
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .get_mut(tree)
                .and_then(|t| t.remove(key)),
        };
        Ok(old.map(|v| v.len()))
    }

    /// Writes many entries of one tree at once (`None` removes).
    pub(crate) fn apply(&self, tree: &str, ops: Vec<(Vec<u8>, Option<Vec<u8>>)>) -> io::Result<()> {
        if ops.is_empty() {
            return Ok(());
        }
        match &self.inner {
            Inner::Sled { .. } => {
                let t = self.tree(tree)?;
                let mut batch = sled::Batch::default();
                for (k, v) in ops {
                    match v {
                        Some(v) => batch.insert(k, v),
                        None => batch.remove(k),
                    }
                }
                catch_unwind(AssertUnwindSafe(|| t.apply_batch(batch)))
                    .map_err(|_| panicked("writing"))?
                    .map_err(to_io)?;
            }
            Inner::Memory { trees } => {
                let mut trees = trees.write().unwrap_or_else(|e| e.into_inner());
                let t = trees.entry(tree.to_string()).or_default();
                for (k, v) in ops {
                    match v {
                        Some(v) => {
                            t.insert(k, IVec::from(v));
                        }
                        None => {
                            t.remove(&k);
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Calls `f` with every entry of `tree`, in key order.
    pub(crate) fn scan(&self, tree: &str, mut f: impl FnMut(&[u8], &[u8])) -> io::Result<()> {
        match &self.inner {
            Inner::Sled { .. } => {
                let t = self.tree(tree)?;
                catch_unwind(AssertUnwindSafe(|| -> io::Result<()> {
                    for item in t.iter() {
                        let (k, v) = item.map_err(to_io)?;
                        f(&k, &v);
                    }
                    Ok(())
                }))
                .map_err(|_| panicked("reading"))?
            }
            Inner::Memory { trees } => {
                if let Some(t) = trees.read().unwrap_or_else(|e| e.into_inner()).get(tree) {
                    for (k, v) in t {
                        f(k, v);
                    }
                }
                Ok(())
            }
        }
    }

    /// Names of the trees that hold anything.
    pub(crate) fn tree_names(&self) -> Vec<String> {
        match &self.inner {
            Inner::Sled { db, .. } => db
                .tree_names()
                .into_iter()
                .filter_map(|n| String::from_utf8(n.to_vec()).ok())
                .filter(|n| !n.starts_with("__sled__"))
                .collect(),
            Inner::Memory { trees } => trees
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .keys()
                .cloned()
                .collect(),
        }
    }

    /// Empties a tree, in memory only (a sled store is shrunk by rewriting).
    pub(crate) fn clear_memory_tree(&self, tree: &str) {
        if let Inner::Memory { trees } = &self.inner {
            trees
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .remove(tree);
        }
    }

    /// Makes every write so far durable.
    pub(crate) fn flush(&self) -> io::Result<()> {
        match &self.inner {
            Inner::Sled { db, .. } => catch_unwind(AssertUnwindSafe(|| db.flush()))
                .map_err(|_| panicked("flushing"))?
                .map(|_| ())
                .map_err(to_io),
            Inner::Memory { .. } => Ok(()),
        }
    }
}

/// How long closing waits for sled to let go of its data file before giving up.
const RELEASE_TIMEOUT: Duration = Duration::from_secs(30);

impl Drop for Store {
    /// Closes a sled store for real: everything written is flushed, the database
    /// dropped, and this returns only once sled's lock on its data file is free.
    /// sled's background workers (log writes, file truncation) hold the file for a
    /// moment after the last handle is dropped, and the next [`Store::open_sled`] of
    /// the same database (the next run of `clnrm dev`) would find it locked.
    fn drop(&mut self) {
        let inner = std::mem::replace(
            &mut self.inner,
            Inner::Memory {
                trees: RwLock::new(HashMap::new()),
            },
        );
        let Inner::Sled { db, trees, path } = inner else {
            return;
        };
        let flushed = catch_unwind(AssertUnwindSafe(|| db.flush())).is_ok_and(|r| r.is_ok());
        drop(trees);
        drop(db);
        if flushed && !wait_until_released(&path.join(SLED_DATA_FILE), RELEASE_TIMEOUT) {
            tracing::warn!(
                "sled still holds {} {}s after it was closed",
                path.display(),
                RELEASE_TIMEOUT.as_secs()
            );
        }
    }
}

/// sled's data file in a database directory: the file it locks.
const SLED_DATA_FILE: &str = "db";

/// Waits until nobody in this process (or any other) holds the lock on `file`,
/// by taking it and letting go at once. A missing file holds no lock.
fn wait_until_released(file: &Path, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_micros(100);
    loop {
        match super::lock::is_unlocked(file) {
            Ok(true) | Err(_) => return true,
            Ok(false) if Instant::now() >= deadline => return false,
            Ok(false) => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(10));
            }
        }
    }
}

/// sled reports a held lock only through its message.
pub(crate) fn is_sled_lock_error(e: &io::Error) -> bool {
    e.to_string().contains("could not acquire lock")
}

/// What `CURRENT` says, if anything.
pub(crate) enum Current {
    Missing,
    Names(String),
    Garbage,
}

fn valid_db_name(name: &str) -> bool {
    name.strip_prefix(DB_PREFIX)
        .is_some_and(|n| !n.is_empty() && n.len() <= 19 && n.bytes().all(|b| b.is_ascii_digit()))
}

fn db_number(name: &str) -> u64 {
    name.strip_prefix(DB_PREFIX)
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

pub(crate) fn read_current(dir: &Path) -> Current {
    match fs::read(dir.join(CURRENT)) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Current::Missing,
        Err(_) => Current::Garbage,
        Ok(bytes) => match std::str::from_utf8(&bytes) {
            Ok(s) if valid_db_name(s.trim_end()) && dir.join(s.trim_end()).is_dir() => {
                Current::Names(s.trim_end().to_string())
            }
            _ => Current::Garbage,
        },
    }
}

/// The name of the database to create next: one past any in the directory.
pub(crate) fn next_db_name(dir: &Path) -> String {
    let highest = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| valid_db_name(n))
        .map(|n| db_number(&n))
        .max()
        .unwrap_or(0);
    format!("{DB_PREFIX}{}", highest + 1)
}

/// Points `CURRENT` at `name`, atomically and durably.
pub(crate) fn write_current(dir: &Path, name: &str) -> io::Result<()> {
    let tmp = dir.join(CURRENT_TMP);
    {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(name.as_bytes())?;
        f.write_all(b"\n")?;
        f.sync_all()?;
    }
    fs::rename(&tmp, dir.join(CURRENT))?;
    sync_dir(dir);
    Ok(())
}

fn sync_dir(dir: &Path) {
    // Makes the rename itself durable; not every platform lets a directory be
    // opened for this, and nothing is wrong if it cannot.
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Removes databases `CURRENT` does not name and a leftover `CURRENT.tmp`:
/// what a process that died mid-gc left behind. Only called under the lock.
pub(crate) fn remove_orphans(dir: &Path, current: &str) {
    let _ = fs::remove_file(dir.join(CURRENT_TMP));
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if valid_db_name(&name) && name != current {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

/// A sibling path `<dir>.corrupt-<unix time>` that does not exist yet.
pub(crate) fn corrupt_sibling(dir: &Path, now: u64) -> PathBuf {
    let base = dir
        .as_os_str()
        .to_string_lossy()
        .trim_end_matches('/')
        .to_string();
    let first = PathBuf::from(format!("{base}.corrupt-{now}"));
    if !first.exists() {
        return first;
    }
    (1..)
        .map(|i| PathBuf::from(format!("{base}.corrupt-{now}-{i}")))
        .find(|p| !p.exists())
        .expect("an unused name exists")
}

/// The moved-aside damaged stores of `dir` (`<dir>.corrupt-<unix time>[-<n>]`, see
/// [`corrupt_sibling`]) that were moved aside more than `max_age_secs` before `now`.
pub(crate) fn corrupt_siblings_older_than(dir: &Path, now: u64, max_age_secs: u64) -> Vec<PathBuf> {
    let base = dir.as_os_str().to_string_lossy();
    let base = base.trim_end_matches('/');
    let (Some(parent), Some(name)) = (Path::new(base).parent(), Path::new(base).file_name()) else {
        return Vec::new();
    };
    let prefix = format!("{}.corrupt-", name.to_string_lossy());
    let parent = if parent.as_os_str().is_empty() {
        Path::new(".")
    } else {
        parent
    };
    let mut stale: Vec<PathBuf> = fs::read_dir(parent)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|entry| {
            let file_name = entry.file_name();
            let Some(moved_at) = file_name
                .to_str()
                .and_then(|n| n.strip_prefix(&prefix))
                .map(|rest| rest.split('-').next().unwrap_or(rest))
                .and_then(|secs| secs.parse::<u64>().ok())
            else {
                return false;
            };
            now.saturating_sub(moved_at) > max_age_secs
                && entry.file_type().is_ok_and(|t| t.is_dir())
        })
        .map(|entry| entry.path())
        .collect();
    stale.sort();
    stale
}

/// Moves this cache's own files (`CURRENT`, `db-*`) from `dir` into a new
/// `<dir>.corrupt-<time>` directory, leaving the lock in place. Anything else
/// in `dir` is not ours and stays. Falls back to deleting them when the
/// sibling cannot be created. Returns where they went, if they were kept.
pub(crate) fn quarantine_contents(dir: &Path, now: u64) -> Option<PathBuf> {
    let target = corrupt_sibling(dir, now);
    let kept = fs::create_dir(&target).is_ok();
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if name == CURRENT || name == CURRENT_TMP || valid_db_name(&name) {
            let moved = kept && fs::rename(entry.path(), target.join(&name)).is_ok();
            if !moved {
                let path = entry.path();
                let _ = fs::remove_dir_all(&path).or_else(|_| fs::remove_file(&path));
            }
        }
    }
    kept.then_some(target)
}

/// Bytes the cache's own files take in `dir`.
pub(crate) fn disk_bytes(dir: &Path) -> u64 {
    fn walk(path: &Path) -> u64 {
        match fs::symlink_metadata(path) {
            Ok(m) if m.is_dir() => fs::read_dir(path)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| walk(&e.path()))
                .sum(),
            Ok(m) => m.len(),
            Err(_) => 0,
        }
    }
    fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n == CURRENT || n == "lock" || valid_db_name(n))
        })
        .map(|e| walk(&e.path()))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A database whose last handle another thread is still letting go of (sled's
    /// workers outlive the handle) opens once they are done, instead of being busy.
    #[test]
    fn a_database_still_being_closed_is_waited_for() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db-1");
        let lingering = sled::open(&path).unwrap();
        assert!(
            Store::open_sled(&path).is_err_and(|e| is_sled_lock_error(&e)),
            "the data file is locked while the handle lives"
        );
        let closer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            drop(lingering);
        });
        let store = Store::open_sled_waiting(&path, Duration::from_secs(10)).unwrap();
        assert!(store.is_persistent());
        closer.join().unwrap();
    }

    #[test]
    fn current_round_trip_and_garbage() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(read_current(dir.path()), Current::Missing));
        fs::create_dir(dir.path().join("db-7")).unwrap();
        write_current(dir.path(), "db-7").unwrap();
        assert!(matches!(read_current(dir.path()), Current::Names(n) if n == "db-7"));
        assert_eq!(next_db_name(dir.path()), "db-8");
        fs::write(dir.path().join(CURRENT), b"\xff\x00garbage").unwrap();
        assert!(matches!(read_current(dir.path()), Current::Garbage));
        // Naming a database that is not there is garbage too.
        fs::write(dir.path().join(CURRENT), b"db-9\n").unwrap();
        assert!(matches!(read_current(dir.path()), Current::Garbage));
    }

    #[test]
    fn only_corrupt_siblings_older_than_the_limit_are_stale() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("cache");
        fs::create_dir(&dir).unwrap();
        for name in [
            "cache.corrupt-1000",
            "cache.corrupt-1000-1",
            "cache.corrupt-5000",
            "cache.corrupt-soon",
            "other.corrupt-1000",
        ] {
            fs::create_dir(tmp.path().join(name)).unwrap();
        }
        fs::write(tmp.path().join("cache.corrupt-900"), b"a file, not ours").unwrap();
        let stale = corrupt_siblings_older_than(&dir, 5000, 3000);
        let names: Vec<_> = stale
            .iter()
            .map(|p| p.file_name().unwrap().to_str().unwrap())
            .collect();
        assert_eq!(names, ["cache.corrupt-1000", "cache.corrupt-1000-1"]);
    }

    #[test]
    fn orphans_are_removed_and_foreign_files_kept() {
        let dir = tempfile::tempdir().unwrap();
        for d in ["db-1", "db-2", "db-3"] {
            fs::create_dir(dir.path().join(d)).unwrap();
        }
        fs::write(dir.path().join("notes.txt"), b"mine").unwrap();
        fs::write(dir.path().join(CURRENT_TMP), b"db-3").unwrap();
        remove_orphans(dir.path(), "db-2");
        let mut names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["db-2", "notes.txt"]);
    }
}
