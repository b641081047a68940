//! Where the engine is, found without configuration (SPEC §15): `DOCKER_HOST` when set,
//! else Docker's socket, else Podman's rootful socket, else Podman's rootless one, else
//! Docker's default (which then fails to connect, naming where it looked).
//!
//! [`discover_engine`] is the rule, over an injected environment and file system so it
//! can be tested; [`engine_location`] applies it to this process. Which engine answers
//! is the engine's own word (`/version`); [`engine_label`] only guesses from the
//! address, for messages written before anything answered.

/// Docker's socket, and the address used when nothing is found.
pub const DOCKER_SOCKET: &str = "/var/run/docker.sock";
/// Podman's socket when its service runs as root.
pub const PODMAN_ROOTFUL_SOCKET: &str = "/run/podman/podman.sock";
/// Podman's rootless socket, under `$XDG_RUNTIME_DIR`.
pub const PODMAN_ROOTLESS_SOCKET: &str = "podman/podman.sock";

/// Why an address was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineChoice {
    /// `DOCKER_HOST` was set.
    DockerHost,
    /// Docker's socket exists.
    DockerSocket,
    /// No Docker socket; Podman's rootful socket exists.
    PodmanRootful,
    /// No Docker or rootful Podman socket; the rootless one exists.
    PodmanRootless,
    /// Nothing was found: Docker's default, which will not answer.
    Fallback,
}

impl EngineChoice {
    /// The reason in words, for `clnrm doctor`.
    pub fn reason(self) -> &'static str {
        match self {
            EngineChoice::DockerHost => "from DOCKER_HOST",
            EngineChoice::DockerSocket => "Docker's socket exists",
            EngineChoice::PodmanRootful => "no Docker socket; Podman's rootful socket exists",
            EngineChoice::PodmanRootless => {
                "no Docker or rootful Podman socket; Podman's rootless socket exists"
            }
            EngineChoice::Fallback => "no socket found; Docker's default",
        }
    }
}

/// The address the engine is looked for at, why, and every place looked at in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineLocation {
    /// `unix:///...`, `tcp://...`, `ssh://...`: what to connect to.
    pub endpoint: String,
    pub choice: EngineChoice,
    /// Each candidate looked at, in order, up to and including the chosen one, and
    /// whether it was there.
    pub candidates: Vec<(String, bool)>,
}

/// The discovery rule over `env` (a variable's value) and `exists` (whether a path
/// exists): the first of `DOCKER_HOST` (when not empty), Docker's socket, Podman's
/// rootful socket and `$XDG_RUNTIME_DIR/podman/podman.sock`; Docker's socket when
/// none is there.
pub fn discover_engine(
    env: impl Fn(&str) -> Option<String>,
    exists: impl Fn(&str) -> bool,
) -> EngineLocation {
    let mut candidates = Vec::new();
    let docker_host = env("DOCKER_HOST").filter(|h| !h.is_empty());
    candidates.push(("DOCKER_HOST".to_string(), docker_host.is_some()));
    if let Some(host) = docker_host {
        return EngineLocation {
            endpoint: host,
            choice: EngineChoice::DockerHost,
            candidates,
        };
    }
    let rootless = env("XDG_RUNTIME_DIR")
        .filter(|dir| !dir.is_empty())
        .map(|dir| format!("{}/{PODMAN_ROOTLESS_SOCKET}", dir.trim_end_matches('/')));
    let sockets = [
        Some((DOCKER_SOCKET.to_string(), EngineChoice::DockerSocket)),
        Some((
            PODMAN_ROOTFUL_SOCKET.to_string(),
            EngineChoice::PodmanRootful,
        )),
        rootless.map(|path| (path, EngineChoice::PodmanRootless)),
    ];
    for (path, choice) in sockets.into_iter().flatten() {
        let found = exists(&path);
        candidates.push((path.clone(), found));
        if found {
            return EngineLocation {
                endpoint: format!("unix://{path}"),
                choice,
                candidates,
            };
        }
    }
    EngineLocation {
        endpoint: format!("unix://{DOCKER_SOCKET}"),
        choice: EngineChoice::Fallback,
        candidates,
    }
}

