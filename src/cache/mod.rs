//! The content-addressed memo: every stage's output, stored on disk under a
//! blake3 key of everything that determines it.
//!
//! - [`Stage`] names a pure function and the type of its output; [`Memo::get_or_run`]
//!   hashes (stage name, stage version, clnrm version, [`SCHEMA_VERSION`],
//!   input bytes) into a [`Key`], looks it up in that stage's tree and runs the
//!   stage only on a miss. Errors are never stored.
//! - Render's two-level lookup (ccache's direct mode) uses the raw calls:
//!   [`Memo::get_raw`] / [`Memo::put_raw`] on keys from [`Key::new`] or
//!   [`Memo::key`], counting its own hits and misses with [`Memo::record_hit`]
//!   and [`Memo::record_miss`].
//! - Every value sits in a checksummed, versioned envelope: a damaged entry is
//!   a miss, is rewritten, and is counted as `corrupt`.
//! - [`Memo::open`] never fails. A damaged database is moved aside, a busy one
//!   (another clnrm holds it) is waited for and then done without; either way
//!   the caller gets one warning line and a memo that works.
//! - Processes share a directory by taking turns, each holding the store only
//!   while it reads or writes it: [`Memo::release`] lets it go (a run does before
//!   its containers start) and keeps later writes in memory until [`Memo::flush`]
//!   or drop writes them in one batch.
//! - Counters and last-use stamps are kept in memory and written at
//!   [`Memo::flush`] (and on drop), so the bookkeeping costs a run nothing.
//! - [`Memo::gc`] evicts least recently used entries and rewrites the store so
//!   the directory really shrinks (sled never returns freed space). It also
//!   reports which build image records it evicted ([`Memo::record_build_image`]),
//!   which is how `cache gc` decides which `clnrm-build/*` images may go.
//! - Dropping a [`Memo`] flushes and closes the store, and returns only once sled
//!   has let go of its files, so the directory can be opened again at once.
//!
//! What this module is not: it does not know any stage, does not print, and
//! does not decide where the cache directory is (the CLI does, docs/reference.md §2 and §6).

mod build_images;
pub mod engine_gc;
mod envelope;
mod gc;
mod lock;
mod memo;
mod open;
pub mod remote;
mod stats;
mod store;
mod util;

use std::fmt;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

pub use build_images::{build_image_name, BUILD_IMAGE_STAGE};
// For `clnrm doctor`, which looks at a cache directory without opening it.
pub use gc::{ClearReport, GcOptions, GcReport};
pub(crate) use lock::is_unlocked;
pub use memo::Memo;
pub use remote::{Remote, RemoteMode, RemoteOptions, RemoteProbeFailure, RemoteStats};
pub use stats::{CacheStats, StageStats};
pub(crate) use store::disk_bytes;

/// Bump when the meaning of keys or the layout of stored values changes in a
/// way stage versions do not cover; every existing entry then misses.
pub const SCHEMA_VERSION: u32 = 1;

/// The environment variable that overrides [`MemoOptions::lock_timeout`], in seconds.
pub const LOCK_TIMEOUT_ENV: &str = "CLNRM_CACHE_LOCK_TIMEOUT";

/// How long [`Memo::open`] waits for another process's lock by default.
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(10);

/// A memoizable pure function, as far as the cache cares: a name, a version
/// and the type of its output.
pub trait Stage {
    /// The stage's tree and its name in statistics, e.g. `"render"`.
    const NAME: &'static str;
    /// Bump when the output for the same input changes meaning.
    const VERSION: u32;
    /// What the stage produces. Stored with bincode 1, so it must round-trip
    /// through a non-self-describing format (no `#[serde(untagged)]`,
    /// `skip_serializing_if` or `flatten`).
    type Output: Serialize + DeserializeOwned;
}

/// A blake3 hash naming one entry of one stage.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key(pub [u8; 32]);

impl Key {
    /// The key of `input` for stage `stage` at `version`, under this clnrm
    /// version and [`SCHEMA_VERSION`]. Every field is length-prefixed, so no
    /// two different tuples hash the same bytes.
    pub fn new(stage: &str, version: u32, input: &[u8]) -> Key {
        let mut hasher = blake3::Hasher::new();
        let mut field = |bytes: &[u8]| {
            hasher.update(&(bytes.len() as u64).to_le_bytes());
            hasher.update(bytes);
        };
        field(b"clnrm-memo-key");
        field(stage.as_bytes());
        field(&version.to_le_bytes());
        field(env!("CARGO_PKG_VERSION").as_bytes());
        field(&SCHEMA_VERSION.to_le_bytes());
        field(input);
        Key(*hasher.finalize().as_bytes())
    }

