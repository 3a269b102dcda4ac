//! The one event type that flows through a topology.
//!
//! An event is a VRL [`Value`] object (so `remap`, `filter`, `route` and
//! templates all work on it directly, without conversion) plus metadata that
//! travels beside it but is not part of the data: which source produced it and
//! whom to tell when it has been delivered (see [`finalization`]).
//!
//! Log events carry at least `message`, `timestamp` and `source_type`, and
//! `host` where known. Metric events use the same type with the documented
//! `.metric` shape (see [`metric`] and `sources/README.md`).

pub mod acks;
pub mod finalization;
pub mod metric;

use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use vrl::path::OwnedValuePath;
use vrl::value::{KeyString, ObjectMap, Value};

pub use finalization::{
    BatchNotifier, BatchStatus, BatchStatusReceiver, EventFinalizers, EventStatus,
};

/// Field names every log source fills in; kept in one place so sources agree.
pub mod fields {
    /// The raw text of a log line.
    pub const MESSAGE: &str = "message";
    /// When howl received (or the source stamped) the event.
    pub const TIMESTAMP: &str = "timestamp";
    /// The `type` of the source that produced the event (`stdin`, `file`, ...).
    pub const SOURCE_TYPE: &str = "source_type";
    /// The host the event came from, where known.
    pub const HOST: &str = "host";
}

/// Data about an event that is not part of the event itself.
#[derive(Clone, Debug, Default)]
pub struct EventMetadata {
    source_id: Option<Arc<str>>,
    finalizers: EventFinalizers,
}

impl EventMetadata {
    /// The id of the source component that created the event, if any.
    pub fn source_id(&self) -> Option<&str> {
        self.source_id.as_deref()
    }

    /// Who waits for this event's delivery status.
    pub fn finalizers_mut(&mut self) -> &mut EventFinalizers {
        &mut self.finalizers
    }
}

/// One log line, metric sample or alert moving through the pipeline.
#[derive(Clone, Debug)]
pub struct Event {
    value: Value,
    metadata: EventMetadata,
}

impl Event {
    /// Wraps a value. A non-object value becomes `{ "message": value }`, so
    /// every event is an object and field paths always make sense.
    pub fn from_value(value: Value) -> Self {
        let value = match value {
            Value::Object(_) => value,
            other => {
                let mut map = ObjectMap::new();
                map.insert(KeyString::from(fields::MESSAGE), other);
                Value::Object(map)
            }
        };
        Self {
            value,
            metadata: EventMetadata::default(),
        }
    }

    /// A log event with the standard fields set.
    pub fn log(message: Bytes, timestamp: DateTime<Utc>, source_type: &'static str) -> Self {
        let mut map = ObjectMap::new();
        map.insert(KeyString::from(fields::MESSAGE), Value::Bytes(message));
        map.insert(
            KeyString::from(fields::TIMESTAMP),
            Value::Timestamp(timestamp),
        );
        map.insert(
            KeyString::from(fields::SOURCE_TYPE),
            Value::Bytes(Bytes::from_static(source_type.as_bytes())),
        );
        Self {
            value: Value::Object(map),
            metadata: EventMetadata::default(),
        }
    }

    /// Records which source produced the event.
    pub fn with_source_id(mut self, id: Arc<str>) -> Self {
        self.metadata.source_id = Some(id);
        self
    }

    /// Attaches delivery finalizers (see [`finalization`]).
    pub fn with_finalizers(mut self, finalizers: EventFinalizers) -> Self {
        self.metadata.finalizers = finalizers;
        self
    }

    /// The event's data.
    pub fn value(&self) -> &Value {
        &self.value
    }

    /// The event's data, for in-place edits (VRL runs on this).
    pub fn value_mut(&mut self) -> &mut Value {
        &mut self.value
    }

    /// The event's metadata.
    pub fn metadata(&self) -> &EventMetadata {
        &self.metadata
    }

