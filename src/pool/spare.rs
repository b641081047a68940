//! Fresh runs (docs/reference.md §12): every run of a test gets service containers no
//! run has used, so its result is the one `clnrm run` would give, while the start is
//! paid in the background. A spare set is one more state of a pooled set:
//!
//! - *preparing*: a background task removes the set the last run used (with its
//!   anonymous volumes) and starts the next one, health checks included;
//! - *ready*: that task has finished; the set waits, unused, for the next run;
//! - *leased*: a run took it (it waits for a preparing one, and never falls back
//!   to used containers);
//! - *retiring*: its run is over, or its spec changed, or the bounds evicted it;
//!   a background task removes it.
//!
//! Spares are made only where the test will run again (`clnrm dev`,
//! [`PoolOptions::spares`](super::PoolOptions)); elsewhere a fresh run starts its own
//! set and removes it after. A test collecting spans always gets a set (and network)
//! started for its run: its receiver must listen before its services start. The dev
//! loop only ever asks the pool to run a test; how the set was made is this file's.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use clnrm_exec::{
    ExecError, PhaseTimings, Reaped, ResolvedImages, ServiceStart, SpanCollector, TestOutcome,
    TestReport,
};
use clnrm_plan::TestPlan;
use serde::Serialize;
use tokio::task::JoinHandle;

use super::evict::add_reaped;
use super::{interrupted, ms, Pool, PoolUse, PooledTest, RunIsolation};
use crate::sync::lock;

/// One fresh run's test: what its set is made from.
#[derive(Clone, Copy)]
pub(super) struct FreshRun<'a> {
    pub identity: &'a str,
    pub plan: &'a TestPlan,
    pub images: &'a ResolvedImages,
    pub collector: Option<&'a dyn SpanCollector>,
}

/// A test's containers made for one run: up, healthy, never used.
pub(super) struct FreshSet {
    test: PooledTest,
    /// What the run's report says of each service (IDs, ports, start times).
    services: Vec<ServiceStart>,
    started: usize,
}

type SetTask = JoinHandle<Result<FreshSet, ExecError>>;

/// One test's spare set: preparing while its task runs, ready once it has finished.
struct Spare {
    /// What the set is made from (see [`spare_key`]): a changed spec retires it.
    key: String,
    task: SetTask,
    last_used: Instant,
    /// What its containers use of memory, measured once it is ready; until then
    /// the test's previous set's figure ([`NOT_MEASURED`] when none is known).
    memory: Arc<AtomicU64>,
}

/// A spare's memory before anything was measured.
const NOT_MEASURED: u64 = u64::MAX;

impl Spare {
    fn memory(&self) -> Option<u64> {
        Some(self.memory.load(Ordering::Relaxed)).filter(|m| *m != NOT_MEASURED)
    }
}

/// The spare sets by test, and the background removals not yet awaited.
#[derive(Default)]
pub(super) struct Spares {
    sets: Mutex<HashMap<String, Spare>>,
    /// What each test's last leased set was measured to use: the estimate for its next.
    measured: Mutex<HashMap<String, u64>>,
    retiring: Mutex<Vec<JoinHandle<Reaped>>>,
}

/// The spare sets held now (the panel's `spares 3 ready · 412 MB`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct SpareSummary {
    /// Sets up, healthy and unused.
    pub ready: usize,
    /// Sets being made (the used set removed, the next one starting).
    pub preparing: usize,
    /// What the sets' containers use together (a set being made counts with its
    /// test's last figure), when the engine says.
    pub memory_mb: Option<f64>,
}

/// Everything a spare set is made from: each service's spec hash and image ID.
fn spare_key(plan: &TestPlan, images: &ResolvedImages) -> String {
    let mut hasher = blake3::Hasher::new();
    for container in &plan.containers {
        let image = images
            .get(&container.service)
            .map(|i| i.id.as_str())
            .unwrap_or("");
        for part in [container.service.as_str(), &container.hash.0, image] {
            hasher.update(&(part.len() as u64).to_le_bytes());
            hasher.update(part.as_bytes());
        }
    }
    hasher.finalize().to_hex().to_string()
}

