//! [`DockerEngine`]: the [`Backend`] on a Docker engine, through bollard (as
//! re-exported by testcontainers, so both agree on one version): connecting,
//! containers, networks, listing and removal. Images are in `docker_image`, running
//! commands in `docker_exec`, what is learned of a container in `container_facts`, the
//! engine's answers and errors in our words in `docker_answers`. A command reaches the
//! engine here by an exec of its own; the step runner is a layer above (`runner`).
//!
//! bollard asks for a newer API than the 20.10 engines here speak (1.41);
//! [`DockerEngine::connect_to`] negotiates the version down before anything else.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use clnrm_plan::ImageSource;
use futures_util::future::BoxFuture;
use futures_util::{FutureExt, StreamExt};
use testcontainers::bollard;
use testcontainers::bollard::models::{
    ContainerCreateBody, ContainerInspectResponse, EndpointSettings, HostConfig, NetworkingConfig,
    PortBinding,
};
use testcontainers::bollard::query_parameters::{
    CreateContainerOptions, InspectNetworkOptions, ListContainersOptions, ListImagesOptions,
    ListNetworksOptions, LogsOptions, RemoveContainerOptions, RemoveImageOptions, StatsOptions,
};
use testcontainers::bollard::Docker;
use tokio::sync::Mutex;

use super::container_facts::KnownContainers;
use super::docker_answers::{
    engine, engine_shares_our_files, error_text, is_not_found, label_filter, network_object,
    past_podman_stopped_state, refuses_init, status_of,
};
use super::network_space::Subnet;
use super::session::{host_name, LABEL_MANAGED, LABEL_SPARE_NETWORK};
use crate::{
    Backend, ContainerRequest, ContainerStarted, ContainerStatus, EngineInfo, ExecError,
    ExecOutput, ExecRequest, ManagedKind, ManagedObject, ResolvedImage,
};

/// The idle command of a service without `args`: sleeps until removed, and
/// exits at once on SIGTERM (a shell as PID 1 ignores signals it does not trap).
pub const IDLE_COMMAND: &str = "trap 'exit 0' TERM INT; while :; do sleep 3600 & wait; done";

/// What a service without `args` runs as its main process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IdleMain {
    /// [`IDLE_COMMAND`]: a step runner, if any, comes later by an exec.
    Sleep,
    /// A shell reading the container's stdin, attached by clnrm from the start: the
    /// step runner, with no exec (~40 ms before the first step). When it ends (its
    /// stdin closed, it found the image unfit, a step killed it), [`IDLE_COMMAND`]
    /// keeps the container up for steps by exec.
    StepRunner,
}

/// A [`Backend`] on the Docker Engine API, every command by an exec.
#[derive(Clone)]
pub(crate) struct DockerEngine {
    docker: Docker,
    endpoint: String,
    /// One build at a time per context hash within this process.
    pub(crate) builds: Arc<Mutex<HashMap<String, Arc<Mutex<()>>>>>,
    /// What exec needs to know of a container, learned once.
    pub(crate) containers: Arc<KnownContainers>,
    /// Starts the command wrapper's status line: random per engine, so no
    /// command's output can pass for it.
    status_marker: Arc<str>,
    /// Whether the engine is Podman, asked the first time it matters.
    is_podman: Arc<tokio::sync::OnceCell<bool>>,
    /// The engine refused an init for a container (a Podman without `catatonit`).
    no_init: Arc<std::sync::atomic::AtomicBool>,
    /// Told whenever this process removes a network: a create waiting for address
    /// space tries again (`docker_network`).
    pub(crate) network_released: Arc<tokio::sync::Notify>,
    /// Subnets a create of this process is trying right now, so concurrent creates
    /// try different ones.
    pub(crate) subnets_in_flight: Arc<std::sync::Mutex<std::collections::BTreeSet<Subnet>>>,
}

impl std::fmt::Debug for DockerEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DockerEngine")
            .field("endpoint", &self.endpoint)
            .finish()
    }
}

