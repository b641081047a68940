//! Two `clnrm run`s on one cache directory at once, as on a CI runner with concurrent
//! jobs and `CLNRM_CACHE_DIR` set globally. The user's story: both runs' containers
//! run side by side (neither waits for the other's tests), both give the right result
//! with no word about a busy cache, and the cache keeps what both stored: each
//! project's next run is served from it. Needs the Docker engine and the fixture image.

mod common;

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use clnrm::cache::{Key, Memo, MemoOptions};
use common::{clnrm_process, docker_ready, leftovers, outcomes, Run, IMAGE};

const TESTS: usize = 8;

/// A project of [`TESTS`] one-step tests named `<who>-t<i>-<pid>`. Its first test
/// meets the other project's first test in `meet` (a folder both mount): it marks its
/// arrival and waits for the other's, so it passes only when the two runs' containers
/// run at the same time. The bound (60 s) is a correctness bound, far above the
/// seconds the two runs take side by side.
fn project(dir: &Path, who: &str, other: &str, meet: &Path) -> Vec<String> {
    let pid = std::process::id();
    std::fs::create_dir_all(dir.join("tests")).unwrap();
    std::fs::write(dir.join("cleanroom.toml"), "").unwrap();
    (0..TESTS)
        .map(|i| {
            let name = format!("{who}-t{i}-{pid}");
            let (volumes, script) = if i == 0 {
                (
                    format!(
                        "volumes = [{{ host_path = {:?}, container_path = \"/meet\" }}]\n",
                        meet.display().to_string()
                    ),
                    format!(
                        "touch /meet/{who}; n=0; until [ -e /meet/{other} ]; do \
                         n=$((n+1)); [ $n -le 600 ] || exit 3; sleep 0.1; done"
                    ),
                )
            } else {
                (String::new(), format!("test \"$(echo {who}{i})\" = {who}{i}"))
            };
            let toml = format!(
                "[meta]\nname = \"{name}\"\nversion = \"1.0\"\n\n[service.box]\nimage = \"{IMAGE}\"\n\
                 {volumes}\n[[steps]]\nname = \"check\"\nservice = \"box\"\n\
                 command = [\"sh\", \"-c\", {script:?}]\n"
            );
            std::fs::write(dir.join(format!("tests/t{i}.clnrm.toml")), toml).unwrap();
            name
        })
        .collect()
}

