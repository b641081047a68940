//! One service's container as the plan gives it to the exec stage: image source, command,
//! env, ports, bind mounts, health check and limits, and the [`SpecHash`] that names it (two
//! equal specs share a warm container). Built from a validated [`ServiceConfig`]; nothing here
//! talks to the engine or looks at the file system.

use std::collections::BTreeMap;

use clnrm_config::{BuildSpec, HealthCheck, Limits, ServiceConfig};
use serde::{Deserialize, Serialize};

use crate::{argv_of, root_relative, PlanError};

/// blake3 of a container spec's canonical JSON form, lower-case hex.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(transparent)]
pub struct SpecHash(pub String);

impl std::fmt::Display for SpecHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a container's image comes from.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum ImageSource {
    /// A reference such as `alpine:3.20`: used when local, pulled when missing.
    Reference { reference: String },
    /// Built locally from a context folder.
    Build {
        /// Root-relative (`/`-separated), or absolute when written absolute.
        context: String,
        /// Relative to the context.
        dockerfile: String,
    },
}

/// A bind mount; the host path is root-relative unless written absolute.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Hash)]
pub struct PlannedVolume {
    pub host_path: String,
    pub container_path: String,
    pub read_only: bool,
}

/// Readiness check: `argv` is run by exec until it exits 0, at most `retries` times.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Hash)]
pub struct PlannedHealthCheck {
    pub argv: Vec<String>,
    pub interval_ms: u64,
    /// Per attempt.
    pub timeout_ms: u64,
    pub retries: u32,
}

/// Resource limits in the engine's units.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq, Hash)]
pub struct ResourceLimits {
    /// CPU in units of 10^-9 CPUs (`cpu_millicores * 1_000_000`).
    pub nano_cpus: Option<i64>,
    /// Memory in bytes (`memory_mb * 1024 * 1024`).
    pub memory_bytes: Option<i64>,
}

/// One service container.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ContainerSpec {
    /// The service name; also the container's network alias.
    pub service: String,
    pub image: ImageSource,
    /// The container command; `None` = kept idle so steps can exec.
    pub command: Option<Vec<String>>,
    pub env: BTreeMap<String, String>,
    pub ports: Vec<u16>,
    pub volumes: Vec<PlannedVolume>,
    pub health_check: Option<PlannedHealthCheck>,
    pub limits: ResourceLimits,
    /// Hash of every field above.
    pub hash: SpecHash,
}

pub(crate) fn resource_limits(limits: &Limits) -> ResourceLimits {
    let clamp = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    ResourceLimits {
        nano_cpus: limits
            .cpu_millicores
            .map(|m| clamp(m.saturating_mul(1_000_000))),
        memory_bytes: limits
            .memory_mb
            .map(|mb| clamp(mb.saturating_mul(1024 * 1024))),
    }
}

pub(crate) fn container_spec(
    service: &ServiceConfig,
    test_dir: &str,
    limits: &ResourceLimits,
) -> Result<ContainerSpec, PlanError> {
    let image = match (&service.image, &service.build) {
        (Some(_), Some(_)) => {
            return Err(PlanError::ImageAndBuild {
                service: service.name.clone(),
            })
        }
        (Some(reference), None) => ImageSource::Reference {
            reference: reference.clone(),
        },
        (
            None,
            Some(BuildSpec {
                context,
                dockerfile,
            }),
        ) => ImageSource::Build {
            context: root_relative(test_dir, context),
            dockerfile: dockerfile
                .clone()
                .filter(|d| !d.is_empty())
                .unwrap_or_else(|| "Dockerfile".to_string()),
        },
        (None, None) => {
            return Err(PlanError::NoImage {
                service: service.name.clone(),
            })
        }
    };
    let health_check = service
        .health_check
        .as_ref()
        .map(|hc: &HealthCheck| {
            let argv = argv_of(&hc.cmd);
            if argv.is_empty() {
                return Err(PlanError::EmptyHealthCheck {
                    service: service.name.clone(),
                });
            }
            Ok(PlannedHealthCheck {
                argv,
                interval_ms: hc.interval_ms,
                timeout_ms: hc.timeout_ms,
                retries: hc.retries.max(1),
            })
        })
        .transpose()?;
    let mut spec = ContainerSpec {
        service: service.name.clone(),
        image,
        command: service.args.clone(),
        env: service.env.clone(),
        ports: service.ports.clone(),
        volumes: service
            .volumes
            .iter()
            .map(|v| PlannedVolume {
                host_path: root_relative(test_dir, &v.host_path),
                container_path: v.container_path.clone(),
                read_only: v.read_only,
            })
            .collect(),
        health_check,
        limits: limits.clone(),
        hash: SpecHash(String::new()),
    };
    spec.hash = spec_hash(&spec);
    Ok(spec)
}

/// The hash of a spec: blake3 of its canonical JSON with the `hash` field
/// emptied (maps are `BTreeMap`s, so the JSON is canonical).
pub fn spec_hash(spec: &ContainerSpec) -> SpecHash {
    let mut canonical = spec.clone();
    canonical.hash = SpecHash(String::new());
    let json = serde_json::to_vec(&canonical).unwrap_or_default();
    let mut hasher = blake3::Hasher::new();
    hasher.update(b"clnrm.container-spec.v1\0");
    hasher.update(&json);
    SpecHash(hasher.finalize().to_hex().to_string())
}
