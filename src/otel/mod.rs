//! The engine's OTLP receiver (docs/reference.md §9): while a test runs, its services reach
//! it as `otel-collector` (an `/etc/hosts` entry) on 4318 (HTTP) and 4317 (gRPC). A test with
//! one service shares the run's listeners on the default bridge's gateway, which route each
//! export by the sender's address (`bridge`); a test with several services, or one whose
//! run could not bind the bridge, has a [`TestReceiver`] listening on the gateway of its own
//! network. Either way the spans of concurrent tests, and of concurrent clnrm processes,
//! never mix, and nothing outside this machine's bridges can reach the listeners. Why this
//! mechanism: `docs/otel.md`.
//!
//! Not judging spans: that is the pure `clnrm_expect` stage; this module receives, waits
//! (`wait_for_span`, the flush rule) and writes what arrived to `.clnrm/spans/<test>.jsonl`.

mod bridge;
mod convert;
pub mod export;
mod listen;
pub mod self_spans;

use std::collections::BTreeMap;
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clnrm_exec::{Backend, BoxFuture, ServiceAdditions, SpanCollector};
use clnrm_expect::{Expectations, Span, SpanPattern};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use tokio::sync::{watch, Notify};

pub use bridge::DefaultBridge;
pub use convert::spans_of;

use crate::sync::lock;
use bridge::BridgeListeners;

/// The name every service reaches the receiver by.
pub const COLLECTOR_HOST: &str = clnrm_expect::COLLECTOR_HOST;
pub const HTTP_PORT: u16 = 4318;
pub const GRPC_PORT: u16 = 4317;
/// What every service gets as `OTEL_EXPORTER_OTLP_ENDPOINT` (and the `endpoint` template
/// variable's default).
pub const ENDPOINT: &str = "http://otel-collector:4318";
/// `[otel] flush_timeout` when unset.
pub const DEFAULT_FLUSH_TIMEOUT: Duration = Duration::from_secs(5);
/// The flush rule's quiet period: no span for this long means the services are done. Only
/// waited for when something judges every span ([`FlushRule::Quiet`]).
pub const QUIET: Duration = Duration::from_millis(200);

/// How long [`TestReceiver::close`] waits for the listeners to end.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// What a test's receiver waits for.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceiverSettings {
    /// Span names the expectations need before they can hold.
    pub awaited: Vec<SpanPattern>,
    pub flush_timeout: Duration,
    /// Service → (span pattern its first step waits for, how long at most).
    pub wait_for_span: BTreeMap<String, (SpanPattern, Duration)>,
    /// When the wait after the last step may end, besides the awaited names.
    pub rule: FlushRule,
}

/// When the wait after the last step ends, once the awaited names arrived (the expect
/// stage's `span_wait` decides which applies).
#[derive(Debug, Clone, PartialEq)]
pub enum FlushRule {
    /// As soon as these expectations hold on the spans received: each asks only that some
    /// span exist, so no later span can undo a verdict that holds.
    Held(Box<Expectations>),
    /// When no span has come for [`QUIET`]: something judges every span. What (for the
    /// report).
    Quiet(Vec<String>),
}

/// What ended the wait after the last step.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum FlushEnd {
    /// Every awaited span arrived and the expectations held ([`FlushRule::Held`]).
    NamedSpans,
    /// No span came for [`QUIET`].
    #[default]
    Quiet,
    /// The flush timeout.
    Timeout,
}

impl FlushEnd {
    /// As the JSON report writes it (`spans_wait.ended`).
    pub fn as_str(self) -> &'static str {
        match self {
            FlushEnd::NamedSpans => "named_spans",
            FlushEnd::Quiet => "quiet",
            FlushEnd::Timeout => "flush_timeout",
        }
    }
}

/// Spans as they arrive, shared by the listeners and the waits.
#[derive(Default)]
pub struct Received {
    state: Mutex<ReceivedState>,
    arrived: Notify,
}

#[derive(Default)]
struct ReceivedState {
    spans: Vec<Span>,
    /// Each export request as OTLP JSON, in arrival order: the `.jsonl` file's lines.
    exports: Vec<String>,
    last_arrival: Option<Instant>,
}

/// Where the listeners hand each export request, with the address it came from.
pub trait ExportSink: Send + Sync {
    fn add(&self, from: IpAddr, export: ExportTraceServiceRequest);
}

impl ExportSink for Received {
    /// A test's own listeners hear only its network: who sent it does not matter.
    fn add(&self, _from: IpAddr, export: ExportTraceServiceRequest) {
        Received::add(self, export);
    }
}

