//! Lexing of Tera 1 template text: the template level (text, comments, `{{ }}`,
//! `{% %}`, raw blocks) and the tokens inside tags. Mirrors Tera 1's pest grammar
//! closely enough to find the constructs the preprocessor rewrites; whatever it does
//! not understand is copied through for Tera to judge.

/// Deepest bracket nesting accepted inside one tag, and deepest block nesting.
/// Beyond these, Tera's recursive-descent parser could exhaust the stack.
pub const MAX_EXPR_DEPTH: usize = 48;
pub const MAX_BLOCK_DEPTH: usize = 96;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemKind {
    Text,
    Comment,
    /// `{{ ... }}`
    Expr,
    /// `{% ... %}`
    Stmt,
    /// `{% raw %} ... {% endraw %}`, copied verbatim.
    Raw,
}

#[derive(Debug, Clone)]
pub struct Item {
    pub kind: ItemKind,
    /// Byte range of the whole item.
    pub start: usize,
    pub end: usize,
    /// For tags: the tokens between the delimiters.
    pub toks: Vec<Tok>,
    /// For tags: start of the closing delimiter (including a `-`).
    pub inner_end: usize,
}

impl Item {
    /// First token, when it is an identifier (the statement keyword of a `{% %}` tag).
    pub fn keyword<'a>(&self, src: &'a str) -> Option<&'a str> {
        match self.toks.first() {
            Some(t) if t.kind == TokKind::Ident => Some(t.text(src)),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokKind {
    Ident,
    /// A string literal including its quotes (Tera 1 has no escapes).
    Str,
    Num,
    Punct,
}

#[derive(Debug, Clone, Copy)]
pub struct Tok {
    pub kind: TokKind,
    pub start: usize,
    pub end: usize,
}

impl Tok {
    pub fn text<'a>(&self, src: &'a str) -> &'a str {
        &src[self.start..self.end]
    }
    pub fn is(&self, src: &str, s: &str) -> bool {
        self.kind != TokKind::Str && self.text(src) == s
    }
    /// The content of a string literal, without its quotes.
    pub fn str_value<'a>(&self, src: &'a str) -> &'a str {
        &src[self.start + 1..self.end - 1]
    }
}

/// A problem found while lexing: byte offset, construct, message.
#[derive(Debug, Clone)]
pub struct ScanError {
    pub offset: usize,
    pub construct: &'static str,
    pub message: String,
}

fn err(offset: usize, construct: &'static str, message: impl Into<String>) -> ScanError {
    ScanError {
        offset,
        construct,
        message: message.into(),
    }
}

/// Splits a template into items.
pub fn scan(src: &str) -> Result<Vec<Item>, ScanError> {
    let bytes = src.as_bytes();
    let mut items = Vec::new();
    let mut pos = 0;
    let mut block_depth: usize = 0;
    while pos < bytes.len() {
        let Some(open) = find_open(bytes, pos) else {
            items.push(simple(ItemKind::Text, pos, bytes.len()));
            break;
        };
        if open > pos {
            items.push(simple(ItemKind::Text, pos, open));
        }
        match bytes[open + 1] {
            b'#' => {
                let Some(close) = find(bytes, open + 2, b"#}") else {
                    return Err(err(
                        open,
                        "unclosed comment",
                        "`{#` is never closed by `#}`",
                    ));
                };
                items.push(simple(ItemKind::Comment, open, close + 2));
                pos = close + 2;
            }
            c => {
                let is_expr = c == b'{';
                let mut inner_start = open + 2;
                if bytes.get(inner_start) == Some(&b'-') {
                    inner_start += 1;
                }
                let (toks, inner_end, end) = lex_tag(src, inner_start, is_expr, open)?;
                let mut item = Item {
                    kind: if is_expr {
                        ItemKind::Expr
                    } else {
                        ItemKind::Stmt
                    },
                    start: open,
                    end,
                    toks,
                    inner_end,
                };
                pos = end;
                if !is_expr {
                    match item.keyword(src) {
                        Some("raw") if item.toks.len() == 1 => {
                            let Some((_, raw_end)) = find_endraw(src, end) else {
                                return Err(err(
                                    open,
                                    "unclosed raw block",
                                    "`{% raw %}` is never closed by `{% endraw %}`",
                                ));
                            };
                            item.kind = ItemKind::Raw;
                            item.end = raw_end;
                            pos = raw_end;
                        }
                        Some("if" | "for" | "block" | "macro" | "filter") => {
                            block_depth += 1;
                            if block_depth > MAX_BLOCK_DEPTH {
                                return Err(err(
                                    open,
                                    "nesting too deep",
                                    format!(
                                        "blocks are nested more than {MAX_BLOCK_DEPTH} levels deep"
                                    ),
                                ));
                            }
                        }
                        Some("endif" | "endfor" | "endblock" | "endmacro" | "endfilter") => {
                            block_depth = block_depth.saturating_sub(1);
                        }
                        _ => {}
                    }
                }
                items.push(item);
            }
        }
    }
    Ok(items)
}

