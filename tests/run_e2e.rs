//! `clnrm run` against the real Docker engine, as a user meets it. The tests here run
//! one at a time (they check that no managed container is left anywhere).

mod common;

use std::path::Path;
use std::process::Stdio;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::{
    docker_now, docker_ready, json_events, managed_containers, repo,
    sessions_of_containers_created_since, TestProject, IMAGE,
};

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// With the engine up: this test's turn (see `serial`) and a project with an empty
/// `cleanroom.toml`. `None` (the test is skipped) without an engine.
fn engine_project() -> Option<(std::sync::MutexGuard<'static, ()>, TestProject)> {
    if !docker_ready() {
        return None;
    }
    let turn = serial();
    let project = TestProject::new();
    project.write("cleanroom.toml", "");
    Some((turn, project))
}

/// Managed containers whose clnrm process is gone: left behind. The engine is shared
/// with whatever else runs on the machine, so containers of live clnrm processes (other
/// runs in progress), ones clnrm did not make (no `clnrm.pid`) and pool containers
/// (kept after their process on purpose; the `--reuse` test checks its own) are not
/// counted.
fn left_behind() -> Vec<String> {
    let out = std::process::Command::new("docker")
        .args([
            "ps",
            "-a",
            "--filter",
            "label=clnrm.managed=true",
            "--format",
            "{{.ID}} {{.Label \"clnrm.pool\"}} {{.Label \"clnrm.pid\"}}",
        ])
        .output()
        .expect("docker ps");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| {
            let mut fields = line.split(' ');
            let (id, pool, pid) = (fields.next()?, fields.next()?, fields.next()?);
            let owner_gone = !pid.is_empty() && !Path::new(&format!("/proc/{pid}")).exists();
            (pool.is_empty() && owner_gone).then(|| id.to_string())
        })
        .collect()
}

#[track_caller]
fn assert_no_managed_containers() {
    let left = left_behind();
    assert!(left.is_empty(), "managed containers left behind: {left:?}");
}

fn test_file(name: &str, body: &str) -> String {
    format!("[meta]\nname = \"{name}\"\nversion = \"1\"\n\n[service.box]\nimage = \"{IMAGE}\"\n\n{body}")
}

const FAILING_REGEX: &str = r#"
[[steps]]
name = "greet"
command = ["echo", "hello world"]
expected_output_regex = "^goodbye"
"#;

#[test]
fn the_example_passes_then_is_all_cached_without_starting_a_container() {
    if !docker_ready() {
        return;
    }
    let _serial = serial();
    let cache = tempfile::tempdir().unwrap();
    let run = |extra: &[&str]| {
        let mut args = vec!["run", "fixtures/example", "--format", "json"];
        args.extend_from_slice(extra);
        common::Run(
            common::clnrm_command()
                .current_dir(repo())
                .env("CLNRM_CACHE_DIR", cache.path())
                .args(&args)
                .output()
                .unwrap(),
        )
    };
    let first = run(&[]);
    first.expect_code(0);
    let events = json_events(&first.stdout());
    let finished: Vec<_> = events
        .iter()
        .filter(|e| e["event"] == "test_finished")
        .collect();
    assert_eq!(finished.len(), 6);
    assert!(finished
        .iter()
        .all(|e| e["status"] == "pass" && e["cached"] == false));
    // State written by a step is read by the next; exit code 3 expected and got.
    let steps: Vec<_> = events
        .iter()
        .filter(|e| e["event"] == "step_finished")
        .collect();
    assert!(steps
        .iter()
        .any(|e| e["step"] == "exit_code" && e["exit_code"] == 3 && e["status"] == "pass"));
    assert!(steps
        .iter()
        .any(|e| e["step"] == "fetch" && e["service"] == "client" && e["status"] == "pass"));
    let done = events.last().unwrap();
    assert_eq!(
        (done["event"].as_str(), done["passed"].as_u64()),
        (Some("run_finished"), Some(6))
    );
    assert_no_managed_containers();

    let since = docker_now();
    let second = run(&[]);
    second.expect_code(0);
    let events = json_events(&second.stdout());
    let finished: Vec<_> = events
        .iter()
        .filter(|e| e["event"] == "test_finished")
        .collect();
    assert_eq!(finished.len(), 6);
    assert!(
        finished.iter().all(|e| e["cached"] == true),
        "{}",
        second.stdout()
    );
    assert_eq!(events.last().unwrap()["cached"], 6);
    assert_eq!(
        sessions_of_containers_created_since(&since).len(),
        0,
        "a cached run starts no container"
    );
}

