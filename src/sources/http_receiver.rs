//! The plumbing of sources that accept HTTP requests (`http_server`,
//! `alert_webhook`, `opentelemetry` over HTTP/1.1 and, for gRPC, HTTP/2):
//! credentials, body limits, backpressure, and an answer
//! that says what happened to the events, so a client that retries on
//! failure loses nothing:
//!
//! | status | meaning |
//! |---|---|
//! | 200 `{"accepted": N}` | all N events were delivered by every sink that acknowledges (or taken by those that do not) |
//! | 400 `{"error": ...}` | the body could not be decoded; nothing was accepted |
//! | 401 | credentials are configured and the request lacks them |
//! | 413 | the body is larger than `max_body_bytes` |
//! | 503 + `Retry-After` | the pipeline stayed full for a second (nothing was accepted); or a sink could not deliver some of the events; or no answer came within `ack_timeout_secs`; or howl is shutting down |
//!
//! Room is reserved in every downstream buffer before any event is handed
//! over, so a "pipeline full" 503 never follows a partial delivery. The
//! other 503s may: a retry can then duplicate the events some sink already
//! delivered (at-least-once). A destination that refused events is answered
//! 503 too, not 400: the refusal is often howl's configuration (a wrong
//! token), and a client that retries loses nothing once it is fixed.
//!
//! A source supplies the decoder (body → events); everything else is here,
//! so every HTTP source answers alike. A source that speaks a protocol with
//! answers of its own (OTLP's `ExportLogsServiceResponse` and
//! `google.rpc.Status`) words them through [`Answers`]: the statuses and
//! headers stay the receiver's, only the bodies change; and its decoder may
//! refuse a body with another status than 400 ([`Refusal`]).

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use bytes::Bytes;
use schemars::JsonSchema;
use serde::Deserialize;

use crate::components::source::{Source, SourceContext, SourceSender};
use crate::components::{BuildContext, ComponentFuture};
use crate::diagnostic::BuildError;
use crate::event::{BatchStatus, Event, notify_batch};
use crate::http::bearer::{basic_matches, bearer_matches};
use crate::http::server::{self, ConnectionsConfig, SOURCE_MAX_CONNECTIONS, ServerLimits};

pub use crate::http::server::Protocol;
use crate::internal_events::{ErrorType, Stage};
use crate::options::{Seconds, TlsConfig};
use crate::secret::Secret;

/// Credentials a client must send.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// Every request must carry `Authorization: Bearer <token>` (the scheme
    /// in any case) or is refused with 401; without `auth`, anyone who can
    /// reach the address may post. Use `${ENV_VAR}` rather than writing the
    /// token in the file.
    token: Option<Secret>,
    /// With `password`, requests must carry these basic credentials
    /// (`Authorization: Basic ...`, what Alertmanager's `basic_auth` and
    /// Grafana's contact points send) instead of a token.
    username: Option<String>,
    /// The basic-auth password (with `username`).
    password: Option<Secret>,
}

/// What a request must carry.
#[derive(Debug, Clone)]
pub enum Credentials {
    /// `Authorization: Bearer <token>`.
    Bearer(Secret),
    /// `Authorization: Basic <username:password>`.
    Basic {
        /// The user name.
        username: String,
        /// The password.
        password: Secret,
    },
}

impl AuthConfig {
    /// The credentials, or why the options do not make any: a token or a
    /// user and password, never empty (an unset `${ENV_VAR}` gives an empty
    /// one, which would let every request in while looking protected).
    pub fn credentials(&self) -> Result<Credentials, BuildError> {
        match (&self.token, &self.username, &self.password) {
            (Some(token), None, None) if token.expose().is_empty() => {
                Err(BuildError::new("`auth.token` is empty").for_option("auth.token"))
            }
            (Some(token), None, None) => Ok(Credentials::Bearer(token.clone())),
            (None, Some(username), Some(password)) => {
                if username.is_empty() || password.expose().is_empty() {
                    return Err(BuildError::new(
                        "`auth.username` and `auth.password` must not be empty",
                    )
                    .for_option("auth"));
                }
                Ok(Credentials::Basic {
                    username: username.clone(),
                    password: password.clone(),
                })
            }
            _ => Err(
                BuildError::new("`auth` takes either `token`, or `username` and `password`")
                    .for_option("auth"),
            ),
        }
    }
}

