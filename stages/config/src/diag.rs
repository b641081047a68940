//! How a [`Diagnostic`] is located in its text and printed. One place, so the CLI prints the
//! same thing for `validate`, `run` and `dev`. It decides no diagnostic: the parsers do.

use std::fmt;
use std::ops::Range;

use crate::{Diagnostic, Severity};

/// Longest line text kept in a diagnostic (characters); longer lines are cut.
pub(crate) const MAX_LINE_TEXT: usize = 1000;
/// Widest excerpt printed under a diagnostic (characters).
const SHOWN_WIDTH: usize = 120;

impl Diagnostic {
    /// An error with no location; add one with the builder methods.
    pub fn error(file: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(Severity::Error, file, message)
    }

    /// A warning with no location.
    pub fn warning(file: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(Severity::Warning, file, message)
    }

    fn new(severity: Severity, file: impl Into<String>, message: impl Into<String>) -> Self {
        Diagnostic {
            severity,
            file: file.into(),
            key_path: None,
            line_col: None,
            line_text: None,
            message: message.into(),
            hint: None,
        }
    }

    pub fn with_key_path(mut self, key_path: impl Into<String>) -> Self {
        self.key_path = Some(key_path.into());
        self
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Locates the diagnostic at byte `offset` of `text` (line:col and the line's text).
    pub fn at_offset(mut self, text: &str, offset: usize) -> Self {
        let index = LineIndex::new(text);
        let (lc, line) = index.locate(text, offset);
        self.line_col = Some(lc);
        self.line_text = Some(line);
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Warning => "warning",
            Severity::Error => "error",
        })
    }
}

/// `error: <file>:<line>:<col>: <key_path>: <message>`, then the line with a caret under the
/// column, then `hint: ...`.
impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.severity, self.file)?;
        if let Some((line, col)) = self.line_col {
            write!(f, ":{line}:{col}")?;
        }
        if let Some(path) = &self.key_path {
            write!(f, ": {path}")?;
        }
        write!(f, ": {}", self.message)?;
        if let (Some((line, col)), Some(text)) = (self.line_col, &self.line_text) {
            let (shown, caret) = excerpt(text, col);
            let number = line.to_string();
            let pad = " ".repeat(number.len());
            write!(f, "\n{pad} |\n{number} | {shown}")?;
            if let Some(caret) = caret {
                write!(f, "\n{pad} | {}^", " ".repeat(caret))?;
            }
        }
        if let Some(hint) = &self.hint {
            write!(f, "\nhint: {hint}")?;
        }
        Ok(())
    }
}

/// The part of a (possibly very long) line to print, and the caret's offset in it.
fn excerpt(text: &str, col: usize) -> (String, Option<usize>) {
    let chars: Vec<char> = text.chars().collect();
    let col0 = col.saturating_sub(1);
    if chars.len() <= SHOWN_WIDTH {
        let caret = (col0 <= chars.len()).then_some(col0);
        return (text.to_string(), caret);
    }
    let start = col0.saturating_sub(SHOWN_WIDTH / 2).min(chars.len());
    let end = (start + SHOWN_WIDTH).min(chars.len());
    let mut shown = String::new();
    let mut caret = col0.checked_sub(start);
    if start > 0 {
        shown.push_str("...");
        caret = caret.map(|c| c + 3);
    }
    shown.extend(&chars[start..end]);
    if end < chars.len() {
        shown.push_str("...");
    }
    if col0 > end {
        caret = None;
    }
    (shown, caret)
}

/// Byte offsets of line starts, built once per file so locating many diagnostics stays linear.
pub(crate) struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    pub(crate) fn new(text: &str) -> Self {
        let mut starts = vec![0];
        starts.extend(
            text.bytes()
                .enumerate()
                .filter(|&(_, b)| b == b'\n')
                .map(|(i, _)| i + 1),
        );
        LineIndex { starts }
    }

    /// 1-based (line, column in characters) of byte `offset`, and that line's text.
    pub(crate) fn locate(&self, text: &str, offset: usize) -> ((usize, usize), String) {
        let mut offset = offset.min(text.len());
        while !text.is_char_boundary(offset) {
            offset -= 1;
        }
        let line = self.starts.partition_point(|&s| s <= offset) - 1;
        let start = self.starts[line];
        let end = self
            .starts
            .get(line + 1)
            .map(|&next| next - 1)
            .unwrap_or(text.len());
        let col = text[start..offset].chars().count() + 1;
        let raw = text[start..end].trim_end_matches('\r');
        let line_text: String = raw.chars().take(MAX_LINE_TEXT).collect();
        ((line + 1, col), line_text)
    }

    pub(crate) fn locate_span(&self, text: &str, span: &Range<usize>) -> ((usize, usize), String) {
        self.locate(text, span.start)
    }
}
