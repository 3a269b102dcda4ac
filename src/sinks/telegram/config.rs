//! The options of the `telegram` sink, and building it (checks only, no
//! I/O).

use std::num::NonZeroU64;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize};

use super::actions::ActionsConfig;
use super::message::{ParseMode, Renderer};
use super::{TelegramApi, TelegramSink};
use crate::components::BuildContext;
use crate::components::registry::WithShared;
use crate::components::sink::{Sink, SinkConfig};
use crate::diagnostic::BuildError;
use crate::http::{DeliverySettings, HealthcheckConfig, HttpDelivery};
use crate::options::HttpUrl;
use crate::secret::{Redactor, Secret};
use crate::sinks::chat::{self, ChatSink, OnResolve, require_sequential};
use crate::template::Template;

/// Options of the `telegram` sink.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TelegramConfig {
    /// The bot's token from @BotFather (`123456:ABC-...`). A secret: use
    /// `${TELEGRAM_BOT_TOKEN}` rather than writing it in the file. It is
    /// part of every request URL; howl replaces it with `***` in logs and
    /// errors.
    #[schemars(extend("x-placeholder" = "123456:REPLACE-WITH-THE-BOT-TOKEN"))]
    bot_token: Secret,
    /// The chat to post to: a numeric id (groups are negative; supergroups
    /// and channels start with `-100`; quoted numbers are ids too) or a
    /// public channel's `@username`.
    #[schemars(extend("x-placeholder" = -1001234567890_i64))]
    chat_id: ChatId,
    /// The forum topic to post to, in a supergroup with topics.
    message_thread_id: Option<i64>,
    /// The Bot API server; change it for a local Bot API server, a proxy, or
    /// tests.
    #[serde(default = "default_api_base")]
    api_base: HttpUrl,
    /// `HTML`: the templates may use [Telegram's
    /// tags](https://core.telegram.org/bots/api#html-style) (`<b>`, `<i>`,
    /// `<code>`, `<pre>`, `<a href>`, `<blockquote>`, ...), checked when
    /// howl starts, and every value taken from the event is escaped (`<`,
    /// `>`, `&`, `"`), so a log line can never break or inject markup.
    /// `none`: plain text, nothing escaped.
    #[serde(default)]
    parse_mode: ParseMode,
    /// The message of a firing alert. The default suits both `pattern`
    /// events and threshold alerts.
    #[schemars(extend("x-default" = "see below"))]
    text: Option<Template>,
    /// The message of a resolved alert; it replaces the firing message when
    /// `on_resolve = "edit"`.
    #[schemars(extend("x-default" = "see below"))]
    resolved_text: Option<Template>,
    /// The identity of an alert: events with the same key are one alert,
    /// replied to and resolved together. An event whose key renders empty
    /// is posted as a message of its own.
    #[serde(default = "chat::default_key")]
    key: Template,
    /// What a resolving event (`.alert.state = "resolved"`) does to the
    /// alert's message: `edit` it to show the alert resolved, `reply` to it,
    /// `send` a new message, or `ignore` it (send nothing).
    #[serde(default)]
    on_resolve: OnResolve,
    /// The start-up check: `getMe`, which tells whether the token is valid.
    #[serde(default)]
    healthcheck: HealthcheckConfig,
    /// Buttons under alert messages that suppress the alert's pattern or
    /// have it always alert, from the chat (see "Buttons" below).
    actions: Option<ActionsConfig>,
}

/// A chat: a numeric id or a public `@username`. A quoted number is an id
/// (TOML users often quote them, and `${TELEGRAM_CHAT_ID}` always is a
/// string).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum ChatId {
    /// A numeric chat id (it may exceed 32 bits).
    Id(i64),
    /// `@channelusername`.
    Name(String),
}

impl<'de> Deserialize<'de> for ChatId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Written {
            Id(i64),
            Text(String),
        }
        match Written::deserialize(deserializer).map_err(|_| {
            serde::de::Error::custom("a chat id must be a number or `@channelusername`")
        })? {
            Written::Id(id) => Ok(Self::Id(id)),
            Written::Text(name) if name.starts_with('@') && name.len() > 1 => Ok(Self::Name(name)),
            Written::Text(text) => text.trim().parse().map(Self::Id).map_err(|_| {
                serde::de::Error::custom(format!(
                    "a chat id must be a number or `@channelusername`, not `{text}`"
                ))
            }),
        }
    }
}

