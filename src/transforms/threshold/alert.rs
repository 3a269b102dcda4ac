//! The alert events `threshold` emits on a firing or a resolution: exactly
//! the fields the alert sinks render by default, so `threshold → slack`
//! needs no template.
//!
//! ```json
//! {
//!   "alert": {
//!     "name": "HighCpu", "state": "firing", "key": "HighCpu/host=web-1",
//!     "severity": "warning", "value": 93.1, "threshold": 80.0,
//!     "condition": "value > 80", "metric": "cpu_usage_percent",
//!     "for_secs": 300.0, "active_for_secs": 300.0,
//!     "started_at": "...", "fired_at": "...",
//!     "summary": "CPU 93.1% > 80% on web-1 for 5m"
//!   },
//!   "tags": { "host": "web-1" },
//!   "host": "web-1",
//!   "timestamp": "..."
//! }
//! ```
//!
//! A resolution also has `resolved_at` and `stale` (true when samples
//! stopped rather than the condition clearing); its `value` is the sample
//! that cleared it. `host` is copied to the top level when it is a group
//! tag, because sinks label alerts with `.host` (Alertmanager's default
//! `host` label, Slack's context line).
//!
//! The `summary` template sees a small context of its own: `.name`,
//! `.metric`, `.value` (the latest breaching value, rounded), `.threshold`,
//! `.condition`, `.duration` (how long it has been breaching, e.g. `5m`),
//! `.state`, `.severity`, `.tags.*`, and `.group` (`host=web-1`). On a
//! resolution `.value` is still the breaching value, so a resolved message
//! reads "Resolved: CPU 93.1% > 80% ... for 7m".

use std::collections::BTreeMap;
use std::fmt::Write;

use chrono::TimeDelta;
use vrl::value::{KeyString, ObjectMap, Value};

use super::rule::Rule;
use super::state::{Change, Transition};
use crate::alert::render_reported;
use crate::event::{Event, fields};
use crate::internal_events::ComponentMetrics;

/// The summary of rules that set none: `NAME: METRIC is VALUE (value > 80)
/// on host=web-1 for 5m`.
pub fn default_summary(rule_name: &str, comparison: Option<String>, grouped: bool) -> String {
    let mut text = format!("{rule_name}: {{{{ .metric }}}} is {{{{ .value }}}}");
    if let Some(comparison) = comparison {
        let _ = write!(text, " ({comparison})");
    }
    if grouped {
        text.push_str(" on {{ .group }}");
    }
    text.push_str(" for {{ .duration }}");
    text
}

/// The event announcing `transition` of `rule`.
pub fn alert_event(rule: &Rule, transition: &Transition, metrics: &ComponentMetrics) -> Event {
    let group = &transition.group;
    let state = match transition.change {
        Change::Fired => "firing",
        Change::Resolved { .. } => "resolved",
    };
    let active_for = transition.active_for();
    let tags: ObjectMap = group
        .tags
        .iter()
        .map(|(name, value)| (KeyString::from(name.as_str()), Value::from(value.as_str())))
        .collect();

    let summary = {
        let mut context = ObjectMap::new();
        context.insert("name".into(), Value::from(rule.name.as_str()));
        context.insert("metric".into(), Value::from(group.metric.as_str()));
        context.insert("value".into(), Value::from(number(group.breach_value)));
        if let Some(threshold) = rule.threshold() {
            context.insert("threshold".into(), Value::from(number(threshold)));
        }
        context.insert("condition".into(), Value::from(rule.condition_text()));
        context.insert("duration".into(), Value::from(duration(active_for)));
        context.insert("state".into(), Value::from(state));
        context.insert("severity".into(), Value::from(rule.severity.as_str()));
        context.insert("group".into(), Value::from(group_text(&group.tags)));
        context.insert("tags".into(), Value::Object(tags.clone()));
        let context = Event::from_value(Value::Object(context));
        render_reported(&rule.summary, "summary", &context, metrics, |v, out| {
            out.push_str(v);
        })
    };

    let mut alert = ObjectMap::new();
    alert.insert("name".into(), Value::from(rule.name.as_str()));
    alert.insert("state".into(), Value::from(state));
    alert.insert("key".into(), Value::from(transition.key.as_str()));
    alert.insert("severity".into(), Value::from(rule.severity.as_str()));
    alert.insert("value".into(), Value::from_f64_or_zero(transition.value));
    if let Some(threshold) = rule.threshold() {
        alert.insert("threshold".into(), Value::from_f64_or_zero(threshold));
    }
    alert.insert("condition".into(), Value::from(rule.condition_text()));
    alert.insert("metric".into(), Value::from(group.metric.as_str()));
    alert.insert("for_secs".into(), Value::from_f64_or_zero(rule.for_secs));
    alert.insert(
        "active_for_secs".into(),
        Value::from_f64_or_zero(active_for.as_seconds_f64()),
    );
    alert.insert("started_at".into(), Value::Timestamp(group.since));
    if let Some(fired_at) = group.fired_at {
        alert.insert("fired_at".into(), Value::Timestamp(fired_at));
    }
    if let Change::Resolved { stale } = transition.change {
        alert.insert("resolved_at".into(), Value::Timestamp(transition.at));
        alert.insert("stale".into(), Value::Boolean(stale));
    }
    alert.insert("summary".into(), Value::from(summary));

    let mut event = ObjectMap::new();
    event.insert("alert".into(), Value::Object(alert));
    if let Some(host) = group.tags.get(fields::HOST) {
        event.insert(fields::HOST.into(), Value::from(host.as_str()));
    }
    event.insert("tags".into(), Value::Object(tags));
    event.insert(fields::TIMESTAMP.into(), Value::Timestamp(transition.at));
    Event::from_value(Value::Object(event))
}

