//! A barrier through the file-event queue: after [`Fence::pass`] returns, every
//! file event raised before it was called has reached the trigger. A run that
//! read a file while a save was rewriting it (an empty or truncated read) cannot
//! then look current: the save's first event is already among the pending paths.
//!
//! It works by writing a numbered marker file into a folder of its own, watched
//! by the same operating-system watcher as the project: one inotify queue keeps
//! events in order, so once the watcher thread has taken in the marker's event,
//! it has taken in every earlier one.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

/// The marker folder and how far the watcher thread has got through it.
#[derive(Debug)]
pub(super) struct Fence {
    dir: PathBuf,
    issued: AtomicU64,
    /// The highest marker the watcher thread has passed on (published after the
    /// events before it went through the trigger).
    passed: Mutex<u64>,
    wake: Condvar,
}

impl Fence {
    /// A fence in a new folder under the system's temporary folder; `None` when
    /// it cannot be made (then a run's reads are checked by the events already seen).
    pub(super) fn create() -> Option<Fence> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "clnrm-watch-fence-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let dir = std::env::temp_dir().join(name);
        if let Err(err) = fs::create_dir_all(&dir) {
            tracing::debug!(dir = %dir.display(), error = %err, "no watch fence");
            return None;
        }
        // notify reports paths under the name they were watched by: the real one.
        let dir = fs::canonicalize(&dir).unwrap_or(dir);
        Some(Fence {
            dir,
            issued: AtomicU64::new(0),
            passed: Mutex::new(0),
            wake: Condvar::new(),
        })
    }

    /// The folder to watch.
    pub(super) fn dir(&self) -> &Path {
        &self.dir
    }

    /// The marker number `path` stands for, if it is one of this fence's markers.
    pub(super) fn marker_of(&self, path: &Path) -> Option<u64> {
        if path.parent() != Some(self.dir.as_path()) {
            return None;
        }
        path.file_name()?.to_str()?.parse().ok()
    }

    /// Called by the watcher thread once every event up to marker `seen` went
    /// through the trigger; the marker file is removed.
    pub(super) fn passed_on(&self, seen: u64) {
        let mut passed = self.passed.lock().unwrap_or_else(|e| e.into_inner());
        if seen > *passed {
            for marker in *passed + 1..=seen {
                let _ = fs::remove_file(self.dir.join(marker.to_string()));
            }
            *passed = seen;
            self.wake.notify_all();
        }
    }

    /// Drops a marker into the queue and waits up to `patience` for the watcher
    /// thread to pass it. Returns whether it did.
    pub(super) fn pass(&self, patience: Duration) -> bool {
        let marker = self.issued.fetch_add(1, Ordering::SeqCst) + 1;
        if let Err(err) = fs::write(self.dir.join(marker.to_string()), b"") {
            tracing::debug!(error = %err, "watch fence marker not written");
            return false;
        }
        let deadline = Instant::now() + patience;
        let mut passed = self.passed.lock().unwrap_or_else(|e| e.into_inner());
        while *passed < marker {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                tracing::debug!(marker, "watch fence not passed in time");
                return false;
            }
            passed = self
                .wake
                .wait_timeout(passed, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        true
    }
}

impl Drop for Fence {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_are_numbered_files_in_the_fence_folder_only() {
        let fence = Fence::create().expect("a temporary folder");
        assert_eq!(fence.marker_of(&fence.dir().join("7")), Some(7));
        assert_eq!(fence.marker_of(&fence.dir().join("x")), None);
        assert_eq!(fence.marker_of(Path::new("/elsewhere/7")), None);
        let dir = fence.dir().to_path_buf();
        drop(fence);
        assert!(!dir.exists(), "the fence folder goes with the fence");
    }

    #[test]
    fn a_marker_nobody_passes_times_out_and_a_passed_one_returns() {
        let fence = std::sync::Arc::new(Fence::create().unwrap());
        assert!(!fence.pass(Duration::from_millis(20)));
        let passer = {
            let fence = fence.clone();
            std::thread::spawn(move || {
                while !fence.dir().join("2").exists() {
                    std::thread::sleep(Duration::from_millis(1));
                }
                fence.passed_on(2);
            })
        };
        assert!(fence.pass(Duration::from_secs(10)));
        passer.join().unwrap();
        for marker in ["1", "2"] {
            assert!(
                !fence.dir().join(marker).exists(),
                "passed markers are removed"
            );
        }
    }
}
