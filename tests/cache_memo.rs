//! The memo as the pipeline uses it: hits and misses, `--no-cache`, errors,
//! the raw two-level calls, statistics across processes, many threads.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use clnrm::cache::{Key, Lookup, Memo, MemoOptions, MissReason, Stage};
use clnrm::report::format_stats_human;
use proptest::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Rendered {
    text: String,
    reads: Vec<(String, [u8; 32])>,
    volatile: bool,
}

struct Render;
impl Stage for Render {
    const NAME: &'static str = "render";
    const VERSION: u32 = 1;
    type Output = Rendered;
}

struct RenderV2;
impl Stage for RenderV2 {
    const NAME: &'static str = "render";
    const VERSION: u32 = 2;
    type Output = Rendered;
}

fn render(input: &[u8]) -> Rendered {
    Rendered {
        text: String::from_utf8_lossy(input).to_uppercase(),
        reads: vec![("_macros.tera".into(), *blake3::hash(input).as_bytes())],
        volatile: false,
    }
}

fn open(dir: &Path) -> Memo {
    let (memo, warnings) = Memo::open(dir, MemoOptions::default());
    assert!(warnings.is_empty(), "{warnings:?}");
    assert!(memo.is_persistent());
    memo
}

fn run_render(memo: &Memo, input: &[u8]) -> (Rendered, Lookup) {
    memo.get_or_run::<Render, std::convert::Infallible>(input, || Ok(render(input)))
        .unwrap()
}

#[test]
fn miss_then_hit_in_this_process_and_the_next() {
    let tmp = tempfile::tempdir().unwrap();
    let memo = open(tmp.path());
    let (out, lookup) = run_render(&memo, b"a = 1");
    assert_eq!(
        (out, lookup),
        (render(b"a = 1"), Lookup::Miss(MissReason::NotFound))
    );
    let (out, lookup) = run_render(&memo, b"a = 1");
    assert_eq!((out, lookup), (render(b"a = 1"), Lookup::Hit));
    let (_, lookup) = run_render(&memo, b"a = 2");
    assert_eq!(lookup, Lookup::Miss(MissReason::NotFound));
    drop(memo);

    let memo = open(tmp.path());
    let ran = AtomicUsize::new(0);
    let (out, lookup) = memo
        .get_or_run::<Render, ()>(b"a = 1", || {
            ran.fetch_add(1, Ordering::SeqCst);
            Ok(render(b"a = 1"))
        })
        .unwrap();
    assert_eq!((out, lookup), (render(b"a = 1"), Lookup::Hit));
    assert_eq!(
        ran.load(Ordering::SeqCst),
        0,
        "a hit must not run the stage"
    );
    // A new stage version is a different key.
    let (_, lookup) = memo
        .get_or_run::<RenderV2, ()>(b"a = 1", || Ok(render(b"a = 1")))
        .unwrap();
    assert_eq!(lookup, Lookup::Miss(MissReason::NotFound));
}

#[test]
fn errors_are_returned_and_never_stored() {
    let tmp = tempfile::tempdir().unwrap();
    let memo = open(tmp.path());
    let err = memo
        .get_or_run::<Render, String>(b"bad", || Err("boom".to_string()))
        .unwrap_err();
    assert_eq!(err, "boom");
    let (_, lookup) = run_render(&memo, b"bad");
    assert_eq!(lookup, Lookup::Miss(MissReason::NotFound));
    let stats = memo.stats();
    assert_eq!(stats.stages["render"].writes, 1);
    assert_eq!(stats.stages["render"].misses, 2);
}

#[test]
fn no_cache_reads_nothing_but_still_writes() {
    let tmp = tempfile::tempdir().unwrap();
    let no_read = MemoOptions {
        no_read: true,
        ..MemoOptions::default()
    };
    let (memo, warnings) = Memo::open(tmp.path(), no_read.clone());
    assert!(warnings.is_empty());
    for _ in 0..2 {
        let (out, lookup) = run_render(&memo, b"x");
        assert_eq!(
            (out, lookup),
            (render(b"x"), Lookup::Miss(MissReason::NoCache))
        );
    }
    let key = Key::new("manifest", 1, b"t");
    memo.put_raw("manifest", &key, b"deps");
    assert_eq!(memo.get_raw("manifest", &key), None);
    drop(memo);

    let memo = open(tmp.path());
    assert_eq!(run_render(&memo, b"x").1, Lookup::Hit);
    assert_eq!(
        memo.get_raw("manifest", &key).as_deref(),
        Some(&b"deps"[..])
    );
}

