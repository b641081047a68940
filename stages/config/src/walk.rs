//! The machinery shared by the test and project parsers: a context that turns spans into
//! located diagnostics, typed readers over `toml_edit` items, key paths, and "did you mean".
//! It knows no clnrm key: which keys exist and what they mean is the parsers' business.

use std::collections::BTreeMap;
use std::ops::Range;

use toml_edit::{Item, TableLike, Value};

use crate::diag::LineIndex;
use crate::{Diagnostic, Severity};

pub(crate) type Span = Option<Range<usize>>;

/// Collects the diagnostics of one file.
pub(crate) struct Ctx<'a> {
    pub file: &'a str,
    pub text: &'a str,
    index: Option<LineIndex>,
    rendered: bool,
    strict: bool,
    diags: Vec<Diagnostic>,
    errors: usize,
}

impl<'a> Ctx<'a> {
    pub fn new(file: &'a str, text: &'a str, rendered: bool, strict: bool) -> Self {
        Ctx {
            file,
            text,
            index: None,
            rendered,
            strict,
            diags: Vec::new(),
            errors: 0,
        }
    }

    fn make(&mut self, severity: Severity, path: &str, span: &Span, message: String) -> Diagnostic {
        let mut d = Diagnostic {
            severity,
            file: self.file.to_string(),
            key_path: (!path.is_empty()).then(|| path.to_string()),
            line_col: None,
            line_text: None,
            message,
            hint: None,
        };
        if let Some(span) = span {
            let text = self.text;
            let index = self.index.get_or_insert_with(|| LineIndex::new(text));
            let (lc, line) = index.locate_span(text, span);
            d.line_col = Some(lc);
            d.line_text = Some(line);
            if self.rendered {
                d.message.push_str(" (in the rendered template)");
            }
        }
        d
    }

    fn push(&mut self, d: Diagnostic) {
        self.errors += usize::from(d.is_error());
        self.diags.push(d);
    }

    /// Errors so far; compare two readings to learn whether a part of the file was valid.
    pub fn error_count(&self) -> usize {
        self.errors
    }

    pub fn error(&mut self, path: &str, span: &Span, message: impl Into<String>) {
        let d = self.make(Severity::Error, path, span, message.into());
        self.push(d);
    }

    pub fn error_hint(
        &mut self,
        path: &str,
        span: &Span,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) {
        let mut d = self.make(Severity::Error, path, span, message.into());
        d.hint = Some(hint.into());
        self.push(d);
    }

    /// An error at a field's value (a wrong type or a bad value).
    pub fn value_error(&mut self, f: &Field, message: impl Into<String>) {
        self.error(&f.path, &value_span(f), message);
    }

    pub fn value_error_hint(
        &mut self,
        f: &Field,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) {
        self.error_hint(&f.path, &value_span(f), message, hint);
    }

    /// A warning that `--strict` does not escalate (a known key this version ignores).
    pub fn note_ignored(&mut self, path: &str, span: &Span, message: impl Into<String>) {
        let d = self.make(Severity::Warning, path, span, message.into());
        self.push(d);
    }

    /// A warning with a hint that `--strict` does not escalate (the key is known and used,
    /// but its value is likely a mistake).
    pub fn warning_hint(
        &mut self,
        path: &str,
        span: &Span,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) {
        let mut d = self.make(Severity::Warning, path, span, message.into());
        d.hint = Some(hint.into());
        self.push(d);
    }

    /// An unknown key: a warning, an error under `--strict`, with "did you mean" when one of
    /// `known` is close.
    pub fn unknown_key(&mut self, path: &str, key: &str, span: &Span, known: &[&str]) {
        let severity = if self.strict {
            Severity::Error
        } else {
            Severity::Warning
        };
        let mut d = self.make(severity, path, span, format!("unknown key `{key}`"));
        d.hint = Some(match did_you_mean(key, known) {
            Some(best) => format!("did you mean `{best}`?"),
            None if known.is_empty() => "remove it".to_string(),
            None => format!("known keys here: {}", known.join(", ")),
        });
        self.push(d);
    }

    /// The file is not TOML. Text that is not from a template but looks like one gets a hint
    /// to name it `.clnrm.toml.tera`.
    pub fn syntax_error(&mut self, e: &toml_edit::TomlError, rendered: bool) {
        let message = format!(
            "invalid TOML: {}",
            e.message()
                .trim()
                .lines()
                .map(str::trim)
                .collect::<Vec<_>>()
                .join("; ")
        );
        let looks_like_template = self.text.contains("{{") || self.text.contains("{%");
        if !rendered && looks_like_template {
            self.error_hint(
                "",
                &e.span(),
                message,
                "this looks like a template; name it `.clnrm.toml.tera`",
            );
        } else {
            self.error("", &e.span(), message);
        }
    }

