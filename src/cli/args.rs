//! Every flag, defined once, with its help.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::cache::RemoteMode;

#[derive(Debug, Parser)]
#[command(
    name = "clnrm",
    version,
    about = "cleanroom: hermetic integration tests in TOML, memoized by content hash"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args, Clone)]
pub struct GlobalArgs {
    /// Cache directory (default: `[cache] dir` of cleanroom.toml, else <root>/.clnrm/cache)
    #[arg(long, global = true, env = "CLNRM_CACHE_DIR", value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Read nothing from the cache (results are still written)
    #[arg(long, global = true)]
    pub no_cache: bool,
    /// Template variable, over `[vars]` of cleanroom.toml (repeatable)
    #[arg(long = "var", global = true, value_name = "KEY=VALUE", value_parser = parse_var)]
    pub vars: Vec<(String, String)>,
    /// Seed for every random function in templates
    #[arg(long, global = true, value_name = "N")]
    pub seed: Option<u64>,
    /// Clock value (RFC 3339) for every clock function in templates
    #[arg(long, global = true, value_name = "RFC3339")]
    pub freeze_clock: Option<String>,
    /// Unknown keys are errors, not warnings
    #[arg(long, global = true)]
    pub strict: bool,
    /// More output: each stage's cache hit or miss and why (-vv for debug logs)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Less output: failures and the summary only
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Remote cache server (Bazel's HTTP cache protocol; https://user:pass@host/path
    /// for Basic credentials, CLNRM_REMOTE_CACHE_TOKEN for a Bearer token); default
    /// `[cache] remote` of cleanroom.toml
    #[arg(
        long,
        global = true,
        env = "CLNRM_REMOTE_CACHE",
        hide_env_values = true,
        value_name = "URL"
    )]
    pub remote_cache: Option<String>,
    /// What to do with the remote cache: `read` (for untrusted builds such as forks'
    /// pull requests), `write`, `readwrite` (default: `[cache] remote_mode`, else readwrite)
    #[arg(long, global = true, value_name = "MODE", value_parser = parse_remote_mode)]
    pub remote_cache_mode: Option<RemoteMode>,
    /// Send clnrm's own trace of `run` to this OpenTelemetry collector (OTLP/HTTP protobuf,
    /// POST URL/v1/traces); never slows or fails the run
    #[arg(
        long,
        global = true,
        env = "OTEL_EXPORTER_OTLP_ENDPOINT",
        value_name = "URL"
    )]
    pub otel_endpoint: Option<String>,
    /// When to use colours (honours NO_COLOR)
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write cleanroom.toml and tests/hello.clnrm.toml in the current folder
    Init(InitArgs),
    /// Render, parse and validate tests; no containers
    Validate(ValidateArgs),
    /// Print a test's rendered TOML
    Render(RenderArgs),
    /// Run tests in containers
    Run(RunArgs),
    /// Watch tests and re-run what a change affects, on warm containers
    Dev(DevArgs),
    /// Inspect and trim the on-disk cache
    #[command(subcommand)]
    Cache(CacheCommand),
    /// Draw tests, the files their render reads, their services, images and build contexts
    Graph(GraphArgs),
    /// Print the JSON Schema of the test format, for editors (taplo, Even Better TOML);
    /// with --strict it rejects unknown keys
    Schema,
    /// Lay out *.clnrm.toml files canonically: key order, spacing; comments kept
    Fmt(FmtArgs),
    /// Print the completion script of a shell
    Completions(CompletionsArgs),
    /// Print the man page, or write one page per command to a folder
    Man(ManArgs),
    /// Check this machine: the engine, images, networks, exec, the OTLP receiver's
    /// address, the cache and the remote cache; exit 1 when something is broken
    Doctor(DoctorArgs),
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Output format: `json` prints one object (checks with name, status, detail, fix)
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct FmtArgs {
    /// Test files or folders (default: the current folder); templates are left alone
    pub paths: Vec<PathBuf>,
    /// Change nothing: list the files that would change and exit 1 if there are any
    #[arg(long)]
    pub check: bool,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete in
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write clnrm.1 and one page per subcommand (clnrm-run.1, ...) to DIR instead
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// Per stage: entries, bytes, hits, misses, hit rate; totals; location
    Stats {
        /// One JSON object instead of the table
        #[arg(long)]
        json: bool,
    },
    /// Remove least recently used entries (and leftover clnrm containers and images)
    Gc {
        /// Shrink the cache to at most this size (`500MB`, `2GiB`)
        #[arg(long, value_name = "SIZE", value_parser = parse_size)]
        max_size: Option<u64>,
        /// Remove entries unused for longer than this (`30d`, `12h`)
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        max_age: Option<std::time::Duration>,
        /// Report what would be removed; remove nothing
        #[arg(long)]
        dry_run: bool,
    },
    /// Empty the cache
    Clear {
        /// Only this stage (`render`, `parse`, `plan`, `result`)
        #[arg(long, value_name = "NAME")]
        stage: Option<String>,
    },
}

