//! Running a test in pooled containers: check its containers out of the idle set,
//! reconcile them with the plan (reuse the fit, replace the changed or dead, remove
//! those of services the plan dropped), run the steps, and check them back in. Not
//! adoption (`adopt`) nor removal beyond this test's own (`evict`).

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use clnrm_exec::{
    check_plan, create_test_network, health_check, resolve_images, run_steps, start_service,
    unix_now, Backend, ExecError, PhaseTimings, ResolvedImage, ResolvedImages, ServiceAdditions,
    ServiceStart, ServiceToStart, Session, SpanCollector, TestOutcome, TestReport, LABEL_CREATED,
    LABEL_IMAGE, LABEL_NETWORK, LABEL_POOL, LABEL_TEST,
};
use clnrm_plan::{ContainerSpec, TestPlan};

use super::spare::FreshRun;
use super::{
    interrupted, lock, ms, Isolation, Pool, PoolUse, Pooled, PooledTest, RunIsolation,
    LABEL_COLLECTOR, LABEL_SPARE,
};

/// What a per-service task of [`Pool::acquire`] came back with.
struct ServiceProvision {
    service: String,
    /// The container to use now, or why there is none.
    ready: Result<ReadyService, ExecError>,
    /// Old containers removed on the way (dead, changed spec).
    removed: Vec<String>,
    errors: Vec<String>,
}

/// A service's container, up and fit for the test's steps.
struct ReadyService {
    container: Pooled,
    /// What the test's report says about it (IDs, ports, how long it took).
    start: ServiceStart,
    origin: ContainerOrigin,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ContainerOrigin {
    /// The pooled container, unchanged and still fit.
    Reused,
    /// A new one: first run, changed spec or image, dead or unfit container.
    Started,
}

impl Pool {
    /// Runs a test in pooled containers: reuses those whose spec and image
    /// are unchanged, replaces the others, removes those of services the plan
    /// no longer has. Nothing is torn down afterwards (`teardown_ms` is 0).
    ///
    /// When `cancel` completes first, the outcome is an `error` ("interrupted");
    /// the containers that were ready stay pooled, half-started ones are removed.
    ///
    /// With `collector`, the test runs on a network of its own whose gateway the
    /// collector listens on from before its containers start until its steps and the
    /// flush wait are over (the test lock held: runs of one test never overlap, and the
    /// network is no other test's).
    pub async fn run_test(
        &self,
        identity: &str,
        plan: &TestPlan,
        images: &ResolvedImages,
        collector: Option<&dyn SpanCollector>,
        cancel: impl Future<Output = ()>,
    ) -> (TestReport, PoolUse) {
        let started = Instant::now();
        let mut report = TestReport {
            name: plan.name.clone(),
            outcome: TestOutcome::Pass,
            steps: Vec::new(),
            services: Vec::new(),
            timings: PhaseTimings::default(),
            teardown_errors: Vec::new(),
        };
        let mut used = PoolUse::default();
        if let Err(message) = check_plan(plan) {
            report.outcome = TestOutcome::Error { message };
            report.timings.total_ms = ms(started.elapsed());
            return (report, used);
        }
        let mut cancel = std::pin::pin!(cancel);
        let test_lock = self.test_lock(identity);
        let _running = tokio::select! {
            guard = test_lock.lock_owned() => guard,
            () = &mut cancel => {
                report.outcome = interrupted();
                report.timings.total_ms = ms(started.elapsed());
                return (report, used);
            }
        };
        if self.isolation_of(plan) == Isolation::Fresh {
            let run = FreshRun {
                identity,
                plan,
                images,
                collector,
            };
            self.run_fresh(run, &mut cancel, &mut report, &mut used)
                .await;
            report.timings.total_ms = ms(started.elapsed());
            self.note_isolation(identity, used.isolation);
            return (report, used);
        }
        used.isolation = Some(RunIsolation::Reused);
        self.note_isolation(identity, used.isolation);

        // Check the test's containers out of the idle set.
        let mut test = {
            let mut state = lock(&self.state);
            let test = state.idle.remove(identity).unwrap_or_else(PooledTest::new);
            state.busy.insert(identity.to_string(), test.services.len());
            test
        };
        let pending: Arc<Mutex<Vec<String>>> = Arc::default();
        let t = Instant::now();
        let acquired = tokio::select! {
            r = self.acquire(identity, plan, images, collector, &mut test, &pending, &mut used, &mut report) => Some(r),
            () = &mut cancel => None,
        };
        report.timings.containers_ms = ms(t.elapsed());
        match acquired {
            None => report.outcome = interrupted(),
            Some(Err(e)) => {
                report.outcome = TestOutcome::Error {
                    message: e.to_string(),
                }
            }
            Some(Ok(containers)) => {
                self.steps_on(plan, &containers, collector, &mut cancel, &mut report)
                    .await;
            }
        }
        if let Some(collector) = collector {
            // Closed before the test lock is released: the next run binds the same gateway.
            collector.stop().await;
        }
        // Containers created by an interrupted start: not known to be fit.
        let half_started = std::mem::take(&mut *lock(&pending));
        if !half_started.is_empty() {
            let r = self.remove_containers(half_started).await;
            used.removed += r.containers.len();
            report.teardown_errors.extend(r.errors);
        }
        if matches!(report.outcome, TestOutcome::Error { .. }) {
            // The error may have come from a container (it died, a step hung
            // it): check all of them fully before the next reuse.
            for p in test.services.values_mut() {
                p.known_fit = false;
            }
        }

        // Back into the idle set; evict the least recently used beyond the limit.
        test.last_used = Instant::now();
        let victims = {
            let mut state = lock(&self.state);
            state.busy.remove(identity);
            state.idle.insert(identity.to_string(), test);
            self.lru_victims(&mut state, identity)
        };
        for victim in victims {
            let r = self.remove_test(victim).await;
            used.removed += r.containers.len();
            report.teardown_errors.extend(r.errors);
        }
        report.timings.total_ms = ms(started.elapsed());
        (report, used)
    }

