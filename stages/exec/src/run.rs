//! Running one test: services up in parallel, readiness, steps in order,
//! assertions, and teardown that always happens.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use clnrm_plan::{ContainerSpec, ImageSource, PlannedHealthCheck, PlannedStep, TestPlan};
use futures_util::future::{join_all, try_join_all};
use regex::{Regex, RegexBuilder};
use serde::{Deserialize, Serialize};

use crate::session::{LABEL_SERVICE, LABEL_SPEC, LABEL_TEST};
use crate::{
    Backend, ContainerRequest, ExecError, ExecOutput, ExecRequest, ResolvedImage, ServiceAdditions,
    Session, SpanCollector,
};

/// Images by service name.
pub type ResolvedImages = BTreeMap<String, ResolvedImage>;

/// The outcome of a test (SPEC §5).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum TestOutcome {
    Pass,
    /// An assertion did not hold: the first failing step.
    Fail(StepFailure),
    /// The test could not be run (image missing, engine error, service not ready, ...).
    Error {
        message: String,
    },
}

impl TestOutcome {
    pub fn is_pass(&self) -> bool {
        matches!(self, TestOutcome::Pass)
    }
}

/// Why a step failed, as shown to the user.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct StepFailure {
    pub step: String,
    pub service: String,
    pub expected: String,
    pub actual: String,
    /// The last lines of the step's output.
    pub stdout: String,
    pub stderr: String,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    Pass,
    Fail,
}

/// Expected vs actual for one failed assertion.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Mismatch {
    pub expected: String,
    pub actual: String,
}

/// What one step did.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StepResult {
    pub name: String,
    pub service: String,
    pub status: StepStatus,
    pub exit_code: Option<i64>,
    pub timed_out: bool,
    pub duration_ms: f64,
    /// Set when the step failed.
    pub failure: Option<Mismatch>,
    /// The last lines of its output.
    pub stdout: String,
    pub stderr: String,
    /// It failed, and the test went on because of `continue_on_failure`.
    pub continued: bool,
}

/// How a service came up.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ServiceStart {
    pub service: String,
    pub container_id: String,
    pub image_id: String,
    pub spec_hash: String,
    /// Container port → host port.
    pub ports: BTreeMap<u16, u16>,
    pub image_ms: f64,
    pub start_ms: f64,
    /// Health check, 0 without one.
    pub ready_ms: f64,
}

/// Where a test's time went, in milliseconds.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct PhaseTimings {
    /// Network, images, containers started and ready.
    pub containers_ms: f64,
    /// All steps.
    pub execute_ms: f64,
    /// Removing containers and the network.
    pub teardown_ms: f64,
    pub total_ms: f64,
}

/// The result of running a test.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TestReport {
    pub name: String,
    pub outcome: TestOutcome,
    /// Steps that ran, in order.
    pub steps: Vec<StepResult>,
    pub services: Vec<ServiceStart>,
    pub timings: PhaseTimings,
    /// Cleanup problems (the outcome stands; leftovers are reaped later).
    pub teardown_errors: Vec<String>,
}

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
    run_test_collecting(run, None, cancel).await
}

