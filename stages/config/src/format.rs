//! `clnrm fmt`'s layout of a test file: keys in the canonical order of [`crate::keys`] (docs/reference.md
//! §4), one blank line before each table, `key = value` spacing, every comment kept with the
//! key or table it stands above. Pure and idempotent: text in, text out. It changes no value
//! (strings keep their quoting, arrays and inline tables their inside) and checks nothing
//! beyond TOML syntax: a file in the wrong shape is laid out, not judged.

use toml_edit::{ArrayOfTables, Decor, DocumentMut, Item, RawString, Table};

use crate::keys::{child_pattern, table_keys, TableKeys};
use crate::walk::Ctx;
use crate::Diagnostic;

/// `text` in canonical layout; `Err` with the syntax error (naming `file` and its line) when
/// it is not TOML.
pub fn format_test(file: &str, text: &str) -> Result<String, Vec<Diagnostic>> {
    let mut doc: DocumentMut = match text.parse() {
        Ok(doc) => doc,
        Err(e) => {
            let mut ctx = Ctx::new(file, text, false, false);
            ctx.syntax_error(&e, false);
            return Err(ctx.into_sorted());
        }
    };
    let header = take_file_header(&mut doc);
    let mut layout = Layout {
        next_position: 1,
        first: true,
        header,
    };
    let root = doc.as_table_mut();
    root.set_position(0);
    layout.values(root, "");
    layout.children(root, "");
    // Comments after the last line, a blank line below it (none in a file of comments only).
    let trailing = comments(doc.trailing().as_str().unwrap_or(""));
    doc.set_trailing(if trailing.is_empty() || layout.first {
        trailing
    } else {
        format!("\n{trailing}")
    });
    Ok(doc.to_string())
}

/// Lays a document out in canonical order, numbering tables as it goes.
struct Layout {
    next_position: usize,
    /// Nothing is written yet: the next line gets no blank line above it.
    first: bool,
    /// Comments at the top of the file, apart from the first key or table by a blank line,
    /// and `#:` directives: they stay at the top (a `#:schema` line, a licence) whatever
    /// moves below them.
    header: String,
}

impl Layout {
    /// Sorts and spaces `table`'s key-value pairs (`pattern` says which kind of table it is).
    fn values(&mut self, table: &mut Table, pattern: &str) {
        if let Some(known) = table_keys(pattern) {
            table.sort_values_by(|k1, _, k2, _| rank(known, k1.get()).cmp(&rank(known, k2.get())));
        }
        for (mut key, item) in table.iter_mut() {
            let Item::Value(value) = item else { continue };
            let prefix = self.line_prefix(key.leaf_decor().prefix(), false);
            key.leaf_decor_mut().set_prefix(prefix);
            key.leaf_decor_mut().set_suffix(" ");
            let suffix = trailing_comment(value.decor().suffix());
            value.decor_mut().set_prefix(" ");
            value.decor_mut().set_suffix(suffix);
        }
    }

    /// Numbers and lays out `table`'s sub-tables in canonical order, depth first.
    fn children(&mut self, table: &mut Table, pattern: &str) {
        let mut keys: Vec<String> = table
            .iter()
            .filter(|(_, item)| is_sub_table(item))
            .map(|(key, _)| key.to_string())
            .collect();
        if let Some(known) = table_keys(pattern) {
            keys.sort_by_key(|key| rank(known, key));
        }
        for key in keys {
            match table.get_mut(&key) {
                Some(Item::Table(child)) => {
                    let child_pattern = child_pattern(pattern, &key, false);
                    self.table(child, &child_pattern);
                }
                Some(Item::ArrayOfTables(tables)) => {
                    let child_pattern = child_pattern(pattern, &key, true);
                    self.array(tables, &child_pattern);
                }
                _ => {}
            }
        }
    }

    fn array(&mut self, tables: &mut ArrayOfTables, pattern: &str) {
        for table in tables.iter_mut() {
            self.table(table, pattern);
        }
    }

    fn table(&mut self, table: &mut Table, pattern: &str) {
        table.set_position(self.next_position);
        self.next_position += 1;
        if is_shown(table) {
            let prefix = self.line_prefix(table.decor().prefix(), true);
            let suffix = trailing_comment(table.decor().suffix());
            let decor = table.decor_mut();
            decor.set_prefix(prefix);
            decor.set_suffix(suffix);
        }
        self.values(table, pattern);
        self.children(table, pattern);
    }

