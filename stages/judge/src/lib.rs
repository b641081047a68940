//! clnrm's step judge: one step's exit code and output against the step's expectations
//! (exit code, regexes that must and must not match, RFC 9535 JSONPath checks) and the
//! values its captures take (docs/reference.md §13). Pure: plain data in, a verdict out; no
//! I/O, no clock. Running the step, its attempts and its timeouts are the exec stage's.
//!
//! The expectations are plain serializable data ([`Expectations`]), carried by the config
//! and plan stages and hashed with the test; [`Compiled`] is the same with every regex and
//! path compiled, built once per step (after `${captures.NAME}` substitution, see
//! [`captures`]).

use serde::{Deserialize, Serialize};

pub mod captures;
mod json;
mod json_fast;
mod show;

pub use json::{json_error_at, parse_json_path};
pub use show::cut;

use json::CompiledJsonCheck;
use regex::{Regex, RegexBuilder};

/// What one step's output must be, as written in the test (patterns and paths as text).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq, Hash)]
pub struct Expectations {
    pub exit_code: i32,
    pub output_regex: Option<String>,
    pub stderr_regex: Option<String>,
    pub output_regex_not: Option<String>,
    pub stderr_regex_not: Option<String>,
    pub json: Vec<JsonCheck>,
    pub captures: Vec<Capture>,
}

/// One `expected_json` entry: a JSONPath and what the nodes it selects must be.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Hash)]
pub struct JsonCheck {
    pub path: String,
    pub check: JsonCheckKind,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Hash)]
pub enum JsonCheckKind {
    /// `exists = true`: at least one node; `false`: none.
    Exists(bool),
    /// `equals`: exactly one node, equal to this value (kept as JSON text: the config is
    /// hashed with bincode, which cannot hold a self-describing value).
    Equals(String),
    /// `matches`: every selected node is a string matching this regex (at least one node).
    Matches(String),
    /// `count`: exactly this many nodes.
    Count(u64),
}

/// `capture.NAME`: a value taken from the step's output for later steps.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Hash)]
pub struct Capture {
    pub name: String,
    pub source: CaptureSource,
    /// The value is not shown in reports.
    pub redact: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Hash)]
pub enum CaptureSource {
    /// A JSONPath over stdout parsed as JSON; it must select exactly one node.
    Json(String),
    /// The first group of a regex (the whole match when it has none).
    Regex { pattern: String, from: Stream },
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    pub fn name(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// What the step did: the judge's input besides the expectations.
#[derive(Debug, Clone, Copy)]
pub struct StepRun<'a> {
    pub exit_code: Option<i64>,
    /// The step ran out of its own timeout (`timeout_ms`).
    pub timed_out: bool,
    pub timeout_ms: u64,
    pub stdout: &'a str,
    pub stderr: &'a str,
}

/// One expectation that did not hold.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Mismatch {
    /// The key that says it (`expected_exit_code`, `expected_json[1]`, `capture.id`).
    pub key: String,
    pub expected: String,
    pub actual: String,
}

/// A value a capture took.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Captured {
    pub name: String,
    pub value: String,
    pub redact: bool,
}

/// The verdict on one step: it passed when `mismatches` is empty.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Judgement {
    pub mismatches: Vec<Mismatch>,
    /// The captures that took a value (one that took none is a mismatch).
    pub captured: Vec<Captured>,
}

impl Judgement {
    pub fn passed(&self) -> bool {
        self.mismatches.is_empty()
    }
}

/// An expectation that does not compile: the key and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompileError {
    pub key: String,
    pub message: String,
}

impl std::fmt::Display for CompileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

/// [`Expectations`] with every regex and path compiled.
#[derive(Debug, Clone)]
pub struct Compiled {
    exit_code: i32,
    regexes: Vec<RegexCheck>,
    json: Vec<CompiledJsonCheck>,
    captures: Vec<CompiledCapture>,
}

