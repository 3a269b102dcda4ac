//! Turning out-of-order batch statuses into a position a source may commit.
//!
//! A source that must not lose data (the `file` source's checkpoint, a disk
//! buffer's read cursor) sends batches in order, each covering a range of
//! its input up to some end position, and each with a [`BatchNotifier`]
//! attached. Batches complete out of order: sinks differ in latency, a
//! webhook may have several requests in flight, retries take their time. The
//! position that is safe to commit is the end of the longest *prefix* of
//! batches that have all completed, never the read position: committing
//! past a batch still in flight loses it on a crash.
//!
//! [`AckQueue`] keeps the pending batches of one input in send order and
//! advances over completed ones. It is polled (no task, no channel of its
//! own), so a source checks it whenever it checkpoints, and awaits it only
//! when it drains at shutdown.
//!
//! Any final status releases a batch: `Delivered`, but also `Errored` (the
//! sink retried for `retry.max_duration_secs` and gave up) and `Rejected`
//! (the destination refused it for good). Those are counted, not retried:
//! re-reading them would only fail again, and would hold every later line
//! back. A notifier whose events vanished without a status (a component
//! crashed) reports `Errored`.
//!
//! [`BatchNotifier`]: super::BatchNotifier

use std::collections::VecDeque;

use tokio::sync::oneshot::error::TryRecvError;

use super::{BatchStatus, BatchStatusReceiver};

/// The pending batches of one input, in send order. A position is
/// whatever locates the input's end after a batch: a byte offset in a file,
/// a count of lines, a place in a disk buffer's segments.
#[derive(Debug, Default)]
pub struct AckQueue<P = u64> {
    pending: VecDeque<Pending<P>>,
    acked: P,
}

#[derive(Debug)]
struct Pending<P> {
    end: P,
    events: usize,
    status: BatchStatusReceiver,
}

/// What completed since the last poll. A status is a batch's (its worst
/// event's), so failures are counted in batches, with the events those
/// batches held: some of those events may have been delivered.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Completed {
    /// Batches that completed.
    pub batches: usize,
    /// Batches that completed `Errored` (some sink's retries ran out).
    pub errored_batches: usize,
    /// Events in those batches.
    pub errored_events: usize,
    /// Batches that completed `Rejected` (some destination refused events).
    pub rejected_batches: usize,
    /// Events in those batches.
    pub rejected_events: usize,
}

impl Completed {
    /// Adds another poll's outcome.
    pub fn add(&mut self, other: Completed) {
        self.batches += other.batches;
        self.errored_batches += other.errored_batches;
        self.errored_events += other.errored_events;
        self.rejected_batches += other.rejected_batches;
        self.rejected_events += other.rejected_events;
    }

    /// "2 batches (130 lines) with lines not delivered (...), 1 batch (40
    /// lines) with lines refused (...)", for logs.
    pub fn describe_failures(&self, unit: &str) -> String {
        let part = |batches: usize, events: usize, what: &str| {
            let s = if batches == 1 { "" } else { "es" };
            format!("{batches} batch{s} ({events} {unit}) with {unit} {what}")
        };
        let mut parts = Vec::new();
        if self.errored_batches > 0 {
            parts.push(part(
                self.errored_batches,
                self.errored_events,
                "not delivered (retries ran out, or a full buffer or a failing disk dropped them)",
            ));
        }
        if self.rejected_batches > 0 {
            parts.push(part(
                self.rejected_batches,
                self.rejected_events,
                "refused (by a destination, or too large for a disk buffer)",
            ));
        }
        parts.join(", ")
    }

    /// True when every completed batch was delivered.
    pub fn all_delivered(&self) -> bool {
        self.errored_events == 0 && self.rejected_events == 0
    }
}

impl<P: Copy> AckQueue<P> {
    /// A queue whose committed position starts at `acked` (a checkpoint).
    pub fn new(acked: P) -> Self {
        Self {
            pending: VecDeque::new(),
            acked,
        }
    }

    /// Records a batch of `events` covering the input up to `end`, sent
    /// (only once it was handed to the output: a batch that never left must
    /// not be waited for).
    pub fn push(&mut self, end: P, events: usize, status: BatchStatusReceiver) {
        self.pending.push_back(Pending {
            end,
            events,
            status,
        });
    }

    /// Records that the input up to `end` holds nothing to deliver (blank
    /// lines, a JSON `[]`): it is done once the batches before it are, so
    /// it extends the last pending batch, or is acknowledged at once when
    /// none is pending. Without it such input would never be acknowledged,
    /// and would count against a source's backpressure for good.
    pub fn skip_to(&mut self, end: P) {
        match self.pending.back_mut() {
            Some(last) => last.end = end,
            None => self.acked = end,
        }
    }

    /// The position safe to commit: the end of the completed prefix.
    pub fn acked(&self) -> P {
        self.acked
    }

    /// Batches still waiting for their status.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// True when no batch is waiting.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Events still waiting for their status.
    pub fn pending_events(&self) -> usize {
        self.pending.iter().map(|p| p.events).sum()
    }

    /// Forgets every pending batch and starts over at `acked` (the input
    /// was truncated: old statuses must not move the new position).
    pub fn reset(&mut self, acked: P) {
        self.pending.clear();
        self.acked = acked;
    }

