//! The options of the `slack` sink, and building it (checks only, no I/O).

use std::num::NonZeroU64;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer};

use super::message::{DEFAULT_CONTEXT, DEFAULT_SEVERITY, DEFAULT_TEXT, DEFAULT_TITLE, Renderer};
use std::sync::Arc;

use super::actions::{ActionsConfig, Handler};
use super::{Mode, SlackApi, SlackSink};
use crate::components::BuildContext;
use crate::components::registry::WithShared;
use crate::components::sink::{Sink, SinkConfig};
use crate::diagnostic::BuildError;
use crate::http::{DeliverySettings, HealthcheckConfig, HttpDelivery};
use crate::options::HttpUrl;
use crate::secret::{Redactor, Secret, SecretUrl};
use crate::sinks::chat::{self, ChatSink, OnResolve, require_sequential};
use crate::template::Template;

/// Options of the `slack` sink.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SlackConfig {
    /// An incoming webhook URL (`https://hooks.slack.com/services/...`). A
    /// secret: use `${SLACK_WEBHOOK_URL}`; howl shows it as
    /// `https://hooks.slack.com/***` in logs and errors. Set either this or
    /// `token` and `channel`; an empty value (an unset
    /// `${SLACK_WEBHOOK_URL:-}`) counts as not set. Webhooks cannot edit or
    /// thread messages, so every occurrence and every resolution is a new
    /// message.
    #[serde(default, deserialize_with = "empty_is_unset")]
    #[schemars(extend("x-placeholder" = "https://hooks.slack.com/services/T0000/B0000/REPLACE-ME"))]
    webhook_url: Option<SecretUrl>,
    /// A bot token (`xoxb-...`, scope `chat:write`) for the Web API, which
    /// threads repeats and edits messages on resolve. A secret: use
    /// `${SLACK_BOT_TOKEN}`; it never appears in logs or errors. Needs
    /// `channel`.
    token: Option<Secret>,
    /// With `token`: the channel to post to, an id (`C0123456789`) or a
    /// name (`#alerts`) the bot is a member of.
    channel: Option<String>,
    /// The Web API's base URL; change it for a proxy or tests.
    #[serde(default = "default_api_base")]
    api_base: HttpUrl,
    /// The header of a message (plain text, cut to 150 characters), after
    /// 🔥 or "✅ Resolved:"; also the text of notifications. `Alert` when it
    /// renders empty.
    #[serde(default = "default_title")]
    title: Template,
    /// The details (mrkdwn, cut to 3000 characters); left out when it
    /// renders empty. Values from the event are escaped; the template
    /// itself may use mrkdwn (`*bold*`, `<https://runbook|runbook>`).
    #[serde(default = "default_text")]
    text: Template,
    /// The small print under the details (mrkdwn); left out when it renders
    /// empty.
    #[serde(default = "default_context")]
    context: Template,
    /// Picks the colour bar: red for `critical`, `error`, `fatal`, ...;
    /// amber for `warning` or anything unknown; blue for `info`, `notice`,
    /// `debug`. Resolved alerts are green.
    #[serde(default = "default_severity")]
    severity: Template,
    /// The identity of an alert: events with the same key are one alert,
    /// threaded and resolved together. An event whose key renders empty is
    /// posted as a message of its own.
    #[serde(default = "chat::default_key")]
    key: Template,
    /// What a resolving event (`.alert.state = "resolved"`) does to the
    /// alert's message: `edit` it to show the alert resolved
    /// (`chat.update`), `reply` in its thread, `send` a new message, or
    /// `ignore` it (send nothing). With a webhook, `edit` and `reply` post a
    /// new message.
    #[serde(default)]
    on_resolve: OnResolve,
    /// The start-up check: with `token`, `auth.test`, which tells whether
    /// the token is valid. Nothing is checked for a webhook (it cannot be
    /// without posting to it).
    #[serde(default)]
    healthcheck: HealthcheckConfig,
    /// Buttons under alert messages (with `token`) that suppress the
    /// alert's pattern or have it always alert, from Slack (see "Buttons"
    /// below).
    actions: Option<ActionsConfig>,
}

/// Reads `webhook_url`, an empty value being unset: a config may offer both
/// ways and let the environment pick (`webhook_url = "${SLACK_WEBHOOK_URL:-}"`
/// next to `token = "${SLACK_BOT_TOKEN:-}"`).
fn empty_is_unset<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<SecretUrl>, D::Error> {
    match Option::<String>::deserialize(deserializer)? {
        Some(text) if !text.is_empty() => SecretUrl::parse(&text)
            .map(Some)
            .map_err(serde::de::Error::custom),
        _ => Ok(None),
    }
}

fn default_api_base() -> HttpUrl {
    HttpUrl::parse("https://slack.com/api").expect("the default `api_base` is a valid URL")
}

/// A default template, one of the constants of [`super::message`].
fn template(text: &str) -> Template {
    Template::parse(text).expect("the default templates are valid")
}

