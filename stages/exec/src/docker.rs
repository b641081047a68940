//! [`DockerBackend`]: the [`Backend`] on a Docker engine, through bollard (as
//! re-exported by testcontainers, so both agree on one version).
//!
//! bollard asks for a newer API than the 20.10 engines here speak (1.41);
//! [`DockerBackend::connect`] negotiates the version down before anything else.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use clnrm_plan::ImageSource;
use futures_util::future::BoxFuture;
use futures_util::{FutureExt, StreamExt};
use testcontainers::bollard;
use testcontainers::bollard::container::LogOutput;
use testcontainers::bollard::exec::{CreateExecOptions, StartExecResults};
use testcontainers::bollard::models::{
    ContainerCreateBody, EndpointSettings, HostConfig, NetworkCreateRequest, NetworkingConfig,
    PortBinding,
};
use testcontainers::bollard::query_parameters::{
    BuildImageOptions, CreateContainerOptions, CreateImageOptions, InspectNetworkOptions,
    ListContainersOptions, ListImagesOptions, ListNetworksOptions, LogsOptions,
    RemoveContainerOptions, RemoveImageOptions,
};
use testcontainers::bollard::Docker;
use tokio::sync::Mutex;

use crate::context::build_context;
use crate::session::LABEL_MANAGED;
use crate::{
    Backend, ContainerRequest, ContainerStarted, ContainerStatus, EngineInfo, ExecError,
    ExecOutput, ExecRequest, ImageOrigin, ManagedKind, ManagedObject, ResolvedImage,
};

/// The idle command of a service without `args`: sleeps until removed, and
/// exits at once on SIGTERM (a shell as PID 1 ignores signals it does not trap).
pub const IDLE_COMMAND: &str = "trap 'exit 0' TERM INT; while :; do sleep 3600 & wait; done";

/// Output kept per stream and exec; the rest is dropped (and flagged).
const CAPTURE_LIMIT: usize = 8 * 1024 * 1024;

/// A [`Backend`] on the Docker Engine API.
#[derive(Clone)]
pub struct DockerBackend {
    docker: Docker,
    endpoint: String,
    /// One build at a time per context hash within this process.
    builds: Arc<Mutex<HashMap<String, Arc<Mutex<()>>>>>,
}

impl std::fmt::Debug for DockerBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DockerBackend")
            .field("endpoint", &self.endpoint)
            .finish()
    }
}

/// Where the engine is looked for: `DOCKER_HOST`, else the default socket.
pub fn docker_endpoint() -> String {
    std::env::var("DOCKER_HOST")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unix:///var/run/docker.sock".to_string())
}

impl DockerBackend {
    /// Connects to the engine named by `DOCKER_HOST` (default
    /// `unix:///var/run/docker.sock`) and agrees on an API version. Fails with
    /// [`ExecError::EngineUnreachable`], naming where it looked.
    pub async fn connect() -> Result<DockerBackend, ExecError> {
        Self::connect_to(&docker_endpoint()).await
    }

    /// Connects to the engine at `endpoint` (`unix:///...`, `tcp://...`, `http://...`).
    pub async fn connect_to(endpoint: &str) -> Result<DockerBackend, ExecError> {
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
        Ok(DockerBackend {
            docker,
            endpoint,
            builds: Arc::default(),
        })
    }

