//! `actions`: buttons under alert messages that act on the alert's pattern
//! from the chat where the alert is read: suppress it for a while, have it
//! always alert, and undo either.
//!
//! A button carries its action in its `callback_data` (`s:SECONDS:PATTERN`,
//! `a:PATTERN`, `u:SUPPRESSION_ID`, within Telegram's 64 bytes). Presses
//! arrive as `callback_query` updates through `getUpdates` long polling
//! (no public URL needed). Each press is checked against `allowed_users`
//! and `allowed_chats`, applied to the process's [`Suppressions`] (the
//! same registry the API and `howl suppress` change, so `llm_suppress`
//! applies it at once, and Alertmanager silences follow where
//! `alertmanager_silence` is set), answered (`answerCallbackQuery`), and
//! shown: the message gets a line saying who did what, and an Undo button.
//!
//! One poller per bot: Telegram answers a second concurrent `getUpdates`
//! with 409, which is logged with what to do.

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer};
use serde_json::{Value, json};

use crate::diagnostic::BuildError;
use crate::event::Event;
use crate::internal_events::{ComponentMetrics, ErrorType, Stage};
use crate::options::FieldPath;
use crate::secret::Redactor;
use crate::sinks::chat::actions::{self as chat_actions, Applied, ButtonSpec, Buttons, Presser};
use crate::suppressions::Suppressions;

/// The `actions` table of the `telegram` sink.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ActionsConfig {
    /// The buttons under each alert message, in order: `suppress:DURATION`
    /// (e.g. `suppress:1d`, `suppress:12h`) and `always_alert`.
    #[serde(default = "chat_actions::default_buttons")]
    #[schemars(with = "Vec<String>", extend("x-default" = r#"["suppress:1d", "suppress:7d", "always_alert"]"#))]
    buttons: Vec<ButtonSpec>,
    /// Who may press them: Telegram user ids (numbers) or `@username`s.
    /// Anyone else is told "not allowed", and nothing changes.
    #[serde(default)]
    #[schemars(extend("x-default" = "none"))]
    allowed_users: Vec<UserRef>,
    /// In which chats presses count (numeric chat ids). With both lists
    /// set, a press needs both; at least one must be set.
    #[serde(default)]
    #[schemars(extend("x-default" = "none"))]
    allowed_chats: Vec<i64>,
    /// The field holding the pattern the buttons act on; messages of
    /// events without it get no buttons.
    #[serde(default = "chat_actions::default_pattern_field")]
    pattern_field: FieldPath,
}

/// A user allowed to act: an id, or an `@username` (quoted numbers are
/// ids).
#[derive(Debug, Clone, PartialEq, JsonSchema)]
#[serde(untagged)]
enum UserRef {
    Id(i64),
    Name(String),
}

impl<'de> Deserialize<'de> for UserRef {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Written {
            Id(i64),
            Text(String),
        }
        match Written::deserialize(deserializer) {
            Ok(Written::Id(id)) => Ok(Self::Id(id)),
            Ok(Written::Text(name)) if name.len() > 1 && name.starts_with('@') => {
                Ok(Self::Name(name[1..].to_ascii_lowercase()))
            }
            Ok(Written::Text(text)) => text.trim().parse().map(Self::Id).map_err(|_| {
                serde::de::Error::custom(format!(
                    "a user is a numeric id or `@username`, not `{text}`"
                ))
            }),
            Err(_) => Err(serde::de::Error::custom(
                "a user is a numeric id or `@username`",
            )),
        }
    }
}

impl ActionsConfig {
    /// The checked settings. Someone must be named: a button must never
    /// be open to anyone who can see the chat by default.
    pub fn build(&self) -> Result<Actions, BuildError> {
        if self.allowed_users.is_empty() && self.allowed_chats.is_empty() {
            return Err(BuildError::new(
                "`actions` needs `allowed_users` or `allowed_chats`: who may suppress alerts \
                 with a button (Telegram user ids or @usernames, chat ids)",
            )
            .for_option("actions"));
        }
        let buttons = Buttons::new(&self.buttons, &self.pattern_field).ok_or_else(|| {
            BuildError::new(
                "`actions.buttons` is empty; remove `actions` to send messages without buttons",
            )
            .for_option("actions.buttons")
        })?;
        Ok(Actions {
            buttons,
            allowed_users: self.allowed_users.clone(),
            allowed_chats: self.allowed_chats.clone(),
        })
    }
}

/// The checked `actions`.
#[derive(Debug)]
pub struct Actions {
    buttons: Buttons,
    allowed_users: Vec<UserRef>,
    allowed_chats: Vec<i64>,
}

impl Actions {
    /// The inline keyboard for `event`'s message (`reply_markup`), when it
    /// has a pattern short enough to fit in a button.
    pub fn keyboard(&self, event: &Event) -> Option<Value> {
        self.keyboard_for(&self.buttons.pattern(event)?)
    }

