//! The warm container pool (docs/reference.md §7): service containers stay up between runs
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
//! The pool is split by what happens to a container: `adopt` (taking over
//! containers of earlier processes, and the lease that says they are in use),
//! `acquire` (running a test: reconciling its plan with what the pool holds),
//! `evict` (removal: least recently used, idle, deleted tests, shutdown). This
//! file holds the pool's state and its small accessors. No part of it prints.

mod acquire;
mod adopt;
mod evict;
mod spare;

pub use spare::SpareSummary;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use clnrm_exec::{Backend, Session, TestNetwork};
use serde::{Deserialize, Serialize};

use crate::sync::lock;

/// How a test's runs get their service containers (docs/reference.md §12).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Isolation {
    /// Every run on containers no run has used: a spare set made in the
    /// background, or one started for the run. What `clnrm run` gives.
    #[default]
    Fresh,
    /// The test's containers stay up between its runs and keep their state
    /// (`isolation = "reuse"`).
    Reuse,
}

/// How one run got its containers, as every output labels it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "isolation", rename_all = "lowercase")]
pub enum RunIsolation {
    /// Containers no run used before. `waited_ms` is how long the run waited for
    /// its set: 0 when a spare was ready.
    Fresh { spare_ready: bool, waited_ms: u64 },
    /// The test's warm containers, with what earlier runs left in them.
    Reused,
}

impl RunIsolation {
    /// `fresh (spare ready)`, `fresh (waited 840 ms for a spare)`, `reused`.
    pub fn label(&self) -> String {
        match self {
            RunIsolation::Fresh {
                spare_ready: true, ..
            } => "fresh (spare ready)".into(),
            RunIsolation::Fresh { waited_ms, .. } => {
                format!("fresh (waited {waited_ms} ms for a spare)")
            }
            RunIsolation::Reused => "reused".into(),
        }
    }
}

impl Isolation {
    /// The project's default: `[dev] isolation` of `cleanroom.toml` (fresh when unset).
    pub fn of_project(config: &clnrm_config::ProjectConfig) -> Isolation {
        match config.dev_isolation.as_deref() {
            Some("reuse") => Isolation::Reuse,
            _ => Isolation::Fresh,
        }
    }
}

/// Limits of a [`Pool`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolOptions {
    /// Beyond this many containers, the least recently used tests' containers
    /// are removed after a run (never those of the test that just ran).
    pub max_containers: usize,
    /// [`Pool::evict_idle`] removes the containers of tests not run for this long.
    pub idle_timeout: Duration,
    /// For tests that do not say (`[meta] isolation`): `[dev] isolation`.
    pub isolation: Isolation,
    /// After a fresh run, make the test's next set in the background (`clnrm dev`,
    /// where the test runs again on the next save). Without, each fresh run starts
    /// its own set and removes it after (`run --reuse`: one run per test).
    pub spares: bool,
    /// At most this many spare sets are kept (`[dev] max_spare_sets`); the least
    /// recently run test's goes first.
    pub max_spare_sets: usize,
    /// Spare sets are evicted (least recently run first) while together they use
    /// more memory than this (`[dev] max_spare_memory_mb`).
    pub max_spare_memory: u64,
}

/// The default count bound: the tests run in the last few saves.
pub const DEFAULT_MAX_SPARE_SETS: usize = 8;
/// The default memory bound of the spare sets, in MiB.
pub const DEFAULT_MAX_SPARE_MEMORY_MB: u64 = 2048;

