//! The network of a test collecting spans: claimed as a multi-service test claims one,
//! with the collector bound on its gateway once the claim is won (docs/otel.md).

use super::{
    create_all, new_spare_network, own_network, Extra, ResolvedImages, Resources, TestRun,
    SPARE_CLAIMS,
};
use crate::{ExecError, ManagedObject, ServiceAdditions, SpanCollector};

/// The network a test collecting spans claimed, its containers created on it.
pub(super) struct SpanNetwork {
    pub(super) network: String,
    /// A spare claimed (false: a network of the test's own).
    pub(super) claim: bool,
    pub(super) created: Vec<String>,
    pub(super) additions: ServiceAdditions,
}

/// Claims a network for a test collecting spans, as a multi-service test does, then binds
/// the collector on its gateway. The host entry naming the gateway is known before the
/// creates (which claim the network); the listener is bound only once the claim is won,
/// so no two tests listen on one gateway.
pub(super) async fn claim_for_spans(
    run: TestRun<'_>,
    collector: &dyn SpanCollector,
    resources: &Resources,
    images: &ResolvedImages,
    base_name: &str,
    spares: &mut Vec<ManagedObject>,
) -> Result<SpanNetwork, ExecError> {
    let mut attempt = 0;
    loop {
        let (network, claim, listed) = match spares.pop().filter(|_| attempt < SPARE_CLAIMS) {
            Some(spare) => (spare.name, true, spare.gateway),
            None if attempt <= SPARE_CLAIMS => {
                let name = format!("{base_name}-net{attempt}");
                (new_spare_network(run.backend, name).await?, true, None)
            }
            None => (own_network(run, resources, base_name).await?, false, None),
        };
        attempt += 1;
        let gateway = match listed {
            Some(gateway) => gateway,
            None => run.backend.network_gateway(&network).await?,
        };
        let additions = collector.additions(gateway);
        let extra = Extra {
            collector: Some(collector),
            additions: &additions,
        };
        let Some(created) = create_all(
            run,
            resources,
            images,
            base_name,
            Some(&network),
            claim,
            &extra,
        )
        .await?
        else {
            continue;
        };
        if let (true, Some(first)) = (claim, created.first()) {
            resources.remember_claim(first);
        }
        collector
            .network_ready(gateway)
            .await
            .map_err(ExecError::Engine)?;
        return Ok(SpanNetwork {
            network,
            claim,
            created,
            additions,
        });
    }
}
