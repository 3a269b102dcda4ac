//! Transforms: events in, events out, on one or more named outputs.
//!
//! Pure per-event transforms (`remap`, `filter`, `route`) implement
//! [`SyncTransform`](crate::components::transform::SyncTransform): the topology runs several copies of them on the
//! runtime's worker threads at once and keeps the output in input order, so
//! a CPU-heavy VRL program uses every core. Transforms that keep state
//! across events or act on time (windows, periodic reports, I/O such as
//! `llm_suppress`'s questions) implement
//! [`TaskTransform`](crate::components::transform::TaskTransform) and run as one task of their own, reading their input
//! and writing their outputs themselves (`pattern`, `throttle`, `dedupe`,
//! `threshold`).

mod dedupe;
mod filter;
mod keyed_state;
mod llm_suppress;
mod pattern;
mod remap;
mod route;
mod saved_keys;
#[cfg(test)]
mod task_harness;
mod threshold;
mod throttle;

use crate::components::registry::{ComponentType, component_type};
use crate::components::transform::TransformConfig;
use crate::options::FieldPath;
use crate::patterns::MinerConfig;

/// Every transform type howl knows.
pub static TYPES: &[ComponentType<dyn TransformConfig>] = &[
    component_type!("dedupe", dedupe::DedupeConfig),
    component_type!("filter", filter::FilterConfig),
    component_type!("llm_suppress", llm_suppress::LlmSuppressConfig),
    component_type!("pattern", pattern::PatternConfig, shared: MinerConfig),
    component_type!("remap", remap::RemapConfig),
    component_type!("route", route::RouteConfig),
    component_type!("threshold", threshold::ThresholdConfig),
    component_type!("throttle", throttle::ThrottleConfig),
];

pub use pattern::PatternConfig;

/// A field path written in the code: the default of a field option.
fn default_field_path(path: &'static str) -> FieldPath {
    FieldPath::parse(path).unwrap_or_else(|e| panic!("the default field path is invalid: {e}"))
}
