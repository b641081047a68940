//! The warm container pool (SPEC §7): service containers stay up between runs
//! of the same test and are reused while their spec is unchanged, so a re-run
//! costs the test's own execs and little else.
//!
//! A pooled container is keyed by (test identity, service name) and remembered
//! with its spec hash and image ID; a multi-service test keeps its network
//! too, where its services reach each other by name as in a one-off run. On
//! each run the pool reconciles the plan with what it holds: an unchanged
//! service is reused (after a status check, and its health check if it was
//! adopted or its last run ended in an error), a changed one is replaced alone
//! on the same network, a service no longer in the plan is removed.
//!
//! Pool objects carry `clnrm.pool=<project key>` besides the session labels,
//! so they outlive their process on purpose: `reap_orphans` leaves them alone,
//! a restarted `clnrm dev` finds and adopts them ([`Pool::adopt_existing`]),
//! and `reap_pool_orphans` (for `cache gc`) removes those no live process uses.
//!
//! The trade-off against hermeticity: a reused container keeps the state the
//! previous run left in it (files written, processes started, a server's
//! data). A test that needs a clean slate must either clean up after itself
//! or run without reuse; a spec change always gives a fresh container.
//!
//! This module does not print.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clnrm_exec::{
    check_plan, create_test_network, health_check, process_alive, resolve_images, run_steps,
    start_service_tracked, unix_now, Backend, ExecError, ManagedKind, PhaseTimings, Reaped,
    ResolvedImage, ResolvedImages, ServiceStart, Session, TestNetwork, TestOutcome, TestReport,
    LABEL_CREATED, LABEL_IMAGE, LABEL_NETWORK, LABEL_PID, LABEL_PID_START, LABEL_POOL,
    LABEL_POOL_LEASE, LABEL_SERVICE, LABEL_SESSION, LABEL_SPEC, LABEL_TEST,
};
use clnrm_plan::{ContainerSpec, TestPlan};
use serde::{Deserialize, Serialize};

/// Limits of a [`Pool`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolOptions {
    /// Beyond this many containers, the least recently used tests' containers
    /// are removed after a run (never those of the test that just ran).
    pub max_containers: usize,
    /// [`Pool::evict_idle`] removes the containers of tests not run for this long.
    pub idle_timeout: Duration,
}

impl Default for PoolOptions {
    fn default() -> Self {
        PoolOptions {
            max_containers: 64,
            idle_timeout: Duration::from_secs(15 * 60),
        }
    }
}

/// What one [`Pool::run_test`] did with containers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolUse {
    /// Pooled containers the test ran in again.
    pub reused: usize,
    /// Containers started for it (first run, changed spec, dead container).
    pub started: usize,
    /// Containers removed: replaced, no longer in the plan, dead, or evicted
    /// (least recently used) after the run.
    pub removed: usize,
}

/// The blake3 of a project root path, hex, as the `clnrm.pool` label value.
pub fn project_key(root: &std::path::Path) -> String {
    let hash = blake3::hash(root.as_os_str().as_encoded_bytes());
    hash.to_hex()[..16].to_string()
}

/// A container kept for one service of one test.
#[derive(Debug, Clone)]
struct Pooled {
    id: String,
    spec_hash: String,
    image_id: String,
    /// The network it joined (name), if any.
    network: Option<String>,
    ports: BTreeMap<u16, u16>,
    /// Known fit: false after adoption or an `error` run, so the spec's health
    /// check runs before it is reused.
    checked: bool,
}

/// The containers (and network) kept for one test.
#[derive(Debug)]
struct PooledTest {
    network: Option<TestNetwork>,
    services: BTreeMap<String, Pooled>,
    last_used: Instant,
}

impl PooledTest {
    fn new() -> PooledTest {
        PooledTest {
            network: None,
            services: BTreeMap::new(),
            last_used: Instant::now(),
        }
    }
}

#[derive(Default)]
struct State {
    /// Tests whose containers are idle, by identity.
    idle: HashMap<String, PooledTest>,
    /// Tests running now: how many containers each holds (for `len`).
    busy: HashMap<String, usize>,
}

