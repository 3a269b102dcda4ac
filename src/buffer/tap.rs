//! Taps: copies of the events leaving a component, for `howl tap` and
//! `GET /api/v1/tap`, taken where the events are fanned out.
//!
//! A tap costs nothing while no one taps: each fanout checks one atomic
//! counter per batch. While someone taps, each batch's values (not the
//! events: their acknowledgements must not wait for a tapper) are copied
//! into each tapper's bounded queue; when a tapper is slow, the queue is
//! full and the batch is dropped for that tapper and counted, never
//! waited for. The pipeline never slows down for a tap.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;
use vrl::value::Value;

use crate::event::Event;

/// Every output that can be tapped, by name (`component` or
/// `component.output`). Shared by the topology, which registers outputs,
/// and the API, which subscribes.
#[derive(Clone, Default)]
pub struct Taps(Arc<Mutex<BTreeMap<String, Arc<TapPoint>>>>);

/// One output's tappers.
#[derive(Default)]
pub struct TapPoint {
    tappers: AtomicUsize,
    subscribers: Mutex<Vec<Subscriber>>,
    next_id: AtomicU64,
}

struct Subscriber {
    id: u64,
    queue: mpsc::Sender<Vec<Value>>,
    dropped: Arc<AtomicU64>,
}

/// A tapper's end: batches of values, and how many values its slowness
/// cost it. Dropping it stops the tap.
pub struct Subscription {
    /// The batches, in the order the component sent them.
    pub batches: mpsc::Receiver<Vec<Value>>,
    dropped: Arc<AtomicU64>,
    point: Arc<TapPoint>,
    id: u64,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

impl std::fmt::Debug for Taps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Taps").field(&self.outputs()).finish()
    }
}

impl Taps {
    /// The tap point of an output, made on first use; a reload that
    /// rebuilds the component keeps it, so a tap goes on across reloads.
    pub fn point(&self, output: &str) -> Arc<TapPoint> {
        Arc::clone(lock(&self.0).entry(output.to_string()).or_default())
    }

    /// Forgets the outputs of a component that was removed; their taps
    /// end (their streams close).
    pub fn remove_component(&self, component: &str) {
        lock(&self.0).retain(|name, point| {
            let keep = name != component && !name.starts_with(&format!("{component}."));
            if !keep {
                lock(&point.subscribers).clear();
            }
            keep
        });
    }

    /// The outputs that can be tapped.
    pub fn outputs(&self) -> Vec<String> {
        lock(&self.0).keys().cloned().collect()
    }

    /// Starts tapping `output`, with room for `queue` batches; `None` when
    /// no such output runs.
    pub fn subscribe(&self, output: &str, queue: usize) -> Option<Subscription> {
        let point = Arc::clone(lock(&self.0).get(output)?);
        let (sender, batches) = mpsc::channel(queue.max(1));
        let dropped = Arc::new(AtomicU64::new(0));
        let id = point.next_id.fetch_add(1, Ordering::Relaxed);
        lock(&point.subscribers).push(Subscriber {
            id,
            queue: sender,
            dropped: Arc::clone(&dropped),
        });
        point.tappers.fetch_add(1, Ordering::AcqRel);
        Some(Subscription {
            batches,
            dropped,
            point,
            id,
        })
    }
}

impl TapPoint {
    /// Whether anyone taps (one atomic load: the cost of a tap point).
    pub fn is_tapped(&self) -> bool {
        self.tappers.load(Ordering::Relaxed) > 0
    }

    /// Copies a batch to every tapper with room; the others count it.
    pub fn offer(&self, events: &[Event]) {
        if events.is_empty() {
            return;
        }
        let subscribers = lock(&self.subscribers);
        for subscriber in subscribers.iter() {
            let Ok(permit) = subscriber.queue.try_reserve() else {
                subscriber
                    .dropped
                    .fetch_add(events.len() as u64, Ordering::Relaxed);
                continue;
            };
            permit.send(events.iter().map(|e| e.value().clone()).collect());
        }
    }
}

impl Subscription {
    /// Values dropped so far because this tapper was too slow.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        lock(&self.point.subscribers).retain(|s| s.id != self.id);
        self.point.tappers.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(n: usize) -> Vec<Event> {
        (0..n)
            .map(|i| Event::from_value(Value::from(i as i64)))
            .collect()
    }

    #[tokio::test]
    async fn a_tapper_gets_copies_and_a_slow_one_loses_batches_counted() {
        let taps = Taps::default();
        let point = taps.point("parse");
        assert!(!point.is_tapped());
        point.offer(&events(3)); // nobody taps: nothing kept
        let mut subscription = taps.subscribe("parse", 2).expect("tappable");
        assert!(point.is_tapped());
        point.offer(&events(2));
        point.offer(&events(1));
        point.offer(&events(4)); // the queue (2 batches) is full
        assert_eq!(subscription.batches.recv().await.map(|b| b.len()), Some(2));
        assert_eq!(subscription.batches.recv().await.map(|b| b.len()), Some(1));
        assert_eq!(subscription.dropped(), 4);
        drop(subscription);
        assert!(!point.is_tapped(), "a tap ends with its subscription");
    }

    #[test]
    fn only_running_outputs_can_be_tapped() {
        let taps = Taps::default();
        taps.point("route.errors");
        taps.point("route");
        taps.point("router");
        assert!(taps.subscribe("nope", 1).is_none());
        let tapping = taps.subscribe("route.errors", 1).expect("tappable");
        taps.remove_component("route");
        assert_eq!(taps.outputs(), vec!["router".to_string()]);
        assert!(
            tapping.batches.is_closed(),
            "a tap on a removed component ends"
        );
    }
}