#[test]
fn failures_and_errors_are_reported_with_what_went_wrong() {
    let Some((_serial, project)) = engine_project() else {
        return;
    };
    project.write("regex.clnrm.toml", &test_file("regex", FAILING_REGEX));
    project.write(
        "timeout.clnrm.toml",
        &test_file(
            "timeout",
            "[[steps]]\nname = \"slow\"\ncommand = [\"sleep\", \"60\"]\ntimeout = \"1s\"\n",
        ),
    );
    project.write(
        "missing_image.clnrm.toml",
        "[meta]\nname = \"missing\"\nversion = \"1\"\n[service.x]\nimage = \"clnrm-test/does-not-exist:1\"\n[[steps]]\nname = \"s\"\ncommand = [\"true\"]\n",
    );
    project.write(
        "continue.clnrm.toml",
        &test_file(
            "continue",
            "[[steps]]\nname = \"first\"\ncommand = [\"false\"]\ncontinue_on_failure = true\n\n[[steps]]\nname = \"second\"\ncommand = [\"sh\", \"-c\", \"echo still ran\"]\n",
        ),
    );
    let started = Instant::now();
    let run = project.clnrm(&["run", "--junit", "report.xml", "-j", "4"]);
    let elapsed = started.elapsed();
    run.expect_code(1)
        .expect_contains("FAIL regex.clnrm.toml (regex)")
        .expect_contains("step `greet` failed")
        .expect_contains("expected: ")
        .expect_contains("^goodbye")
        .expect_contains("hello world")
        .expect_contains("FAIL timeout.clnrm.toml (timeout)")
        .expect_contains("timed out after 1s")
        .expect_contains("ERROR missing_image.clnrm.toml (missing)")
        .expect_contains("clnrm-test/does-not-exist:1")
        .expect_contains("FAIL continue.clnrm.toml (continue)")
        .expect_contains("0 passed, 3 failed, 1 errors, 0 cached");
    assert!(
        elapsed < Duration::from_secs(30),
        "a 1 s timeout does not wait for sleep 60"
    );
    assert_no_managed_containers();

    // The JUnit file parses and its counts match the run.
    let xml = std::fs::read_to_string(project.path("report.xml")).unwrap();
    let doc = roxmltree::Document::parse(&xml).expect("JUnit is XML");
    let suites = doc.root_element();
    assert_eq!(suites.attribute("tests"), Some("4"));
    assert_eq!(suites.attribute("failures"), Some("3"));
    assert_eq!(suites.attribute("errors"), Some("1"));
    let failure = doc
        .descendants()
        .find(|n| n.has_tag_name("failure"))
        .unwrap();
    assert!(failure.text().unwrap_or_default().contains("expected:"));

    // Failures and errors are never cached: a second run runs them again.
    let again = project.clnrm(&["run", "--format", "json", "-j", "4"]);
    let events = json_events(&again.stdout());
    let done = events.last().unwrap();
    assert_eq!(
        (
            done["failed"].as_u64(),
            done["errors"].as_u64(),
            done["cached"].as_u64()
        ),
        (Some(3), Some(1), Some(0))
    );
    let failed = events
        .iter()
        .find(|e| e["event"] == "test_finished" && e["test"] == "regex.clnrm.toml")
        .unwrap();
    assert_eq!(failed["status"], "fail");
    assert!(failed["expected"].as_str().unwrap().contains("goodbye"));
    assert!(failed["actual"].is_string());
}

