//! [`DockerBackend`]: the [`Backend`] a test runs on. Every engine call goes
//! to the engine layer ([`DockerEngine`]); a command in a pooled container
//! goes first to the container's step runner (`step_runner`), and by exec
//! when the runner cannot run it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use clnrm_plan::ImageSource;
use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use testcontainers::bollard::Docker;

use super::step_runner::{fit_environment, fits, Ran, Runner, RunnerState};
use crate::engine::docker::{DockerEngine, IdleMain};
use crate::engine::docker_answers::docker_endpoint;
use crate::engine::docker_exec::{AttachedInput, AttachedOutput};
use crate::{
    lock, Backend, ContainerRequest, ContainerStarted, ContainerStatus, EngineInfo, ExecError,
    ExecOutput, ExecRequest, ManagedObject, ResolvedImage, LABEL_POOL,
};

/// `CLNRM_STEP_RUNNER=off` keeps every step on exec.
const SWITCH: &str = "CLNRM_STEP_RUNNER";

/// A container's runner, and whether it is being started ahead of its first step.
#[derive(Default)]
struct Slot {
    state: Arc<tokio::sync::Mutex<RunnerState>>,
    starting: AtomicBool,
}

type RunnerSlot = Arc<Slot>;

/// A [`Backend`] on the Docker Engine API.
#[derive(Clone)]
pub struct DockerBackend {
    engine: DockerEngine,
    /// Steps in pooled containers may go through a step runner (`step_runner`).
    step_runner: bool,
    /// The step runner of each pooled container, by container ID; forgotten
    /// when the container is removed, so a new container gets a new runner.
    runners: Arc<std::sync::Mutex<HashMap<String, RunnerSlot>>>,
    /// Containers created with the step runner as their main process, not yet started.
    runner_mains: Arc<std::sync::Mutex<HashSet<String>>>,
}

impl std::fmt::Debug for DockerBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DockerBackend")
            .field("endpoint", &self.engine.endpoint())
            .finish()
    }
}

impl DockerBackend {
    /// Connects to the engine named by `DOCKER_HOST` (default
    /// `unix:///var/run/docker.sock`) and agrees on an API version. Fails with
    /// [`ExecError::EngineUnreachable`], naming where it looked.
    pub async fn connect() -> Result<DockerBackend, ExecError> {
        Self::connect_to(&docker_endpoint()).await
    }

    /// Connects to the engine at `endpoint` (`unix:///...`, `tcp://...`, `http://...`).
    pub async fn connect_to(endpoint: &str) -> Result<DockerBackend, ExecError> {
        Ok(DockerBackend {
            engine: DockerEngine::connect_to(endpoint).await?,
            step_runner: switched_on(),
            runners: Arc::default(),
            runner_mains: Arc::default(),
        })
    }

    /// The bollard client, for what the trait does not cover.
    pub fn docker(&self) -> &Docker {
        self.engine.docker()
    }

    pub fn endpoint(&self) -> &str {
        self.engine.endpoint()
    }

    /// This backend with every command on exec, as with `CLNRM_STEP_RUNNER=off`
    /// (it shares what the original learned of containers).
    pub fn without_step_runner(&self) -> DockerBackend {
        let mut exec_only = self.clone();
        exec_only.step_runner = false;
        exec_only
    }

    /// The step runner of a container (every container clnrm runs steps in:
    /// pooled ones as in `clnrm dev`, a test's own in `clnrm run`).
    fn runner_of(&self, container: &str) -> RunnerSlot {
        let mut runners = lock(&self.runners);
        runners.entry(container.to_string()).or_default().clone()
    }

    /// Starts the container's runner right after the container, beside
    /// whatever comes before its first step (other services, readiness), so
    /// that step finds it attached and costs no exec.
    fn start_runner_early(&self, container: &str) {
        if !self.step_runner {
            return;
        }
        let backend = self.clone();
        let id = container.to_string();
        self.prepare_runner(container, async move { backend.started_runner(&id).await });
    }

    /// Puts what `starting` gives in the container's runner slot, in the background;
    /// a step that comes first waits for it (less than an exec of its own).
    fn prepare_runner(
        &self,
        container: &str,
        starting: impl std::future::Future<Output = RunnerState> + Send + 'static,
    ) {
        let slot = self.runner_of(container);
        let Ok(mut state) = slot.state.clone().try_lock_owned() else {
            return;
        };
        slot.starting.store(true, Ordering::SeqCst);
        tokio::spawn(async move {
            if matches!(*state, RunnerState::Untried) {
                *state = starting.await;
            }
            slot.starting.store(false, Ordering::SeqCst);
        });
    }

