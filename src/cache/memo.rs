//! [`Memo`]: lookups, writes, and the batched bookkeeping. Opening a directory
//! whatever state it is in is `open.rs`; gc and clear are `gc.rs`.
//!
//! Several processes share one cache directory by taking turns: a memo holds the
//! store (and the directory's lock) only while it reads or writes it. A run reads
//! what it needs before its containers start, then [`Memo::release`]s the store;
//! what it writes after that waits in memory until [`Memo::flush`] (or drop) opens
//! the store again and writes it in one short batch.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::envelope;
use super::lock::DirLock;
use super::open::open_store;
use super::remote::{Remote, UPLOAD_DRAIN_TIMEOUT};
use super::stats::{rfc3339, CacheStats, Counters, PendingCounters, StageStats};
use super::store::{self, Store, DATA_PREFIX, LASTUSE_PREFIX, META_TREE, STATS_TREE};
use super::util::{now_secs, one_line};
use super::{Key, Lookup, MemoOptions, MissReason, Stage};

pub(crate) const LAST_GC_KEY: &[u8] = b"last_gc";
/// `[1]` while a process that changed the store has it open; `[0]` after a clean close.
pub(crate) const DIRTY_KEY: &[u8] = b"dirty";

/// What is known about one stage in this process and not yet persisted.
#[derive(Default)]
pub(crate) struct StageState {
    pub(crate) counters: PendingCounters,
    /// Last-use stamps (unix seconds) of entries read or written since the last flush.
    pub(crate) touched: Mutex<HashMap<Key, u64>>,
}

/// The memo over one cache directory. Cheap to share: `&Memo` from any number
/// of threads.
pub struct Memo {
    pub(crate) dir: PathBuf,
    pub(crate) no_read: bool,
    /// How long opening the store waits for another process that holds it.
    lock_timeout: Duration,
    /// Replaced wholesale when gc swaps in a compacted database. While the memo is
    /// released, an in-memory store of the entries written since.
    pub(crate) store: RwLock<Store>,
    /// Whether the store was let go ([`Memo::release`]) and `store` holds the writes
    /// that wait for the next [`Memo::flush`]. Changed only under `store`'s write lock.
    released: AtomicBool,
    pub(crate) stages: RwLock<HashMap<String, Arc<StageState>>>,
    flush_lock: Mutex<()>,
    warnings: Mutex<Vec<String>>,
    /// Whether this process has marked the store dirty (see [`DIRTY_KEY`]).
    dirty: AtomicBool,
    /// The remote tier behind the local store (docs/reference.md §10), if any: `remote/tier.rs`.
    pub(crate) remote: Option<Remote>,
    /// Declared last so it is released only after the store is closed. Taken
    /// after `store`'s lock, never before.
    pub(crate) lock: Mutex<Option<DirLock>>,
}

impl Memo {
    /// Opens the cache in `dir`, creating it if needed. Never fails: see the
    /// module docs for what happens to a damaged or busy directory. Returns
    /// one-line warnings (no `warning:` prefix) for the caller to show.
    pub fn open(dir: &Path, opts: MemoOptions) -> (Memo, Vec<String>) {
        let mut warnings = Vec::new();
        let (store, lock) = open_store(dir, opts.lock_timeout, &mut warnings);
        let memo = Memo {
            dir: dir.to_path_buf(),
            no_read: opts.no_read,
            lock_timeout: opts.lock_timeout,
            store: RwLock::new(store),
            released: AtomicBool::new(false),
            stages: RwLock::new(HashMap::new()),
            flush_lock: Mutex::new(()),
            warnings: Mutex::new(Vec::new()),
            dirty: AtomicBool::new(false),
            remote: None,
            lock: Mutex::new(lock),
        };
        memo.recover_sizes_after_crash(&memo.read_store());
        for w in &warnings {
            tracing::warn!("{w}");
        }
        (memo, warnings)
    }

    /// A memo that keeps everything in memory, for callers with no cache directory.
    pub fn in_memory(opts: MemoOptions) -> Memo {
        Memo {
            dir: PathBuf::new(),
            no_read: opts.no_read,
            lock_timeout: opts.lock_timeout,
            store: RwLock::new(Store::memory()),
            released: AtomicBool::new(false),
            stages: RwLock::new(HashMap::new()),
            flush_lock: Mutex::new(()),
            warnings: Mutex::new(Vec::new()),
            dirty: AtomicBool::new(false),
            remote: None,
            lock: Mutex::new(None),
        }
    }