fn empty_report(plan: &TestPlan) -> TestReport {
    TestReport {
        name: plan.name.clone(),
        outcome: TestOutcome::Pass,
        steps: Vec::new(),
        services: Vec::new(),
        timings: PhaseTimings::default(),
        teardown_errors: Vec::new(),
    }
}

impl Pool {
    /// Runs a test on a fresh set: a ready spare, the one being prepared, or (with
    /// no spares, or spans to collect) one started now. The used set is removed
    /// afterwards, in the background when the next spare is made from it.
    pub(super) async fn run_fresh(
        &self,
        run: FreshRun<'_>,
        cancel: &mut Pin<&mut impl Future<Output = ()>>,
        report: &mut TestReport,
        used: &mut PoolUse,
    ) {
        let t = Instant::now();
        let with_spares =
            self.options.spares && run.collector.is_none() && self.me.strong_count() > 0;
        let got = if with_spares {
            self.lease(run, cancel).await
        } else {
            self.start_set(run, cancel)
                .await
                .map(|set| set.map(|set| (set, false)))
        };
        report.timings.containers_ms = ms(t.elapsed());
        let (set, spare_ready) = match got {
            None => {
                report.outcome = interrupted();
                return;
            }
            Some(Err(e)) => {
                report.outcome = TestOutcome::Error {
                    message: e.to_string(),
                };
                if with_spares {
                    // The next save may have fixed what failed: try again meanwhile.
                    self.prepare_next(run, None);
                }
                return;
            }
            Some(Ok(got)) => got,
        };
        used.isolation = Some(RunIsolation::Fresh {
            spare_ready,
            waited_ms: if spare_ready {
                0
            } else {
                t.elapsed().as_millis() as u64
            },
        });
        used.started += set.started;
        report.services = set.services;
        let containers: BTreeMap<String, String> = set
            .test
            .services
            .iter()
            .map(|(service, p)| (service.clone(), p.id.clone()))
            .collect();
        self.steps_on(run.plan, &containers, run.collector, cancel, report)
            .await;
        if let Some(collector) = run.collector {
            collector.stop().await;
        }
        if with_spares {
            used.removed += set.test.services.len();
            self.prepare_next(run, Some(set.test));
        } else {
            let removed = self.remove_test(set.test).await;
            used.removed += removed.containers.len();
            report.teardown_errors.extend(removed.errors);
        }
    }

    /// Takes the test's spare set, waiting for it while it is prepared; a spare of
    /// a changed spec is retired and a new set made. `None`: cancelled.
    async fn lease(
        &self,
        run: FreshRun<'_>,
        cancel: &mut Pin<&mut impl Future<Output = ()>>,
    ) -> Option<Result<(FreshSet, bool), ExecError>> {
        let key = spare_key(run.plan, run.images);
        let taken = lock(&self.spares.sets).remove(run.identity);
        if let Some(memory) = taken.as_ref().and_then(Spare::memory) {
            lock(&self.spares.measured).insert(run.identity.to_string(), memory);
        }
        let (mut task, made_earlier) = match taken {
            Some(spare) if spare.key == key => (spare.task, true),
            stale => {
                if let Some(stale) = stale {
                    self.retire(stale.task);
                }
                let unmeasured = Arc::new(AtomicU64::new(NOT_MEASURED));
                (self.spawn_set(run, None, unmeasured), false)
            }
        };
        let mut ready = task.is_finished();
        let set = tokio::select! {
            joined = &mut task => joined_set(joined),
            () = cancel.as_mut() => {
                self.retire(task);
                return None;
            }
        };
        let set = match set {
            Ok(set) if ready && !self.all_running(&set.test).await => {
                // It died while it waited (a server that crashed): never run on it.
                let removed = self.remove_test(set.test).await;
                for e in removed.errors {
                    tracing::warn!("removing a dead spare set: {e}");
                }
                ready = false;
                self.start_set(run, cancel).await?
            }
            // Made in the background while something was wrong (the engine
            // restarting, an image being built): try again, now, for this run.
            Err(e) if made_earlier => {
                tracing::debug!("the spare set had failed ({e}); starting one for the run");
                ready = false;
                self.start_set(run, cancel).await?
            }
            other => other,
        };
        Some(set.map(|set| (set, ready)))
    }

