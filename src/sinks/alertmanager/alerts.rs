//! Alerts as Alertmanager sees them, and their life cycle in the sink.
//!
//! Everything here is pure (time is a parameter), so the resend and resolve
//! rules are unit-tested without sleeping.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use crate::diagnostic::BuildError;
use crate::event::Event;
use crate::template::{Rendered, Template};

/// Labels sent when the user does not override them. Each falls back to an
/// empty value, and Alertmanager drops empty labels, so the same defaults
/// serve `pattern` events and `threshold` alerts.
pub const DEFAULT_LABELS: &[(&str, &str)] = &[
    ("alertname", "{{ .alert.name ?? \"HowlNewPattern\" }}"),
    ("pattern_id", "{{ .pattern.id ?? \"\" }}"),
    ("alert_key", "{{ .alert.key ?? \"\" }}"),
    ("level", "{{ .alert.severity ?? .pattern.level ?? \"\" }}"),
    ("source", "{{ .source_type ?? \"\" }}"),
    ("host", "{{ .host ?? \"\" }}"),
];

/// Annotations sent when the user does not override them.
pub const DEFAULT_ANNOTATIONS: &[(&str, &str)] = &[
    (
        "summary",
        "{{ .alert.summary ?? .pattern.template ?? .message ?? \"\" }}",
    ),
    (
        "description",
        "{{ .alert.description ?? .pattern.template ?? \"\" }}",
    ),
    ("sample", "{{ .message ?? \"\" }}"),
    // `llm_suppress` sets it when `[api.links]` is on: one click from
    // whatever Alertmanager routes the alert to.
    ("suppress_url", "{{ .suppress_url ?? \"\" }}"),
];

/// How long a resolved alert keeps being re-sent (Alertmanager's docs ask
/// clients to re-send resolutions for up to 5 minutes).
pub const RESOLVED_RETENTION: Duration = Duration::minutes(5);

/// Label and annotation templates, checked against Alertmanager's rules.
#[derive(Debug, Clone)]
pub struct AlertTemplates {
    labels: Vec<(String, Template)>,
    annotations: Vec<(String, Template)>,
    generator_url: Option<Template>,
}

/// What rendering one event produced.
#[derive(Debug, Clone, PartialEq)]
pub struct RenderedAlert {
    /// Labels without empty values (Alertmanager drops those, and they would
    /// change the fingerprint).
    pub labels: BTreeMap<String, String>,
    /// Annotations without empty values.
    pub annotations: BTreeMap<String, String>,
    /// A valid absolute URL, or nothing.
    pub generator_url: Option<String>,
    /// References that were missing (for `template_failed`).
    pub missing: Vec<String>,
}

impl AlertTemplates {
    /// Merges user labels and annotations over the defaults and checks
    /// every name. Alertmanager 0.25 accepts only `[a-zA-Z_][a-zA-Z0-9_]*`
    /// for both, and newer versions accept that too: checking here turns a
    /// would-be 400 for every alert into one config error, at the option.
    pub fn new(
        labels: &BTreeMap<String, Template>,
        annotations: &BTreeMap<String, Template>,
        generator_url: Option<&Template>,
    ) -> Result<Self, BuildError> {
        Ok(Self {
            labels: merge(DEFAULT_LABELS, labels, ("labels", "label"))?,
            annotations: merge(
                DEFAULT_ANNOTATIONS,
                annotations,
                ("annotations", "annotation"),
            )?,
            generator_url: generator_url.cloned(),
        })
    }

    /// Renders an event.
    pub fn render(&self, event: &Event) -> RenderedAlert {
        let mut missing = Vec::new();
        let mut render_all = |templates: &[(String, Template)]| {
            templates
                .iter()
                .filter_map(|(name, template)| {
                    let Rendered {
                        text,
                        missing: gone,
                    } = template.render(event);
                    missing.extend(gone);
                    (!text.is_empty()).then(|| (name.clone(), text))
                })
                .collect::<BTreeMap<_, _>>()
        };
        let labels = render_all(&self.labels);
        let annotations = render_all(&self.annotations);
        let generator_url = self.generator_url.as_ref().and_then(|template| {
            let Rendered {
                text,
                missing: gone,
            } = template.render(event);
            missing.extend(gone);
            reqwest::Url::parse(&text).ok().map(|_| text)
        });
        RenderedAlert {
            labels,
            annotations,
            generator_url,
            missing,
        }
    }
}