impl DockerEngine {
    /// Connects to the engine at `endpoint` (`unix:///...`, `tcp://...`, `http://...`).
    pub(crate) async fn connect_to(endpoint: &str) -> Result<DockerEngine, ExecError> {
        let endpoint = endpoint.to_string();
        let unreachable = |reason: String| ExecError::EngineUnreachable {
            endpoint: endpoint.clone(),
            reason,
        };
        let docker =
            Docker::connect_with_host(&endpoint).map_err(|e| unreachable(e.to_string()))?;
        let docker = tokio::time::timeout(Duration::from_secs(10), docker.negotiate_version())
            .await
            .map_err(|_| unreachable("no answer within 10s".into()))?
            .map_err(|e| unreachable(e.to_string()))?;
        Ok(DockerEngine {
            docker,
            endpoint,
            builds: Arc::default(),
            containers: Arc::default(),
            status_marker: new_status_marker().into(),
            is_podman: Arc::default(),
            no_init: Arc::default(),
            network_released: Arc::default(),
            subnets_in_flight: Arc::default(),
        })
    }

    /// The bollard client, for what the trait does not cover.
    pub(crate) fn docker(&self) -> &Docker {
        &self.docker
    }

    pub(crate) fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The first word of the command wrapper's status line.
    pub(crate) fn status_marker(&self) -> &str {
        &self.status_marker
    }

    /// Whether the engine is Podman (its version names a `Podman Engine` component);
    /// asked once, and only where Podman's answers need reading differently.
    async fn is_podman(&self) -> bool {
        *self
            .is_podman
            .get_or_init(|| async {
                self.docker.version().await.is_ok_and(|v| {
                    v.components
                        .unwrap_or_default()
                        .iter()
                        .any(|c| c.name == "Podman Engine")
                })
            })
            .await
    }

    /// Inspects the container and keeps what it says.
    pub(crate) async fn inspect_and_learn(
        &self,
        container: &str,
    ) -> Result<ContainerInspectResponse, ExecError> {
        let info = past_podman_stopped_state(|| self.docker.inspect_container(container, None))
            .await
            .map_err(engine)?;
        self.containers.learn(container, &info);
        Ok(info)
    }

    /// The container's environment (image and service `env`), inspected once.
    pub(crate) async fn container_env(&self, container: &str) -> Result<Vec<String>, ExecError> {
        if let Some(env) = self.containers.env(container) {
            return Ok(env);
        }
        self.inspect_and_learn(container).await?;
        Ok(self.containers.env(container).unwrap_or_default())
    }
}

/// Creates a container in a task of its own, so a caller that is cancelled
/// (its future dropped) while the engine works does not leave a container
/// nobody knows of: the engine finishes the create either way, and the task
/// removes the container when nobody is left to take its ID. Taking the ID
/// and handing it on happen without an await between them, so once the
/// caller has it, it is the caller's to remove.
async fn create_or_undo(
    docker: Docker,
    options: CreateContainerOptions,
    body: ContainerCreateBody,
) -> Result<String, bollard::errors::Error> {
    let (give, take) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let created = docker
            .create_container(Some(options), body)
            .await
            .map(|c| c.id);
        if let Err(Ok(orphan)) = give.send(created) {
            let options = RemoveContainerOptions {
                force: true,
                v: true,
                ..Default::default()
            };
            if let Err(e) = docker.remove_container(&orphan, Some(options)).await {
                tracing::warn!(
                    container = orphan,
                    "removing a container created for a cancelled test: {}",
                    error_text(&e)
                );
            }
        }
    });
    take.await.unwrap_or_else(|_| {
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 500,
            message: "the container create task ended without an answer".into(),
        })
    })
}

