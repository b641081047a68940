//! `clnrm run`: flags to a [`RunCommand`] for the engine, and the report readers of its
//! events (human, JSON, TAP, GitHub annotations, JUnit, HTML).
//! A run stops starting tests when it is interrupted (Ctrl-C, SIGTERM) or when the
//! reader of its output goes away (`clnrm run | head -1`); either way the tests that
//! were running end and their containers are removed before clnrm exits.

use std::io::IsTerminal;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use tokio::sync::mpsc;

use super::args::{RunArgs, RunFormat};
use super::output::{self, Printer};
use super::{finish_memo, load, open_memo, thread_pool, CliError, Exit, GlobalArgs};
use crate::discover::TestFile;
use crate::otel::export::{Exporter, RunTrace, StageUse, DRAIN_WAIT};
use crate::pipeline::{Checked, FsWorld, Pipeline, StageCount, TestProblem};
use crate::report::{
    github_actions_log, json_line, step_line, template_step_line, Event, GithubAnnotations,
    HtmlReport, HumanReporter, JunitReport, PlannedAction, RunStats, SourceLines, TapReporter,
};
use crate::runner::{
    self, run_command, LastRun, RunCommand, RunCommandError, RunOptions, LAST_RUN_FILE,
};

pub fn run(
    global: &GlobalArgs,
    args: &RunArgs,
    cwd: &Path,
    printer: &Printer,
) -> Result<Exit, CliError> {
    let started = Instant::now();
    // clnrm's own trace (`--otel-endpoint`): the moments below are its stages' edges.
    let export = global
        .otel_endpoint
        .as_deref()
        .filter(|url| !url.is_empty())
        .map(|url| Arc::new(Exporter::start(url)));
    let mut trace = export
        .as_ref()
        .map(|e| RunTrace::new(e.ids, "clnrm run", SystemTime::now()));
    let (project, tests) = load(global, &args.paths, cwd, printer)?;
    if let Some(trace) = &mut trace {
        trace.discovered(SystemTime::now());
    }
    let jobs = args
        .jobs
        .or(project.config.run_jobs)
        .filter(|&j| j > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let memo = open_memo(global, &project, printer)?;
    let pipeline = Pipeline::new(&project, &FsWorld, &memo);
    let pool = thread_pool(None)?;
    // Matrix combinations are tests of their own: sharded and picked by `--failed` one by one.
    let mut tests = pool.install(|| pipeline.expand(&tests));
    if let Some(shard) = args.shard {
        tests.retain(|test| runner::in_shard(&test.key(), shard));
    }
    let last_run = match LastRun::load(&project.root) {
        Ok(last_run) => last_run,
        Err(message) => {
            printer.warn(&format!(
                "previous run unreadable, taken as none: {message}"
            ));
            None
        }
    };
    if args.failed {
        match &last_run {
            Some(last_run) => tests.retain(|test| last_run.wants(&test.key())),
            None => printer.warn(&format!(
                "--failed: no previous run recorded ({LAST_RUN_FILE}), so every test is new"
            )),
        }
        if tests.is_empty() {
            printer.summary(
                "--failed: nothing to run (no test failed, errored or was left unrun in the \
                 previous run, and none is new)",
            );
            finish_memo(&memo, &project, printer);
            return Ok(Exit::Ok);
        }
    }
    let selected: Vec<String> = tests.iter().map(TestFile::key).collect();
    let checked = pool.install(|| pipeline.check_all(&tests));
    if let Some(trace) = &mut trace {
        let used = |count: &StageCount| {
            let (hits, misses) = count.get();
            StageUse {
                hits,
                misses,
                busy_ms: count.millis(),
            }
        };
        let (render, parse) = (used(&pipeline.render_count), used(&pipeline.parse_count));
        trace.checked(SystemTime::now(), render, parse);
    }
    let validity = DryRunCount::of(&checked);
    let lines = source_lines(&checked);
    let github = (args.format == RunFormat::Github
        || (args.format == RunFormat::Human
            && github_actions_log(
                std::env::var("GITHUB_ACTIONS").ok().as_deref(),
                std::io::stdout().is_terminal(),
            )))
    .then(|| GithubAnnotations::new(&root_prefix(&project.root, cwd)));

    let options = RunOptions {
        jobs,
        fail_fast: args.fail_fast,
        force: args.force,
        dry_run: args.dry_run,
        export: export.clone(),
        flaky_fails: args.flaky_result == crate::cli::args::FlakyResult::Fail,
    };
    let command = RunCommand {
        project: &project,
        memo: &memo,
        checked,
        options,
        reuse: args.reuse || project.config.run_reuse,
    };
    // The reader of our output going away (`clnrm run | head -1`) stops the run.
    let reader_gone = Arc::new(AtomicBool::new(false));
    let noticed_reader_gone = reader_gone.clone();
    let stop = async move {
        output::reader_gone().await;
        noticed_reader_gone.store(true, Ordering::SeqCst);
    };
    let format = args.format;
    let junit_wanted = args.junit.is_some();
    let html_wanted = args.html.is_some();
    let mut human = HumanReporter::new(printer.color(), global.quiet);
    let recording = export.clone();
    let read = move |mut events: mpsc::UnboundedReceiver<Event>| async move {
        let mut stats = RunStats::default();
        let mut junit = JunitReport::default();
        let mut html = HtmlReport::default();
        let mut tap = TapReporter::default();
        let mut finished = Vec::new();
        let mut planned_errors = 0;
        while let Some(mut event) = events.recv().await {
            if let (Some(trace), Some(export)) = (&mut trace, &recording) {
                export.timed(|| trace.record(&event, SystemTime::now()));
            }
            lines.fill(&mut event);
            stats.record(&event);
            match &event {
                Event::TestFinished(test) => finished.push((test.test.clone(), test.status)),
                Event::TestPlanned(planned) if planned.action == PlannedAction::Error => {
                    planned_errors += 1
                }
                _ => {}
            }
            if junit_wanted {
                junit.record(&event);
            }
            if html_wanted {
                html.record(&event);
            }
            match format {
                RunFormat::Human | RunFormat::Github => human.record(&event),
                RunFormat::Json => write_line(&json_line(&event)),
                RunFormat::Tap => tap.record(&event).iter().for_each(|l| write_line(l)),
            }
            if let Some(annotation) = github.as_ref().and_then(|g| g.record(&event)) {
                write_line(&annotation);
            }
        }
        (stats, junit, html, finished, planned_errors, trace)
    };
    let (stats, junit, html, finished, planned_errors, trace) = run_command(command, read, stop)
        .map_err(|err| match err {
            RunCommandError::Runtime(err) => CliError::Runtime(err),
            RunCommandError::Engine(err) => CliError::Engine(err),
            RunCommandError::Reader(err) => CliError::Task(err),
        })?;
    // The run's own spans go out with its last event, so their delivery overlaps what is
    // left to do (reports, the cache's close) and the wait at the end is what remains of
    // DRAIN_WAIT. `--dry-run` exports nothing.
    let export_deadline = match (&export, trace) {
        (Some(export), Some(mut trace)) if !args.dry_run => {
            export.add_run(&mut trace, SystemTime::now(), stats.exit_ok());
            Some(Instant::now() + DRAIN_WAIT)
        }
        _ => None,
    };
    if let Some(path) = &args.junit {
        std::fs::write(path, junit.to_xml(started.elapsed())).map_err(|source| {
            CliError::Write {
                path: path.clone(),
                source,
            }
        })?;
    }
    if let Some(path) = &args.html {
        let title = project
            .root
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_else(|| project.root.display().to_string());
        std::fs::write(path, html.to_html(&title)).map_err(|source| CliError::Write {
            path: path.clone(),
            source,
        })?;
    }
    if args.dry_run {
        // The same kind of last line as `validate`, and its exit code: an invalid test
        // (or one that cannot run) is not hidden by a dry run.
        let summary = validity.summary(started, planned_errors);
        match format {
            RunFormat::Json => write_line(&summary.json()),
            RunFormat::Tap => write_line(&format!("# {}", summary.line())),
            RunFormat::Human | RunFormat::Github => printer.summary(&summary.line()),
        }
        finish_memo(&memo, &project, printer);
        if reader_gone.load(Ordering::SeqCst) {
            return Err(CliError::StdoutClosed);
        }
        return Ok(if summary.invalid + summary.cannot_run == 0 {
            Exit::Ok
        } else {
            Exit::TestsFailed
        });
    }
    let mut record = last_run.unwrap_or_default();
    record.record(&selected, &finished);
    if let Err(err) = record.save(&project.root) {
        printer.warn(&format!(
            "could not record this run for --failed ({LAST_RUN_FILE}): {err}"
        ));
    }
    finish_memo(&memo, &project, printer);
    if let (Some(export), Some(deadline)) = (export, export_deadline) {
        finish_export(&export, deadline, printer);
    }
    if reader_gone.load(Ordering::SeqCst) {
        return Err(CliError::StdoutClosed);
    }
    Ok(if stats.exit_ok() {
        Exit::Ok
    } else {
        Exit::TestsFailed
    })
}

/// Waits until `deadline` at the latest for the trace to reach the collector, then says
/// what did not.
fn finish_export(export: &Exporter, deadline: Instant, printer: &Printer) {
    let url = export.url().to_string();
    if let Some(lost) = export.finish(deadline) {
        printer.warn(&format!(
            "--otel-endpoint: {} of {} spans of this run's trace were not delivered to {url} \
             (collector unreachable, slow or refusing them); the run's outcome is unaffected",
            lost.spans, lost.of
        ));
    }
}

/// What `--dry-run` found, counted as `validate` counts.
struct DryRunCount {
    valid: usize,
    invalid: usize,
    warnings: usize,
}

impl DryRunCount {
    fn of(checked: &[Checked]) -> DryRunCount {
        let mut count = DryRunCount {
            valid: 0,
            invalid: 0,
            warnings: 0,
        };
        for item in checked {
            match &item.outcome {
                Ok(valid) => {
                    count.valid += 1;
                    count.warnings += valid.warnings.len();
                }
                Err(problem) => {
                    count.invalid += 1;
                    if let TestProblem::Invalid(diagnostics) = problem {
                        count.warnings += diagnostics.iter().filter(|d| !d.is_error()).count();
                    }
                }
            }
        }
        count
    }

    /// `planned_errors` counts every test planned as an error; the invalid ones are among them.
    fn summary(&self, started: Instant, planned_errors: usize) -> DryRunSummary {
        DryRunSummary {
            valid: self.valid,
            invalid: self.invalid,
            warnings: self.warnings,
            cannot_run: planned_errors.saturating_sub(self.invalid),
            seconds: started.elapsed().as_secs_f64(),
        }
    }
}

struct DryRunSummary {
    valid: usize,
    invalid: usize,
    warnings: usize,
    /// Valid tests that still cannot run (an image that cannot be had, a planning error).
    cannot_run: usize,
    seconds: f64,
}

impl DryRunSummary {
    /// `N valid, N invalid, N warnings in 1.23s`, as `validate` ends, with the valid tests
    /// that cannot run when there are any.
    fn line(&self) -> String {
        let cannot_run = if self.cannot_run > 0 {
            format!(", {} cannot run", self.cannot_run)
        } else {
            String::new()
        };
        format!(
            "{} valid, {} invalid, {} warnings{cannot_run} in {:.2}s",
            self.valid, self.invalid, self.warnings, self.seconds
        )
    }

    fn json(&self) -> String {
        serde_json::json!({
            "event": "dry_run_finished",
            "valid": self.valid,
            "invalid": self.invalid,
            "warnings": self.warnings,
            "cannot_run": self.cannot_run,
            "duration_ms": (self.seconds * 1000.0 * 10.0).round() / 10.0,
        })
        .to_string()
    }
}

/// Where each step and each invalid test's first error is in its file, for the
/// `line` of events. A template's steps are found in the template itself (the
/// rendered text's lines mean nothing in the file a user opens).
fn source_lines(checked: &[Checked]) -> SourceLines {
    let mut lines = SourceLines::default();
    for item in checked {
        let identity = &item.test.key();
        match &item.outcome {
            Ok(valid) => {
                let template = if item.test.is_template {
                    std::fs::read_to_string(&item.test.path).ok()
                } else {
                    None
                };
                for step in &valid.config.steps {
                    let line = match &template {
                        Some(source) => template_step_line(source, &step.name),
                        None => step_line(&valid.toml, &step.key_path),
                    };
                    if let Some(line) = line {
                        lines.add_step(identity, &step.name, line);
                    }
                }
            }
            Err(problem) => {
                let line = match problem {
                    // A template's diagnostics count lines of the rendered text.
                    TestProblem::Invalid(diagnostics) if !item.test.is_template => diagnostics
                        .iter()
                        .find(|d| d.is_error())
                        .and_then(|d| d.line_col)
                        .map(|(line, _)| line),
                    TestProblem::Render(err) if err.file == *identity => {
                        err.line_col.map(|(line, _)| line)
                    }
                    _ => None,
                };
                if let Some(line) = line {
                    lines.add_problem(identity, line);
                }
            }
        }
    }
    lines
}

/// The project root as paths in annotations need it: relative to where clnrm runs
/// (GitHub resolves them against the workspace), `/`-separated.
fn root_prefix(root: &Path, cwd: &Path) -> String {
    match root.strip_prefix(cwd) {
        Ok(relative) => relative
            .components()
            .map(|c| c.as_os_str().to_string_lossy())
            .collect::<Vec<_>>()
            .join("/"),
        Err(_) => root.display().to_string(),
    }
}

/// One line of `--format json|tap` or an annotation. A failed write is not an error
/// here: a reader that went away is noticed by [`output::reader_gone`], which
/// cancels the run.
fn write_line(text: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout().lock(), "{text}");
}
