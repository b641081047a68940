//! The render stage's error: which file, line and column, the construct at fault,
//! a message and a hint, and how it is shown to the user. Not the mapping of Tera's
//! errors back to the user's files (see `tera_errors.rs`).

use serde::{Deserialize, Serialize};

use crate::pre::PreError;
use crate::scan;

/// Why a render failed, and where: a [`RenderErrorDetail`] behind a box (so that
/// `Result<_, RenderError>` stays small); its fields read through `Deref`
/// (`err.file`, `err.line_col`, ...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{}", self.0.user_message())]
pub struct RenderError(Box<RenderErrorDetail>);

impl std::ops::Deref for RenderError {
    type Target = RenderErrorDetail;
    fn deref(&self) -> &RenderErrorDetail {
        &self.0
    }
}

impl From<RenderErrorDetail> for RenderError {
    fn from(detail: RenderErrorDetail) -> Self {
        RenderError(Box::new(detail))
    }
}

impl RenderError {
    pub fn into_detail(self) -> RenderErrorDetail {
        *self.0
    }
}

/// The parts of a [`RenderError`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenderErrorDetail {
    /// Root-relative path (`/` separators) of the template or library where the
    /// problem is, or `builtin:_macros.toml.tera`.
    pub file: String,
    /// 1-based line and column (in characters) in that file's original text.
    pub line_col: Option<(usize, usize)>,
    /// The text of that line.
    pub line_text: Option<String>,
    /// What kind of construct is at fault: `undefined variable`, `missing import`,
    /// `positional macro argument`, `map literal`, `template syntax`, ...
    pub construct: String,
    pub message: String,
    /// What to do about it.
    pub hint: Option<String>,
}

impl RenderErrorDetail {
    /// `file:line:col: message`, the line with a caret under the column, and the hint.
    pub fn user_message(&self) -> String {
        let mut out = self.file.clone();
        if let Some((line, col)) = self.line_col {
            out.push_str(&format!(":{line}:{col}"));
        }
        out.push_str(": ");
        out.push_str(&self.message);
        if let (Some((line, col)), Some(text)) = (self.line_col, &self.line_text) {
            let num = line.to_string();
            let pad = " ".repeat(num.len());
            let caret: String = text
                .chars()
                .take(col.saturating_sub(1))
                .map(|ch| if ch == '\t' { '\t' } else { ' ' })
                .collect();
            out.push_str(&format!("\n{pad} |\n{num} | {text}\n{pad} | {caret}^"));
        }
        if let Some(hint) = &self.hint {
            out.push_str(&format!("\n  help: {hint}"));
        }
        out
    }
}

impl RenderError {
    /// A problem at byte `offset` (when known) of file `file`, whose text is `src`.
    pub(crate) fn at(
        file: &str,
        src: &str,
        offset: Option<usize>,
        construct: &str,
        message: String,
        hint: Option<String>,
    ) -> Self {
        let line_col = offset.map(|o| scan::line_col(src, o));
        RenderErrorDetail {
            file: file.to_string(),
            line_col,
            line_text: line_col.and_then(|(line, _)| scan::line_text(src, line)),
            construct: construct.to_string(),
            message,
            hint,
        }
        .into()
    }

    /// A preprocessing problem of file `file`.
    pub(crate) fn from_pre(file: &str, src: &str, e: PreError) -> Self {
        Self::at(
            file,
            src,
            Some(e.offset),
            e.construct,
            format!("{}: {}", e.construct, e.message),
            e.hint,
        )
    }

    /// A problem with file `file` as a whole (no position in it).
    pub(crate) fn whole_file(
        file: &str,
        construct: &str,
        message: String,
        hint: Option<String>,
    ) -> Self {
        RenderErrorDetail {
            file: file.to_string(),
            line_col: None,
            line_text: None,
            construct: construct.to_string(),
            message,
            hint,
        }
        .into()
    }

    /// Tera panicked: a bug, reported against the template being rendered.
    pub(crate) fn internal(top_id: &str) -> Self {
        Self::whole_file(
            top_id,
            "internal error",
            "the template engine failed on this template (a bug in Tera or clnrm)".into(),
            Some("please report it with the template attached".into()),
        )
    }
}
