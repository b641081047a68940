//! Why a [`super::Watcher`] could not start or go on: shared by the event loop
//! and the folder tree it watches, so neither imports the other for it.

use std::path::PathBuf;

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