/// [`run_test_until`], with a [`SpanCollector`] receiving the test's spans: the test then
/// always gets a network of its own, whose gateway the collector listens on.
pub async fn run_test_collecting(
    run: TestRun<'_>,
    collector: Option<&dyn SpanCollector>,
    cancel: impl Future<Output = ()>,
) -> TestReport {
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
    let body = drive(run, collector, &resources, &progress);
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
struct Progress {
    steps: Vec<StepResult>,
    services: Vec<ServiceStart>,
    containers_ms: f64,
    execute_ms: f64,
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

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

async fn drive(
    run: TestRun<'_>,
    collector: Option<&dyn SpanCollector>,
    resources: &Resources,
    progress: &Mutex<Progress>,
) -> TestOutcome {
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
    let containers = match start_services(run, collector, resources, progress).await {
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
        collector,
    )
    .await;
    lock(progress).execute_ms = ms(execute_started.elapsed());
    if let (Some(collector), TestOutcome::Pass) = (collector, &outcome) {
        collector.after_steps().await;
    }
    outcome
}

/// Where [`steps_in`] records each finished step, so a cancelled run still reports them.
enum StepSink<'a> {
    Progress(&'a Mutex<Progress>),
    Steps(&'a Mutex<Vec<StepResult>>),
}

impl StepSink<'_> {
    fn push(&self, result: StepResult) {
        match self {
            StepSink::Progress(p) => lock(p).steps.push(result),
            StepSink::Steps(s) => lock(s).push(result),
        }
    }
}

type StepRegexes = Vec<(Option<Regex>, Option<Regex>)>;

/// Every step's regexes, compiled; the first bad one as an error message naming its key path.
fn compile_step_regexes(plan: &TestPlan) -> Result<StepRegexes, String> {
    let mut regexes = Vec::with_capacity(plan.steps.len());
    for step in &plan.steps {
        let compile = |what: &str, re: &Option<String>| -> Result<Option<Regex>, String> {
            re.as_deref()
                .map(compile_regex)
                .transpose()
                .map_err(|e| format!("{}.{what}: {e}", step.key_path))
        };
        regexes.push((
            compile("expected_output_regex", &step.expected_output_regex)?,
            compile("expected_stderr_regex", &step.expected_stderr_regex)?,
        ));
    }
    Ok(regexes)
}

/// Checks what can be checked of a plan before any container is involved (the
/// step regexes compile). `Err` carries the message of the `error` outcome.
pub fn check_plan(plan: &TestPlan) -> Result<(), String> {
    compile_step_regexes(plan).map(|_| ())
}

/// Runs only the steps of a plan, in order, in the given containers (container
/// ID by service name), with the same semantics as [`run_test`]: exit codes and
/// regexes checked, `continue_on_failure`, timeouts, a stopped container
/// reported with its output. Nothing is started or removed.
///
/// Returns the outcome, the steps that ran and the time the steps took (ms).
/// When `cancel` completes first, the outcome is an `error` ("interrupted") and
/// the steps finished so far are returned.
pub async fn run_steps(
    backend: &dyn Backend,
    plan: &TestPlan,
    containers: &BTreeMap<String, String>,
    cancel: impl Future<Output = ()>,
) -> (TestOutcome, Vec<StepResult>, f64) {
    let regexes = match compile_step_regexes(plan) {
        Ok(r) => r,
        Err(message) => return (TestOutcome::Error { message }, Vec::new(), 0.0),
    };
    let steps = Mutex::new(Vec::new());
    let sink = StepSink::Steps(&steps);
    let started = Instant::now();
    let outcome = tokio::select! {
        outcome = steps_in(backend, plan, containers, &regexes, &sink, None) => outcome,
        () = cancel => TestOutcome::Error { message: "interrupted".into() },
    };
    let execute_ms = ms(started.elapsed());
    let steps = steps.into_inner().unwrap_or_else(|e| e.into_inner());
    (outcome, steps, execute_ms)
}

async fn steps_in(
    backend: &dyn Backend,
    plan: &TestPlan,
    containers: &BTreeMap<String, String>,
    regexes: &StepRegexes,
    sink: &StepSink<'_>,
    collector: Option<&dyn SpanCollector>,
) -> TestOutcome {
    let mut first_failure = None;
    let mut services_begun = std::collections::BTreeSet::new();
    for (step, (out_re, err_re)) in plan.steps.iter().zip(regexes) {
        if let Some(collector) = collector {
            if services_begun.insert(step.service.as_str()) {
                if let Err(message) = collector.before_first_step(&step.service).await {
                    return TestOutcome::Error { message };
                }
            }
        }
        let Some(container) = containers.get(&step.service) else {
            return TestOutcome::Error {
                message: format!(
                    "{}: no container for service `{}`",
                    step.key_path, step.service
                ),
            };
        };
        let t = Instant::now();
        let request = ExecRequest {
            argv: step.argv.clone(),
            env: step.env.clone(),
            workdir: step.workdir.clone(),
            timeout: Duration::from_millis(step.timeout_ms),
        };
        let output = match backend.exec(container, &request).await {
            Ok(o) => o,
            Err(e) => {
                // Most often the service's container has stopped: say so, with its output.
                let message = match backend.container_status(container).await {
                    Ok(status) if !status.running => {
                        let why = exited(backend, container, status).await;
                        format!("service `{}`: {why}", step.service)
                    }
                    _ => format!("step `{}` (service `{}`): {e}", step.name, step.service),
                };
                return TestOutcome::Error { message };
            }
        };
        let duration_ms = ms(t.elapsed());
        let failure = check(step, &output, out_re.as_ref(), err_re.as_ref());
        let failed = failure.is_some();
        if failed {
            // A step that failed because its service died is an error, not an assertion.
            if let Ok(status) = backend.container_status(container).await {
                if !status.running {
                    let why = exited(backend, container, status).await;
                    return TestOutcome::Error {
                        message: format!("service `{}`: {why}", step.service),
                    };
                }
            }
        }
        let result = StepResult {
            name: step.name.clone(),
            service: step.service.clone(),
            status: if failed {
                StepStatus::Fail
            } else {
                StepStatus::Pass
            },
            exit_code: output.exit_code,
            timed_out: output.timed_out,
            duration_ms,
            failure: failure.clone(),
            stdout: tail(&output.stdout),
            stderr: tail(&output.stderr),
            continued: failed && step.continue_on_failure,
        };
        sink.push(result.clone());
        if let Some(m) = failure {
            if first_failure.is_none() {
                first_failure = Some(StepFailure {
                    step: step.name.clone(),
                    service: step.service.clone(),
                    expected: m.expected,
                    actual: m.actual,
                    stdout: result.stdout,
                    stderr: result.stderr,
                });
            }
            if !step.continue_on_failure {
                break;
            }
        }
    }
    // A step that failed under `continue_on_failure` still fails the test: the
    // flag lets later steps run (and report), it does not turn a failed
    // assertion into a pass.
    match first_failure {
        Some(f) => TestOutcome::Fail(f),
        None => TestOutcome::Pass,
    }
}

/// A service container that was created, started and found ready.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StartedContainer {
    pub id: String,
    /// The container's name on the engine.
    pub name: String,
    pub service: String,
    pub spec_hash: String,
    pub image_id: String,
    /// Container port → host port.
    pub ports: BTreeMap<u16, u16>,
    /// Create + start.
    pub start_ms: f64,
    /// Health check, about 0 without one.
    pub ready_ms: f64,
}

/// A network of the session's own (named `clnrm-<session>-<unique>`), on which
/// containers reach each other by service name.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TestNetwork {
    pub id: String,
    pub name: String,
}

