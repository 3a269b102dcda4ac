//! `prometheus_scrape`: read `/metrics` endpoints (Prometheus' text
//! format) every `scrape_interval_secs`, as Prometheus would, and turn
//! every sample into a metric event.
//!
//! Each sample is tagged with its labels plus `instance` (the endpoint's
//! `host:port`) and `job`; a scraped label of the same name is kept as
//! `exported_instance` / `exported_job`, as Prometheus does. After each
//! scrape of each endpoint come three samples Prometheus also records:
//! `up` (1, or 0 when the scrape failed), `scrape_duration_seconds` and
//! `scrape_samples_scraped`. A failed scrape (refused, timed out after its
//! retries, an error status, a malformed or oversized body) is counted in
//! `component_errors_total`, logged, and reported as `up = 0`: never a
//! crash, and an alert rule on `up` sees it.
//!
//! Endpoints are scraped concurrently, so one slow target does not delay
//! the others' samples.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::Deserialize;

use super::client::{GetError, HttpClient, HttpSettings};
use super::exposition;
use crate::components::source::{Source, SourceConfig, SourceContext};
use crate::components::{BuildContext, ComponentFuture};
use crate::diagnostic::BuildError;
use crate::event::Event;
use crate::event::metric::Metric;
use crate::http::{AuthConfig, RetryConfig, base_url, classify_http};
use crate::internal_events::{ErrorType, Stage};
use crate::options::duration::positive;
use crate::sources::polling::{self, Poll, all_at_once};

/// Options of the `prometheus_scrape` source.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PrometheusScrapeConfig {
    /// The URLs to scrape, e.g. `http://10.0.0.5:9100/metrics`.
    endpoints: Vec<String>,
    /// Seconds between two scrapes of each endpoint.
    #[serde(default = "default_interval")]
    scrape_interval_secs: f64,
    /// Give up on one attempt after this many seconds. Default: 10, or the
    /// interval when it is shorter; at most the interval.
    timeout_secs: Option<f64>,
    /// The `job` tag of every sample. Default: this source's id.
    job: Option<String>,
    /// A larger answer fails the scrape (`up = 0`) rather than being cut.
    #[serde(default = "default_max_body_bytes")]
    max_body_bytes: usize,
    /// How failed scrapes are retried within one interval.
    #[serde(default)]
    retry: RetryConfig,
    /// Credentials for the endpoints (`bearer` or `basic`).
    auth: Option<AuthConfig>,
}

fn default_interval() -> f64 {
    15.0
}

fn default_max_body_bytes() -> usize {
    16 * 1024 * 1024
}

/// Prometheus' own default scrape timeout.
const DEFAULT_TIMEOUT_SECS: f64 = 10.0;
/// The `source_type` of the events.
const SOURCE_TYPE: &str = "prometheus_scrape";
/// What the source asks for: the text format, version 0.0.4.
const ACCEPT: &str = "text/plain;version=0.0.4;q=1,*/*;q=0.1";

impl SourceConfig for PrometheusScrapeConfig {
    fn build(&self, cx: &BuildContext) -> Result<Box<dyn Source>, BuildError> {
        let interval = positive(self.scrape_interval_secs, "scrape_interval_secs")?;
        if self.endpoints.is_empty() {
            return Err(BuildError::new(
                "`endpoints` is empty: give at least one URL to scrape",
            ));
        }
        let timeout_secs = self
            .timeout_secs
            .unwrap_or(DEFAULT_TIMEOUT_SECS.min(self.scrape_interval_secs));
        if timeout_secs > self.scrape_interval_secs {
            return Err(BuildError::new(format!(
                "`timeout_secs` ({timeout_secs}) must not exceed `scrape_interval_secs` ({})",
                self.scrape_interval_secs
            )));
        }
        let targets = self
            .endpoints
            .iter()
            .map(|endpoint| Target::new(endpoint))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Box::new(Scrape {
            interval,
            targets,
            job: Arc::from(self.job.as_deref().unwrap_or(cx.key.id())),
            http: HttpSettings::new(
                positive(timeout_secs, "timeout_secs")?,
                &self.retry,
                self.auth.as_ref(),
                interval,
                self.max_body_bytes,
            )?,
        }))
    }
}

/// One endpoint.
#[derive(Debug)]
struct Target {
    url: reqwest::Url,
    /// `host:port`, the `instance` tag.
    instance: String,
}

impl Target {
    fn new(endpoint: &str) -> Result<Arc<Self>, BuildError> {
        let url = reqwest::Url::parse(&base_url(endpoint, "endpoints")?)
            .map_err(|e| BuildError::new(format!("`endpoints`: `{endpoint}`: {e}")))?;
        let host = url.host_str().unwrap_or_default();
        let instance = match url.port_or_known_default() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_string(),
        };
        Ok(Arc::new(Self { url, instance }))
    }
}

struct Scrape {
    interval: Duration,
    targets: Vec<Arc<Target>>,
    job: Arc<str>,
    http: HttpSettings,
}

impl Source for Scrape {
    fn run(self: Box<Self>, cx: SourceContext) -> ComponentFuture {
        Box::pin(async move {
            let client = self.http.client(Arc::clone(cx.out.metrics()))?;
            let cycle = Cycle {
                client,
                targets: self.targets,
                job: self.job,
            };
            polling::run(cycle, self.interval, cx).await
        })
    }
}