    /// Runs the plan's steps in `containers` (service → container ID), then waits
    /// for the spans of a passing test.
    pub(super) async fn steps_on(
        &self,
        plan: &TestPlan,
        containers: &BTreeMap<String, String>,
        collector: Option<&dyn SpanCollector>,
        cancel: &mut std::pin::Pin<&mut impl Future<Output = ()>>,
        report: &mut TestReport,
    ) {
        let (outcome, steps, execute_ms) = run_steps(
            self.backend.as_ref(),
            plan,
            containers,
            collector,
            cancel.as_mut(),
        )
        .await;
        report.outcome = outcome;
        report.steps = steps;
        report.timings.execute_ms = execute_ms;
        if let (Some(collector), TestOutcome::Pass) = (collector, &report.outcome) {
            tokio::select! {
                () = collector.after_steps() => {}
                () = cancel.as_mut() => report.outcome = interrupted(),
            }
        }
    }

    /// Brings the plan's containers up from `test`, recording as it goes (so a
    /// cancelled acquisition leaves `test` and `pending` accurate).
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn acquire(
        &self,
        identity: &str,
        plan: &TestPlan,
        images: &ResolvedImages,
        collector: Option<&dyn SpanCollector>,
        test: &mut PooledTest,
        pending: &Arc<Mutex<Vec<String>>>,
        used: &mut PoolUse,
        report: &mut TestReport,
    ) -> Result<BTreeMap<String, String>, ExecError> {
        // Services the plan no longer has.
        let gone: Vec<String> = test
            .services
            .keys()
            .filter(|s| !plan.containers.iter().any(|c| &c.service == *s))
            .cloned()
            .collect();
        let gone_ids: Vec<String> = gone
            .iter()
            .filter_map(|s| test.services.remove(s).map(|p| p.id))
            .collect();
        let removing = self.remove_containers(gone_ids);
        let images_ready = async {
            if plan
                .containers
                .iter()
                .all(|c| images.contains_key(&c.service))
            {
                Ok((images.clone(), 0.0))
            } else {
                let t = Instant::now();
                let resolved = resolve_images(self.backend.as_ref(), &self.root, plan).await?;
                Ok::<_, ExecError>((resolved, ms(t.elapsed())))
            }
        };
        // Several services share a network of the test's own; spans are received on
        // the gateway of one.
        let private_network = plan.containers.len() > 1 || collector.is_some();
        let want_network = private_network && test.network.is_none();
        let network = async {
            if want_network {
                let mut labels = self.pool_labels();
                labels.insert(LABEL_TEST.into(), identity.to_string());
                if test.spare {
                    labels.insert(LABEL_SPARE.into(), "true".into());
                }
                create_test_network(self.backend.as_ref(), &self.session, identity, &labels)
                    .await
                    .map(Some)
            } else {
                Ok(None)
            }
        };
        let (removed, images, network) = tokio::join!(removing, images_ready, network);
        used.removed += removed.containers.len();
        report.teardown_errors.extend(removed.errors);
        if let Some(net) = network? {
            test.network = Some(net);
        }
        let (images, image_ms) = images?;
        if plan.containers.is_empty() {
            return Ok(BTreeMap::new());
        }
        let network = if private_network {
            test.network.as_ref().map(|n| n.name.clone())
        } else {
            None
        };
        // Bound before any container starts: a service's first spans come as it starts.
        let (additions, collector_at) = match (collector, &network) {
            (Some(collector), Some(network)) => {
                let gateway = match test.gateway {
                    Some(gateway) => gateway,
                    None => {
                        let gateway = self.backend.network_gateway(network).await?;
                        test.gateway = Some(gateway);
                        gateway
                    }
                };
                collector
                    .network_ready(gateway)
                    .await
                    .map_err(ExecError::Engine)?;
                (collector.additions(gateway), Some(gateway.to_string()))
            }
            _ => (ServiceAdditions::default(), None),
        };

        let mut tasks = tokio::task::JoinSet::new();
        for spec in &plan.containers {
            let image = images[&spec.service].clone();
            // The old entry stays until the task reports back: should the run be
            // cut short after the task removed it, the next run's check finds it
            // gone and replaces it.
            let existing = test.services.get(&spec.service).cloned();
            let mut labels = self.pool_labels();
            labels.insert(LABEL_TEST.into(), identity.to_string());
            labels.insert(LABEL_IMAGE.into(), image.id.clone());
            if test.spare {
                labels.insert(LABEL_SPARE.into(), "true".into());
            }
            if let Some(n) = &network {
                labels.insert(LABEL_NETWORK.into(), n.clone());
            }
            if let Some(at) = &collector_at {
                labels.insert(LABEL_COLLECTOR.into(), at.clone());
            }
            let job = ServiceJob {
                backend: self.backend.clone(),
                session: self.session.clone(),
                root: self.root.clone(),
                spec: spec.clone(),
                image,
                image_ms,
                network: network.clone(),
                labels,
                spans: SpanAdditions {
                    env: collector
                        .map(|c| c.service_env(&spec.service))
                        .unwrap_or_default(),
                    hosts: additions.extra_hosts.clone(),
                    collector: collector_at.clone(),
                },
                existing,
                pending: pending.clone(),
            };
            tasks.spawn(job.provide());
        }
        let mut containers = BTreeMap::new();
        let mut first_error = None;
        while let Some(done) = tasks.join_next().await {
            let provided = match done {
                Ok(p) => p,
                Err(e) => {
                    first_error
                        .get_or_insert(ExecError::Engine(format!("a container task failed: {e}")));
                    continue;
                }
            };
            used.removed += provided.removed.len();
            report.teardown_errors.extend(provided.errors);
            match provided.ready {
                Ok(ready) => {
                    match ready.origin {
                        ContainerOrigin::Started => used.started += 1,
                        ContainerOrigin::Reused => used.reused += 1,
                    }
                    containers.insert(provided.service.clone(), ready.container.id.clone());
                    test.services.insert(provided.service, ready.container);
                    report.services.push(ready.start);
                }
                Err(e) => {
                    // Its old container (if any) was removed or is unfit.
                    test.services.remove(&provided.service);
                    first_error.get_or_insert(e);
                }
            }
        }
        // A run's containers count as busy; a spare being made is no run's.
        if let Some(held) = lock(&self.state).busy.get_mut(identity) {
            *held = test.services.len();
        }
        report.services.sort_by(|a, b| a.service.cmp(&b.service));
        if let (Some(collector), None, 0) = (collector, &first_error, used.started) {
            collector.already_ready();
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(containers),
        }
    }

