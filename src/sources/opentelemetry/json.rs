//! OTLP/JSON → the protobuf messages of [`super::proto`], so both encodings
//! share one mapping to events. OTLP/JSON is proto3's JSON mapping with
//! OTLP's changes: lowerCamelCase keys only, `traceId`/`spanId` as hex
//! (case-insensitive), 64-bit integers as decimal strings (numbers are
//! accepted too), enums as integers, `bytesValue` as base64. Unknown keys
//! are ignored, as the spec requires; a value of the wrong type is an
//! error (400), and so is a body whose top level is snake_case (a
//! hand-rolled sender's mistake that would otherwise become no records).

use base64::Engine;
use serde_json::{Map, Value};

use super::proto::{
    AnyValue, ArrayValue, ExportLogsServiceRequest, InstrumentationScope, KeyValue, KeyValueList,
    LogRecord, Resource, ResourceLogs, ScopeLogs, any_value,
};

type Object = Map<String, Value>;
type Result<T> = std::result::Result<T, String>;

/// Reads an `ExportLogsServiceRequest` in OTLP/JSON.
pub fn request(body: &[u8]) -> Result<ExportLogsServiceRequest> {
    let parsed: Value = serde_json::from_slice(body).map_err(|e| format!("invalid JSON: {e}"))?;
    let Value::Object(top) = parsed else {
        return Err("the body is not a JSON object".to_string());
    };
    if top.contains_key("resource_logs") && !top.contains_key("resourceLogs") {
        return Err(
            "OTLP/JSON keys are lowerCamelCase (`resourceLogs`, not `resource_logs`)".to_string(),
        );
    }
    Ok(ExportLogsServiceRequest {
        resource_logs: list(&top, "resourceLogs", resource_logs)?,
    })
}

fn resource_logs(o: &Object) -> Result<ResourceLogs> {
    Ok(ResourceLogs {
        resource: optional(o, "resource", |r| {
            Ok(Resource {
                attributes: list(r, "attributes", key_value)?,
                dropped_attributes_count: uint(r, "droppedAttributesCount")? as u32,
            })
        })?,
        scope_logs: list(o, "scopeLogs", scope_logs)?,
        schema_url: string(o, "schemaUrl")?,
    })
}

fn scope_logs(o: &Object) -> Result<ScopeLogs> {
    Ok(ScopeLogs {
        scope: optional(o, "scope", |s| {
            Ok(InstrumentationScope {
                name: string(s, "name")?,
                version: string(s, "version")?,
                attributes: list(s, "attributes", key_value)?,
                dropped_attributes_count: uint(s, "droppedAttributesCount")? as u32,
            })
        })?,
        log_records: list(o, "logRecords", log_record)?,
        schema_url: string(o, "schemaUrl")?,
    })
}

fn log_record(o: &Object) -> Result<LogRecord> {
    Ok(LogRecord {
        time_unix_nano: uint(o, "timeUnixNano")?,
        observed_time_unix_nano: uint(o, "observedTimeUnixNano")?,
        severity_number: int(o, "severityNumber")? as i32,
        severity_text: string(o, "severityText")?,
        body: optional(o, "body", any_value)?,
        attributes: list(o, "attributes", key_value)?,
        dropped_attributes_count: uint(o, "droppedAttributesCount")? as u32,
        flags: uint(o, "flags")? as u32,
        trace_id: hex(o, "traceId")?,
        span_id: hex(o, "spanId")?,
        event_name: string(o, "eventName")?,
    })
}

fn key_value(o: &Object) -> Result<KeyValue> {
    Ok(KeyValue {
        key: string(o, "key")?,
        value: optional(o, "value", any_value)?,
    })
}

fn any_value(o: &Object) -> Result<AnyValue> {
    use any_value::Value as V;
    // proto3 JSON writes one key of the oneof; an empty `{}` is an empty
    // value (some exporters send it).
    let value = if let Some(v) = present(o, "stringValue") {
        Some(V::StringValue(as_str(v, "stringValue")?.to_string()))
    } else if let Some(v) = present(o, "boolValue") {
        Some(V::BoolValue(
            v.as_bool().ok_or("`boolValue` is not a boolean")?,
        ))
    } else if present(o, "intValue").is_some() {
        Some(V::IntValue(int(o, "intValue")?))
    } else if let Some(v) = present(o, "doubleValue") {
        Some(V::DoubleValue(double(v)?))
    } else if present(o, "arrayValue").is_some() {
        let array = optional(o, "arrayValue", |a| {
            Ok(ArrayValue {
                values: list(a, "values", any_value)?,
            })
        })?;
        array.map(V::ArrayValue)
    } else if present(o, "kvlistValue").is_some() {
        let kvlist = optional(o, "kvlistValue", |a| {
            Ok(KeyValueList {
                values: list(a, "values", key_value)?,
            })
        })?;
        kvlist.map(V::KvlistValue)
    } else if let Some(v) = present(o, "bytesValue") {
        let text = as_str(v, "bytesValue")?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text)
            .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(text))
            .map_err(|_| "`bytesValue` is not base64".to_string())?;
        Some(V::BytesValue(bytes))
    } else {
        None
    };
    Ok(AnyValue { value })
}

