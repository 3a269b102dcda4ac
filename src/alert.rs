//! What every alert sink (Alertmanager, Telegram, Slack, webhooks) reads
//! from an event, and the state they keep about alerts.
//!
//! Sinks render; they never decide policy. An event is an *occurrence* of an
//! alert. It resolves the alert when it says so (`.alert.state =
//! "resolved"`, set by transforms such as `threshold`); otherwise it fires.
//! Occurrences of one alert share a key (`key`, by default
//! `{{ .alert.key ?? .pattern.id }}`), which is how a sink finds the message
//! to edit or the alert to resolve.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;
use vrl::value::Value;

use crate::event::Event;
use crate::internal_events::{ComponentMetrics, ErrorType, Stage};
use crate::state::{StateError, StateHandle, StateStore};
use crate::template::Template;

/// The default identity of an alert: a threshold rule's key, else the
/// pattern id.
pub const DEFAULT_KEY: &str = "{{ .alert.key ?? .pattern.id }}";

/// Whether an occurrence fires or resolves its alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertState {
    /// The problem is happening.
    Firing,
    /// The problem is over.
    Resolved,
}

impl AlertState {
    /// `resolved` when the event says `.alert.state = "resolved"`.
    pub fn of(event: &Event) -> Self {
        Self::declared(event).unwrap_or(Self::Firing)
    }

    /// The state the event declares in `.alert.state`, if it declares one.
    /// Alerts whose events declare their state (those of `threshold`) are
    /// resolved by an event, never by a timeout.
    pub fn declared(event: &Event) -> Option<Self> {
        let state = event
            .get_field("alert")
            .and_then(|alert| alert.as_object())
            .and_then(|alert| alert.get("state"))?;
        Some(match Value::to_str_lossy(state) {
            Some(state) if state.eq_ignore_ascii_case("resolved") => Self::Resolved,
            _ => Self::Firing,
        })
    }

    /// `firing` or `resolved`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Firing => "firing",
            Self::Resolved => "resolved",
        }
    }
}

/// Renders an alert's key; an empty key means "no identity" (the alert can
/// be sent but not resolved or edited later).
pub fn render_key(template: &Template, event: &Event) -> Option<String> {
    let rendered = template.render(event);
    (!rendered.text.is_empty()).then_some(rendered.text)
}

/// Renders one of a sink's text templates (`option` names it in the
/// report), passing every value from the event through `escape`. A missing
/// field renders empty and is counted as a `template_failed` error: an
/// alert with a hole in its text is still worth delivering.
pub fn render_reported(
    template: &Template,
    option: &str,
    event: &Event,
    metrics: &ComponentMetrics,
    escape: impl Fn(&str, &mut String),
) -> String {
    let rendered = template.render_escaped(event, escape);
    if !rendered.missing.is_empty() {
        metrics.error(
            ErrorType::TemplateFailed,
            Stage::Processing,
            &format_args!(
                "`{option}` refers to missing field(s) {}; rendered them empty",
                rendered.missing.join(", ")
            ),
        );
    }
    rendered.text
}

/// Escapes `<`, `>` and `&`: all Telegram's HTML mode and Slack's mrkdwn
/// need to show a value as text.
pub fn escape_markup(value: &str, out: &mut String) {
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            other => out.push(other),
        }
    }
}

/// Per-component alert state that survives restarts (a sink's active
/// alerts and message ids, a `threshold` transform's pending and firing
/// groups, the windows of `throttle` and `dedupe`), kept in a table of the
/// state store under `<component id>/<alert key>`.
pub struct AlertStore<T> {
    store: Arc<StateStore>,
    table: &'static str,
    prefix: String,
    _values: PhantomData<T>,
}

/// The state table of alert sinks.
const TABLE: &str = "sink_alerts";

impl<T: Serialize + DeserializeOwned> AlertStore<T> {
    /// Opens the store for one sink.
    pub fn open(state: &StateHandle, component_id: &str) -> Result<Self, StateError> {
        Self::open_in(state, TABLE, component_id)
    }

    /// Opens the store for one component in `table`, so components of
    /// different kinds never read each other's state, whatever their ids.
    pub fn open_in(
        state: &StateHandle,
        table: &'static str,
        component_id: &str,
    ) -> Result<Self, StateError> {
        Ok(Self {
            store: state.store()?,
            table,
            prefix: format!("{component_id}/"),
            _values: PhantomData,
        })
    }

    /// Every saved alert of this sink. Entries that no longer parse (an
    /// older format) are skipped with a warning rather than failing start-up.
    pub fn load(&self) -> Result<HashMap<String, T>, StateError> {
        let mut alerts = HashMap::new();
        for (key, value) in self.store.scan(self.table, &self.prefix)? {
            let Some(alert_key) = key.strip_prefix(&self.prefix) else {
                continue;
            };
            match serde_json::from_slice(&value) {
                Ok(alert) => {
                    alerts.insert(alert_key.to_string(), alert);
                }
                Err(error) => tracing::warn!(key, "ignoring unreadable saved alert state: {error}"),
            }
        }
        Ok(alerts)
    }

    /// Saves some alerts and forgets others, in one durable transaction.
    pub fn save(&self, put: &[(&str, &T)], delete: &[&str]) -> Result<(), StateError> {
        let put: Vec<(String, Vec<u8>)> = put
            .iter()
            .map(|(key, value)| {
                let bytes =
                    serde_json::to_vec(value).map_err(|e| StateError::Storage(e.to_string()))?;
                Ok((format!("{}{key}", self.prefix), bytes))
            })
            .collect::<Result<_, StateError>>()?;
        let delete: Vec<String> = delete
            .iter()
            .map(|key| format!("{}{key}", self.prefix))
            .collect();
        self.store.write(self.table, &put, &delete)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_fire_unless_they_say_resolved() {
        let firing = Event::from_value(vrl::value!({"pattern": {"id": "abc"}}));
        let resolved = Event::from_value(vrl::value!({"alert": {"state": "resolved", "key": "k"}}));
        assert_eq!(AlertState::of(&firing), AlertState::Firing);
        assert_eq!(AlertState::of(&resolved), AlertState::Resolved);
        let key = Template::parse(DEFAULT_KEY).unwrap();
        assert_eq!(render_key(&key, &firing).as_deref(), Some("abc"));
        assert_eq!(render_key(&key, &resolved).as_deref(), Some("k"));
        assert_eq!(render_key(&key, &Event::from_value(vrl::value!({}))), None);
    }

    #[test]
    fn markup_escaping_covers_the_three_characters() {
        let mut out = String::new();
        escape_markup("<b>&amp;</b>", &mut out);
        assert_eq!(out, "&lt;b&gt;&amp;amp;&lt;/b&gt;");
    }

    #[test]
    fn alert_state_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        {
            let state = StateHandle::new(dir.path().to_path_buf());
            let store: AlertStore<u64> = AlertStore::open(&state, "tg").unwrap();
            store.save(&[("a", &1), ("b", &2)], &[]).unwrap();
            store.save(&[], &["a"]).unwrap();
        }
        let state = StateHandle::new(dir.path().to_path_buf());
        let store: AlertStore<u64> = AlertStore::open(&state, "tg").unwrap();
        let loaded = store.load().unwrap();
        assert_eq!(loaded, HashMap::from([("b".to_string(), 2)]));
        let other: AlertStore<u64> = AlertStore::open(&state, "other").unwrap();
        assert!(
            other.load().unwrap().is_empty(),
            "sinks do not see each other's alerts"
        );
    }
}