    pub fn has_errors(&self) -> bool {
        self.errors > 0
    }

    /// All diagnostics, ordered by position in the file (unlocated ones last, in found order).
    pub fn into_sorted(mut self) -> Vec<Diagnostic> {
        self.diags
            .sort_by_key(|d| d.line_col.unwrap_or((usize::MAX, usize::MAX)));
        self.diags
    }
}

/// Appends `key` to a key path, quoting it when it is not a bare TOML key.
pub(crate) fn join(parent: &str, key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    let key = if bare {
        key.to_string()
    } else {
        format!("{key:?}")
    };
    if parent.is_empty() {
        key
    } else {
        format!("{parent}.{key}")
    }
}

pub(crate) fn index(parent: &str, i: usize) -> String {
    format!("{parent}[{i}]")
}

/// One key of a table, with where it is.
pub(crate) struct Field<'t> {
    pub key: &'t str,
    pub path: String,
    /// The key's span, else the value's.
    pub span: Span,
    pub item: &'t Item,
}

/// The entries of a table in document order.
pub(crate) fn fields<'t>(table: &'t dyn TableLike, path: &str) -> Vec<Field<'t>> {
    table
        .iter()
        .filter(|(_, item)| !item.is_none())
        .map(|(key, item)| {
            let key_span = table.get_key_value(key).and_then(|(k, _)| k.span());
            Field {
                key,
                path: join(path, key),
                span: key_span.or_else(|| item.span()),
                item,
            }
        })
        .collect()
}

pub(crate) fn kind(item: &Item) -> &'static str {
    match item {
        Item::None => "nothing",
        Item::Value(Value::String(_)) => "a string",
        Item::Value(Value::Integer(_)) => "an integer",
        Item::Value(Value::Float(_)) => "a float",
        Item::Value(Value::Boolean(_)) => "a boolean",
        Item::Value(Value::Datetime(_)) => "a date-time",
        Item::Value(Value::Array(_)) => "an array",
        Item::Value(Value::InlineTable(_)) | Item::Table(_) => "a table",
        Item::ArrayOfTables(_) => "an array of tables",
    }
}

/// Where a field's value is (for type errors), falling back to the key.
pub(crate) fn value_span(f: &Field) -> Span {
    f.item.span().or_else(|| f.span.clone())
}