#[derive(Debug, Clone)]
struct RegexCheck {
    key: &'static str,
    stream: Stream,
    regex: Regex,
    /// `*_regex_not`: the stream must not match.
    negated: bool,
}

#[derive(Debug, Clone)]
struct CompiledCapture {
    name: String,
    redact: bool,
    source: CompiledSource,
}

#[derive(Debug, Clone)]
enum CompiledSource {
    /// The path, compiled by serde_json_path and, when it can be, for the fast path.
    Json(String, serde_json_path::JsonPath, Option<json_fast::Query>),
    Regex(Regex, Stream),
}

/// `^` and `$` match at line starts and ends, as with grep: output almost always ends with a
/// newline, and `"^hello$"` should match `hello\n`.
pub fn compile_regex(pattern: &str) -> Result<Regex, regex::Error> {
    RegexBuilder::new(pattern).multi_line(true).build()
}

impl Compiled {
    pub fn new(e: &Expectations) -> Result<Compiled, CompileError> {
        let mut regexes = Vec::new();
        for (key, stream, pattern, negated) in [
            (
                "expected_output_regex",
                Stream::Stdout,
                &e.output_regex,
                false,
            ),
            (
                "expected_stderr_regex",
                Stream::Stderr,
                &e.stderr_regex,
                false,
            ),
            (
                "expected_output_regex_not",
                Stream::Stdout,
                &e.output_regex_not,
                true,
            ),
            (
                "expected_stderr_regex_not",
                Stream::Stderr,
                &e.stderr_regex_not,
                true,
            ),
        ] {
            if let Some(pattern) = pattern {
                let regex = compile_regex(pattern).map_err(|err| CompileError {
                    key: key.to_string(),
                    message: err.to_string(),
                })?;
                regexes.push(RegexCheck {
                    key,
                    stream,
                    regex,
                    negated,
                });
            }
        }
        let json = e
            .json
            .iter()
            .enumerate()
            .map(|(i, check)| CompiledJsonCheck::new(i, check))
            .collect::<Result<Vec<_>, _>>()?;
        let mut captures = Vec::with_capacity(e.captures.len());
        for c in &e.captures {
            let key = format!("capture.{}", c.name);
            let source = match &c.source {
                CaptureSource::Json(path) => {
                    let compiled =
                        parse_json_path(path).map_err(|message| CompileError { key, message })?;
                    CompiledSource::Json(path.clone(), compiled, json_fast::compile(path))
                }
                CaptureSource::Regex { pattern, from } => {
                    let regex = compile_regex(pattern).map_err(|err| CompileError {
                        key,
                        message: err.to_string(),
                    })?;
                    CompiledSource::Regex(regex, *from)
                }
            };
            captures.push(CompiledCapture {
                name: c.name.clone(),
                redact: c.redact,
                source,
            });
        }
        Ok(Compiled {
            exit_code: e.exit_code,
            regexes,
            json,
            captures,
        })
    }
}

