//! `clnrm dev`, the command: reads the flags and the project's settings, builds the
//! session's options, and hands the session's events to the dev panel or the JSON
//! reader of `report`. The loop itself, the pool and Docker are `crate::dev`'s.

use std::path::Path;
use std::time::Duration;

use super::args::{DevArgs, Format};
use super::output::Printer;
use super::{cache_dir, load, open_remote, overrides, CliError, Exit, GlobalArgs};
use crate::cache::MemoOptions;
use crate::dev::{self, CacheLocation, DevEvent, DevOptions};
use crate::report::{DevJson, DevPanel};
use crate::watch::debounce_warning;

pub fn run(
    global: &GlobalArgs,
    args: &DevArgs,
    cwd: &Path,
    printer: &Printer,
) -> Result<Exit, CliError> {
    let (project, _) = load(global, &args.paths, cwd, printer)?;
    let debounce_ms = args
        .debounce_ms
        .or(project.config.dev_debounce_ms)
        .unwrap_or(300);
    if let Some(warning) = debounce_warning(debounce_ms) {
        printer.warn(&warning);
    }
    let jobs = args
        .jobs
        .or(project.config.run_jobs)
        .filter(|&j| j > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let (mut memo_options, warning) = MemoOptions::from_env();
    memo_options.no_read = global.no_cache;
    if let Some(warning) = warning {
        printer.warn(&warning);
    }
    let remote = open_remote(global, &project)?;
    if let Some(remote) = &remote {
        tracing::info!("remote cache: {remote:?}");
    }
    let options = DevOptions {
        cache: CacheLocation {
            dir: cache_dir(global, &project),
            options: memo_options,
            remote: remote.map(std::sync::Arc::new),
        },
        project,
        overrides: overrides(global),
        paths: args.paths.clone(),
        cwd: cwd.to_path_buf(),
        jobs,
        debounce: Duration::from_millis(debounce_ms),
        settle: Some(Duration::from_millis(args.settle_ms)),
        budget: Duration::from_millis(args.budget_ms),
        keep: args.keep,
    };
    let mut reader: Box<dyn FnMut(DevEvent)> = match args.format {
        Format::Human => {
            let mut panel = DevPanel::new(printer.color(), args.clear, global.quiet);
            Box::new(move |event| panel.record(event))
        }
        Format::Json => {
            let mut json = DevJson;
            Box::new(move |event| json.record(event))
        }
    };
    dev::run(options, &mut reader)?;
    Ok(Exit::Ok)
}
