//! The real-service fixture project, fixtures/services, as a user runs it: PostgreSQL and
//! Redis from the local image clnrm-fixture/services (fixtures/images/build-services.sh),
//! each keeping state from one step to the next.

mod common;

use std::path::Path;

use common::{json_events, outcomes, postgres_db_service, repo, services_image_ready, Run};

/// `clnrm ARGS` in `dir` with the cache in `cache`, checked to have left no container of
/// its own behind when it ended.
fn clnrm_leaving_nothing(dir: &Path, cache: &Path, args: &[&str]) -> Run {
    let child = common::clnrm_process()
        .current_dir(dir)
        .env("CLNRM_CACHE_DIR", cache)
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start clnrm");
    let pid = child.id();
    let run = Run(child.wait_with_output().expect("clnrm ends"));
    let left = containers_of_process(pid);
    assert!(left.is_empty(), "containers left behind: {left:?}");
    run
}

/// Managed containers whose `clnrm.pid` label is `pid`: what that clnrm process left.
fn containers_of_process(pid: u32) -> Vec<String> {
    let out = std::process::Command::new("docker")
        .args([
            "ps",
            "-a",
            "--filter",
            &format!("label=clnrm.pid={pid}"),
            "--format",
            "{{.ID}} {{.Names}}",
        ])
        .output()
        .expect("docker ps");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn postgres_counts_the_rows_it_was_given_and_redis_keeps_its_counter() {
    if !services_image_ready("postgres_counts_the_rows_it_was_given_and_redis_keeps_its_counter") {
        return;
    }
    let cache = tempfile::tempdir().unwrap();
    let run = clnrm_leaving_nothing(
        &repo(),
        cache.path(),
        &["run", "fixtures/services", "--format", "json"],
    );
    run.expect_code(0);
    let stdout = run.stdout();

    let finished = outcomes(&stdout);
    let names: Vec<_> = finished.keys().map(String::as_str).collect();
    assert_eq!(names, ["postgres_rows", "redis_counter"], "{stdout}");
    for (name, (status, cached)) in &finished {
        assert_eq!(status, "pass", "{name}\n{stdout}");
        assert!(!cached, "{name} ran, it was not served from the cache");
    }

    // Every step ran in its service's container and passed: the count step saw the two
    // rows the step before inserted, GET saw what INCR made of SET's value.
    let steps: Vec<(String, String, String)> = json_events(&stdout)
        .iter()
        .filter(|e| e["event"] == "step_finished")
        .map(|e| {
            (
                e["step"].as_str().unwrap_or_default().to_string(),
                e["service"].as_str().unwrap_or_default().to_string(),
                e["status"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    for (step, service) in [
        ("create_table", "db"),
        ("insert_two_rows", "db"),
        ("count_rows", "db"),
        ("set", "cache"),
        ("incr", "cache"),
        ("get", "cache"),
    ] {
        assert!(
            steps
                .iter()
                .any(|(s, sv, status)| s == step && sv == service && status == "pass"),
            "step {step} in {service} did not pass: {steps:?}"
        );
    }
}

#[test]
fn a_wrong_count_fails_naming_the_step_and_what_postgres_answered() {
    if !services_image_ready("a_wrong_count_fails_naming_the_step_and_what_postgres_answered") {
        return;
    }
    // The fixture's PostgreSQL test, expecting three rows where two were inserted.
    let project = common::TestProject::new();
    let fixture = repo().join("fixtures/services");
    project.write(
        "cleanroom.toml",
        &std::fs::read_to_string(fixture.join("cleanroom.toml")).unwrap(),
    );
    let test = std::fs::read_to_string(fixture.join("tests/postgres.clnrm.toml")).unwrap();
    let wrong = test.replace(
        r#"expected_output_regex = "^2$""#,
        r#"expected_output_regex = "^3$""#,
    );
    assert_ne!(wrong, test, "the fixture's count step expects ^2$");
    project.write("tests/postgres.clnrm.toml", &wrong);

    let cache = project.path(".clnrm/cache");
    clnrm_leaving_nothing(project.root(), &cache, &["run", "."])
        .expect_code(1)
        .expect_contains("FAIL tests/postgres.clnrm.toml (postgres_rows)")
        .expect_contains("step `count_rows` failed")
        .expect_contains("expected: stdout matching /^3$/")
        .expect_contains("actual:   stdout: 2");
}

#[test]
fn a_step_killed_at_its_timeout_leaves_postgres_up_for_the_teardown() {
    if !services_image_ready("a_step_killed_at_its_timeout_leaves_postgres_up_for_the_teardown") {
        return;
    }
    // A step's processes are killed at its timeout; any that outlives its parent for a
    // moment is handed to the container's PID 1. PostgreSQL's postmaster takes any child
    // of its that dies by a signal for a crashed backend: it ends every connection and
    // recovers, and a table created UNLOGGED comes back empty. So the teardown reads
    // the row only if the timeout left the database alone.
    let project = common::TestProject::new();
    project.write("cleanroom.toml", "");
    project.write(
        "tests/hang.clnrm.toml",
        &format!(
            r#"[meta]
name = "hang_in_postgres"
version = "1"

{db}
[[setup]]
name = "remember"
command = ["psql", "--set=ON_ERROR_STOP=1", "--command=CREATE UNLOGGED TABLE kept (n int); INSERT INTO kept VALUES (1)"]

[[steps]]
name = "hang"
command = ["sh", "-c", "sleep 60 & sleep 60 & sleep 60"]
timeout = "1s"

[[teardown]]
name = "still_there"
command = ["sh", "-c", "until pg_isready --quiet; do sleep 0.1; done; psql --tuples-only --no-align --command='SELECT count(*) FROM kept'"]
expected_output_regex = "^1$"
"#,
            db = postgres_db_service()
        ),
    );
    let cache = project.path(".clnrm/cache");
    let run = clnrm_leaving_nothing(project.root(), &cache, &["run", "--format", "json"]);
    run.expect_code(1);
    let events = json_events(&run.stdout());
    let finished = |event: &str, key: &str, value: &str| {
        events
            .iter()
            .find(|e| e["event"] == event && e[key] == value)
            .unwrap_or_else(|| panic!("no {event} of {value}: {}", run.all()))
            .clone()
    };
    // A failure of the step, and a teardown that found the row.
    let test = finished("test_finished", "name", "hang_in_postgres");
    assert_eq!(
        (&test["status"], &test["failed_step"]),
        (&"fail".into(), &"hang".into()),
        "{}",
        run.all()
    );
    let teardown = finished("step_finished", "step", "still_there");
    assert_eq!(teardown["status"], "pass", "{}", run.all());
}
