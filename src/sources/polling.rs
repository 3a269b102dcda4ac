//! The run loop of polling sources (`host_metrics`, `prometheus_scrape`,
//! `prometheus_query`): one cycle now, then one every interval, until
//! shutdown. A source says what one cycle produces ([`Poll`]); [`run`]
//! does the rest the same way for all of them: the schedule, stamping the
//! source id, counting received events and bytes, backpressure, and
//! stopping at once on shutdown, even in the middle of a cycle.
//!
//! A cycle that overruns its interval (a slow scrape, a Prometheus
//! retrying) postpones the next one instead of firing a burst of late
//! cycles to catch up: each cycle reports the present, so missed ones are
//! worthless.

use std::future::Future;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::{Interval, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use crate::components::source::SourceContext;
use crate::event::Event;

/// What one cycle of a polling source produces.
pub trait Poll: Send {
    /// Reads the outside world once: the events, and the bytes read for
    /// them. An `Err` stops the source (for failures that will not pass,
    /// not for an endpoint that is down: that is an event and a metric).
    fn poll(&mut self) -> impl Future<Output = anyhow::Result<(Vec<Event>, usize)>> + Send;
}

/// Runs `poller` every `interval` until shutdown.
pub async fn run(
    mut poller: impl Poll,
    interval: Duration,
    mut cx: SourceContext,
) -> anyhow::Result<()> {
    let source_id = cx.key.shared_id();
    let mut schedule = Schedule::every(interval);
    while schedule.next(&cx.shutdown).await {
        let (events, bytes) = tokio::select! {
            biased;
            () = cx.shutdown.cancelled() => break,
            polled = poller.poll() => polled?,
        };
        let events: Vec<Event> = events
            .into_iter()
            .map(|event| event.with_source_id(source_id.clone()))
            .collect();
        cx.out.metrics().received(events.len(), bytes);
        tokio::select! {
            biased;
            () = cx.shutdown.cancelled() => break,
            () = cx.out.send(events) => {}
        }
    }
    Ok(())
}

/// Runs `work` on every item at once and returns the results in the
/// items' order: one slow endpoint or query never delays the others.
/// Dropping the returned future cancels the work still running.
pub async fn all_at_once<T, R, F>(items: &[T], work: impl Fn(T) -> F) -> Vec<R>
where
    T: Clone,
    F: Future<Output = R> + Send + 'static,
    R: Send + 'static,
{
    let mut running = JoinSet::new();
    for (index, item) in items.iter().cloned().enumerate() {
        let future = work(item);
        running.spawn(async move { (index, future.await) });
    }
    let mut results = running.join_all().await;
    results.sort_by_key(|(index, _)| *index);
    results.into_iter().map(|(_, result)| result).collect()
}

/// When the next cycle of a polling source runs.
#[derive(Debug)]
pub struct Schedule {
    interval: Interval,
}

impl Schedule {
    /// Cycles every `period`, the first one at once.
    pub fn every(period: Duration) -> Self {
        let mut interval = tokio::time::interval(period);
        interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Self { interval }
    }

    /// Waits for the next cycle (cancel-safe).
    pub async fn tick(&mut self) {
        self.interval.tick().await;
    }

    /// Waits for the next cycle; `false` when shutdown came first.
    async fn next(&mut self, shutdown: &CancellationToken) -> bool {
        tokio::select! {
            biased;
            () = shutdown.cancelled() => false,
            _ = self.interval.tick() => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::time::Instant;

    #[tokio::test(start_paused = true)]
    async fn all_at_once_keeps_the_items_order_whatever_finishes_first() {
        let start = Instant::now();
        let results = all_at_once(&[3u64, 1, 2], |seconds| async move {
            tokio::time::sleep(Duration::from_secs(seconds)).await;
            seconds
        })
        .await;
        assert_eq!(results, [3, 1, 2]);
        assert_eq!(start.elapsed(), Duration::from_secs(3), "concurrently");
    }

    #[tokio::test(start_paused = true)]
    async fn runs_at_once_then_every_period_and_stops_on_shutdown() {
        let shutdown = CancellationToken::new();
        let mut schedule = Schedule::every(Duration::from_secs(15));
        let start = Instant::now();
        assert!(schedule.next(&shutdown).await);
        assert_eq!(start.elapsed(), Duration::ZERO);
        assert!(schedule.next(&shutdown).await);
        assert_eq!(start.elapsed(), Duration::from_secs(15));
        // A cycle that took 40 s: the next one runs right after, then the
        // rhythm resumes from there rather than catching up.
        tokio::time::sleep(Duration::from_secs(40)).await;
        assert!(schedule.next(&shutdown).await);
        assert!(schedule.next(&shutdown).await);
        assert_eq!(start.elapsed(), Duration::from_secs(70));
        shutdown.cancel();
        assert!(!schedule.next(&shutdown).await);
    }
}
