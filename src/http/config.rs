//! The options every HTTP client shares, as nested tables (`retry.*`,
//! `rate_limit.*`, `request.*`, `healthcheck.*`), so a user configures
//! delivery the same way for Alertmanager, Telegram, Slack and webhooks.
//!
//! The HTTP sinks take `retry`, `rate_limit` and `request` as one
//! [`HttpDelivery`] group, written in the sink's own table but defined once
//! here (see `components::registry::WithShared`).

use std::num::{NonZeroU64, NonZeroUsize};
use std::time::Duration;

use schemars::JsonSchema;
use serde::Deserialize;

use crate::diagnostic::BuildError;
use crate::options::Seconds;

/// The delivery options every HTTP sink shares (`alertmanager`,
/// `telegram`, `slack`, `webhook`), written in the sink's own table.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpDelivery {
    /// How failed requests are retried.
    #[serde(default)]
    pub retry: RetryConfig,
    /// At most `num` requests per `duration_secs`.
    #[serde(default)]
    pub rate_limit: RateLimitConfig,
    /// Per-request timeout and concurrency.
    #[serde(default)]
    pub request: RequestConfig,
}

/// How failed requests are retried.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RetryConfig {
    /// The first wait before a retry; each retry doubles it (with full
    /// jitter, so many senders spread out), up to `max_backoff_secs`. A
    /// `Retry-After` from the destination wins over it.
    #[serde(default = "default_initial_backoff")]
    pub initial_backoff_secs: Seconds,
    /// The longest wait between two attempts.
    #[serde(default = "default_max_backoff")]
    pub max_backoff_secs: Seconds,
    /// Give up on a request after retrying it this long; its events are then
    /// counted as discarded (`component_discarded_events_total{intentional="false"}`)
    /// and reported as errored to sources waiting for acknowledgements.
    #[serde(default = "default_max_duration")]
    pub max_duration_secs: Seconds,
}

fn default_initial_backoff() -> Seconds {
    Seconds::from_secs(1)
}

fn default_max_backoff() -> Seconds {
    Seconds::from_secs(30)
}

fn default_max_duration() -> Seconds {
    Seconds::from_secs(300)
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            initial_backoff_secs: default_initial_backoff(),
            max_backoff_secs: default_max_backoff(),
            max_duration_secs: default_max_duration(),
        }
    }
}

/// At most `num` requests per `duration_secs`: a sink paces itself below
/// the destination's own limit instead of collecting 429s.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Requests allowed per `rate_limit.duration_secs`, in bursts of up to
    /// `num`; unset means no limit. `telegram` and `slack` default to 1:
    /// Telegram allows about one message per second in a chat (and 20 per
    /// minute in a group), Slack about one per second per channel or
    /// webhook, and both answer 429 beyond that.
    #[schemars(extend("x-default" = "unset (no limit); `1` for `telegram` and `slack`"))]
    pub num: Option<NonZeroU64>,
    /// The window `rate_limit.num` counts in. More than 0.
    #[serde(default = "default_rate_window")]
    pub duration_secs: Seconds,
}

fn default_rate_window() -> Seconds {
    Seconds::from_secs(1)
}

// Not derived: an absent `rate_limit` table must get the same one-second
// window as a table that sets only `num`.
impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            num: None,
            duration_secs: default_rate_window(),
        }
    }
}

impl RateLimitConfig {
    /// The limit with `num` set to `num` when the user left it unset: for
    /// destinations that publish their own limit (Telegram and Slack allow
    /// about one message per second per chat), sending faster only earns
    /// 429s, so their sinks default to it.
    pub fn or_num(&self, num: NonZeroU64) -> Self {
        Self {
            num: Some(self.num.unwrap_or(num)),
            duration_secs: self.duration_secs,
        }
    }
}

/// Per-request options.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RequestConfig {
    /// Give up on one attempt after this long (it is then retried, within
    /// `retry.max_duration_secs`). More than 0.
    #[serde(default = "default_request_timeout")]
    pub timeout_secs: Seconds,
    /// How many requests may be in flight at once. `1` keeps deliveries in
    /// order, so an alert's resolution never overtakes its firing; the chat
    /// sinks (`telegram`, `slack`) refuse any other value.
    #[serde(
        default = "default_concurrency",
        deserialize_with = "crate::options::count_at_most::<_, 1024>"
    )]
    #[schemars(range(min = 1, max = 1024))]
    pub concurrency: NonZeroUsize,
}

fn default_request_timeout() -> Seconds {
    Seconds::from_secs(10)
}

fn default_concurrency() -> NonZeroUsize {
    NonZeroUsize::MIN
}

impl Default for RequestConfig {
    fn default() -> Self {
        Self {
            timeout_secs: default_request_timeout(),
            concurrency: default_concurrency(),
        }
    }
}

/// The check a sink makes of its destination when it starts (what is
/// checked is on each sink's page).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HealthcheckConfig {
    /// Check the destination when howl starts (see the sink's description
    /// for what is checked). A failed check is logged as a warning.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// A failed check stops howl from starting, instead of only logging a
    /// warning.
    #[serde(default)]
    pub required: bool,
}

