//! clnrm's expect stage: judges the spans a test received against its `[expect.*]` tables
//! (docs/reference.md §9) and returns one verdict per expectation; and judges the original
//! clnrm's `[assertions]` on what a run observed ([`judge_assertions`]). Pure: plain data in and out, no I/O,
//! no clock; receiving spans and converting OTLP into [`Span`] is the engine's job.
//!
//! Where docs/reference.md §9 leaves a choice, this stage takes the one that cannot pass a test whose
//! system emitted nothing:
//! - `[expect.status]` (`all`, each `by_name` pattern) and `resource_attrs.must_match`
//!   fail when no span is there to check, instead of holding vacuously.
//! - Span name patterns are globs everywhere a span name is written (name, parent, order,
//!   window, graph, `by_name`); event names and attribute keys are exact.
//! - `OK` accepts `UNSET` wherever a status is expected, `[[expect.span]] status` included.
//! - `no_external_services` judges client and producer spans (both call out); loopback
//!   hosts are the caller itself, so they are allowed with the services and
//!   `otel-collector`; `url.full` is read like `http.url`.
//! - Times compare inclusively: an A ending at the instant B starts precedes B, and a span
//!   sharing its outer span's start or end lies within it.
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

mod assertions;
mod evaluate;
mod expectations;
mod fixed_names;
mod pattern;
mod span;
mod verdict;
mod wait;

pub use assertions::{
    judge_assertions, AssertionVerdict, Assertions, ObservedRun, ObservedService, ObservedStep,
    ASSERTION_KEYS,
};
pub use evaluate::{evaluate, Context, COLLECTOR_HOST};
pub use expectations::{
    known_keys, AttrPair, AttrsExpectation, CountBound, CountsExpectation, DurationBounds,
    EventsExpectation, Expectations, ExpectedSpan, ExpectedStatus, ExpectedTrace, ExpectedValue,
    GraphEdge, GraphExpectation, HermeticityExpectation, KindKey, KnownKeys, OrderExpectation,
    OtelValidation, ResourceExpectation, ResourceType, SpanAttrsExpectation, SpanExpectation,
    StatusExpectation, TemporalConstraint, TemporalExpectation, WindowExpectation, KINDS,
};
pub use pattern::SpanPattern;
pub use span::{
    AttrValue, Attributes, Span, SpanEvent, SpanId, SpanKind, SpanStatus, StatusCode, TraceId,
};
pub use verdict::{verdicts_json, ExpectationKind, SpanSummary, Verdict};
pub use wait::{hold_already, span_wait, SpanWait};
