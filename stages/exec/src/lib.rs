//! The exec stage: a [`TestPlan`](clnrm_plan::TestPlan) runs in containers and
//! becomes a [`TestReport`] whose outcome is `pass`, `fail` or `error` (docs/reference.md §5).
//!
//! Container work goes through the small [`Backend`] trait; [`DockerBackend`]
//! is the real one (the Engine API through bollard, as re-exported by
//! testcontainers). [`run_test`] drives a test: the services it uses start in
//! parallel on a network of the test's own, each becomes ready (health check),
//! the steps run in order by exec in their service's container (so state
//! persists between steps), and every container and the network are removed at
//! the end — on failure and on cancellation too.
//!
//! For container reuse (`clnrm dev`, `run --reuse`) the same pieces are
//! public on their own: [`start_service`] and [`create_test_network`] bring
//! services up, [`health_check`] checks one before it is reused, and
//! [`run_steps`] runs a plan's steps in containers that already exist.
//! Containers kept on purpose carry [`LABEL_POOL`]; [`reap_orphans`] leaves
//! them alone and [`reap_pool_orphans`] is their garbage collector. Test
//! networks are kept too, as spares ([`LABEL_SPARE_NETWORK`]), so the next
//! test with several services, in this process or another, starts without
//! creating one.
//!
//! This crate does not print (diagnostics go to `tracing`) and does not know
//! about the cache.

mod engine;
mod run;
mod runner;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use clnrm_plan::{ContainerSpec, ImageSource};
use futures_util::FutureExt;
use serde::{Deserialize, Serialize};

pub use engine::context::{build_context, BuildContext, DockerIgnore};
pub use engine::engine_socket::{
    discover_engine, engine_label, engine_location, EngineChoice, EngineLocation,
};
pub use engine::session::{
    host_name, process_alive, reap_orphans, reap_pool_orphans, remove_session, spare_in_use,
    trim_spare_networks, unix_now, Reaped, Session, LABEL_CREATED, LABEL_HOST, LABEL_IMAGE,
    LABEL_MANAGED, LABEL_NETWORK, LABEL_PID, LABEL_PID_START, LABEL_POOL, LABEL_POOL_LEASE,
    LABEL_SERVICE, LABEL_SESSION, LABEL_SPARE_NETWORK, LABEL_SPEC, LABEL_TEST, SPARE_NETWORKS_KEPT,
};
/// The future every [`Backend`] and [`SpanCollector`] method returns.
pub use futures_util::future::BoxFuture;
pub use run::outcome::{
    AttemptResult, CapturedValue, Mismatch, PhaseTimings, ServiceStart, StepFailure, StepResult,
    StepStatus, TestOutcome, TestReport,
};
pub use run::services::{
    create_test_network, health_check, object_name, start_service, ServiceToStart,
    StartedContainer, TestNetwork,
};
pub use run::steps::{check_plan, run_steps};
pub use run::test_run::{resolve_images, run_test, run_test_collecting, run_test_until};
pub use run::test_set::{ResolvedImages, TestRun};
pub use runner::docker_backend::DockerBackend;
/// The Engine API client, for what [`Backend`] does not cover (`clnrm doctor`'s probes).
pub use testcontainers::bollard;

/// A mutex's guard, also after a panic elsewhere while it was held: what it guards
/// here (progress, runner slots, learned facts) stays usable, and a cleanup must run.
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Bump when the meaning of a [`TestReport`] changes (2: a service with its own `args`
/// runs under the engine's init, so its steps see another PID 1).
pub const STAGE_VERSION: u32 = 2;

/// Why a container operation failed.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExecError {
    /// The engine did not answer.
    #[error(
        "cannot reach {} at {endpoint}: {reason} (set DOCKER_HOST to point elsewhere; `clnrm doctor` says what is wrong)",
        engine::engine_socket::engine_label(.endpoint)
    )]
    EngineUnreachable { endpoint: String, reason: String },
    /// An image is neither local nor pullable.
    #[error("image `{reference}` is not available locally and could not be pulled: {reason}")]
    ImageUnavailable { reference: String, reason: String },
    /// A `build` failed.
    #[error("building {context} failed: {reason}")]
    BuildFailed { context: String, reason: String },
    /// A service container did not start or did not become ready.
    #[error("service `{service}`: {reason}")]
    Service { service: String, reason: String },
    /// Any other answer of the engine.
    #[error("{0}")]
    Engine(String),
}

