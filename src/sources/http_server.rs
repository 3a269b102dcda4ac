//! `http_server`: accept events over HTTP POST.
//!
//! The answer tells the client what happened to its request, so a client
//! that retries on failure loses nothing and duplicates nothing:
//!
//! | status | meaning |
//! |---|---|
//! | 200 `{"accepted": N}` | all N events were delivered by every sink that acknowledges (or taken by those that do not) |
//! | 400 `{"error": ...}` | the body could not be decoded; nothing was accepted |
//! | 401 | `auth.token` is set and the request lacks `Authorization: Bearer <token>` |
//! | 413 | the body is larger than `max_body_bytes` |
//! | 503 + `Retry-After` | the pipeline stayed full for a second (nothing was accepted); or a sink could not deliver some of the events (its retries ran out, its destination refused them, or its `drop_newest` buffer was full); or no answer came within `ack_timeout_secs`; or howl is shutting down |
//!
//! Room is reserved in every downstream buffer before any event is handed
//! over, so a "pipeline full" 503 never follows a partial delivery. The
//! other 503s may: a retry can then duplicate the events some sink already
//! delivered (at-least-once). A destination that refused events is answered
//! 503 too, not 400: the refusal is often howl's configuration (a wrong
//! token), and a client that retries loses nothing once it is fixed.

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use chrono::Utc;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use vrl::value::Value;

use super::lines::LineSplitter;
use crate::components::source::{Source, SourceConfig, SourceContext, SourceSender};
use crate::components::{BuildContext, ComponentFuture};
use crate::diagnostic::BuildError;
use crate::event::{BatchStatus, Event, fields, notify_batch};
use crate::http::bearer::bearer_matches;
use crate::http::server::{self, ConnectionsConfig, SOURCE_MAX_CONNECTIONS, ServerLimits};
use crate::internal_events::{ErrorType, Stage};
use crate::options::Seconds;
use crate::secret::Secret;

/// Options of the `http_server` source.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpServerConfig {
    /// The address and port to listen on, e.g. `127.0.0.1:8080` (or
    /// `0.0.0.0:8080` to accept connections from other machines).
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
    /// Require a bearer token.
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
}

fn default_ack_timeout() -> Seconds {
    Seconds::from_secs(60)
}

/// Authentication of `http_server` requests.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct AuthConfig {
    /// When `auth` is set, every request must carry `Authorization: Bearer
    /// <token>` (the scheme in any case) or is refused with 401; without
    /// it, anyone who can reach the address may post. Use `${ENV_VAR}`
    /// rather than writing the token in the file.
    token: Secret,
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

/// How long a request waits for room in a full pipeline before 503.
const BACKPRESSURE_WAIT: Duration = Duration::from_secs(1);
/// How long a client may take to send its body: a stalled client must not
/// hold a connection (and shutdown) forever.
const BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);

impl SourceConfig for HttpServerConfig {
    fn build(&self, _cx: &BuildContext) -> Result<Box<dyn Source>, BuildError> {
        check_literal_path(&self.path)
            .map_err(|message| BuildError::new(message).for_option("path"))?;
        if self
            .auth
            .as_ref()
            .is_some_and(|a| a.token.expose().is_empty())
        {
            // An empty token would let every request in while looking
            // protected (an unset `${ENV_VAR}` gives one).
            return Err(BuildError::new("`auth.token` is empty").for_option("auth.token"));
        }
        Ok(Box::new(HttpServer {
            address: self.address,
            path: self.path.clone(),
            decoding: self.decoding,
            max_body_bytes: self.max_body_bytes.get(),
            token: self.auth.as_ref().map(|a| a.token.clone()),
            ack_timeout: self.ack_timeout_secs.positive("ack_timeout_secs")?,
            limits: self.connections.limits(SOURCE_MAX_CONNECTIONS),
        }))
    }
}

/// Refuses a `path` the router would read as a pattern (`/a/:id`,
/// `/*rest`, `/{id}`): it would accept posts to paths the user never
/// meant to open.
fn check_literal_path(path: &str) -> Result<(), String> {
    if !path.starts_with('/') {
        return Err(format!("`path` must start with `/` (got `{path}`)"));
    }
    match path.chars().find(|c| matches!(c, ':' | '*' | '{' | '}')) {
        Some(c) => Err(format!(
            "`path` must be a literal path; `{c}` would make `{path}` a pattern"
        )),
        None => Ok(()),
    }
}

struct HttpServer {
    address: SocketAddr,
    path: String,
    decoding: Decoding,
    max_body_bytes: usize,
    token: Option<Secret>,
    ack_timeout: Duration,
    limits: ServerLimits,
}

struct Shared {
    /// Taken away when shutdown begins: the pipeline drains only once every
    /// sender is gone, and requests still waiting for their
    /// acknowledgements need it to drain.
    out: Mutex<Option<SourceSender>>,
    decoding: Decoding,
    max_body_bytes: usize,
    token: Option<Secret>,
    source_id: Arc<str>,
    path: Value,
    ack_timeout: Duration,
    shutdown: tokio_util::sync::CancellationToken,
    shutdown_limit: tokio_util::sync::CancellationToken,
}

