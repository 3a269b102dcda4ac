//! `opentelemetry`: OTLP logs over HTTP (`POST /v1/logs`), protobuf or
//! JSON, gzip or not, and over gRPC (cleartext HTTP/2, [`grpc`]), one
//! event per `LogRecord` with Vector's field names (documented on the
//! component page).
//!
//! The options take Vector's shape (`http.address`, `grpc.address`), so a
//! Vector configuration ports. The request handling is
//! [`super::http_receiver`]'s for both (credentials, body limits,
//! backpressure, success only once delivered, a retryable failure
//! otherwise: 503 + `Retry-After`, or gRPC's `UNAVAILABLE`); this module
//! decodes bodies and words the answers the OTLP way: an empty
//! `ExportLogsServiceResponse` on success and a `google.rpc.Status` on
//! failure, each in the request's encoding.
//!
//! The messages are hand-written prost structs ([`proto`]), and OTLP/JSON
//! is read into the same structs ([`json`]), so both encodings share the
//! mapping to events ([`log`]).

mod grpc;
mod json;
mod log;
mod proto;

use std::io::Read;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::sync::Arc;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use chrono::Utc;
use prost::Message;
use schemars::JsonSchema;
use serde::Deserialize;

use super::http_receiver::{
    Answers, AuthConfig, Decoded, Decoder, Listening, MAX_EVENTS_PER_REQUEST, Protocol, Receiver,
    Refusal, too_many_events,
};
use crate::components::source::{Source, SourceConfig, SourceContext};
use crate::components::{BuildContext, ComponentFuture};
use crate::diagnostic::BuildError;
use crate::http::server::ConnectionsConfig;
use crate::options::{Seconds, TlsConfig};

/// The path OTLP/HTTP exporters post logs to.
const LOGS_PATH: &str = "/v1/logs";
const PROTOBUF: &str = "application/x-protobuf";
const JSON: &str = "application/json";

/// Options of the `opentelemetry` source.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OpentelemetryConfig {
    /// OTLP/HTTP: logs posted to `/v1/logs`.
    http: HttpConfig,
    /// OTLP/gRPC: the `LogsService/Export` call over HTTP/2, with `http`'s
    /// credentials, limits and timeouts (and its own `tls`).
    grpc: Option<GrpcConfig>,
}

/// OTLP/HTTP.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct HttpConfig {
    /// The address and port to listen on; OTLP/HTTP's port is 4318, e.g.
    /// `127.0.0.1:4318` (or `0.0.0.0:4318` to accept connections from
    /// other machines). Logs are accepted at `/v1/logs`; other paths
    /// answer 404.
    #[schemars(extend("x-placeholder" = "127.0.0.1:4318"))]
    address: SocketAddr,
    /// The largest body accepted, in bytes, both as sent and once
    /// decompressed (`Content-Encoding: gzip`); a larger one is answered
    /// 413, which exporters do not retry.
    #[serde(default = "default_max_body_bytes")]
    max_body_bytes: NonZeroUsize,
    /// Require credentials: a bearer token (an exporter's
    /// `headers: {Authorization: "Bearer ..."}`), or a user and password.
    auth: Option<AuthConfig>,
    /// How long a request waits for its logs to be delivered (by every
    /// sink with `acknowledgements.enabled`) before it is answered 503,
    /// which exporters retry; the logs may still be delivered afterwards,
    /// so the retry may duplicate them. Keep it below the exporter's own
    /// timeout (10 s by default in the OpenTelemetry SDKs and Collector).
    #[serde(default = "default_ack_timeout")]
    ack_timeout_secs: Seconds,
    /// Limits on connections, against slow and abusive clients.
    #[serde(default)]
    connections: ConnectionsConfig,
    /// Serve HTTPS with this certificate and key (PEM files), read when
    /// howl starts; unset: plain HTTP.
    tls: Option<TlsConfig>,
}

/// OTLP/gRPC.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct GrpcConfig {
    /// The address and port to listen on for OTLP/gRPC; its port is 4317,
    /// e.g. `127.0.0.1:4317`.
    #[schemars(extend("x-placeholder" = "127.0.0.1:4317"))]
    address: SocketAddr,
    /// Serve gRPC over TLS (HTTP/2 negotiated by ALPN) with this
    /// certificate and key; unset: cleartext HTTP/2, for exporters set to
    /// `insecure`.
    tls: Option<TlsConfig>,
}

