//! The Block Kit message of a Slack alert: a coloured attachment holding a
//! header (the title), a section (the details, mrkdwn) and a context line
//! (host, source, alert id), plus a plain `text` for notifications.
//!
//! Values from the event are escaped for mrkdwn (`&`, `<`, `>`) so a log
//! line cannot ping `<!channel>` or forge a link; every part is cut to
//! Slack's limits between tokens (see [`markup`]).

use serde_json::json;

use crate::alert::{AlertState, escape_markup, render_reported};
use crate::event::Event;
use crate::internal_events::ComponentMetrics;
use crate::sinks::chat::markup::{self, Dialect};
use crate::template::Template;

/// A header is `plain_text` of at most 150 characters.
pub const HEADER_LIMIT: usize = 150;
/// A section's or context element's text is at most 3000 characters.
pub const TEXT_LIMIT: usize = 3000;

/// The default `title`.
pub const DEFAULT_TITLE: &str = "{{ .alert.summary ?? .pattern.template ?? .message }}";
/// The default `text`.
pub const DEFAULT_TEXT: &str = "{{ .message ?? .alert.name ?? \"\" }}";
/// The default `context`.
pub const DEFAULT_CONTEXT: &str = "{{ .alert.severity ?? .pattern.level ?? \"\" }} · {{ .host ?? \"\" }} · {{ .source_type ?? \"\" }} · {{ .alert.key ?? .pattern.id ?? \"\" }}";
/// The default `severity`.
pub const DEFAULT_SEVERITY: &str = "{{ .alert.severity ?? .pattern.level ?? \"\" }}";

/// Renders alert events as Slack messages.
#[derive(Debug)]
pub struct Renderer {
    title: Template,
    text: Template,
    context: Template,
    severity: Template,
}

impl Renderer {
    /// A renderer of the four templates.
    pub fn new(title: Template, text: Template, context: Template, severity: Template) -> Self {
        Self {
            title,
            text,
            context,
            severity,
        }
    }

    /// The message body (`text` + `attachments`) for `event`; the caller
    /// adds `channel`, `ts` or `thread_ts` as the call needs.
    pub fn payload(
        &self,
        event: &Event,
        state: AlertState,
        metrics: &ComponentMetrics,
    ) -> serde_json::Value {
        let plain = |value: &str, out: &mut String| out.push_str(markup::head(value, TEXT_LIMIT));
        let mrkdwn = |value: &str, out: &mut String| {
            escape_markup(markup::head(value, TEXT_LIMIT), out);
        };
        let mut title = render_reported(&self.title, "title", event, metrics, plain);
        if markup::is_blank(&title, Dialect::SlackPlain) {
            title = "Alert".to_string();
        }
        let header = match state {
            AlertState::Firing => format!("🔥 {title}"),
            AlertState::Resolved => format!("✅ Resolved: {title}"),
        };
        let header = markup::truncate(&header, HEADER_LIMIT, Dialect::SlackPlain);
        let mut fallback = String::new();
        escape_markup(&header, &mut fallback);

        let mut blocks = vec![json!({
            "type": "header",
            "text": {"type": "plain_text", "text": header, "emoji": true},
        })];
        let text = render_reported(&self.text, "text", event, metrics, mrkdwn);
        if !markup::is_blank(&text, Dialect::SlackMrkdwn) {
            blocks.push(json!({
                "type": "section",
                "text": {"type": "mrkdwn", "text": markup::truncate(&text, TEXT_LIMIT, Dialect::SlackMrkdwn)},
            }));
        }
        let context = render_reported(&self.context, "context", event, metrics, mrkdwn);
        if !markup::is_blank(&context, Dialect::SlackMrkdwn) {
            blocks.push(json!({
                "type": "context",
                "elements": [{"type": "mrkdwn", "text": markup::truncate(&context, TEXT_LIMIT, Dialect::SlackMrkdwn)}],
            }));
        }
        let severity = render_reported(&self.severity, "severity", event, metrics, plain);
        json!({
            "text": fallback,
            "attachments": [{"color": colour(&severity, state), "blocks": blocks}],
            "unfurl_links": false,
            "unfurl_media": false,
        })
    }
}

