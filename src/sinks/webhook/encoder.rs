//! How the webhook sink turns events into request bodies.
//!
//! Each event first becomes one JSON document: the event itself, or the
//! result of the `payload` VRL program run on it. The encoding then frames
//! the documents, with Vector's `http` sink semantics:
//!
//! | encoding | requests | body | Content-Type |
//! |---|---|---|---|
//! | `json` | one per event | the document | `application/json` |
//! | `ndjson` | one per batch | documents, each followed by `\n` | `application/x-ndjson` |
//! | `json_array` | one per batch | `[doc,doc,...]` | `application/json` |
//! | `alertmanager_webhook` | one per batch | Alertmanager's webhook notification (version 4), events rendered as alerts with `labels` and `annotations` | `application/json` |
//!
//! Every encoding is one arm of [`Encoder::encode`] plus its Content-Type,
//! so an encoding that needs the whole batch at once (Alertmanager's
//! webhook envelope) is added in one place. An event whose document cannot
//! be made (the `payload` program failed on it) is not sent: it is counted
//! as discarded and finalized as rejected, and the rest of its batch goes
//! out.

use bytes::Bytes;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use std::sync::LazyLock;

use chrono::Utc;
use vrl::owned_value_path;
use vrl::path::OwnedValuePath;
use vrl::value::Value;

use crate::alert::AlertState;
use crate::event::{Event, EventStatus, fields};
use crate::internal_events::{ComponentMetrics, ErrorType, Stage};
use crate::sinks::alertmanager::{Notified, Templates, webhook_notification};
use crate::vrl_program::VrlRunner;

/// How a batch of events becomes request bodies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum WebhookEncoding {
    /// One request per event, its body one JSON document.
    #[default]
    Json,
    /// One request per batch: newline-delimited JSON documents.
    Ndjson,
    /// One request per batch: a JSON array of documents.
    JsonArray,
    /// One request per batch: the notification Alertmanager sends to its
    /// webhook receivers (version 4), so existing receivers work unchanged.
    AlertmanagerWebhook,
}

impl WebhookEncoding {
    /// The `Content-Type` of the bodies.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Json | Self::JsonArray | Self::AlertmanagerWebhook => "application/json",
            Self::Ndjson => "application/x-ndjson",
        }
    }

    /// Whether one request carries a whole batch (else each event is a
    /// request of its own and `batch.*` does not apply).
    pub fn batches(self) -> bool {
        match self {
            Self::Json => false,
            Self::Ndjson | Self::JsonArray | Self::AlertmanagerWebhook => true,
        }
    }
}

/// One request's worth of events.
#[derive(Debug)]
pub struct Request {
    /// The body (cheap to clone for every attempt).
    pub body: Bytes,
    /// The events it carries, finalized once delivery is decided.
    pub events: Vec<Event>,
}

/// Turns events into requests.
pub struct Encoder {
    encoding: WebhookEncoding,
    payload: Option<VrlRunner>,
    alerts: Option<(Templates, String)>,
}

impl Encoder {
    /// An encoder; `payload` shapes each event's document.
    pub fn new(encoding: WebhookEncoding, payload: Option<VrlRunner>) -> Self {
        Self {
            encoding,
            payload,
            alerts: None,
        }
    }

    /// Sets how events render as alerts (`alertmanager_webhook`), and the
    /// receiver name the notification carries.
    pub fn with_alerts(mut self, templates: Templates, receiver: String) -> Self {
        self.alerts = Some((templates, receiver));
        self
    }

    /// The requests for one batch (none when no event could be encoded).
    pub fn encode(&mut self, events: Vec<Event>, metrics: &ComponentMetrics) -> Vec<Request> {
        match self.encoding {
            WebhookEncoding::Json => events
                .into_iter()
                .filter_map(|event| {
                    let mut body = Vec::new();
                    let event = self.document(event, &mut body, metrics)?;
                    Some(Request {
                        body: Bytes::from(body),
                        events: vec![event],
                    })
                })
                .collect(),
            WebhookEncoding::Ndjson => self.framed(events, (b"", b"\n", b"\n"), metrics),
            WebhookEncoding::JsonArray => self.framed(events, (b"[", b",", b"]"), metrics),
            WebhookEncoding::AlertmanagerWebhook => self.notification(events, metrics),
        }
    }

