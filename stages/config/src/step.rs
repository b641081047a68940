//! A test's steps: `[[steps]]` and `[[scenario]]` (a scenario's `run` step and its own
//! steps, with its defaults) to [`StepConfig`]s, then every step checked against the others
//! (unique names) and bound to a declared service. It does not plan or run anything.

use std::collections::BTreeMap;

use toml_edit::TableLike;

use crate::language::{self, note_array_refs, note_refs, note_table_refs, CaptureRef};
use crate::pattern::regex;
use crate::walk::{did_you_mean, fields, join, value_span, Ctx, Field, Span};
use crate::{Attempts, Command, StepConfig};

/// A step before service references are resolved.
pub(crate) struct RawStep {
    step: StepConfig,
    service_span: Span,
    table_span: Span,
    name_span: Span,
    /// Its `${captures.NAME}` references, checked once every step is known.
    pub refs: Vec<CaptureRef>,
    /// Where each of its captures is defined (in `step.captures` order).
    pub capture_spans: Vec<Span>,
}

/// The pattern of every step table's keys (`[[setup]]`, scenario steps, ... have the same).
const STEP_PATTERN: &str = "steps[]";

/// What a scenario sets for all its steps (and a `[[steps]]` step gets none of).
#[derive(Clone, Default)]
pub(crate) struct StepDefaults {
    service: Option<(String, Span)>,
    timeout_ms: Option<u64>,
    env: BTreeMap<String, String>,
    workdir: Option<String>,
}

impl StepDefaults {
    /// A step at `key_path` with these defaults applied (its service is bound later).
    fn step(&self, key_path: &str, name: String, command: Command) -> StepConfig {
        StepConfig {
            workdir: self.workdir.clone(),
            env: self.env.clone(),
            timeout_ms: self.timeout_ms,
            ..StepConfig::at(key_path, name, command)
        }
    }
}

/// Checks step names are unique and binds each step to a service of `declared` (every
/// declared service, valid or not): the one named, or the only one there is.
pub(crate) fn bind_steps(
    ctx: &mut Ctx,
    raw_steps: Vec<RawStep>,
    declared: &BTreeMap<String, String>,
) -> Vec<StepConfig> {
    let names: Vec<&str> = declared.keys().map(String::as_str).collect();
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    let mut out = Vec::with_capacity(raw_steps.len());
    for mut raw in raw_steps {
        let s = &mut raw.step;
        if let Some(first) = seen.get(&s.name) {
            ctx.error(
                &join(&s.key_path, "name"),
                &raw.name_span.clone().or(raw.table_span.clone()),
                format!("duplicate step name `{}` (first used by {first})", s.name),
            );
        } else {
            seen.insert(s.name.clone(), s.key_path.clone());
        }
        match &s.service {
            Some(svc) if !declared.contains_key(svc) => {
                let hint = match (names.is_empty(), did_you_mean(svc, &names)) {
                    (true, _) => "this test declares no services; remove `service` to run \
                                  the step in the default image, or add [service.NAME]"
                        .to_string(),
                    (false, Some(best)) => format!("did you mean `{best}`?"),
                    (false, None) => format!("declared services: {}", names.join(", ")),
                };
                ctx.error_hint(
                    &join(&s.key_path, "service"),
                    &raw.service_span,
                    format!("service `{svc}` is not declared"),
                    hint,
                );
            }
            Some(_) => {}
            None if names.len() == 1 => s.service = Some(names[0].to_string()),
            None if names.len() > 1 => ctx.error_hint(
                &join(&s.key_path, "service"),
                &raw.table_span,
                format!(
                    "the test has several services ({}); say which one runs this step",
                    names.join(", ")
                ),
                format!("add service = \"{}\"", names[0]),
            ),
            None => {}
        }
        out.push(raw.step);
    }
    out
}

