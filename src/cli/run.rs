//! `clnrm run`: flags to a [`RunCommand`] for the engine, and the report readers of its
//! events (human, JSON, TAP, GitHub annotations, JUnit, HTML).
//! A run stops starting tests when it is interrupted (Ctrl-C, SIGTERM) or when the
//! reader of its output goes away (`clnrm run | head -1`); either way the tests that
//! were running end and their containers are removed before clnrm exits.

use std::io::IsTerminal;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::mpsc;

use super::args::{RunArgs, RunFormat};
use super::output::{self, Printer};
use super::{finish_memo, load, open_memo, thread_pool, CliError, Exit, GlobalArgs};
use crate::pipeline::{Checked, FsWorld, Pipeline, TestProblem};
use crate::report::{
    github_actions_log, json_line, step_line, template_step_line, Event, GithubAnnotations,
    HtmlReport, HumanReporter, JunitReport, RunStats, SourceLines, TapReporter,
};
use crate::runner::{self, run_command, RunCommand, RunCommandError, RunOptions};

pub fn run(
    global: &GlobalArgs,
    args: &RunArgs,
    cwd: &Path,
    printer: &Printer,
) -> Result<Exit, CliError> {
    let started = Instant::now();
    let (project, mut tests) = load(global, &args.paths, cwd, printer)?;
    if let Some(shard) = args.shard {
        tests.retain(|test| runner::in_shard(&test.identity, shard));
    }
    let jobs = args
        .jobs
        .or(project.config.run_jobs)
        .filter(|&j| j > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let memo = open_memo(global, &project, printer)?;
    let pipeline = Pipeline::new(&project, &FsWorld, &memo);
    let checked = thread_pool(None)?.install(|| pipeline.check_all(&tests));
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
    let read = move |mut events: mpsc::UnboundedReceiver<Event>| async move {
        let mut stats = RunStats::default();
        let mut junit = JunitReport::default();
        let mut html = HtmlReport::default();
        let mut tap = TapReporter::default();
        while let Some(mut event) = events.recv().await {
            lines.fill(&mut event);
            stats.record(&event);
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
        (stats, junit, html)
    };
    let (stats, junit, html) = run_command(command, read, stop).map_err(|err| match err {
        RunCommandError::Runtime(err) => CliError::Runtime(err),
        RunCommandError::Engine(err) => CliError::Engine(err),
        RunCommandError::Reader(err) => CliError::Task(err),
    })?;
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
    finish_memo(&memo, &project, printer);
    if reader_gone.load(Ordering::SeqCst) {
        return Err(CliError::StdoutClosed);
    }
    Ok(if stats.exit_ok() {
        Exit::Ok
    } else {
        Exit::TestsFailed
    })
}

/// Where each step and each invalid test's first error is in its file, for the
/// `line` of events. A template's steps are found in the template itself (the
/// rendered text's lines mean nothing in the file a user opens).
fn source_lines(checked: &[Checked]) -> SourceLines {
    let mut lines = SourceLines::default();
    for item in checked {
        let identity = &item.test.identity;
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
