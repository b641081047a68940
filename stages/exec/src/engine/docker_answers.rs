//! The Docker engine's answers in clnrm's words (errors, container states, networks,
//! label filters) and where the engine is. No requests: those are in `docker`.

use std::collections::HashMap;

use testcontainers::bollard;

use super::network_space::Subnet;
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

/// Whether a create was refused for the init it asked for: Podman checks for its init
/// binary (`catatonit`, its `init_path`) when the container is created.
pub(crate) fn refuses_init(text: &str) -> bool {
    text.contains("container-init binary not found")
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

/// Whether `e` is bollard failing to read Podman's `stopped` state (bollard#293): Podman
/// 4.x says `stopped` for a moment after a container exits, before it says `exited`, and
/// bollard's state enums have no such variant, so the whole inspect or list fails.
pub(crate) fn is_podman_stopped_state(e: &bollard::errors::Error) -> bool {
    let text = match e {
        bollard::errors::Error::JsonDataError { message, .. } => message.clone(),
        bollard::errors::Error::JsonSerdeError { err } => err.to_string(),
        _ => return false,
    };
    text.contains("unknown variant `stopped`")
}

/// How long an inspect or list is retried while Podman says `stopped`: its cleanup makes
/// the container `exited` within a second (measured: under 200 ms on Podman 4.3.1).
const STOPPED_STATE_PATIENCE: std::time::Duration = std::time::Duration::from_secs(10);

/// Runs `request` again while its answer fails on Podman's `stopped` state
/// ([`is_podman_stopped_state`]), until the container says `exited`; Docker never says
/// `stopped`, so there it runs once.
pub(crate) async fn past_podman_stopped_state<T, F, Fut>(
    mut request: F,
) -> Result<T, bollard::errors::Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, bollard::errors::Error>>,
{
    let deadline = std::time::Instant::now() + STOPPED_STATE_PATIENCE;
    loop {
        match request().await {
            Err(e) if is_podman_stopped_state(&e) && std::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            answer => return answer,
        }
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
    let configs = || {
        n.ipam
            .as_ref()
            .and_then(|ipam| ipam.config.as_ref())
            .into_iter()
            .flatten()
    };
    let listed = configs()
        .filter_map(|config| config.gateway.as_deref()?.parse::<std::net::IpAddr>().ok())
        .find(std::net::IpAddr::is_ipv4);
    // A network created with a subnet lists no gateway: the engine gave it the first address.
    let gateway = listed.or_else(|| {
        configs()
            .filter_map(|config| Subnet::parse(config.subnet.as_deref()?))
            .find_map(Subnet::first_host)
    });
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
    fn podman_without_its_init_binary_refuses_the_init_not_the_container() {
        // Podman 4.3.1's answer to a create asking for `Init` with no `catatonit`.
        let podman = "container create: container-init binary not found on the host: \
                      stat /usr/libexec/podman/catatonit: no such file or directory";
        assert!(refuses_init(podman));
        assert!(!refuses_init("No such image: clnrm-fixture/none:latest"));
        assert!(!refuses_init(
            "Conflict. The container name \"/x\" is already in use"
        ));
    }

    /// The error bollard gives for Podman's inspect of a container that just exited.
    fn podman_stopped_inspect_error() -> bollard::errors::Error {
        let answer = r#"{"Id":"c1","State":{"Status":"stopped","Running":false,"ExitCode":3}}"#;
        let e = serde_json::from_str::<bollard::models::ContainerInspectResponse>(answer)
            .expect_err("bollard cannot read `stopped`");
        bollard::errors::Error::JsonDataError {
            message: e.to_string(),
            column: e.column(),
        }
    }

    #[test]
    fn podmans_stopped_state_is_recognised_and_nothing_else_is() {
        assert!(is_podman_stopped_state(&podman_stopped_inspect_error()));
        let other = serde_json::from_str::<bollard::models::ContainerInspectResponse>(
            r#"{"State":{"Status":"sleeping"}}"#,
        )
        .expect_err("not a state");
        assert!(!is_podman_stopped_state(&other.into()));
        assert!(!is_podman_stopped_state(
            &bollard::errors::Error::DockerResponseServerError {
                status_code: 500,
                message: "unknown variant `stopped`".into(),
            }
        ));
    }

    #[tokio::test]
    async fn an_inspect_that_says_stopped_is_asked_again_until_it_says_exited() {
        let asked = std::sync::atomic::AtomicUsize::new(0);
        let answer = past_podman_stopped_state(|| {
            let n = asked.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async move {
                if n < 3 {
                    Err(podman_stopped_inspect_error())
                } else {
                    let exited = r#"{"Id":"c1","State":{"Status":"exited","ExitCode":3}}"#;
                    Ok(
                        serde_json::from_str::<bollard::models::ContainerInspectResponse>(exited)
                            .unwrap(),
                    )
                }
            }
        })
        .await
        .expect("exited in the end");
        assert_eq!(asked.load(std::sync::atomic::Ordering::SeqCst), 4);
        let status = status_of(answer.state.unwrap());
        assert_eq!(
            (status.status.as_str(), status.exit_code),
            ("exited", Some(3))
        );
    }

    #[tokio::test]
    async fn any_other_error_is_returned_at_once() {
        let asked = std::sync::atomic::AtomicUsize::new(0);
        let answer: Result<(), _> = past_podman_stopped_state(|| {
            asked.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async {
                Err(bollard::errors::Error::DockerResponseServerError {
                    status_code: 404,
                    message: "no such container".into(),
                })
            }
        })
        .await;
        assert!(answer.is_err());
        assert_eq!(asked.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

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
