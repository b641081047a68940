//! The original clnrm's other tables, judged: `[[expect.temporal]]` (an order pair),
//! `[[expect.graph]]` edges (a span expectation on the child), `[[expect.resource]]` (what
//! the run had, from the [`Context`]) and `[otel_validation]`. Where the original judged
//! a table with a rule `[expect.*]` already has, the same rule is used, named after the
//! table the user wrote.

use std::collections::BTreeSet;

use crate::expectations::{
    AttrsExpectation, DurationBounds, ExpectedSpan, ExpectedTrace, GraphEdge, OtelValidation,
    ResourceExpectation, SpanExpectation, TemporalConstraint, TemporalExpectation,
};
use crate::pattern::SpanPattern;
use crate::span::Span;
use crate::verdict::{ExpectationKind, Verdict};

use super::index::Index;
use super::{verdict, Context, Judgement, Verdicts};

impl Index<'_> {
    pub(super) fn temporal(&self, i: usize, t: &TemporalExpectation) -> Verdict {
        let mut j = self.order_pair(i, &t.before, &t.after, true);
        j.expectation = format!("expect.temporal[{i}] {} before {}", t.before, t.after);
        verdict(ExpectationKind::Temporal, i, j)
    }

    /// `[[expect.graph]] parent, child`: some child span whose parent is `parent` (and that
    /// carries `attrs.all`).
    pub(super) fn graph_edge(&self, i: usize, edge: &GraphEdge) -> Verdict {
        let child = SpanExpectation {
            parent: Some(edge.parent.clone()),
            attrs: AttrsExpectation {
                all: edge.attrs.clone(),
                any: Vec::new(),
            },
            ..SpanExpectation::named(edge.child.as_str())
        };
        let mut v = self.span(i, &child);
        v.kind = ExpectationKind::Graph;
        let relationship = edge.relationship.as_deref().unwrap_or("calls");
        v.expectation = format!(
            "expect.graph[{i}] {} {relationship} {}",
            edge.parent, edge.child
        );
        v
    }

    /// `[otel_validation]`, each part as its `validate_*` flag says.
    pub(super) fn otel_validation(
        &self,
        v: &OtelValidation,
        context: &Context,
        out: &mut Vec<Verdict>,
    ) {
        if !v.enabled {
            return;
        }
        let mut verdicts = Verdicts::new(ExpectationKind::OtelValidation, out);
        if v.validate_spans {
            for (k, s) in v.expected_spans.iter().enumerate() {
                for j in self.expected_span(k, s) {
                    verdicts.push(j);
                }
            }
        }
        if v.validate_traces {
            for (k, t) in v.expected_traces.iter().enumerate() {
                verdicts.push(self.expected_trace(k, t));
            }
        }
        if v.validate_temporal_ordering {
            for (k, c) in v.temporal_constraints.iter().enumerate() {
                for j in self.temporal_constraint(k, c) {
                    verdicts.push(j);
                }
            }
        }
        let nested = v.nested_expectations();
        for mut inner in super::evaluate_with(self, &nested, context) {
            if let Some(rest) = inner.expectation.strip_prefix("expect.") {
                inner.expectation = format!("otel_validation.expect_{rest}");
            }
            inner.kind = ExpectationKind::OtelValidation;
            verdicts.push(Judgement {
                expectation: inner.expectation,
                passed: inner.passed,
                expected: inner.expected,
                actual: inner.actual,
                closest: inner.closest,
            });
        }
    }

    fn expected_span(&self, k: usize, s: &ExpectedSpan) -> Vec<Judgement> {
        let label = format!("otel_validation.expected_spans[{k}] {}", s.name);
        let candidates = self.matching(&s.name);
        let mut out = Vec::new();
        if candidates.is_empty() && !s.required {
            out.push(Judgement {
                expectation: label,
                passed: true,
                expected: format!("a span named {} (not required)", s.name),
                actual: "none received, and it is not required".to_string(),
                closest: Vec::new(),
            });
            return out;
        }
        let duration_ms = (s.min_duration_ms.is_some() || s.max_duration_ms.is_some()).then_some(
            DurationBounds {
                min: s.min_duration_ms,
                max: s.max_duration_ms,
            },
        );
        let e = SpanExpectation {
            attrs: AttrsExpectation {
                all: s.attributes.clone(),
                any: Vec::new(),
            },
            duration_ms,
            ..SpanExpectation::named(s.name.as_str())
        };
        let expected = format!(
            "every span named {} with attributes {:?}{}",
            s.name,
            s.attributes
                .iter()
                .map(|(k, v)| format!("{k}={}", v.0))
                .collect::<Vec<_>>(),
            duration_text(s)
        );
        if candidates.is_empty() {
            out.push(Judgement {
                expectation: label.clone(),
                passed: false,
                expected,
                actual: self.missing(&s.name),
                closest: self.closest_names(&s.name),
            });
        } else {
            let misses: Vec<(usize, Vec<String>)> = candidates
                .iter()
                .map(|&i| (i, self.span_misses(&e, i, true)))
                .filter(|(_, m)| !m.is_empty())
                .collect();
            out.push(Judgement {
                expectation: label.clone(),
                passed: misses.is_empty(),
                expected,
                actual: match misses.first() {
                    None => format!("all {} meet it", candidates.len()),
                    Some((_, first)) => format!(
                        "{} of {} miss it; the first: {}",
                        misses.len(),
                        candidates.len(),
                        first.join("; ")
                    ),
                },
                closest: misses
                    .into_iter()
                    .take(super::CLOSEST)
                    .map(|(i, m)| self.summary(i, m))
                    .collect(),
            });
        }
        if let Some(min) = s.min_count {
            let n = candidates.len() as u64;
            out.push(Judgement {
                expectation: format!("{label} min_count"),
                passed: n >= min,
                expected: format!("at least {min} span(s) named {}", s.name),
                actual: format!("{n} received"),
                closest: Vec::new(),
            });
        }
        out
    }

    fn expected_trace(&self, k: usize, t: &ExpectedTrace) -> Judgement {
        let names: Vec<String> = t.span_names.iter().map(|n| n.to_string()).collect();
        let expectation = format!(
            "otel_validation.expected_traces[{k}] [{}]",
            names.join(", ")
        );
        let mut expected = vec![format!("spans named {}", names.join(", "))];
        let in_scope = |i: &usize| {
            t.trace_id
                .as_deref()
                .is_none_or(|id| self.spans[*i].trace_id.to_string().eq_ignore_ascii_case(id))
        };
        let sets: Vec<Vec<usize>> = t
            .span_names
            .iter()
            .map(|n| self.matching(n).into_iter().filter(in_scope).collect())
            .collect();
        let mut problems = Vec::new();
        for (name, set) in t.span_names.iter().zip(&sets) {
            if set.is_empty() {
                problems.push(self.missing(name));
            }
        }
        if let Some(id) = &t.trace_id {
            expected.push(format!("in trace {id}"));
        }
        if t.complete {
            expected.push("all in one trace".to_string());
            let traces: Vec<BTreeSet<_>> = sets
                .iter()
                .map(|set| set.iter().map(|&i| self.spans[i].trace_id).collect())
                .collect();
            let common = traces
                .iter()
                .skip(1)
                .fold(traces.first().cloned().unwrap_or_default(), |acc, t| {
                    acc.intersection(t).copied().collect()
                });
            if problems.is_empty() && common.is_empty() {
                problems.push("no single trace holds all of them".to_string());
            }
        }
        if t.ordered {
            expected.push("the first of each starting in this order".to_string());
            let firsts: Vec<Option<&Span>> = sets
                .iter()
                .map(|set| {
                    set.iter()
                        .map(|&i| &self.spans[i])
                        .min_by_key(|s| s.start_unix_nanos)
                })
                .collect();
            for pair in firsts.windows(2) {
                if let [Some(a), Some(b)] = pair {
                    if a.start_unix_nanos > b.start_unix_nanos {
                        problems.push(format!(
                            "{:?} starts at +{:.3} ms, after {:?} at +{:.3} ms",
                            a.name,
                            self.rel_ms(a.start_unix_nanos),
                            b.name,
                            self.rel_ms(b.start_unix_nanos)
                        ));
                    }
                }
            }
        }
        for [parent, child] in &t.parent_child {
            expected.push(format!("every {child} a child of {parent}"));
            let children: Vec<usize> = self.matching(child).into_iter().filter(in_scope).collect();
            if children.is_empty() {
                problems.push(self.missing(child));
                continue;
            }
            let orphans = children
                .iter()
                .filter(|&&i| {
                    self.parent(i)
                        .is_none_or(|p| !parent.matches(&self.spans[p].name))
                })
                .count();
            if orphans > 0 {
                problems.push(format!(
                    "{orphans} of {} span(s) named {child} have no parent named {parent}",
                    children.len()
                ));
            }
        }
        let closest = t
            .span_names
            .iter()
            .zip(&sets)
            .filter(|(_, set)| set.is_empty())
            .flat_map(|(name, _)| self.closest_names(name))
            .take(super::CLOSEST)
            .collect();
        Judgement {
            expectation,
            passed: problems.is_empty(),
            expected: expected.join("; "),
            actual: if problems.is_empty() {
                "such a trace was received".to_string()
            } else {
                problems.join("; ")
            },
            closest,
        }
    }

    fn temporal_constraint(&self, k: usize, c: &TemporalConstraint) -> Vec<Judgement> {
        let because = |expected: String| match &c.reason {
            Some(reason) => format!("{expected} ({reason})"),
            None => expected,
        };
        let mut out = Vec::new();
        for (j, after) in c.must_precede.iter().enumerate() {
            let mut judgement = self.order_pair(j, &c.span_name, after, true);
            judgement.expectation = format!(
                "otel_validation.temporal_constraints[{k}] {} must_precede {after}",
                c.span_name
            );
            judgement.expected = because(judgement.expected);
            out.push(judgement);
        }
        if let Some(target) = c.complete_before() {
            out.push(self.complete_before(k, c, &target, because));
        }
        out
    }

    /// Some A ends no later than some B starts, and (with `max_gap_ms`) the first B to start
    /// after the earliest A ends does so within the gap.
    fn complete_before(
        &self,
        k: usize,
        c: &TemporalConstraint,
        target: &SpanPattern,
        because: impl Fn(String) -> String,
    ) -> Judgement {
        let a = &c.span_name;
        let expectation =
            format!("otel_validation.temporal_constraints[{k}] {a} must_complete_before {target}");
        let mut expected = format!("some {a} ends before some {target} starts");
        if let Some(gap) = c.max_gap_ms {
            expected.push_str(&format!(", at most {gap} ms before"));
        }
        let expected = because(expected);
        let ends = self.matching(a);
        let starts = self.matching(target);
        let missing = if ends.is_empty() {
            Some(a)
        } else if starts.is_empty() {
            Some(target)
        } else {
            None
        };
        if let Some(absent) = missing {
            return Judgement {
                expectation,
                passed: false,
                expected,
                actual: self.missing(absent),
                closest: self.closest_names(absent),
            };
        }
        let end = ends
            .iter()
            .map(|&i| self.spans[i].end_unix_nanos)
            .min()
            .unwrap_or(0);
        let next_start = starts
            .iter()
            .map(|&i| self.spans[i].start_unix_nanos)
            .filter(|&s| s >= end)
            .min();
        let (passed, actual) = match next_start {
            None => (
                false,
                format!(
                    "every {target} starts before the earliest {a} ends (+{:.3} ms)",
                    self.rel_ms(end)
                ),
            ),
            Some(start) => {
                let gap = (start - end) as f64 / 1e6;
                let within = c.max_gap_ms.is_none_or(|max| gap <= max);
                (
                    within,
                    format!("{target} starts {gap:.3} ms after the earliest {a} ends"),
                )
            }
        };
        Judgement {
            expectation,
            passed,
            expected,
            actual,
            closest: Vec::new(),
        }
    }
}

