//! The options of the `telegram` sink, and building it (checks only, no
//! I/O).

use std::num::NonZeroU64;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::TelegramApi;
use super::message::{ParseMode, Renderer};
use crate::alert::DEFAULT_KEY;
use crate::components::BuildContext;
use crate::components::registry::WithShared;
use crate::components::sink::{Sink, SinkConfig};
use crate::diagnostic::BuildError;
use crate::http::{DeliverySettings, HealthcheckConfig, HttpDelivery, base_url};
use crate::secret::{Redactor, Secret};
use crate::sinks::chat::{ChatSink, OnResolve, require_sequential};
use crate::template::Template;

/// Options of the `telegram` sink.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TelegramConfig {
    /// The bot's token from @BotFather (`123456:ABC-...`). A secret: use
    /// `${TELEGRAM_BOT_TOKEN}` rather than writing it in the file; howl never
    /// logs it.
    bot_token: Secret,
    /// The chat to post to: a numeric id (groups are negative, supergroups
    /// and channels start with -100) or a public `@channelusername`.
    chat_id: ChatId,
    /// The forum topic to post to, in a supergroup with topics.
    message_thread_id: Option<i64>,
    /// The Bot API server; change it for a local Bot API server, a proxy, or
    /// tests.
    #[serde(default = "default_api_base")]
    api_base: String,
    /// `HTML` (values from the event are escaped; the templates may use
    /// Telegram's tags) or `none` (plain text).
    #[serde(default)]
    parse_mode: ParseMode,
    /// The message of a firing alert (a template). The default suits both
    /// `pattern` and threshold alerts.
    text: Option<String>,
    /// The message of a resolved alert (a template), which replaces the
    /// firing message when `on_resolve = "edit"`.
    resolved_text: Option<String>,
    /// The identity of an alert (a template): occurrences with the same key
    /// are one alert, threaded and resolved together.
    #[serde(default = "default_key")]
    key: String,
    /// When an alert resolves: `edit` its message, `reply` to it, `send` a
    /// new message, or `ignore` it.
    #[serde(default)]
    on_resolve: OnResolve,
    /// The start-up check (`getMe`: is the token valid?).
    #[serde(default)]
    healthcheck: HealthcheckConfig,
}

/// A chat: a numeric id or a public `@username`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum ChatId {
    /// A numeric chat id (it may exceed 32 bits).
    Id(i64),
    /// `@channelusername`.
    Name(String),
}

fn default_api_base() -> String {
    "https://api.telegram.org".to_string()
}

fn default_key() -> String {
    DEFAULT_KEY.to_string()
}

/// Telegram's limit on messages per second in one chat.
const MESSAGES_PER_SECOND: NonZeroU64 = NonZeroU64::MIN;

impl SinkConfig for WithShared<TelegramConfig, HttpDelivery> {
    fn build(&self, _cx: &BuildContext) -> Result<Box<dyn Sink>, BuildError> {
        self.own.build(&self.shared)
    }
}

impl TelegramConfig {
    fn build(&self, delivery: &HttpDelivery) -> Result<Box<dyn Sink>, BuildError> {
        let token = self.bot_token.expose();
        if token.is_empty()
            || token.contains(['/', '?', '#'])
            || token.contains(char::is_whitespace)
        {
            return Err(BuildError::new(
                "`bot_token` is not a bot token (expected `123456:ABC-...`, as @BotFather gives it)",
            ));
        }
        let base = base_url(&self.api_base, "api_base")?;
        let renderer = Renderer::new(
            self.parse_mode,
            self.text.as_deref(),
            self.resolved_text.as_deref(),
        )?;
        let key = Template::parse(&self.key).map_err(|e| BuildError::new(format!("`key`: {e}")))?;
        let settings = DeliverySettings::new(
            delivery,
            &delivery.rate_limit.or_num(MESSAGES_PER_SECOND),
            &self.healthcheck,
        )?;
        let api = TelegramApi::new(
            format!("{base}/bot{token}/"),
            self.chat_id()?,
            self.message_thread_id,
            renderer,
        );
        let redactor = Redactor::default().secret(token);
        require_sequential(&settings)?;
        Ok(Box::new(ChatSink::new(
            api,
            settings,
            redactor,
            key,
            self.on_resolve,
        )))
    }
}

impl TelegramConfig {
    /// The chat, with numeric strings read as ids (TOML users often quote
    /// them).
    fn chat_id(&self) -> Result<ChatId, BuildError> {
        match &self.chat_id {
            ChatId::Name(name) if name.starts_with('@') && name.len() > 1 => {
                Ok(self.chat_id.clone())
            }
            ChatId::Name(name) => name.trim().parse().map(ChatId::Id).map_err(|_| {
                BuildError::new(format!(
                    "`chat_id` must be a number or `@channelusername`, not `{name}`"
                ))
            }),
            ChatId::Id(_) => Ok(self.chat_id.clone()),
        }
    }
}