/// A non-empty argv.
pub(crate) fn argv(ctx: &mut Ctx, f: &Field) -> Option<Vec<String>> {
    if f.item.as_str().is_some() {
        ctx.value_error_hint(
            f,
            "expected an array of strings (argv), found a string",
            "write command = [\"prog\", \"arg\"], or use run = \"...\" for a shell line",
        );
        return None;
    }
    let v = ctx.string_array(f)?;
    if v.is_empty() {
        ctx.value_error(f, "the command is empty");
        return None;
    }
    Some(v)
}

fn exit_code(ctx: &mut Ctx, f: &Field) -> Option<i32> {
    let code = ctx.integer(f)?;
    match i32::try_from(code) {
        Ok(c) => Some(c),
        Err(_) => {
            ctx.value_error(f, format!("exit code {code} is out of range"));
            None
        }
    }
}

pub(crate) fn parse_step(
    ctx: &mut Ctx,
    path: &str,
    t: &dyn TableLike,
    table_span: Span,
    prefix: Option<&str>,
    defaults: &StepDefaults,
) -> Option<RawStep> {
    let mut name: Option<(String, Span)> = None;
    let mut service: Option<(String, Span)> = defaults.service.clone();
    let mut command: Option<Command> = None;
    let mut step = defaults.step(path, String::new(), Command::Argv(Vec::new()));
    let mut broken = false;
    let mut refs = Vec::new();
    let mut capture_spans = Vec::new();
    // The first of `wait_until` / `retries`, to say the second cannot join it.
    let mut attempts_key: Option<&str> = None;
    let mut should_fail: Option<(bool, String, Span)> = None;
    // The output and exit-code checks written on the step.
    let mut checks: Vec<&str> = Vec::new();
    for f in fields(t, path) {
        match f.key {
            "command" => note_array_refs(ctx, &f, &mut refs),
            "env" => note_table_refs(ctx, &f, &mut refs),
            "run"
            | "expected_output_regex"
            | "expected_stderr_regex"
            | "expected_output_regex_not"
            | "expected_stderr_regex_not" => {
                if let Some(text) = f.item.as_str() {
                    note_refs(ctx, text, &f.path, &value_span(&f), &mut refs);
                }
            }
            _ => {}
        }
        match f.key {
            "name" => {
                name = ctx
                    .non_blank_string(&f, "step name")
                    .map(|n| (n, value_span(&f)))
            }
            "service" => service = ctx.string(&f).map(|s| (s, value_span(&f))),
            "command" | "run" => {
                if command.is_some() {
                    ctx.error_hint(
                        &f.path,
                        &f.span,
                        "the step has both `command` and `run`",
                        "keep one: command = [argv...] runs as is, run = \"...\" runs through sh -c",
                    );
                    broken = true;
                    continue;
                }
                command = if f.key == "run" {
                    ctx.string(&f).map(Command::Shell)
                } else {
                    argv(ctx, &f).map(Command::Argv)
                };
                broken |= command.is_none();
            }
            "expected_exit_code" => {
                checks.push(f.key);
                step.expected_exit_code = exit_code(ctx, &f).unwrap_or(0)
            }
            "expected_output_regex" => {
                checks.push(f.key);
                step.expected_output_regex = regex(ctx, &f)
            }
            "expected_stderr_regex" => {
                checks.push(f.key);
                step.expected_stderr_regex = regex(ctx, &f)
            }
            "workdir" => step.workdir = ctx.string(&f),
            "env" => step.env.extend(ctx.string_map(&f).unwrap_or_default()),
            "timeout" => step.timeout_ms = ctx.duration(&f),
            "timeout_ms" => step.timeout_ms = ctx.unsigned(&f),
            "continue_on_failure" => step.continue_on_failure = ctx.boolean(&f).unwrap_or(false),
            "description" => {
                ctx.string(&f);
            }
            "expected_output_regex_not" => {
                checks.push(f.key);
                step.expected_output_regex_not = regex(ctx, &f)
            }
            "expected_stderr_regex_not" => {
                checks.push(f.key);
                step.expected_stderr_regex_not = regex(ctx, &f)
            }
            "expected_json" => {
                checks.push(f.key);
                let pattern = format!("{STEP_PATTERN}.expected_json");
                step.expected_json = language::expected_json(ctx, &f, &pattern, &mut refs);
            }
            "capture" => {
                let pattern = format!("{STEP_PATTERN}.capture");
                for (c, span) in language::captures(ctx, &f, &pattern, &mut refs) {
                    step.captures.push(c);
                    capture_spans.push(span);
                }
            }
            "wait_until" | "retries" => {
                if let Some(first) = attempts_key {
                    ctx.error_hint(
                        &f.path,
                        &f.span,
                        format!("the step has both `{first}` and `{}`", f.key),
                        "keep one: wait_until polls until the step passes (a plain pass); \
                         retries runs it again after a failure (a pass is then flaky)",
                    );
                    continue;
                }
                attempts_key = Some(f.key);
                let pattern = format!("{STEP_PATTERN}.{}", f.key);
                let attempts = if f.key == "wait_until" {
                    language::wait_until(ctx, &f, &pattern)
                } else {
                    language::retries(ctx, &f, &pattern)
                };
                step.attempts = attempts.unwrap_or(Attempts::Once);
            }
            "should_fail" => {
                if let Some(yes) = ctx.boolean(&f) {
                    should_fail = Some((yes, f.path.clone(), f.span.clone()));
                }
            }
            _ => ctx.unknown_key(&f.path, f.key, &f.span, crate::keys::known("steps[]")),
        }
    }
    if let Some((true, key_path, key_span)) = should_fail {
        // A failing command is judged by its exit code alone: its other checks would
        // never be reached.
        if let Some(other) = checks.first() {
            ctx.error_hint(
                &key_path,
                &key_span,
                format!("`should_fail = true` cannot be combined with `{other}`"),
                "should_fail passes on any non-zero exit; to check the output or a \
                 particular code, drop should_fail and set expected_exit_code",
            );
        }
        step.should_fail = true;
    }
    let name_span = name.as_ref().and_then(|(_, s)| s.clone());
    let base = match name {
        Some((n, _)) => n,
        None => {
            ctx.error(&join(path, "name"), &table_span, "the step has no `name`");
            path.to_string()
        }
    };
    step.name = match prefix {
        Some(p) => format!("{p}/{base}"),
        None => base,
    };
    match command {
        Some(c) => step.command = c,
        None if !broken => {
            ctx.error_hint(
                &join(path, "command"),
                &table_span,
                "the step has no `command` (or `run`)",
                "add command = [\"echo\", \"hi\"] or run = \"echo hi\"",
            );
        }
        None => {}
    }
    let (service, service_span) = match service {
        Some((s, span)) => (Some(s), span),
        None => (None, None),
    };
    step.service = service;
    Some(RawStep {
        step,
        service_span,
        table_span,
        name_span,
        refs,
        capture_spans,
    })
}

