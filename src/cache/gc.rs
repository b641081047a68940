//! Garbage collection and clearing.
//!
//! Eviction is least recently used first, by the per-entry last-use stamps
//! (entries never stamped, because a process died before flushing, fall back
//! to the time written in their envelope). Removing entries from sled does not
//! shrink its files, so whenever gc or clear removes anything the live entries
//! are rewritten into a fresh database that replaces the old one atomically
//! (`store.rs` describes the swap).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::io;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::envelope;
use super::memo::{data_tree, lastuse_tree, persisted_counters, Memo, LAST_GC_KEY};
use super::stats::Counters;
use super::store::{self, Store, DATA_PREFIX, LASTUSE_PREFIX, META_TREE, STATS_TREE};
use super::util::now_secs;
use super::{CacheError, BUILD_IMAGE_STAGE};

/// What `clnrm cache gc` was asked to do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcOptions {
    /// Bring the cache's size on disk under this many bytes.
    pub max_size: Option<u64>,
    /// Remove entries not used for longer than this.
    pub max_age: Option<Duration>,
    /// Report what would be removed; remove nothing.
    pub dry_run: bool,
}

/// What gc did (or, with `dry_run`, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GcReport {
    pub dry_run: bool,
    pub entries_removed: u64,
    /// Bytes of the removed entries (keys and values).
    pub bytes_removed: u64,
    pub entries_kept: u64,
    pub bytes_kept: u64,
    pub disk_bytes_before: u64,
    /// Measured after the rewrite; an estimate under `dry_run`.
    pub disk_bytes_after: u64,
    /// Whether the store was rewritten into a fresh database.
    pub rewritten: bool,
    /// Entries removed per stage.
    pub removed_by_stage: BTreeMap<String, u64>,
    /// Build images whose records this gc removed (or would): no run this cache
    /// remembers uses them any more (see `build_images.rs`).
    pub evicted_build_images: BTreeSet<String>,
    /// Moved-aside damaged stores (`<dir>.corrupt-*`) older than a day, removed (or
    /// that would be).
    pub corrupt_dirs_removed: Vec<String>,
}

/// What `clnrm cache clear` did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClearReport {
    pub entries_removed: u64,
    pub bytes_removed: u64,
}

/// How large a freshly written database is for a given amount of live data,
/// measured on sled 0.34 (see the tests): a fixed part, plus a factor over the
/// keys and values. gc corrects the factor against the real size when it
/// overshoots.
const EMPTY_DB_BYTES: u64 = 64 * 1024;
const SIZE_FACTOR_PERCENT: u64 = 200;
const PER_ENTRY_BYTES: u64 = 150;

fn estimate_disk(live_bytes: u64, entries: u64, factor_percent: u64) -> u64 {
    EMPTY_DB_BYTES + (live_bytes + entries * PER_ENTRY_BYTES) * factor_percent / 100
}

/// Automatic gc brings the cache down to this share of `max_size`, so that
/// it does not run again after every run that adds a little.
const AUTO_GC_TARGET_PERCENT: u64 = 90;

/// How long a moved-aside damaged store is kept for someone to look at.
const CORRUPT_DIR_MAX_AGE_SECS: u64 = 86_400;

struct Entry {
    stage: usize,
    key: Vec<u8>,
    bytes: u64,
    last_use: u64,
    /// For a build image record: the image's name.
    build_image: Option<String>,
}

