//! `[expect]` (docs/reference.md §9) and the original's `[otel_validation]` (§14): checked key
//! by key (with the expect stage's own list of valid keys, so "did you mean" works) and then
//! deserialised into its types, so a table that validates is one the runner can evaluate.
//! Unknown kinds are named for the runner's error. Also the warning for an OTLP endpoint at
//! `localhost`. Nothing here evaluates an expectation.

use clnrm_expect::KnownKeys;
use toml_edit::{DocumentMut, Item, TableLike};

use crate::walk::{fields, index, kind, value_span, Ctx, Field};
use crate::ExpectTable;

/// Checks `[expect]`. Returns the judged kinds (when there are any and all are valid) and the
/// key paths of the kinds that cannot be evaluated (`expect.temporal`, unknown kinds).
pub(crate) fn parse_expect(ctx: &mut Ctx, f: &Field) -> (Option<ExpectTable>, Vec<String>) {
    let mut unevaluated = Vec::new();
    let Some(t) = ctx.table(f) else {
        return (None, unevaluated);
    };
    let mut judged = DocumentMut::new();
    let mut valid = true;
    for g in fields(t, &f.path) {
        if !clnrm_expect::KINDS.contains(&g.key) {
            ctx.unknown_key(&g.path, g.key, &g.span, clnrm_expect::KINDS);
            // Recorded even when unknown: a typo must not turn into a silent pass.
            unevaluated.push(g.path.clone());
            continue;
        }
        if !(g.item.is_table_like() || g.item.is_array_of_tables() || g.item.is_array()) {
            ctx.value_error(&g, format!("expected a table, found {}", kind(g.item)));
            valid = false;
            continue;
        }
        let errors_before = ctx.error_count();
        check_keys(ctx, &g, &mut vec![g.key]);
        // Each kind on its own, so a type error names its kind and place.
        let mut one = DocumentMut::new();
        one.insert(g.key, normalized(g.item));
        match toml_edit::de::from_str::<clnrm_expect::Expectations>(&one.to_string()) {
            Ok(_) if ctx.error_count() == errors_before => {
                judged.insert(g.key, normalized(g.item));
            }
            Ok(_) => valid = false,
            // A shape the expect stage does not read (the corpus macros' `[[expect.graph]]`
            // with parent/child): the test stays valid and errors at run time naming it.
            Err(e) => {
                ctx.warning_hint(
                    &g.path,
                    &value_span(&g),
                    format!("[{}] cannot be evaluated: {}", g.path, e.message().trim()),
                    "see docs/reference.md §9 for the shapes clnrm evaluates",
                );
                unevaluated.push(g.path.clone());
            }
        }
    }
    let expect = (valid && !judged.is_empty()).then(|| ExpectTable {
        toml: judged.to_string(),
    });
    (expect, unevaluated)
}

/// Checks `[otel_validation]`; returns it as a TOML item for the judged table, when valid.
pub(crate) fn parse_otel_validation(ctx: &mut Ctx, f: &Field) -> Option<Item> {
    ctx.table(f)?;
    let errors_before = ctx.error_count();
    check_keys(ctx, f, &mut vec!["otel_validation"]);
    let mut one = DocumentMut::new();
    one.insert("otel_validation", normalized(f.item));
    match toml_edit::de::from_str::<clnrm_expect::Expectations>(&one.to_string()) {
        Ok(_) if ctx.error_count() == errors_before => Some(normalized(f.item)),
        Ok(_) => None,
        Err(e) => {
            ctx.error(
                &f.path,
                &value_span(f),
                format!("[otel_validation]: {}", e.message().trim()),
            );
            None
        }
    }
}

/// The judged `[expect]` kinds and `[otel_validation]` as one table.
pub(crate) fn judged_table(
    expect: Option<ExpectTable>,
    otel_validation: Option<Item>,
) -> Option<ExpectTable> {
    let Some(item) = otel_validation else {
        return expect;
    };
    let mut doc: DocumentMut = match &expect {
        Some(table) => table.toml.parse().expect("a table this stage wrote parses"),
        None => DocumentMut::new(),
    };
    doc.insert("otel_validation", item);
    Some(ExpectTable {
        toml: doc.to_string(),
    })
}

/// An item as a standalone document holds it: inline tables stay inline, tables keep their
/// entries; positions and comments of the original file are dropped.
fn normalized(item: &Item) -> Item {
    let mut item = item.clone();
    if let Some(t) = item.as_table_mut() {
        t.set_implicit(false);
    }
    item
}

/// Reports keys that are not valid at their place (`known_keys` of the expect stage), walking
/// into tables and arrays of tables whose keys are known.
fn check_keys<'t>(ctx: &mut Ctx, f: &Field<'t>, path: &mut Vec<&'t str>) {
    if clnrm_expect::known_keys(path).is_none() {
        return;
    }
    match f.item {
        Item::ArrayOfTables(tables) => {
            for (i, t) in tables.iter().enumerate() {
                check_table(ctx, t, &index(&f.path, i), path);
            }
        }
        Item::Value(toml_edit::Value::Array(values)) => {
            for (i, v) in values.iter().enumerate() {
                if let Some(t) = v.as_inline_table() {
                    check_table(ctx, t, &index(&f.path, i), path);
                }
            }
        }
        item => {
            if let Some(t) = item.as_table_like() {
                check_table(ctx, t, &f.path, path);
            }
        }
    }
}

fn check_table<'t>(ctx: &mut Ctx, t: &'t dyn TableLike, at: &str, path: &mut Vec<&'t str>) {
    let known = clnrm_expect::known_keys(path);
    for g in fields(t, at) {
        if let Some(KnownKeys::Listed(keys)) = known {
            if !keys.contains(&g.key) {
                ctx.unknown_key(&g.path, g.key, &g.span, keys);
                continue;
            }
        }
        path.push(g.key);
        check_keys(ctx, &g, path);
        path.pop();
    }
}

/// Warns when `value` sends OTLP to `localhost:4318`/`4317`: inside a container that is the
/// container itself, so the spans would never reach clnrm's receiver.
pub(crate) fn warn_local_collector(ctx: &mut Ctx, f: &Field, value: &str) {
    let lower = value.to_ascii_lowercase();
    let local = ["localhost", "127.0.0.1", "[::1]"].iter().any(|host| {
        [":4318", ":4317"]
            .iter()
            .any(|port| lower.contains(&format!("{host}{port}")))
    });
    if local {
        ctx.warning_hint(
            &f.path,
            &value_span(f),
            format!(
                "`{}` points at {value:?}: inside a container, localhost is the container \
                 itself, so its spans never reach clnrm",
                f.key
            ),
            "use http://otel-collector:4318 (or leave it unset: clnrm sets it for every service)",
        );
    }
}