    /// The cache directory as given to [`Memo::open`].
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether entries outlive this process (false when degraded to memory).
    pub fn is_persistent(&self) -> bool {
        let store = self.read_store();
        self.released.load(RELAXED) || (store.is_persistent() && self.holds_lock())
    }

    fn holds_lock(&self) -> bool {
        self.lock
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
    }

    /// Lets other processes have the cache directory: persists everything so far,
    /// closes the store and drops the lock. Later writes wait in memory for
    /// [`Memo::flush`] (or drop); a later lookup opens the store again. A run calls
    /// this before its containers start, so that runs sharing the directory run side
    /// by side. Does nothing for a memo without its directory.
    pub fn release(&self) {
        let mut store = self.store.write().unwrap_or_else(|e| e.into_inner());
        if self.released.load(RELAXED) || !store.is_persistent() || !self.holds_lock() {
            return;
        }
        self.flush_into(&store);
        // Counts are persisted: the store is closed cleanly.
        if self.dirty.swap(false, RELAXED) && store.insert(META_TREE, DIRTY_KEY, vec![0]).is_ok() {
            let _ = store.flush();
        }
        // Closing sled returns once its file is free; the lock goes after it.
        *store = Store::memory();
        *self.lock.lock().unwrap_or_else(|e| e.into_inner()) = None;
        self.released.store(true, RELAXED);
        tracing::debug!(dir = %self.dir.display(), "cache store released");
    }

    /// After [`Memo::release`]: opens the store again (waiting for another process
    /// that holds it, up to the lock timeout) and writes what waited in memory. When
    /// the directory stays busy that long, the memo goes on in memory with a warning.
    pub(crate) fn reattach(&self) {
        if !self.released.load(RELAXED) {
            return;
        }
        let mut store = self.store.write().unwrap_or_else(|e| e.into_inner());
        if !self.released.swap(false, RELAXED) {
            return;
        }
        let mut warnings = Vec::new();
        let (disk, lock) = open_store(&self.dir, self.lock_timeout, &mut warnings);
        for warning in warnings {
            self.warn(warning);
        }
        // Without the directory the writes stay where they are, in memory.
        let Some(lock) = lock else { return };
        let waiting = std::mem::replace(&mut *store, disk);
        *self.lock.lock().unwrap_or_else(|e| e.into_inner()) = Some(lock);
        tracing::debug!(dir = %self.dir.display(), "cache store opened again");
        self.recover_sizes_after_crash(&store);
        self.write_waiting(&store, &waiting);
    }

    /// Writes the entries of `waiting` (written while released) into `store`. They
    /// were counted as new when written; one that was on disk already is not.
    fn write_waiting(&self, store: &Store, waiting: &Store) {
        let trees = waiting.tree_names();
        if trees.is_empty() {
            return;
        }
        self.mark_dirty(store);
        for tree in trees {
            let mut entries = Vec::new();
            if let Err(e) = waiting.scan(&tree, |k, v| entries.push((k.to_vec(), v.to_vec()))) {
                self.warn_io("write", &e);
                continue;
            }
            let state = tree
                .strip_prefix(DATA_PREFIX)
                .map(|stage| self.stage_state(stage));
            for (key, value) in entries {
                let new_len = value.len();
                let not_counted = match store.insert(&tree, &key, value) {
                    Ok(None) => continue,
                    Ok(Some(old_len)) => old_len,
                    Err(e) => {
                        self.warn_io("write", &e);
                        new_len
                    }
                };
                if let Some(state) = &state {
                    state.counters.entries.fetch_sub(1, RELAXED);
                    let bytes = (key.len() + not_counted) as i64;
                    state.counters.bytes.fetch_sub(bytes, RELAXED);
                }
            }
        }
    }

    /// Whether anything waits to be written: entries, counters, last-use stamps.
    fn has_unwritten(&self, store: &Store) -> bool {
        let stages = self.stages.read().unwrap_or_else(|e| e.into_inner());
        let remote_figures = self.remote.as_ref().is_some_and(|remote| {
            let pending = remote.counters().take();
            remote.counters().restore(&pending);
            !pending.is_zero()
        });
        !store.tree_names().is_empty()
            || remote_figures
            || stages.values().any(|state| {
                !state.counters.peek().is_zero()
                    || !state
                        .touched
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .is_empty()
            })
    }

