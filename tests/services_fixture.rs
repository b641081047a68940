//! The real-service fixture project, fixtures/services, as a user runs it: PostgreSQL and
//! Redis from the local image clnrm-fixture/services (fixtures/images/build-services.sh),
//! each keeping state from one step to the next.

mod common;

use std::path::Path;

use common::{json_events, outcomes, repo, Run};

const SERVICES_IMAGE: &str = "clnrm-fixture/services:latest";

/// Whether the engine answers and the services image exists. Building it takes a minute
/// or more, so a test does not build it: outside CI a missing image is a visible skip,
/// under CI a failure that says how to build it.
fn services_image_ready(test: &str) -> bool {
    let answers = |args: &[&str]| {
        std::process::Command::new("docker")
            .args(args)
            .output()
            .is_ok_and(|out| out.status.success())
    };
    let why = if !answers(&["info", "--format", "{{.ServerVersion}}"]) {
        "no Docker engine answers".to_string()
    } else if !answers(&["image", "inspect", SERVICES_IMAGE]) {
        format!(
            "the image {SERVICES_IMAGE} is missing; build it with `sh fixtures/images/build-services.sh`"
        )
    } else {
        return true;
    };
    clnrm_test_support::skip_container_test(test, &why);
    false
}

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