impl Source for HttpServer {
    fn run(self: Box<Self>, cx: SourceContext) -> ComponentFuture {
        Box::pin(async move {
            let listener = tokio::net::TcpListener::bind(self.address)
                .await
                .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", self.address))?;
            tracing::info!(component = %cx.key, address = %self.address, path = %self.path, "listening");
            let shared = Arc::new(Shared {
                out: Mutex::new(Some(cx.out)),
                decoding: self.decoding,
                max_body_bytes: self.max_body_bytes,
                token: self.token,
                source_id: cx.key.shared_id(),
                path: Value::from(self.path.as_str()),
                ack_timeout: self.ack_timeout,
                shutdown: cx.shutdown.clone(),
                shutdown_limit: cx.shutdown_limit.clone(),
            });
            let closing = Arc::clone(&shared);
            tokio::spawn(async move {
                closing.shutdown.cancelled().await;
                closing.out.lock().unwrap_or_else(|p| p.into_inner()).take();
            });
            let router = Router::new()
                .route(&self.path, post(accept))
                .fallback(|| async { error(StatusCode::NOT_FOUND, "no such path") })
                .with_state(shared);
            let name = cx.key.to_string();
            server::serve(listener, router, self.limits, &name, cx.shutdown.clone()).await;
            Ok(())
        })
    }
}

async fn accept(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let Some(mut out) = shared.out.lock().unwrap_or_else(|p| p.into_inner()).clone() else {
        return shutting_down();
    };
    let metrics = Arc::clone(out.metrics());
    if let Some(token) = &shared.token
        && !bearer_matches(request.headers(), token.expose())
    {
        let mut response = error(StatusCode::UNAUTHORIZED, "missing or wrong bearer token");
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return response;
    }
    let too_large = || {
        error(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!(
                "body larger than max_body_bytes ({})",
                shared.max_body_bytes
            ),
        )
    };
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > shared.max_body_bytes) {
        return too_large();
    }
    let read = axum::body::to_bytes(request.into_body(), shared.max_body_bytes);
    let body = tokio::select! {
        read = tokio::time::timeout(BODY_READ_TIMEOUT, read) => match read {
            Ok(Ok(body)) => body,
            Ok(Err(failure)) if is_over_limit(&failure) => return too_large(),
            Ok(Err(_)) => return error(StatusCode::BAD_REQUEST, "the body could not be read"),
            Err(_) => {
                return error(
                    StatusCode::REQUEST_TIMEOUT,
                    &format!("the body took more than {}s to arrive", BODY_READ_TIMEOUT.as_secs()),
                );
            }
        },
        () = shared.shutdown.cancelled() => return shutting_down(),
    };
    let now = Utc::now();
    let events = match decode(shared.decoding, body.clone()) {
        Ok(values) => values
            .into_iter()
            .map(|value| {
                let mut event =
                    Event::from_value(value).with_source_id(Arc::clone(&shared.source_id));
                if event.get_field(fields::TIMESTAMP).is_none() {
                    event.insert_field(fields::TIMESTAMP, now);
                }
                event.insert_field(fields::SOURCE_TYPE, "http_server");
                event.insert_field("path", shared.path.clone());
                event
            })
            .collect::<Vec<_>>(),
        Err(message) => {
            metrics.error(ErrorType::DecodeFailed, Stage::Receiving, &message);
            return error(StatusCode::BAD_REQUEST, &message);
        }
    };
    let count = events.len();
    metrics.received(count, body.len());
    let mut events = events;
    let status = notify_batch(&mut events);
    let sent = out.send_or_backpressure(events, BACKPRESSURE_WAIT).await;
    // Not held while waiting: the pipeline must be able to drain.
    drop(out);
    if sent.is_err() {
        metrics.discarded_intentionally(count, "pipeline full; client told to retry");
        return retry_later("the pipeline is full; retry later");
    }
    let answer = tokio::select! {
        biased;
        status = status => status.unwrap_or(BatchStatus::Errored),
        () = tokio::time::sleep(shared.ack_timeout) => {
            return retry_later(&format!(
                "the events were not delivered within {}s (they may still be); retry later",
                shared.ack_timeout.as_secs_f64()
            ));
        }
        () = shared.shutdown_limit.cancelled() => return shutting_down(),
    };
    match answer {
        BatchStatus::Delivered => (
            StatusCode::OK,
            axum::Json(serde_json::json!({ "accepted": count })),
        )
            .into_response(),
        BatchStatus::Errored => retry_later(
            "a sink could not deliver the events (its retries ran out or its buffer was full); retry later",
        ),
        BatchStatus::Rejected => retry_later(
            "a sink's destination refused the events; retry once howl's configuration or the destination is fixed",
        ),
    }
}

fn shutting_down() -> Response {
    retry_later("shutting down; retry later")
}

/// 503 with `Retry-After`: the client should send the request again.
fn retry_later(message: &str) -> Response {
    let mut response = error(StatusCode::SERVICE_UNAVAILABLE, message);
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(serde_json::json!({ "error": message }))).into_response()
}

/// Whether a body failed only because it was over `max_body_bytes` (any
/// other failure is the client's malformed request).
fn is_over_limit(failure: &axum::Error) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(failure);
    while let Some(error) = cause {
        if error.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        cause = error.source();
    }
    false
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