    /// Whether every container of a set is still running (one status call each,
    /// side by side).
    async fn all_running(&self, test: &PooledTest) -> bool {
        let mut checks = tokio::task::JoinSet::new();
        for p in test.services.values() {
            let backend = self.backend.clone();
            let id = p.id.clone();
            checks.spawn(async move { backend.container_status(&id).await });
        }
        while let Some(status) = checks.join_next().await {
            if !matches!(status, Ok(Ok(s)) if s.running) {
                return false;
            }
        }
        true
    }

    /// Starts a set for one run now. On failure or cancel, nothing of it is left.
    async fn start_set(
        &self,
        run: FreshRun<'_>,
        cancel: &mut Pin<&mut impl Future<Output = ()>>,
    ) -> Option<Result<FreshSet, ExecError>> {
        let mut test = PooledTest::new();
        test.spare = true;
        let pending: Arc<Mutex<Vec<String>>> = Arc::default();
        let mut used = PoolUse::default();
        let mut report = empty_report(run.plan);
        let acquired = tokio::select! {
            r = self.acquire(
                run.identity, run.plan, run.images, run.collector,
                &mut test, &pending, &mut used, &mut report,
            ) => Some(r),
            () = cancel.as_mut() => None,
        };
        let error = match acquired {
            Some(Ok(_)) => {
                return Some(Ok(FreshSet {
                    test,
                    services: report.services,
                    started: used.started,
                }))
            }
            Some(Err(e)) => Some(e),
            None => None,
        };
        let half_started = std::mem::take(&mut *lock(&pending));
        let mut removed = self.remove_containers(half_started).await;
        add_reaped(&mut removed, self.remove_test(test).await);
        for e in removed.errors.iter().chain(&report.teardown_errors) {
            tracing::warn!("removing a set that did not start: {e}");
        }
        error.map(Err)
    }

    /// A background task that removes `used` (if any), then makes the test's next
    /// set and writes what its containers use of memory into `memory`.
    fn spawn_set(
        &self,
        run: FreshRun<'_>,
        used: Option<PooledTest>,
        memory: Arc<AtomicU64>,
    ) -> SetTask {
        let pool = self.me.upgrade();
        let identity = run.identity.to_string();
        let plan = run.plan.clone();
        let images = run.images.clone();
        tokio::spawn(async move {
            let Some(pool) = pool else {
                return Err(ExecError::Engine(
                    "the container pool is shutting down".into(),
                ));
            };
            if let Some(used) = used {
                for e in pool.remove_test(used).await.errors {
                    tracing::warn!("removing a used set: {e}");
                }
            }
            let run = FreshRun {
                identity: &identity,
                plan: &plan,
                images: &images,
                collector: None,
            };
            let mut never = std::pin::pin!(std::future::pending::<()>());
            let set = pool
                .start_set(run, &mut never)
                .await
                .unwrap_or_else(|| Err(ExecError::Engine("a spare set was cut short".into())));
            if let Ok(set) = &set {
                if let Some(used) = pool.memory_of(&set.test).await {
                    memory.store(used, Ordering::Relaxed);
                }
            }
            set
        })
    }