fn simple(kind: ItemKind, start: usize, end: usize) -> Item {
    Item {
        kind,
        start,
        end,
        toks: Vec::new(),
        inner_end: end,
    }
}

/// First occurrence of `needle` in `bytes` at or after `from`.
fn find(bytes: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    if from > bytes.len() {
        return None;
    }
    bytes[from..]
        .windows(needle.len())
        .position(|window| window == needle)
        .map(|found| found + from)
}

/// Next `{{`, `{%` or `{#` at or after `from`.
fn find_open(bytes: &[u8], from: usize) -> Option<usize> {
    let mut pos = from;
    while pos + 1 < bytes.len() {
        if bytes[pos] == b'{' && matches!(bytes[pos + 1], b'{' | b'%' | b'#') {
            return Some(pos);
        }
        pos += 1;
    }
    None
}

/// `{% endraw %}` (with optional `-` and spaces) after `from`: (start, end).
fn find_endraw(src: &str, from: usize) -> Option<(usize, usize)> {
    let bytes = src.as_bytes();
    let mut search_from = from;
    while let Some(open) = find(bytes, search_from, b"{%") {
        let mut pos = open + 2;
        if bytes.get(pos) == Some(&b'-') {
            pos += 1;
        }
        while bytes.get(pos).is_some_and(|b| b.is_ascii_whitespace()) {
            pos += 1;
        }
        if src[pos..].starts_with("endraw") {
            pos += 6;
            while bytes.get(pos).is_some_and(|b| b.is_ascii_whitespace()) {
                pos += 1;
            }
            if bytes.get(pos) == Some(&b'-') {
                pos += 1;
            }
            if src[pos..].starts_with("%}") {
                return Some((open, pos + 2));
            }
        }
        search_from = open + 2;
    }
    None
}

const PUNCT2: [&str; 6] = ["::", "==", "!=", "<=", ">=", "//"];