fn default_title() -> Template {
    template(DEFAULT_TITLE)
}

fn default_text() -> Template {
    template(DEFAULT_TEXT)
}

fn default_context() -> Template {
    template(DEFAULT_CONTEXT)
}

fn default_severity() -> Template {
    template(DEFAULT_SEVERITY)
}

/// Slack's limit on messages per second in one channel.
const MESSAGES_PER_SECOND: NonZeroU64 = NonZeroU64::MIN;

impl SinkConfig for WithShared<SlackConfig, HttpDelivery> {
    fn build(&self, _cx: &BuildContext) -> Result<Box<dyn Sink>, BuildError> {
        self.own.build(&self.shared)
    }

    fn acknowledgements_by_default(&self) -> bool {
        true
    }
}

impl SlackConfig {
    fn build(&self, delivery: &HttpDelivery) -> Result<Box<dyn Sink>, BuildError> {
        let (mode, redactor) = self.mode()?;
        let renderer = Renderer::new(
            self.title.clone(),
            self.text.clone(),
            self.context.clone(),
            self.severity.clone(),
        );
        let settings = DeliverySettings::new(
            delivery,
            &delivery.rate_limit.or_num(MESSAGES_PER_SECOND),
            &self.healthcheck,
        )?;
        require_sequential(&settings)?;
        let actions = match (&self.actions, &mode) {
            (None, _) => None,
            (
                Some(actions),
                Mode::WebApi {
                    base,
                    token,
                    channel,
                },
            ) => {
                let actions = Arc::new(actions.build()?);
                Some(Handler {
                    base: base.clone(),
                    token: token.clone(),
                    channel: channel.clone(),
                    actions,
                    redactor: redactor.clone(),
                })
            }
            (Some(_), Mode::Webhook { .. }) => {
                return Err(BuildError::new(
                    "`actions` needs `token` + `channel`: an incoming webhook cannot update its \
                     messages",
                )
                .for_option("actions"));
            }
        };
        Ok(Box::new(SlackSink {
            chat: ChatSink::new(
                SlackApi::new(
                    mode,
                    renderer,
                    actions.as_ref().map(|h| Arc::clone(&h.actions)),
                ),
                settings,
                redactor,
                self.key.clone(),
                self.on_resolve,
            ),
            actions,
        }))
    }

    /// Which API to use: exactly one of `webhook_url` or `token` +
    /// `channel`; and the secrets to keep out of logs.
    fn mode(&self) -> Result<(Mode, Redactor), BuildError> {
        let token = self.token.as_ref().filter(|t| !t.expose().is_empty());
        match (&self.webhook_url, token) {
            (Some(url), None) => {
                if self.channel.is_some() {
                    return Err(BuildError::new(
                        "`channel` is for `token`: an incoming webhook always posts to the channel it was created for",
                    )
                    .for_option("channel"));
                }
                Ok((
                    Mode::Webhook {
                        url: url.url().clone(),
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
                            .for_option("channel")
                    })?;
                Ok((
                    Mode::WebApi {
                        base: self.api_base.as_str().trim_end_matches('/').to_string(),
                        token: token.expose().to_string(),
                        channel: channel.to_string(),
                    },
                    Redactor::default().secret(token.expose()),
                ))
            }
            (Some(_), Some(_)) => Err(BuildError::new(
                "set either `webhook_url` or `token` + `channel`, not both",
            )
            .for_option("token")),
            (None, None) => Err(BuildError::new(
                "set `webhook_url` (an incoming webhook) or `token` + `channel` (the Web API)",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(options: &str) -> Result<SlackConfig, String> {
        toml::from_str(options).map_err(|e| e.message().to_string())
    }

    #[test]
    fn an_empty_webhook_url_is_unset_so_the_environment_can_pick_the_api() {
        let config = parse("webhook_url = \"\"\ntoken = \"xoxb-1\"\nchannel = \"C1\"").unwrap();
        assert!(config.webhook_url.is_none());
        assert!(matches!(config.mode(), Ok((Mode::WebApi { .. }, _))));
    }

    #[test]
    fn a_bad_webhook_url_fails_while_parsing_without_showing_it() {
        let error = parse("webhook_url = \"hooks.slack.com/services/T0/B0/s3cr3t\"").unwrap_err();
        assert!(error.contains("invalid URL"), "{error}");
        assert!(!error.contains("s3cr3t"), "{error}");
    }

    #[test]
    fn templates_are_read_while_parsing() {
        let error = parse("token = \"xoxb-1\"\nchannel = \"C1\"\ntitle = \"{{ .x\"").unwrap_err();
        assert!(error.contains("invalid template"), "{error}");
        let config = parse("webhook_url = \"https://hooks.slack.com/services/T0/B0/x\"").unwrap();
        assert_eq!(config.title.as_str(), DEFAULT_TITLE);
        assert_eq!(config.api_base.as_str(), "https://slack.com/api");
    }
}
