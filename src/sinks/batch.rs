//! Grouping a sink's input into requests of at most `max_events`, sent when
//! full or when the oldest event has waited `timeout`, or at once when
//! nothing else is waiting.
//!
//! Flush on idle: a lone alert is not held for a batch that will never
//! fill (with the default 1 s timeout, every quiet-time alert would wait a
//! second). A batch starts lingering only when a second event arrives while
//! it is open: what is already waiting in the buffer is taken at once, and
//! when the buffer is then empty and this is a new batch, it goes out. Under
//! load the buffer is rarely empty (events pile up while a request is in
//! flight), so batches still fill.
//!
//! The batcher keeps collected events in itself, not in the future that
//! waits for more, so a sink can `select!` between it and a timer (resends,
//! window closes) without losing events when the timer wins.

use std::num::NonZeroUsize;
use std::time::Duration;

use schemars::JsonSchema;
use serde::Deserialize;
use tokio::time::Instant;

use crate::components::sink::SinkInput;
use crate::event::Event;
use crate::options::Seconds;

/// How events are grouped into one request (sinks whose destination
/// accepts batches).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchConfig {
    /// The most events in one request: a batch is sent as soon as it is
    /// this full.
    #[serde(default = "default_batch_events")]
    pub max_events: NonZeroUsize,
    /// The longest an event waits for its batch to fill: a batch that is
    /// not full is sent this long after its first event arrived. `0` sends
    /// whatever has arrived at once.
    #[serde(default = "default_batch_timeout")]
    pub timeout_secs: Seconds,
}

fn default_batch_events() -> NonZeroUsize {
    const HUNDRED: NonZeroUsize = NonZeroUsize::new(100).unwrap();
    HUNDRED
}

fn default_batch_timeout() -> Seconds {
    Seconds::from_secs(1)
}

impl Default for BatchConfig {
    fn default() -> Self {
        Self {
            max_events: default_batch_events(),
            timeout_secs: default_batch_timeout(),
        }
    }
}

/// Collects batches from a sink's input.
#[derive(Debug)]
pub struct Batcher {
    max_events: usize,
    timeout: Duration,
    pending: Vec<Event>,
    first_at: Option<Instant>,
    closed: bool,
}

impl Batcher {
    /// A batcher of at most `max_events` per batch.
    pub fn new(max_events: NonZeroUsize, timeout: Duration) -> Self {
        Self {
            max_events: max_events.get(),
            timeout,
            pending: Vec::new(),
            first_at: None,
            closed: false,
        }
    }

    /// The next batch; `None` once the input is closed and drained.
    /// Cancel-safe: events already taken from the input stay here.
    pub async fn next(&mut self, input: &mut SinkInput) -> Option<Vec<Event>> {
        loop {
            if self.pending.len() >= self.max_events {
                return Some(self.take());
            }
            if self.closed {
                return (!self.pending.is_empty()).then(|| self.take());
            }
            let deadline = self.first_at.map(|at| at + self.timeout);
            let received = match deadline {
                Some(deadline) => match tokio::time::timeout_at(deadline, input.recv()).await {
                    Ok(received) => received,
                    Err(_) => return Some(self.take()),
                },
                None => input.recv().await,
            };
            match received {
                Some(events) => {
                    let opened = self.first_at.is_none() && !events.is_empty();
                    if opened {
                        self.first_at = Some(Instant::now());
                    }
                    self.pending.extend(events);
                    // Take what is already waiting, up to a full batch.
                    while self.pending.len() < self.max_events {
                        match input.try_recv() {
                            Some(more) => self.pending.extend(more),
                            None => break,
                        }
                    }
                    if opened && self.pending.len() < self.max_events && input.is_idle() {
                        // Nothing else waits: send now, do not linger.
                        return Some(self.take());
                    }
                }
                None => self.closed = true,
            }
        }
    }

    fn take(&mut self) -> Vec<Event> {
        let rest = if self.pending.len() > self.max_events {
            self.pending.split_off(self.max_events)
        } else {
            Vec::new()
        };
        self.first_at = (!rest.is_empty()).then(Instant::now);
        std::mem::replace(&mut self.pending, rest)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::buffer::{WhenFull, channel};
    use crate::component_key::{ComponentKey, ComponentKind};
    use crate::internal_events::ComponentMetrics;

    fn events(n: usize) -> Vec<Event> {
        (0..n)
            .map(|i| Event::from_value(vrl::value::Value::from(i as i64)))
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn splits_full_batches_and_flushes_on_timeout_and_close() {
        let metrics = Arc::new(ComponentMetrics::new(ComponentKey::new(
            ComponentKind::Sink,
            "s",
            "webhook",
        )));
        let (tx, rx) = channel(1000, WhenFull::Block, Arc::clone(&metrics));
        let mut input = SinkInput::new(rx, metrics, true);
        let mut batcher = Batcher::new(NonZeroUsize::new(3).unwrap(), Duration::from_secs(1));
        tx.send(events(7)).await.unwrap();
        assert_eq!(batcher.next(&mut input).await.unwrap().len(), 3);
        assert_eq!(batcher.next(&mut input).await.unwrap().len(), 3);
        let started = Instant::now();
        assert_eq!(
            batcher.next(&mut input).await.unwrap().len(),
            1,
            "the rest goes out on timeout"
        );
        assert!(Instant::now() - started >= Duration::from_secs(1));
        // A lone event, nothing else waiting: out at once, no linger.
        let started = Instant::now();
        tx.send(events(1)).await.unwrap();
        assert_eq!(batcher.next(&mut input).await.unwrap().len(), 1);
        assert_eq!(Instant::now(), started, "a lone alert waits for nothing");
        // Several already waiting: taken together, at once.
        tx.send(events(1)).await.unwrap();
        tx.send(events(1)).await.unwrap();
        assert_eq!(batcher.next(&mut input).await.unwrap().len(), 2);
        assert_eq!(Instant::now(), started);
        tx.send(events(2)).await.unwrap();
        drop(tx);
        assert_eq!(
            batcher.next(&mut input).await.unwrap().len(),
            2,
            "closing flushes at once"
        );
        assert!(batcher.next(&mut input).await.is_none());
    }
}
