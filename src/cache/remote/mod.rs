//! The remote tier of the cache (docs/reference.md §10): a Bazel-protocol HTTP cache server
//! (`GET`/`PUT <URL>/ac/<64 hex key>`) behind the local store. The memo asks the
//! local store first and this tier on a local miss; a remote hit is stored locally,
//! a local write of a shared stage is uploaded in the background ([`Remote::upload`]),
//! and [`Remote::fetch_many`] asks for many keys at once so a thousand cached tests
//! are not a thousand round trips one after another.
//!
//! The remote can make a run faster, never wrong and never failed: a value that
//! fails its checks (`signing.rs`), a timeout, a refused connection, a `5xx` or a
//! `401` is a miss with one warning per run, and the circuit breaker stops asking
//! after repeated failures (at once for a timeout, a refused connection or
//! refused credentials). Credentials never reach a message: see `endpoint.rs`.
//!
//! - `endpoint.rs`: the URL and its credentials;
//! - `http.rs`: the blocking, pooled HTTP client and its failures;
//! - `signing.rs`: the frame a value travels in, with its optional keyed MAC;
//! - `uploads.rs`: the bounded pool of background uploads;
//! - `tier.rs`: the memo's side: read-through, uploads after writes, counters.
//!
//! What this module is not: it does not decide which stages are shared (the caller
//! names them in [`RemoteOptions::stages`]) and it does not print.

mod endpoint;
mod http;
mod signing;
mod tier;
mod uploads;

use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::Key;
use endpoint::Endpoint;
use http::{Failure, HttpClient};
use signing::SigningKey;
use uploads::Uploads;

/// A Bearer token for the remote cache.
pub const REMOTE_TOKEN_ENV: &str = "CLNRM_REMOTE_CACHE_TOKEN";
/// The secret that signs uploads and must sign what is read.
pub const REMOTE_KEY_ENV: &str = "CLNRM_REMOTE_CACHE_KEY";
/// Seconds one request to the remote may take (fractions allowed).
pub const REMOTE_TIMEOUT_ENV: &str = "CLNRM_REMOTE_CACHE_TIMEOUT";

/// How long one request may take by default. A cache answer that takes longer than
/// this costs more than it saves on a test that takes a few seconds, and a run with
/// an unreachable server must stay close to one without a remote.
pub const DEFAULT_REMOTE_TIMEOUT: Duration = Duration::from_secs(1);
/// How long the end of a command waits for uploads still queued.
pub const UPLOAD_DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Failures that open the circuit breaker (fewer when a failure is fatal at once).
const BREAKER_THRESHOLD: u32 = 3;
/// Requests in flight at once in [`Remote::fetch_many`].
const FETCH_THREADS: usize = 16;

/// `--remote-cache-mode`: what this client may do with the remote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RemoteMode {
    /// Read only: for untrusted builds such as forks' pull requests.
    Read,
    /// Upload only.
    Write,
    #[default]
    ReadWrite,
}

impl RemoteMode {
    pub fn reads(self) -> bool {
        matches!(self, RemoteMode::Read | RemoteMode::ReadWrite)
    }

    pub fn writes(self) -> bool {
        matches!(self, RemoteMode::Write | RemoteMode::ReadWrite)
    }
}

impl FromStr for RemoteMode {
    type Err = String;

    fn from_str(text: &str) -> Result<RemoteMode, String> {
        match text.trim() {
            "read" => Ok(RemoteMode::Read),
            "write" => Ok(RemoteMode::Write),
            "readwrite" => Ok(RemoteMode::ReadWrite),
            other => Err(format!(
                "`{other}` is not a remote cache mode: expected read, write or readwrite"
            )),
        }
    }
}

impl fmt::Display for RemoteMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RemoteMode::Read => "read",
            RemoteMode::Write => "write",
            RemoteMode::ReadWrite => "readwrite",
        })
    }
}

/// How to reach the remote tier. `Debug` never shows the URL's credentials, the
/// token or the signing secret.
#[derive(Clone, PartialEq, Eq)]
pub struct RemoteOptions {
    /// As given: `https://user:pass@host/prefix` or without credentials.
    pub url: String,
    pub mode: RemoteMode,
    /// `CLNRM_REMOTE_CACHE_TOKEN`: sent as `Authorization: Bearer …`.
    pub token: Option<String>,
    /// `CLNRM_REMOTE_CACHE_KEY`: uploads are signed with it, reads must be.
    pub signing_secret: Option<String>,
    /// One request's timeout (connect and answer).
    pub timeout: Duration,
    /// The stages whose values are shared through the remote (`["result"]`).
    pub stages: Vec<String>,
}