/// Service containers kept between runs, reused while their spec is unchanged.
/// All methods take `&self`: tests of different identities may run at once;
/// runs of one identity are serialized.
pub struct Pool {
    backend: Arc<dyn Backend>,
    session: Session,
    root: PathBuf,
    key: String,
    options: PoolOptions,
    state: Mutex<State>,
    /// One lock per identity, so a test never runs twice at once.
    gates: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Our lease network (see `reap_pool_orphans`), once we hold containers of
    /// another (dead) process.
    lease: tokio::sync::Mutex<Option<String>>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("key", &self.key)
            .field("session", &self.session.id)
            .field("containers", &self.len())
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// What a per-service task of [`Pool::acquire`] came back with.
struct Provided {
    service: String,
    /// The container to use now (reused or started), or why there is none.
    result: Result<(Pooled, ServiceStart, bool), ExecError>,
    /// Old containers removed on the way (dead, changed spec).
    removed: Vec<String>,
    errors: Vec<String>,
}

impl Pool {
    pub fn new(
        backend: Arc<dyn Backend>,
        session: Session,
        root: PathBuf,
        project_key: String,
        options: PoolOptions,
    ) -> Pool {
        Pool {
            backend,
            session,
            root,
            key: project_key,
            options,
            state: Mutex::new(State::default()),
            gates: Mutex::new(HashMap::new()),
            lease: tokio::sync::Mutex::new(None),
        }
    }

    /// The project key in the `clnrm.pool` label.
    pub fn project_key(&self) -> &str {
        &self.key
    }

