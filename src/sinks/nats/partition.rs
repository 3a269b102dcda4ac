//! The sink's `partition.*` options: route each event to one of `count`
//! partitions by a key, so that a fleet of workers (`nats` sources with
//! `partitions.*`) sees each scope (a service, a host) at exactly one
//! worker at a time.
//!
//! The event's subject is its rendered `subject` plus a last token, the
//! partition index: `logs` → `logs.7`. The index is
//! [`partition_of`](crate::nats::partition::partition_of) the rendered
//! `key`, a function that never changes.
//!
//! A key that renders empty, or that refers to fields the event lacks
//! (rendered empty), is not dropped: the event goes to the partition of
//! the empty key (as any other key, it has one), and a missing field is
//! counted as an error (`template_failed`) and logged, rate limited, so
//! that an edge sending unkeyed events is visible.

use std::num::NonZeroU32;

use schemars::JsonSchema;
use serde::Deserialize;

use crate::diagnostic::BuildError;
use crate::event::Event;
use crate::internal_events::{ComponentMetrics, ErrorType, Stage};
use crate::nats::partition::{check_count, partition_of};
use crate::template::Template;

/// The `partition` table of the `nats` sink.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PartitionConfig {
    /// What decides an event's partition, a template such as
    /// `{{ .service }}`: events with the same key always go to the same
    /// partition, hence to one worker at a time. An event whose key renders
    /// empty (or misses its fields) goes to the partition of the empty key.
    #[schemars(extend("x-placeholder" = "{{ .service }}"))]
    key: Template,
    /// How many partitions (1 to 1024): the subject gets a last token
    /// `0` to `count - 1`. Every edge and every worker of a fleet must use
    /// the same count (the workers' `partitions.count`).
    count: u32,
}

/// A checked `partition` table.
#[derive(Debug, Clone)]
pub(super) struct Partitioner {
    key: Template,
    count: NonZeroU32,
}

impl PartitionConfig {
    /// Checks the count.
    pub(super) fn build(&self) -> Result<Partitioner, BuildError> {
        Ok(Partitioner {
            key: self.key.clone(),
            count: check_count(self.count, "partition.count")?,
        })
    }
}

impl Partitioner {
    /// The partition of `event`; a key with missing fields is reported.
    pub(super) fn index(&self, event: &Event, metrics: &ComponentMetrics) -> u32 {
        let key = self.key.render(event);
        if !key.missing.is_empty() {
            metrics.error(
                ErrorType::TemplateFailed,
                Stage::Processing,
                &format_args!(
                    "`partition.key` refers to missing field(s) {}; rendered them empty \
                     (the event goes to the partition of what remains)",
                    key.missing.join(", ")
                ),
            );
        }
        partition_of(key.text.as_bytes(), self.count)
    }

    /// `subject` with the partition of `event` as its last token.
    pub(super) fn subject(
        &self,
        subject: &str,
        event: &Event,
        metrics: &ComponentMetrics,
    ) -> String {
        format!("{subject}.{}", self.index(event, metrics))
    }
}
