//! The memory buffer: a channel of batches, bounded in events by a
//! semaphore of permits and, with `max_bytes`, in bytes by a second one
//! (see the module docs of [`super`]). A batch larger than a whole bound
//! takes all of it, so the true bound is the limit plus one batch.

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
    _bytes: Option<OwnedSemaphorePermit>,
}

struct Shared {
    events: Limit,
    bytes: Option<Limit>,
    when_full: WhenFull,
    gauge: Gauge,
    metrics: Arc<ComponentMetrics>,
}

/// One bound: a semaphore of units (events or bytes) and its size.
struct Limit {
    permits: Arc<Semaphore>,
    capacity: usize,
}

/// What a bound granted.
enum Room {
    /// Room for everything asked.
    All(OwnedSemaphorePermit),
    /// Room for only this many units (`drop_newest` on a full buffer).
    Part(usize, Option<OwnedSemaphorePermit>),
}

impl Limit {
    fn new(capacity: usize) -> Self {
        let capacity = capacity.clamp(1, Semaphore::MAX_PERMITS);
        Self {
            permits: Arc::new(Semaphore::new(capacity)),
            capacity,
        }
    }

    /// Permits for `units`: a batch larger than the whole bound takes all
    /// of it (so it waits for an empty buffer, never forever).
    fn permits_for(&self, units: usize) -> u32 {
        units.min(self.capacity).min(u32::MAX as usize) as u32
    }

    /// Room for `units`, waiting (`block`) or taking what there is
    /// (`drop_newest`); `Err` when the consumer is gone.
    async fn room(&self, units: usize, when_full: WhenFull) -> Result<Room, Closed> {
        let wanted = self.permits_for(units);
        match when_full {
            WhenFull::Block => Arc::clone(&self.permits)
                .acquire_many_owned(wanted)
                .await
                .map(Room::All)
                .map_err(|_| Closed),
            WhenFull::DropNewest => {
                match Arc::clone(&self.permits).try_acquire_many_owned(wanted) {
                    Ok(permit) => Ok(Room::All(permit)),
                    Err(tokio::sync::TryAcquireError::Closed) => Err(Closed),
                    Err(tokio::sync::TryAcquireError::NoPermits) => {
                        let room = self.permits.available_permits();
                        let part = Arc::clone(&self.permits)
                            .try_acquire_many_owned(room as u32)
                            .ok()
                            .filter(|_| room > 0);
                        Ok(Room::Part(if part.is_some() { room } else { 0 }, part))
                    }
                }
            }
        }
    }
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
    /// The bounds' semaphores, closed when the receiver goes.
    permits: Vec<Arc<Semaphore>>,
    gauge: Gauge,
    metrics: Arc<ComponentMetrics>,
}

/// Creates a buffer of `capacity` events (and at most `max_bytes` bytes,
/// as estimated, when set) for the component whose metrics (fill gauge,
/// drops) are `metrics`.
pub fn channel(
    capacity: usize,
    max_bytes: Option<u64>,
    when_full: WhenFull,
    metrics: Arc<ComponentMetrics>,
) -> (MemorySender, MemoryReceiver) {
    let events = Limit::new(capacity);
    let bytes = max_bytes.map(|max| Limit::new(usize::try_from(max).unwrap_or(usize::MAX)));
    let mut closing = vec![Arc::clone(&events.permits)];
    closing.extend(bytes.as_ref().map(|b| Arc::clone(&b.permits)));
    let gauge = metrics.buffer_gauge();
    gauge.set(0.0);
    let (tx, rx) = mpsc::unbounded_channel();
    let sender = MemorySender {
        shared: Arc::new(Shared {
            events,
            bytes,
            when_full,
            gauge: gauge.clone(),
            metrics: Arc::clone(&metrics),
        }),
        tx,
    };
    let receiver = MemoryReceiver {
        rx,
        permits: closing,
        gauge,
        metrics,
    };
    (sender, receiver)
}

impl MemorySender {
    /// Sends a batch, waiting for room (`block`) or dropping what does not
    /// fit (`drop_newest`).
    pub async fn send(&self, events: Vec<Event>) -> Result<(), Closed> {
        self.send_or_return(events).await.map_err(undeliverable)
    }

