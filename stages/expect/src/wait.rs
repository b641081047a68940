//! How long a test's spans must be waited for before its expectations can be judged
//! (docs/reference.md §9, "When"). Pure: the expectations in, a rule out; and whether the
//! spans received so far already decide them.
//!
//! The line is drawn by what a later span can do to a verdict. An expectation that asks
//! that *some* span exist (`[[expect.span]]`, `[expect.order]`, `must_include`, ...) can
//! only go from failed to passed as spans arrive: once it holds, no later span undoes it.
//! One that judges *every* span (counts, "no span ...", `[expect.status]`, hermeticity, a
//! window's contained spans, acyclicity) can go either way until the last span is in, and
//! only a quiet period says that it is.

use crate::assertions::Assertions;
use crate::evaluate::{evaluate, Context};
use crate::expectations::{Expectations, OtelValidation};
use crate::pattern::SpanPattern;
use crate::span::Span;
use crate::verdict::ExpectationKind;

/// When the wait for spans after the last step may end.
#[derive(Debug, Clone, PartialEq)]
pub enum SpanWait {
    /// Every expectation asks only that some spans exist: the wait may end as soon as these
    /// names arrived and [`hold_already`] says the spans received hold every expectation.
    Named(Vec<SpanPattern>),
    /// Something judges every span, or nothing names one: the wait ends on the quiet period.
    /// Each entry says what (`expect.counts`, `expect.span[1] (exists = false)`).
    AllSpans(Vec<String>),
}

/// The rule for a test with these expectations and `[assertions]`.
pub fn span_wait(expectations: &Expectations, assertions: &Assertions) -> SpanWait {
    let mut all = every_span_judged(expectations, "expect.");
    if assertions.temporal_ordering_should_be_valid.is_some() {
        all.push("assertions.temporal_ordering_should_be_valid".to_string());
    }
    let named = expectations.awaited_span_names();
    if all.is_empty() && named.is_empty() {
        // Nothing to judge: the spans are only recorded, and the record waits for them all.
        all.push("no expectation names a span".to_string());
    }
    if all.is_empty() {
        SpanWait::Named(named)
    } else {
        SpanWait::AllSpans(all)
    }
}

/// Whether `spans` already hold every expectation (for [`SpanWait::Named`], where a later
/// span cannot undo it). `[[expect.resource]]` is left out: it judges the run, not spans.
pub fn hold_already(spans: &[Span], expectations: &Expectations) -> bool {
    evaluate(spans, expectations, &Context::default())
        .iter()
        .filter(|v| v.kind != ExpectationKind::Resource)
        .all(|v| v.passed)
}

/// The expectations of `e` that judge every span, named with `prefix` (`expect.`, or
/// `otel_validation.expect_` for the tables nested there).
fn every_span_judged(e: &Expectations, prefix: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (i, s) in e.span.iter().enumerate() {
        if !s.exists {
            out.push(format!("{prefix}span[{i}] (exists = false)"));
        }
    }
    if e.status.is_some() {
        out.push(format!("{prefix}status"));
    }
    if e.counts.is_some() {
        out.push(format!("{prefix}counts"));
    }
    if !e.window.is_empty() {
        out.push(format!("{prefix}window"));
    }
    if let Some(graph) = &e.graph {
        if !graph.must_not_cross.is_empty() {
            out.push(format!("{prefix}graph.must_not_cross"));
        }
        if graph.acyclic {
            out.push(format!("{prefix}graph.acyclic"));
        }
    }
    if e.hermeticity.is_some() {
        out.push(format!("{prefix}hermeticity"));
    }
    if let Some(v) = e.otel_validation.as_ref().filter(|v| v.enabled) {
        out.extend(otel_validation(v));
    }
    out
}

fn otel_validation(v: &OtelValidation) -> Vec<String> {
    let mut out = Vec::new();
    // "Every span named N has these attributes": a later N may lack them.
    if v.validate_spans && !v.expected_spans.is_empty() {
        out.push("otel_validation.expected_spans".to_string());
    }
    // `ordered` compares the first span of each name, `parent_child` judges every child.
    if v.validate_traces
        && v.expected_traces
            .iter()
            .any(|t| t.ordered || !t.parent_child.is_empty())
    {
        out.push("otel_validation.expected_traces".to_string());
    }
    // With a gap, an earlier-ending A can move the next B out of reach.
    if v.validate_temporal_ordering
        && v.temporal_constraints
            .iter()
            .any(|c| c.max_gap_ms.is_some() && c.complete_before().is_some())
    {
        out.push("otel_validation.temporal_constraints (max_gap_ms)".to_string());
    }
    let nested = v.nested_expectations();
    out.extend(every_span_judged(&nested, "otel_validation.expect_"));
    out
}
