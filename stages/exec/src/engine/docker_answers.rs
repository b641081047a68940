//! The Docker engine's answers in clnrm's words (errors, container states, networks,
//! label filters) and where the engine is. No requests: those are in `docker`.

use std::collections::HashMap;

use testcontainers::bollard;

use crate::{ContainerStatus, ExecError, ManagedKind, ManagedObject};

/// Whether the engine at `endpoint` sees this machine's files, so host paths can be
/// bind-mounted: a unix socket (or a Windows named pipe) is on this machine; a
/// `tcp://`, `http(s)://` or `ssh://` engine is taken to be elsewhere, even on a
/// loopback address (which is often a tunnel to another machine).
pub(crate) fn engine_shares_our_files(endpoint: &str) -> bool {
    endpoint.starts_with("unix://") || endpoint.starts_with("npipe://") || endpoint.starts_with('/')
}

/// Where the engine is looked for: `DOCKER_HOST`, else Docker's or Podman's socket (`engine_socket`).
pub fn docker_endpoint() -> String {
    super::engine_socket::engine_location().endpoint
}

pub(crate) fn is_not_found(e: &bollard::errors::Error) -> bool {
    matches!(
        e,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

pub(crate) fn error_text(e: &bollard::errors::Error) -> String {
    match e {
        bollard::errors::Error::DockerResponseServerError { message, .. } => message.clone(),
        bollard::errors::Error::DockerStreamError { error } => error.clone(),
        other => other.to_string(),
    }
}

pub(crate) fn engine(e: bollard::errors::Error) -> ExecError {
    // No connection at all (the engine stopped or restarts) says where we looked, not
    // the HTTP client's words.
    let text = error_text(&e);
    let unreachable = matches!(e, bollard::errors::Error::HyperLegacyError { .. })
        || text.contains("client error (Connect)")
        || text.contains("Connection refused");
    if unreachable {
        ExecError::EngineUnreachable {
            endpoint: docker_endpoint(),
            reason: "the engine does not answer (stopped or restarting?)".into(),
        }
    } else {
        ExecError::Engine(text)
    }
}

pub(crate) fn status_of(state: bollard::models::ContainerState) -> ContainerStatus {
    ContainerStatus {
        running: state.running.unwrap_or(false),
        exit_code: state.exit_code,
        status: state.status.map(|s| s.to_string()).unwrap_or_default(),
        oom_killed: state.oom_killed.unwrap_or(false),
    }
}

pub(crate) fn network_object(n: bollard::models::Network) -> ManagedObject {
    let gateway = n
        .ipam
        .as_ref()
        .and_then(|ipam| ipam.config.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|config| config.gateway.as_deref()?.parse::<std::net::IpAddr>().ok())
        .find(std::net::IpAddr::is_ipv4);
    ManagedObject {
        gateway,
        kind: ManagedKind::Network,
        id: n.id.unwrap_or_default(),
        name: n.name.unwrap_or_default(),
        labels: n.labels.unwrap_or_default().into_iter().collect(),
        running: false,
    }
}

pub(crate) fn label_filter(label: &str) -> HashMap<String, Vec<String>> {
    HashMap::from([("label".to_string(), vec![label.to_string()])])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_socket_or_pipe_is_taken_to_share_our_files() {
        assert!(engine_shares_our_files("unix:///var/run/docker.sock"));
        assert!(engine_shares_our_files("npipe:////./pipe/docker_engine"));
        for remote in [
            "tcp://127.0.0.1:2375",
            "http://10.0.0.5:2375",
            "ssh://ci@builder",
        ] {
            assert!(!engine_shares_our_files(remote), "{remote}");
        }
    }
}