    /// The key of `input` for stage `S`.
    pub fn key<S: Stage>(&self, input: &[u8]) -> Key {
        Key::of::<S>(input)
    }

    /// Returns the cached output of `S` for `input`, or runs `run`, stores
    /// its `Ok` output and returns it. An `Err` is returned as is and never
    /// stored. The cache can only make this slower or faster, never wrong:
    /// any storage trouble is a miss (and a warning in [`Memo::take_warnings`]).
    ///
    /// ```
    /// # use clnrm::cache::{Memo, MemoOptions, Stage};
    /// struct Upper;
    /// impl Stage for Upper {
    ///     const NAME: &'static str = "upper";
    ///     const VERSION: u32 = 1;
    ///     type Output = String;
    /// }
    /// let memo = Memo::in_memory(MemoOptions::default());
    /// let run = || Ok::<_, std::io::Error>("ABC".to_string());
    /// let (out, lookup) = memo.get_or_run::<Upper, _>(b"abc", run).unwrap();
    /// assert_eq!((out.as_str(), lookup.is_hit()), ("ABC", false));
    /// let (out, lookup) = memo.get_or_run::<Upper, _>(b"abc", run).unwrap();
    /// assert_eq!((out.as_str(), lookup.is_hit()), ("ABC", true));
    /// ```
    pub fn get_or_run<S: Stage, E>(
        &self,
        input: &[u8],
        run: impl FnOnce() -> Result<S::Output, E>,
    ) -> Result<(S::Output, Lookup), E> {
        let key = Key::of::<S>(input);
        let state = self.stage_state(S::NAME);
        let reason = match self.read_entry(S::NAME, &state, &key, |payload| {
            bincode::deserialize::<S::Output>(payload).ok()
        }) {
            Ok(value) => {
                state.counters.hits.fetch_add(1, RELAXED);
                tracing::debug!(stage = S::NAME, key = %key, "cache hit");
                return Ok((value, Lookup::Hit));
            }
            Err(reason) => reason,
        };
        state.counters.misses.fetch_add(1, RELAXED);
        tracing::debug!(stage = S::NAME, key = %key, "cache {}", Lookup::Miss(reason));
        let output = run()?;
        match bincode::serialize(&output) {
            Ok(payload) => self.write_entry(S::NAME, &state, &key, &payload),
            Err(e) => self.warn(format!(
                "stage {} output cannot be stored ({}); it will be recomputed next time",
                S::NAME,
                one_line(e)
            )),
        }
        Ok((output, Lookup::Miss(reason)))
    }

    /// The stored bytes under `key` in `stage`, or `None`. Counts no hit or
    /// miss (the caller knows which level it was); a damaged entry is counted
    /// as corrupt and dropped. Returns `None` under `--no-cache`.
    pub fn get_raw(&self, stage: &str, key: &Key) -> Option<Vec<u8>> {
        self.lookup_raw(stage, key).ok()
    }

    /// [`Memo::get_raw`] with the reason for a miss.
    pub fn lookup_raw(&self, stage: &str, key: &Key) -> Result<Vec<u8>, MissReason> {
        let state = self.stage_state(stage);
        self.read_entry(stage, &state, key, |payload| Some(payload.to_vec()))
    }

    /// Stores `bytes` under `key` in `stage` (counted as a write).
    pub fn put_raw(&self, stage: &str, key: &Key, bytes: &[u8]) {
        let state = self.stage_state(stage);
        self.write_entry(stage, &state, key, bytes);
    }

    /// [`Memo::get_raw`] for a bincode-encoded value.
    pub fn get_value<T: DeserializeOwned>(&self, stage: &str, key: &Key) -> Option<T> {
        let state = self.stage_state(stage);
        self.read_entry(stage, &state, key, |payload| {
            bincode::deserialize::<T>(payload).ok()
        })
        .ok()
    }

    /// [`Memo::put_raw`] for a value stored with bincode.
    pub fn put_value<T: Serialize>(&self, stage: &str, key: &Key, value: &T) {
        match bincode::serialize(value) {
            Ok(bytes) => self.put_raw(stage, key, &bytes),
            Err(e) => self.warn(format!(
                "a {stage} value cannot be stored ({})",
                one_line(e)
            )),
        }
    }