impl Credentials {
    fn allow(&self, headers: &HeaderMap) -> bool {
        match self {
            Self::Bearer(token) => bearer_matches(headers, token.expose()),
            Self::Basic { username, password } => {
                basic_matches(headers, username, password.expose())
            }
        }
    }

    fn challenge(&self) -> &'static str {
        match self {
            Self::Bearer(_) => "Bearer",
            Self::Basic { .. } => "Basic realm=\"howl\"",
        }
    }
}

/// Turns a request body (and its headers) into events, or says why it
/// cannot (answered 400, or the refusal's own status).
pub type Decoder = Arc<dyn Fn(Bytes, &HeaderMap) -> Result<Decoded, Refusal> + Send + Sync>;

/// What a decoder made of a body.
#[derive(Debug)]
pub struct Decoded {
    /// The events, all of the body's records.
    pub events: Vec<Event>,
    /// What the client should know about how its records were taken in
    /// (a value that could not be kept as sent), for a protocol whose
    /// answers can say it (OTLP's partial success).
    pub warning: Option<String>,
}

impl From<Vec<Event>> for Decoded {
    fn from(events: Vec<Event>) -> Self {
        Self {
            events,
            warning: None,
        }
    }
}

/// Why a decoder refused a body, and the status that says so.
#[derive(Debug)]
pub struct Refusal {
    /// 400 for a body that does not decode; 413, 415 where they fit.
    pub status: StatusCode,
    /// What was wrong, for the client.
    pub message: String,
}

impl From<String> for Refusal {
    /// An undecodable body: 400.
    fn from(message: String) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message,
        }
    }
}

/// How a source words the bodies of its answers. The status and the
/// headers (`Retry-After`, `WWW-Authenticate`) stay the receiver's.
pub trait Answers: Send + Sync {
    /// The body of the 200 once the request's `count` events are
    /// delivered, with the decoder's warning, if any.
    fn delivered(&self, count: usize, warning: Option<&str>, request: &HeaderMap) -> Response;
    /// The body of any other answer, for a request with these headers.
    fn refused(&self, status: StatusCode, message: &str, request: &HeaderMap) -> Response;
}

/// `{"accepted": N}` and `{"error": "..."}`: the answers of `http_server`
/// and `alert_webhook`.
pub struct JsonAnswers;

impl Answers for JsonAnswers {
    fn delivered(&self, count: usize, _warning: Option<&str>, _request: &HeaderMap) -> Response {
        (
            StatusCode::OK,
            axum::Json(serde_json::json!({ "accepted": count })),
        )
            .into_response()
    }

    fn refused(&self, status: StatusCode, message: &str, _request: &HeaderMap) -> Response {
        error(status, message)
    }
}

