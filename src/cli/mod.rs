//! The command line: the only code that prints. `main` parses the arguments, calls
//! `try_main`, and [`exit_code`] maps whatever came back to exit code 0 (all selected
//! tests passed, or the reader of our output went away), 1 (a test failed, errored or
//! is invalid) or 2 (the command could not do its job): the one place exit codes are
//! decided (docs/reference.md §6).

mod args;
mod cache;
mod completions;
mod dev;
mod doctor;
mod error;
mod fmt;
mod graph;
mod init;
mod output;
mod run;
mod schema;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;

pub use args::{CacheCommand, Cli, ColorChoice, Command, GlobalArgs};
pub use error::CliError;
use output::Printer;

use crate::cache::remote::{
    parse_remote_timeout, RemoteConfigError, DEFAULT_REMOTE_TIMEOUT, REMOTE_KEY_ENV,
    REMOTE_TIMEOUT_ENV, REMOTE_TOKEN_ENV, UPLOAD_DRAIN_TIMEOUT,
};
use crate::cache::{Memo, MemoOptions, Remote, RemoteMode, RemoteOptions};
use crate::discover::{self, TestFile};
use crate::pipeline::{FsWorld, Pipeline};
use crate::project::{Overrides, Project};

/// What a command that did its job found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Every selected test passed (or there was nothing to judge: init, render, cache).
    Ok,
    /// A test failed, errored or is invalid.
    TestsFailed,
}

/// The process's exit code for how a command ended (docs/reference.md §6).
pub fn exit_code(ended: &Result<Exit, CliError>) -> u8 {
    match ended {
        Ok(Exit::Ok) => 0,
        Ok(Exit::TestsFailed) => 1,
        // `clnrm run | head -1`: the reader has what it wanted.
        Err(err) if err.is_reader_gone() => 0,
        // clap reports `--help` and `--version` as errors that are not failures.
        Err(CliError::Arguments(err)) if !err.use_stderr() => 0,
        Err(_) => 2,
    }
}

pub fn main() -> ExitCode {
    let parsed = Cli::try_parse();
    let printer = match &parsed {
        Ok(cli) => {
            init_tracing(&cli.global);
            Printer::new(&cli.global)
        }
        Err(_) => Printer::plain(),
    };
    let ended = parsed
        .map_err(CliError::from)
        .and_then(|cli| try_main(cli, &printer));
    match &ended {
        Err(CliError::Arguments(err)) => {
            // Help to stdout, a usage error to stderr, in clap's own words and colours.
            let _ = err.print();
        }
        Err(err) if !err.is_reader_gone() => printer.error(&err.to_string()),
        _ => {}
    }
    ExitCode::from(exit_code(&ended))
}

