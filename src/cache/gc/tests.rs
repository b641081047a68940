//! gc and clear on real stores: LRU order, the size limit met, dry runs, counters.

use super::super::{Key, MemoOptions};
use super::*;

const DAY: u64 = 86_400;

fn value(i: u64) -> Vec<u8> {
    let mut v = i.to_le_bytes().to_vec();
    v.resize(1024, (i % 251) as u8);
    v
}

/// A memo with `n` 1 KiB entries in stage "a"; entry `i` was last used
/// at `stamp(i)`.
fn filled(dir: &std::path::Path, n: u64, stamp: impl Fn(u64) -> u64) -> Memo {
    let (memo, warnings) = Memo::open(dir, MemoOptions::default());
    assert!(warnings.is_empty(), "{warnings:?}");
    for i in 0..n {
        memo.put_raw("a", &Key::new("a", 1, &i.to_le_bytes()), &value(i));
    }
    memo.flush();
    let state = memo.stage_state("a");
    let mut touched = state.touched.lock().unwrap();
    for i in 0..n {
        touched.insert(Key::new("a", 1, &i.to_le_bytes()), stamp(i));
    }
    drop(touched);
    memo.flush();
    memo
}

fn present(memo: &Memo, n: u64) -> Vec<bool> {
    (0..n)
        .map(
            |i| match memo.get_raw("a", &Key::new("a", 1, &i.to_le_bytes())) {
                Some(v) => {
                    assert_eq!(v, value(i), "entry {i} has the wrong bytes");
                    true
                }
                None => false,
            },
        )
        .collect()
}

#[test]
fn max_size_evicts_least_recently_used_and_gets_under_the_limit() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cache");
    let n = 3000;
    let base = now_secs() - 10 * DAY;
    let memo = filled(&dir, n, |i| base + i);
    let before = memo.stats().disk_bytes;
    let max = before / 4;
    let report = memo
        .gc(&GcOptions {
            max_size: Some(max),
            ..GcOptions::default()
        })
        .unwrap();
    assert!(report.rewritten);
    assert!(
        report.entries_removed > 0 && report.entries_kept > 0,
        "{report:?}"
    );
    assert_eq!(report.entries_removed + report.entries_kept, n);
    let stats = memo.stats();
    assert!(stats.disk_bytes <= max, "{} > {max}", stats.disk_bytes);
    assert_eq!(report.disk_bytes_after, stats.disk_bytes);
    let a = stats.stages["a"];
    assert_eq!(
        (a.entries, a.evictions),
        (report.entries_kept, report.entries_removed)
    );
    assert_eq!(a.bytes, report.bytes_kept);
    assert!(stats.last_gc.is_some());
    drop(memo);

    // The next process sees a consistent store: exactly the newest entries.
    let (memo, warnings) = Memo::open(&dir, MemoOptions::default());
    assert!(warnings.is_empty(), "{warnings:?}");
    let kept = present(&memo, n);
    let first_kept = kept.iter().position(|&k| k).unwrap();
    assert!(
        kept[first_kept..].iter().all(|&k| k),
        "eviction was not LRU"
    );
    assert_eq!((n - first_kept as u64), report.entries_kept);
    assert_eq!(memo.stats().stages["a"].entries, report.entries_kept);
}

#[test]
fn max_age_removes_only_entries_unused_for_longer() {
    let tmp = tempfile::tempdir().unwrap();
    let now = now_secs();
    let memo = filled(tmp.path(), 100, |i| {
        if i % 2 == 0 {
            now - 10 * DAY
        } else {
            now - DAY
        }
    });
    let report = memo
        .gc(&GcOptions {
            max_age: Some(Duration::from_secs(7 * DAY)),
            ..GcOptions::default()
        })
        .unwrap();
    assert_eq!((report.entries_removed, report.entries_kept), (50, 50));
    let kept = present(&memo, 100);
    for (i, k) in kept.iter().enumerate() {
        assert_eq!(*k, i % 2 == 1, "entry {i}");
    }
    assert_eq!(memo.stats().stages["a"].entries, 50);
}

#[test]
fn dry_run_removes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let now = now_secs();
    let memo = filled(tmp.path(), 500, |i| now - i * DAY);
    let before = memo.stats();
    let report = memo
        .gc(&GcOptions {
            max_size: Some(before.disk_bytes / 3),
            max_age: Some(Duration::from_secs(100 * DAY)),
            dry_run: true,
        })
        .unwrap();
    assert!(report.dry_run && !report.rewritten);
    assert!(report.entries_removed >= 399, "{report:?}");
    assert!(report.disk_bytes_after < before.disk_bytes);
    assert!(present(&memo, 500).iter().all(|&k| k));
    let after = memo.stats();
    assert_eq!(after.stages["a"].entries, 500);
    assert_eq!(after.stages["a"].evictions, 0);
    assert_eq!(after.last_gc, None);
}

#[test]
fn under_the_limit_gc_keeps_everything_without_rewriting() {
    let tmp = tempfile::tempdir().unwrap();
    let memo = filled(tmp.path(), 50, |_| now_secs());
    let report = memo
        .gc(&GcOptions {
            max_size: Some(u64::MAX),
            ..GcOptions::default()
        })
        .unwrap();
    assert_eq!(report.entries_removed, 0);
    assert!(!report.rewritten);
    assert!(memo.stats().last_gc.is_some());
}

#[test]
fn auto_gc_runs_only_over_the_limit() {
    let tmp = tempfile::tempdir().unwrap();
    let base = now_secs() - DAY;
    let memo = filled(tmp.path(), 1000, |i| base + i);
    let size = memo.stats().disk_bytes;
    assert_eq!(memo.maybe_auto_gc(size + 1).unwrap(), None);
    let report = memo.maybe_auto_gc(size / 2).unwrap().expect("a gc");
    assert!(report.entries_removed > 0);
    assert!(memo.stats().disk_bytes <= size / 2 / 100 * 90);
}

#[test]
fn clear_one_stage_then_all() {
    let tmp = tempfile::tempdir().unwrap();
    let memo = filled(tmp.path(), 10, |_| now_secs());
    memo.put_raw("b", &Key::new("b", 1, b"x"), b"bee");
    let report = memo.clear(Some("a")).unwrap();
    assert_eq!(report.entries_removed, 10);
    assert!(present(&memo, 10).iter().all(|&k| !k));
    assert_eq!(memo.get_raw("b", &Key::new("b", 1, b"x")).unwrap(), b"bee");
    let stats = memo.stats();
    assert_eq!(stats.stages["a"].entries, 0);
    assert_eq!(stats.stages["a"].writes, 10, "clear keeps the counters");
    assert_eq!(stats.stages["b"].entries, 1);
    assert_eq!(memo.clear(None).unwrap().entries_removed, 1);
    assert_eq!(memo.get_raw("b", &Key::new("b", 1, b"x")), None);
    assert_eq!(memo.stats().stages["b"].entries, 0);
}

#[test]
fn gc_needs_a_directory() {
    let memo = Memo::in_memory(MemoOptions::default());
    assert!(matches!(
        memo.gc(&GcOptions::default()),
        Err(CacheError::NotPersistent(_))
    ));
    assert_eq!(memo.maybe_auto_gc(0).unwrap(), None);
}
