//! The engine's checks: which engine answers where (and why that address), then, at
//! once, an image import, a network, and a container with an exec in it that connects
//! to a listener on the default bridge's gateway, where the OTLP receiver binds
//! (`otel/bridge.rs`). The container and the network carry this process's session
//! labels, so `cache gc` removes what a killed doctor leaves; the imported image is
//! `clnrm-doctor/probe:<session>` (an import takes no labels). All are removed before
//! returning.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use clnrm_exec::bollard::models::SystemVersion;
use clnrm_exec::bollard::query_parameters::CreateImageOptions;
use clnrm_exec::{
    Backend, ContainerRequest, DockerBackend, EngineLocation, ExecError, ExecRequest, ImageOrigin,
    ResolvedImage, Session,
};
use clnrm_plan::{ContainerSpec, ImageSource, ResourceLimits, SpecHash};
use futures_util::StreamExt;
use tokio::io::AsyncReadExt;

use super::Check;

/// Images that can run `sh` and `nc`, looked for locally (there may be no registry).
const PROBE_IMAGES: [&str; 2] = ["clnrm-fixture/busybox:latest", "busybox:latest"];
/// Longest any one probe may take: a healthy engine needs a fraction of it.
const PROBE_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a container gets to connect to the listener on the gateway.
const REACH_TIMEOUT: Duration = Duration::from_secs(3);
const NOT_CHECKED: &str = "not checked: the engine does not answer";

/// Every engine check, in report order: `engine`, `image_import`, `network`,
/// `container`, `exec`, `otlp_reach`.
pub(super) fn checks() -> Vec<Check> {
    let location = clnrm_exec::engine_location();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            return unchecked_after(Check::fail(
                "engine",
                format!("cannot start a runtime: {e}"),
                "free some memory or threads and run clnrm doctor again",
            ))
        }
    };
    runtime.block_on(examine(&location))
}

async fn examine(location: &EngineLocation) -> Vec<Check> {
    let backend = match DockerBackend::connect_to(&location.endpoint).await {
        Ok(backend) => backend,
        Err(e) => return unchecked_after(unreachable(location, &e)),
    };
    let session = Session::current();
    let (engine, import, network, containers) = tokio::join!(
        identify(&backend, location),
        bounded(import_image(&backend, &session)),
        bounded(network(&backend, &session)),
        container_checks(&backend, &session),
    );
    let mut checks = vec![
        engine,
        as_check("image_import", import),
        as_check("network", network),
    ];
    checks.extend(containers);
    checks
}

/// The failed `engine` check, and the others, which need an engine.
fn unchecked_after(engine: Check) -> Vec<Check> {
    let mut checks = vec![engine];
    for name in ["image_import", "network", "container", "exec", "otlp_reach"] {
        checks.push(Check::warn(
            name,
            NOT_CHECKED,
            "fix the engine first (above)",
        ));
    }
    checks
}

/// How the address was chosen, in words.
fn chosen(location: &EngineLocation) -> String {
    let reason = location.choice.reason();
    if location.choice == clnrm_exec::EngineChoice::Fallback {
        let looked: Vec<&str> = location
            .candidates
            .iter()
            .map(|(place, _)| place.as_str())
            .collect();
        format!("{reason}; looked at {}", looked.join(", "))
    } else {
        reason.to_string()
    }
}

/// The `engine` check when nothing answered: why, as precisely as the socket tells.
fn unreachable(location: &EngineLocation, error: &ExecError) -> Check {
    let endpoint = &location.endpoint;
    let engine = clnrm_exec::engine_label(endpoint);
    let why = match error {
        ExecError::EngineUnreachable { reason, .. } => reason.clone(),
        other => other.to_string(),
    };
    let fix_address = "start the engine at that address, or correct DOCKER_HOST (unset it to use the local socket)";
    let (cause, fix) = match connection_problem(endpoint) {
        Some(Problem::Missing) => (
            "no socket there (no engine running?)".to_string(),
            "start Docker (`sudo systemctl start docker`) or Podman (`podman system service --time=0 &`), or set DOCKER_HOST to where your engine listens",
        ),
        Some(Problem::Denied) => (
            "permission denied on the socket".to_string(),
            "add your user to the socket's group (`sudo usermod -aG docker $USER`, then log in again), or use rootless Podman (`systemctl --user start podman.socket`)",
        ),
        Some(Problem::NobodyListens) => (
            "nothing listens there (connection refused)".to_string(),
            fix_address,
        ),
        Some(Problem::Other(e)) => (e, fix_address),
        None => (why, fix_address),
    };
    Check::fail(
        "engine",
        format!(
            "cannot reach {engine} at {endpoint} ({}): {cause}",
            chosen(location)
        ),
        fix,
    )
}