/// Binds the two listeners (HTTP 4318, gRPC 4317) on `address`, serving until `stop`
/// turns true; they hand what arrives to `sink`.
/// A listener on `address`, bound even while no interface has that address yet: Podman's
/// netavark gives a network its bridge and gateway address only once a container joins
/// it, and the receiver must listen before the test's services start. `IP_FREEBIND`
/// (Linux) allows that bind; connections arrive once the address exists. Docker assigns
/// the gateway when the network is created, so there it changes nothing.
fn listen_before_the_address_exists(
    address: SocketAddr,
) -> std::io::Result<tokio::net::TcpListener> {
    let socket = match address {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    // As `TcpListener::bind` does: a port the last test's receiver just closed is free.
    socket.set_reuseaddr(true)?;
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let on: libc::c_int = 1;
        let (level, option) = match address {
            SocketAddr::V4(_) => (libc::SOL_IP, libc::IP_FREEBIND),
            SocketAddr::V6(_) => (libc::SOL_IPV6, libc::IPV6_FREEBIND),
        };
        // SAFETY: a valid socket descriptor and a c_int option value of the size given.
        let rc = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                level,
                option,
                (&on as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    socket.bind(address)?;
    socket.listen(1024)
}

async fn bind_both(
    address: IpAddr,
    sink: Arc<dyn ExportSink>,
    stop: &watch::Sender<bool>,
) -> Result<Vec<tokio::task::JoinHandle<()>>, String> {
    let bind = |port| async move {
        listen_before_the_address_exists(SocketAddr::new(address, port)).map_err(|e| {
            format!(
                "cannot receive spans on {address}:{port}: {e}; \
                 span collection needs the Docker engine on this machine"
            )
        })
    };
    let http = bind(HTTP_PORT).await?;
    let grpc = bind(GRPC_PORT).await?;
    Ok(vec![
        tokio::spawn(listen::serve_http(http, sink.clone(), stop.subscribe())),
        tokio::spawn(listen::serve_grpc(grpc, sink, stop.subscribe())),
    ])
}

impl Received {
    pub fn add(&self, export: ExportTraceServiceRequest) {
        let spans = spans_of(&export);
        let line = serde_json::to_string(&export).unwrap_or_default();
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.spans.extend(spans);
        state.exports.push(line);
        state.last_arrival = Some(Instant::now());
        drop(state);
        self.arrived.notify_waiters();
    }

    /// The patterns of `wanted` no received span matches.
    fn missing(&self, wanted: &[SpanPattern]) -> Vec<SpanPattern> {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        wanted
            .iter()
            .filter(|p| !state.spans.iter().any(|s| p.matches(&s.name)))
            .cloned()
            .collect()
    }

    /// How many spans arrived, and whether they hold `expectations` (judged only when more
    /// came than `judged_at`, the count of the last judgement).
    fn hold(&self, expectations: &Expectations, judged_at: usize) -> (usize, bool) {
        let state = lock(&self.state);
        let count = state.spans.len();
        if count == judged_at {
            return (count, false);
        }
        (
            count,
            clnrm_expect::hold_already(&state.spans, expectations),
        )
    }

    fn last_arrival(&self) -> Option<Instant> {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .last_arrival
    }

    /// Waits until `wanted` arrived or `deadline` passes; false when it passed first.
    async fn arrival_of(&self, wanted: &[SpanPattern], deadline: Instant) -> bool {
        loop {
            // Listening before looking: a span that comes while we look still wakes us.
            let arrival = self.arrived.notified();
            tokio::pin!(arrival);
            arrival.as_mut().enable();
            if self.missing(wanted).is_empty() {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            let _ = tokio::time::timeout_at(deadline.into(), arrival).await;
        }
    }
}

/// How the wait after the last step ended.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FlushWait {
    pub waited: Duration,
    /// Awaited span names still missing when the flush timeout ran out.
    pub missing: Vec<String>,
    pub timed_out: bool,
    pub ended: FlushEnd,
    /// Under [`FlushRule::Quiet`]: what judges every span.
    pub quiet_because: Vec<String>,
}

/// One test's receiver: listeners bound when its network exists, stopped when dropped.
pub struct TestReceiver {
    settings: ReceiverSettings,
    received: Arc<Received>,
    stop: watch::Sender<bool>,
    /// The listener tasks: each drops its listener when it ends.
    listeners: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    flush: Mutex<Option<FlushWait>>,
    /// Every service is in a warm container found ready: no `wait_for_span`.
    ready: std::sync::atomic::AtomicBool,
    /// The run's receiver on the default bridge, which a one-service test may share.
    bridge: Option<Arc<DefaultBridge>>,
    /// On the default bridge: its listeners and the address routed to this test.
    routed: Mutex<Option<(Arc<BridgeListeners>, Option<IpAddr>)>>,
}

impl TestReceiver {
    /// With `bridge`, a test with one service receives on the run's default bridge
    /// listeners (when they could be bound) instead of a network of its own.
    pub fn new(settings: ReceiverSettings, bridge: Option<Arc<DefaultBridge>>) -> Self {
        TestReceiver {
            bridge,
            routed: Mutex::new(None),
            settings,
            received: Arc::new(Received::default()),
            stop: watch::channel(false).0,
            listeners: Mutex::new(Vec::new()),
            flush: Mutex::new(None),
            ready: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Listens on `gateway` (both ports) until the receiver is dropped.
    pub async fn listen(&self, gateway: IpAddr) -> Result<(), String> {
        let sink = self.received.clone() as Arc<dyn ExportSink>;
        let tasks = bind_both(gateway, sink, &self.stop).await?;
        lock(&self.listeners).extend(tasks);
        Ok(())
    }

    /// Stops receiving and waits (at most [`CLOSE_WAIT`]) until both listeners are closed,
    /// so the gateway's ports are free for the next test on the network.
    pub async fn close(&self) {
        if let Some((listeners, Some(address))) = lock(&self.routed).take() {
            listeners.routes.unroute(address);
        }
        let _ = self.stop.send(true);
        let tasks = std::mem::take(&mut *lock(&self.listeners));
        let closed = async {
            for task in tasks {
                let _ = task.await;
            }
        };
        if tokio::time::timeout(CLOSE_WAIT, closed).await.is_err() {
            tracing::warn!(
                "the span receiver did not stop within {} ms",
                CLOSE_WAIT.as_millis()
            );
        }
    }

    /// The environment every service gets (docs/reference.md §9); the spec's own values win.
    pub fn service_env(service: &str) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("OTEL_EXPORTER_OTLP_ENDPOINT".into(), ENDPOINT.into()),
            ("OTEL_EXPORTER_OTLP_PROTOCOL".into(), "http/protobuf".into()),
            ("OTEL_TRACES_EXPORTER".into(), "otlp".into()),
            ("OTEL_SERVICE_NAME".into(), service.into()),
        ])
    }

    /// Adds spans clnrm made itself (its own spans, docs/reference.md §14), as if exported.
    pub fn add_own(&self, export: ExportTraceServiceRequest) {
        self.received.add(export);
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<Span> {
        self.received
            .state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .spans
            .clone()
    }

    /// How the flush wait ended (`None` when it did not run: a step failed first).
    pub fn flush_wait(&self) -> Option<FlushWait> {
        self.flush.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The flush rule: until every awaited name arrived and then, by the settings' rule,
    /// until the expectations hold on what came, or until no span came for [`QUIET`]; at
    /// most the flush timeout. Expectations that do not hold yet fall back to the quiet
    /// period: a later span may still make them hold.
    pub async fn wait_for_flush(&self) -> FlushWait {
        let started = Instant::now();
        let deadline = started + self.settings.flush_timeout;
        let quiet_because = match &self.settings.rule {
            FlushRule::Quiet(because) => because.clone(),
            FlushRule::Held(_) => Vec::new(),
        };
        let ended = |ended: FlushEnd, missing: Vec<SpanPattern>| FlushWait {
            waited: started.elapsed(),
            missing: missing.iter().map(|p| p.as_str().to_string()).collect(),
            timed_out: ended == FlushEnd::Timeout,
            ended,
            quiet_because: quiet_because.clone(),
        };
        // No spans judged yet: `usize::MAX` is never a count of spans.
        let mut judged_at = usize::MAX;
        loop {
            // Listening before looking: a span that comes while we look still wakes us.
            let arrival = self.received.arrived.notified();
            tokio::pin!(arrival);
            arrival.as_mut().enable();
            let missing = self.received.missing(&self.settings.awaited);
            if let (true, FlushRule::Held(expectations)) = (missing.is_empty(), &self.settings.rule)
            {
                let (count, held) = self.received.hold(expectations, judged_at);
                judged_at = count;
                if held {
                    return ended(FlushEnd::NamedSpans, missing);
                }
            }
            // Spans that came before the wait began count: they may already be quiet.
            let quiet_until = self.received.last_arrival().unwrap_or(started) + QUIET;
            let now = Instant::now();
            if missing.is_empty() && now >= quiet_until {
                return ended(FlushEnd::Quiet, missing);
            }
            if now >= deadline {
                return ended(FlushEnd::Timeout, missing);
            }
            let wake = if missing.is_empty() {
                quiet_until.min(deadline)
            } else {
                deadline
            };
            let _ = tokio::time::timeout_at(wake.into(), arrival).await;
        }
    }

    /// Writes what arrived as OTLP JSON lines (one export request per line) to `path`.
    pub fn write_jsonl(&self, path: &Path) -> std::io::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let state = self
            .received
            .state
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
        for line in &state.exports {
            writeln!(file, "{line}")?;
        }
        file.flush()
    }
}

impl Drop for TestReceiver {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

impl SpanCollector for TestReceiver {
    fn service_env(&self, service: &str) -> BTreeMap<String, String> {
        TestReceiver::service_env(service)
    }

    fn additions(&self, gateway: IpAddr) -> ServiceAdditions {
        ServiceAdditions {
            extra_hosts: vec![format!("{COLLECTOR_HOST}:{gateway}")],
        }
    }

    fn network_ready(&self, gateway: IpAddr) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(self.listen(gateway))
    }

    fn default_bridge<'a>(
        &'a self,
        backend: &'a dyn Backend,
    ) -> BoxFuture<'a, Option<ServiceAdditions>> {
        Box::pin(async move {
            let listeners = self.bridge.as_ref()?.listeners(backend).await?;
            let additions = self.additions(listeners.gateway);
            *lock(&self.routed) = Some((listeners, None));
            Some(additions)
        })
    }

    fn sender_started(&self, address: IpAddr, since: Instant) {
        let mut routed = lock(&self.routed);
        if let Some((listeners, routed_address)) = routed.as_mut() {
            listeners
                .routes
                .route(address, self.received.clone(), since);
            *routed_address = Some(address);
        }
    }

    fn stop(&self) -> BoxFuture<'_, ()> {
        Box::pin(self.close())
    }

    fn already_ready(&self) {
        self.ready.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    fn before_first_step<'a>(&'a self, service: &'a str) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let Some((pattern, timeout)) = self.settings.wait_for_span.get(service) else {
                return Ok(());
            };
            if self.ready.load(std::sync::atomic::Ordering::SeqCst) {
                return Ok(());
            }
            let deadline = Instant::now() + *timeout;
            let wanted = std::slice::from_ref(pattern);
            if self.received.arrival_of(wanted, deadline).await {
                return Ok(());
            }
            Err(format!(
                "service `{service}`: span `{}` did not arrive within {:.1} s \
                 (wait_for_span)",
                pattern.as_str(),
                timeout.as_secs_f64()
            ))
        })
    }

    fn after_steps(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let wait = self.wait_for_flush().await;
            *self.flush.lock().unwrap_or_else(|e| e.into_inner()) = Some(wait);
        })
    }
}