impl DockerEngine {
    /// Creates a container for `request`; a service without `args` runs `idle`.
    pub(crate) async fn create_container_with(
        &self,
        request: &ContainerRequest<'_>,
        idle: IdleMain,
    ) -> Result<String, ExecError> {
        let spec = request.spec;
        let (entrypoint, cmd) = match &spec.command {
            Some(args) => (None, Some(args.clone())),
            // Idle: our own entrypoint, so an image's entrypoint cannot interfere.
            None => {
                let script = match idle {
                    IdleMain::Sleep => IDLE_COMMAND.to_string(),
                    // The engine ends the attach only when the container ends:
                    // a runner that ends (killed by a step, say) says so with a
                    // frame of its own (`ended`), then the container idles.
                    IdleMain::StepRunner => {
                        let marker = self.status_marker();
                        format!(
                            "sh; printf '\\n%s ended\\n' {marker}; printf '\\n%s\\n' {marker} >&2; \
                             exec </dev/null >/dev/null 2>&1; {IDLE_COMMAND}"
                        )
                    }
                };
                (Some(vec!["sh".to_string(), "-c".to_string(), script]), None)
            }
        };
        let runner_main = spec.command.is_none() && idle == IdleMain::StepRunner;
        // A service's own main process runs under the engine's init (`docker run
        // --init`), which reaps every orphan. A step's processes killed at its timeout
        // can outlive their parent for a moment and go to PID 1: PostgreSQL's
        // postmaster takes any child of its that dies by a signal for a crashed backend,
        // ends every connection and resets its unlogged tables. Our own shells (the
        // runner, the idle loop) reap what they are given.
        let init = spec.command.is_some() && !self.no_init.load(Ordering::Relaxed);

        if !spec.volumes.is_empty() && !engine_shares_our_files(&self.endpoint) {
            // A bind mount names a path on the engine's machine, not ours: with a
            // remote engine it would mount whatever is (or is not) there.
            return Err(ExecError::Service {
                service: spec.service.clone(),
                reason: format!(
                    "mounts host path `{}`, but the Docker engine at {} is not on this machine (only a unix:// socket is taken to be local), so a host volume cannot be sent to it; copy the files in with a `build` context instead, or use a local engine",
                    spec.volumes[0].host_path, self.endpoint
                ),
            });
        }
        let binds: Vec<String> = spec
            .volumes
            .iter()
            .map(|v| {
                let host = if Path::new(&v.host_path).is_absolute() {
                    std::path::PathBuf::from(&v.host_path)
                } else {
                    request.root.join(&v.host_path)
                };
                let host = std::fs::canonicalize(&host).unwrap_or(host);
                let mode = if v.read_only { ":ro" } else { "" };
                format!("{}:{}{mode}", host.display(), v.container_path)
            })
            .collect();
        let exposed: Vec<String> = spec.ports.iter().map(|p| format!("{p}/tcp")).collect();
        let port_bindings: HashMap<String, Option<Vec<PortBinding>>> = spec
            .ports
            .iter()
            .map(|p| {
                (
                    format!("{p}/tcp"),
                    Some(vec![PortBinding {
                        host_ip: Some("127.0.0.1".into()),
                        host_port: Some(String::new()),
                    }]),
                )
            })
            .collect();
        let body = ContainerCreateBody {
            image: Some(request.image.id.clone()),
            entrypoint,
            cmd,
            // The spec's own values win over what span collection adds.
            env: Some(
                request
                    .extra_env
                    .iter()
                    .filter(|(k, _)| !spec.env.contains_key(*k))
                    .chain(&spec.env)
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect(),
            ),
            labels: Some(request.labels.clone().into_iter().collect()),
            hostname: Some(spec.service.clone()),
            exposed_ports: (!exposed.is_empty()).then_some(exposed),
            host_config: Some(HostConfig {
                binds: (!binds.is_empty()).then_some(binds),
                nano_cpus: spec.limits.nano_cpus,
                memory: spec.limits.memory_bytes,
                port_bindings: (!port_bindings.is_empty()).then_some(port_bindings),
                network_mode: request.network.map(str::to_string),
                extra_hosts: (!request.extra_hosts.is_empty()).then(|| request.extra_hosts.clone()),
                init: init.then_some(true),
                ..Default::default()
            }),
            networking_config: request.network.map(|network| NetworkingConfig {
                endpoints_config: Some(HashMap::from([(
                    network.to_string(),
                    EndpointSettings {
                        aliases: Some(vec![spec.service.clone()]),
                        ..Default::default()
                    },
                )])),
            }),
            // The runner's stdin, closed when clnrm's attach ends.
            open_stdin: runner_main.then_some(true),
            stdin_once: runner_main.then_some(true),
            attach_stdin: runner_main.then_some(true),
            ..Default::default()
        };
        let options = CreateContainerOptions {
            name: Some(request.name.clone()),
            ..Default::default()
        };
        // Kept only when an init is asked for, to create again without one.
        let without_init = init.then(|| {
            let mut body = body.clone();
            if let Some(host) = body.host_config.as_mut() {
                host.init = None;
            }
            (options.clone(), body)
        });
        let mut created = create_or_undo(self.docker.clone(), options, body).await;
        if let Some((options, body)) = without_init {
            if created
                .as_ref()
                .is_err_and(|e| refuses_init(&error_text(e)))
            {
                // Podman without its init binary (`catatonit`): the service runs as
                // PID 1, as it would without clnrm.
                tracing::debug!("the engine has no init for containers: {:?}", created);
                self.no_init.store(true, Ordering::Relaxed);
                created = create_or_undo(self.docker.clone(), options, body).await;
            }
        }
        let created = created.map_err(|e| ExecError::Service {
            service: spec.service.clone(),
            reason: format!("cannot create the container: {}", error_text(&e)),
        })?;
        Ok(created)
    }

