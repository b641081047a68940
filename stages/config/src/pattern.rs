//! Regex patterns of a test (`expected_output_regex`, `expected_stderr_regex`): reads one from
//! a field and checks it compiles, with the regex crate's error on one line. It evaluates no
//! pattern against output; the exec stage does that.

use crate::walk::{Ctx, Field};

/// A string field holding a valid regex.
pub(crate) fn regex(ctx: &mut Ctx, f: &Field) -> Option<String> {
    let pattern = ctx.string(f)?;
    // A captured value stands for itself (it is escaped when substituted); any literal
    // text shows how the pattern parses around it.
    let checkable = clnrm_judge::captures::substitute(&pattern, &|_| Some("x".to_string()))
        .unwrap_or_else(|_| pattern.clone());
    let checked = check_regex(&checkable)
        .map(|()| pattern)
        .map_err(|e| format!("invalid regex: {}", regex_error(&e)));
    ctx.checked(f, checked)
}

/// Whether `regex::Regex::new(pattern)` would succeed, without paying for compilation when the
/// syntax check settles it: only counted repetitions and long patterns can exceed the compiled
/// size limit, so only those are compiled.
fn check_regex(pattern: &str) -> Result<(), String> {
    regex_syntax::Parser::new()
        .parse(pattern)
        .map_err(|e| e.to_string())?;
    if pattern.contains('{') || pattern.len() > 512 {
        regex::Regex::new(pattern).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// The regex crate's error, on one line: its "error: ..." line names the cause.
fn regex_error(text: &str) -> String {
    match text.lines().find_map(|l| l.trim().strip_prefix("error: ")) {
        Some(cause) => {
            let excerpt: Vec<&str> = text.lines().skip(1).take(2).map(str::trim_end).collect();
            match excerpt.as_slice() {
                [pattern, caret] if caret.trim_start().starts_with('^') => {
                    format!("{cause} at `{}`", pointed(pattern, caret))
                }
                _ => cause.to_string(),
            }
        }
        None => text.lines().map(str::trim).collect::<Vec<_>>().join(" "),
    }
}

/// The part of `pattern` a `^^^` caret line points at.
fn pointed(pattern: &str, caret: &str) -> String {
    let start = caret.find('^').unwrap_or(0);
    let len = caret[start..].chars().take_while(|&c| c == '^').count();
    pattern.chars().skip(start).take(len.max(1)).collect()
}
