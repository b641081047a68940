//! The step keys of the test language (docs/reference.md §13): `wait_until`, `retries`,
//! `capture.NAME`, `expected_json`, and the `${captures.NAME}` references of a step's
//! strings, checked against the captures earlier steps define. It runs nothing: JSONPaths
//! and regexes are only compiled, to be reported with line:col.

use std::collections::BTreeMap;

use clnrm_judge::captures::{references, valid_name};
use clnrm_judge::{parse_json_path, Capture, CaptureSource, JsonCheck, JsonCheckKind, Stream};

use crate::keys::known;
use crate::pattern::regex;
use crate::walk::{did_you_mean, fields, index, join, kind, value_span, Ctx, Field, Span};
use crate::{Attempts, StepConfig};

/// Default `wait_until` interval.
const DEFAULT_INTERVAL_MS: u64 = 500;

/// A `${captures.NAME}` in a step's string, with where it is.
#[derive(Debug, Clone)]
pub(crate) struct CaptureRef {
    name: String,
    path: String,
    span: Span,
}

/// Records the capture references of one string value (`path` at `span`); a malformed one
/// is an error there.
pub(crate) fn note_refs(
    ctx: &mut Ctx,
    text: &str,
    path: &str,
    span: &Span,
    out: &mut Vec<CaptureRef>,
) {
    match references(text) {
        Ok(found) => out.extend(found.into_iter().map(|r| CaptureRef {
            name: r.name,
            path: path.to_string(),
            span: span.clone(),
        })),
        Err((_, why)) => ctx.error(path, span, why),
    }
}

/// The references of each element of an argv array field.
pub(crate) fn note_array_refs(ctx: &mut Ctx, f: &Field, out: &mut Vec<CaptureRef>) {
    for (i, v) in f.item.as_array().into_iter().flatten().enumerate() {
        if let Some(s) = v.as_str() {
            note_refs(ctx, s, &index(&f.path, i), &v.span(), out);
        }
    }
}

/// The references in the values of a table field (`env`).
pub(crate) fn note_table_refs(ctx: &mut Ctx, f: &Field, out: &mut Vec<CaptureRef>) {
    if let Some(t) = f.item.as_table_like() {
        for g in fields(t, &f.path) {
            if let Some(s) = g.item.as_str() {
                note_refs(ctx, s, &g.path, &value_span(&g), out);
            }
        }
    }
}

/// `wait_until = { timeout = "30s", interval = "200ms" }`.
pub(crate) fn wait_until(ctx: &mut Ctx, f: &Field, pattern: &str) -> Option<Attempts> {
    let t = ctx.table(f)?;
    let mut timeout_ms = None;
    let mut interval_ms = DEFAULT_INTERVAL_MS;
    let mut ok = true;
    for g in fields(t, &f.path) {
        match g.key {
            "timeout" => {
                timeout_ms = ctx.duration(&g);
                ok &= timeout_ms.is_some();
            }
            "interval" => match ctx.duration(&g) {
                Some(0) => {
                    ctx.value_error(&g, "the interval must be greater than 0");
                    ok = false;
                }
                Some(ms) => interval_ms = ms,
                None => ok = false,
            },
            _ => ctx.unknown_key(&g.path, g.key, &g.span, known(pattern)),
        }
    }
    match timeout_ms {
        Some(timeout_ms) if ok => Some(Attempts::WaitUntil {
            timeout_ms,
            interval_ms,
        }),
        None if ok => {
            ctx.error_hint(
                &join(&f.path, "timeout"),
                &value_span(f),
                "`wait_until` has no `timeout`: how long to keep polling",
                "write wait_until = { timeout = \"30s\", interval = \"500ms\" }",
            );
            None
        }
        _ => None,
    }
}

/// `retries = 2` or `retries = { count = 2, delay = "500ms" }`.
pub(crate) fn retries(ctx: &mut Ctx, f: &Field, pattern: &str) -> Option<Attempts> {
    if f.item.as_integer().is_some() {
        let count = retry_count(ctx, f)?;
        return Some(Attempts::Retries { count, delay_ms: 0 });
    }
    if f.item.as_table_like().is_none() {
        ctx.value_error_hint(
            f,
            format!("expected an integer or a table, found {}", kind(f.item)),
            "write retries = 2, or retries = { count = 2, delay = \"500ms\" }",
        );
        return None;
    }
    let t = ctx.table(f)?;
    let mut count = None;
    let mut delay_ms = 0;
    let mut ok = true;
    for g in fields(t, &f.path) {
        match g.key {
            "count" => {
                count = retry_count(ctx, &g);
                ok &= count.is_some();
            }
            "delay" => match ctx.duration(&g) {
                Some(ms) => delay_ms = ms,
                None => ok = false,
            },
            _ => ctx.unknown_key(&g.path, g.key, &g.span, known(pattern)),
        }
    }
    match count {
        Some(count) if ok => Some(Attempts::Retries { count, delay_ms }),
        None if ok => {
            ctx.error_hint(
                &join(&f.path, "count"),
                &value_span(f),
                "`retries` has no `count`: how many more attempts after a failure",
                "write retries = { count = 2, delay = \"500ms\" }",
            );
            None
        }
        _ => None,
    }
}