impl Memo {
    /// Removes entries per `opts` and shrinks the directory. Fails only when
    /// the memo has no directory (busy or unusable) or the rewrite fails, in
    /// which case the old database stays in place, untouched.
    pub fn gc(&self, opts: &GcOptions) -> Result<GcReport, CacheError> {
        self.reattach();
        if !self.is_persistent() {
            return Err(CacheError::NotPersistent(self.dir.display().to_string()));
        }
        let mut store = self.store.write().unwrap_or_else(|e| e.into_inner());
        self.flush_into(&store);
        let now = now_secs();
        let disk_before = self.disk_bytes_of(&store);
        let (stages, entries) = self.collect_entries(&store).map_err(|e| self.io_error(e))?;
        let base = persisted_counters(&store);
        // Counters are written whole (not added to), so a second round of
        // rewriting cannot count an eviction twice.
        let bookkeeping = |target: &Store, removed: &[bool]| -> io::Result<()> {
            let (exact, evicted) = tally(&stages, &entries, removed);
            write_counters(target, &base, &exact, &evicted)?;
            target.insert(META_TREE, LAST_GC_KEY, now.to_le_bytes().to_vec())?;
            Ok(())
        };

        let mut removed = vec![false; entries.len()];
        if let Some(age) = opts.max_age {
            for (i, e) in entries.iter().enumerate() {
                removed[i] = now.saturating_sub(e.last_use) > age.as_secs();
            }
        }
        let mut order: Vec<usize> = (0..entries.len()).collect();
        order.sort_by(|&a, &b| {
            let (ea, eb) = (&entries[a], &entries[b]);
            (ea.last_use, ea.stage, &ea.key).cmp(&(eb.last_use, eb.stage, &eb.key))
        });
        let needs_shrink = opts.max_size.is_some_and(|max| disk_before > max);
        let mut factor = SIZE_FACTOR_PERCENT;
        let mut rewritten = false;
        let mut disk_after = disk_before;
        for _round in 0..4 {
            if let (Some(max), true) = (opts.max_size, needs_shrink) {
                evict_until_estimate_fits(&entries, &order, &mut removed, max, factor);
            }
            let any_removed = removed.iter().any(|&r| r);
            if opts.dry_run {
                if any_removed || needs_shrink {
                    let (kept_bytes, kept) = kept_totals(&entries, &removed);
                    disk_after = estimate_disk(kept_bytes, kept, factor).min(disk_before);
                }
                break;
            }
            if !any_removed && !needs_shrink {
                break;
            }
            let doomed: Vec<HashMap<&[u8], ()>> = (0..stages.len())
                .map(|s| {
                    entries
                        .iter()
                        .zip(&removed)
                        .filter(|(e, &r)| r && e.stage == s)
                        .map(|(e, _)| (e.key.as_slice(), ()))
                        .collect()
                })
                .collect();
            let index: HashMap<&str, usize> = stages
                .iter()
                .enumerate()
                .map(|(i, s)| (s.as_str(), i))
                .collect();
            self.rewrite(
                &mut store,
                |stage, key| {
                    index
                        .get(stage)
                        .is_none_or(|&s| !doomed[s].contains_key(key))
                },
                |fresh| bookkeeping(fresh, &removed),
            )
            .map_err(|e| self.io_error(e))?;
            rewritten = true;
            disk_after = self.disk_bytes_of(&store);
            match opts.max_size {
                Some(max) if disk_after > max => {
                    // The model undershot; scale it by what we measured and go again.
                    let (kept_bytes, kept) = kept_totals(&entries, &removed);
                    let estimate = estimate_disk(kept_bytes, kept, factor).max(1);
                    let scaled = factor * disk_after / estimate + 1;
                    factor = scaled.max(factor + 10);
                    if kept == 0 {
                        break;
                    }
                }
                _ => break,
            }
        }

        let mut report = GcReport {
            dry_run: opts.dry_run,
            disk_bytes_before: disk_before,
            disk_bytes_after: disk_after,
            rewritten,
            ..GcReport::default()
        };
        for (e, &r) in entries.iter().zip(&removed) {
            if r {
                report.entries_removed += 1;
                report.bytes_removed += e.bytes;
                report
                    .evicted_build_images
                    .extend(e.build_image.iter().cloned());
                *report
                    .removed_by_stage
                    .entry(stages[e.stage].clone())
                    .or_default() += 1;
            } else {
                report.entries_kept += 1;
                report.bytes_kept += e.bytes;
            }
        }
        if !opts.dry_run && !rewritten {
            bookkeeping(&store, &removed).map_err(|e| self.io_error(e))?;
            self.flush_into(&store);
            report.disk_bytes_after = self.disk_bytes_of(&store);
        }
        for stale in store::corrupt_siblings_older_than(&self.dir, now, CORRUPT_DIR_MAX_AGE_SECS) {
            if !opts.dry_run {
                if let Err(e) = fs::remove_dir_all(&stale) {
                    self.warn(format!("cannot remove {} ({e})", stale.display()));
                    continue;
                }
            }
            report
                .corrupt_dirs_removed
                .push(stale.display().to_string());
        }
        Ok(report)
    }

    /// Runs gc when the cache is larger than `max_size` on disk, bringing it
    /// to 90 % of it. `Ok(None)` when nothing needed doing (or the memo has no
    /// directory: automatic gc is never a reason to fail).
    pub fn maybe_auto_gc(&self, max_size: u64) -> Result<Option<GcReport>, CacheError> {
        if !self.is_persistent() {
            return Ok(None);
        }
        if self.disk_bytes_of(&self.read_store()) <= max_size {
            return Ok(None);
        }
        let opts = GcOptions {
            max_size: Some(max_size / 100 * AUTO_GC_TARGET_PERCENT),
            ..GcOptions::default()
        };
        self.gc(&opts).map(Some)
    }