#[test]
fn a_test_naming_an_unknown_service_never_starts_a_container() {
    let Some((_serial, project)) = engine_project() else {
        return;
    };
    project.write(
        "t.clnrm.toml",
        &test_file(
            "unknown",
            "[[steps]]\nname = \"s\"\nservice = \"ghost\"\ncommand = [\"true\"]\n",
        ),
    );
    let since = docker_now();
    project
        .clnrm(&["run"])
        .expect_code(1)
        .expect_contains("ERROR t.clnrm.toml")
        .expect_contains("steps[0].service");
    assert_eq!(sessions_of_containers_created_since(&since).len(), 0);
}

#[test]
fn editing_one_test_reruns_it_alone_and_a_new_image_reruns_its_users() {
    if !docker_ready() {
        return;
    }
    let _serial = serial();
    // A tag of our own, so that pointing it at a new image changes no other test.
    let tag = format!("clnrm-test/retag-{}:latest", std::process::id());
    let tag_image = |label: &str| {
        let mut child = std::process::Command::new("docker")
            .args(["build", "-q", "-t", &tag, "-"])
            .env("DOCKER_BUILDKIT", "0")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        use std::io::Write;
        writeln!(
            child.stdin.take().unwrap(),
            "FROM {IMAGE}\nLABEL clnrm.test.variant={label}"
        )
        .unwrap();
        assert!(child.wait().unwrap().success());
    };
    tag_image("one");
    let project = TestProject::new();
    project.write("cleanroom.toml", "");
    project.write(
        "a.clnrm.toml",
        &test_file(
            "a",
            "[[steps]]\nname = \"s\"\ncommand = [\"echo\", \"a\"]\n",
        ),
    );
    project.write(
        "b.clnrm.toml",
        &test_file(
            "b",
            "[[steps]]\nname = \"s\"\ncommand = [\"echo\", \"b\"]\n",
        ),
    );
    project.write(
        "c.clnrm.toml",
        &format!("[meta]\nname = \"c\"\nversion = \"1\"\n[service.box]\nimage = \"{tag}\"\n[[steps]]\nname = \"s\"\ncommand = [\"true\"]\n"),
    );
    project.clnrm(&["run"]).expect_code(0);

    let ran = |run: &common::Run| -> Vec<String> {
        let mut ran: Vec<String> = json_events(&run.stdout())
            .iter()
            .filter(|e| e["event"] == "test_finished" && e["cached"] == false)
            .map(|e| e["test"].as_str().unwrap().to_string())
            .collect();
        ran.sort();
        ran
    };
    project.write(
        "a.clnrm.toml",
        &test_file(
            "a",
            "[[steps]]\nname = \"s\"\ncommand = [\"echo\", \"A\"]\n",
        ),
    );
    let run = project.clnrm(&["run", "--format", "json"]);
    run.expect_code(0);
    assert_eq!(ran(&run), ["a.clnrm.toml"]);

    tag_image("two");
    let dry = project.clnrm(&["run", "--dry-run"]);
    dry.expect_code(0)
        .expect_contains("would run c.clnrm.toml (c): image of `box` changed");
    let run = project.clnrm(&["run", "--format", "json"]);
    run.expect_code(0);
    assert_eq!(ran(&run), ["c.clnrm.toml"]);
    let _ = std::process::Command::new("docker")
        .args(["rmi", "-f", &tag])
        .output();
}