    /// Counts a hit for `stage` (for callers using the raw calls).
    pub fn record_hit(&self, stage: &str) {
        self.stage_state(stage).counters.hits.fetch_add(1, RELAXED);
    }

    /// Counts a miss for `stage` (for callers using the raw calls).
    pub fn record_miss(&self, stage: &str) {
        self.stage_state(stage)
            .counters
            .misses
            .fetch_add(1, RELAXED);
    }

    /// Warnings raised since the last call (a failed write, say), each once.
    pub fn take_warnings(&self) -> Vec<String> {
        let mut warnings =
            std::mem::take(&mut *self.warnings.lock().unwrap_or_else(|e| e.into_inner()));
        if let Some(remote) = &self.remote {
            warnings.extend(remote.take_warnings());
        }
        warnings
    }

    /// Persists counters and last-use stamps and makes every write durable.
    /// Called on drop; call it earlier to bound what a crash can lose.
    /// A released memo opens the store for this and lets it go again.
    pub fn flush(&self) {
        if self.released.load(RELAXED) {
            if !self.has_unwritten(&self.read_store()) {
                return;
            }
            self.reattach();
            self.release();
            return;
        }
        let store = self.read_store();
        self.flush_into(&store);
    }

    /// Current statistics: persisted counters plus this process's unflushed
    /// ones; entries and bytes counted from the store.
    pub fn stats(&self) -> CacheStats {
        self.reattach();
        let store = self.read_store();
        let mut counters = persisted_counters(&store);
        for (name, state) in self.stages.read().unwrap_or_else(|e| e.into_inner()).iter() {
            counters
                .entry(name.clone())
                .or_default()
                .apply(&state.counters.peek());
        }
        let stages = counters
            .iter()
            .map(|(name, c)| (name.clone(), StageStats::from_counters(c)))
            .filter(|(_, s)| *s != StageStats::default())
            .collect();
        CacheStats {
            dir: self.dir.display().to_string(),
            disk_bytes: self.disk_bytes_of(&store),
            last_gc: last_gc(&store).map(rfc3339),
            stages,
            remote: self.remote_stats(&store),
        }
    }

    // ---- internals -------------------------------------------------------

