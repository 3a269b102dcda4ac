//! `prometheus_query`: run PromQL `queries` against a Prometheus server's
//! `/api/v1/query` every `interval_secs`; every sample of every result is
//! a metric event named after its query.
//!
//! This is how howl alerts on what Prometheus already knows (every node's
//! CPU, an SLO burn rate) with its own `threshold` rules and delivery. A
//! query whose top level is a range selector (`up[5m]`) is refused when
//! the config is validated; a matrix answer at run time (a query whose
//! range hides behind parentheses) is refused with the same advice. A
//! Prometheus that is down, slow (503) or rate limiting (429) is retried
//! with backoff; a query it rejects (400 `bad_data`, 422 `execution`) is
//! logged with Prometheus' explanation and tried again next interval.
//! Either way the other queries go on.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use schemars::JsonSchema;
use serde::Deserialize;

use super::api::{self, QuerySample};
use crate::components::source::{Source, SourceConfig, SourceContext};
use crate::components::{BuildContext, ComponentFuture};
use crate::diagnostic::BuildError;
use crate::event::Event;
use crate::event::metric::Metric;
use crate::http::{AuthConfig, RetryConfig, api_url, classify_http};
use crate::internal_events::{ErrorType, Stage};
use crate::options::{HttpUrl, Seconds};
use crate::sources::http_poll::{GetError, HttpClient, HttpSettings};
use crate::sources::polling::{self, Poll, all_at_once};

/// Options of the `prometheus_query` source.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PrometheusQueryConfig {
    /// The Prometheus server's base URL, e.g. `http://127.0.0.1:9090`; a
    /// path prefix (a server behind a proxy at `/prometheus/`) is kept, and
    /// `api/v1/query` is asked under it.
    #[schemars(extend("x-placeholder" = "http://127.0.0.1:9090"))]
    endpoint: HttpUrl,
    /// The queries to run (at least one):
    /// `[{ name = "cpu_usage_percent", query = "..." }]`. Each sample of a
    /// query's result becomes a metric event named `name`.
    #[schemars(extend("x-placeholder" = [{ "name": "up", "query": "up" }]))]
    queries: Vec<QueryConfig>,
    /// The time between two runs of the queries; a plain number is seconds.
    #[serde(default = "default_interval")]
    interval_secs: Seconds,
    /// Give up on one attempt after this long (it is then retried, within
    /// the interval); a plain number is seconds.
    #[serde(default = "default_timeout")]
    timeout_secs: Seconds,
    /// How failed requests are retried within one interval.
    #[serde(default)]
    retry: RetryConfig,
    /// Credentials for the server (`bearer` or `basic`).
    auth: Option<AuthConfig>,
}

/// One query.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct QueryConfig {
    /// The metric name of its samples (`.metric.name`); not empty, and
    /// unique among the queries.
    name: String,
    /// The PromQL expression, evaluated at Prometheus' current time on each
    /// run. It must give an instant vector or a scalar: a range selector at
    /// its top level (`up[5m]`) is refused; wrap it in a function such as
    /// `rate(...)` or `max_over_time(...)`.
    query: String,
}

fn default_interval() -> Seconds {
    Seconds::from_secs(15)
}

fn default_timeout() -> Seconds {
    Seconds::from_secs(10)
}

/// The `source_type` of the events.
const SOURCE_TYPE: &str = "prometheus_query";
/// Answers larger than this fail the query (a result of millions of
/// series is a mistake in the query).
const MAX_ANSWER_BYTES: usize = 16 * 1024 * 1024;

impl SourceConfig for PrometheusQueryConfig {
    fn build(&self, _cx: &BuildContext) -> Result<Box<dyn Source>, BuildError> {
        let interval = self.interval_secs.positive("interval_secs")?;
        Ok(Box::new(PrometheusQuery {
            interval,
            url: query_url(&self.endpoint),
            queries: checked_queries(&self.queries)?,
            http: HttpSettings::new(
                self.timeout_secs.positive("timeout_secs")?,
                &self.retry,
                self.auth.as_ref(),
                interval,
                MAX_ANSWER_BYTES,
            )?,
        }))
    }
}