    /// [`send`](Self::send), but a batch the buffer no longer takes (its
    /// consumer went, or a reload closed it) comes back, not finalized, for
    /// the caller to deliver elsewhere.
    pub async fn send_or_return(&self, mut events: Vec<Event>) -> Result<(), Vec<Event>> {
        if events.is_empty() {
            return Ok(());
        }
        let room = match self
            .shared
            .events
            .room(events.len(), self.shared.when_full)
            .await
        {
            Ok(room) => room,
            Err(Closed) => return Err(events),
        };
        let permit = match room {
            Room::All(permit) => permit,
            Room::Part(kept, permit) => {
                self.shed(events.split_off(kept));
                match permit {
                    Some(permit) => permit,
                    None => return Ok(()),
                }
            }
        };
        let bytes = match self.take_bytes(&mut events).await {
            Ok(bytes) => bytes,
            Err(Closed) => return Err(events),
        };
        if events.is_empty() {
            return Ok(());
        }
        self.push(events, Some(permit), bytes)
    }

    /// Takes the bytes bound's room for `events` (when there is one),
    /// shedding (`drop_newest`) the events that do not fit.
    async fn take_bytes(
        &self,
        events: &mut Vec<Event>,
    ) -> Result<Option<OwnedSemaphorePermit>, Closed> {
        let Some(limit) = &self.shared.bytes else {
            return Ok(None);
        };
        let sizes: Vec<usize> = events.iter().map(Event::estimated_bytes).collect();
        match limit
            .room(sizes.iter().sum(), self.shared.when_full)
            .await?
        {
            Room::All(permit) => Ok(Some(permit)),
            Room::Part(room, permit) => {
                let mut total = 0;
                let kept = sizes
                    .iter()
                    .take_while(|size| {
                        total += **size;
                        total <= room
                    })
                    .count();
                self.shed(events.split_off(kept));
                Ok(permit)
            }
        }
    }

    /// Drops what a full `drop_newest` buffer cannot take; not delivered,
    /// so a source waiting for acknowledgements learns it (an HTTP client
    /// is told to retry).
    fn shed(&self, mut shed: Vec<Event>) {
        finalize_all(&mut shed, EventStatus::Errored);
        self.shared.metrics.shed_by_buffer(shed.len());
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
        let acquire = Arc::clone(&self.shared.events.permits)
            .acquire_many_owned(self.shared.events.permits_for(events));
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
    ) -> Result<(), Vec<Event>> {
        match reservation.permit {
            Some(permit) => {
                // The reservation counted events; bytes are known now.
                let mut events = events;
                let bytes = match self.take_bytes(&mut events).await {
                    Ok(bytes) => bytes,
                    Err(Closed) => return Err(events),
                };
                self.push(events, Some(permit), bytes)
            }
            None => self.send_or_return(events).await,
        }
    }

    fn push(
        &self,
        events: Vec<Event>,
        permit: Option<OwnedSemaphorePermit>,
        bytes: Option<OwnedSemaphorePermit>,
    ) -> Result<(), Vec<Event>> {
        let count = events.len();
        if let Err(returned) = self.tx.send(Batch {
            events,
            _permit: permit,
            _bytes: bytes,
        }) {
            return Err(returned.0.events);
        }
        self.shared.gauge.increment(count as f64);
        Ok(())
    }
}

/// Finalizes events whose consumer has gone away as not delivered.
pub(super) fn undeliverable(mut events: Vec<Event>) -> Closed {
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

    /// Refuses further batches (senders get theirs back, see
    /// [`MemorySender::send_or_return`]) while what is queued can still be
    /// read; [`recv`](Self::recv) then ends once it is read. How a reload
    /// drains a buffer whose component goes away.
    pub fn close_to_senders(&mut self) {
        for permits in &self.permits {
            permits.close();
        }
        self.rx.close();
    }

    /// Whether nothing is queued now.
    pub fn is_empty(&self) -> bool {
        self.rx.is_empty()
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
        for permits in &self.permits {
            permits.close();
        }
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