/// The user's templates of `option` (`labels`, `annotations`) over its
/// defaults, every name checked; `what` names one entry in messages.
fn merge(
    defaults: &[(&str, &str)],
    configured: &BTreeMap<String, Template>,
    (option, what): (&str, &str),
) -> Result<Vec<(String, Template)>, BuildError> {
    let mut merged = BTreeMap::new();
    for (name, text) in defaults {
        let template = Template::parse(text).map_err(|e| {
            BuildError::new(format!("the default of `{option}.{name}`: {e}")).for_option(option)
        })?;
        merged.insert(name.to_string(), template);
    }
    merged.extend(configured.iter().map(|(k, v)| (k.clone(), v.clone())));
    for name in merged.keys() {
        check_name(name).map_err(|why| {
            BuildError::new(format!("{what} name `{name}` {why}"))
                .for_option(format!("{option}.{name}"))
        })?;
    }
    Ok(merged.into_iter().collect())
}

fn check_name(name: &str) -> Result<(), &'static str> {
    let mut chars = name.chars();
    let valid = matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        Err("is not valid for Alertmanager: use letters, digits and `_`, not starting with a digit")
    } else if name.starts_with("__") {
        Err("starts with `__`, which Prometheus reserves")
    } else {
        Ok(())
    }
}

/// Alertmanager's identity of an alert: FNV-1a 64 over the sorted label
/// names and values, each followed by 0xFF (prometheus/common
/// `LabelSet.Fingerprint`), as 16 hex digits.
pub fn fingerprint(labels: &BTreeMap<String, String>) -> String {
    const OFFSET: u64 = 14_695_981_039_346_656_037;
    const PRIME: u64 = 1_099_511_628_211;
    let mut hash = OFFSET;
    let mut add = |bytes: &[u8]| {
        for byte in bytes {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(PRIME);
        }
    };
    for (name, value) in labels {
        add(name.as_bytes());
        add(&[0xFF]);
        add(value.as_bytes());
        add(&[0xFF]);
    }
    format!("{hash:016x}")
}

/// One alert the sink is responsible for, as saved in the state store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActiveAlert {
    /// Its identity.
    pub labels: BTreeMap<String, String>,
    /// The latest annotations (re-sent with every post, including the
    /// resolution, or Alertmanager would show empty ones).
    pub annotations: BTreeMap<String, String>,
    /// The latest generator URL.
    #[serde(default)]
    pub generator_url: Option<String>,
    /// When it started firing.
    pub starts_at: DateTime<Utc>,
    /// The latest occurrence.
    pub last_seen: DateTime<Utc>,
    /// When it resolved, if it did.
    #[serde(default)]
    pub resolved_at: Option<DateTime<Utc>>,
    /// Whether its events declare their state (`.alert.state`): then only
    /// a `resolved` event resolves it, not `resolve_after` (a `threshold`
    /// alert sends one event when it fires and stays firing until it says
    /// otherwise).
    #[serde(default)]
    pub declared: bool,
    /// When it was last posted (not saved: after a restart everything is
    /// re-posted at once, which rebuilds a restarted Alertmanager too).
    #[serde(skip)]
    pub last_sent: Option<DateTime<Utc>>,
}

/// The life-cycle rules.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Re-send active alerts this often.
    pub resend_interval: Duration,
    /// Resolve an alert after this long without an occurrence.
    pub resolve_after: Duration,
}

/// What a change to an alert asks the sink to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Post it now.
    Send,
    /// Nothing to post now (a repeat of an alert posted recently).
    Quiet,
}

impl ActiveAlert {
    /// A new firing alert (`declared`: its events say `.alert.state`).
    pub fn firing(rendered: RenderedAlert, now: DateTime<Utc>, declared: bool) -> Self {
        Self {
            labels: rendered.labels,
            annotations: rendered.annotations,
            generator_url: rendered.generator_url,
            starts_at: now,
            last_seen: now,
            resolved_at: None,
            declared,
            last_sent: None,
        }
    }

    /// Another occurrence. A resolved alert fires again as a new episode;
    /// a firing one only refreshes (Alertmanager does not notify on
    /// annotation changes, so there is no point posting each repeat).
    pub fn occurred(&mut self, rendered: RenderedAlert, now: DateTime<Utc>) -> Change {
        self.annotations = rendered.annotations;
        self.generator_url = rendered.generator_url;
        self.last_seen = now;
        if self.resolved_at.take().is_some() {
            self.starts_at = now;
            self.last_sent = None;
            Change::Send
        } else {
            Change::Quiet
        }
    }