/// An image ready to start containers from.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Hash)]
pub struct ResolvedImage {
    /// The engine's image ID (`sha256:...`): what a result depends on.
    pub id: String,
    /// The reference containers are created from (the given one, or `clnrm-build/<hash>`).
    pub reference: String,
    /// For `build` images: the context hash.
    pub context_hash: Option<String>,
    /// How it was obtained.
    pub source: ImageOrigin,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum ImageOrigin {
    /// Already local.
    Local,
    /// Pulled from a registry now.
    Pulled,
    /// Built now from its context.
    Built,
}

/// Everything needed to create one service container.
#[derive(Debug, Clone)]
pub struct ContainerRequest<'a> {
    pub spec: &'a ContainerSpec,
    pub image: &'a ResolvedImage,
    /// Container name (unique on the engine).
    pub name: String,
    /// Network the container joins, with the service name as its alias;
    /// `None`: the engine's default bridge (a test with one service needs no
    /// network of its own, and creating and removing one costs ~0.3 s).
    pub network: Option<&'a str>,
    pub labels: BTreeMap<String, String>,
    /// The project root: relative volume host paths are joined to it.
    pub root: &'a Path,
    /// Environment added for span collection; the spec's own `env` wins on a clash.
    pub extra_env: BTreeMap<String, String>,
    /// `/etc/hosts` entries (`otel-collector:172.18.0.1`).
    pub extra_hosts: Vec<String>,
}

/// What span collection adds to every service container of a test.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceAdditions {
    pub extra_hosts: Vec<String>,
}

/// Receives a test's spans while it runs (docs/reference.md §9); the engine's OTLP receiver implements it
/// and the exec stage only calls it, at the three moments that need containers alive.
pub trait SpanCollector: Send + Sync {
    /// The environment `service` gets (its spec's own values win).
    fn service_env(&self, service: &str) -> BTreeMap<String, String>;
    /// What every service container of a network whose gateway is `gateway` gets (its
    /// host entry): known before the containers are created, which claims the network.
    fn additions(&self, gateway: IpAddr) -> ServiceAdditions;
    /// The test holds its network (the claim is won) and `gateway` is the host's address on
    /// it: start receiving there. Only the claim's holder listens on a gateway.
    fn network_ready(&self, gateway: IpAddr) -> BoxFuture<'_, Result<(), String>>;
    /// A receiver this run shares on the engine's default bridge, when it has one: a test
    /// with one service then runs there, its container created with these additions, and
    /// its spans are told apart by the container's address ([`SpanCollector::sender_started`]).
    /// `None`: the test claims a network of its own, as without.
    fn default_bridge<'a>(
        &'a self,
        backend: &'a dyn Backend,
    ) -> BoxFuture<'a, Option<ServiceAdditions>>;
    /// On the default bridge: the test's container started at `address`; spans from it
    /// since `since` (taken before its create) are this test's.
    fn sender_started(&self, address: IpAddr, since: Instant);
    /// Stop receiving: the listeners are closed when this returns. Called before the
    /// test's containers are removed (which hands its network to the next test).
    fn stop(&self) -> BoxFuture<'_, ()>;
    /// Every service runs in a warm container found ready: each `wait_for_span` was met
    /// when they started, in an earlier run, and is not waited for again (the span that
    /// announced readiness is not sent twice).
    fn already_ready(&self);
    /// Before the first step that runs in `service`: waits for its `wait_for_span`, if any.
    /// `Err` is the test's error message.
    fn before_first_step<'a>(&'a self, service: &'a str) -> BoxFuture<'a, Result<(), String>>;
    /// After the last step passed, before teardown: waits until the spans are in.
    fn after_steps(&self) -> BoxFuture<'_, ()>;
}

/// A container that started.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ContainerStarted {
    /// Container port → host port, for the spec's `ports`.
    pub ports: BTreeMap<u16, u16>,
    /// Its state right after the start (from the same inspect as the ports),
    /// so readiness needs no inspect of its own.
    pub status: ContainerStatus,
    /// Its IPv4 address on the default bridge (`None` on other networks): where the spans
    /// it sends to a receiver shared on the bridge come from.
    pub bridge_address: Option<IpAddr>,
}

/// State of a container, for readiness checks.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ContainerStatus {
    pub running: bool,
    pub exit_code: Option<i64>,
    /// The engine's status word (`running`, `exited`, ...).
    pub status: String,
    pub oom_killed: bool,
}

/// A command to run in a running container.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ExecRequest {
    /// Executed as is.
    pub argv: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub workdir: Option<String>,
    /// The command is killed when it runs longer.
    pub timeout: Duration,
}

/// What an exec produced.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ExecOutput {
    /// `None` when it timed out (or the engine did not say).
    pub exit_code: Option<i64>,
    pub stdout: String,
    pub stderr: String,
    pub timed_out: bool,
    /// Output beyond the capture limit was dropped.
    pub truncated: bool,
    /// Set when the command timed out and could not be ended inside its
    /// container, so the container was killed: why (the container is gone
    /// for later commands and must be replaced).
    #[serde(default)]
    pub killed_container: Option<String>,
    /// How long the engine's calls took, to tell its time from clnrm's own.
    #[serde(default)]
    pub phases: ExecPhases,
}

/// Where an exec's time went on the engine's side: each API call, timed
/// around its round trip. A step's duration minus [`ExecPhases::engine`] is
/// clnrm's own share (argv wrapping, stream handling, bookkeeping).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ExecPhases {
    /// Creating the exec (`POST /containers/{id}/exec`).
    pub create: Duration,
    /// Starting it and attaching to its output, until the first answer.
    pub start: Duration,
    /// The command running, until its output stream ended.
    pub wait: Duration,
    /// Asking for the exit code (`GET /exec/{id}/json`), when the stream did not carry it.
    pub inspect: Duration,
    /// Engine API calls made.
    pub calls: u32,
}

