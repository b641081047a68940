//! Counters (batched in memory, persisted at flush) and the `cache stats` data.
//! Not its human form: that is `report/cache_stats.rs`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

/// One stage's counters. `entries` and `bytes` are tracked as writes and removals
/// happen (counting them would mean reading every value); gc, clear and the first
/// open after a crash set them exactly. `C` is the type of the counts that only
/// grow, `N` that of entries and bytes: see [`Counters`], [`Delta`] and
/// [`PendingCounters`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Tally<C, N> {
    pub(crate) hits: C,
    pub(crate) misses: C,
    pub(crate) writes: C,
    pub(crate) corrupt: C,
    pub(crate) evictions: C,
    pub(crate) entries: N,
    pub(crate) bytes: N,
}

/// The persisted counters of one stage.
pub(crate) type Counters = Tally<u64, u64>;

/// Changes to [`Counters`] not yet persisted; entries and bytes can shrink.
pub(crate) type Delta = Tally<u64, i64>;

/// Counters not yet persisted; bumped lock-free from any thread.
pub(crate) type PendingCounters = Tally<AtomicU64, AtomicI64>;

impl Counters {
    const LEN: usize = 7 * 8;

    pub(crate) fn encode(&self) -> Vec<u8> {
        [
            self.hits,
            self.misses,
            self.writes,
            self.corrupt,
            self.evictions,
            self.entries,
            self.bytes,
        ]
        .iter()
        .flat_map(|n| n.to_le_bytes())
        .collect()
    }

    /// Decodes a stored value; anything malformed counts as zero rather than
    /// failing a run over statistics.
    pub(crate) fn decode(bytes: &[u8]) -> Counters {
        if bytes.len() != Self::LEN {
            return Counters::default();
        }
        let n = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&bytes[i * 8..i * 8 + 8]);
            u64::from_le_bytes(b)
        };
        Counters {
            hits: n(0),
            misses: n(1),
            writes: n(2),
            corrupt: n(3),
            evictions: n(4),
            entries: n(5),
            bytes: n(6),
        }
    }

    pub(crate) fn apply(&mut self, d: &Delta) {
        self.hits += d.hits;
        self.misses += d.misses;
        self.writes += d.writes;
        self.corrupt += d.corrupt;
        self.evictions += d.evictions;
        self.entries = self.entries.saturating_add_signed(d.entries);
        self.bytes = self.bytes.saturating_add_signed(d.bytes);
    }
}

impl Delta {
    pub(crate) fn is_zero(&self) -> bool {
        *self == Delta::default()
    }
}

impl PendingCounters {
    /// Reads without resetting.
    pub(crate) fn peek(&self) -> Delta {
        self.read(|n| n.load(Ordering::Relaxed), |n| n.load(Ordering::Relaxed))
    }

    /// Reads and resets.
    pub(crate) fn take(&self) -> Delta {
        self.read(
            |n| n.swap(0, Ordering::Relaxed),
            |n| n.swap(0, Ordering::Relaxed),
        )
    }

    fn read(&self, count: impl Fn(&AtomicU64) -> u64, size: impl Fn(&AtomicI64) -> i64) -> Delta {
        Delta {
            hits: count(&self.hits),
            misses: count(&self.misses),
            writes: count(&self.writes),
            corrupt: count(&self.corrupt),
            evictions: count(&self.evictions),
            entries: size(&self.entries),
            bytes: size(&self.bytes),
        }
    }

    /// Puts back changes that could not be persisted.
    pub(crate) fn restore(&self, d: &Delta) {
        self.hits.fetch_add(d.hits, Ordering::Relaxed);
        self.misses.fetch_add(d.misses, Ordering::Relaxed);
        self.writes.fetch_add(d.writes, Ordering::Relaxed);
        self.corrupt.fetch_add(d.corrupt, Ordering::Relaxed);
        self.evictions.fetch_add(d.evictions, Ordering::Relaxed);
        self.entries.fetch_add(d.entries, Ordering::Relaxed);
        self.bytes.fetch_add(d.bytes, Ordering::Relaxed);
    }
}

/// `clnrm cache stats --json` (docs/reference.md §8).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheStats {
    /// The cache directory, as it was given.
    pub dir: String,
    /// Bytes the cache's files take on disk.
    pub disk_bytes: u64,
    /// When gc last removed or rewrote anything (RFC 3339, UTC); `null` if never.
    pub last_gc: Option<String>,
    /// Per stage, by stage name.
    pub stages: BTreeMap<String, StageStats>,
    /// The remote tier's figures (docs/reference.md §10); absent when no remote was ever used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<super::remote::RemoteStats>,
}

/// One stage's line in [`CacheStats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageStats {
    /// Entries stored now.
    pub entries: u64,
    /// Bytes of those entries (keys and enveloped values).
    pub bytes: u64,
    /// Lookups served from the cache.
    pub hits: u64,
    /// Lookups that ran the stage.
    pub misses: u64,
    /// Values stored.
    pub writes: u64,
    /// Entries found damaged (treated as misses and rewritten).
    pub corrupt: u64,
    /// Entries removed by gc.
    pub evictions: u64,
}

impl StageStats {
    pub(crate) fn from_counters(c: &Counters) -> StageStats {
        StageStats {
            entries: c.entries,
            bytes: c.bytes,
            hits: c.hits,
            misses: c.misses,
            writes: c.writes,
            corrupt: c.corrupt,
            evictions: c.evictions,
        }
    }
}

impl CacheStats {
    /// The sum over all stages.
    pub fn total(&self) -> StageStats {
        self.stages
            .values()
            .fold(StageStats::default(), |mut t, s| {
                t.entries += s.entries;
                t.bytes += s.bytes;
                t.hits += s.hits;
                t.misses += s.misses;
                t.writes += s.writes;
                t.corrupt += s.corrupt;
                t.evictions += s.evictions;
                t
            })
    }
}

/// Unix seconds as RFC 3339 UTC (`2026-11-28T12:00:00Z`).
pub(crate) fn rfc3339(secs: u64) -> String {
    i64::try_from(secs)
        .ok()
        .and_then(|secs| time::OffsetDateTime::from_unix_timestamp(secs).ok())
        .and_then(|at| {
            at.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| format!("{secs} seconds after the Unix epoch"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_known_points() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_795_867_200), "2026-11-28T12:00:00Z");
    }

    #[test]
    fn counters_round_trip_and_tolerate_garbage() {
        let c = Counters {
            hits: 1,
            misses: 2,
            writes: 3,
            corrupt: 4,
            evictions: 5,
            entries: 6,
            bytes: 7,
        };
        assert_eq!(Counters::decode(&c.encode()), c);
        assert_eq!(Counters::decode(b"short"), Counters::default());
    }

    #[test]
    fn json_shape_matches_spec() {
        let mut stages = BTreeMap::new();
        stages.insert("render".to_string(), StageStats::default());
        let stats = CacheStats {
            dir: "d".into(),
            disk_bytes: 1,
            last_gc: Some(rfc3339(0)),
            stages,
            remote: None,
        };
        let v: serde_json::Value = serde_json::to_value(&stats).unwrap();
        let mut keys: Vec<_> = v.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        assert_eq!(keys, ["dir", "disk_bytes", "last_gc", "stages"]);
        let mut stage_keys: Vec<_> = v["stages"]["render"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        stage_keys.sort();
        assert_eq!(
            stage_keys,
            [
                "bytes",
                "corrupt",
                "entries",
                "evictions",
                "hits",
                "misses",
                "writes"
            ]
        );
    }
}
