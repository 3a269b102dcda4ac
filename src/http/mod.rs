//! The HTTP client core: the delivery loop shared by every HTTP sink
//! (Alertmanager, Telegram, Slack, webhooks), the polling sources, the LLM
//! providers, the Alertmanager silencer and the command line.
//!
//! A sink decides *what* to send; this module decides *how*: one plain
//! async loop per request, in this order:
//!
//! 1. wait for the rate limiter (`rate_limit.*`) and a concurrency slot
//!    (`request.concurrency`);
//! 2. send, with a per-attempt timeout (`request.timeout_secs`);
//! 3. let the sink's [`Classify`] judge the answer (each protocol has its own
//!    idea of failure: Slack answers 200 with `{"ok":false}`, Telegram puts
//!    `retry_after` in the body). A sink may also *decline* an answer it
//!    handles itself ("the message to edit is gone": send a new one), which
//!    is neither retried nor counted as an error;
//! 4. on a retryable failure, wait `Retry-After` (or the protocol's own
//!    hint), else an exponential backoff with full jitter, and try again
//!    until `retry.max_duration_secs` is spent; on a permanent failure, stop
//!    at once and log the (redacted, truncated) answer.
//!
//! The default classification is Vector's: 2xx delivered; 408, 429 and 5xx
//! except 501 retried, as are timeouts and connection errors; every other
//! 4xx rejected. Every request is counted by status class with its latency,
//! and every message passes through the sink's [`Redactor`](crate::secret::Redactor). Sinks that
//! authenticate with `auth.*` (bearer or basic) share [`AuthConfig`].
//!
//! Deliberately not a tower stack: a newcomer can read the whole policy in
//! [`Delivery::execute`].
//!
//! Sources that poll over HTTP (`prometheus_scrape`, `prometheus_query`)
//! use the same core for their GETs, so they retry, back off and honour
//! `Retry-After` exactly as sinks do; they report failures at the
//! `receiving` stage ([`Delivery::with_stage`]) and may read larger
//! answers ([`Delivery::with_body_limit`]).
//!
//! The server side lives here too, shared by the `http_server` source and
//! the API: the bearer-token check ([`bearer`]) and the server loop with
//! its connection limits and timeouts ([`server`]).

mod auth;
pub mod bearer;
mod config;
mod rate_limit;
pub mod server;

use std::sync::{Arc, Once};
use std::time::{Duration, Instant};

use bytes::Bytes;
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use tokio::sync::Semaphore;

pub use auth::{AuthConfig, AuthStrategy, user_headers};
pub use config::{
    DeliverySettings, HealthcheckConfig, HttpDelivery, RateLimitConfig, RequestConfig, RetryConfig,
    RetryPolicy, api_url, base_url,
};
pub use rate_limit::RateLimiter;

use crate::diagnostic::BuildError;
use crate::internal_events::{ComponentMetrics, ErrorType, Stage};
use crate::secret::Redactor;

/// How much of a response body (or a reason quoting it) is kept for logs,
/// in characters, cut after secrets are redacted.
const BODY_LOG_LIMIT: usize = 512;
/// Responses larger than this are cut (nobody needs a 10 MB error page),
/// unless the caller sets another limit.
const BODY_READ_LIMIT: usize = 1024 * 1024;

/// A destination's answer.
#[derive(Debug, Clone)]
pub struct Response {
    /// The HTTP status.
    pub status: StatusCode,
    /// The response headers.
    pub headers: HeaderMap,
    /// The body (at most 1 MiB of it).
    pub body: Bytes,
}

impl Response {
    /// The body parsed as JSON, if it is.
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

/// The judgement of one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The destination took it.
    Delivered,
    /// Worth another try, after `after` if the destination said so.
    Retry {
        /// The wait the destination asked for.
        after: Option<Duration>,
        /// Why, for the log.
        reason: String,
    },
    /// Will never succeed as it is: stop.
    Rejected {
        /// Why, for the log.
        reason: String,
    },
    /// Not a success, but an answer the sink knows how to handle itself
    /// (the message to edit was deleted: send a new one instead). Not
    /// retried, not logged or counted as an error: `execute` returns the
    /// response as `Ok` and the sink acts on it.
    Declined {
        /// Why, for the debug log.
        reason: String,
    },
}

