//! What evaluation returns: one verdict per expectation (or per pair/field of the table
//! kinds), with expected vs actual and, on failure, the closest spans received; and their
//! JSON form for `run --format json` (docs/reference.md §8).

use std::fmt;

use serde_json::{json, Value};

use crate::span::{SpanKind, StatusCode};

/// The `[expect.*]` table a verdict judges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExpectationKind {
    Span,
    Order,
    Status,
    Counts,
    Window,
    Graph,
    Hermeticity,
    Temporal,
    Resource,
    OtelValidation,
}

impl ExpectationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ExpectationKind::Span => "span",
            ExpectationKind::Order => "order",
            ExpectationKind::Status => "status",
            ExpectationKind::Counts => "counts",
            ExpectationKind::Window => "window",
            ExpectationKind::Graph => "graph",
            ExpectationKind::Hermeticity => "hermeticity",
            ExpectationKind::Temporal => "temporal",
            ExpectationKind::Resource => "resource",
            ExpectationKind::OtelValidation => "otel_validation",
        }
    }
}

/// A received span as a failure message shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct SpanSummary {
    pub name: String,
    /// The parent span's name: `None` for a root, `"<not received>"` when the span names a
    /// parent that did not arrive.
    pub parent: Option<String>,
    pub kind: SpanKind,
    pub duration_ms: f64,
    pub status: StatusCode,
    pub attributes: Vec<(String, String)>,
    /// Why this span does not meet the expectation, when that is known.
    pub mismatch: Vec<String>,
}

/// Attributes shown per span: enough to recognise it, short enough to read.
const SHOWN_ATTRIBUTES: usize = 8;

impl fmt::Display for SpanSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} ({}", self.name, self.kind)?;
        match &self.parent {
            Some(p) => write!(f, ", parent {p:?}")?,
            None => f.write_str(", root")?,
        }
        write!(f, ", {:.1} ms, {})", self.duration_ms, self.status)?;
        if !self.attributes.is_empty() {
            f.write_str(" {")?;
            for (i, (k, v)) in self.attributes.iter().take(SHOWN_ATTRIBUTES).enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write!(f, "{k}={v:?}")?;
            }
            if self.attributes.len() > SHOWN_ATTRIBUTES {
                write!(f, ", +{} more", self.attributes.len() - SHOWN_ATTRIBUTES)?;
            }
            f.write_str("}")?;
        }
        if !self.mismatch.is_empty() {
            write!(f, ": {}", self.mismatch.join("; "))?;
        }
        Ok(())
    }
}

/// The judgement of one expectation.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub kind: ExpectationKind,
    /// For `span` and `window`, the entry's index in its array (`expect.span[2]`); for the
    /// other kinds, the verdict's position among that kind's verdicts.
    pub index: usize,
    /// Which expectation, as the user wrote it: `expect.span[2] "db.query"`.
    pub expectation: String,
    pub passed: bool,
    pub expected: String,
    pub actual: String,
    /// On failure, the received spans closest to what was expected, closest first.
    pub closest: Vec<SpanSummary>,
}

impl Verdict {
    /// The full text: which expectation, expected, actual, closest spans.
    pub fn message(&self) -> String {
        self.to_string()
    }

    /// docs/reference.md §8's `{"kind":"span","index":2,"status":"fail","message":"..."}`, plus the
    /// expectation's name, expected and actual as their own fields.
    pub fn to_json(&self) -> Value {
        json!({
            "kind": self.kind.as_str(),
            "index": self.index,
            "status": if self.passed { "pass" } else { "fail" },
            "expectation": self.expectation,
            "expected": self.expected,
            "actual": self.actual,
            "message": self.message(),
        })
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let outcome = if self.passed { "holds" } else { "failed" };
        writeln!(f, "{} {outcome}", self.expectation)?;
        writeln!(f, "  expected: {}", self.expected)?;
        write!(f, "  actual:   {}", self.actual)?;
        if !self.closest.is_empty() {
            f.write_str("\n  closest spans received:")?;
            for s in &self.closest {
                write!(f, "\n    {s}")?;
            }
        }
        Ok(())
    }
}

/// The `"expectations"` array of a JSON event.
pub fn verdicts_json(verdicts: &[Verdict]) -> Value {
    Value::Array(verdicts.iter().map(Verdict::to_json).collect())
}
