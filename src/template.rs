//! `{{ .field.path }}` templates, shared by every component that renders
//! text from an event (file paths today; alert texts and labels later).
//!
//! One rule everywhere, so users learn it once: a missing field renders as
//! an empty string and is *reported* (the caller counts a `template_failed`
//! error); the event is never dropped because of a template. `null` renders
//! empty without counting, numbers and booleans as written, timestamps as
//! RFC 3339, objects and arrays as JSON.
//!
//! A reference may name fallbacks, tried in order, skipping absent and
//! `null` fields: `{{ .alert.name ?? .pattern.id ?? "unnamed" }}`.
//! A quoted literal at the end is a default; a reference that ends in a
//! literal never counts as missing.
//!
//! Templates for paths may also use strftime specifiers (`%Y-%m-%d`) in their
//! literal text, taken from the event's `timestamp` (or the current time when
//! it has none). They are validated when the template is parsed, so a typo is
//! a config error, not a runtime panic.

use std::fmt::Write;

use chrono::format::{Item, StrftimeItems};
use chrono::{DateTime, SecondsFormat, Utc};
use vrl::path::OwnedValuePath;
use vrl::value::Value;

use crate::event::{Event, fields};

/// A parsed template. As an option value it parses while the config is
/// read, so a bad template is reported at its position; its schema says
/// `format: template` for the generated option tables.
#[derive(Debug, Clone)]
pub struct Template {
    parts: Vec<Part>,
    strftime: bool,
    source: String,
}

#[derive(Debug, Clone)]
enum Part {
    Literal(String),
    Field {
        /// Paths tried in order.
        paths: Vec<OwnedValuePath>,
        /// The default when no path exists.
        default: Option<String>,
        /// The reference as written, for "missing" reports.
        name: String,
    },
}

impl<'de> serde::Deserialize<'de> for Template {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        crate::options::parse_string(deserializer, "a template", |text| {
            Self::parse(text).map_err(|e| e.to_string())
        })
    }
}

impl serde::Serialize for Template {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.source)
    }
}

crate::options::string_schema!(Template, "template");

/// Why a template is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid template: {0}")]
pub struct TemplateError(String);

/// The text of a rendered template and the fields it could not find.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// The rendered text (missing fields are empty).
    pub text: String,
    /// The fields that were missing, as written in the template.
    pub missing: Vec<String>,
}

impl Template {
    /// Parses a template with `{{ .field }}` references only.
    pub fn parse(text: &str) -> Result<Self, TemplateError> {
        Self::parse_inner(text, false)
    }

    /// Parses a template whose literal text may also hold strftime
    /// specifiers (`%Y`); a literal `%` is written `%%`.
    pub fn parse_with_strftime(text: &str) -> Result<Self, TemplateError> {
        Self::parse_inner(text, true)
    }

    /// A template that renders one field, for options that name a field
    /// rather than a template (`key_field = "pattern.id"`): the value
    /// renders, and a missing field is reported, exactly as `{{ .pattern.id }}`
    /// would be.
    pub fn field(path: &str) -> Result<Self, TemplateError> {
        Ok(Self {
            parts: vec![Part::Field {
                paths: vec![parse_path(path.trim(), path)?],
                default: None,
                name: path.to_string(),
            }],
            strftime: false,
            source: format!("{{{{ .{} }}}}", path.trim().trim_start_matches('.')),
        })
    }

