//! A JSON document borrowed from stdout: a strict RFC 8259 parser into a flat arena of
//! nodes in document order, so a node's descendants are exactly the indices after it up to
//! its `end`. It only has to be right when it says yes: anything serde_json might read
//! differently (a duplicate key, deep nesting, a number out of range, a lone surrogate, any
//! syntax error) makes `parse` return None and the judge falls back to serde_json.

use std::borrow::Cow;

/// serde_json refuses nesting at 128 levels; staying well under it leaves no doubt.
const MAX_DEPTH: usize = 100;

#[derive(Debug)]
pub(crate) struct Node<'a> {
    /// The member name, when the parent is an object (empty otherwise).
    pub key: Cow<'a, str>,
    pub value: Value<'a>,
    /// One past the last index of this node's subtree.
    pub end: u32,
    /// Children of an array or object.
    pub len: u32,
}

#[derive(Debug)]
pub(crate) enum Value<'a> {
    Null,
    Bool(bool),
    /// The number's text, read as serde_json reads it only when compared ([`number`]).
    Number(&'a str),
    String(Cow<'a, str>),
    Array,
    Object,
}

#[derive(Debug)]
pub(crate) struct Doc<'a> {
    pub nodes: Vec<Node<'a>>,
}

impl<'a> Doc<'a> {
    pub fn parse(text: &'a str) -> Option<Doc<'a>> {
        // About one node per 8 bytes of typical output: one allocation, rarely grown.
        let mut parser = Parser {
            text,
            bytes: text.as_bytes(),
            pos: 0,
            nodes: Vec::with_capacity(text.len() / 8 + 4),
        };
        parser.value(Cow::Borrowed(""), 0)?;
        parser.skip_ws();
        (parser.pos == parser.bytes.len()).then_some(Doc {
            nodes: parser.nodes,
        })
    }

    pub fn node(&self, i: usize) -> &Node<'a> {
        &self.nodes[i]
    }

    /// The children of node `i` (none for a scalar).
    pub fn children(&self, i: usize) -> Children<'_, 'a> {
        Children {
            nodes: &self.nodes,
            next: i + 1,
            end: self.nodes[i].end as usize,
        }
    }

    /// The member `name` of object `i`.
    pub fn member(&self, i: usize, name: &str) -> Option<usize> {
        if !matches!(self.nodes[i].value, Value::Object) {
            return None;
        }
        self.children(i).find(|&c| self.nodes[c].key == name)
    }

    /// Element `index` of array `i`.
    pub fn element(&self, i: usize, index: usize) -> Option<usize> {
        if !matches!(self.nodes[i].value, Value::Array) {
            return None;
        }
        self.children(i).nth(index)
    }
}

#[derive(Clone)]
pub(crate) struct Children<'d, 'a> {
    nodes: &'d [Node<'a>],
    next: usize,
    end: usize,
}

impl Iterator for Children<'_, '_> {
    type Item = usize;
    fn next(&mut self) -> Option<usize> {
        (self.next < self.end).then(|| {
            let child = self.next;
            self.next = self.nodes[child].end as usize;
            child
        })
    }
}

struct Parser<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
    nodes: Vec<Node<'a>>,
}