/// One scrape of every target.
struct Cycle {
    client: HttpClient,
    targets: Vec<Arc<Target>>,
    job: Arc<str>,
}

impl Poll for Cycle {
    async fn poll(&mut self) -> anyhow::Result<(Vec<Event>, usize)> {
        let scrapes = all_at_once(&self.targets, |target| {
            let (client, job) = (self.client.clone(), Arc::clone(&self.job));
            async move { scrape(&client, &target, &job).await }
        })
        .await;
        let mut events = Vec::new();
        let mut bytes = 0;
        for (metrics, body_bytes, at) in scrapes {
            bytes += body_bytes;
            events.extend(metrics.into_iter().filter_map(|(metric, timestamp)| {
                metric.into_event(timestamp.unwrap_or(at), SOURCE_TYPE)
            }));
        }
        Ok((events, bytes))
    }
}

/// A sample and its exposed timestamp, if any.
type Timed = (Metric, Option<DateTime<Utc>>);

/// Scrapes one target: its samples with their tags, then `up`,
/// `scrape_duration_seconds` and `scrape_samples_scraped`; also the body's
/// size and the scrape's time (for samples without a timestamp).
async fn scrape(
    client: &HttpClient,
    target: &Target,
    job: &str,
) -> (Vec<Timed>, usize, DateTime<Utc>) {
    let at = Utc::now();
    let started = Instant::now();
    let outcome = fetch(client, target).await;
    let duration = started.elapsed().as_secs_f64();
    let (up, samples, bytes) = match outcome {
        Ok((samples, bytes)) => (1.0, samples, bytes),
        Err(message) => {
            client.metrics().warn_limited(
                "scrape_failed",
                &format_args!("scrape of {} failed: {message}", target.instance),
            );
            (0.0, Vec::new(), 0)
        }
    };
    let count = samples.len() as f64;
    let tag = |metric: Metric| metric.tag("instance", &target.instance).tag("job", job);
    let mut metrics: Vec<Timed> = samples
        .into_iter()
        .map(|sample| {
            let mut metric = Metric::new(sample.name, sample.kind, sample.value);
            for (name, value) in sample.labels {
                let name = match name.as_str() {
                    "instance" | "job" => format!("exported_{name}"),
                    _ => name,
                };
                metric = metric.tag(name, value);
            }
            let timestamp = sample
                .timestamp_ms
                .and_then(DateTime::from_timestamp_millis);
            (tag(metric), timestamp)
        })
        .collect();
    metrics.push((tag(Metric::gauge("up", up)), None));
    metrics.push((
        tag(Metric::gauge("scrape_duration_seconds", duration)),
        None,
    ));
    metrics.push((tag(Metric::gauge("scrape_samples_scraped", count)), None));
    (metrics, bytes, at)
}

/// GETs and parses one target; the error says why it failed (request
/// failures are already counted by the delivery core).
async fn fetch(
    client: &HttpClient,
    target: &Target,
) -> Result<(Vec<exposition::Sample>, usize), String> {
    let response = match client.get(&target.url, ACCEPT, classify_http).await {
        Ok(response) => response,
        Err(GetError::Failed(failure)) => return Err(failure.to_string()),
        Err(error @ GetError::TooLarge(_)) => {
            client
                .metrics()
                .error(ErrorType::BodyTooLarge, Stage::Receiving, &error);
            return Err(error.to_string());
        }
    };
    let text = String::from_utf8_lossy(&response.body);
    match exposition::parse(&text) {
        Ok(samples) => Ok((samples, response.body.len())),
        Err(error) => {
            let message = client.redact(&format!(
                "{} is not in Prometheus' text format: {error}",
                target.instance
            ));
            client
                .metrics()
                .error(ErrorType::ParseFailed, Stage::Receiving, &message);
            Err(message)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::build_error;

    #[test]
    fn rejects_options_that_cannot_scrape() {
        for (options, expected) in [
            ("endpoints = []", "`endpoints` is empty"),
            ("endpoints = [\"localhost:9100\"]", "must be an http(s) URL"),
            (
                "endpoints = [\"http://a/metrics\"]\nscrape_interval_secs = 5\ntimeout_secs = 6",
                "must not exceed `scrape_interval_secs`",
            ),
            (
                "endpoints = [\"http://a/metrics\"]\nscrape_interval_secs = 0",
                "`scrape_interval_secs` must be more than 0",
            ),
            (
                "endpoints = [\"http://a/metrics\"]\nauth.strategy = \"bearer\"",
                "needs `auth.token`",
            ),
        ] {
            let message = build_error::<PrometheusScrapeConfig>(options);
            assert!(message.contains(expected), "{options}: {message}");
        }
    }

    #[test]
    fn the_instance_tag_is_host_and_port_with_the_default_port_filled_in() {
        let instance = |url: &str| Target::new(url).unwrap().instance.clone();
        assert_eq!(instance("http://10.0.0.5:9100/metrics"), "10.0.0.5:9100");
        assert_eq!(instance("https://app.example/metrics"), "app.example:443");
    }
}
