//! The plan stage: a validated [`TestConfig`] becomes a [`TestPlan`] — one
//! [`ContainerSpec`] per service that a step uses, each with its [`SpecHash`],
//! and the ordered [`PlannedStep`]s bound to their containers.
//!
//! Pure: no file system, no clock, no environment. Paths stay relative to the
//! project root; the exec stage joins them to the root it is given. The output
//! is `Serialize`/`Deserialize` so the memo can store it.
//!
//! What this stage guarantees (and the original clnrm got wrong):
//! - a `run` string becomes exactly `["sh", "-c", RUN]`, and an argv command is
//!   passed on untouched — never re-joined, never re-split;
//! - every step names the container it runs in, so state written by one step
//!   is seen by the next one in the same service;
//! - idle services no step uses are not in the plan, so they are never started
//!   (a service with `args` runs a server of its own and is started whenever
//!   the test has steps: the others reach it by name).

use std::collections::{BTreeMap, BTreeSet};

use clnrm_config::{BuildSpec, Command, HealthCheck, Limits, ServiceConfig, TestConfig};
use serde::{Deserialize, Serialize};

/// Bump when the meaning of a [`TestPlan`] changes (the memo keys on it).
pub const STAGE_VERSION: u32 = 1;

/// The name of the implicit service of a test that declares none.
pub const DEFAULT_SERVICE: &str = "default";

/// Everything the plan depends on.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PlanInput {
    pub test: TestConfig,
    /// `[defaults] image` of `cleanroom.toml`, for a test that declares no service.
    pub default_image: String,
    /// `[defaults] step_timeout`, for steps without their own timeout.
    pub default_step_timeout_ms: u64,
    /// The test file's folder relative to the project root, `/`-separated
    /// (`""` or `"."` for the root itself).
    pub test_dir: String,
}

/// A test ready to run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TestPlan {
    pub name: String,
    /// The containers to start, sorted by service name: the services some step
    /// runs in, and the services with a command of their own (`args`, e.g. a
    /// server the others reach by name). Idle services no step uses are left out.
    pub containers: Vec<ContainerSpec>,
    /// In run order.
    pub steps: Vec<PlannedStep>,
}

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

/// One step, bound to its container.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PlannedStep {
    pub name: String,
    /// The service (container) it runs in; always one of the plan's containers.
    pub service: String,
    /// Executed as is: argv commands untouched, `run` strings as `["sh", "-c", RUN]`.
    pub argv: Vec<String>,
    pub expected_exit_code: i32,
    pub expected_output_regex: Option<String>,
    pub expected_stderr_regex: Option<String>,
    pub workdir: Option<String>,
    pub env: BTreeMap<String, String>,
    pub timeout_ms: u64,
    pub continue_on_failure: bool,
    /// Where the step is in its file (`steps[2]`), for messages.
    pub key_path: String,
}

/// Why a test cannot be planned. Validation catches most of these first; the
/// plan checks again because it must never produce a step without a container.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq, Serialize, Deserialize)]
pub enum PlanError {
    #[error("{key_path}.service: step `{step}` names service `{service}`, which the test does not declare (declared: {declared})")]
    UnknownService {
        step: String,
        key_path: String,
        service: String,
        declared: String,
    },
    #[error("{key_path}.service: step `{step}` names no service, but the test declares several ({declared}); say which one it runs in")]
    AmbiguousService {
        step: String,
        key_path: String,
        declared: String,
    },
    #[error("service.{service}: neither `image` nor `build` is set")]
    NoImage { service: String },
    #[error("service.{service}: both `image` and `build` are set; use one")]
    ImageAndBuild { service: String },
    #[error("{key_path}: the command is empty")]
    EmptyCommand { key_path: String },
    #[error("service.{service}.health_check.cmd: the command is empty")]
    EmptyHealthCheck { service: String },
    #[error("{what} is not evaluated by this version")]
    Unevaluated { what: String },
    #[error("no default image: the test declares no service and `[defaults] image` is empty")]
    NoDefaultImage,
}

