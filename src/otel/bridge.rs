//! The receiver one-service tests share on the engine's default bridge (docs/otel.md).
//!
//! A test with one service needs no network of its own: it runs on the default bridge, as
//! the same test without expectations would, and reaches `otel-collector` at the bridge's
//! gateway. One listener pair per process is bound there, on the fixed ports, at the first
//! test that can use it; which test a span belongs to is decided by the address it came
//! from, which is its container's address on the bridge. A span that comes before its
//! container's address is known (the address is learned right after the start, and a
//! service may export as it starts) waits here until the test claims it.
//!
//! An address names one running container at a time, but is handed to the next container
//! once that one is gone: a test takes only what arrived from its address after its
//! container was created ([`Routes::route`]); anything older came from an earlier holder.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clnrm_exec::Backend;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use tokio::sync::{watch, OnceCell};

use super::{bind_both, ExportSink, Received};
use crate::sync::lock;

/// Spans from an address no test has claimed are kept this long (a test claims them
/// within its container's start), then dropped.
const UNROUTED_KEEP: Duration = Duration::from_secs(30);
/// At most this many unclaimed exports are kept: a stray sender cannot grow memory.
const UNROUTED_MAX: usize = 10_000;

/// Which test receives what arrives from each address.
#[derive(Default)]
pub struct Routes {
    state: Mutex<RoutesState>,
}

#[derive(Default)]
struct RoutesState {
    by_address: HashMap<IpAddr, Arc<Received>>,
    /// From addresses no test has claimed yet, oldest first.
    unrouted: VecDeque<Unrouted>,
}

struct Unrouted {
    from: IpAddr,
    arrived: Instant,
    export: ExportTraceServiceRequest,
}

impl Routes {
    /// What arrives from `address` goes to `received` until [`Routes::unroute`]; what
    /// came from it since `since` (before its container was created) is handed over now.
    pub fn route(&self, address: IpAddr, received: Arc<Received>, since: Instant) {
        let mut state = lock(&self.state);
        let mut earlier = Vec::new();
        state.unrouted.retain_mut(|u| {
            if u.from != address {
                return true;
            }
            if u.arrived >= since {
                earlier.push(std::mem::take(&mut u.export));
            }
            false
        });
        state.by_address.insert(address, received.clone());
        drop(state);
        for export in earlier {
            received.add(export);
        }
    }

    /// Nothing more from `address` reaches the test that routed it.
    pub fn unroute(&self, address: IpAddr) {
        lock(&self.state).by_address.remove(&address);
    }
}

impl ExportSink for Routes {
    fn add(&self, from: IpAddr, export: ExportTraceServiceRequest) {
        let mut state = lock(&self.state);
        if let Some(received) = state.by_address.get(&from).cloned() {
            drop(state);
            received.add(export);
            return;
        }
        let now = Instant::now();
        while state.unrouted.front().is_some_and(|u| {
            state.unrouted.len() >= UNROUTED_MAX || now.duration_since(u.arrived) > UNROUTED_KEEP
        }) {
            state.unrouted.pop_front();
        }
        state.unrouted.push_back(Unrouted {
            from,
            arrived: now,
            export,
        });
    }
}

/// The listeners on the default bridge's gateway, while they are bound.
pub struct BridgeListeners {
    pub gateway: IpAddr,
    pub routes: Arc<Routes>,
    stop: watch::Sender<bool>,
}

impl Drop for BridgeListeners {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// The default bridge's receiver of one run: bound at the first test that asks, kept until
/// the run ends (dropped), or known to be unavailable (another process holds the ports, or
/// the engine is not on this machine): tests then claim a network of their own.
#[derive(Default)]
pub struct DefaultBridge {
    listeners: OnceCell<Option<Arc<BridgeListeners>>>,
}

impl DefaultBridge {
    /// The bound listeners, binding them at the first call.
    pub async fn listeners(&self, backend: &dyn Backend) -> Option<Arc<BridgeListeners>> {
        self.listeners
            .get_or_init(|| async {
                match bind(backend).await {
                    Ok(listeners) => Some(Arc::new(listeners)),
                    Err(why) => {
                        tracing::info!(
                            "spans are received on a network per test, not the default bridge: {why}"
                        );
                        None
                    }
                }
            })
            .await
            .clone()
    }
}

async fn bind(backend: &dyn Backend) -> Result<BridgeListeners, String> {
    let gateway = backend
        .network_gateway("bridge")
        .await
        .map_err(|e| e.to_string())?;
    let routes = Arc::new(Routes::default());
    let (stop, _) = watch::channel(false);
    // The tasks end when `stop` turns true (the listeners dropped).
    bind_both(gateway, routes.clone() as Arc<dyn ExportSink>, &stop).await?;
    Ok(BridgeListeners {
        gateway,
        routes,
        stop,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span as ProtoSpan};

    fn export(name: &str) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: vec![ProtoSpan {
                        name: name.into(),
                        trace_id: vec![1; 16],
                        span_id: vec![2; 8],
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    fn names(received: &Received) -> Vec<String> {
        lock(&received.state)
            .spans
            .iter()
            .map(|s| s.name.clone())
            .collect()
    }

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(172, 17, 0, 2));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(172, 17, 0, 3));

    #[test]
    fn each_test_gets_only_the_spans_of_its_own_container_address() {
        let routes = Routes::default();
        let (first, second) = (Arc::new(Received::default()), Arc::new(Received::default()));
        let since = Instant::now();
        routes.route(A, first.clone(), since);
        routes.route(B, second.clone(), since);
        routes.add(A, export("checkout"));
        routes.add(B, export("checkout"));
        routes.add(B, export("payment"));
        assert_eq!(names(&first), ["checkout"]);
        assert_eq!(names(&second), ["checkout", "payment"]);
    }

    #[test]
    fn spans_sent_before_the_address_was_known_are_handed_over_when_it_is() {
        let routes = Routes::default();
        let since = Instant::now();
        routes.add(A, export("early"));
        routes.add(B, export("someone else's"));
        let received = Arc::new(Received::default());
        routes.route(A, received.clone(), since);
        routes.add(A, export("late"));
        assert_eq!(names(&received), ["early", "late"]);
    }

    #[test]
    fn spans_from_an_earlier_holder_of_the_address_are_not_handed_over() {
        let routes = Routes::default();
        routes.add(A, export("from the container that had this address before"));
        std::thread::sleep(Duration::from_millis(2));
        let created = Instant::now();
        routes.add(A, export("mine"));
        let received = Arc::new(Received::default());
        routes.route(A, received.clone(), created);
        assert_eq!(names(&received), ["mine"]);
    }

    #[test]
    fn an_unrouted_address_receives_nothing_more() {
        let routes = Routes::default();
        let received = Arc::new(Received::default());
        routes.route(A, received.clone(), Instant::now());
        routes.add(A, export("during"));
        routes.unroute(A);
        routes.add(A, export("after the test ended"));
        assert_eq!(names(&received), ["during"]);
    }

    #[test]
    fn unclaimed_spans_are_bounded() {
        let routes = Routes::default();
        for _ in 0..UNROUTED_MAX + 50 {
            routes.add(B, export("stray"));
        }
        assert!(lock(&routes.state).unrouted.len() <= UNROUTED_MAX);
    }
}