fn init_tracing(global: &GlobalArgs) {
    let default = match global.verbose {
        0 => "warn",
        1 => "clnrm=info",
        _ => "clnrm=debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .without_time()
        .try_init();
}

fn try_main(cli: Cli, printer: &Printer) -> Result<Exit, CliError> {
    let cwd = std::env::current_dir().map_err(CliError::WorkingDirectory)?;
    match cli.command {
        Command::Init(args) => init::run(&cwd, &args.image, printer),
        Command::Validate(args) => validate(&cli.global, &args, &cwd, printer),
        Command::Render(args) => render(&cli.global, &args, &cwd, printer),
        Command::Run(args) => run::run(&cli.global, &args, &cwd, printer),
        Command::Dev(args) => dev::run(&cli.global, &args, &cwd, printer),
        Command::Cache(command) => cache::run(&cli.global, command, &cwd, printer),
        Command::Graph(args) => graph::run(&cli.global, &args, &cwd, printer),
        Command::Schema => schema::run(cli.global.strict),
        Command::Fmt(args) => fmt::run(&args, &cwd, printer),
        Command::Completions(args) => completions::completions(args.shell),
        Command::Man(args) => completions::man(&args),
        Command::Doctor(args) => doctor::run(&cli.global, &args, &cwd, printer),
    }
}

pub(crate) fn overrides(global: &GlobalArgs) -> Overrides {
    Overrides {
        vars: global.vars.iter().cloned().collect(),
        seed: global.seed,
        freeze_clock: global.freeze_clock.clone(),
        strict: global.strict,
    }
}

/// The project and its tests for the paths a command was given.
pub(crate) fn load(
    global: &GlobalArgs,
    paths: &[PathBuf],
    cwd: &Path,
    printer: &Printer,
) -> Result<(Project, Vec<TestFile>), CliError> {
    let paths: Vec<PathBuf> = if paths.is_empty() {
        vec![PathBuf::from(".")]
    } else {
        paths.to_vec()
    };
    let root = discover::find_root(&paths[0], cwd);
    let project = Project::load(&root, &overrides(global))?;
    for warning in &project.warnings {
        printer.diagnostic(warning);
    }
    let tests = discover::discover(&root, &paths, cwd)?;
    if tests.is_empty() {
        return Err(CliError::NoTests { paths });
    }
    Ok((project, tests))
}

pub(crate) fn thread_pool(jobs: Option<usize>) -> Result<rayon::ThreadPool, CliError> {
    let mut builder = rayon::ThreadPoolBuilder::new();
    if let Some(jobs) = jobs.filter(|&j| j > 0) {
        builder = builder.num_threads(jobs);
    }
    Ok(builder.build()?)
}

fn validate(
    global: &GlobalArgs,
    args: &args::ValidateArgs,
    cwd: &Path,
    printer: &Printer,
) -> Result<Exit, CliError> {
    let started = Instant::now();
    let (project, tests) = load(global, &args.paths, cwd, printer)?;
    let pool = thread_pool(args.jobs)?;
    let memo = open_memo(global, &project, printer)?;
    let pipeline = Pipeline::new(&project, &FsWorld, &memo);
    let checked = pool.install(|| pipeline.check_all(&tests));
    let (mut valid, mut invalid, mut warnings) = (0, 0, 0);
    for item in &checked {
        match &item.outcome {
            Ok(test) => {
                valid += 1;
                warnings += test.warnings.len();
                printer.validated(&item.test.key(), Some(&test.config.name));
                for warning in &test.warnings {
                    printer.diagnostic(warning);
                }
            }
            Err(problem) => {
                invalid += 1;
                if let crate::pipeline::TestProblem::Invalid(diagnostics) = problem {
                    warnings += diagnostics.iter().filter(|d| !d.is_error()).count();
                }
                printer.invalid(&item.test.key(), problem);
            }
        }
    }
    printer.summary(&format!(
        "{valid} valid, {invalid} invalid, {warnings} warnings in {:.2}s",
        started.elapsed().as_secs_f64()
    ));
    finish_memo(&memo, &project, printer);
    if output::stdout_reader_gone() {
        return Err(CliError::StdoutClosed);
    }
    Ok(if invalid == 0 {
        Exit::Ok
    } else {
        Exit::TestsFailed
    })
}

fn render(
    global: &GlobalArgs,
    args: &args::RenderArgs,
    cwd: &Path,
    printer: &Printer,
) -> Result<Exit, CliError> {
    let (project, tests) = load(global, std::slice::from_ref(&args.file), cwd, printer)?;
    let test = &tests[0];
    let bytes = std::fs::read(&test.path).map_err(|source| CliError::Read {
        path: test.path.clone(),
        source,
    })?;
    let Ok(source) = String::from_utf8(bytes) else {
        printer.error(&format!("{}: not UTF-8", test.identity));
        return Ok(Exit::TestsFailed);
    };
    if !test.is_template {
        write_stdout(&source)?;
        return Ok(Exit::Ok);
    }
    // A matrix template renders as one combination: the first that agrees with every
    // `--var` given (`--var os=debian`), after a comment naming it, so the output stays
    // one TOML document.
    let instance = match clnrm_config::read_matrix(&test.identity, &source) {
        Ok(Some(instances)) => {
            let chosen = instances.iter().find(|instance| {
                instance.values.iter().all(|(key, value)| {
                    global
                        .vars
                        .iter()
                        .all(|(given, wanted)| given != key || wanted == value)
                })
            });
            Some(chosen.unwrap_or(&instances[0]).clone())
        }
        Ok(None) => None,
        Err(diagnostics) => {
            for diagnostic in &diagnostics {
                printer.diagnostic(diagnostic);
            }
            return Ok(Exit::TestsFailed);
        }
    };
    let mut vars = project.vars.clone();
    if let Some(instance) = &instance {
        vars.extend(instance.values.iter().cloned());
        write_stdout(&format!("# {}{}\n", test.identity, instance.label()))?;
    }
    let request = clnrm_render::RenderRequest {
        root: project.root.clone(),
        template_path: test.path.clone(),
        source,
        vars,
        seed: project.seed,
        freeze_clock: project.freeze_clock.clone(),
    };
    match clnrm_render::render(&request, &FsWorld) {
        Ok(rendered) => {
            write_stdout(&rendered.toml)?;
            Ok(Exit::Ok)
        }
        Err(err) => {
            printer.error(&err.to_string());
            Ok(Exit::TestsFailed)
        }
    }
}

fn write_stdout(text: &str) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(CliError::Stdout)
}

/// Where the cache lives (docs/reference.md §2, §6): `--cache-dir` / `CLNRM_CACHE_DIR`, else
/// `[cache] dir` of cleanroom.toml (relative to the root), else `<root>/.clnrm/cache`.
pub fn cache_dir(global: &GlobalArgs, project: &Project) -> PathBuf {
    if let Some(dir) = &global.cache_dir {
        return dir.clone();
    }
    match &project.config.cache_dir {
        Some(dir) => project.root.join(dir),
        None => project.root.join(".clnrm/cache"),
    }
}

