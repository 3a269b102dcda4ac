//! OTLP/gRPC: the unary `opentelemetry.proto.collector.logs.v1.LogsService/Export`
//! call over cleartext HTTP/2, without a gRPC framework. A request body is
//! one length-prefixed message (a compressed-flag byte, a big-endian u32
//! length, the `ExportLogsServiceRequest`), gzip-compressed when the flag
//! is set and `grpc-encoding: gzip`. The answer is HTTP 200 either way:
//! success is one empty `ExportLogsServiceResponse` then the trailer
//! `grpc-status: 0`; a failure is "Trailers-Only" (`grpc-status` and
//! `grpc-message` in the headers, no body), `UNAVAILABLE` (14) for what
//! clients should retry.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;
use chrono::Utc;
use http_body_util::{BodyExt, Full};
use prost::Message;

use super::{gunzip, log, proto};
use crate::sources::http_receiver::{
    Answers, Decoded, MAX_EVENTS_PER_REQUEST, Refusal, too_many_events,
};

/// The method's path.
pub const EXPORT_PATH: &str = "/opentelemetry.proto.collector.logs.v1.LogsService/Export";
const GRPC: &str = "application/grpc";

/// A gRPC request body → its events.
pub fn decode(body: Bytes, headers: &HeaderMap, limit: usize) -> Result<Decoded, Refusal> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !(content_type == GRPC
        || content_type.starts_with("application/grpc+proto")
        || content_type.starts_with("application/grpc;"))
    {
        return Err(Refusal {
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            message: format!("Content-Type must be `{GRPC}` (got `{content_type}`)"),
        });
    }
    let message = unframe(&body, headers, limit)?;
    let request = proto::ExportLogsServiceRequest::decode(message)
        .map_err(|e| format!("invalid OTLP protobuf: {e}"))?;
    if log::count(&request) > MAX_EVENTS_PER_REQUEST {
        return Err(too_many_events());
    }
    let (events, odd) = log::events(request, Utc::now());
    Ok(Decoded {
        events,
        warning: odd.warning(),
    })
}

/// The one message of a unary call, decompressed.
fn unframe(body: &Bytes, headers: &HeaderMap, limit: usize) -> Result<Bytes, Refusal> {
    if body.len() < 5 {
        return Err("a gRPC message needs its 5-byte prefix".to_string().into());
    }
    let compressed = body[0];
    let len = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
    if body.len() - 5 != len {
        return Err(format!(
            "the gRPC prefix says {len} bytes, {} follow (one message per call)",
            body.len() - 5
        )
        .into());
    }
    let message = body.slice(5..);
    match compressed {
        0 => Ok(message),
        1 => {
            let encoding = headers
                .get("grpc-encoding")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("identity");
            if encoding != "gzip" {
                return Err(Refusal {
                    status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    message: format!("grpc-encoding `{encoding}` is not supported (only gzip)"),
                });
            }
            gunzip(&message, limit)
        }
        other => Err(format!("invalid gRPC compressed flag {other}").into()),
    }
}

/// gRPC's answers.
pub struct GrpcAnswers;

impl Answers for GrpcAnswers {
    fn delivered(&self, _count: usize, warning: Option<&str>, _request: &HeaderMap) -> Response {
        let message = super::export_response(warning).encode_to_vec();
        let mut framed = Vec::with_capacity(5 + message.len());
        framed.push(0);
        framed.extend_from_slice(&(message.len() as u32).to_be_bytes());
        framed.extend_from_slice(&message);
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", HeaderValue::from_static("0"));
        let body = Full::new(Bytes::from(framed))
            .map_err(|never| match never {})
            .with_trailers(async move { Some(Ok::<_, std::convert::Infallible>(trailers)) });
        let mut response = Response::new(Body::new(body));
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(GRPC));
        response
    }

    fn refused(&self, status: StatusCode, message: &str, _request: &HeaderMap) -> Response {
        let mut response = Response::new(Body::empty());
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(GRPC));
        headers.insert("grpc-status", HeaderValue::from(code(status)));
        if let Ok(text) = HeaderValue::from_str(&percent_encode(message)) {
            headers.insert("grpc-message", text);
        }
        response
    }
}

/// The gRPC status code for the receiver's HTTP status.
pub fn code(status: StatusCode) -> i32 {
    match status.as_u16() {
        400 | 415 => 3,  // INVALID_ARGUMENT
        401 => 16,       // UNAUTHENTICATED
        404 | 405 => 12, // UNIMPLEMENTED
        408 => 4,        // DEADLINE_EXCEEDED
        413 => 8,        // RESOURCE_EXHAUSTED (without RetryInfo: not retried)
        429 | 503 => 14, // UNAVAILABLE: retried
        _ => 2,          // UNKNOWN
    }
}

/// `grpc-message` is percent-encoded UTF-8 (printable ASCII but `%` as is).
fn percent_encode(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    for byte in message.bytes() {
        if (0x20..0x7f).contains(&byte) && byte != b'%' {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grpc_headers(encoding: Option<&str>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(GRPC));
        if let Some(encoding) = encoding {
            headers.insert("grpc-encoding", encoding.parse().unwrap());
        }
        headers
    }

    fn frame(flag: u8, message: &[u8]) -> Bytes {
        let mut framed = vec![flag];
        framed.extend_from_slice(&(message.len() as u32).to_be_bytes());
        framed.extend_from_slice(message);
        framed.into()
    }

    #[test]
    fn unframes_plain_and_gzip_messages_and_refuses_bad_frames() {
        use std::io::Write;
        let request = proto::ExportLogsServiceRequest {
            resource_logs: vec![proto::ResourceLogs {
                scope_logs: vec![proto::ScopeLogs {
                    log_records: vec![proto::LogRecord {
                        severity_number: 13,
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let message = request.encode_to_vec();
        let events = decode(frame(0, &message), &grpc_headers(None), 1 << 20)
            .unwrap()
            .events;
        assert_eq!(events.len(), 1);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&message).unwrap();
        let zipped = gz.finish().unwrap();
        let events = decode(frame(1, &zipped), &grpc_headers(Some("gzip")), 1 << 20)
            .unwrap()
            .events;
        assert_eq!(events.len(), 1);

        let refused = decode(frame(1, &zipped), &grpc_headers(Some("snappy")), 1 << 20);
        assert_eq!(
            refused.unwrap_err().status,
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        );
        for bad in [Bytes::from_static(b"\0\0"), frame(0, &message).slice(..8)] {
            let refused = decode(bad, &grpc_headers(None), 1 << 20).unwrap_err();
            assert_eq!(refused.status, StatusCode::BAD_REQUEST);
        }
        let not_grpc = decode(frame(0, &message), &HeaderMap::new(), 1 << 20).unwrap_err();
        assert_eq!(not_grpc.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    }

    #[test]
    fn failures_are_trailers_only_with_a_retryable_code_for_503() {
        let response = GrpcAnswers.refused(
            StatusCode::SERVICE_UNAVAILABLE,
            "the pipeline is full; retry 100%",
            &HeaderMap::new(),
        );
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["grpc-status"], "14");
        assert_eq!(
            response.headers()["grpc-message"],
            "the pipeline is full; retry 100%25"
        );
    }
}
