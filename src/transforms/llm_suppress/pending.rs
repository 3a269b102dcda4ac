//! Events held while their pattern's verdict is being asked.
//!
//! The pipeline must never block on a question, and an alert must not be
//! lost or reordered while it waits, so:
//!
//! - each pattern has its own FIFO queue; a verdict (or a failure) releases
//!   the whole queue at once, in arrival order, while other patterns' events
//!   keep flowing;
//! - every held event has a deadline (`decision_timeout_secs` after it
//!   arrived); past it, it is released by `on_error` even if the question is
//!   still in flight;
//! - at most `max_pending_events` are held across all patterns; holding one
//!   more first releases the oldest held event (by `on_error`), which keeps
//!   each pattern's order.
//!
//! Deadlines are found without scanning: all events wait the same time, so
//! arrival order is deadline order, kept in one global queue of sequence
//! numbers. Entries of events released early (by a verdict) go stale in it;
//! they are skipped when met and compacted away when they outnumber the live
//! ones, so memory stays proportional to what is held.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use tokio::time::Instant;

use crate::event::Event;

struct Held {
    seq: u64,
    deadline: Instant,
    event: Event,
}

/// The held events of every pattern.
pub struct Pending {
    queues: HashMap<String, VecDeque<Held>>,
    /// (sequence number, pattern) per held event, in arrival order.
    order: VecDeque<(u64, String)>,
    held: usize,
    capacity: usize,
    timeout: Duration,
    next_seq: u64,
}

impl Pending {
    /// Holds at most `capacity` events (at least one), each at most
    /// `timeout`.
    pub fn new(capacity: usize, timeout: Duration) -> Self {
        Self {
            queues: HashMap::new(),
            order: VecDeque::new(),
            held: 0,
            capacity: capacity.max(1),
            timeout,
            next_seq: 0,
        }
    }

    /// How many events are held.
    pub fn len(&self) -> usize {
        self.held
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.held == 0
    }

    /// Holds `event` of `pattern`; when full, first releases and returns the
    /// oldest held event with its pattern.
    pub fn hold(&mut self, pattern: &str, event: Event, now: Instant) -> Option<(String, Event)> {
        let evicted = if self.held >= self.capacity {
            self.pop_oldest(|_| true)
        } else {
            None
        };
        self.next_seq += 1;
        let seq = self.next_seq;
        self.queues
            .entry(pattern.to_string())
            .or_default()
            .push_back(Held {
                seq,
                deadline: now + self.timeout,
                event,
            });
        self.order.push_back((seq, pattern.to_string()));
        self.held += 1;
        self.compact();
        evicted
    }

    /// Releases every held event of `pattern`, in arrival order.
    pub fn take(&mut self, pattern: &str) -> Vec<Event> {
        let Some(queue) = self.queues.remove(pattern) else {
            return Vec::new();
        };
        self.held -= queue.len();
        queue.into_iter().map(|held| held.event).collect()
    }

    /// Releases the events whose deadline has passed at `now`, oldest
    /// first.
    pub fn expired(&mut self, now: Instant) -> Vec<(String, Event)> {
        let mut released = Vec::new();
        while let Some(next) = self.pop_oldest(|held| held.deadline <= now) {
            released.push(next);
        }
        released
    }

    /// Releases everything, oldest first.
    pub fn drain(&mut self) -> Vec<(String, Event)> {
        let mut released = Vec::with_capacity(self.held);
        while let Some(next) = self.pop_oldest(|_| true) {
            released.push(next);
        }
        released
    }

    /// When the oldest held event's deadline passes.
    pub fn next_deadline(&mut self) -> Option<Instant> {
        self.skip_stale();
        let (_, pattern) = self.order.front()?;
        self.queues.get(pattern)?.front().map(|held| held.deadline)
    }

