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

/// How many times a refused batch is offered to a replacement before it is
/// given up (a replacement closed by yet another reload).
const MAX_REDELIVERIES: usize = 3;

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
        let mut refused = Vec::new();
        let last = self.targets.len() - 1;
        let mut events = Some(events);
        for (index, (consumer, target)) in self.targets.iter().enumerate() {
            let batch = if index == last {
                events.take().unwrap_or_default()
            } else {
                events.clone().unwrap_or_default()
            };
            if let Err(batch) = target.send_or_return(batch).await {
                closed.push(index);
                refused.push((consumer.clone(), batch));
            }
        }
        self.settle(closed, refused).await;
    }

    /// After a send: drops the consumers that went away and delivers what
    /// they refused. The consumers as they were are copied only when
    /// something was refused (a reload), never on the common path.
    async fn settle(&mut self, closed: Vec<usize>, refused: Vec<(String, Vec<Event>)>) {
        if refused.is_empty() {
            self.remove(closed);
            return;
        }
        let before: Vec<String> = self.targets.iter().map(|(id, _)| id.clone()).collect();
        self.remove(closed);
        self.redeliver(refused, &before).await;
    }

    /// Delivers batches that consumers refused because a reload closed
    /// their buffers: to a consumer's replacement (the same id, with a new
    /// buffer), or, when it was removed, to the consumers the reload added
    /// to this output (a renamed component). A batch with nowhere to go
    /// (the consumer was removed for good) is dropped; a static fanout's
    /// refused batches are finalized as not delivered.
    async fn redeliver(&mut self, refused: Vec<(String, Vec<Event>)>, before: &[String]) {
        if refused.is_empty() {
            return;
        }
        if self.wiring.is_none() {
            for (_, batch) in refused {
                let _ = super::memory::undeliverable(batch);
            }
            return;
        }
        let mut pending = refused;
        for _ in 0..MAX_REDELIVERIES {
            if pending.is_empty() {
                return;
            }
            self.refresh();
            let mut again = Vec::new();
            for (consumer, batch) in pending {
                let destinations: Vec<(String, BufferSender)> =
                    match self.targets.iter().find(|(id, _)| *id == consumer) {
                        Some(target) => vec![target.clone()],
                        None => self
                            .targets
                            .iter()
                            .filter(|(id, _)| !before.contains(id))
                            .cloned()
                            .collect(),
                    };
                if destinations.is_empty() {
                    tracing::debug!(
                        consumer,
                        events = batch.len(),
                        "consumer removed by a reload; its batch is dropped"
                    );
                    continue;
                }
                let last = destinations.len() - 1;
                let mut batch = Some(batch);
                for (index, (id, sender)) in destinations.into_iter().enumerate() {
                    let copy = if index == last {
                        batch.take().unwrap_or_default()
                    } else {
                        batch.clone().unwrap_or_default()
                    };
                    if let Err(back) = sender.send_or_return(copy).await {
                        again.push((id, back));
                    }
                }
            }
            pending = again;
            // The reload that closed a buffer rewired first; give a
            // concurrent one a moment before the next try.
            tokio::task::yield_now().await;
        }
        for (_, batch) in pending {
            let _ = super::memory::undeliverable(batch);
        }
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
        let mut refused = Vec::new();
        let last = self.targets.len() - 1;
        let mut events = Some(events);
        for (index, ((consumer, target), reservation)) in
            self.targets.iter().zip(reservations).enumerate()
        {
            let batch = if index == last {
                events.take().unwrap_or_default()
            } else {
                events.clone().unwrap_or_default()
            };
            let Some(reservation) = reservation else {
                // Closed before room could be taken: its copy goes to the
                // consumer's replacement, if a reload made one.
                refused.push((consumer.clone(), batch));
                continue;
            };
            if let Err(batch) = target.send_reserved(batch, reservation).await {
                closed.push(index);
                refused.push((consumer.clone(), batch));
            }
        }
        closed.sort_unstable();
        closed.dedup();
        self.settle(closed, refused).await;
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