/// Judges an answer; each protocol may supply its own.
pub type Classify = fn(&Response) -> Verdict;

/// The default judgement (Vector's `HttpRetryLogic`, plus 408).
pub fn classify_http(response: &Response) -> Verdict {
    let status = response.status;
    if status.is_success() {
        Verdict::Delivered
    } else if status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
        || (status.is_server_error() && status != StatusCode::NOT_IMPLEMENTED)
    {
        Verdict::Retry {
            after: retry_after(&response.headers),
            reason: format!("HTTP {status}"),
        }
    } else {
        Verdict::Rejected {
            reason: format!("HTTP {status}"),
        }
    }
}

/// The `Retry-After` header, in seconds or as an HTTP date.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(seconds) = value.parse::<f64>() {
        return wait_hint(seconds);
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let wait = at.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(
        wait.to_std()
            .unwrap_or(Duration::ZERO)
            .min(LONGEST_WAIT_HINT),
    )
}

/// The longest wait a destination may ask for; anything longer is read as
/// this (a retry budget is spent long before it anyway).
const LONGEST_WAIT_HINT: Duration = Duration::from_secs(86_400);

/// A destination's "retry after this many seconds" as a duration: `None`
/// for nonsense (negative, NaN), at most a day for huge values, which
/// must never make the delivery loop overflow or panic.
pub fn wait_hint(seconds: f64) -> Option<Duration> {
    (seconds >= 0.0)
        .then(|| Duration::try_from_secs_f64(seconds.min(LONGEST_WAIT_HINT.as_secs_f64())).ok())
        .flatten()
}

/// Why a request was not delivered.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Failure {
    /// The destination refused it for good.
    #[error("rejected: {reason}{}", body_suffix(body))]
    Rejected {
        /// The status, when there was an answer.
        status: Option<StatusCode>,
        /// The classifier's reason.
        reason: String,
        /// The start of the answer (redacted).
        body: String,
    },
    /// Retries ran out (`retry.max_duration_secs`).
    #[error("gave up after {attempts} attempt(s) over {elapsed:?}; last error: {last}")]
    GaveUp {
        /// Attempts made.
        attempts: u32,
        /// Time spent.
        elapsed: Duration,
        /// The last reason (redacted).
        last: String,
    },
}

fn body_suffix(body: &str) -> String {
    if body.is_empty() {
        String::new()
    } else {
        format!("; response: {body}")
    }
}

impl Failure {
    /// The response status of a rejection, if any.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Failure::Rejected { status, .. } => *status,
            Failure::GaveUp { .. } => None,
        }
    }

    /// The start of a rejection's response body.
    pub fn body(&self) -> &str {
        match self {
            Failure::Rejected { body, .. } => body,
            Failure::GaveUp { .. } => "",
        }
    }
}

/// The HTTP delivery machinery of one sink.
#[derive(Clone)]
pub struct Delivery {
    client: reqwest::Client,
    settings: DeliverySettings,
    limiter: Option<Arc<RateLimiter>>,
    concurrency: Arc<Semaphore>,
    metrics: Arc<ComponentMetrics>,
    redactor: Redactor,
    stage: Stage,
    body_limit: usize,
}

