//! What a test's result depends on ([`ResultInputs`]), the stored pass it is keyed
//! to, and planning a validated test (memoized). Not the deciding whether a test runs:
//! that is `prepare.rs`.

use std::collections::BTreeMap;

use clnrm_plan::{PlanInput, TestPlan};
use serde::{Deserialize, Serialize};

use crate::cache::{Key, Memo, Stage};
use crate::discover::TestFile;
use crate::pipeline::ValidTest;
use crate::project::Project;

use super::{FALLBACK_IMAGE, FALLBACK_STEP_TIMEOUT_MS};

struct PlanStage;

impl Stage for PlanStage {
    const NAME: &'static str = "plan";
    const VERSION: u32 = clnrm_plan::STAGE_VERSION;
    type Output = TestPlan;
}

/// A passing result, stored under the hash of everything the test depends on.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PassRecord {
    pub duration_ms: f64,
}

pub(super) struct ResultStage;

impl Stage for ResultStage {
    const NAME: &'static str = "result";
    const VERSION: u32 = clnrm_exec::STAGE_VERSION;
    type Output = PassRecord;
}

/// The last inputs seen for a test (by identity), to explain why it runs again.
pub(super) const RESULT_INDEX: &str = "result-index";

/// Everything a test's result depends on (docs/reference.md §5).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ResultInputs {
    /// blake3 of the plan: rendered config, specs, steps.
    pub plan: [u8; 32],
    /// Image ID by service (build images carry their context hash in the ID).
    pub images: BTreeMap<String, String>,
    /// blake3 of the contents of every volume host path.
    pub volumes: [u8; 32],
    /// blake3 of cleanroom.toml.
    pub project: [u8; 32],
}

impl ResultInputs {
    pub fn key(&self) -> Key {
        Key::of::<ResultStage>(&bincode::serialize(self).expect("result inputs serialize"))
    }

    /// What differs from `before`, in words.
    pub fn changed_since(&self, before: &ResultInputs) -> String {
        let mut changes = Vec::new();
        if self.plan != before.plan {
            changes.push("the test changed".to_string());
        }
        for (service, id) in &self.images {
            if before.images.get(service) != Some(id) {
                changes.push(format!("image of `{service}` changed ({})", short_id(id)));
            }
        }
        if self.volumes != before.volumes {
            changes.push("a mounted volume's content changed".to_string());
        }
        if self.project != before.project {
            changes.push("cleanroom.toml changed".to_string());
        }
        if changes.is_empty() {
            "its last run did not pass".to_string()
        } else {
            changes.join(", ")
        }
    }
}

fn short_id(id: &str) -> &str {
    let id = id.strip_prefix("sha256:").unwrap_or(id);
    &id[..id.len().min(12)]
}

/// Plans a validated test (memoized).
pub fn plan_test(
    memo: &Memo,
    project: &Project,
    test: &TestFile,
    valid: &ValidTest,
) -> Result<TestPlan, String> {
    let test_dir = test
        .identity
        .rsplit_once('/')
        .map(|(dir, _)| dir.to_string())
        .unwrap_or_default();
    let input = PlanInput {
        test: valid.config.clone(),
        default_image: project
            .config
            .default_image
            .clone()
            .unwrap_or_else(|| FALLBACK_IMAGE.to_string()),
        default_step_timeout_ms: project
            .config
            .default_step_timeout_ms
            .unwrap_or(FALLBACK_STEP_TIMEOUT_MS),
        test_dir,
    };
    let bytes = bincode::serialize(&input).expect("plan input serializes");
    memo.get_or_run::<PlanStage, _>(&bytes, || clnrm_plan::plan(&input))
        .map(|(plan, _)| plan)
        .map_err(|err| err.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changed_inputs_are_explained() {
        let before = ResultInputs {
            plan: [0; 32],
            images: BTreeMap::from([("web".into(), "sha256:aaaaaaaaaaaaaaaa".into())]),
            volumes: [0; 32],
            project: [0; 32],
        };
        let mut after = before.clone();
        after
            .images
            .insert("web".into(), "sha256:bbbbbbbbbbbbbbbbbb".into());
        assert_eq!(
            after.changed_since(&before),
            "image of `web` changed (bbbbbbbbbbbb)"
        );
        assert_ne!(after.key(), before.key());
        assert_eq!(before.changed_since(&before), "its last run did not pass");
    }
}
