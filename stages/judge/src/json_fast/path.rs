//! A compiler for the part of RFC 9535 the fast path evaluates. It runs only on paths
//! serde_json_path already accepted, and must read them as serde_json_path does (same
//! whitespace, same precedence, same alternatives tried in the same order); a construct it
//! does not know (function extensions, anything unexpected) makes it return None, and the
//! path is left to serde_json_path alone.

use super::doc::Number;

#[derive(Debug, Clone)]
pub(crate) struct Query {
    /// `$` rather than `@`.
    pub absolute: bool,
    pub segments: Vec<Segment>,
}

#[derive(Debug, Clone)]
pub(crate) struct Segment {
    /// `..`: the selectors apply to the node and every node under it.
    pub descendant: bool,
    pub selectors: Vec<Selector>,
}

#[derive(Debug, Clone)]
pub(crate) enum Selector {
    Name(String),
    Wildcard,
    Index(i64),
    Slice {
        start: Option<i64>,
        end: Option<i64>,
        step: Option<i64>,
    },
    Filter(Or),
}

/// `a || b || …`
#[derive(Debug, Clone)]
pub(crate) struct Or(pub Vec<And>);

/// `a && b && …`
#[derive(Debug, Clone)]
pub(crate) struct And(pub Vec<Test>);

#[derive(Debug, Clone)]
pub(crate) enum Test {
    Paren { negated: bool, expr: Or },
    Exists { negated: bool, query: Query },
    Compare(Comparable, Op, Comparable),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone)]
pub(crate) enum Comparable {
    Literal(Literal),
    /// A singular query: names and indices only, each its own child segment.
    Singular(Query),
}

#[derive(Debug, Clone)]
pub(crate) enum Literal {
    Number(Number),
    String(String),
    Bool(bool),
    Null,
}

/// `path` (accepted by serde_json_path) in the fast form, or None when it uses anything the
/// fast path does not evaluate.
pub(crate) fn compile(path: &str) -> Option<Query> {
    let mut p = Parser { s: path, pos: 0 };
    if !p.eat("$") {
        return None;
    }
    let query = p.segments(true)?;
    (p.pos == path.len()).then_some(query)
}

struct Parser<'s> {
    s: &'s str,
    pos: usize,
}

