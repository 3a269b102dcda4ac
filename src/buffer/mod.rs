//! The bounded buffer in front of every transform and sink, and the fanout
//! ([`fanout`]) that feeds it.
//!
//! Edges carry *batches* of events (one channel operation per batch, not per
//! event), but the bound is counted in *events*: a sender takes one permit per
//! event from a semaphore sized `max_events` and the permits return when the
//! consumer takes the batch out. So memory stays bounded however producers
//! batch, and a full buffer makes producers wait (`block`, the default:
//! backpressure that reaches the source) or drop what does not fit
//! (`drop_newest`, counted as intentionally discarded).
//!
//! A batch larger than the whole buffer takes every permit, so it waits for
//! an empty buffer rather than forever: the bound is then `max_events` plus
//! one batch.
//!
//! Events a buffer cannot deliver are finalized `Errored`, so a source
//! waiting for acknowledgements never takes them for delivered: those a
//! `drop_newest` buffer sheds, those sent after the consumer went away, and
//! those still queued when the consumer is dropped (a component that failed,
//! or was stopped at the graceful shutdown limit), which are also counted as
//! discarded and logged with the component's name.

pub mod fanout;

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use metrics::Gauge;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

use crate::event::{Event, EventStatus, finalize_all};
use crate::internal_events::ComponentMetrics;

/// Options of a sink's input buffer.
#[derive(Debug, Clone, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct BufferConfig {
    /// How many events may wait in front of the sink before `when_full`
    /// applies. The number of events waiting is the `buffer_events` gauge.
    #[serde(
        default = "default_max_events",
        deserialize_with = "crate::options::count_at_most::<_, MAX_EVENTS>"
    )]
    #[schemars(range(min = 1, max = 100_000_000))]
    pub max_events: NonZeroUsize,
    /// What happens when the buffer is full: `block` makes upstream
    /// components wait (backpressure reaches the sources; nothing is lost),
    /// `drop_newest` discards the events that do not fit and counts them in
    /// `component_discarded_events_total{intentional="true"}`.
    #[serde(default)]
    pub when_full: WhenFull,
}

impl Default for BufferConfig {
    fn default() -> Self {
        Self {
            max_events: default_max_events(),
            when_full: WhenFull::default(),
        }
    }
}

/// The most events a buffer may be configured to hold.
const MAX_EVENTS: usize = 100_000_000;

fn default_max_events() -> NonZeroUsize {
    const FIVE_HUNDRED: NonZeroUsize = NonZeroUsize::new(500).unwrap();
    FIVE_HUNDRED
}

/// The policy of a full buffer.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum WhenFull {
    /// Wait for room: slows the producer down, all the way to the source.
    #[default]
    Block,
    /// Discard what does not fit, and count it.
    DropNewest,
}

/// The consumer has gone away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Closed;

struct Batch {
    events: Vec<Event>,
    _permit: Option<OwnedSemaphorePermit>,
}

struct Shared {
    permits: Arc<Semaphore>,
    capacity: usize,
    when_full: WhenFull,
    gauge: Gauge,
    metrics: Arc<ComponentMetrics>,
}

/// The producing end; clone it for each upstream output.
#[derive(Clone)]
pub struct BufferSender {
    shared: Arc<Shared>,
    tx: mpsc::UnboundedSender<Batch>,
}

/// Room for a batch, taken in advance (see [`BufferSender::reserve`]).
pub struct Reservation {
    permit: Option<OwnedSemaphorePermit>,
}

/// The consuming end, owned by the transform or sink.
pub struct BufferReceiver {
    rx: mpsc::UnboundedReceiver<Batch>,
    permits: Arc<Semaphore>,
    gauge: Gauge,
    metrics: Arc<ComponentMetrics>,
}