/// Why nothing answered, in the system's own words.
enum Problem {
    Missing,
    Denied,
    NobodyListens,
    Other(String),
}

/// Connects to a `unix://` or `tcp://` (`http://`) address once more, without the HTTP
/// client, to tell a missing socket, a refused permission and a closed port apart.
/// `None` for other schemes (`ssh://`): the client's own reason stands.
fn connection_problem(endpoint: &str) -> Option<Problem> {
    use std::io::ErrorKind;
    let connected = if let Some(path) = endpoint.strip_prefix("unix://") {
        std::os::unix::net::UnixStream::connect(path).map(drop)
    } else {
        let address = ["tcp://", "http://"]
            .iter()
            .find_map(|scheme| endpoint.strip_prefix(scheme))?
            .trim_end_matches('/');
        let resolved = std::net::ToSocketAddrs::to_socket_addrs(address)
            .ok()
            .and_then(|mut all| all.next())?;
        std::net::TcpStream::connect_timeout(&resolved, Duration::from_secs(2)).map(drop)
    };
    Some(match connected {
        Err(e) if e.kind() == ErrorKind::NotFound => Problem::Missing,
        Err(e) if e.kind() == ErrorKind::PermissionDenied => Problem::Denied,
        Err(e) if e.kind() == ErrorKind::ConnectionRefused => Problem::NobodyListens,
        Err(e) => Problem::Other(e.to_string()),
        Ok(()) => {
            Problem::Other("it accepts connections but does not answer the Engine API".into())
        }
    })
}

/// The `engine` check once it answered: which engine (its own word), its version and
/// API version, and where.
async fn identify(backend: &DockerBackend, location: &EngineLocation) -> Check {
    let where_ = format!("at {} ({})", location.endpoint, chosen(location));
    let version = match tokio::time::timeout(PROBE_TIMEOUT, backend.docker().version()).await {
        Ok(Ok(version)) => version,
        Ok(Err(e)) => {
            return Check::fail(
                "engine",
                format!("the engine {where_} answers, but not to /version: {e}"),
                "upgrade the engine: clnrm needs Docker 20.10 or Podman 4.3 and later",
            )
        }
        Err(_) => {
            return Check::fail(
                "engine",
                format!("the engine {where_} did not answer /version within {PROBE_TIMEOUT:?}"),
                "restart the engine",
            )
        }
    };
    let name = engine_name(&version);
    let number = version.version.clone().unwrap_or_default();
    let api = version.api_version.clone().unwrap_or_default();
    let detail = format!("{name} {number}, API {api}, {where_}");
    let old = match name {
        "Podman" => older_than(&number, (4, 3)),
        _ => older_than(&api, (1, 41)),
    };
    if old {
        Check::warn(
            "engine",
            format!("{detail}: older than clnrm supports"),
            "upgrade to Docker 20.10 (API 1.41) or Podman 4.3 or later",
        )
    } else {
        Check::ok("engine", detail)
    }
}

/// Docker or Podman, as the engine names itself in `/version`.
fn engine_name(version: &SystemVersion) -> &'static str {
    let podman = |name: &str| name.to_ascii_lowercase().contains("podman");
    let says_podman = version.platform.as_ref().is_some_and(|p| podman(&p.name))
        || version.components.iter().flatten().any(|c| podman(&c.name));
    if says_podman {
        "Podman"
    } else {
        "Docker"
    }
}

/// Whether `major.minor[...]` in `text` is below `least`; unreadable is not old.
fn older_than(text: &str, least: (u64, u64)) -> bool {
    let mut parts = text.split(['.', '-', '+']).map(|p| p.parse::<u64>().ok());
    match (parts.next().flatten(), parts.next().flatten()) {
        (Some(major), Some(minor)) => (major, minor) < least,
        _ => false,
    }
}

/// What a probe found (`Ok` detail) or why it failed (`Err` detail and fix).
type Probe = Result<String, (String, String)>;

fn as_check(name: &'static str, probe: Probe) -> Check {
    match probe {
        Ok(detail) => Check::ok(name, detail),
        Err((detail, fix)) => Check::fail(name, detail, &fix),
    }
}

