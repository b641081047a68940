//! Sending clnrm's own trace of a run to a collector (`--otel-endpoint`, or
//! `OTEL_EXPORTER_OTLP_ENDPOINT`; docs/reference.md "Exporting clnrm's own trace"): one
//! trace per run, a root `clnrm run` with a child per stage of the run and each test's own
//! `clnrm.run` subtree re-parented under it.
//!
//! Why a queue and a thread: the run must never wait on a collector. Spans go into a bounded
//! queue (a full queue drops them) drained by one thread posting OTLP/HTTP protobuf with a
//! short timeout. The run's own spans are queued as soon as its last event is out; from
//! then the run waits at most [`DRAIN_WAIT`] for the queue to empty (overlapping whatever
//! the run still has to do, such as closing the cache; what the thread has not taken by
//! then the run posts itself, against the same deadline), then leaves what is left
//! undelivered, says how many spans that was, and exits without joining the thread.

use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{bounded, Receiver, Sender};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, KeyValue};
use opentelemetry_proto::tonic::trace::v1 as otlp;
use prost::Message;

use super::self_spans::{
    attribute, clnrm_request, int, internal_span, kv, numbered_id, unix_nanos, TraceIds,
    SERVICE_NAME,
};
use crate::report::{Event, Status};
use crate::sync::lock;

/// Export requests the queue holds (one per test, plus the run's own); more are dropped.
pub const QUEUE_REQUESTS: usize = 1024;
/// How long one POST may take before it counts as not delivered.
pub const POST_TIMEOUT: Duration = Duration::from_secs(2);
/// How long the end of a run waits for the queue to drain, counted from the moment its own
/// spans were queued: all a slow collector can add to a run.
pub const DRAIN_WAIT: Duration = Duration::from_millis(50);

/// Where an OTLP/HTTP endpoint takes traces: the generic endpoint's `/v1/traces`.
pub fn traces_url(endpoint: &str) -> String {
    format!("{}/v1/traces", endpoint.trim_end_matches('/'))
}

/// An encoded export request and how many spans it holds.
type Encoded = (u64, Vec<u8>);

#[derive(Default)]
struct Counts {
    queued: AtomicU64,
    delivered: AtomicU64,
    /// Nanoseconds spent building, queuing and encoding spans, summed over threads.
    busy: AtomicU64,
}

/// The queue and its posting thread, and the ids of the run's trace.
pub struct Exporter {
    url: String,
    /// Taken (closed) by [`Exporter::finish`].
    queue: Mutex<Option<Sender<Encoded>>>,
    /// The queue's other end: what is still queued when the run ends is posted by the
    /// run's own thread, sparing two thread hand-offs on the way out.
    requests: Receiver<Encoded>,
    /// A plain `http://` endpoint (the only kind the run's own thread posts to).
    plain: Option<Arc<PlainEndpoint>>,
    /// Disconnected when the posting thread has sent everything it was given.
    drained: Receiver<()>,
    counts: Arc<Counts>,
    /// The run's trace id and the `clnrm run` root's span id.
    pub ids: TraceIds,
}

impl std::fmt::Debug for Exporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exporter").field("url", &self.url).finish()
    }
}

/// What was not delivered when the run stopped waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Undelivered {
    pub spans: u64,
    pub of: u64,
}