fn start(dir: &Path, cache: &Path, args: &[&str]) -> Child {
    clnrm_process()
        .current_dir(dir)
        .env("CLNRM_CACHE_DIR", cache)
        .args(["run", "--format", "json"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start clnrm run")
}

fn cache_lines(run: &Run) -> Vec<String> {
    run.stderr()
        .lines()
        .filter(|l| l.starts_with("warning:") && l.contains("cache"))
        .map(str::to_string)
        .collect()
}

#[test]
fn two_forced_runs_on_one_cache_run_side_by_side_and_both_are_stored() {
    if !docker_ready() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (a, b, meet, cache) = (
        tmp.path().join("a"),
        tmp.path().join("b"),
        tmp.path().join("meet"),
        tmp.path().join("shared-cache"),
    );
    std::fs::create_dir_all(&meet).unwrap();
    let names_a = project(&a, "a", "b", &meet);
    let names_b = project(&b, "b", "a", &meet);

    let runs = [
        start(&a, &cache, &["--force"]),
        start(&b, &cache, &["--force"]),
    ];
    let [run_a, run_b] = runs.map(|child| Run(child.wait_with_output().expect("run ends")));
    for (run, names) in [(&run_a, &names_a), (&run_b, &names_b)] {
        let seen = outcomes(&run.stdout());
        let expected = names
            .iter()
            .map(|n| (n.clone(), ("pass".to_string(), false)))
            .collect();
        assert_eq!(seen, expected, "{}", run.all());
        run.expect_code(0);
        assert_eq!(cache_lines(run), Vec::<String>::new(), "{}", run.stderr());
    }
    let all: Vec<&str> = names_a.iter().chain(&names_b).map(String::as_str).collect();
    assert_eq!(leftovers(&all), Vec::<String>::new());

    // The cache holds both runs' results: 16 entries, and each project's next run
    // serves every test from it but the meeting one, whose mounted folder changed.
    let stats = clnrm_process()
        .current_dir(&a)
        .env("CLNRM_CACHE_DIR", &cache)
        .args(["cache", "stats", "--json"])
        .output()
        .unwrap();
    let stats: serde_json::Value = serde_json::from_slice(&stats.stdout).unwrap();
    assert_eq!(
        stats["stages"]["result"]["entries"],
        (2 * TESTS) as u64,
        "{stats}"
    );
    for (dir, names) in [(&a, &names_a), (&b, &names_b)] {
        let run = Run(start(dir, &cache, &[]).wait_with_output().unwrap());
        run.expect_code(0);
        let seen = outcomes(&run.stdout());
        for name in &names[1..] {
            assert_eq!(seen[name], ("pass".to_string(), true), "{}", run.all());
        }
        assert_eq!(
            seen[&names[0]],
            ("pass".to_string(), false),
            "{}",
            run.all()
        );
    }
}

/// The memo underneath, in one process: a memo that released the store lets another
/// open it at once, keeps what it writes meanwhile in memory, and writes it when it
/// flushes, counting an entry that was on disk already once.
#[test]
fn a_released_memo_lets_others_in_and_writes_its_results_when_it_flushes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cache");
    let at_once = MemoOptions {
        no_read: false,
        lock_timeout: Duration::ZERO,
    };
    let key = |name: &str| Key::new("result", 1, name.as_bytes());
    let (first, warnings) = Memo::open(&dir, at_once.clone());
    assert_eq!(warnings, Vec::<String>::new());
    first.put_raw("result", &key("a"), b"A");

    // While the first holds the store, one that will not wait goes on without it.
    let (busy, warnings) = Memo::open(&dir, at_once.clone());
    assert!(!busy.is_persistent());
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("in use by another clnrm process"));
    drop(busy);

    first.release();
    assert!(first.is_persistent());
    let (second, warnings) = Memo::open(&dir, at_once.clone());
    assert_eq!(warnings, Vec::<String>::new());
    assert_eq!(second.get_raw("result", &key("a")), Some(b"A".to_vec()));
    second.put_raw("result", &key("b"), b"B");
    // Written while released and while the second holds the store: nothing waits.
    first.put_raw("result", &key("c"), b"C");
    first.put_raw("result", &key("a"), b"A2");
    drop(second);
    first.flush();
    assert_eq!(first.take_warnings(), Vec::<String>::new());

    // The first let go again after writing: a third opens at once and sees all.
    let (third, warnings) = Memo::open(&dir, at_once);
    assert_eq!(warnings, Vec::<String>::new());
    for (name, value) in [("a", "A2"), ("b", "B"), ("c", "C")] {
        assert_eq!(
            third.get_raw("result", &key(name)),
            Some(value.as_bytes().to_vec())
        );
    }
    assert_eq!(third.stats().stages["result"].entries, 3);
    drop(third);
    drop(first);
}

/// A process that finds the store held waits for it (retrying) rather than giving up,
/// and gets it as soon as the holder lets go.
#[test]
fn a_memo_waits_for_a_short_hold_and_then_has_the_store() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cache");
    let patient = MemoOptions {
        no_read: false,
        lock_timeout: Duration::from_secs(20),
    };
    let (holder, _) = Memo::open(&dir, patient.clone());
    let waiter = {
        let dir = dir.clone();
        std::thread::spawn(move || {
            let started = Instant::now();
            let (memo, warnings) = Memo::open(&dir, patient);
            (memo.is_persistent(), warnings, started.elapsed())
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    holder.release();
    let (persistent, warnings, waited) = waiter.join().unwrap();
    assert!(persistent);
    assert_eq!(warnings, Vec::<String>::new());
    assert!(waited >= Duration::from_millis(250), "{waited:?}");
}
