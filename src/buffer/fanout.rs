//! Delivering one output to every component that consumes it.
//!
//! Each consumer gets its own copy of the batch (the last one gets the
//! original, so a single consumer costs no clone). Consumers are served in
//! turn, so one slow consumer on a `block` edge slows the producer, which is
//! the point of backpressure; a `drop_newest` edge never makes it wait.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::tap::TapPoint;
use super::{BufferSender, Closed, Reservation};
use crate::event::Event;

/// The consumers of one output.
///
/// A running topology can change them while the producer runs (a reload
/// that adds or removes a consumer): such a fanout is made with
/// [`Fanout::rewirable`], and each copy of it (a source may hand copies to
/// its connections) picks the new consumers up before its next batch. The
/// check is one atomic load per batch.
#[derive(Clone, Default)]
pub struct Fanout {
    targets: Vec<(String, BufferSender)>,
    wiring: Option<(Arc<Wiring>, u64)>,
    tap: Option<Arc<TapPoint>>,
}

/// The consumers of a rewirable fanout as the topology last set them.
#[derive(Default)]
struct Wiring {
    version: AtomicU64,
    targets: Mutex<Vec<(String, BufferSender)>>,
}

/// The topology's handle on a rewirable fanout: sets its consumers.
#[derive(Clone)]
pub struct Rewire(Arc<Wiring>);

impl Rewire {
    /// Replaces the consumers. Copies of the fanout send their next batch
    /// to these; a batch already being sent finishes where it was going
    /// (a consumer's buffer outlives its removal from a fanout until it has
    /// drained, so that batch is not lost).
    pub fn set(&self, targets: Vec<(String, BufferSender)>) {
        *self.0.targets.lock().unwrap_or_else(|p| p.into_inner()) = targets;
        self.0.version.fetch_add(1, Ordering::AcqRel);
    }

    /// The ids of the consumers, as last set.
    pub fn consumers(&self) -> Vec<String> {
        self.0
            .targets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(id, _)| id.clone())
            .collect()
    }
}

/// Every consumer of a fanout stayed full for the whole wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backpressured;

impl Fanout {
    /// A fanout whose consumers the returned [`Rewire`] can change while
    /// it runs.
    pub fn rewirable(targets: Vec<(String, BufferSender)>) -> (Self, Rewire) {
        let wiring = Arc::new(Wiring {
            version: AtomicU64::new(0),
            targets: Mutex::new(targets.clone()),
        });
        let fanout = Self {
            targets,
            wiring: Some((Arc::clone(&wiring), 0)),
            tap: None,
        };
        (fanout, Rewire(wiring))
    }

    /// Offers every batch to the tappers of `point` (`howl tap`).
    pub fn with_tap(mut self, point: Arc<TapPoint>) -> Self {
        self.tap = Some(point);
        self
    }

    fn offer_to_tap(&self, events: &[Event]) {
        if let Some(tap) = &self.tap
            && tap.is_tapped()
        {
            tap.offer(events);
        }
    }

    /// Adds a consumer (its id, for logs).
    pub fn add(&mut self, consumer: impl Into<String>, sender: BufferSender) {
        self.targets.push((consumer.into(), sender));
    }

    /// True when nothing consumes this output.
    pub fn is_empty(&self) -> bool {
        match &self.wiring {
            Some((wiring, _)) => wiring
                .targets
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .is_empty(),
            None => self.targets.is_empty(),
        }
    }

    /// Takes up the consumers a reload set, if they changed.
    fn refresh(&mut self) {
        let Some((wiring, seen)) = &mut self.wiring else {
            return;
        };
        let version = wiring.version.load(Ordering::Acquire);
        if version != *seen {
            self.targets = wiring
                .targets
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            *seen = version;
        }
    }

    /// Sends a batch to every consumer, waiting on full `block` buffers.
    /// Consumers that have shut down are removed.
    pub async fn send(&mut self, events: Vec<Event>) {
        self.refresh();
        self.offer_to_tap(&events);
        if events.is_empty() || self.targets.is_empty() {
            return;
        }
        let mut closed = Vec::new();
        let last = self.targets.len() - 1;
        let mut events = Some(events);
        for (index, (_, target)) in self.targets.iter().enumerate() {
            let batch = if index == last {
                events.take().unwrap_or_default()
            } else {
                events.clone().unwrap_or_default()
            };
            if target.send(batch).await == Err(Closed) {
                closed.push(index);
            }
        }
        self.remove(closed);
    }