impl Exporter {
    /// Starts the posting thread for `endpoint` (an OTLP/HTTP base URL).
    pub fn start(endpoint: &str) -> Exporter {
        let url = traces_url(endpoint);
        let (queue, requests) = bounded::<Encoded>(QUEUE_REQUESTS);
        let (drained_tx, drained) = bounded::<()>(0);
        let counts = Arc::new(Counts::default());
        let worker_counts = counts.clone();
        let worker_url = url.clone();
        let plain = PlainEndpoint::parse(&url).map(Arc::new);
        let worker_plain = plain.clone();
        let worker_requests = requests.clone();
        std::thread::Builder::new()
            .name("clnrm-otlp-export".into())
            .spawn(move || {
                // Held until every request is posted: its drop tells `finish` we are done.
                let _drained = drained_tx;
                if let Some(plain) = &worker_plain {
                    // Looked up now, while the run works, not when it ends.
                    let _ = plain.address();
                }
                let mut poster = Poster::new(&worker_url, worker_plain);
                for (n, body) in worker_requests {
                    match poster.post(&body) {
                        Ok(()) => {
                            worker_counts.delivered.fetch_add(n, Ordering::Relaxed);
                        }
                        Err(err) => tracing::debug!("OTLP export to {worker_url}: {err}"),
                    }
                }
            })
            .expect("spawn the OTLP export thread");
        Exporter {
            url,
            queue: Mutex::new(Some(queue)),
            requests,
            plain,
            drained,
            counts,
            ids: TraceIds::new("clnrm run"),
        }
    }

    /// The URL spans are posted to.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The ids a test's `clnrm.run` gets: the run's trace, a span id of its own.
    pub fn test_ids(&self, identity: &str) -> TraceIds {
        TraceIds {
            trace: self.ids.trace,
            run_span: TraceIds::new(identity).run_span,
        }
    }

    /// Runs `work` (building spans for the export) and counts its time as the export's.
    pub fn timed<T>(&self, work: impl FnOnce() -> T) -> T {
        let started = Instant::now();
        let out = work();
        self.counts.add_busy(started.elapsed());
        out
    }

    /// Time spent so far building, encoding and queuing spans, summed over threads: what
    /// the export costs a run in CPU (waiting on the collector aside).
    pub fn busy(&self) -> Duration {
        Duration::from_nanos(self.counts.busy.load(Ordering::Relaxed))
    }

    /// Queues a test's own spans (built with [`Exporter::test_ids`]), its `clnrm.run`
    /// re-parented under the run's root. Never waits: a full queue drops them.
    pub fn add_test(&self, test: &TraceIds, request: ExportTraceServiceRequest) {
        let mut spans: Vec<otlp::Span> = request
            .resource_spans
            .into_iter()
            .flat_map(|r| r.scope_spans)
            .flat_map(|s| s.spans)
            .collect();
        for span in &mut spans {
            if span.span_id == test.run_span && span.parent_span_id.is_empty() {
                span.parent_span_id = self.ids.run_span.to_vec();
            }
        }
        self.add(spans);
    }

    /// Queues spans of the run's trace, encoded here (so their cost is counted where it
    /// falls, in [`Exporter::busy`]). Never waits: a full queue drops them.
    pub fn add(&self, spans: Vec<otlp::Span>) {
        if spans.is_empty() {
            return;
        }
        let n = spans.len() as u64;
        let body = self.timed(|| request(spans).encode_to_vec());
        self.counts.queued.fetch_add(n, Ordering::Relaxed);
        // A full or closed queue drops the spans: counted as not delivered.
        if let Some(queue) = lock(&self.queue).as_ref() {
            let _ = queue.try_send((n, body));
        }
    }

    /// Queues the run's own spans (`trace`'s root ending at `ended`, an error unless `ok`,
    /// and its stages). The root's `clnrm.export.busy_ms` is [`Exporter::busy`] including
    /// the building of these spans, all but the encoding of this last request.
    pub fn add_run(&self, trace: &mut RunTrace, ended: SystemTime, ok: bool) {
        let building = Instant::now();
        let mut spans = trace.spans(ended, ok);
        let busy = self.busy() + building.elapsed();
        if let Some(root) = spans.first_mut() {
            root.attributes
                .push(double("clnrm.export.busy_ms", busy.as_secs_f64() * 1e3));
        }
        self.counts.add_busy(building.elapsed());
        self.add(spans);
    }

