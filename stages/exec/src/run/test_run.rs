//! Driving one test: images and services up in parallel, the steps, and a
//! teardown that always happens (on failure and on cancellation too). The
//! steps themselves are in `steps`, the container lifecycle in `services`.
//!
//! A test with several services runs on a network of its own for the run,
//! taken from the spare networks kept on the engine (by this process or an
//! earlier one): creating a network costs 0.1-0.25 s, as much as starting
//! the containers. The test claims a spare by naming its first container
//! after it (names are unique on the engine), creates the others once that
//! create has won the claim (a lost claim leaves nothing on another test's
//! network; `create_start`), starts each container right after its own
//! create, and hands the network back at teardown by removing its
//! containers. Only when no spare can be claimed is one created. A test with
//! several services collecting spans claims one the same way (`span_network`);
//! one with a single service shares the run's receiver on the default bridge
//! when it can.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use clnrm_plan::{ImageSource, TestPlan};
use futures_util::future::try_join_all;

use super::create_start::{create_and_start_all, Placement};
use super::progress::{ms, Progress};
use super::services::unique_suffix;
use super::steps::{
    check_plan, human_ms, setup_and_steps, teardown, StepSink, StepsRun, StepsState, TEST_TIMEOUT,
};
use super::test_set::{Extra, ResolvedImages, Resources, TestRun};
use crate::engine::session::{
    host_name, unix_now, LABEL_CREATED, LABEL_HOST, LABEL_MANAGED, LABEL_SPARE_NETWORK, LABEL_TEST,
};
use crate::lock;
use crate::{Backend, ExecError, PhaseTimings, SpanCollector, TestOutcome, TestReport};

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

/// [`run_test_until`], with a [`SpanCollector`] receiving the test's spans: a test with one
/// service runs on the default bridge when the collector receives there (telling its spans
/// apart by its container's address), any other on a network (a claimed spare when it can)
/// whose gateway the collector listens on while the claim is held.
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
    let deadline = run
        .plan
        .timeout_ms
        .map(|t| started + Duration::from_millis(t));
    let mut state = StepsState::default();
    let body = drive(run, collector, &resources, &progress, deadline, &mut state);
    // Steps end themselves at the deadline (inside their container); this is for the
    // time spent starting services or waiting for spans.
    let out_of_time = async {
        match deadline {
            Some(at) => tokio::time::sleep_until((at + DEADLINE_GRACE).into()).await,
            None => std::future::pending().await,
        }
    };
    let outcome = tokio::select! {
        outcome = body => outcome,
        () = cancel => TestOutcome::Error { message: "interrupted".into() },
        () = out_of_time => whole_test_timeout(run.plan, &progress),
    };
    // The teardown steps, whatever happened, in the containers that were started.
    let containers = std::mem::take(&mut lock(&progress).containers);
    let outcome = if containers.is_empty() {
        outcome
    } else {
        let sink = StepSink::Progress(&progress);
        let steps_run = StepsRun {
            backend: run.backend,
            plan: run.plan,
            containers: &containers,
            sink: &sink,
            collector: None,
            deadline: None,
        };
        let teardown_started = Instant::now();
        let outcome = teardown(&steps_run, &mut state, outcome).await;
        lock(&progress).execute_ms += ms(teardown_started.elapsed());
        outcome
    };
    if let Some(collector) = collector {
        // Closed while the claim is held: the next test on this network binds its gateway.
        collector.stop().await;
    }
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

/// How long past its `timeout` a test that is not running a step (starting services,
/// waiting for spans) is given before it is ended from outside; a running step ends
/// itself at the deadline.
const DEADLINE_GRACE: Duration = Duration::from_millis(500);

/// The failure of a test whose `timeout` ended while no step was running.
fn whole_test_timeout(plan: &TestPlan, progress: &Mutex<Progress>) -> TestOutcome {
    let limit = plan.timeout_ms.unwrap_or_default();
    let during = if lock(progress).containers.is_empty() {
        "its services were starting"
    } else {
        "it waited for spans"
    };
    TestOutcome::Fail(crate::StepFailure {
        step: String::new(),
        service: String::new(),
        expected: format!("{TEST_TIMEOUT} {} (its `timeout`)", human_ms(limit)),
        actual: format!("the test's timeout ended while {during}"),
        stdout: String::new(),
        stderr: String::new(),
    })
}

/// Claims on spare networks tried before one of the test's own is created
/// (each lost claim costs a create round trip).
const SPARE_CLAIMS: usize = 2;

async fn drive(
    run: TestRun<'_>,
    collector: Option<&dyn SpanCollector>,
    resources: &Resources,
    progress: &Mutex<Progress>,
    deadline: Option<Instant>,
    state: &mut StepsState,
) -> TestOutcome {
    let plan = run.plan;
    // Expectations first: a bad one is an error before anything starts.
    if let Err(message) = check_plan(plan) {
        return TestOutcome::Error { message };
    }
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
    {
        let mut progress = lock(progress);
        progress.containers_ms = ms(containers_started.elapsed());
        progress.containers = containers.clone();
    }

    let execute_started = Instant::now();
    let sink = StepSink::Progress(progress);
    let steps_run = StepsRun {
        backend: run.backend,
        plan,
        containers: &containers,
        sink: &sink,
        collector,
        deadline,
    };
    let outcome = setup_and_steps(&steps_run, state).await;
    lock(progress).execute_ms = ms(execute_started.elapsed());
    if let (Some(collector), TestOutcome::Pass) = (collector, &outcome) {
        collector.after_steps().await;
    }
    outcome
}