/// Creates a buffer of `capacity` events for the component whose metrics
/// (fill gauge, drops) are `metrics`.
pub fn channel(
    capacity: usize,
    when_full: WhenFull,
    metrics: Arc<ComponentMetrics>,
) -> (BufferSender, BufferReceiver) {
    let capacity = capacity.max(1);
    let permits = Arc::new(Semaphore::new(capacity));
    let gauge = metrics.buffer_gauge();
    gauge.set(0.0);
    let (tx, rx) = mpsc::unbounded_channel();
    let sender = BufferSender {
        shared: Arc::new(Shared {
            permits: Arc::clone(&permits),
            capacity,
            when_full,
            gauge: gauge.clone(),
            metrics: Arc::clone(&metrics),
        }),
        tx,
    };
    let receiver = BufferReceiver {
        rx,
        permits,
        gauge,
        metrics,
    };
    (sender, receiver)
}

impl BufferSender {
    /// Sends a batch, waiting for room (`block`) or dropping what does not
    /// fit (`drop_newest`).
    pub async fn send(&self, mut events: Vec<Event>) -> Result<(), Closed> {
        if events.is_empty() {
            return Ok(());
        }
        let wanted = self.permits_for(events.len());
        let permit = match self.shared.when_full {
            WhenFull::Block => {
                match Arc::clone(&self.shared.permits)
                    .acquire_many_owned(wanted)
                    .await
                {
                    Ok(permit) => permit,
                    Err(_) => return Err(undeliverable(events)),
                }
            }
            WhenFull::DropNewest => {
                match Arc::clone(&self.shared.permits).try_acquire_many_owned(wanted) {
                    Ok(permit) => permit,
                    Err(tokio::sync::TryAcquireError::Closed) => return Err(undeliverable(events)),
                    Err(tokio::sync::TryAcquireError::NoPermits) => {
                        let room = self.shared.permits.available_permits();
                        let fits = Arc::clone(&self.shared.permits)
                            .try_acquire_many_owned(room as u32)
                            .ok()
                            .filter(|_| room > 0);
                        let kept = if fits.is_some() { room } else { 0 };
                        let mut shed = events.split_off(kept);
                        // Not delivered: a source waiting for acknowledgements
                        // must learn it (an HTTP client is told to retry).
                        finalize_all(&mut shed, EventStatus::Errored);
                        self.shared.metrics.shed_by_buffer(shed.len());
                        match fits {
                            Some(permit) => permit,
                            None => return Ok(()),
                        }
                    }
                }
            }
        };
        self.push(events, Some(permit))
    }

    /// Takes room for `events` events, waiting at most `wait`. `Ok(None)`
    /// means the buffer stayed full: the caller should report backpressure
    /// (an HTTP source answers 503) rather than wait.
    pub async fn reserve(
        &self,
        events: usize,
        wait: Duration,
    ) -> Result<Option<Reservation>, Closed> {
        if self.shared.when_full == WhenFull::DropNewest {
            // Such an edge never pushes back; `send` drops instead.
            return Ok(Some(Reservation { permit: None }));
        }
        let acquire = Arc::clone(&self.shared.permits).acquire_many_owned(self.permits_for(events));
        match tokio::time::timeout(wait, acquire).await {
            Ok(Ok(permit)) => Ok(Some(Reservation {
                permit: Some(permit),
            })),
            Ok(Err(_)) => Err(Closed),
            Err(_) => Ok(None),
        }
    }

    /// Sends a batch into room taken with [`reserve`](Self::reserve).
    pub async fn send_reserved(
        &self,
        events: Vec<Event>,
        reservation: Reservation,
    ) -> Result<(), Closed> {
        match reservation.permit {
            Some(permit) => self.push(events, Some(permit)),
            None => self.send(events).await,
        }
    }

    fn permits_for(&self, events: usize) -> u32 {
        events.min(self.shared.capacity).min(u32::MAX as usize) as u32
    }

    fn push(&self, events: Vec<Event>, permit: Option<OwnedSemaphorePermit>) -> Result<(), Closed> {
        let count = events.len();
        if let Err(returned) = self.tx.send(Batch {
            events,
            _permit: permit,
        }) {
            return Err(undeliverable(returned.0.events));
        }
        self.shared.gauge.increment(count as f64);
        Ok(())
    }
}

