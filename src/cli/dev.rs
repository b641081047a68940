//! `clnrm dev`: watch, re-run what a change affects on warm containers, print a panel.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::args::{DevArgs, Format};
use super::output::Printer;
use super::{cache_dir, load, overrides, CliError, Exit, GlobalArgs};
use crate::cache::MemoOptions;
use crate::dev::{CacheLocation, DevRun, DevSession};
use crate::pool::{project_key, Pool, PoolOptions};
use crate::report::{HumanReporter, RunStats};
use crate::watch::{debounce_warning, WatchOptions, Watcher};

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
    let (mut options, warning) = MemoOptions::from_env();
    options.no_read = global.no_cache;
    if let Some(warning) = warning {
        printer.warn(&warning);
    }
    let cache = CacheLocation {
        dir: cache_dir(global, &project),
        options,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(jobs.clamp(2, 8))
        .enable_all()
        .build()?;
    let backend = runtime.block_on(clnrm_exec::DockerBackend::connect())?;
    let backend: Arc<dyn clnrm_exec::Backend> = Arc::new(backend);
    let pool = Arc::new(Pool::new(
        backend.clone(),
        clnrm_exec::Session::current(),
        project.root.clone(),
        project_key(&project.root),
        PoolOptions::default(),
    ));
    runtime.block_on(async {
        if let Err(err) = clnrm_exec::reap_orphans(backend.as_ref()).await {
            tracing::warn!("could not look for leftover containers: {err}");
        }
        match pool.adopt_existing().await {
            Ok(0) => {}
            Ok(n) => tracing::info!("found {n} warm container(s) of an earlier clnrm dev"),
            Err(err) => tracing::warn!("could not look for warm containers: {err}"),
        }
    });

    // Ctrl-C / SIGTERM: cancels a run in progress and ends the session.
    let (cancel_tx, cancel_rx) = watch::channel(false);
    let (stop_tx, stop_rx) = crossbeam_channel::bounded::<()>(1);
    runtime.spawn(async move {
        super::run::wait_for_interrupt().await;
        let _ = cancel_tx.send(true);
        let _ = stop_tx.send(());
    });

    let root = project.root.clone();
    let mut session = DevSession::new(
        project,
        overrides(global),
        args.paths.clone(),
        cwd.to_path_buf(),
        cache,
        backend.clone(),
        pool.clone(),
        jobs,
    );
    let display = Display {
        format: args.format,
        clear: args.clear,
        color: printer.color(),
        quiet: global.quiet,
    };
    // Watch first: a save during the first run is one more run after it, not lost.
    let options = WatchOptions::with_debounce(Duration::from_millis(debounce_ms));
    let watcher =
        Watcher::start(&root, &args.paths, options).map_err(|source| CliError::Watch {
            root: root.clone(),
            source,
        })?;
    let first = runtime.block_on(session.first_run(cancel_rx.clone()));
    display.show(first);
    display.waiting(session.test_count());
    let idle_tick = crossbeam_channel::tick(Duration::from_secs(60));
    loop {
        crossbeam_channel::select! {
            recv(watcher.batches()) -> batch => {
                let Ok(mut batch) = batch else { break };
                // Changes that arrived during the last run: one more run, coalesced.
                while let Ok(more) = watcher.batches().try_recv() {
                    batch.paths.extend(more.paths);
                    batch.rescan |= more.rescan;
                    batch.released_at = more.released_at;
                }
                let run = runtime.block_on(session.on_change(&batch, cancel_rx.clone()));
                display.show(run);
                if *cancel_rx.borrow() {
                    break;
                }
                runtime.block_on(pool.evict_idle());
                display.waiting(session.test_count());
            }
            recv(stop_rx) -> _ => break,
            // Containers of tests not run for a while go even when nothing is saved.
            recv(idle_tick) -> _ => runtime.block_on(async {
                pool.evict_idle().await;
            }),
        }
    }
    drop(watcher);
    let reaped = runtime.block_on(pool.shutdown(args.keep));
    if args.keep {
        printer.line("containers kept for the next clnrm dev (--keep)");
    } else if !reaped.containers.is_empty() {
        tracing::info!("removed {} pooled container(s)", reaped.containers.len());
    }
    Ok(Exit::Ok)
}