fn default_max_body_bytes() -> NonZeroUsize {
    const SIXTEEN_MIB: NonZeroUsize = NonZeroUsize::new(16 * 1024 * 1024).unwrap();
    SIXTEEN_MIB
}

fn default_ack_timeout() -> Seconds {
    Seconds::from_secs(8)
}

impl SourceConfig for OpentelemetryConfig {
    fn build(&self, cx: &BuildContext) -> Result<Box<dyn Source>, BuildError> {
        let http = &self.http;
        let listening = Listening::new(
            http.max_body_bytes,
            http.auth.as_ref(),
            &http.ack_timeout_secs,
            &http.connections,
            http.tls.as_ref(),
            cx,
            "http.",
        )?;
        let limit = listening.max_body_bytes;
        let decoder: Decoder = Arc::new(move |body, headers| decode(body, headers, limit));
        let grpc = match &self.grpc {
            Some(grpc) => {
                let decoder: Decoder =
                    Arc::new(move |body, headers| grpc::decode(body, headers, limit));
                let tls = grpc
                    .tls
                    .as_ref()
                    .map(|tls| {
                        tls.server_config(|path| cx.resolve_path(path))
                            .map_err(|mut error| {
                                error.option = error.option.map(|option| format!("grpc.{option}"));
                                error
                            })
                    })
                    .transpose()?;
                Some(Receiver {
                    address: grpc.address,
                    path: grpc::EXPORT_PATH.to_string(),
                    methods: axum::routing::MethodFilter::POST,
                    listening: Listening {
                        tls,
                        ..listening.clone()
                    },
                    decoder,
                    answers: Arc::new(grpc::GrpcAnswers),
                    protocol: Protocol::H2c,
                })
            }
            None => None,
        };
        Ok(Box::new(Opentelemetry {
            grpc,
            receiver: Receiver {
                address: http.address,
                path: LOGS_PATH.to_string(),
                methods: axum::routing::MethodFilter::POST,
                listening,
                decoder,
                answers: Arc::new(OtlpAnswers),
                protocol: Protocol::Http1,
            },
        }))
    }
}

struct Opentelemetry {
    receiver: Receiver,
    grpc: Option<Receiver>,
}

impl Source for Opentelemetry {
    fn listens(&self) -> bool {
        true
    }

    fn run(self: Box<Self>, cx: SourceContext) -> ComponentFuture {
        Box::pin(async move {
            let Some(grpc) = self.grpc else {
                return self.receiver.run(cx).await;
            };
            let grpc_cx = SourceContext {
                key: cx.key.clone(),
                out: cx.out.clone(),
                shutdown: cx.shutdown.clone(),
                shutdown_limit: cx.shutdown_limit.clone(),
                state: cx.state.clone(),
                host: Arc::clone(&cx.host),
                ready: cx.ready.split(),
            };
            tokio::try_join!(self.receiver.run(cx), grpc.run(grpc_cx))?;
            Ok(())
        })
    }
}

/// The two encodings of OTLP/HTTP.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Encoding {
    Protobuf,
    Json,
}

/// The encoding a request's `Content-Type` names (parameters such as
/// `charset` ignored), if it is one of OTLP's.
fn encoding(headers: &HeaderMap) -> Option<Encoding> {
    let value = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    let essence = value.split(';').next()?.trim();
    if essence.eq_ignore_ascii_case(PROTOBUF) {
        Some(Encoding::Protobuf)
    } else if essence.eq_ignore_ascii_case(JSON) {
        Some(Encoding::Json)
    } else {
        None
    }
}

/// A request body → its events: 415 for an encoding or compression OTLP
/// does not have, 413 when it decompresses past `limit`, 400 when it does
/// not decode.
fn decode(body: Bytes, headers: &HeaderMap, limit: usize) -> Result<Decoded, Refusal> {
    let unsupported = |message: String| Refusal {
        status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
        message,
    };
    let Some(encoding) = encoding(headers) else {
        let got = headers
            .get(header::CONTENT_TYPE)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        return Err(unsupported(format!(
            "Content-Type must be `{PROTOBUF}` or `{JSON}` (got {})",
            got.map_or("none".to_string(), |t| format!("`{t}`"))
        )));
    };
    let body = match content_encoding(headers).as_deref() {
        None | Some("identity") => body,
        Some("gzip" | "x-gzip") => gunzip(&body, limit)?,
        Some(other) => {
            return Err(unsupported(format!(
                "Content-Encoding `{other}` is not supported (only gzip)"
            )));
        }
    };
    let request = match encoding {
        Encoding::Protobuf => proto::ExportLogsServiceRequest::decode(body)
            .map_err(|e| format!("invalid OTLP protobuf: {e}"))?,
        Encoding::Json => json::request(&body).map_err(|e| format!("invalid OTLP/JSON: {e}"))?,
    };
    if log::count(&request) > MAX_EVENTS_PER_REQUEST {
        return Err(too_many_events());
    }
    let (events, odd) = log::events(request, Utc::now());
    Ok(Decoded {
        events,
        warning: odd.warning(),
    })
}

