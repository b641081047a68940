//! The memo's costs: a hit (target: median under 30 µs), `cache stats`
//! (under 100 ms) and `cache gc` of 100,000 entries (under 3 s).
//!
//! `cargo bench --bench memo`; the 100,000-entry store is built once (it takes
//! a while) and copied for every gc iteration.

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use clnrm::cache::{GcOptions, Key};
use criterion::{criterion_group, criterion_main, Criterion};

mod common;
use common::{open_memo as open, rendered, RenderStage as Render};

fn fill(dir: &Path, n: u64) {
    let memo = open(dir);
    for i in 0..n {
        memo.get_or_run::<Render, ()>(&i.to_le_bytes(), || Ok(rendered(i)))
            .unwrap();
        // Look half of them up again so last-use stamps differ in content.
        if i % 2 == 0 {
            memo.get_or_run::<Render, ()>(&i.to_le_bytes(), || Ok(rendered(i)))
                .unwrap();
        }
    }
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), target).unwrap();
        }
    }
}

fn hit(c: &mut Criterion) {
    let tmp = tempfile::tempdir().unwrap();
    fill(tmp.path(), 10_000);
    let memo = open(tmp.path());
    let mut i = 0u64;
    c.bench_function("memo hit (get_or_run, 1 KiB output, 10k entries)", |b| {
        b.iter(|| {
            i = (i + 7919) % 10_000;
            let (out, lookup) = memo
                .get_or_run::<Render, ()>(&i.to_le_bytes(), || unreachable!("a miss"))
                .unwrap();
            assert!(lookup.is_hit());
            out
        })
    });
    let mut j = 0u64;
    c.bench_function("memo raw hit (get_raw)", |b| {
        b.iter(|| {
            j = (j + 7919) % 10_000;
            memo.get_raw("render", &Key::of::<Render>(&j.to_le_bytes()))
                .expect("a hit")
        })
    });
    drop(memo);
    open_stats_close(c, tmp.path(), "open + stats + close (10k entries)");
}

fn big_store(c: &mut Criterion) {
    let template = tempfile::tempdir().unwrap();
    let started = Instant::now();
    fill(template.path(), 100_000);
    eprintln!("built a 100,000-entry store in {:.1?}", started.elapsed());

    {
        let memo = open(template.path());
        let stats = memo.stats();
        eprintln!(
            "100,000 entries: {} on disk, {} live",
            clnrm::report::format_bytes(stats.disk_bytes),
            clnrm::report::format_bytes(stats.stages["render"].bytes)
        );
        c.bench_function("cache stats (100k entries)", |b| b.iter(|| memo.stats()));
        drop(memo);
    }
    open_stats_close(c, template.path(), "open + stats + close (100k entries)");

    let mut group = c.benchmark_group("cache gc (100k entries)");
    group.sample_size(10);
    for (name, opts) in [
        (
            "max_size half",
            GcOptions {
                max_size: Some(fs_size(template.path()) / 2),
                ..GcOptions::default()
            },
        ),
        (
            "dry run",
            GcOptions {
                max_size: Some(fs_size(template.path()) / 2),
                dry_run: true,
                ..GcOptions::default()
            },
        ),
    ] {
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let work = tempfile::tempdir().unwrap();
                    let dir = work.path().join("cache");
                    copy_dir(template.path(), &dir);
                    let memo = open(&dir);
                    let start = Instant::now();
                    let report = memo.gc(&opts).unwrap();
                    total += start.elapsed();
                    assert!(report.entries_removed > 0);
                    assert!(opts.dry_run || report.disk_bytes_after <= opts.max_size.unwrap());
                }
                total
            })
        });
    }
    group.finish();
}

/// What `clnrm cache stats` costs end to end, less process start: sled
/// recovers its page table on open, so this grows with the store.
fn open_stats_close(c: &mut Criterion, dir: &Path, name: &str) {
    let mut group = c.benchmark_group("open");
    group.sample_size(10);
    group.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let start = Instant::now();
                let memo = open(dir);
                std::hint::black_box(memo.stats());
                drop(memo);
                total += start.elapsed();
            }
            total
        })
    });
    group.finish();
}

fn fs_size(dir: &Path) -> u64 {
    let memo = open(dir);
    memo.stats().disk_bytes
}

criterion_group!(benches, hit, big_store);
criterion_main!(benches);