    /// An explicit resolution.
    pub fn resolve(&mut self, now: DateTime<Utc>) -> Change {
        if self.resolved_at.is_some() {
            return Change::Quiet;
        }
        self.resolved_at = Some(now);
        self.last_sent = None;
        Change::Send
    }

    /// The periodic check: resolve a silent alert, re-send when due.
    /// Returns `None` when the alert can be forgotten (resolved long ago).
    pub fn tick(&mut self, now: DateTime<Utc>, timing: Timing) -> Option<Change> {
        if self.resolved_at.is_none()
            && !self.declared
            && now - self.last_seen >= timing.resolve_after
        {
            return Some(self.resolve(now));
        }
        if let Some(resolved_at) = self.resolved_at
            && now - resolved_at >= RESOLVED_RETENTION
        {
            return None;
        }
        let due = self
            .last_sent
            .is_none_or(|sent| now - sent >= timing.resend_interval);
        Some(if due { Change::Send } else { Change::Quiet })
    }

    /// The alert as posted to `/api/v2/alerts` now. Firing alerts end
    /// `4 × resend_interval` from now (Prometheus's rule), so Alertmanager
    /// resolves them by itself if howl goes away; resolved ones end when
    /// they resolved.
    pub fn postable(&self, now: DateTime<Utc>, timing: Timing) -> serde_json::Value {
        let ends_at = match self.resolved_at {
            Some(resolved_at) => resolved_at.max(self.starts_at + Duration::milliseconds(1)),
            None => now + timing.resend_interval * 4,
        };
        let mut alert = serde_json::json!({
            "labels": self.labels,
            "annotations": self.annotations,
            "startsAt": self.starts_at.to_rfc3339_opts(SecondsFormat::Millis, true),
            "endsAt": ends_at.to_rfc3339_opts(SecondsFormat::Millis, true),
        });
        if let Some(url) = &self.generator_url {
            alert["generatorURL"] = serde_json::Value::String(url.clone());
        }
        alert
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn templates(pairs: &[(&str, &str)]) -> BTreeMap<String, Template> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), Template::parse(v).unwrap()))
            .collect()
    }

    #[test]
    fn fingerprint_matches_alertmanager() {
        // Values computed by a live Alertmanager 0.25.
        assert_eq!(
            fingerprint(&labels(&[
                ("alertname", "DiskFull"),
                ("instance", "web-1"),
                ("severity", "critical")
            ])),
            "bf29cd0c3cac59df"
        );
        assert_eq!(
            fingerprint(&labels(&[
                ("alertname", "PromAlwaysFiring"),
                ("severity", "info")
            ])),
            "46a2149d399cbc71"
        );
    }

    #[test]
    fn defaults_suit_pattern_events_and_drop_empty_labels() {
        let templates = AlertTemplates::new(&BTreeMap::new(), &BTreeMap::new(), None).unwrap();
        let event = Event::from_value(vrl::value!({
            "message": "disk full on /var",
            "host": "web-1",
            "source_type": "file",
            "pattern": {"id": "0123456789abcdef", "template": "disk full on <PATH>", "level": "error"},
        }));
        let rendered = templates.render(&event);
        assert_eq!(
            rendered.labels,
            labels(&[
                ("alertname", "HowlNewPattern"),
                ("host", "web-1"),
                ("level", "error"),
                ("pattern_id", "0123456789abcdef"),
                ("source", "file"),
            ])
        );
        assert_eq!(rendered.annotations["summary"], "disk full on <PATH>");
        assert_eq!(rendered.annotations["sample"], "disk full on /var");
        assert!(
            rendered.missing.is_empty(),
            "defaults never count as missing"
        );
    }

    #[test]
    fn invalid_label_names_are_config_errors_at_the_label() {
        let bad = |name: &str| {
            AlertTemplates::new(&templates(&[(name, "x")]), &BTreeMap::new(), None).unwrap_err()
        };
        let error = bad("service.name");
        assert!(
            error
                .message
                .contains("label name `service.name` is not valid"),
            "{}",
            error.message
        );
        assert_eq!(error.option.as_deref(), Some("labels.service.name"));
        assert!(bad("1abc").message.contains("not valid"));
        assert!(bad("__reserved").message.contains("reserves"));
        let annotation =
            AlertTemplates::new(&BTreeMap::new(), &templates(&[("bad-name", "x")]), None)
                .unwrap_err();
        assert!(annotation.message.contains("annotation name `bad-name`"));
        assert_eq!(annotation.option.as_deref(), Some("annotations.bad-name"));
    }

    fn alert(now: DateTime<Utc>) -> ActiveAlert {
        ActiveAlert::firing(
            RenderedAlert {
                labels: labels(&[("alertname", "X")]),
                annotations: BTreeMap::new(),
                generator_url: None,
                missing: Vec::new(),
            },
            now,
            false,
        )
    }

    const TIMING: Timing = Timing {
        resend_interval: Duration::seconds(60),
        resolve_after: Duration::seconds(300),
    };

    #[test]
    fn resends_until_silent_for_resolve_after_then_resolves() {
        let t0 = DateTime::parse_from_rfc3339("2026-11-22T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let at = |s: i64| t0 + Duration::seconds(s);
        let mut alert = alert(t0);
        assert_eq!(alert.tick(t0, TIMING), Some(Change::Send));
        alert.last_sent = Some(t0);
        assert_eq!(alert.tick(at(30), TIMING), Some(Change::Quiet));
        assert_eq!(alert.tick(at(60), TIMING), Some(Change::Send));
        alert.last_sent = Some(at(60));
        let posted = alert.postable(at(60), TIMING);
        assert_eq!(
            posted["endsAt"], "2026-11-22T00:05:00.000Z",
            "now + 4 x resend interval"
        );
        // An occurrence keeps it alive.
        assert_eq!(alert.occurred(alert_render(), at(200)), Change::Quiet);
        assert_eq!(
            alert.tick(at(450), TIMING),
            Some(Change::Send),
            "due for a resend"
        );
        alert.last_sent = Some(at(450));
        assert_eq!(
            alert.tick(at(500), TIMING),
            Some(Change::Send),
            "silent for 300 s: resolve"
        );
        assert_eq!(alert.resolved_at, Some(at(500)));
        assert_eq!(
            alert.postable(at(510), TIMING)["endsAt"],
            "2026-11-22T00:08:20.000Z"
        );
        alert.last_sent = Some(at(500));
        assert_eq!(
            alert.tick(at(560), TIMING),
            Some(Change::Send),
            "resolutions are re-sent too"
        );
        assert_eq!(
            alert.tick(at(800), TIMING),
            None,
            "forgotten after the retention"
        );
    }

    fn alert_render() -> RenderedAlert {
        RenderedAlert {
            labels: labels(&[("alertname", "X")]),
            annotations: labels(&[("summary", "again")]),
            generator_url: None,
            missing: Vec::new(),
        }
    }

    #[test]
    fn an_alert_that_declares_its_state_waits_for_its_resolution() {
        let t0 = Utc::now();
        let mut alert = ActiveAlert::firing(alert_render(), t0, true);
        alert.last_sent = Some(t0);
        let later = t0 + Duration::seconds(3600);
        assert_eq!(
            alert.tick(later, TIMING),
            Some(Change::Send),
            "still firing an hour later: re-sent, not resolved"
        );
        assert_eq!(alert.resolved_at, None);
        assert_eq!(alert.resolve(later), Change::Send);
        assert_eq!(alert.resolved_at, Some(later));
    }

    #[test]
    fn a_resolved_alert_that_occurs_again_starts_a_new_episode() {
        let t0 = Utc::now();
        let mut alert = alert(t0);
        assert_eq!(alert.resolve(t0 + Duration::seconds(10)), Change::Send);
        assert_eq!(
            alert.resolve(t0 + Duration::seconds(11)),
            Change::Quiet,
            "resolving twice is quiet"
        );
        assert_eq!(
            alert.occurred(alert_render(), t0 + Duration::seconds(20)),
            Change::Send
        );
        assert_eq!(alert.starts_at, t0 + Duration::seconds(20));
        assert_eq!(alert.resolved_at, None);
    }
}

