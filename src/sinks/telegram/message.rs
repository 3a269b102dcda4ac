//! The text of a Telegram alert message: templates rendered with every
//! value from the event escaped, cut to Telegram's 4096-character limit
//! without breaking the HTML.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use vrl::value::Value;

use crate::alert::{AlertState, escape_markup, render_reported};
use crate::diagnostic::BuildError;
use crate::event::Event;
use crate::internal_events::ComponentMetrics;
use crate::sinks::chat::markup::{self, Dialect};
use crate::template::Template;

/// Telegram's limit on a message's text, after entity parsing.
pub const MAX_LENGTH: usize = 4096;

/// What is sent when a template renders nothing visible (Telegram refuses
/// empty messages, and an alert should still reach someone).
const EMPTY_TEXT: &str = "(alert without text: its template rendered empty)";

/// How the message text is formatted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
pub enum ParseMode {
    /// Telegram's HTML: templates may use its tags; values are escaped.
    #[default]
    #[serde(rename = "HTML", alias = "html")]
    Html,
    /// Plain text: nothing is escaped or parsed.
    #[serde(rename = "none")]
    None,
}

const FIRING_HTML: &str = "🔥 <b>{{ .alert.summary ?? .pattern.template ?? .message }}</b>\n\
{{ .message ?? .alert.name ?? \"\" }}\n\
<i>{{ .alert.severity ?? .pattern.level ?? \"\" }} · {{ .host ?? \"\" }} · {{ .alert.key ?? .pattern.id ?? \"\" }}</i>";

const RESOLVED_HTML: &str = "✅ <b>Resolved:</b> {{ .alert.summary ?? .pattern.template ?? .message }}\n\
<i>{{ .alert.severity ?? .pattern.level ?? \"\" }} · {{ .host ?? \"\" }} · {{ .alert.key ?? .pattern.id ?? \"\" }}</i>";

const FIRING_PLAIN: &str = "🔥 {{ .alert.summary ?? .pattern.template ?? .message }}\n\
{{ .message ?? .alert.name ?? \"\" }}\n\
{{ .alert.severity ?? .pattern.level ?? \"\" }} · {{ .host ?? \"\" }} · {{ .alert.key ?? .pattern.id ?? \"\" }}";

const RESOLVED_PLAIN: &str = "✅ Resolved: {{ .alert.summary ?? .pattern.template ?? .message }}\n\
{{ .alert.severity ?? .pattern.level ?? \"\" }} · {{ .host ?? \"\" }} · {{ .alert.key ?? .pattern.id ?? \"\" }}";

/// The tags Telegram's HTML mode understands.
const TAGS: &[&str] = &[
    "b",
    "strong",
    "i",
    "em",
    "u",
    "ins",
    "s",
    "strike",
    "del",
    "span",
    "tg-spoiler",
    "a",
    "code",
    "pre",
    "blockquote",
    "tg-emoji",
];

/// Renders the firing and resolved texts of alerts.
#[derive(Debug)]
pub struct Renderer {
    mode: ParseMode,
    firing: Template,
    resolved: Template,
}

impl Renderer {
    /// Takes the templates (the defaults of `mode` for those not given)
    /// and, in HTML mode, checks their markup.
    pub fn new(
        mode: ParseMode,
        firing: Option<&Template>,
        resolved: Option<&Template>,
    ) -> Result<Self, BuildError> {
        let (default_firing, default_resolved) = match mode {
            ParseMode::Html => (FIRING_HTML, RESOLVED_HTML),
            ParseMode::None => (FIRING_PLAIN, RESOLVED_PLAIN),
        };
        Ok(Self {
            mode,
            firing: checked(mode, "text", firing, default_firing)?,
            resolved: checked(mode, "resolved_text", resolved, default_resolved)?,
        })
    }

    /// The `parse_mode` parameter to send, if any.
    pub fn parse_mode(&self) -> Option<&'static str> {
        match self.mode {
            ParseMode::Html => Some("HTML"),
            ParseMode::None => None,
        }
    }

    /// The message for `event`: never empty, never over the limit, and in
    /// HTML mode well formed whatever the event contains.
    pub fn render(&self, event: &Event, state: AlertState, metrics: &ComponentMetrics) -> String {
        let (template, option) = match state {
            AlertState::Firing => (&self.firing, "text"),
            AlertState::Resolved => (&self.resolved, "resolved_text"),
        };
        let (text, dialect) = match self.mode {
            ParseMode::Html => (
                render_reported(template, option, event, metrics, |value, out| {
                    escape_html(markup::head(value, MAX_LENGTH), out)
                }),
                Dialect::TelegramHtml,
            ),
            ParseMode::None => (
                render_reported(template, option, event, metrics, |value, out| {
                    out.push_str(markup::head(value, MAX_LENGTH))
                }),
                Dialect::TelegramPlain,
            ),
        };
        if markup::is_blank(&text, dialect) {
            return EMPTY_TEXT.to_string();
        }
        markup::truncate(&text, MAX_LENGTH, dialect)
    }
}

