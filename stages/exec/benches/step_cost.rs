//! What one step costs on a warm container, and whose time it is (issue 10):
//! a 10-step test runs again and again in one started (pooled) container,
//! alternately by exec and through the container's persistent step runner,
//! and every exec step's time is split into the engine's API calls (timed by
//! the backend) and clnrm's own share. Measured in the same run, for
//! comparison: the bare Engine API exec round trip (create, start attached,
//! read to the end, inspect) through bollard.
//!
//!     cargo bench -p clnrm-exec --bench step_cost
//!
//! Needs the Docker engine and the fixture image (fixtures/images/build.sh);
//! without them it says so and measures nothing. Not a pass/fail check: it
//! prints figures (medians over many steps) for people and the README.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use clnrm_exec::{
    resolve_images, run_steps, start_service, Backend, ContainerRequest, ContainerStarted,
    ContainerStatus, DockerBackend, EngineInfo, ExecError, ExecOutput, ExecPhases, ExecRequest,
    ManagedObject, ResolvedImage, ServiceToStart, Session, StepResult, LABEL_POOL,
};
use clnrm_plan::{ImageSource, TestPlan};
use futures_util::future::BoxFuture;
use futures_util::{FutureExt, StreamExt};
use testcontainers::bollard::exec::{CreateExecOptions, StartExecResults};

#[path = "../tests/common/mod.rs"]
mod common;

const STEPS: usize = 10;
const RUNS: usize = 30;

#[tokio::main]
async fn main() {
    let Some(backend) = common::engine("step_cost bench").await else {
        return;
    };
    let plan = common::planned(common::test(
        "ten steps",
        vec![],
        (0..STEPS)
            .map(|i| common::step(&format!("step {i}"), common::argv(&["echo", "step"])))
            .collect(),
    ));
    let session = Session::current();
    let images = resolve_images(&backend, Path::new("."), &plan)
        .await
        .expect("fixture image");
    let spec = &plan.containers[0];
    let service = ServiceToStart {
        session: &session,
        root: Path::new("."),
        spec,
        image: &images[&spec.service],
        network: None,
        // Pooled, as `clnrm dev` keeps it: its steps may use a step runner.
        labels: BTreeMap::from([(LABEL_POOL.to_string(), "step-cost-bench".to_string())]),
        extra_env: BTreeMap::new(),
        extra_hosts: Vec::new(),
    };
    let started = start_service(&backend, service, &|_| {})
        .await
        .expect("start the warm container");
    let figures = measure(&backend, &plan, &started.id).await;
    backend
        .remove_container(&started.id)
        .await
        .expect("remove the bench container");
    figures.print();
}

struct Figures {
    step: Vec<f64>,
    engine: Vec<f64>,
    own: Vec<f64>,
    calls: Vec<f64>,
    rerun: Vec<f64>,
    bare_exec: Vec<f64>,
    runner_step: Vec<f64>,
    runner_rerun: Vec<f64>,
}

async fn measure(backend: &DockerBackend, plan: &TestPlan, container: &str) -> Figures {
    let exec_only = backend.without_step_runner();
    let recording = Recording {
        inner: &exec_only,
        phases: Mutex::default(),
    };
    let through_runner = Recording {
        inner: backend,
        phases: Mutex::default(),
    };
    let containers = BTreeMap::from([(plan.containers[0].service.clone(), container.to_string())]);
    let mut figures = Figures {
        step: Vec::new(),
        engine: Vec::new(),
        own: Vec::new(),
        calls: Vec::new(),
        rerun: Vec::new(),
        bare_exec: Vec::new(),
        runner_step: Vec::new(),
        runner_rerun: Vec::new(),
    };
    for run in 0..RUNS + 3 {
        let (rerun, steps, phases) = timed_run(&recording, plan, &containers).await;
        // The same test through the runner, right after (same load).
        let (runner_rerun, runner_steps, runner_phases) =
            timed_run(&through_runner, plan, &containers).await;
        let runner_calls: u32 = runner_phases.iter().map(|p| p.calls).sum();
        assert_eq!(runner_calls, 0, "the runner's steps made engine calls");
        if run < 3 {
            continue; // warm-up (and the runner's start, on its first step)
        }
        figures.rerun.push(rerun);
        figures.runner_rerun.push(runner_rerun);
        figures
            .runner_step
            .extend(runner_steps.iter().map(|s| s.duration_ms));
        assert_eq!(phases.len(), steps.len());
        for (step, phases) in steps.iter().zip(phases) {
            figures.step.push(step.duration_ms);
            figures.engine.push(ms(phases.engine()));
            figures.own.push(step.duration_ms - ms(phases.engine()));
            figures.calls.push(f64::from(phases.calls));
        }
    }
    for i in 0..RUNS * STEPS + 10 {
        let took = bare_exec(backend, container).await;
        if i >= 10 {
            figures.bare_exec.push(took);
        }
    }
    figures
}

/// One run of the plan's steps: its time (ms), the steps and each step's phases.
async fn timed_run(
    backend: &Recording<'_>,
    plan: &TestPlan,
    containers: &BTreeMap<String, String>,
) -> (f64, Vec<StepResult>, Vec<ExecPhases>) {
    backend.phases.lock().unwrap().clear();
    let t = Instant::now();
    let (outcome, steps, _) =
        run_steps(backend, plan, containers, None, std::future::pending()).await;
    let took = ms(t.elapsed());
    assert!(outcome.is_pass(), "{outcome:?}");
    let phases = backend.phases.lock().unwrap().clone();
    (took, steps, phases)
}