    fn keyboard_for(&self, pattern: &str) -> Option<Value> {
        let row: Vec<Value> = self
            .buttons
            .for_pattern(pattern)?
            .into_iter()
            .map(|(label, data)| json!({"text": label, "callback_data": data}))
            .collect();
        Some(json!({ "inline_keyboard": [row] }))
    }

    fn allows(&self, user: &User, chat: Option<i64>) -> bool {
        let user_ok = self.allowed_users.is_empty()
            || self.allowed_users.iter().any(|allowed| match allowed {
                UserRef::Id(id) => *id == user.id,
                UserRef::Name(name) => user
                    .username
                    .as_deref()
                    .is_some_and(|u| u.eq_ignore_ascii_case(name)),
            });
        let chat_ok =
            self.allowed_chats.is_empty() || chat.is_some_and(|c| self.allowed_chats.contains(&c));
        user_ok && chat_ok
    }
}

/// A Telegram user, as a callback names them.
#[derive(Debug, Deserialize)]
struct User {
    id: i64,
    username: Option<String>,
}

impl User {
    /// How decisions name them: `@alice`, or `user 123` without a name.
    fn name(&self) -> String {
        match &self.username {
            Some(name) => format!("@{name}"),
            None => format!("user {}", self.id),
        }
    }
}

#[derive(Debug, Deserialize)]
struct Chat {
    id: i64,
}

