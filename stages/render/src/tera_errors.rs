//! Tera's errors, mapped back to the user's files: a syntax error's position in the
//! preprocessed text becomes one in the original, and an undefined variable or a
//! failed function or filter call is found in the file that was rendering. Not the
//! error type itself (see `error.rs`).

use crate::error::RenderError;
use crate::pre::Prepared;
use crate::scan::{self, ItemKind, Tok, TokKind};

/// A loaded file as the user wrote it and as it was given to Tera.
#[derive(Clone, Copy)]
pub(crate) struct UnitTexts<'u> {
    pub(crate) src: &'u str,
    pub(crate) prepared: &'u Prepared,
}

/// Finds a loaded file (or the built-in library) by canonical id.
pub(crate) type UnitLookup<'u> = dyn Fn(&str) -> Option<UnitTexts<'u>> + 'u;

/// `e`, raised while rendering `top_id`, as a [`RenderError`] in the user's file.
pub(crate) fn tera_error<'u>(
    e: &tera::Error,
    top_id: &str,
    lookup: &UnitLookup<'u>,
) -> RenderError {
    let chain = error_chain(e);
    if let Some(id) = quoted(&chain[0], "Failed to parse '") {
        return syntax_error(&id, chain.get(1).map_or("", String::as_str), lookup);
    }
    let rendering = chain
        .iter()
        .find_map(|message| quoted(message, "Failed to render '"))
        .unwrap_or_else(|| top_id.to_string());
    for (index, message) in chain.iter().enumerate() {
        if let Some(rest) = message.strip_prefix("Variable `") {
            let Some(end) = rest.find('`') else { continue };
            let in_template =
                quoted(message, "while rendering '").unwrap_or_else(|| rendering.clone());
            return undefined_variable(&rest[..end], &in_template, top_id, lookup);
        }
        for (prefix, construct, is_filter) in [
            ("Function call '", "function call", false),
            ("Filter call '", "filter call", true),
        ] {
            if let Some(name) = quoted(message, prefix) {
                let cause = chain.get(index + 1).map_or("", String::as_str);
                return failed_call(&name, is_filter, construct, cause, &rendering, lookup);
            }
        }
    }
    let src = source_of(lookup, &rendering);
    let deepest = chain.last().cloned().unwrap_or_default();
    let detail = if chain.len() > 1 {
        format!("{}: {deepest}", chain[0])
    } else {
        deepest
    };
    RenderError::at(&rendering, src, None, "render", detail, None)
}

/// The messages of `e` and of its sources, outermost first.
fn error_chain(e: &tera::Error) -> Vec<String> {
    let mut chain = vec![e.to_string()];
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        chain.push(cause.to_string());
        source = cause.source();
    }
    chain
}

/// The text between `prefix` and the next `'` in `message`.
fn quoted(message: &str, prefix: &str) -> Option<String> {
    let start = message.find(prefix)? + prefix.len();
    let end = message[start..].find('\'')? + start;
    Some(message[start..end].to_string())
}

/// The user's text of file `id` (empty when it is not loaded).
fn source_of<'u>(lookup: &UnitLookup<'u>, id: &str) -> &'u str {
    lookup(id).map_or("", |unit| unit.src)
}

/// Where `find` finds something in the user's text of file `id`.
fn locate(
    lookup: &UnitLookup<'_>,
    id: &str,
    find: impl Fn(&str) -> Option<usize>,
) -> Option<usize> {
    lookup(id).and_then(|unit| find(unit.src))
}

/// A parse error of file `id`: pest's ` --> line:col` in the preprocessed text,
/// mapped back to the original.
fn syntax_error(id: &str, pest: &str, lookup: &UnitLookup<'_>) -> RenderError {
    let expected = pest
        .lines()
        .map(str::trim_start)
        .find_map(|line| line.strip_prefix("= "))
        .unwrap_or("invalid syntax")
        .trim()
        .to_string();
    let position = pest.lines().find_map(|line| {
        let rest = line.trim_start().strip_prefix("--> ")?;
        let (line, col) = rest.split_once(':')?;
        Some((
            line.trim().parse::<usize>().ok()?,
            col.trim().parse::<usize>().ok()?,
        ))
    });
    let unit = lookup(id);
    let offset = match (unit, position) {
        (Some(unit), Some((line, col))) => {
            let out = scan::offset_of(&unit.prepared.mapped.text, line, col);
            Some(unit.prepared.mapped.to_orig(out))
        }
        _ => None,
    };
    let src = unit.map_or("", |unit| unit.src);
    RenderError::at(
        id,
        src,
        offset,
        "template syntax",
        format!("template syntax error: {expected}"),
        None,
    )
}