impl fmt::Debug for RemoteOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteOptions")
            .field("url", &endpoint::redact(&self.url))
            .field("mode", &self.mode)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field(
                "signing_secret",
                &self.signing_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("timeout", &self.timeout)
            .field("stages", &self.stages)
            .finish()
    }
}

/// Why the remote tier could not be set up: a usage error, shown as is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RemoteConfigError {
    #[error("remote cache URL {url}: {reason}")]
    Url { url: String, reason: String },
    #[error("{REMOTE_TIMEOUT_ENV}={value:?} is not a number of seconds above 0")]
    Timeout { value: String },
    #[error("{origin}: {reason}")]
    Mode { origin: String, reason: String },
}

/// Parses `CLNRM_REMOTE_CACHE_TIMEOUT`'s value (seconds, fractions allowed).
pub fn parse_remote_timeout(value: &str) -> Result<Duration, RemoteConfigError> {
    value
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|secs| *secs > 0.0 && *secs < 1e6)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| RemoteConfigError::Timeout {
            value: value.to_string(),
        })
}

/// Stops asking the remote after repeated failures.
#[derive(Default)]
pub(crate) struct Breaker {
    failures: AtomicU32,
    open: AtomicBool,
}

impl Breaker {
    pub(crate) fn allows(&self) -> bool {
        !self.open.load(Ordering::Acquire)
    }

    /// Records a failure; returns whether the breaker is now open.
    fn record(&self, failure: &Failure) -> bool {
        let failures = self.failures.fetch_add(1, Ordering::AcqRel) + 1;
        if failure.is_fatal_at_once() || failures >= BREAKER_THRESHOLD {
            self.open.store(true, Ordering::Release);
        }
        !self.allows()
    }
}

/// This process's remote figures, bumped from any thread.
#[derive(Default)]
pub(crate) struct RemoteCounters {
    hits: AtomicU64,
    misses: AtomicU64,
    errors: AtomicU64,
    rejected: AtomicU64,
    uploads: AtomicU64,
    bytes_down: AtomicU64,
    bytes_up: AtomicU64,
}

impl RemoteCounters {
    fn uploaded(&self, bytes: usize) {
        self.uploads.fetch_add(1, Ordering::Relaxed);
        self.bytes_up.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// Reads and resets.
    pub(crate) fn take(&self) -> RemoteFigures {
        let take = |n: &AtomicU64| n.swap(0, Ordering::Relaxed);
        RemoteFigures {
            hits: take(&self.hits),
            misses: take(&self.misses),
            errors: take(&self.errors),
            rejected: take(&self.rejected),
            uploads: take(&self.uploads),
            bytes_down: take(&self.bytes_down),
            bytes_up: take(&self.bytes_up),
        }
    }

    pub(crate) fn restore(&self, f: &RemoteFigures) {
        let add = |n: &AtomicU64, v: u64| n.fetch_add(v, Ordering::Relaxed);
        add(&self.hits, f.hits);
        add(&self.misses, f.misses);
        add(&self.errors, f.errors);
        add(&self.rejected, f.rejected);
        add(&self.uploads, f.uploads);
        add(&self.bytes_down, f.bytes_down);
        add(&self.bytes_up, f.bytes_up);
    }
}

/// The remote's counters, persisted in the local store across runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteFigures {
    /// Values found on the remote (and stored locally).
    pub hits: u64,
    /// Keys the remote did not have.
    pub misses: u64,
    /// Requests that failed: timeout, refused connection, 5xx, 401 (requests not
    /// made because the circuit breaker was open are not counted).
    pub errors: u64,
    /// Values read but not used: unsigned, wrongly signed or damaged.
    pub rejected: u64,
    /// Values uploaded.
    pub uploads: u64,
    pub bytes_down: u64,
    pub bytes_up: u64,
}

impl RemoteFigures {
    const FIELDS: usize = 7;

    fn fields(&self) -> [u64; Self::FIELDS] {
        [
            self.hits,
            self.misses,
            self.errors,
            self.rejected,
            self.uploads,
            self.bytes_down,
            self.bytes_up,
        ]
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        self.fields().iter().flat_map(|n| n.to_le_bytes()).collect()
    }

    /// Anything malformed reads as zeros: statistics never fail a run.
    pub(crate) fn decode(bytes: &[u8]) -> RemoteFigures {
        if bytes.len() != Self::FIELDS * 8 {
            return RemoteFigures::default();
        }
        let n =
            |i: usize| u64::from_le_bytes(bytes[i * 8..i * 8 + 8].try_into().unwrap_or_default());
        RemoteFigures {
            hits: n(0),
            misses: n(1),
            errors: n(2),
            rejected: n(3),
            uploads: n(4),
            bytes_down: n(5),
            bytes_up: n(6),
        }
    }