    /// The runner on the container's main process, attached at its start: no exec.
    fn adopt_main_runner(
        &self,
        container: &str,
        streams: Result<(AttachedOutput, AttachedInput), String>,
    ) {
        let backend = self.clone();
        let id = container.to_string();
        self.prepare_runner(container, async move {
            let adopted = async {
                let env = backend
                    .engine
                    .container_env(&id)
                    .await
                    .map_err(|e| e.to_string())?;
                // Unfit: the streams are dropped, the shell's stdin closes and the
                // container idles for steps by exec.
                fit_environment(&env)?;
                Runner::adopt(
                    &backend.engine,
                    &id,
                    streams?,
                    backend.engine.status_marker(),
                )
                .await
            };
            match adopted.await {
                Ok(runner) => RunnerState::Live(Box::new(runner)),
                Err(why) => runner_off(&id, &why),
            }
        });
    }

    /// A new runner for the container, or why not (logged).
    async fn started_runner(&self, container: &str) -> RunnerState {
        let env = match self.engine.container_env(container).await {
            Ok(env) => env,
            Err(e) => return runner_off(container, &e.to_string()),
        };
        let marker = self.engine.status_marker();
        match Runner::start(&self.engine, container, &env, marker).await {
            Ok(runner) => RunnerState::Live(Box::new(runner)),
            Err(why) => runner_off(container, &why),
        }
    }

    /// Runs a command: through the container's step runner when it can, by exec otherwise.
    async fn exec_in_container(
        &self,
        container: &str,
        request: &ExecRequest,
    ) -> Result<ExecOutput, ExecError> {
        if let Some(output) = self.through_runner(container, request).await {
            return output;
        }
        self.engine.exec_in_container(container, request).await
    }

    /// A command through the container's step runner, when it is a pooled
    /// container whose runner can run it; `None`: it goes through exec.
    async fn through_runner(
        &self,
        container: &str,
        request: &ExecRequest,
    ) -> Option<Result<ExecOutput, ExecError>> {
        if !self.step_runner || !fits(request) {
            return None;
        }
        let env = self.engine.container_env(container).await.ok()?;
        let slot = self.runner_of(container);
        // Busy with another command at the same time: that one goes by exec;
        // still starting: worth the wait (less than an exec of its own).
        let mut state = if slot.starting.load(Ordering::SeqCst) {
            slot.state.lock().await
        } else {
            slot.state.try_lock().ok()?
        };
        if matches!(&*state, RunnerState::Live(r) if r.in_flight) {
            tracing::info!(
                container,
                "a step was abandoned mid-way in the step runner: starting a new runner"
            );
            *state = RunnerState::Untried;
        }
        if matches!(*state, RunnerState::Untried) {
            *state = self.started_runner(container).await;
        }
        let RunnerState::Live(runner) = &mut *state else {
            return None;
        };
        match runner.run(request, &env, self.engine.status_marker()).await {
            Ok(Ran::Output(output)) => Some(Ok(output)),
            Ok(Ran::UseExec(why)) => {
                tracing::info!(container, argv = ?request.argv, "this step runs by exec: {why}");
                None
            }
            Err(failed) => {
                tracing::info!(
                    container,
                    "the step runner failed ({}): this container's steps run by exec from now on",
                    failed.why
                );
                *state = RunnerState::Off;
                // The container died under the step (its main process ended, the OOM
                // killer): every process in it was killed, the step too, as exec would
                // report it (128 + SIGKILL); the caller then explains the death.
                if failed.sent && self.container_ended(container).await {
                    return Some(Ok(ExecOutput {
                        exit_code: Some(KILLED_WITH_ITS_CONTAINER),
                        stdout: String::new(),
                        stderr: String::new(),
                        timed_out: false,
                        truncated: false,
                        killed_container: None,
                        phases: Default::default(),
                    }));
                }
                failed.sent.then(|| {
                    Err(ExecError::Engine(format!(
                        "the step runner in container {container} failed during the step: {}",
                        failed.why
                    )))
                })
            }
        }
    }
}

fn runner_off(container: &str, why: &str) -> RunnerState {
    tracing::info!(container, "steps run by exec, not a step runner: {why}");
    RunnerState::Off
}

