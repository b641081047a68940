//! What a test has done so far, kept where its teardown and report find it
//! whatever happened, and the small helpers every part of a test uses.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::{ServiceStart, StepResult};

#[derive(Default)]
pub(crate) struct Progress {
    pub(crate) steps: Vec<StepResult>,
    pub(crate) services: Vec<ServiceStart>,
    pub(crate) containers_ms: f64,
    pub(crate) execute_ms: f64,
    /// Container ID by service, once all are started: where the teardown runs.
    pub(crate) containers: BTreeMap<String, String>,
}

pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