impl Ctx<'_> {
    fn type_error(&mut self, f: &Field, expected: &str) {
        self.value_error(f, format!("expected {expected}, found {}", kind(f.item)));
    }

    /// The field's value read by `read`, or a type error saying it should be `expected`.
    fn typed<'t, T>(
        &mut self,
        f: &Field<'t>,
        read: impl FnOnce(&'t Item) -> Option<T>,
        expected: &str,
    ) -> Option<T> {
        let value = read(f.item);
        if value.is_none() {
            self.type_error(f, expected);
        }
        value
    }

    /// `checked`'s value, or its error reported at the field's value.
    pub fn checked<T>(&mut self, f: &Field, checked: Result<T, String>) -> Option<T> {
        match checked {
            Ok(value) => Some(value),
            Err(message) => {
                self.value_error(f, message);
                None
            }
        }
    }

    pub fn string(&mut self, f: &Field) -> Option<String> {
        self.typed(f, |item| item.as_str().map(str::to_string), "a string")
    }

    /// A string that is not blank; `what` names it in the error ("the image name is empty").
    pub fn non_blank_string(&mut self, f: &Field, what: &str) -> Option<String> {
        let text = self.string(f)?;
        if text.trim().is_empty() {
            self.value_error(f, format!("the {what} is empty"));
            return None;
        }
        Some(text)
    }

    pub fn boolean(&mut self, f: &Field) -> Option<bool> {
        self.typed(f, Item::as_bool, "a boolean (true or false)")
    }

    pub fn integer(&mut self, f: &Field) -> Option<i64> {
        self.typed(f, Item::as_integer, "an integer")
    }

    /// A non-negative integer that fits `u64`.
    pub fn unsigned(&mut self, f: &Field) -> Option<u64> {
        let i = self.integer(f)?;
        match u64::try_from(i) {
            Ok(u) => Some(u),
            Err(_) => {
                self.value_error(f, format!("must not be negative (found {i})"));
                None
            }
        }
    }

    pub fn table<'t>(&mut self, f: &Field<'t>) -> Option<&'t dyn TableLike> {
        self.typed(f, Item::as_table_like, "a table")
    }

    /// A duration string ("10s"), in milliseconds.
    pub fn duration(&mut self, f: &Field) -> Option<u64> {
        if f.item.as_integer().is_some() {
            self.value_error_hint(
                f,
                "a duration needs a unit",
                "write it as a string with a unit, e.g. \"10s\" or \"500ms\"",
            );
            return None;
        }
        let text = self.string(f)?;
        self.checked(f, crate::parse_duration_ms(&text))
    }

    /// An array of strings (argv, lists of names).
    pub fn string_array(&mut self, f: &Field) -> Option<Vec<String>> {
        let Some(array) = f.item.as_array() else {
            self.type_error(f, "an array of strings");
            return None;
        };
        let mut out = Vec::with_capacity(array.len());
        let mut ok = true;
        for (i, v) in array.iter().enumerate() {
            match v.as_str() {
                Some(s) => out.push(s.to_string()),
                None => {
                    ok = false;
                    self.error(
                        &index(&f.path, i),
                        &v.span(),
                        format!("expected a string, found {}", kind(&Item::Value(v.clone()))),
                    );
                }
            }
        }
        ok.then_some(out)
    }

    /// A table of scalar values (env maps, vars); numbers and booleans become their text.
    pub fn string_map(&mut self, f: &Field) -> Option<BTreeMap<String, String>> {
        let table = self.table(f)?;
        let mut out = BTreeMap::new();
        let mut ok = true;
        for e in fields(table, &f.path) {
            match scalar_text(e.item) {
                Some(s) => {
                    out.insert(e.key.to_string(), s);
                }
                None => {
                    ok = false;
                    self.type_error(&e, "a string, number or boolean");
                }
            }
        }
        ok.then_some(out)
    }

    /// The tables of an array of tables (`[[x]]`) or of an array of inline tables (`x = [{..}]`),
    /// each with its key path and span.
    pub fn table_list<'t>(&mut self, f: &Field<'t>) -> Vec<(String, &'t dyn TableLike, Span)> {
        let mut out: Vec<(String, &'t dyn TableLike, Span)> = Vec::new();
        match f.item {
            Item::ArrayOfTables(tables) => {
                for (i, t) in tables.iter().enumerate() {
                    out.push((index(&f.path, i), t as &dyn TableLike, t.span()));
                }
            }
            Item::Value(Value::Array(array)) => {
                for (i, v) in array.iter().enumerate() {
                    let path = index(&f.path, i);
                    match v.as_inline_table() {
                        Some(t) => out.push((path, t as &dyn TableLike, v.span())),
                        None => self.error(
                            &path,
                            &v.span(),
                            format!("expected a table, found {}", kind(&Item::Value(v.clone()))),
                        ),
                    }
                }
            }
            _ => self.type_error(f, "an array of tables"),
        }
        out
    }
}

pub(crate) fn scalar_text(item: &Item) -> Option<String> {
    match item {
        Item::Value(Value::String(s)) => Some(s.value().clone()),
        Item::Value(Value::Integer(i)) => Some(i.value().to_string()),
        Item::Value(Value::Float(x)) => Some(x.value().to_string()),
        Item::Value(Value::Boolean(b)) => Some(b.value().to_string()),
        Item::Value(Value::Datetime(d)) => Some(d.value().to_string()),
        _ => None,
    }
}

/// The closest of `known` to `key`, if it is close enough to be a plausible typo.
pub(crate) fn did_you_mean<'k>(key: &str, known: &[&'k str]) -> Option<&'k str> {
    // Keys are short; a pathological one gets no suggestion rather than a slow one.
    if key.len() > 64 {
        return None;
    }
    let lower = key.to_ascii_lowercase();
    let mut best: Option<(usize, &'k str)> = None;
    for &cand in known {
        let d = strsim::levenshtein(&lower, cand);
        let close = d <= 2.max(cand.len() / 3)
            || (cand.len() >= 3 && (lower.starts_with(cand) || cand.starts_with(&lower)));
        let better = match best {
            Some((bd, _)) => d < bd,
            None => true,
        };
        if close && better {
            best = Some((d, cand));
        }
    }
    best.map(|(_, c)| c)
}
