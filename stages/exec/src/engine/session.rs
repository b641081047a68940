//! Sessions: which clnrm process owns a container, so the containers of a
//! process that is gone (SIGKILL, crash) can be found and removed by the next one.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::{Backend, ExecError, ManagedKind};

pub const LABEL_MANAGED: &str = "clnrm.managed";
pub const LABEL_SESSION: &str = "clnrm.session";
pub const LABEL_SPEC: &str = "clnrm.spec";
pub const LABEL_SERVICE: &str = "clnrm.service";
pub const LABEL_TEST: &str = "clnrm.test";
pub const LABEL_PID: &str = "clnrm.pid";
/// The owning process's start time (clock ticks since boot), so a reused pid is not mistaken for the owner.
pub const LABEL_PID_START: &str = "clnrm.pid_start";
pub const LABEL_HOST: &str = "clnrm.host";
/// On containers and networks kept between runs on purpose (the container
/// pool): the project key. They outlive their process, so [`reap_orphans`]
/// and [`remove_session`] leave them alone; [`reap_pool_orphans`] removes them.
pub const LABEL_POOL: &str = "clnrm.pool";
/// On a pool's lease (an empty network): the project's pool is in use by the
/// process the lease's `clnrm.pid` names, whichever process created its containers.
pub const LABEL_POOL_LEASE: &str = "clnrm.pool_lease";
/// Pool objects: when they were created, in seconds since the Unix epoch.
pub const LABEL_CREATED: &str = "clnrm.created";
/// Pool containers: the engine's ID of the image they run.
pub const LABEL_IMAGE: &str = "clnrm.image";
/// Pool containers: the name of the network they joined, if any.
pub const LABEL_NETWORK: &str = "clnrm.network";
/// On a spare test network (value: the host name): kept between tests and
/// processes so a test with several services need not create one. It has
/// no owner; a test claims it for its run by naming its first container
/// after it (container names are unique on the engine). [`reap_orphans`]
/// and [`remove_session`] leave it alone; [`reap_pool_orphans`] removes
/// unused ones.
pub const LABEL_SPARE_NETWORK: &str = "clnrm.spare_network";

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// One clnrm process's claim on the containers and networks it creates.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Session {
    /// `<pid>-<random hex>`.
    pub id: String,
    pub pid: u32,
    pub pid_start: Option<u64>,
    pub host: String,
}

impl Session {
    /// The session of this process.
    pub fn current() -> Session {
        let pid = std::process::id();
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let local = 0u8;
        let mut h = blake3::Hasher::new();
        h.update(&nanos.to_le_bytes());
        h.update(&pid.to_le_bytes());
        h.update(&(std::ptr::addr_of!(local) as usize).to_le_bytes());
        let random = h.finalize().to_hex();
        Session {
            id: format!("{pid}-{}", &random[..8]),
            pid,
            pid_start: process_start_time(pid),
            host: host_name(),
        }
    }

    /// The labels every container and network of this session carries.
    pub fn labels(&self) -> BTreeMap<String, String> {
        let mut labels = BTreeMap::from([
            (LABEL_MANAGED.to_string(), "true".to_string()),
            (LABEL_SESSION.to_string(), self.id.clone()),
            (LABEL_PID.to_string(), self.pid.to_string()),
            (LABEL_HOST.to_string(), self.host.clone()),
        ]);
        if let Some(start) = self.pid_start {
            labels.insert(LABEL_PID_START.to_string(), start.to_string());
        }
        labels
    }
}

/// This machine's name, as the owner check compares it.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".to_string())
}

/// The process's start time in clock ticks since boot (`starttime` of
/// `/proc/<pid>/stat`); `None` where there is no procfs or no such process.
fn process_start_time(pid: u32) -> Option<u64> {
    let pid = i32::try_from(pid).ok()?;
    let stat = procfs::process::Process::new(pid).ok()?.stat().ok()?;
    Some(stat.starttime)
}

/// Whether the process that owns a session still runs on this host.
pub fn process_alive(pid: u32, start: Option<u64>) -> bool {
    if pid == 0 {
        return false;
    }
    if std::path::Path::new("/proc/self/stat").exists() {
        match process_start_time(pid) {
            None => false,
            Some(actual) => start.is_none() || start == Some(actual),
        }
    } else {
        // SAFETY: signal 0 only checks that the process exists.
        let rc = unsafe { libc::kill(pid as libc::pid_t, 0) };
        rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
    }
}

