//! Mirroring suppressions as Alertmanager silences, so an operator's
//! decision shows where people look for it (Alertmanager's and Grafana's
//! silence lists) and also holds for alerts that reach Alertmanager by
//! another road.
//!
//! A silence matches `pattern_id="<id>"` exactly (the label the
//! `alertmanager` sink sets by default), ends when the suppression ends (or
//! after `alertmanager_silence.duration` for a suppression without a ttl),
//! and is expired when the suppression is deleted. A silence that would
//! end before its suppression is replaced by a fresh one in time. Alertmanager 0.25 answers
//! the expiry of an unknown or already expired silence with 500 "silence
//! not found"; that counts as done.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::json;

use crate::diagnostic::BuildError;
use crate::http::{
    Delivery, DeliverySettings, HealthcheckConfig, Response, RetryPolicy, Verdict, api_url,
    classify_http,
};
use crate::internal_events::ComponentMetrics;
use crate::secret::Redactor;
use crate::state::triage::Suppression;

/// The label silences match on.
pub const MATCHER_LABEL: &str = "pattern_id";

/// Creates and expires silences in one Alertmanager.
pub struct Silencer {
    base: reqwest::Url,
    shown: String,
    duration: Duration,
    delivery: Delivery,
}

impl std::fmt::Debug for Silencer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Silencer")
            .field("url", &self.shown)
            .finish()
    }
}

impl Silencer {
    /// A silencer for the Alertmanager at `url` (its base URL); silences of
    /// suppressions without a ttl last `duration`.
    pub fn new(
        url: &str,
        duration: Duration,
        metrics: Arc<ComponentMetrics>,
    ) -> Result<Self, BuildError> {
        let base = reqwest::Url::parse(url)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
            .ok_or_else(|| {
                BuildError::new(format!(
                    "`alertmanager_silence.url` must be an http(s) URL, not `{url}`"
                ))
                .for_option("alertmanager_silence.url")
            })?;
        let redactor = Redactor::default().url_credentials(&base);
        let shown = redactor.redact(base.as_str().trim_end_matches('/'));
        let delivery = Delivery::new(
            DeliverySettings {
                retry: RetryPolicy {
                    initial: Duration::from_millis(200),
                    max_backoff: Duration::from_secs(2),
                    max_duration: Duration::from_secs(5),
                },
                rate_limit: None,
                timeout: Duration::from_secs(5),
                concurrency: 4,
                healthcheck: HealthcheckConfig {
                    enabled: false,
                    required: false,
                },
            },
            metrics,
            redactor,
        )?;
        Ok(Self {
            base,
            shown,
            duration,
            delivery,
        })
    }

    /// The Alertmanager's URL as stored in suppressions (password hidden).
    pub fn url(&self) -> &str {
        &self.shown
    }

    /// How long the silences of suppressions without a ttl last (they are
    /// renewed before they end, see `Suppressions::maintain_silences`).
    pub fn duration(&self) -> Duration {
        self.duration
    }

    /// Creates the silence of `suppression`; returns its id and end, or
    /// `None` when the suppression has already ended.
    pub async fn create(
        &self,
        suppression: &Suppression,
    ) -> Result<Option<(String, DateTime<Utc>)>, String> {
        let now = Utc::now();
        let longest =
            now + chrono::Duration::from_std(self.duration).unwrap_or(chrono::TimeDelta::MAX);
        let ends = suppression
            .expires_at
            .map_or(longest, |end| end.min(longest));
        if ends <= now {
            return Ok(None);
        }
        let body = json!({
            "matchers": [{
                "name": MATCHER_LABEL,
                "value": suppression.pattern_id,
                "isRegex": false,
                "isEqual": true,
            }],
            "startsAt": now.to_rfc3339_opts(SecondsFormat::Millis, true),
            "endsAt": ends.to_rfc3339_opts(SecondsFormat::Millis, true),
            "createdBy": suppression.created_by,
            "comment": format!("howl suppression {}: {}", suppression.id, suppression.reason),
        });
        let url = api_url(&self.base, "api/v2/silences");
        let response = self
            .delivery
            .execute(|client| client.post(url.clone()).json(&body), classify_http)
            .await
            .map_err(|failure| format!("Alertmanager {}: {failure}", self.shown))?;
        response
            .json()
            .and_then(|answer| answer.get("silenceID")?.as_str().map(str::to_string))
            .map(|id| Some((id, ends)))
            .ok_or_else(|| format!("Alertmanager {} answered without a silenceID", self.shown))
    }

    /// Expires a silence; one that is already gone counts as expired.
    pub async fn expire(&self, silence_id: &str) -> Result<(), String> {
        let url = api_url(&self.base, &format!("api/v2/silence/{silence_id}"));
        self.delivery
            .execute(|client| client.delete(url.clone()), classify_expiry)
            .await
            .map(|_| ())
            .map_err(|failure| format!("Alertmanager {}: {failure}", self.shown))
    }
}

/// Alertmanager's answer to a DELETE: "not found" (404, or 0.25's 500) means
/// there is nothing left to expire.
fn classify_expiry(response: &Response) -> Verdict {
    let not_found = response.status == reqwest::StatusCode::NOT_FOUND
        || (response.status.is_server_error()
            && String::from_utf8_lossy(&response.body)
                .to_ascii_lowercase()
                .contains("not found"));
    if not_found {
        Verdict::Declined {
            reason: "the silence is already gone".into(),
        }
    } else {
        classify_http(response)
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use reqwest::StatusCode;
    use reqwest::header::HeaderMap;

    use super::*;

    fn response(status: u16, body: &str) -> Response {
        Response {
            status: StatusCode::from_u16(status).unwrap(),
            headers: HeaderMap::new(),
            body: Bytes::from(body.to_string()),
        }
    }

    #[test]
    fn an_unknown_silence_counts_as_expired() {
        assert!(matches!(
            classify_expiry(&response(500, "\"silence not found\"")),
            Verdict::Declined { .. }
        ));
        assert!(matches!(
            classify_expiry(&response(404, "")),
            Verdict::Declined { .. }
        ));
        assert!(matches!(
            classify_expiry(&response(500, "internal error")),
            Verdict::Retry { .. }
        ));
        assert_eq!(classify_expiry(&response(200, "")), Verdict::Delivered);
    }
}