    async fn networks_labelled(
        &self,
        filter: HashMap<String, Vec<String>>,
    ) -> Result<Vec<bollard::models::Network>, ExecError> {
        self.docker
            .list_networks(Some(ListNetworksOptions {
                filters: Some(filter),
            }))
            .await
            .map_err(engine)
    }
}

impl Backend for DockerEngine {
    fn ping(&self) -> BoxFuture<'_, Result<EngineInfo, ExecError>> {
        async move {
            let unreachable = |reason: String| ExecError::EngineUnreachable {
                endpoint: self.endpoint.clone(),
                reason,
            };
            let v = tokio::time::timeout(Duration::from_secs(10), self.docker.version())
                .await
                .map_err(|_| unreachable("no answer within 10s".into()))?
                .map_err(|e| unreachable(error_text(&e)))?;
            Ok(EngineInfo {
                endpoint: self.endpoint.clone(),
                version: v.version.unwrap_or_default(),
                api_version: v.api_version.unwrap_or_default(),
            })
        }
        .boxed()
    }

    fn ensure_image<'a>(
        &'a self,
        image: &'a ImageSource,
        root: &'a Path,
    ) -> BoxFuture<'a, Result<ResolvedImage, ExecError>> {
        async move {
            match image {
                ImageSource::Reference { reference } => self.ensure_reference(reference).await,
                ImageSource::Build {
                    context,
                    dockerfile,
                } => self.ensure_build(context, dockerfile, root).await,
            }
        }
        .boxed()
    }

    fn create_network<'a>(
        &'a self,
        name: &'a str,
        labels: &'a BTreeMap<String, String>,
    ) -> BoxFuture<'a, Result<String, ExecError>> {
        self.create_bridge_network(name, labels).boxed()
    }

    fn network_gateway<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<IpAddr, ExecError>> {
        async move {
            let network = self
                .docker
                .inspect_network(id, None::<InspectNetworkOptions>)
                .await
                .map_err(engine)?;
            let configs = network
                .ipam
                .and_then(|ipam| ipam.config)
                .unwrap_or_default();
            let listed = configs
                .iter()
                .filter_map(|config| config.gateway.as_deref()?.parse::<IpAddr>().ok())
                .find(IpAddr::is_ipv4);
            // The default bridge lists only its subnet: the engine gives the gateway the
            // subnet's first address unless told otherwise.
            let first_of_subnet = || {
                configs
                    .iter()
                    .filter_map(|config| first_address(config.subnet.as_deref()?))
                    .next()
            };
            listed
                .or_else(first_of_subnet)
                .ok_or_else(|| ExecError::Engine(format!("network {id} has no IPv4 gateway")))
        }
        .boxed()
    }

    fn create_container<'a>(
        &'a self,
        request: &'a ContainerRequest<'a>,
    ) -> BoxFuture<'a, Result<String, ExecError>> {
        self.create_container_with(request, IdleMain::Sleep).boxed()
    }

    fn start_container<'a>(
        &'a self,
        id: &'a str,
    ) -> BoxFuture<'a, Result<ContainerStarted, ExecError>> {
        async move {
            let t = std::time::Instant::now();
            self.docker
                .start_container(id, None)
                .await
                .map_err(engine)?;
            let start_ms = t.elapsed().as_secs_f64() * 1000.0;
            // Learned now, so the first command in it needs no inspect of its own.
            let info = self.inspect_and_learn(id).await?;
            tracing::debug!(
                container = %id,
                "started in {start_ms:.1} ms, inspected in {:.1} ms",
                t.elapsed().as_secs_f64() * 1000.0 - start_ms
            );
            let status = status_of(info.state.clone().unwrap_or_default());
            let mut ports = BTreeMap::new();
            let network_settings = info.network_settings.unwrap_or_default();
            let bridge_address = default_bridge_address(network_settings.networks.as_ref());
            let port_map = network_settings.ports.unwrap_or_default();
            for (key, bindings) in port_map {
                let Some(container_port) = key.split('/').next().and_then(|p| p.parse().ok())
                else {
                    continue;
                };
                let host_port = bindings
                    .unwrap_or_default()
                    .into_iter()
                    .find_map(|b| b.host_port.and_then(|p| p.parse().ok()));
                if let Some(host_port) = host_port {
                    ports.insert(container_port, host_port);
                }
            }
            Ok(ContainerStarted {
                ports,
                status,
                bridge_address,
            })
        }
        .boxed()
    }

    fn container_status<'a>(
        &'a self,
        id: &'a str,
    ) -> BoxFuture<'a, Result<ContainerStatus, ExecError>> {
        async move {
            let info = past_podman_stopped_state(|| self.docker.inspect_container(id, None))
                .await
                .map_err(engine)?;
            let mut status = status_of(info.state.clone().unwrap_or_default());
            if looks_killed_for_its_memory(&info) && self.is_podman().await {
                status.oom_killed = true;
            }
            Ok(status)
        }
        .boxed()
    }

    fn container_logs<'a>(
        &'a self,
        id: &'a str,
        lines: usize,
    ) -> BoxFuture<'a, Result<String, ExecError>> {
        async move {
            let options = LogsOptions {
                stdout: true,
                stderr: true,
                tail: lines.to_string(),
                ..Default::default()
            };
            let mut logs = self.docker.logs(id, Some(options));
            let mut text = Vec::new();
            while let Some(item) = logs.next().await {
                text.extend_from_slice(&item.map_err(engine)?.into_bytes());
            }
            Ok(String::from_utf8_lossy(&text).into_owned())
        }
        .boxed()
    }

    fn container_memory<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Option<u64>> {
        async move {
            // One sample, without waiting for a second to compute CPU use (API 1.41+).
            let options = StatsOptions {
                stream: false,
                one_shot: true,
            };
            let stats = self.docker.stats(id, Some(options)).next().await?.ok()?;
            let memory = stats.memory_stats?;
            let usage = memory.usage?;
            // As `docker stats` shows it: the page cache (cgroup v2 inactive_file,
            // v1 cache) can be given back, so it is not the container's.
            let cache = memory.stats.as_ref().and_then(|s| {
                s.get("inactive_file")
                    .or_else(|| s.get("total_inactive_file"))
                    .or_else(|| s.get("cache"))
                    .copied()
            });
            Some(usage.saturating_sub(cache.unwrap_or(0)))
        }
        .boxed()
    }

    fn exec<'a>(
        &'a self,
        container: &'a str,
        request: &'a ExecRequest,
    ) -> BoxFuture<'a, Result<ExecOutput, ExecError>> {
        self.exec_in_container(container, request).boxed()
    }

    fn remove_container<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), ExecError>> {
        async move {
            self.containers.forget(id);
            let options = RemoveContainerOptions {
                force: true,
                v: true,
                ..Default::default()
            };
            match self.docker.remove_container(id, Some(options)).await {
                Ok(()) => Ok(()),
                Err(e) if is_not_found(&e) => Ok(()),
                // Already being removed by someone else (another cleanup).
                Err(bollard::errors::Error::DockerResponseServerError {
                    status_code: 409,
                    message,
                }) if message.contains("already in progress") => Ok(()),
                Err(e) => Err(engine(e)),
            }
        }
        .boxed()
    }

    fn remove_network<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), ExecError>> {
        async move {
            match self.docker.remove_network(id).await {
                Ok(()) => {
                    self.network_released.notify_waiters();
                    Ok(())
                }
                Err(e) if is_not_found(&e) => Ok(()),
                Err(e) => Err(engine(e)),
            }
        }
        .boxed()
    }

    fn list_managed(&self) -> BoxFuture<'_, Result<Vec<ManagedObject>, ExecError>> {
        async move {
            let filter = label_filter(&format!("{LABEL_MANAGED}=true"));
            let containers = past_podman_stopped_state(|| {
                self.docker.list_containers(Some(ListContainersOptions {
                    all: true,
                    filters: Some(filter.clone()),
                    ..Default::default()
                }))
            })
            .await
            .map_err(engine)?;
            let networks = self.networks_labelled(filter).await?;
            let mut objects: Vec<ManagedObject> = containers
                .into_iter()
                .map(|c| ManagedObject {
                    kind: ManagedKind::Container,
                    id: c.id.unwrap_or_default(),
                    name: c
                        .names
                        .and_then(|n| n.into_iter().next())
                        .unwrap_or_default()
                        .trim_start_matches('/')
                        .to_string(),
                    labels: c.labels.unwrap_or_default().into_iter().collect(),
                    running: c.state.map(|s| s.to_string() == "running").unwrap_or(false),
                    gateway: None,
                })
                .collect();
            objects.extend(networks.into_iter().map(network_object));
            Ok(objects)
        }
        .boxed()
    }

    fn list_spare_networks(&self) -> BoxFuture<'_, Result<Vec<ManagedObject>, ExecError>> {
        async move {
            let filter = label_filter(&format!("{LABEL_SPARE_NETWORK}={}", host_name()));
            let networks = self.networks_labelled(filter).await?;
            Ok(networks.into_iter().map(network_object).collect())
        }
        .boxed()
    }

    fn remove_image<'a>(&'a self, reference: &'a str) -> BoxFuture<'a, Result<(), ExecError>> {
        async move {
            let options = RemoveImageOptions {
                force: true,
                ..Default::default()
            };
            match self
                .docker
                .remove_image(reference, Some(options), None)
                .await
            {
                Ok(_) => Ok(()),
                Err(e) if is_not_found(&e) => Ok(()),
                Err(e) => Err(engine(e)),
            }
        }
        .boxed()
    }

    fn list_build_images(&self) -> BoxFuture<'_, Result<Vec<(String, String)>, ExecError>> {
        async move {
            let images = self
                .docker
                .list_images(Some(ListImagesOptions {
                    filters: Some(HashMap::from([(
                        "reference".to_string(),
                        // Podman 4.3 matches this against `docker.io/clnrm-build/…` too,
                        // and ANDs several `reference` values, so it is the only one.
                        vec!["clnrm-build/*".to_string()],
                    )])),
                    ..Default::default()
                }))
                .await
                .map_err(engine)?;
            let mut out = Vec::new();
            for image in images {
                for tag in &image.repo_tags {
                    if let Some(name) = build_image_tag(tag) {
                        out.push((name.to_string(), image.id.clone()));
                    }
                }
            }
            Ok(out)
        }
        .boxed()
    }
}