/// What [`reap_orphans`] and [`remove_session`] removed.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Reaped {
    pub containers: Vec<String>,
    pub networks: Vec<String>,
    /// Removals that failed, with why (best effort: one failure does not stop the rest).
    pub errors: Vec<String>,
}

/// Removes managed containers and networks whose owning process on this host
/// is gone. Objects of live processes and of other hosts are left alone, and
/// so are pool objects ([`LABEL_POOL`]): they outlive their process on purpose
/// (a restarted `clnrm dev` reuses them); [`reap_pool_orphans`] is theirs.
pub async fn reap_orphans(backend: &dyn Backend) -> Result<Reaped, ExecError> {
    let me = host_name();
    remove_where(backend, |labels| {
        if labels.contains_key(LABEL_POOL) || !on_host(labels, &me) {
            return false;
        }
        owner_alive(labels) == Some(false)
    })
    .await
}

/// Removes every container and network of one session (Ctrl-C, end of a
/// run), except pool objects ([`LABEL_POOL`]): the pool removes those itself
/// (`Pool::shutdown`), or keeps them for the next process.
pub async fn remove_session(backend: &dyn Backend, session_id: &str) -> Result<Reaped, ExecError> {
    remove_where(backend, |labels| {
        !labels.contains_key(LABEL_POOL)
            && labels.get(LABEL_SESSION).map(String::as_str) == Some(session_id)
    })
    .await
}

/// Removes the pool objects of this host that no live process uses, and that
/// were created at least `older_than` ago (for `cache gc`), and the spare
/// test networks no test is using.
///
/// A project's pool is in use while some process holds a lease on it (a
/// network labelled [`LABEL_POOL_LEASE`] whose `clnrm.pid` is alive) or while
/// the process that created one of its objects is alive; a `clnrm dev` that
/// adopted the containers of a killed predecessor holds a lease, so its
/// containers are safe although their own `clnrm.pid` is dead. Pools of live
/// processes are left whole; the leases of dead ones go too.
pub async fn reap_pool_orphans(
    backend: &dyn Backend,
    older_than: std::time::Duration,
) -> Result<Reaped, ExecError> {
    let me = host_name();
    let objects = backend.list_managed().await?;
    let live_keys: std::collections::BTreeSet<&str> = objects
        .iter()
        .filter(|o| on_host(&o.labels, &me) && owner_alive(&o.labels) == Some(true))
        .filter_map(|o| o.labels.get(LABEL_POOL).map(String::as_str))
        .collect();
    let cutoff = unix_now().saturating_sub(older_than.as_secs());
    // A test claims a spare by naming its first container after it: until that container
    // starts, the engine would let the network go from under it.
    let claimed: std::collections::BTreeSet<&str> = objects
        .iter()
        .filter(|o| o.kind == ManagedKind::Container)
        .map(|o| o.name.as_str())
        .collect();
    let pick = |object: &crate::ManagedObject| {
        let labels = &object.labels;
        if labels.get(LABEL_SPARE_NETWORK) == Some(&me) {
            return !claimed.contains(object.name.as_str());
        }
        let Some(key) = labels.get(LABEL_POOL) else {
            return false;
        };
        if !on_host(labels, &me) || live_keys.contains(key.as_str()) {
            return false;
        }
        // Unknown age counts as old: it is an orphan either way.
        let created = labels
            .get(LABEL_CREATED)
            .and_then(|c| c.parse::<u64>().ok())
            .unwrap_or(0);
        created <= cutoff
    };
    let mut reaped = remove_objects(backend, &objects, pick).await?;
    // A spare network a running test has claimed cannot go; it is in use, not left over.
    reaped
        .errors
        .retain(|e| !spare_in_use(e) || !spare_error(&objects, e));
    Ok(reaped)
}

/// How many idle spare networks a command leaves on the engine when it ends
/// ([`trim_spare_networks`]): enough for the next run's first tests to start without a
/// network create (0.1-0.25 s each), few enough that `docker network ls` stays short.
/// Each is a /24 of clnrm's range (`network_space`), so even these take no address pool
/// of the engine's beyond the one the range is in.
pub const SPARE_NETWORKS_KEPT: usize = 4;

