//! Adoption: taking over the running pool containers of this project that earlier
//! processes left (a restarted or killed `clnrm dev`), and the lease that tells
//! `cache gc` the pool is in use. Not the reuse decision itself (`acquire`).

use std::collections::{BTreeMap, HashMap, HashSet};

use clnrm_exec::{
    process_alive, unix_now, ExecError, ManagedKind, ManagedObject, TestNetwork, LABEL_CREATED,
    LABEL_IMAGE, LABEL_NETWORK, LABEL_PID, LABEL_PID_START, LABEL_POOL, LABEL_POOL_LEASE,
    LABEL_SERVICE, LABEL_SESSION, LABEL_SPEC, LABEL_TEST,
};

use super::{Pool, Pooled, PooledTest, LABEL_COLLECTOR, LABEL_SPARE};
use crate::sync::lock;

/// Whether the process that made `o` still runs (on this host).
fn owner_alive(o: &ManagedObject) -> bool {
    let pid = o.labels.get(LABEL_PID).and_then(|p| p.parse().ok());
    let start = o.labels.get(LABEL_PID_START).and_then(|s| s.parse().ok());
    pid.is_some_and(|pid| process_alive(pid, start))
}

impl Pool {
    /// Adopts the running pool containers of this project left by earlier
    /// processes (a `clnrm dev` that was restarted or killed): they are reused
    /// after a health check. Stopped ones, duplicates, and networks nothing
    /// adopted uses are removed, and so are dead processes' leases. Returns how
    /// many containers were adopted.
    pub async fn adopt_existing(&self) -> Result<usize, ExecError> {
        let objects = self.backend.list_managed().await?;
        let ours: Vec<_> = objects
            .into_iter()
            .filter(|o| o.labels.get(LABEL_POOL) == Some(&self.key))
            .collect();
        let networks: HashMap<&str, &ManagedObject> = ours
            .iter()
            .filter(|o| o.kind == ManagedKind::Network)
            .map(|o| (o.name.as_str(), o))
            .collect();
        let mut doomed_containers = Vec::new();
        let mut adopted = 0;
        let mut adopted_from_other_session = false;
        {
            let mut state = lock(&self.state);
            let known: HashSet<String> = state
                .idle
                .values()
                .flat_map(|t| t.services.values().map(|p| p.id.clone()))
                .collect();
            for o in ours.iter().filter(|o| o.kind == ManagedKind::Container) {
                if known.contains(&o.id) {
                    continue;
                }
                let (Some(identity), Some(service), Some(spec), Some(image)) = (
                    o.labels.get(LABEL_TEST),
                    o.labels.get(LABEL_SERVICE),
                    o.labels.get(LABEL_SPEC),
                    o.labels.get(LABEL_IMAGE),
                ) else {
                    doomed_containers.push(o.id.clone());
                    continue;
                };
                if state.busy.contains_key(identity) {
                    continue;
                }
                // A spare set of a process that is gone may have been leased: a run may
                // have left state in it, so it is never taken for a fresh one.
                if o.labels.contains_key(LABEL_SPARE) {
                    if !owner_alive(o) || o.labels.get(LABEL_SESSION) == Some(&self.session.id) {
                        doomed_containers.push(o.id.clone());
                    }
                    continue;
                }
                if !o.running {
                    doomed_containers.push(o.id.clone());
                    continue;
                }
                let entry = state
                    .idle
                    .entry(identity.clone())
                    .or_insert_with(PooledTest::new);
                if entry.services.contains_key(service) {
                    // Two processes raced for this test: keep one.
                    doomed_containers.push(o.id.clone());
                    continue;
                }
                let network = o.labels.get(LABEL_NETWORK).cloned();
                if entry.network.is_none() {
                    if let Some(net) = network.as_deref().and_then(|n| networks.get(n)) {
                        entry.network = Some(TestNetwork {
                            id: net.id.clone(),
                            name: net.name.clone(),
                        });
                    }
                }
                entry.services.insert(
                    service.clone(),
                    Pooled {
                        id: o.id.clone(),
                        spec_hash: spec.clone(),
                        image_id: image.clone(),
                        network,
                        ports: BTreeMap::new(),
                        known_fit: false,
                        collector: o.labels.get(LABEL_COLLECTOR).cloned(),
                    },
                );
                adopted_from_other_session |= o.labels.get(LABEL_SESSION) != Some(&self.session.id);
                adopted += 1;
            }
        }
        if adopted_from_other_session {
            // Their `clnrm.pid` is dead, but we use them now: say so to `cache gc`.
            if let Err(e) = self.ensure_lease().await {
                tracing::warn!("container pool: cannot take the lease: {e}");
            }
        }
        let in_use: HashSet<String> = {
            let state = lock(&self.state);
            state
                .idle
                .values()
                .filter_map(|t| t.network.as_ref().map(|n| n.id.clone()))
                .collect()
        };
        let lease = self.lease.lock().await.clone();
        let doomed_networks: Vec<String> = ours
            .iter()
            .filter(|o| o.kind == ManagedKind::Network)
            .filter(|o| !in_use.contains(&o.id) && Some(&o.id) != lease.as_ref())
            .filter(|o| {
                // Live processes' leases and networks (a concurrent run) stay.
                !owner_alive(o) || o.labels.get(LABEL_SESSION) == Some(&self.session.id)
            })
            .map(|o| o.id.clone())
            .collect();
        let mut reaped = self.remove_containers(doomed_containers).await;
        for net in doomed_networks {
            match self.backend.remove_network(&net).await {
                Ok(()) => reaped.networks.push(net),
                Err(e) => reaped.errors.push(format!("{net}: {e}")),
            }
        }
        for e in &reaped.errors {
            tracing::warn!("container pool: while adopting: {e}");
        }
        Ok(adopted)
    }

    /// Creates our lease once (an empty network labelled with the pool key and
    /// this process), so `reap_pool_orphans` knows the pool is in use.
    async fn ensure_lease(&self) -> Result<(), ExecError> {
        let mut lease = self.lease.lock().await;
        if lease.is_some() {
            return Ok(());
        }
        let mut labels = self.session.labels();
        labels.insert(LABEL_POOL.into(), self.key.clone());
        labels.insert(LABEL_POOL_LEASE.into(), "true".into());
        labels.insert(LABEL_CREATED.into(), unix_now().to_string());
        let name = format!("{}-lease", clnrm_exec::object_name(&self.session));
        *lease = Some(self.backend.create_network(&name, &labels).await?);
        Ok(())
    }
}
