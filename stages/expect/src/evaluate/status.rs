//! `[expect.status]`: the status of every span, or of every span a pattern matches. Not
//! `[[expect.span]] status`, which judges one span among others (but shares `status_text`).

use std::collections::BTreeMap;

use crate::expectations::{ExpectedStatus, StatusExpectation};
use crate::pattern::SpanPattern;
use crate::span::Span;
use crate::verdict::{ExpectationKind, Verdict};

use super::index::Index;
use super::{Judgement, Verdicts, CLOSEST};

impl Index<'_> {
    pub(super) fn status(&self, status: &StatusExpectation, out: &mut Vec<Verdict>) {
        let mut verdicts = Verdicts::new(ExpectationKind::Status, out);
        if let Some(want) = status.all {
            let all: Vec<usize> = (0..self.spans.len()).collect();
            verdicts.push(self.status_of(
                "expect.status.all".to_string(),
                format!("every span {}", status_wanted(want)),
                &all,
                want,
                None,
            ));
        }
        for (pattern, &want) in &status.by_name {
            verdicts.push(self.status_of(
                format!("expect.status.by_name {pattern}"),
                format!("every span named {pattern} {}", status_wanted(want)),
                &self.matching(pattern),
                want,
                Some(pattern),
            ));
        }
    }

    /// Every span of `set` has an accepted status. An empty set fails: a status check over
    /// no spans would pass a test whose system emitted nothing.
    fn status_of(
        &self,
        expectation: String,
        expected: String,
        set: &[usize],
        want: ExpectedStatus,
        pattern: Option<&SpanPattern>,
    ) -> Judgement {
        if set.is_empty() {
            let (actual, closest) = match pattern {
                Some(p) => (self.missing(p), self.closest_names(p)),
                None => ("no spans received".to_string(), Vec::new()),
            };
            return Judgement {
                expectation,
                passed: false,
                expected,
                actual,
                closest,
            };
        }
        let offenders: Vec<usize> = set
            .iter()
            .copied()
            .filter(|&i| !want.accepts(self.spans[i].status.code))
            .collect();
        let actual = if offenders.is_empty() {
            format!("all {} span(s) do", set.len())
        } else {
            let mut by_code: BTreeMap<&str, usize> = BTreeMap::new();
            for &i in &offenders {
                *by_code
                    .entry(self.spans[i].status.code.as_str())
                    .or_default() += 1;
            }
            let codes: Vec<String> = by_code.iter().map(|(c, n)| format!("{n} {c}")).collect();
            format!(
                "{} of {} span(s) do not: {}",
                offenders.len(),
                set.len(),
                codes.join(", ")
            )
        };
        let closest = offenders
            .iter()
            .take(CLOSEST)
            .map(|&i| {
                self.summary(
                    i,
                    vec![format!("status is {}", status_text(&self.spans[i]))],
                )
            })
            .collect();
        Judgement {
            expectation,
            passed: offenders.is_empty(),
            expected,
            actual,
            closest,
        }
    }
}

pub(super) fn status_text(s: &Span) -> String {
    if s.status.message.is_empty() {
        s.status.code.to_string()
    } else {
        format!("{} ({:?})", s.status.code, s.status.message)
    }
}

fn status_wanted(want: ExpectedStatus) -> String {
    match want {
        ExpectedStatus::Ok => "has status OK (or UNSET)".to_string(),
        other => format!("has status {other}"),
    }
}