    /// The bollard client, for what the trait does not cover.
    pub fn docker(&self) -> &Docker {
        &self.docker
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    async fn image_id(&self, reference: &str) -> Result<Option<String>, ExecError> {
        match self.docker.inspect_image(reference).await {
            Ok(image) => Ok(Some(image.id.unwrap_or_default())),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(engine(e)),
        }
    }

    async fn ensure_reference(&self, reference: &str) -> Result<ResolvedImage, ExecError> {
        if let Some(id) = self.image_id(reference).await? {
            return Ok(ResolvedImage {
                id,
                reference: reference.to_string(),
                context_hash: None,
                source: ImageOrigin::Local,
            });
        }
        let (repo, tag) = split_reference(reference);
        let options = CreateImageOptions {
            from_image: Some(repo.to_string()),
            tag: Some(tag.to_string()),
            ..Default::default()
        };
        let unavailable = |reason: String| ExecError::ImageUnavailable {
            reference: reference.to_string(),
            reason,
        };
        let mut pull = self.docker.create_image(Some(options), None, None);
        while let Some(item) = pull.next().await {
            if let Err(e) = item {
                return Err(unavailable(error_text(&e)));
            }
        }
        match self.image_id(reference).await? {
            Some(id) => Ok(ResolvedImage {
                id,
                reference: reference.to_string(),
                context_hash: None,
                source: ImageOrigin::Pulled,
            }),
            None => Err(unavailable(
                "the pull finished but the image is not there".into(),
            )),
        }
    }

    async fn ensure_build(
        &self,
        context: &str,
        dockerfile: &str,
        root: &Path,
    ) -> Result<ResolvedImage, ExecError> {
        let dir = root.join(context);
        let failed = |reason: String| ExecError::BuildFailed {
            context: context.to_string(),
            reason,
        };
        let ctx = {
            let dir = dir.clone();
            let dockerfile = dockerfile.to_string();
            tokio::task::spawn_blocking(move || build_context(&dir, &dockerfile))
                .await
                .map_err(|e| failed(e.to_string()))?
                .map_err(|e| failed(e.to_string()))?
        };
        let tag = ctx.image_tag();
        let lock = {
            let mut builds = self.builds.lock().await;
            builds.entry(ctx.hash.clone()).or_default().clone()
        };
        let _guard = lock.lock().await;
        let resolved = |id: String, source| ResolvedImage {
            id,
            reference: format!("{tag}:latest"),
            context_hash: Some(ctx.hash.clone()),
            source,
        };
        if let Some(id) = self.image_id(&tag).await? {
            return Ok(resolved(id, ImageOrigin::Local));
        }
        // The classic builder: it needs nothing but the engine (BuildKit through
        // the API needs a session, and the CLI here may want buildx).
        let options = BuildImageOptions {
            dockerfile: ctx.dockerfile.clone(),
            t: Some(tag.clone()),
            rm: true,
            forcerm: true,
            labels: Some(HashMap::from([
                ("clnrm.build".to_string(), "true".to_string()),
                ("clnrm.context".to_string(), ctx.hash.clone()),
            ])),
            ..Default::default()
        };
        let body = bollard::body_full(bytes::Bytes::from(ctx.tar.clone()));
        let mut build = self.docker.build_image(options, None, Some(body));
        let mut log = String::new();
        while let Some(item) = build.next().await {
            match item {
                Ok(info) => {
                    if let Some(s) = info.stream {
                        log.push_str(&s);
                    }
                }
                Err(e) => {
                    return Err(failed(format!(
                        "{}{}",
                        error_text(&e),
                        tail_lines(&log, 10, "\nbuild output:\n")
                    )))
                }
            }
        }
        match self.image_id(&tag).await? {
            Some(id) => Ok(resolved(id, ImageOrigin::Built)),
            None => Err(failed(format!(
                "the engine built nothing{}",
                tail_lines(&log, 10, "\nbuild output:\n")
            ))),
        }
    }

    async fn exec_impl(&self, container: &str, req: &ExecRequest) -> Result<ExecOutput, ExecError> {
        let env: Vec<String> = req.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let created = self
            .docker
            .create_exec(
                container,
                CreateExecOptions::<String> {
                    cmd: Some(req.argv.clone()),
                    env: (!env.is_empty()).then_some(env),
                    working_dir: req.workdir.clone(),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    ..Default::default()
                },
            )
            .await
            .map_err(engine)?;
        let started = self
            .docker
            .start_exec(&created.id, None)
            .await
            .map_err(engine)?;
        let StartExecResults::Attached { mut output, input } = started else {
            return Err(ExecError::Engine("exec started detached".into()));
        };
        drop(input);
        let mut out = ExecOutput::default();
        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        let collect = async {
            while let Some(item) = output.next().await {
                let (buf, message) = match item.map_err(engine)? {
                    LogOutput::StdOut { message } | LogOutput::Console { message } => {
                        (&mut stdout, message)
                    }
                    LogOutput::StdErr { message } => (&mut stderr, message),
                    LogOutput::StdIn { .. } => continue,
                };
                let room = CAPTURE_LIMIT.saturating_sub(buf.len());
                if message.len() > room {
                    out.truncated = true;
                }
                buf.extend_from_slice(&message[..message.len().min(room)]);
            }
            Ok::<(), ExecError>(())
        };
        let finished = tokio::time::timeout(req.timeout, collect).await;
        match finished {
            Ok(result) => {
                result?;
                out.exit_code = self.exit_code(&created.id).await?;
            }
            Err(_) => {
                out.timed_out = true;
                self.kill_exec(container, &created.id, &req.argv).await;
            }
        }
        out.stdout = String::from_utf8_lossy(&stdout).into_owned();
        out.stderr = String::from_utf8_lossy(&stderr).into_owned();
        Ok(out)
    }

    /// The exit code once the engine has recorded it (the stream can end a
    /// moment before the exec is marked finished).
    async fn exit_code(&self, exec_id: &str) -> Result<Option<i64>, ExecError> {
        for attempt in 0..50u32 {
            let info = self.docker.inspect_exec(exec_id).await.map_err(engine)?;
            if info.running != Some(true) {
                return Ok(info.exit_code);
            }
            tokio::time::sleep(Duration::from_millis(2 * u64::from(attempt + 1))).await;
        }
        Ok(None)
    }

    /// Kills a timed-out exec and what it started. The Engine API has no call for
    /// this, so: find its process (host pid from the exec's inspect, checked
    /// against the command line) and its descendants in `/proc`, and signal them
    /// directly; where that is not permitted, signal them from inside the
    /// container by their namespace pids. With a remote engine neither works and
    /// the process lives on until its container is removed at the end of the test.
    async fn kill_exec(&self, container: &str, exec_id: &str, argv: &[String]) {
        let Ok(info) = self.docker.inspect_exec(exec_id).await else {
            return;
        };
        let Some(pid) = info.pid.filter(|p| *p > 0) else {
            return;
        };
        let Some(tree) = local_process_tree(pid as u32, argv) else {
            return;
        };
        let mut denied = Vec::new();
        for p in &tree {
            // SAFETY: plain kill(2) of a pid we just identified.
            if unsafe { libc::kill(p.host_pid as libc::pid_t, libc::SIGKILL) } != 0 {
                denied.extend(p.ns_pid);
            }
        }
        if !denied.is_empty() {
            let mut argv = vec!["kill".to_string(), "-9".to_string()];
            argv.extend(denied.iter().map(u32::to_string));
            let req = ExecRequest {
                argv,
                env: BTreeMap::new(),
                workdir: None,
                timeout: Duration::from_secs(5),
            };
            let _ = Box::pin(self.exec_impl(container, &req)).await;
        }
    }
}

struct LocalProcess {
    host_pid: u32,
    /// The pid inside the container's pid namespace (last `NSpid` entry).
    ns_pid: Option<u32>,
}

/// `pid` and its descendants, if `pid` is a local process running `argv`.
fn local_process_tree(pid: u32, argv: &[String]) -> Option<Vec<LocalProcess>> {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let first = cmdline.split(|&b| b == 0).next().unwrap_or_default();
    let want = argv.first()?.as_bytes();
    // The exec'd binary may be reported by its path (`sleep` vs `/bin/sleep`).
    if !(first == want || first.ends_with(&[b"/", want].concat()) || want.ends_with(first)) {
        return None;
    }
    let mut parents: HashMap<u32, Vec<u32>> = HashMap::new();
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(p) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
            continue;
        };
        let ppid = stat
            .rfind(')')
            .and_then(|i| stat[i + 1..].split_whitespace().nth(1))
            .and_then(|s| s.parse::<u32>().ok());
        if let Some(ppid) = ppid {
            parents.entry(ppid).or_default().push(p);
        }
    }
    let mut tree = Vec::new();
    let mut todo = vec![pid];
    while let Some(p) = todo.pop() {
        let ns_pid = std::fs::read_to_string(format!("/proc/{p}/status"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("NSpid:"))
                    .and_then(|l| l.split_whitespace().last().and_then(|v| v.parse().ok()))
            });
        tree.push(LocalProcess {
            host_pid: p,
            ns_pid,
        });
        if let Some(children) = parents.get(&p) {
            todo.extend(children);
        }
    }
    Some(tree)
}