/// What every HTTP source's shared options come to once checked: the
/// body limit, the credentials, the acknowledgement timeout and the
/// connection limits. One place checks them, so every source refuses an
/// empty token or a zero timeout the same way.
#[derive(Clone)]
pub struct Listening {
    /// The largest body accepted.
    pub max_body_bytes: usize,
    /// Credentials requests must carry.
    pub credentials: Option<Credentials>,
    /// How long a request waits for its events' delivery.
    pub ack_timeout: Duration,
    /// Limits on connections.
    pub limits: ServerLimits,
    /// The server's TLS identity, when it serves HTTPS.
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

impl Listening {
    /// Checks the shared options (reading the TLS files, relative to the
    /// config file, now); `prefix` is where they sit (`""`, or
    /// `"http."` for a source that nests them), for error positions.
    pub fn new(
        max_body_bytes: NonZeroUsize,
        auth: Option<&AuthConfig>,
        ack_timeout_secs: &Seconds,
        connections: &ConnectionsConfig,
        tls: Option<&TlsConfig>,
        cx: &BuildContext,
        prefix: &str,
    ) -> Result<Self, BuildError> {
        let at_prefix = |mut error: BuildError| {
            error.option = error.option.map(|option| format!("{prefix}{option}"));
            error
        };
        let credentials = auth
            .map(|auth| auth.credentials().map_err(at_prefix))
            .transpose()?;
        let tls = tls
            .map(|tls| {
                tls.server_config(|path| cx.resolve_path(path))
                    .map_err(at_prefix)
            })
            .transpose()?;
        Ok(Self {
            max_body_bytes: max_body_bytes.get(),
            credentials,
            ack_timeout: ack_timeout_secs.positive(&format!("{prefix}ack_timeout_secs"))?,
            limits: connections.limits(SOURCE_MAX_CONNECTIONS),
            tls,
        })
    }
}

/// The most events one request may make. Each event takes about a
/// kilobyte or two in memory however small its record, so without this a
/// small compressed body of empty records (a few bytes each) would make
/// millions of them at once. Real clients send far fewer per request (the
/// OpenTelemetry SDKs 512, Alloy and Fluent Bit a few thousand).
pub const MAX_EVENTS_PER_REQUEST: usize = 100_000;

/// The answer to a request over [`MAX_EVENTS_PER_REQUEST`]: 413, which
/// clients do not retry as it is.
pub fn too_many_events() -> Refusal {
    Refusal {
        status: StatusCode::PAYLOAD_TOO_LARGE,
        message: format!(
            "more than {MAX_EVENTS_PER_REQUEST} records in one request; send smaller batches"
        ),
    }
}

/// One HTTP source, ready to serve: a [`Source`] of its own.
pub struct Receiver {
    /// Where to listen.
    pub address: SocketAddr,
    /// The one path that accepts requests (literal: see [`check_literal_path`]).
    pub path: String,
    /// The methods accepted at `path` (others answer 405).
    pub methods: axum::routing::MethodFilter,
    /// The shared options, checked.
    pub listening: Listening,
    /// Body → events.
    pub decoder: Decoder,
    /// The bodies of the answers ([`JsonAnswers`] unless the protocol
    /// says otherwise).
    pub answers: Arc<dyn Answers>,
    /// HTTP/1.1, or cleartext HTTP/2 for gRPC.
    pub protocol: Protocol,
}

impl Source for Receiver {
    fn listens(&self) -> bool {
        true
    }

    fn run(self: Box<Self>, cx: SourceContext) -> ComponentFuture {
        Box::pin((*self).run(cx))
    }
}

/// Bodies larger than this are decoded on a blocking thread.
const DECODE_ON_BLOCKING_THREAD: usize = 64 * 1024;
/// How long a request waits for room in a full pipeline before 503.
const BACKPRESSURE_WAIT: Duration = Duration::from_secs(1);
/// How long a client may take to send its body: a stalled client must not
/// hold a connection (and shutdown) forever.
const BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);

struct Shared {
    /// Taken away when shutdown begins: the pipeline drains only once every
    /// sender is gone, and requests still waiting for their
    /// acknowledgements need it to drain.
    out: Mutex<Option<SourceSender>>,
    max_body_bytes: usize,
    credentials: Option<Credentials>,
    source_id: Arc<str>,
    ack_timeout: Duration,
    decoder: Decoder,
    answers: Arc<dyn Answers>,
    shutdown: tokio_util::sync::CancellationToken,
    shutdown_limit: tokio_util::sync::CancellationToken,
}

impl Receiver {
    /// Serves until shutdown.
    pub async fn run(self, cx: SourceContext) -> anyhow::Result<()> {
        let listener = tokio::net::TcpListener::bind(self.address)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", self.address))?;
        tracing::info!(component = %cx.key, address = %self.address, path = %self.path, "listening");
        cx.ready.listening();
        let shared = Arc::new(Shared {
            out: Mutex::new(Some(cx.out)),
            max_body_bytes: self.listening.max_body_bytes,
            credentials: self.listening.credentials,
            source_id: cx.key.shared_id(),
            ack_timeout: self.listening.ack_timeout,
            decoder: self.decoder,
            answers: self.answers,
            shutdown: cx.shutdown.clone(),
            shutdown_limit: cx.shutdown_limit.clone(),
        });
        let closing = Arc::clone(&shared);
        tokio::spawn(async move {
            closing.shutdown.cancelled().await;
            closing.out.lock().unwrap_or_else(|p| p.into_inner()).take();
        });
        let router = Router::new()
            .route(&self.path, MethodRouter::new().on(self.methods, accept))
            .fallback(not_found)
            .with_state(shared);
        let name = cx.key.to_string();
        server::serve_protocol(
            listener,
            router,
            self.listening.limits,
            &name,
            cx.shutdown.clone(),
            self.protocol,
            self.listening.tls,
        )
        .await;
        Ok(())
    }
}

