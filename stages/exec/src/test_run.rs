//! Driving one test: images and services up in parallel, the steps, and a
//! teardown that always happens (on failure and on cancellation too). The
//! steps themselves are in `steps`, the container lifecycle in `services`.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use clnrm_plan::{ImageSource, TestPlan};
use futures_util::future::{join_all, try_join_all};

use crate::services::{create_and_ready, sanitize, unique_suffix};
use crate::session::{LABEL_SERVICE, LABEL_SPEC, LABEL_TEST};
use crate::steps::{compile_step_regexes, steps_in, StepSink};
use crate::{
    Backend, ContainerRequest, ExecError, PhaseTimings, ResolvedImage, ServiceStart, Session,
    StepResult, TestOutcome, TestReport,
};

/// Images by service name.
pub type ResolvedImages = BTreeMap<String, ResolvedImage>;

/// What [`run_test`] needs.
#[derive(Clone, Copy)]
pub struct TestRun<'a> {
    pub backend: &'a dyn Backend,
    pub session: &'a Session,
    /// The project root: build contexts and volume paths are relative to it.
    pub root: &'a Path,
    pub plan: &'a TestPlan,
    /// Images already resolved (e.g. for the result cache key); the rest are resolved here.
    pub images: Option<&'a ResolvedImages>,
}

/// Resolves (pulls, builds) the image of every container of a plan, each distinct image once.
pub async fn resolve_images(
    backend: &dyn Backend,
    root: &Path,
    plan: &TestPlan,
) -> Result<ResolvedImages, ExecError> {
    let mut distinct: Vec<&ImageSource> = Vec::new();
    for c in &plan.containers {
        if !distinct.contains(&&c.image) {
            distinct.push(&c.image);
        }
    }
    let resolved = try_join_all(distinct.iter().map(|i| backend.ensure_image(i, root))).await?;
    Ok(plan
        .containers
        .iter()
        .map(|c| {
            let i = distinct.iter().position(|d| *d == &c.image).unwrap_or(0);
            (c.service.clone(), resolved[i].clone())
        })
        .collect())
}

/// Runs a test to the end. Containers and the network are always removed.
pub async fn run_test(run: TestRun<'_>) -> TestReport {
    run_test_until(run, std::future::pending()).await
}

/// Runs a test until it ends or `cancel` completes (Ctrl-C): a cancelled test
/// is an `error` ("interrupted"), and its containers and network are removed
/// before this returns. Should the caller drop this future instead, the
/// session's objects are still labelled: [`remove_session`](crate::remove_session)
/// removes them.
pub async fn run_test_until(run: TestRun<'_>, cancel: impl Future<Output = ()>) -> TestReport {
    let started = Instant::now();
    let resources = Resources::default();
    let mut report = TestReport {
        name: run.plan.name.clone(),
        outcome: TestOutcome::Pass,
        steps: Vec::new(),
        services: Vec::new(),
        timings: PhaseTimings::default(),
        teardown_errors: Vec::new(),
    };
    let progress = Mutex::new(Progress::default());
    let body = drive(run, &resources, &progress);
    let outcome = tokio::select! {
        outcome = body => outcome,
        () = cancel => TestOutcome::Error { message: "interrupted".into() },
    };
    let progress = progress.into_inner().unwrap_or_else(|e| e.into_inner());
    report.outcome = outcome;
    report.steps = progress.steps;
    report.services = progress.services;
    report.timings.containers_ms = progress.containers_ms;
    report.timings.execute_ms = progress.execute_ms;

    let teardown = Instant::now();
    report.teardown_errors = resources.teardown(run.backend).await;
    report.timings.teardown_ms = ms(teardown.elapsed());
    report.timings.total_ms = ms(started.elapsed());
    report
}

#[derive(Default)]
pub(crate) struct Progress {
    pub(crate) steps: Vec<StepResult>,
    pub(crate) services: Vec<ServiceStart>,
    pub(crate) containers_ms: f64,
    pub(crate) execute_ms: f64,
}

/// What a test created, so teardown finds it whatever happened.
#[derive(Default)]
struct Resources {
    network: Mutex<Option<String>>,
    containers: Mutex<Vec<String>>,
}

