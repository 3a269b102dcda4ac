//! `blackhole`: accept events and throw them away.
//!
//! For benchmarks (the cost of everything but delivery), for topologies under
//! test, and to stand in for a slow destination with `rate`.

use std::num::NonZeroU64;
use std::time::Duration;

use schemars::JsonSchema;
use serde::Deserialize;
use tokio::time::Instant;

use crate::components::sink::{Sink, SinkConfig, SinkContext};
use crate::components::{BuildContext, ComponentFuture};
use crate::diagnostic::BuildError;
use crate::event::{EventStatus, finalize_all};
use crate::options::Seconds;

/// Options of the `blackhole` sink.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BlackholeConfig {
    /// Log how many events arrived, and at what rate, this often; `0` never
    /// logs.
    #[serde(default = "never")]
    print_interval_secs: Seconds,
    /// Accept at most this many events per second, like a slow destination
    /// would (the buffer in front then fills, and `buffer.when_full`
    /// applies); unset means as fast as they come.
    rate: Option<NonZeroU64>,
}

fn never() -> Seconds {
    Seconds::from_secs(0)
}

impl SinkConfig for BlackholeConfig {
    fn build(&self, _cx: &BuildContext) -> Result<Box<dyn Sink>, BuildError> {
        let interval = self.print_interval_secs.get();
        Ok(Box::new(Blackhole {
            print_interval: (!interval.is_zero()).then_some(interval),
            rate: self.rate,
        }))
    }
}

struct Blackhole {
    print_interval: Option<Duration>,
    rate: Option<NonZeroU64>,
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
                    let due = start + Duration::from_secs_f64(total as f64 / rate.get() as f64);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(options: &str) -> Result<BlackholeConfig, String> {
        toml::from_str(options).map_err(|e| e.message().to_string())
    }

    #[test]
    fn print_interval_takes_units_and_plain_seconds() {
        let every = |options| parse(options).unwrap().print_interval_secs.get();
        assert_eq!(every("print_interval_secs = 10"), Duration::from_secs(10));
        assert_eq!(
            every("print_interval_secs = \"1m\""),
            Duration::from_secs(60)
        );
        assert_eq!(every(""), Duration::ZERO, "never logs by default");
    }

    #[test]
    fn a_rate_of_zero_fails_while_parsing() {
        assert!(parse("rate = 0").unwrap_err().contains("nonzero"));
        assert_eq!(parse("rate = 5").unwrap().rate, NonZeroU64::new(5));
    }
}
