//! Judging received spans against expectations (docs/reference.md §9): builds one [`Index`] over the
//! spans, then runs one pass per expectation kind, each in its own module, and numbers the
//! verdicts. This module holds the entry point, the [`Context`] and the verdict numbering;
//! it is not where any kind's rules live. Pure: spans and expectations in, verdicts out.

mod counts;
mod graph;
mod hermeticity;
mod index;
mod legacy;
mod order;
mod span;
mod status;
mod window;

use std::collections::BTreeSet;

use crate::expectations::{Expectations, ResourceType};
use crate::span::Span;
use crate::verdict::{ExpectationKind, SpanSummary, Verdict};
use index::Index;

/// What evaluation needs besides spans and expectations.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Context {
    /// The test's service names: the peers `no_external_services` allows (besides
    /// `otel-collector`, always allowed, and loopback, which is the caller itself).
    pub service_names: BTreeSet<String>,
    /// What the run had, for `[[expect.resource]]`: containers (by service name), its
    /// network, volumes (by host and container path).
    pub resources: BTreeSet<(ResourceType, String)>,
}

impl Context {
    pub fn new<S: Into<String>>(service_names: impl IntoIterator<Item = S>) -> Self {
        Context {
            service_names: service_names.into_iter().map(Into::into).collect(),
            resources: BTreeSet::new(),
        }
    }

    /// The same context, knowing the run had a `kind` resource named `name`.
    pub fn with_resource(mut self, kind: ResourceType, name: impl Into<String>) -> Self {
        self.resources.insert((kind, name.into()));
        self
    }
}

/// The collector's name on every test network: always a permitted peer.
pub const COLLECTOR_HOST: &str = "otel-collector";

/// How many spans a failure message shows.
const CLOSEST: usize = 3;

/// Judges `spans` against every expectation, in the order of docs/reference.md §9's list: span, order,
/// status, counts, window, graph, hermeticity; then the original's temporal, resource and
/// `[otel_validation]` tables.
pub fn evaluate(spans: &[Span], expectations: &Expectations, context: &Context) -> Vec<Verdict> {
    evaluate_with(&Index::new(spans), expectations, context)
}

fn evaluate_with(index: &Index, expectations: &Expectations, context: &Context) -> Vec<Verdict> {
    let mut out = Vec::new();
    for (i, e) in expectations.span.iter().enumerate() {
        out.push(index.span(i, e));
    }
    if let Some(order) = &expectations.order {
        index.order(order, &mut out);
    }
    if let Some(status) = &expectations.status {
        index.status(status, &mut out);
    }
    if let Some(counts) = &expectations.counts {
        index.counts(counts, &mut out);
    }
    for (i, w) in expectations.window.iter().enumerate() {
        out.push(index.window(i, w));
    }
    if let Some(graph) = &expectations.graph {
        index.graph(graph, &mut out);
        for (i, edge) in graph.edges.iter().enumerate() {
            out.push(index.graph_edge(i, edge));
        }
    }
    if let Some(h) = &expectations.hermeticity {
        index.hermeticity(h, context, &mut out);
    }
    for (i, t) in expectations.temporal.iter().enumerate() {
        out.push(index.temporal(i, t));
    }
    for (i, r) in expectations.resource.iter().enumerate() {
        out.push(legacy::resource(i, r, context));
    }
    if let Some(v) = &expectations.otel_validation {
        index.otel_validation(v, context, &mut out);
    }
    out
}

/// Appends verdicts of one kind, numbering them.
struct Verdicts<'v> {
    kind: ExpectationKind,
    out: &'v mut Vec<Verdict>,
    next: usize,
}

/// A verdict before it is numbered.
struct Judgement {
    expectation: String,
    passed: bool,
    expected: String,
    actual: String,
    closest: Vec<SpanSummary>,
}

impl<'v> Verdicts<'v> {
    fn new(kind: ExpectationKind, out: &'v mut Vec<Verdict>) -> Self {
        Verdicts { kind, out, next: 0 }
    }

    fn push(&mut self, j: Judgement) {
        self.out.push(verdict(self.kind, self.next, j));
        self.next += 1;
    }
}

fn verdict(kind: ExpectationKind, index: usize, j: Judgement) -> Verdict {
    Verdict {
        kind,
        index,
        expectation: j.expectation,
        passed: j.passed,
        expected: j.expected,
        actual: j.actual,
        closest: j.closest,
    }
}