/// A fresh object name of a session: `clnrm-<session id>-<unique>`.
pub fn object_name(session: &Session) -> String {
    format!("clnrm-{}-{}", session.id, unique_suffix())
}

/// Creates a network for the services of one test. It carries the session's
/// labels, `clnrm.test=<test>` and `extra_labels`.
pub async fn create_test_network(
    backend: &dyn Backend,
    session: &Session,
    test: &str,
    extra_labels: &BTreeMap<String, String>,
) -> Result<TestNetwork, ExecError> {
    let name = object_name(session);
    let mut labels = session.labels();
    labels.insert(LABEL_TEST.into(), test.to_string());
    labels.extend(extra_labels.clone());
    let id = backend.create_network(&name, &labels).await?;
    Ok(TestNetwork { id, name })
}

/// Creates and starts the container of one service and waits until it is
/// ready (running, and its health check passed). Its labels are the session's,
/// `clnrm.spec`, `clnrm.service`, then `labels` (which win). On `network` the
/// container is reachable by its service name.
///
/// A container that was created but did not become ready is removed before
/// the error is returned. Should the returned future be dropped midway, the
/// container stays: use [`start_service_tracked`] to learn its ID as soon as
/// it exists.
pub async fn start_service(
    backend: &dyn Backend,
    session: &Session,
    root: &Path,
    spec: &ContainerSpec,
    image: &ResolvedImage,
    network: Option<&str>,
    labels: BTreeMap<String, String>,
) -> Result<StartedContainer, ExecError> {
    start_service_tracked(
        backend,
        session,
        root,
        spec,
        image,
        network,
        labels,
        &|_| {},
    )
    .await
}

