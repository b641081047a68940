//! `[expect.hermeticity]`: no client span calls outside the test, every span's resource
//! carries the given attributes, no span carries a forbidden attribute. Not the container
//! isolation itself, which is the engine's.

use crate::expectations::HermeticityExpectation;
use crate::span::{AttrValue, SpanKind};
use crate::verdict::{ExpectationKind, Verdict};

use super::index::Index;
use super::{Context, Judgement, Verdicts, CLOSEST, COLLECTOR_HOST};

impl Index<'_> {
    pub(super) fn hermeticity(
        &self,
        h: &HermeticityExpectation,
        context: &Context,
        out: &mut Vec<Verdict>,
    ) {
        let mut verdicts = Verdicts::new(ExpectationKind::Hermeticity, out);
        if h.no_external_services {
            verdicts.push(self.no_external_services(context));
        }
        if !h.resource_attrs.is_empty() {
            verdicts.push(self.resource_attrs(h));
        }
        if !h.span_attrs.forbid_keys.is_empty() {
            verdicts.push(self.forbidden_keys(&h.span_attrs.forbid_keys));
        }
    }

    fn no_external_services(&self, context: &Context) -> Judgement {
        let allowed = |host: &str| {
            let host = host.trim_end_matches('.');
            host.eq_ignore_ascii_case(COLLECTOR_HOST)
                || is_loopback(host)
                || context
                    .service_names
                    .iter()
                    .any(|s| s.eq_ignore_ascii_case(host))
        };
        let mut offenders: Vec<(usize, String)> = Vec::new();
        for (i, s) in self.spans.iter().enumerate() {
            if !matches!(s.kind, SpanKind::Client | SpanKind::Producer) {
                continue;
            }
            // A span has few attributes: walking them beats four map lookups per span.
            for (key, value) in &s.attributes {
                if !PEER_KEYS.contains(&key.as_str()) {
                    continue;
                }
                // Peer attributes are strings; others are rendered only when they occur.
                let rendered;
                let text = match value {
                    AttrValue::String(s) => s.as_str(),
                    other => {
                        rendered = other.to_string();
                        rendered.as_str()
                    }
                };
                if let Some(host) = host_of(text).filter(|h| !allowed(h)) {
                    offenders.push((i, format!("calls {host:?} ({key})")));
                    break;
                }
            }
        }
        let mut permitted: Vec<&str> = context.service_names.iter().map(String::as_str).collect();
        permitted.push(COLLECTOR_HOST);
        self.no_offenders(
            "expect.hermeticity.no_external_services",
            format!("client spans call only {}", permitted.join(", ")),
            offenders,
            "no client span names another peer".to_string(),
            |n, name, why| format!("{n} span(s) call outside, first {name:?} {why}"),
        )
    }

    /// Every span's resource carries each attribute. No spans at all fails: the check is
    /// about what spans carry, and nothing arriving proves nothing.
    fn resource_attrs(&self, h: &HermeticityExpectation) -> Judgement {
        let wanted: Vec<String> = h
            .resource_attrs
            .iter()
            .map(|(k, v)| format!("{k}={:?}", v.0))
            .collect();
        let mut offenders: Vec<(usize, String)> = Vec::new();
        for (i, s) in self.spans.iter().enumerate() {
            for (key, want) in &h.resource_attrs {
                let why = match s.resource.get(key) {
                    None => format!("resource has no {key}"),
                    Some(v) if !v.is_text(&want.0) => {
                        format!(
                            "resource {key} is {:?}, expected {:?}",
                            v.to_string(),
                            want.0
                        )
                    }
                    Some(_) => continue,
                };
                offenders.push((i, why));
                break;
            }
        }
        let total = self.spans.len();
        let clean = if total == 0 {
            "no spans received".to_string()
        } else {
            format!("all {total} span(s) do")
        };
        let mut judgement = self.no_offenders(
            "expect.hermeticity.resource_attrs",
            format!("every span's resource has {}", wanted.join(", ")),
            offenders,
            clean,
            |n, name, why| format!("{n} of {total} span(s) do not, first {name:?}: {why}"),
        );
        judgement.passed &= total > 0;
        judgement
    }

    fn forbidden_keys(&self, keys: &[String]) -> Judgement {
        let offenders: Vec<(usize, String)> = self
            .spans
            .iter()
            .enumerate()
            .filter_map(|(i, s)| {
                keys.iter()
                    .find(|k| s.attributes.contains_key(*k))
                    .map(|k| (i, format!("has {k}")))
            })
            .collect();
        self.no_offenders(
            "expect.hermeticity.span_attrs.forbid_keys",
            format!("no span has attribute {}", keys.join(", ")),
            offenders,
            "no span carries them".to_string(),
            |n, name, why| format!("{n} span(s) do, first {name:?} {why}"),
        )
    }

    /// Judges "no span offends": holds when `offenders` (span, why) is empty; otherwise
    /// `first` words the count and the first offender, and the first few are shown.
    fn no_offenders(
        &self,
        expectation: &str,
        expected: String,
        offenders: Vec<(usize, String)>,
        clean: String,
        first: impl FnOnce(usize, &str, &str) -> String,
    ) -> Judgement {
        let actual = match offenders.first() {
            None => clean,
            Some((i, why)) => first(offenders.len(), &self.spans[*i].name, why),
        };
        Judgement {
            expectation: expectation.to_string(),
            passed: offenders.is_empty(),
            expected,
            actual,
            closest: offenders
                .into_iter()
                .take(CLOSEST)
                .map(|(i, why)| self.summary(i, vec![why]))
                .collect(),
        }
    }
}

/// Attributes that name the peer a client span calls (docs/reference.md §9), plus `url.full`, the current
/// semantic-conventions name of `http.url`.
const PEER_KEYS: &[&str] = &["server.address", "net.peer.name", "http.url", "url.full"];

/// The host of an address or URL: `http://user@host:80/p` → `host`, `[::1]:80` → `::1`.
fn host_of(text: &str) -> Option<&str> {
    let rest = text.split_once("://").map_or(text, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next()?;
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if let Some(v6) = host_port.strip_prefix('[') {
        v6.split(']').next()?
    } else if host_port.matches(':').count() == 1 {
        host_port.split(':').next()?
    } else {
        host_port
    };
    (!host.is_empty()).then_some(host)
}

/// A container calling itself is not an external service.
fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost") || host == "::1" || host.starts_with("127.")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_come_out_of_addresses_and_urls() {
        assert_eq!(host_of("db"), Some("db"));
        assert_eq!(host_of("db:5432"), Some("db"));
        assert_eq!(
            host_of("https://user@api.example.com:8443/x?y"),
            Some("api.example.com")
        );
        assert_eq!(host_of("http://[::1]:80/"), Some("::1"));
        assert_eq!(host_of("::1"), Some("::1"));
        assert_eq!(host_of(""), None);
    }
}