    /// The event's metadata, for finalization.
    pub fn metadata_mut(&mut self) -> &mut EventMetadata {
        &mut self.metadata
    }

    /// Looks up a field by parsed path.
    pub fn get(&self, path: &OwnedValuePath) -> Option<&Value> {
        self.value.get(path)
    }

    /// Looks up a top-level field by name (cheaper than a path for hot fields).
    pub fn get_field(&self, name: &str) -> Option<&Value> {
        self.value.as_object().and_then(|map| map.get(name))
    }

    /// Sets a top-level field.
    pub fn insert_field(&mut self, name: &str, value: impl Into<Value>) {
        if let Some(map) = self.value.as_object_mut() {
            map.insert(KeyString::from(name), value.into());
        }
    }

    /// Sets a field by path, creating intermediate objects.
    pub fn insert(&mut self, path: &OwnedValuePath, value: impl Into<Value>) {
        self.value.insert(path, value.into());
    }

    /// About how many bytes the event takes in memory: its texts and keys,
    /// and the fixed size of the event, of each value, key and map node (a
    /// small log line's structure outweighs its text). A close estimate,
    /// not an exact count: buffers use it for `max_bytes`.
    pub fn estimated_bytes(&self) -> usize {
        use std::mem::size_of;
        /// Entries a B-tree node holds (std's `B` is 6: 2B - 1).
        const NODE_ENTRIES: usize = 11;
        /// A node: its entries, plus parent pointer, lengths and padding.
        const NODE: usize = NODE_ENTRIES * (size_of::<KeyString>() + size_of::<Value>()) + 16;
        /// What the allocator adds to a small heap text, on average.
        const HEAP_SLACK: usize = 8;
        fn size(value: &Value) -> usize {
            match value {
                Value::Bytes(bytes) => bytes.len(),
                Value::String(text) => text.len() + HEAP_SLACK,
                Value::Regex(regex) => regex.as_str().len() + HEAP_SLACK,
                Value::Array(items) => {
                    items.len() * size_of::<Value>() + items.iter().map(size).sum::<usize>()
                }
                Value::Object(map) => {
                    map.len().div_ceil(NODE_ENTRIES) * NODE
                        + map
                            .iter()
                            .map(|(key, value)| key.len() + HEAP_SLACK + size(value))
                            .sum::<usize>()
                }
                _ => 0,
            }
        }
        size_of::<Event>() + size(&self.value)
    }

    /// Reports the delivery outcome of this copy (sinks call this).
    pub fn finalize(&mut self, status: EventStatus) {
        self.metadata.finalizers.update_status(status);
    }
}

/// Marks every event of a batch with the same status (sinks call this once
/// per batch they delivered or gave up on).
pub fn finalize_all(events: &mut [Event], status: EventStatus) {
    for event in events {
        event.finalize(status);
    }
}

/// Makes a batch report its fate: attaches one new notifier to every event
/// and returns what will receive the batch's status once every copy of
/// every event is finalized (sources that wait for delivery call this once
/// per batch they send).
pub fn notify_batch(events: &mut [Event]) -> BatchStatusReceiver {
    let (notifier, status) = BatchNotifier::new_with_receiver();
    for event in events {
        event.metadata.finalizers = EventFinalizers::new(Arc::clone(&notifier));
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_object_values_are_wrapped_as_message() {
        let event = Event::from_value(Value::from("hello"));
        assert_eq!(
            event
                .get_field("message")
                .and_then(|v| v.to_str_lossy())
                .as_deref(),
            Some("hello")
        );
    }

    #[test]
    fn log_events_carry_the_standard_fields() {
        let event = Event::log(Bytes::from_static(b"line"), Utc::now(), "stdin");
        assert!(event.get_field(fields::TIMESTAMP).is_some());
        assert_eq!(
            event
                .get_field(fields::SOURCE_TYPE)
                .and_then(|v| v.to_str_lossy())
                .as_deref(),
            Some("stdin")
        );
    }
}
