//! `clnrm cache stats|gc|clear`: the cache's figures, its garbage collection (entries,
//! moved-aside damaged stores, and the engine's leftovers), and emptying it.
//!
//! None of these discovers, renders, parses or plans a test: they act on the cache
//! directory (and the engine) alone, so `cache gc` never writes an entry.

use std::path::Path;

use super::output::Printer;
use super::{open_memo, overrides, write_stdout, CacheCommand, CliError, Exit, GlobalArgs};
use crate::cache::GcReport;
use crate::discover;
use crate::project::Project;
use crate::report::{format_bytes, format_stats_human};

pub(super) fn run(
    global: &GlobalArgs,
    command: CacheCommand,
    cwd: &Path,
    printer: &Printer,
) -> Result<Exit, CliError> {
    let root = discover::find_root(cwd, cwd);
    let project = Project::load(&root, &overrides(global))?;
    let memo = open_memo(global, &project, printer)?;
    match command {
        CacheCommand::Stats { json } => {
            let stats = memo.stats();
            if json {
                write_stdout(&format!("{}\n", serde_json::to_string(&stats)?))?;
            } else {
                write_stdout(&format_stats_human(&stats))?;
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
            engine_gc(&report, printer);
            printer.line(&format!(
                "{verb} {} entries ({}); kept {} entries ({}); on disk {} -> {}",
                report.entries_removed,
                format_bytes(report.bytes_removed),
                report.entries_kept,
                format_bytes(report.bytes_kept),
                format_bytes(report.disk_bytes_before),
                format_bytes(report.disk_bytes_after),
            ));
            for moved_aside in &report.corrupt_dirs_removed {
                printer.line(&format!(
                    "{verb} {moved_aside} (a damaged cache moved aside over a day ago)"
                ));
            }
        }
        CacheCommand::Clear { stage } => {
            let report = memo.clear(stage.as_deref())?;
            printer.line(&format!(
                "removed {} entries ({})",
                report.entries_removed,
                format_bytes(report.bytes_removed)
            ));
        }
    }
    memo.flush();
    for warning in memo.take_warnings() {
        printer.warn(&warning);
    }
    Ok(Exit::Ok)
}

/// Shows the engine half of `cache gc`: leftover containers, and the build images whose
/// records the cache's gc just evicted. No engine is not an error here: there is
/// nothing of ours to remove then.
fn engine_gc(report: &GcReport, printer: &Printer) {
    let evicted = &report.evicted_build_images;
    match crate::cache::engine_gc::gc_docker_engine(evicted, report.dry_run) {
        Ok(engine) => {
            let verb = if report.dry_run {
                "would remove"
            } else {
                "removed"
            };
            printer.line(&format!(
                "{verb} {} leftover container(s), {} network(s), {} unused build image(s)",
                engine.containers,
                engine.networks,
                engine.images.len()
            ));
            for error in engine.errors {
                printer.warn(&error);
            }
        }
        Err(err @ clnrm_exec::ExecError::EngineUnreachable { .. }) => {
            printer.line(&format!("containers and images not checked: {err}"))
        }
        Err(err) => printer.warn(&format!("engine cleanup failed: {err}")),
    }
}