    pub(crate) fn read_store(&self) -> RwLockReadGuard<'_, Store> {
        self.store.read().unwrap_or_else(|e| e.into_inner())
    }

    /// The directory's size, also while released (`store` then holds no files).
    pub(crate) fn disk_bytes_of(&self, store: &Store) -> u64 {
        if store.is_persistent() || self.released.load(RELAXED) {
            store::disk_bytes(&self.dir)
        } else {
            0
        }
    }

    /// Marks the store as changed by a process that has not yet closed it
    /// cleanly, before the first change. sled recovers its log in order, so a
    /// change that survives a crash implies the mark did too.
    pub(crate) fn mark_dirty(&self, store: &Store) {
        if store.is_persistent() && !self.dirty.swap(true, RELAXED) {
            if let Err(e) = store.insert(META_TREE, DIRTY_KEY, vec![1]) {
                self.warn_io("write", &e);
            }
        }
    }

    /// A process that died holding the store may have written entries whose
    /// counts it never persisted: count them again.
    fn recover_sizes_after_crash(&self, store: &Store) {
        if !store.is_persistent() {
            return;
        }
        let dirty = matches!(store.get(META_TREE, DIRTY_KEY), Ok(Some(v)) if v.as_ref() == [1]);
        if !dirty {
            return;
        }
        tracing::debug!("previous process did not close the cache; recounting entries");
        let result = count_sizes(store)
            .and_then(|sizes| set_sizes(store, &sizes))
            .and_then(|()| store.insert(META_TREE, DIRTY_KEY, vec![0]).map(|_| ()));
        if let Err(e) = result {
            self.warn_io("recount", &e);
        }
    }

    pub(crate) fn stage_state(&self, name: &str) -> Arc<StageState> {
        if let Some(s) = self
            .stages
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
        {
            return s.clone();
        }
        self.stages
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .entry(name.to_string())
            .or_default()
            .clone()
    }

    pub(crate) fn warn(&self, message: String) {
        let mut warnings = self.warnings.lock().unwrap_or_else(|e| e.into_inner());
        if !warnings.contains(&message) {
            tracing::warn!("{message}");
            warnings.push(message);
        }
    }

    fn warn_io(&self, what: &str, e: &io::Error) {
        self.warn(format!(
            "cache {what} failed in {} ({}); results are unaffected",
            self.dir.display(),
            one_line(e)
        ));
    }

    fn read_entry<T>(
        &self,
        stage: &str,
        state: &StageState,
        key: &Key,
        decode: impl FnOnce(&[u8]) -> Option<T>,
    ) -> Result<T, MissReason> {
        if self.no_read {
            return Err(MissReason::NoCache);
        }
        self.reattach();
        let tree = data_tree(stage);
        let store = self.read_store();
        let bytes = match store.get(&tree, key.as_bytes()) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => {
                drop(store);
                // The second tier: a remote hit is stored locally on the way.
                let sealed = self
                    .read_through(stage, state, key)
                    .ok_or(MissReason::NotFound)?;
                let opened = envelope::open(&sealed).map_err(|_| MissReason::NotFound)?;
                return decode(opened.payload).ok_or(MissReason::NotFound);
            }
            Err(e) => {
                self.warn_io("read", &e);
                state.counters.corrupt.fetch_add(1, RELAXED);
                return Err(MissReason::Corrupt);
            }
        };
        let decoded = envelope::open(&bytes).ok().and_then(|o| decode(o.payload));
        match decoded {
            Some(value) => {
                // Last use is kept to the hour: a run of hits on entries used within the
                // hour writes nothing, so the store's log (replayed at every open) does
                // not grow with each cached run.
                let now = now_secs();
                let recent =
                    |stamp: Option<u64>| stamp.is_some_and(|t| t + STAMP_RESOLUTION_SECS > now);
                let fresh = recent(envelope::written_at(&bytes))
                    || recent(
                        store
                            .get(&lastuse_tree(stage), key.as_bytes())
                            .ok()
                            .flatten()
                            .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
                            .map(u64::from_be_bytes),
                    );
                drop(store);
                if !fresh {
                    touch(state, key, now);
                }
                Ok(value)
            }
            None => {
                tracing::debug!(stage, key = %key, "dropping a corrupt cache entry");
                state.counters.corrupt.fetch_add(1, RELAXED);
                self.mark_dirty(&store);
                match store.remove(&tree, key.as_bytes()) {
                    Ok(Some(len)) => {
                        state.counters.entries.fetch_sub(1, RELAXED);
                        state
                            .counters
                            .bytes
                            .fetch_sub((key.0.len() + len) as i64, RELAXED);
                    }
                    Ok(None) => {}
                    Err(e) => self.warn_io("write", &e),
                }
                Err(MissReason::Corrupt)
            }
        }
    }

    fn write_entry(&self, stage: &str, state: &StageState, key: &Key, payload: &[u8]) {
        let now = now_secs();
        let sealed = envelope::seal(payload, now);
        let new_len = sealed.len() as i64;
        let store = self.read_store();
        self.mark_dirty(&store);
        let uploaded = self.remote.is_some().then(|| sealed.clone());
        let result = store.insert(&data_tree(stage), key.as_bytes(), sealed);
        drop(store);
        match result {
            Ok(old) => {
                if let Some(sealed) = uploaded {
                    self.upload_after_write(stage, key, &sealed);
                }
                let c = &state.counters;
                c.writes.fetch_add(1, RELAXED);
                match old {
                    Some(old_len) => c.bytes.fetch_add(new_len - old_len as i64, RELAXED),
                    None => {
                        c.entries.fetch_add(1, RELAXED);
                        c.bytes.fetch_add(key.0.len() as i64 + new_len, RELAXED)
                    }
                };
                touch(state, key, now);
            }
            Err(e) => self.warn_io("write", &e),
        }
    }

    /// Writes pending counters and stamps into `store`. The caller holds a
    /// guard on `self.store`, read or write.
    pub(crate) fn flush_into(&self, store: &Store) {
        let _serial = self.flush_lock.lock().unwrap_or_else(|e| e.into_inner());
        let stages: Vec<(String, Arc<StageState>)> = self
            .stages
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (name, state) in stages {
            let delta = state.counters.take();
            if !delta.is_zero() {
                // Read-modify-write is safe: this process holds the directory
                // lock and `flush_lock` serialises flushes within it.
                let result = store.get(STATS_TREE, name.as_bytes()).and_then(|old| {
                    let mut total = old.map(|v| Counters::decode(&v)).unwrap_or_default();
                    total.apply(&delta);
                    store.insert(STATS_TREE, name.as_bytes(), total.encode())
                });
                if let Err(e) = result {
                    state.counters.restore(&delta);
                    self.warn_io("statistics write", &e);
                }
            }
            let touched =
                std::mem::take(&mut *state.touched.lock().unwrap_or_else(|e| e.into_inner()));
            if !touched.is_empty() {
                let ops = touched
                    .into_iter()
                    .map(|(k, t)| (k.0.to_vec(), Some(t.to_be_bytes().to_vec())))
                    .collect();
                if let Err(e) = store.apply(&lastuse_tree(&name), ops) {
                    self.warn_io("last-use write", &e);
                }
            }
        }
        self.flush_remote_figures(store);
        if let Err(e) = store.flush() {
            self.warn_io("flush", &e);
        }
    }
}

