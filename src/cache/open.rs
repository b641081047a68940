//! Opening a cache directory whatever state it is in: created if missing, a file in
//! its place moved aside, waited for while another process holds it, a damaged
//! database moved aside. Not the memo itself (`memo.rs`) nor the storage engine
//! (`store.rs`).

use std::fs;
use std::io;
use std::path::Path;
use std::time::Duration;

use super::lock::{DirLock, LockError};
use super::store::{self, Current, Store};
use super::util::{now_secs, one_line};

/// Opens the directory's database, whatever it takes, waiting up to `lock_timeout`
/// for another process that holds it; see [`super::Memo::open`]. Without a lock
/// the store is in memory.
pub(crate) fn open_store(
    dir: &Path,
    lock_timeout: Duration,
    warnings: &mut Vec<String>,
) -> (Store, Option<DirLock>) {
    let shown = dir.display();
    if let Err(e) = fs::create_dir_all(dir) {
        let not_a_dir = fs::symlink_metadata(dir).is_ok_and(|m| !m.is_dir());
        if !not_a_dir {
            warnings.push(format!(
                "cache directory {shown} cannot be created ({}); continuing without the persistent cache",
                one_line(e)
            ));
            return (Store::memory(), None);
        }
        // A file where the directory should be: that is garbage, not someone's folder.
        let target = store::corrupt_sibling(dir, now_secs());
        if let Err(e) = fs::rename(dir, &target).and_then(|_| fs::create_dir_all(dir)) {
            warnings.push(format!(
                "cache directory {shown} is not a directory and cannot be replaced ({}); continuing without the persistent cache",
                one_line(e)
            ));
            return (Store::memory(), None);
        }
        warnings.push(format!(
            "cache directory {shown} was not a directory; moved it aside to {} and started a fresh cache",
            target.display()
        ));
    }

    let lock = match DirLock::acquire(dir, lock_timeout) {
        Ok(lock) => lock,
        Err(LockError::Busy) => {
            warnings.push(format!(
                "cache directory {shown} is in use by another clnrm process (waited {:.1}s); continuing without the persistent cache",
                lock_timeout.as_secs_f64()
            ));
            return (Store::memory(), None);
        }
        Err(LockError::Io(e)) => {
            warnings.push(format!(
                "cache directory {shown} cannot be locked ({}); continuing without the persistent cache",
                one_line(e)
            ));
            return (Store::memory(), None);
        }
    };
    tracing::debug!(lock = %lock.path().display(), "cache lock taken");

    let problem = match store::read_current(dir) {
        Current::Names(name) => match Store::open_sled_waiting(&dir.join(&name), lock_timeout) {
            Ok(store) => {
                store::remove_orphans(dir, &name);
                return (store, Some(lock));
            }
            // Busy is not damaged: never move a healthy database aside.
            Err(e) if store::is_sled_lock_error(&e) => {
                warnings.push(format!(
                    "cache directory {shown} is in use ({}); continuing without the persistent cache",
                    one_line(e)
                ));
                return (Store::memory(), None);
            }
            Err(e) => Some(format!(
                "cache database {} cannot be opened ({})",
                dir.join(&name).display(),
                one_line(e)
            )),
        },
        Current::Garbage => Some(format!(
            "cache directory {shown} has a damaged CURRENT file"
        )),
        Current::Missing => None,
    };
    if let Some(problem) = problem {
        match store::quarantine_contents(dir, now_secs()) {
            Some(target) => warnings.push(format!(
                "{problem}; moved it aside to {} and started a fresh cache",
                target.display()
            )),
            None => warnings.push(format!("{problem}; deleted it and started a fresh cache")),
        }
    }
    match create_fresh(dir) {
        Ok(store) => (store, Some(lock)),
        Err(e) => {
            warnings.push(format!(
                "cache database in {shown} cannot be created ({}); continuing without the persistent cache",
                one_line(e)
            ));
            (Store::memory(), None)
        }
    }
}

fn create_fresh(dir: &Path) -> io::Result<Store> {
    let name = store::next_db_name(dir);
    store::remove_orphans(dir, &name);
    let store = Store::open_sled(&dir.join(&name))?;
    store.flush()?;
    store::write_current(dir, &name)?;
    Ok(store)
}
