//! Cache faults seen from the outside: garbage in the cache directory, processes killed
//! while writing, two processes on one directory. Every run finishes with the right
//! result, says what happened to the cache in one line, and leaves a cache the next run
//! uses.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::{clnrm_process, Run, TestProject};

/// A project of `n` tests, half templates sharing a library.
fn project(n: usize) -> TestProject {
    let project = TestProject::new();
    project.write("cleanroom.toml", "[vars]\nimage = \"busybox\"\n");
    project.write(
        "lib/_m.tera",
        "{% macro step(n) -%}\n[[steps]]\nname = \"{{ n }}\"\ncommand = [\"echo\", \"{{ n }}\"]\n{%- endmacro step %}\n",
    );
    for i in 0..n {
        if i % 2 == 0 {
            project.write(
                &format!("tests/t{i}.clnrm.toml"),
                &format!("[meta]\nname = \"t{i}\"\nversion = \"1\"\n[service.s]\nimage = \"busybox\"\n[[steps]]\nname = \"s\"\ncommand = [\"true\"]\n"),
            );
        } else {
            project.write(
                &format!("tests/t{i}.clnrm.toml.tera"),
                &format!("{{% import \"lib/_m.tera\" as m %}}\n[meta]\nname = \"t{i}\"\nversion = \"1\"\n[service.s]\nimage = \"{{{{ image }}}}\"\n{{% for k in range(end=5) %}}{{{{ m::step(n=\"s\" ~ k) }}}}\n{{% endfor %}}\n"),
            );
        }
    }
    project
}

fn stats(project: &TestProject) -> serde_json::Value {
    serde_json::from_str(&project.clnrm(&["cache", "stats", "--json"]).stdout()).unwrap()
}

fn warnings(run: &Run) -> Vec<String> {
    run.stderr()
        .lines()
        .filter(|l| l.starts_with("warning:"))
        .map(str::to_string)
        .collect()
}

#[test]
fn a_cache_directory_full_of_garbage_is_moved_aside_in_one_line() {
    let project = project(6);
    let cache = project.path(".clnrm/cache");
    std::fs::create_dir_all(&cache).unwrap();
    std::fs::write(cache.join("CURRENT"), b"\x00\xffnot a database name\n").unwrap();
    std::fs::create_dir_all(cache.join("db-1")).unwrap();
    std::fs::write(cache.join("db-1/conf"), b"garbage garbage garbage").unwrap();
    std::fs::write(cache.join("db-1/db"), vec![0xab; 4096]).unwrap();
    let run = project.clnrm(&["validate"]);
    run.expect_code(0).expect_contains("6 valid, 0 invalid");
    assert_eq!(
        warnings(&run).len(),
        1,
        "one line says what happened: {}",
        run.stderr()
    );
    // The next run uses a healthy cache: all hits, no warning.
    let run = project.clnrm(&["validate", "-v"]);
    run.expect_code(0);
    assert!(warnings(&run).is_empty(), "{}", run.stderr());
    assert!(!run.stderr().contains("miss"), "all hits: {}", run.stderr());
}

#[test]
fn processes_killed_while_writing_leave_a_cache_the_next_run_uses() {
    let project = project(200);
    for round in 0..6u64 {
        let mut child = clnrm_process()
            .current_dir(project.root())
            .env("CLNRM_CACHE_DIR", project.path(".clnrm/cache"))
            .args(["validate", "--no-cache", "-q"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn clnrm");
        std::thread::sleep(Duration::from_millis(60 + 70 * round));
        unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
        let _ = child.wait();
    }
    let run = project.clnrm(&["validate", "-q"]);
    run.expect_code(0).expect_contains("200 valid, 0 invalid");
    assert!(
        warnings(&run).len() <= 1,
        "at most one line about the cache: {}",
        run.stderr()
    );
    // And after that one, the cache is healthy: all hits, silently.
    let before = stats(&project);
    let run = project.clnrm(&["validate", "-q"]);
    run.expect_code(0).expect_contains("200 valid, 0 invalid");
    assert!(warnings(&run).is_empty(), "{}", run.stderr());
    let after = stats(&project);
    let misses = |s: &serde_json::Value| s["stages"]["parse"]["misses"].as_u64().unwrap_or(0);
    assert_eq!(
        misses(&after),
        misses(&before),
        "no parse misses on a healthy cache"
    );
}

#[test]
fn two_processes_on_one_cache_both_finish_correctly() {
    let project = project(400);
    let spawn = |timeout: &str| {
        clnrm_process()
            .current_dir(project.root())
            .env("CLNRM_CACHE_DIR", project.path(".clnrm/cache"))
            .env("CLNRM_CACHE_LOCK_TIMEOUT", timeout)
            .args(["validate", "--no-cache", "-q"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn clnrm")
    };
    // The second gives up waiting at once, so the two really overlap.
    let first = spawn("10");
    std::thread::sleep(Duration::from_millis(100));
    let second = spawn("0");
    let first = Run(first.wait_with_output().unwrap());
    let second = Run(second.wait_with_output().unwrap());
    for run in [&first, &second] {
        run.expect_code(0).expect_contains("400 valid, 0 invalid");
    }
    let said: Vec<String> = warnings(&first)
        .into_iter()
        .chain(warnings(&second))
        .collect();
    eprintln!("cache lines: {said:?}");
    assert!(said.len() <= 1, "{said:?}");
    if let Some(line) = said.first() {
        assert!(line.contains("in use by another clnrm process"), "{line}");
    }
    // The next run has the cache to itself: all hits.
    let run = project.clnrm(&["validate", "-q", "-v"]);
    run.expect_code(0);
    assert!(!run.stderr().contains("miss"), "{}", run.stderr());
}