    /// Empties the cache, or one stage of it. Statistics counters are kept
    /// (as `ccache -C` keeps them).
    pub fn clear(&self, stage: Option<&str>) -> Result<ClearReport, CacheError> {
        self.reattach();
        let mut store = self.store.write().unwrap_or_else(|e| e.into_inner());
        self.flush_into(&store);
        let (stages, entries) = self.collect_entries(&store).map_err(|e| self.io_error(e))?;
        let base = persisted_counters(&store);
        let removed: Vec<bool> = entries
            .iter()
            .map(|e| stage.is_none_or(|s| s == stages[e.stage]))
            .collect();
        let mut report = ClearReport::default();
        for (e, _) in entries.iter().zip(&removed).filter(|(_, &r)| r) {
            report.entries_removed += 1;
            report.bytes_removed += e.bytes;
        }
        let (exact, _) = tally(&stages, &entries, &removed);
        let bookkeeping = |target: &Store| write_counters(target, &base, &exact, &BTreeMap::new());
        if store.is_persistent() {
            self.rewrite(
                &mut store,
                |s, _| stage.is_some_and(|t| t != s),
                bookkeeping,
            )
            .map_err(|e| self.io_error(e))?;
        } else {
            for name in &stages {
                if stage.is_none_or(|s| s == name) {
                    store.clear_memory_tree(&data_tree(name));
                    store.clear_memory_tree(&lastuse_tree(name));
                }
            }
        }
        if !store.is_persistent() {
            bookkeeping(&store).map_err(|e| self.io_error(e))?;
        }
        self.flush_into(&store);
        Ok(report)
    }

    fn io_error(&self, source: io::Error) -> CacheError {
        CacheError::Io {
            dir: self.dir.display().to_string(),
            source,
        }
    }

    /// Every entry of every stage with its size and last use.
    fn collect_entries(&self, store: &Store) -> io::Result<(Vec<String>, Vec<Entry>)> {
        let mut stages: Vec<String> = store
            .tree_names()
            .into_iter()
            .filter_map(|t| t.strip_prefix(DATA_PREFIX).map(str::to_string))
            .collect();
        stages.sort();
        let mut entries = Vec::new();
        for (index, stage) in stages.iter().enumerate() {
            let mut last_use: HashMap<Vec<u8>, u64> = HashMap::new();
            store.scan(&lastuse_tree(stage), |k, v| {
                if let Ok(b) = <[u8; 8]>::try_from(v) {
                    last_use.insert(k.to_vec(), u64::from_be_bytes(b));
                }
            })?;
            store.scan(&data_tree(stage), |k, v| {
                let stamp = last_use
                    .get(k)
                    .copied()
                    .or_else(|| envelope::written_at(v))
                    .unwrap_or(0);
                let build_image = (stage == BUILD_IMAGE_STAGE)
                    .then(|| envelope::open(v).ok())
                    .flatten()
                    .and_then(|opened| String::from_utf8(opened.payload.to_vec()).ok());
                entries.push(Entry {
                    stage: index,
                    key: k.to_vec(),
                    bytes: (k.len() + v.len()) as u64,
                    last_use: stamp,
                    build_image,
                });
            })?;
        }
        Ok((stages, entries))
    }