/// One alert of a webhook notification.
pub struct Notified<'a> {
    /// Its labels and annotations.
    pub rendered: &'a RenderedAlert,
    /// Firing or resolved.
    pub state: crate::alert::AlertState,
    /// When it started firing.
    pub starts_at: DateTime<Utc>,
    /// When it resolved (for a resolved alert; `now` when unknown).
    pub ends_at: Option<DateTime<Utc>>,
}

/// The body Alertmanager POSTs to its webhook receivers (payload version
/// 4), so a receiver written for Alertmanager takes howl's alerts
/// unchanged. As Alertmanager does, firing alerts carry the zero time as
/// `endsAt`, and the common labels and annotations are those every alert
/// shares.
pub fn webhook_notification(
    receiver: &str,
    alerts: &[Notified<'_>],
    now: DateTime<Utc>,
) -> serde_json::Value {
    const ZERO_TIME: &str = "0001-01-01T00:00:00Z";
    let common = |pick: fn(&RenderedAlert) -> &BTreeMap<String, String>| {
        let mut common: BTreeMap<String, String> = alerts
            .first()
            .map(|a| pick(a.rendered).clone())
            .unwrap_or_default();
        for alert in alerts.iter().skip(1) {
            common.retain(|k, v| pick(alert.rendered).get(k) == Some(v));
        }
        common
    };
    let firing = alerts
        .iter()
        .any(|a| a.state == crate::alert::AlertState::Firing);
    let items: Vec<serde_json::Value> = alerts
        .iter()
        .map(|alert| {
            let resolved = alert.state == crate::alert::AlertState::Resolved;
            serde_json::json!({
                "status": alert.state.as_str(),
                "labels": alert.rendered.labels,
                "annotations": alert.rendered.annotations,
                "startsAt": alert.starts_at.to_rfc3339_opts(SecondsFormat::Millis, true),
                "endsAt": if resolved {
                    alert.ends_at.unwrap_or(now).to_rfc3339_opts(SecondsFormat::Millis, true)
                } else {
                    ZERO_TIME.to_string()
                },
                "generatorURL": alert.rendered.generator_url.clone().unwrap_or_default(),
                "fingerprint": fingerprint(&alert.rendered.labels),
            })
        })
        .collect();
    serde_json::json!({
        "receiver": receiver,
        "status": if firing { "firing" } else { "resolved" },
        "alerts": items,
        "groupLabels": {},
        "commonLabels": common(|a| &a.labels),
        "commonAnnotations": common(|a| &a.annotations),
        "externalURL": "",
        "version": "4",
        "groupKey": "{}:{}",
        "truncatedAlerts": 0,
    })
}

#[cfg(test)]
mod webhook_tests {
    use super::*;
    use crate::alert::AlertState;

    fn rendered(pairs: &[(&str, &str)], summary: &str) -> RenderedAlert {
        RenderedAlert {
            labels: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            annotations: BTreeMap::from([("summary".to_string(), summary.to_string())]),
            generator_url: None,
            missing: Vec::new(),
        }
    }

    #[test]
    fn notification_has_alertmanagers_version_4_shape() {
        let a = rendered(
            &[
                ("alertname", "DiskFull"),
                ("instance", "web-1"),
                ("severity", "critical"),
            ],
            "full",
        );
        let b = rendered(
            &[
                ("alertname", "DiskFull"),
                ("instance", "web-2"),
                ("severity", "critical"),
            ],
            "full",
        );
        let t0 = DateTime::parse_from_rfc3339("2026-11-22T03:51:05Z")
            .unwrap()
            .with_timezone(&Utc);
        let body = webhook_notification(
            "howl",
            &[
                Notified {
                    rendered: &a,
                    state: AlertState::Firing,
                    starts_at: t0,
                    ends_at: None,
                },
                Notified {
                    rendered: &b,
                    state: AlertState::Resolved,
                    starts_at: t0,
                    ends_at: None,
                },
            ],
            t0 + Duration::minutes(5),
        );
        assert_eq!(body["version"], "4");
        assert_eq!(body["status"], "firing", "firing when any alert fires");
        assert_eq!(body["alerts"][0]["fingerprint"], "bf29cd0c3cac59df");
        assert_eq!(body["alerts"][0]["endsAt"], "0001-01-01T00:00:00Z");
        assert_eq!(body["alerts"][1]["status"], "resolved");
        assert_eq!(body["alerts"][1]["endsAt"], "2026-11-22T03:56:05.000Z");
        assert_eq!(
            body["commonLabels"],
            serde_json::json!({"alertname": "DiskFull", "severity": "critical"})
        );
        assert_eq!(
            body["commonAnnotations"],
            serde_json::json!({"summary": "full"})
        );
        assert_eq!(body["truncatedAlerts"], 0);
    }
}