impl DockerBackend {
    /// Whether the container has stopped; a runner whose stream ended first is
    /// given the engine's moment to record it (as after an exec's SIGKILL).
    async fn container_ended(&self, container: &str) -> bool {
        for _ in 0..10 {
            match self.engine.container_status(container).await {
                Ok(status) if !status.running => return true,
                Ok(_) => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
                Err(_) => return false,
            }
        }
        false
    }
}

/// How a step's process ended when its container died under it: SIGKILL (128 + 9).
const KILLED_WITH_ITS_CONTAINER: i64 = 137;

/// Whether the user left the runner on.
fn switched_on() -> bool {
    std::env::var(SWITCH).map_or(true, |v| v != "off" && v != "0")
}

/// Every call but a command's goes straight to the engine.
impl Backend for DockerBackend {
    fn ping(&self) -> BoxFuture<'_, Result<EngineInfo, ExecError>> {
        self.engine.ping()
    }

    fn ensure_image<'a>(
        &'a self,
        image: &'a ImageSource,
        root: &'a Path,
    ) -> BoxFuture<'a, Result<ResolvedImage, ExecError>> {
        self.engine.ensure_image(image, root)
    }

    fn create_network<'a>(
        &'a self,
        name: &'a str,
        labels: &'a BTreeMap<String, String>,
    ) -> BoxFuture<'a, Result<String, ExecError>> {
        self.engine.create_network(name, labels)
    }

    fn network_gateway<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<IpAddr, ExecError>> {
        self.engine.network_gateway(id)
    }

    fn create_container<'a>(
        &'a self,
        request: &'a ContainerRequest<'a>,
    ) -> BoxFuture<'a, Result<String, ExecError>> {
        async move {
            // A test's own idle container (not pooled: a pooled one outlives this
            // process, and with it the attach its runner would need) hosts its steps
            // with the runner as its main process.
            let idle = if self.step_runner
                && request.spec.command.is_none()
                && !request.labels.contains_key(LABEL_POOL)
            {
                IdleMain::StepRunner
            } else {
                IdleMain::Sleep
            };
            let id = self.engine.create_container_with(request, idle).await?;
            if idle == IdleMain::StepRunner {
                lock(&self.runner_mains).insert(id.clone());
            }
            Ok(id)
        }
        .boxed()
    }

    fn start_container<'a>(
        &'a self,
        id: &'a str,
    ) -> BoxFuture<'a, Result<ContainerStarted, ExecError>> {
        async move {
            if lock(&self.runner_mains).remove(id) {
                // Attached beside the start: the shell writes nothing before the
                // runner's first question, so nothing is missed.
                let (streams, started) = futures_util::join!(
                    self.engine.attach_main(id),
                    self.engine.start_container(id)
                );
                let started = started?;
                self.adopt_main_runner(id, streams);
                return Ok(started);
            }
            let started = self.engine.start_container(id).await?;
            self.start_runner_early(id);
            Ok(started)
        }
        .boxed()
    }

    fn container_status<'a>(
        &'a self,
        id: &'a str,
    ) -> BoxFuture<'a, Result<ContainerStatus, ExecError>> {
        self.engine.container_status(id)
    }

    fn container_logs<'a>(
        &'a self,
        id: &'a str,
        lines: usize,
    ) -> BoxFuture<'a, Result<String, ExecError>> {
        self.engine.container_logs(id, lines)
    }

    fn container_memory<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Option<u64>> {
        self.engine.container_memory(id)
    }

    fn exec<'a>(
        &'a self,
        container: &'a str,
        request: &'a ExecRequest,
    ) -> BoxFuture<'a, Result<ExecOutput, ExecError>> {
        self.exec_in_container(container, request).boxed()
    }

    fn remove_container<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), ExecError>> {
        async move {
            lock(&self.runners).remove(id);
            lock(&self.runner_mains).remove(id);
            self.engine.remove_container(id).await
        }
        .boxed()
    }

    fn remove_network<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), ExecError>> {
        self.engine.remove_network(id)
    }

    fn list_managed(&self) -> BoxFuture<'_, Result<Vec<ManagedObject>, ExecError>> {
        self.engine.list_managed()
    }

    fn list_spare_networks(&self) -> BoxFuture<'_, Result<Vec<ManagedObject>, ExecError>> {
        self.engine.list_spare_networks()
    }

    fn remove_image<'a>(&'a self, reference: &'a str) -> BoxFuture<'a, Result<(), ExecError>> {
        self.engine.remove_image(reference)
    }

    fn list_build_images(&self) -> BoxFuture<'_, Result<Vec<(String, String)>, ExecError>> {
        self.engine.list_build_images()
    }
}