/// The template of `option` (or its default text); in HTML mode, checked
/// to contain only markup Telegram accepts.
fn checked(
    mode: ParseMode,
    option: &str,
    configured: Option<&Template>,
    default: &str,
) -> Result<Template, BuildError> {
    let template = match configured {
        Some(template) => template.clone(),
        None => Template::parse(default).map_err(|e| {
            BuildError::new(format!("the default `{option}`: {e}")).for_option(option)
        })?,
    };
    if mode == ParseMode::Html {
        // The template's own text, with every field empty, is all the
        // markup a message can contain: values are escaped.
        let skeleton = template.render(&Event::from_value(Value::Object(Default::default())));
        markup::check_html(&skeleton.text, |tag| TAGS.contains(&tag)).map_err(|problem| {
            BuildError::new(format!(
                "`{option}` is not valid Telegram HTML: {problem} (or set `parse_mode = \"none\"`)"
            ))
            .for_option(option)
        })?;
    }
    Ok(template)
}

/// Escapes a value for Telegram's HTML: `<`, `>`, `&`, and `"` (so a value
/// is safe inside an `href="..."` too).
fn escape_html(value: &str, out: &mut String) {
    let mut parts = value.split('"');
    if let Some(first) = parts.next() {
        escape_markup(first, out);
    }
    for part in parts {
        out.push_str("&quot;");
        escape_markup(part, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::component_key::{ComponentKey, ComponentKind};

    fn metrics() -> ComponentMetrics {
        ComponentMetrics::new(ComponentKey::new(ComponentKind::Sink, "tg", "telegram"))
    }

    fn default_renderer(mode: ParseMode) -> Renderer {
        Renderer::new(mode, None, None).unwrap()
    }

    fn template(text: &str) -> Template {
        Template::parse(text).unwrap()
    }

    #[test]
    fn default_text_suits_pattern_events() {
        let event = Event::from_value(vrl::value!({
            "message": "db-1 refused connection from 10.0.0.7",
            "host": "web-1",
            "pattern": {"id": "p-42", "template": "db-1 refused connection from <*>", "level": "ERROR", "count": 3},
        }));
        let text = default_renderer(ParseMode::Html).render(&event, AlertState::Firing, &metrics());
        assert_eq!(
            text,
            "🔥 <b>db-1 refused connection from &lt;*&gt;</b>\n\
             db-1 refused connection from 10.0.0.7\n\
             <i>ERROR · web-1 · p-42</i>"
        );
    }

    #[test]
    fn default_text_suits_threshold_alerts() {
        let event = Event::from_value(vrl::value!({
            "alert": {"name": "HighCPU", "state": "resolved", "key": "cpu:web-1", "severity": "critical",
                      "summary": "CPU above 90% on web-1", "value": 93, "threshold": 90},
            "host": "web-1",
        }));
        let renderer = default_renderer(ParseMode::None);
        assert_eq!(
            renderer.render(&event, AlertState::Firing, &metrics()),
            "🔥 CPU above 90% on web-1\nHighCPU\ncritical · web-1 · cpu:web-1"
        );
        assert_eq!(
            renderer.render(&event, AlertState::Resolved, &metrics()),
            "✅ Resolved: CPU above 90% on web-1\ncritical · web-1 · cpu:web-1"
        );
    }

    #[test]
    fn escapes_every_value_but_keeps_template_tags() {
        let renderer = Renderer::new(
            ParseMode::Html,
            Some(&template(
                "<b>{{ .message }}</b> <a href=\"{{ .url }}\">link</a>",
            )),
            None,
        )
        .unwrap();
        let event = Event::from_value(vrl::value!({
            "message": "<script>alert(1)</script> &amp; R&D",
            "url": "https://x/?a=1&b=\"2\"",
        }));
        assert_eq!(
            renderer.render(&event, AlertState::Firing, &metrics()),
            "<b>&lt;script&gt;alert(1)&lt;/script&gt; &amp;amp; R&amp;D</b> \
             <a href=\"https://x/?a=1&amp;b=&quot;2&quot;\">link</a>"
        );
    }

    #[test]
    fn long_messages_are_cut_to_the_limit_with_balanced_tags() {
        let renderer = Renderer::new(
            ParseMode::Html,
            Some(&template("<b>{{ .message }}</b><i>end</i>")),
            None,
        )
        .unwrap();
        let mut event = Event::from_value(vrl::value!({}));
        event.insert_field("message", "a&b<".repeat(3000));
        let text = renderer.render(&event, AlertState::Firing, &metrics());
        assert_eq!(markup::length(&text, Dialect::TelegramHtml), MAX_LENGTH);
        assert!(text.ends_with("…</b>"), "{}", &text[text.len() - 40..]);
        markup::check_html(&text, |tag| TAGS.contains(&tag)).unwrap();
    }

    #[test]
    fn empty_renderings_still_say_something() {
        let renderer =
            Renderer::new(ParseMode::Html, Some(&template("<b>{{ .nope }}</b>")), None).unwrap();
        let text = renderer.render(
            &Event::from_value(vrl::value!({})),
            AlertState::Firing,
            &metrics(),
        );
        assert_eq!(text, EMPTY_TEXT);
    }

    #[test]
    fn invalid_html_templates_are_config_errors() {
        let error =
            Renderer::new(ParseMode::Html, Some(&template("<b>{{ .message }}")), None).unwrap_err();
        assert!(error.message.contains("`text`"), "{}", error.message);
        assert_eq!(
            error.option.as_deref(),
            Some("text"),
            "points at the option"
        );
        assert!(error.message.contains("never closed"), "{}", error.message);
        let error =
            Renderer::new(ParseMode::Html, None, Some(&template("<div>x</div>"))).unwrap_err();
        assert!(
            error.message.contains("`resolved_text`"),
            "{}",
            error.message
        );
        assert!(
            Renderer::new(ParseMode::None, Some(&template("a < b & <div>")), None).is_ok(),
            "plain text is not parsed"
        );
    }
}
