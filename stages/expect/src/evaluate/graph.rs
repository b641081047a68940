//! `[expect.graph]`: parent → child edges between span names that must or must not exist,
//! and whether parent links form a cycle. Not time ordering (that is order and window).

use std::collections::BTreeSet;

use crate::expectations::GraphExpectation;
use crate::pattern::SpanPattern;
use crate::verdict::{ExpectationKind, Verdict};

use super::index::Index;
use super::{Judgement, Verdicts, CLOSEST};

impl Index<'_> {
    pub(super) fn graph(&self, graph: &GraphExpectation, out: &mut Vec<Verdict>) {
        let mut verdicts = Verdicts::new(ExpectationKind::Graph, out);
        for (j, [parent, child]) in graph.must_include.iter().enumerate() {
            verdicts.push(self.edge_included(j, parent, child));
        }
        for (j, [a, b]) in graph.must_not_cross.iter().enumerate() {
            verdicts.push(self.edge_absent(j, a, b));
        }
        if graph.acyclic {
            verdicts.push(self.acyclic());
        }
    }

    fn edge_included(&self, j: usize, parent: &SpanPattern, child: &SpanPattern) -> Judgement {
        let expectation = format!("expect.graph.must_include[{j}] [{parent}, {child}]");
        let expected = format!("a span named {child} whose parent is named {parent}");
        let children = self.matching(child);
        if children.is_empty() {
            return Judgement {
                expectation,
                passed: false,
                expected,
                actual: self.missing(child),
                closest: self.closest_names(child),
            };
        }
        let passed = children.iter().any(|&i| {
            self.parent(i)
                .is_some_and(|p| parent.matches(&self.spans[p].name))
        });
        if passed {
            return Judgement {
                expectation,
                passed,
                expected,
                actual: "such an edge was received".to_string(),
                closest: Vec::new(),
            };
        }
        let parents: BTreeSet<String> = children
            .iter()
            .map(|&i| {
                self.parent_name(i)
                    .map_or("none (root)".to_string(), |p| format!("{p:?}"))
            })
            .collect();
        Judgement {
            expectation,
            passed,
            expected,
            actual: format!(
                "spans named {child} have parents: {}",
                parents.into_iter().collect::<Vec<_>>().join(", ")
            ),
            closest: children
                .iter()
                .take(CLOSEST)
                .map(|&i| self.summary(i, Vec::new()))
                .collect(),
        }
    }

    fn edge_absent(&self, j: usize, a: &SpanPattern, b: &SpanPattern) -> Judgement {
        let expectation = format!("expect.graph.must_not_cross[{j}] [{a}, {b}]");
        let expected = format!("no edge between {a} and {b}, either way");
        let mut children = self.matching(a);
        children.extend(self.matching(b));
        children.sort_unstable();
        children.dedup();
        let crossing: Vec<(usize, usize)> = children
            .into_iter()
            .filter_map(|c| self.parent(c).map(|p| (p, c)))
            .filter(|&(p, c)| {
                let (pn, cn) = (&self.spans[p].name, &self.spans[c].name);
                (a.matches(pn) && b.matches(cn)) || (b.matches(pn) && a.matches(cn))
            })
            .collect();
        let actual = match crossing.first() {
            None => "no such edge".to_string(),
            Some(&(p, c)) => format!(
                "{} edge(s), first {:?} → {:?}",
                crossing.len(),
                self.spans[p].name,
                self.spans[c].name
            ),
        };
        Judgement {
            expectation,
            passed: crossing.is_empty(),
            expected,
            actual,
            closest: crossing
                .iter()
                .take(CLOSEST)
                .map(|&(p, c)| self.summary(c, vec![format!("child of {:?}", self.spans[p].name)]))
                .collect(),
        }
    }

    /// Follows parent links from every span; a link back into the chain being walked is a
    /// cycle. Each span is walked once, so this is linear.
    fn acyclic(&self) -> Judgement {
        #[derive(Clone, Copy, PartialEq)]
        enum Mark {
            New,
            OnChain,
            Done,
        }
        let mut marks = vec![Mark::New; self.spans.len()];
        let mut cycle: Option<Vec<usize>> = None;
        let mut chain = Vec::new();
        'spans: for start in 0..self.spans.len() {
            let mut at = Some(start);
            while let Some(i) = at {
                match marks[i] {
                    Mark::Done => break,
                    Mark::OnChain => {
                        let from = chain.iter().position(|&c| c == i).unwrap_or(0);
                        let mut looped = chain[from..].to_vec();
                        looped.push(i);
                        cycle = Some(looped);
                        break 'spans;
                    }
                    Mark::New => {
                        marks[i] = Mark::OnChain;
                        chain.push(i);
                        at = self.parent(i);
                    }
                }
            }
            for i in chain.drain(..) {
                marks[i] = Mark::Done;
            }
        }
        let (passed, actual, closest) = match cycle {
            None => (true, "no span is its own ancestor".to_string(), Vec::new()),
            Some(looped) => {
                let names: Vec<String> = looped
                    .iter()
                    .rev()
                    .map(|&i| format!("{:?}", self.spans[i].name))
                    .collect();
                (
                    false,
                    format!("parent cycle: {}", names.join(" → ")),
                    looped
                        .iter()
                        .take(CLOSEST)
                        .map(|&i| self.summary(i, Vec::new()))
                        .collect(),
                )
            }
        };
        Judgement {
            expectation: "expect.graph.acyclic".to_string(),
            passed,
            expected: "span parents form no cycle".to_string(),
            actual,
            closest,
        }
    }
}