/// The container's address on the engine's default network: Docker calls it `bridge`;
/// Podman puts a container asked for on `bridge` on its own default network, `podman`,
/// and names that one in the container's networks.
fn default_bridge_address(networks: Option<&HashMap<String, EndpointSettings>>) -> Option<IpAddr> {
    let networks = networks?;
    ["bridge", "podman"]
        .iter()
        .find_map(|name| networks.get(*name)?.ip_address.as_deref()?.parse().ok())
}

/// A container that was SIGKILLed (137) under a memory limit without being flagged
/// `OOMKilled`: Podman 4.3 with runc on cgroup v1 never sets the flag (conmon writes its
/// `oom` marker into its working directory instead), so there such a death is taken to
/// be the limit's. Docker does set it, and there a 137 without it is someone's kill.
fn looks_killed_for_its_memory(info: &ContainerInspectResponse) -> bool {
    let state = info.state.as_ref();
    let limited = info
        .host_config
        .as_ref()
        .and_then(|h| h.memory)
        .is_some_and(|bytes| bytes > 0);
    limited
        && state.and_then(|s| s.exit_code) == Some(137)
        && !state.and_then(|s| s.oom_killed).unwrap_or(false)
        && !state.and_then(|s| s.running).unwrap_or(false)
}

/// `tag` as clnrm names its build images (`clnrm-build/<hash>:latest`), when it is one:
/// Podman names them `docker.io/clnrm-build/…` (or `localhost/…` when loaded), and the
/// short name finds them there too.
fn build_image_tag(tag: &str) -> Option<&str> {
    let name = ["docker.io/", "localhost/"]
        .iter()
        .find_map(|registry| tag.strip_prefix(registry))
        .unwrap_or(tag);
    name.starts_with("clnrm-build/").then_some(name)
}