    /// The key of `input` for stage `S`.
    pub fn of<S: Stage>(input: &[u8]) -> Key {
        Key::new(S::NAME, S::VERSION, input)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lowercase hex, 64 characters.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({})", &self.to_hex()[..16])
    }
}

/// How a lookup went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    Hit,
    Miss(MissReason),
}

impl Lookup {
    pub fn is_hit(&self) -> bool {
        matches!(self, Lookup::Hit)
    }
}

/// Why a lookup missed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MissReason {
    /// No entry under this key: the input (or the stage, or clnrm) changed.
    NotFound,
    /// An entry was there but damaged or undecodable; it was dropped and is
    /// rewritten by this run.
    Corrupt,
    /// `--no-cache`: nothing is read.
    NoCache,
}

impl fmt::Display for Lookup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Lookup::Hit => f.write_str("hit"),
            Lookup::Miss(MissReason::NotFound) => f.write_str("miss (not cached)"),
            Lookup::Miss(MissReason::Corrupt) => f.write_str("miss (corrupt entry)"),
            Lookup::Miss(MissReason::NoCache) => f.write_str("miss (--no-cache)"),
        }
    }
}

/// How to open a [`Memo`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoOptions {
    /// `--no-cache`: read nothing, still write.
    pub no_read: bool,
    /// How long to wait for another process holding the directory.
    pub lock_timeout: Duration,
}

impl Default for MemoOptions {
    fn default() -> Self {
        MemoOptions {
            no_read: false,
            lock_timeout: DEFAULT_LOCK_TIMEOUT,
        }
    }
}

impl MemoOptions {
    /// The defaults, with the lock timeout from `CLNRM_CACHE_LOCK_TIMEOUT`
    /// (seconds, fractions allowed) when it is set and valid. An invalid
    /// value is returned as a warning line and the default is used.
    pub fn from_env() -> (MemoOptions, Option<String>) {
        let mut opts = MemoOptions::default();
        let Ok(raw) = std::env::var(LOCK_TIMEOUT_ENV) else {
            return (opts, None);
        };
        match parse_seconds(&raw) {
            Some(timeout) => {
                opts.lock_timeout = timeout;
                (opts, None)
            }
            None => (
                opts,
                Some(format!(
                    "{LOCK_TIMEOUT_ENV}={raw:?} is not a number of seconds; using {}s",
                    DEFAULT_LOCK_TIMEOUT.as_secs()
                )),
            ),
        }
    }
}

fn parse_seconds(raw: &str) -> Option<Duration> {
    let secs: f64 = raw.trim().parse().ok()?;
    (0.0..1e9)
        .contains(&secs)
        .then(|| Duration::from_secs_f64(secs))
}

/// What a cache operation that must do its job (gc, clear) can fail with.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// The memo is running without its directory (busy or unusable), so there
    /// is nothing on disk to act on.
    #[error("the cache directory {0} is not available to this process (in use by another clnrm, or unusable)")]
    NotPersistent(String),
    #[error("cache I/O error in {dir}: {source}")]
    Io {
        dir: String,
        #[source]
        source: std::io::Error,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Upper;
    impl Stage for Upper {
        const NAME: &'static str = "upper";
        const VERSION: u32 = 1;
        type Output = String;
    }

    #[test]
    fn key_depends_on_every_field() {
        let base = Key::new("render", 1, b"abc");
        assert_eq!(base, Key::new("render", 1, b"abc"));
        assert_ne!(base, Key::new("parse", 1, b"abc"));
        assert_ne!(base, Key::new("render", 2, b"abc"));
        assert_ne!(base, Key::new("render", 1, b"abd"));
        // Length prefixes keep field boundaries apart.
        assert_ne!(Key::new("ab", 1, b"c"), Key::new("a", 1, b"bc"));
        assert_eq!(Key::of::<Upper>(b"x"), Key::new("upper", 1, b"x"));
        assert_eq!(base.to_hex().len(), 64);
    }

    #[test]
    fn lock_timeout_parsing() {
        assert_eq!(parse_seconds("10"), Some(Duration::from_secs(10)));
        assert_eq!(parse_seconds(" 0.25 "), Some(Duration::from_millis(250)));
        assert_eq!(parse_seconds("-1"), None);
        assert_eq!(parse_seconds("soon"), None);
    }
}
