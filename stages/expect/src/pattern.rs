//! Span name patterns: exact text, or a glob where `*` matches any run of characters and
//! `?` exactly one. No character classes, no escapes: span names do not contain `*`/`?`.

use std::fmt;

use serde::{Deserialize, Deserializer};

/// A span name as an expectation writes it (`"db.query"`, `"clnrm.*"`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SpanPattern {
    text: String,
    glob: bool,
}

impl SpanPattern {
    pub fn new(text: impl Into<String>) -> Self {
        let text = text.into();
        let glob = text.contains(['*', '?']);
        SpanPattern { text, glob }
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether this pattern has wildcards (else it is an exact name).
    pub fn is_glob(&self) -> bool {
        self.glob
    }

    pub fn matches(&self, name: &str) -> bool {
        if self.glob {
            glob_match(&self.text, name)
        } else {
            self.text == name
        }
    }
}

impl fmt::Display for SpanPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.text)
    }
}

impl<'de> Deserialize<'de> for SpanPattern {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        if text.is_empty() {
            return Err(serde::de::Error::custom("a span name may not be empty"));
        }
        Ok(SpanPattern::new(text))
    }
}

/// Glob match with single backtracking point (the last `*`), linear in practice.
/// `?` consumes one character, not one byte, so non-ASCII names match as written.
pub(crate) fn glob_match(pattern: &str, name: &str) -> bool {
    let (p, n) = (pattern.as_bytes(), name.as_bytes());
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ni));
            pi += 1;
        } else if pi < p.len() && p[pi] == b'?' {
            pi += 1;
            ni += char_len(n[ni]);
        } else if pi < p.len() && p[pi] == n[ni] {
            pi += 1;
            ni += 1;
        } else if let Some((sp, sn)) = star {
            // Let the last `*` swallow one more character and retry after it.
            let next = sn + char_len(n[sn]);
            star = Some((sp, next));
            pi = sp + 1;
            ni = next;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&b| b == b'*')
}

/// Length of the UTF-8 sequence a leading byte starts.
fn char_len(lead: u8) -> usize {
    match lead {
        0xF0..=0xFF => 4,
        0xE0..=0xEF => 3,
        0xC0..=0xDF => 2,
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_names_match_only_themselves() {
        let p = SpanPattern::new("db.query");
        assert!(!p.is_glob());
        assert!(p.matches("db.query"));
        assert!(!p.matches("db.query2"));
        assert!(!p.matches("db"));
    }

    #[test]
    fn star_matches_any_run_and_question_one_character() {
        assert!(glob_match("clnrm.*", "clnrm.run"));
        assert!(glob_match("clnrm.*", "clnrm."));
        assert!(!glob_match("clnrm.*", "clnrm"));
        assert!(glob_match("*.query", "db.query"));
        assert!(glob_match("a*b*c", "aXXbYYc"));
        assert!(!glob_match("a*b*c", "aXXbYY"));
        assert!(glob_match("step:?", "step:1"));
        assert!(!glob_match("step:?", "step:12"));
        assert!(glob_match("step:?", "step:é"));
        assert!(glob_match("*", ""));
        assert!(!glob_match("?", ""));
    }
}
