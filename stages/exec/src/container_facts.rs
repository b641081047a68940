//! What a [`DockerBackend`] learns once about a container it runs commands
//! in: its environment, whether it has a `sh`, whether it is a pooled (warm)
//! container, and its persistent step runner (`step_runner`). Forgotten when
//! the container is removed, so a new container gets a new runner.

use std::collections::HashMap;
use std::sync::Arc;

use testcontainers::bollard::models::ContainerInspectResponse;

use crate::docker::{engine, DockerBackend};
use crate::session::LABEL_POOL;
use crate::step_runner::RunnerState;
use crate::ExecError;

#[derive(Default)]
pub(crate) struct ContainerFacts {
    /// The container's environment (image and service), as `KEY=value`.
    env: Option<Vec<String>>,
    /// Whether its image has a `sh` to run commands through; `None`: not tried yet.
    shell: Option<bool>,
    /// Kept between runs on purpose ([`LABEL_POOL`]): worth a step runner.
    pooled: bool,
    runner: Arc<tokio::sync::Mutex<RunnerState>>,
}

impl DockerBackend {
    pub(crate) fn facts(&self) -> std::sync::MutexGuard<'_, HashMap<String, ContainerFacts>> {
        self.containers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether commands in `container` can go through `sh`, if known.
    pub(crate) fn has_shell(&self, container: &str) -> Option<bool> {
        self.facts().get(container).and_then(|f| f.shell)
    }

    pub(crate) fn remember_shell(&self, container: &str, shell: bool) {
        self.facts().entry(container.to_string()).or_default().shell = Some(shell);
    }

    /// Inspects the container and keeps what it says.
    pub(crate) async fn inspect_and_learn(
        &self,
        container: &str,
    ) -> Result<ContainerInspectResponse, ExecError> {
        let info = self
            .docker
            .inspect_container(container, None)
            .await
            .map_err(engine)?;
        self.learn(container, &info);
        Ok(info)
    }

    fn learn(&self, container: &str, info: &ContainerInspectResponse) {
        let config = info.config.as_ref();
        let mut facts = self.facts();
        let known = facts.entry(container.to_string()).or_default();
        known.env = Some(config.and_then(|c| c.env.clone()).unwrap_or_default());
        known.pooled = config
            .and_then(|c| c.labels.as_ref())
            .is_some_and(|l| l.contains_key(LABEL_POOL));
    }

    /// The container's environment (image and service `env`), inspected once.
    pub(crate) async fn container_env(&self, container: &str) -> Result<Vec<String>, ExecError> {
        if let Some(env) = self.facts().get(container).and_then(|f| f.env.clone()) {
            return Ok(env);
        }
        self.inspect_and_learn(container).await?;
        Ok(self
            .facts()
            .get(container)
            .and_then(|f| f.env.clone())
            .unwrap_or_default())
    }

    /// The step runner of a pooled container; `None` for any other.
    pub(crate) fn runner_of(
        &self,
        container: &str,
    ) -> Option<Arc<tokio::sync::Mutex<RunnerState>>> {
        let facts = self.facts();
        let known = facts.get(container)?;
        known.pooled.then(|| known.runner.clone())
    }
}