impl Parser<'_> {
    fn rest(&self) -> &str {
        &self.s[self.pos..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn eat(&mut self, token: &str) -> bool {
        let found = self.rest().starts_with(token);
        if found {
            self.pos += token.len();
        }
        found
    }

    /// nom's `multispace0`: spaces, tabs, carriage returns, line feeds.
    fn ws(&mut self) {
        let skipped = self.rest().len()
            - self
                .rest()
                .trim_start_matches([' ', '\t', '\r', '\n'])
                .len();
        self.pos += skipped;
    }

    /// The segments after `$` or `@`, as many as follow (nom's `many0`).
    fn segments(&mut self, absolute: bool) -> Option<Query> {
        let mut segments = Vec::new();
        loop {
            let before = self.pos;
            if self.eat("..") {
                let selectors = if self.eat("*") {
                    vec![Selector::Wildcard]
                } else if self.peek() == Some('[') {
                    self.bracketed()?
                } else {
                    vec![Selector::Name(self.member_name()?)]
                };
                segments.push(Segment {
                    descendant: true,
                    selectors,
                });
                continue;
            }
            self.ws();
            let selectors = if self.eat(".") {
                if self.eat("*") {
                    vec![Selector::Wildcard]
                } else {
                    vec![Selector::Name(self.member_name()?)]
                }
            } else if self.peek() == Some('[') {
                self.bracketed()?
            } else {
                // Not a segment: the whitespace belongs to what follows.
                self.pos = before;
                break;
            };
            segments.push(Segment {
                descendant: false,
                selectors,
            });
        }
        Some(Query { absolute, segments })
    }

    /// A member-name shorthand: ASCII letters, `_`, non-ASCII, and digits after the first.
    fn member_name(&mut self) -> Option<String> {
        let first = |c: char| c.is_ascii_alphabetic() || c == '_' || c >= '\u{80}';
        if !self.peek().is_some_and(first) {
            return None;
        }
        let len = self
            .rest()
            .find(|c: char| !(first(c) || c.is_ascii_digit()))
            .unwrap_or(self.rest().len());
        let name = self.rest()[..len].to_string();
        self.pos += len;
        Some(name)
    }

    /// `[selector, …]`
    fn bracketed(&mut self) -> Option<Vec<Selector>> {
        self.eat("[");
        self.ws();
        let mut selectors = vec![self.selector()?];
        loop {
            self.ws();
            if self.eat("]") {
                return Some(selectors);
            }
            if !self.eat(",") {
                return None;
            }
            self.ws();
            selectors.push(self.selector()?);
        }
    }

    fn selector(&mut self) -> Option<Selector> {
        match self.peek()? {
            '*' => {
                self.pos += 1;
                Some(Selector::Wildcard)
            }
            '\'' | '"' => Some(Selector::Name(self.string()?)),
            '?' => {
                self.pos += 1;
                self.ws();
                Some(Selector::Filter(self.or()?))
            }
            _ => self.slice_or_index(),
        }
    }

    fn slice_or_index(&mut self) -> Option<Selector> {
        let before = self.pos;
        let start = self.int();
        self.ws();
        if !self.eat(":") {
            self.pos = before;
            return self.int().map(Selector::Index);
        }
        self.ws();
        let end = self.int();
        self.ws();
        let mut step = None;
        if self.eat(":") {
            let before_step = self.pos;
            self.ws();
            step = self.int();
            if step.is_none() {
                self.pos = before_step;
            }
        }
        Some(Selector::Slice { start, end, step })
    }

    /// An RFC 9535 integer: `0` or an optionally negative one without leading zeros.
    fn int(&mut self) -> Option<i64> {
        let rest = self.rest();
        let sign = usize::from(rest.starts_with('-'));
        let digits = rest[sign..]
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len() - sign);
        let text = &rest[..sign + digits];
        let valid = matches!(
            text.as_bytes(),
            [b'0'] | [b'-', b'1'..=b'9', ..] | [b'1'..=b'9', ..]
        );
        if !valid {
            return None;
        }
        let n = text.parse().ok()?;
        self.pos += text.len();
        Some(n)
    }

    /// A quoted string with RFC 9535's escapes (the other quote needs none).
    fn string(&mut self) -> Option<String> {
        let quote = self.peek()?;
        self.pos += 1;
        let mut out = String::new();
        let mut chars = self.rest().char_indices();
        loop {
            let (at, c) = chars.next()?;
            match c {
                _ if c == quote => {
                    self.pos += at + 1;
                    return Some(out);
                }
                '\\' => {
                    let (_, e) = chars.next()?;
                    out.push(match e {
                        'b' => '\u{8}',
                        't' => '\t',
                        'n' => '\n',
                        'f' => '\u{c}',
                        'r' => '\r',
                        '/' => '/',
                        '\\' => '\\',
                        _ if e == quote => quote,
                        'u' => {
                            let unit = hex4(&mut chars)?;
                            if (0xd800..=0xdbff).contains(&unit) {
                                if chars.next()?.1 != '\\' || chars.next()?.1 != 'u' {
                                    return None;
                                }
                                let low = hex4(&mut chars)?;
                                if !(0xdc00..=0xdfff).contains(&low) {
                                    return None;
                                }
                                char::from_u32(0x10000 + ((unit - 0xd800) << 10) + (low - 0xdc00))?
                            } else {
                                char::from_u32(unit)?
                            }
                        }
                        _ => return None,
                    });
                }
                '\u{0}'..='\u{1f}' => return None,
                _ => out.push(c),
            }
        }
    }

    fn or(&mut self) -> Option<Or> {
        let mut terms = vec![self.and()?];
        loop {
            let before = self.pos;
            self.ws();
            if !self.eat("||") {
                self.pos = before;
                return Some(Or(terms));
            }
            self.ws();
            terms.push(self.and()?);
        }
    }

    fn and(&mut self) -> Option<And> {
        let mut tests = vec![self.test()?];
        loop {
            let before = self.pos;
            self.ws();
            if !self.eat("&&") {
                self.pos = before;
                return Some(And(tests));
            }
            self.ws();
            tests.push(self.test()?);
        }
    }

    /// serde_json_path's order: `!(…)`, `(…)`, a comparison, `!query`, `query`.
    fn test(&mut self) -> Option<Test> {
        let before = self.pos;
        let negated = self.eat("!");
        if negated {
            self.ws();
        }
        if self.eat("(") {
            self.ws();
            let expr = self.or()?;
            self.ws();
            return self.eat(")").then_some(Test::Paren { negated, expr });
        }
        if !negated {
            if let Some(compare) = self.comparison() {
                return Some(compare);
            }
            self.pos = before;
        }
        let absolute = match self.peek()? {
            '$' => true,
            '@' => false,
            _ => return None,
        };
        self.pos += 1;
        let query = self.segments(absolute)?;
        Some(Test::Exists { negated, query })
    }

    fn comparison(&mut self) -> Option<Test> {
        let left = self.comparable()?;
        self.ws();
        let op = [
            ("==", Op::Eq),
            ("!=", Op::Ne),
            ("<=", Op::Le),
            (">=", Op::Ge),
            ("<", Op::Lt),
            (">", Op::Gt),
        ]
        .into_iter()
        .find_map(|(token, op)| self.eat(token).then_some(op))?;
        self.ws();
        let right = self.comparable()?;
        Some(Test::Compare(left, op, right))
    }

    fn comparable(&mut self) -> Option<Comparable> {
        let literal = match self.peek()? {
            '\'' | '"' => Literal::String(self.string()?),
            '-' | '0'..='9' => Literal::Number(self.number()?),
            '$' | '@' => {
                let absolute = self.peek() == Some('$');
                self.pos += 1;
                let query = self.segments(absolute)?;
                let singular = query.segments.iter().all(|s| {
                    !s.descendant
                        && matches!(
                            s.selectors.as_slice(),
                            [Selector::Name(_) | Selector::Index(_)]
                        )
                });
                return singular.then_some(Comparable::Singular(query));
            }
            _ if self.eat("true") => Literal::Bool(true),
            _ if self.eat("false") => Literal::Bool(false),
            _ if self.eat("null") => Literal::Null,
            _ => return None,
        };
        Some(Comparable::Literal(literal))
    }

    /// A number literal, read by serde_json as serde_json_path reads it.
    fn number(&mut self) -> Option<Number> {
        let rest = self.rest();
        let bytes = rest.as_bytes();
        let mut end = usize::from(bytes.first() == Some(&b'-'));
        let digits = |from: usize| {
            from + bytes[from..]
                .iter()
                .take_while(|b| b.is_ascii_digit())
                .count()
        };
        let int_end = digits(end);
        if int_end == end || (bytes[end] == b'0' && int_end > end + 1) {
            return None;
        }
        end = int_end;
        if bytes.get(end) == Some(&b'.') {
            let frac_end = digits(end + 1);
            if frac_end == end + 1 {
                return None;
            }
            end = frac_end;
        }
        if let Some(b'e' | b'E') = bytes.get(end) {
            end += 1;
            if let Some(b'+' | b'-') = bytes.get(end) {
                end += 1;
            }
            let exp_end = digits(end);
            if exp_end == end {
                return None;
            }
            end = exp_end;
        }
        let n: serde_json::Number = rest[..end].parse().ok()?;
        self.pos += end;
        Some(Number::of_serde(&n))
    }
}

fn hex4(chars: &mut std::str::CharIndices) -> Option<u32> {
    let mut unit = 0;
    for _ in 0..4 {
        unit = unit * 16 + chars.next()?.1.to_digit(16)?;
    }
    Some(unit)
}