/// Plans a test. Pure.
pub fn plan(input: &PlanInput) -> Result<TestPlan, PlanError> {
    let test = &input.test;
    if !test.unevaluated_expectations.is_empty() {
        return Err(PlanError::Unevaluated {
            what: test.unevaluated_expectations.join(", "),
        });
    }

    let implicit;
    let services: &BTreeMap<String, ServiceConfig> = if test.services.is_empty() {
        if input.default_image.trim().is_empty() {
            return Err(PlanError::NoDefaultImage);
        }
        implicit = BTreeMap::from([(
            DEFAULT_SERVICE.to_string(),
            ServiceConfig {
                name: DEFAULT_SERVICE.to_string(),
                image: Some(input.default_image.clone()),
                build: None,
                args: None,
                env: BTreeMap::new(),
                ports: Vec::new(),
                volumes: Vec::new(),
                health_check: None,
            },
        )]);
        &implicit
    } else {
        &test.services
    };
    let declared = || services.keys().cloned().collect::<Vec<_>>().join(", ");

    let mut steps = Vec::with_capacity(test.steps.len());
    let mut used = BTreeSet::new();
    for step in &test.steps {
        let service = match &step.service {
            Some(name) if services.contains_key(name) => name.clone(),
            Some(name) => {
                return Err(PlanError::UnknownService {
                    step: step.name.clone(),
                    key_path: step.key_path.clone(),
                    service: name.clone(),
                    declared: declared(),
                })
            }
            None if services.len() == 1 => services.keys().next().cloned().unwrap_or_default(),
            None => {
                return Err(PlanError::AmbiguousService {
                    step: step.name.clone(),
                    key_path: step.key_path.clone(),
                    declared: declared(),
                })
            }
        };
        let argv = argv_of(&step.command);
        if argv.is_empty() {
            return Err(PlanError::EmptyCommand {
                key_path: format!("{}.command", step.key_path),
            });
        }
        used.insert(service.clone());
        steps.push(PlannedStep {
            name: step.name.clone(),
            service,
            argv,
            expected_exit_code: step.expected_exit_code,
            expected_output_regex: step.expected_output_regex.clone(),
            expected_stderr_regex: step.expected_stderr_regex.clone(),
            workdir: step.workdir.clone(),
            env: step.env.clone(),
            timeout_ms: step.timeout_ms.unwrap_or(input.default_step_timeout_ms),
            continue_on_failure: step.continue_on_failure,
            key_path: step.key_path.clone(),
        });
    }

    // A service that runs a command of its own (`args`: a server) is there to
    // be reached by the others, so it starts whenever the test runs anything.
    // An idle service that no step runs in is never started.
    if !steps.is_empty() {
        used.extend(
            services
                .values()
                .filter(|s| s.args.is_some())
                .map(|s| s.name.clone()),
        );
    }

    let limits = resource_limits(&test.limits);
    let containers = used
        .iter()
        .map(|name| container_spec(&services[name], &input.test_dir, &limits))
        .collect::<Result<Vec<_>, _>>()?;

    Ok(TestPlan {
        name: test.name.clone(),
        containers,
        steps,
    })
}

/// The argv a command runs as. A `run` string is handed to `sh -c` whole.
pub fn argv_of(command: &Command) -> Vec<String> {
    match command {
        Command::Argv(argv) => argv.clone(),
        Command::Shell(run) => vec!["sh".into(), "-c".into(), run.clone()],
    }
}

