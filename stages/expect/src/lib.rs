//! clnrm's expect stage: judges the spans a test received against its `[expect.*]` tables
//! (SPEC §9) and returns one verdict per expectation. Pure: plain data in and out, no I/O,
//! no clock; receiving spans and converting OTLP into [`Span`] is the engine's job.
//!
//! ```
//! use clnrm_expect::{evaluate, Context, Expectations, Span, SpanId, TraceId};
//! let spans = vec![Span::new(TraceId::from_u128(1), SpanId::from_u64(1), "db.query")];
//! let expectations = Expectations {
//!     span: vec![clnrm_expect::SpanExpectation::named("db.*")],
//!     ..Expectations::default()
//! };
//! let verdicts = evaluate(&spans, &expectations, &Context::new(["db"]));
//! assert!(verdicts[0].passed);
//! ```

mod evaluate;
mod expectations;
mod pattern;
mod span;
mod verdict;

pub use evaluate::{evaluate, Context, COLLECTOR_HOST};
pub use expectations::{
    known_keys, AttrPair, AttrsExpectation, CountBound, CountsExpectation, DurationBounds,
    EventsExpectation, Expectations, ExpectedStatus, ExpectedValue, GraphExpectation,
    HermeticityExpectation, KindKey, KnownKeys, OrderExpectation, SpanAttrsExpectation,
    SpanExpectation, StatusExpectation, WindowExpectation, KINDS,
};
pub use pattern::SpanPattern;
pub use span::{
    AttrValue, Attributes, Span, SpanEvent, SpanId, SpanKind, SpanStatus, StatusCode, TraceId,
};
pub use verdict::{verdicts_json, ExpectationKind, SpanSummary, Verdict};
