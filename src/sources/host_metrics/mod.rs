//! `host_metrics`: the machine's CPU, load, memory, swap, filesystems,
//! network and uptime, as metric events every `scrape_interval_secs`.
//!
//! Everything comes from `/proc` and one `statvfs(3)` per filesystem: no
//! dependency on a system-information crate, no subprocess. A cycle reads
//! six small files and costs under 0.2 ms of CPU, events included (see
//! `examples/host_metrics_bench.rs`). It runs on tokio's blocking pool, so
//! a slow filesystem cannot stall the runtime's workers.
//!
//! CPU utilisation and network rates are differences between two cycles,
//! so they appear from the second cycle on. Files a container or a
//! hardened kernel hides are skipped with one debug log each; what can be
//! read is still reported. Every sample carries the `host` tag.
//!
//! - [`procfs`]: parsers of the `/proc` files (pure);
//! - [`statvfs`]: the filesystem sizes (the one `unsafe` call);
//! - [`collector`]: one cycle, with the state carried between cycles.

mod collector;
mod procfs;
mod statvfs;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use chrono::Utc;
use schemars::JsonSchema;
use serde::Deserialize;

use super::polling::{self, Poll};
use crate::components::source::{Source, SourceConfig, SourceContext};
use crate::components::{BuildContext, ComponentFuture};
use crate::diagnostic::BuildError;
use crate::event::Event;
use crate::options::Seconds;

pub use collector::{ALL as ALL_COLLECTORS, Collector, Kind};

/// Options of the `host_metrics` source.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HostMetricsConfig {
    /// The time between two collections; a plain number is seconds.
    #[serde(default = "default_interval")]
    scrape_interval_secs: Seconds,
    /// Which groups of metrics to collect (at least one): `cpu`, `load`,
    /// `memory`, `swap`, `filesystem`, `network`, `uptime`.
    #[serde(default = "default_collectors")]
    #[schemars(extend("x-default" = "all"))]
    collectors: Vec<Kind>,
    /// Where the proc filesystem is mounted; a relative path is relative to
    /// the config file. In a container, mount the host's `/proc` (e.g. at
    /// `/host/proc`) and point this at it to measure the host rather than
    /// the container.
    #[serde(default = "default_procfs_root")]
    procfs_root: PathBuf,
}

fn default_interval() -> Seconds {
    Seconds::from_secs(15)
}

fn default_collectors() -> Vec<Kind> {
    ALL_COLLECTORS.to_vec()
}

fn default_procfs_root() -> PathBuf {
    PathBuf::from("/proc")
}

/// The `source_type` of the events.
const SOURCE_TYPE: &str = "host_metrics";

impl SourceConfig for HostMetricsConfig {
    fn build(&self, cx: &BuildContext) -> Result<Box<dyn Source>, BuildError> {
        let interval = self.scrape_interval_secs.positive("scrape_interval_secs")?;
        if self.collectors.is_empty() {
            return Err(BuildError::new(
                "`collectors` is empty: name at least one of `cpu`, `load`, `memory`, `swap`, \
                 `filesystem`, `network`, `uptime`, or leave it out to collect all",
            )
            .for_option("collectors"));
        }
        Ok(Box::new(HostMetrics {
            interval,
            collector: Collector::new(cx.resolve_path(&self.procfs_root), &self.collectors),
        }))
    }
}

struct HostMetrics {
    interval: Duration,
    collector: Collector,
}

impl Source for HostMetrics {
    fn run(self: Box<Self>, cx: SourceContext) -> ComponentFuture {
        let cycle = Cycle {
            collector: Some(self.collector),
            host: cx.host.to_string(),
        };
        Box::pin(polling::run(cycle, self.interval, cx))
    }
}

/// One collection, on the blocking pool (file reads and `statvfs` block).
struct Cycle {
    /// Lent to the blocking task during a collection.
    collector: Option<Collector>,
    host: String,
}

impl Poll for Cycle {
    async fn poll(&mut self) -> anyhow::Result<(Vec<Event>, usize)> {
        let mut collector = self
            .collector
            .take()
            .ok_or_else(|| anyhow::anyhow!("a previous collection was interrupted"))?;
        let (collector, metrics) = tokio::task::spawn_blocking(move || {
            let metrics = collector.collect(Instant::now());
            (collector, metrics)
        })
        .await?;
        self.collector = Some(collector);
        let now = Utc::now();
        let events = metrics
            .into_iter()
            .filter_map(|metric| metric.tag("host", &self.host).into_event(now, SOURCE_TYPE))
            .collect();
        Ok((events, 0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::{build_failure, parse_error};

    #[test]
    fn rejects_an_empty_collector_list_and_a_zero_interval_at_the_option() {
        let error = build_failure::<HostMetricsConfig>("collectors = []");
        assert!(error.message.contains("`collectors` is empty"), "{error}");
        assert_eq!(error.option.as_deref(), Some("collectors"));
        let error = build_failure::<HostMetricsConfig>("scrape_interval_secs = 0");
        assert!(error.message.contains("`scrape_interval_secs`"), "{error}");
        assert_eq!(error.option.as_deref(), Some("scrape_interval_secs"));
    }

    #[test]
    fn the_interval_takes_units_and_plain_seconds() {
        let interval = |options: &str| {
            toml::from_str::<HostMetricsConfig>(options)
                .unwrap()
                .scrape_interval_secs
                .get()
        };
        assert_eq!(
            interval("scrape_interval_secs = \"1m\""),
            Duration::from_secs(60)
        );
        assert_eq!(
            interval("scrape_interval_secs = 0.5"),
            Duration::from_millis(500)
        );
        assert_eq!(interval(""), Duration::from_secs(15));
        let (message, at) = parse_error::<HostMetricsConfig>("scrape_interval_secs = -1");
        assert!(message.contains("invalid duration"), "{message}");
        assert_eq!(at, "-1");
    }
}
