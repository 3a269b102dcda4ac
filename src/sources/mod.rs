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

/// A context to run source `key` in unit tests: its state under
/// `data_dir`, readiness token `ready`, and its output read from the
/// returned receiver, which only the source holds open (it closes when the
/// source ends).
#[cfg(test)]
pub fn test_source_context(
    key: crate::component_key::ComponentKey,
    data_dir: &std::path::Path,
    ready: crate::readiness::ReadyToken,
) -> (
    crate::components::source::SourceContext,
    crate::buffer::BufferReceiver,
) {
    use crate::buffer::{WhenFull, channel, fanout::Fanout};
    use crate::components::source::{SourceContext, SourceSender};
    let metrics = std::sync::Arc::new(crate::internal_events::ComponentMetrics::new(key.clone()));
    let (tx, rx) = channel(1000, WhenFull::Block, std::sync::Arc::clone(&metrics));
    let (fanout, _rewire) = Fanout::rewirable(vec![("out".to_string(), tx)]);
    let cx = SourceContext {
        key,
        out: SourceSender::new(fanout, metrics),
        shutdown: tokio_util::sync::CancellationToken::new(),
        shutdown_limit: tokio_util::sync::CancellationToken::new(),
        state: crate::state::StateHandle::new(data_dir.to_path_buf()),
        host: std::sync::Arc::from("test"),
        ready,
    };
    (cx, rx)
}

/// Runs the listening source that `options` build, with a pending readiness
/// token, and checks what `/health` relies on: the source says it listens
/// (see `Source::listens`), marks its token within 10 s, and by then every
/// address in `addresses` accepts connections.
#[cfg(test)]
pub async fn assert_ready_once_bound<C: SourceConfig + serde::de::DeserializeOwned>(
    options: &str,
    addresses: &[std::net::SocketAddr],
) {
    let config: C = toml::from_str(options).unwrap_or_else(|e| panic!("options do not parse: {e}"));
    let build = test_context(options);
    let source = config.build(&build).expect("options build");
    assert!(
        source.listens(),
        "a listening source must say so: {options}"
    );
    let readiness = crate::readiness::Readiness::default();
    let dir = tempfile::tempdir().expect("temp dir");
    let (cx, _rx) = test_source_context(build.key.clone(), dir.path(), readiness.pending());
    let shutdown = cx.shutdown.clone();
    readiness.sources_spawned();
    let running = tokio::spawn(source.run(cx));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !readiness.is_ready() {
        assert!(
            std::time::Instant::now() < deadline && !running.is_finished(),
            "the source did not mark itself listening: {options}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    for address in addresses {
        if let Err(error) = tokio::net::TcpStream::connect(address).await {
            panic!("ready, yet {address} refuses connections: {error}");
        }
    }
    shutdown.cancel();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(10), running).await;
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

/// Every source that listens marks its readiness token only once its
/// address takes connections (see `readiness`).
#[cfg(test)]
mod readiness_tests {
    use std::net::SocketAddr;

    use super::assert_ready_once_bound;

    /// A loopback address with a port that was free a moment ago.
    fn free_address() -> SocketAddr {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("address")
    }

    #[tokio::test]
    async fn each_listening_source_is_ready_only_once_bound() {
        let a = free_address();
        assert_ready_once_bound::<super::socket::source::SocketConfig>(
            &format!("mode = \"tcp\"\naddress = \"{a}\""),
            &[a],
        )
        .await;
        let a = free_address();
        assert_ready_once_bound::<super::syslog::SyslogConfig>(
            &format!("mode = \"tcp\"\naddress = \"{a}\""),
            &[a],
        )
        .await;
        let a = free_address();
        assert_ready_once_bound::<super::fluent::FluentConfig>(&format!("address = \"{a}\""), &[a])
            .await;
        let a = free_address();
        assert_ready_once_bound::<super::http_server::HttpServerConfig>(
            &format!("address = \"{a}\""),
            &[a],
        )
        .await;
        let a = free_address();
        assert_ready_once_bound::<super::loki::LokiConfig>(&format!("address = \"{a}\""), &[a])
            .await;
        let a = free_address();
        assert_ready_once_bound::<super::alert_webhook::AlertWebhookConfig>(
            &format!("address = \"{a}\""),
            &[a],
        )
        .await;
        // Two ports: ready once both are bound.
        let (http, grpc) = (free_address(), free_address());
        assert_ready_once_bound::<super::opentelemetry::OpentelemetryConfig>(
            &format!("http.address = \"{http}\"\ngrpc.address = \"{grpc}\""),
            &[http, grpc],
        )
        .await;
    }
}
