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

pub mod disk;
pub mod fanout;
pub mod handover;
mod memory;
pub mod tap;

use std::num::{NonZeroU64, NonZeroUsize};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tokio::sync::OwnedSemaphorePermit;

use crate::event::Event;
use crate::internal_events::ComponentMetrics;
use crate::options::Seconds;

/// Options of a sink's input buffer.
#[derive(Debug, Clone, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BufferConfig {
    /// Where events wait: `memory` (fast; lost if howl dies, though a
    /// `file` source reads them again) or `disk` (under
    /// `data_dir/buffers/<sink id>`, kept across crashes and restarts,
    /// bounded by `max_size`).
    #[serde(rename = "type", default)]
    pub kind: BufferKind,
    /// Memory buffers: how many events may wait in front of the sink before
    /// `when_full` applies (the true bound is this plus one batch). The
    /// number waiting is the `buffer_events` gauge.
    #[serde(default, deserialize_with = "max_events")]
    #[schemars(range(min = 1, max = 100_000_000))]
    #[schemars(extend("x-default" = "`500`"))]
    pub max_events: Option<NonZeroUsize>,
    /// Memory buffers: the most bytes the events waiting may take, as
    /// estimated from their structure (texts and keys, plus the fixed size
    /// of each value and map node: a short log line takes about 1 KiB), on
    /// top of `max_events`: 500 events of 1 MiB each are 500 MiB, and this
    /// bounds that. Like `max_events`, the true bound is this plus one
    /// batch. howl's resident memory can briefly exceed it, as the
    /// allocator keeps freed memory a moment for reuse. Unset: bounded by
    /// `max_events` alone.
    pub max_bytes: Option<NonZeroU64>,
    /// Disk buffers: the most bytes the buffer's files may take on disk
    /// (what `du` shows), at least 2 MiB. The `buffer_size_bytes` gauge
    /// says how much they take.
    #[schemars(extend("x-default" = "`268435456` (256 MiB)"))]
    pub max_size: Option<u64>,
    /// Disk buffers: how often what was written is synced to disk
    /// (`fdatasync`); only then are the events acknowledged to their
    /// sources. A power cut loses at most this much (not acknowledged, so
    /// a `file` source reads it again); `kill -9` loses nothing.
    #[serde(default = "default_flush_interval")]
    pub flush_interval_secs: Seconds,
    /// What happens when the buffer is full: `block` makes upstream
    /// components wait (backpressure reaches the sources; nothing is lost),
    /// `drop_newest` discards the events that do not fit and counts them in
    /// `component_discarded_events_total{intentional="true"}`.
    #[serde(default)]
    pub when_full: WhenFull,
}

/// Where a sink's buffer keeps its events.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum BufferKind {
    /// In memory.
    #[default]
    Memory,
    /// In files under `data_dir`.
    Disk,
}

impl Default for BufferConfig {
    fn default() -> Self {
        Self {
            kind: BufferKind::Memory,
            max_events: None,
            max_bytes: None,
            max_size: None,
            flush_interval_secs: default_flush_interval(),
            when_full: WhenFull::default(),
        }
    }
}

impl BufferConfig {
    /// How many events a memory buffer holds.
    pub fn events(&self) -> NonZeroUsize {
        self.max_events.unwrap_or(DEFAULT_MAX_EVENTS)
    }

    /// Checks options that depend on each other: `(option, message)`.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        match self.kind {
            BufferKind::Memory if self.max_size.is_some() => Err((
                "buffer.max_size",
                "`buffer.max_size` applies to `buffer.type = \"disk\"`; a memory buffer is bounded by `buffer.max_events`".into(),
            )),
            BufferKind::Disk if self.max_events.is_some() => Err((
                "buffer.max_events",
                "`buffer.max_events` applies to memory buffers; a disk buffer is bounded by `buffer.max_size` (bytes)".into(),
            )),
            BufferKind::Disk if self.max_bytes.is_some() => Err((
                "buffer.max_bytes",
                "`buffer.max_bytes` applies to memory buffers; a disk buffer is bounded by `buffer.max_size`".into(),
            )),
            BufferKind::Disk if self.size() < disk::MIN_MAX_SIZE => Err((
                "buffer.max_size",
                format!("`buffer.max_size` must be at least {} bytes (2 MiB)", disk::MIN_MAX_SIZE),
            )),
            _ if self.flush_interval_secs.get().is_zero() => Err((
                "buffer.flush_interval_secs",
                "`buffer.flush_interval_secs` must be more than 0".into(),
            )),
            _ => Ok(()),
        }
    }

    /// How many bytes a disk buffer may take.
    pub fn size(&self) -> u64 {
        self.max_size.unwrap_or(DEFAULT_MAX_SIZE)
    }
}

