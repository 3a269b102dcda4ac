//! `alert_webhook`: alerts other systems raise (Alertmanager, Grafana,
//! SigNoz) come in over HTTP and leave as one event per alert, in one
//! envelope, so they go through the same `dedupe`, `throttle`,
//! `llm_suppress` and `route` steps as howl's own and reach the chat sinks,
//! which edit the message when the alert resolves.
//!
//! The envelope (documented on the component page):
//!
//! ```text
//! .alert  {name, state, severity, summary, key, labels, annotations,
//!          starts_at, ends_at, fingerprint, generator_url, source, ...}
//! .raw    the notification's own fields, with this alert's original object
//!         under `.raw.alert` (not every alert of the request: a request
//!         of a thousand alerts would otherwise be copied a thousand times)
//! ```
//!
//! Parsing is tolerant, as the senders differ and change: unknown keys are
//! ignored, `version` may be `"4"` (Alertmanager, SigNoz), `"1"` (Grafana)
//! or missing, times take any offset, and Go's zero time (`0001-01-01`,
//! "not ended") means no end. The answers are [`super::http_receiver`]'s:
//! 200 only once the alerts are delivered, 503 otherwise, so Alertmanager
//! (which retries 5xx) sends them again.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::sync::Arc;

use chrono::{DateTime, Datelike, Utc};
use schemars::JsonSchema;
use serde::Deserialize;
use toml::Spanned;
use vrl::value::{KeyString, ObjectMap, Value};

use super::http_receiver::{
    AuthConfig, Decoder, JsonAnswers, Listening, MAX_EVENTS_PER_REQUEST, Protocol, Receiver,
    check_literal_path,
};
use crate::components::BuildContext;
use crate::components::source::{Source, SourceConfig};
use crate::diagnostic::BuildError;
use crate::event::{Event, fields};
use crate::http::server::ConnectionsConfig;
use crate::options::{Seconds, TlsConfig};
use crate::vrl_program::{VrlOrigin, VrlSource, compile};

/// Options of the `alert_webhook` source.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AlertWebhookConfig {
    /// The address and port to listen on, e.g. `127.0.0.1:9095`.
    #[schemars(extend("x-placeholder" = "127.0.0.1:9095"))]
    address: SocketAddr,
    /// The URL path that accepts notifications (POST or PUT); other paths
    /// answer 404. It is literal: it starts with `/` and has no `:param`,
    /// `*` or `{...}`.
    #[serde(default = "default_path")]
    path: String,
    /// The largest notification accepted, in bytes; a larger one is
    /// refused with 413 (Alertmanager does not retry a 4xx: keep it above
    /// what your largest alert group sends).
    #[serde(default = "default_max_body_bytes")]
    max_body_bytes: NonZeroUsize,
    /// Require credentials: a bearer token (Alertmanager's
    /// `authorization`), or a user and password (its `basic_auth`).
    auth: Option<AuthConfig>,
    /// How long a notification waits for its alerts to be delivered before
    /// it is answered 503, which makes Alertmanager send it again; the
    /// alerts may still be delivered afterwards, so the retry may repeat
    /// them (a `dedupe` on the alert's key, state and start drops the
    /// repeats).
    #[serde(default = "default_ack_timeout")]
    ack_timeout_secs: Seconds,
    /// Limits on connections, against slow and abusive clients.
    #[serde(default)]
    connections: ConnectionsConfig,
    /// Serve HTTPS with this certificate and key (PEM files), read when
    /// howl starts; unset: plain HTTP.
    tls: Option<TlsConfig>,
    /// For any other sender: a VRL program that maps one JSON payload
    /// (`.`) to an alert in `.alert` (or several in `.alerts`), in the
    /// envelope's field names; `.alert.name` is required. With it, the
    /// built-in formats are not read. A body that is an array is one
    /// payload per element.
    #[schemars(with = "Option<VrlSource>")]
    mapping: Option<Spanned<String>>,
}

fn default_path() -> String {
    "/".to_string()
}

fn default_max_body_bytes() -> NonZeroUsize {
    const FOUR_MIB: NonZeroUsize = NonZeroUsize::new(4 * 1024 * 1024).unwrap();
    FOUR_MIB
}

fn default_ack_timeout() -> Seconds {
    Seconds::from_secs(30)
}