/// [`start_service`], calling `created` with the container's ID right after it
/// is created (before start and readiness), so a caller that may be cancelled
/// can remove it.
#[allow(clippy::too_many_arguments)]
pub async fn start_service_tracked(
    backend: &dyn Backend,
    session: &Session,
    root: &Path,
    spec: &ContainerSpec,
    image: &ResolvedImage,
    network: Option<&str>,
    labels: BTreeMap<String, String>,
    created: &(dyn Fn(&str) + Send + Sync),
) -> Result<StartedContainer, ExecError> {
    let name = format!("{}-{}", object_name(session), sanitize(&spec.service));
    let mut all = session.labels();
    all.insert(LABEL_SPEC.into(), spec.hash.0.clone());
    all.insert(LABEL_SERVICE.into(), spec.service.clone());
    all.extend(labels);
    let request = ContainerRequest {
        spec,
        image,
        name,
        network,
        labels: all,
        root,
        extra_env: BTreeMap::new(),
        extra_hosts: Vec::new(),
    };
    let result = create_and_ready(backend, &request, created).await;
    if let Err((Some(id), _)) = &result {
        let _ = backend.remove_container(id).await;
    }
    result.map_err(|(_, e)| e)
}

/// Create, start, ready. On error, the ID of the container if it was created.
async fn create_and_ready(
    backend: &dyn Backend,
    request: &ContainerRequest<'_>,
    created: &(dyn Fn(&str) + Send + Sync),
) -> Result<StartedContainer, (Option<String>, ExecError)> {
    let spec = request.spec;
    let service_error = |e: ExecError| match e {
        e @ ExecError::Service { .. } => e,
        e => ExecError::Service {
            service: spec.service.clone(),
            reason: e.to_string(),
        },
    };
    let t = Instant::now();
    let id = backend
        .create_container(request)
        .await
        .map_err(|e| (None, service_error(e)))?;
    created(&id);
    let started = backend
        .start_container(&id)
        .await
        .map_err(|e| (Some(id.clone()), service_error(e)))?;
    let start_ms = ms(t.elapsed());
    let t = Instant::now();
    health_check(backend, &id, spec)
        .await
        .map_err(|e| (Some(id.clone()), e))?;
    Ok(StartedContainer {
        id,
        name: request.name.clone(),
        service: spec.service.clone(),
        spec_hash: spec.hash.0.clone(),
        image_id: request.image.id.clone(),
        ports: started.ports,
        start_ms,
        ready_ms: ms(t.elapsed()),
    })
}