async fn bounded(probe: impl std::future::Future<Output = Probe>) -> Probe {
    tokio::time::timeout(PROBE_TIMEOUT, probe)
        .await
        .unwrap_or_else(|_| {
            Err((
                format!("no answer within {PROBE_TIMEOUT:?}"),
                "the engine is overloaded or stuck: restart it".to_string(),
            ))
        })
}

fn engine_fix(what: &str) -> String {
    format!("the engine refuses to {what}: read its log (`journalctl -u docker` or `podman system service --log-level=debug`)")
}

/// Imports a one-file root file system made here (no registry needed), then removes it.
async fn import_image(backend: &DockerBackend, session: &Session) -> Probe {
    // Unique content, so the image ID is this probe's alone.
    let content = format!("clnrm doctor probe {}\n", session.id);
    let tarball = one_file_tar("clnrm-doctor", content.as_bytes());
    // The tag in the repository: Podman before 4.6 ignores `tag` on an import.
    let reference = format!("clnrm-doctor/probe:{}", session.id);
    let options = CreateImageOptions {
        from_src: Some("-".to_string()),
        repo: Some(reference.clone()),
        ..Default::default()
    };
    let mut answers = backend.docker().create_image(
        Some(options),
        Some(clnrm_exec::bollard::body_full(tarball.into())),
        None,
    );
    let mut imported_id = None;
    while let Some(answer) = answers.next().await {
        match answer {
            Ok(info) => {
                imported_id = imported_id.or(info.status.filter(|s| s.starts_with("sha256:")))
            }
            Err(e) => return Err((format!("import failed: {e}"), engine_fix("import images"))),
        }
    }
    // By name, and by ID where the engine named it otherwise.
    let mut removed = backend.remove_image(&reference).await;
    if let Some(id) = &imported_id {
        removed = removed.and(backend.remove_image(id).await);
    }
    match removed {
        Ok(()) => Ok(format!(
            "imported a {}-byte root file system and removed it",
            content.len()
        )),
        Err(e) => Err((
            format!("imported, but removing {reference} failed: {e}"),
            format!("remove it by hand: docker rmi {reference}"),
        )),
    }
}