    /// Closes the queue and waits until `deadline` at the latest for it to drain; `Some`
    /// when spans were dropped or not (yet) delivered. The posting thread is not joined: a
    /// request still in flight is abandoned when the process exits.
    pub fn finish(&self, deadline: Instant) -> Option<Undelivered> {
        drop(lock(&self.queue).take());
        // What the posting thread has not taken yet is posted from here, when the
        // endpoint's address needs no lookup; the thread may be busy with a slow request.
        if let Some(plain) = self.plain.as_ref().filter(|p| p.known_address().is_some()) {
            while let Ok((n, body)) = self.requests.try_recv() {
                match plain.post(&body, deadline) {
                    Ok(()) => {
                        self.counts.delivered.fetch_add(n, Ordering::Relaxed);
                    }
                    Err(err) => tracing::debug!("OTLP export to {}: {err}", self.url),
                }
            }
        }
        // Disconnected (the thread ended) or timed out: either way we stop waiting here.
        let _ = self.drained.recv_deadline(deadline);
        let of = self.counts.queued.load(Ordering::Relaxed);
        let spans = of.saturating_sub(self.counts.delivered.load(Ordering::Relaxed));
        (spans > 0).then_some(Undelivered { spans, of })
    }
}

impl Counts {
    fn add_busy(&self, took: Duration) {
        self.busy
            .fetch_add(took.as_nanos() as u64, Ordering::Relaxed);
    }
}

/// The export request for spans of clnrm's run: resource `service.name=clnrm`,
/// `service.version`.
fn request(spans: Vec<otlp::Span>) -> ExportTraceServiceRequest {
    let resource = vec![
        kv("service.name", SERVICE_NAME),
        kv("service.version", env!("CARGO_PKG_VERSION")),
    ];
    clnrm_request(resource, spans)
}

/// Posts export requests to one URL. Plain `http://` (the usual local collector) is written
/// straight on a socket: ureq's agent loads the system's root certificates when it is
/// built, tens of milliseconds of CPU a run must not pay for a plain-text endpoint; so
/// only an `https://` endpoint gets one, built on first use.
enum Poster {
    Plain(Arc<PlainEndpoint>),
    Tls {
        url: String,
        agent: Option<ureq::Agent>,
    },
}

impl Poster {
    fn new(url: &str, plain: Option<Arc<PlainEndpoint>>) -> Poster {
        match plain {
            Some(plain) => Poster::Plain(plain),
            None => Poster::Tls {
                url: url.to_string(),
                agent: None,
            },
        }
    }

    fn post(&mut self, body: &[u8]) -> Result<(), String> {
        match self {
            Poster::Plain(plain) => plain.post(body, Instant::now() + POST_TIMEOUT),
            Poster::Tls { url, agent } => {
                let agent = agent.get_or_insert_with(|| {
                    ureq::AgentBuilder::new()
                        .timeout_connect(POST_TIMEOUT)
                        .timeout(POST_TIMEOUT)
                        .build()
                });
                agent
                    .post(url)
                    .set("content-type", CONTENT_TYPE)
                    .send_bytes(body)
                    .map(drop)
                    .map_err(|e| e.to_string())
            }
        }
    }
}

const CONTENT_TYPE: &str = "application/x-protobuf";

/// A plain `http://` endpoint, its address resolved once (by the posting thread, so a
/// name's DNS lookup never falls on the end of the run).
struct PlainEndpoint {
    authority: String,
    path: String,
    address: OnceLock<SocketAddr>,
}

impl PlainEndpoint {
    fn parse(url: &str) -> Option<PlainEndpoint> {
        let rest = url.strip_prefix("http://")?;
        let (authority, path) = match rest.find('/') {
            Some(at) => (&rest[..at], &rest[at..]),
            None => (rest, "/"),
        };
        Some(PlainEndpoint {
            authority: authority.to_string(),
            path: path.to_string(),
            address: OnceLock::new(),
        })
    }

    fn with_port(&self) -> String {
        if self.authority.contains(':') && !self.authority.ends_with(']') {
            self.authority.clone()
        } else {
            format!("{}:80", self.authority)
        }
    }

    /// The address if it needs no lookup: resolved already, or an IP literal.
    fn known_address(&self) -> Option<SocketAddr> {
        self.address
            .get()
            .copied()
            .or_else(|| self.with_port().parse().ok())
    }