/// Removes this host's idle spare networks but the `keep` newest: at the end of a
/// command, so it leaves at most `keep` behind. A spare a test has claimed (a container
/// is named after it) is in use and stays, beyond the count.
pub async fn trim_spare_networks(backend: &dyn Backend, keep: usize) -> Result<Reaped, ExecError> {
    let me = host_name();
    let objects = backend.list_managed().await?;
    let claimed: std::collections::BTreeSet<&str> = objects
        .iter()
        .filter(|o| o.kind == ManagedKind::Container)
        .map(|o| o.name.as_str())
        .collect();
    let mut idle: Vec<&crate::ManagedObject> = objects
        .iter()
        .filter(|o| {
            o.kind == ManagedKind::Network
                && o.labels.get(LABEL_SPARE_NETWORK) == Some(&me)
                && !claimed.contains(o.name.as_str())
        })
        .collect();
    let created = |o: &crate::ManagedObject| {
        o.labels
            .get(LABEL_CREATED)
            .and_then(|c| c.parse::<u64>().ok())
            .unwrap_or(0)
    };
    idle.sort_by_key(|o| std::cmp::Reverse(created(o)));
    let doomed: std::collections::BTreeSet<&str> =
        idle.iter().skip(keep).map(|o| o.id.as_str()).collect();
    let mut reaped = remove_objects(backend, &objects, |o| doomed.contains(o.id.as_str())).await?;
    // Claimed since the list: in use, not left over.
    reaped
        .errors
        .retain(|e| !spare_in_use(e) || !spare_error(&objects, e));
    Ok(reaped)
}

/// Whether a removal error says containers are attached to the network: Docker refuses
/// one with "active endpoints"; Podman refuses even one with a container only created
/// on it ("network is being used").
pub fn spare_in_use(error: &str) -> bool {
    error.contains("active endpoints") || error.contains("network is being used")
}

/// Whether a removal error is about a spare network.
fn spare_error(objects: &[crate::ManagedObject], error: &str) -> bool {
    objects.iter().any(|o| {
        o.kind == ManagedKind::Network
            && o.labels.contains_key(LABEL_SPARE_NETWORK)
            && error.starts_with(&format!("{}:", o.id))
    })
}

fn on_host(labels: &BTreeMap<String, String>, host: &str) -> bool {
    labels.get(LABEL_HOST).map(String::as_str) == Some(host)
}

/// Whether the process named by an object's labels is alive; `None` when no pid is named.
fn owner_alive(labels: &BTreeMap<String, String>) -> Option<bool> {
    let pid = labels.get(LABEL_PID).and_then(|p| p.parse::<u32>().ok())?;
    let start = labels.get(LABEL_PID_START).and_then(|s| s.parse().ok());
    Some(process_alive(pid, start))
}

async fn remove_where(
    backend: &dyn Backend,
    pick: impl Fn(&BTreeMap<String, String>) -> bool,
) -> Result<Reaped, ExecError> {
    let objects = backend.list_managed().await?;
    remove_objects(backend, &objects, |o| pick(&o.labels)).await
}

async fn remove_objects(
    backend: &dyn Backend,
    objects: &[crate::ManagedObject],
    pick: impl Fn(&crate::ManagedObject) -> bool,
) -> Result<Reaped, ExecError> {
    let mut reaped = Reaped::default();
    // Containers first: a network with endpoints cannot be removed.
    for kind in [ManagedKind::Container, ManagedKind::Network] {
        let doomed: Vec<_> = objects
            .iter()
            .filter(|o| o.kind == kind && pick(o))
            .collect();
        let results = futures_util::future::join_all(doomed.iter().map(|o| async move {
            let r = match kind {
                ManagedKind::Container => backend.remove_container(&o.id).await,
                ManagedKind::Network => backend.remove_network(&o.id).await,
            };
            (o, r)
        }))
        .await;
        for (o, r) in results {
            match r {
                Ok(()) if kind == ManagedKind::Container => reaped.containers.push(o.id.clone()),
                Ok(()) => reaped.networks.push(o.id.clone()),
                Err(e) => reaped.errors.push(format!("{}: {e}", o.id)),
            }
        }
    }
    Ok(reaped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_ids_encode_the_pid_and_differ() {
        let a = Session::current();
        let b = Session::current();
        assert!(a.id.starts_with(&format!("{}-", std::process::id())));
        assert_ne!(a.id, b.id);
        let labels = a.labels();
        assert_eq!(labels[LABEL_MANAGED], "true");
        assert_eq!(labels[LABEL_SESSION], a.id);
    }

    #[test]
    fn this_process_is_alive_and_a_reused_pid_is_not_the_owner() {
        let me = Session::current();
        assert!(process_alive(me.pid, me.pid_start));
        assert!(process_alive(me.pid, None));
        if let Some(start) = me.pid_start {
            assert!(!process_alive(me.pid, Some(start + 1)));
        }
        assert!(!process_alive(0, None));
    }

    #[test]
    fn an_exited_process_is_not_alive() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        assert!(!process_alive(pid, None));
    }
}