impl<'a> Parser<'a> {
    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.bytes.get(self.pos) {
            self.pos += 1;
        }
    }

    fn eat(&mut self, byte: u8) -> bool {
        let found = self.bytes.get(self.pos) == Some(&byte);
        self.pos += usize::from(found);
        found
    }

    fn literal(&mut self, word: &str) -> Option<()> {
        let found = self.bytes[self.pos..].starts_with(word.as_bytes());
        self.pos += word.len();
        found.then_some(())
    }

    fn push(&mut self, key: Cow<'a, str>, value: Value<'a>) -> usize {
        let i = self.nodes.len();
        self.nodes.push(Node {
            key,
            value,
            end: i as u32 + 1,
            len: 0,
        });
        i
    }

    /// One value (whitespace before it skipped), pushed with its subtree.
    fn value(&mut self, key: Cow<'a, str>, depth: usize) -> Option<()> {
        self.skip_ws();
        let value = match *self.bytes.get(self.pos)? {
            b'{' => return self.object(key, depth + 1),
            b'[' => return self.array(key, depth + 1),
            b'"' => Value::String(self.string()?),
            b't' => self.literal("true").map(|_| Value::Bool(true))?,
            b'f' => self.literal("false").map(|_| Value::Bool(false))?,
            b'n' => self.literal("null").map(|_| Value::Null)?,
            b'-' | b'0'..=b'9' => Value::Number(self.number()?),
            _ => return None,
        };
        self.push(key, value);
        Some(())
    }

    fn array(&mut self, key: Cow<'a, str>, depth: usize) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.pos += 1;
        let i = self.push(key, Value::Array);
        let mut len = 0;
        self.skip_ws();
        if !self.eat(b']') {
            loop {
                self.value(Cow::Borrowed(""), depth)?;
                len += 1;
                self.skip_ws();
                if self.eat(b']') {
                    break;
                }
                if !self.eat(b',') {
                    return None;
                }
            }
        }
        self.close(i, len);
        Some(())
    }

    fn object(&mut self, key: Cow<'a, str>, depth: usize) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.pos += 1;
        let i = self.push(key, Value::Object);
        let mut len = 0;
        self.skip_ws();
        if !self.eat(b'}') {
            loop {
                self.skip_ws();
                if self.bytes.get(self.pos) != Some(&b'"') {
                    return None;
                }
                let name = self.string()?;
                self.skip_ws();
                if !self.eat(b':') {
                    return None;
                }
                self.value(name, depth)?;
                len += 1;
                self.skip_ws();
                if self.eat(b'}') {
                    break;
                }
                if !self.eat(b',') {
                    return None;
                }
            }
        }
        self.close(i, len);
        // serde_json's map keeps the last of duplicate keys: rather than copy that, refuse.
        if len > 1 && has_duplicate(&self.nodes, i, len as usize) {
            return None;
        }
        Some(())
    }

    fn close(&mut self, i: usize, len: u32) {
        let end = self.nodes.len() as u32;
        self.nodes[i].end = end;
        self.nodes[i].len = len;
    }

    /// A string at `pos` (on its opening quote): borrowed unless it has escapes.
    fn string(&mut self) -> Option<Cow<'a, str>> {
        self.pos += 1;
        let start = self.pos;
        let mut escaped = false;
        loop {
            match *self.bytes.get(self.pos)? {
                b'"' => break,
                b'\\' => {
                    escaped = true;
                    self.pos += 2;
                }
                0..=0x1f => return None,
                _ => self.pos += 1,
            }
        }
        let raw = self.text.get(start..self.pos)?;
        self.pos += 1;
        if escaped {
            unescape(raw).map(Cow::Owned)
        } else {
            Some(Cow::Borrowed(raw))
        }
    }

    /// A number's text, checked against RFC 8259's grammar; one serde_json might find out of
    /// range is checked by serde_json itself.
    fn number(&mut self) -> Option<&'a str> {
        let start = self.pos;
        self.eat(b'-');
        let digits = |p: &mut Self| {
            let from = p.pos;
            while let Some(b'0'..=b'9') = p.bytes.get(p.pos) {
                p.pos += 1;
            }
            p.pos - from
        };
        let first = *self.bytes.get(self.pos)?;
        let int_digits = digits(self);
        if int_digits == 0 || (first == b'0' && int_digits > 1) {
            return None;
        }
        let mut plain = int_digits < 300;
        if self.eat(b'.') && digits(self) == 0 {
            return None;
        }
        if self.eat(b'e') || self.eat(b'E') {
            if !self.eat(b'+') {
                self.eat(b'-');
            }
            if digits(self) == 0 {
                return None;
            }
            plain = false;
        }
        let text = &self.text[start..self.pos];
        if !plain {
            serde_json::from_str::<serde_json::Number>(text).ok()?;
        }
        Some(text)
    }
}

/// Whether two members of an object share a name (compared unescaped).
fn has_duplicate(nodes: &[Node], object: usize, len: usize) -> bool {
    let members = || Children {
        nodes,
        next: object + 1,
        end: nodes[object].end as usize,
    };
    if len <= 16 {
        let mut rest = members();
        while let Some(a) = rest.next() {
            if rest.clone().any(|b| nodes[b].key == nodes[a].key) {
                return true;
            }
        }
        return false;
    }
    let mut keys: Vec<&str> = members().map(|c| &*nodes[c].key).collect();
    keys.sort_unstable();
    keys.windows(2).any(|w| w[0] == w[1])
}