fn content_encoding(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::CONTENT_ENCODING)?;
    Some(
        String::from_utf8_lossy(value.as_bytes())
            .trim()
            .to_ascii_lowercase(),
    )
}

/// Decompresses a gzip body into at most `limit` bytes (a small body may
/// inflate a thousandfold).
fn gunzip(body: &[u8], limit: usize) -> Result<Bytes, Refusal> {
    let mut out = Vec::new();
    let mut reader = flate2::read::MultiGzDecoder::new(body).take(limit as u64 + 1);
    reader
        .read_to_end(&mut out)
        .map_err(|e| format!("invalid gzip body: {e}"))?;
    if out.len() > limit {
        return Err(Refusal {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            message: format!("the body decompresses to more than max_body_bytes ({limit})"),
        });
    }
    Ok(out.into())
}

/// OTLP/HTTP's answers: an empty `ExportLogsServiceResponse` once
/// delivered, a `google.rpc.Status` otherwise, each in the request's
/// encoding (JSON when the request's is neither).
struct OtlpAnswers;

/// The answer to a delivered export: empty, or a partial success that
/// rejects nothing and carries a warning (what OTLP allows a server to
/// say about data it accepted but changed).
fn export_response(warning: Option<&str>) -> proto::ExportLogsServiceResponse {
    proto::ExportLogsServiceResponse {
        partial_success: warning.map(|warning| proto::ExportLogsPartialSuccess {
            rejected_log_records: 0,
            error_message: warning.to_string(),
        }),
    }
}

impl Answers for OtlpAnswers {
    fn delivered(&self, _count: usize, warning: Option<&str>, request: &HeaderMap) -> Response {
        match encoding(request) {
            Some(Encoding::Protobuf) => {
                encoded(StatusCode::OK, export_response(warning).encode_to_vec())
            }
            // OTLP/JSON: lowerCamelCase, and the zero `rejectedLogRecords`
            // left out, as for every default value.
            _ => json_answer(
                StatusCode::OK,
                match warning {
                    Some(warning) => {
                        serde_json::json!({ "partialSuccess": { "errorMessage": warning } })
                    }
                    None => serde_json::json!({}),
                },
            ),
        }
    }

    fn refused(&self, status: StatusCode, message: &str, request: &HeaderMap) -> Response {
        let code = grpc_code(status);
        match encoding(request) {
            Some(Encoding::Protobuf) => {
                let status_message = proto::Status {
                    code,
                    message: message.to_string(),
                };
                encoded(status, status_message.encode_to_vec())
            }
            _ => json_answer(
                status,
                serde_json::json!({ "code": code, "message": message }),
            ),
        }
    }
}

fn encoded(status: StatusCode, body: Vec<u8>) -> Response {
    let mut response = (status, body).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROTOBUF));
    response
}

fn json_answer(status: StatusCode, body: serde_json::Value) -> Response {
    (status, axum::Json(body)).into_response()
}

/// The gRPC code a `google.rpc.Status` carries for an HTTP status
/// (clients go by the HTTP status; the code is informative).
fn grpc_code(status: StatusCode) -> i32 {
    match status.as_u16() {
        400 => 3,        // INVALID_ARGUMENT
        401 => 16,       // UNAUTHENTICATED
        404 => 5,        // NOT_FOUND
        408 => 4,        // DEADLINE_EXCEEDED
        413 => 8,        // RESOURCE_EXHAUSTED (without RetryInfo: not retried)
        415 => 12,       // UNIMPLEMENTED
        429 | 503 => 14, // UNAVAILABLE
        _ => 2,          // UNKNOWN
    }
}

#[cfg(test)]
mod tests;
