//! `clnrm cache gc` as a user with a large project meets it: it shrinks the cache and
//! leaves it shrunk. It never runs the pipeline (no entry is written, no test is
//! discovered), wherever it is run from, and `cache stats` then agrees with what gc
//! printed. Build images are kept or removed by the runner's records of them.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use clnrm::cache::{GcOptions, Memo, MemoOptions};
use common::{clnrm_command, TestProject, IMAGE};

/// A project of `n` small plain tests, as `benches/gen_project.py` writes them.
fn project_of(n: usize) -> TestProject {
    let project = TestProject::new();
    project.write("cleanroom.toml", "[project]\nname = \"many\"\n");
    for i in 0..n {
        project.write(
            &format!("tests/t{i:04}.clnrm.toml"),
            &format!(
                "[meta]\nname = \"t{i}\"\nversion = \"1\"\n\n[service.app]\nimage = \"{IMAGE}\"\n\
                 env = {{ INDEX = \"{i}\" }}\n\n[[steps]]\nname = \"say\"\n\
                 command = [\"echo\", \"{i}\"]\nexpected_output_regex = \"^{i}$\"\n"
            ),
        );
    }
    project
}

/// Bytes of every file under `dir`.
fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| {
            let entry = entry.unwrap();
            let meta = entry.metadata().unwrap();
            if meta.is_dir() {
                dir_bytes(&entry.path())
            } else {
                meta.len()
            }
        })
        .sum()
}

/// `clnrm --cache-dir CACHE cache ARGS…` run in `cwd`.
fn clnrm_cache(cwd: &Path, cache: &Path, args: &[&str]) -> std::process::Output {
    clnrm_command()
        .current_dir(cwd)
        .args(["--cache-dir", cache.to_str().unwrap(), "cache"])
        .args(args)
        .output()
        .unwrap()
}

/// (entries, writes) over all stages, as `cache stats --json` shows them.
fn entries_and_writes(cache: &Path) -> (u64, u64) {
    let out = clnrm_cache(Path::new("/"), cache, &["stats", "--json"]);
    assert!(out.status.success(), "{out:?}");
    let stats: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let stages = stats["stages"].as_object().unwrap();
    let sum = |field: &str| stages.values().map(|s| s[field].as_u64().unwrap()).sum();
    (sum("entries"), sum("writes"))
}

/// The number gc printed after "kept".
fn kept_entries(output: &str) -> u64 {
    let after = output
        .split("kept ")
        .nth(1)
        .unwrap_or_else(|| panic!("no `kept` in {output}"));
    after.split_whitespace().next().unwrap().parse().unwrap()
}

/// Validates the project into `cache`, then runs `cache gc --max-size <half>` from
/// `cwd` (`--cache-dir` given, nothing else) and checks the story.
fn gc_to_half_from(project: &TestProject, cache: &Path, cwd: &Path) {
    let validate = project.clnrm_with(
        &["validate"],
        &[("CLNRM_CACHE_DIR", cache.to_str().unwrap())],
    );
    validate.expect_code(0);
    let before = dir_bytes(cache);
    let (entries_before, writes_before) = entries_and_writes(cache);
    assert!(
        entries_before >= 400,
        "validate cached only {entries_before} entries"
    );
    let limit = before / 2;

    let out = clnrm_cache(cwd, cache, &["gc", "--max-size", &limit.to_string()]);
    let printed =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{printed}");
    let kept = kept_entries(&printed);

    let after = dir_bytes(cache);
    assert!(
        after <= limit + limit * 15 / 100,
        "gc left {after} bytes on disk for a limit of {limit} (was {before}): {printed}"
    );
    let (entries_after, writes_after) = entries_and_writes(cache);
    assert_eq!(
        entries_after, kept,
        "cache stats counts {entries_after} entries, gc said it kept {kept}: {printed}"
    );
    assert!(
        entries_after < entries_before,
        "gc removed nothing: {printed}"
    );
    assert_eq!(writes_after, writes_before, "gc wrote entries: {printed}");
}

#[test]
fn gc_from_inside_a_400_test_project_halves_the_cache_and_writes_nothing() {
    let project = project_of(400);
    let cache = project.path(".clnrm/cache");
    gc_to_half_from(&project, &cache, project.root());
}

#[test]
fn gc_from_the_root_folder_with_only_a_cache_dir_discovers_nothing() {
    let project = project_of(400);
    let cache = project.path("elsewhere/cache");
    gc_to_half_from(&project, &cache, Path::new("/"));
}

#[test]
fn gc_removes_moved_aside_damaged_caches_older_than_a_day_only() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let old = tmp
        .path()
        .join(format!("cache.corrupt-{}", now - 2 * 86_400));
    let recent = tmp.path().join(format!("cache.corrupt-{}", now - 3600));
    for dir in [&old, &recent] {
        std::fs::create_dir_all(dir.join("db-1")).unwrap();
    }
    let out = clnrm_cache(tmp.path(), &cache, &["gc"]);
    assert!(out.status.success(), "{out:?}");
    assert!(!old.exists(), "a two-day-old damaged cache is still there");
    assert!(recent.exists(), "an hour-old damaged cache was removed");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&old.display().to_string()),
        "gc did not say what it removed: {out:?}"
    );
}

fn docker(args: &[&str]) -> bool {
    std::process::Command::new("docker")
        .args(args)
        .output()
        .is_ok_and(|out| out.status.success())
}

#[test]
fn a_build_image_is_removed_only_when_gc_evicts_its_record() {
    if !common::docker_ready() {
        clnrm_test_support::skip_container_test(
            "a_build_image_is_removed_only_when_gc_evicts_its_record",
            "no Docker engine or fixture image",
        );
        return;
    }
    let pid = std::process::id();
    let evicted = format!("clnrm-build/gc-test-evicted-{pid}");
    let recent = format!("clnrm-build/gc-test-recent-{pid}");
    let unknown = format!("clnrm-build/gc-test-unknown-{pid}");
    for tag in [&evicted, &recent, &unknown] {
        assert!(docker(&["tag", IMAGE, tag]), "cannot tag {tag}");
    }
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    {
        let (memo, warnings) = Memo::open(&cache, MemoOptions::default());
        assert!(warnings.is_empty(), "{warnings:?}");
        memo.record_build_image(&format!("{evicted}:latest"));
        memo.flush();
        // Last use is to the second: the second record is younger than --max-age.
        std::thread::sleep(Duration::from_millis(2100));
        memo.record_build_image(&format!("{recent}:latest"));
        let preview = memo
            .gc(&GcOptions {
                max_age: Some(Duration::from_secs(1)),
                dry_run: true,
                ..GcOptions::default()
            })
            .unwrap();
        assert_eq!(
            preview.evicted_build_images,
            BTreeSet::from([evicted.clone()])
        );
    }
    let out = clnrm_cache(Path::new("/"), &cache, &["gc", "--max-age", "1s"]);
    let exists = |tag: &str| docker(&["image", "inspect", tag]);
    let (evicted_left, recent_left, unknown_left) =
        (exists(&evicted), exists(&recent), exists(&unknown));
    for tag in [&evicted, &recent, &unknown] {
        docker(&["rmi", tag]);
    }
    assert!(out.status.success(), "{out:?}");
    assert!(
        !evicted_left,
        "the image whose record gc evicted is still there: {out:?}"
    );
    assert!(
        recent_left,
        "the image whose record gc kept was removed: {out:?}"
    );
    assert!(unknown_left, "an image with no record was removed: {out:?}");
}