/// Starts every container of the plan in parallel (on a network of the
/// test's own when there are several) and waits until each is ready; health
/// checks run as each container starts, not waiting on the others. Returns
/// container IDs by service.
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
    let base_name = format!("clnrm-{}-{}", run.session.id, unique_suffix());
    let began = Instant::now();
    // Images and the spare networks at once: neither needs the other.
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
    // Several services share a network, where each is reachable by its
    // service name; a single service has nobody to reach. A single service whose spans
    // are collected runs on the default bridge when the run receives there (its spans
    // told apart by its container's address, docs/otel.md); otherwise on a network whose
    // gateway the collector listens on, which the claim makes the test's alone.
    let bridge_and_spares = async {
        let bridge = match collector {
            Some(collector) if plan.containers.len() == 1 => {
                collector.default_bridge(run.backend).await
            }
            _ => None,
        };
        let private = plan.containers.len() > 1 || (collector.is_some() && bridge.is_none());
        if !private {
            return (bridge, Vec::new());
        }
        // Without a list, a network is created as before.
        let mut spares = run.backend.list_spare_networks().await.unwrap_or_default();
        // Concurrent tests (of this process or others) start their claims
        // at different spares.
        let turn = usize::from(blake3::hash(base_name.as_bytes()).as_bytes()[0]);
        let len = spares.len().max(1);
        spares.rotate_left(turn % len);
        (bridge, spares)
    };
    let (images, (bridge, mut spares)) = futures_util::join!(images, bridge_and_spares);
    let private_network = plan.containers.len() > 1;
    let (images, image_ms) = images?;

    let t = Instant::now();
    let started = if let Some(bridge_additions) = bridge {
        let extra = Extra {
            collector,
            additions: &bridge_additions,
        };
        let place = Placement {
            base_name: &base_name,
            network: None,
            claim: false,
            extra: &extra,
            spans_by_address: collector,
            listen_on: None,
        };
        create_and_start_all(run, resources, progress, &images, image_ms, &place)
            .await?
            .unwrap_or_default()
    } else if private_network || collector.is_some() {
        let mut attempt = 0;
        loop {
            let spare = (attempt < SPARE_CLAIMS).then(|| spares.pop()).flatten();
            let (network, claim, listed_gateway) = match spare {
                Some(spare) => (spare.name, true, spare.gateway),
                None if attempt <= SPARE_CLAIMS => {
                    let name = format!("{base_name}-net{attempt}");
                    (new_spare_network(run.backend, name).await?, true, None)
                }
                // Every claim was lost to concurrent tests: a network of the
                // test's own, which nobody else can claim.
                None => (own_network(run, resources, &base_name).await?, false, None),
            };
            attempt += 1;
            // Spans: the collector listens on the network's gateway, which every service
            // reaches as `otel-collector` (known before the creates that claim it).
            let listen_on = match (collector, listed_gateway) {
                (Some(collector), Some(gateway)) => Some((collector, gateway)),
                (Some(collector), None) => {
                    Some((collector, run.backend.network_gateway(&network).await?))
                }
                (None, _) => None,
            };
            let additions = listen_on
                .map(|(collector, gateway)| collector.additions(gateway))
                .unwrap_or_default();
            let extra = Extra {
                collector,
                additions: &additions,
            };
            let place = Placement {
                base_name: &base_name,
                network: Some(&network),
                claim,
                extra: &extra,
                spans_by_address: None,
                listen_on,
            };
            match create_and_start_all(run, resources, progress, &images, image_ms, &place).await {
                Ok(Some(started)) => break started,
                Ok(None) => {}
                // The spare went between the claim and the start (another clnrm ending
                // trimmed it, `trim_spare_networks`): this try's containers go, the next
                // network is tried.
                Err(e) if claim && is_network_gone(&e, &network) => {
                    for error in resources.teardown(run.backend).await {
                        tracing::warn!("{error}");
                    }
                }
                Err(e) => return Err(e),
            }
        }
    } else {
        let place = Placement {
            base_name: &base_name,
            network: None,
            claim: false,
            extra: &Extra::NONE,
            spans_by_address: None,
            listen_on: None,
        };
        create_and_start_all(run, resources, progress, &images, image_ms, &place)
            .await?
            .unwrap_or_default()
    };
    let how = format!("each created and started at once {:.1} ms", ms(t.elapsed()));
    tracing::info!(
        test = %plan.name,
        "{} container(s) ready in {:.1} ms: images and spare networks {:.1}, {how}",
        started.len(),
        ms(began.elapsed()),
        ms(t - began),
    );
    Ok(started.into_iter().collect())
}

/// Whether `e` says the network `name` no longer exists.
fn is_network_gone(e: &ExecError, name: &str) -> bool {
    e.to_string().contains(&format!("network {name} not found"))
}

/// Creates a spare network named `name` (kept after the test for the next one); returns its name.
async fn new_spare_network(backend: &dyn Backend, name: String) -> Result<String, ExecError> {
    let host = host_name();
    let labels = BTreeMap::from([
        (LABEL_MANAGED.to_string(), "true".to_string()),
        (LABEL_SPARE_NETWORK.to_string(), host.clone()),
        (LABEL_HOST.to_string(), host),
        (LABEL_CREATED.to_string(), unix_now().to_string()),
    ]);
    backend.create_network(&name, &labels).await?;
    Ok(name)
}

/// Creates a network only this test uses (removed at teardown); returns its name.
async fn own_network(
    run: TestRun<'_>,
    resources: &Resources,
    base_name: &str,
) -> Result<String, ExecError> {
    let name = format!("{base_name}-own");
    let mut labels = run.session.labels();
    labels.insert(LABEL_TEST.into(), run.plan.name.clone());
    let id = run.backend.create_network(&name, &labels).await?;
    resources.remember_network(id);
    Ok(name)
}