fn resource_limits(limits: &Limits) -> ResourceLimits {
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

fn container_spec(
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

/// `path` (relative to the test folder `test_dir`, or absolute) made relative to
/// the project root, normalised, `/`-separated. `..` past the root is kept, so
/// the result still names the same place when joined to the root.
pub fn root_relative(test_dir: &str, path: &str) -> String {
    if path.starts_with('/') {
        return normalise(path, true);
    }
    let joined = if test_dir.is_empty() || test_dir == "." {
        path.to_string()
    } else {
        format!("{test_dir}/{path}")
    };
    normalise(&joined, false)
}

fn normalise(path: &str, absolute: bool) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split(['/', '\\']) {
        match part {
            "" | "." => {}
            ".." => match parts.last() {
                Some(&last) if last != ".." => {
                    parts.pop();
                }
                _ if absolute => {}
                _ => parts.push(".."),
            },
            p => parts.push(p),
        }
    }
    let joined = parts.join("/");
    match (absolute, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clnrm_config::{StepConfig, VolumeConfig};

    fn step(name: &str, service: Option<&str>, command: Command) -> StepConfig {
        StepConfig {
            name: name.into(),
            service: service.map(String::from),
            command,
            expected_exit_code: 0,
            expected_output_regex: None,
            expected_stderr_regex: None,
            workdir: None,
            env: BTreeMap::new(),
            timeout_ms: None,
            continue_on_failure: false,
            key_path: format!("steps[{name}]"),
        }
    }

    fn service(name: &str, image: &str) -> ServiceConfig {
        ServiceConfig {
            name: name.into(),
            image: Some(image.into()),
            build: None,
            args: None,
            env: BTreeMap::new(),
            ports: vec![],
            volumes: vec![],
            health_check: None,
        }
    }

    fn test(services: Vec<ServiceConfig>, steps: Vec<StepConfig>) -> TestConfig {
        TestConfig {
            name: "t".into(),
            version: Some("1.0".into()),
            description: None,
            services: services.into_iter().map(|s| (s.name.clone(), s)).collect(),
            steps,
            limits: Limits::default(),
            seed: None,
            freeze_clock: None,
            unevaluated_expectations: vec![],
        }
    }

    fn input(test: TestConfig) -> PlanInput {
        PlanInput {
            test,
            default_image: "alpine:3.20".into(),
            default_step_timeout_ms: 60_000,
            test_dir: "tests/api".into(),
        }
    }

    fn argv(a: &[&str]) -> Command {
        Command::Argv(a.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn no_services_uses_the_default_image_in_one_implicit_service() {
        let p = plan(&input(test(vec![], vec![step("a", None, argv(&["true"]))]))).unwrap();
        assert_eq!(p.containers.len(), 1);
        assert_eq!(p.containers[0].service, DEFAULT_SERVICE);
        assert_eq!(
            p.containers[0].image,
            ImageSource::Reference {
                reference: "alpine:3.20".into()
            }
        );
        assert_eq!(p.containers[0].command, None);
        assert_eq!(p.steps[0].service, DEFAULT_SERVICE);
        assert_eq!(p.steps[0].timeout_ms, 60_000);
    }

    #[test]
    fn empty_default_image_is_an_error_only_when_needed() {
        let mut i = input(test(vec![], vec![step("a", None, argv(&["true"]))]));
        i.default_image = " ".into();
        assert_eq!(plan(&i), Err(PlanError::NoDefaultImage));
        let mut i = input(test(
            vec![service("web", "x")],
            vec![step("a", None, argv(&["true"]))],
        ));
        i.default_image = String::new();
        assert!(plan(&i).is_ok());
    }

    #[test]
    fn shell_commands_become_sh_c_whole_and_argv_is_untouched() {
        let p = plan(&input(test(
            vec![service("web", "img")],
            vec![
                step("a", None, Command::Shell("a && b 'c d'".into())),
                step("b", Some("web"), argv(&["echo", "x y", "&&", "z"])),
            ],
        )))
        .unwrap();
        assert_eq!(p.steps[0].argv, vec!["sh", "-c", "a && b 'c d'"]);
        assert_eq!(p.steps[1].argv, vec!["echo", "x y", "&&", "z"]);
    }

    #[test]
    fn only_used_services_are_planned_and_steps_keep_order_and_binding() {
        let p = plan(&input(test(
            vec![
                service("web", "w"),
                service("db", "d"),
                service("unused", "u"),
            ],
            vec![
                step("1", Some("web"), argv(&["a"])),
                step("2", Some("db"), argv(&["b"])),
                step("3", Some("web"), argv(&["c"])),
            ],
        )))
        .unwrap();
        let names: Vec<_> = p.containers.iter().map(|c| c.service.as_str()).collect();
        assert_eq!(names, vec!["db", "web"]);
        let bound: Vec<_> = p
            .steps
            .iter()
            .map(|s| (s.name.as_str(), s.service.as_str()))
            .collect();
        assert_eq!(bound, vec![("1", "web"), ("2", "db"), ("3", "web")]);
    }

    #[test]
    fn services_with_their_own_command_start_even_when_no_step_runs_in_them() {
        let mut web = service("web", "w");
        web.args = Some(vec!["httpd".into(), "-f".into()]);
        let p = plan(&input(test(
            vec![web.clone(), service("client", "c"), service("idle", "i")],
            vec![step("get", Some("client"), argv(&["wget", "http://web/"]))],
        )))
        .unwrap();
        let names: Vec<_> = p.containers.iter().map(|c| c.service.as_str()).collect();
        assert_eq!(names, vec!["client", "web"]);
        // A test without steps starts nothing.
        let p = plan(&input(test(vec![web], vec![]))).unwrap();
        assert!(p.containers.is_empty());
    }

    #[test]
    fn unknown_and_ambiguous_services_are_errors() {
        let e = plan(&input(test(
            vec![service("web", "w")],
            vec![step("x", Some("dbb"), argv(&["a"]))],
        )))
        .unwrap_err();
        assert!(matches!(e, PlanError::UnknownService { ref service, .. } if service == "dbb"));
        assert!(e.to_string().contains("declared: web"), "{e}");
        let e = plan(&input(test(
            vec![service("web", "w"), service("db", "d")],
            vec![step("x", None, argv(&["a"]))],
        )))
        .unwrap_err();
        assert!(matches!(e, PlanError::AmbiguousService { .. }));
    }

    #[test]
    fn empty_commands_and_unevaluated_expectations_are_errors() {
        let e = plan(&input(test(vec![], vec![step("x", None, argv(&[]))]))).unwrap_err();
        assert_eq!(
            e,
            PlanError::EmptyCommand {
                key_path: "steps[x].command".into()
            }
        );
        let mut t = test(vec![], vec![step("x", None, argv(&["true"]))]);
        t.unevaluated_expectations = vec!["expect.span".into()];
        let e = plan(&input(t)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "expect.span is not evaluated by this version"
        );
    }

    #[test]
    fn image_sources_are_checked_and_build_paths_are_root_relative() {
        let mut s = service("web", "w");
        s.build = Some(BuildSpec {
            context: "../images/web".into(),
            dockerfile: None,
        });
        let e = plan(&input(test(
            vec![s.clone()],
            vec![step("x", None, argv(&["a"]))],
        )))
        .unwrap_err();
        assert!(matches!(e, PlanError::ImageAndBuild { .. }));
        s.image = None;
        let p = plan(&input(test(
            vec![s.clone()],
            vec![step("x", None, argv(&["a"]))],
        )))
        .unwrap();
        assert_eq!(
            p.containers[0].image,
            ImageSource::Build {
                context: "tests/images/web".into(),
                dockerfile: "Dockerfile".into()
            }
        );
        s.build = None;
        let e = plan(&input(test(vec![s], vec![step("x", None, argv(&["a"]))]))).unwrap_err();
        assert!(matches!(e, PlanError::NoImage { .. }));
    }

    #[test]
    fn volumes_limits_health_checks_and_step_fields_are_carried() {
        let mut s = service("web", "w");
        s.args = Some(vec!["httpd".into(), "-f".into()]);
        s.env.insert("A".into(), "1".into());
        s.ports = vec![8080];
        s.volumes = vec![
            VolumeConfig {
                host_path: "./data".into(),
                container_path: "/data".into(),
                read_only: true,
            },
            VolumeConfig {
                host_path: "/abs/../x".into(),
                container_path: "/x".into(),
                read_only: false,
            },
        ];
        s.health_check = Some(HealthCheck {
            cmd: Command::Shell("wget -q -O- http://localhost:8080/".into()),
            interval_ms: 200,
            timeout_ms: 10_000,
            retries: 0,
        });
        let mut st = step("x", None, argv(&["a"]));
        st.timeout_ms = Some(1000);
        st.workdir = Some("/tmp".into());
        st.env.insert("B".into(), "2".into());
        st.expected_exit_code = 3;
        st.expected_output_regex = Some("o".into());
        st.expected_stderr_regex = Some("e".into());
        st.continue_on_failure = true;
        let mut t = test(vec![s], vec![st]);
        t.limits = Limits {
            cpu_millicores: Some(500),
            memory_mb: Some(256),
        };
        let p = plan(&input(t)).unwrap();
        let c = &p.containers[0];
        assert_eq!(
            c.command.as_deref(),
            Some(&["httpd".to_string(), "-f".to_string()][..])
        );
        assert_eq!(c.env["A"], "1");
        assert_eq!(c.ports, vec![8080]);
        assert_eq!(c.volumes[0].host_path, "tests/api/data");
        assert!(c.volumes[0].read_only);
        assert_eq!(c.volumes[1].host_path, "/x");
        assert_eq!(c.limits.nano_cpus, Some(500_000_000));
        assert_eq!(c.limits.memory_bytes, Some(256 * 1024 * 1024));
        let hc = c.health_check.as_ref().unwrap();
        assert_eq!(hc.argv[..2], ["sh".to_string(), "-c".to_string()]);
        assert_eq!(hc.retries, 1, "at least one attempt");
        let s = &p.steps[0];
        assert_eq!(s.timeout_ms, 1000);
        assert_eq!(s.workdir.as_deref(), Some("/tmp"));
        assert_eq!(s.env["B"], "2");
        assert_eq!(s.expected_exit_code, 3);
        assert_eq!(s.expected_output_regex.as_deref(), Some("o"));
        assert_eq!(s.expected_stderr_regex.as_deref(), Some("e"));
        assert!(s.continue_on_failure);
    }

    #[test]
    fn spec_hash_is_stable_and_changes_with_the_spec() {
        let t = || {
            test(
                vec![service("web", "w")],
                vec![step("x", None, argv(&["a"]))],
            )
        };
        let a = plan(&input(t())).unwrap();
        let b = plan(&input(t())).unwrap();
        assert_eq!(a.containers[0].hash, b.containers[0].hash);
        assert_eq!(a.containers[0].hash.0.len(), 64);
        assert_eq!(a.containers[0].hash, spec_hash(&a.containers[0]));
        // Steps are not part of the container spec: changing them keeps the hash.
        let mut t2 = t();
        t2.steps[0].command = argv(&["b"]);
        assert_eq!(
            plan(&input(t2)).unwrap().containers[0].hash,
            a.containers[0].hash
        );
        // The container's env is.
        let mut t3 = t();
        t3.services
            .get_mut("web")
            .unwrap()
            .env
            .insert("K".into(), "V".into());
        assert_ne!(
            plan(&input(t3)).unwrap().containers[0].hash,
            a.containers[0].hash
        );
    }

    #[test]
    fn plans_round_trip_through_json() {
        let p = plan(&input(test(vec![], vec![step("a", None, argv(&["true"]))]))).unwrap();
        let json = serde_json::to_string(&p).unwrap();
        let back: TestPlan = serde_json::from_str(&json).unwrap();
        assert_eq!(back, p);
    }

    #[test]
    fn root_relative_paths_are_normalised() {
        assert_eq!(root_relative("tests", "data"), "tests/data");
        assert_eq!(root_relative("", "data/./x/"), "data/x");
        assert_eq!(root_relative(".", "data"), "data");
        assert_eq!(root_relative("tests/a", "../../x"), "x");
        assert_eq!(root_relative("tests", "../../x"), "../x");
        assert_eq!(root_relative("tests", "."), "tests");
        assert_eq!(root_relative("", "."), ".");
        assert_eq!(root_relative("tests", "/srv/../data"), "/data");
    }
}
