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

/// Field 22 of `/proc/<pid>/stat`; `None` where there is no procfs.
fn process_start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces and parentheses: skip past the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
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
/// is gone. Objects of live processes and of other hosts are left alone.
pub async fn reap_orphans(backend: &dyn Backend) -> Result<Reaped, ExecError> {
    let me = host_name();
    remove_where(backend, |labels| {
        if labels.get(LABEL_HOST).map(String::as_str) != Some(me.as_str()) {
            return false;
        }
        let Some(pid) = labels.get(LABEL_PID).and_then(|p| p.parse::<u32>().ok()) else {
            return false;
        };
        let start = labels.get(LABEL_PID_START).and_then(|s| s.parse().ok());
        !process_alive(pid, start)
    })
    .await
}

/// Removes every container and network of one session (Ctrl-C, end of `dev`).
pub async fn remove_session(backend: &dyn Backend, session_id: &str) -> Result<Reaped, ExecError> {
    remove_where(backend, |labels| {
        labels.get(LABEL_SESSION).map(String::as_str) == Some(session_id)
    })
    .await
}

async fn remove_where(
    backend: &dyn Backend,
    pick: impl Fn(&BTreeMap<String, String>) -> bool,
) -> Result<Reaped, ExecError> {
    let objects = backend.list_managed().await?;
    let mut reaped = Reaped::default();
    // Containers first: a network with endpoints cannot be removed.
    for kind in [ManagedKind::Container, ManagedKind::Network] {
        let doomed: Vec<_> = objects
            .iter()
            .filter(|o| o.kind == kind && pick(&o.labels))
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
