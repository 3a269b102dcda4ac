//! `loki`: serve Loki's push API (`POST /loki/api/v1/push`), so that
//! Promtail, Grafana Alloy, Fluent Bit's `loki` output and Vector's `loki`
//! sink can point at howl as they would at Loki.
//!
//! Bodies are JSON (`application/json`, what Fluent Bit sends, possibly
//! gzipped) or protobuf compressed with snappy's block format
//! (`application/x-protobuf`, what Alloy, Promtail and Vector send; a
//! `Content-Encoding: snappy` header is the same one layer, as Loki reads
//! it). Each entry becomes one event; its stream's labels are kept under
//! `labels`, its structured metadata under `structured_metadata`. Answers
//! come when [`super::http_receiver`] gives them, worded as Loki's: 204
//! only once the events are delivered, so a shipper (which retries 429 and
//! 5xx) loses nothing.

mod labels;
mod push;
mod query;

pub use query::LokiQueryConfig;

use std::io::Read;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::sync::Arc;

use axum::http::{HeaderMap, header};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::Deserialize;
use vrl::value::{KeyString, ObjectMap, Value};

use super::http_receiver::{
    Answers, AuthConfig, Decoder, Listening, MAX_EVENTS_PER_REQUEST, Protocol, Receiver, Refusal,
    check_literal_path, too_many_events,
};
use crate::components::BuildContext;
use crate::components::source::{Source, SourceConfig};
use crate::diagnostic::BuildError;
use crate::event::{Event, fields};
use crate::http::server::ConnectionsConfig;
use crate::options::{Seconds, TlsConfig};

/// Options of the `loki` source.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LokiConfig {
    /// The address and port to listen on, e.g. `127.0.0.1:3100` (Loki's
    /// own port, so shippers need only a new host).
    #[schemars(extend("x-placeholder" = "127.0.0.1:3100"))]
    address: SocketAddr,
    /// The URL path that accepts pushes; other paths answer 404.
    #[serde(default = "default_path")]
    path: String,
    /// The largest request body accepted, in bytes, as sent (compressed);
    /// a larger one is refused with 413. Decompressed, a body may be at
    /// most eight times this.
    #[serde(default = "default_max_body_bytes")]
    max_body_bytes: NonZeroUsize,
    /// Require credentials (Loki has none of its own; a proxy in front of
    /// it usually does): a bearer token, or a user and password, as the
    /// shippers' `basic_auth` / `bearer_token` options send them.
    auth: Option<AuthConfig>,
    /// How long a push waits for its entries to be delivered before it is
    /// answered 503 (which shippers retry); the entries may still be
    /// delivered afterwards, so the retry may repeat them.
    #[serde(default = "default_ack_timeout")]
    ack_timeout_secs: Seconds,
    /// Limits on connections, against slow and abusive clients.
    #[serde(default)]
    connections: ConnectionsConfig,
    /// Serve HTTPS with this certificate and key (PEM files), read when
    /// howl starts; unset: plain HTTP.
    tls: Option<TlsConfig>,
}

fn default_path() -> String {
    "/loki/api/v1/push".to_string()
}

fn default_max_body_bytes() -> NonZeroUsize {
    const TEN_MIB: NonZeroUsize = NonZeroUsize::new(10 * 1024 * 1024).unwrap();
    TEN_MIB
}

fn default_ack_timeout() -> Seconds {
    Seconds::from_secs(30)
}

/// How much larger than the body a decompressed body may be.
const INFLATION: usize = 8;

impl SourceConfig for LokiConfig {
    fn build(&self, cx: &BuildContext) -> Result<Box<dyn Source>, BuildError> {
        check_literal_path(&self.path)?;
        let limit = self.max_body_bytes.get().saturating_mul(INFLATION);
        let decoder: Decoder =
            Arc::new(move |body, headers| Ok(decode(body, headers, limit, Utc::now())?.into()));
        Ok(Box::new(Receiver {
            address: self.address,
            path: self.path.clone(),
            methods: axum::routing::MethodFilter::POST,
            listening: Listening::new(
                self.max_body_bytes,
                self.auth.as_ref(),
                &self.ack_timeout_secs,
                &self.connections,
                self.tls.as_ref(),
                cx,
                "",
            )?,
            decoder,
            answers: Arc::new(LokiAnswers),
            protocol: Protocol::Http1,
        }))
    }
}

/// Loki's answers: 204 with no body once delivered, and the reason as
/// plain text otherwise.
struct LokiAnswers;

