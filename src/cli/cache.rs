//! `clnrm cache stats|gc|clear`: the cache's figures, its garbage collection (entries,
//! and the engine's leftovers), and emptying it.

use std::path::Path;

use super::output::Printer;
use super::{open_memo, overrides, write_stdout, CacheCommand, CliError, Exit, GlobalArgs};
use crate::cache::Memo;
use crate::discover;
use crate::pipeline::{FsWorld, Pipeline};
use crate::project::Project;

pub(super) fn run(
    global: &GlobalArgs,
    command: CacheCommand,
    cwd: &Path,
    printer: &Printer,
) -> Result<Exit, CliError> {
    let root = discover::find_root(cwd, cwd);
    let project = Project::load(&root, &overrides(global))?;
    let memo = open_memo(global, &project, printer);
    match command {
        CacheCommand::Stats { json } => {
            let stats = memo.stats();
            if json {
                write_stdout(&format!("{}\n", serde_json::to_string(&stats)?))?;
            } else {
                write_stdout(&crate::cache::format_stats_human(&stats))?;
            }
        }
        CacheCommand::Gc {
            max_size,
            max_age,
            dry_run,
        } => {
            let options = crate::cache::GcOptions {
                max_size: max_size.or(project.config.cache_max_size),
                max_age: max_age.or(project
                    .config
                    .cache_max_age_ms
                    .map(std::time::Duration::from_millis)),
                dry_run,
            };
            let report = memo.gc(&options)?;
            let verb = if dry_run { "would remove" } else { "removed" };
            engine_gc(&project, &memo, cwd, dry_run, printer);
            printer.line(&format!(
                "{verb} {} entries ({}); kept {} entries ({}); on disk {} -> {}",
                report.entries_removed,
                crate::cache::format_bytes(report.bytes_removed),
                report.entries_kept,
                crate::cache::format_bytes(report.bytes_kept),
                crate::cache::format_bytes(report.disk_bytes_before),
                crate::cache::format_bytes(report.disk_bytes_after),
            ));
        }
        CacheCommand::Clear { stage } => {
            let report = memo.clear(stage.as_deref())?;
            printer.line(&format!(
                "removed {} entries ({})",
                report.entries_removed,
                crate::cache::format_bytes(report.bytes_removed)
            ));
        }
    }
    memo.flush();
    Ok(Exit::Ok)
}

/// The engine half of `cache gc`: leftover containers and unused build images. No
/// engine is not an error here: there is nothing of ours to remove then.
fn engine_gc(project: &Project, memo: &Memo, cwd: &Path, dry_run: bool, printer: &Printer) {
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return;
    };
    let tests = discover::discover(&project.root, std::slice::from_ref(&project.root), cwd)
        .unwrap_or_default();
    let pipeline = Pipeline::new(project, &FsWorld, memo);
    let plans: Vec<_> = pipeline
        .check_all(&tests)
        .into_iter()
        .filter_map(|checked| {
            let valid = checked.outcome.ok()?;
            crate::runner::plan_test(memo, project, &checked.test, &valid).ok()
        })
        .collect();
    let keep = crate::cache::engine_gc::current_build_tags(&project.root, &plans);
    runtime.block_on(async {
        let backend = match clnrm_exec::DockerBackend::connect().await {
            Ok(backend) => backend,
            Err(err) => {
                printer.line(&format!("containers and images not checked: {err}"));
                return;
            }
        };
        match crate::cache::engine_gc::gc_engine(&backend, &keep, dry_run).await {
            Ok(report) => {
                let verb = if dry_run { "would remove" } else { "removed" };
                printer.line(&format!(
                    "{verb} {} leftover container(s), {} network(s), {} unused build image(s)",
                    report.containers,
                    report.networks,
                    report.images.len()
                ));
                for error in report.errors {
                    printer.warn(&error);
                }
            }
            Err(err) => printer.warn(&format!("engine cleanup failed: {err}")),
        }
    });
}
