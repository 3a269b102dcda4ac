//! Transforms: events in, events out, on one or more named outputs.
//!
//! Pure per-event transforms (`remap`, `filter`, `route`) implement
//! [`SyncTransform`]: the topology runs several copies of them on the
//! runtime's worker threads at once and keeps the output in input order, so
//! a CPU-heavy VRL program uses every core. Transforms that wait on time or
//! I/O will run as their own tasks.

mod filter;
mod remap;
mod route;
mod vrl_program;

use std::fmt::Debug;

use crate::component_type;
use crate::components::{BuildContext, BuildError, OutputSpec};
use crate::config::registry::ComponentType;
use crate::event::Event;
use crate::internal_events::ComponentMetrics;

/// Every transform type howl knows.
pub static TYPES: &[ComponentType<dyn TransformConfig>] = &[
    component_type!("filter", filter::FilterConfig),
    component_type!("remap", remap::RemapConfig),
    component_type!("route", route::RouteConfig),
];

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