    /// Replaces the store with one holding only the data entries `keep`
    /// accepts (and their last-use stamps), plus all bookkeeping trees.
    /// `finish` writes the bookkeeping into the new store before it is
    /// committed, so the size measured afterwards is final.
    fn rewrite(
        &self,
        store: &mut Store,
        keep: impl Fn(&str, &[u8]) -> bool,
        finish: impl Fn(&Store) -> io::Result<()>,
    ) -> io::Result<()> {
        let trees = store.tree_names();
        if !store.is_persistent() {
            for tree in &trees {
                if let Some(stage) = tree.strip_prefix(DATA_PREFIX) {
                    let mut doomed = Vec::new();
                    store.scan(tree, |k, _| {
                        if !keep(stage, k) {
                            doomed.push((k.to_vec(), None));
                        }
                    })?;
                    let stamps = doomed.clone();
                    store.apply(tree, doomed)?;
                    store.apply(&lastuse_tree(stage), stamps)?;
                }
            }
            return finish(store);
        }
        let name = store::next_db_name(&self.dir);
        let path = self.dir.join(&name);
        let _ = fs::remove_dir_all(&path);
        let result = (|| {
            let fresh = Store::open_sled(&path)?;
            // Data first, so that stamps can be copied only for surviving entries.
            let (data, other): (Vec<&String>, Vec<&String>) =
                trees.iter().partition(|t| t.starts_with(DATA_PREFIX));
            for tree in data {
                let stage = &tree[DATA_PREFIX.len()..];
                copy_tree(store, &fresh, tree, |k| keep(stage, k))?;
            }
            for tree in other {
                match tree.strip_prefix(LASTUSE_PREFIX) {
                    Some(stage) => {
                        let data = data_tree(stage);
                        copy_tree(store, &fresh, tree, |k| {
                            matches!(fresh.get(&data, k), Ok(Some(_)))
                        })?;
                    }
                    None => copy_tree(store, &fresh, tree, |_| true)?,
                }
            }
            finish(&fresh)?;
            fresh.flush()?;
            Ok(fresh)
        })();
        let fresh = match result {
            Ok(fresh) => fresh,
            Err(e) => {
                let _ = fs::remove_dir_all(&path);
                return Err(e);
            }
        };
        // The commit point: from here on the new database is the cache.
        if let Err(e) = store::write_current(&self.dir, &name) {
            drop(fresh);
            let _ = fs::remove_dir_all(&path);
            return Err(e);
        }
        let old = std::mem::replace(store, fresh);
        let old_path = old.path().map(|p| p.to_path_buf());
        drop(old);
        if let Some(old_path) = old_path {
            // A failure here leaves an orphan the next open removes.
            let _ = fs::remove_dir_all(old_path);
        }
        Ok(())
    }
}

/// Copies the entries of `tree` that `keep` accepts. One insert at a time:
/// the source is read in key order, and sled appends ordered inserts faster
/// than it applies batches.
fn copy_tree(from: &Store, to: &Store, tree: &str, keep: impl Fn(&[u8]) -> bool) -> io::Result<()> {
    let mut failed = None;
    from.scan(tree, |k, v| {
        if failed.is_none() && keep(k) {
            if let Err(e) = to.insert(tree, k, v.to_vec()) {
                failed = Some(e);
            }
        }
    })?;
    failed.map_or(Ok(()), Err)
}

/// Per stage: (entries, bytes) kept, and entries removed.
type Tally = (BTreeMap<String, (u64, u64)>, BTreeMap<String, u64>);

fn tally(stages: &[String], entries: &[Entry], removed: &[bool]) -> Tally {
    let mut kept: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let mut evicted: BTreeMap<String, u64> = BTreeMap::new();
    for (e, &r) in entries.iter().zip(removed) {
        let name = &stages[e.stage];
        if r {
            *evicted.entry(name.clone()).or_default() += 1;
        } else {
            let slot = kept.entry(name.clone()).or_default();
            slot.0 += 1;
            slot.1 += e.bytes;
        }
    }
    (kept, evicted)
}

/// Writes every stage's counters: `base`, with exact sizes and `evicted` added.
fn write_counters(
    store: &Store,
    base: &BTreeMap<String, Counters>,
    exact: &BTreeMap<String, (u64, u64)>,
    evicted: &BTreeMap<String, u64>,
) -> io::Result<()> {
    let names: std::collections::BTreeSet<&String> = base
        .keys()
        .chain(exact.keys())
        .chain(evicted.keys())
        .collect();
    for name in names {
        let mut c = base.get(name).copied().unwrap_or_default();
        (c.entries, c.bytes) = exact.get(name).copied().unwrap_or((0, 0));
        c.evictions += evicted.get(name).copied().unwrap_or(0);
        store.insert(STATS_TREE, name.as_bytes(), c.encode())?;
    }
    Ok(())
}

fn kept_totals(entries: &[Entry], removed: &[bool]) -> (u64, u64) {
    entries
        .iter()
        .zip(removed)
        .filter(|(_, &r)| !r)
        .fold((0, 0), |(b, n), (e, _)| (b + e.bytes, n + 1))
}

/// Marks the least recently used entries removed until the model says the
/// rest fits in `max` bytes.
fn evict_until_estimate_fits(
    entries: &[Entry],
    order: &[usize],
    removed: &mut [bool],
    max: u64,
    factor: u64,
) {
    let (mut live, mut count) = kept_totals(entries, removed);
    for &i in order {
        if estimate_disk(live, count, factor) <= max {
            break;
        }
        if !removed[i] {
            removed[i] = true;
            live -= entries[i].bytes;
            count -= 1;
        }
    }
}

#[cfg(test)]
mod tests;
