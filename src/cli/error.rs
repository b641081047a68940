//! Why a command could not do its job (exit 2), or why it stopped early because its
//! reader went away (exit 0, quietly). Each cause keeps its type up to `main`, where
//! [`super::exit_code`] turns it into a number and [`CliError`]'s message is shown once.
//! This module decides nothing about exit codes and prints nothing.

use std::path::PathBuf;

use crate::cache::CacheError;
use crate::dev::DevError;
use crate::discover::DiscoverError;
use crate::project::ProjectError;

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The command line does not parse (clap's message says where). `--help` and
    /// `--version` arrive here too, as clap reports them: not failures.
    #[error("{0}")]
    Arguments(#[from] clap::Error),
    /// The paths given hold no test file.
    #[error(
        "no tests found in {} (tests are named *.clnrm.toml, *.clnrm.toml.tera or *.toml.tera; files ignored by .gitignore/.ignore are skipped)",
        shown_paths(paths)
    )]
    NoTests { paths: Vec<PathBuf> },
    /// `clnrm init` found a project file it would overwrite.
    #[error("{} already exists; clnrm init writes only into a project without one", path.display())]
    ProjectExists { path: PathBuf },
    /// `cleanroom.toml` cannot be read or parsed.
    #[error(transparent)]
    Project(#[from] ProjectError),
    #[error(transparent)]
    Discover(#[from] DiscoverError),
    #[error(transparent)]
    Cache(#[from] CacheError),
    /// The remote cache's settings are unusable (a bad URL, mode or timeout).
    #[error(transparent)]
    RemoteCache(#[from] crate::cache::remote::RemoteConfigError),
    /// The Docker engine is unreachable or refused a request the command needs.
    #[error(transparent)]
    Engine(#[from] clnrm_exec::ExecError),
    /// `clnrm dev` could not start, or its watcher stopped.
    #[error(transparent)]
    Dev(#[from] DevError),
    #[error("cannot read the current directory: {0}")]
    WorkingDirectory(std::io::Error),
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write to stdout: {0}")]
    Stdout(std::io::Error),
    /// The reader of stdout went away (`clnrm run | head -1`) and the command
    /// stopped early, its containers removed.
    #[error("stdout was closed by its reader")]
    StdoutClosed,
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
    /// I/O with no better place (a plain `io::Result` passed on with `?`).
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
    /// The reader of our output went away (`clnrm run | head`): a quiet exit, not an
    /// error. Recognised by the error's kind, never its text.
    pub fn is_reader_gone(&self) -> bool {
        let io = match self {
            CliError::StdoutClosed => return true,
            CliError::Stdout(err) | CliError::Io(err) => err,
            _ => return false,
        };
        io.kind() == std::io::ErrorKind::BrokenPipe
    }
}

fn shown_paths(paths: &[PathBuf]) -> String {
    let shown: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    shown.join(", ")
}