/// Where instant queries are asked: `api/v1/query` under the endpoint's
/// path.
fn query_url(endpoint: &HttpUrl) -> reqwest::Url {
    api_url(endpoint.url(), "api/v1/query")
}

/// The queries, refused when one could never give samples or two would
/// give samples of the same name; an error points at the query.
fn checked_queries(configs: &[QueryConfig]) -> Result<Vec<Arc<Query>>, BuildError> {
    if configs.is_empty() {
        return Err(BuildError::new(
            "`queries` is empty: give at least one `{ name = \"...\", query = \"...\" }`",
        )
        .for_option("queries"));
    }
    let mut names = BTreeSet::new();
    let mut queries = Vec::new();
    for (index, query) in configs.iter().enumerate() {
        let option = |field: &str| format!("queries[{index}].{field}");
        let name = query.name.trim();
        if name.is_empty() {
            return Err(
                BuildError::new("a query's `name` is empty: it names the query's samples")
                    .for_option(option("name")),
            );
        }
        if query.query.trim().is_empty() {
            return Err(
                BuildError::new(format!("query `{name}` has an empty `query`"))
                    .for_option(option("query")),
            );
        }
        if !names.insert(name) {
            return Err(BuildError::new(format!(
                "two queries are named `{name}`; names must be unique"
            ))
            .for_option(option("name")));
        }
        if api::has_top_level_range(&query.query) {
            return Err(BuildError::new(format!(
                "query `{name}` selects a range at its top level (`{}`), which gives a range \
                 vector; prometheus_query takes instant vectors and scalars: remove the \
                 `[...]`, or wrap it in a function such as `rate(...)` or `max_over_time(...)`",
                query.query.trim()
            ))
            .for_option(option("query")));
        }
        queries.push(Arc::new(Query {
            name: name.to_string(),
            query: query.query.clone(),
        }));
    }
    Ok(queries)
}

#[derive(Debug)]
struct Query {
    name: String,
    query: String,
}

struct PrometheusQuery {
    interval: Duration,
    url: reqwest::Url,
    queries: Vec<Arc<Query>>,
    http: HttpSettings,
}

impl Source for PrometheusQuery {
    fn run(self: Box<Self>, cx: SourceContext) -> ComponentFuture {
        Box::pin(async move {
            let cycle = Cycle {
                client: self.http.client(Arc::clone(cx.out.metrics()))?,
                url: Arc::new(self.url),
                queries: self.queries,
            };
            polling::run(cycle, self.interval, cx).await
        })
    }
}

/// One run of every query.
struct Cycle {
    client: HttpClient,
    url: Arc<reqwest::Url>,
    queries: Vec<Arc<Query>>,
}

impl Poll for Cycle {
    async fn poll(&mut self) -> anyhow::Result<(Vec<Event>, usize)> {
        let answers = all_at_once(&self.queries, |query| {
            let (client, url) = (self.client.clone(), Arc::clone(&self.url));
            async move { (run_query(&client, &url, &query).await, query) }
        })
        .await;
        let now = Utc::now();
        let mut events = Vec::new();
        let mut bytes = 0;
        for ((samples, body_bytes), query) in answers {
            bytes += body_bytes;
            events.extend(samples.into_iter().filter_map(|sample| {
                let timestamp = sample.timestamp.unwrap_or(now);
                let mut metric = Metric::gauge(query.name.as_str(), sample.value);
                metric.tags = sample.labels;
                metric.into_event(timestamp, SOURCE_TYPE)
            }));
        }
        Ok((events, bytes))
    }
}

