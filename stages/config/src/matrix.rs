//! `[matrix]`: one test file, one test per combination of the listed values
//! (docs/reference.md §4). Each combination is a [`MatrixInstance`]: its values become
//! template variables and its label (`[os=a,ver=1]`) joins the test's name and identity.
//!
//! Why the matrix is read from the template's own text, before rendering: the values are
//! inputs of the render, so they must be known before it (rendering once to find them would
//! render with the variables undefined, and a template that uses them would fail). So the
//! `[matrix]` table, and its `[[matrix.exclude]]` tables, must be plain TOML in the template:
//! the lines from its header to the next table header are parsed on their own, at their
//! place in the file, so every error names the template's own line and column.

use serde::{Deserialize, Serialize};
use toml_edit::{ImDocument, Item, Value};

use crate::walk::{did_you_mean, fields, index, Ctx, Field};
use crate::Diagnostic;

/// One combination of a `[matrix]`: each variable and its value as text, variables sorted.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct MatrixInstance {
    pub values: Vec<(String, String)>,
}

impl MatrixInstance {
    /// `[os=a,ver=1]`: what is appended to the test's name and identity.
    pub fn label(&self) -> String {
        let pairs: Vec<String> = self
            .values
            .iter()
            .map(|(key, value)| format!("{key}={value}"))
            .collect();
        format!("[{}]", pairs.join(","))
    }
}

/// A value of a matrix variable: its kind and its text, so `1` and `"1"` differ.
#[derive(Debug, Clone, PartialEq, Eq)]
struct MatrixValue {
    kind: &'static str,
    text: String,
}

impl MatrixValue {
    fn of(value: &Value) -> Option<MatrixValue> {
        let (kind, text) = match value {
            Value::String(s) => ("string", s.value().clone()),
            Value::Integer(i) => ("integer", i.value().to_string()),
            Value::Boolean(b) => ("boolean", b.value().to_string()),
            _ => return None,
        };
        Some(MatrixValue { kind, text })
    }

    /// As written in TOML, for messages.
    fn shown(&self) -> String {
        if self.kind == "string" {
            format!("{:?}", self.text)
        } else {
            self.text.clone()
        }
    }
}

/// More combinations than this is a mistake (each is a test with its own containers), and
/// the expansion must stay bounded whatever a file says.
const MAX_COMBINATIONS: usize = 1000;

/// The combinations of the `[matrix]` in `source` (a test file's text, before rendering),
/// in a stable order: variables sorted by name, each one's values in file order, the last
/// variable varying fastest. `Ok(None)` when the file has no `[matrix]`.
pub fn read_matrix(
    file: &str,
    source: &str,
) -> Result<Option<Vec<MatrixInstance>>, Vec<Diagnostic>> {
    read_masked(file, source).map_err(|mut diags| {
        // Positions are the file's, but the masked text blanked the lines outside
        // [matrix]: a syntax error running into the next table must show that line.
        for d in &mut diags {
            if let (Some((line, _)), Some(shown)) = (d.line_col, d.line_text.as_mut()) {
                let real = source.lines().nth(line.saturating_sub(1)).unwrap_or("");
                *shown = real
                    .trim_end_matches('\r')
                    .chars()
                    .take(crate::diag::MAX_LINE_TEXT)
                    .collect();
            }
        }
        diags
    })
}