/// Judges one step's run. A timeout or a wrong exit code is the whole verdict (the output
/// of a command that did not finish as expected says little); otherwise every output
/// expectation is checked and every capture taken, and each failure is listed.
pub fn judge(expect: &Compiled, run: &StepRun) -> Judgement {
    let mut j = Judgement::default();
    if run.timed_out {
        let limit = show::duration(run.timeout_ms);
        j.mismatches.push(Mismatch {
            key: "timeout".into(),
            expected: format!("to finish within {limit}"),
            actual: format!("timed out after {limit}"),
        });
        return j;
    }
    if run.exit_code != Some(i64::from(expect.exit_code)) {
        j.mismatches.push(Mismatch {
            key: "expected_exit_code".into(),
            expected: format!("exit code {}", expect.exit_code),
            actual: match run.exit_code {
                Some(c) => format!("exit code {c}"),
                None => "no exit code".to_string(),
            },
        });
        return j;
    }
    for check in &expect.regexes {
        let text = stream_text(run, check.stream);
        let name = check.stream.name();
        if check.negated {
            if let Some(m) = check.regex.find(text) {
                j.mismatches.push(Mismatch {
                    key: check.key.into(),
                    expected: format!("{name} not matching /{}/", check.regex.as_str()),
                    actual: show::found_at(name, text, m.start(), m.as_str()),
                });
            }
        } else if !check.regex.is_match(text) {
            j.mismatches.push(Mismatch {
                key: check.key.into(),
                expected: format!("{name} matching /{}/", check.regex.as_str()),
                actual: show::stream(name, text),
            });
        }
    }
    let wants_json = !expect.json.is_empty()
        || expect
            .captures
            .iter()
            .any(|c| matches!(c.source, CompiledSource::Json(..)));
    // The fast path decides only a pass; anything else is judged below as if it were not
    // there, so every message is serde_json's and serde_json_path's.
    let mut fast_captures = wants_json
        .then(|| {
            json_fast::judge(
                run.stdout,
                expect.json.iter().map(CompiledJsonCheck::fast),
                expect.captures.iter().filter_map(|c| match &c.source {
                    CompiledSource::Json(_, _, fast) => Some(fast.as_ref()),
                    CompiledSource::Regex(..) => None,
                }),
            )
        })
        .flatten()
        .map(Vec::into_iter);
    let parsed = (wants_json && fast_captures.is_none())
        .then(|| serde_json::from_str::<serde_json::Value>(run.stdout));
    match &parsed {
        Some(Err(e)) if !expect.json.is_empty() => j.mismatches.push(Mismatch {
            key: "expected_json".into(),
            expected: "stdout to be JSON".into(),
            actual: json_error_at(run.stdout, e),
        }),
        Some(Ok(doc)) => {
            for check in &expect.json {
                if let Some(m) = check.judge(doc) {
                    j.mismatches.push(m);
                }
            }
        }
        _ => {}
    }
    for c in &expect.captures {
        let key = format!("capture.{}", c.name);
        let taken = match &c.source {
            CompiledSource::Json(path, compiled, _) => match (&mut fast_captures, &parsed) {
                (Some(values), _) => values.next().ok_or_else(unreachable_json),
                (_, Some(Ok(doc))) => json::capture(path, compiled, doc),
                (_, Some(Err(e))) => Err((
                    format!("a value at `{path}` of stdout parsed as JSON"),
                    json_error_at(run.stdout, e),
                )),
                (None, None) => Err(unreachable_json()),
            },
            CompiledSource::Regex(regex, stream) => regex_capture(regex, *stream, run),
        };
        match taken {
            Ok(value) => j.captured.push(Captured {
                name: c.name.clone(),
                value,
                redact: c.redact,
            }),
            Err((expected, actual)) => j.mismatches.push(Mismatch {
                key,
                expected,
                actual,
            }),
        }
    }
    j
}

/// A JSON capture always has stdout parsed, or its value from the fast path: `wants_json`
/// covers it.
fn unreachable_json() -> (String, String) {
    (
        "stdout parsed as JSON".into(),
        "stdout was not parsed".into(),
    )
}

fn stream_text<'a>(run: &StepRun<'a>, stream: Stream) -> &'a str {
    match stream {
        Stream::Stdout => run.stdout,
        Stream::Stderr => run.stderr,
    }
}

fn regex_capture(regex: &Regex, stream: Stream, run: &StepRun) -> Result<String, (String, String)> {
    let text = stream_text(run, stream);
    let name = stream.name();
    let found = regex
        .captures(text)
        .and_then(|caps| caps.get(1).or_else(|| caps.get(0)))
        .map(|m| m.as_str().to_string());
    found.ok_or_else(|| {
        (
            format!("{name} matching /{}/", regex.as_str()),
            show::stream(name, text),
        )
    })
}

#[cfg(test)]
mod tests;
