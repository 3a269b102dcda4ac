//! `telegram`: alerts as Telegram messages, through the Bot API.
//!
//! Each alert is one message (see [`crate::sinks::chat`] for the flow:
//! repeats reply to it, the resolution edits it). This module speaks the
//! Bot API: `POST {api_base}/bot{token}/{method}` with a JSON body, answers
//! `{"ok": bool, "result" | "description", "parameters"?}`.
//!
//! Telegram's rules, as the classification applies them: 429 waits
//! `parameters.retry_after` (else the `Retry-After` header); 5xx and network
//! errors are retried; 400/401/403 are permanent ("chat not found", a bad
//! token, a bot kicked from the group). On an edit, "message is not
//! modified" means the message already shows the text (success), and a
//! message that was deleted or can no longer be edited is *declined*: the
//! flow posts a new message instead.
//!
//! The token is part of every URL, so the sink's redactor knows it and the
//! delivery core never logs a URL; answers are redacted too.

mod actions;
mod config;
mod message;

use serde::{Deserialize, Serialize};
use serde_json::json;

use std::sync::Arc;

use actions::{Actions, Poller};
use config::ChatId;
pub use config::TelegramConfig;
use message::Renderer;

use crate::alert::AlertState;
use crate::components::ComponentFuture;
use crate::components::sink::{Sink, SinkContext};
use crate::event::Event;
use crate::http::{Classify, Delivery, Failure, Response, Verdict, classify_http};
use crate::secret::Redactor;
use crate::sinks::chat::{ChatApi, ChatSink, Edited};

/// The sink: the chat flow, and, with `actions`, the poller that applies
/// button presses while it runs.
pub struct TelegramSink {
    chat: ChatSink<TelegramApi>,
    /// The Bot API base (a secret), the buttons, and the token's redactor.
    actions: Option<(String, Arc<Actions>, Redactor)>,
}

impl Sink for TelegramSink {
    fn run(self: Box<Self>, cx: SinkContext) -> ComponentFuture {
        let poller = self.actions.map(|(base, actions, redactor)| {
            let webhook = actions
                .webhook_secret
                .clone()
                .map(|secret| cx.shared.telegram_webhooks.register(cx.key.id(), secret));
            let poller = Poller {
                base,
                actions,
                suppressions: cx.shared.suppressions.clone(),
                metrics: Arc::clone(&cx.metrics),
                redactor,
                state: cx.state.clone(),
                sink_id: cx.key.id().to_string(),
            };
            match webhook {
                Some(updates) => tokio::spawn(poller.run_webhook(updates)),
                None => tokio::spawn(poller.run()),
            }
        });
        let chat = Box::new(self.chat).run(cx);
        Box::pin(async move {
            let result = chat.await;
            if let Some(poller) = poller {
                poller.abort();
            }
            result
        })
    }
}

/// Talks to one chat through the Bot API.
#[derive(Debug)]
pub struct TelegramApi {
    /// `{api_base}/bot{token}/`: a secret, like the token.
    base: String,
    chat: ChatId,
    thread: Option<i64>,
    renderer: Renderer,
    /// Buttons to put under firing alerts.
    actions: Option<Arc<Actions>>,
}

/// A message the bot posted, as remembered for its alert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentMessage {
    /// The chat's numeric id (also when the sink names it `@channel`).
    pub chat_id: i64,
    /// The message's id in that chat.
    pub message_id: i64,
}

impl TelegramApi {
    fn new(
        base: String,
        chat: ChatId,
        thread: Option<i64>,
        renderer: Renderer,
        actions: Option<Arc<Actions>>,
    ) -> Self {
        Self {
            base,
            chat,
            thread,
            renderer,
            actions,
        }
    }

    /// The common parameters of `sendMessage` and `editMessageText`.
    fn text_params(
        &self,
        delivery: &Delivery,
        event: &Event,
        state: AlertState,
    ) -> serde_json::Value {
        let mut params = json!({
            "text": self.renderer.render(event, state, delivery.metrics()),
            "link_preview_options": {"is_disabled": true},
        });
        if let Some(mode) = self.renderer.parse_mode() {
            params["parse_mode"] = json!(mode);
        }
        params
    }