/// `host=web-1, mountpoint=/`.
fn group_text(tags: &BTreeMap<String, String>) -> String {
    tags.iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A value as a person reads it: at most two decimals (`93.12`, `80`,
/// `0.5`), scientific notation for tiny magnitudes (`1.5e-4`).
pub fn number(value: f64) -> String {
    if !value.is_finite() {
        return if value.is_nan() {
            "NaN".to_string()
        } else if value > 0.0 {
            "+Inf".to_string()
        } else {
            "-Inf".to_string()
        };
    }
    if value != 0.0 && value.abs() < 0.01 {
        return format!("{value:.1e}");
    }
    let text = format!("{value:.2}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" {
        "0".to_string()
    } else {
        text.to_string()
    }
}

/// A duration as a person reads it, to the second below an hour and to
/// the minute above: `45s`, `5m`, `6m 12s`, `1h 5m`, `2d 3h`.
pub fn duration(delta: TimeDelta) -> String {
    let secs = delta.num_seconds().max(0);
    let (days, hours, minutes, seconds) =
        (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    let parts: Vec<String> = if days > 0 {
        vec![format!("{days}d"), format!("{hours}h")]
    } else if hours > 0 {
        vec![format!("{hours}h"), format!("{minutes}m")]
    } else if minutes > 0 {
        vec![format!("{minutes}m"), format!("{seconds}s")]
    } else {
        vec![format!("{seconds}s")]
    };
    let parts: Vec<&str> = parts
        .iter()
        .enumerate()
        .filter(|(index, part)| *index == 0 || !part.starts_with('0'))
        .map(|(_, part)| part.as_str())
        .collect();
    parts.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_like_a_person_wrote_them() {
        for (value, text) in [
            (93.125, "93.12"),
            (80.0, "80"),
            (0.5, "0.5"),
            (-3.0, "-3"),
            (0.0, "0"),
            (-0.001, "-1.0e-3"),
            (0.00015, "1.5e-4"),
            (1e12, "1000000000000"),
            (f64::INFINITY, "+Inf"),
        ] {
            assert_eq!(number(value), text, "{value}");
        }
    }

    #[test]
    fn durations_keep_the_two_largest_units_that_matter() {
        for (secs, text) in [
            (0, "0s"),
            (45, "45s"),
            (300, "5m"),
            (372, "6m 12s"),
            (3600, "1h"),
            (3900, "1h 5m"),
            (2 * 86_400 + 3 * 3600 + 59, "2d 3h"),
            (-5, "0s"),
        ] {
            assert_eq!(duration(TimeDelta::seconds(secs)), text, "{secs}");
        }
    }

    #[test]
    fn the_default_summary_names_the_comparison_and_the_group() {
        assert_eq!(
            default_summary("HighCpu", Some("value > 80".into()), true),
            "HighCpu: {{ .metric }} is {{ .value }} (value > 80) on {{ .group }} for {{ .duration }}"
        );
        assert_eq!(
            default_summary("Odd", None, false),
            "Odd: {{ .metric }} is {{ .value }} for {{ .duration }}"
        );
    }
}