impl Resources {
    async fn teardown(&self, backend: &dyn Backend) -> Vec<String> {
        let containers = std::mem::take(&mut *lock(&self.containers));
        let network = lock(&self.network).take();
        let mut errors = Vec::new();
        for (id, r) in join_all(
            containers
                .iter()
                .map(|id| async move { (id, backend.remove_container(id).await) }),
        )
        .await
        {
            if let Err(e) = r {
                errors.push(format!("removing container {id}: {e}"));
            }
        }
        if let Some(net) = network {
            if let Err(e) = backend.remove_network(&net).await {
                errors.push(format!("removing network {net}: {e}"));
            }
        }
        errors
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

async fn drive(run: TestRun<'_>, resources: &Resources, progress: &Mutex<Progress>) -> TestOutcome {
    let plan = run.plan;
    // Regexes first: a bad one is an error before anything starts.
    let regexes = match compile_step_regexes(plan) {
        Ok(r) => r,
        Err(message) => return TestOutcome::Error { message },
    };
    if plan.steps.is_empty() && plan.containers.is_empty() {
        return TestOutcome::Pass;
    }

    let containers_started = Instant::now();
    let containers = match start_services(run, resources, progress).await {
        Ok(c) => c,
        Err(e) => {
            lock(progress).containers_ms = ms(containers_started.elapsed());
            return TestOutcome::Error {
                message: e.to_string(),
            };
        }
    };
    lock(progress).containers_ms = ms(containers_started.elapsed());

    let execute_started = Instant::now();
    let outcome = steps_in(
        run.backend,
        plan,
        &containers,
        &regexes,
        &StepSink::Progress(progress),
    )
    .await;
    lock(progress).execute_ms = ms(execute_started.elapsed());
    outcome
}

/// Starts every container of the plan in parallel (one network for the test)
/// and waits until each is ready. Returns container IDs by service.
async fn start_services(
    run: TestRun<'_>,
    resources: &Resources,
    progress: &Mutex<Progress>,
) -> Result<BTreeMap<String, String>, ExecError> {
    let plan = run.plan;
    if plan.containers.is_empty() {
        return Ok(BTreeMap::new());
    }
    let unique = unique_suffix();
    let net_name = format!("clnrm-{}-{unique}", run.session.id);
    let mut net_labels = run.session.labels();
    net_labels.insert(LABEL_TEST.into(), plan.name.clone());
    // Images and network at once: neither needs the other.
    let images = async {
        match run.images {
            Some(given)
                if plan
                    .containers
                    .iter()
                    .all(|c| given.contains_key(&c.service)) =>
            {
                Ok((given.clone(), 0.0))
            }
            _ => {
                let t = Instant::now();
                let images = resolve_images(run.backend, run.root, plan).await?;
                Ok((images, ms(t.elapsed())))
            }
        }
    };
    // Several services share a network of their own, where each is reachable
    // by its service name; a single service has nobody to reach.
    let private_network = plan.containers.len() > 1;
    let network = async {
        if private_network {
            let id = run.backend.create_network(&net_name, &net_labels).await?;
            *lock(&resources.network) = Some(id);
        }
        Ok::<_, ExecError>(())
    };
    let (images, network) = futures_util::join!(images, network);
    let (images, image_ms) = images?;
    network?;

    let starts = plan.containers.iter().enumerate().map(|(i, spec)| {
        let image = &images[&spec.service];
        let net_name = net_name.as_str();
        let network = private_network.then_some(net_name);
        async move {
            let mut labels = run.session.labels();
            labels.insert(LABEL_SPEC.into(), spec.hash.0.clone());
            labels.insert(LABEL_SERVICE.into(), spec.service.clone());
            labels.insert(LABEL_TEST.into(), plan.name.clone());
            let request = ContainerRequest {
                spec,
                image,
                name: format!("{net_name}-{i}-{}", sanitize(&spec.service)),
                network,
                labels,
                root: run.root,
            };
            let record = |id: &str| lock(&resources.containers).push(id.to_string());
            let started = create_and_ready(run.backend, &request, &record)
                .await
                .map_err(|(_, e)| e)?;
            lock(progress).services.push(ServiceStart {
                service: spec.service.clone(),
                container_id: started.id.clone(),
                image_id: image.id.clone(),
                spec_hash: spec.hash.0.clone(),
                ports: started.ports,
                image_ms,
                start_ms: started.start_ms,
                ready_ms: started.ready_ms,
            });
            Ok::<_, ExecError>((spec.service.clone(), started.id))
        }
    });
    let started = try_join_all(starts).await?;
    Ok(started.into_iter().collect())
}
