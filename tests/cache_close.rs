//! Closing the cache really closes it: `clnrm dev` opens and closes the store for
//! every run, so the next open must never find sled's lock still held by the memo
//! that was just dropped (and fall back to running without the cache).

use std::time::Duration;

use clnrm::cache::{Key, Memo, MemoOptions};

fn options() -> MemoOptions {
    MemoOptions {
        // No waiting for a lock: a store that is still held shows up as a warning at once.
        lock_timeout: Duration::ZERO,
        ..MemoOptions::default()
    }
}

#[test]
fn a_thousand_runs_open_write_and_close_without_ever_meeting_the_lock() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cache");
    for run in 0u32..1000 {
        let (memo, warnings) = Memo::open(&dir, options());
        assert!(
            warnings.is_empty(),
            "run {run}: the store was still held: {warnings:?}"
        );
        assert!(memo.is_persistent(), "run {run} ran without the cache");
        // Each run writes something, as a run of `clnrm dev` does, so sled has log
        // writes in flight when the memo is dropped.
        let key = Key::new("run", 1, &run.to_le_bytes());
        memo.put_raw("run", &key, &run.to_le_bytes().repeat(64));
        if run > 0 {
            let previous = Key::new("run", 1, &(run - 1).to_le_bytes());
            assert_eq!(
                memo.get_raw("run", &previous),
                Some((run - 1).to_le_bytes().repeat(64)),
                "run {run} does not see what run {} wrote",
                run - 1
            );
        }
        drop(memo);
    }
    let (memo, _) = Memo::open(&dir, options());
    assert_eq!(memo.stats().stages["run"].entries, 1000);
}

#[test]
fn gc_rewrite_releases_the_old_database_before_the_next_open() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cache");
    for round in 0u32..50 {
        let (memo, warnings) = Memo::open(&dir, options());
        assert!(warnings.is_empty(), "round {round}: {warnings:?}");
        for i in 0u32..20 {
            let key = Key::new("gc", 1, &(round * 100 + i).to_le_bytes());
            memo.put_raw("gc", &key, &[7; 512]);
        }
        memo.clear(Some("gc")).unwrap();
        drop(memo);
    }
}