/// The most events a buffer may be configured to hold.
const MAX_EVENTS: usize = 100_000_000;
const DEFAULT_MAX_EVENTS: NonZeroUsize = NonZeroUsize::new(500).unwrap();
const DEFAULT_MAX_SIZE: u64 = 256 * 1024 * 1024;

fn max_events<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<NonZeroUsize>, D::Error> {
    crate::options::count_at_most::<_, MAX_EVENTS>(deserializer).map(Some)
}

fn default_flush_interval() -> Seconds {
    Seconds::from_millis(500)
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

/// Room for a batch, taken in advance (see [`BufferSender::reserve`]).
pub struct Reservation {
    permit: Option<OwnedSemaphorePermit>,
}

/// The producing end; clone it for each upstream output.
#[derive(Clone)]
pub struct BufferSender(SenderKind);

#[derive(Clone)]
enum SenderKind {
    Memory(memory::MemorySender),
    Disk(disk::DiskSender),
}

/// The consuming end, owned by the transform or sink.
pub struct BufferReceiver(ReceiverKind);

enum ReceiverKind {
    Memory(memory::MemoryReceiver),
    Disk(Box<disk::DiskReceiver>),
}

/// Creates a memory buffer of `capacity` events for the component whose
/// metrics (fill gauge, drops) are `metrics` (transforms' inputs, tests).
pub fn channel(
    capacity: usize,
    when_full: WhenFull,
    metrics: Arc<ComponentMetrics>,
) -> (BufferSender, BufferReceiver) {
    memory_channel(capacity, None, when_full, metrics)
}

fn memory_channel(
    capacity: usize,
    max_bytes: Option<u64>,
    when_full: WhenFull,
    metrics: Arc<ComponentMetrics>,
) -> (BufferSender, BufferReceiver) {
    let (tx, rx) = memory::channel(capacity, max_bytes, when_full, metrics);
    (
        BufferSender(SenderKind::Memory(tx)),
        BufferReceiver(ReceiverKind::Memory(rx)),
    )
}

/// Opens the buffer a sink's `buffer.*` options describe: in memory, or on
/// disk under `data_dir/buffers/<sink id>` (recovering what a previous run
/// left there).
pub fn open(
    config: &BufferConfig,
    data_dir: &Path,
    sink_id: &str,
    metrics: Arc<ComponentMetrics>,
) -> std::io::Result<(BufferSender, BufferReceiver)> {
    match config.kind {
        BufferKind::Memory => Ok(memory_channel(
            config.events().get(),
            config.max_bytes.map(NonZeroU64::get),
            config.when_full,
            metrics,
        )),
        BufferKind::Disk => {
            let options = disk::DiskOptions {
                dir: data_dir.join("buffers").join(sink_id),
                max_size: config.size(),
                flush_interval: config.flush_interval_secs.get(),
                when_full: config.when_full,
                segment_size: None,
            };
            let dir = options.dir.clone();
            let (tx, rx) = disk::open(options, metrics).map_err(|error| {
                std::io::Error::new(error.kind(), format!("{}: {error}", dir.display()))
            })?;
            Ok((
                BufferSender(SenderKind::Disk(tx)),
                BufferReceiver(ReceiverKind::Disk(Box::new(rx))),
            ))
        }
    }
}

impl BufferSender {
    /// Sends a batch, waiting for room (`block`) or dropping what does not
    /// fit (`drop_newest`). A disk buffer never reports `Closed`: what it
    /// is given is kept for its sink's next start.
    pub async fn send(&self, events: Vec<Event>) -> Result<(), Closed> {
        match &self.0 {
            SenderKind::Memory(sender) => sender.send(events).await,
            SenderKind::Disk(sender) => {
                sender.send(events).await;
                Ok(())
            }
        }
    }

    /// [`send`](Self::send), but a batch the buffer no longer takes (its
    /// consumer went, or a reload closed it) comes back, not finalized, so
    /// a fanout can deliver it to the consumer's replacement.
    pub async fn send_or_return(&self, events: Vec<Event>) -> Result<(), Vec<Event>> {
        match &self.0 {
            SenderKind::Memory(sender) => sender.send_or_return(events).await,
            SenderKind::Disk(sender) => {
                sender.send(events).await;
                Ok(())
            }
        }
    }

    /// Takes room for `events` events, waiting at most `wait`. `Ok(None)`
    /// means the buffer stayed full: the caller should report backpressure
    /// (an HTTP source answers 503) rather than wait.
    pub async fn reserve(
        &self,
        events: usize,
        wait: Duration,
    ) -> Result<Option<Reservation>, Closed> {
        match &self.0 {
            SenderKind::Memory(sender) => sender.reserve(events, wait).await,
            SenderKind::Disk(sender) => Ok(sender
                .has_room(wait)
                .await
                .then_some(Reservation { permit: None })),
        }
    }

    /// Sends a batch into room taken with [`reserve`](Self::reserve); a
    /// batch the buffer no longer takes comes back, as with
    /// [`send_or_return`](Self::send_or_return).
    pub async fn send_reserved(
        &self,
        events: Vec<Event>,
        reservation: Reservation,
    ) -> Result<(), Vec<Event>> {
        match &self.0 {
            SenderKind::Memory(sender) => sender.send_reserved(events, reservation).await,
            SenderKind::Disk(sender) => {
                sender.send(events).await;
                Ok(())
            }
        }
    }
}

impl BufferReceiver {
    /// The next batch, or `None` once every sender is gone and the buffer is
    /// empty (the signal to flush and finish).
    pub async fn recv(&mut self) -> Option<Vec<Event>> {
        match &mut self.0 {
            ReceiverKind::Memory(receiver) => receiver.recv().await,
            ReceiverKind::Disk(receiver) => receiver.recv().await,
        }
    }

    /// Ends the buffer for a component a reload removes: a memory buffer
    /// refuses further batches (their senders get them back) and
    /// [`recv`](Self::recv) ends once what is queued is read; returns false
    /// for a disk buffer, whose events stay on disk for a sink of the same
    /// id (it cannot be drained while its producers may still write).
    pub fn close_to_senders(&mut self) -> bool {
        match &mut self.0 {
            ReceiverKind::Memory(receiver) => {
                receiver.close_to_senders();
                true
            }
            ReceiverKind::Disk(_) => false,
        }
    }

    /// Whether nothing waits in a memory buffer now (`false` for a disk
    /// buffer).
    pub fn is_idle(&self) -> bool {
        match &self.0 {
            ReceiverKind::Memory(receiver) => receiver.is_empty(),
            ReceiverKind::Disk(_) => false,
        }
    }

    /// The next batch if one is waiting in memory, without waiting (a disk
    /// buffer answers only through [`recv`](Self::recv)).
    pub fn try_recv(&mut self) -> Option<Vec<Event>> {
        match &mut self.0 {
            ReceiverKind::Memory(receiver) => receiver.try_recv(),
            ReceiverKind::Disk(_) => None,
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

    /// Events of about 1 KiB each.
    fn large(n: usize) -> Vec<Event> {
        (0..n)
            .map(|i| Event::from_value(vrl::value::Value::from(format!("{i}{}", "x".repeat(1024)))))
            .collect()
    }

    #[tokio::test]
    async fn max_bytes_bounds_what_waits_in_memory() {
        let (tx, mut rx) = memory_channel(1000, Some(10 * 1024), WhenFull::Block, metrics());
        tx.send(large(8)).await.unwrap();
        let blocked = tokio::spawn({
            let tx = tx.clone();
            async move { tx.send(large(8)).await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!blocked.is_finished(), "16 KiB do not fit in 10 KiB");
        assert_eq!(rx.recv().await.unwrap().len(), 8);
        blocked.await.unwrap().unwrap();
        assert_eq!(rx.recv().await.unwrap().len(), 8);
    }

    #[tokio::test]
    async fn drop_newest_sheds_what_exceeds_max_bytes() {
        let (tx, mut rx) = memory_channel(1000, Some(10 * 1024), WhenFull::DropNewest, metrics());
        tx.send(large(8)).await.unwrap();
        tx.send(large(8)).await.unwrap();
        assert_eq!(rx.recv().await.unwrap().len(), 8);
        let second = rx.try_recv().map_or(0, |batch| batch.len());
        assert!(second < 8, "what did not fit was shed: {second} kept");
    }
}