    /// The address, looked up (DNS for a name) the first time.
    fn address(&self) -> Result<SocketAddr, String> {
        if let Some(address) = self.known_address() {
            return Ok(address);
        }
        use std::net::ToSocketAddrs;
        let address = self
            .with_port()
            .to_socket_addrs()
            .map_err(|e| e.to_string())?
            .next()
            .ok_or_else(|| format!("{}: no address", self.authority))?;
        Ok(*self.address.get_or_init(|| address))
    }

    /// One HTTP/1.1 POST on a fresh connection, given up at `deadline`; a 2xx answer is
    /// success.
    fn post(&self, body: &[u8], deadline: Instant) -> Result<(), String> {
        use std::io::{Read, Write};
        let left = || {
            deadline
                .checked_duration_since(Instant::now())
                .filter(|left| !left.is_zero())
                .ok_or_else(|| "no answer in time".to_string())
        };
        let address = self.address()?;
        let mut stream =
            TcpStream::connect_timeout(&address, left()?).map_err(|e| e.to_string())?;
        stream
            .set_write_timeout(Some(left()?))
            .and_then(|()| stream.set_nodelay(true))
            .map_err(|e| e.to_string())?;
        // One write: a head and a body in two would meet Nagle and delayed ACK (~40 ms).
        let mut request = format!(
            "POST {} HTTP/1.1\r\nhost: {}\r\ncontent-type: {CONTENT_TYPE}\r\n\
             content-length: {}\r\nconnection: close\r\n\r\n",
            self.path,
            self.authority,
            body.len()
        )
        .into_bytes();
        request.extend_from_slice(body);
        stream.write_all(&request).map_err(|e| e.to_string())?;
        // The status line is all we need: `HTTP/1.1 200 OK`.
        let mut answer = Vec::new();
        let mut buf = [0u8; 256];
        while !answer.contains(&b'\n') {
            stream
                .set_read_timeout(Some(left()?))
                .map_err(|e| e.to_string())?;
            let n = stream.read(&mut buf).map_err(|e| e.to_string())?;
            if n == 0 {
                break;
            }
            answer.extend_from_slice(&buf[..n]);
        }
        let line = String::from_utf8_lossy(&answer);
        let code = line.split_whitespace().nth(1).unwrap_or("");
        if code.starts_with('2') {
            Ok(())
        } else {
            Err(format!(
                "answered {:?}",
                line.lines().next().unwrap_or("nothing")
            ))
        }
    }
}

/// A stage's hits and misses in the memo, and the time spent in it summed over threads.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StageUse {
    pub hits: usize,
    pub misses: usize,
    pub busy_ms: f64,
}

/// The run's own spans (the root and one per stage), from the moments the CLI saw and the
/// events the runner emitted. The tests' subtrees come from the runner, not from here.
pub struct RunTrace {
    ids: TraceIds,
    command: String,
    started: SystemTime,
    loaded: Option<SystemTime>,
    checked: Option<(SystemTime, StageUse, StageUse)>,
    prepared: Option<SystemTime>,
    /// (test, name, cached, at): every test that reached the result cache.
    lookups: Vec<(String, String, bool, SystemTime)>,
    /// Tests with no subtree of their own (cached, errors, skips).
    unrun: Vec<Unrun>,
    plan_ms: f64,
    next_id: u64,
}

/// A test the runner decided without running it: served from the cache, an error, a skip.
struct Unrun {
    test: String,
    name: String,
    status: Status,
    cached: bool,
    message: Option<String>,
    at: SystemTime,
}

impl RunTrace {
    pub fn new(ids: TraceIds, command: &str, started: SystemTime) -> RunTrace {
        RunTrace {
            ids,
            command: command.to_string(),
            started,
            loaded: None,
            checked: None,
            prepared: None,
            lookups: Vec::new(),
            unrun: Vec::new(),
            plan_ms: 0.0,
            next_id: 1,
        }
    }

    /// Tests discovered (and the project loaded) at `at`.
    pub fn discovered(&mut self, at: SystemTime) {
        self.loaded = Some(at);
    }