    /// Whether a remembered message is in the chat this sink posts to (a
    /// reply cannot cross chats; `@channel` chats are assumed to match).
    fn is_here(&self, sent: &SentMessage) -> bool {
        match &self.chat {
            ChatId::Id(id) => *id == sent.chat_id,
            ChatId::Name(_) => true,
        }
    }

    async fn call(
        &self,
        delivery: &Delivery,
        method: &str,
        params: &serde_json::Value,
        classify: Classify,
    ) -> Result<Response, Failure> {
        let url = format!("{}{method}", self.base);
        delivery
            .execute(|client| client.post(&url).json(params), classify)
            .await
    }
}

impl ChatApi for TelegramApi {
    type Sent = SentMessage;

    async fn healthcheck(&self, delivery: &Delivery) -> anyhow::Result<()> {
        let url = format!("{}getMe", self.base);
        delivery
            .healthcheck(
                "the Telegram bot (getMe)",
                |client| client.get(&url),
                classify,
            )
            .await
    }

    async fn post(
        &self,
        delivery: &Delivery,
        event: &Event,
        state: AlertState,
        reply_to: Option<&SentMessage>,
    ) -> Result<Option<SentMessage>, Failure> {
        let mut params = self.text_params(delivery, event, state);
        params["chat_id"] = json!(self.chat);
        if state == AlertState::Firing
            && let Some(keyboard) = self.actions.as_ref().and_then(|a| a.keyboard(event))
        {
            params["reply_markup"] = keyboard;
        }
        if let Some(thread) = self.thread {
            params["message_thread_id"] = json!(thread);
        }
        if let Some(first) = reply_to.filter(|sent| self.is_here(sent)) {
            params["reply_parameters"] = json!({
                "message_id": first.message_id,
                "allow_sending_without_reply": true,
            });
        }
        let response = self
            .call(delivery, "sendMessage", &params, classify)
            .await?;
        let sent = sent_message(&response);
        if sent.is_none() {
            delivery.metrics().warn_limited(
                "unreadable_answer",
                &"Telegram accepted a message but its answer has no message id; its alert cannot be edited later",
            );
        }
        Ok(sent)
    }

    async fn edit(
        &self,
        delivery: &Delivery,
        sent: &SentMessage,
        event: &Event,
        state: AlertState,
    ) -> Result<Edited, Failure> {
        let mut params = self.text_params(delivery, event, state);
        params["chat_id"] = json!(sent.chat_id);
        params["message_id"] = json!(sent.message_id);
        let response = self
            .call(delivery, "editMessageText", &params, classify_edit)
            .await?;
        Ok(
            if response.status.is_success() || is_not_modified(&response) {
                Edited::Done
            } else {
                Edited::Gone
            },
        )
    }
}