fn retry_count(ctx: &mut Ctx, f: &Field) -> Option<u32> {
    let n = ctx.unsigned(f)?;
    match u32::try_from(n) {
        Ok(n) if n <= 100 => Some(n),
        _ => {
            ctx.value_error(f, format!("{n} retries is too many (at most 100)"));
            None
        }
    }
}

/// A JSONPath string field, compiled to check it; the error at the path string.
fn json_path(ctx: &mut Ctx, f: &Field, refs: &mut Vec<CaptureRef>) -> Option<String> {
    let path = ctx.string(f)?;
    note_refs(ctx, &path, &f.path, &value_span(f), refs);
    // A path with a reference is complete only at run time; its shape is checked then.
    if path.contains("${captures.") {
        return Some(path);
    }
    let checked = parse_json_path(&path).map(|_| path);
    ctx.checked(f, checked)
}

/// `expected_json = [ { path = "$.id", exists = true }, ... ]`.
pub(crate) fn expected_json(
    ctx: &mut Ctx,
    f: &Field,
    pattern: &str,
    refs: &mut Vec<CaptureRef>,
) -> Vec<JsonCheck> {
    let element = format!("{pattern}[]");
    let mut out = Vec::new();
    for (path, t, span) in ctx.table_list(f) {
        let mut json_path_text = None;
        let mut checks: Vec<(JsonCheckKind, String, Span)> = Vec::new();
        let mut ok = true;
        for g in fields(t, &path) {
            let check = match g.key {
                "path" => {
                    json_path_text = json_path(ctx, &g, refs);
                    ok &= json_path_text.is_some();
                    continue;
                }
                "exists" => ctx.boolean(&g).map(JsonCheckKind::Exists),
                "count" => ctx.unsigned(&g).map(JsonCheckKind::Count),
                "matches" => {
                    if let Some(s) = g.item.as_str() {
                        note_refs(ctx, s, &g.path, &value_span(&g), refs);
                    }
                    regex(ctx, &g).map(JsonCheckKind::Matches)
                }
                "equals" => equals_value(ctx, &g, refs).map(JsonCheckKind::Equals),
                _ => {
                    ctx.unknown_key(&g.path, g.key, &g.span, known(&element));
                    continue;
                }
            };
            match check {
                Some(c) => checks.push((c, g.path.clone(), g.span.clone())),
                None => ok = false,
            }
        }
        if !ok {
            continue;
        }
        let Some(json_path_text) = json_path_text else {
            ctx.error_hint(
                &join(&path, "path"),
                &span,
                "the `expected_json` entry has no `path`",
                "write { path = \"$.id\", exists = true }",
            );
            continue;
        };
        match checks.len() {
            1 => {
                let (check, _, _) = checks.remove(0);
                out.push(JsonCheck {
                    path: json_path_text,
                    check,
                });
            }
            0 => ctx.error_hint(
                &path,
                &span,
                "the `expected_json` entry says nothing about the nodes",
                "add one of exists = true, equals = VALUE, matches = \"REGEX\", count = N",
            ),
            _ => ctx.error_hint(
                &checks[1].1,
                &checks[1].2,
                "an `expected_json` entry has one of `exists`, `equals`, `matches`, `count`",
                "write one entry per check, each with its own `path`",
            ),
        }
    }
    out
}

/// An `equals` value: any TOML value, kept as JSON text.
fn equals_value(ctx: &mut Ctx, f: &Field, refs: &mut Vec<CaptureRef>) -> Option<String> {
    let json = crate::schema::item_as_json(f.item);
    strings_of(&json, &mut |s| {
        note_refs(ctx, s, &f.path, &value_span(f), refs)
    });
    Some(json.to_string())
}

fn strings_of(v: &serde_json::Value, each: &mut dyn FnMut(&str)) {
    match v {
        serde_json::Value::String(s) => each(s),
        serde_json::Value::Array(a) => a.iter().for_each(|v| strings_of(v, each)),
        serde_json::Value::Object(t) => t.values().for_each(|v| strings_of(v, each)),
        _ => {}
    }
}