/// The attachment colour: green when resolved, else by severity (the usual
/// names of syslog, log levels and alerting rules): red for errors and
/// worse, amber for warnings (and unknown severities), blue for
/// information.
fn colour(severity: &str, state: AlertState) -> &'static str {
    const RED: &str = "#E01E5A";
    const AMBER: &str = "#ECB22E";
    const BLUE: &str = "#36C5F0";
    const GREEN: &str = "#2EB67D";
    if state == AlertState::Resolved {
        return GREEN;
    }
    match severity.trim().to_ascii_lowercase().as_str() {
        "emergency" | "emerg" | "alert" | "critical" | "crit" | "fatal" | "error" | "err"
        | "high" | "page" => RED,
        "info" | "informational" | "notice" | "low" | "debug" | "trace" => BLUE,
        _ => AMBER,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::component_key::{ComponentKey, ComponentKind};

    fn metrics() -> ComponentMetrics {
        ComponentMetrics::new(ComponentKey::new(ComponentKind::Sink, "s", "slack"))
    }

    /// A renderer of four template texts.
    fn renderer(title: &str, text: &str, context: &str, severity: &str) -> Renderer {
        let parse = |text: &str| Template::parse(text).unwrap();
        Renderer::new(parse(title), parse(text), parse(context), parse(severity))
    }

    fn defaults() -> Renderer {
        renderer(
            DEFAULT_TITLE,
            DEFAULT_TEXT,
            DEFAULT_CONTEXT,
            DEFAULT_SEVERITY,
        )
    }

    #[test]
    fn pattern_events_render_as_a_red_block_kit_message() {
        let event = Event::from_value(vrl::value!({
            "message": "upstream <api> timed out & retried",
            "host": "web-1",
            "source_type": "file",
            "pattern": {"id": "p-7", "template": "upstream <*> timed out & retried", "level": "ERROR"},
        }));
        let payload = defaults().payload(&event, AlertState::Firing, &metrics());
        assert_eq!(
            payload,
            json!({
                "text": "🔥 upstream &lt;*&gt; timed out &amp; retried",
                "attachments": [{"color": "#E01E5A", "blocks": [
                    {"type": "header", "text": {"type": "plain_text", "text": "🔥 upstream <*> timed out & retried", "emoji": true}},
                    {"type": "section", "text": {"type": "mrkdwn", "text": "upstream &lt;api&gt; timed out &amp; retried"}},
                    {"type": "context", "elements": [{"type": "mrkdwn", "text": "ERROR · web-1 · file · p-7"}]},
                ]}],
                "unfurl_links": false,
                "unfurl_media": false,
            })
        );
    }

    #[test]
    fn resolved_threshold_alerts_are_green() {
        let event = Event::from_value(vrl::value!({
            "alert": {"name": "HighCPU", "state": "resolved", "key": "cpu:web-1", "severity": "warning",
                      "summary": "CPU above 90% on web-1"},
        }));
        let payload = defaults().payload(&event, AlertState::Resolved, &metrics());
        let attachment = &payload["attachments"][0];
        assert_eq!(attachment["color"], "#2EB67D");
        assert_eq!(
            attachment["blocks"][0]["text"]["text"],
            "✅ Resolved: CPU above 90% on web-1"
        );
        assert_eq!(attachment["blocks"][1]["text"]["text"], "HighCPU");
        assert_eq!(colour("warning", AlertState::Firing), "#ECB22E");
        assert_eq!(colour("CRITICAL", AlertState::Firing), "#E01E5A");
        assert_eq!(colour("info", AlertState::Firing), "#36C5F0");
    }

    #[test]
    fn every_part_is_cut_to_its_limit() {
        let mut event = Event::from_value(vrl::value!({}));
        event.insert_field("message", "x&y".repeat(5000));
        let renderer = renderer("{{ .message }}", "*{{ .message }}*", "{{ .message }}", "");
        let payload = renderer.payload(&event, AlertState::Firing, &metrics());
        let blocks = &payload["attachments"][0]["blocks"];
        let header = blocks[0]["text"]["text"].as_str().unwrap();
        assert_eq!(header.chars().count(), HEADER_LIMIT);
        assert!(header.ends_with('…'));
        for text in [
            blocks[1]["text"]["text"].as_str().unwrap(),
            blocks[2]["elements"][0]["text"].as_str().unwrap(),
        ] {
            let length = text.chars().count();
            assert!(
                (TEXT_LIMIT - 5..=TEXT_LIMIT).contains(&length),
                "{length} characters"
            );
            let before_ellipsis = text.trim_end_matches('…');
            assert!(
                before_ellipsis.ends_with('x')
                    || before_ellipsis.ends_with('y')
                    || before_ellipsis.ends_with("&amp;"),
                "cut inside an entity: {}",
                &text[text.len() - 12..]
            );
        }
    }

    #[test]
    fn missing_fields_render_empty_and_empty_parts_are_left_out() {
        let renderer = renderer("{{ .nope }}", "{{ .nope }}", "", "");
        let payload = renderer.payload(
            &Event::from_value(vrl::value!({})),
            AlertState::Firing,
            &metrics(),
        );
        let blocks = payload["attachments"][0]["blocks"].as_array().unwrap();
        assert_eq!(blocks.len(), 1, "only the header: {blocks:?}");
        assert_eq!(blocks[0]["text"]["text"], "🔥 Alert");
    }
}
