//! Metric events: one sample of a number, carried as an ordinary event.
//!
//! howl has one event type, so `remap`, `filter`, `route` and templates
//! work on metrics unchanged. A metric event has one documented shape
//! (`sources/README.md`, "What a metric event looks like"):
//!
//! ```json
//! {
//!   "metric": {
//!     "name": "cpu_usage_percent",
//!     "kind": "gauge",
//!     "value": 91.5,
//!     "tags": { "host": "web-1" }
//!   },
//!   "timestamp": "2026-11-22T08:00:00Z",
//!   "source_type": "host_metrics"
//! }
//! ```
//!
//! Sources build samples as [`Metric`]s and turn them into events with
//! [`Metric::into_event`]; consumers (the `threshold` transform) read them
//! back with [`Sample::read`], which also accepts the shape as it arrives
//! from JSON (an integer value, an RFC 3339 timestamp string), so metric
//! events posted to an `http_server` source work too.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use vrl::value::{KeyString, ObjectMap, Value};

use super::{Event, fields};

/// The field holding the metric object.
pub const METRIC: &str = "metric";

/// How a sample's value behaves over time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    /// A value that goes up and down (CPU %, free bytes).
    Gauge,
    /// A value that only grows, except when its source restarts (bytes
    /// sent). Alert on its rate, not on its value.
    Counter,
}

impl MetricKind {
    /// `gauge` or `counter`, as in `.metric.kind`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Gauge => "gauge",
            Self::Counter => "counter",
        }
    }
}

/// One sample, as a source builds it.
#[derive(Debug, Clone, PartialEq)]
pub struct Metric {
    /// `.metric.name`.
    pub name: String,
    /// `.metric.kind`.
    pub kind: MetricKind,
    /// `.metric.value`.
    pub value: f64,
    /// `.metric.tags`: string labels, sorted by name.
    pub tags: BTreeMap<String, String>,
}

impl Metric {
    /// A gauge sample without tags.
    pub fn gauge(name: impl Into<String>, value: f64) -> Self {
        Self::new(name, MetricKind::Gauge, value)
    }

    /// A counter sample without tags.
    pub fn counter(name: impl Into<String>, value: f64) -> Self {
        Self::new(name, MetricKind::Counter, value)
    }

    /// A sample of the given kind without tags.
    pub fn new(name: impl Into<String>, kind: MetricKind, value: f64) -> Self {
        Self {
            name: name.into(),
            kind,
            value,
            tags: BTreeMap::new(),
        }
    }

    /// Adds (or replaces) a tag.
    pub fn tag(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.tags.insert(name.into(), value.into());
        self
    }

    /// The event for this sample, or `None` when the value is NaN: NaN means
    /// "no value" (an empty summary, Prometheus' staleness marker), and an
    /// event's numbers cannot hold it. Infinities are kept.
    pub fn into_event(self, timestamp: DateTime<Utc>, source_type: &'static str) -> Option<Event> {
        if self.value.is_nan() {
            return None;
        }
        let tags: ObjectMap = self
            .tags
            .into_iter()
            .map(|(name, value)| (KeyString::from(name), Value::from(value)))
            .collect();
        let mut metric = ObjectMap::new();
        metric.insert("name".into(), Value::from(self.name));
        metric.insert("kind".into(), Value::from(self.kind.as_str()));
        metric.insert("value".into(), Value::from_f64_or_zero(self.value));
        metric.insert("tags".into(), Value::Object(tags));
        let mut event = ObjectMap::new();
        event.insert(METRIC.into(), Value::Object(metric));
        event.insert(fields::TIMESTAMP.into(), Value::Timestamp(timestamp));
        event.insert(fields::SOURCE_TYPE.into(), Value::from(source_type));
        Some(Event::from_value(Value::Object(event)))
    }
}

/// A metric event as a consumer reads it, borrowing from the event.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample<'a> {
    /// `.metric.name`.
    pub name: &'a str,
    /// `.metric.value` (a float or an integer in the event).
    pub value: f64,
    /// `.metric.tags`, when present.
    pub tags: Option<&'a ObjectMap>,
    /// `.timestamp`, when present and readable (a timestamp, or an RFC 3339
    /// string as JSON input carries it).
    pub timestamp: Option<DateTime<Utc>>,
}

