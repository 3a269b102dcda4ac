//! What the three HTTP providers share: one POST of a JSON body through the
//! delivery core (retries, `Retry-After`, timeouts, concurrency, redaction
//! and request metrics all come from `sinks::delivery`), and the judgement
//! of LLM answers.
//!
//! The judgement follows the providers' own clients (openai-python's
//! `_base_client`): 408, 409, 429, 5xx (Anthropic's 529 included) and
//! transport errors are retried, honouring `retry-after-ms` and then
//! `Retry-After`; other 4xx are final, and so is a 429 whose error code is
//! `insufficient_quota` (no amount of waiting buys credit). Retries stop when
//! the question's deadline (`decision_timeout_secs`) would pass, so a slow
//! server costs at most that long.

use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;

use super::LlmError;
use crate::diagnostic::BuildError;
use crate::http::{
    Delivery, DeliverySettings, HealthcheckConfig, Response, RetryPolicy, Verdict, api_url,
    retry_after,
};
use crate::internal_events::ComponentMetrics;
use crate::secret::{Redactor, Secret};

/// Where and how a provider sends its questions.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// The provider's base URL (`endpoint`).
    pub endpoint: reqwest::Url,
    /// The API key, if any.
    pub api_key: Option<Secret>,
    /// One attempt's timeout (`timeout_secs`).
    pub timeout: Duration,
    /// How long one question may take, retries included.
    pub deadline: Duration,
    /// Questions in flight at once (`max_concurrency`).
    pub concurrency: usize,
}

/// A provider's HTTP client: a delivery core aimed at one URL.
pub struct HttpProvider {
    delivery: Delivery,
    url: reqwest::Url,
    headers: HeaderMap,
    /// A cheap, token-free GET that says the provider answers (its list of
    /// models), for the health checks of a provider chain.
    health_url: reqwest::Url,
    health_client: reqwest::Client,
}

impl HttpProvider {
    /// A client posting to `<endpoint>/<path>` with `headers`; the API key
    /// is known to the redactor, so no error message can show it.
    pub fn new(
        settings: &HttpSettings,
        path: &str,
        health_path: &str,
        headers: HeaderMap,
        metrics: Arc<ComponentMetrics>,
    ) -> Result<Self, BuildError> {
        let mut redactor = Redactor::default().url_credentials(&settings.endpoint);
        if let Some(key) = &settings.api_key {
            redactor = redactor.secret(key.expose());
        }
        let delivery = Delivery::new(
            DeliverySettings {
                retry: RetryPolicy {
                    initial: Duration::from_millis(500),
                    max_backoff: Duration::from_secs(8),
                    max_duration: settings.deadline,
                },
                rate_limit: None,
                timeout: settings.timeout,
                concurrency: settings.concurrency.max(1),
                healthcheck: HealthcheckConfig {
                    enabled: false,
                    required: false,
                },
            },
            metrics,
            redactor,
        )?;
        Ok(Self {
            delivery,
            url: api_url(&settings.endpoint, path),
            headers,
            health_url: api_url(&settings.endpoint, health_path),
            health_client: crate::http::http_client(settings.timeout)?,
        })
    }

    /// One GET of the health URL, no retry: `Err` says why it failed
    /// (redacted).
    pub async fn probe(&self) -> Result<(), String> {
        let response = self
            .health_client
            .get(self.health_url.clone())
            .headers(self.headers.clone())
            .send()
            .await
            .map_err(|e| {
                self.delivery
                    .redactor()
                    .redact(&crate::http::error_chain(&e.without_url()))
            })?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(format!("health check answered HTTP {}", response.status()))
        }
    }

    /// Posts `body` and returns the answer's JSON.
    pub async fn post(&self, body: &Value) -> Result<Value, LlmError> {
        let bytes = serde_json::to_vec(body)
            .map_err(|e| LlmError::InvalidAnswer(format!("cannot encode the request: {e}")))?;
        let response = self
            .delivery
            .execute(
                |client| {
                    client
                        .post(self.url.clone())
                        .headers(self.headers.clone())
                        .header(CONTENT_TYPE, "application/json")
                        .body(bytes.clone())
                },
                classify_llm,
            )
            .await?;
        serde_json::from_slice(&response.body).map_err(|e| {
            LlmError::InvalidAnswer(format!(
                "the response body is not JSON ({e}): {}",
                self.delivery.redactor().redact(&String::from_utf8_lossy(
                    &response.body[..response.body.len().min(200)]
                ))
            ))
        })
    }
}