/// A key's value, unless absent or `null` (proto3 JSON: the default).
fn present<'a>(o: &'a Object, key: &str) -> Option<&'a Value> {
    o.get(key).filter(|v| !v.is_null())
}

fn as_str<'a>(v: &'a Value, key: &str) -> Result<&'a str> {
    v.as_str().ok_or_else(|| format!("`{key}` is not a string"))
}

fn string(o: &Object, key: &str) -> Result<String> {
    present(o, key).map_or(Ok(String::new()), |v| as_str(v, key).map(str::to_string))
}

fn optional<T>(o: &Object, key: &str, read: impl Fn(&Object) -> Result<T>) -> Result<Option<T>> {
    match present(o, key) {
        None => Ok(None),
        Some(Value::Object(inner)) => read(inner).map(Some),
        Some(_) => Err(format!("`{key}` is not an object")),
    }
}

fn list<T>(o: &Object, key: &str, read: impl Fn(&Object) -> Result<T>) -> Result<Vec<T>> {
    match present(o, key) {
        None => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| match item {
                Value::Object(inner) => read(inner),
                _ => Err(format!("an element of `{key}` is not an object")),
            })
            .collect(),
        Some(_) => Err(format!("`{key}` is not an array")),
    }
}

/// A 64-bit integer: a decimal string (OTLP's rule) or a JSON number.
fn int(o: &Object, key: &str) -> Result<i64> {
    match present(o, key) {
        None => Ok(0),
        Some(Value::String(s)) => s
            .trim()
            .parse()
            .map_err(|_| format!("`{key}` is not an integer: {s:?}")),
        Some(Value::Number(n)) => n
            .as_i64()
            .ok_or_else(|| format!("`{key}` is not a 64-bit integer: {n}")),
        Some(_) => Err(format!("`{key}` is not an integer")),
    }
}

/// An unsigned 64-bit integer (times, counts, flags).
fn uint(o: &Object, key: &str) -> Result<u64> {
    match present(o, key) {
        None => Ok(0),
        Some(Value::String(s)) => s
            .trim()
            .parse()
            .map_err(|_| format!("`{key}` is not an unsigned integer: {s:?}")),
        Some(Value::Number(n)) => n
            .as_u64()
            .ok_or_else(|| format!("`{key}` is not an unsigned integer: {n}")),
        Some(_) => Err(format!("`{key}` is not an integer")),
    }
}

/// A double: a number, or proto3's `"NaN"`, `"Infinity"`, `"-Infinity"`
/// (and a number written as a string).
fn double(v: &Value) -> Result<f64> {
    match v {
        Value::Number(n) => n
            .as_f64()
            .ok_or_else(|| "`doubleValue` is not a number".into()),
        Value::String(s) => match s.as_str() {
            "NaN" => Ok(f64::NAN),
            "Infinity" => Ok(f64::INFINITY),
            "-Infinity" => Ok(f64::NEG_INFINITY),
            other => other
                .parse()
                .map_err(|_| format!("`doubleValue` is not a number: {other:?}")),
        },
        _ => Err("`doubleValue` is not a number".to_string()),
    }
}

/// `traceId`/`spanId`: hex, any case; empty means none.
fn hex(o: &Object, key: &str) -> Result<Vec<u8>> {
    let text = string(o, key)?;
    if text.len() % 2 != 0 {
        return Err(format!("`{key}` is not hex: {text:?}"));
    }
    (0..text.len())
        .step_by(2)
        .map(|i| {
            text.get(i..i + 2)
                .filter(|pair| pair.bytes().all(|b| b.is_ascii_hexdigit()))
                .and_then(|pair| u8::from_str_radix(pair, 16).ok())
                .ok_or_else(|| format!("`{key}` is not hex: {text:?}"))
        })
        .collect()
}
