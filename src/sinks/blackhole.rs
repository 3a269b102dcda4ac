//! `blackhole`: accept events and throw them away.
//!
//! For benchmarks (the cost of everything but delivery), for topologies under
//! test, and to stand in for a slow destination with `rate`.

use std::time::Duration;

use schemars::JsonSchema;
use serde::Deserialize;
use tokio::time::Instant;

use crate::components::sink::{Sink, SinkConfig, SinkContext};
use crate::components::{BuildContext, ComponentFuture};
use crate::diagnostic::BuildError;
use crate::event::{EventStatus, finalize_all};

/// Options of the `blackhole` sink.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BlackholeConfig {
    /// Log how many events arrived, and at what rate, every this many
    /// seconds; `0` never logs.
    #[serde(default)]
    print_interval_secs: u64,
    /// Accept at most this many events per second, like a slow destination
    /// would; unset means as fast as they come.
    rate: Option<u64>,
}

impl SinkConfig for BlackholeConfig {
    fn build(&self, _cx: &BuildContext) -> Result<Box<dyn Sink>, BuildError> {
        if self.rate == Some(0) {
            return Err(BuildError::new(
                "`rate` must be at least 1 event per second",
            ));
        }
        Ok(Box::new(Blackhole {
            print_interval: (self.print_interval_secs > 0)
                .then(|| Duration::from_secs(self.print_interval_secs)),
            rate: self.rate,
        }))
    }
}

struct Blackhole {
    print_interval: Option<Duration>,
    rate: Option<u64>,
}

impl Sink for Blackhole {
    fn run(self: Box<Self>, mut cx: SinkContext) -> ComponentFuture {
        Box::pin(async move {
            let start = Instant::now();
            let mut total: u64 = 0;
            let mut last_report = (start, 0u64);
            while let Some(mut events) = cx.input.recv().await {
                total += events.len() as u64;
                finalize_all(&mut events, EventStatus::Delivered);
                cx.metrics.sent(None, events.len());
                drop(events);
                if let Some(rate) = self.rate {
                    // Pace to `rate`: event number `total` is due at total/rate s.
                    let due = start + Duration::from_secs_f64(total as f64 / rate as f64);
                    tokio::time::sleep_until(due).await;
                }
                if let Some(interval) = self.print_interval {
                    let now = Instant::now();
                    if now.duration_since(last_report.0) >= interval {
                        let rate = (total - last_report.1) as f64
                            / now.duration_since(last_report.0).as_secs_f64();
                        tracing::info!(component = %cx.key, total, rate = rate.round(), "events received");
                        last_report = (now, total);
                    }
                }
            }
            tracing::debug!(component = %cx.key, total, "blackhole finished");
            Ok(())
        })
    }
}
