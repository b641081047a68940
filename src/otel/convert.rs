//! OTLP messages (`opentelemetry-proto`'s types) to the expect stage's plain [`Span`]s. Only
//! what expectations can ask about is carried over; links and dropped counts are not.

use clnrm_expect::{
    AttrValue, Attributes, Span, SpanEvent, SpanId, SpanKind, SpanStatus, StatusCode, TraceId,
};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::trace::v1 as otlp;

/// Every span of an export request, each with its batch's resource attributes.
pub fn spans_of(request: &ExportTraceServiceRequest) -> Vec<Span> {
    let mut out = Vec::new();
    for resource_spans in &request.resource_spans {
        let resource = resource_spans
            .resource
            .as_ref()
            .map(|r| attributes(&r.attributes))
            .unwrap_or_default();
        for scope in &resource_spans.scope_spans {
            out.extend(scope.spans.iter().map(|s| span(s, &resource)));
        }
    }
    out
}

fn span(s: &otlp::Span, resource: &Attributes) -> Span {
    let mut out = Span::new(trace_id(&s.trace_id), span_id(&s.span_id), s.name.clone());
    out.parent_span_id = (!s.parent_span_id.is_empty()).then(|| span_id(&s.parent_span_id));
    out.kind = match otlp::span::SpanKind::try_from(s.kind) {
        Ok(otlp::span::SpanKind::Internal) => SpanKind::Internal,
        Ok(otlp::span::SpanKind::Server) => SpanKind::Server,
        Ok(otlp::span::SpanKind::Client) => SpanKind::Client,
        Ok(otlp::span::SpanKind::Producer) => SpanKind::Producer,
        Ok(otlp::span::SpanKind::Consumer) => SpanKind::Consumer,
        _ => SpanKind::Unspecified,
    };
    out.start_unix_nanos = s.start_time_unix_nano;
    out.end_unix_nanos = s.end_time_unix_nano;
    out.attributes = attributes(&s.attributes);
    out.events = s
        .events
        .iter()
        .map(|e| SpanEvent {
            name: e.name.clone(),
            time_unix_nanos: e.time_unix_nano,
            attributes: attributes(&e.attributes),
        })
        .collect();
    if let Some(status) = &s.status {
        out.status = SpanStatus {
            code: match otlp::status::StatusCode::try_from(status.code) {
                Ok(otlp::status::StatusCode::Ok) => StatusCode::Ok,
                Ok(otlp::status::StatusCode::Error) => StatusCode::Error,
                _ => StatusCode::Unset,
            },
            message: status.message.clone(),
        };
    }
    out.resource = resource.clone();
    out
}

/// Ids of the wrong length (a broken client) are padded or cut rather than dropped, so the
/// span still shows up in failure messages.
fn trace_id(bytes: &[u8]) -> TraceId {
    let mut id = [0u8; 16];
    let n = bytes.len().min(16);
    id[..n].copy_from_slice(&bytes[..n]);
    TraceId(id)
}

fn span_id(bytes: &[u8]) -> SpanId {
    let mut id = [0u8; 8];
    let n = bytes.len().min(8);
    id[..n].copy_from_slice(&bytes[..n]);
    SpanId(id)
}

fn attributes(kvs: &[KeyValue]) -> Attributes {
    kvs.iter()
        .filter_map(|kv| Some((kv.key.clone(), value(kv.value.as_ref()?)?)))
        .collect()
}

fn value(v: &AnyValue) -> Option<AttrValue> {
    Some(match v.value.as_ref()? {
        any_value::Value::StringValue(s) => AttrValue::String(s.clone()),
        any_value::Value::BoolValue(b) => AttrValue::Bool(*b),
        any_value::Value::IntValue(i) => AttrValue::Int(*i),
        any_value::Value::DoubleValue(d) => AttrValue::Double(*d),
        any_value::Value::BytesValue(b) => AttrValue::Bytes(b.clone()),
        any_value::Value::ArrayValue(a) => {
            AttrValue::Array(a.values.iter().filter_map(value).collect())
        }
        // Key-value lists: no expectation reads them (see `AttrValue`).
        any_value::Value::KvlistValue(_) => return None,
    })
}