/// The first host address of an IPv4 subnet (`172.17.0.0/16` → `172.17.0.1`).
fn first_address(subnet: &str) -> Option<IpAddr> {
    let (network, bits) = subnet.split_once('/')?;
    let network: std::net::Ipv4Addr = network.parse().ok()?;
    let bits: u32 = bits.parse().ok()?;
    if bits > 30 {
        return None;
    }
    let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
    Some(IpAddr::V4(std::net::Ipv4Addr::from(
        (u32::from(network) & mask) + 1,
    )))
}

/// `clnrm-status-<16 hex digits>`, from the time, this process and an address.
pub(crate) fn new_status_marker() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let local = 0u8;
    let mut h = blake3::Hasher::new();
    h.update(&nanos.to_le_bytes());
    h.update(&std::process::id().to_le_bytes());
    h.update(&(std::ptr::addr_of!(local) as usize).to_le_bytes());
    format!("clnrm-status-{}", &h.finalize().to_hex()[..16])
}

#[cfg(test)]
mod tests {
    use super::{
        build_image_tag, default_bridge_address, first_address, looks_killed_for_its_memory,
        DockerEngine,
    };
    use crate::ExecError;

    #[test]
    fn the_default_bridge_address_is_found_under_docker_and_podman_names() {
        let networks = |name: &str| {
            std::collections::HashMap::from([(
                name.to_string(),
                super::EndpointSettings {
                    ip_address: Some("10.88.0.7".into()),
                    ..Default::default()
                },
            )])
        };
        let address = Some("10.88.0.7".parse().unwrap());
        assert_eq!(default_bridge_address(Some(&networks("bridge"))), address);
        assert_eq!(default_bridge_address(Some(&networks("podman"))), address);
        assert_eq!(default_bridge_address(Some(&networks("clnrm-1-net"))), None);
        assert_eq!(default_bridge_address(None), None);
    }