/// `artifacts.collect = ["spans:default"]`: the original's request to keep the scenario's
/// spans. clnrm keeps every span a test receives in `.clnrm/spans/`, so `spans:*` asks for
/// what happens anyway; anything else is an error.
fn parse_artifacts(ctx: &mut Ctx, f: &Field) {
    let Some(t) = ctx.table(f) else { return };
    for g in fields(t, &f.path) {
        if g.key != "collect" {
            ctx.unknown_key(&g.path, g.key, &g.span, &["collect"]);
            continue;
        }
        for item in ctx.string_array(&g).unwrap_or_default() {
            if !item.starts_with("spans:") {
                ctx.value_error_hint(
                    &g,
                    format!("artifact {item:?} cannot be collected"),
                    "clnrm collects spans (\"spans:default\"); they are written to .clnrm/spans/",
                );
            }
        }
    }
}

pub(crate) fn parse_scenario(
    ctx: &mut Ctx,
    path: &str,
    t: &dyn TableLike,
    table_span: Span,
    out: &mut Vec<RawStep>,
) {
    let mut name: Option<(String, Span)> = None;
    let mut defaults = StepDefaults::default();
    let mut run: Option<(String, Span)> = None;
    let mut steps_field: Option<Field> = None;
    // Keys that describe the `run` step; they need a `run`.
    let mut run_only: Vec<(String, Span)> = Vec::new();
    let mut expected_exit_code = 0;
    let mut out_regex = None;
    let mut err_regex = None;
    let mut continue_on_failure = false;
    let mut run_broken = false;
    let mut run_refs = Vec::new();
    let fs = fields(t, path);
    for f in &fs {
        match f.key {
            "name" => {
                name = ctx
                    .non_blank_string(f, "scenario name")
                    .map(|n| (n, value_span(f)))
            }
            "service" => defaults.service = ctx.string(f).map(|s| (s, value_span(f))),
            "run" => match ctx.string(f) {
                Some(r) => {
                    note_refs(ctx, &r, &f.path, &value_span(f), &mut run_refs);
                    run = Some((r, value_span(f)))
                }
                None => run_broken = true,
            },
            "steps" => {}
            "timeout_ms" => defaults.timeout_ms = ctx.unsigned(f),
            "timeout" => defaults.timeout_ms = ctx.duration(f),
            "description" => {
                ctx.string(f);
            }
            "workdir" => defaults.workdir = ctx.string(f),
            "env" => defaults.env = ctx.string_map(f).unwrap_or_default(),
            "expected_exit_code" => {
                run_only.push((f.path.clone(), f.span.clone()));
                expected_exit_code = exit_code(ctx, f).unwrap_or(0);
            }
            "expected_output_regex" => {
                run_only.push((f.path.clone(), f.span.clone()));
                out_regex = regex(ctx, f);
            }
            "expected_stderr_regex" => {
                run_only.push((f.path.clone(), f.span.clone()));
                err_regex = regex(ctx, f);
            }
            "continue_on_failure" => {
                run_only.push((f.path.clone(), f.span.clone()));
                continue_on_failure = ctx.boolean(f).unwrap_or(false);
            }
            "expect_success" => {
                if ctx.boolean(f) == Some(false) {
                    ctx.value_error_hint(
                        f,
                        "`expect_success = false` is not supported",
                        "set expected_exit_code to the exit code the command should return",
                    );
                }
            }
            "artifacts" => parse_artifacts(ctx, f),
            _ => ctx.unknown_key(&f.path, f.key, &f.span, crate::keys::known("scenario[]")),
        }
    }
    for f in fs {
        if f.key == "steps" {
            steps_field = Some(f);
        }
    }
    let scenario_name = match name {
        Some((n, _)) => n,
        None => {
            ctx.error(
                &join(path, "name"),
                &table_span,
                "the scenario has no `name`",
            );
            path.to_string()
        }
    };
    let has_steps = steps_field.is_some();
    if let Some((cmd, span)) = run {
        out.push(RawStep {
            step: StepConfig {
                service: defaults.service.as_ref().map(|(s, _)| s.clone()),
                expected_exit_code,
                expected_output_regex: out_regex,
                expected_stderr_regex: err_regex,
                continue_on_failure,
                ..defaults.step(path, scenario_name.clone(), Command::Shell(cmd))
            },
            service_span: defaults.service.as_ref().and_then(|(_, s)| s.clone()),
            table_span: table_span.clone(),
            name_span: span,
            refs: run_refs,
            capture_spans: Vec::new(),
        });
    } else if !run_broken {
        for (p, s) in &run_only {
            ctx.error_hint(
                p,
                s,
                "this key describes a scenario's `run` step, and the scenario has no `run`",
                "move it onto the step it checks",
            );
        }
        if !has_steps {
            ctx.error_hint(
                &join(path, "run"),
                &table_span,
                "the scenario has neither `run` nor `steps`",
                "add run = \"echo hi\" (one sh -c step) or steps = [{ name = \"...\", command = [...] }]",
            );
        }
    }
    if let Some(f) = steps_field {
        for (spath, st, sspan) in ctx.table_list(&f) {
            if let Some(s) = parse_step(ctx, &spath, st, sspan, Some(&scenario_name), &defaults) {
                out.push(s);
            }
        }
    }
}
