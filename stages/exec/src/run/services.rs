//! The container lifecycle of a service: its network, create, start and
//! readiness (health check), and the words for a container that stopped.
//! Used by `test_run` and, on their own, by the engine's container pool.
//! Removing containers is the caller's (teardown, pool).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use clnrm_plan::{ContainerSpec, PlannedHealthCheck};
use serde::{Deserialize, Serialize};

use super::progress::ms;
use crate::engine::session::{LABEL_SERVICE, LABEL_SPEC, LABEL_TEST};
use crate::{
    Backend, ContainerRequest, ExecError, ExecOutput, ExecRequest, ResolvedImage, Session,
};

/// A service container that was created, started and found ready.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StartedContainer {
    pub id: String,
    /// The container's name on the engine.
    pub name: String,
    pub service: String,
    pub spec_hash: String,
    pub image_id: String,
    /// Container port → host port.
    pub ports: BTreeMap<u16, u16>,
    /// Its address on the default bridge, when it runs there.
    pub bridge_address: Option<std::net::IpAddr>,
    /// Create + start.
    pub start_ms: f64,
    /// Health check, about 0 without one.
    pub ready_ms: f64,
}

/// A network of the session's own (named `clnrm-<session>-<unique>`), on which
/// containers reach each other by service name.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TestNetwork {
    pub id: String,
    pub name: String,
}

/// A fresh object name of a session: `clnrm-<session id>-<unique>`.
pub fn object_name(session: &Session) -> String {
    format!("clnrm-{}-{}", session.id, unique_suffix())
}

/// Creates a network for the services of one test. It carries the session's
/// labels, `clnrm.test=<test>` and `extra_labels`.
pub async fn create_test_network(
    backend: &dyn Backend,
    session: &Session,
    test: &str,
    extra_labels: &BTreeMap<String, String>,
) -> Result<TestNetwork, ExecError> {
    let name = object_name(session);
    let mut labels = session.labels();
    labels.insert(LABEL_TEST.into(), test.to_string());
    labels.extend(extra_labels.clone());
    let id = backend.create_network(&name, &labels).await?;
    Ok(TestNetwork { id, name })
}

/// One service container to create, start and wait for: its labels are the session's,
/// `clnrm.spec`, `clnrm.service`, then `labels` (which win). On `network` the container
/// is reachable by its service name.
pub struct ServiceToStart<'a> {
    pub session: &'a Session,
    pub root: &'a Path,
    pub spec: &'a ContainerSpec,
    pub image: &'a ResolvedImage,
    pub network: Option<&'a str>,
    pub labels: BTreeMap<String, String>,
    /// What span collection adds (the OTEL environment, the collector's host entry);
    /// empty for a test that collects no spans.
    pub extra_env: BTreeMap<String, String>,
    pub extra_hosts: Vec<String>,
}

/// Creates and starts the container of one service and waits until it is ready
/// (running, and its health check passed), calling `created` with the container's ID
/// right after it is created (before start and readiness), so a caller that may be
/// cancelled can remove it.
///
/// A container that was created but did not become ready is removed before the error
/// is returned. Should the returned future be dropped while the container is created,
/// the backend removes it; dropped later, the container stays: `created` told the
/// caller its ID.
pub async fn start_service(
    backend: &dyn Backend,
    service: ServiceToStart<'_>,
    created: &(dyn Fn(&str) + Send + Sync),
) -> Result<StartedContainer, ExecError> {
    let ServiceToStart {
        session,
        root,
        spec,
        image,
        network,
        labels,
        extra_env,
        extra_hosts,
    } = service;
    let name = format!("{}-{}", object_name(session), sanitize(&spec.service));
    let mut all = session.labels();
    all.insert(LABEL_SPEC.into(), spec.hash.0.clone());
    all.insert(LABEL_SERVICE.into(), spec.service.clone());
    all.extend(labels);
    let request = ContainerRequest {
        spec,
        image,
        name,
        network,
        labels: all,
        root,
        extra_env,
        extra_hosts,
    };
    let result = create_and_ready(backend, &request, created).await;
    if let Err((Some(id), _)) = &result {
        let _ = backend.remove_container(id).await;
    }
    result.map_err(|(_, e)| e)
}

/// Create, start, ready. On error, the ID of the container if it was created.
pub(crate) async fn create_and_ready(
    backend: &dyn Backend,
    request: &ContainerRequest<'_>,
    created: &(dyn Fn(&str) + Send + Sync),
) -> Result<StartedContainer, (Option<String>, ExecError)> {
    let t = Instant::now();
    let id = create(backend, request).await.map_err(|e| (None, e))?;
    created(&id);
    start_and_ready(backend, request, id, t).await
}

/// Creates a service's container; errors name the service.
pub(crate) async fn create(
    backend: &dyn Backend,
    request: &ContainerRequest<'_>,
) -> Result<String, ExecError> {
    let t = std::time::Instant::now();
    let created = backend
        .create_container(request)
        .await
        .map_err(|e| service_error(&request.spec.service, e));
    tracing::debug!(
        service = %request.spec.service,
        "created in {:.1} ms",
        t.elapsed().as_secs_f64() * 1000.0
    );
    created
}

/// Whether a create failed because the container's name is taken (by another
/// process's container: how a claim on a spare network is lost).
pub(crate) fn is_name_taken(e: &ExecError) -> bool {
    matches!(e, ExecError::Service { reason, .. } if reason.contains("is already in use"))
}

fn service_error(service: &str, e: ExecError) -> ExecError {
    match e {
        e @ ExecError::Service { .. } => e,
        e => ExecError::Service {
            service: service.to_string(),
            reason: e.to_string(),
        },
    }
}

