//! The OTLP receiver on its own, without containers: a client posts to it the way an SDK
//! does (protobuf, gzip-compressed protobuf, JSON) and the spans come out as the expect
//! stage reads them; the flush rule waits for awaited spans and for quiet, never forever.
//! Each test binds its own loopback address (all of 127/8 is local), since the ports are
//! fixed.

use std::io::{Read, Write};
use std::net::{IpAddr, TcpStream};
use std::time::Duration;

use clnrm::otel::{FlushEnd, FlushRule, ReceiverSettings, TestReceiver, HTTP_PORT};
use clnrm_expect::{Expectations, SpanExpectation, SpanPattern};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;

fn receiver(awaited: &[&str], flush_timeout: Duration) -> TestReceiver {
    with_rule(awaited, flush_timeout, FlushRule::Quiet(Vec::new()))
}

fn with_rule(awaited: &[&str], flush_timeout: Duration, rule: FlushRule) -> TestReceiver {
    TestReceiver::new(
        ReceiverSettings {
            awaited: awaited.iter().map(|n| SpanPattern::new(*n)).collect(),
            flush_timeout,
            wait_for_span: Default::default(),
            rule,
        },
        None,
    )
}

/// A receiver whose test expects one `[[expect.span]]` (a name, and the attribute
/// `db.system` when `system` is given): the named spans suffice.
fn expecting_span(name: &str, system: Option<&str>) -> TestReceiver {
    let mut expectation = SpanExpectation::named(name);
    if let Some(system) = system {
        expectation.attrs.all.insert(
            "db.system".into(),
            clnrm_expect::ExpectedValue(system.into()),
        );
    }
    let expectations = Expectations {
        span: vec![expectation],
        ..Expectations::default()
    };
    with_rule(
        &[name],
        Duration::from_secs(5),
        FlushRule::Held(Box::new(expectations)),
    )
}