struct Display {
    format: Format,
    clear: bool,
    color: bool,
    quiet: bool,
}

impl Display {
    fn show(&self, mut run: DevRun) {
        let report_started = Instant::now();
        let mut out = std::io::stdout().lock();
        match self.format {
            Format::Json => {
                run.timings_ms.report = crate::report::ms(report_started.elapsed());
                if let Some(start) = run.clock_start {
                    run.timings_ms.total = crate::report::ms(start.elapsed());
                }
                let _ = writeln!(
                    out,
                    "{}",
                    serde_json::to_string(&run).expect("dev run serializes")
                );
            }
            Format::Human => {
                if self.clear {
                    let _ = write!(out, "\x1b[2J\x1b[H");
                }
                let title = if run.changed.is_empty() {
                    format!("run {}: all tests", run.run)
                } else {
                    format!("run {}: changed {}", run.run, run.changed.join(", "))
                };
                let _ = writeln!(out, "── {title}");
                for warning in &run.warnings {
                    let _ = writeln!(out, "warning: {warning}");
                }
                for problem in &run.problems {
                    let _ = writeln!(out, "INVALID {problem}");
                }
                for test in &run.removed {
                    let _ = writeln!(out, "removed {test}");
                }
                drop(out);
                let mut human = HumanReporter::new(self.color, self.quiet);
                let mut stats = RunStats::default();
                for event in &run.finished {
                    stats.record(event);
                    human.record(event);
                }
                let mut out = std::io::stdout().lock();
                if run.results.is_empty() && run.problems.is_empty() {
                    let _ = writeln!(out, "nothing to run: no test's inputs changed");
                } else {
                    let _ = writeln!(
                        out,
                        "{} passed, {} failed, {} errors, {} cached",
                        stats.passed, stats.failed, stats.errors, stats.cached
                    );
                }
                let t = &mut run.timings_ms;
                t.report = crate::report::ms(report_started.elapsed());
                if let Some(start) = run.clock_start {
                    t.total = crate::report::ms(start.elapsed());
                }
                let c = &run.containers;
                let _ = writeln!(
                    out,
                    "   detect {:.1} · debounce {:.1} · render {:.1} · parse {:.1} · plan {:.1} · containers {:.1} ({} reused, {} started) · execute {:.1} · report {:.1} · total {:.1} ms",
                    t.detect, t.debounce, t.render, t.parse, t.plan, t.containers, c.reused, c.started, t.execute, t.report, t.total
                );
                let cache: Vec<String> = run
                    .cache
                    .iter()
                    .map(|(stage, hm)| format!("{stage} {}/{}", hm.hits, hm.hits + hm.misses))
                    .collect();
                let reuse = if c.reused + c.started == 0 {
                    String::from("-")
                } else {
                    format!(
                        "{:.0} %",
                        100.0 * c.reused as f64 / (c.reused + c.started) as f64
                    )
                };
                let _ = writeln!(
                    out,
                    "   cache hits: {} · container reuse {reuse}",
                    cache.join(" · ")
                );
            }
        }
        let _ = std::io::stdout().flush();
        tracing::info!(
            run = run.run,
            ran = run.ran.len(),
            detect_ms = run.timings_ms.detect,
            debounce_ms = run.timings_ms.debounce,
            render_ms = run.timings_ms.render,
            parse_ms = run.timings_ms.parse,
            plan_ms = run.timings_ms.plan,
            containers_ms = run.timings_ms.containers,
            execute_ms = run.timings_ms.execute,
            report_ms = run.timings_ms.report,
            total_ms = run.timings_ms.total,
            reused = run.containers.reused,
            started = run.containers.started,
            "dev run"
        );
    }

    fn waiting(&self, tests: usize) {
        if self.format == Format::Human && !self.quiet {
            let _ = writeln!(
                std::io::stdout().lock(),
                "watching {tests} tests for changes (Ctrl-C to stop)"
            );
        }
    }
}