fn duration_text(s: &ExpectedSpan) -> String {
    match (s.min_duration_ms, s.max_duration_ms) {
        (Some(min), Some(max)) => format!(", lasting {min}..{max} ms"),
        (Some(min), None) => format!(", lasting at least {min} ms"),
        (None, Some(max)) => format!(", lasting at most {max} ms"),
        (None, None) => String::new(),
    }
}

/// `[[expect.resource]]`: judged on what the run had (the [`Context`]), not on spans.
pub(super) fn resource(i: usize, r: &ResourceExpectation, context: &Context) -> Verdict {
    let known: Vec<&str> = context
        .resources
        .iter()
        .filter(|(kind, _)| *kind == r.kind)
        .map(|(_, name)| name.as_str())
        .collect();
    let present = known.contains(&r.name.as_str());
    let listed = if known.is_empty() {
        format!("the run had no {}", r.kind)
    } else {
        format!("the run's {}s: {}", r.kind, known.join(", "))
    };
    let (expected, actual) = if r.exists {
        (format!("a {} named {:?}", r.kind, r.name), listed)
    } else {
        (format!("no {} named {:?}", r.kind, r.name), listed)
    };
    verdict(
        ExpectationKind::Resource,
        i,
        Judgement {
            expectation: format!("expect.resource[{i}] {} {:?}", r.kind, r.name),
            passed: present == r.exists,
            expected,
            actual,
            closest: Vec::new(),
        },
    )
}