    fn parse_inner(text: &str, strftime: bool) -> Result<Self, TemplateError> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find("{{") {
            if open > 0 {
                parts.push(Part::Literal(rest[..open].to_string()));
            }
            let after = &rest[open + 2..];
            let close = after.find("}}").ok_or_else(|| {
                TemplateError(format!("`{{{{` without a closing `}}}}` in `{text}`"))
            })?;
            let name = after[..close].trim();
            parts.push(parse_reference(name, text)?);
            rest = &after[close + 2..];
        }
        if !rest.is_empty() {
            parts.push(Part::Literal(rest.to_string()));
        }
        if strftime {
            for part in &parts {
                if let Part::Literal(literal) = part
                    && StrftimeItems::new(literal).any(|item| matches!(item, Item::Error))
                {
                    return Err(TemplateError(format!(
                        "invalid strftime specifier in `{literal}` (write `%%` for a literal `%`)"
                    )));
                }
            }
        }
        Ok(Self {
            parts,
            strftime,
            source: text.to_string(),
        })
    }

    /// The template as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// True when the template references no field and no time: it renders
    /// the same for every event.
    pub fn is_static(&self) -> bool {
        let has_time = self.strftime
            && self
                .parts
                .iter()
                .any(|p| matches!(p, Part::Literal(l) if l.contains('%')));
        !has_time && self.parts.iter().all(|p| matches!(p, Part::Literal(_)))
    }

    /// Renders the template for `event`.
    pub fn render(&self, event: &Event) -> Rendered {
        self.render_escaped(event, |value, out| out.push_str(value))
    }

    /// Renders the template, passing every value taken from the event (not
    /// the template's own text) through `escape`: a Telegram HTML template
    /// keeps its `<b>` tags while a `<script>` in a log line is shown, not
    /// parsed.
    pub fn render_escaped(&self, event: &Event, escape: impl Fn(&str, &mut String)) -> Rendered {
        let mut text = String::new();
        let mut missing = Vec::new();
        let time = self.strftime.then(|| event_time(event));
        for part in &self.parts {
            match part {
                Part::Literal(literal) => match time {
                    Some(time) if literal.contains('%') => {
                        let _ = write!(text, "{}", time.format(literal));
                    }
                    _ => text.push_str(literal),
                },
                Part::Field {
                    paths,
                    default,
                    name,
                } => match paths
                    .iter()
                    .find_map(|path| event.get(path).filter(|value| !value.is_null()))
                {
                    // Text, the common case, needs no copy of its own.
                    Some(Value::Bytes(bytes)) => escape(&String::from_utf8_lossy(bytes), &mut text),
                    Some(value) => {
                        let mut rendered = String::new();
                        render_value(value, &mut rendered);
                        escape(&rendered, &mut text);
                    }
                    None => match default {
                        Some(default) => escape(default, &mut text),
                        // A `null` field renders empty without counting.
                        None if paths.iter().any(|path| event.get(path).is_some()) => {}
                        None => missing.push(name.clone()),
                    },
                },
            }
        }
        Rendered { text, missing }
    }
}

/// Parses `.a.b ?? .c ?? "default"`.
fn parse_reference(reference: &str, text: &str) -> Result<Part, TemplateError> {
    let mut paths = Vec::new();
    let mut default = None;
    let terms: Vec<&str> = reference.split("??").map(str::trim).collect();
    for (index, term) in terms.iter().enumerate() {
        let quoted = term.len() >= 2
            && ((term.starts_with('"') && term.ends_with('"'))
                || (term.starts_with('\'') && term.ends_with('\'')));
        if quoted {
            if index + 1 != terms.len() {
                return Err(TemplateError(format!(
                    "in `{{{{ {reference} }}}}`, a quoted default must come last"
                )));
            }
            default = Some(term[1..term.len() - 1].to_string());
            continue;
        }
        paths.push(parse_path(term, text)?);
    }
    Ok(Part::Field {
        paths,
        default,
        name: reference.to_string(),
    })
}

/// Parses one field path (`.a.b`, the leading `.` optional).
fn parse_path(term: &str, text: &str) -> Result<OwnedValuePath, TemplateError> {
    let bare = term.strip_prefix('.').unwrap_or(term);
    if bare.is_empty() {
        return Err(TemplateError(format!("empty field reference in `{text}`")));
    }
    vrl::path::parse_value_path(bare)
        .map_err(|e| TemplateError(format!("invalid field path `{term}` in `{text}`: {e}")))
}

fn event_time(event: &Event) -> DateTime<Utc> {
    match event.get_field(fields::TIMESTAMP) {
        Some(Value::Timestamp(ts)) => *ts,
        _ => Utc::now(),
    }
}