    /// One Alertmanager-style notification for the whole batch.
    fn notification(&self, events: Vec<Event>, metrics: &ComponentMetrics) -> Vec<Request> {
        let Some((templates, receiver)) = &self.alerts else {
            return Vec::new();
        };
        if events.is_empty() {
            return Vec::new();
        }
        let now = Utc::now();
        let rendered: Vec<_> = events
            .iter()
            .map(|event| {
                let alert = templates.render(event);
                if !alert.missing.is_empty() {
                    metrics.error(
                        ErrorType::TemplateFailed,
                        Stage::Processing,
                        &format_args!(
                            "missing field(s) {}; rendered them empty",
                            alert.missing.join(", ")
                        ),
                    );
                }
                // An alert's episode is known by its start: the same on its
                // firing and its resolution (threshold's `fired_at`).
                let starts_at = time_of(event, &*STARTED_AT).unwrap_or(now);
                let ends_at = time_of(event, &*RESOLVED_AT);
                (alert, AlertState::of(event), starts_at, ends_at)
            })
            .collect();
        let alerts: Vec<Notified<'_>> = rendered
            .iter()
            .map(|(rendered, state, starts_at, ends_at)| Notified {
                rendered,
                state: *state,
                starts_at: *starts_at,
                ends_at: *ends_at,
            })
            .collect();
        let body = webhook_notification(receiver, &alerts, now);
        match serde_json::to_vec(&body) {
            Ok(body) => vec![Request {
                body: Bytes::from(body),
                events,
            }],
            Err(error) => {
                let mut events = events;
                metrics.error(
                    ErrorType::EncodingFailed,
                    Stage::Processing,
                    &format_args!("cannot encode alerts: {error}"),
                );
                metrics.discarded_on_error(events.len(), &"the notification could not be encoded");
                crate::event::finalize_all(&mut events, EventStatus::Rejected);
                Vec::new()
            }
        }
    }

    /// One request whose body is `open`, the documents separated by
    /// `between`, then `close`.
    fn framed(
        &mut self,
        events: Vec<Event>,
        (open, between, close): (&[u8], &[u8], &[u8]),
        metrics: &ComponentMetrics,
    ) -> Vec<Request> {
        let mut body = Vec::with_capacity(events.len() * 256);
        body.extend_from_slice(open);
        let mut sent = Vec::with_capacity(events.len());
        for event in events {
            let mark = body.len();
            if !sent.is_empty() {
                body.extend_from_slice(between);
            }
            match self.document(event, &mut body, metrics) {
                Some(event) => sent.push(event),
                None => body.truncate(mark),
            }
        }
        if sent.is_empty() {
            return Vec::new();
        }
        body.extend_from_slice(close);
        vec![Request {
            body: Bytes::from(body),
            events: sent,
        }]
    }

    /// Appends the event's document to `out` and hands the event back, or
    /// reports why it cannot be sent and finalizes it as rejected (what is
    /// left in `out` is then for the caller to cut).
    fn document(
        &mut self,
        mut event: Event,
        out: &mut Vec<u8>,
        metrics: &ComponentMetrics,
    ) -> Option<Event> {
        let written = match &mut self.payload {
            None => serde_json::to_writer(&mut *out, event.value()).map_err(|e| {
                (
                    ErrorType::EncodingFailed,
                    format!("cannot encode the event: {e}"),
                )
            }),
            Some(program) => match program.run(event.value_mut()) {
                Ok(document) => serde_json::to_writer(&mut *out, &document).map_err(|e| {
                    (
                        ErrorType::EncodingFailed,
                        format!("cannot encode `payload`'s result: {e}"),
                    )
                }),
                Err(error) => Err((
                    ErrorType::ScriptFailed,
                    format!("`payload` failed: {error}"),
                )),
            },
        };
        match written {
            Ok(()) => Some(event),
            Err((error_type, reason)) => {
                metrics.error(
                    error_type,
                    Stage::Processing,
                    &format_args!("{reason}; the event is not sent"),
                );
                metrics.discarded_on_error(1, &reason);
                event.finalize(EventStatus::Rejected);
                None
            }
        }
    }
}