    /// Whether the order entry `(seq, pattern)` still stands for a held
    /// event. Events leave a queue from its front only, so an entry is live
    /// when its number is not older than the queue's front.
    fn is_live(queues: &HashMap<String, VecDeque<Held>>, seq: u64, pattern: &str) -> bool {
        queues
            .get(pattern)
            .and_then(VecDeque::front)
            .is_some_and(|front| seq >= front.seq)
    }

    fn skip_stale(&mut self) {
        while let Some((seq, pattern)) = self.order.front() {
            if Self::is_live(&self.queues, *seq, pattern) {
                return;
            }
            self.order.pop_front();
        }
    }

    /// Releases the oldest held event if `release` agrees.
    fn pop_oldest(&mut self, release: impl Fn(&Held) -> bool) -> Option<(String, Event)> {
        self.skip_stale();
        let (_, pattern) = self.order.front()?;
        let queue = self.queues.get_mut(pattern)?;
        if !release(queue.front()?) {
            return None;
        }
        let held = queue.pop_front()?;
        let (_, pattern) = self.order.pop_front()?;
        if queue.is_empty() {
            self.queues.remove(&pattern);
        }
        self.held -= 1;
        Some((pattern, held.event))
    }

    fn compact(&mut self) {
        if self.order.len() > 2 * self.held + 64 {
            let queues = &self.queues;
            self.order
                .retain(|(seq, pattern)| Self::is_live(queues, *seq, pattern));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transforms::task_harness::{event, messages};

    const TIMEOUT: Duration = Duration::from_secs(15);

    fn names(released: &[(String, Event)]) -> Vec<String> {
        released
            .iter()
            .map(|(p, e)| format!("{p}:{}", messages(std::slice::from_ref(e))[0]))
            .collect()
    }

    #[test]
    fn a_verdict_releases_one_pattern_in_order_and_leaves_the_others() {
        let now = Instant::now();
        let mut pending = Pending::new(100, TIMEOUT);
        for (pattern, message) in [("a", "a1"), ("b", "b1"), ("a", "a2")] {
            assert!(pending.hold(pattern, event(message, "s"), now).is_none());
        }
        assert_eq!(messages(&pending.take("a")), ["a1", "a2"]);
        assert_eq!(pending.len(), 1);
        assert_eq!(pending.next_deadline(), Some(now + TIMEOUT));
        assert_eq!(names(&pending.drain()), ["b:b1"]);
    }

    #[test]
    fn events_leave_at_their_deadline_oldest_first() {
        let start = Instant::now();
        let mut pending = Pending::new(100, TIMEOUT);
        pending.hold("a", event("a1", "s"), start);
        pending.hold("b", event("b1", "s"), start + Duration::from_secs(5));
        pending.hold("a", event("a2", "s"), start + Duration::from_secs(10));
        assert!(pending.expired(start + Duration::from_secs(14)).is_empty());
        assert_eq!(
            names(&pending.expired(start + Duration::from_secs(20))),
            ["a:a1", "b:b1"]
        );
        assert_eq!(
            pending.next_deadline(),
            Some(start + Duration::from_secs(25))
        );
    }

    #[test]
    fn a_full_queue_releases_the_oldest_event_to_make_room() {
        let now = Instant::now();
        let mut pending = Pending::new(2, TIMEOUT);
        pending.hold("a", event("a1", "s"), now);
        pending.hold("b", event("b1", "s"), now);
        let evicted = pending.hold("b", event("b2", "s"), now).unwrap();
        assert_eq!(names(&[evicted]), ["a:a1"]);
        assert_eq!(pending.len(), 2);
    }

    #[test]
    fn stale_entries_do_not_pile_up() {
        let now = Instant::now();
        let mut pending = Pending::new(10, TIMEOUT);
        for _ in 0..10_000 {
            pending.hold("a", event("x", "s"), now);
            pending.take("a");
        }
        assert!(pending.order.len() <= 64 + 2, "{}", pending.order.len());
    }
}