/// `capture.NAME = { json = "$.p" }` or `{ regex = '...', from = "stdout" }`, `redact`.
pub(crate) fn captures(
    ctx: &mut Ctx,
    f: &Field,
    pattern: &str,
    refs: &mut Vec<CaptureRef>,
) -> Vec<(Capture, Span)> {
    let element = format!("{pattern}.*");
    let Some(t) = ctx.table(f) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for g in fields(t, &f.path) {
        if !valid_name(g.key) {
            ctx.error(
                &g.path,
                &g.span,
                format!(
                    "`{}` cannot be a capture name: use letters, digits and `_`, not starting \
                     with a digit (it is also the variable CLNRM_CAPTURE_NAME)",
                    g.key
                ),
            );
            continue;
        }
        let Some(c) = ctx.table(&g) else { continue };
        let mut json = None;
        let mut regex_pattern = None;
        let mut from = Stream::Stdout;
        let mut redact = false;
        let mut ok = true;
        for h in fields(c, &g.path) {
            match h.key {
                "json" => {
                    json = json_path(ctx, &h, refs).map(|p| (p, h.span.clone()));
                    ok &= json.is_some();
                }
                "regex" => {
                    regex_pattern = regex(ctx, &h);
                    ok &= regex_pattern.is_some();
                }
                "from" => match ctx.string(&h).as_deref() {
                    Some("stdout") => from = Stream::Stdout,
                    Some("stderr") => from = Stream::Stderr,
                    Some(other) => {
                        ctx.value_error(
                            &h,
                            format!("`from` is \"stdout\" or \"stderr\", not \"{other}\""),
                        );
                        ok = false;
                    }
                    None => ok = false,
                },
                "redact" => redact = ctx.boolean(&h).unwrap_or(false),
                _ => ctx.unknown_key(&h.path, h.key, &h.span, known(&element)),
            }
        }
        if !ok {
            continue;
        }
        let span = g.item.span().or_else(|| g.span.clone());
        let source = match (json, regex_pattern) {
            (Some((path, _)), None) => CaptureSource::Json(path),
            (None, Some(pattern)) => CaptureSource::Regex { pattern, from },
            (Some((_, both)), Some(_)) => {
                ctx.error_hint(
                    &g.path,
                    &both,
                    format!("capture `{}` has both `json` and `regex`", g.key),
                    "keep one: json = \"$.path\" or regex = '...(group)...'",
                );
                continue;
            }
            (None, None) => {
                ctx.error_hint(
                    &g.path,
                    &span,
                    format!("capture `{}` says nowhere to take its value from", g.key),
                    "write { json = \"$.id\" } or { regex = 'id=(\\d+)', from = \"stdout\" }",
                );
                continue;
            }
        };
        out.push((
            Capture {
                name: g.key.to_string(),
                source,
                redact,
            },
            g.span.clone(),
        ));
    }
    out
}

/// Checks every reference of every step (in run order: setup, steps, teardown) names a
/// capture an earlier step defines, and that no two steps define the same name.
pub(crate) fn check_references(ctx: &mut Ctx, steps: &[(&StepConfig, &[CaptureRef], &[Span])]) {
    // Capture name → the step that defines it, and its position in run order.
    let mut defined: BTreeMap<String, (usize, String)> = BTreeMap::new();
    for (i, (step, _, spans)) in steps.iter().enumerate() {
        for (c, span) in step.captures.iter().zip(spans.iter()) {
            let key = c.name.to_ascii_uppercase();
            if let Some((_, first)) = defined.get(&key) {
                ctx.error(
                    &join(&join(&step.key_path, "capture"), &c.name),
                    span,
                    format!("capture `{}` is already defined by step `{first}`", c.name),
                );
            } else {
                defined.insert(key, (i, step.name.clone()));
            }
        }
    }
    for (i, (_, refs, _)) in steps.iter().enumerate() {
        for r in refs.iter() {
            let message = match defined.get(&r.name.to_ascii_uppercase()) {
                Some((j, _)) if j < &i => continue,
                Some((j, _)) if *j == i => format!(
                    "`${{captures.{}}}` is captured by this same step: a step can use only \
                     captures of the steps before it",
                    r.name
                ),
                Some((_, by)) => format!(
                    "`${{captures.{}}}` is captured by step `{by}`, which runs later",
                    r.name
                ),
                None => {
                    let names: Vec<&str> = steps[..i]
                        .iter()
                        .flat_map(|(s, _, _)| s.captures.iter().map(|c| c.name.as_str()))
                        .collect();
                    let hint = match did_you_mean(&r.name, &names) {
                        Some(best) => format!("did you mean `{best}`?"),
                        None if names.is_empty() => {
                            "no earlier step has a capture; add capture.NAME = { json = \"$.id\" } \
                             to the step that prints it"
                                .to_string()
                        }
                        None => format!("earlier steps capture: {}", names.join(", ")),
                    };
                    ctx.error_hint(
                        &r.path,
                        &r.span,
                        format!(
                            "`${{captures.{}}}`: no earlier step captures `{}`",
                            r.name, r.name
                        ),
                        hint,
                    );
                    continue;
                }
            };
            ctx.error(&r.path, &r.span, message);
        }
    }
}