    /// Containers held now (idle and in use).
    pub fn len(&self) -> usize {
        let state = lock(&self.state);
        state.idle.values().map(|t| t.services.len()).sum::<usize>()
            + state.busy.values().sum::<usize>()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The container ID pooled for a service of a test, if any (idle tests only).
    pub fn container_id(&self, identity: &str, service: &str) -> Option<String> {
        lock(&self.state)
            .idle
            .get(identity)
            .and_then(|t| t.services.get(service))
            .map(|p| p.id.clone())
    }

    fn gate(&self, identity: &str) -> Arc<tokio::sync::Mutex<()>> {
        lock(&self.gates)
            .entry(identity.to_string())
            .or_default()
            .clone()
    }

    /// Adopts the running pool containers of this project left by earlier
    /// processes (a `clnrm dev` that was restarted or killed): they are reused
    /// after a health check. Stopped ones, duplicates, and networks nothing
    /// adopted uses are removed, and so are dead processes' leases. Returns how
    /// many containers were adopted.
    pub async fn adopt_existing(&self) -> Result<usize, ExecError> {
        let objects = self.backend.list_managed().await?;
        let ours: Vec<_> = objects
            .into_iter()
            .filter(|o| o.labels.get(LABEL_POOL) == Some(&self.key))
            .collect();
        let networks: HashMap<&str, &clnrm_exec::ManagedObject> = ours
            .iter()
            .filter(|o| o.kind == ManagedKind::Network)
            .map(|o| (o.name.as_str(), o))
            .collect();
        let mut doomed_containers = Vec::new();
        let mut adopted = 0;
        let mut foreign = false;
        {
            let mut state = lock(&self.state);
            let known: std::collections::HashSet<String> = state
                .idle
                .values()
                .flat_map(|t| t.services.values().map(|p| p.id.clone()))
                .collect();
            for o in ours.iter().filter(|o| o.kind == ManagedKind::Container) {
                if known.contains(&o.id) {
                    continue;
                }
                let (Some(identity), Some(service), Some(spec), Some(image)) = (
                    o.labels.get(LABEL_TEST),
                    o.labels.get(LABEL_SERVICE),
                    o.labels.get(LABEL_SPEC),
                    o.labels.get(LABEL_IMAGE),
                ) else {
                    doomed_containers.push(o.id.clone());
                    continue;
                };
                if state.busy.contains_key(identity) {
                    continue;
                }
                if !o.running {
                    doomed_containers.push(o.id.clone());
                    continue;
                }
                let entry = state
                    .idle
                    .entry(identity.clone())
                    .or_insert_with(PooledTest::new);
                if entry.services.contains_key(service) {
                    // Two processes raced for this test: keep one.
                    doomed_containers.push(o.id.clone());
                    continue;
                }
                let network = o.labels.get(LABEL_NETWORK).cloned();
                if entry.network.is_none() {
                    if let Some(net) = network.as_deref().and_then(|n| networks.get(n)) {
                        entry.network = Some(TestNetwork {
                            id: net.id.clone(),
                            name: net.name.clone(),
                        });
                    }
                }
                entry.services.insert(
                    service.clone(),
                    Pooled {
                        id: o.id.clone(),
                        spec_hash: spec.clone(),
                        image_id: image.clone(),
                        network,
                        ports: BTreeMap::new(),
                        checked: false,
                    },
                );
                foreign |= o.labels.get(LABEL_SESSION) != Some(&self.session.id);
                adopted += 1;
            }
        }
        if foreign {
            // Their `clnrm.pid` is dead, but we use them now: say so to `cache gc`.
            if let Err(e) = self.ensure_lease().await {
                tracing::warn!("container pool: cannot take the lease: {e}");
            }
        }
        let in_use: std::collections::HashSet<String> = {
            let state = lock(&self.state);
            state
                .idle
                .values()
                .filter_map(|t| t.network.as_ref().map(|n| n.id.clone()))
                .collect()
        };
        let lease = self.lease.lock().await.clone();
        let doomed_networks: Vec<String> = ours
            .iter()
            .filter(|o| o.kind == ManagedKind::Network)
            .filter(|o| !in_use.contains(&o.id) && Some(&o.id) != lease.as_ref())
            .filter(|o| {
                // Live processes' leases and networks (a concurrent run) stay.
                let pid = o.labels.get(LABEL_PID).and_then(|p| p.parse().ok());
                let start = o.labels.get(LABEL_PID_START).and_then(|s| s.parse().ok());
                let alive = pid.is_some_and(|pid| process_alive(pid, start));
                !alive || o.labels.get(LABEL_SESSION) == Some(&self.session.id)
            })
            .map(|o| o.id.clone())
            .collect();
        let mut reaped = self.remove_containers(doomed_containers).await;
        for net in doomed_networks {
            match self.backend.remove_network(&net).await {
                Ok(()) => reaped.networks.push(net),
                Err(e) => reaped.errors.push(format!("{net}: {e}")),
            }
        }
        for e in &reaped.errors {
            tracing::warn!("container pool: while adopting: {e}");
        }
        Ok(adopted)
    }

    /// Creates our lease once (an empty network labelled with the pool key and
    /// this process), so `reap_pool_orphans` knows the pool is in use.
    async fn ensure_lease(&self) -> Result<(), ExecError> {
        let mut lease = self.lease.lock().await;
        if lease.is_some() {
            return Ok(());
        }
        let mut labels = self.session.labels();
        labels.insert(LABEL_POOL.into(), self.key.clone());
        labels.insert(LABEL_POOL_LEASE.into(), "true".into());
        labels.insert(LABEL_CREATED.into(), unix_now().to_string());
        let name = format!("{}-lease", clnrm_exec::object_name(&self.session));
        *lease = Some(self.backend.create_network(&name, &labels).await?);
        Ok(())
    }

    /// Runs a test in pooled containers: reuses those whose spec and image
    /// are unchanged, replaces the others, removes those of services the plan
    /// no longer has. Nothing is torn down afterwards (`teardown_ms` is 0).
    ///
    /// When `cancel` completes first, the outcome is an `error` ("interrupted");
    /// the containers that were ready stay pooled, half-started ones are removed.
    pub async fn run_test(
        &self,
        identity: &str,
        plan: &TestPlan,
        images: &ResolvedImages,
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
        let gate = self.gate(identity);
        let _running = tokio::select! {
            guard = gate.lock_owned() => guard,
            () = &mut cancel => {
                report.outcome = interrupted();
                report.timings.total_ms = ms(started.elapsed());
                return (report, used);
            }
        };

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
            r = self.acquire(identity, plan, images, &mut test, &pending, &mut used, &mut report) => Some(r),
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
                let (outcome, steps, execute_ms) =
                    run_steps(self.backend.as_ref(), plan, &containers, &mut cancel).await;
                report.outcome = outcome;
                report.steps = steps;
                report.timings.execute_ms = execute_ms;
            }
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
                p.checked = false;
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

    /// Brings the plan's containers up from `test`, recording as it goes (so a
    /// cancelled acquisition leaves `test` and `pending` accurate).
    #[allow(clippy::too_many_arguments)]
    async fn acquire(
        &self,
        identity: &str,
        plan: &TestPlan,
        images: &ResolvedImages,
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
        // Several services share a network of the test's own.
        let want_network = plan.containers.len() > 1 && test.network.is_none();
        let network = async {
            if want_network {
                let mut labels = self.pool_labels();
                labels.insert(LABEL_TEST.into(), identity.to_string());
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
        let network = if plan.containers.len() > 1 {
            test.network.as_ref().map(|n| n.name.clone())
        } else {
            None
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
            if let Some(n) = &network {
                labels.insert(LABEL_NETWORK.into(), n.clone());
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
            match provided.result {
                Ok((pooled, start, fresh)) => {
                    if fresh {
                        used.started += 1;
                    } else {
                        used.reused += 1;
                    }
                    containers.insert(provided.service.clone(), pooled.id.clone());
                    test.services.insert(provided.service, pooled);
                    report.services.push(start);
                }
                Err(e) => {
                    // Its old container (if any) was removed or is unfit.
                    test.services.remove(&provided.service);
                    first_error.get_or_insert(e);
                }
            }
        }
        lock(&self.state)
            .busy
            .insert(identity.to_string(), test.services.len());
        report.services.sort_by(|a, b| a.service.cmp(&b.service));
        match first_error {
            Some(e) => Err(e),
            None => Ok(containers),
        }
    }

    fn pool_labels(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            (LABEL_POOL.to_string(), self.key.clone()),
            (LABEL_CREATED.to_string(), unix_now().to_string()),
        ])
    }

    /// Removes idle tests, least recently used first, until the pool is within
    /// `max_containers` (the test that just ran is kept whatever its size).
    fn lru_victims(&self, state: &mut State, keep: &str) -> Vec<PooledTest> {
        let mut victims = Vec::new();
        loop {
            let total: usize = state.idle.values().map(|t| t.services.len()).sum::<usize>()
                + state.busy.values().sum::<usize>();
            if total <= self.options.max_containers {
                break;
            }
            let oldest = state
                .idle
                .iter()
                .filter(|(id, t)| id.as_str() != keep && !t.services.is_empty())
                .min_by_key(|(_, t)| t.last_used)
                .map(|(id, _)| id.clone());
            let Some(oldest) = oldest else { break };
            if let Some(t) = state.idle.remove(&oldest) {
                victims.push(t);
            }
        }
        victims
    }

    /// Removes the containers and network of a test that was deleted.
    pub async fn forget_test(&self, identity: &str) -> Reaped {
        let gate = self.gate(identity);
        let _running = gate.lock().await;
        let test = lock(&self.state).idle.remove(identity);
        lock(&self.gates).remove(identity);
        match test {
            Some(t) => self.remove_test(t).await,
            None => Reaped::default(),
        }
    }

    /// Removes the containers of tests not run for `idle_timeout`.
    pub async fn evict_idle(&self) -> Reaped {
        let timeout = self.options.idle_timeout;
        let victims: Vec<PooledTest> = {
            let mut state = lock(&self.state);
            let stale: Vec<String> = state
                .idle
                .iter()
                .filter(|(_, t)| t.last_used.elapsed() >= timeout)
                .map(|(id, _)| id.clone())
                .collect();
            stale
                .iter()
                .filter_map(|id| state.idle.remove(id))
                .collect()
        };
        let mut all = Reaped::default();
        for t in victims {
            merge(&mut all, self.remove_test(t).await);
        }
        all
    }

    /// Ends the pool: removes every container and network it holds or this
    /// session created for it, unless `keep` (then they stay for the next
    /// process to adopt). The lease goes either way.
    pub async fn shutdown(&self, keep: bool) -> Reaped {
        let tests: Vec<PooledTest> = {
            let mut state = lock(&self.state);
            state.idle.drain().map(|(_, t)| t).collect()
        };
        let mut all = Reaped::default();
        if !keep {
            for t in tests {
                merge(&mut all, self.remove_test(t).await);
            }
            // Anything of ours the map lost track of (a start cut short).
            match self.backend.list_managed().await {
                Ok(objects) => {
                    let mine = |o: &&clnrm_exec::ManagedObject| {
                        o.labels.get(LABEL_POOL) == Some(&self.key)
                            && o.labels.get(LABEL_SESSION) == Some(&self.session.id)
                            && !o.labels.contains_key(LABEL_POOL_LEASE)
                    };
                    let containers: Vec<String> = objects
                        .iter()
                        .filter(|o| o.kind == ManagedKind::Container)
                        .filter(mine)
                        .map(|o| o.id.clone())
                        .collect();
                    merge(&mut all, self.remove_containers(containers).await);
                    for o in objects
                        .iter()
                        .filter(|o| o.kind == ManagedKind::Network)
                        .filter(mine)
                    {
                        match self.backend.remove_network(&o.id).await {
                            Ok(()) => all.networks.push(o.id.clone()),
                            Err(e) => all.errors.push(format!("{}: {e}", o.id)),
                        }
                    }
                }
                Err(e) => all.errors.push(format!("listing containers: {e}")),
            }
        }
        if let Some(lease) = self.lease.lock().await.take() {
            match self.backend.remove_network(&lease).await {
                Ok(()) => all.networks.push(lease),
                Err(e) => all.errors.push(format!("{lease}: {e}")),
            }
        }
        all
    }

    async fn remove_test(&self, test: PooledTest) -> Reaped {
        let ids = test.services.into_values().map(|p| p.id).collect();
        let mut reaped = self.remove_containers(ids).await;
        if let Some(net) = test.network {
            match self.backend.remove_network(&net.id).await {
                Ok(()) => reaped.networks.push(net.id),
                Err(e) => reaped
                    .errors
                    .push(format!("removing network {}: {e}", net.name)),
            }
        }
        reaped
    }

    /// Removes containers in parallel.
    async fn remove_containers(&self, ids: Vec<String>) -> Reaped {
        let mut reaped = Reaped::default();
        let mut tasks = tokio::task::JoinSet::new();
        for id in ids {
            let backend = self.backend.clone();
            tasks.spawn(async move {
                let r = backend.remove_container(&id).await;
                (id, r)
            });
        }
        while let Some(done) = tasks.join_next().await {
            match done {
                Ok((id, Ok(()))) => reaped.containers.push(id),
                Ok((id, Err(e))) => reaped.errors.push(format!("removing container {id}: {e}")),
                Err(e) => reaped.errors.push(format!("removing a container: {e}")),
            }
        }
        reaped
    }
}

fn merge(all: &mut Reaped, more: Reaped) {
    all.containers.extend(more.containers);
    all.networks.extend(more.networks);
    all.errors.extend(more.errors);
}

fn interrupted() -> TestOutcome {
    TestOutcome::Error {
        message: "interrupted".into(),
    }
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
    existing: Option<Pooled>,
    pending: Arc<Mutex<Vec<String>>>,
}

impl ServiceJob {
    async fn provide(self) -> Provided {
        let backend = self.backend.as_ref();
        let spec = &self.spec;
        let mut removed = Vec::new();
        let mut errors = Vec::new();
        if let Some(old) = self.existing {
            let same = old.spec_hash == spec.hash.0
                && old.image_id == self.image.id
                && (self.network.is_none() || old.network == self.network);
            let t = Instant::now();
            let fit = same
                && if old.checked {
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
                return Provided {
                    service: spec.service.clone(),
                    result: Ok((
                        Pooled {
                            checked: true,
                            ..old
                        },
                        start,
                        false,
                    )),
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
        // `mine` (this job's), until it is ready.
        let mine: Arc<Mutex<Vec<String>>> = Arc::default();
        let track = {
            let pending = self.pending.clone();
            let mine = mine.clone();
            move |id: &str| {
                lock(&pending).push(id.to_string());
                lock(&mine).push(id.to_string());
            }
        };
        let result = start_service_tracked(
            backend,
            &self.session,
            &self.root,
            spec,
            &self.image,
            self.network.as_deref(),
            self.labels,
            &track,
        )
        .await;
        // Ready (now pooled), or removed by start_service_tracked: no longer pending.
        let mine = std::mem::take(&mut *lock(&mine));
        lock(&self.pending).retain(|id| !mine.contains(id));
        let result = result.map(|c| {
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
                checked: true,
            };
            (pooled, start, true)
        });
        Provided {
            service: spec.service.clone(),
            result,
            removed,
            errors,
        }
    }
}
