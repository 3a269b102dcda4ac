//! The contract of a sink: options that build into a task that takes
//! batches until its input closes, delivers them, reports each event's fate
//! through its finalizers, and flushes.

use std::fmt::Debug;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::{BuildContext, ComponentFuture};
use crate::buffer::handover::Input;
use crate::component_key::ComponentKey;
use crate::diagnostic::BuildError;
use crate::event::{Event, EventStatus, finalize_all};
use crate::internal_events::ComponentMetrics;
use crate::shared::Shared;
use crate::state::StateHandle;

/// The options of one sink type.
pub trait SinkConfig: Debug + Send + Sync {
    /// Checks the options (templates, ...) and prepares the sink.
    fn build(&self, cx: &BuildContext) -> Result<Box<dyn Sink>, BuildError>;

    /// Whether sources wait for this sink's deliveries when the config does
    /// not say (`acknowledgements.enabled`): yes for sinks that deliver over
    /// the network and may fail, no for those that write locally at once.
    fn acknowledgements_by_default(&self) -> bool {
        false
    }
}

/// A built sink, ready to run.
pub trait Sink: Send {
    /// Delivers events until the input closes, then flushes.
    fn run(self: Box<Self>, cx: SinkContext) -> ComponentFuture;
}

/// What a running sink works with.
pub struct SinkContext {
    /// Which sink this is.
    pub key: ComponentKey,
    /// Its input.
    pub input: SinkInput,
    /// Its metrics.
    pub metrics: Arc<ComponentMetrics>,
    /// The state store.
    pub state: StateHandle,
    /// Cancel to stop the whole topology (e.g. stdout was closed).
    pub stop_topology: CancellationToken,
    /// What the process shares with its API: chat sinks whose buttons act
    /// on patterns change the operators' decisions, and take Slack's
    /// presses from the API.
    pub shared: Shared,
}

/// A sink's input buffer, counting what it hands out.
pub struct SinkInput {
    buffer: Input,
    metrics: Arc<ComponentMetrics>,
    acknowledgements: bool,
}

impl SinkInput {
    /// Wraps a buffer. Without `acknowledgements`, events count as done for
    /// their sources as soon as the sink takes them (see
    /// `config::AcknowledgementsConfig`).
    pub fn new(
        buffer: impl Into<Input>,
        metrics: Arc<ComponentMetrics>,
        acknowledgements: bool,
    ) -> Self {
        Self {
            buffer: buffer.into(),
            metrics,
            acknowledgements,
        }
    }

    /// The next batch; `None` when every upstream is done. (Sinks count
    /// the bytes they actually write, in `component_sent_bytes_total`,
    /// rather than estimating every event's size on the way in.)
    pub async fn recv(&mut self) -> Option<Vec<Event>> {
        let mut batch = self.buffer.recv().await?;
        self.metrics.received_events(batch.len());
        if !self.acknowledgements {
            finalize_all(&mut batch, EventStatus::Delivered);
        }
        Some(batch)
    }

    /// Whether nothing waits in the buffer now (known for memory buffers;
    /// a disk buffer never says it is idle, so its sink keeps batching by
    /// `timeout`).
    pub fn is_idle(&self) -> bool {
        self.buffer.is_idle()
    }

    /// A batch that is already waiting, without waiting for one (memory
    /// buffers; a disk buffer answers only through [`recv`](Self::recv)).
    pub fn try_recv(&mut self) -> Option<Vec<Event>> {
        let mut batch = self.buffer.try_recv()?;
        self.metrics.received_events(batch.len());
        if !self.acknowledgements {
            finalize_all(&mut batch, EventStatus::Delivered);
        }
        Some(batch)
    }
}
