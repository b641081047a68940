//! The engine half of `cache gc`: containers and networks left by clnrm processes that
//! are gone, and the `clnrm-build/*` images whose records the cache's gc evicted.
//!
//! Which build images may go is decided from the cache's records alone (see
//! `build_images.rs`), never by discovering or planning tests: an image whose record
//! was evicted is removed; one whose record was kept, or that has no record (clnrm
//! cannot tell), is kept; one a managed container uses is always kept.

use std::collections::BTreeSet;

use clnrm_exec::Backend;

use super::build_image_name;

/// What `cache gc` removed from the Docker engine (or would, in a dry run).
#[derive(Debug, Default)]
pub struct EngineGc {
    pub containers: usize,
    pub networks: usize,
    pub images: Vec<String>,
    pub errors: Vec<String>,
}

/// [`gc_engine`] on the Docker engine at `DOCKER_HOST` (or the default socket), on a
/// runtime of its own, for a caller that is not async. An engine that cannot be reached
/// is the error: there is nothing of ours to remove then.
pub fn gc_docker_engine(
    evicted: &BTreeSet<String>,
    dry_run: bool,
) -> Result<EngineGc, clnrm_exec::ExecError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|err| clnrm_exec::ExecError::Engine(format!("cannot start a runtime: {err}")))?;
    runtime.block_on(async {
        let backend = clnrm_exec::DockerBackend::connect().await?;
        gc_engine(&backend, evicted, dry_run).await
    })
}

/// `cache gc` on the engine: containers and networks of clnrm processes that are gone
/// (pools included, once no live process holds them), and the build images among
/// `evicted` (names whose records gc removed) that no managed container uses.
pub async fn gc_engine(
    backend: &dyn Backend,
    evicted: &BTreeSet<String>,
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
    let in_use: BTreeSet<String> = backend
        .list_managed()
        .await?
        .iter()
        .filter_map(|object| object.labels.get(clnrm_exec::LABEL_IMAGE).cloned())
        .collect();
    for (tag, id) in backend.list_build_images().await? {
        let name = build_image_name(&tag);
        let used = in_use.contains(&id) || in_use.contains(&tag) || in_use.contains(name);
        if used || !evicted.contains(name) {
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
