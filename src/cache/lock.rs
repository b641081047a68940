//! The cache directory's lock: one clnrm process has a cache directory's store
//! open at a time. sled takes its own exclusive lock on its data file, but ours is
//! taken first, on a file that never moves, so that swapping in a compacted
//! database (see `store.rs`) happens entirely under it. A run holds it only while
//! it reads or writes the store (milliseconds), never while containers run, so a
//! waiter retries often: from 1 ms, doubling to a cap of 16 ms, each pause jittered
//! so that two waiters do not retry in step and the first to see it free takes it.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

/// The first pause of a waiting process before it retries the lock.
const FIRST_PAUSE: Duration = Duration::from_millis(1);
/// The longest pause between retries: a holder releases within milliseconds, so a
/// waiter that paused longer would sleep through most of the gaps between holders.
const MAX_PAUSE: Duration = Duration::from_millis(16);

/// An exclusive `flock` on `<dir>/lock`, released when dropped (the file is
/// closed). `flock` locks belong to the open file description, so a second
/// `DirLock::acquire` on the same directory fails even in the same process.
#[derive(Debug)]
pub(crate) struct DirLock {
    _file: File,
    path: PathBuf,
}

/// Why the lock was not taken.
#[derive(Debug)]
pub(crate) enum LockError {
    /// Another process (or another `Memo` in this one) held it for the whole timeout.
    Busy,
    /// The lock file could not be opened or locked for another reason.
    Io(io::Error),
}

impl DirLock {
    /// Takes the lock, retrying with backoff until `timeout` has passed (one try
    /// with a zero timeout).
    pub(crate) fn acquire(dir: &Path, timeout: Duration) -> Result<DirLock, LockError> {
        let path = dir.join("lock");
        let deadline = Instant::now() + timeout;
        let mut pause = FIRST_PAUSE;
        let mut tries: u32 = 0;
        loop {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .map_err(LockError::Io)?;
            match try_lock(&file) {
                Ok(true) => {
                    // The directory may have been moved aside between our open
                    // and our lock; then this lock guards nothing. Start over.
                    if same_file(&file, &path) {
                        return Ok(DirLock { _file: file, path });
                    }
                    continue;
                }
                Ok(false) => {}
                Err(e) => return Err(LockError::Io(e)),
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(LockError::Busy);
            }
            tries = tries.wrapping_add(1);
            thread::sleep(jittered(pause, tries).min(deadline - now));
            pause = (pause * 2).min(MAX_PAUSE);
        }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

/// `pause` stretched by up to half of itself, differently in each process and try.
fn jittered(pause: Duration, tries: u32) -> Duration {
    let clock = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let mut seed = [0u8; 12];
    seed[..4].copy_from_slice(&std::process::id().to_le_bytes());
    seed[4..8].copy_from_slice(&tries.to_le_bytes());
    seed[8..].copy_from_slice(&clock.to_le_bytes());
    let hash = blake3::hash(&seed);
    let spread = u64::from_le_bytes(hash.as_bytes()[..8].try_into().expect("8 bytes"));
    let half = pause.as_micros() as u64 / 2 + 1;
    pause + Duration::from_micros(spread % half)
}

/// Whether nobody holds an exclusive `flock` on `file` now: takes it and lets go
/// at once (closing the file releases it). sled locks its data file this way.
pub(crate) fn is_unlocked(file: &Path) -> io::Result<bool> {
    let file = OpenOptions::new().read(true).open(file)?;
    try_lock(&file)
}

#[cfg(unix)]
fn try_lock(file: &File) -> io::Result<bool> {
    use std::os::unix::io::AsRawFd;
    loop {
        // SAFETY: flock on a file descriptor we own for the duration of the call.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc == 0 {
            return Ok(true);
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(code) if code == libc::EWOULDBLOCK || code == libc::EAGAIN => return Ok(false),
            _ => return Err(err),
        }
    }
}

#[cfg(not(unix))]
fn try_lock(_file: &File) -> io::Result<bool> {
    // Elsewhere sled's own lock on its data file is the only guard.
    Ok(true)
}

#[cfg(unix)]
fn same_file(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

#[cfg(not(unix))]
fn same_file(_file: &File, path: &Path) -> bool {
    path.exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_in_same_process_is_busy_until_first_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let first = DirLock::acquire(dir.path(), Duration::ZERO).unwrap();
        let started = Instant::now();
        let second = DirLock::acquire(dir.path(), Duration::from_millis(120));
        assert!(matches!(second, Err(LockError::Busy)));
        assert!(started.elapsed() >= Duration::from_millis(120));
        drop(first);
        assert!(DirLock::acquire(dir.path(), Duration::ZERO).is_ok());
    }
}
