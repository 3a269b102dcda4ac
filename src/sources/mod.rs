//! Sources: where events come from.
//!
//! Line sources (`stdin`, `file`, `http_server`, `demo_logs`) make log
//! events; polling sources (`host_metrics`, `prometheus_scrape`,
//! `prometheus_query`) make metric events (see [`crate::event::metric`])
//! on a schedule ([`polling`]).
//!
//! A source's options struct implements [`SourceConfig`]; building it (pure)
//! gives a [`Source`], whose `run` reads the outside world and pushes batches
//! into its [`SourceSender`] until its input ends (stdin EOF, `count`
//! reached) or `shutdown` is cancelled. Waiting in `send` is backpressure: a
//! source must not read more while it waits, so nothing it holds grows
//! without bound.

mod demo_logs;
mod file;
pub mod host_metrics;
mod http_server;
mod lines;
pub mod polling;
pub mod prometheus;
mod stdin;

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::component_type;
use crate::components::{BuildContext, BuildError, ComponentFuture, ComponentKey};
use crate::config::registry::ComponentType;
use crate::event::Event;
use crate::internal_events::ComponentMetrics;
use crate::state::StateHandle;
use crate::topology::fanout::{Backpressured, Fanout};

pub use demo_logs::DemoLogsConfig;

/// Every source type howl knows.
pub static TYPES: &[ComponentType<dyn SourceConfig>] = &[
    component_type!("demo_logs", demo_logs::DemoLogsConfig),
    component_type!("file", file::FileConfig),
    component_type!("host_metrics", host_metrics::HostMetricsConfig),
    component_type!("http_server", http_server::HttpServerConfig),
    component_type!("prometheus_query", prometheus::PrometheusQueryConfig),
    component_type!("prometheus_scrape", prometheus::PrometheusScrapeConfig),
    component_type!("stdin", stdin::StdinConfig),
];

/// The options of one source type.
pub trait SourceConfig: Debug + Send + Sync {
    /// Checks the options and prepares the source, without touching the
    /// outside world (no sockets bound, no files opened).
    fn build(&self, cx: &BuildContext) -> Result<Box<dyn Source>, BuildError>;
}

/// A built source, ready to run.
pub trait Source: Send {
    /// Produces events until the input ends or `cx.shutdown` is cancelled.
    fn run(self: Box<Self>, cx: SourceContext) -> ComponentFuture;
}

/// What a running source works with.
pub struct SourceContext {
    /// Which source this is.
    pub key: ComponentKey,
    /// Where its events go.
    pub out: SourceSender,
    /// Cancelled when howl shuts down: stop reading, flush, return.
    pub shutdown: CancellationToken,
    /// The state store (checkpoints).
    pub state: StateHandle,
    /// The name of this machine, for the `host` field.
    pub host: Arc<str>,
}

/// The output of a source: counts what it sends and fans it out.
#[derive(Clone)]
pub struct SourceSender {
    fanout: Fanout,
    metrics: Arc<ComponentMetrics>,
}

impl SourceSender {
    /// An output delivering to `fanout`, reporting into `metrics`.
    pub fn new(fanout: Fanout, metrics: Arc<ComponentMetrics>) -> Self {
        Self { fanout, metrics }
    }

    /// The source's metrics (for received bytes, errors, truncations).
    pub fn metrics(&self) -> &Arc<ComponentMetrics> {
        &self.metrics
    }

    /// Sends a batch, waiting while downstream is full.
    pub async fn send(&mut self, events: Vec<Event>) {
        let count = events.len();
        self.fanout.send(events).await;
        self.metrics.sent(None, count);
    }

    /// Sends a batch to every consumer or none, waiting at most `wait` for
    /// room: for sources that can ask their client to come back later.
    pub async fn send_or_backpressure(
        &mut self,
        events: Vec<Event>,
        wait: Duration,
    ) -> Result<(), Backpressured> {
        let count = events.len();
        self.fanout.send_all_or_nothing(events, wait).await?;
        self.metrics.sent(None, count);
        Ok(())
    }
}

/// The host name, read once (the `host` field of log events).
pub fn hostname() -> Arc<str> {
    let from_file = |path: &str| {
        std::fs::read_to_string(path)
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    };
    let name = from_file("/proc/sys/kernel/hostname")
        .or_else(|| from_file("/etc/hostname"))
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".to_string());
    Arc::from(name)
}

/// The build error a source's options give, as text (for unit tests of
/// option checks).
#[cfg(test)]
pub fn build_error<C: SourceConfig + serde::de::DeserializeOwned>(options: &str) -> String {
    let config: C = toml::from_str(options).unwrap_or_else(|e| panic!("options do not parse: {e}"));
    let cx = BuildContext {
        key: ComponentKey::new(crate::components::ComponentKind::Source, "s", "test"),
        file: Arc::new(crate::config::SourceFile::new(
            std::path::PathBuf::from("test.toml"),
            options.to_string(),
        )),
        data_dir: std::env::temp_dir(),
    };
    match config.build(&cx) {
        Ok(_) => panic!("options build: {options}"),
        Err(error) => error.message,
    }
}