/// A Bot API answer (the parts howl reads).
#[derive(Debug, Deserialize)]
struct Answer {
    ok: bool,
    description: Option<String>,
    parameters: Option<Parameters>,
    result: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
struct Parameters {
    retry_after: Option<f64>,
    migrate_to_chat_id: Option<i64>,
}

fn answer(response: &Response) -> Option<Answer> {
    serde_json::from_slice(&response.body).ok()
}

/// The posted message's reference, from a `sendMessage` answer.
fn sent_message(response: &Response) -> Option<SentMessage> {
    let result = answer(response)?.result?;
    Some(SentMessage {
        chat_id: result.get("chat")?.get("id")?.as_i64()?,
        message_id: result.get("message_id")?.as_i64()?,
    })
}

/// Judges a Bot API answer by its status and `parameters` (Telegram warns
/// that descriptions may change).
fn classify(response: &Response) -> Verdict {
    let answer = answer(response);
    let ok = answer.as_ref().is_none_or(|a| a.ok);
    if response.status.is_success() && ok {
        return Verdict::Delivered;
    }
    let description = answer
        .as_ref()
        .and_then(|a| a.description.as_deref())
        .unwrap_or("no description");
    let reason = format!("HTTP {}: {description}", response.status.as_u16());
    let parameters = answer.as_ref().and_then(|a| a.parameters.as_ref());
    if let Some(chat) = parameters.and_then(|p| p.migrate_to_chat_id) {
        return Verdict::Rejected {
            reason: format!(
                "{reason}: the group was upgraded to a supergroup; set `chat_id = {chat}`"
            ),
        };
    }
    match classify_http(response) {
        Verdict::Retry { after, .. } => Verdict::Retry {
            after: parameters
                .and_then(|p| p.retry_after)
                .and_then(crate::http::wait_hint)
                .or(after),
            reason,
        },
        _ => Verdict::Rejected { reason },
    }
}

/// Like [`classify`], with the answers an edit may get that are not
/// failures: "not modified" (it already shows the text) and a message that
/// is gone or too old to edit (declined: post a new one).
fn classify_edit(response: &Response) -> Verdict {
    if response.status == reqwest::StatusCode::BAD_REQUEST {
        if is_not_modified(response) {
            return Verdict::Delivered;
        }
        let description = answer(response)
            .and_then(|a| a.description)
            .unwrap_or_default();
        let gone = [
            "message to edit not found",
            "message can't be edited",
            "MESSAGE_ID_INVALID",
        ];
        if gone.iter().any(|g| description.contains(g)) {
            return Verdict::Declined {
                reason: description,
            };
        }
    }
    classify(response)
}

fn is_not_modified(response: &Response) -> bool {
    answer(response)
        .and_then(|a| a.description)
        .is_some_and(|d| d.contains("message is not modified"))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bytes::Bytes;
    use reqwest::StatusCode;
    use reqwest::header::HeaderMap;

    use super::*;

    fn response(status: u16, body: &str) -> Response {
        Response {
            status: StatusCode::from_u16(status).unwrap(),
            headers: HeaderMap::new(),
            body: Bytes::from(body.to_string()),
        }
    }

    #[test]
    fn waits_what_a_429_asks_for() {
        let verdict = classify(&response(
            429,
            r#"{"ok":false,"error_code":429,"description":"Too Many Requests: retry after 35","parameters":{"retry_after":35}}"#,
        ));
        assert!(
            matches!(verdict, Verdict::Retry { after: Some(d), .. } if d == Duration::from_secs(35)),
            "{verdict:?}"
        );
    }

    #[test]
    fn retries_server_errors_only() {
        let unavailable = classify(&response(503, "<html>bad gateway</html>"));
        assert!(matches!(unavailable, Verdict::Retry { after: None, .. }));
        for (status, description) in [
            (400, "Bad Request: chat not found"),
            (401, "Unauthorized"),
            (403, "Forbidden: bot was kicked from the group chat"),
        ] {
            let body =
                format!(r#"{{"ok":false,"error_code":{status},"description":"{description}"}}"#);
            match classify(&response(status, &body)) {
                Verdict::Rejected { reason } => assert!(reason.contains(description), "{reason}"),
                other => panic!("{status} must not be retried: {other:?}"),
            }
        }
    }

    #[test]
    fn names_the_new_chat_of_an_upgraded_group() {
        let verdict = classify(&response(
            400,
            r#"{"ok":false,"error_code":400,"description":"Bad Request: group chat was upgraded to a supergroup chat","parameters":{"migrate_to_chat_id":-1001234567890}}"#,
        ));
        assert!(
            matches!(&verdict, Verdict::Rejected { reason } if reason.contains("chat_id = -1001234567890")),
            "{verdict:?}"
        );
    }

    #[test]
    fn edits_that_change_nothing_succeed_and_deleted_messages_are_declined() {
        let not_modified = r#"{"ok":false,"error_code":400,"description":"Bad Request: message is not modified: specified new message content and reply markup are exactly the same as a current content and reply markup of the message"}"#;
        assert_eq!(
            classify_edit(&response(400, not_modified)),
            Verdict::Delivered
        );
        let gone = r#"{"ok":false,"error_code":400,"description":"Bad Request: message to edit not found"}"#;
        assert!(matches!(
            classify_edit(&response(400, gone)),
            Verdict::Declined { .. }
        ));
        assert!(matches!(
            classify(&response(400, gone)),
            Verdict::Rejected { .. }
        ));
    }

    #[test]
    fn reads_the_posted_message() {
        let ok = response(
            200,
            r#"{"ok":true,"result":{"message_id":17,"date":1,"chat":{"id":-1001,"type":"supergroup"},"text":"x"}}"#,
        );
        assert_eq!(classify(&ok), Verdict::Delivered);
        assert_eq!(
            sent_message(&ok),
            Some(SentMessage {
                chat_id: -1001,
                message_id: 17
            })
        );
    }
}