/// Refuses a `path` the router would read as a pattern (`/a/:id`,
/// `/*rest`, `/{id}`): it would accept posts to paths the user never
/// meant to open.
pub fn check_literal_path(path: &str) -> Result<(), BuildError> {
    let problem = if !path.starts_with('/') {
        Some(format!("`path` must start with `/` (got `{path}`)"))
    } else {
        path.chars()
            .find(|c| matches!(c, ':' | '*' | '{' | '}'))
            .map(|c| format!("`path` must be a literal path; `{c}` would make `{path}` a pattern"))
    };
    match problem {
        Some(message) => Err(BuildError::new(message).for_option("path")),
        None => Ok(()),
    }
}

async fn accept(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let headers = request.headers().clone();
    let answers = &*shared.answers;
    let refuse = |status: StatusCode, message: &str| answers.refused(status, message, &headers);
    let retry_later = |message: &str| {
        let mut response = refuse(StatusCode::SERVICE_UNAVAILABLE, message);
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        response
    };
    let shutting_down = || retry_later("shutting down; retry later");
    let Some(mut out) = shared.out.lock().unwrap_or_else(|p| p.into_inner()).clone() else {
        return shutting_down();
    };
    let metrics = Arc::clone(out.metrics());
    if let Some(credentials) = &shared.credentials
        && !credentials.allow(&headers)
    {
        let mut response = refuse(StatusCode::UNAUTHORIZED, "missing or wrong credentials");
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(credentials.challenge()),
        );
        return response;
    }
    let too_large = || {
        refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!(
                "body larger than max_body_bytes ({})",
                shared.max_body_bytes
            ),
        )
    };
    let declared = headers
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
            Ok(Err(_)) => return refuse(StatusCode::BAD_REQUEST, "the body could not be read"),
            Err(_) => {
                return refuse(
                    StatusCode::REQUEST_TIMEOUT,
                    &format!("the body took more than {}s to arrive", BODY_READ_TIMEOUT.as_secs()),
                );
            }
        },
        () = shared.shutdown.cancelled() => return shutting_down(),
    };
    let body_len = body.len();
    let decoded = if body_len > DECODE_ON_BLOCKING_THREAD {
        // Decoding a large body (or one that inflates) takes milliseconds
        // to seconds: not on the threads every other request and timer
        // shares.
        let (decoder, request_headers) = (Arc::clone(&shared.decoder), headers.clone());
        tokio::task::spawn_blocking(move || decoder(body, &request_headers))
            .await
            .unwrap_or_else(|_| {
                Err(Refusal {
                    status: StatusCode::INTERNAL_SERVER_ERROR,
                    message: "decoding the body failed unexpectedly".to_string(),
                })
            })
    } else {
        (shared.decoder)(body, &headers)
    };
    let (mut events, warning): (Vec<Event>, _) = match decoded {
        Ok(Decoded { events, warning }) => (
            events
                .into_iter()
                .map(|event| event.with_source_id(Arc::clone(&shared.source_id)))
                .collect(),
            warning,
        ),
        Err(refusal) => {
            metrics.error(ErrorType::DecodeFailed, Stage::Receiving, &refusal.message);
            return refuse(refusal.status, &refusal.message);
        }
    };
    let count = events.len();
    metrics.received(count, body_len);
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
        BatchStatus::Delivered => answers.delivered(count, warning.as_deref(), &headers),
        BatchStatus::Errored => retry_later(
            "a sink could not deliver the events (its retries ran out or its buffer was full); retry later",
        ),
        BatchStatus::Rejected => retry_later(
            "a sink's destination refused the events; retry once howl's configuration or the destination is fixed",
        ),
    }
}

/// Any path but the source's.
async fn not_found(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    shared
        .answers
        .refused(StatusCode::NOT_FOUND, "no such path", &headers)
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