    pub(crate) fn add(&mut self, other: &RemoteFigures) {
        self.hits += other.hits;
        self.misses += other.misses;
        self.errors += other.errors;
        self.rejected += other.rejected;
        self.uploads += other.uploads;
        self.bytes_down += other.bytes_down;
        self.bytes_up += other.bytes_up;
    }

    pub(crate) fn is_zero(&self) -> bool {
        *self == RemoteFigures::default()
    }
}

/// The remote's line in `cache stats`: its figures over every run with this cache
/// directory, and, when this process has a remote configured, which one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteStats {
    /// The remote's URL without credentials; `null` when none is configured now.
    pub url: Option<String>,
    pub mode: Option<RemoteMode>,
    /// Whether values are signed and checked (`CLNRM_REMOTE_CACHE_KEY`); without a
    /// key the remote is trusted as it is.
    pub signed: bool,
    #[serde(flatten)]
    pub figures: RemoteFigures,
}

/// Why [`Remote::probe`] got no cache's answer; `reason` never holds credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteProbeFailure {
    pub reason: String,
    /// 401 or 403: the server refused the credentials (or their absence).
    pub credentials_refused: bool,
}

/// What the upload threads and the fetching threads share.
pub(crate) struct Shared {
    pub(crate) http: HttpClient,
    pub(crate) breaker: Breaker,
    pub(crate) counters: RemoteCounters,
    signing: Option<SigningKey>,
    warnings: Mutex<Vec<String>>,
    failure_warned: AtomicBool,
    rejection_warned: AtomicBool,
}

impl Shared {
    /// Counts a failed request and warns about the first one of the run.
    pub(crate) fn failed(&self, failure: &Failure) {
        self.counters.errors.fetch_add(1, Ordering::Relaxed);
        let now_open = self.breaker.record(failure);
        tracing::debug!(
            remote = self.http.endpoint().shown(),
            "remote cache: {failure}"
        );
        if !self.failure_warned.swap(true, Ordering::AcqRel) {
            let next = if now_open {
                "not asked again in this run"
            } else {
                "asked again, until it fails repeatedly"
            };
            self.warn(format!(
                "remote cache {}: {failure}; results are unaffected (the remote is {next})",
                self.http.endpoint().shown()
            ));
        }
    }

    fn rejected(&self, key: &Key, why: signing::Rejected) {
        self.counters.rejected.fetch_add(1, Ordering::Relaxed);
        if !self.rejection_warned.swap(true, Ordering::AcqRel) {
            self.warn(format!(
                "remote cache {}: the value for {} {why}; treated as a miss",
                self.http.endpoint().shown(),
                &key.to_hex()[..16]
            ));
        }
    }

    /// Kept for [`Memo::take_warnings`](super::Memo::take_warnings), which the CLI
    /// prints once; not logged as well, so the user reads it once.
    fn warn(&self, message: String) {
        self.warnings
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(message);
    }
}

/// The remote tier of one memo.
pub struct Remote {
    shared: Arc<Shared>,
    mode: RemoteMode,
    stages: Vec<String>,
    /// Keys asked for in this run: a miss is not asked again.
    asked: Mutex<HashSet<Key>>,
    uploads: Uploads,
}

impl fmt::Debug for Remote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Remote")
            .field("url", &self.shared.http.endpoint().shown())
            .field("mode", &self.mode)
            .field("signed", &self.shared.signing.is_some())
            .finish()
    }
}

impl Remote {
    /// Checks the options; connects to nothing yet (the first request does).
    pub fn new(options: &RemoteOptions) -> Result<Remote, RemoteConfigError> {
        let endpoint = Endpoint::parse(&options.url, options.token.as_deref())?;
        let signing = options
            .signing_secret
            .as_deref()
            .filter(|s| !s.is_empty())
            .map(SigningKey::from_secret);
        let shared = Arc::new(Shared {
            http: HttpClient::new(endpoint, options.timeout),
            breaker: Breaker::default(),
            counters: RemoteCounters::default(),
            signing,
            warnings: Mutex::new(Vec::new()),
            failure_warned: AtomicBool::new(false),
            rejection_warned: AtomicBool::new(false),
        });
        Ok(Remote {
            uploads: Uploads::new(shared.clone()),
            shared,
            mode: options.mode,
            stages: options.stages.clone(),
            asked: Mutex::new(HashSet::new()),
        })
    }

    /// The same remote for another run of a long-lived process (`clnrm dev`): its
    /// connection, circuit breaker and once-only warnings carry over; what was asked and
    /// the uploads are the new run's own. Without `read`, the run only uploads (`None`
    /// when this remote is read-only).
    pub fn for_another_run(&self, read: bool) -> Option<Remote> {
        let mode = match (self.mode, read) {
            (mode, true) => mode,
            (RemoteMode::Read, false) => return None,
            (_, false) => RemoteMode::Write,
        };
        Some(Remote {
            uploads: Uploads::new(self.shared.clone()),
            shared: self.shared.clone(),
            mode,
            stages: self.stages.clone(),
            asked: Mutex::new(HashSet::new()),
        })
    }

