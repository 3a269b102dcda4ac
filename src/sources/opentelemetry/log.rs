//! One OTLP `LogRecord` → one event, with Vector's field names (its
//! `opentelemetry` source, legacy namespace), so remaps written for Vector
//! read the same fields; fields that are empty or zero are left out.

use chrono::{DateTime, Utc};
use vrl::value::{KeyString, ObjectMap, Value};

use super::proto::{AnyValue, ExportLogsServiceRequest, KeyValue, LogRecord, any_value};
use crate::event::{Event, fields};

/// How many records a request holds (checked before any is made an
/// event: see [`crate::sources::http_receiver::MAX_EVENTS_PER_REQUEST`]).
pub fn count(request: &ExportLogsServiceRequest) -> usize {
    request
        .resource_logs
        .iter()
        .flat_map(|r| &r.scope_logs)
        .map(|s| s.log_records.len())
        .sum()
}

/// What could not be kept as sent, counted over a request: the client is
/// told in the answer's partial success (a warning: the records are
/// accepted), so a misbehaving exporter is found without reading howl's
/// logs.
#[derive(Debug, Default, PartialEq)]
pub struct Oddities {
    /// Records whose `trace_id` or `span_id` had the wrong length (they
    /// are 16 and 8 bytes), kept without the id.
    pub bad_ids: usize,
    /// Values that were a floating-point NaN, kept as null.
    pub not_a_number: usize,
}

impl Oddities {
    /// The partial success's `error_message`, when there is anything to
    /// say.
    pub fn warning(&self) -> Option<String> {
        let mut parts = Vec::new();
        if self.bad_ids > 0 {
            parts.push(format!(
                "{} record(s) had a trace_id or span_id of the wrong length (16 and 8 bytes); \
                 they were accepted without it",
                self.bad_ids
            ));
        }
        if self.not_a_number > 0 {
            parts.push(format!(
                "{} value(s) were NaN; they were accepted as null",
                self.not_a_number
            ));
        }
        (!parts.is_empty()).then(|| parts.join("; "))
    }
}

/// Every record of a request, in order, and what could not be kept.
pub fn events(request: ExportLogsServiceRequest, now: DateTime<Utc>) -> (Vec<Event>, Oddities) {
    let mut odd = Oddities::default();
    let mut events = Vec::new();
    for resource_logs in request.resource_logs {
        let resources = resource_logs
            .resource
            .map(|r| object(r.attributes, &mut odd))
            .filter(|r| !r.is_empty())
            .map(Value::Object);
        for scope_logs in resource_logs.scope_logs {
            let scope = scope_logs.scope.map(|scope| {
                let mut out = ObjectMap::new();
                put_text(&mut out, "name", scope.name);
                put_text(&mut out, "version", scope.version);
                let attributes = object(scope.attributes, &mut odd);
                if !attributes.is_empty() {
                    out.insert("attributes".into(), Value::Object(attributes));
                }
                if scope.dropped_attributes_count != 0 {
                    out.insert(
                        "dropped_attributes_count".into(),
                        Value::from(i64::from(scope.dropped_attributes_count)),
                    );
                }
                out
            });
            let scope = scope.filter(|s| !s.is_empty()).map(Value::Object);
            for record in scope_logs.log_records {
                let mut event = event(record, now, &mut odd);
                if let Some(resources) = &resources {
                    event.insert_field("resources", resources.clone());
                }
                if let Some(scope) = &scope {
                    event.insert_field("scope", scope.clone());
                }
                events.push(event);
            }
        }
    }
    (events, odd)
}