/// One exec as a minimal client makes it: create, start attached, read to
/// the end, inspect for the exit code.
async fn bare_exec(backend: &DockerBackend, container: &str) -> f64 {
    let docker = backend.docker();
    let t = Instant::now();
    let created = docker
        .create_exec(
            container,
            CreateExecOptions::<String> {
                cmd: Some(vec!["echo".into(), "step".into()]),
                attach_stdout: Some(true),
                attach_stderr: Some(true),
                ..Default::default()
            },
        )
        .await
        .expect("create exec");
    let StartExecResults::Attached { mut output, .. } =
        docker.start_exec(&created.id, None).await.expect("start")
    else {
        panic!("detached");
    };
    while output.next().await.is_some() {}
    let info = docker.inspect_exec(&created.id).await.expect("inspect");
    assert_eq!(info.exit_code, Some(0));
    ms(t.elapsed())
}

impl Figures {
    fn print(&self) {
        let rows = [
            ("step on a warm container (run_steps)", median(&self.step)),
            ("  of which the engine's calls", median(&self.engine)),
            ("  of which clnrm's own share", median(&self.own)),
            ("  engine calls per step", median(&self.calls)),
            ("10-step re-run (run_steps)", median(&self.rerun)),
            ("bare Engine API exec (bollard)", median(&self.bare_exec)),
            ("step through the step runner", median(&self.runner_step)),
            (
                "10-step re-run through the runner",
                median(&self.runner_rerun),
            ),
        ];
        println!(
            "median of {} steps ({RUNS} runs of a {STEPS}-step test):",
            self.step.len()
        );
        for (label, value) in rows {
            let unit = if label.ends_with("per step") {
                ""
            } else {
                " ms"
            };
            println!("{label:<40} {value:8.2}{unit}");
        }
        println!(
            "{:<40} {:8.2} ms",
            "  clnrm's own share, 90th percentile",
            percentile(&self.own, 0.9)
        );
        println!(
            "{:<40} {:8.1}x",
            "exec step / runner step",
            median(&self.step) / median(&self.runner_step)
        );
        println!(
            "{:<40} {:8.1}x",
            "10-step re-run: exec / runner",
            median(&self.rerun) / median(&self.runner_rerun)
        );
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn median(values: &[f64]) -> f64 {
    percentile(values, 0.5)
}

fn percentile(values: &[f64], p: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// The Docker backend, keeping each exec's [`ExecPhases`] for the figures.
struct Recording<'a> {
    inner: &'a DockerBackend,
    phases: Mutex<Vec<ExecPhases>>,
}

impl Backend for Recording<'_> {
    fn exec<'a>(
        &'a self,
        container: &'a str,
        request: &'a ExecRequest,
    ) -> BoxFuture<'a, Result<ExecOutput, ExecError>> {
        async move {
            let output = self.inner.exec(container, request).await?;
            self.phases.lock().unwrap().push(output.phases);
            Ok(output)
        }
        .boxed()
    }

    fn ping(&self) -> BoxFuture<'_, Result<EngineInfo, ExecError>> {
        self.inner.ping()
    }
    fn ensure_image<'a>(
        &'a self,
        image: &'a ImageSource,
        root: &'a Path,
    ) -> BoxFuture<'a, Result<ResolvedImage, ExecError>> {
        self.inner.ensure_image(image, root)
    }
    fn create_network<'a>(
        &'a self,
        name: &'a str,
        labels: &'a BTreeMap<String, String>,
    ) -> BoxFuture<'a, Result<String, ExecError>> {
        self.inner.create_network(name, labels)
    }
    fn create_container<'a>(
        &'a self,
        request: &'a ContainerRequest<'a>,
    ) -> BoxFuture<'a, Result<String, ExecError>> {
        self.inner.create_container(request)
    }
    fn start_container<'a>(
        &'a self,
        id: &'a str,
    ) -> BoxFuture<'a, Result<ContainerStarted, ExecError>> {
        self.inner.start_container(id)
    }
    fn container_status<'a>(
        &'a self,
        id: &'a str,
    ) -> BoxFuture<'a, Result<ContainerStatus, ExecError>> {
        self.inner.container_status(id)
    }
    fn container_logs<'a>(
        &'a self,
        id: &'a str,
        lines: usize,
    ) -> BoxFuture<'a, Result<String, ExecError>> {
        self.inner.container_logs(id, lines)
    }
    fn remove_container<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), ExecError>> {
        self.inner.remove_container(id)
    }
    fn remove_network<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), ExecError>> {
        self.inner.remove_network(id)
    }
    fn list_managed(&self) -> BoxFuture<'_, Result<Vec<ManagedObject>, ExecError>> {
        self.inner.list_managed()
    }
    fn remove_image<'a>(&'a self, reference: &'a str) -> BoxFuture<'a, Result<(), ExecError>> {
        self.inner.remove_image(reference)
    }
    fn list_build_images(&self) -> BoxFuture<'_, Result<Vec<(String, String)>, ExecError>> {
        self.inner.list_build_images()
    }
}