    /// Every test rendered and parsed at `at`, with what each stage did.
    pub fn checked(&mut self, at: SystemTime, render: StageUse, parse: StageUse) {
        self.checked = Some((at, render, parse));
    }

    /// One runner event, seen at `at`.
    pub fn record(&mut self, event: &Event, at: SystemTime) {
        match event {
            // Sent once every test is planned and the result cache asked.
            Event::RunStarted { .. } => self.prepared = Some(at),
            Event::TestFinished(test) => match &test.timings {
                Some(timings) => {
                    self.plan_ms += timings.plan_ms;
                    self.lookups
                        .push((test.test.clone(), test.name.clone(), false, at));
                }
                None => {
                    if test.cached {
                        self.lookups
                            .push((test.test.clone(), test.name.clone(), true, at));
                    }
                    self.unrun.push(Unrun {
                        test: test.test.clone(),
                        name: test.name.clone(),
                        status: test.status,
                        cached: test.cached,
                        message: test.message.clone(),
                        at,
                    });
                }
            },
            _ => {}
        }
    }

    /// The root span (ending at `ended`, an error unless `ok`) and the stage spans.
    pub fn spans(&mut self, ended: SystemTime, ok: bool) -> Vec<otlp::Span> {
        let started = unix_nanos(self.started);
        let ended = unix_nanos(ended).max(started);
        let loaded = self
            .loaded
            .map_or(started, unix_nanos)
            .clamp(started, ended);
        let checked = self
            .checked
            .as_ref()
            .map_or(loaded, |(at, ..)| unix_nanos(*at))
            .clamp(loaded, ended);
        let prepared = self
            .prepared
            .map_or(checked, unix_nanos)
            .clamp(checked, ended);
        let root = self.ids.run_span;
        let mut spans = vec![self.span(
            root,
            None,
            &self.command,
            (started, ended),
            vec![kv("clnrm.version", env!("CARGO_PKG_VERSION"))],
            ok,
        )];
        let mut child = |trace: &mut Self, name: &str, window, attrs, ok| {
            let id = trace.child_id();
            let span = trace.span(id, Some(root), name, window, attrs, ok);
            spans.push(span);
        };
        child(self, "clnrm.discover", (started, loaded), Vec::new(), true);
        if let Some((_, render, parse)) = self.checked {
            for (name, used) in [("clnrm.render", render), ("clnrm.parse", parse)] {
                let attrs = vec![
                    int("cache.hits", used.hits as i64),
                    int("cache.misses", used.misses as i64),
                    double("clnrm.busy_ms", used.busy_ms),
                ];
                child(self, name, (loaded, checked), attrs, true);
            }
        }
        let plan_ms = self.plan_ms;
        child(
            self,
            "clnrm.plan",
            (checked, prepared),
            vec![double("clnrm.busy_ms", plan_ms)],
            true,
        );
        // The result cache is asked while preparing.
        for (test, name, hit, _) in std::mem::take(&mut self.lookups) {
            let attrs = vec![
                kv("test.case.name", name),
                kv("test.suite.name", test),
                kv("cache.name", "result"),
                attribute("cache.hit", any_value::Value::BoolValue(hit)),
            ];
            child(self, "clnrm.cache.lookup", (checked, prepared), attrs, true);
        }
        // A test with no subtree of its own still has its child, where it was decided.
        for test in std::mem::take(&mut self.unrun) {
            let at = unix_nanos(test.at).clamp(prepared, ended);
            let mut attrs = vec![
                kv("test.case.name", test.name),
                kv("test.suite.name", test.test),
                kv("test.case.result.status", result_status(test.status)),
                attribute("clnrm.cached", any_value::Value::BoolValue(test.cached)),
            ];
            if let Some(message) = test.message {
                attrs.push(kv("clnrm.message", message));
            }
            let ok = !matches!(test.status, Status::Fail | Status::Error);
            child(self, "clnrm.run", (prepared, at), attrs, ok);
        }
        spans
    }

    fn span(
        &self,
        id: [u8; 8],
        parent: Option<[u8; 8]>,
        name: &str,
        window: (u64, u64),
        attributes: Vec<KeyValue>,
        ok: bool,
    ) -> otlp::Span {
        internal_span(self.ids.trace, (id, parent), name, window, attributes, ok)
    }

