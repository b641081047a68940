//! `[[expect.window]]`: every span named in `contains` lies within some `outer` span of the
//! same trace. Not ordering between spans (that is order).

use std::collections::HashMap;

use crate::expectations::WindowExpectation;
use crate::pattern::SpanPattern;
use crate::span::TraceId;
use crate::verdict::{ExpectationKind, SpanSummary, Verdict};

use super::index::Index;
use super::{verdict, Judgement, CLOSEST};

impl Index<'_> {
    pub(super) fn window(&self, index: usize, w: &WindowExpectation) -> Verdict {
        let expected = format!(
            "every span named {} lies within a {} span of its trace",
            quoted_list(&w.contains),
            w.outer
        );
        let judgement = |passed, actual, closest| {
            verdict(
                ExpectationKind::Window,
                index,
                Judgement {
                    expectation: format!("expect.window[{index}] {}", w.outer),
                    passed,
                    expected: expected.clone(),
                    actual,
                    closest,
                },
            )
        };
        let outers = self.matching(&w.outer);
        if outers.is_empty() {
            return judgement(false, self.missing(&w.outer), self.closest_names(&w.outer));
        }
        let mut by_trace: HashMap<TraceId, Vec<(u64, u64)>> = HashMap::new();
        for &i in &outers {
            let s = &self.spans[i];
            by_trace
                .entry(s.trace_id)
                .or_default()
                .push((s.start_unix_nanos, s.end_unix_nanos));
        }
        let mut problems: Vec<String> = Vec::new();
        let mut offenders: Vec<SpanSummary> = Vec::new();
        let mut checked = 0;
        for inner in &w.contains {
            let set = self.matching(inner);
            if set.is_empty() {
                problems.push(self.missing(inner));
                offenders.extend(self.closest_names(inner));
                continue;
            }
            for i in set {
                checked += 1;
                let s = &self.spans[i];
                let Some(windows) = by_trace.get(&s.trace_id) else {
                    let why = format!("no {} span in its trace {}", w.outer, s.trace_id);
                    problems.push(format!("{:?}: {why}", s.name));
                    offenders.push(self.summary(i, vec![why]));
                    continue;
                };
                let inside = windows
                    .iter()
                    .any(|&(start, end)| start <= s.start_unix_nanos && s.end_unix_nanos <= end);
                if !inside {
                    let spans: Vec<String> = windows
                        .iter()
                        .map(|&(a, b)| format!("+{:.3}..+{:.3}", self.rel_ms(a), self.rel_ms(b)))
                        .collect();
                    let why = format!(
                        "runs +{:.3}..+{:.3} ms, outside every {} of its trace ({} ms)",
                        self.rel_ms(s.start_unix_nanos),
                        self.rel_ms(s.end_unix_nanos),
                        w.outer,
                        spans.join(", ")
                    );
                    problems.push(format!("{:?} {why}", s.name));
                    offenders.push(self.summary(i, vec![why]));
                }
            }
        }
        if problems.is_empty() {
            judgement(true, format!("all {checked} span(s) do"), Vec::new())
        } else {
            let more = if problems.len() > 1 {
                format!(" (and {} more)", problems.len() - 1)
            } else {
                String::new()
            };
            offenders.truncate(CLOSEST);
            judgement(false, format!("{}{more}", problems[0]), offenders)
        }
    }
}

fn quoted_list(patterns: &[SpanPattern]) -> String {
    patterns
        .iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