#[test]
fn interrupted_and_killed_runs_leave_no_container() {
    let Some((_serial, project)) = engine_project() else {
        return;
    };
    project.write(
        "slow.clnrm.toml",
        &test_file(
            "slow",
            "[[steps]]\nname = \"wait\"\ncommand = [\"sleep\", \"60\"]\n",
        ),
    );
    for signal in [libc::SIGINT, libc::SIGKILL] {
        let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("clnrm"))
            .current_dir(project.root())
            .env("CLNRM_CACHE_DIR", project.path(".clnrm/cache"))
            .args(["run"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let its_containers = format!("clnrm.pid={}", child.id());
        // Wait until its container runs.
        let deadline = Instant::now() + Duration::from_secs(30);
        while managed_containers(&its_containers).is_empty() {
            assert!(
                Instant::now() < deadline,
                "the test's container never started"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        std::thread::sleep(Duration::from_millis(300));
        unsafe { libc::kill(child.id() as i32, signal) };
        let status = child.wait().unwrap();
        if signal == libc::SIGINT {
            assert_eq!(status.code(), Some(1), "an interrupted run is not a pass");
            assert_no_managed_containers();
        } else {
            assert!(
                !managed_containers(&its_containers).is_empty(),
                "SIGKILL leaves it behind"
            );
            // The next clnrm removes what the killed one left.
            project.write(
                "slow.clnrm.toml",
                &test_file(
                    "slow",
                    "[[steps]]\nname = \"quick\"\ncommand = [\"true\"]\n",
                ),
            );
            project.clnrm(&["run"]).expect_code(0);
            assert_no_managed_containers();
        }
    }
}

#[test]
fn no_docker_engine_is_one_clear_error_before_any_test() {
    let project = TestProject::new();
    project.write("cleanroom.toml", "");
    project.write(
        "t.clnrm.toml",
        &test_file("t", "[[steps]]\nname = \"s\"\ncommand = [\"true\"]\n"),
    );
    project
        .clnrm_with(
            &["run"],
            &[("DOCKER_HOST", "unix:///nonexistent/docker.sock")],
        )
        .expect_code(2)
        .expect_contains("unix:///nonexistent/docker.sock");
}

#[test]
fn shards_split_the_tests_without_overlap() {
    let Some((_serial, project)) = engine_project() else {
        return;
    };
    for i in 0..6 {
        project.write(
            &format!("t{i}.clnrm.toml"),
            &test_file(
                &format!("t{i}"),
                "[[steps]]\nname = \"s\"\ncommand = [\"true\"]\n",
            ),
        );
    }
    let mut all = Vec::new();
    for shard in ["1/2", "2/2"] {
        let run = project.clnrm(&["run", "--dry-run", "--shard", shard, "--format", "json"]);
        run.expect_code(0);
        all.extend(
            json_events(&run.stdout())
                .iter()
                .filter(|e| e["event"] == "test_planned")
                .map(|e| e["test"].as_str().unwrap().to_string()),
        );
    }
    all.sort();
    assert_eq!(all.len(), 6);
    all.dedup();
    assert_eq!(all.len(), 6, "no test in two shards");
}

#[test]
fn reuse_keeps_containers_warm_and_cache_gc_removes_leftovers_and_unused_builds() {
    let Some((_serial, project)) = engine_project() else {
        return;
    };
    // Warm containers kept between runs are what this test is about: `run --reuse`
    // gives fresh ones per test unless the project asks to reuse them.
    project.write("cleanroom.toml", "[dev]\nisolation = \"reuse\"\n");
    project.write(
        "ctx/Dockerfile",
        &format!("FROM {IMAGE}\nCOPY marker /marker\n"),
    );
    // Unique content: a build of this context cannot exist yet.
    let unique = format!("{}-{:?}", std::process::id(), Instant::now());
    project.write("ctx/marker", &format!("one {unique}\n"));
    project.write(
        "built.clnrm.toml",
        "[meta]\nname = \"built\"\nversion = \"1\"\n[service.b]\nbuild = { context = \"ctx\" }\n[[steps]]\nname = \"m\"\ncommand = [\"cat\", \"/marker\"]\nexpected_output_regex = \"one\"\n",
    );
    project.write(
        "warm.clnrm.toml",
        &test_file("warm", "[[steps]]\nname = \"s\"\ncommand = [\"true\"]\n"),
    );
    let key = clnrm::pool::project_key(project.root());
    let pooled = || {
        let mut ids = managed_containers(&format!("clnrm.pool={key}"));
        ids.sort();
        ids
    };
    project.clnrm(&["run", "--reuse"]).expect_code(0);
    let first = pooled();
    assert_eq!(first.len(), 2, "both tests' containers stay up");
    project.clnrm(&["run", "--reuse", "--force"]).expect_code(0);
    assert_eq!(pooled(), first, "the same containers ran the tests again");

    // A changed build context makes the old build image unused.
    let images = |prefix: &str| -> Vec<String> {
        let out = std::process::Command::new("docker")
            .args([
                "images",
                "--format",
                "{{.Repository}}:{{.Tag}}",
                "clnrm-build/*",
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.starts_with(prefix))
            .map(str::to_string)
            .collect()
    };
    let before: Vec<String> = images("clnrm-build/");
    // The old build's record ages past the --max-age gc is given below; the new one does not.
    std::thread::sleep(Duration::from_secs(3));
    let rebuilt_at = Instant::now();
    project.write("ctx/marker", &format!("two {unique}\n"));
    project.write(
        "built.clnrm.toml",
        "[meta]\nname = \"built\"\nversion = \"1\"\n[service.b]\nbuild = { context = \"ctx\" }\n[[steps]]\nname = \"m\"\ncommand = [\"cat\", \"/marker\"]\nexpected_output_regex = \"two\"\n",
    );
    project.clnrm(&["run"]).expect_code(0);
    let built_now: Vec<String> = images("clnrm-build/")
        .into_iter()
        .filter(|i| !before.contains(i))
        .collect();
    assert_eq!(built_now.len(), 1, "one new build");

    // The pool's process is gone: gc removes its containers, and the old build image
    // once its record is evicted (by age here; gc decides from the cache's records).
    let max_age = format!("{}s", rebuilt_at.elapsed().as_secs() + 1);
    let run = project.clnrm(&["cache", "gc", "--max-age", &max_age]);
    run.expect_code(0).expect_contains("leftover container(s)");
    assert!(pooled().is_empty());
    let after = images("clnrm-build/");
    assert!(
        after.contains(&built_now[0]),
        "the current build stays: {after:?}"
    );
    assert!(!run.stdout().contains("removed 0 leftover"));
    assert!(
        !run.stdout().contains(" 0 unused build image"),
        "{}",
        run.stdout()
    );
    let _ = std::process::Command::new("docker")
        .args(["rmi", "-f", &built_now[0]])
        .output();
    assert_no_managed_containers();
}

#[test]
fn init_writes_a_project_whose_first_run_passes() {
    if !docker_ready() {
        return;
    }
    let _serial = serial();
    let project = TestProject::new();
    project.clnrm(&["init", "--image", IMAGE]).expect_code(0);
    project
        .clnrm(&["run"])
        .expect_code(0)
        .expect_contains("PASS tests/hello.clnrm.toml (hello)")
        .expect_contains("1 passed, 0 failed, 0 errors, 0 cached");
    assert_no_managed_containers();
}

#[test]
fn the_failing_fixtures_fail_the_way_they_say() {
    if !docker_ready() {
        return;
    }
    let _serial = serial();
    let cache = tempfile::tempdir().unwrap();
    let run = common::Run(
        common::clnrm_command()
            .current_dir(repo())
            .env("CLNRM_CACHE_DIR", cache.path())
            .args(["run", "fixtures/failing", "--format", "json"])
            .output()
            .unwrap(),
    );
    run.expect_code(1);
    let events = json_events(&run.stdout());
    let finished = |test: &str| {
        events
            .iter()
            .find(|e| e["event"] == "test_finished" && e["test"] == test)
            .cloned()
            .unwrap_or_else(|| panic!("{test} finished: {}", run.stdout()))
    };
    let cont = finished("tests/continue.clnrm.toml");
    assert_eq!(cont["status"], "fail");
    assert_eq!(cont["failed_step"], "expected_to_fail");
    assert_eq!(cont["actual"], "exit code 4");
    // continue_on_failure: the next step ran, and passed.
    assert!(events.iter().any(|e| e["event"] == "step_finished"
        && e["step"] == "still_runs"
        && e["status"] == "pass"));
    assert_eq!(
        finished("tests/timeout.clnrm.toml")["actual"],
        "timed out after 1s"
    );
    let mismatch = finished("tests/mismatch.clnrm.toml");
    assert_eq!(mismatch["expected"], "stdout matching /^goodbye/");
    assert!(mismatch["stdout"].as_str().unwrap().contains("hello world"));
    let done = events.last().unwrap();
    assert_eq!(
        (done["passed"].as_u64(), done["failed"].as_u64()),
        (Some(0), Some(3))
    );
    assert_no_managed_containers();
}
