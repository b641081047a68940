//! The command line: the only code that prints. `main` calls [`main`], which maps every
//! outcome to exit code 0 (all good), 1 (a test failed or is invalid) or 2 (the command
//! could not do its job) in one place.

mod args;
mod cache;
mod completions;
mod dev;
mod error;
mod fmt;
mod init;
mod output;
mod run;
mod schema;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Parser;

pub use args::{CacheCommand, Cli, ColorChoice, Command, GlobalArgs};
pub use error::CliError;
use output::Printer;

use crate::cache::{Memo, MemoOptions};
use crate::discover::{self, TestFile};
use crate::pipeline::{FsWorld, Pipeline};
use crate::project::{Overrides, Project};

/// What a command ended with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Ok = 0,
    TestsFailed = 1,
    Usage = 2,
}

pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            let _ = err.print();
            return if err.use_stderr() {
                Exit::Usage as i32
            } else {
                0
            };
        }
    };
    init_tracing(&cli.global);
    let printer = Printer::new(&cli.global);
    match try_main(cli, &printer) {
        Ok(exit) => exit as i32,
        Err(err) if err.is_broken_pipe() => Exit::Ok as i32,
        Err(err) => {
            printer.error(&err.to_string());
            Exit::Usage as i32
        }
    }
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
    let cwd = std::env::current_dir()?;
    match cli.command {
        Command::Init(args) => init::run(&cwd, &args.image, printer),
        Command::Validate(args) => validate(&cli.global, &args, &cwd, printer),
        Command::Render(args) => render(&cli.global, &args, &cwd, printer),
        Command::Run(args) => run::run(&cli.global, &args, &cwd, printer),
        Command::Dev(args) => dev::run(&cli.global, &args, &cwd, printer),
        Command::Cache(command) => cache::run(&cli.global, command, &cwd, printer),
        Command::Schema => schema::run(cli.global.strict),
        Command::Fmt(args) => fmt::run(&args, &cwd, printer),
        Command::Completions(args) => completions::completions(args.shell),
        Command::Man(args) => completions::man(&args),
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
        let shown: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
        return Err(CliError::Usage(format!(
            "no tests found in {} (tests are named *.clnrm.toml, *.clnrm.toml.tera or *.toml.tera; files ignored by .gitignore/.ignore are skipped)",
            shown.join(", ")
        )));
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
    let memo = open_memo(global, &project, printer);
    let pipeline = Pipeline::new(&project, &FsWorld, &memo);
    let checked = pool.install(|| pipeline.check_all(&tests));
    let (mut valid, mut invalid, mut warnings) = (0, 0, 0);
    for item in &checked {
        match &item.outcome {
            Ok(test) => {
                valid += 1;
                warnings += test.warnings.len();
                printer.validated(&item.test.identity, Some(&test.config.name));
                for warning in &test.warnings {
                    printer.diagnostic(warning);
                }
            }
            Err(problem) => {
                invalid += 1;
                if let crate::pipeline::TestProblem::Invalid(diagnostics) = problem {
                    warnings += diagnostics.iter().filter(|d| !d.is_error()).count();
                }
                printer.invalid(&item.test.identity, problem);
            }
        }
    }
    printer.summary(&format!(
        "{valid} valid, {invalid} invalid, {warnings} warnings in {:.2}s",
        started.elapsed().as_secs_f64()
    ));
    finish_memo(&memo, &project, printer);
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
    let bytes = std::fs::read(&test.path)?;
    let Ok(source) = String::from_utf8(bytes) else {
        printer.error(&format!("{}: not UTF-8", test.identity));
        return Ok(Exit::TestsFailed);
    };
    if !test.is_template {
        write_stdout(&source)?;
        return Ok(Exit::Ok);
    }
    let request = clnrm_render::RenderRequest {
        root: project.root.clone(),
        template_path: test.path.clone(),
        source,
        vars: project.vars.clone(),
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

fn write_stdout(text: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()
}

/// Where the cache lives (SPEC §2, §6): `--cache-dir` / `CLNRM_CACHE_DIR`, else
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

/// The memo for this run. Never fails: a damaged or busy cache is a warning line.
pub(crate) fn open_memo(global: &GlobalArgs, project: &Project, printer: &Printer) -> Memo {
    let (mut options, warning) = MemoOptions::from_env();
    options.no_read = global.no_cache;
    if let Some(warning) = warning {
        printer.warn(&warning);
    }
    let (memo, warnings) = Memo::open(&cache_dir(global, project), options);
    for warning in warnings {
        printer.warn(&warning);
    }
    memo
}

/// Persists the run's counters, shows what went wrong with the cache, and collects
/// garbage once the cache outgrows `[cache] max_size`.
pub(crate) fn finish_memo(memo: &Memo, project: &Project, printer: &Printer) {
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