/// Runs one query: its samples and the answer's size; nothing (logged and
/// counted) when it failed.
async fn run_query(
    client: &HttpClient,
    base: &reqwest::Url,
    query: &Query,
) -> (Vec<QuerySample>, usize) {
    // No `time`: Prometheus evaluates at its own "now", so a clock skew
    // between the two machines cannot ask it about the future.
    let mut url = base.clone();
    url.query_pairs_mut().append_pair("query", &query.query);
    let response = match client.get(&url, "application/json", classify_http).await {
        Ok(response) => response,
        Err(GetError::Failed(failure)) => {
            // Counted and logged by the delivery core (with Prometheus'
            // explanation, which is in the answer's body); say which query.
            client.metrics().warn_limited(
                "query_failed",
                &format_args!("query `{}` failed: {failure}", query.name),
            );
            return (Vec::new(), 0);
        }
        Err(error @ GetError::TooLarge(_)) => {
            client.metrics().error(
                ErrorType::BodyTooLarge,
                Stage::Receiving,
                &format_args!("query `{}`: {error}", query.name),
            );
            return (Vec::new(), 0);
        }
    };
    match api::parse_answer(&response.body) {
        Ok(samples) => (samples, response.body.len()),
        Err(error) => {
            // Prometheus answering an error is a failed query; an answer
            // that is not Prometheus's JSON is one that cannot be parsed.
            let error_type = match error {
                api::AnswerError::Invalid(_) => ErrorType::ParseFailed,
                _ => ErrorType::QueryFailed,
            };
            client.metrics().error(
                error_type,
                Stage::Receiving,
                &format_args!("query `{}`: {error}", query.name),
            );
            (Vec::new(), response.body.len())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::{build_failure, parse_error, test_context};

    #[test]
    fn rejects_queries_that_cannot_give_samples_and_points_at_the_query() {
        let endpoint = "endpoint = \"http://127.0.0.1:9090\"\n";
        for (queries, expected, option) in [
            ("queries = []", "`queries` is empty", "queries"),
            (
                "queries = [{ name = \"\", query = \"up\" }]",
                "a query's `name` is empty",
                "queries[0].name",
            ),
            (
                "queries = [{ name = \"a\", query = \" \" }]",
                "query `a` has an empty `query`",
                "queries[0].query",
            ),
            (
                "queries = [{ name = \"a\", query = \"up\" }, { name = \"a\", query = \"1\" }]",
                "two queries are named `a`",
                "queries[1].name",
            ),
            (
                "queries = [{ name = \"a\", query = \"rate(x[5m])[1h:1m]\" }]",
                "query `a` selects a range at its top level",
                "queries[0].query",
            ),
            (
                "queries = [{ name = \"a\", query = \"up\" }]\ninterval_secs = 0",
                "`interval_secs` must be more than 0",
                "interval_secs",
            ),
        ] {
            let error = build_failure::<PrometheusQueryConfig>(&format!("{endpoint}{queries}"));
            assert!(error.message.contains(expected), "{queries}: {error}");
            assert_eq!(error.option.as_deref(), Some(option), "{queries}");
        }
    }

    #[test]
    fn a_bad_endpoint_is_refused_while_reading() {
        let (message, at) = parse_error::<PrometheusQueryConfig>(
            "endpoint = \"127.0.0.1:9090\"\nqueries = [{ name = \"a\", query = \"up\" }]",
        );
        assert!(
            message.contains("invalid URL `127.0.0.1:9090`"),
            "{message}"
        );
        assert_eq!(at, "\"127.0.0.1:9090\"");
    }

    #[test]
    fn asks_the_query_api_under_the_endpoint_path_and_reads_durations_with_units() {
        let options = "endpoint = \"http://prom.example/prometheus/\"\ninterval_secs = \"1m\"\n\
                       timeout_secs = 2.5\nqueries = [{ name = \"a\", query = \"up\" }]";
        let config: PrometheusQueryConfig = toml::from_str(options).unwrap();
        assert_eq!(config.interval_secs.get(), Duration::from_secs(60));
        assert_eq!(config.timeout_secs.get(), Duration::from_millis(2500));
        assert_eq!(
            query_url(&config.endpoint).as_str(),
            "http://prom.example/prometheus/api/v1/query"
        );
        assert!(config.build(&test_context(options)).is_ok());
    }
}
