//! Creating a network on the Docker engine within clnrm's address range
//! (`network_space`): a free /24 of the range, the next one when the engine says
//! another network took it meanwhile, the engine's own choice only once the range is
//! full, and, when the engine has no address space left at all, a wait for a network
//! to be released instead of an error (the test runs late rather than not at all).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use testcontainers::bollard::models::{Ipam, IpamConfig, NetworkCreateRequest};
use testcontainers::bollard::query_parameters::ListNetworksOptions;

use super::docker::DockerEngine;
use super::docker_answers::{engine, engine_shares_our_files};
use super::network_space::{
    free_subnets, host_routes, is_out_of_address_space, is_subnet_taken, range_from, Subnet,
    RANGE_VAR,
};
use crate::ExecError;

/// How long a create waits for address space before it gives up with the engine's error.
const ADDRESS_SPACE_PATIENCE: Duration = Duration::from_secs(300);

/// How often a waiting create looks again when no network of this process was released
/// (another process's may have been).
const ADDRESS_SPACE_RECHECK: Duration = Duration::from_secs(1);

impl DockerEngine {
    /// Creates a bridge network named `name`; returns its ID. Waits while the engine
    /// has no address space left (see the module's comment).
    pub(crate) async fn create_bridge_network(
        &self,
        name: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<String, ExecError> {
        waiting_for_address_space(
            name,
            &self.network_released,
            ADDRESS_SPACE_PATIENCE,
            ADDRESS_SPACE_RECHECK,
            || self.create_in_range(name, labels),
        )
        .await
    }

    /// One try: a free /24 of the range, else the engine's own choice.
    async fn create_in_range(
        &self,
        name: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<String, ExecError> {
        let range =
            range_from(std::env::var(RANGE_VAR).ok().as_deref()).map_err(ExecError::Engine)?;
        if let Some(range) = range {
            let mut taken = self.subnets_in_use().await?;
            if engine_shares_our_files(self.endpoint()) {
                if let Ok(table) = std::fs::read_to_string("/proc/net/route") {
                    taken.extend(host_routes(&table));
                }
            }
            let start = usize::from(blake3::hash(name.as_bytes()).as_bytes()[0]);
            for subnet in free_subnets(range, &taken, start) {
                // Another create of this process is trying it right now.
                if !self.subnets_in_flight_insert(subnet) {
                    continue;
                }
                let created = self.create_with(name, labels, Some(subnet)).await;
                self.subnets_in_flight_remove(subnet);
                match created {
                    Err(ExecError::Engine(message)) if is_subnet_taken(&message) => continue,
                    other => return other,
                }
            }
            tracing::info!("no free /24 left in {range} ({RANGE_VAR}); the engine picks one");
        }
        self.create_with(name, labels, None).await
    }

    async fn create_with(
        &self,
        name: &str,
        labels: &BTreeMap<String, String>,
        subnet: Option<Subnet>,
    ) -> Result<String, ExecError> {
        let ipam = subnet.map(|subnet| Ipam {
            driver: Some("default".into()),
            config: Some(vec![IpamConfig {
                subnet: Some(subnet.to_string()),
                ..Default::default()
            }]),
            ..Default::default()
        });
        let created = self
            .docker()
            .create_network(NetworkCreateRequest {
                name: name.to_string(),
                driver: Some("bridge".into()),
                labels: Some(labels.clone().into_iter().collect()),
                ipam,
                ..Default::default()
            })
            .await
            .map_err(engine)?;
        Ok(created.id)
    }

    /// The IPv4 subnets of every network on the engine, clnrm's or not.
    async fn subnets_in_use(&self) -> Result<Vec<Subnet>, ExecError> {
        let networks = self
            .docker()
            .list_networks(None::<ListNetworksOptions>)
            .await
            .map_err(engine)?;
        Ok(networks
            .iter()
            .filter_map(|n| n.ipam.as_ref()?.config.as_ref())
            .flatten()
            .filter_map(|config| Subnet::parse(config.subnet.as_deref()?))
            .collect())
    }

    /// Marks `subnet` as being tried by this process; `false` when it already is.
    fn subnets_in_flight_insert(&self, subnet: Subnet) -> bool {
        self.subnets_in_flight
            .lock()
            .map(|mut set| set.insert(subnet))
            .unwrap_or(true)
    }

    fn subnets_in_flight_remove(&self, subnet: Subnet) {
        if let Ok(mut set) = self.subnets_in_flight.lock() {
            set.remove(&subnet);
        }
    }
}

/// Runs `attempt` until it gets past the engine having no address space: after each
/// such failure it waits for `released` (a network of this process removed) or
/// `recheck` (another process's may have been), for up to `patience` in all.
async fn waiting_for_address_space<F, Fut>(
    name: &str,
    released: &tokio::sync::Notify,
    patience: Duration,
    recheck: Duration,
    mut attempt: F,
) -> Result<String, ExecError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<String, ExecError>>,
{
    let started = Instant::now();
    let mut said_waiting = false;
    loop {
        // Registered before the attempt, so a release during it is not missed.
        let notified = released.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        match attempt().await {
            Err(ExecError::Engine(message))
                if is_out_of_address_space(&message) && started.elapsed() < patience =>
            {
                if !said_waiting {
                    tracing::warn!(
                        "network {name}: the engine has no address space left ({message}); \
                         waiting for a network to be released"
                    );
                    said_waiting = true;
                }
                let _ = tokio::time::timeout(recheck, notified).await;
            }
            Err(ExecError::Engine(message)) if is_out_of_address_space(&message) => {
                return Err(ExecError::Engine(format!(
                    "{message} (waited {} s for a network to be released; `clnrm cache gc` \
                     removes clnrm's unused ones, `docker network ls` shows the rest)",
                    patience.as_secs()
                )));
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use super::*;

    const EXHAUSTED: &str = "could not find an available, non-overlapping IPv4 address pool \
                             among the defaults to assign to the network";

    #[tokio::test]
    async fn a_create_without_address_space_waits_for_a_release_and_then_succeeds() {
        let released = Arc::new(tokio::sync::Notify::new());
        let tries = AtomicUsize::new(0);
        let releaser = {
            let released = released.clone();
            tokio::spawn(async move {
                for _ in 0..20 {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    released.notify_waiters();
                }
            })
        };
        let started = Instant::now();
        let created = waiting_for_address_space(
            "net",
            &released,
            Duration::from_secs(30),
            // Long: only the releases can end the waits this quickly.
            Duration::from_secs(20),
            || async {
                match tries.fetch_add(1, Ordering::SeqCst) {
                    0 | 1 => Err(ExecError::Engine(EXHAUSTED.into())),
                    _ => Ok("id".to_string()),
                }
            },
        )
        .await;
        assert_eq!(created, Ok("id".to_string()));
        assert_eq!(tries.load(Ordering::SeqCst), 3);
        assert!(started.elapsed() < Duration::from_secs(10));
        releaser.abort();
    }

    #[tokio::test]
    async fn other_errors_are_not_waited_on_and_patience_ends_with_advice() {
        let released = tokio::sync::Notify::new();
        let other = waiting_for_address_space(
            "net",
            &released,
            Duration::from_secs(30),
            Duration::from_millis(5),
            || async {
                Err(ExecError::Engine(
                    "network with name net already exists".into(),
                ))
            },
        )
        .await;
        assert_eq!(
            other,
            Err(ExecError::Engine(
                "network with name net already exists".into()
            ))
        );
        let tries = AtomicUsize::new(0);
        let given_up = waiting_for_address_space(
            "net",
            &released,
            Duration::from_millis(50),
            Duration::from_millis(5),
            || async {
                tries.fetch_add(1, Ordering::SeqCst);
                Err::<String, _>(ExecError::Engine(EXHAUSTED.into()))
            },
        )
        .await
        .unwrap_err()
        .to_string();
        assert!(tries.load(Ordering::SeqCst) > 1, "it tried again");
        assert!(given_up.contains("clnrm cache gc"), "{given_up}");
    }
}
