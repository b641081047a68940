//! Removing pooled containers: beyond `max_containers` (least recently used first),
//! idle past `idle_timeout`, of a deleted test, and all of them at shutdown. Not the
//! replacement of one changed service during a run (`acquire`).

use clnrm_exec::{
    ManagedKind, ManagedObject, Reaped, LABEL_POOL, LABEL_POOL_LEASE, LABEL_SESSION,
    SPARE_NETWORKS_KEPT,
};

use super::{Pool, PoolState, PooledTest};
use crate::sync::lock;

impl Pool {
    /// Removes idle tests, least recently used first, until the pool is within
    /// `max_containers` (the test that just ran is kept whatever its size).
    pub(super) fn lru_victims(&self, state: &mut PoolState, keep: &str) -> Vec<PooledTest> {
        let mut victims = Vec::new();
        loop {
            let total: usize = state.idle.values().map(|t| t.services.len()).sum::<usize>()
                + state.busy.values().sum::<usize>();
            if total <= self.options.max_containers {
                break;
            }
            let oldest = state
                .idle
                .iter()
                .filter(|(id, t)| id.as_str() != keep && !t.services.is_empty())
                .min_by_key(|(_, t)| t.last_used)
                .map(|(id, _)| id.clone());
            let Some(oldest) = oldest else { break };
            if let Some(t) = state.idle.remove(&oldest) {
                victims.push(t);
            }
        }
        victims
    }

    /// Removes the containers and network of a test that was deleted.
    pub async fn forget_test(&self, identity: &str) -> Reaped {
        let test_lock = self.test_lock(identity);
        let _running = test_lock.lock().await;
        let test = lock(&self.state).idle.remove(identity);
        lock(&self.test_locks).remove(identity);
        match test {
            Some(t) => self.remove_test(t).await,
            None => Reaped::default(),
        }
    }

    /// Removes the containers of tests not run for `idle_timeout`.
    pub async fn evict_idle(&self) -> Reaped {
        let timeout = self.options.idle_timeout;
        let victims: Vec<PooledTest> = {
            let mut state = lock(&self.state);
            let stale: Vec<String> = state
                .idle
                .iter()
                .filter(|(_, t)| t.last_used.elapsed() >= timeout)
                .map(|(id, _)| id.clone())
                .collect();
            stale
                .iter()
                .filter_map(|id| state.idle.remove(id))
                .collect()
        };
        let mut all = Reaped::default();
        for t in victims {
            add_reaped(&mut all, self.remove_test(t).await);
        }
        all
    }

    /// Ends the pool: removes every container and network it holds or this
    /// session created for it, unless `keep` (then they stay for the next
    /// process to adopt). The lease goes either way.
    pub async fn shutdown(&self, keep: bool) -> Reaped {
        let mut all = self.remove_spares().await;
        let tests: Vec<PooledTest> = {
            let mut state = lock(&self.state);
            state.idle.drain().map(|(_, t)| t).collect()
        };
        if !keep {
            for t in tests {
                add_reaped(&mut all, self.remove_test(t).await);
            }
            // Anything of ours the map lost track of (a start cut short).
            match self.backend.list_managed().await {
                Ok(objects) => {
                    let made_by_this_session = |o: &&ManagedObject| {
                        o.labels.get(LABEL_POOL) == Some(&self.key)
                            && o.labels.get(LABEL_SESSION) == Some(&self.session.id)
                            && !o.labels.contains_key(LABEL_POOL_LEASE)
                    };
                    let containers: Vec<String> = objects
                        .iter()
                        .filter(|o| o.kind == ManagedKind::Container)
                        .filter(made_by_this_session)
                        .map(|o| o.id.clone())
                        .collect();
                    add_reaped(&mut all, self.remove_containers(containers).await);
                    for o in objects
                        .iter()
                        .filter(|o| o.kind == ManagedKind::Network)
                        .filter(made_by_this_session)
                    {
                        match self.backend.remove_network(&o.id).await {
                            Ok(()) => all.networks.push(o.id.clone()),
                            Err(e) => all.errors.push(format!("{}: {e}", o.id)),
                        }
                    }
                }
                Err(e) => all.errors.push(format!("listing containers: {e}")),
            }
        }
        if let Some(lease) = self.lease.lock().await.take() {
            match self.backend.remove_network(&lease).await {
                Ok(()) => all.networks.push(lease),
                Err(e) => all.errors.push(format!("{lease}: {e}")),
            }
        }
        // The spare networks the tests ran on stay for the next process, a few of them.
        match clnrm_exec::trim_spare_networks(self.backend.as_ref(), SPARE_NETWORKS_KEPT).await {
            Ok(trimmed) => add_reaped(&mut all, trimmed),
            Err(e) => all.errors.push(format!("trimming spare networks: {e}")),
        }
        all
    }

    pub(super) async fn remove_test(&self, test: PooledTest) -> Reaped {
        let ids = test.services.into_values().map(|p| p.id).collect();
        let mut reaped = self.remove_containers(ids).await;
        if let Some(net) = test.network {
            match self.backend.remove_network(&net.id).await {
                Ok(()) => reaped.networks.push(net.id),
                Err(e) => reaped
                    .errors
                    .push(format!("removing network {}: {e}", net.name)),
            }
        }
        reaped
    }

    /// Removes containers in parallel.
    pub(super) async fn remove_containers(&self, ids: Vec<String>) -> Reaped {
        let mut reaped = Reaped::default();
        let mut tasks = tokio::task::JoinSet::new();
        for id in ids {
            let backend = self.backend.clone();
            tasks.spawn(async move {
                let r = backend.remove_container(&id).await;
                (id, r)
            });
        }
        while let Some(done) = tasks.join_next().await {
            match done {
                Ok((id, Ok(()))) => reaped.containers.push(id),
                Ok((id, Err(e))) => reaped.errors.push(format!("removing container {id}: {e}")),
                Err(e) => reaped.errors.push(format!("removing a container: {e}")),
            }
        }
        reaped
    }
}

pub(super) fn add_reaped(all: &mut Reaped, more: Reaped) {
    all.containers.extend(more.containers);
    all.networks.extend(more.networks);
    all.errors.extend(more.errors);
}