/// The message a button was pressed under.
#[derive(Debug, Deserialize)]
struct Message {
    message_id: i64,
    chat: Chat,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    entities: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct CallbackQuery {
    id: String,
    from: User,
    message: Option<Message>,
    data: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Update {
    update_id: i64,
    callback_query: Option<CallbackQuery>,
}

/// How long one `getUpdates` waits for a press (Telegram allows up to 50).
const LONG_POLL_SECS: u64 = 25;
/// The longest pause after failed polls.
const LONGEST_PAUSE: Duration = Duration::from_secs(30);
/// Marks the line a press adds to a message, so Undo can take it away.
const STATUS_MARK: &str = "\n\n⚙ ";

/// Polls for presses and applies them.
pub struct Poller {
    /// `{api_base}/bot{token}/`: a secret.
    pub base: String,
    /// What buttons do and who may press them.
    pub actions: std::sync::Arc<Actions>,
    /// The registry presses change.
    pub suppressions: Suppressions,
    /// The sink's metrics.
    pub metrics: std::sync::Arc<ComponentMetrics>,
    /// Hides the token in anything logged.
    pub redactor: Redactor,
}

impl Poller {
    /// Polls until the task is dropped (the sink stops).
    pub async fn run(self) {
        let client = match crate::http::http_client(Duration::from_secs(LONG_POLL_SECS + 10)) {
            Ok(client) => client,
            Err(error) => {
                tracing::error!("telegram actions: {}", error.message);
                return;
            }
        };
        let mut offset: Option<i64> = None;
        let mut pause = Duration::from_secs(1);
        loop {
            let mut params = json!({
                "timeout": LONG_POLL_SECS,
                "allowed_updates": ["callback_query"],
            });
            if let Some(offset) = offset {
                params["offset"] = json!(offset);
            }
            match self.call(&client, "getUpdates", &params).await {
                Ok(result) => {
                    pause = Duration::from_secs(1);
                    let updates: Vec<Update> = serde_json::from_value(result).unwrap_or_default();
                    for update in updates {
                        offset = Some(update.update_id + 1);
                        if let Some(query) = update.callback_query {
                            self.handle(&client, query).await;
                        }
                    }
                }
                Err(failure) => {
                    self.metrics.error(
                        ErrorType::ReadFailed,
                        Stage::Receiving,
                        &format_args!("telegram actions: getUpdates failed: {failure}"),
                    );
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(LONGEST_PAUSE);
                }
            }
        }
    }

    /// Calls a Bot API method; its `result`, or why not (redacted).
    async fn call(
        &self,
        client: &reqwest::Client,
        method: &str,
        params: &Value,
    ) -> Result<Value, String> {
        let url = format!("{}{method}", self.base);
        let response = client
            .post(&url)
            .json(params)
            .send()
            .await
            .map_err(|e| self.redactor.redact(&crate::http::error_chain(&e)))?;
        let status = response.status();
        let answer: Value = response
            .json()
            .await
            .map_err(|e| self.redactor.redact(&crate::http::error_chain(&e)))?;
        if status.is_success() && answer["ok"] == json!(true) {
            return Ok(answer["result"].clone());
        }
        let description = answer["description"].as_str().unwrap_or("no description");
        let hint = if status.as_u16() == 409 {
            ": another program polls this bot (another howl, or another `telegram` sink with \
             `actions` and the same bot_token), or the bot has a webhook set \
             (`deleteWebhook`); only one may receive its button presses"
        } else {
            ""
        };
        Err(self
            .redactor
            .redact(&format!("HTTP {}: {description}{hint}", status.as_u16())))
    }

    /// Applies one press: checks who, acts, answers, and shows it.
    async fn handle(&self, client: &reqwest::Client, query: CallbackQuery) {
        let chat = query.message.as_ref().map(|m| m.chat.id);
        let who = query.from.name();
        let (answer, status, keyboard) = if !self.actions.allows(&query.from, chat) {
            tracing::info!(user = %who, user_id = query.from.id, "telegram: a button press by someone not allowed was ignored");
            ("You are not allowed to do this.".to_string(), None, None)
        } else {
            let presser = Presser {
                created_by: format!("telegram {who} (id {})", query.from.id),
                shown: who,
                platform: "Telegram",
            };
            match chat_actions::apply(
                &self.suppressions,
                query.data.as_deref().unwrap_or_default(),
                &presser,
            )
            .await
            {
                Ok(Applied::Decided {
                    answer,
                    status,
                    undo,
                }) => (
                    answer,
                    Some(status),
                    Some(json!({"inline_keyboard": [[{"text": "Undo", "callback_data": undo}]]})),
                ),
                Ok(Applied::Undone { pattern }) => (
                    "Undone.".to_string(),
                    None,
                    Some(
                        self.actions
                            .keyboard_for(&pattern)
                            .unwrap_or_else(|| json!({"inline_keyboard": []})),
                    ),
                ),
                Ok(Applied::Nothing { answer }) => (answer, None, None),
                Err(error) => (format!("Failed: {error}"), None, None),
            }
        };
        let mut params = json!({"callback_query_id": query.id, "text": cut(&answer, 200)});
        if keyboard.is_none() {
            params["show_alert"] = json!(true);
        }
        if let Err(failure) = self.call(client, "answerCallbackQuery", &params).await {
            tracing::warn!("telegram actions: answerCallbackQuery failed: {failure}");
        }
        let (Some(message), Some(keyboard)) = (query.message, keyboard) else {
            return;
        };
        let Some(text) = message.text else {
            return;
        };
        let base = text.split(STATUS_MARK).next().unwrap_or_default();
        let text = match status {
            Some(status) => format!("{base}{STATUS_MARK}{status}"),
            None => base.to_string(),
        };
        let mut params = json!({
            "chat_id": message.chat.id,
            "message_id": message.message_id,
            "text": text,
            "reply_markup": keyboard,
            "link_preview_options": {"is_disabled": true},
        });
        if let Some(entities) = message.entities {
            params["entities"] = entities;
        }
        if let Err(failure) = self.call(client, "editMessageText", &params).await {
            tracing::warn!("telegram actions: cannot update the message: {failure}");
        }
    }
}

/// At most `limit` characters.
fn cut(text: &str, limit: usize) -> String {
    text.chars().take(limit).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn actions(options: &str) -> Result<Actions, String> {
        let config: ActionsConfig = toml::from_str(options).map_err(|e| e.message().to_string())?;
        config.build().map_err(|e| e.message)
    }

    #[test]
    fn buttons_carry_their_action_and_only_listed_people_may_press() {
        let actions = actions("allowed_users = [7, '@Alice']").unwrap();
        let keyboard = actions.keyboard_for("3f9a0c1d2e4b5a69").unwrap();
        assert_eq!(
            keyboard,
            json!({"inline_keyboard": [[
                {"text": "Suppress 1d", "callback_data": "s:86400:3f9a0c1d2e4b5a69"},
                {"text": "Suppress 7d", "callback_data": "s:604800:3f9a0c1d2e4b5a69"},
                {"text": "Always alert", "callback_data": "a:3f9a0c1d2e4b5a69"},
            ]]})
        );
        assert!(
            actions.keyboard_for(&"x".repeat(60)).is_none(),
            "over 64 bytes"
        );
        let user = |id, name: Option<&str>| User {
            id,
            username: name.map(str::to_string),
        };
        assert!(actions.allows(&user(7, None), Some(-1)));
        assert!(actions.allows(&user(8, Some("alice")), None));
        assert!(!actions.allows(&user(8, Some("mallory")), Some(-1)));

        let both = super::tests::actions("allowed_users = [7]\nallowed_chats = [-100]").unwrap();
        assert!(both.allows(&user(7, None), Some(-100)));
        assert!(!both.allows(&user(7, None), Some(-200)), "another chat");
    }

    #[test]
    fn options_that_would_open_buttons_to_anyone_or_make_none_are_refused() {
        let error = actions("").unwrap_err();
        assert!(error.contains("allowed_users"), "{error}");
        let error = actions("allowed_users = [1]\nbuttons = []").unwrap_err();
        assert!(error.contains("empty"), "{error}");
        let error = actions("allowed_users = [1]\nbuttons = ['suppress:forever']").unwrap_err();
        assert!(error.contains("no valid duration"), "{error}");
        let error = actions("allowed_users = ['alice']").unwrap_err();
        assert!(error.contains("numeric id or `@username`"), "{error}");
        let custom = actions("allowed_chats = [-5]\nbuttons = ['suppress:12h', 'always_alert']")
            .unwrap()
            .keyboard_for("p")
            .unwrap();
        assert_eq!(custom["inline_keyboard"][0][0]["text"], "Suppress 12h");
    }
}