/// Where an alert episode's start is: `threshold`'s fields, else the
/// event's own time.
static STARTED_AT: LazyLock<[OwnedValuePath; 3]> = LazyLock::new(|| {
    [
        owned_value_path!("alert", "fired_at"),
        owned_value_path!("alert", "started_at"),
        owned_value_path!(fields::TIMESTAMP),
    ]
});

/// Where a resolution's time is.
static RESOLVED_AT: LazyLock<[OwnedValuePath; 2]> = LazyLock::new(|| {
    [
        owned_value_path!("alert", "resolved_at"),
        owned_value_path!(fields::TIMESTAMP),
    ]
});

/// The first of `paths` holding a time: a timestamp, or RFC 3339 text (as
/// JSON input carries it).
fn time_of(event: &Event, paths: &[OwnedValuePath]) -> Option<chrono::DateTime<Utc>> {
    paths.iter().find_map(|path| match event.get(path)? {
        Value::Timestamp(at) => Some(*at),
        text => chrono::DateTime::parse_from_rfc3339(&text.to_str_lossy()?)
            .ok()
            .map(|at| at.with_timezone(&Utc)),
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::component_key::{ComponentKey, ComponentKind};

    fn metrics() -> ComponentMetrics {
        ComponentMetrics::new(ComponentKey::new(ComponentKind::Sink, "hook", "webhook"))
    }

    fn events(messages: &[&str]) -> Vec<Event> {
        messages
            .iter()
            .map(|m| Event::from_value(vrl::value::Value::from(*m)))
            .collect()
    }

    fn payload(source: &str) -> VrlRunner {
        let functions = vrl::stdlib::all();
        let program = vrl::compiler::compile(source, &functions)
            .expect("compiles")
            .program;
        VrlRunner::new(Arc::new(program))
    }

    fn bodies(encoding: WebhookEncoding, program: Option<&str>, messages: &[&str]) -> Vec<String> {
        Encoder::new(encoding, program.map(payload))
            .encode(events(messages), &metrics())
            .into_iter()
            .map(|r| String::from_utf8(r.body.to_vec()).unwrap())
            .collect()
    }

    #[test]
    fn json_sends_each_event_on_its_own() {
        assert_eq!(
            bodies(WebhookEncoding::Json, None, &["a", "b"]),
            [r#"{"message":"a"}"#, r#"{"message":"b"}"#]
        );
    }

    #[test]
    fn ndjson_and_json_array_frame_a_whole_batch() {
        assert_eq!(
            bodies(WebhookEncoding::Ndjson, None, &["a", "b"]),
            ["{\"message\":\"a\"}\n{\"message\":\"b\"}\n"]
        );
        assert_eq!(
            bodies(WebhookEncoding::JsonArray, None, &["a", "b"]),
            [r#"[{"message":"a"},{"message":"b"}]"#]
        );
    }

    #[test]
    fn payload_result_is_the_document() {
        assert_eq!(
            bodies(
                WebhookEncoding::JsonArray,
                Some(r#"{"text": upcase(string!(.message))}"#),
                &["a", "b"]
            ),
            [r#"[{"text":"A"},{"text":"B"}]"#]
        );
    }

    #[test]
    fn events_whose_payload_fails_are_left_out_of_the_batch() {
        let program = Some("parse_json!(string!(.message))");
        assert_eq!(
            bodies(
                WebhookEncoding::JsonArray,
                program,
                &["{\"n\":1}", "oops", "[2]"]
            ),
            [r#"[{"n":1},[2]]"#]
        );
        assert_eq!(
            bodies(WebhookEncoding::JsonArray, program, &["oops", "{\"n\":1}"]),
            [r#"[{"n":1}]"#],
            "no separator before the first document sent"
        );
        assert!(bodies(WebhookEncoding::Ndjson, program, &["oops"]).is_empty());
        assert_eq!(
            bodies(WebhookEncoding::Json, program, &["oops", "3"]),
            ["3"]
        );
    }
}

#[cfg(test)]
mod time_tests {
    use super::*;

    #[test]
    fn times_come_from_timestamps_or_rfc3339_text() {
        let event = Event::from_value(vrl::value!({
            "alert": {"fired_at": "2026-11-22T08:00:00Z"},
        }));
        assert_eq!(
            time_of(&event, &*STARTED_AT).map(|t| t.to_rfc3339()),
            Some("2026-11-22T08:00:00+00:00".to_string())
        );
    }
}