    /// Advances over the batches at the front that have completed.
    pub fn poll(&mut self) -> Completed {
        let mut completed = Completed::default();
        while let Some(front) = self.pending.front_mut() {
            let status = match front.status.try_recv() {
                Ok(status) => status,
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Closed) => BatchStatus::Errored,
            };
            let Some(done) = self.pending.pop_front() else {
                break;
            };
            self.complete(done, status, &mut completed);
        }
        completed
    }

    /// Waits for the front batch to complete and advances over it (and over
    /// any that completed behind it). Returns `None` when nothing is
    /// pending. Cancel-safe: a batch is only removed once its status is in.
    pub async fn next(&mut self) -> Option<Completed> {
        let front = self.pending.front_mut()?;
        let status = (&mut front.status).await.unwrap_or(BatchStatus::Errored);
        let mut completed = Completed::default();
        if let Some(done) = self.pending.pop_front() {
            self.complete(done, status, &mut completed);
        }
        completed.add(self.poll());
        Some(completed)
    }

    fn complete(&mut self, done: Pending<P>, status: BatchStatus, completed: &mut Completed) {
        self.acked = done.end;
        completed.batches += 1;
        match status {
            BatchStatus::Delivered => {}
            BatchStatus::Errored => {
                completed.errored_batches += 1;
                completed.errored_events += done.events;
            }
            BatchStatus::Rejected => {
                completed.rejected_batches += 1;
                completed.rejected_events += done.events;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{BatchNotifier, EventFinalizers, EventStatus};

    fn batch() -> (EventFinalizers, BatchStatusReceiver) {
        let (notifier, rx) = BatchNotifier::new_with_receiver();
        (EventFinalizers::new(notifier), rx)
    }

    #[test]
    fn the_position_never_passes_a_batch_in_flight() {
        let mut queue = AckQueue::new(10);
        let (mut first, rx) = batch();
        queue.push(20, 1, rx);
        let (mut second, rx) = batch();
        queue.push(30, 1, rx);
        second.update_status(EventStatus::Delivered);
        assert_eq!(queue.poll().batches, 0);
        assert_eq!(queue.acked(), 10, "the first batch is still in flight");
        first.update_status(EventStatus::Delivered);
        assert_eq!(queue.poll().batches, 2);
        assert_eq!(queue.acked(), 30);
        assert!(queue.is_empty());
    }

    #[test]
    fn input_without_events_is_acknowledged_with_the_batch_before_it() {
        let mut queue = AckQueue::new(0);
        queue.skip_to(5);
        assert_eq!(queue.acked(), 5, "nothing pending: at once");
        let (mut first, rx) = batch();
        queue.push(10, 1, rx);
        queue.skip_to(15);
        assert_eq!(queue.acked(), 5, "never past a batch in flight");
        first.update_status(EventStatus::Delivered);
        assert_eq!(queue.poll().batches, 1);
        assert_eq!(queue.acked(), 15);
    }

    #[test]
    fn failed_batches_release_the_position_and_are_counted() {
        let mut queue = AckQueue::new(0);
        let (mut errored, rx) = batch();
        queue.push(5, 3, rx);
        let (mut rejected, rx) = batch();
        queue.push(9, 2, rx);
        errored.update_status(EventStatus::Errored);
        rejected.update_status(EventStatus::Rejected);
        let completed = queue.poll();
        assert_eq!(queue.acked(), 9);
        assert_eq!(completed.errored_events, 3);
        assert_eq!(completed.rejected_events, 2);
        assert!(!completed.all_delivered());
        assert_eq!(
            completed.describe_failures("lines"),
            "1 batch (3 lines) with lines not delivered (retries ran out, or a full buffer \
             or a failing disk dropped them), 1 batch (2 lines) with lines refused (by a \
             destination, or too large for a disk buffer)"
        );
    }

    #[test]
    fn a_reset_ignores_statuses_of_the_old_input() {
        let mut queue = AckQueue::new(0);
        let (mut old, rx) = batch();
        queue.push(100, 1, rx);
        queue.reset(0);
        old.update_status(EventStatus::Delivered);
        assert_eq!(queue.poll().batches, 0);
        assert_eq!(queue.acked(), 0, "a truncated file starts over");
    }

    #[test]
    fn the_position_is_the_completed_prefix_in_any_completion_order() {
        for seed in 0..200 {
            let mut rng = fastrand::Rng::with_seed(seed);
            let count = rng.usize(1..20);
            let mut queue = AckQueue::new(0);
            let mut copies = Vec::new();
            for index in 0..count {
                let (finalizers, rx) = batch();
                queue.push((index as u64 + 1) * 10, 1, rx);
                copies.push((index, finalizers));
            }
            rng.shuffle(&mut copies);
            let mut done = vec![false; count];
            for (index, mut finalizers) in copies {
                finalizers.update_status(EventStatus::Delivered);
                done[index] = true;
                queue.poll();
                let prefix = done.iter().take_while(|d| **d).count();
                assert_eq!(queue.acked(), prefix as u64 * 10, "seed {seed}");
            }
        }
    }

    #[tokio::test]
    async fn next_waits_for_the_front_batch() {
        let mut queue = AckQueue::new(0);
        let (mut first, rx) = batch();
        queue.push(7, 1, rx);
        let waiter = tokio::spawn(async move {
            let completed = queue.next().await;
            (completed, queue.acked())
        });
        tokio::task::yield_now().await;
        first.update_status(EventStatus::Delivered);
        let (completed, acked) = waiter.await.unwrap();
        assert_eq!(completed.map(|c| c.batches), Some(1));
        assert_eq!(acked, 7);
    }

    #[tokio::test]
    async fn next_on_an_empty_queue_returns_at_once() {
        assert_eq!(AckQueue::new(3).next().await, None);
    }
}