/// [`discover_engine`] for this process: its environment and file system.
pub fn engine_location() -> EngineLocation {
    discover_engine(
        |name| std::env::var(name).ok(),
        |path| std::path::Path::new(path).exists(),
    )
}

/// What to call the engine at `endpoint` before it has said what it is: Podman for a
/// Podman socket, Docker for any other local socket, "the engine" elsewhere (a
/// `tcp://` or `ssh://` address may be either).
pub fn engine_label(endpoint: &str) -> &'static str {
    if endpoint.contains("podman") {
        "the Podman engine"
    } else if endpoint.starts_with("unix://") || endpoint.starts_with('/') {
        "the Docker engine"
    } else {
        "the engine"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn discover(env: &[(&str, &str)], present: &[&str]) -> EngineLocation {
        discover_engine(
            |name| {
                env.iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            },
            |path| present.contains(&path),
        )
    }

    #[test]
    fn docker_host_wins_over_every_socket_unless_it_is_empty() {
        let found = discover(
            &[("DOCKER_HOST", "tcp://10.0.0.5:2375")],
            &[DOCKER_SOCKET, PODMAN_ROOTFUL_SOCKET],
        );
        assert_eq!(found.endpoint, "tcp://10.0.0.5:2375");
        assert_eq!(found.choice, EngineChoice::DockerHost);
        assert_eq!(found.candidates, vec![("DOCKER_HOST".to_string(), true)]);

        let found = discover(&[("DOCKER_HOST", "")], &[DOCKER_SOCKET]);
        assert_eq!(found.endpoint, "unix:///var/run/docker.sock");
        assert_eq!(found.choice, EngineChoice::DockerSocket);
    }

    #[test]
    fn docker_then_rootful_then_rootless_podman_in_that_order() {
        let rootless = "/run/user/1000/podman/podman.sock";
        let env = [("XDG_RUNTIME_DIR", "/run/user/1000/")];
        let both = discover(&env, &[DOCKER_SOCKET, PODMAN_ROOTFUL_SOCKET, rootless]);
        assert_eq!(both.choice, EngineChoice::DockerSocket);

        let podman = discover(&env, &[PODMAN_ROOTFUL_SOCKET, rootless]);
        assert_eq!(podman.endpoint, "unix:///run/podman/podman.sock");
        assert_eq!(podman.choice, EngineChoice::PodmanRootful);

        let user = discover(&env, &[rootless]);
        assert_eq!(user.endpoint, format!("unix://{rootless}"));
        assert_eq!(user.choice, EngineChoice::PodmanRootless);
        let looked: Vec<&str> = user.candidates.iter().map(|(c, _)| c.as_str()).collect();
        assert_eq!(
            looked,
            [
                "DOCKER_HOST",
                DOCKER_SOCKET,
                PODMAN_ROOTFUL_SOCKET,
                rootless
            ]
        );
        assert_eq!(
            user.candidates.iter().filter(|(_, found)| *found).count(),
            1
        );
    }

    #[test]
    fn nothing_found_is_dockers_default_and_rootless_needs_xdg_runtime_dir() {
        let found = discover(&[], &["/run/user/1000/podman/podman.sock"]);
        assert_eq!(found.endpoint, "unix:///var/run/docker.sock");
        assert_eq!(found.choice, EngineChoice::Fallback);
        assert_eq!(found.candidates.len(), 3, "{:?}", found.candidates);
        assert!(found.candidates.iter().all(|(_, present)| !present));
    }

    #[test]
    fn the_engine_is_named_from_its_address_only_where_the_address_tells() {
        assert_eq!(
            engine_label("unix:///run/podman/podman.sock"),
            "the Podman engine"
        );
        assert_eq!(
            engine_label("unix:///var/run/docker.sock"),
            "the Docker engine"
        );
        assert_eq!(engine_label("tcp://127.0.0.1:2375"), "the engine");
        assert_eq!(engine_label("ssh://me@box"), "the engine");
    }
}