/// The memo for this run, with the remote tier behind it when one is configured. A
/// damaged or busy local cache is a warning line; unusable remote settings (a bad
/// URL, mode or timeout) are a usage error.
pub(crate) fn open_memo(
    global: &GlobalArgs,
    project: &Project,
    printer: &Printer,
) -> Result<Memo, CliError> {
    let remote = open_remote(global, project)?;
    let (mut options, warning) = MemoOptions::from_env();
    options.no_read = global.no_cache;
    if let Some(warning) = warning {
        printer.warn(&warning);
    }
    let (mut memo, warnings) = Memo::open(&cache_dir(global, project), options);
    for warning in warnings {
        printer.warn(&warning);
    }
    if let Some(remote) = remote {
        tracing::info!("remote cache: {remote:?}");
        memo.attach_remote(remote);
    }
    Ok(memo)
}

/// The remote cache tier when one is configured; unusable settings are a usage error.
pub(crate) fn open_remote(
    global: &GlobalArgs,
    project: &Project,
) -> Result<Option<Remote>, CliError> {
    Ok(remote_options(global, project)?
        .map(|options| Remote::new(&options))
        .transpose()?)
}

/// The remote cache settings (docs/reference.md §10): `--remote-cache` / `CLNRM_REMOTE_CACHE`, else
/// `[cache] remote`; the mode from `--remote-cache-mode`, else `[cache] remote_mode`;
/// the token, signing key and timeout from the environment. `None` without a URL.
fn remote_options(
    global: &GlobalArgs,
    project: &Project,
) -> Result<Option<RemoteOptions>, CliError> {
    // An empty `CLNRM_REMOTE_CACHE` is unset: it does not hide `[cache] remote`.
    let given = |url: &Option<String>| url.clone().filter(|url| !url.trim().is_empty());
    let Some(url) = given(&global.remote_cache).or_else(|| given(&project.config.cache_remote))
    else {
        return Ok(None);
    };
    let mode = match (global.remote_cache_mode, &project.config.cache_remote_mode) {
        (Some(mode), _) => mode,
        (None, Some(text)) => text.parse().map_err(|reason| RemoteConfigError::Mode {
            origin: "cleanroom.toml: [cache] remote_mode".to_string(),
            reason,
        })?,
        (None, None) => RemoteMode::default(),
    };
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let timeout = match env(REMOTE_TIMEOUT_ENV) {
        Some(text) => parse_remote_timeout(&text)?,
        None => DEFAULT_REMOTE_TIMEOUT,
    };
    Ok(Some(RemoteOptions {
        url,
        mode,
        token: env(REMOTE_TOKEN_ENV),
        signing_secret: env(REMOTE_KEY_ENV),
        timeout,
        stages: crate::runner::REMOTE_STAGES
            .iter()
            .map(|s| s.to_string())
            .collect(),
    }))
}

/// Persists the run's counters, shows what went wrong with the cache, and collects
/// garbage once the cache outgrows `[cache] max_size`.
pub(crate) fn finish_memo(memo: &Memo, project: &Project, printer: &Printer) {
    memo.finish_remote(UPLOAD_DRAIN_TIMEOUT);
    memo.flush();
    if let Some(max_size) = project.config.cache_max_size {
        match memo.maybe_auto_gc(max_size) {
            Ok(Some(report)) => tracing::info!("automatic cache gc: {report:?}"),
            Ok(None) => {}
            Err(err) => printer.warn(&format!("automatic cache gc failed: {err}")),
        }
    }
    for warning in memo.take_warnings() {
        printer.warn(&warning);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(ended: Result<Exit, CliError>) -> u8 {
        exit_code(&ended)
    }

    #[test]
    fn tests_decide_0_or_1_and_a_command_that_could_not_work_is_2() {
        assert_eq!(code(Ok(Exit::Ok)), 0);
        assert_eq!(code(Ok(Exit::TestsFailed)), 1);
        assert_eq!(code(Err(CliError::NoTests { paths: vec![] })), 2);
        let engine = clnrm_exec::ExecError::Engine("connection refused".into());
        assert_eq!(code(Err(CliError::Engine(engine))), 2);
        let unwritable = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        assert_eq!(code(Err(CliError::Stdout(unwritable))), 2);
    }

    #[test]
    fn a_reader_that_went_away_is_a_quiet_success() {
        let broken_pipe = || std::io::Error::from(std::io::ErrorKind::BrokenPipe);
        assert_eq!(code(Err(CliError::StdoutClosed)), 0);
        assert_eq!(code(Err(CliError::Stdout(broken_pipe()))), 0);
        assert_eq!(code(Err(CliError::Io(broken_pipe()))), 0);
        let write = CliError::Write {
            path: "report.xml".into(),
            source: broken_pipe(),
        };
        assert_eq!(code(Err(write)), 2, "a file is not our reader");
    }

    #[test]
    fn help_and_version_are_not_failures_but_a_bad_flag_is() {
        let parse = |args: &[&str]| {
            code(
                Cli::try_parse_from(args)
                    .map(|_| Exit::Ok)
                    .map_err(CliError::from),
            )
        };
        assert_eq!(parse(&["clnrm", "--help"]), 0);
        assert_eq!(parse(&["clnrm", "--version"]), 0);
        assert_eq!(parse(&["clnrm", "run", "--no-such-flag"]), 2);
        assert_eq!(parse(&["clnrm", "run", "--shard", "3/2"]), 2);
    }
}
