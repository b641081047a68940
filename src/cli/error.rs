//! Why a command could not do its job (exit 2). Each cause keeps its type up to `main`,
//! which turns it into one message; a broken pipe is recognised by its kind, not its text.

use std::path::PathBuf;

use crate::cache::CacheError;
use crate::dev::DevError;
use crate::discover::DiscoverError;
use crate::project::ProjectError;

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The command line asked for something that cannot be done: no tests under the
    /// given paths, a project that already exists, an unusable flag value.
    #[error("{0}")]
    Usage(String),
    /// `cleanroom.toml` cannot be read or parsed.
    #[error(transparent)]
    Project(#[from] ProjectError),
    #[error(transparent)]
    Discover(#[from] DiscoverError),
    #[error(transparent)]
    Cache(#[from] CacheError),
    /// The Docker engine is unreachable or refused a request the command needs.
    #[error(transparent)]
    Engine(#[from] clnrm_exec::ExecError),
    /// `clnrm dev` could not start, or its watcher stopped.
    #[error(transparent)]
    Dev(#[from] DevError),
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Writing to stdout/stderr, the working directory, the async runtime.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    ThreadPool(#[from] rayon::ThreadPoolBuildError),
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    /// A background task of the command panicked or was cancelled.
    #[error("internal error: {0}")]
    Task(#[from] tokio::task::JoinError),
}

impl CliError {
    /// The reader of our output went away (`clnrm run | head`): a quiet exit.
    pub fn is_broken_pipe(&self) -> bool {
        let io = match self {
            CliError::Io(err) => err,
            CliError::Write { source, .. } => source,
            _ => return false,
        };
        io.kind() == std::io::ErrorKind::BrokenPipe
    }
}