fn read_masked(file: &str, source: &str) -> Result<Option<Vec<MatrixInstance>>, Vec<Diagnostic>> {
    let Some(masked) = matrix_lines(source) else {
        return Ok(None);
    };
    let mut ctx = Ctx::new(file, &masked, false, false);
    let doc = match ImDocument::parse(masked.as_str()) {
        Ok(doc) => doc,
        Err(e) => {
            ctx.syntax_error(&e, false);
            let mut diags = ctx.into_sorted();
            for d in &mut diags {
                d.hint = Some(
                    "[matrix] is read before the template renders, so it must be plain TOML \
                     (strings, integers or booleans)"
                        .to_string(),
                );
            }
            return Err(diags);
        }
    };
    let Some((header_key, table)) = doc
        .as_table()
        .get_key_value("matrix")
        .and_then(|(k, item)| Some((k, item.as_table_like()?)))
    else {
        return Ok(None);
    };
    let header = header_key.span();
    let mut variables: Vec<(String, Vec<MatrixValue>)> = Vec::new();
    let mut exclude = None;
    for f in fields(table, "matrix") {
        if f.key == "exclude" {
            exclude = Some(f);
            continue;
        }
        if let Some(values) = variable(&mut ctx, &f) {
            variables.push((f.key.to_string(), values));
        }
    }
    variables.sort_by(|a, b| a.0.cmp(&b.0));
    if variables.is_empty() && !ctx.has_errors() {
        ctx.error_hint(
            "matrix",
            &header,
            "[matrix] lists no variable, so it would expand to no test",
            "list each variable's values: os = [\"a\", \"b\"]",
        );
    }
    let excluded = exclude
        .map(|f| exclusions(&mut ctx, &f, &variables))
        .unwrap_or_default();
    let count = variables
        .iter()
        .fold(1usize, |n, (_, values)| n.saturating_mul(values.len()));
    if count > MAX_COMBINATIONS {
        ctx.error_hint(
            "matrix",
            &header,
            format!("[matrix] has {count} combinations, more than {MAX_COMBINATIONS}"),
            "split the file, or list fewer values",
        );
    }
    if ctx.has_errors() {
        return Err(ctx.into_sorted());
    }
    let instances: Vec<MatrixInstance> = combinations(&variables)
        .into_iter()
        .filter(|combo| !excluded.iter().any(|rule| matches(rule, combo)))
        .map(|combo| MatrixInstance {
            values: combo
                .into_iter()
                .map(|(key, value)| (key.to_string(), value.text.clone()))
                .collect(),
        })
        .collect();
    if instances.is_empty() {
        ctx.error_hint(
            "matrix.exclude",
            &header,
            "every combination of [matrix] is excluded, so it would expand to no test",
            "remove an `exclude` entry",
        );
        return Err(ctx.into_sorted());
    }
    Ok(Some(instances))
}

/// `source` with every line outside the `[matrix]` table (and its sub-tables) blanked, so
/// positions in it are positions in the file; `None` without a `[matrix]` header.
fn matrix_lines(source: &str) -> Option<String> {
    // Most files have none: a scan for the header's text spares the line walk.
    if !source.contains("[matrix") {
        return None;
    }
    let mut inside = false;
    let mut found = false;
    let mut out = String::with_capacity(source.len());
    for line in source.split_inclusive('\n') {
        if let Some(header) = table_header(line) {
            inside = header == "matrix" || header.starts_with("matrix.");
            found |= inside;
        }
        if inside {
            out.push_str(line);
        } else if line.ends_with('\n') {
            out.push('\n');
        }
    }
    found.then_some(out)
}

/// The table name of a `[name]` or `[[name]]` header line (spaces removed), else `None`.
fn table_header(line: &str) -> Option<String> {
    let code = line.split('#').next().unwrap_or("").trim();
    let inner = code.strip_prefix('[')?.strip_suffix(']')?;
    let inner = inner
        .strip_prefix('[')
        .and_then(|i| i.strip_suffix(']'))
        .unwrap_or(inner);
    let starts_like_a_key = inner
        .trim_start()
        .starts_with(|c: char| c.is_ascii_alphabetic() || c == '_' || c == '"' || c == '\'');
    starts_like_a_key.then(|| inner.chars().filter(|c| !c.is_whitespace()).collect())
}