/// `repo[:tag]` → (repo, tag), `latest` when no tag (a pull without a tag would fetch every tag).
fn split_reference(reference: &str) -> (&str, &str) {
    if let Some((repo, _digest)) = reference.split_once('@') {
        return (repo, &reference[repo.len() + 1..]);
    }
    match reference.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => (repo, tag),
        _ => (reference, "latest"),
    }
}

fn is_not_found(e: &bollard::errors::Error) -> bool {
    matches!(
        e,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

fn error_text(e: &bollard::errors::Error) -> String {
    match e {
        bollard::errors::Error::DockerResponseServerError { message, .. } => message.clone(),
        bollard::errors::Error::DockerStreamError { error } => error.clone(),
        other => other.to_string(),
    }
}

fn engine(e: bollard::errors::Error) -> ExecError {
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

fn tail_lines(text: &str, n: usize, prefix: &str) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    if lines.is_empty() {
        return String::new();
    }
    format!(
        "{prefix}{}",
        lines[lines.len().saturating_sub(n)..].join("\n")
    )
}

fn label_filter(label: &str) -> HashMap<String, Vec<String>> {
    HashMap::from([("label".to_string(), vec![label.to_string()])])
}

impl Backend for DockerBackend {
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
        async move {
            let created = self
                .docker
                .create_network(NetworkCreateRequest {
                    name: name.to_string(),
                    driver: Some("bridge".into()),
                    labels: Some(labels.clone().into_iter().collect()),
                    ..Default::default()
                })
                .await
                .map_err(engine)?;
            Ok(created.id)
        }
        .boxed()
    }

    fn network_gateway<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<IpAddr, ExecError>> {
        async move {
            let network = self
                .docker
                .inspect_network(id, None::<InspectNetworkOptions>)
                .await
                .map_err(engine)?;
            network
                .ipam
                .and_then(|ipam| ipam.config)
                .unwrap_or_default()
                .iter()
                .filter_map(|config| config.gateway.as_deref()?.parse::<IpAddr>().ok())
                .find(IpAddr::is_ipv4)
                .ok_or_else(|| ExecError::Engine(format!("network {id} has no IPv4 gateway")))
        }
        .boxed()
    }

    fn create_container<'a>(
        &'a self,
        request: &'a ContainerRequest<'a>,
    ) -> BoxFuture<'a, Result<String, ExecError>> {
        async move {
            let spec = request.spec;
            let (entrypoint, cmd) = match &spec.command {
                Some(args) => (None, Some(args.clone())),
                // Idle: our own entrypoint, so an image's entrypoint cannot interfere.
                None => (
                    Some(vec![
                        "sh".to_string(),
                        "-c".to_string(),
                        IDLE_COMMAND.to_string(),
                    ]),
                    None,
                ),
            };
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
                    extra_hosts: (!request.extra_hosts.is_empty())
                        .then(|| request.extra_hosts.clone()),
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
                ..Default::default()
            };
            let options = CreateContainerOptions {
                name: Some(request.name.clone()),
                ..Default::default()
            };
            let created = self
                .docker
                .create_container(Some(options), body)
                .await
                .map_err(|e| ExecError::Service {
                    service: spec.service.clone(),
                    reason: format!("cannot create the container: {}", error_text(&e)),
                })?;
            Ok(created.id)
        }
        .boxed()
    }

    fn start_container<'a>(
        &'a self,
        id: &'a str,
    ) -> BoxFuture<'a, Result<ContainerStarted, ExecError>> {
        async move {
            self.docker
                .start_container(id, None)
                .await
                .map_err(engine)?;
            let info = self
                .docker
                .inspect_container(id, None)
                .await
                .map_err(engine)?;
            let mut ports = BTreeMap::new();
            let port_map = info
                .network_settings
                .and_then(|n| n.ports)
                .unwrap_or_default();
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
            Ok(ContainerStarted { ports })
        }
        .boxed()
    }

    fn container_status<'a>(
        &'a self,
        id: &'a str,
    ) -> BoxFuture<'a, Result<ContainerStatus, ExecError>> {
        async move {
            let info = self
                .docker
                .inspect_container(id, None)
                .await
                .map_err(engine)?;
            let state = info.state.unwrap_or_default();
            Ok(ContainerStatus {
                running: state.running.unwrap_or(false),
                exit_code: state.exit_code,
                status: state.status.map(|s| s.to_string()).unwrap_or_default(),
                oom_killed: state.oom_killed.unwrap_or(false),
            })
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

    fn exec<'a>(
        &'a self,
        container: &'a str,
        request: &'a ExecRequest,
    ) -> BoxFuture<'a, Result<ExecOutput, ExecError>> {
        self.exec_impl(container, request).boxed()
    }

    fn remove_container<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), ExecError>> {
        async move {
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
                Ok(()) => Ok(()),
                Err(e) if is_not_found(&e) => Ok(()),
                Err(e) => Err(engine(e)),
            }
        }
        .boxed()
    }

    fn list_managed(&self) -> BoxFuture<'_, Result<Vec<ManagedObject>, ExecError>> {
        async move {
            let filter = label_filter(&format!("{LABEL_MANAGED}=true"));
            let containers = self
                .docker
                .list_containers(Some(ListContainersOptions {
                    all: true,
                    filters: Some(filter.clone()),
                    ..Default::default()
                }))
                .await
                .map_err(engine)?;
            let networks = self
                .docker
                .list_networks(Some(ListNetworksOptions {
                    filters: Some(filter),
                }))
                .await
                .map_err(engine)?;
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
                })
                .collect();
            objects.extend(networks.into_iter().map(|n| ManagedObject {
                kind: ManagedKind::Network,
                id: n.id.unwrap_or_default(),
                name: n.name.unwrap_or_default(),
                labels: n.labels.unwrap_or_default().into_iter().collect(),
                running: false,
            }));
            Ok(objects)
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
                        vec!["clnrm-build/*".to_string()],
                    )])),
                    ..Default::default()
                }))
                .await
                .map_err(engine)?;
            let mut out = Vec::new();
            for image in images {
                for tag in image.repo_tags {
                    if tag.starts_with("clnrm-build/") {
                        out.push((tag, image.id.clone()));
                    }
                }
            }
            Ok(out)
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_unreachable_engine_is_a_clear_error_naming_where_it_looked() {
        let e = DockerBackend::connect_to("unix:///nonexistent/clnrm-test.sock")
            .await
            .unwrap_err();
        assert!(matches!(e, ExecError::EngineUnreachable { .. }), "{e:?}");
        let text = e.to_string();
        eprintln!("{text}");
        assert!(
            text.starts_with(
                "cannot reach the Docker engine at unix:///nonexistent/clnrm-test.sock: "
            ),
            "{text}"
        );
        assert!(text.contains("DOCKER_HOST"), "{text}");
        let e = DockerBackend::connect_to("tcp://127.0.0.1:1")
            .await
            .unwrap_err();
        assert!(e.to_string().contains("tcp://127.0.0.1:1"), "{e}");
    }

    #[test]
    fn references_split_into_repo_and_tag() {
        assert_eq!(split_reference("alpine"), ("alpine", "latest"));
        assert_eq!(split_reference("alpine:3.20"), ("alpine", "3.20"));
        assert_eq!(
            split_reference("localhost:5000/a/b"),
            ("localhost:5000/a/b", "latest")
        );
        assert_eq!(
            split_reference("localhost:5000/a:1"),
            ("localhost:5000/a", "1")
        );
        assert_eq!(split_reference("a@sha256:abc"), ("a", "sha256:abc"));
    }
}