impl Default for PoolOptions {
    fn default() -> Self {
        PoolOptions {
            max_containers: 64,
            idle_timeout: Duration::from_secs(15 * 60),
            isolation: Isolation::Fresh,
            spares: false,
            max_spare_sets: DEFAULT_MAX_SPARE_SETS,
            max_spare_memory: DEFAULT_MAX_SPARE_MEMORY_MB * 1024 * 1024,
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
    /// Fresh or reused, and how long a fresh run waited for its set.
    pub isolation: Option<RunIsolation>,
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
    /// check runs before it is reused (a status check is enough otherwise).
    known_fit: bool,
    /// The collector's address it was created with (its network's gateway, in
    /// [`LABEL_COLLECTOR`]): it sends spans there. `None`: created for a test that
    /// collects none.
    collector: Option<String>,
}

/// The label naming the collector address a pooled container was created with, so an
/// adopting process knows whether it can reuse it for a test that collects spans.
const LABEL_COLLECTOR: &str = "clnrm.collector";

/// The label of the containers and network of a spare set: a later process cannot
/// tell whether a run used them, so it never adopts them (it removes them).
pub const LABEL_SPARE: &str = "clnrm.spare";

/// The containers (and network) kept for one test.
#[derive(Debug)]
struct PooledTest {
    network: Option<TestNetwork>,
    /// The network's gateway, asked once (a network keeps its subnet): where a test
    /// collecting spans is received, on every re-run.
    gateway: Option<std::net::IpAddr>,
    services: BTreeMap<String, Pooled>,
    last_used: Instant,
    /// A fresh set (labelled [`LABEL_SPARE`]), removed after its one run.
    spare: bool,
}

impl PooledTest {
    fn new() -> PooledTest {
        PooledTest {
            network: None,
            gateway: None,
            services: BTreeMap::new(),
            last_used: Instant::now(),
            spare: false,
        }
    }
}

#[derive(Default)]
struct PoolState {
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
    state: Mutex<PoolState>,
    /// One lock per identity, so a test never runs twice at once.
    test_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Our lease network (see `reap_pool_orphans`), once we hold containers of
    /// another (dead) process.
    lease: tokio::sync::Mutex<Option<String>>,
    /// The spare sets, one per test, and the sets being removed.
    spares: spare::Spares,
    /// How each test's last run got its containers, for the dev panel.
    last_isolation: Mutex<HashMap<String, RunIsolation>>,
    /// The pool itself, for the background tasks that make and remove spare sets;
    /// empty when it was not made with [`Pool::shared`] (then no spares are made).
    me: Weak<Pool>,
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

/// The outcome of a run cut short by Ctrl-C or SIGTERM.
fn interrupted() -> clnrm_exec::TestOutcome {
    clnrm_exec::TestOutcome::Error {
        message: "interrupted".into(),
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
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
            state: Mutex::new(PoolState::default()),
            test_locks: Mutex::new(HashMap::new()),
            lease: tokio::sync::Mutex::new(None),
            spares: spare::Spares::default(),
            last_isolation: Mutex::new(HashMap::new()),
            me: Weak::new(),
        }
    }

    /// A pool that can make spare sets in the background (`options.spares`).
    pub fn shared(
        backend: Arc<dyn Backend>,
        session: Session,
        root: PathBuf,
        project_key: String,
        options: PoolOptions,
    ) -> Arc<Pool> {
        Arc::new_cyclic(|me| Pool {
            me: me.clone(),
            ..Pool::new(backend, session, root, project_key, options)
        })
    }

    /// How the last run of a test got its containers (fresh or reused).
    pub fn last_isolation(&self, identity: &str) -> Option<RunIsolation> {
        lock(&self.last_isolation).get(identity).copied()
    }

    /// The isolation a test's runs get: its own `[meta] isolation`, else the pool's.
    /// The test's own `[meta] isolation`, else the project's.
    fn isolation_of(&self, plan: &clnrm_plan::TestPlan) -> Isolation {
        match plan.isolation {
            Some(clnrm_config::Isolation::Fresh) => Isolation::Fresh,
            Some(clnrm_config::Isolation::Reuse) => Isolation::Reuse,
            None => self.options.isolation,
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

    fn test_lock(&self, identity: &str) -> Arc<tokio::sync::Mutex<()>> {
        lock(&self.test_locks)
            .entry(identity.to_string())
            .or_default()
            .clone()
    }
}