impl ExecPhases {
    /// The time spent waiting on the engine.
    pub fn engine(&self) -> Duration {
        self.create + self.start + self.wait + self.inspect
    }

    /// Both execs' phases, for a command that took more than one exec.
    pub fn add(&mut self, other: &ExecPhases) {
        self.create += other.create;
        self.start += other.start;
        self.wait += other.wait;
        self.inspect += other.inspect;
        self.calls += other.calls;
    }
}

/// A container or network carrying `clnrm.managed=true`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ManagedObject {
    pub kind: ManagedKind,
    pub id: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// Containers only: whether it is running.
    pub running: bool,
    /// Networks only: the host's IPv4 address on it, when the listing said (saves an
    /// inspect for a test that receives spans there).
    #[serde(default)]
    pub gateway: Option<IpAddr>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum ManagedKind {
    Container,
    Network,
}

/// Engine facts, from [`Backend::ping`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct EngineInfo {
    /// Where the engine was reached (`unix:///var/run/docker.sock`, `tcp://...`).
    pub endpoint: String,
    pub version: String,
    pub api_version: String,
}

/// The container operations the exec stage needs. Object safe: every method
/// returns a boxed future, so `&dyn Backend` works and tests can fake it.
pub trait Backend: Send + Sync {
    /// Checks that the engine answers.
    fn ping(&self) -> BoxFuture<'_, Result<EngineInfo, ExecError>>;
    /// A local image by reference; pulls a missing one; builds a `build` context
    /// once as `clnrm-build/<context hash>` and reuses it afterwards.
    fn ensure_image<'a>(
        &'a self,
        image: &'a ImageSource,
        root: &'a Path,
    ) -> BoxFuture<'a, Result<ResolvedImage, ExecError>>;
    /// Creates a network; returns its ID.
    fn create_network<'a>(
        &'a self,
        name: &'a str,
        labels: &'a BTreeMap<String, String>,
    ) -> BoxFuture<'a, Result<String, ExecError>>;
    /// The host's address on a network (its IPv4 gateway).
    fn network_gateway<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<IpAddr, ExecError>> {
        Box::pin(async move {
            Err(ExecError::Engine(format!(
                "this backend cannot tell the gateway of network {id}"
            )))
        })
    }
    /// Creates (does not start) a container; returns its ID.
    fn create_container<'a>(
        &'a self,
        request: &'a ContainerRequest<'a>,
    ) -> BoxFuture<'a, Result<String, ExecError>>;
    /// Starts a created container; fails when it exits right away.
    fn start_container<'a>(
        &'a self,
        id: &'a str,
    ) -> BoxFuture<'a, Result<ContainerStarted, ExecError>>;
    fn container_status<'a>(
        &'a self,
        id: &'a str,
    ) -> BoxFuture<'a, Result<ContainerStatus, ExecError>>;
    /// The last `lines` lines of a container's output (stdout and stderr).
    fn container_logs<'a>(
        &'a self,
        id: &'a str,
        lines: usize,
    ) -> BoxFuture<'a, Result<String, ExecError>>;
    /// What a running container uses of memory now, in bytes (less the page cache),
    /// when the engine says; for the dev panel's spare sets.
    fn container_memory<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Option<u64>> {
        let _ = id;
        Box::pin(async { None })
    }
    /// Runs a command in a running container; on timeout the command is killed
    /// inside the container (never by a host signal) and the output so far
    /// returned with `timed_out`. When it cannot be ended inside, the container
    /// is killed instead and `killed_container` says why.
    fn exec<'a>(
        &'a self,
        container: &'a str,
        request: &'a ExecRequest,
    ) -> BoxFuture<'a, Result<ExecOutput, ExecError>>;
    /// Removes a container, running or not; a missing one is not an error.
    fn remove_container<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), ExecError>>;
    /// Removes a network; a missing one is not an error.
    fn remove_network<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), ExecError>>;
    /// Every container (running or not) and network labelled `clnrm.managed=true`.
    fn list_managed(&self) -> BoxFuture<'_, Result<Vec<ManagedObject>, ExecError>>;
    /// The spare test networks of this host ([`LABEL_SPARE_NETWORK`]), free or claimed.
    fn list_spare_networks(&self) -> BoxFuture<'_, Result<Vec<ManagedObject>, ExecError>> {
        async move {
            let host = host_name();
            Ok(self
                .list_managed()
                .await?
                .into_iter()
                .filter(|o| {
                    o.kind == ManagedKind::Network
                        && o.labels.get(LABEL_SPARE_NETWORK) == Some(&host)
                })
                .collect())
        }
        .boxed()
    }
    /// Removes an image by reference or ID; a missing one is not an error.
    fn remove_image<'a>(&'a self, reference: &'a str) -> BoxFuture<'a, Result<(), ExecError>>;
    /// Image IDs by reference for every `clnrm-build/*` image (for `cache gc`).
    fn list_build_images(&self) -> BoxFuture<'_, Result<Vec<(String, String)>, ExecError>>;
}
