//! The engine half of `cache gc`: containers and networks left by clnrm processes that
//! are gone, and `clnrm-build/*` images nothing uses any more.

use std::path::Path;

use clnrm_exec::Backend;
use clnrm_plan::{ImageSource, TestPlan};

/// What `cache gc` removed from the Docker engine.
#[derive(Debug, Default)]
pub struct EngineGc {
    pub containers: usize,
    pub networks: usize,
    pub images: Vec<String>,
    pub errors: Vec<String>,
}

/// `cache gc` on the engine: containers and networks of clnrm processes that are gone
/// (pools included, once no live process holds them), and `clnrm-build/*` images that
/// neither a managed container nor a current build context of the project uses.
pub async fn gc_engine(
    backend: &dyn Backend,
    current_builds: &std::collections::BTreeSet<String>,
    dry_run: bool,
) -> Result<EngineGc, clnrm_exec::ExecError> {
    let mut report = EngineGc::default();
    if !dry_run {
        for reaped in [
            clnrm_exec::reap_orphans(backend).await?,
            clnrm_exec::reap_pool_orphans(backend, std::time::Duration::ZERO).await?,
        ] {
            report.containers += reaped.containers.len();
            report.networks += reaped.networks.len();
            report.errors.extend(reaped.errors);
        }
    }
    // What is still in use once the leftovers are gone.
    let in_use: std::collections::BTreeSet<String> = backend
        .list_managed()
        .await?
        .iter()
        .filter_map(|object| object.labels.get(clnrm_exec::LABEL_IMAGE).cloned())
        .collect();
    for (tag, id) in backend.list_build_images().await? {
        let name = tag.strip_suffix(":latest").unwrap_or(&tag);
        if current_builds.contains(name) || in_use.contains(&id) || in_use.contains(&tag) {
            continue;
        }
        if !dry_run {
            if let Err(err) = backend.remove_image(&tag).await {
                report.errors.push(format!("removing {tag}: {err}"));
                continue;
            }
        }
        report.images.push(tag);
    }
    Ok(report)
}

/// The `clnrm-build/<hash>` tags the project's tests build now.
pub fn current_build_tags(root: &Path, plans: &[TestPlan]) -> std::collections::BTreeSet<String> {
    plans
        .iter()
        .flat_map(|plan| &plan.containers)
        .filter_map(|container| match &container.image {
            ImageSource::Build {
                context,
                dockerfile,
            } => clnrm_exec::build_context(&root.join(context), dockerfile)
                .ok()
                .map(|built| built.image_tag()),
            ImageSource::Reference { .. } => None,
        })
        .collect()
}