/// One variable's values: a non-empty array of distinct strings, integers or booleans.
fn variable(ctx: &mut Ctx, f: &Field) -> Option<Vec<MatrixValue>> {
    let is_identifier = f
        .key
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && f.key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !is_identifier {
        ctx.error_hint(
            &f.path,
            &f.span,
            format!(
                "matrix variable `{}` is not a template variable name",
                f.key
            ),
            "use letters, digits and `_`, starting with a letter",
        );
        return None;
    }
    let Some(array) = f.item.as_array() else {
        ctx.value_error(
            f,
            format!(
                "expected an array of values, found {}",
                crate::walk::kind(f.item)
            ),
        );
        return None;
    };
    if array.is_empty() {
        ctx.value_error(
            f,
            format!(
                "`{}` has no value, so [matrix] would expand to no test",
                f.key
            ),
        );
        return None;
    }
    let mut values: Vec<MatrixValue> = Vec::new();
    let errors = ctx.error_count();
    for (i, element) in array.iter().enumerate() {
        let path = index(&f.path, i);
        match MatrixValue::of(element) {
            Some(value) if values.contains(&value) => ctx.error(
                &path,
                &element.span(),
                format!("{} is listed twice in `{}`", value.shown(), f.key),
            ),
            Some(value) => values.push(value),
            None => ctx.error(
                &path,
                &element.span(),
                format!(
                    "a matrix value is a string, an integer or a boolean, found {}",
                    crate::walk::kind(&Item::Value(element.clone()))
                ),
            ),
        }
    }
    (ctx.error_count() == errors).then_some(values)
}

/// The `exclude` entries: each a table naming some variables and one of their values.
fn exclusions(
    ctx: &mut Ctx,
    f: &Field,
    variables: &[(String, Vec<MatrixValue>)],
) -> Vec<Vec<(String, MatrixValue)>> {
    let names: Vec<&str> = variables.iter().map(|(name, _)| name.as_str()).collect();
    let mut rules = Vec::new();
    for (path, entry, span) in ctx.table_list(f) {
        let mut rule = Vec::new();
        for g in fields(entry, &path) {
            let Some((_, allowed)) = variables.iter().find(|(name, _)| name == g.key) else {
                let hint = match did_you_mean(g.key, &names) {
                    Some(best) => format!("did you mean `{best}`?"),
                    None => format!("the matrix variables are: {}", names.join(", ")),
                };
                ctx.error_hint(
                    &g.path,
                    &g.span,
                    format!(
                        "`exclude` names `{}`, which is not a matrix variable",
                        g.key
                    ),
                    hint,
                );
                continue;
            };
            let value = g.item.as_value().and_then(MatrixValue::of);
            match value {
                Some(value) if allowed.contains(&value) => rule.push((g.key.to_string(), value)),
                _ => {
                    let listed: Vec<String> = allowed.iter().map(MatrixValue::shown).collect();
                    let written = crate::walk::scalar_text(g.item)
                        .unwrap_or_else(|| crate::walk::kind(g.item).to_string());
                    ctx.value_error_hint(
                        &g,
                        format!(
                            "`exclude` gives `{}` = {written}, which is not one of its values",
                            g.key
                        ),
                        format!("`{}` is one of: {}", g.key, listed.join(", ")),
                    );
                }
            }
        }
        if rule.is_empty() && !ctx.has_errors() {
            ctx.error(&path, &span, "an `exclude` entry names no variable");
        }
        rules.push(rule);
    }
    rules
}

fn matches(rule: &[(String, MatrixValue)], combo: &[(&str, &MatrixValue)]) -> bool {
    rule.iter().all(|(key, value)| {
        combo
            .iter()
            .any(|(name, chosen)| name == key && *chosen == value)
    })
}