/// A header whose value is a secret: marked sensitive, so the HTTP stack
/// never prints it.
pub fn secret_header(
    name: &'static str,
    value: &str,
) -> Result<(HeaderName, HeaderValue), BuildError> {
    let mut value = HeaderValue::from_str(value).map_err(|_| {
        BuildError::new("`api_key` contains characters not allowed in an HTTP header")
            .for_option("api_key")
    })?;
    value.set_sensitive(true);
    Ok((HeaderName::from_static(name), value))
}

/// Judges an LLM API's answer (see the module docs).
pub fn classify_llm(response: &Response) -> Verdict {
    let status = response.status;
    if status.is_success() {
        return Verdict::Delivered;
    }
    let retryable = matches!(
        status,
        StatusCode::REQUEST_TIMEOUT | StatusCode::CONFLICT | StatusCode::TOO_MANY_REQUESTS
    ) || status.is_server_error();
    if retryable && !is_out_of_quota(response) {
        Verdict::Retry {
            after: retry_after_ms(&response.headers).or_else(|| retry_after(&response.headers)),
            reason: format!("HTTP {status}"),
        }
    } else {
        Verdict::Rejected {
            reason: format!("HTTP {status}"),
        }
    }
}

/// OpenAI's "you have no credit left" 429.
fn is_out_of_quota(response: &Response) -> bool {
    response.status == StatusCode::TOO_MANY_REQUESTS
        && response
            .json()
            .and_then(|body| body.pointer("/error/code").cloned())
            .is_some_and(|code| code == "insufficient_quota")
}

/// OpenAI's `retry-after-ms` header.
fn retry_after_ms(headers: &HeaderMap) -> Option<Duration> {
    let millis: f64 = headers
        .get("retry-after-ms")?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    (millis.is_finite() && millis >= 0.0).then(|| Duration::from_secs_f64(millis / 1000.0))
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn response(status: u16, headers: &[(&'static str, &str)], body: &str) -> Response {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        Response {
            status: StatusCode::from_u16(status).unwrap(),
            headers: map,
            body: Bytes::from(body.to_string()),
        }
    }

    #[test]
    fn retries_like_the_vendor_clients() {
        for status in [408, 409, 429, 500, 503, 529] {
            assert!(
                matches!(
                    classify_llm(&response(status, &[], "")),
                    Verdict::Retry { .. }
                ),
                "{status}"
            );
        }
        for status in [400, 401, 403, 404, 413, 422] {
            assert!(
                matches!(
                    classify_llm(&response(status, &[], "")),
                    Verdict::Rejected { .. }
                ),
                "{status}"
            );
        }
    }

    #[test]
    fn prefers_retry_after_ms_and_never_retries_an_empty_quota() {
        let Verdict::Retry { after, .. } = classify_llm(&response(
            429,
            &[("retry-after-ms", "1500"), ("retry-after", "9")],
            "",
        )) else {
            panic!("429 is retried")
        };
        assert_eq!(after, Some(Duration::from_millis(1500)));
        let quota = response(
            429,
            &[],
            r#"{"error":{"message":"You exceeded your current quota","type":"insufficient_quota","code":"insufficient_quota"}}"#,
        );
        assert!(matches!(classify_llm(&quota), Verdict::Rejected { .. }));
    }
}
