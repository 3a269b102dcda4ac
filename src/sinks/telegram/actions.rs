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

use crate::diagnostic::{BuildError, escape_controls};
use crate::event::Event;
use crate::internal_events::{ComponentMetrics, ErrorType, Stage};
use crate::options::FieldPath;
use crate::secret::{Redactor, Secret};
use crate::sinks::chat::actions::{self as chat_actions, Applied, ButtonSpec, Buttons, Presser};
use crate::state::StateHandle;
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
    /// How presses arrive: `polling` (`getUpdates`; no public URL needed)
    /// or `webhook` (Telegram posts them to howl's API at
    /// `/api/v1/telegram/ID/updates`; set it with `setWebhook`).
    #[serde(default)]
    updates: UpdatesMode,
    /// With `updates = "webhook"`: the `secret_token` given to
    /// `setWebhook` (1-256 of `A-Z a-z 0-9 _ -`), which Telegram sends
    /// with every update and howl checks; as `${TELEGRAM_WEBHOOK_SECRET}`.
    webhook_secret: Option<Secret>,
}

/// How button presses reach howl.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum UpdatesMode {
    /// `getUpdates` long polling.
    #[default]
    Polling,
    /// Telegram's webhook, to howl's API.
    Webhook,
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
        let buttons = Buttons::new(&self.buttons, &self.pattern_field)
            .map_err(|e| BuildError::new(e).for_option("actions.buttons"))?;
        let webhook_secret = match (self.updates, &self.webhook_secret) {
            (UpdatesMode::Polling, None) => None,
            (UpdatesMode::Polling, Some(_)) => {
                return Err(BuildError::new(
                    "`actions.webhook_secret` is for `actions.updates = \"webhook\"`",
                )
                .for_option("actions.webhook_secret"));
            }
            (UpdatesMode::Webhook, secret) => {
                let valid = secret.as_ref().is_some_and(|s| {
                    let s = s.expose();
                    (1..=256).contains(&s.len())
                        && s.chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                });
                if !valid {
                    return Err(BuildError::new(
                        "`actions.updates = \"webhook\"` needs `actions.webhook_secret`: 1 to 256 \
                         of A-Z, a-z, 0-9, `_` and `-` (what `setWebhook`'s `secret_token` takes)",
                    )
                    .for_option("actions.webhook_secret"));
                }
                secret.clone()
            }
        };
        Ok(Actions {
            buttons,
            allowed_users: self.allowed_users.clone(),
            allowed_chats: self.allowed_chats.clone(),
            webhook_secret,
        })
    }
}

/// The checked `actions`.
#[derive(Debug)]
pub struct Actions {
    buttons: Buttons,
    allowed_users: Vec<UserRef>,
    allowed_chats: Vec<i64>,
    /// With webhook updates, the secret token Telegram sends.
    pub webhook_secret: Option<Secret>,
}