/// Appends a value the way templates show it.
pub fn render_value(value: &Value, out: &mut String) {
    match value {
        Value::Bytes(bytes) => out.push_str(&String::from_utf8_lossy(bytes)),
        Value::Timestamp(ts) => out.push_str(&ts.to_rfc3339_opts(SecondsFormat::AutoSi, true)),
        Value::Null => {}
        Value::Object(_) | Value::Array(_) => {
            out.push_str(&serde_json::to_string(value).unwrap_or_default());
        }
        other => out.push_str(&other.to_string_lossy()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn event() -> Event {
        let mut event = Event::from_value(vrl::value!({
            "host": "web-1",
            "status": 503,
            "nested": {"a": "x"},
            "nothing": null,
        }));
        event.insert_field(
            "timestamp",
            Utc.with_ymd_and_hms(2026, 11, 22, 8, 0, 0).unwrap(),
        );
        event
    }

    #[test]
    fn renders_fields_and_reports_missing_ones() {
        let template =
            Template::parse("{{ .host }}/{{status}}/{{ .nested.a }}/{{ .nope }}/{{ .nothing }}")
                .unwrap();
        let rendered = template.render(&event());
        assert_eq!(rendered.text, "web-1/503/x//");
        assert_eq!(rendered.missing, vec![".nope".to_string()]);
    }

    #[test]
    fn fallbacks_are_tried_in_order() {
        let event = event();
        let render = |t: &str| Template::parse(t).unwrap().render(&event);
        assert_eq!(render("{{ .nope ?? .host }}").text, "web-1");
        assert_eq!(
            render("{{ .nothing ?? .host }}").text,
            "web-1",
            "null falls through"
        );
        let defaulted = render("{{ .nope ?? .other ?? \"none\" }}");
        assert_eq!(
            (defaulted.text.as_str(), defaulted.missing.len()),
            ("none", 0)
        );
        assert_eq!(
            render("{{ .nope ?? .other }}").missing,
            vec![".nope ?? .other".to_string()]
        );
        assert!(
            Template::parse("{{ \"x\" ?? .host }}").is_err(),
            "a default must come last"
        );
    }

    #[test]
    fn escaping_applies_to_values_not_to_the_template() {
        let mut event = event();
        event.insert_field("message", "<script>&amp;");
        let template = Template::parse("<b>{{ .message }}</b>").unwrap();
        let rendered = template.render_escaped(&event, |v, out| {
            out.push_str(
                &v.replace('&', "&amp;")
                    .replace('<', "&lt;")
                    .replace('>', "&gt;"),
            )
        });
        assert_eq!(rendered.text, "<b>&lt;script&gt;&amp;amp;</b>");
    }

    #[test]
    fn a_field_template_renders_like_a_reference() {
        let field = Template::field("nested.a").unwrap();
        assert_eq!(field.render(&event()).text, "x");
        let missing = Template::field(".nope").unwrap().render(&event());
        assert_eq!(
            (missing.text.as_str(), missing.missing),
            ("", vec![".nope".to_string()])
        );
        assert!(Template::field("").is_err());
        assert!(Template::field("a..b").is_err());
    }

    #[test]
    fn strftime_uses_the_event_timestamp() {
        let template = Template::parse_with_strftime("logs/%Y-%m-%d/{{ .host }}.log").unwrap();
        assert_eq!(template.render(&event()).text, "logs/2026-11-22/web-1.log");
        assert!(!template.is_static());
    }

    #[test]
    fn invalid_templates_are_config_errors() {
        assert!(Template::parse("{{ .host").is_err());
        assert!(Template::parse("{{ }}").is_err());
        assert!(Template::parse_with_strftime("cpu at 90%!").is_err());
        assert!(
            Template::parse("cpu at 90%!").is_ok(),
            "no strftime in plain templates"
        );
        assert!(Template::parse("static.log").unwrap().is_static());
    }
}