    /// Sends a batch to every consumer or to none: room is reserved on all
    /// of them first, waiting at most `wait`. Used by sources that can tell
    /// their client to retry (HTTP 503) instead of blocking it, without
    /// delivering a partial copy that the retry would duplicate.
    pub async fn send_all_or_nothing(
        &mut self,
        events: Vec<Event>,
        wait: Duration,
    ) -> Result<(), Backpressured> {
        self.refresh();
        if events.is_empty() || self.targets.is_empty() {
            return Ok(());
        }
        let deadline = tokio::time::Instant::now() + wait;
        let mut reservations: Vec<Option<Reservation>> = Vec::with_capacity(self.targets.len());
        let mut closed = Vec::new();
        for (index, (_, target)) in self.targets.iter().enumerate() {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match target.reserve(events.len(), left).await {
                Ok(Some(reservation)) => reservations.push(Some(reservation)),
                Ok(None) => return Err(Backpressured),
                Err(Closed) => {
                    closed.push(index);
                    reservations.push(None);
                }
            }
        }
        self.offer_to_tap(&events);
        let last = self.targets.len() - 1;
        let mut events = Some(events);
        for (index, ((_, target), reservation)) in self.targets.iter().zip(reservations).enumerate()
        {
            let Some(reservation) = reservation else {
                continue;
            };
            let batch = if index == last {
                events.take().unwrap_or_default()
            } else {
                events.clone().unwrap_or_default()
            };
            if target.send_reserved(batch, reservation).await == Err(Closed) {
                closed.push(index);
            }
        }
        closed.sort_unstable();
        closed.dedup();
        self.remove(closed);
        Ok(())
    }

    fn remove(&mut self, mut closed: Vec<usize>) {
        closed.sort_unstable();
        for index in closed.into_iter().rev() {
            let (consumer, _) = self.targets.remove(index);
            tracing::debug!(consumer, "consumer has shut down; no longer sending to it");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::buffer::{WhenFull, channel};
    use crate::component_key::{ComponentKey, ComponentKind};
    use crate::internal_events::ComponentMetrics;

    fn metrics(id: &str) -> Arc<ComponentMetrics> {
        Arc::new(ComponentMetrics::new(ComponentKey::new(
            ComponentKind::Sink,
            id,
            "blackhole",
        )))
    }

    fn events(n: usize) -> Vec<Event> {
        (0..n)
            .map(|i| Event::from_value(vrl::value::Value::from(i as i64)))
            .collect()
    }

    #[tokio::test]
    async fn every_consumer_gets_a_copy() {
        let (a_tx, mut a_rx) = channel(10, WhenFull::Block, metrics("a"));
        let (b_tx, mut b_rx) = channel(10, WhenFull::Block, metrics("b"));
        let mut fanout = Fanout::default();
        fanout.add("a", a_tx);
        fanout.add("b", b_tx);
        fanout.send(events(3)).await;
        assert_eq!(a_rx.recv().await.unwrap().len(), 3);
        assert_eq!(b_rx.recv().await.unwrap().len(), 3);
    }

    #[tokio::test]
    async fn all_or_nothing_delivers_no_partial_copy() {
        let (a_tx, mut a_rx) = channel(10, WhenFull::Block, metrics("a"));
        let (b_tx, _b_rx) = channel(1, WhenFull::Block, metrics("b"));
        b_tx.send(events(1)).await.unwrap(); // b is full
        let mut fanout = Fanout::default();
        fanout.add("a", a_tx);
        fanout.add("b", b_tx);
        let result = fanout
            .send_all_or_nothing(events(2), Duration::from_millis(10))
            .await;
        assert_eq!(result, Err(Backpressured));
        assert!(a_rx.try_recv().is_none(), "a must not get a copy b refused");
    }

    #[tokio::test]
    async fn closed_consumers_are_dropped_and_others_still_served() {
        let (a_tx, a_rx) = channel(10, WhenFull::Block, metrics("a"));
        let (b_tx, mut b_rx) = channel(10, WhenFull::Block, metrics("b"));
        drop(a_rx);
        let mut fanout = Fanout::default();
        fanout.add("a", a_tx);
        fanout.add("b", b_tx);
        fanout.send(events(1)).await;
        fanout.send(events(1)).await;
        assert_eq!(b_rx.recv().await.unwrap().len(), 1);
        assert_eq!(b_rx.recv().await.unwrap().len(), 1);
        assert_eq!(fanout.targets.len(), 1);
    }
}
