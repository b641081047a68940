//! What the engine learns once about a container it runs commands in: its
//! environment, and whether it has a `sh`. Forgotten when the container is removed.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use testcontainers::bollard::models::ContainerInspectResponse;

#[derive(Default)]
struct ContainerFacts {
    /// The container's environment (image and service), as `KEY=value`.
    env: Option<Vec<String>>,
    /// Whether its image has a `sh` to run commands through; `None`: not tried yet.
    shell: Option<bool>,
}

/// The facts of every container learned so far, by container ID.
#[derive(Default)]
pub(crate) struct KnownContainers(Mutex<HashMap<String, ContainerFacts>>);

impl KnownContainers {
    fn facts(&self) -> MutexGuard<'_, HashMap<String, ContainerFacts>> {
        crate::lock(&self.0)
    }

    /// Whether commands in `container` can go through `sh`, if known.
    pub(crate) fn has_shell(&self, container: &str) -> Option<bool> {
        self.facts().get(container).and_then(|f| f.shell)
    }

    pub(crate) fn remember_shell(&self, container: &str, shell: bool) {
        self.facts().entry(container.to_string()).or_default().shell = Some(shell);
    }

    /// Keeps what an inspect of `container` says.
    pub(crate) fn learn(&self, container: &str, info: &ContainerInspectResponse) {
        let config = info.config.as_ref();
        let mut facts = self.facts();
        let known = facts.entry(container.to_string()).or_default();
        known.env = Some(config.and_then(|c| c.env.clone()).unwrap_or_default());
    }

    /// The container's environment, when it was learned.
    pub(crate) fn env(&self, container: &str) -> Option<Vec<String>> {
        self.facts().get(container).and_then(|f| f.env.clone())
    }

    /// The container is gone.
    pub(crate) fn forget(&self, container: &str) {
        self.facts().remove(container);
    }
}
