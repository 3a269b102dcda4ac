//! The options of the `slack` sink, and building it (checks only, no I/O).

use std::num::NonZeroU64;

use schemars::JsonSchema;
use serde::Deserialize;

use super::message::{DEFAULT_CONTEXT, DEFAULT_SEVERITY, DEFAULT_TEXT, DEFAULT_TITLE, Renderer};
use super::{Mode, SlackApi};
use crate::alert::DEFAULT_KEY;
use crate::components::BuildContext;
use crate::components::registry::WithShared;
use crate::components::sink::{Sink, SinkConfig};
use crate::diagnostic::BuildError;
use crate::http::{DeliverySettings, HealthcheckConfig, HttpDelivery, base_url};
use crate::secret::{Redactor, Secret};
use crate::sinks::chat::{ChatSink, OnResolve, require_sequential};
use crate::template::Template;

/// Options of the `slack` sink.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SlackConfig {
    /// An incoming webhook URL (`https://hooks.slack.com/services/...`). A
    /// secret: use `${SLACK_WEBHOOK_URL}`. Set either this or `token` and
    /// `channel`. Webhooks cannot edit or thread messages, so every
    /// occurrence and every resolution is a new message.
    webhook_url: Option<Secret>,
    /// A bot token (`xoxb-...`, scope `chat:write`) for the Web API, which
    /// threads repeats and edits messages on resolve. A secret: use
    /// `${SLACK_BOT_TOKEN}`. Needs `channel`.
    token: Option<Secret>,
    /// The channel to post to with `token`: an id (`C0123456789`) or a name
    /// (`#alerts`) the bot is a member of.
    channel: Option<String>,
    /// The Web API's base URL; change it for a proxy or tests.
    #[serde(default = "default_api_base")]
    api_base: String,
    /// The header of a message (a template, plain text, cut to 150
    /// characters). Resolved alerts show it after "Resolved:".
    #[serde(default = "default_title")]
    title: String,
    /// The details (a template, mrkdwn, cut to 3000 characters). Values from
    /// the event are escaped; the template itself may use mrkdwn.
    #[serde(default = "default_text")]
    text: String,
    /// The small print under the details (a template, mrkdwn).
    #[serde(default = "default_context")]
    context: String,
    /// The severity that picks the message's colour (a template): red for
    /// `critical`/`error`..., amber for `warning` or anything unknown, blue
    /// for `info`/`debug`...; resolved alerts are green.
    #[serde(default = "default_severity")]
    severity: String,
    /// The identity of an alert (a template): occurrences with the same key
    /// are one alert, threaded and resolved together.
    #[serde(default = "default_key")]
    key: String,
    /// When an alert resolves: `edit` its message (`chat.update`), `reply`
    /// in its thread, `send` a new message, or `ignore` it.
    #[serde(default)]
    on_resolve: OnResolve,
    /// The start-up check (`auth.test` with a token; none for a webhook).
    #[serde(default)]
    healthcheck: HealthcheckConfig,
}

fn default_api_base() -> String {
    "https://slack.com/api".to_string()
}

fn default_title() -> String {
    DEFAULT_TITLE.to_string()
}

fn default_text() -> String {
    DEFAULT_TEXT.to_string()
}

fn default_context() -> String {
    DEFAULT_CONTEXT.to_string()
}

fn default_severity() -> String {
    DEFAULT_SEVERITY.to_string()
}

fn default_key() -> String {
    DEFAULT_KEY.to_string()
}

/// Slack's limit on messages per second in one channel.
const MESSAGES_PER_SECOND: NonZeroU64 = NonZeroU64::MIN;

impl SinkConfig for WithShared<SlackConfig, HttpDelivery> {
    fn build(&self, _cx: &BuildContext) -> Result<Box<dyn Sink>, BuildError> {
        self.own.build(&self.shared)
    }
}

impl SlackConfig {
    fn build(&self, delivery: &HttpDelivery) -> Result<Box<dyn Sink>, BuildError> {
        let (mode, redactor) = self.mode()?;
        let renderer = Renderer::new(&self.title, &self.text, &self.context, &self.severity)?;
        let key = Template::parse(&self.key).map_err(|e| BuildError::new(format!("`key`: {e}")))?;
        let settings = DeliverySettings::new(
            delivery,
            &delivery.rate_limit.or_num(MESSAGES_PER_SECOND),
            &self.healthcheck,
        )?;
        require_sequential(&settings)?;
        Ok(Box::new(ChatSink::new(
            SlackApi::new(mode, renderer),
            settings,
            redactor,
            key,
            self.on_resolve,
        )))
    }
}

impl SlackConfig {
    /// Which API to use: exactly one of `webhook_url` or `token` +
    /// `channel`; and the secrets to keep out of logs.
    fn mode(&self) -> Result<(Mode, Redactor), BuildError> {
        match (non_empty(&self.webhook_url), non_empty(&self.token)) {
            (Some(url), None) => {
                if self.channel.is_some() {
                    return Err(BuildError::new(
                        "`channel` is for `token`: an incoming webhook always posts to the channel it was created for",
                    ));
                }
                let url = url.expose();
                base_url(url, "webhook_url").map_err(|_| {
                    BuildError::new("`webhook_url` must be an http(s) URL (https://hooks.slack.com/services/...)")
                })?;
                Ok((
                    Mode::Webhook {
                        url: url.to_string(),
                    },
                    Redactor::default().secret_url(url),
                ))
            }
            (None, Some(token)) => {
                let channel = self
                    .channel
                    .as_deref()
                    .map(str::trim)
                    .filter(|c| !c.is_empty())
                    .ok_or_else(|| {
                        BuildError::new("`token` needs `channel`: the channel to post to")
                    })?;
                Ok((
                    Mode::WebApi {
                        base: base_url(&self.api_base, "api_base")?,
                        token: token.expose().to_string(),
                        channel: channel.to_string(),
                    },
                    Redactor::default().secret(token.expose()),
                ))
            }
            (Some(_), Some(_)) => Err(BuildError::new(
                "set either `webhook_url` or `token` + `channel`, not both",
            )),
            (None, None) => Err(BuildError::new(
                "set `webhook_url` (an incoming webhook) or `token` + `channel` (the Web API)",
            )),
        }
    }
}

/// A secret option that is set and not empty (`${VAR:-}` may leave it
/// empty).
fn non_empty(secret: &Option<Secret>) -> Option<&Secret> {
    secret.as_ref().filter(|s| !s.expose().is_empty())
}