/// Why an event is not a readable metric sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NotASample {
    /// The event has no `.metric` object: it is not a metric at all.
    #[error("the event has no `.metric` object")]
    NotAMetric,
    /// `.metric.name` is missing or not a string.
    #[error("`.metric.name` is missing or not a string")]
    NoName,
    /// `.metric.value` is missing or not a number.
    #[error("`.metric.value` is missing or not a number")]
    NoValue,
}

impl<'a> Sample<'a> {
    /// Reads the documented shape from `event`.
    pub fn read(event: &'a Event) -> Result<Self, NotASample> {
        let metric = event
            .get_field(METRIC)
            .and_then(Value::as_object)
            .ok_or(NotASample::NotAMetric)?;
        let name = metric
            .get("name")
            .and_then(Value::to_str)
            .ok_or(NotASample::NoName)?;
        let value = match metric.get("value") {
            Some(Value::Float(value)) => value.into_inner(),
            Some(Value::Integer(value)) => *value as f64,
            _ => return Err(NotASample::NoValue),
        };
        let tags = metric.get("tags").and_then(Value::as_object);
        Ok(Self {
            name,
            value,
            tags,
            timestamp: event.get_field(fields::TIMESTAMP).and_then(timestamp),
        })
    }

    /// The value of tag `name`, as text.
    pub fn tag(&self, name: &str) -> Option<&'a str> {
        self.tags?.get(name)?.to_str()
    }
}

/// A timestamp value, or an RFC 3339 string.
pub fn timestamp(value: &Value) -> Option<DateTime<Utc>> {
    match value {
        Value::Timestamp(ts) => Some(*ts),
        other => other
            .to_str()
            .and_then(|text| DateTime::parse_from_rfc3339(text).ok())
            .map(|ts| ts.with_timezone(&Utc)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn a_metric_event_reads_back_as_the_sample_it_was() {
        let at = Utc.with_ymd_and_hms(2026, 11, 22, 8, 0, 0).unwrap();
        let event = Metric::gauge("cpu_usage_percent", 91.5)
            .tag("host", "web-1")
            .into_event(at, "host_metrics")
            .unwrap();
        let sample = Sample::read(&event).unwrap();
        assert_eq!(sample.name, "cpu_usage_percent");
        assert_eq!(sample.value, 91.5);
        assert_eq!(sample.tag("host"), Some("web-1"));
        assert_eq!(sample.timestamp, Some(at));
        let kind = vrl::path::parse_value_path("metric.kind").unwrap();
        assert_eq!(event.get(&kind), Some(&Value::from("gauge")));
    }

    #[test]
    fn nan_makes_no_event_but_infinity_does() {
        let now = Utc::now();
        assert!(Metric::gauge("x", f64::NAN).into_event(now, "t").is_none());
        let event = Metric::counter("x", f64::INFINITY)
            .into_event(now, "t")
            .unwrap();
        assert_eq!(Sample::read(&event).unwrap().value, f64::INFINITY);
    }

    #[test]
    fn json_shaped_samples_are_read_too() {
        let event = Event::from_value(vrl::value!({
            "metric": {"name": "mem", "value": 87, "tags": {"host": "db-1"}},
            "timestamp": "2026-11-22T08:00:00+01:00",
        }));
        let sample = Sample::read(&event).unwrap();
        assert_eq!(sample.value, 87.0);
        assert_eq!(
            sample.timestamp,
            Some(Utc.with_ymd_and_hms(2026, 11, 22, 7, 0, 0).unwrap())
        );
    }

    #[test]
    fn says_what_is_wrong_with_an_unreadable_sample() {
        let read = |value: Value| Sample::read(&Event::from_value(value)).map(|_| ());
        assert_eq!(
            read(vrl::value!({"message": "a log"})),
            Err(NotASample::NotAMetric)
        );
        assert_eq!(
            read(vrl::value!({"metric": {"value": 1}})),
            Err(NotASample::NoName)
        );
        assert_eq!(
            read(vrl::value!({"metric": {"name": "x", "value": "high"}})),
            Err(NotASample::NoValue)
        );
    }
}