/// Render's direct mode: template hash → manifest of what it read → output.
#[test]
fn raw_two_level_lookup() {
    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    struct Manifest {
        files: Vec<(String, [u8; 32])>,
    }
    let tmp = tempfile::tempdir().unwrap();
    let memo = open(tmp.path());
    let template = b"{% import \"_m.tera\" as m %}{{ m::span() }}";
    let level1 = memo.key::<Render>(template);
    assert_eq!(memo.get_value::<Manifest>("render.manifest", &level1), None);
    memo.record_miss("render");
    let manifest = Manifest {
        files: vec![("_m.tera".into(), *blake3::hash(b"macro v1").as_bytes())],
    };
    memo.put_value("render.manifest", &level1, &manifest);
    let mut level2_input = template.to_vec();
    level2_input.extend_from_slice(&manifest.files[0].1);
    let level2 = memo.key::<Render>(&level2_input);
    memo.put_raw("render", &level2, b"rendered toml");

    let found = memo
        .get_value::<Manifest>("render.manifest", &level1)
        .unwrap();
    assert_eq!(found, manifest);
    assert_eq!(memo.get_raw("render", &level2).unwrap(), b"rendered toml");
    memo.record_hit("render");
    // A changed macro file gives another second-level key: a miss.
    let other = memo.key::<Render>(b"something else");
    assert_eq!(memo.lookup_raw("render", &other), Err(MissReason::NotFound));

    let stats = memo.stats();
    assert_eq!(
        (stats.stages["render"].hits, stats.stages["render"].misses),
        (1, 1)
    );
    assert_eq!(stats.stages["render"].writes, 1);
    assert_eq!(stats.stages["render.manifest"].writes, 1);
    assert_eq!(stats.stages["render.manifest"].entries, 1);
}

#[test]
fn stats_persist_across_reopen_and_match_the_spec_shape() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cache");
    {
        let memo = open(&dir);
        for i in 0..5u8 {
            run_render(&memo, &[i]);
        }
        for i in 0..3u8 {
            run_render(&memo, &[i]);
        }
    }
    let memo = open(&dir);
    run_render(&memo, &[0]);
    let stats = memo.stats();
    let render = stats.stages["render"];
    assert_eq!(
        (render.hits, render.misses, render.writes, render.entries),
        (4, 5, 5, 5)
    );
    assert!(render.bytes > 5 * 32);
    assert!(stats.disk_bytes > 0);
    assert_eq!(stats.dir, dir.display().to_string());
    assert_eq!(stats.last_gc, None);

    let json: serde_json::Value = serde_json::to_value(&stats).unwrap();
    for field in [
        "entries",
        "bytes",
        "hits",
        "misses",
        "writes",
        "corrupt",
        "evictions",
    ] {
        assert!(json["stages"]["render"][field].is_u64(), "{field}: {json}");
    }
    assert!(json["disk_bytes"].is_u64() && json["dir"].is_string());
    assert!(json["last_gc"].is_null());
    let text = format_stats_human(&stats);
    assert!(text.contains("Hits: 4 / 9 (44.4 %)"), "{text}");
}

#[test]
fn many_threads_share_one_memo() {
    use rayon::prelude::*;
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Memo>();

    let tmp = tempfile::tempdir().unwrap();
    let memo = open(tmp.path());
    let inputs: Vec<Vec<u8>> = (0..400u32)
        .map(|i| (i % 100).to_le_bytes().to_vec())
        .collect();
    let results: Vec<(Rendered, Lookup)> = inputs
        .par_iter()
        .map(|input| run_render(&memo, input))
        .collect();
    for (input, (out, _)) in inputs.iter().zip(&results) {
        assert_eq!(*out, render(input));
    }
    let stats = memo.stats().stages["render"];
    assert_eq!(stats.hits + stats.misses, 400);
    assert_eq!(stats.entries, 100);
    assert!(stats.hits >= 200, "{stats:?}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Whatever is stored comes back byte for byte after a reopen; what was
    /// never stored is not found.
    #[test]
    fn stored_values_survive_reopen(
        entries in prop::collection::btree_map(
            ("[a-c]", prop::collection::vec(any::<u8>(), 0..24)),
            prop::collection::vec(any::<u8>(), 0..3000),
            0..40,
        ),
        absent in prop::collection::vec(any::<u8>(), 25..40),
    ) {
        let tmp = tempfile::tempdir().unwrap();
        let key = |stage: &str, input: &[u8]| Key::new(stage, 3, input);
        {
            let memo = open(tmp.path());
            for ((stage, input), value) in &entries {
                memo.put_raw(stage, &key(stage, input), value);
            }
        }
        let memo = open(tmp.path());
        for ((stage, input), value) in &entries {
            let found = memo.get_raw(stage, &key(stage, input));
            prop_assert_eq!(found.as_ref(), Some(value));
        }
        prop_assert_eq!(memo.get_raw("a", &key("a", &absent)), None);
        let mut per_stage: BTreeMap<&str, u64> = BTreeMap::new();
        for (stage, _) in entries.keys() {
            *per_stage.entry(stage.as_str()).or_default() += 1;
        }
        let stats = memo.stats();
        for (stage, n) in per_stage {
            prop_assert_eq!(stats.stages[stage].entries, n);
        }
    }

    /// A hit returns exactly what running the stage returns.
    #[test]
    fn hit_equals_a_fresh_run(inputs in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..64), 1..20)) {
        let tmp = tempfile::tempdir().unwrap();
        {
            let memo = open(tmp.path());
            for input in &inputs {
                run_render(&memo, input);
            }
        }
        let memo = open(tmp.path());
        for input in &inputs {
            let (out, lookup) = run_render(&memo, input);
            prop_assert_eq!(lookup, Lookup::Hit);
            prop_assert_eq!(out, render(input));
        }
    }
}