fn default_api_base() -> HttpUrl {
    HttpUrl::parse("https://api.telegram.org").expect("the default `api_base` is a valid URL")
}

/// Telegram's limit on messages per second in one chat.
const MESSAGES_PER_SECOND: NonZeroU64 = NonZeroU64::MIN;

impl SinkConfig for WithShared<TelegramConfig, HttpDelivery> {
    fn build(&self, _cx: &BuildContext) -> Result<Box<dyn Sink>, BuildError> {
        self.own.build(&self.shared)
    }

    fn acknowledgements_by_default(&self) -> bool {
        true
    }
}

impl TelegramConfig {
    fn build(&self, delivery: &HttpDelivery) -> Result<Box<dyn Sink>, BuildError> {
        let token = self.bot_token.expose();
        // The token becomes part of the URL path, so it must not be able
        // to change the path or end it.
        if token.is_empty()
            || token.contains(['/', '?', '#'])
            || token.contains(char::is_whitespace)
        {
            return Err(BuildError::new(
                "`bot_token` is not a bot token (expected `123456:ABC-...`, as @BotFather gives it)",
            )
            .for_option("bot_token"));
        }
        let base = self.api_base.as_str().trim_end_matches('/');
        let renderer = Renderer::new(
            self.parse_mode,
            self.text.as_ref(),
            self.resolved_text.as_ref(),
        )?;
        let settings = DeliverySettings::new(
            delivery,
            &delivery.rate_limit.or_num(MESSAGES_PER_SECOND),
            &self.healthcheck,
        )?;
        let actions = self
            .actions
            .as_ref()
            .map(|actions| actions.build().map(std::sync::Arc::new))
            .transpose()?;
        let api = TelegramApi::new(
            format!("{base}/bot{token}/"),
            self.chat_id.clone(),
            self.message_thread_id,
            renderer,
            actions.clone(),
        );
        // The part after the bot id is the secret; an answer that echoes
        // only it must not show it either.
        let mut redactor = Redactor::default().secret(token);
        if let Some((_, secret)) = token.split_once(':').filter(|(_, s)| s.len() >= 8) {
            redactor = redactor.secret(secret);
        }
        require_sequential(&settings)?;
        Ok(Box::new(TelegramSink {
            chat: ChatSink::new(
                api,
                settings,
                redactor.clone(),
                self.key.clone(),
                self.on_resolve,
            ),
            actions: actions.map(|actions| (format!("{base}/bot{token}/"), actions, redactor)),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(options: &str) -> Result<TelegramConfig, String> {
        toml::from_str(options).map_err(|e| e.message().to_string())
    }

    #[test]
    fn chat_ids_are_numbers_quoted_or_not_or_channel_names() {
        let chat = |value: &str| {
            parse(&format!("bot_token = 't'\nchat_id = {value}")).map(|config| config.chat_id)
        };
        assert_eq!(chat("-100123"), Ok(ChatId::Id(-100_123)));
        assert_eq!(chat("'-100123'"), Ok(ChatId::Id(-100_123)));
        assert_eq!(chat("'@alerts'"), Ok(ChatId::Name("@alerts".to_string())));
        let error = chat("'alerts'").unwrap_err();
        assert!(
            error.contains("a chat id must be a number or `@channelusername`"),
            "{error}"
        );
    }

    #[test]
    fn defaults_and_templates_are_read_while_parsing() {
        let config = parse("bot_token = 't'\nchat_id = 1").unwrap();
        assert_eq!(config.api_base.as_str(), "https://api.telegram.org");
        assert_eq!(config.key.as_str(), crate::alert::DEFAULT_KEY);
        let error = parse("bot_token = 't'\nchat_id = 1\ntext = '{{ .message'").unwrap_err();
        assert!(error.contains("invalid template"), "{error}");
        let error =
            parse("bot_token = 't'\nchat_id = 1\napi_base = 'api.telegram.org'").unwrap_err();
        assert!(error.contains("invalid URL"), "{error}");
    }
}
