//! The contract of a transform: options that declare their outputs and
//! build into either a pure per-event function ([`SyncTransform`], run in
//! parallel by the topology) or a task of its own ([`TaskTransform`]).

use std::fmt::Debug;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::{BuildContext, ComponentFuture, OutputSpec};
use crate::buffer::fanout::Fanout;
use crate::buffer::handover::Input;
use crate::component_key::ComponentKey;
use crate::diagnostic::BuildError;
use crate::event::Event;
use crate::internal_events::ComponentMetrics;
use crate::shared::LinkSigner;
use crate::state::StateHandle;
use crate::suppressions::Suppressions;

/// The options of one transform type.
pub trait TransformConfig: Debug + Send + Sync {
    /// The outputs it offers. Named outputs are numbered in this order
    /// (skipping the default one) for [`TransformOutput::push_named`].
    fn outputs(&self) -> Vec<OutputSpec>;

    /// Checks the options (compiles VRL, ...) and prepares the transform.
    fn build(&self, cx: &BuildContext) -> Result<Transform, BuildError>;
}

/// A built transform.
pub enum Transform {
    /// A pure per-event function.
    Sync(Box<dyn SyncTransform>),
    /// A stateful or time-driven transform running as its own task.
    Task(Box<dyn TaskTransform>),
}

/// A transform that runs as one task: it reads `cx.input` until it closes,
/// emits through `cx.outputs`, flushes whatever it holds, and returns.
pub trait TaskTransform: Send {
    /// Runs until the input closes.
    fn run(self: Box<Self>, cx: TaskContext) -> ComponentFuture;
}

/// What a running task transform works with.
pub struct TaskContext {
    /// Which transform this is.
    pub key: ComponentKey,
    /// Its input buffer; `None` from `recv` means every upstream is done.
    pub input: TransformInput,
    /// Its outputs.
    pub outputs: TransformOutputs,
    /// Its metrics.
    pub metrics: Arc<ComponentMetrics>,
    /// The state store.
    pub state: StateHandle,
    /// Cancelled when shutdown begins. Task transforms keep reading their
    /// input until it closes (upstream drains first); this only tells them
    /// to stop waiting for slow work such as a remote call.
    pub shutdown: CancellationToken,
    /// The operators' suppressions, shared with the API (`llm_suppress`
    /// reads them per event; changes arrive without a restart).
    pub suppressions: Suppressions,
    /// The signer of suppression links, when `[api.links]` is set.
    pub links: Option<Arc<LinkSigner>>,
}

/// A transform's input buffer, counting what it hands out.
pub struct TransformInput {
    buffer: Input,
    metrics: Arc<ComponentMetrics>,
}

impl TransformInput {
    /// Wraps a buffer (or a reload-detachable [`Input`]).
    pub fn new(buffer: impl Into<Input>, metrics: Arc<ComponentMetrics>) -> Self {
        Self {
            buffer: buffer.into(),
            metrics,
        }
    }

    /// The next batch; `None` when every upstream is done.
    pub async fn recv(&mut self) -> Option<Vec<Event>> {
        let batch = self.buffer.recv().await?;
        self.metrics.received_events(batch.len());
        Some(batch)
    }
}

/// The outputs of a transform: the default one and the named ones, in the
/// order of `TransformConfig::outputs`.
pub struct TransformOutputs {
    default: Fanout,
    named: Vec<(String, Fanout)>,
    metrics: Arc<ComponentMetrics>,
}

impl TransformOutputs {
    /// Outputs delivering to the given fanouts.
    pub fn new(
        default: Fanout,
        named: Vec<(String, Fanout)>,
        metrics: Arc<ComponentMetrics>,
    ) -> Self {
        Self {
            default,
            named,
            metrics,
        }
    }

    /// Whether anything consumes the named output number `index` (see
    /// [`DropRoute`]).
    fn is_named_consumed(&self, index: usize) -> bool {
        self.named
            .get(index)
            .is_some_and(|(_, fanout)| !fanout.is_empty())
    }

    /// An empty per-batch collector sized for these outputs.
    pub fn collector(&self, capacity: usize) -> TransformOutput {
        TransformOutput::new(self.named.len(), capacity)
    }

    /// Sends what one batch produced, waiting while consumers are full.
    pub async fn send(&mut self, out: TransformOutput) {
        let count = out.default.len();
        self.default.send(out.default).await;
        self.metrics.sent(None, count);
        for ((name, fanout), events) in self.named.iter_mut().zip(out.named) {
            let count = events.len();
            fanout.send(events).await;
            self.metrics.sent(Some(name), count);
        }
    }
}

/// Where a transform's intentionally dropped events go (`throttle` and
/// `dedupe` over their `ID.dropped`): to the named output when something
/// consumes it, where they count as sent, else nowhere, counted as
/// discarded intentionally. One place for the rule keeps the metrics of
/// every such transform honest.
#[derive(Debug, Clone, Copy)]
pub struct DropRoute {
    index: usize,
    routed: bool,
}

impl DropRoute {
    /// Drops to the named output number `index` of `outputs`.
    pub fn new(outputs: &TransformOutputs, index: usize) -> Self {
        Self {
            index,
            routed: outputs.is_named_consumed(index),
        }
    }

    /// Routes or discards `event`; `reason` is for the discard's trace log.
    pub fn drop_event(
        self,
        event: Event,
        out: &mut TransformOutput,
        metrics: &ComponentMetrics,
        reason: &str,
    ) {
        if self.routed {
            out.push_named(self.index, event);
        } else {
            metrics.discarded_intentionally(1, reason);
        }
    }
}

/// A pure per-event transform.
pub trait SyncTransform: Send + 'static {
    /// Handles one event, pushing what comes out to `out`.
    fn transform(&mut self, event: Event, out: &mut TransformOutput, metrics: &ComponentMetrics);

    /// A fresh copy, so batches can be processed in parallel.
    fn clone_box(&self) -> Box<dyn SyncTransform>;
}

/// What one batch produced, per output.
#[derive(Debug, Default)]
pub struct TransformOutput {
    /// Events for the default output.
    pub default: Vec<Event>,
    /// Events per named output, numbered as in `outputs()`.
    pub named: Vec<Vec<Event>>,
}

impl TransformOutput {
    /// An empty output with room for `named` named outputs.
    pub fn new(named: usize, capacity: usize) -> Self {
        Self {
            default: Vec::with_capacity(capacity),
            named: (0..named).map(|_| Vec::new()).collect(),
        }
    }

    /// Emits on the default output.
    pub fn push(&mut self, event: Event) {
        self.default.push(event);
    }

    /// Emits on the named output number `index`.
    pub fn push_named(&mut self, index: usize, event: Event) {
        if let Some(output) = self.named.get_mut(index) {
            output.push(event);
        }
    }
}
