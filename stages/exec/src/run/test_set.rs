//! What a test works with: its inputs ([`TestRun`]), the request that creates
//! each of its containers, and what it created ([`Resources`]), so teardown
//! finds it whatever happened.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;

use clnrm_plan::{ContainerSpec, TestPlan};
use futures_util::future::join_all;

use super::services::sanitize;
use crate::engine::session::{LABEL_SERVICE, LABEL_SPEC, LABEL_TEST};
use crate::lock;
use crate::{Backend, ContainerRequest, ResolvedImage, ServiceAdditions, Session, SpanCollector};

/// Images by service name.
pub type ResolvedImages = BTreeMap<String, ResolvedImage>;

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

/// What a test created, so teardown finds it whatever happened.
#[derive(Default)]
pub(crate) struct Resources {
    /// A network of the test's own (removed at teardown); a claimed spare is
    /// not here: removing the containers hands it back.
    network: Mutex<Option<String>>,
    containers: Mutex<Vec<String>>,
    /// The container claiming a spare network: removed after the others, so none of
    /// them is left on the network once another test claims it (its service names
    /// would answer beside that test's, its spans reach that test's receiver).
    claim_last: Mutex<Option<String>>,
}

impl Resources {
    pub(crate) fn remember_container(&self, id: &str) {
        lock(&self.containers).push(id.to_string());
    }

    /// A network of the test's own: removed at teardown.
    pub(crate) fn remember_network(&self, id: String) {
        *lock(&self.network) = Some(id);
    }

    /// `id` holds the claim on a spare network: teardown removes it last.
    pub(crate) fn remember_claim(&self, id: &str) {
        *lock(&self.claim_last) = Some(id.to_string());
    }

    pub(crate) async fn teardown(&self, backend: &dyn Backend) -> Vec<String> {
        let mut containers = std::mem::take(&mut *lock(&self.containers));
        let claim_last = lock(&self.claim_last)
            .take()
            .filter(|id| containers.contains(id));
        containers.retain(|c| Some(c) != claim_last.as_ref());
        let network = lock(&self.network).take();
        let mut errors = Vec::new();
        for batch in [containers, claim_last.into_iter().collect()] {
            for (id, r) in join_all(
                batch
                    .iter()
                    .map(|id| async move { (id, backend.remove_container(id).await) }),
            )
            .await
            {
                if let Err(e) = r {
                    errors.push(format!("removing container {id}: {e}"));
                }
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

/// The request of one service's container. With `claim`, the first
/// service's container is named after the network: creating it claims the
/// network.
pub(crate) fn container_request<'a>(
    run: TestRun<'a>,
    spec: &'a ContainerSpec,
    image: &'a ResolvedImage,
    base_name: &str,
    network: Option<&'a str>,
    claim: &str,
    extra: &Extra<'_>,
) -> ContainerRequest<'a> {
    let mut labels = run.session.labels();
    labels.insert(LABEL_SPEC.into(), spec.hash.0.clone());
    labels.insert(LABEL_SERVICE.into(), spec.service.clone());
    labels.insert(LABEL_TEST.into(), run.plan.name.clone());
    let index = run
        .plan
        .containers
        .iter()
        .position(|c| c.service == spec.service)
        .unwrap_or(0);
    let name = if index == 0 && !claim.is_empty() {
        claim.to_string()
    } else {
        format!("{base_name}-{index}-{}", sanitize(&spec.service))
    };
    ContainerRequest {
        spec,
        image,
        name,
        network,
        labels,
        root: run.root,
        extra_env: extra
            .collector
            .map(|c| c.service_env(&spec.service))
            .unwrap_or_default(),
        extra_hosts: extra.additions.extra_hosts.clone(),
    }
}

/// What span collection adds to every service container: the OTEL environment and the
/// collector's host entry.
pub(crate) struct Extra<'a> {
    pub(crate) collector: Option<&'a dyn SpanCollector>,
    pub(crate) additions: &'a ServiceAdditions,
}

static NO_ADDITIONS: ServiceAdditions = ServiceAdditions {
    extra_hosts: Vec::new(),
};

impl Extra<'static> {
    pub(crate) const NONE: Extra<'static> = Extra {
        collector: None,
        additions: &NO_ADDITIONS,
    };
}