impl Drop for Memo {
    fn drop(&mut self) {
        self.finish_remote(UPLOAD_DRAIN_TIMEOUT);
        if self.released.load(RELAXED) {
            if !self.has_unwritten(&self.read_store()) {
                return;
            }
            self.reattach();
        }
        let store = self.read_store();
        self.flush_into(&store);
        // Nothing runs concurrently any more, so the persisted entry and byte
        // counts now agree with the data.
        if self.dirty.load(RELAXED) && store.insert(META_TREE, DIRTY_KEY, vec![0]).is_ok() {
            let _ = store.flush();
        }
    }
}

/// Every stage's persisted counters.
pub(crate) fn persisted_counters(store: &Store) -> BTreeMap<String, Counters> {
    let mut counters = BTreeMap::new();
    let _ = store.scan(STATS_TREE, |k, v| {
        if let Ok(name) = std::str::from_utf8(k) {
            counters.insert(name.to_string(), Counters::decode(v));
        }
    });
    counters
}

/// Sets the persisted entry and byte counts of every stage to `exact`
/// (stages not in it have none), keeping the other counters.
pub(crate) fn set_sizes(store: &Store, exact: &BTreeMap<String, (u64, u64)>) -> io::Result<()> {
    let mut counters = persisted_counters(store);
    for name in exact.keys() {
        counters.entry(name.clone()).or_default();
    }
    for (name, c) in counters.iter_mut() {
        let (entries, bytes) = exact.get(name).copied().unwrap_or((0, 0));
        c.entries = entries;
        c.bytes = bytes;
        store.insert(STATS_TREE, name.as_bytes(), c.encode())?;
    }
    Ok(())
}

/// Counts every stage's entries and bytes by reading them all.
pub(crate) fn count_sizes(store: &Store) -> io::Result<BTreeMap<String, (u64, u64)>> {
    let mut sizes = BTreeMap::new();
    for tree in store.tree_names() {
        let Some(stage) = tree.strip_prefix(DATA_PREFIX) else {
            continue;
        };
        let (mut entries, mut bytes) = (0u64, 0u64);
        store.scan(&tree, |k, v| {
            entries += 1;
            bytes += (k.len() + v.len()) as u64;
        })?;
        sizes.insert(stage.to_string(), (entries, bytes));
    }
    Ok(sizes)
}

/// How precisely last use is recorded (LRU order for `cache gc` is to the hour).
const STAMP_RESOLUTION_SECS: u64 = 3600;

const RELAXED: std::sync::atomic::Ordering = std::sync::atomic::Ordering::Relaxed;

fn touch(state: &StageState, key: &Key, now: u64) {
    state
        .touched
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(*key, now);
}

pub(crate) fn data_tree(stage: &str) -> String {
    format!("{DATA_PREFIX}{stage}")
}

pub(crate) fn lastuse_tree(stage: &str) -> String {
    format!("{LASTUSE_PREFIX}{stage}")
}

pub(crate) fn last_gc(store: &Store) -> Option<u64> {
    let v = store.get(META_TREE, LAST_GC_KEY).ok()??;
    let bytes: [u8; 8] = v.as_ref().try_into().ok()?;
    Some(u64::from_le_bytes(bytes))
}
