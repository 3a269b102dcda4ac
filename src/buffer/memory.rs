//! The memory buffer: a bounded channel of batches, bounded in events by a
//! semaphore of permits (see the module docs of [`super`]).

use std::sync::Arc;
use std::time::Duration;

use metrics::Gauge;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

use super::{Closed, Reservation, WhenFull};
use crate::event::{Event, EventStatus, finalize_all};
use crate::internal_events::ComponentMetrics;

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
pub struct MemorySender {
    shared: Arc<Shared>,
    tx: mpsc::UnboundedSender<Batch>,
}

/// The consuming end, owned by the transform or sink.
pub struct MemoryReceiver {
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
) -> (MemorySender, MemoryReceiver) {
    let capacity = capacity.max(1);
    let permits = Arc::new(Semaphore::new(capacity));
    let gauge = metrics.buffer_gauge();
    gauge.set(0.0);
    let (tx, rx) = mpsc::unbounded_channel();
    let sender = MemorySender {
        shared: Arc::new(Shared {
            permits: Arc::clone(&permits),
            capacity,
            when_full,
            gauge: gauge.clone(),
            metrics: Arc::clone(&metrics),
        }),
        tx,
    };
    let receiver = MemoryReceiver {
        rx,
        permits,
        gauge,
        metrics,
    };
    (sender, receiver)
}

impl MemorySender {
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

impl MemoryReceiver {
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

impl Drop for MemoryReceiver {
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