/// Starts a created container and waits until it is ready; `since` is when
/// its creation began (its `start_ms` counts from there). On error, its ID.
pub(crate) async fn start_and_ready(
    backend: &dyn Backend,
    request: &ContainerRequest<'_>,
    id: String,
    since: Instant,
) -> Result<StartedContainer, (Option<String>, ExecError)> {
    let spec = request.spec;
    let started = backend
        .start_container(&id)
        .await
        .map_err(|e| (Some(id.clone()), service_error(&spec.service, e)))?;
    let start_ms = ms(since.elapsed());
    let t = Instant::now();
    ready_from(backend, &id, spec, started.status)
        .await
        .map_err(|e| (Some(id.clone()), e))?;
    Ok(StartedContainer {
        id,
        name: request.name.clone(),
        service: spec.service.clone(),
        spec_hash: spec.hash.0.clone(),
        image_id: request.image.id.clone(),
        ports: started.ports,
        bridge_address: started.bridge_address,
        start_ms,
        ready_ms: ms(t.elapsed()),
    })
}

/// A container is ready (fit to run steps in) when it is running and the
/// spec's health check, if any, exits 0 within its retries. Used on a fresh
/// container and before reusing one.
pub async fn health_check(
    backend: &dyn Backend,
    id: &str,
    spec: &ContainerSpec,
) -> Result<(), ExecError> {
    let status = backend.container_status(id).await?;
    ready_from(backend, id, spec, status).await
}

/// [`health_check`] from a status just learned.
async fn ready_from(
    backend: &dyn Backend,
    id: &str,
    spec: &ContainerSpec,
    status: crate::ContainerStatus,
) -> Result<(), ExecError> {
    let not_ready = |reason: String| ExecError::Service {
        service: spec.service.clone(),
        reason,
    };
    if !status.running {
        return Err(not_ready(
            exited(backend, id, status, spec.limits.memory_bytes).await,
        ));
    }
    let Some(hc) = &spec.health_check else {
        return Ok(());
    };
    let PlannedHealthCheck {
        argv,
        interval_ms,
        timeout_ms,
        retries,
    } = hc;
    let request = ExecRequest {
        argv: argv.clone(),
        env: BTreeMap::new(),
        workdir: None,
        timeout: Duration::from_millis((*timeout_ms).max(1)),
    };
    let mut last = String::new();
    for attempt in 1..=(*retries).max(1) {
        let out = backend.exec(id, &request).await?;
        if out.exit_code == Some(0) && !out.timed_out {
            return Ok(());
        }
        last = describe_exit(&out);
        let status = backend.container_status(id).await?;
        if !status.running {
            return Err(not_ready(
                exited(backend, id, status, spec.limits.memory_bytes).await,
            ));
        }
        if attempt < *retries {
            tokio::time::sleep(Duration::from_millis(*interval_ms)).await;
        }
    }
    Err(not_ready(format!(
        "health check `{}` did not succeed after {} attempt(s); last: {last}",
        argv.join(" "),
        (*retries).max(1)
    )))
}

/// "the container exited with code N", with the tail of its output; a
/// container the OOM killer ended is named as such, with its limit.
pub(crate) async fn exited(
    backend: &dyn Backend,
    id: &str,
    status: crate::ContainerStatus,
    memory_bytes: Option<i64>,
) -> String {
    let logs = backend.container_logs(id, 20).await.unwrap_or_default();
    let logs = if logs.trim().is_empty() {
        String::new()
    } else {
        format!("; its output:\n{}", logs.trim_end())
    };
    if status.oom_killed {
        if let Some(limit) = memory_limit_words(memory_bytes) {
            return format!("the container was killed for using more than {limit}{logs}");
        }
    }
    let oom = if status.oom_killed {
        " (out of memory)"
    } else {
        ""
    };
    let code = status
        .exit_code
        .map(|c| format!(" with code {c}"))
        .unwrap_or_default();
    format!("the container exited{code}{oom} before the steps ended{logs}")
}

/// "its memory limit of 16 MB ([limits] memory_mb = 16)", for a container with one.
pub(crate) fn memory_limit_words(memory_bytes: Option<i64>) -> Option<String> {
    let mb = memory_bytes? / (1024 * 1024);
    Some(format!(
        "its memory limit of {mb} MB ([limits] memory_mb = {mb})"
    ))
}

pub(crate) fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Distinguishes the networks of concurrent tests in one session.
pub(crate) fn unique_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed).to_string()
}

pub(crate) fn describe_exit(out: &ExecOutput) -> String {
    let mut s = match (out.timed_out, out.exit_code) {
        (true, _) => "timed out".to_string(),
        (false, Some(c)) => format!("exit code {c}"),
        (false, None) => "no exit code".to_string(),
    };
    let err = out.stderr.trim();
    if !err.is_empty() {
        s.push_str(": ");
        s.push_str(&tail_chars(err, 300));
    }
    s
}

pub(crate) fn tail_chars(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut start = text.len() - max;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    format!("…{}", &text[start..])
}
#[cfg(test)]
mod tests {
    use super::{memory_limit_words, sanitize};

    #[test]
    fn container_names_keep_only_safe_characters() {
        assert_eq!(sanitize("a b/c"), "a_b_c");
        assert_eq!(sanitize("web-1.x_y"), "web-1.x_y");
    }

    #[test]
    fn a_memory_limit_is_named_as_the_user_wrote_it() {
        assert_eq!(
            memory_limit_words(Some(16 * 1024 * 1024)).as_deref(),
            Some("its memory limit of 16 MB ([limits] memory_mb = 16)")
        );
        assert_eq!(memory_limit_words(None), None);
    }
}
