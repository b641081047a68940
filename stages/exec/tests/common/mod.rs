//! Helpers of the exec stage's container tests (one copy, used by every test
//! file here, and by the pool's tests at the workspace root through `#[path]`):
//! the engine or a skip, configs built in code, and a run that checks nothing of
//! its session is left. Not a test file itself.

#![allow(dead_code)] // Each test file uses a different part.

use std::path::Path;

use clnrm_config::{Command, HealthCheck, ServiceConfig, StepConfig, TestConfig};
use clnrm_exec::{
    run_test, Backend, DockerBackend, ManagedObject, Session, TestOutcome, TestReport, TestRun,
    LABEL_SESSION,
};
use clnrm_plan::{plan, PlanInput, TestPlan};
use clnrm_test_support::skip_container_test;

pub const IMAGE: &str = "clnrm-fixture/busybox:latest";

/// The engine, or `None` (with a notice) when it or the fixture image is missing outside CI.
pub async fn engine(test: &str) -> Option<DockerBackend> {
    let backend = match DockerBackend::connect().await {
        Ok(b) => b,
        Err(e) => {
            skip_container_test(test, &e.to_string());
            return None;
        }
    };
    let image = clnrm_plan::ImageSource::Reference {
        reference: IMAGE.into(),
    };
    match backend.ensure_image(&image, Path::new(".")).await {
        Ok(_) => Some(backend),
        Err(e) => {
            skip_container_test(test, &format!("{e} (run fixtures/images/build.sh)"));
            None
        }
    }
}

pub fn argv(a: &[&str]) -> Command {
    Command::Argv(a.iter().map(|s| s.to_string()).collect())
}

pub fn sh(s: &str) -> Command {
    Command::Shell(s.into())
}

pub fn step(name: &str, command: Command) -> StepConfig {
    StepConfig::new(name, command)
}

pub fn on(service: &str, s: StepConfig) -> StepConfig {
    s.in_service(service)
}

pub fn service(name: &str) -> ServiceConfig {
    ServiceConfig::from_image(name, IMAGE)
}

/// Healthy once an HTTP server in the service's own container answers on port 8080.
pub fn httpd_answers_on_8080() -> HealthCheck {
    HealthCheck {
        cmd: argv(&[
            "timeout",
            "2",
            "wget",
            "-q",
            "-O-",
            "http://127.0.0.1:8080/",
        ]),
        interval_ms: 100,
        timeout_ms: 3000,
        retries: 50,
    }
}

pub fn test(name: &str, services: Vec<ServiceConfig>, steps: Vec<StepConfig>) -> TestConfig {
    TestConfig::new(name, services, steps)
}

pub fn planned(t: TestConfig) -> TestPlan {
    plan(&PlanInput {
        test: t,
        default_image: IMAGE.into(),
        default_step_timeout_ms: 30_000,
        test_dir: "tests".into(),
    })
    .expect("plan")
}

/// Runs a plan in a fresh session and checks that nothing of the session is left.
pub async fn run(backend: &DockerBackend, root: &Path, plan: &TestPlan) -> TestReport {
    let session = Session::current();
    let report = run_test(TestRun {
        backend,
        session: &session,
        root,
        plan,
        images: None,
    })
    .await;
    assert_clean(backend, &session).await;
    assert!(
        report.teardown_errors.is_empty(),
        "{:?}",
        report.teardown_errors
    );
    report
}

pub async fn assert_clean(backend: &DockerBackend, session: &Session) {
    let left = session_objects(backend, session).await;
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// The engine's objects (containers, networks, volumes) labelled with `session`.
pub async fn session_objects(backend: &DockerBackend, session: &Session) -> Vec<ManagedObject> {
    backend
        .list_managed()
        .await
        .unwrap()
        .into_iter()
        .filter(|o| o.labels.get(LABEL_SESSION) == Some(&session.id))
        .collect()
}

/// A session whose process has exited (as if it was SIGKILLed).
pub fn dead_session() -> Session {
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let dead_pid = child.id();
    child.wait().unwrap();
    let mut dead = Session::current();
    dead.pid = dead_pid;
    dead.pid_start = None;
    dead.id = format!("{dead_pid}-deadbeef");
    dead
}

pub fn here() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

pub fn expect_pass(report: &TestReport) {
    assert_eq!(report.outcome, TestOutcome::Pass, "{report:#?}");
}

/// The test was cancelled before it finished.
pub fn expect_interrupted(report: &TestReport) {
    assert_eq!(
        report.outcome,
        TestOutcome::Error {
            message: "interrupted".into()
        },
        "{report:#?}"
    );
}