    /// One cheap request (`GET` of a key nobody stores), for `clnrm doctor`: `Ok` when
    /// the server answers as a cache does (a hit or a miss), else why not.
    pub fn probe(&self) -> Result<(), RemoteProbeFailure> {
        match self.shared.http.get(&"0".repeat(64)) {
            Ok(_) => Ok(()),
            Err(failure) => Err(RemoteProbeFailure {
                credentials_refused: matches!(failure, Failure::Unauthorized(_)),
                reason: failure.to_string(),
            }),
        }
    }

    /// The URL without credentials.
    pub fn shown_url(&self) -> &str {
        self.shared.http.endpoint().shown()
    }

    pub fn mode(&self) -> RemoteMode {
        self.mode
    }

    /// Whether uploads are signed and reads checked.
    pub fn is_signed(&self) -> bool {
        self.shared.signing.is_some()
    }

    pub(crate) fn reads(&self, stage: &str) -> bool {
        self.mode.reads() && self.stages.iter().any(|s| s == stage)
    }

    pub(crate) fn writes(&self, stage: &str) -> bool {
        self.mode.writes() && self.stages.iter().any(|s| s == stage)
    }

    /// Marks `key` as asked in this run; false if it already was.
    fn first_ask(&self, key: &Key) -> bool {
        self.asked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(*key)
    }

    /// The verified envelope stored remotely under `key`, asked at most once a run.
    pub(crate) fn fetch(&self, key: &Key) -> Option<Vec<u8>> {
        if !self.first_ask(key) {
            return None;
        }
        self.fetch_unasked(key)
    }

    fn fetch_unasked(&self, key: &Key) -> Option<Vec<u8>> {
        let shared = &self.shared;
        if !shared.breaker.allows() {
            return None;
        }
        match shared.http.get(&key.to_hex()) {
            Ok(Some(body)) => {
                shared
                    .counters
                    .bytes_down
                    .fetch_add(body.len() as u64, Ordering::Relaxed);
                match signing::unframe(key, &body, shared.signing.as_ref()) {
                    Ok(envelope) => {
                        shared.counters.hits.fetch_add(1, Ordering::Relaxed);
                        Some(envelope.to_vec())
                    }
                    Err(why) => {
                        shared.rejected(key, why);
                        None
                    }
                }
            }
            Ok(None) => {
                shared.counters.misses.fetch_add(1, Ordering::Relaxed);
                None
            }
            Err(failure) => {
                shared.failed(&failure);
                None
            }
        }
    }

    /// Asks for every key not asked yet in this run, [`FETCH_THREADS`] at a time,
    /// and returns the verified envelopes found.
    pub(crate) fn fetch_many(&self, keys: &[Key]) -> Vec<(Key, Vec<u8>)> {
        let todo: Vec<Key> = keys.iter().filter(|k| self.first_ask(k)).copied().collect();
        if todo.is_empty() || !self.shared.breaker.allows() {
            return Vec::new();
        }
        let next = AtomicUsize::new(0);
        let found = Mutex::new(Vec::new());
        let threads = FETCH_THREADS.min(todo.len());
        std::thread::scope(|scope| {
            for _ in 0..threads {
                scope.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(key) = todo.get(i) else { break };
                    if !self.shared.breaker.allows() {
                        break;
                    }
                    if let Some(envelope) = self.fetch_unasked(key) {
                        found
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push((*key, envelope));
                    }
                });
            }
        });
        found.into_inner().unwrap_or_else(|e| e.into_inner())
    }

    /// Uploads `envelope` (as stored locally under `key`) in the background.
    pub(crate) fn upload(&self, key: &Key, envelope: &[u8]) {
        let body = signing::frame(key, envelope, self.shared.signing.as_ref());
        self.uploads.enqueue(key.to_hex(), body);
    }

    /// Waits for queued uploads (at most `timeout`); warns when some did not go.
    pub(crate) fn finish_uploads(&self, timeout: Duration) {
        let left = self.uploads.finish(timeout);
        if left > 0 {
            self.shared.warn(format!(
                "remote cache {}: {left} upload(s) not finished within {}s were dropped; results are unaffected",
                self.shown_url(),
                timeout.as_secs()
            ));
        }
    }

    pub(crate) fn take_warnings(&self) -> Vec<String> {
        std::mem::take(
            &mut *self
                .shared
                .warnings
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        )
    }

    pub(crate) fn counters(&self) -> &RemoteCounters {
        &self.shared.counters
    }
}

#[cfg(test)]
mod tests;
