//! Bringing a test's containers up without waiting on each other: each
//! container is started right after its own create, not after every create
//! of the test (three creates cost 50-85 ms that parallel `docker start`s of
//! the same image do not pay).
//!
//! On a claimed spare network the first container's name is the claim
//! (`test_run`): it is created alone, and the others only once its create has
//! won the claim, so a lost claim leaves nothing of the test on another test's
//! network, and the first start overlaps the other creates instead of waiting
//! behind them. Three services were ready in 455-488 ms this way, against
//! 565-621 ms with every create at once and 463-549 ms for three parallel
//! `docker start`s of containers created beforehand (same rounds, release build).

use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

use futures_util::future::try_join_all;
use tokio::sync::watch;

use super::progress::Progress;
use super::services::{create, is_name_taken, start_and_ready};
use super::test_set::{container_request, Extra, ResolvedImages, Resources, TestRun};
use crate::lock;
use crate::{ContainerRequest, ExecError, ServiceStart, SpanCollector};

/// What the create of the claiming (first) container said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Claim {
    Won,
    Lost,
    /// Its create failed otherwise: that error ends the start.
    Failed,
}

/// Where a test's containers come up.
pub(crate) struct Placement<'a> {
    pub(crate) base_name: &'a str,
    pub(crate) network: Option<&'a str>,
    /// The first container's name claims `network` (a spare).
    pub(crate) claim: bool,
    /// What span collection adds to each container.
    pub(crate) extra: &'a Extra<'a>,
    /// On the default bridge, the collector that tells the test's spans apart by the
    /// address its container started at.
    pub(crate) spans_by_address: Option<&'a dyn SpanCollector>,
    /// The collector to bind on `network`'s gateway before any container starts: once
    /// the claim is won, so only the claim's holder listens there.
    pub(crate) listen_on: Option<(&'a dyn SpanCollector, IpAddr)>,
}

/// Creates and starts every container of the plan, each as soon as it can;
/// returns (service, container ID) in plan order, each ready. `None`: the
/// claim on the spare network was lost and nothing else was created.
pub(crate) async fn create_and_start_all(
    run: TestRun<'_>,
    resources: &Resources,
    progress: &Mutex<Progress>,
    images: &ResolvedImages,
    image_ms: f64,
    place: &Placement<'_>,
) -> Result<Option<Vec<(String, String)>>, ExecError> {
    let claim_name = if place.claim {
        place.network.unwrap_or("")
    } else {
        ""
    };
    let listen = || async {
        match place.listen_on {
            Some((collector, gateway)) => collector
                .network_ready(gateway)
                .await
                .map_err(ExecError::Engine),
            None => Ok(()),
        }
    };
    if !place.claim {
        listen().await?;
    }
    let (claim_tx, claim_rx) = watch::channel(None::<Claim>);
    let claim_tx = &claim_tx;
    let pipelines = run.plan.containers.iter().enumerate().map(|(index, spec)| {
        let request = container_request(
            run,
            spec,
            &images[&spec.service],
            place.base_name,
            place.network,
            claim_name,
            place.extra,
        );
        let mut claim_rx = claim_rx.clone();
        async move {
            if place.claim && index != 0 {
                let said = claim_rx
                    .wait_for(Option::is_some)
                    .await
                    .map(|c| *c)
                    .unwrap_or(Some(Claim::Failed));
                // A failed claim is the first container's error to tell.
                if said != Some(Claim::Won) {
                    return Ok(None);
                }
            }
            let t = Instant::now();
            let created = create(run.backend, &request).await;
            if let Ok(id) = &created {
                resources.remember_container(id);
            }
            if place.claim && index == 0 {
                let mut said = match &created {
                    Ok(id) => {
                        resources.remember_claim(id);
                        Claim::Won
                    }
                    Err(e) if is_name_taken(e) => Claim::Lost,
                    Err(_) => Claim::Failed,
                };
                let listening = match said {
                    Claim::Won => listen().await,
                    _ => Ok(()),
                };
                if listening.is_err() {
                    said = Claim::Failed;
                }
                claim_tx.send_replace(Some(said));
                listening?;
                if said == Claim::Lost {
                    return Ok(None);
                }
            }
            let id = created?;
            start_recorded(
                run,
                &request,
                id,
                t,
                image_ms,
                progress,
                place.spans_by_address,
            )
            .await
            .map(Some)
        }
    });
    let started = try_join_all(pipelines).await?;
    Ok(started.into_iter().collect())
}

/// Starts a created container, waits until it is ready and records it in
/// the test's progress; `since` is when its create began. With `spans_by_address`, the
/// collector learns the address the container's spans come from.
async fn start_recorded(
    run: TestRun<'_>,
    request: &ContainerRequest<'_>,
    id: String,
    since: Instant,
    image_ms: f64,
    progress: &Mutex<Progress>,
    spans_by_address: Option<&dyn SpanCollector>,
) -> Result<(String, String), ExecError> {
    let spec = request.spec;
    let started = start_and_ready(run.backend, request, id, since)
        .await
        .map_err(|(_, e)| e)?;
    if let Some(collector) = spans_by_address {
        let Some(address) = started.bridge_address else {
            return Err(ExecError::Service {
                service: spec.service.clone(),
                reason: "it has no address on the default bridge, which its spans are \
                         received by"
                    .into(),
            });
        };
        collector.sender_started(address, since);
    }
    lock(progress).services.push(ServiceStart {
        service: spec.service.clone(),
        container_id: started.id.clone(),
        image_id: request.image.id.clone(),
        spec_hash: spec.hash.0.clone(),
        ports: started.ports,
        image_ms,
        start_ms: started.start_ms,
        ready_ms: started.ready_ms,
    });
    Ok((spec.service.clone(), started.id))
}
