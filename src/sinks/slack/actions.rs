//! `actions`: Block Kit buttons under alert messages (Web API mode), the
//! same buttons as Telegram's (see [`crate::sinks::chat::actions`]).
//!
//! Slack posts a press to the app's interactivity Request URL, which is
//! howl's API (`POST /api/v1/slack/actions`). The API checks the request's
//! signature with the app's `signing_secret` and hands it here
//! ([`crate::shared::SlackActions`]); this module checks who pressed
//! (`allowed_users`, `allowed_channels`), applies the press, and updates
//! the message with `chat.update`: a context line saying who did what, and
//! an Undo button in place of the others. Someone not allowed, or a press
//! that changed nothing, gets an ephemeral message (`chat.postEphemeral`)
//! that only they see.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::diagnostic::{BuildError, escape_controls};
use crate::event::Event;
use crate::internal_events::ComponentMetrics;
use crate::options::FieldPath;
use crate::secret::{Redactor, Secret};
use crate::sinks::chat::actions::{self as chat_actions, Applied, ButtonSpec, Buttons, Presser};
use crate::suppressions::Suppressions;

/// The `actions` table of the `slack` sink.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ActionsConfig {
    /// The Slack app's signing secret (Basic Information → App
    /// Credentials), which signs every press Slack sends to howl's API;
    /// write it as `${SLACK_SIGNING_SECRET}`.
    signing_secret: Secret,
    /// The buttons under each alert message, in order: `suppress:DURATION`
    /// (e.g. `suppress:1d`) and `always_alert`.
    #[serde(default = "chat_actions::default_buttons")]
    #[schemars(with = "Vec<String>", extend("x-default" = r#"["suppress:1d", "suppress:7d", "always_alert"]"#))]
    buttons: Vec<ButtonSpec>,
    /// Who may press them: Slack user ids (`U0123ABCD`, from a profile's
    /// "Copy member ID"). Anyone else is told "not allowed", privately,
    /// and nothing changes.
    #[serde(default)]
    #[schemars(extend("x-default" = "none"))]
    allowed_users: Vec<String>,
    /// In which channels presses count (ids, `C0123ABCD`). With both
    /// lists set, a press needs both; at least one must be set.
    #[serde(default)]
    #[schemars(extend("x-default" = "none"))]
    allowed_channels: Vec<String>,
    /// The field holding the pattern the buttons act on; messages of
    /// events without it get no buttons.
    #[serde(default = "chat_actions::default_pattern_field")]
    pattern_field: FieldPath,
}

impl ActionsConfig {
    /// The checked settings; someone must be named.
    pub fn build(&self) -> Result<Actions, BuildError> {
        if self.signing_secret.expose().is_empty() {
            return Err(BuildError::new(
                "`actions.signing_secret` is empty: it is what proves a press came from Slack",
            )
            .for_option("actions.signing_secret"));
        }
        if self.allowed_users.is_empty() && self.allowed_channels.is_empty() {
            return Err(BuildError::new(
                "`actions` needs `allowed_users` or `allowed_channels`: who may suppress alerts \
                 with a button (Slack member ids like U0123ABCD, channel ids)",
            )
            .for_option("actions"));
        }
        let buttons = Buttons::new(&self.buttons, &self.pattern_field)
            .map_err(|e| BuildError::new(e).for_option("actions.buttons"))?;
        Ok(Actions {
            signing_secret: self.signing_secret.clone(),
            buttons,
            allowed_users: self.allowed_users.clone(),
            allowed_channels: self.allowed_channels.clone(),
        })
    }
}

/// The checked `actions`.
#[derive(Debug)]
pub struct Actions {
    /// Registered with the API, which checks signatures with it.
    pub signing_secret: Secret,
    buttons: Buttons,
    allowed_users: Vec<String>,
    allowed_channels: Vec<String>,
}

/// Marks the blocks this module adds, so a later press replaces them.
const BUTTONS_BLOCK: &str = "howl_actions";
const STATUS_BLOCK: &str = "howl_status";

impl Actions {
    /// The actions block for `event`'s message, when it has a pattern.
    pub fn block(&self, event: &Event) -> Option<Value> {
        let mut suggestions = self.buttons.for_suggestions(event);
        if !suggestions.is_empty() {
            // A review digest: a button per suggestion (Slack allows 25).
            suggestions.truncate(25);
            return Some(actions_block(suggestions));
        }
        self.block_for(&self.buttons.pattern(event)?)
    }

    fn block_for(&self, pattern: &str) -> Option<Value> {
        let buttons = self.buttons.for_pattern(pattern)?;
        Some(actions_block(buttons))
    }

    fn allows(&self, user: &str, channel: Option<&str>) -> bool {
        let user_ok = self.allowed_users.is_empty() || self.allowed_users.iter().any(|u| u == user);
        let channel_ok = self.allowed_channels.is_empty()
            || channel.is_some_and(|c| self.allowed_channels.iter().any(|a| a == c));
        user_ok && channel_ok
    }
}