/// Finalizes events whose consumer has gone away as not delivered.
fn undeliverable(mut events: Vec<Event>) -> Closed {
    finalize_all(&mut events, EventStatus::Errored);
    Closed
}

impl BufferReceiver {
    /// The next batch, or `None` once every sender is gone and the buffer is
    /// empty (the signal to flush and finish).
    pub async fn recv(&mut self) -> Option<Vec<Event>> {
        let batch = self.rx.recv().await?;
        self.gauge.decrement(batch.events.len() as f64);
        Some(batch.events)
    }

    /// The next batch if one is waiting, without waiting.
    pub fn try_recv(&mut self) -> Option<Vec<Event>> {
        let batch = self.rx.try_recv().ok()?;
        self.gauge.decrement(batch.events.len() as f64);
        Some(batch.events)
    }
}

impl Drop for BufferReceiver {
    fn drop(&mut self) {
        // Wake producers blocked on a full buffer: nobody will make room.
        self.permits.close();
        // What is still queued will never be consumed: say so, by name, and
        // tell the sources waiting for it.
        self.rx.close();
        let mut lost = 0;
        while let Ok(mut batch) = self.rx.try_recv() {
            lost += batch.events.len();
            finalize_all(&mut batch.events, EventStatus::Errored);
        }
        if lost > 0 {
            self.gauge.decrement(lost as f64);
            self.metrics.lost_in_buffer(lost);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::component_key::{ComponentKey, ComponentKind};

    fn events(n: usize) -> Vec<Event> {
        (0..n)
            .map(|i| Event::from_value(vrl::value::Value::from(i as i64)))
            .collect()
    }

    fn metrics() -> Arc<ComponentMetrics> {
        Arc::new(ComponentMetrics::new(ComponentKey::new(
            ComponentKind::Sink,
            "test",
            "blackhole",
        )))
    }

    #[tokio::test]
    async fn block_waits_until_the_consumer_makes_room() {
        let (tx, mut rx) = channel(4, WhenFull::Block, metrics());
        tx.send(events(4)).await.unwrap();
        let pending = tokio::spawn({
            let tx = tx.clone();
            async move { tx.send(events(2)).await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(
            !pending.is_finished(),
            "a full buffer must make the sender wait"
        );
        assert_eq!(rx.recv().await.unwrap().len(), 4);
        pending.await.unwrap().unwrap();
        assert_eq!(rx.recv().await.unwrap().len(), 2);
    }

    #[tokio::test]
    async fn drops_newest_when_buffer_full() {
        let (tx, mut rx) = channel(5, WhenFull::DropNewest, metrics());
        tx.send(events(3)).await.unwrap();
        tx.send(events(4)).await.unwrap(); // only 2 fit
        tx.send(events(1)).await.unwrap(); // none fit
        drop(tx);
        let mut total = 0;
        while let Some(batch) = rx.recv().await {
            total += batch.len();
        }
        assert_eq!(total, 5);
    }

    #[tokio::test]
    async fn oversized_batch_takes_the_whole_buffer_instead_of_hanging() {
        let (tx, mut rx) = channel(2, WhenFull::Block, metrics());
        tx.send(events(10)).await.unwrap();
        assert_eq!(rx.recv().await.unwrap().len(), 10);
    }

    #[tokio::test]
    async fn sender_learns_the_consumer_is_gone() {
        let (tx, rx) = channel(1, WhenFull::Block, metrics());
        tx.send(events(1)).await.unwrap();
        let blocked = tokio::spawn({
            let tx = tx.clone();
            async move { tx.send(events(1)).await }
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        drop(rx);
        assert_eq!(blocked.await.unwrap(), Err(Closed));
    }

    #[tokio::test]
    async fn reserve_times_out_on_a_full_buffer() {
        let (tx, _rx) = channel(1, WhenFull::Block, metrics());
        tx.send(events(1)).await.unwrap();
        let reservation = tx.reserve(1, Duration::from_millis(10)).await.unwrap();
        assert!(reservation.is_none());
    }
}
