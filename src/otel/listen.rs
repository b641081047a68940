//! The two OTLP listeners of one test: HTTP (`POST /v1/traces`, protobuf or JSON body,
//! gzip accepted) and gRPC (`TraceService/Export`). Both hand every request to
//! [`Received`]; neither judges anything.

use std::convert::Infallible;
use std::io::Read;
use std::net::IpAddr;
use std::sync::Arc;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::ExportSink;

/// Larger export bodies are refused (413): a test's spans come in batches far below this.
const MAX_BODY_BYTES: usize = 64 << 20;

/// Serves OTLP/HTTP on `listener` until `stop` turns true.
pub(super) async fn serve_http(
    listener: TcpListener,
    received: Arc<dyn ExportSink>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let (stream, from) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => (stream, peer.ip()),
                Err(err) => {
                    tracing::debug!("otlp http accept: {err}");
                    continue;
                }
            },
            _ = stop.wait_for(|s| *s) => return,
        };
        let received = received.clone();
        let mut stop = stop.clone();
        tokio::spawn(async move {
            let service =
                hyper::service::service_fn(move |req| handle(req, from, received.clone()));
            let connection = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            tokio::select! {
                result = connection => if let Err(err) = result {
                    tracing::debug!("otlp http connection: {err}");
                },
                _ = stop.wait_for(|s| *s) => {}
            }
        });
    }
}

async fn handle(
    request: Request<Incoming>,
    from: IpAddr,
    received: Arc<dyn ExportSink>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if request.uri().path() != "/v1/traces" {
        return Ok(reply(
            StatusCode::NOT_FOUND,
            "only /v1/traces is served here",
        ));
    }
    if request.method() != hyper::Method::POST {
        return Ok(reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "POST OTLP spans here",
        ));
    }
    let header = |name| {
        request
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase()
    };
    let gzip = header(hyper::header::CONTENT_ENCODING) == "gzip";
    let content_type = header(hyper::header::CONTENT_TYPE);
    let body = match Limited::new(request.into_body(), MAX_BODY_BYTES)
        .collect()
        .await
    {
        Ok(collected) => collected.to_bytes(),
        Err(err) => return Ok(reply(StatusCode::PAYLOAD_TOO_LARGE, &err.to_string())),
    };
    let body = if gzip {
        let mut out = Vec::new();
        if let Err(err) = flate2::read::GzDecoder::new(&body[..]).read_to_end(&mut out) {
            return Ok(reply(
                StatusCode::BAD_REQUEST,
                &format!("bad gzip body: {err}"),
            ));
        }
        Bytes::from(out)
    } else {
        body
    };
    // busybox `wget --post-data` cannot always set a content type: a body that starts
    // like JSON is read as JSON.
    let json = content_type.contains("json")
        || (!content_type.contains("protobuf") && body.first() == Some(&b'{'));
    let decoded = if json {
        serde_json::from_slice::<ExportTraceServiceRequest>(&body).map_err(|e| e.to_string())
    } else {
        ExportTraceServiceRequest::decode(&body[..]).map_err(|e| e.to_string())
    };
    match decoded {
        Ok(export) => {
            received.add(from, export);
            Ok(if json {
                reply(StatusCode::OK, "{}")
            } else {
                let mut response = Response::new(Full::new(Bytes::from(
                    ExportTraceServiceResponse::default().encode_to_vec(),
                )));
                response.headers_mut().insert(
                    hyper::header::CONTENT_TYPE,
                    hyper::header::HeaderValue::from_static("application/x-protobuf"),
                );
                response
            })
        }
        Err(err) => {
            tracing::warn!("a service sent spans clnrm cannot read: {err}");
            Ok(reply(
                StatusCode::BAD_REQUEST,
                &format!("not an OTLP trace export: {err}"),
            ))
        }
    }
}

fn reply(status: StatusCode, text: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(text.to_string())));
    *response.status_mut() = status;
    response
}

/// The gRPC `TraceService` of one test.
struct GrpcTraces(Arc<dyn ExportSink>);

#[tonic::async_trait]
impl TraceService for GrpcTraces {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        // Tonic's own TCP listener always records the peer.
        let Some(from) = request.remote_addr() else {
            return Err(tonic::Status::internal("the sender's address is unknown"));
        };
        self.0.add(from.ip(), request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

/// Serves OTLP/gRPC on `listener` until `stop` turns true.
pub(super) async fn serve_grpc(
    listener: TcpListener,
    received: Arc<dyn ExportSink>,
    mut stop: watch::Receiver<bool>,
) {
    let service = TraceServiceServer::new(GrpcTraces(received))
        .accept_compressed(tonic::codec::CompressionEncoding::Gzip);
    let incoming = tonic::transport::server::TcpIncoming::from(listener);
    let result = tonic::transport::Server::builder()
        .add_service(service)
        .serve_with_incoming_shutdown(incoming, async move {
            let _ = stop.wait_for(|s| *s).await;
        })
        .await;
    if let Err(err) = result {
        tracing::warn!("otlp grpc receiver stopped: {err}");
    }
}