    /// Span ids within the run's trace: its root's id mixed with a counter.
    fn child_id(&mut self) -> [u8; 8] {
        self.next_id += 1;
        numbered_id(&self.ids.run_span, self.next_id - 1)
    }
}

/// `test.case.result.status`: OpenTelemetry's values (pass, fail, skipped, ...).
fn result_status(status: Status) -> &'static str {
    match status {
        Status::Pass | Status::Flaky => "pass",
        Status::Fail => "fail",
        Status::Error => "error",
        Status::Skip => "skipped",
    }
}

fn double(key: &str, value: f64) -> KeyValue {
    attribute(key, any_value::Value::DoubleValue(value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{TestFinished, TestTimings};
    use std::io::{Read, Write};
    use std::net::TcpListener;

    fn at(ms: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000) + Duration::from_millis(ms)
    }

    fn finished(test: &str, status: Status, cached: bool, ran: bool) -> Event {
        let mut event =
            TestFinished::without_steps(test.into(), test.into(), status, cached, 1.0, None);
        if ran {
            event.timings = Some(TestTimings {
                render_ms: 0.0,
                parse_ms: 0.0,
                plan_ms: 2.5,
                containers_ms: 0.0,
                execute_ms: 0.0,
                teardown_ms: 0.0,
                containers_reused: 0,
                containers_started: 0,
                containers_removed: 0,
                spans_ms: 0.0,
            });
        }
        Event::TestFinished(event)
    }

    #[test]
    fn the_run_has_one_root_and_a_child_per_stage_and_unrun_test() {
        let ids = TraceIds::new("run");
        let mut trace = RunTrace::new(ids, "clnrm run", at(0));
        trace.discovered(at(5));
        let render = StageUse {
            hits: 1,
            misses: 2,
            busy_ms: 3.0,
        };
        trace.checked(at(10), render, StageUse::default());
        trace.record(&Event::RunStarted { tests: 3, jobs: 1 }, at(20));
        trace.record(&finished("a", Status::Pass, true, false), at(21));
        trace.record(&finished("b", Status::Fail, false, true), at(40));
        trace.record(&finished("c", Status::Error, false, false), at(22));
        let spans = trace.spans(at(50), false);
        let names: Vec<&str> = spans.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "clnrm run",
                "clnrm.discover",
                "clnrm.render",
                "clnrm.parse",
                "clnrm.plan",
                "clnrm.cache.lookup",
                "clnrm.cache.lookup",
                "clnrm.run",
                "clnrm.run",
            ]
        );
        let root = &spans[0];
        assert!(root.parent_span_id.is_empty());
        assert_eq!(root.span_id, ids.run_span);
        assert_eq!(
            root.status.as_ref().unwrap().code,
            2,
            "an error: the run failed"
        );
        for s in &spans[1..] {
            assert_eq!(s.trace_id, ids.trace);
            assert_eq!(s.parent_span_id, ids.run_span, "{}", s.name);
            assert!(s.start_time_unix_nano >= root.start_time_unix_nano);
            assert!(s.end_time_unix_nano <= root.end_time_unix_nano);
        }
        let value = |s: &otlp::Span, key: &str| {
            s.attributes
                .iter()
                .find(|a| a.key == key)
                .and_then(|a| a.value.clone())
                .and_then(|v| v.value)
        };
        assert_eq!(
            value(&spans[2], "cache.misses"),
            Some(any_value::Value::IntValue(2))
        );
        assert_eq!(spans[2].start_time_unix_nano, unix_nanos(at(5)));
        assert_eq!(spans[2].end_time_unix_nano, unix_nanos(at(10)));
        assert_eq!(
            value(&spans[4], "clnrm.busy_ms"),
            Some(any_value::Value::DoubleValue(2.5))
        );
        let hits: Vec<_> = spans[5..7].iter().map(|s| value(s, "cache.hit")).collect();
        assert_eq!(
            hits,
            [
                Some(any_value::Value::BoolValue(true)),
                Some(any_value::Value::BoolValue(false))
            ]
        );
        assert_eq!(
            value(&spans[8], "test.case.result.status"),
            Some(any_value::Value::StringValue("error".into()))
        );
    }

    /// A one-shot OTLP/HTTP endpoint: answers each request after `delay`, hands back bodies.
    fn endpoint(delay: Duration, status: &'static str) -> (String, Receiver<(String, Vec<u8>)>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = bounded(16);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let mut stream = stream.unwrap();
                let mut data = Vec::new();
                let mut buf = [0u8; 4096];
                let (head, body) = loop {
                    let n = stream.read(&mut buf).unwrap();
                    data.extend_from_slice(&buf[..n]);
                    if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&data[..end]).to_string();
                        let length: usize = head
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse().unwrap())
                            })
                            .unwrap();
                        while data.len() < end + 4 + length {
                            let n = stream.read(&mut buf).unwrap();
                            data.extend_from_slice(&buf[..n]);
                        }
                        break (head, data[end + 4..end + 4 + length].to_vec());
                    }
                };
                std::thread::sleep(delay);
                let answer = format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\n\r\n");
                let _ = stream.write_all(answer.as_bytes());
                let _ = tx.send((head, body));
            }
        });
        (url, rx)
    }

    #[test]
    fn a_test_is_posted_as_protobuf_under_the_runs_root() {
        let (url, bodies) = endpoint(Duration::ZERO, "200 OK");
        let exporter = Exporter::start(&format!("{url}/"));
        assert_eq!(exporter.url(), format!("{url}/v1/traces"));
        let test = exporter.test_ids("tests/a.clnrm.toml");
        let mut trace = RunTrace::new(test, "x", at(0));
        let own = request(trace.spans(at(1), true));
        exporter.add_test(&test, own);
        let run = exporter.ids;
        assert_eq!(
            exporter.finish(Instant::now() + Duration::from_secs(5)),
            None
        );
        assert!(exporter.busy() > Duration::ZERO, "encoding is counted");
        let (head, body) = bodies.recv_timeout(Duration::from_secs(5)).unwrap();
        assert!(head.starts_with("POST /v1/traces "), "{head}");
        assert!(head
            .to_ascii_lowercase()
            .contains("content-type: application/x-protobuf"));
        let decoded = ExportTraceServiceRequest::decode(&body[..]).unwrap();
        let resource = decoded.resource_spans[0].resource.as_ref().unwrap();
        assert!(resource
            .attributes
            .contains(&kv("service.version", env!("CARGO_PKG_VERSION"))));
        let spans = &decoded.resource_spans[0].scope_spans[0].spans;
        let test_root = spans.iter().find(|s| s.span_id == test.run_span).unwrap();
        assert_eq!(test_root.parent_span_id, run.run_span, "re-parented");
        assert!(spans.iter().all(|s| s.trace_id == run.trace));
    }

    #[test]
    fn a_dead_slow_or_refusing_endpoint_is_given_up_on_and_counted() {
        let dead = {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            format!("http://{}", listener.local_addr().unwrap())
        };
        let (slow, _slow_bodies) = endpoint(Duration::from_secs(5), "200 OK");
        let (refusing, _refused_bodies) = endpoint(Duration::ZERO, "400 Bad Request");
        for url in [dead, slow, refusing] {
            let exporter = Exporter::start(&url);
            let ids = exporter.ids;
            let mut trace = RunTrace::new(ids, "clnrm run", at(0));
            let spans = trace.spans(at(1), true);
            let of = 2 * spans.len() as u64;
            exporter.add(spans.clone());
            exporter.add(spans);
            let started = std::time::Instant::now();
            let undelivered = exporter.finish(started + Duration::from_millis(50));
            // Gave up rather than waiting for the slow collector's 5 s answer.
            assert!(started.elapsed() < Duration::from_secs(4), "{url}");
            assert_eq!(undelivered, Some(Undelivered { spans: of, of }), "{url}");
        }
    }
}