/// Installs rustls' crypto provider once per process (reqwest is built
/// without a default one, to avoid a second crypto library).
fn install_crypto_provider() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// A client for streams that last as long as their reader wants (`howl
/// tap`): a connect timeout, no overall one.
pub fn streaming_client() -> Result<reqwest::Client, BuildError> {
    install_crypto_provider();
    reqwest::Client::builder()
        .user_agent(concat!("howl/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| BuildError::new(format!("cannot build the HTTP client: {e}")))
}

/// Builds the HTTP client every sink uses.
pub fn http_client(timeout: Duration) -> Result<reqwest::Client, BuildError> {
    install_crypto_provider();
    reqwest::Client::builder()
        .user_agent(concat!("howl/", env!("CARGO_PKG_VERSION")))
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .build()
        .map_err(|e| BuildError::new(format!("cannot build the HTTP client: {e}")))
}

impl Delivery {
    /// The machinery for one sink.
    pub fn new(
        settings: DeliverySettings,
        metrics: Arc<ComponentMetrics>,
        redactor: Redactor,
    ) -> Result<Self, BuildError> {
        let client = http_client(settings.timeout)?;
        Ok(Self {
            client,
            limiter: settings
                .rate_limit
                .map(|(num, window)| Arc::new(RateLimiter::new(num, window))),
            concurrency: Arc::new(Semaphore::new(settings.concurrency)),
            settings,
            metrics,
            redactor,
            stage: Stage::Sending,
            body_limit: BODY_READ_LIMIT,
        })
    }

    /// Reports failures at `stage` instead of `sending`: for sources, whose
    /// requests fetch their input.
    pub fn with_stage(mut self, stage: Stage) -> Self {
        self.stage = stage;
        self
    }

    /// Keeps at most `bytes` of each response body instead of 1 MiB: for
    /// sources whose input is the body. A body cut short is exactly
    /// `bytes` long, so a caller that must not act on a partial body asks
    /// for one byte more than it accepts and checks the length.
    pub fn with_body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes;
        self
    }

    /// The sink's redactor, for its own messages.
    pub fn redactor(&self) -> &Redactor {
        &self.redactor
    }

    /// The sink's metrics.
    pub fn metrics(&self) -> &Arc<ComponentMetrics> {
        &self.metrics
    }

    /// The underlying client, for requests outside the retry loop.
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// Sends one request until it is delivered (or declined, see
    /// [`Verdict::Declined`]), rejected, or retries run out. `build` makes a
    /// fresh request for every attempt.
    pub async fn execute(
        &self,
        build: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
        classify: Classify,
    ) -> Result<Response, Failure> {
        let start = Instant::now();
        let mut attempts: u32 = 0;
        loop {
            if let Some(limiter) = &self.limiter {
                limiter.acquire().await;
            }
            attempts += 1;
            let verdict = {
                let _slot = self.concurrency.acquire().await;
                self.attempt(&build, classify).await
            };
            let (after, reason) = match verdict {
                Ok(response) => return Ok(response),
                Err(AttemptError::Rejected(failure)) => {
                    self.metrics.error(
                        ErrorType::RequestRejected,
                        self.stage,
                        &format_args!("the destination refused the request ({failure})"),
                    );
                    return Err(failure);
                }
                Err(AttemptError::Retry { after, reason }) => (after, reason),
            };
            let wait = after.unwrap_or_else(|| self.settings.retry.backoff(attempts));
            let elapsed = start.elapsed();
            if elapsed.saturating_add(wait) > self.settings.retry.max_duration {
                let failure = Failure::GaveUp {
                    attempts,
                    elapsed,
                    last: reason,
                };
                self.metrics.error(
                    ErrorType::RetriesExhausted,
                    self.stage,
                    &format_args!("{failure}"),
                );
                return Err(failure);
            }
            self.metrics.http_retry();
            self.metrics.warn_limited(
                "retrying",
                &format_args!(
                    "request failed ({reason}); retrying in {:.1}s (attempt {attempts})",
                    wait.as_secs_f64()
                ),
            );
            tokio::time::sleep(wait).await;
        }
    }

    async fn attempt(
        &self,
        build: &impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
        classify: Classify,
    ) -> Result<Response, AttemptError> {
        let request = build(&self.client).build().map_err(|e| {
            AttemptError::Rejected(Failure::Rejected {
                status: None,
                reason: self
                    .redactor
                    .redact(&format!("cannot build the request: {}", e.without_url())),
                body: String::new(),
            })
        })?;
        let body_bytes = request
            .body()
            .and_then(|b| b.as_bytes())
            .map_or(0, <[u8]>::len);
        let started = Instant::now();
        let sent = self.client.execute(request).await;
        let response = match sent {
            Ok(response) => response,
            Err(error) => {
                self.metrics.http_request("error", started.elapsed());
                let kind = if error.is_timeout() {
                    "timed out"
                } else {
                    "failed"
                };
                return Err(AttemptError::Retry {
                    after: None,
                    reason: self.redactor.redact(&format!(
                        "request {kind}: {}",
                        error_chain(&error.without_url())
                    )),
                });
            }
        };
        let status = response.status();
        let headers = response.headers().clone();
        let body = read_body(response, self.body_limit).await;
        self.metrics
            .http_request(status_class(status), started.elapsed());
        let body = body.map_err(|error| AttemptError::Retry {
            after: None,
            reason: self.redactor.redact(&format!(
                "HTTP {status}, then reading the answer failed: {}",
                error_chain(&error.without_url())
            )),
        })?;
        let response = Response {
            status,
            headers,
            body,
        };
        match classify(&response) {
            Verdict::Delivered => {
                self.metrics.sent_bytes(body_bytes);
                Ok(response)
            }
            Verdict::Declined { reason } => {
                tracing::debug!(component = %self.metrics.key(), "request declined: {}", self.redactor.redact_cut(&reason, BODY_LOG_LIMIT));
                Ok(response)
            }
            Verdict::Retry { after, reason } => Err(AttemptError::Retry {
                after,
                reason: self.redactor.redact_cut(&reason, BODY_LOG_LIMIT),
            }),
            Verdict::Rejected { reason } => Err(AttemptError::Rejected(Failure::Rejected {
                status: Some(status),
                reason: self.redactor.redact_cut(&reason, BODY_LOG_LIMIT),
                body: self
                    .redactor
                    .redact_cut(&String::from_utf8_lossy(&response.body), BODY_LOG_LIMIT),
            })),
        }
    }

    /// Runs a start-up check (`healthcheck.*`): `Ok` when it passed or is
    /// disabled, a warning when it failed and is optional, an error when it
    /// failed and is required.
    pub async fn healthcheck(
        &self,
        what: &str,
        build: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
        classify: Classify,
    ) -> anyhow::Result<()> {
        if !self.settings.healthcheck.enabled {
            return Ok(());
        }
        let outcome = match build(&self.client).send().await {
            Ok(response) => {
                let status = response.status();
                let headers = response.headers().clone();
                match read_body(response, self.body_limit).await {
                    Ok(body) => match classify(&Response {
                        status,
                        headers,
                        body,
                    }) {
                        Verdict::Delivered => Ok(()),
                        Verdict::Retry { reason, .. }
                        | Verdict::Rejected { reason }
                        | Verdict::Declined { reason } => Err(reason),
                    },
                    Err(error) => Err(format!(
                        "HTTP {status}, then reading the answer failed: {}",
                        error_chain(&error.without_url())
                    )),
                }
            }
            Err(error) => Err(error_chain(&error.without_url())),
        };
        match outcome {
            Ok(()) => Ok(()),
            Err(reason) => {
                let message = self
                    .redactor
                    .redact(&format!("healthcheck of {what} failed: {reason}"));
                if self.settings.healthcheck.required {
                    Err(anyhow::anyhow!("{message} (healthcheck.required = true)"))
                } else {
                    tracing::warn!(component = %self.metrics.key(), "{message}; continuing (set healthcheck.required = true to refuse to start)");
                    Ok(())
                }
            }
        }
    }
}

enum AttemptError {
    Retry {
        after: Option<Duration>,
        reason: String,
    },
    Rejected(Failure),
}

fn status_class(status: StatusCode) -> &'static str {
    match status.as_u16() {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

/// Reads at most `limit` bytes of the answer. A connection lost in the
/// middle of the body is an error (the request is retried), not a short
/// answer that would be misread.
async fn read_body(mut response: reqwest::Response, limit: usize) -> Result<Bytes, reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = limit.saturating_sub(body.len());
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= limit {
            break;
        }
    }
    Ok(Bytes::from(body))
}

/// An error with its causes ("connection refused" is usually the cause, not
/// the error itself).
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests;