fn default_true() -> bool {
    true
}

impl Default for HealthcheckConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            required: false,
        }
    }
}

/// The delivery options of one sink, checked and in their runtime form.
#[derive(Debug, Clone)]
pub struct DeliverySettings {
    /// Backoff and give-up rules.
    pub retry: RetryPolicy,
    /// Requests per window, if limited: (num, window).
    pub rate_limit: Option<(u64, Duration)>,
    /// Timeout of one attempt.
    pub timeout: Duration,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// Start-up check.
    pub healthcheck: HealthcheckConfig,
}

/// Retry timing, in runtime form.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// The first backoff.
    pub initial: Duration,
    /// The longest backoff.
    pub max_backoff: Duration,
    /// How long a request may be retried in total.
    pub max_duration: Duration,
}

impl RetryPolicy {
    /// The wait before retry number `attempt` (1-based): exponential with
    /// full jitter, so many howl instances retrying one destination spread
    /// out instead of hammering it in lockstep.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exponential =
            self.initial.as_secs_f64() * 2f64.powi(attempt.saturating_sub(1).min(30) as i32);
        let ceiling = exponential.min(self.max_backoff.as_secs_f64());
        Duration::from_secs_f64(fastrand::f64() * ceiling)
    }
}

impl RetryPolicy {
    /// Checks the retry options: the first backoff must be more than 0, or
    /// a failing destination would be asked again and again without pause.
    pub fn new(retry: &RetryConfig) -> Result<Self, BuildError> {
        Ok(Self {
            initial: retry
                .initial_backoff_secs
                .positive("retry.initial_backoff_secs")?,
            max_backoff: retry.max_backoff_secs.get(),
            max_duration: retry.max_duration_secs.get(),
        })
    }
}

impl DeliverySettings {
    /// Checks the options of a sink: its delivery group (with
    /// `rate_limit` as the sink wants it) and its start-up check.
    pub fn new(
        delivery: &HttpDelivery,
        rate_limit: &RateLimitConfig,
        healthcheck: &HealthcheckConfig,
    ) -> Result<Self, BuildError> {
        let rate_limit = match rate_limit.num {
            Some(num) => Some((
                num.get(),
                rate_limit
                    .duration_secs
                    .positive("rate_limit.duration_secs")?,
            )),
            None => None,
        };
        Ok(Self {
            retry: RetryPolicy::new(&delivery.retry)?,
            rate_limit,
            timeout: delivery
                .request
                .timeout_secs
                .positive("request.timeout_secs")?,
            concurrency: delivery.request.concurrency.get(),
            healthcheck: healthcheck.clone(),
        })
    }
}

/// Checks an http(s) base URL option (`api_base`) and drops its trailing
/// `/`, so sinks can append paths to it.
pub fn base_url(value: &str, option: &str) -> Result<String, BuildError> {
    match reqwest::Url::parse(value) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {
            Ok(value.trim_end_matches('/').to_string())
        }
        _ => Err(
            BuildError::new(format!("`{option}` must be an http(s) URL, not `{value}`"))
                .for_option(option),
        ),
    }
}

/// `<base>/<path>`, keeping any path prefix of the base (an Alertmanager
/// behind a reverse proxy at `/alertmanager/`, an LLM server at `/v1`).
pub fn api_url(base: &reqwest::Url, path: &str) -> reqwest::Url {
    let mut url = base.clone();
    let prefix = base.path().trim_end_matches('/');
    url.set_path(&format!("{prefix}/{path}"));
    url
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_default_rate_limit_keeps_its_one_second_window() {
        let one = NonZeroU64::MIN;
        let settings = DeliverySettings::new(
            &HttpDelivery::default(),
            &RateLimitConfig::default().or_num(one),
            &HealthcheckConfig::default(),
        )
        .unwrap();
        assert_eq!(settings.rate_limit, Some((1, Duration::from_secs(1))));
        let explicit = RateLimitConfig {
            num: NonZeroU64::new(5),
            duration_secs: Seconds::from_secs(2),
        };
        assert_eq!(
            explicit.or_num(one).num,
            NonZeroU64::new(5),
            "a configured num wins"
        );
    }

    #[test]
    fn backoff_grows_exponentially_with_full_jitter_up_to_the_cap() {
        let policy = RetryPolicy {
            initial: Duration::from_secs(1),
            max_backoff: Duration::from_secs(30),
            max_duration: Duration::from_secs(300),
        };
        for attempt in 1..=10 {
            let ceiling = (1u64 << (attempt - 1)).min(30) as f64;
            for _ in 0..50 {
                let wait = policy.backoff(attempt).as_secs_f64();
                assert!((0.0..=ceiling).contains(&wait), "attempt {attempt}: {wait}");
            }
        }
        let late: Vec<f64> = (0..200).map(|_| policy.backoff(8).as_secs_f64()).collect();
        assert!(
            late.iter().any(|w| *w > 15.0),
            "jitter spans the whole window"
        );
        assert!(late.iter().any(|w| *w < 15.0));
    }
}
