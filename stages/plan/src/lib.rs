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

use clnrm_config::{Command, ServiceConfig, StepConfig, TestConfig};

pub use clnrm_config::Attempts;
use serde::{Deserialize, Serialize};

mod container;
mod paths;

pub use container::{
    spec_hash, ContainerSpec, ImageSource, PlannedHealthCheck, PlannedVolume, ResourceLimits,
    SpecHash,
};
pub use paths::root_relative;

use container::{container_spec, resource_limits};

/// Bump when the meaning of a [`TestPlan`] changes (the memo keys on it).
pub const STAGE_VERSION: u32 = 2;

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
    /// `[[setup]]`, run before `steps`.
    pub setup: Vec<PlannedStep>,
    /// `[[teardown]]`, run after everything, whatever happened.
    pub teardown: Vec<PlannedStep>,
    /// The whole-test timeout.
    pub timeout_ms: Option<u64>,
    /// `[meta] isolation`, when the test chose; absent from the serialized plan
    /// otherwise, so plans (and their hashes) of tests without it are unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub isolation: Option<clnrm_config::Isolation>,
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
    pub expected_output_regex_not: Option<String>,
    pub expected_stderr_regex_not: Option<String>,
    pub expected_json: Vec<clnrm_judge::JsonCheck>,
    pub captures: Vec<clnrm_judge::Capture>,
    /// Once, polled or retried.
    pub attempts: Attempts,
}

impl PlannedStep {
    /// What the step's output must be, for the judge (references not yet substituted).
    pub fn expectations(&self) -> clnrm_judge::Expectations {
        clnrm_judge::Expectations {
            exit_code: self.expected_exit_code,
            output_regex: self.expected_output_regex.clone(),
            stderr_regex: self.expected_stderr_regex.clone(),
            output_regex_not: self.expected_output_regex_not.clone(),
            stderr_regex_not: self.expected_stderr_regex_not.clone(),
            json: self.expected_json.clone(),
            captures: self.captures.clone(),
        }
    }
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
            ServiceConfig::from_image(DEFAULT_SERVICE, input.default_image.clone()),
        )]);
        &implicit
    } else {
        &test.services
    };
    let mut used = BTreeSet::new();
    let mut bind = |list: &[StepConfig]| -> Result<Vec<PlannedStep>, PlanError> {
        list.iter()
            .map(|step| {
                let planned = planned_step(step, services, input)?;
                used.insert(planned.service.clone());
                Ok(planned)
            })
            .collect()
    };
    let steps = bind(&test.steps)?;
    let setup = bind(&test.setup)?;
    let teardown = bind(&test.teardown)?;

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
        setup,
        teardown,
        timeout_ms: test.timeout_ms,
        isolation: test.isolation,
    })
}

/// One step bound to its container.
fn planned_step(
    step: &StepConfig,
    services: &BTreeMap<String, ServiceConfig>,
    input: &PlanInput,
) -> Result<PlannedStep, PlanError> {
    let declared = || services.keys().cloned().collect::<Vec<_>>().join(", ");
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
    Ok(PlannedStep {
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
        expected_output_regex_not: step.expected_output_regex_not.clone(),
        expected_stderr_regex_not: step.expected_stderr_regex_not.clone(),
        expected_json: step.expected_json.clone(),
        captures: step.captures.clone(),
        attempts: step.attempts,
    })
}

/// The argv a command runs as. A `run` string is handed to `sh -c` whole.
pub fn argv_of(command: &Command) -> Vec<String> {
    match command {
        Command::Argv(argv) => argv.clone(),
        Command::Shell(run) => vec!["sh".into(), "-c".into(), run.clone()],
    }
}