    /// Makes the test's next spare (removing `used` first) and keeps the spare sets
    /// within `max_spare_sets`, retiring the least recently run test's first.
    fn prepare_next(&self, run: FreshRun<'_>, used: Option<PooledTest>) {
        // Until the new set is measured, it is taken to use what the last one did.
        let memory = Arc::new(AtomicU64::new(
            self.last_spare_memory(run.identity).unwrap_or(NOT_MEASURED),
        ));
        let spare = Spare {
            key: spare_key(run.plan, run.images),
            task: self.spawn_set(run, used, memory.clone()),
            last_used: Instant::now(),
            memory,
        };
        let evicted = {
            let mut sets = lock(&self.spares.sets);
            if let Some(old) = sets.insert(run.identity.to_string(), spare) {
                self.retire(old.task);
            }
            let mut evicted = Vec::new();
            let over_memory = |sets: &HashMap<String, Spare>| {
                sets.values().filter_map(Spare::memory).sum::<u64>() > self.options.max_spare_memory
            };
            while sets.len() > self.options.max_spare_sets.max(1) || over_memory(&sets) {
                let Some(oldest) = sets
                    .iter()
                    .filter(|(identity, _)| identity.as_str() != run.identity)
                    .min_by_key(|(_, spare)| spare.last_used)
                    .map(|(identity, _)| identity.clone())
                else {
                    break;
                };
                evicted.extend(sets.remove(&oldest));
            }
            evicted
        };
        for spare in evicted {
            self.retire(spare.task);
        }
    }

    /// Removes a set once its task has made it, in the background.
    fn retire(&self, task: SetTask) {
        let Some(pool) = self.me.upgrade() else {
            task.abort();
            return;
        };
        let removal = tokio::spawn(async move {
            match joined_set(task.await) {
                Ok(set) => pool.remove_test(set.test).await,
                Err(_) => Reaped::default(),
            }
        });
        let mut retiring = lock(&self.spares.retiring);
        retiring.retain(|h| !h.is_finished());
        retiring.push(removal);
    }

    /// Retires every spare set and waits for every removal: spares never outlive
    /// their process, since a later one could not tell whether a run used them.
    pub(super) async fn remove_spares(&self) -> Reaped {
        let sets: Vec<Spare> = lock(&self.spares.sets).drain().map(|(_, s)| s).collect();
        for spare in sets {
            self.retire(spare.task);
        }
        let removals = std::mem::take(&mut *lock(&self.spares.retiring));
        let mut all = Reaped::default();
        for removal in removals {
            if let Ok(reaped) = removal.await {
                add_reaped(&mut all, reaped);
            }
        }
        all
    }

    /// How many spare sets are ready, how many are being made, and what they use of
    /// memory.
    pub fn spare_summary(&self) -> SpareSummary {
        let sets = lock(&self.spares.sets);
        let ready: Vec<&Spare> = sets.values().filter(|s| s.task.is_finished()).collect();
        // A set being made counts with its test's last figure: it will use that soon.
        let memory: Vec<u64> = sets.values().filter_map(Spare::memory).collect();
        SpareSummary {
            ready: ready.len(),
            preparing: sets.len() - ready.len(),
            memory_mb: (!memory.is_empty())
                .then(|| memory.iter().sum::<u64>() as f64 / (1024.0 * 1024.0)),
        }
    }

    /// What the test's last leased set was measured to use, if anything.
    fn last_spare_memory(&self, identity: &str) -> Option<u64> {
        lock(&self.spares.measured).get(identity).copied()
    }

    /// What a set's containers use of memory together, when the engine says for each.
    async fn memory_of(&self, test: &PooledTest) -> Option<u64> {
        let mut total = 0;
        for p in test.services.values() {
            total += self.backend.container_memory(&p.id).await?;
        }
        Some(total)
    }
}

/// A set task's result, a panic in it counted as an engine error.
fn joined_set(
    joined: Result<Result<FreshSet, ExecError>, tokio::task::JoinError>,
) -> Result<FreshSet, ExecError> {
    joined.unwrap_or_else(|e| Err(ExecError::Engine(format!("making a set failed: {e}"))))
}
