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

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::Deserialize;

use super::exposition;
use crate::components::source::{Source, SourceConfig, SourceContext};
use crate::components::{BuildContext, ComponentFuture};
use crate::diagnostic::BuildError;
use crate::event::Event;
use crate::event::metric::Metric;
use crate::http::{AuthConfig, RetryConfig, classify_http};
use crate::internal_events::{ErrorType, Stage};
use crate::options::{HttpUrl, Seconds};
use crate::sources::http_poll::{GetError, HttpClient, HttpSettings};
use crate::sources::polling::{self, Poll, all_at_once};

/// Options of the `prometheus_scrape` source.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PrometheusScrapeConfig {
    /// The URLs to scrape (at least one), e.g.
    /// `http://10.0.0.5:9100/metrics`; each is scraped as written.
    #[schemars(extend("x-placeholder" = ["http://127.0.0.1:9100/metrics"]))]
    endpoints: Vec<HttpUrl>,
    /// The time between two scrapes of each endpoint; a plain number is
    /// seconds.
    #[serde(default = "default_interval")]
    scrape_interval_secs: Seconds,
    /// Give up on one attempt after this long (it is then retried, within
    /// the interval); a plain number is seconds. At most
    /// `scrape_interval_secs`.
    #[schemars(extend("x-default" = "10, or the interval when shorter"))]
    timeout_secs: Option<Seconds>,
    /// The `job` tag of every sample.
    #[schemars(extend("x-default" = "the source's id"))]
    job: Option<String>,
    /// The largest answer accepted, in bytes: a larger one fails the scrape
    /// (`up = 0`) rather than being cut.
    #[serde(default = "default_max_body_bytes")]
    max_body_bytes: NonZeroUsize,
    /// How failed scrapes are retried within one interval.
    #[serde(default)]
    retry: RetryConfig,
    /// Credentials for the endpoints (`bearer` or `basic`).
    auth: Option<AuthConfig>,
}

fn default_interval() -> Seconds {
    Seconds::from_secs(15)
}

fn default_max_body_bytes() -> NonZeroUsize {
    const SIXTEEN_MIB: NonZeroUsize = NonZeroUsize::new(16 * 1024 * 1024).unwrap();
    SIXTEEN_MIB
}

/// Prometheus' own default scrape timeout.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// The `source_type` of the events.
const SOURCE_TYPE: &str = "prometheus_scrape";
/// What the source asks for: the text format, version 0.0.4.
const ACCEPT: &str = "text/plain;version=0.0.4;q=1,*/*;q=0.1";

impl SourceConfig for PrometheusScrapeConfig {
    fn build(&self, cx: &BuildContext) -> Result<Box<dyn Source>, BuildError> {
        let interval = self.scrape_interval_secs.positive("scrape_interval_secs")?;
        if self.endpoints.is_empty() {
            return Err(
                BuildError::new("`endpoints` is empty: give at least one URL to scrape")
                    .for_option("endpoints"),
            );
        }
        let timeout = match self.timeout_secs {
            Some(timeout) => timeout.positive("timeout_secs")?,
            None => DEFAULT_TIMEOUT.min(interval),
        };
        if timeout > interval {
            return Err(BuildError::new(format!(
                "`timeout_secs` ({}) must not exceed `scrape_interval_secs` ({})",
                timeout.as_secs_f64(),
                interval.as_secs_f64()
            ))
            .for_option("timeout_secs"));
        }
        Ok(Box::new(Scrape {
            interval,
            targets: self.endpoints.iter().map(Target::new).collect(),
            job: Arc::from(self.job.as_deref().unwrap_or(cx.key.id())),
            http: HttpSettings::new(
                timeout,
                &self.retry,
                self.auth.as_ref(),
                interval,
                self.max_body_bytes.get(),
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
    fn new(endpoint: &HttpUrl) -> Arc<Self> {
        let url = endpoint.url().clone();
        // An `HttpUrl` always has a host, and http(s) a known default port.
        let host = url.host_str().unwrap_or_default();
        let instance = match url.port_or_known_default() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_string(),
        };
        Arc::new(Self { url, instance })
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
    use crate::sources::{build_failure, parse_error, test_context};

    #[test]
    fn rejects_options_that_cannot_scrape_and_names_the_option() {
        for (options, expected, option) in [
            ("endpoints = []", "`endpoints` is empty", "endpoints"),
            (
                "endpoints = [\"http://a/metrics\"]\nscrape_interval_secs = 5\ntimeout_secs = 6",
                "`timeout_secs` (6) must not exceed `scrape_interval_secs` (5)",
                "timeout_secs",
            ),
            (
                "endpoints = [\"http://a/metrics\"]\nscrape_interval_secs = 0",
                "`scrape_interval_secs` must be more than 0",
                "scrape_interval_secs",
            ),
            (
                "endpoints = [\"http://a/metrics\"]\ntimeout_secs = 0",
                "`timeout_secs` must be more than 0",
                "timeout_secs",
            ),
            (
                "endpoints = [\"http://a/metrics\"]\nauth.strategy = \"bearer\"",
                "needs `auth.token`",
                "auth.strategy",
            ),
        ] {
            let error = build_failure::<PrometheusScrapeConfig>(options);
            assert!(error.message.contains(expected), "{options}: {error}");
            assert_eq!(error.option.as_deref(), Some(option), "{options}");
        }
    }

    #[test]
    fn a_bad_endpoint_is_refused_while_reading_at_its_own_item() {
        let (message, at) = parse_error::<PrometheusScrapeConfig>(
            "endpoints = [\"http://a/metrics\", \"localhost:9100\"]",
        );
        assert!(message.contains("not an http(s) URL"), "{message}");
        assert_eq!(at, "\"localhost:9100\"");
    }

    #[test]
    fn durations_take_units_and_the_timeout_defaults_to_at_most_the_interval() {
        let options = "endpoints = [\"http://a/metrics\"]\nscrape_interval_secs = \"5s\"";
        let config: PrometheusScrapeConfig = toml::from_str(options).unwrap();
        assert_eq!(config.scrape_interval_secs.get(), Duration::from_secs(5));
        assert!(
            config.build(&test_context(options)).is_ok(),
            "the 10 s default timeout shrinks to the 5 s interval"
        );
        let (message, at) = parse_error::<PrometheusScrapeConfig>(
            "endpoints = [\"http://a/metrics\"]\ntimeout_secs = \"soon\"",
        );
        assert!(message.contains("invalid duration"), "{message}");
        assert_eq!(at, "\"soon\"");
    }

    #[test]
    fn the_instance_tag_is_host_and_port_with_the_default_port_filled_in() {
        let instance = |url: &str| Target::new(&HttpUrl::parse(url).unwrap()).instance.clone();
        assert_eq!(instance("http://10.0.0.5:9100/metrics"), "10.0.0.5:9100");
        assert_eq!(instance("https://app.example/metrics"), "app.example:443");
    }
}
