//! The HTTP side of polling sources (`prometheus_scrape`,
//! `prometheus_query`, `loki_query`, `http_client`): their requests go
//! through the delivery core every HTTP sink uses (per-attempt timeout,
//! retries with exponential backoff and full jitter, `Retry-After`, no
//! retry on permanent 4xx, redacted logs, request metrics), so an endpoint
//! that is down is retried and logged, never a crash, and there is one
//! retry loop in howl, not several.
//!
//! Retries stop at `retry.max_duration_secs` and never run past the
//! source's interval: by then the next cycle asks again with fresh data,
//! and a cycle that retried longer would only delay it.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};

use crate::diagnostic::BuildError;
use crate::http::{
    AuthConfig, Classify, Delivery, DeliverySettings, Failure, HealthcheckConfig, Response,
    RetryConfig, RetryPolicy,
};
use crate::internal_events::{ComponentMetrics, Stage};
use crate::secret::Redactor;

/// The checked HTTP options of a polling source (built without I/O).
#[derive(Debug, Clone)]
pub struct HttpSettings {
    delivery: DeliverySettings,
    auth: Option<HeaderValue>,
    redactor: Redactor,
    body_limit: usize,
}

impl HttpSettings {
    /// Checks the options: `timeout` per attempt, `retry.*`, `auth.*`, for
    /// a source polling every `interval` (retries never outlast it);
    /// bodies longer than `max_body_bytes` are refused.
    pub fn new(
        timeout: Duration,
        retry: &RetryConfig,
        auth: Option<&AuthConfig>,
        interval: Duration,
        max_body_bytes: usize,
    ) -> Result<Self, BuildError> {
        let mut retry = RetryPolicy::new(retry)?;
        retry.max_duration = retry.max_duration.min(interval);
        let delivery = DeliverySettings {
            retry,
            rate_limit: None,
            timeout,
            concurrency: 1,
            healthcheck: HealthcheckConfig {
                enabled: false,
                required: false,
            },
        };
        let header = auth.map(AuthConfig::header).transpose().map_err(|error| {
            // The shared `auth` checks may not say which of its options is
            // wrong: then the error points at the `auth` table.
            match error.option {
                Some(_) => error,
                None => error.for_option("auth"),
            }
        })?;
        Ok(Self {
            delivery,
            auth: header,
            redactor: auth.map_or_else(Redactor::default, |a| a.redact(Redactor::default())),
            body_limit: max_body_bytes,
        })
    }

    /// Hides these secrets too (a secret URL, header values), besides
    /// the `auth` ones.
    pub fn with_redactor(mut self, redactor: Redactor) -> Self {
        self.redactor = redactor;
        self
    }

    /// The client, for a running source reporting into `metrics`.
    pub fn client(&self, metrics: Arc<ComponentMetrics>) -> Result<HttpClient, BuildError> {
        let delivery = Delivery::new(self.delivery.clone(), metrics, self.redactor.clone())?
            .with_stage(Stage::Receiving)
            .with_body_limit(self.body_limit.saturating_add(1));
        Ok(HttpClient {
            delivery,
            auth: self.auth.clone(),
            body_limit: self.body_limit,
        })
    }
}

/// Requests with retries, for one running source.
#[derive(Clone)]
pub struct HttpClient {
    delivery: Delivery,
    auth: Option<HeaderValue>,
    body_limit: usize,
}

/// One request a source sends, the same on every attempt.
#[derive(Debug)]
pub struct Request<'a> {
    /// GET, POST, ...
    pub method: reqwest::Method,
    /// Where.
    pub url: &'a reqwest::Url,
    /// Headers besides `Accept` and `Authorization`.
    pub headers: &'a HeaderMap,
    /// The body, if any.
    pub body: Option<Bytes>,
}

/// Why a request gave nothing usable.
#[derive(Debug, thiserror::Error)]
pub enum GetError {
    /// Refused, or retries ran out (already counted and logged by the
    /// delivery core).
    #[error(transparent)]
    Failed(#[from] Failure),
    /// The body is larger than the source accepts.
    #[error("the answer is larger than `max_body_bytes` ({0} bytes)")]
    TooLarge(usize),
}

impl HttpClient {
    /// GETs `url` with `accept` as the `Accept` header, judging answers
    /// with `classify`.
    pub async fn get(
        &self,
        url: &reqwest::Url,
        accept: &'static str,
        classify: Classify,
    ) -> Result<Response, GetError> {
        let request = Request {
            method: reqwest::Method::GET,
            url,
            headers: &HeaderMap::new(),
            body: None,
        };
        self.send(&request, accept, classify).await
    }

    /// Sends `request` (again on every retry) with `accept` as the
    /// `Accept` header, judging answers with `classify`.
    pub async fn send(
        &self,
        request: &Request<'_>,
        accept: &'static str,
        classify: Classify,
    ) -> Result<Response, GetError> {
        let response = self
            .delivery
            .execute(
                |client| {
                    let mut builder = client
                        .request(request.method.clone(), request.url.clone())
                        .header(reqwest::header::ACCEPT, accept)
                        .headers(request.headers.clone());
                    if let Some(auth) = &self.auth {
                        builder = builder.header(AUTHORIZATION, auth.clone());
                    }
                    if let Some(body) = &request.body {
                        builder = builder.body(body.clone());
                    }
                    builder
                },
                classify,
            )
            .await?;
        if response.body.len() > self.body_limit {
            return Err(GetError::TooLarge(self.body_limit));
        }
        Ok(response)
    }

    /// The source's metrics.
    pub fn metrics(&self) -> &Arc<ComponentMetrics> {
        self.delivery.metrics()
    }

    /// Hides the source's secrets in `text`.
    pub fn redact(&self, text: &str) -> String {
        self.delivery.redactor().redact(text)
    }
}