/// Lexes the inside of a tag starting at `pos` until its closing delimiter at bracket
/// depth 0. Returns the tokens, the start of the closing delimiter (including a `-`),
/// and the end of the whole tag.
fn lex_tag(
    src: &str,
    mut pos: usize,
    is_expr: bool,
    open: usize,
) -> Result<(Vec<Tok>, usize, usize), ScanError> {
    let bytes = src.as_bytes();
    let mut toks = Vec::new();
    let mut depth: usize = 0;
    let close_char = if is_expr { b'}' } else { b'%' };
    loop {
        let Some(&b) = bytes.get(pos) else {
            let (construct, msg) = if is_expr {
                ("unclosed tag", "`{{` is never closed by `}}`")
            } else {
                ("unclosed tag", "`{%` is never closed by `%}`")
            };
            return Err(err(open, construct, msg));
        };
        if b.is_ascii_whitespace() {
            pos += 1;
            continue;
        }
        // closing delimiter
        if depth == 0 {
            if b == b'-'
                && bytes.get(pos + 1) == Some(&close_char)
                && bytes.get(pos + 2) == Some(&b'}')
            {
                return Ok((toks, pos, pos + 3));
            }
            if b == close_char && bytes.get(pos + 1) == Some(&b'}') {
                return Ok((toks, pos, pos + 2));
            }
        }
        let start = pos;
        let kind;
        if b == b'"' || b == b'\'' || b == b'`' {
            let Some(close) = bytes[pos + 1..].iter().position(|&c| c == b) else {
                return Err(err(
                    start,
                    "unterminated string",
                    "string literal is never closed",
                ));
            };
            pos += close + 2;
            kind = TokKind::Str;
        } else if b.is_ascii_alphabetic() || b == b'_' {
            while bytes
                .get(pos)
                .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_')
            {
                pos += 1;
            }
            kind = TokKind::Ident;
        } else if b.is_ascii_digit() {
            while bytes.get(pos).is_some_and(|c| c.is_ascii_digit()) {
                pos += 1;
            }
            // a fraction, but not `pair.0.1` style paths (a digit run after `.` of a path)
            if bytes.get(pos) == Some(&b'.')
                && bytes.get(pos + 1).is_some_and(|c| c.is_ascii_digit())
                && !toks
                    .last()
                    .is_some_and(|t: &Tok| t.is(src, ".") && t.end == start)
            {
                pos += 1;
                while bytes.get(pos).is_some_and(|c| c.is_ascii_digit()) {
                    pos += 1;
                }
            }
            kind = TokKind::Num;
        } else {
            kind = TokKind::Punct;
            if PUNCT2.iter().any(|p| src[pos..].starts_with(p)) {
                pos += 2;
            } else {
                // one character (may be multi-byte)
                pos += src[pos..].chars().next().map_or(1, char::len_utf8);
            }
            match &src[start..pos] {
                "(" | "[" | "{" => {
                    depth += 1;
                    if depth > MAX_EXPR_DEPTH {
                        return Err(err(
                            start,
                            "nesting too deep",
                            format!("brackets are nested more than {MAX_EXPR_DEPTH} levels deep"),
                        ));
                    }
                }
                ")" | "]" | "}" => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
        toks.push(Tok {
            kind,
            start,
            end: pos,
        });
    }
}

/// Index of the token closing the bracket opened at `toks[open]`, if any.
pub fn matching(src: &str, toks: &[Tok], open: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (index, tok) in toks.iter().enumerate().skip(open) {
        if tok.kind != TokKind::Punct {
            continue;
        }
        match tok.text(src) {
            "(" | "[" | "{" => depth += 1,
            ")" | "]" | "}" => {
                depth -= 1;
                if depth == 0 {
                    return Some(index);
                }
            }
            _ => {}
        }
    }
    None
}

/// Splits `toks[lo..hi]` at commas of bracket depth 0: ranges of each part.
pub fn split_commas(src: &str, toks: &[Tok], lo: usize, hi: usize) -> Vec<(usize, usize)> {
    let mut parts = Vec::new();
    let mut depth = 0usize;
    let mut start = lo;
    for (index, tok) in toks.iter().enumerate().take(hi).skip(lo) {
        if tok.kind != TokKind::Punct {
            continue;
        }
        match tok.text(src) {
            "(" | "[" | "{" => depth += 1,
            ")" | "]" | "}" => depth = depth.saturating_sub(1),
            "," if depth == 0 => {
                parts.push((start, index));
                start = index + 1;
            }
            _ => {}
        }
    }
    if start < hi {
        parts.push((start, hi));
    }
    parts
}

/// Converts a byte offset into a 1-based (line, column in characters).
pub fn line_col(src: &str, offset: usize) -> (usize, usize) {
    let offset = floor_char_boundary(src, offset.min(src.len()));
    let before = &src[..offset];
    let line = before.bytes().filter(|&b| b == b'\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |newline| newline + 1);
    let col = src[line_start..offset].chars().count() + 1;
    (line, col)
}

/// The text of 1-based line `line`.
pub fn line_text(src: &str, line: usize) -> Option<String> {
    src.split('\n')
        .nth(line.checked_sub(1)?)
        .map(|text| text.trim_end_matches('\r').to_string())
}

/// Byte offset of 1-based (line, column in characters).
pub fn offset_of(src: &str, line: usize, col: usize) -> usize {
    let mut line_start = 0;
    for (index, text) in src.split('\n').enumerate() {
        if index + 1 == line {
            let col_offset = text
                .char_indices()
                .nth(col.saturating_sub(1))
                .map_or(text.len(), |(byte, _)| byte);
            return line_start + col_offset;
        }
        line_start += text.len() + 1;
    }
    src.len()
}

/// The largest char boundary of `text` at or before `offset`.
pub fn floor_char_boundary(text: &str, mut offset: usize) -> usize {
    while offset > 0 && !text.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}
