//! Sinks: where events leave howl.
//!
//! A sink's `run` takes batches from its [`SinkInput`] until it closes (every
//! upstream component finished), delivers them, reports each event's fate
//! through its finalizers, flushes, and returns. The buffer in front of it is
//! configured by the common `buffer` options.

pub mod alert;
pub mod alertmanager;
mod blackhole;
pub mod chat;
mod console;
pub mod delivery;
pub mod encoding;
mod file;
mod slack;
mod telegram;
mod webhook;

use std::fmt::Debug;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::component_type;
use crate::components::{BuildContext, BuildError, ComponentFuture, ComponentKey};
use crate::config::registry::ComponentType;
use crate::event::Event;
use crate::internal_events::ComponentMetrics;
use crate::state::StateHandle;
use crate::topology::buffer::BufferReceiver;

/// Every sink type howl knows.
pub static TYPES: &[ComponentType<dyn SinkConfig>] = &[
    component_type!("alertmanager", alertmanager::AlertmanagerConfig),
    component_type!("blackhole", blackhole::BlackholeConfig),
    component_type!("console", console::ConsoleConfig),
    component_type!("file", file::FileSinkConfig),
    component_type!("slack", slack::SlackConfig),
    component_type!("telegram", telegram::TelegramConfig),
    component_type!("webhook", webhook::WebhookConfig),
];

/// The options of one sink type.
pub trait SinkConfig: Debug + Send + Sync {
    /// Checks the options (templates, ...) and prepares the sink.
    fn build(&self, cx: &BuildContext) -> Result<Box<dyn Sink>, BuildError>;
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
}

/// A sink's input buffer, counting what it hands out.
pub struct SinkInput {
    buffer: BufferReceiver,
    metrics: Arc<ComponentMetrics>,
}

impl SinkInput {
    /// Wraps a buffer.
    pub fn new(buffer: BufferReceiver, metrics: Arc<ComponentMetrics>) -> Self {
        Self { buffer, metrics }
    }

    /// The next batch; `None` when every upstream is done. (Sinks count
    /// the bytes they actually write, in `component_sent_bytes_total`,
    /// rather than estimating every event's size on the way in.)
    pub async fn recv(&mut self) -> Option<Vec<Event>> {
        let batch = self.buffer.recv().await?;
        self.metrics.received_events(batch.len());
        Some(batch)
    }
}
