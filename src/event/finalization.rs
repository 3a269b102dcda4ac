//! Delivery status that flows from sinks back to the source of an event.
//!
//! A source that cares whether its events were delivered (a file source that
//! must not advance its checkpoint past undelivered lines, an HTTP source that
//! answers only after delivery) creates a [`BatchNotifier`] and attaches it to
//! every event of the batch. Each copy of an event (fanout clones them) keeps
//! an `Arc` to the notifier. Sinks report the outcome with
//! [`EventFinalizers::update_status`]; transforms that drop an event simply
//! drop it. When the last copy is gone the notifier fires once with the worst
//! status seen, so the source learns the fate of the whole batch without any
//! component in between knowing about acknowledgements.
//!
//! The design follows Vector's finalizers, reduced to what howl needs: no
//! allocation per event, whether or not a source asks for notification.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU8, Ordering};

use tokio::sync::oneshot;

/// What happened to one event at the end of the pipeline.
///
/// Ordered by severity: merging two statuses keeps the worse one, so one
/// rejected copy makes the whole batch rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum EventStatus {
    /// No sink took responsibility (a filter dropped it, or no output consumed
    /// it). For the source this counts as done.
    Dropped = 0,
    /// A sink delivered it.
    Delivered = 1,
    /// Delivery failed in a way that may succeed later (the source may retry).
    Errored = 2,
    /// Delivery failed permanently (the destination refused it).
    Rejected = 3,
}

impl EventStatus {
    fn from_u8(value: u8) -> Self {
        match value {
            1 => Self::Delivered,
            2 => Self::Errored,
            3 => Self::Rejected,
            _ => Self::Dropped,
        }
    }
}

/// The outcome of a whole batch, as seen by the source that created it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BatchStatus {
    /// Every event was delivered or intentionally dropped.
    Delivered,
    /// At least one event failed with a retryable error.
    Errored,
    /// At least one event was refused permanently.
    Rejected,
}

/// Receives the status of a batch once every event of it is finalized.
pub type BatchStatusReceiver = oneshot::Receiver<BatchStatus>;

/// Collects the statuses of one batch and reports them when it is dropped.
#[derive(Debug)]
pub struct BatchNotifier {
    status: AtomicU8,
    notify: Mutex<Option<oneshot::Sender<BatchStatus>>>,
}

impl BatchNotifier {
    /// Creates a notifier and the receiver its source awaits.
    pub fn new_with_receiver() -> (Arc<Self>, BatchStatusReceiver) {
        let (tx, rx) = oneshot::channel();
        let notifier = Arc::new(Self {
            status: AtomicU8::new(EventStatus::Dropped as u8),
            notify: Mutex::new(Some(tx)),
        });
        (notifier, rx)
    }

    fn merge(&self, status: EventStatus) {
        self.status.fetch_max(status as u8, Ordering::AcqRel);
    }
}

impl Drop for BatchNotifier {
    fn drop(&mut self) {
        let status = match EventStatus::from_u8(self.status.load(Ordering::Acquire)) {
            EventStatus::Dropped | EventStatus::Delivered => BatchStatus::Delivered,
            EventStatus::Errored => BatchStatus::Errored,
            EventStatus::Rejected => BatchStatus::Rejected,
        };
        let sender = match self.notify.get_mut() {
            Ok(slot) => slot.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        if let Some(sender) = sender {
            // The source may have stopped waiting; that is not an error.
            let _ = sender.send(status);
        }
    }
}

/// The notifiers an event reports to. Cloning an event clones these, so the
/// batch completes only when every copy is finalized or dropped.
///
/// Almost every event reports to no batch or to exactly one, so those two
/// cases hold the `Arc` inline: attaching a notifier to each line of a
/// 64 KiB chunk costs a reference count, not an allocation per line.
#[derive(Clone, Debug, Default)]
pub struct EventFinalizers(Notifiers);

#[derive(Clone, Debug, Default)]
enum Notifiers {
    #[default]
    None,
    One(Arc<BatchNotifier>),
    /// Events merged from several batches (rare).
    Many(Vec<Arc<BatchNotifier>>),
}

impl EventFinalizers {
    /// Finalizers reporting to one batch.
    pub fn new(notifier: Arc<BatchNotifier>) -> Self {
        Self(Notifiers::One(notifier))
    }

    /// True when nobody waits for this event's fate (the common case).
    pub fn is_empty(&self) -> bool {
        matches!(self.0, Notifiers::None)
    }

    /// Records the outcome and releases this copy's hold on its batches.
    pub fn update_status(&mut self, status: EventStatus) {
        match std::mem::take(&mut self.0) {
            Notifiers::None => {}
            Notifiers::One(notifier) => notifier.merge(status),
            Notifiers::Many(notifiers) => {
                for notifier in notifiers {
                    notifier.merge(status);
                }
            }
        }
    }

    /// Takes over another event's finalizers (when events are merged).
    pub fn merge(&mut self, other: EventFinalizers) {
        let mine = std::mem::take(&mut self.0);
        self.0 = match (mine, other.0) {
            (Notifiers::None, theirs) => theirs,
            (mine, Notifiers::None) => mine,
            (mine, theirs) => {
                let mut all = Vec::new();
                for notifiers in [mine, theirs] {
                    match notifiers {
                        Notifiers::None => {}
                        Notifiers::One(notifier) => all.push(notifier),
                        Notifiers::Many(many) => all.extend(many),
                    }
                }
                Notifiers::Many(all)
            }
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn batch_reports_delivered_when_all_copies_delivered() {
        let (notifier, rx) = BatchNotifier::new_with_receiver();
        let mut a = EventFinalizers::new(notifier);
        let mut b = a.clone();
        a.update_status(EventStatus::Delivered);
        b.update_status(EventStatus::Delivered);
        assert_eq!(rx.await.ok(), Some(BatchStatus::Delivered));
    }

    #[tokio::test]
    async fn worst_status_of_any_copy_wins() {
        let (notifier, rx) = BatchNotifier::new_with_receiver();
        let mut a = EventFinalizers::new(notifier);
        let mut b = a.clone();
        let c = a.clone();
        a.update_status(EventStatus::Delivered);
        b.update_status(EventStatus::Rejected);
        drop(c); // dropped by a filter: does not hide the rejection
        assert_eq!(rx.await.ok(), Some(BatchStatus::Rejected));
    }

    #[tokio::test]
    async fn batch_waits_for_the_last_copy() {
        let (notifier, mut rx) = BatchNotifier::new_with_receiver();
        let mut a = EventFinalizers::new(notifier);
        let b = a.clone();
        a.update_status(EventStatus::Errored);
        assert!(
            rx.try_recv().is_err(),
            "must not fire while a copy is alive"
        );
        drop(b);
        assert_eq!(rx.await.ok(), Some(BatchStatus::Errored));
    }

    #[tokio::test]
    async fn merged_events_report_to_every_batch() {
        let (first, first_rx) = BatchNotifier::new_with_receiver();
        let (second, second_rx) = BatchNotifier::new_with_receiver();
        let mut merged = EventFinalizers::new(first);
        merged.merge(EventFinalizers::default());
        merged.merge(EventFinalizers::new(second));
        assert!(!merged.is_empty());
        merged.update_status(EventStatus::Rejected);
        assert!(merged.is_empty(), "a finalized copy holds nothing");
        assert_eq!(first_rx.await.ok(), Some(BatchStatus::Rejected));
        assert_eq!(second_rx.await.ok(), Some(BatchStatus::Rejected));
    }
}