impl SourceConfig for AlertWebhookConfig {
    fn build(&self, cx: &BuildContext) -> Result<Box<dyn Source>, BuildError> {
        check_literal_path(&self.path)?;
        let decoder: Decoder = match &self.mapping {
            Some(mapping) => {
                let program = Arc::new(compile(
                    mapping.get_ref(),
                    VrlOrigin::Inline(mapping.span()),
                    &cx.file,
                    "mapping",
                )?);
                Arc::new(move |body, _headers| {
                    Ok(mapped::decode(&program, &body, Utc::now())?.into())
                })
            }
            None => Arc::new(|body, _headers| Ok(decode(&body, Utc::now())?.into())),
        };
        Ok(Box::new(Receiver {
            address: self.address,
            path: self.path.clone(),
            methods: axum::routing::MethodFilter::POST.or(axum::routing::MethodFilter::PUT),
            listening: Listening::new(
                self.max_body_bytes,
                self.auth.as_ref(),
                &self.ack_timeout_secs,
                &self.connections,
                self.tls.as_ref(),
                cx,
                "",
            )?,
            decoder,
            answers: Arc::new(JsonAnswers),
            protocol: Protocol::Http1,
        }))
    }
}

type Json = serde_json::Map<String, serde_json::Value>;

/// One event per alert of a notification, or why it is not one.
fn decode(body: &[u8], now: DateTime<Utc>) -> Result<Vec<Event>, String> {
    let parsed: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("invalid JSON: {e}"))?;
    let serde_json::Value::Object(mut notification) = parsed else {
        return Err("the body is not a JSON object".to_string());
    };
    let Some(serde_json::Value::Array(alerts)) = notification.remove("alerts") else {
        return Err(
            "no `alerts` array: not an Alertmanager, Grafana or SigNoz notification".to_string(),
        );
    };
    if alerts.len() > MAX_EVENTS_PER_REQUEST {
        return Err(format!(
            "more than {MAX_EVENTS_PER_REQUEST} alerts in one notification"
        ));
    }
    let source = if notification.contains_key("orgId")
        || notification.get("version").and_then(|v| v.as_str()) == Some("1")
    {
        "grafana"
    } else {
        "alertmanager"
    };
    let group = Group {
        receiver: text(&notification, "receiver"),
        group_key: text(&notification, "groupKey"),
        external_url: text(&notification, "externalURL"),
        group_status: text(&notification, "status"),
    };
    // The notification's own fields, converted once: each alert's `.raw`
    // is a copy of them plus the alert.
    let shared: ObjectMap = notification
        .into_iter()
        .map(|(k, v)| (KeyString::from(k), Value::from(v)))
        .collect();
    let mut events = Vec::with_capacity(alerts.len());
    for (index, alert) in alerts.into_iter().enumerate() {
        let serde_json::Value::Object(alert) = alert else {
            return Err(format!("alert {index} is not a JSON object"));
        };
        let read = from_notification(&alert, source, &group);
        let mut raw = shared.clone();
        raw.insert(
            KeyString::from("alert"),
            Value::from(serde_json::Value::Object(alert)),
        );
        events.push(envelope(read, Value::Object(raw), now));
    }
    Ok(events)
}

/// What every alert of a notification shares.
struct Group {
    receiver: Option<String>,
    group_key: Option<String>,
    external_url: Option<String>,
    group_status: Option<String>,
}

