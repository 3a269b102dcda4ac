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
use vrl::path::OwnedValuePath;

use crate::diagnostic::BuildError;
use crate::event::Event;
use crate::internal_events::{ComponentMetrics, ErrorType, Stage};
use crate::options::FieldPath;
use crate::options::duration::parse_duration;
use crate::secret::Redactor;
use crate::suppressions::{NewSuppression, OperatorAction, Suppressions};

/// The `actions` table of the `telegram` sink.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ActionsConfig {
    /// The buttons under each alert message, in order: `suppress:DURATION`
    /// (e.g. `suppress:1d`, `suppress:12h`) and `always_alert`.
    #[serde(default = "default_buttons")]
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
    #[serde(default = "default_pattern_field")]
    pattern_field: FieldPath,
}

fn default_buttons() -> Vec<ButtonSpec> {
    vec![
        ButtonSpec::Suppress(Duration::from_secs(86_400)),
        ButtonSpec::Suppress(Duration::from_secs(7 * 86_400)),
        ButtonSpec::AlwaysAlert,
    ]
}

fn default_pattern_field() -> FieldPath {
    FieldPath::parse("pattern.id").unwrap_or_else(|e| unreachable!("`pattern.id` is a path: {e}"))
}

/// One button, as written: `suppress:DURATION` or `always_alert`.
#[derive(Debug, Clone, Copy, PartialEq)]
enum ButtonSpec {
    Suppress(Duration),
    AlwaysAlert,
}

impl<'de> Deserialize<'de> for ButtonSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        let bad = |why: String| {
            serde::de::Error::custom(format!(
                "a button is `suppress:DURATION` (e.g. `suppress:7d`) or `always_alert`; `{text}` {why}"
            ))
        };
        match text.split_once(':') {
            None if text == "always_alert" => Ok(Self::AlwaysAlert),
            Some(("suppress", duration)) => match parse_duration(duration.trim()) {
                Ok(d) if !d.is_zero() => Ok(Self::Suppress(d)),
                Ok(_) => Err(bad("suppresses for no time".to_string())),
                Err(e) => Err(bad(format!("has no valid duration: {e}"))),
            },
            _ => Err(bad("is neither".to_string())),
        }
    }
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
        if self.buttons.is_empty() {
            return Err(BuildError::new(
                "`actions.buttons` is empty; remove `actions` to send messages without buttons",
            )
            .for_option("actions.buttons"));
        }
        Ok(Actions {
            buttons: self.buttons.clone(),
            allowed_users: self.allowed_users.clone(),
            allowed_chats: self.allowed_chats.clone(),
            pattern_field: self.pattern_field.path().clone(),
        })
    }
}

/// The checked `actions`.
#[derive(Debug)]
pub struct Actions {
    buttons: Vec<ButtonSpec>,
    allowed_users: Vec<UserRef>,
    allowed_chats: Vec<i64>,
    pattern_field: OwnedValuePath,
}

/// Telegram's limit on `callback_data`.
const MAX_CALLBACK_BYTES: usize = 64;

impl Actions {
    /// The inline keyboard for `event`'s message (`reply_markup`), when it
    /// has a pattern short enough to fit in a button.
    pub fn keyboard(&self, event: &Event) -> Option<Value> {
        let pattern = match event.get(&self.pattern_field)? {
            vrl::value::Value::Null => return None,
            value => value.to_string_lossy().into_owned(),
        };
        self.keyboard_for(&pattern)
    }

    fn keyboard_for(&self, pattern: &str) -> Option<Value> {
        let buttons: Option<Vec<Value>> = self
            .buttons
            .iter()
            .map(|button| {
                let (label, data) = match button {
                    ButtonSpec::Suppress(d) => (
                        format!("Suppress {}", human(*d)),
                        format!("s:{}:{pattern}", d.as_secs()),
                    ),
                    ButtonSpec::AlwaysAlert => ("Always alert".to_string(), format!("a:{pattern}")),
                };
                (!pattern.is_empty() && data.len() <= MAX_CALLBACK_BYTES)
                    .then(|| json!({"text": label, "callback_data": data}))
            })
            .collect();
        Some(json!({ "inline_keyboard": [buttons?] }))
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

/// `7d`, `12h`, `30m`, `45s`: the largest unit that divides the duration.
fn human(duration: Duration) -> String {
    let secs = duration.as_secs();
    for (unit, size) in [("d", 86_400), ("h", 3600), ("m", 60)] {
        if secs >= size && secs.is_multiple_of(size) {
            return format!("{}{unit}", secs / size);
        }
    }
    format!("{secs}s")
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
            match self
                .act(query.data.as_deref().unwrap_or_default(), &query.from)
                .await
            {
                Ok(outcome) => outcome,
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

    /// What a press does: `(answer, status line, keyboard)`; the keyboard
    /// is `None` when nothing changed.
    async fn act(
        &self,
        data: &str,
        user: &User,
    ) -> Result<(String, Option<String>, Option<Value>), String> {
        let who = user.name();
        let created_by = format!("telegram {who} (id {})", user.id);
        let undo = |id: &str| json!({"inline_keyboard": [[{"text": "Undo", "callback_data": format!("u:{id}")}]]});
        let (kind, rest) = data.split_once(':').ok_or("unknown button")?;
        match kind {
            "s" => {
                let (secs, pattern) = rest.split_once(':').ok_or("unknown button")?;
                let ttl = Duration::from_secs(secs.parse().map_err(|_| "unknown button")?);
                let changed = self
                    .suppressions
                    .create(NewSuppression {
                        pattern_id: pattern.to_string(),
                        action: OperatorAction::Suppress,
                        reason: format!("suppressed for {} from Telegram by {who}", human(ttl)),
                        ttl: Some(ttl),
                        created_by,
                    })
                    .await
                    .map_err(|e| e.to_string())?;
                let mut answer = format!("Suppressed for {}.", human(ttl));
                if let Some(error) = changed.silence_errors.first() {
                    answer.push_str(&format!(" (The Alertmanager silence failed: {error}.)"));
                }
                Ok((
                    answer,
                    Some(format!("Suppressed for {} by {who}", human(ttl))),
                    Some(undo(&changed.suppression.id)),
                ))
            }
            "a" => {
                let changed = self
                    .suppressions
                    .create(NewSuppression {
                        pattern_id: rest.to_string(),
                        action: OperatorAction::AlwaysAlert,
                        reason: format!("set to always alert from Telegram by {who}"),
                        ttl: None,
                        created_by,
                    })
                    .await
                    .map_err(|e| e.to_string())?;
                Ok((
                    "It will always alert.".to_string(),
                    Some(format!("Always alerts (set by {who})")),
                    Some(undo(&changed.suppression.id)),
                ))
            }
            "u" => match self
                .suppressions
                .remove(rest)
                .await
                .map_err(|e| e.to_string())?
            {
                Some(changed) => {
                    tracing::info!(user = %who, id = %changed.suppression.id, "telegram: a decision was undone");
                    let keyboard = self
                        .actions
                        .keyboard_for(&changed.suppression.pattern_id)
                        .unwrap_or_else(|| json!({"inline_keyboard": []}));
                    Ok(("Undone.".to_string(), None, Some(keyboard)))
                }
                None => Ok(("Nothing to undo: it already ended.".to_string(), None, None)),
            },
            _ => Err("unknown button".to_string()),
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
