//! `http_server`: accept events over HTTP POST.
//!
//! What the answers mean, and how requests, credentials and backpressure
//! are handled, is [`super::http_receiver`]'s, shared with the other HTTP
//! sources; this module decodes bodies (text, JSON, NDJSON) into events.

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::sync::Arc;

use chrono::Utc;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use vrl::value::Value;

use super::http_receiver::{
    AuthConfig, Decoder, JsonAnswers, Listening, MAX_EVENTS_PER_REQUEST, Protocol, Receiver,
    check_literal_path, too_many_events,
};
use super::lines::LineSplitter;
use crate::components::BuildContext;
use crate::components::source::{Source, SourceConfig};
use crate::diagnostic::BuildError;
use crate::event::{Event, fields};
use crate::http::server::ConnectionsConfig;
use crate::options::{Seconds, TlsConfig};

/// Options of the `http_server` source.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpServerConfig {
    /// The address and port to listen on, e.g. `127.0.0.1:8080` (or
    /// `0.0.0.0:8080` to accept connections from other machines).
    #[schemars(extend("x-placeholder" = "127.0.0.1:8080"))]
    address: SocketAddr,
    /// The URL path that accepts POSTs; other paths answer 404. It is
    /// literal: it starts with `/` and has no `:param`, `*` or `{...}`.
    #[serde(default = "default_path")]
    path: String,
    /// How bodies are decoded: `text` gives one event per line (its
    /// `message`); `json` one event per JSON object, and an array one per
    /// element; `ndjson` one JSON object per line. A JSON value that is not
    /// an object becomes the event's `message`.
    #[serde(default)]
    decoding: Decoding,
    /// The largest body accepted, in bytes; a larger one is refused with
    /// 413, whether its `Content-Length` says so or it turns out larger
    /// while it is read.
    #[serde(default = "default_max_body_bytes")]
    max_body_bytes: NonZeroUsize,
    /// Require credentials: a bearer token, or a user and password.
    auth: Option<AuthConfig>,
    /// How long a request waits for its events to be delivered (by every
    /// sink with `acknowledgements.enabled`) before it is answered 503; the
    /// events may still be delivered afterwards, so the client's retry may
    /// duplicate them. Keep it above the sinks' retry budget
    /// (`retry.max_duration_secs`) for fewer duplicates, below the client's
    /// own timeout so it hears the answer.
    #[serde(default = "default_ack_timeout")]
    ack_timeout_secs: Seconds,
    /// Limits on connections, against slow and abusive clients.
    #[serde(default)]
    connections: ConnectionsConfig,
    /// Serve HTTPS with this certificate and key (PEM files), read when
    /// howl starts; unset: plain HTTP.
    tls: Option<TlsConfig>,
}

fn default_ack_timeout() -> Seconds {
    Seconds::from_secs(60)
}

fn default_path() -> String {
    "/".to_string()
}

fn default_max_body_bytes() -> NonZeroUsize {
    const TEN_MIB: NonZeroUsize = NonZeroUsize::new(10 * 1024 * 1024).unwrap();
    TEN_MIB
}

/// How request bodies become events.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
enum Decoding {
    /// One event per line.
    #[default]
    Text,
    /// One event per JSON object (per element of an array).
    Json,
    /// One JSON object per line.
    Ndjson,
}

impl SourceConfig for HttpServerConfig {
    fn build(&self, cx: &BuildContext) -> Result<Box<dyn Source>, BuildError> {
        check_literal_path(&self.path)?;
        let decoding = self.decoding;
        let path = Value::from(self.path.as_str());
        let decoder: Decoder = Arc::new(move |body, _headers| {
            let now = Utc::now();
            let values = decode(decoding, body)?;
            if values.len() > MAX_EVENTS_PER_REQUEST {
                return Err(too_many_events());
            }
            Ok(values
                .into_iter()
                .map(|value| {
                    let mut event = Event::from_value(value);
                    if event.get_field(fields::TIMESTAMP).is_none() {
                        event.insert_field(fields::TIMESTAMP, now);
                    }
                    event.insert_field(fields::SOURCE_TYPE, "http_server");
                    event.insert_field("path", path.clone());
                    event
                })
                .collect::<Vec<_>>()
                .into())
        });
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
            answers: Arc::new(JsonAnswers),
            protocol: Protocol::Http1,
        }))
    }
}

/// Decodes a whole body, or explains why it cannot be.
fn decode(decoding: Decoding, body: bytes::Bytes) -> Result<Vec<Value>, String> {
    match decoding {
        Decoding::Text => {
            let mut values = Vec::new();
            let mut splitter = LineSplitter::new(NonZeroUsize::MAX);
            splitter.push(body, |(line, _)| values.push(Value::Bytes(line)));
            splitter.finish(|(line, _)| values.push(Value::Bytes(line)));
            Ok(values)
        }
        Decoding::Json => {
            if body.iter().all(u8::is_ascii_whitespace) {
                return Ok(Vec::new());
            }
            let parsed: serde_json::Value =
                serde_json::from_slice(&body).map_err(|e| format!("invalid JSON: {e}"))?;
            Ok(match parsed {
                serde_json::Value::Array(items) => items.into_iter().map(Value::from).collect(),
                other => vec![Value::from(other)],
            })
        }
        Decoding::Ndjson => {
            let mut values = Vec::new();
            for (index, line) in body.split(|b| *b == b'\n').enumerate() {
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                let parsed: serde_json::Value = serde_json::from_slice(line)
                    .map_err(|e| format!("invalid JSON on line {}: {e}", index + 1))?;
                values.push(Value::from(parsed));
            }
            Ok(values)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::{build_failure, parse_error};

    #[test]
    fn path_and_token_problems_point_at_their_option() {
        let address = "address = \"127.0.0.1:1\"\n";
        for (options, expected, option) in [
            ("path = \"a\"", "`path` must start with `/`", "path"),
            (
                "path = \"/a/{id}\"",
                "`{` would make `/a/{id}` a pattern",
                "path",
            ),
            ("auth.token = \"\"", "`auth.token` is empty", "auth.token"),
        ] {
            let error = build_failure::<HttpServerConfig>(&format!("{address}{options}"));
            assert!(error.message.contains(expected), "{options}: {error}");
            assert_eq!(error.option.as_deref(), Some(option), "{options}");
        }
    }

    #[test]
    fn the_token_is_never_printed_and_a_zero_body_limit_is_refused_while_reading() {
        let config: HttpServerConfig =
            toml::from_str("address = \"127.0.0.1:1\"\nauth.token = \"s3cret\"").unwrap();
        assert!(!format!("{config:?}").contains("s3cret"));
        let (message, at) =
            parse_error::<HttpServerConfig>("address = \"127.0.0.1:1\"\nmax_body_bytes = 0");
        assert!(message.contains("nonzero"), "{message}");
        assert_eq!(at, "0");
    }

    #[test]
    fn decodes_each_format() {
        let text = decode(Decoding::Text, "a\nb\n".into()).unwrap();
        assert_eq!(text.len(), 2);
        let json = decode(Decoding::Json, r#"[{"a":1},{"a":2}]"#.into()).unwrap();
        assert_eq!(json.len(), 2);
        let ndjson = decode(Decoding::Ndjson, "{\"a\":1}\n\n{\"a\":2}\n".into()).unwrap();
        assert_eq!(ndjson.len(), 2);
    }

    #[test]
    fn bad_ndjson_names_the_line() {
        let error = decode(Decoding::Ndjson, "{\"a\":1}\n{oops\n".into()).unwrap_err();
        assert!(error.contains("line 2"), "{error}");
    }
}
