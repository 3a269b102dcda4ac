//! Sources: where events come from.
//!
//! Line sources (`stdin`, `file`, `http_server`, `socket`, `demo_logs`;
//! all but `demo_logs` cut and decode their input as their `framing` and
//! `decoding` say, [`decoding`]), `syslog` and `fluent` (over [`socket`],
//! the plumbing of listening sources), `loki`, `opentelemetry` and `alert_webhook` (over
//! [`http_receiver`]) make log events; polling sources (`host_metrics`, `prometheus_scrape`,
//! `prometheus_query`) make metric events (see [`crate::event::metric`])
//! on a schedule ([`polling`]); query sources (`sql`) read what is new in
//! a store since a cursor saved across restarts ([`pull`]).
//!
//! A source's options struct implements [`SourceConfig`] (the contract is in
//! [`crate::components::source`]); building it (pure) gives a `Source`,
//! whose `run` reads the outside world and pushes batches into its
//! `SourceSender` until its input ends (stdin EOF, `count`
//! reached) or `shutdown` is cancelled. Waiting in `send` is backpressure: a
//! source must not read more while it waits, so nothing it holds grows
//! without bound.

mod alert_webhook;
mod decoding;
mod demo_logs;
mod file;
mod fluent;
pub mod host_metrics;
mod http_client;
mod http_poll;
mod http_receiver;
mod http_server;
mod lines;
mod loki;
mod nats;
mod opentelemetry;
pub mod polling;
pub mod prometheus;
pub mod pull;
mod review;
mod socket;
mod sql;
mod stdin;
mod syslog;

use crate::components::registry::{ComponentType, component_type};
use crate::components::source::SourceConfig;

pub use demo_logs::DemoLogsConfig;

/// Every source type howl knows.
pub static TYPES: &[ComponentType<dyn SourceConfig>] = &[
    component_type!("alert_webhook", alert_webhook::AlertWebhookConfig),
    component_type!("demo_logs", demo_logs::DemoLogsConfig),
    component_type!("file", file::FileConfig),
    component_type!("fluent", fluent::FluentConfig),
    component_type!("host_metrics", host_metrics::HostMetricsConfig),
    component_type!("http_client", http_client::HttpClientConfig),
    component_type!("http_server", http_server::HttpServerConfig),
    component_type!("loki", loki::LokiConfig),
    component_type!("loki_query", loki::LokiQueryConfig),
    component_type!("nats", nats::NatsSourceConfig, shared: crate::nats::NatsConnection),
    component_type!("opentelemetry", opentelemetry::OpentelemetryConfig),
    component_type!("prometheus_query", prometheus::PrometheusQueryConfig),
    component_type!("prometheus_scrape", prometheus::PrometheusScrapeConfig),
    component_type!("review", review::ReviewConfig),
    component_type!("socket", socket::source::SocketConfig),
    component_type!("sql", sql::SqlConfig),
    component_type!("stdin", stdin::StdinConfig),
    component_type!("syslog", syslog::SyslogConfig),
];

/// What a source is built with in unit tests: the id `s`, a config file
/// holding `options`.
#[cfg(test)]
pub fn test_context(options: &str) -> crate::components::BuildContext {
    use crate::component_key::{ComponentKey, ComponentKind};
    crate::components::BuildContext {
        key: ComponentKey::new(ComponentKind::Source, "s", "test"),
        file: std::sync::Arc::new(crate::diagnostic::SourceFile::new(
            std::path::PathBuf::from("test.toml"),
            options.to_string(),
        )),
        data_dir: std::env::temp_dir(),
    }
}

/// The build error a source's options give (for unit tests of the checks
/// that stay in `build()`): its message and the option it points at.
#[cfg(test)]
pub fn build_failure<C: SourceConfig + serde::de::DeserializeOwned>(
    options: &str,
) -> crate::diagnostic::BuildError {
    let config: C = toml::from_str(options).unwrap_or_else(|e| panic!("options do not parse: {e}"));
    match config.build(&test_context(options)) {
        Ok(_) => panic!("options build: {options}"),
        Err(error) => error,
    }
}

/// The build error a source's options give, as text.
#[cfg(test)]
pub fn build_error<C: SourceConfig + serde::de::DeserializeOwned>(options: &str) -> String {
    build_failure::<C>(options).message
}

#[cfg(test)]
pub use crate::options::parse_error;