    /// The text above a line: its comments, after a blank line when it is a table header that
    /// is not the first line, and after the file's header when it is the first line.
    fn line_prefix(&mut self, raw: Option<&RawString>, table_header: bool) -> String {
        let own = comments(raw.and_then(RawString::as_str).unwrap_or(""));
        let mut prefix = String::new();
        if self.first {
            if !self.header.is_empty() {
                prefix.push_str(&self.header);
                prefix.push('\n');
            }
        } else if table_header {
            prefix.push('\n');
        }
        self.first = false;
        prefix.push_str(&own);
        prefix
    }
}

/// Where `key` goes among `known`'s keys; unknown keys go last (the sorts are stable, so
/// they keep their order).
fn rank(known: &TableKeys, key: &str) -> usize {
    known
        .keys
        .iter()
        .position(|k| *k == key)
        .unwrap_or(usize::MAX)
}

fn is_sub_table(item: &Item) -> bool {
    match item {
        Item::Table(table) => !table.is_dotted(),
        Item::ArrayOfTables(_) => true,
        _ => false,
    }
}

/// The comment lines of a key's or table's prefix, each on a line of its own, blank lines
/// and indentation dropped.
fn comments(raw: &str) -> String {
    raw.lines()
        .map(str::trim)
        .filter(|line| line.starts_with('#'))
        .map(|line| format!("{line}\n"))
        .collect()
}

/// A value's or table header's suffix: its end-of-line comment, if any, one space after it.
fn trailing_comment(raw: Option<&RawString>) -> String {
    match raw.and_then(RawString::as_str).map(str::trim) {
        Some(comment) if comment.starts_with('#') => format!(" {comment}"),
        _ => String::new(),
    }
}

/// Takes the file's header out of the first line's prefix: the comments above the first key
/// or table up to the last blank line among them.
fn take_file_header(doc: &mut DocumentMut) -> String {
    let root = doc.as_table_mut();
    let first_value = root
        .iter()
        .find(|(_, item)| item.is_value())
        .map(|(key, _)| key.to_string());
    if let Some(key) = first_value {
        return match root.key_mut(&key) {
            Some(mut key) => split_header(key.leaf_decor_mut()),
            None => String::new(),
        };
    }
    let mut first: Option<usize> = None;
    walk_tables(root, &mut |table| {
        if is_shown(table) {
            let position = table.position().unwrap_or(usize::MAX);
            first = Some(first.map_or(position, |p| p.min(position)));
        }
    });
    let mut header = String::new();
    walk_tables_mut(root, &mut |table| {
        if header.is_empty()
            && is_shown(table)
            && table.position().unwrap_or(usize::MAX) == first.unwrap_or(usize::MAX)
        {
            header = split_header(table.decor_mut());
        }
    });
    header
}

/// Splits `decor`'s prefix at its last blank line (else after its leading `#:` directives):
/// returns the comments above and keeps the rest.
fn split_header(decor: &mut Decor) -> String {
    let raw = decor
        .prefix()
        .and_then(RawString::as_str)
        .unwrap_or("")
        .to_string();
    let lines: Vec<&str> = raw.split_inclusive('\n').collect();
    let last_blank = lines
        .iter()
        .rposition(|line| line.trim().is_empty() && line.ends_with('\n'));
    // Without a blank line, directives (`#:schema ...`) still belong to the file.
    let directives = || {
        lines
            .iter()
            .take_while(|line| line.trim_start().starts_with("#:"))
            .count()
    };
    let (header_end, rest_start) = match last_blank {
        Some(i) => (i, i + 1),
        None => (directives(), directives()),
    };
    if header_end == 0 {
        return String::new();
    }
    let header = comments(&lines[..header_end].concat());
    decor.set_prefix(lines[rest_start..].concat());
    header
}

fn is_shown(table: &Table) -> bool {
    !(table.is_implicit() && table.get_values().is_empty())
}

fn walk_tables(table: &Table, visit: &mut impl FnMut(&Table)) {
    for (_, item) in table.iter() {
        match item {
            Item::Table(child) if !child.is_dotted() => {
                visit(child);
                walk_tables(child, visit);
            }
            Item::ArrayOfTables(tables) => {
                for child in tables.iter() {
                    visit(child);
                    walk_tables(child, visit);
                }
            }
            _ => {}
        }
    }
}

fn walk_tables_mut(table: &mut Table, visit: &mut impl FnMut(&mut Table)) {
    for (_, item) in table.iter_mut() {
        match item {
            Item::Table(child) if !child.is_dotted() => {
                visit(child);
                walk_tables_mut(child, visit);
            }
            Item::ArrayOfTables(tables) => {
                for child in tables.iter_mut() {
                    visit(child);
                    walk_tables_mut(child, visit);
                }
            }
            _ => {}
        }
    }
}
