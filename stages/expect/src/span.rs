//! The spans the stage judges, as plain data: what an OTLP span carries that expectations
//! can ask about. Converting OTLP protobuf/JSON into these is the receiver's job, not this
//! module's.

use std::collections::BTreeMap;
use std::fmt;

use crate::fixed_names::fixed_names;

/// A 16-byte trace id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TraceId(pub [u8; 16]);

/// An 8-byte span id, unique within its trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpanId(pub [u8; 8]);

impl TraceId {
    pub fn from_u128(id: u128) -> Self {
        TraceId(id.to_be_bytes())
    }
}

impl SpanId {
    pub fn from_u64(id: u64) -> Self {
        SpanId(id.to_be_bytes())
    }
}

fn write_hex(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    bytes.iter().try_for_each(|b| write!(f, "{b:02x}"))
}

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0)
    }
}

impl fmt::Display for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0)
    }
}

/// OTLP's span kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SpanKind {
    Unspecified,
    Internal,
    Server,
    Client,
    Producer,
    Consumer,
}

fixed_names!(
    /// The lower-case name expectations use (`kind = "client"`).
    SpanKind {
        Unspecified => "unspecified",
        Internal => "internal",
        Server => "server",
        Client => "client",
        Producer => "producer",
        Consumer => "consumer",
    }
);

/// OTLP's status codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StatusCode {
    Unset,
    Ok,
    Error,
}

fixed_names!(
    /// The upper-case name OTLP and test files use (`status = "ERROR"`).
    StatusCode {
        Unset => "UNSET",
        Ok => "OK",
        Error => "ERROR",
    }
);

/// A span's status: code and the optional description SDKs set with errors.
#[derive(Debug, Clone, PartialEq)]
pub struct SpanStatus {
    pub code: StatusCode,
    pub message: String,
}

impl Default for SpanStatus {
    fn default() -> Self {
        SpanStatus {
            code: StatusCode::Unset,
            message: String::new(),
        }
    }
}

/// An attribute value (OTLP `AnyValue`, key-value lists left out: no expectation reads them).
#[derive(Debug, Clone, PartialEq)]
pub enum AttrValue {
    String(String),
    Bool(bool),
    Int(i64),
    Double(f64),
    Bytes(Vec<u8>),
    Array(Vec<AttrValue>),
}

impl AttrValue {
    /// Whether the value reads as `expected`. Expectations are written as text
    /// (`"http.status_code" = "200"`), so a value is compared by its text form.
    pub fn is_text(&self, expected: &str) -> bool {
        match self {
            AttrValue::String(s) => s == expected,
            other => other.to_string() == expected,
        }
    }
}

impl fmt::Display for AttrValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AttrValue::String(s) => f.write_str(s),
            AttrValue::Bool(b) => write!(f, "{b}"),
            AttrValue::Int(i) => write!(f, "{i}"),
            AttrValue::Double(d) => write!(f, "{d}"),
            AttrValue::Bytes(b) => write_hex(f, b),
            AttrValue::Array(items) => {
                f.write_str("[")?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{item}")?;
                }
                f.write_str("]")
            }
        }
    }
}

impl From<&str> for AttrValue {
    fn from(s: &str) -> Self {
        AttrValue::String(s.to_string())
    }
}

impl From<String> for AttrValue {
    fn from(s: String) -> Self {
        AttrValue::String(s)
    }
}

impl From<i64> for AttrValue {
    fn from(i: i64) -> Self {
        AttrValue::Int(i)
    }
}

impl From<bool> for AttrValue {
    fn from(b: bool) -> Self {
        AttrValue::Bool(b)
    }
}

pub type Attributes = BTreeMap<String, AttrValue>;

/// A timed event inside a span (`span.add_event("cache.miss")`).
#[derive(Debug, Clone, PartialEq)]
pub struct SpanEvent {
    pub name: String,
    pub time_unix_nanos: u64,
    pub attributes: Attributes,
}

/// One received span, with the resource attributes of the batch it came in.
#[derive(Debug, Clone, PartialEq)]
pub struct Span {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    /// `None` for a root span (OTLP's empty parent id).
    pub parent_span_id: Option<SpanId>,
    pub name: String,
    pub kind: SpanKind,
    pub start_unix_nanos: u64,
    pub end_unix_nanos: u64,
    pub attributes: Attributes,
    pub events: Vec<SpanEvent>,
    pub status: SpanStatus,
    /// Resource attributes, `service.name` among them.
    pub resource: Attributes,
}

impl Span {
    /// A span with the given identity and name and nothing else set: kind internal, no
    /// time, no attributes. Converters and tests fill in the rest.
    pub fn new(trace_id: TraceId, span_id: SpanId, name: impl Into<String>) -> Self {
        Span {
            trace_id,
            span_id,
            parent_span_id: None,
            name: name.into(),
            kind: SpanKind::Internal,
            start_unix_nanos: 0,
            end_unix_nanos: 0,
            attributes: Attributes::new(),
            events: Vec::new(),
            status: SpanStatus::default(),
            resource: Attributes::new(),
        }
    }

    /// Wall time in milliseconds (0 when the end precedes the start).
    pub fn duration_ms(&self) -> f64 {
        self.end_unix_nanos.saturating_sub(self.start_unix_nanos) as f64 / 1e6
    }

    /// The resource's `service.name`, when set.
    pub fn service_name(&self) -> Option<String> {
        self.resource.get("service.name").map(|v| v.to_string())
    }
}