/// A JSON string's content with its escapes resolved; None on a lone surrogate or a bad
/// escape.
fn unescape(raw: &str) -> Option<String> {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        out.push(match chars.next()? {
            '"' => '"',
            '\\' => '\\',
            '/' => '/',
            'b' => '\u{8}',
            'f' => '\u{c}',
            'n' => '\n',
            'r' => '\r',
            't' => '\t',
            'u' => {
                let unit = hex4(&mut chars)?;
                match unit {
                    0xd800..=0xdbff => {
                        if chars.next()? != '\\' || chars.next()? != 'u' {
                            return None;
                        }
                        let low = hex4(&mut chars)?;
                        if !(0xdc00..=0xdfff).contains(&low) {
                            return None;
                        }
                        char::from_u32(0x10000 + ((unit - 0xd800) << 10) + (low - 0xdc00))?
                    }
                    0xdc00..=0xdfff => return None,
                    _ => char::from_u32(unit)?,
                }
            }
            _ => return None,
        });
    }
    Some(out)
}

fn hex4(chars: &mut std::str::Chars) -> Option<u32> {
    let mut unit = 0;
    for _ in 0..4 {
        unit = unit * 16 + chars.next()?.to_digit(16)?;
    }
    Some(unit)
}

/// A number as serde_json holds it: u64 when it is a non-negative integer that fits, i64
/// when a negative one fits, f64 otherwise (`-0` is the float -0.0).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Number {
    PosInt(u64),
    NegInt(i64),
    Float(f64),
}

impl Number {
    pub fn as_f64(self) -> f64 {
        match self {
            Number::PosInt(n) => n as f64,
            Number::NegInt(n) => n as f64,
            Number::Float(f) => f,
        }
    }

    pub fn as_i64(self) -> Option<i64> {
        match self {
            Number::PosInt(n) => i64::try_from(n).ok(),
            Number::NegInt(n) => Some(n),
            Number::Float(_) => None,
        }
    }

    pub fn of_serde(n: &serde_json::Number) -> Number {
        if let Some(u) = n.as_u64() {
            Number::PosInt(u)
        } else if let Some(i) = n.as_i64() {
            Number::NegInt(i)
        } else {
            Number::Float(n.as_f64().unwrap_or(f64::NAN))
        }
    }
}

/// Powers of ten an f64 holds exactly.
const EXACT_POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// A number's text (valid JSON, in range: `parse` checked it) read as serde_json reads it.
/// Integers and decimals whose digits fit in 2^53 with a power of ten up to 22 are computed
/// here, as serde_json computes them (one exact multiplication or division, so correctly
/// rounded in either of its float modes); anything else is handed to serde_json.
pub(crate) fn number(text: &str) -> Number {
    let bytes = text.as_bytes();
    let negative = bytes[0] == b'-';
    let mut pos = usize::from(negative);
    let mut significand: u64 = 0;
    let mut exponent: i32 = 0;
    let mut is_float = false;
    let mut simple = true;
    while pos < bytes.len() {
        match bytes[pos] {
            c @ b'0'..=b'9' => {
                match significand
                    .checked_mul(10)
                    .and_then(|s| s.checked_add(u64::from(c - b'0')))
                {
                    Some(s) => significand = s,
                    None => simple = false,
                }
                if is_float {
                    exponent -= 1;
                }
            }
            b'.' => is_float = true,
            _ => {
                // An exponent: left to serde_json.
                simple = false;
                is_float = true;
                break;
            }
        }
        pos += 1;
    }
    if simple && !is_float {
        return if !negative {
            Number::PosInt(significand)
        } else {
            let neg = (significand as i64).wrapping_neg();
            if neg >= 0 {
                Number::Float(-(significand as f64))
            } else {
                Number::NegInt(neg)
            }
        };
    }
    if simple && significand <= 1 << 53 && exponent >= -22 {
        let f = significand as f64 / EXACT_POW10[exponent.unsigned_abs() as usize];
        return Number::Float(if negative { -f } else { f });
    }
    match serde_json::from_str::<serde_json::Number>(text) {
        Ok(n) => Number::of_serde(&n),
        Err(_) => Number::Float(f64::NAN),
    }
}
