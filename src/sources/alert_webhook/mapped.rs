//! Alerts from any JSON sender, mapped with VRL (`mapping`): the program
//! sees one payload as `.` and leaves the alert in `.alert` (or several in
//! `.alerts`), in the envelope's own field names; this module checks what
//! it left and makes the same envelope as the built-in formats.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use vrl::compiler::Program;
use vrl::value::Value;

use super::{Alert, MAX_EVENTS_PER_REQUEST, envelope};
use crate::event::Event;
use crate::vrl_program::VrlRunner;

/// The events of one request: its JSON body is one payload (an object),
/// or an array of payloads, each handed to the mapping.
pub fn decode(
    program: &Arc<Program>,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<Vec<Event>, String> {
    let parsed: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("invalid JSON: {e}"))?;
    let payloads = match parsed {
        serde_json::Value::Array(payloads) => payloads,
        payload @ serde_json::Value::Object(_) => vec![payload],
        _ => return Err("the body is neither a JSON object nor an array of them".to_string()),
    };
    let mut runner = VrlRunner::new(Arc::clone(program));
    // The built-in formats never copy a notification per alert either.
    let mut events = Vec::new();
    for (index, payload) in payloads.into_iter().enumerate() {
        let at = |message: String| {
            if index == 0 {
                message
            } else {
                format!("payload {index}: {message}")
            }
        };
        if !payload.is_object() {
            return Err(at("not a JSON object".to_string()));
        }
        let raw = Value::from(payload);
        let mut mapped = raw.clone();
        runner
            .run(&mut mapped)
            .map_err(|e| at(format!("`mapping` failed: {e}")))?;
        let (alerts, several) = take_alerts(&mut mapped).map_err(at)?;
        if events.len() + alerts.len() > MAX_EVENTS_PER_REQUEST {
            return Err(format!(
                "more than {MAX_EVENTS_PER_REQUEST} alerts in one request"
            ));
        }
        let mut raw = Some(raw);
        for (number, alert) in alerts.into_iter().enumerate() {
            let (alert, own_raw) = read(alert).map_err(|e| at(format!("alert {number}: {e}")))?;
            // One alert keeps the payload; several keep what the mapping
            // gave each (`raw`), never a copy of the payload apiece: a
            // payload of N alerts would otherwise cost N² in memory.
            let raw = match own_raw {
                Some(own) => own,
                None if !several => raw.take().unwrap_or(Value::Null),
                None => Value::Null,
            };
            events.push(envelope(alert, raw, now));
        }
    }
    Ok(events)
}

/// The alerts the mapping left: `.alert`, or the objects of `.alerts`
/// (then `true`).
fn take_alerts(mapped: &mut Value) -> Result<(Vec<Value>, bool), String> {
    let Value::Object(fields) = mapped else {
        return Err("`mapping` must leave an object with `.alert` or `.alerts`".to_string());
    };
    match (fields.remove("alert"), fields.remove("alerts")) {
        (Some(alert @ Value::Object(_)), None) => Ok((vec![alert], false)),
        (None, Some(Value::Array(alerts))) => Ok((alerts, true)),
        (Some(_), Some(_)) => Err("`mapping` set both `.alert` and `.alerts`".to_string()),
        (Some(_), None) => Err("`mapping` left `.alert` that is not an object".to_string()),
        (None, Some(_)) => Err("`mapping` left `.alerts` that is not an array".to_string()),
        (None, None) => Err(
            "`mapping` left no `.alert` (an object) or `.alerts` (an array of them)".to_string(),
        ),
    }
}

/// Reads an alert in the envelope's field names, and its own `raw`, if
/// the mapping gave one; what is missing takes the same defaults as the
/// built-in formats, what has the wrong type is refused (a mapping that
/// writes a number where a time belongs is a bug to show, not to hide).
fn read(alert: Value) -> Result<(Alert, Option<Value>), String> {
    let Value::Object(mut fields) = alert else {
        return Err("not an object".to_string());
    };
    let mut text = |key: &str| -> Result<Option<String>, String> {
        match fields.remove(key) {
            None | Some(Value::Null) => Ok(None),
            Some(value) if value.is_bytes() => {
                Ok(value.to_str_lossy().map(|text| text.into_owned()))
            }
            Some(other) => Err(format!(
                "`.alert.{key}` must be a string, not {}",
                other.kind_str()
            )),
        }
    };
    let name = text("name")?.filter(|n| !n.is_empty()).ok_or_else(|| {
        "`.alert.name` is missing or empty; the mapping must name the alert".to_string()
    })?;
    let firing = match text("state")?.map(|s| s.to_ascii_lowercase()).as_deref() {
        None | Some("firing") => true,
        Some("resolved") => false,
        Some(other) => {
            return Err(format!(
                "`.alert.state` must be \"firing\" or \"resolved\", not {other:?}"
            ));
        }
    };
    let severity = text("severity")?;
    let summary = text("summary")?.filter(|s| !s.is_empty());
    let fingerprint = text("fingerprint")?.filter(|f| !f.is_empty());
    let source = text("source")?.unwrap_or_else(|| "generic".to_string());
    let mut extra = Vec::new();
    for key in ["generator_url", "silence_url", "dashboard_url", "panel_url"] {
        if let Some(url) = text(key)?.filter(|u| !u.is_empty()) {
            extra.push((key, url));
        }
    }
    let labels = string_map(fields.remove("labels"), "labels")?;
    let annotations = string_map(fields.remove("annotations"), "annotations")?;
    let starts_at = time(fields.remove("starts_at"), "starts_at")?;
    let ends_at = time(fields.remove("ends_at"), "ends_at")?;
    let values = fields
        .remove("values")
        .filter(|v| !matches!(v, Value::Null));
    let raw = fields.remove("raw");
    let alert = Alert {
        name,
        firing,
        severity,
        summary,
        labels,
        annotations,
        starts_at,
        ends_at,
        fingerprint,
        extra,
        values,
        source,
    };
    Ok((alert, raw))
}

/// `.alert.labels` or `.alert.annotations`: an object whose values become
/// text (strings as they are, others as JSON).
fn string_map(value: Option<Value>, key: &str) -> Result<BTreeMap<String, String>, String> {
    match value {
        None | Some(Value::Null) => Ok(BTreeMap::new()),
        Some(Value::Object(map)) => Ok(map
            .into_iter()
            .map(|(k, v)| {
                let v = match v.to_str_lossy() {
                    Some(text) => text.into_owned(),
                    None => serde_json::to_string(&v).unwrap_or_default(),
                };
                (k.to_string(), v)
            })
            .collect()),
        Some(other) => Err(format!(
            "`.alert.{key}` must be an object, not {}",
            other.kind_str()
        )),
    }
}

/// `.alert.starts_at` or `.alert.ends_at`: a timestamp, or RFC 3339 text.
fn time(value: Option<Value>, key: &str) -> Result<Option<DateTime<Utc>>, String> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Timestamp(at)) => Ok(Some(at)),
        Some(value) if value.is_bytes() => {
            let text = value.to_str_lossy().unwrap_or_default();
            DateTime::parse_from_rfc3339(&text)
                .map(|at| Some(at.with_timezone(&Utc)))
                .map_err(|e| format!("`.alert.{key}` is not an RFC 3339 time ({text:?}): {e}"))
        }
        Some(other) => Err(format!(
            "`.alert.{key}` must be a timestamp or RFC 3339 text, not {}",
            other.kind_str()
        )),
    }
}
