//! The cache directory's check: where it is, its size and entries, whether another
//! process holds its lock (and which, when the kernel says), and whether clnrm can write
//! there. The store is opened only when nobody holds it, and closed at once.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::Check;
use crate::cache::{disk_bytes, is_unlocked, Memo, MemoOptions};
use crate::report::format_bytes;

const NAME: &str = "cache";
const FIX_UNWRITABLE: &str = "make the directory writable by this user, or point --cache-dir / CLNRM_CACHE_DIR (or [cache] dir in cleanroom.toml) at a writable one";

pub(super) fn check(dir: &Path) -> Check {
    let shown = dir.display();
    if !dir.exists() {
        let parent = existing_ancestor(dir);
        return match probe_write(&parent) {
            Ok(()) => Check::ok(
                NAME,
                format!("{shown}: not created yet (the first run creates it)"),
            ),
            Err(e) => Check::fail(
                NAME,
                format!(
                    "{shown} cannot be created: {} is not writable ({e})",
                    parent.display()
                ),
                FIX_UNWRITABLE,
            ),
        };
    }
    if let Err(e) = probe_write(dir) {
        return Check::fail(
            NAME,
            format!("{shown} is not writable ({e}); runs would go without the cache"),
            FIX_UNWRITABLE,
        );
    }
    let size = format_bytes(disk_bytes(dir));
    match is_unlocked(&dir.join("lock")) {
        Ok(true) => entries(dir, &size),
        Err(e) if e.kind() == io::ErrorKind::NotFound => entries(dir, &size),
        Ok(false) => Check::warn(
            NAME,
            format!(
                "{shown}: {size}; its lock is held by {} (entries not counted)",
                lock_holder(&dir.join("lock"))
                    .unwrap_or_else(|| "another process".to_string())
            ),
            "nothing, unless no clnrm should be running: then end that process; a second clnrm on this directory waits for it, then runs without the cache",
        ),
        Err(e) => Check::fail(
            NAME,
            format!("{shown}: its lock file cannot be opened ({e})"),
            FIX_UNWRITABLE,
        ),
    }
}

/// The store's entries, read with the lock taken for as long as that takes.
fn entries(dir: &Path, size: &str) -> Check {
    let options = MemoOptions {
        no_read: true,
        lock_timeout: Duration::ZERO,
    };
    let (memo, warnings) = Memo::open(dir, options);
    let persistent = memo.is_persistent();
    let entries = memo.stats().total().entries;
    drop(memo);
    let shown = dir.display();
    match warnings.first() {
        Some(warning) if !persistent => Check::fail(
            NAME,
            warning.clone(),
            "move the directory aside, or point --cache-dir / CLNRM_CACHE_DIR at another",
        ),
        Some(warning) => Check::warn(
            NAME,
            format!("{shown}: {size}, {entries} entries, lock free, writable; {warning}"),
            "nothing: clnrm repaired it; if this repeats, look for a disk problem",
        ),
        None => Check::ok(
            NAME,
            format!("{shown}: {size}, {entries} entries, lock free, writable"),
        ),
    }
}

/// Creates and removes a file in `dir`: the only sure test (permissions, a read-only
/// mount, a full disk, an ACL).
fn probe_write(dir: &Path) -> io::Result<()> {
    let probe = dir.join(format!(".clnrm-doctor-{}", std::process::id()));
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)?;
    std::fs::remove_file(&probe)
}

fn existing_ancestor(dir: &Path) -> PathBuf {
    dir.ancestors()
        .skip(1)
        .find(|a| a.is_dir())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// `pid <n> (<command>)` of the process holding a `flock` on `lock`, from /proc/locks.
fn lock_holder(lock: &Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let inode = std::fs::metadata(lock).ok()?.ino();
    let locks = std::fs::read_to_string("/proc/locks").ok()?;
    let pid = holder_of(&locks, inode)?;
    let command = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    Some(format!("pid {pid} ({})", command.trim()))
}

/// The pid holding a `FLOCK` on inode `inode` in /proc/locks's text
/// (`1: FLOCK  ADVISORY  WRITE 4242 fd:01:1234 0 EOF`).
fn holder_of(locks: &str, inode: u64) -> Option<u32> {
    locks.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (kind, pid, file) = (fields.get(1)?, fields.get(4)?, fields.get(5)?);
        let on_inode = file.rsplit(':').next()?.parse::<u64>().ok()? == inode;
        (*kind == "FLOCK" && on_inode).then(|| pid.parse().ok())?
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_holder_is_read_from_proc_locks_by_inode() {
        let locks = "1: POSIX  ADVISORY  WRITE 99 fd:01:77 0 EOF\n\
                     2: FLOCK  ADVISORY  WRITE 4242 fd:01:77 0 EOF\n\
                     3: FLOCK  ADVISORY  WRITE 5 fd:01:78 0 EOF\n";
        assert_eq!(holder_of(locks, 77), Some(4242));
        assert_eq!(holder_of(locks, 78), Some(5));
        assert_eq!(holder_of(locks, 79), None);
    }

    #[test]
    fn a_lock_this_process_holds_is_named_with_its_pid() {
        let dir = tempfile::tempdir().unwrap();
        let (memo, _) = Memo::open(dir.path(), MemoOptions::default());
        let check = check(dir.path());
        assert_eq!(check.status, super::super::Status::Warn, "{check:?}");
        let me = format!("pid {} (", std::process::id());
        assert!(check.detail.contains(&me), "{check:?}");
        drop(memo);
        let check = super::check(dir.path());
        assert_eq!(check.status, super::super::Status::Ok, "{check:?}");
        assert!(check.detail.contains("0 entries, lock free"), "{check:?}");
    }
}