fn actions_block(buttons: Vec<(String, String)>) -> Value {
    let elements: Vec<Value> = buttons
        .into_iter()
        .enumerate()
        .map(|(index, (label, data))| {
            json!({
                "type": "button",
                "action_id": format!("howl_{index}"),
                "text": {"type": "plain_text", "text": label},
                "value": data,
            })
        })
        .collect();
    json!({"type": "actions", "block_id": BUTTONS_BLOCK, "elements": elements})
}

#[derive(Debug, Deserialize)]
struct User {
    id: String,
    #[serde(default)]
    username: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Channel {
    id: String,
}

#[derive(Debug, Deserialize)]
struct Action {
    #[serde(default)]
    value: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Container {
    #[serde(default)]
    message_ts: Option<String>,
}

/// The parts of a `block_actions` payload howl reads.
#[derive(Debug, Deserialize)]
struct Payload {
    #[serde(rename = "type")]
    kind: String,
    user: User,
    #[serde(default)]
    channel: Option<Channel>,
    #[serde(default)]
    container: Option<Container>,
    #[serde(default)]
    message: Option<Value>,
    #[serde(default)]
    actions: Vec<Action>,
}

/// Applies presses the API hands over.
pub struct Handler {
    /// The Web API base, e.g. `https://slack.com/api`.
    pub base: String,
    /// The bot token.
    pub token: String,
    /// The channel the sink posts to.
    pub channel: String,
    /// What buttons do and who may press them.
    pub actions: Arc<Actions>,
    /// Hides the token in anything logged.
    pub redactor: Redactor,
}

/// What the handler works with while the sink runs.
pub struct Running {
    /// The registry presses change.
    pub suppressions: Suppressions,
    /// The sink's metrics.
    pub metrics: Arc<ComponentMetrics>,
}

impl Handler {
    /// Handles presses, changing `suppressions`, until the API's side
    /// closes (the sink stops).
    pub async fn run(self, running: Running, mut requests: mpsc::Receiver<Bytes>) {
        let client = match crate::http::http_client(Duration::from_secs(10)) {
            Ok(client) => client,
            Err(error) => {
                tracing::error!("slack actions: {}", error.message);
                return;
            }
        };
        while let Some(body) = requests.recv().await {
            match form_payload(&body) {
                Ok(payload) => self.handle(&client, &running, payload).await,
                Err(error) => {
                    tracing::warn!("slack actions: a signed request was unreadable: {error}")
                }
            }
        }
    }

    async fn handle(&self, client: &reqwest::Client, running: &Running, payload: Payload) {
        if payload.kind != "block_actions" {
            return;
        }
        let channel = payload.channel.as_ref().map(|c| c.id.clone());
        let who = match payload
            .user
            .username
            .as_deref()
            .map(|n| n.trim_start_matches('@'))
        {
            Some(name) if !name.is_empty() => format!("@{name}"),
            _ => payload.user.id.clone(),
        };
        if !self.actions.allows(&payload.user.id, channel.as_deref()) {
            running.metrics.warn_limited(
                "press_not_allowed",
                &format_args!(
                    "slack: a button press by {}, who is not allowed, was ignored",
                    escape_controls(&payload.user.id)
                ),
            );
            self.tell(
                client,
                channel.as_deref(),
                &payload.user.id,
                "You are not allowed to do this.",
            )
            .await;
            return;
        }
        let data = payload
            .actions
            .first()
            .and_then(|a| a.value.clone())
            .unwrap_or_default();
        let presser = Presser {
            created_by: format!("slack {who} ({})", payload.user.id),
            shown: format!("<@{}>", payload.user.id),
            platform: "Slack",
        };
        let (answer, status, buttons) = match chat_actions::apply(
            &running.suppressions,
            &self.actions.buttons,
            &data,
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
                Some(actions_block(vec![("Undo".to_string(), undo)])),
            ),
            Ok(Applied::Undone { pattern }) => (
                "Undone.".to_string(),
                None,
                self.actions.block_for(&pattern),
            ),
            Ok(Applied::Nothing { answer }) => {
                self.tell(client, channel.as_deref(), &payload.user.id, &answer)
                    .await;
                return;
            }
            Err(error) => {
                self.tell(
                    client,
                    channel.as_deref(),
                    &payload.user.id,
                    &format!("Failed: {error}"),
                )
                .await;
                return;
            }
        };
        let ts = payload.container.and_then(|c| c.message_ts).or_else(|| {
            payload
                .message
                .as_ref()
                .and_then(|m| m["ts"].as_str().map(str::to_string))
        });
        let message = payload
            .message
            .filter(|m| m["attachments"][0]["blocks"].is_array());
        let (Some(channel_id), Some(ts), Some(message)) = (channel.clone(), ts, message) else {
            // Done, but the message cannot show it: say so to the presser.
            self.tell(client, channel.as_deref(), &payload.user.id, &answer)
                .await;
            return;
        };
        let mut update = updated(message, status, buttons);
        update["channel"] = json!(channel_id);
        update["ts"] = json!(ts);
        if let Err(error) = self.call(client, "chat.update", &update).await {
            tracing::warn!("slack actions: cannot update the message: {error}");
            self.tell(
                client,
                Some(&channel_id),
                &payload.user.id,
                &format!("{answer} (The message could not be updated: {error}.)"),
            )
            .await;
        }
    }