impl Actions {
    /// The inline keyboard for `event`'s message (`reply_markup`), when it
    /// has a pattern short enough to fit in a button.
    pub fn keyboard(&self, event: &Event) -> Option<Value> {
        let suggestions = self.buttons.for_suggestions(event);
        if !suggestions.is_empty() {
            // A review digest: one row per suggestion.
            let rows: Vec<Value> = suggestions
                .into_iter()
                .map(|(label, data)| json!([{"text": label, "callback_data": data}]))
                .collect();
            return Some(json!({ "inline_keyboard": rows }));
        }
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
        match self.username.as_deref().map(|n| n.trim_start_matches('@')) {
            Some(name) if !name.is_empty() => format!("@{name}"),
            _ => format!("user {}", self.id),
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

/// An update (its `update_id` is read before, so a bad one is skipped).
#[derive(Debug, Deserialize)]
struct Update {
    callback_query: Option<CallbackQuery>,
}

/// How long one `getUpdates` waits for a press (Telegram allows up to 50).
const LONG_POLL_SECS: u64 = 25;
/// The longest pause after failed polls.
const LONGEST_PAUSE: Duration = Duration::from_secs(30);
/// Starts the line a press adds to a message, so Undo can take it away.
const STATUS_MARK: &str = "\n\n⚙ ";
/// Telegram's limit on a message's text, in UTF-16 code units.
const MAX_TEXT_UNITS: usize = 4096;
/// Where each sink keeps the offset of the next update it wants.
const OFFSETS: &str = "telegram_offsets";

/// The client of the Bot API calls: its timeout outlasts a long poll.
fn client() -> Option<reqwest::Client> {
    match crate::http::http_client(Duration::from_secs(LONG_POLL_SECS + 10)) {
        Ok(client) => Some(client),
        Err(error) => {
            tracing::error!("telegram actions: {}", error.message);
            None
        }
    }
}

/// A failed Bot API call.
struct CallError {
    /// What went wrong (redacted).
    message: String,
    /// How long Telegram asks to wait (a 429's `retry_after`).
    retry_after: Option<Duration>,
    /// "message is not modified": the edit is already shown.
    not_modified: bool,
}

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
    /// Where the offset is kept across restarts.
    pub state: StateHandle,
    /// The sink's id, the offset's key.
    pub sink_id: String,
}

impl Poller {
    /// Polls until the task is dropped (the sink stops).
    ///
    /// Each update's offset is stored before the update is applied: a
    /// restart never applies a press twice (at worst, a press being
    /// applied when howl died is lost, and its presser sees no answer and
    /// presses again).
    pub async fn run(self) {
        let Some(client) = client() else {
            return;
        };
        let mut offset = self.stored_offset();
        let mut pause = Duration::from_secs(1);
        loop {
            let mut params = json!({
                "timeout": LONG_POLL_SECS,
                "allowed_updates": ["callback_query"],
            });
            if let Some(offset) = offset {
                params["offset"] = json!(offset);
            }
            let asked = tokio::time::Instant::now();
            let failure = match self.call(&client, "getUpdates", &params).await {
                Ok(Value::Array(updates)) if !updates.is_empty() => {
                    pause = Duration::from_secs(1);
                    self.apply_all(&client, updates, &mut offset).await;
                    continue;
                }
                Ok(Value::Array(_)) => {
                    // No press within the long poll. A server that answers
                    // at once (not Telegram) must not make this spin.
                    pause = Duration::from_secs(1);
                    tokio::time::sleep_until(asked + Duration::from_secs(1)).await;
                    continue;
                }
                Ok(other) => CallError {
                    message: format!("getUpdates answered {} instead of a list", kind(&other)),
                    retry_after: None,
                    not_modified: false,
                },
                Err(error) => error,
            };
            self.failed(&format!("getUpdates failed: {}", failure.message));
            tokio::time::sleep(failure.retry_after.unwrap_or(pause)).await;
            pause = (pause * 2).min(LONGEST_PAUSE);
        }
    }

    /// Applies the updates the API hands over (webhook mode), until the
    /// API's side closes.
    pub async fn run_webhook(self, mut updates: tokio::sync::mpsc::Receiver<bytes::Bytes>) {
        let Some(client) = client() else {
            return;
        };
        // No offsets here: Telegram sends each update to a webhook once
        // it is answered 200.
        while let Some(body) = updates.recv().await {
            match serde_json::from_slice::<Value>(&body) {
                Ok(update) => self.apply(&client, update).await,
                Err(error) => self.failed(&format!("a webhook update was unreadable: {error}")),
            }
        }
    }

    /// Applies a batch of updates in order, storing each one's offset
    /// before applying it.
    async fn apply_all(
        &self,
        client: &reqwest::Client,
        updates: Vec<Value>,
        offset: &mut Option<i64>,
    ) {
        for update in updates {
            // The offset moves past every update, readable or not: one
            // that cannot be read must not stop the ones after it.
            let Some(id) = update["update_id"].as_i64() else {
                self.failed("an update without an `update_id` was skipped");
                continue;
            };
            *offset = Some(id + 1);
            self.store_offset(id + 1);
            match serde_json::from_value::<Update>(update) {
                Ok(Update {
                    callback_query: Some(query),
                    ..
                }) => self.handle(client, query).await,
                Ok(_) => {}
                Err(error) => self.failed(&format!("update {id} was skipped: {error}")),
            }
        }
    }

    /// Applies one update: a button press, when it is one; one that
    /// cannot be read is skipped and counted.
    async fn apply(&self, client: &reqwest::Client, update: Value) {
        match serde_json::from_value::<Update>(update) {
            Ok(Update {
                callback_query: Some(query),
            }) => self.handle(client, query).await,
            Ok(_) => {}
            Err(error) => self.failed(&format!("an update was skipped: {error}")),
        }
    }

    /// Logs a problem, at most once a minute, and counts it.
    fn failed(&self, message: &str) {
        self.metrics.error(
            ErrorType::ReadFailed,
            Stage::Receiving,
            &format_args!("telegram actions: {message}"),
        );
    }

    fn stored_offset(&self) -> Option<i64> {
        let bytes = self
            .state
            .store()
            .ok()?
            .get(OFFSETS, &self.sink_id)
            .ok()??;
        std::str::from_utf8(&bytes).ok()?.parse().ok()
    }

    fn store_offset(&self, offset: i64) {
        let stored = self.state.store().and_then(|store| {
            store.write(
                OFFSETS,
                &[(self.sink_id.clone(), offset.to_string().into_bytes())],
                &[],
            )
        });
        if let Err(error) = stored {
            self.metrics.error(
                ErrorType::StateSaveFailed,
                Stage::Receiving,
                &format_args!("telegram actions: cannot store the update offset: {error}"),
            );
        }
    }

    /// Calls a Bot API method; its `result`, or why not (redacted).
    async fn call(
        &self,
        client: &reqwest::Client,
        method: &str,
        params: &Value,
    ) -> Result<Value, CallError> {
        let fail = |message: String| CallError {
            message: self.redactor.redact(&message),
            retry_after: None,
            not_modified: false,
        };
        let url = format!("{}{method}", self.base);
        let response = client
            .post(&url)
            .json(params)
            .send()
            .await
            .map_err(|e| fail(crate::http::error_chain(&e)))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| fail(crate::http::error_chain(&e)))?;
        let Ok(answer) = serde_json::from_slice::<Value>(&body) else {
            let start: String = String::from_utf8_lossy(&body).chars().take(200).collect();
            return Err(fail(format!(
                "HTTP {}: not a Bot API answer: {start}",
                status.as_u16()
            )));
        };
        if status.is_success() && answer["ok"] == json!(true) {
            return Ok(answer["result"].clone());
        }
        let description = answer["description"].as_str().unwrap_or("no description");
        let hint = match status.as_u16() {
            401 | 404 => ": is `bot_token` right?",
            409 => {
                ": another program polls this bot (another howl, or another `telegram` sink \
                 with `actions` and the same bot_token), or the bot has a webhook set \
                 (`deleteWebhook`); only one may receive its button presses"
            }
            _ => "",
        };
        let mut error = fail(format!("HTTP {}: {description}{hint}", status.as_u16()));
        error.retry_after = answer["parameters"]["retry_after"]
            .as_f64()
            .and_then(crate::http::wait_hint);
        error.not_modified = description.contains("message is not modified");
        Err(error)
    }

    /// Applies one press: checks who, acts, answers, and shows it.
    async fn handle(&self, client: &reqwest::Client, query: CallbackQuery) {
        let chat = query.message.as_ref().map(|m| m.chat.id);
        let who = query.from.name();
        let (answer, status, keyboard) = if !self.actions.allows(&query.from, chat) {
            self.metrics.warn_limited(
                "press_not_allowed",
                &format_args!(
                    "telegram: a button press by {} (id {}), who is not allowed, was ignored",
                    escape_controls(&who),
                    query.from.id
                ),
            );
            ("You are not allowed to do this.".to_string(), None, None)
        } else {
            let presser = Presser {
                created_by: format!("telegram {who} (id {})", query.from.id),
                shown: who,
                platform: "Telegram",
            };
            match chat_actions::apply(
                &self.suppressions,
                &self.actions.buttons,
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
        if let Err(error) = self.call(client, "answerCallbackQuery", &params).await {
            self.failed(&format!("answerCallbackQuery failed: {}", error.message));
        }
        let (Some(message), Some(keyboard)) = (query.message, keyboard) else {
            return;
        };
        let Some(text) = message.text else {
            return;
        };
        let (text, entities) = with_status(&text, message.entities, status.as_deref());
        let mut params = json!({
            "chat_id": message.chat.id,
            "message_id": message.message_id,
            "text": text,
            "reply_markup": keyboard,
            "link_preview_options": {"is_disabled": true},
        });
        if let Some(entities) = entities {
            params["entities"] = entities;
        }
        match self.call(client, "editMessageText", &params).await {
            Err(error) if !error.not_modified => {
                self.failed(&format!("cannot update the message: {}", error.message));
            }
            _ => {}
        }
    }
}

/// The text of a message after a press: its own text (without a status
/// line a press added before) and the new status line, cut to Telegram's
/// limit (the message's text gives way, with `…`, and its entities with
/// it), with the entities that still fit.
fn with_status(
    text: &str,
    entities: Option<Value>,
    status: Option<&str>,
) -> (String, Option<Value>) {
    let base = match text.rfind(STATUS_MARK) {
        Some(at) if is_status(&text[at + STATUS_MARK.len()..]) => &text[..at],
        _ => text,
    };
    let tail = status
        .map(|s| format!("{STATUS_MARK}{s}"))
        .unwrap_or_default();
    let room = MAX_TEXT_UNITS.saturating_sub(tail.encode_utf16().count());
    let (base, units) = if base.encode_utf16().count() > room {
        let mut kept = String::new();
        let mut units = 0;
        for c in base.chars() {
            if units + c.len_utf16() + 1 > room {
                break;
            }
            units += c.len_utf16();
            kept.push(c);
        }
        kept.push('…');
        (kept, units)
    } else {
        let units = base.encode_utf16().count();
        (base.to_string(), units)
    };
    let entities = entities.map(|entities| {
        let kept: Vec<Value> = entities
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|entity| {
                let offset = usize::try_from(entity["offset"].as_u64()?).ok()?;
                let length = usize::try_from(entity["length"].as_u64()?).ok()?;
                if offset >= units {
                    return None;
                }
                let mut entity = entity.clone();
                entity["length"] = json!(length.min(units - offset));
                Some(entity)
            })
            .collect();
        Value::Array(kept)
    });
    (format!("{base}{tail}"), entities)
}

/// Whether a line is one a press added (so Undo may take it away), not
/// part of the alert that happens to look alike.
fn is_status(line: &str) -> bool {
    !line.contains('\n')
        && (line.starts_with("Suppressed for ") || line.starts_with("Always alerts (set by "))
}

/// What a JSON value is, for messages.
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
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

    #[test]
    fn the_status_line_fits_telegrams_limit_and_replaces_only_its_own_line() {
        let entities = json!([{"type": "bold", "offset": 0, "length": 5}, {"type": "code", "offset": 4090, "length": 10}]);
        let long = "x".repeat(5000);
        let (text, kept) = with_status(&long, Some(entities), Some("Suppressed for 1d by @alice"));
        assert_eq!(text.encode_utf16().count(), MAX_TEXT_UNITS);
        assert!(
            text.ends_with("…\n\n⚙ Suppressed for 1d by @alice"),
            "{text}"
        );
        let kept = kept.unwrap();
        assert_eq!(
            kept.as_array().unwrap().len(),
            1,
            "the entity past the cut is dropped"
        );

        let (text, _) = with_status("alert\n\n⚙ Suppressed for 1d by @alice", None, None);
        assert_eq!(text, "alert", "Undo takes the line away");
        let lookalike = "line1\n\n⚙ not a status\nmore";
        let (text, _) = with_status(lookalike, None, Some("Always alerts (set by @bob)"));
        assert_eq!(
            text,
            format!("{lookalike}\n\n⚙ Always alerts (set by @bob)")
        );
        let (text, _) = with_status("é😀", None, Some("Suppressed for 1h by @a"));
        assert_eq!(text, "é😀\n\n⚙ Suppressed for 1h by @a");
    }
}