/// Starts every container of the plan in parallel (one network for the test)
/// and waits until each is ready. Returns container IDs by service.
async fn start_services(
    run: TestRun<'_>,
    collector: Option<&dyn SpanCollector>,
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
    // by its service name; a single service has nobody to reach, unless spans are
    // collected: the collector listens on the network's gateway, which is the test's alone.
    let private_network = plan.containers.len() > 1 || collector.is_some();
    let network = async {
        let mut additions = ServiceAdditions::default();
        if private_network {
            let id = run.backend.create_network(&net_name, &net_labels).await?;
            *lock(&resources.network) = Some(id.clone());
            if let Some(collector) = collector {
                let gateway = run.backend.network_gateway(&id).await?;
                additions = collector
                    .network_ready(gateway)
                    .await
                    .map_err(ExecError::Engine)?;
            }
        }
        Ok::<_, ExecError>(additions)
    };
    let (images, network) = futures_util::join!(images, network);
    let (images, image_ms) = images?;
    let additions = network?;
    let additions = &additions;

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
                extra_env: collector
                    .map(|c| c.service_env(&spec.service))
                    .unwrap_or_default(),
                extra_hosts: additions.extra_hosts.clone(),
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

/// A container is ready (fit to run steps in) when it is running and the
/// spec's health check, if any, exits 0 within its retries. Used on a fresh
/// container and before reusing one.
pub async fn health_check(
    backend: &dyn Backend,
    id: &str,
    spec: &ContainerSpec,
) -> Result<(), ExecError> {
    let not_ready = |reason: String| ExecError::Service {
        service: spec.service.clone(),
        reason,
    };
    let status = backend.container_status(id).await?;
    if !status.running {
        return Err(not_ready(exited(backend, id, status).await));
    }
    let Some(hc) = &spec.health_check else {
        return Ok(());
    };
    let PlannedHealthCheck {
        argv,
        interval_ms,
        timeout_ms,
        retries,
    } = hc;
    let request = ExecRequest {
        argv: argv.clone(),
        env: BTreeMap::new(),
        workdir: None,
        timeout: Duration::from_millis((*timeout_ms).max(1)),
    };
    let mut last = String::new();
    for attempt in 1..=(*retries).max(1) {
        let out = backend.exec(id, &request).await?;
        if out.exit_code == Some(0) && !out.timed_out {
            return Ok(());
        }
        last = describe_exit(&out);
        let status = backend.container_status(id).await?;
        if !status.running {
            return Err(not_ready(exited(backend, id, status).await));
        }
        if attempt < *retries {
            tokio::time::sleep(Duration::from_millis(*interval_ms)).await;
        }
    }
    Err(not_ready(format!(
        "health check `{}` did not succeed after {} attempt(s); last: {last}",
        argv.join(" "),
        (*retries).max(1)
    )))
}

/// "the container exited with code N", with the tail of its output.
async fn exited(backend: &dyn Backend, id: &str, status: crate::ContainerStatus) -> String {
    let logs = backend.container_logs(id, 20).await.unwrap_or_default();
    let oom = if status.oom_killed {
        " (out of memory)"
    } else {
        ""
    };
    let code = status
        .exit_code
        .map(|c| format!(" with code {c}"))
        .unwrap_or_default();
    let logs = if logs.trim().is_empty() {
        String::new()
    } else {
        format!("; its output:\n{}", logs.trim_end())
    };
    format!("the container exited{code}{oom} before the steps ended{logs}")
}

fn describe_exit(out: &ExecOutput) -> String {
    let mut s = match (out.timed_out, out.exit_code) {
        (true, _) => "timed out".to_string(),
        (false, Some(c)) => format!("exit code {c}"),
        (false, None) => "no exit code".to_string(),
    };
    let err = out.stderr.trim();
    if !err.is_empty() {
        s.push_str(": ");
        s.push_str(&tail_chars(err, 300));
    }
    s
}

/// `^` and `$` match at line starts and ends, as with grep: output almost always
/// ends with a newline, and `"^hello$"` should match `hello\n`.
fn compile_regex(re: &str) -> Result<Regex, regex::Error> {
    RegexBuilder::new(re).multi_line(true).build()
}

/// The first assertion of a step that did not hold.
fn check(
    step: &PlannedStep,
    out: &ExecOutput,
    out_re: Option<&Regex>,
    err_re: Option<&Regex>,
) -> Option<Mismatch> {
    if out.timed_out {
        return Some(Mismatch {
            expected: format!("to finish within {}", human_duration(step.timeout_ms)),
            actual: format!("timed out after {}", human_duration(step.timeout_ms)),
        });
    }
    if out.exit_code != Some(i64::from(step.expected_exit_code)) {
        return Some(Mismatch {
            expected: format!("exit code {}", step.expected_exit_code),
            actual: match out.exit_code {
                Some(c) => format!("exit code {c}"),
                None => "no exit code".to_string(),
            },
        });
    }
    for (name, re, text) in [
        ("stdout", out_re, &out.stdout),
        ("stderr", err_re, &out.stderr),
    ] {
        if let Some(re) = re {
            if !re.is_match(text) {
                return Some(Mismatch {
                    expected: format!("{name} matching /{}/", re.as_str()),
                    actual: if text.is_empty() {
                        format!("{name} was empty")
                    } else {
                        format!("{name}: {}", tail_chars(text.trim_end(), 500))
                    },
                });
            }
        }
    }
    None
}

fn human_duration(ms: u64) -> String {
    if (ms / 1000) * 1000 == ms {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// The last 20 lines, at most 4 KiB.
pub(crate) fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(20);
    tail_chars(&lines[start..].join("\n"), 4096)
}

fn tail_chars(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut start = text.len() - max;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    format!("…{}", &text[start..])
}

fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Distinguishes the networks of concurrent tests in one session.
fn unique_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(code: i32) -> PlannedStep {
        PlannedStep {
            name: "s".into(),
            service: "default".into(),
            argv: vec!["x".into()],
            expected_exit_code: code,
            expected_output_regex: None,
            expected_stderr_regex: None,
            workdir: None,
            env: BTreeMap::new(),
            timeout_ms: 1000,
            continue_on_failure: false,
            key_path: "steps[0]".into(),
        }
    }

    fn out(code: Option<i64>, stdout: &str) -> ExecOutput {
        ExecOutput {
            exit_code: code,
            stdout: stdout.into(),
            ..Default::default()
        }
    }

    #[test]
    fn exit_codes_and_regexes_are_checked_in_order() {
        assert_eq!(check(&step(0), &out(Some(0), ""), None, None), None);
        assert_eq!(check(&step(3), &out(Some(3), ""), None, None), None);
        let m = check(&step(0), &out(Some(1), ""), None, None).unwrap();
        assert_eq!(
            (m.expected.as_str(), m.actual.as_str()),
            ("exit code 0", "exit code 1")
        );
        let re = compile_regex("^hello$").unwrap();
        assert_eq!(
            check(&step(0), &out(Some(0), "x\nhello\n"), Some(&re), None),
            None
        );
        let m = check(&step(0), &out(Some(0), "bye\n"), Some(&re), None).unwrap();
        assert_eq!(m.expected, "stdout matching /^hello$/");
        assert_eq!(m.actual, "stdout: bye");
        let m = check(&step(0), &out(Some(0), ""), None, Some(&re)).unwrap();
        assert_eq!(m.actual, "stderr was empty");
        let timed_out = ExecOutput {
            timed_out: true,
            ..Default::default()
        };
        let m = check(&step(0), &timed_out, None, None).unwrap();
        assert_eq!(m.actual, "timed out after 1s");
    }

    #[test]
    fn tails_keep_the_end() {
        let text: String = (0..100).map(|i| format!("line {i}\n")).collect();
        let t = tail(&text);
        assert!(t.starts_with("line 80"), "{t}");
        assert!(t.ends_with("line 99"));
        let long = "é".repeat(5000);
        let t = tail_chars(&long, 4096);
        assert!(t.len() <= 4096 + 4);
    }

    #[test]
    fn outcomes_serialize_with_a_status_tag() {
        let json = serde_json::to_value(TestOutcome::Error {
            message: "m".into(),
        })
        .unwrap();
        assert_eq!(json["status"], "error");
        let json = serde_json::to_value(TestOutcome::Pass).unwrap();
        assert_eq!(json["status"], "pass");
        assert_eq!(sanitize("a b/c"), "a_b_c");
        assert_eq!(human_duration(1500), "1500ms");
    }
}