    /// Tells one user something only they see.
    async fn tell(&self, client: &reqwest::Client, channel: Option<&str>, user: &str, text: &str) {
        let Some(channel) = channel else {
            return;
        };
        let body = json!({"channel": channel, "user": user, "text": text});
        if let Err(error) = self.call(client, "chat.postEphemeral", &body).await {
            tracing::warn!("slack actions: cannot answer a press: {error}");
        }
    }

    async fn call(
        &self,
        client: &reqwest::Client,
        method: &str,
        body: &Value,
    ) -> Result<(), String> {
        let redact = |e: reqwest::Error| self.redactor.redact(&crate::http::error_chain(&e));
        let answer: Value = client
            .post(format!("{}/{method}", self.base))
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .await
            .map_err(redact)?
            .json()
            .await
            .map_err(redact)?;
        if answer["ok"] == json!(true) {
            Ok(())
        } else {
            Err(format!(
                "{method}: {}",
                answer["error"].as_str().unwrap_or("no error given")
            ))
        }
    }
}

/// Reads the `payload` field of a form-encoded interactivity request.
fn form_payload(body: &[u8]) -> Result<Payload, String> {
    let payload = form_urlencoded::parse(body)
        .find(|(key, _)| key == "payload")
        .map(|(_, value)| value.into_owned())
        .ok_or("no `payload` field")?;
    serde_json::from_str(&payload).map_err(|e| format!("invalid payload: {e}"))
}

/// The message with howl's blocks replaced: the status line (if any) and
/// the buttons (if any), at the end of its first attachment, where the
/// sink put them.
fn updated(message: Value, status: Option<String>, buttons: Option<Value>) -> Value {
    let text = message["text"].clone();
    let mut attachments = message["attachments"].clone();
    if let Some(blocks) = attachments
        .get_mut(0)
        .and_then(|a| a.get_mut("blocks"))
        .and_then(Value::as_array_mut)
    {
        blocks.retain(|block| {
            let id = block["block_id"].as_str().unwrap_or_default();
            id != BUTTONS_BLOCK && id != STATUS_BLOCK
        });
        if let Some(status) = status {
            blocks.push(json!({
                "type": "context",
                "block_id": STATUS_BLOCK,
                "elements": [{"type": "mrkdwn", "text": format!("⚙ {status}")}],
            }));
        }
        if let Some(buttons) = buttons {
            blocks.push(buttons);
        }
    }
    json!({"text": text, "attachments": attachments})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_press_replaces_the_buttons_and_keeps_the_rest_of_the_message() {
        let message = json!({
            "ts": "1.2", "text": "disk full",
            "attachments": [{"color": "#E01E5A", "blocks": [
                {"type": "header", "text": {"type": "plain_text", "text": "🔥 disk full"}},
                actions_block(vec![("Suppress 1d".into(), "s:86400:p".into())]),
            ]}],
        });
        let once = updated(
            message,
            Some("Suppressed for 1d by <@U1>".into()),
            Some(actions_block(vec![("Undo".into(), "u:sup-1".into())])),
        );
        let blocks = once["attachments"][0]["blocks"].as_array().unwrap();
        assert_eq!(blocks.len(), 3);
        assert_eq!(blocks[0]["type"], "header");
        assert_eq!(
            blocks[1]["elements"][0]["text"],
            "⚙ Suppressed for 1d by <@U1>"
        );
        assert_eq!(blocks[2]["elements"][0]["value"], "u:sup-1");
        assert_eq!(once["attachments"][0]["color"], "#E01E5A");
        let twice = updated(once, None, None);
        assert_eq!(
            twice["attachments"][0]["blocks"].as_array().unwrap().len(),
            1
        );
    }

    #[test]
    fn the_payload_is_read_from_the_form() {
        let body = format!(
            "payload={}",
            form_urlencoded::byte_serialize(
                br#"{"type":"block_actions","user":{"id":"U1","username":"alice"},"channel":{"id":"C1"},"actions":[{"value":"a:p"}]}"#
            )
            .collect::<String>()
        );
        let payload = form_payload(body.as_bytes()).unwrap();
        assert_eq!(payload.user.id, "U1");
        assert_eq!(payload.actions[0].value.as_deref(), Some("a:p"));
        assert!(form_payload(b"nothing=1").is_err());
        assert!(form_payload(b"payload=%7B").is_err());
    }
}