/// Every combination, the last variable varying fastest.
fn combinations(variables: &[(String, Vec<MatrixValue>)]) -> Vec<Vec<(&str, &MatrixValue)>> {
    let mut out: Vec<Vec<(&str, &MatrixValue)>> = vec![Vec::new()];
    for (name, values) in variables {
        out = out
            .into_iter()
            .flat_map(|prefix| {
                values.iter().map(move |value| {
                    let mut combo = prefix.clone();
                    combo.push((name.as_str(), value));
                    combo
                })
            })
            .collect();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(source: &str) -> Vec<String> {
        read_matrix("t.toml.tera", source)
            .unwrap()
            .unwrap()
            .iter()
            .map(MatrixInstance::label)
            .collect()
    }

    fn errors(source: &str) -> Vec<Diagnostic> {
        read_matrix("t.toml.tera", source).unwrap_err()
    }

    #[test]
    fn two_by_two_minus_one_is_three_in_a_stable_order() {
        let source = "[meta]\nname = \"{{ os }}\"\n[matrix]\nver = [1, 2]\nos = [\"b\", \"a\"]\nexclude = [{ os = \"a\", ver = 1 }]\n[[steps]]\nname = \"x\"\n";
        assert_eq!(
            labels(source),
            ["[os=b,ver=1]", "[os=b,ver=2]", "[os=a,ver=2]"]
        );
    }

    #[test]
    fn exclude_tables_and_multiline_arrays_are_read() {
        let source = "[matrix]\nos = [\n  \"a\",\n  \"b\",\n]\n[[matrix.exclude]]\nos = \"b\"\n[meta]\nname = \"{{ x }}\"\n";
        assert_eq!(labels(source), ["[os=a]"]);
    }

    #[test]
    fn no_matrix_is_none() {
        assert_eq!(read_matrix("t", "[meta]\nname = \"a\"\n").unwrap(), None);
    }

    #[test]
    fn errors_name_the_line_and_column() {
        let d = errors("[meta]\nname = \"a\"\n[matrix]\nos = \"a\"\n");
        assert_eq!(d[0].line_col, Some((4, 6)));
        assert!(d[0].message.contains("expected an array"), "{d:?}");

        let d = errors("[matrix]\nos = [\"a\", \"b\"]\nexclude = [{ oss = \"a\" }]\n");
        assert_eq!(d[0].line_col, Some((3, 14)));
        assert_eq!(d[0].hint.as_deref(), Some("did you mean `os`?"));

        let d = errors("[matrix]\nos = [\"a\", \"b\"]\nexclude = [{ os = \"c\" }]\n");
        assert!(
            d[0].message.contains("`os` = c, which is not one of"),
            "{d:?}"
        );
        assert_eq!(d[0].hint.as_deref(), Some("`os` is one of: \"a\", \"b\""));

        let d = errors("[matrix]\nos = [\"a\"]\nexclude = [{ os = \"a\" }]\n");
        assert!(d[0].message.contains("every combination"), "{d:?}");
        assert_eq!(d[0].line_col, Some((1, 2)));

        let d = errors("[matrix]\nos = []\n");
        assert!(d[0].message.contains("has no value"), "{d:?}");

        let d = errors("[matrix]\nos = [\"{{ x }}\", {{ y }}]\n");
        assert_eq!(d[0].line_col.map(|(line, _)| line), Some(2));
        assert!(d[0].hint.as_deref().unwrap().contains("plain TOML"));
    }

    #[test]
    fn a_matrix_too_large_to_run_is_refused_before_it_is_expanded() {
        let values: Vec<String> = (0..100).map(|i| i.to_string()).collect();
        let line = format!("[{}]", values.join(", "));
        let source = format!("[matrix]\na = {line}\nb = {line}\nc = {line}\nd = {line}\n");
        let d = errors(&source);
        assert!(d[0].message.contains("100000000 combinations"), "{d:?}");
    }

    #[test]
    fn an_integer_and_a_string_of_the_same_text_differ() {
        let d = errors("[matrix]\nver = [1, 2]\nexclude = [{ ver = \"1\" }]\n");
        assert!(d[0].message.contains("not one of its values"), "{d:?}");
    }
}