// The same parsers as `[cache] max_size` and durations in cleanroom.toml, so a flag
// accepts exactly what the file does.
fn parse_size(text: &str) -> Result<u64, String> {
    clnrm_config::parse_size_bytes(text)
}

fn parse_remote_mode(text: &str) -> Result<RemoteMode, String> {
    text.parse()
}

fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    clnrm_config::parse_duration_ms(text).map(std::time::Duration::from_millis)
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Test files or folders (default: the current folder)
    pub paths: Vec<PathBuf>,
    /// Files validated at once (default: number of CPUs)
    #[arg(short = 'j', long, value_name = "N")]
    pub jobs: Option<usize>,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// The image the example test runs in
    #[arg(long, default_value = "alpine:3.20")]
    pub image: String,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Test files or folders (default: the current folder)
    pub paths: Vec<PathBuf>,
    /// Tests run at once (default: `[run] jobs`, else the number of CPUs)
    #[arg(short = 'j', long, value_name = "N")]
    pub jobs: Option<usize>,
    /// Start no new test after the first failure or error
    #[arg(long)]
    pub fail_fast: bool,
    /// Run every selected test, cached or not
    #[arg(long)]
    pub force: bool,
    /// Run only shard K of N (1-based), split stably by test identity
    #[arg(long, value_name = "K/N", value_parser = parse_shard)]
    pub shard: Option<(u64, u64)>,
    /// Output format: `tap` is TAP 14; `github` is the human output plus `::error`
    /// annotations (automatic when GITHUB_ACTIONS=true and stdout is not a terminal)
    #[arg(long, value_enum, default_value_t = RunFormat::Human)]
    pub format: RunFormat,
    /// Also write a JUnit XML report to FILE
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Also write a self-contained HTML report (with a timing waterfall) to FILE
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// Show what would run, what is cached and why; run nothing. Exits 1 when a test is
    /// invalid or cannot run
    #[arg(long)]
    pub dry_run: bool,
    /// Run only what failed, errored or did not run in the previous run of these paths,
    /// plus tests new since (recorded in the project's .clnrm/last-run.json)
    #[arg(long)]
    pub failed: bool,
    /// Reuse warm service containers between runs (also `[run] reuse = true`); faster,
    /// less hermetic: state a test left in its containers is there next time
    #[arg(long)]
    pub reuse: bool,
    /// What a flaky test (one that passed only on a step retry) counts as: `pass`, or
    /// `fail` (exit code 1)
    #[arg(long, value_enum, value_name = "RESULT", default_value_t = FlakyResult::Pass)]
    pub flaky_result: FlakyResult,
}

/// `--flaky-result`.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum FlakyResult {
    Pass,
    Fail,
}

#[derive(Debug, Args)]
pub struct DevArgs {
    /// Test files or folders to watch (default: the project)
    pub paths: Vec<PathBuf>,
    /// Quiet time after the last change before a run, for changes with no completion
    /// signal (a delete, a plain modify) and many files at once (default: `[dev]
    /// debounce_ms`, else 300)
    #[arg(long, value_name = "MS")]
    pub debounce_ms: Option<u64>,
    /// Wait after a save completes (file closed after writing, or renamed into place)
    /// before its run; saves of many files at once wait the debounce
    #[arg(long, value_name = "MS", default_value_t = 20)]
    pub settle_ms: u64,
    /// The total (first file event to results printed) each run is held against
    #[arg(long, value_name = "MS", default_value_t = 3000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub budget_ms: u64,
    /// Clear the screen before each run
    #[arg(long)]
    pub clear: bool,
    /// Output format: `json` prints one object per run
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
    /// Leave the warm containers running on exit, for the next `clnrm dev`
    #[arg(long)]
    pub keep: bool,
    /// Tests run at once (default: `[run] jobs`, else the number of CPUs)
    #[arg(short = 'j', long, value_name = "N")]
    pub jobs: Option<usize>,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Format {
    Human,
    Json,
}

/// `clnrm run --format`.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum RunFormat {
    Human,
    Json,
    Tap,
    Github,
}

#[derive(Debug, Args)]
pub struct GraphArgs {
    /// Test files or folders (default: the current folder)
    pub paths: Vec<PathBuf>,
    /// Output format
    #[arg(long, value_enum, default_value_t = GraphFormat::Dot)]
    pub format: GraphFormat,
}

/// `clnrm graph --format`.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum GraphFormat {
    Dot,
    Mermaid,
    Json,
}

fn parse_shard(text: &str) -> Result<(u64, u64), String> {
    let parsed = text
        .split_once('/')
        .and_then(|(k, n)| Some((k.trim().parse::<u64>().ok()?, n.trim().parse::<u64>().ok()?)));
    match parsed {
        Some((k, n)) if n > 0 && (1..=n).contains(&k) => Ok((k, n)),
        _ => Err(format!("`{text}` is not K/N with 1 <= K <= N")),
    }
}

#[derive(Debug, Args)]
pub struct RenderArgs {
    /// The test to render
    pub file: PathBuf,
}

fn parse_var(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => {
            Ok((key.trim().to_string(), value.to_string()))
        }
        _ => Err(format!("`{text}` is not KEY=VALUE")),
    }
}
