//! The memo's side of the remote tier: attaching it, asking it on a local miss
//! (read-through: a hit is stored locally, so the next run does not ask), uploading
//! local writes of shared stages, prefetching many keys at once, and persisting the
//! remote's figures beside the stages' counters. The memo's lookups never say which
//! tier answered. Not the transport or the checks: see the sibling files.

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::super::envelope;
use super::super::memo::{data_tree, StageState};
use super::super::store::{Store, META_TREE};
use super::super::util::{now_secs, one_line};
use super::super::{Key, Memo};
use super::{Remote, RemoteFigures, RemoteStats};

/// Where the remote's figures are persisted in the local store.
const REMOTE_FIGURES_KEY: &[u8] = b"remote_figures";

impl Memo {
    /// Puts `remote` behind the local store: local misses of its stages are asked
    /// there, local writes of its stages are uploaded.
    pub fn attach_remote(&mut self, remote: Remote) {
        self.remote = Some(remote);
    }

    /// The remote tier, if one is attached.
    pub fn remote(&self) -> Option<&Remote> {
        self.remote.as_ref()
    }

    /// Fetches from the remote, concurrently, every key of `stage` the local store
    /// does not have, and stores what it finds locally: the lookups that follow are
    /// then local hits. Does nothing without a remote, under `--no-cache`, or for a
    /// stage the remote does not serve.
    pub fn prefetch(&self, stage: &str, keys: &[Key]) {
        let Some(remote) = self.remote.as_ref().filter(|r| r.reads(stage)) else {
            return;
        };
        if self.no_read {
            return;
        }
        self.reattach();
        let tree = data_tree(stage);
        let missing: Vec<Key> = {
            let store = self.read_store();
            keys.iter()
                .filter(|k| matches!(store.get(&tree, k.as_bytes()), Ok(None)))
                .copied()
                .collect()
        };
        if missing.is_empty() {
            return;
        }
        let state = self.stage_state(stage);
        for (key, sealed) in remote.fetch_many(&missing) {
            self.store_fetched(stage, &state, &key, sealed);
        }
    }

    /// The local miss path: the remote's verified envelope for `key`, stored locally
    /// on the way, or `None`.
    pub(crate) fn read_through(
        &self,
        stage: &str,
        state: &StageState,
        key: &Key,
    ) -> Option<Vec<u8>> {
        let remote = self.remote.as_ref().filter(|r| r.reads(stage))?;
        let sealed = remote.fetch(key)?;
        self.store_fetched(stage, state, key, sealed.clone());
        Some(sealed)
    }

    /// After a local write of `sealed` under `key`: upload it when the stage is shared.
    pub(crate) fn upload_after_write(&self, stage: &str, key: &Key, sealed: &[u8]) {
        if let Some(remote) = self.remote.as_ref().filter(|r| r.writes(stage)) {
            remote.upload(key, sealed);
        }
    }

    /// Waits for the remote's queued uploads (bounded by `timeout`); its warnings
    /// come out of [`Memo::take_warnings`]. Called before the command's last flush;
    /// harmless to call again (later uploads are then not made).
    pub fn finish_remote(&self, timeout: Duration) {
        if let Some(remote) = &self.remote {
            remote.finish_uploads(timeout);
        }
    }

    /// The remote's persisted figures plus this process's, and which remote is
    /// attached; `None` when there is neither a remote nor any figure.
    pub(crate) fn remote_stats(&self, store: &Store) -> Option<RemoteStats> {
        let mut figures = persisted_figures(store);
        let remote = self.remote.as_ref();
        if let Some(remote) = remote {
            let pending = remote.counters().take();
            figures.add(&pending);
            remote.counters().restore(&pending);
        }
        if remote.is_none() && figures.is_zero() {
            return None;
        }
        Some(RemoteStats {
            url: remote.map(|r| r.shown_url().to_string()),
            mode: remote.map(Remote::mode),
            signed: remote.is_some_and(Remote::is_signed),
            figures,
        })
    }

    /// Adds this process's remote figures to the persisted ones. The caller holds
    /// a guard on the store and the flush lock.
    pub(crate) fn flush_remote_figures(&self, store: &Store) {
        let Some(remote) = &self.remote else { return };
        let delta = remote.counters().take();
        if delta.is_zero() {
            return;
        }
        let mut total = persisted_figures(store);
        total.add(&delta);
        if let Err(e) = store.insert(META_TREE, REMOTE_FIGURES_KEY, total.encode()) {
            remote.counters().restore(&delta);
            self.warn(format!(
                "remote cache statistics could not be written ({}); results are unaffected",
                one_line(e)
            ));
        }
    }

    /// Stores an envelope fetched from the remote as a local entry, as it was
    /// written (its write time is the writer's), without uploading it back.
    fn store_fetched(&self, stage: &str, state: &StageState, key: &Key, sealed: Vec<u8>) {
        debug_assert!(
            envelope::open(&sealed).is_ok(),
            "fetched values are verified"
        );
        let new_len = sealed.len() as i64;
        let store = self.read_store();
        self.mark_dirty(&store);
        let result = store.insert(&data_tree(stage), key.as_bytes(), sealed);
        drop(store);
        match result {
            Ok(old) => {
                let c = &state.counters;
                c.writes.fetch_add(1, Ordering::Relaxed);
                match old {
                    Some(old_len) => c
                        .bytes
                        .fetch_add(new_len - old_len as i64, Ordering::Relaxed),
                    None => {
                        c.entries.fetch_add(1, Ordering::Relaxed);
                        c.bytes
                            .fetch_add(key.0.len() as i64 + new_len, Ordering::Relaxed)
                    }
                };
                state
                    .touched
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(*key, now_secs());
            }
            Err(e) => self.warn(format!(
                "cache write failed in {} ({}); results are unaffected",
                self.dir.display(),
                one_line(e)
            )),
        }
    }
}

fn persisted_figures(store: &Store) -> RemoteFigures {
    match store.get(META_TREE, REMOTE_FIGURES_KEY) {
        Ok(Some(bytes)) => RemoteFigures::decode(&bytes),
        _ => RemoteFigures::default(),
    }
}