/// Variable path `var` is undefined: found in the template that was rendering,
/// else in the top template.
fn undefined_variable(
    var: &str,
    in_template: &str,
    top_id: &str,
    lookup: &UnitLookup<'_>,
) -> RenderError {
    let mut file = in_template;
    let mut offset = locate(lookup, file, |src| find_path(src, var));
    if offset.is_none() && file != top_id {
        file = top_id;
        offset = locate(lookup, file, |src| find_path(src, var));
    }
    let root = var.split(['.', '[']).next().unwrap_or(var);
    RenderError::at(
        file,
        source_of(lookup, file),
        offset,
        "undefined variable",
        format!("undefined variable `{var}`"),
        Some(format!(
            "define it (--var {root}=..., or [vars] in cleanroom.toml), or write `{var} | default(value=\"...\")`"
        )),
    )
}

/// Function or filter `name` failed with `cause` while rendering `rendering`.
fn failed_call(
    name: &str,
    is_filter: bool,
    construct: &str,
    cause: &str,
    rendering: &str,
    lookup: &UnitLookup<'_>,
) -> RenderError {
    let offset = locate(lookup, rendering, |src| find_call(src, name, is_filter));
    let what = if is_filter {
        format!("filter `{name}` failed")
    } else {
        format!("`{name}()` failed")
    };
    RenderError::at(
        rendering,
        source_of(lookup, rendering),
        offset,
        construct,
        format!("{what}: {cause}"),
        None,
    )
}

/// The tokens of each `{{ }}` and `{% %}` tag of `src` (none when it does not lex).
fn tag_tokens(src: &str) -> Vec<Vec<Tok>> {
    let Ok(items) = scan::scan(src) else {
        return Vec::new();
    };
    items
        .into_iter()
        .filter(|item| matches!(item.kind, ItemKind::Expr | ItemKind::Stmt))
        .map(|item| item.toks)
        .collect()
}

/// Offset of the first use of variable path `path` (`a.b.c`) in a tag of `src`.
fn find_path(src: &str, path: &str) -> Option<usize> {
    for toks in tag_tokens(src) {
        for (index, tok) in toks.iter().enumerate() {
            if tok.kind != TokKind::Ident || (index > 0 && toks[index - 1].is(src, ".")) {
                continue;
            }
            // the longest dotted run from here
            let mut end = tok.end;
            let mut next = index + 1;
            while next + 1 < toks.len()
                && toks[next].is(src, ".")
                && toks[next].start == end
                && toks[next + 1].start == toks[next].end
                && matches!(toks[next + 1].kind, TokKind::Ident | TokKind::Num)
            {
                end = toks[next + 1].end;
                next += 2;
            }
            let run = &src[tok.start..end];
            if run == path || run.starts_with(&format!("{path}.")) {
                return Some(tok.start);
            }
        }
        // inside a string interpolated by the dialect: "{{ path }}"
        for tok in toks.iter().filter(|tok| tok.kind == TokKind::Str) {
            let body = tok.text(src);
            if let Some(open) = body.find("{{") {
                if body[open + 2..].trim_start().starts_with(path) {
                    return Some(tok.start + open);
                }
            }
        }
    }
    None
}

/// Offset of the first call of function `name(` (or use of filter `| name`).
fn find_call(src: &str, name: &str, filter: bool) -> Option<usize> {
    for toks in tag_tokens(src) {
        for (index, tok) in toks.iter().enumerate() {
            if tok.kind != TokKind::Ident || tok.text(src) != name {
                continue;
            }
            let after_pipe = index > 0 && toks[index - 1].is(src, "|");
            let after_ns = index > 0 && toks[index - 1].is(src, "::");
            let called = toks.get(index + 1).is_some_and(|next| next.is(src, "("));
            if (filter && after_pipe) || (!filter && called && !after_pipe && !after_ns) {
                return Some(tok.start);
            }
        }
    }
    None
}