/// One alert, read from whatever sent it: what the envelope is made of.
struct Alert {
    name: String,
    firing: bool,
    severity: Option<String>,
    /// The summary, when the sender gave one (else the name).
    summary: Option<String>,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
    starts_at: Option<DateTime<Utc>>,
    ends_at: Option<DateTime<Utc>>,
    fingerprint: Option<String>,
    /// More text fields of `.alert` (links, the notification's receiver),
    /// as `(envelope name, value)`, only when not empty.
    extra: Vec<(&'static str, String)>,
    /// Grafana's `values`.
    values: Option<Value>,
    source: String,
}

/// An alert of an Alertmanager (or SigNoz, or Grafana) notification.
fn from_notification(alert: &Json, source: &'static str, group: &Group) -> Alert {
    let labels = strings(alert.get("labels"));
    let annotations = strings(alert.get("annotations"));
    let name = labels
        .get("alertname")
        .cloned()
        .unwrap_or_else(|| "alert".to_string());
    let state = text(alert, "status").or_else(|| group.group_status.clone());
    let summary = ["summary", "description", "message", "title"]
        .iter()
        .find_map(|key| annotations.get(*key).filter(|v| !v.is_empty()))
        .cloned();
    let mut extra = Vec::new();
    for (from, to) in [
        ("generatorURL", "generator_url"),
        ("silenceURL", "silence_url"),
        ("dashboardURL", "dashboard_url"),
        ("panelURL", "panel_url"),
    ] {
        if let Some(url) = text(alert, from).filter(|u| !u.is_empty()) {
            extra.push((to, url));
        }
    }
    for (value, to) in [
        (&group.receiver, "receiver"),
        (&group.group_key, "group_key"),
        (&group.external_url, "external_url"),
    ] {
        if let Some(value) = value {
            extra.push((to, value.clone()));
        }
    }
    Alert {
        name,
        firing: !matches!(state.as_deref(), Some("resolved" | "ok")),
        severity: labels.get("severity").cloned(),
        summary,
        starts_at: time(alert, "startsAt"),
        ends_at: time(alert, "endsAt"),
        fingerprint: text(alert, "fingerprint").filter(|f| !f.is_empty()),
        extra,
        values: alert
            .get("values")
            .filter(|v| v.is_object())
            .map(|values| Value::from(values.clone())),
        source: source.to_string(),
        labels,
        annotations,
    }
}

/// The event of one alert: the envelope, and `raw` as `.raw`.
fn envelope(alert: Alert, raw: Value, now: DateTime<Utc>) -> Event {
    let summary = alert.summary.unwrap_or_else(|| alert.name.clone());
    let key = format!(
        "{}/{}",
        alert.name,
        alert
            .fingerprint
            .clone()
            .unwrap_or_else(|| label_hash(&alert.labels))
    );
    let state = if alert.firing { "firing" } else { "resolved" };
    let mut out = ObjectMap::new();
    let mut put = |k: &str, v: Value| {
        out.insert(KeyString::from(k), v);
    };
    put("name", Value::from(alert.name.as_str()));
    put("state", Value::from(state));
    if let Some(severity) = &alert.severity {
        put("severity", Value::from(severity.as_str()));
    }
    put("summary", Value::from(summary.as_str()));
    put("key", Value::from(key));
    put("labels", string_map(&alert.labels));
    put("annotations", string_map(&alert.annotations));
    if let Some(at) = alert.starts_at {
        put("starts_at", Value::Timestamp(at));
    }
    if let Some(at) = alert.ends_at {
        put("ends_at", Value::Timestamp(at));
    }
    if let Some(fingerprint) = alert.fingerprint {
        put("fingerprint", Value::from(fingerprint));
    }
    for (to, value) in alert.extra {
        put(to, Value::from(value));
    }
    if let Some(values) = alert.values {
        put("values", values);
    }
    put("source", Value::from(alert.source));

    let at = if alert.firing {
        alert.starts_at
    } else {
        alert.ends_at.or(alert.starts_at)
    }
    .unwrap_or(now);
    let mut event = Event::from_value(Value::Object(ObjectMap::new()));
    event.insert_field("alert", Value::Object(out));
    event.insert_field("raw", raw);
    event.insert_field(fields::MESSAGE, summary);
    event.insert_field(fields::TIMESTAMP, at);
    event.insert_field(fields::SOURCE_TYPE, "alert_webhook");
    if let Some(host) = alert
        .labels
        .get("host")
        .or_else(|| alert.labels.get("instance"))
    {
        event.insert_field(fields::HOST, host.as_str());
    }
    event
}

fn text(object: &Json, key: &str) -> Option<String> {
    object.get(key)?.as_str().map(str::to_string)
}

/// A string→string map (labels, annotations); other values are written
/// as JSON text rather than dropped.
fn strings(value: Option<&serde_json::Value>) -> BTreeMap<String, String> {
    let Some(serde_json::Value::Object(map)) = value else {
        return Default::default();
    };
    map.iter()
        .map(|(k, v)| {
            let v = match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            (k.clone(), v)
        })
        .collect()
}

fn string_map(map: &BTreeMap<String, String>) -> Value {
    Value::Object(
        map.iter()
            .map(|(k, v)| (KeyString::from(k.as_str()), Value::from(v.as_str())))
            .collect(),
    )
}

/// An RFC 3339 time; `None` when missing, unreadable, or Go's zero time
/// (`0001-01-01T00:00:00Z`, "not ended").
fn time(object: &Json, key: &str) -> Option<DateTime<Utc>> {
    let at = DateTime::parse_from_rfc3339(object.get(key)?.as_str()?).ok()?;
    (at.year() > 1).then(|| at.with_timezone(&Utc))
}

/// A stable id for an alert without a fingerprint (older senders): the
/// first 64 bits of a SHA-256 of its sorted labels. A cryptographic hash,
/// so two alerts cannot be made to share a key (which would let one
/// silence the other in a `dedupe`, or edit its message).
fn label_hash(labels: &BTreeMap<String, String>) -> String {
    use sha2::Digest as _;
    let mut hasher = sha2::Sha256::new();
    for (k, v) in labels {
        // Lengths first: no two label sets give the same bytes.
        hasher.update((k.len() as u64).to_le_bytes());
        hasher.update(k.as_bytes());
        hasher.update((v.len() as u64).to_le_bytes());
        hasher.update(v.as_bytes());
    }
    let digest = hasher.finalize();
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

mod mapped;
#[cfg(test)]
mod tests;