/// The project's `.clnrm/spans/<test>.jsonl`, the test's identity with `/` turned into `__`:
/// never inside the tests' own folders, and never in the cache directory (which CI jobs may
/// share), wherever `--cache-dir` points.
pub fn spans_file(project_root: &Path, identity: &str) -> PathBuf {
    project_root
        .join(".clnrm")
        .join("spans")
        .join(format!("{}.jsonl", identity.replace('/', "__")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 192.0.2.1 (TEST-NET-1) is on no interface, like a Podman network's gateway before
    /// its first container: a plain bind fails with "Cannot assign requested address".
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn the_receiver_listens_on_a_gateway_address_that_does_not_exist_yet() {
        let absent = SocketAddr::new(IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1)), 0);
        let listener = listen_before_the_address_exists(absent).expect("bound before it exists");
        assert_eq!(listener.local_addr().unwrap().ip(), absent.ip());
    }

    #[tokio::test]
    async fn an_address_of_this_machine_is_listened_on_and_reached() {
        let loopback = SocketAddr::new(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 0);
        let listener = listen_before_the_address_exists(loopback).unwrap();
        let address = listener.local_addr().unwrap();
        let (connected, accepted) =
            tokio::join!(tokio::net::TcpStream::connect(address), listener.accept());
        connected.expect("connects");
        accepted.expect("accepts");
    }
}