fn event(record: LogRecord, now: DateTime<Utc>, odd: &mut Oddities) -> Event {
    let mut out = ObjectMap::new();
    if let Some(body) = record.body {
        out.insert(fields::MESSAGE.into(), value(body, odd));
    }
    let observed = time(record.observed_time_unix_nano).unwrap_or(now);
    let at = time(record.time_unix_nano).unwrap_or(observed);
    out.insert(fields::TIMESTAMP.into(), Value::Timestamp(at));
    out.insert("observed_timestamp".into(), Value::Timestamp(observed));
    let level = level(record.severity_number).or_else(|| level_from_text(&record.severity_text));
    if let Some(level) = level {
        out.insert("level".into(), Value::from(level));
    }
    put_text(&mut out, "severity_text", record.severity_text);
    if record.severity_number != 0 {
        out.insert(
            "severity_number".into(),
            Value::from(i64::from(record.severity_number)),
        );
    }
    let attributes = object(record.attributes, odd);
    if !attributes.is_empty() {
        out.insert("attributes".into(), Value::Object(attributes));
    }
    let trace_id = id(&record.trace_id, 16);
    let span_id = id(&record.span_id, 8);
    if trace_id.is_err() || span_id.is_err() {
        odd.bad_ids += 1;
    }
    if let Ok(Some(id)) = trace_id {
        out.insert("trace_id".into(), Value::from(id));
    }
    if let Ok(Some(id)) = span_id {
        out.insert("span_id".into(), Value::from(id));
    }
    // The low 8 bits are the W3C trace flags; the rest is reserved.
    let flags = record.flags & 0xff;
    if flags != 0 {
        out.insert("flags".into(), Value::from(i64::from(flags)));
    }
    if record.dropped_attributes_count != 0 {
        out.insert(
            "dropped_attributes_count".into(),
            Value::from(i64::from(record.dropped_attributes_count)),
        );
    }
    put_text(&mut out, "event_name", record.event_name);
    out.insert(fields::SOURCE_TYPE.into(), Value::from("opentelemetry"));
    Event::from_value(Value::Object(out))
}

/// howl's level for a `SeverityNumber`: TRACE and DEBUG (1–8) are
/// `debug`, then `info` (9–12), `warn` (13–16), `error` (17–20), `fatal`
/// (21–24); 0 (unspecified) and anything else none.
pub fn level(severity_number: i32) -> Option<&'static str> {
    Some(match severity_number {
        1..=8 => "debug",
        9..=12 => "info",
        13..=16 => "warn",
        17..=20 => "error",
        21..=24 => "fatal",
        _ => return None,
    })
}

/// howl's level for a `severity_text` when the number is unspecified:
/// the usual names, in any case.
fn level_from_text(text: &str) -> Option<&'static str> {
    Some(match text.to_ascii_lowercase().as_str() {
        "trace" | "debug" => "debug",
        "info" | "information" | "notice" => "info",
        "warn" | "warning" => "warn",
        "error" | "err" => "error",
        "fatal" | "critical" | "crit" | "emergency" | "alert" | "panic" => "fatal",
        _ => return None,
    })
}

/// Nanoseconds since the epoch; 0 (unknown) and times past 2262 are none.
fn time(nanos: u64) -> Option<DateTime<Utc>> {
    let nanos = i64::try_from(nanos).ok().filter(|n| *n > 0)?;
    Some(DateTime::from_timestamp_nanos(nanos))
}

/// A trace (16 bytes) or span (8 bytes) id as lower-case hex; none when
/// empty or all zeros (OTLP's "no id"); an error for another length.
fn id(bytes: &[u8], len: usize) -> Result<Option<String>, ()> {
    if bytes.is_empty() {
        return Ok(None);
    }
    if bytes.len() != len {
        return Err(());
    }
    if bytes.iter().all(|b| *b == 0) {
        return Ok(None);
    }
    Ok(Some(bytes.iter().map(|b| format!("{b:02x}")).collect()))
}

fn put_text(out: &mut ObjectMap, key: &str, text: String) {
    if !text.is_empty() {
        out.insert(KeyString::from(key), Value::from(text));
    }
}

/// Attributes as an object; a repeated key keeps its last value.
fn object(attributes: Vec<KeyValue>, odd: &mut Oddities) -> ObjectMap {
    attributes
        .into_iter()
        .map(|kv| {
            let value = kv.value.map_or(Value::Null, |any| value(any, odd));
            (KeyString::from(kv.key), value)
        })
        .collect()
}

/// An `AnyValue` as an event value: strings and bytes are bytes, maps are
/// objects, and an empty value or a NaN is null.
pub fn value(any: AnyValue, odd: &mut Oddities) -> Value {
    use any_value::Value as V;
    match any.value {
        None => Value::Null,
        Some(V::StringValue(s)) => Value::from(s),
        Some(V::BoolValue(b)) => Value::Boolean(b),
        Some(V::IntValue(i)) => Value::Integer(i),
        Some(V::DoubleValue(d)) => match vrl::compiler::prelude::NotNan::new(d) {
            Ok(d) => Value::Float(d),
            Err(_) => {
                odd.not_a_number += 1;
                Value::Null
            }
        },
        Some(V::ArrayValue(array)) => Value::Array(
            array
                .values
                .into_iter()
                .map(|any| value(any, odd))
                .collect(),
        ),
        Some(V::KvlistValue(list)) => Value::Object(object(list.values, odd)),
        Some(V::BytesValue(bytes)) => Value::Bytes(bytes.into()),
    }
}