    fn note_isolation(&self, identity: &str, isolation: Option<RunIsolation>) {
        let mut last = lock(&self.last_isolation);
        match isolation {
            Some(isolation) => last.insert(identity.to_string(), isolation),
            None => last.remove(identity),
        };
    }

    fn pool_labels(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            (LABEL_POOL.to_string(), self.key.clone()),
            (LABEL_CREATED.to_string(), unix_now().to_string()),
        ])
    }
}

/// What a container of a test collecting spans is created with.
struct SpanAdditions {
    env: BTreeMap<String, String>,
    hosts: Vec<String>,
    /// The collector's address (see [`Pooled::collector`]).
    collector: Option<String>,
}

/// One service of one run: reuse its pooled container if fit, else start one.
/// Owned, so it runs as a task of its own.
struct ServiceJob {
    backend: Arc<dyn Backend>,
    session: Session,
    root: PathBuf,
    spec: ContainerSpec,
    image: ResolvedImage,
    image_ms: f64,
    network: Option<String>,
    labels: BTreeMap<String, String>,
    spans: SpanAdditions,
    existing: Option<Pooled>,
    pending: Arc<Mutex<Vec<String>>>,
}

impl ServiceJob {
    async fn provide(self) -> ServiceProvision {
        let backend = self.backend.as_ref();
        let spec = &self.spec;
        let mut removed = Vec::new();
        let mut errors = Vec::new();
        if let Some(old) = self.existing {
            let same = old.spec_hash == spec.hash.0
                && old.image_id == self.image.id
                && (self.network.is_none() || old.network == self.network)
                // Its OTEL environment and collector host are fixed at create.
                && old.collector == self.spans.collector;
            let t = Instant::now();
            let fit = same
                && if old.known_fit {
                    matches!(backend.container_status(&old.id).await, Ok(s) if s.running)
                } else {
                    health_check(backend, &old.id, spec).await.is_ok()
                };
            if fit {
                let start = ServiceStart {
                    service: spec.service.clone(),
                    container_id: old.id.clone(),
                    image_id: old.image_id.clone(),
                    spec_hash: old.spec_hash.clone(),
                    ports: old.ports.clone(),
                    image_ms: 0.0,
                    start_ms: 0.0,
                    ready_ms: ms(t.elapsed()),
                };
                return ServiceProvision {
                    service: spec.service.clone(),
                    ready: Ok(ReadyService {
                        container: Pooled {
                            known_fit: true,
                            ..old
                        },
                        start,
                        origin: ContainerOrigin::Reused,
                    }),
                    removed,
                    errors,
                };
            }
            match backend.remove_container(&old.id).await {
                Ok(()) => removed.push(old.id),
                Err(e) => errors.push(format!("removing container {}: {e}", old.id)),
            }
        }
        // Known to `pending` (the run's, for removal if it is cut short) and to
        // `started_here` (this job's), until it is ready.
        let started_here: Arc<Mutex<Vec<String>>> = Arc::default();
        let track = {
            let pending = self.pending.clone();
            let started_here = started_here.clone();
            move |id: &str| {
                lock(&pending).push(id.to_string());
                lock(&started_here).push(id.to_string());
            }
        };
        let service = ServiceToStart {
            session: &self.session,
            root: &self.root,
            spec,
            image: &self.image,
            network: self.network.as_deref(),
            labels: self.labels,
            extra_env: self.spans.env,
            extra_hosts: self.spans.hosts,
        };
        let result = start_service(backend, service, &track).await;
        // Ready (now pooled), or removed by start_service: no longer pending.
        let started_here = std::mem::take(&mut *lock(&started_here));
        lock(&self.pending).retain(|id| !started_here.contains(id));
        let ready = result.map(|c| {
            let start = ServiceStart {
                service: c.service.clone(),
                container_id: c.id.clone(),
                image_id: c.image_id.clone(),
                spec_hash: c.spec_hash.clone(),
                ports: c.ports.clone(),
                image_ms: self.image_ms,
                start_ms: c.start_ms,
                ready_ms: c.ready_ms,
            };
            let pooled = Pooled {
                id: c.id,
                spec_hash: c.spec_hash,
                image_id: c.image_id,
                network: self.network.clone(),
                ports: c.ports,
                known_fit: true,
                collector: self.spans.collector,
            };
            ReadyService {
                container: pooled,
                start,
                origin: ContainerOrigin::Started,
            }
        });
        ServiceProvision {
            service: spec.service.clone(),
            ready,
            removed,
            errors,
        }
    }
}