impl Answers for LokiAnswers {
    fn delivered(
        &self,
        _count: usize,
        _warning: Option<&str>,
        _request: &HeaderMap,
    ) -> axum::response::Response {
        use axum::response::IntoResponse;
        axum::http::StatusCode::NO_CONTENT.into_response()
    }

    fn refused(
        &self,
        status: axum::http::StatusCode,
        message: &str,
        _request: &HeaderMap,
    ) -> axum::response::Response {
        use axum::response::IntoResponse;
        (status, format!("{message}\n")).into_response()
    }
}

/// One stream's entries, decoded from either encoding.
struct Stream {
    labels: Vec<(String, String)>,
    entries: Vec<Entry>,
}

struct Entry {
    at: Option<DateTime<Utc>>,
    line: String,
    metadata: Vec<(String, String)>,
}

/// Whether a body starts with a zlib header (RFC 1950: DEFLATE, a window
/// of at most 32 KiB, and a check that makes the two bytes a multiple of
/// 31), rather than raw DEFLATE.
fn is_zlib(body: &[u8]) -> bool {
    match body {
        [cmf, flg, ..] => {
            cmf & 0x0f == 8 && cmf >> 4 <= 7 && (u16::from(*cmf) << 8 | u16::from(*flg)) % 31 == 0
        }
        _ => false,
    }
}

/// A push request's events, or why it cannot be read (answered 400).
fn decode(
    body: Bytes,
    headers: &HeaderMap,
    limit: usize,
    now: DateTime<Utc>,
) -> Result<Vec<Event>, Refusal> {
    let header = |name| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.trim().to_ascii_lowercase())
            .unwrap_or_default()
    };
    let content_type = header(header::CONTENT_TYPE);
    let body = match header(header::CONTENT_ENCODING).as_str() {
        "" | "identity" | "snappy" => body,
        "gzip" => inflate(flate2::read::MultiGzDecoder::new(&body[..]), limit)?,
        // Loki reads raw DEFLATE here (Go's `flate`); HTTP's `deflate` is
        // zlib-wrapped. Both are taken: a zlib header is unmistakable.
        "deflate" if is_zlib(&body) => inflate(flate2::read::ZlibDecoder::new(&body[..]), limit)?,
        "deflate" => inflate(flate2::read::DeflateDecoder::new(&body[..]), limit)?,
        other => return Err(format!("unsupported Content-Encoding `{other}`").into()),
    };
    let streams = if content_type.starts_with("application/json") {
        push::from_json(&body)?
    } else {
        // Loki reads protobuf for `application/x-protobuf`, and for a
        // missing or unknown type too.
        push::from_protobuf(&body, limit)?
    };
    if streams.iter().map(|s| s.entries.len()).sum::<usize>() > MAX_EVENTS_PER_REQUEST {
        return Err(too_many_events());
    }
    let tenant = headers
        .get("x-scope-orgid")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty());
    let mut events = Vec::new();
    for stream in streams {
        let labels: ObjectMap = stream
            .labels
            .iter()
            .map(|(k, v)| (KeyString::from(k.as_str()), Value::from(v.as_str())))
            .collect();
        let host = stream
            .labels
            .iter()
            .find(|(k, _)| k == "host")
            .map(|(_, v)| Value::from(v.as_str()));
        for entry in stream.entries {
            let mut event = Event::log(Bytes::from(entry.line), entry.at.unwrap_or(now), "loki");
            event.insert_field("labels", Value::Object(labels.clone()));
            if !entry.metadata.is_empty() {
                let metadata: ObjectMap = entry
                    .metadata
                    .into_iter()
                    .map(|(k, v)| (KeyString::from(k), Value::from(v)))
                    .collect();
                event.insert_field("structured_metadata", Value::Object(metadata));
            }
            if let Some(host) = &host {
                event.insert_field(fields::HOST, host.clone());
            }
            if let Some(tenant) = tenant {
                event.insert_field("tenant", tenant);
            }
            events.push(event);
        }
    }
    Ok(events)
}

/// Reads a compressed body, refusing to go past `limit` bytes.
fn inflate(reader: impl Read, limit: usize) -> Result<Bytes, String> {
    let mut out = Vec::new();
    reader
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| format!("the body cannot be decompressed: {e}"))?;
    if out.len() > limit {
        return Err(format!(
            "the body decompresses to more than {limit} bytes (8 times max_body_bytes)"
        ));
    }
    Ok(Bytes::from(out))
}

#[cfg(test)]
mod tests;