fn export(names: &[&str]) -> ExportTraceServiceRequest {
    let spans = names
        .iter()
        .enumerate()
        .map(|(i, name)| Span {
            trace_id: vec![7; 16],
            span_id: vec![i as u8 + 1; 8],
            parent_span_id: if i == 0 { vec![] } else { vec![1; 8] },
            name: name.to_string(),
            kind: 3,
            start_time_unix_nano: 1_000,
            end_time_unix_nano: 5_000_000,
            attributes: vec![KeyValue {
                key: "db.system".into(),
                value: Some(AnyValue {
                    value: Some(any_value::Value::StringValue("postgres".into())),
                }),
            }],
            ..Default::default()
        })
        .collect();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![KeyValue {
                    key: "service.name".into(),
                    value: Some(AnyValue {
                        value: Some(any_value::Value::StringValue("api".into())),
                    }),
                }],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// POSTs `body` to `/v1/traces` over HTTP/1.1; returns the status line.
fn post(address: IpAddr, headers: &[(&str, &str)], body: &[u8]) -> String {
    let mut stream = TcpStream::connect((address, HTTP_PORT)).unwrap();
    let mut request = format!(
        "POST /v1/traces HTTP/1.1\r\nHost: otel-collector\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response.lines().next().unwrap_or_default().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protobuf_gzip_and_json_bodies_all_arrive_as_spans() {
    let address: IpAddr = "127.0.0.11".parse().unwrap();
    let receiver = receiver(
        &["db.query", "cache.get", "auth.check"],
        Duration::from_secs(5),
    );
    receiver.listen(address).await.unwrap();

    let protobuf = export(&["request", "db.query"]).encode_to_vec();
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gzip.write_all(&export(&["cache.get"]).encode_to_vec())
        .unwrap();
    let gzip = gzip.finish().unwrap();
    let json = serde_json::to_vec(&export(&["auth.check"])).unwrap();
    let statuses = tokio::task::spawn_blocking(move || {
        [
            post(
                address,
                &[("Content-Type", "application/x-protobuf")],
                &protobuf,
            ),
            post(
                address,
                &[
                    ("Content-Type", "application/x-protobuf"),
                    ("Content-Encoding", "gzip"),
                ],
                &gzip,
            ),
            // busybox wget's default content type: sniffed as JSON.
            post(
                address,
                &[("Content-Type", "application/x-www-form-urlencoded")],
                &json,
            ),
            post(
                address,
                &[("Content-Type", "application/json")],
                b"{not json",
            ),
        ]
    })
    .await
    .unwrap();
    assert!(
        statuses[..3].iter().all(|s| s.contains(" 200 ")),
        "{statuses:?}"
    );
    assert!(statuses[3].contains(" 400 "), "{statuses:?}");

    let wait = receiver.wait_for_flush().await;
    assert!(!wait.timed_out, "{wait:?}");
    let spans = receiver.spans();
    let names: Vec<&str> = spans.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["request", "db.query", "cache.get", "auth.check"]);
    let query = &spans[1];
    assert_eq!(query.parent_span_id, Some(spans[0].span_id));
    assert_eq!(query.kind, clnrm_expect::SpanKind::Client);
    assert_eq!(query.service_name().as_deref(), Some("api"));
    assert!(query.attributes["db.system"].is_text("postgres"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_flush_wait_ends_at_the_timeout_naming_what_never_came() {
    let address: IpAddr = "127.0.0.12".parse().unwrap();
    let receiver = receiver(&["payment"], Duration::from_millis(400));
    receiver.listen(address).await.unwrap();
    let started = std::time::Instant::now();
    let wait = receiver.wait_for_flush().await;
    assert!(wait.timed_out);
    assert_eq!(wait.missing, ["payment"]);
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_nothing_awaited_the_wait_is_the_quiet_period() {
    let receiver = receiver(&[], Duration::from_secs(5));
    let wait = receiver.wait_for_flush().await;
    assert!(!wait.timed_out);
    assert!((150..1000).contains(&wait.waited.as_millis()), "{wait:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_receiver_on_the_same_address_is_refused_not_mixed() {
    let address: IpAddr = "127.0.0.13".parse().unwrap();
    let first = receiver(&[], Duration::from_secs(1));
    first.listen(address).await.unwrap();
    let second = receiver(&[], Duration::from_secs(1));
    let err = second.listen(address).await.unwrap_err();
    assert!(
        err.contains("cannot receive spans on 127.0.0.13:4318"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wait_ends_on_the_named_span_when_the_expectations_ask_for_no_more() {
    // Already there when the wait begins (the SDK exported on shutdown, in the step).
    let receiver = expecting_span("db.query", None);
    receiver.add_own(export(&["request", "db.query"]));
    let wait = receiver.wait_for_flush().await;
    assert_eq!(wait.ended, FlushEnd::NamedSpans, "{wait:?}");
    assert!(wait.quiet_because.is_empty());

    // Arriving while the wait runs: it ends on that export.
    let address: IpAddr = "127.0.0.14".parse().unwrap();
    let receiver = expecting_span("db.query", Some("postgres"));
    receiver.listen(address).await.unwrap();
    let body = export(&["db.query"]).encode_to_vec();
    let (wait, status) = tokio::join!(
        receiver.wait_for_flush(),
        tokio::task::spawn_blocking(move || {
            std::thread::sleep(Duration::from_millis(50));
            post(
                address,
                &[("Content-Type", "application/x-protobuf")],
                &body,
            )
        })
    );
    assert!(status.unwrap().contains(" 200 "));
    assert_eq!(wait.ended, FlushEnd::NamedSpans, "{wait:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_named_span_that_does_not_meet_its_expectation_yet_waits_for_quiet() {
    // The span is there but with another attribute: a later one may still meet it.
    let receiver = expecting_span("db.query", Some("mysql"));
    receiver.add_own(export(&["db.query"]));
    let wait = receiver.wait_for_flush().await;
    assert_eq!(wait.ended, FlushEnd::Quiet, "{wait:?}");
    assert!(!wait.timed_out);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expectations_over_every_span_wait_for_quiet_and_say_why() {
    let receiver = with_rule(
        &["db.query"],
        Duration::from_secs(5),
        FlushRule::Quiet(vec!["expect.counts".into()]),
    );
    receiver.add_own(export(&["db.query"]));
    let wait = receiver.wait_for_flush().await;
    assert_eq!(wait.ended, FlushEnd::Quiet, "{wait:?}");
    assert_eq!(wait.quiet_because, ["expect.counts"]);
}