/// A tar archive of one regular file (ustar), as `docker import` takes.
fn one_file_tar(name: &str, content: &[u8]) -> Vec<u8> {
    let mut header = [0u8; 512];
    let mut put = |at: usize, field: &[u8]| header[at..at + field.len()].copy_from_slice(field);
    put(0, name.as_bytes());
    put(100, b"0000644\0");
    put(108, b"0000000\0");
    put(116, b"0000000\0");
    put(124, format!("{:011o}\0", content.len()).as_bytes());
    put(136, b"00000000000\0");
    put(148, b"        ");
    put(156, b"0");
    put(257, b"ustar\0");
    put(263, b"00");
    let sum: u32 = header.iter().map(|&b| u32::from(b)).sum();
    header[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    let mut tar = header.to_vec();
    tar.extend_from_slice(content);
    tar.resize(512 + content.len().div_ceil(512) * 512 + 1024, 0);
    tar
}

/// Creates a network with this session's labels, then removes it.
async fn network(backend: &DockerBackend, session: &Session) -> Probe {
    let name = format!("clnrm-doctor-{}", session.id);
    let id = backend
        .create_network(&name, &session.labels())
        .await
        .map_err(|e| {
            (
                format!("cannot create a network: {e}"),
                engine_fix("create networks"),
            )
        })?;
    backend.remove_network(&id).await.map_err(|e| {
        (
            format!("created network {name} but cannot remove it: {e}"),
            format!("remove it by hand: docker network rm {name}"),
        )
    })?;
    Ok("created a network and removed it".to_string())
}

/// `container`, `exec` and `otlp_reach`: one idle container on the default bridge, a
/// command in it, and a connection from it to the receiver's address.
async fn container_checks(backend: &DockerBackend, session: &Session) -> Vec<Check> {
    let since = std::time::Instant::now();
    let Some(image) = probe_image(backend).await else {
        let detail = format!(
            "not checked: neither {} is here (no registry is asked)",
            PROBE_IMAGES.join(" nor ")
        );
        let fix =
            "make one available: `docker pull busybox` (or load it where there is no registry)";
        return vec![
            Check::warn("container", detail.clone(), fix),
            Check::warn("exec", detail.clone(), fix),
            Check::warn("otlp_reach", detail, fix),
        ];
    };
    let spec = ContainerSpec {
        service: "doctor".to_string(),
        image: ImageSource::Reference {
            reference: image.reference.clone(),
        },
        command: None,
        env: BTreeMap::new(),
        ports: Vec::new(),
        volumes: Vec::new(),
        health_check: None,
        limits: ResourceLimits::default(),
        hash: SpecHash(String::new()),
    };
    let request = ContainerRequest {
        spec: &spec,
        image: &image,
        name: format!("clnrm-doctor-{}", session.id),
        network: None,
        labels: session.labels(),
        root: Path::new("/"),
        extra_env: BTreeMap::new(),
        extra_hosts: Vec::new(),
    };
    let id = match within(backend.create_container(&request)).await {
        Ok(id) => id,
        Err(e) => {
            return without_container(Check::fail(
                "container",
                format!("cannot create a container from {}: {e}", image.reference),
                &engine_fix("create containers"),
            ));
        }
    };
    tracing::debug!("doctor: container created after {:?}", since.elapsed());
    let checks = in_container(backend, &id, &image.reference).await;
    let removal = backend.remove_container(&id).await;
    tracing::debug!("doctor: container removed after {:?}", since.elapsed());
    match removal {
        Ok(()) => checks,
        Err(e) => {
            let mut checks = checks;
            checks[0] = Check::fail(
                "container",
                format!("cannot remove the container {}: {e}", request.name),
                &format!("remove it by hand: docker rm -f {}", request.name),
            );
            checks
        }
    }
}

/// The failed `container` check, and `exec` and `otlp_reach`, which need a container.
fn without_container(container: Check) -> Vec<Check> {
    let unchecked = |name| {
        Check::warn(
            name,
            "not checked: no running container",
            "fix `container` first",
        )
    };
    vec![container, unchecked("exec"), unchecked("otlp_reach")]
}

/// An engine call, given at most [`PROBE_TIMEOUT`].
async fn within<T>(
    call: impl std::future::Future<Output = Result<T, ExecError>>,
) -> Result<T, ExecError> {
    tokio::time::timeout(PROBE_TIMEOUT, call)
        .await
        .unwrap_or_else(|_| {
            Err(ExecError::Engine(format!(
                "no answer within {PROBE_TIMEOUT:?}"
            )))
        })
}

/// The first of [`PROBE_IMAGES`] that is local.
async fn probe_image(backend: &DockerBackend) -> Option<ResolvedImage> {
    for reference in PROBE_IMAGES {
        if let Ok(image) = backend.docker().inspect_image(reference).await {
            return Some(ResolvedImage {
                id: image.id.unwrap_or_default(),
                reference: reference.to_string(),
                context_hash: None,
                source: ImageOrigin::Local,
            });
        }
    }
    None
}

/// Starts the created container `id`, then the exec and reach checks in it.
async fn in_container(backend: &DockerBackend, id: &str, image: &str) -> Vec<Check> {
    if let Err(e) = within(backend.start_container(id)).await {
        return without_container(Check::fail(
            "container",
            format!("created a container from {image}, but it does not start: {e}"),
            &engine_fix("start containers"),
        ));
    }
    let container = Check::ok(
        "container",
        format!("created and started a container from {image}, then removed it"),
    );
    let started = std::time::Instant::now();
    let (exec, reach) = tokio::join!(exec(backend, id), reach(backend, id));
    tracing::debug!("doctor: exec and reach took {:?}", started.elapsed());
    vec![container, exec, reach]
}

/// `exec`: a command in the container, and its output read back.
async fn exec(backend: &DockerBackend, id: &str) -> Check {
    match run(backend, id, "echo clnrm-doctor").await {
        Ok(out) if out.exit_code == Some(0) && out.stdout.contains("clnrm-doctor") => {
            Check::ok("exec", "ran a command in it and read its output")
        }
        Ok(out) => Check::fail(
            "exec",
            format!(
                "a command in it ended with {:?} and printed {:?}",
                out.exit_code,
                out.stdout.trim()
            ),
            &engine_fix("run commands in containers (exec)"),
        ),
        Err(e) => Check::fail(
            "exec",
            format!("cannot run a command in it: {e}"),
            &engine_fix("run commands in containers (exec)"),
        ),
    }
}

async fn run(
    backend: &DockerBackend,
    id: &str,
    script: &str,
) -> Result<clnrm_exec::ExecOutput, ExecError> {
    let request = ExecRequest {
        argv: vec!["sh".into(), "-c".into(), script.into()],
        env: BTreeMap::new(),
        workdir: None,
        timeout: REACH_TIMEOUT + Duration::from_secs(2),
    };
    backend.exec(id, &request).await
}

/// `otlp_reach`: a listener on the default bridge's gateway (where the OTLP receiver
/// binds), and the container connecting to it.
async fn reach(backend: &DockerBackend, id: &str) -> Check {
    const NAME: &str = "otlp_reach";
    let gateway = match bridge_gateway(backend).await {
        Ok(gateway) => gateway,
        Err(e) => {
            return Check::warn(
                NAME,
                format!("not checked: the default bridge's gateway is unknown ({e})"),
                "nothing for single tests: spans are then received on each test's own network",
            )
        }
    };
    let listener = match tokio::net::TcpListener::bind((gateway, 0)).await {
        Ok(listener) => listener,
        Err(e) => {
            return Check::warn(
                NAME,
                format!("not checked: cannot listen on the bridge's gateway {gateway} ({e}); is the engine on another machine?"),
                "spans can only be collected from an engine on this machine: use a local engine for tests with [expect.otel]",
            )
        }
    };
    let port = match listener.local_addr() {
        Ok(address) => address.port(),
        Err(e) => return Check::warn(NAME, format!("not checked: {e}"), "run clnrm doctor again"),
    };
    let accept = async {
        let (mut stream, _) = listener.accept().await.ok()?;
        let mut line = [0u8; 64];
        let n = stream.read(&mut line).await.ok()?;
        Some(String::from_utf8_lossy(&line[..n]).into_owned())
    };
    let script = format!("echo clnrm-doctor | nc -w 2 {gateway} {port}");
    let (heard, ran) = tokio::join!(
        tokio::time::timeout(REACH_TIMEOUT, accept),
        run(backend, id, &script)
    );
    match heard {
        Ok(Some(text)) if text.contains("clnrm-doctor") => Check::ok(
            NAME,
            format!("a container reached {gateway}, where the OTLP receiver listens"),
        ),
        _ => {
            let said = match ran {
                Ok(out) => format!("{}{}", out.stdout, out.stderr).trim().to_string(),
                Err(e) => e.to_string(),
            };
            Check::fail(
                NAME,
                format!("a container cannot connect to {gateway}:{port}, where spans are received ({said})"),
                "allow containers to reach the host on the bridge's gateway: a firewall rule such as `sudo iptables -I INPUT -i docker0 -j ACCEPT`",
            )
        }
    }
}

/// Docker's default network is `bridge`; Podman's is `podman`.
async fn bridge_gateway(backend: &DockerBackend) -> Result<IpAddr, ExecError> {
    match backend.network_gateway("bridge").await {
        Ok(gateway) => Ok(gateway),
        Err(first) => backend.network_gateway("podman").await.map_err(|_| first),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_below_the_supported_ones_are_old_and_unreadable_ones_are_not() {
        assert!(older_than("1.40", (1, 41)));
        assert!(!older_than("1.41", (1, 41)));
        assert!(!older_than("1.45", (1, 41)));
        assert!(older_than("4.2.1", (4, 3)));
        assert!(!older_than("4.3.1", (4, 3)));
        assert!(!older_than("20.10.24+dfsg1", (1, 41)));
        assert!(!older_than("dev", (1, 41)));
    }

    #[test]
    fn the_engine_names_itself_podman_in_its_platform_or_components() {
        let mut version = SystemVersion::default();
        assert_eq!(engine_name(&version), "Docker");
        version.components = Some(vec![clnrm_exec::bollard::models::SystemVersionComponents {
            name: "Podman Engine".into(),
            version: "4.3.1".into(),
            details: None,
        }]);
        assert_eq!(engine_name(&version), "Podman");
    }

    #[test]
    fn the_probe_tarball_is_one_ustar_file_in_whole_blocks() {
        let tar = one_file_tar("clnrm-doctor", b"hello\n");
        assert_eq!(tar.len(), 512 + 512 + 1024);
        assert_eq!(&tar[0..12], b"clnrm-doctor");
        assert_eq!(&tar[124..136], b"00000000006\0");
        assert_eq!(&tar[257..263], b"ustar\0");
        let mut blank = tar[..512].to_vec();
        blank[148..156].copy_from_slice(b"        ");
        let sum: u32 = blank.iter().map(|&b| u32::from(b)).sum();
        assert_eq!(&tar[148..155], format!("{sum:06o}\0").as_bytes());
        assert_eq!(&tar[512..518], b"hello\n");
        assert!(tar[518..].iter().all(|&b| b == 0));
    }
}
