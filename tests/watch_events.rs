//! The watcher against real files: what a save, a burst, an editor's atomic
//! save, a deletion and ignored paths turn into; with the settle window, how
//! fast each editor's save pattern is released, and what waits the debounce.

use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clnrm::watch::{ChangeBatch, Trigger, WatchOptions, Watcher};

/// Long enough for a batch on a busy machine; only failing tests wait it out.
const PATIENCE: Duration = Duration::from_secs(10);

struct Project {
    dir: tempfile::TempDir,
}

impl Project {
    fn new() -> Self {
        Project {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.root().join(rel)
    }

    fn write(&self, rel: &str, text: &str) {
        let path = self.path(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    fn rename(&self, from: &str, to: &str) {
        fs::rename(self.path(from), self.path(to)).unwrap();
    }

    /// How vim saves `t/a.clnrm.toml`: it probes the folder with `4913`, renames the
    /// original to a backup, writes the new file, then drops the backup; its swap file
    /// changes too.
    fn save_like_vim(&self, text: &str) {
        self.write("t/4913", "");
        self.remove("t/4913");
        self.write("t/.a.clnrm.toml.swp", "swap");
        self.rename("t/a.clnrm.toml", "t/a.clnrm.toml~");
        self.write("t/a.clnrm.toml", text);
        self.remove("t/a.clnrm.toml~");
    }

    fn remove(&self, rel: &str) {
        fs::remove_file(self.path(rel)).unwrap();
    }

    fn watch(&self, debounce_ms: u64) -> Watcher {
        self.watch_paths(&[], debounce_ms)
    }

    /// A debounce-only watcher: what the debounce fallback does on its own.
    fn watch_paths(&self, paths: &[&str], debounce_ms: u64) -> Watcher {
        let paths: Vec<PathBuf> = paths.iter().map(PathBuf::from).collect();
        let options = WatchOptions {
            settle: None,
            ..WatchOptions::with_debounce(Duration::from_millis(debounce_ms))
        };
        Watcher::start(self.root(), &paths, options).unwrap()
    }

    /// A watcher as `clnrm dev` runs it: the default 20 ms settle window for one
    /// completed save, and the given debounce for everything else.
    fn watch_settling(&self, debounce_ms: u64) -> Watcher {
        Watcher::start(
            self.root(),
            &[],
            WatchOptions::with_debounce(Duration::from_millis(debounce_ms)),
        )
        .unwrap()
    }

    fn git(&self, args: &[&str]) {
        let status = std::process::Command::new("git")
            .args([
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@t",
                "-c",
                "init.defaultBranch=main",
            ])
            .args(args)
            .current_dir(self.root())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .expect("git runs");
        assert!(status.success(), "git {args:?}");
    }
}

fn next_batch(watcher: &Watcher) -> ChangeBatch {
    watcher
        .recv_timeout(PATIENCE)
        .expect("a batch within the patience window")
}

/// The next batch, which must be exactly `paths`.
fn expect_batch(watcher: &Watcher, paths: &[&str]) -> ChangeBatch {
    let batch = next_batch(watcher);
    assert_eq!(batch.paths, set(paths));
    batch
}

/// The next batch, which must name `path` (among others the platform reports).
fn expect_batch_containing(watcher: &Watcher, path: &str) -> ChangeBatch {
    let batch = next_batch(watcher);
    assert!(batch.paths.contains(path), "{:?}", batch.paths);
    batch
}

fn assert_quiet(watcher: &Watcher, debounce_ms: u64) {
    let wait = Duration::from_millis(3 * debounce_ms);
    if let Ok(batch) = watcher.recv_timeout(wait) {
        panic!("expected no batch, got {:?}", batch.paths);
    }
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// Far longer than the settle window: a batch released well before it was settled.
const SLOW_DEBOUNCE_MS: u64 = 2000;

/// The next batch is exactly `paths`, released by the settle window, not the debounce.
fn expect_settled(watcher: &Watcher, paths: &[&str]) {
    assert_settled(&expect_batch(watcher, paths));
}

fn assert_settled(batch: &ChangeBatch) {
    assert_eq!(batch.trigger, Trigger::Settle, "{batch:?}");
    let waited = batch.debounce_time();
    assert!(
        waited < Duration::from_millis(SLOW_DEBOUNCE_MS / 2),
        "released after {waited:?}"
    );
}

#[test]
fn a_save_in_place_is_released_after_the_settle_window_not_the_debounce() {
    let p = Project::new();
    p.write("a.clnrm.toml", "old");
    let w = p.watch_settling(SLOW_DEBOUNCE_MS);
    p.write("a.clnrm.toml", "new");
    expect_settled(&w, &["a.clnrm.toml"]);
    assert_quiet(&w, 100);
}

#[test]
fn a_file_still_open_for_writing_waits_until_it_is_closed() {
    let p = Project::new();
    p.write("a.clnrm.toml", "old");
    let w = p.watch_settling(SLOW_DEBOUNCE_MS);
    let mut file = fs::File::create(p.path("a.clnrm.toml")).unwrap();
    file.write_all(b"half a sa").unwrap();
    assert!(
        w.recv_timeout(Duration::from_millis(300)).is_err(),
        "released while the writer still had the file open"
    );
    file.write_all(b"ve").unwrap();
    drop(file);
    expect_settled(&w, &["a.clnrm.toml"]);
}

#[test]
fn a_temp_file_renamed_into_place_is_one_settled_change_of_the_target() {
    let p = Project::new();
    p.write("a.clnrm.toml", "old");
    let w = p.watch_settling(SLOW_DEBOUNCE_MS);
    // A temp name no ignore rule knows (atomic-write libraries pick their own).
    p.write(".a.clnrm.toml.x7f3", "new");
    p.rename(".a.clnrm.toml.x7f3", "a.clnrm.toml");
    let batch = expect_batch_containing(&w, "a.clnrm.toml");
    assert_settled(&batch);
    // And with an ignored temp name, only the target is seen.
    p.write("a.clnrm.toml.tmp", "newer");
    p.rename("a.clnrm.toml.tmp", "a.clnrm.toml");
    expect_settled(&w, &["a.clnrm.toml"]);
}

#[test]
fn a_vim_save_with_its_probe_swap_and_backup_is_one_settled_change() {
    let p = Project::new();
    p.write("t/a.clnrm.toml", "old");
    let w = p.watch_settling(SLOW_DEBOUNCE_MS);
    p.save_like_vim("new");
    expect_settled(&w, &["t/a.clnrm.toml"]);
    assert_quiet(&w, 100);
}

#[test]
fn a_delete_has_no_completion_signal_and_waits_for_the_debounce() {
    let p = Project::new();
    p.write("a.clnrm.toml", "x");
    let w = p.watch_settling(300);
    p.remove("a.clnrm.toml");
    let batch = expect_batch(&w, &["a.clnrm.toml"]);
    assert_eq!(batch.trigger, Trigger::Debounce);
    assert!(batch.debounce_time() >= Duration::from_millis(300));
}

#[test]
fn a_git_checkout_of_50_tests_is_one_batch_of_the_50() {
    let p = Project::new();
    let names: Vec<String> = (0..50).map(|i| format!("t/t{i:02}.clnrm.toml")).collect();
    for name in &names {
        p.write(name, "version one");
    }
    p.git(&["init", "-q"]);
    p.git(&["add", "."]);
    p.git(&["commit", "-q", "-m", "one"]);
    p.git(&["checkout", "-q", "-b", "two"]);
    for name in &names {
        p.write(name, "version two");
    }
    p.git(&["commit", "-q", "-a", "-m", "two"]);
    let w = p.watch_settling(300);
    p.git(&["checkout", "-q", "main"]);
    let batch = next_batch(&w);
    let expected: BTreeSet<String> = names.iter().cloned().collect();
    assert_eq!(batch.paths, expected);
    assert_eq!(batch.trigger, Trigger::Debounce);
    assert_quiet(&w, 300);
}

#[test]
fn a_write_is_one_batch_with_that_file() {
    let p = Project::new();
    p.write("a.clnrm.toml", "old");
    let w = p.watch(100);
    let before = Instant::now();
    p.write("a.clnrm.toml", "new");
    let batch = expect_batch(&w, &["a.clnrm.toml"]);
    assert!(!batch.rescan);
    assert!(batch.first_event_at >= before);
    assert!(batch.detected_at >= batch.first_event_at);
    assert!(batch.released_at >= batch.last_event_at + Duration::from_millis(100));
    assert!(batch.detect < Duration::from_secs(1));
    assert_quiet(&w, 100);
}

#[test]
fn ten_writes_within_the_debounce_window_are_one_batch() {
    let p = Project::new();
    let w = p.watch(300);
    for i in 0..10 {
        p.write("a.clnrm.toml", &format!("version {i}"));
        std::thread::sleep(Duration::from_millis(5));
    }
    let batch = expect_batch(&w, &["a.clnrm.toml"]);
    assert!(batch.events >= 10, "{} events", batch.events);
    assert_quiet(&w, 300);
}

#[test]
fn write_then_rename_is_one_change_of_the_target() {
    let p = Project::new();
    p.write("a.clnrm.toml", "old");
    let w = p.watch(300);
    p.write("a.clnrm.toml.tmp", "new");
    p.rename("a.clnrm.toml.tmp", "a.clnrm.toml");
    expect_batch(&w, &["a.clnrm.toml"]);
    assert_quiet(&w, 300);
}

#[test]
fn a_vim_style_save_is_one_change_of_the_target() {
    let p = Project::new();
    p.write("t/a.clnrm.toml", "old");
    let w = p.watch(300);
    p.save_like_vim("new");
    expect_batch(&w, &["t/a.clnrm.toml"]);
    assert_quiet(&w, 300);
}

#[test]
fn ignored_paths_never_trigger() {
    let p = Project::new();
    p.write(".gitignore", "generated/\n*.log\n");
    p.write(".git/HEAD", "ref");
    p.write("target/debug/x", "x");
    p.write(".clnrm/cache/db", "x");
    p.write("generated/old.clnrm.toml", "x");
    let w = p.watch(100);
    p.write(".a.clnrm.toml.swp", "swap");
    p.write(".a.swx", "swap");
    p.write("a.clnrm.toml~", "backup");
    p.write(".#a.clnrm.toml", "lock");
    p.write("4913", "");
    p.write("x.tmp", "");
    p.write(".git/HEAD", "ref2");
    p.write(".git/objects/ab/cd", "obj");
    p.write("target/debug/x", "y");
    p.write("target/release/y", "y");
    p.write(".clnrm/cache/db", "y");
    p.write("generated/old.clnrm.toml", "y");
    p.write("generated/new.clnrm.toml", "y");
    p.write("sub/run.log", "y");
    p.write("sub/target/z", "y");
    assert_quiet(&w, 100);
    // The watcher is alive: a real change still comes through, alone.
    p.write("a.clnrm.toml", "test");
    expect_batch(&w, &["a.clnrm.toml"]);
}

#[test]
fn metadata_only_changes_never_trigger() {
    let p = Project::new();
    p.write("a.clnrm.toml", "x");
    let w = p.watch(100);
    fs::set_permissions(p.path("a.clnrm.toml"), fs::Permissions::from_mode(0o600)).unwrap();
    let _ = fs::read(p.path("a.clnrm.toml")).unwrap();
    assert_quiet(&w, 100);
}

#[test]
fn a_deleted_file_is_reported() {
    let p = Project::new();
    p.write("t/a.clnrm.toml", "x");
    p.write("t/b.clnrm.toml", "x");
    let w = p.watch(100);
    p.remove("t/a.clnrm.toml");
    expect_batch(&w, &["t/a.clnrm.toml"]);
}

#[test]
fn a_new_folder_and_its_files_are_reported_and_then_watched() {
    let p = Project::new();
    let w = p.watch(100);
    p.write("new/deep/a.clnrm.toml", "x");
    expect_batch(&w, &["new/deep/a.clnrm.toml"]);
    // The new folders are now watched themselves.
    p.write("new/deep/b.clnrm.toml", "x");
    expect_batch(&w, &["new/deep/b.clnrm.toml"]);
}

#[test]
fn a_removed_folder_is_reported_and_a_recreated_one_watched_again() {
    let p = Project::new();
    p.write("lib/_macros.tera", "x");
    let w = p.watch(100);
    fs::remove_dir_all(p.path("lib")).unwrap();
    expect_batch_containing(&w, "lib/_macros.tera");
    p.write("lib/_macros.tera", "y");
    expect_batch_containing(&w, "lib/_macros.tera");
    p.write("lib/_macros.tera", "z");
    expect_batch(&w, &["lib/_macros.tera"]);
}

#[test]
fn the_watched_set_follows_gitignore_changes() {
    let p = Project::new();
    p.write(".gitignore", "gen/\n");
    p.write("gen/a.clnrm.toml", "x");
    let w = p.watch(100);
    p.write("gen/a.clnrm.toml", "y");
    assert_quiet(&w, 100);

    p.write(".gitignore", "*.log\n");
    expect_batch(&w, &[".gitignore"]);
    p.write("gen/a.clnrm.toml", "z");
    expect_batch(&w, &["gen/a.clnrm.toml"]);

    p.write(".gitignore", "gen/\n");
    expect_batch(&w, &[".gitignore"]);
    p.write("gen/a.clnrm.toml", "again");
    assert_quiet(&w, 100);
}

#[test]
fn a_constant_stream_of_events_is_released_by_the_cap() {
    let p = Project::new();
    let w = p.watch(300); // cap: 4 × 300 ms
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let stop = Arc::clone(&stop);
        let file = p.path("a.clnrm.toml");
        std::thread::spawn(move || {
            let started = Instant::now();
            let mut i = 0u64;
            while !stop.load(Ordering::SeqCst) && started.elapsed() < Duration::from_secs(20) {
                fs::write(&file, format!("{i}")).unwrap();
                i += 1;
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };
    let batch = w.recv_timeout(PATIENCE);
    let still_writing = !writer.is_finished();
    stop.store(true, Ordering::SeqCst);
    writer.join().unwrap();
    let batch = batch.expect("a batch while events keep coming");
    assert!(still_writing, "the batch waited for the stream to end");
    assert_eq!(batch.paths, set(&["a.clnrm.toml"]));
    let waited = batch.debounce_time();
    assert!(
        waited >= Duration::from_millis(1200),
        "released after {waited:?}"
    );
}

#[test]
fn watching_one_file_ignores_its_siblings_but_not_the_project_file() {
    let p = Project::new();
    p.write("t/a.clnrm.toml", "x");
    p.write("t/b.clnrm.toml", "x");
    let w = p.watch_paths(&["t/a.clnrm.toml"], 100);
    p.write("t/b.clnrm.toml", "y");
    p.write("elsewhere.clnrm.toml", "y");
    assert_quiet(&w, 100);
    p.write("t/a.clnrm.toml", "y");
    p.write("cleanroom.toml", "[vars]\n");
    expect_batch(&w, &["cleanroom.toml", "t/a.clnrm.toml"]);
}

#[test]
fn starting_on_a_missing_path_is_an_error() {
    let p = Project::new();
    let err = Watcher::start(p.root(), &[PathBuf::from("nope")], WatchOptions::default())
        .expect_err("a missing path");
    assert!(err.to_string().contains("nope"), "{err}");
}

#[test]
fn a_moved_folder_reports_the_old_place_and_the_new_files() {
    let p = Project::new();
    p.write("t/a.clnrm.toml", "x");
    let w = p.watch(100);
    p.rename("t", "u");
    expect_batch(&w, &["t", "u/a.clnrm.toml"]);
    // Events inside the moved folder carry its new name.
    p.write("u/a.clnrm.toml", "y");
    expect_batch(&w, &["u/a.clnrm.toml"]);
}

#[test]
fn added_paths_are_watched_from_when_add_path_returns() {
    let p = Project::new();
    p.write("tests/a.clnrm.toml", "x");
    p.write("lib/_macros.tera", "x");
    p.write("lib/deep/_more.tera", "x");
    let w = p.watch_paths(&["tests"], 100);
    p.write("lib/_macros.tera", "y");
    assert_quiet(&w, 100);
    w.add_path(Path::new("lib")).unwrap();
    p.write("lib/deep/_more.tera", "y");
    expect_batch(&w, &["lib/deep/_more.tera"]);
    assert!(w.add_path(Path::new("missing")).is_err());
    let outside = tempfile::tempdir().unwrap();
    let err = w.add_path(outside.path()).unwrap_err();
    assert!(
        err.to_string().contains("outside the project root"),
        "{err}"
    );
}

#[test]
fn a_missing_file_added_is_reported_when_it_appears() {
    let p = Project::new();
    p.write("tests/a.clnrm.toml", "x");
    p.write("lib/_macros.tera", "x");
    let w = p.watch_paths(&["tests"], 100);
    // A render looked for `lib/_http.tera` and found nothing.
    w.add_missing_file(Path::new("lib/_http.tera")).unwrap();
    p.write("lib/_macros.tera", "y");
    assert_quiet(&w, 100);
    p.write("lib/_http.tera", "new");
    expect_batch(&w, &["lib/_http.tera"]);
    assert!(
        w.add_missing_file(Path::new("nowhere/_x.tera")).is_err(),
        "its folder must exist"
    );
}