    #[test]
    fn a_sigkill_under_a_memory_limit_without_the_oom_flag_is_taken_for_the_limit() {
        let inspect = |json: &str| {
            serde_json::from_str::<super::ContainerInspectResponse>(json).expect("an inspect")
        };
        // What Podman 4.3 (runc, cgroup v1) answers for a service its limit killed.
        assert!(looks_killed_for_its_memory(&inspect(
            r#"{"State":{"Status":"exited","Running":false,"ExitCode":137,"OOMKilled":false},
                "HostConfig":{"Memory":16777216}}"#
        )));
        for other in [
            // No limit: someone's `kill -9`.
            r#"{"State":{"Status":"exited","ExitCode":137,"OOMKilled":false},"HostConfig":{"Memory":0}}"#,
            // Another exit code under a limit.
            r#"{"State":{"Status":"exited","ExitCode":1,"OOMKilled":false},"HostConfig":{"Memory":16777216}}"#,
            // Still running.
            r#"{"State":{"Status":"running","Running":true,"ExitCode":137},"HostConfig":{"Memory":16777216}}"#,
        ] {
            assert!(!looks_killed_for_its_memory(&inspect(other)), "{other}");
        }
    }

    #[test]
    fn build_images_are_found_under_podmans_registry_prefixes_too() {
        for (tag, name) in [
            ("clnrm-build/ab12:latest", Some("clnrm-build/ab12:latest")),
            (
                "docker.io/clnrm-build/ab12:latest",
                Some("clnrm-build/ab12:latest"),
            ),
            (
                "localhost/clnrm-build/ab12:latest",
                Some("clnrm-build/ab12:latest"),
            ),
            ("docker.io/library/busybox:latest", None),
            ("clnrm-fixture/busybox:latest", None),
            ("quay.io/clnrm-build/ab12:latest", None),
        ] {
            assert_eq!(build_image_tag(tag), name, "{tag}");
        }
    }

    #[tokio::test]
    async fn an_unreachable_engine_is_a_clear_error_naming_where_it_looked() {
        let e = DockerEngine::connect_to("unix:///nonexistent/clnrm-test.sock")
            .await
            .unwrap_err();
        assert!(matches!(e, ExecError::EngineUnreachable { .. }), "{e:?}");
        let text = e.to_string();
        assert!(
            text.starts_with(
                "cannot reach the Docker engine at unix:///nonexistent/clnrm-test.sock: "
            ),
            "{text}"
        );
        assert!(text.contains("DOCKER_HOST"), "{text}");
        let e = DockerEngine::connect_to("tcp://127.0.0.1:1")
            .await
            .unwrap_err();
        assert!(e.to_string().contains("tcp://127.0.0.1:1"), "{e}");
    }

    #[test]
    fn the_gateway_of_a_subnet_listing_none_is_its_first_address() {
        assert_eq!(
            first_address("172.17.0.0/16"),
            Some("172.17.0.1".parse().unwrap())
        );
        assert_eq!(first_address("fd00::/64"), None);
        assert_eq!(first_address("10.0.0.0/32"), None);
        assert_eq!(first_address("nonsense"), None);
    }
}
