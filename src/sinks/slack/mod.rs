//! `slack`: alerts as Slack messages, through an incoming webhook or the
//! Web API.
//!
//! With a bot `token` (the Web API), each alert is one message (see
//! [`crate::sinks::chat`] for the flow): `chat.postMessage` posts it and
//! returns its `channel` and `ts`, repeats go to its thread (`thread_ts`),
//! and `chat.update` shows it resolved. An incoming webhook answers only
//! `ok`, so with `webhook_url` every occurrence is a new message.
//!
//! Slack's answers, as the classification reads them:
//! - the Web API answers HTTP 200 even for errors, with `{"ok": false,
//!   "error": "..."}`: `rate_limited` and Slack's own failures
//!   (`internal_error`, `service_unavailable`, ...) are retried, every other
//!   error (`channel_not_found`, `invalid_auth`, `invalid_blocks`, ...) is
//!   permanent; on `chat.update`, a message that is gone or can no longer be
//!   edited is *declined* and a new message is posted instead;
//! - a webhook answers `ok` (text) on success and a text error with a 4xx
//!   status (`invalid_payload`, `channel_not_found`, `no_service`), which
//!   is permanent;
//! - HTTP 429 waits `Retry-After`; 5xx and network errors are retried.
//!
//! The webhook URL and the token are secrets: the redactor knows them.

mod actions;
mod config;
mod message;

use reqwest::StatusCode;
use reqwest::header::CONTENT_TYPE;
use serde::{Deserialize, Serialize};
use serde_json::json;

use std::sync::Arc;

use actions::{Actions, Handler};
pub use config::SlackConfig;
use message::Renderer;

use crate::alert::AlertState;
use crate::components::ComponentFuture;
use crate::components::sink::{Sink, SinkContext};
use crate::event::Event;
use crate::http::{Classify, Delivery, Failure, Response, Verdict, classify_http, retry_after};
use crate::sinks::chat::{ChatApi, ChatSink, Edited};

/// The sink: the chat flow, and, with `actions`, the handler of the
/// button presses the API hands over while it runs.
pub struct SlackSink {
    chat: ChatSink<SlackApi>,
    actions: Option<Handler>,
}

impl Sink for SlackSink {
    fn run(self: Box<Self>, cx: SinkContext) -> ComponentFuture {
        let handler = self.actions.map(|handler| {
            let requests = cx
                .shared
                .slack_actions
                .register(handler.actions.signing_secret.clone(), &handler.channel);
            let running = actions::Running {
                suppressions: cx.shared.suppressions.clone(),
                metrics: Arc::clone(&cx.metrics),
            };
            tokio::spawn(handler.run(running, requests))
        });
        let chat = Box::new(self.chat).run(cx);
        Box::pin(async move {
            let result = chat.await;
            if let Some(handler) = handler {
                handler.abort();
            }
            result
        })
    }
}

/// How the sink reaches Slack.
#[derive(Debug)]
enum Mode {
    /// An incoming webhook (a secret URL).
    Webhook { url: reqwest::Url },
    /// The Web API with a bot token.
    WebApi {
        base: String,
        token: String,
        channel: String,
    },
}

/// Posts and updates alert messages in one Slack channel.
#[derive(Debug)]
pub struct SlackApi {
    mode: Mode,
    renderer: Renderer,
    /// Buttons to put under firing alerts (Web API mode).
    actions: Option<Arc<Actions>>,
}

/// A message the bot posted, as remembered for its alert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PostedMessage {
    /// The channel's id, as Slack answered it.
    pub channel: String,
    /// The message's timestamp, its id within the channel.
    pub ts: String,
}

/// Web API errors worth retrying: Slack's own trouble and rate limits.
const RETRYABLE_ERRORS: &[&str] = &[
    "rate_limited",
    "ratelimited",
    "internal_error",
    "fatal_error",
    "service_unavailable",
    "request_timeout",
];

/// `chat.update` errors that mean "post a new message instead".
const GONE_ERRORS: &[&str] = &[
    "message_not_found",
    "cant_update_message",
    "edit_window_closed",
];

impl SlackApi {
    fn new(mode: Mode, renderer: Renderer, actions: Option<Arc<Actions>>) -> Self {
        Self {
            mode,
            renderer,
            actions,
        }
    }

    /// Calls a Web API method with a JSON body and the bearer token.
    async fn call(
        delivery: &Delivery,
        (base, token): (&str, &str),
        method: &str,
        body: &serde_json::Value,
        classify: Classify,
    ) -> Result<Response, Failure> {
        let url = format!("{base}/{method}");
        delivery
            .execute(
                |client| {
                    client
                        .post(&url)
                        .bearer_auth(token)
                        .header(CONTENT_TYPE, "application/json; charset=utf-8")
                        .json(body)
                },
                classify,
            )
            .await
    }
}

impl ChatApi for SlackApi {
    type Sent = PostedMessage;

    async fn healthcheck(&self, delivery: &Delivery) -> anyhow::Result<()> {
        // A webhook cannot be checked without posting to it.
        let Mode::WebApi { base, token, .. } = &self.mode else {
            return Ok(());
        };
        let url = format!("{base}/auth.test");
        delivery
            .healthcheck(
                "the Slack token (auth.test)",
                |client| client.post(&url).bearer_auth(token),
                classify_web_api,
            )
            .await
    }

    async fn post(
        &self,
        delivery: &Delivery,
        event: &Event,
        state: AlertState,
        reply_to: Option<&PostedMessage>,
    ) -> Result<Option<PostedMessage>, Failure> {
        let mut body = self.renderer.payload(event, state, delivery.metrics());
        match &self.mode {
            Mode::Webhook { url } => {
                delivery
                    .execute(
                        |client| client.post(url.clone()).json(&body),
                        classify_webhook,
                    )
                    .await?;
                Ok(None)
            }
            Mode::WebApi {
                base,
                token,
                channel,
            } => {
                body["channel"] = json!(channel);
                if state == AlertState::Firing
                    && let Some(block) = self.actions.as_ref().and_then(|a| a.block(event))
                    && let Some(blocks) = body["attachments"][0]["blocks"].as_array_mut()
                {
                    blocks.push(block);
                }
                if let Some(first) = reply_to {
                    body["channel"] = json!(first.channel);
                    body["thread_ts"] = json!(first.ts);
                }
                let response = Self::call(
                    delivery,
                    (base, token),
                    "chat.postMessage",
                    &body,
                    classify_web_api,
                )
                .await?;
                let posted = serde_json::from_slice::<PostedMessage>(&response.body).ok();
                if posted.is_none() {
                    delivery.metrics().warn_limited(
                        "unreadable_answer",
                        &"Slack accepted a message but its answer has no channel and ts; its alert cannot be updated later",
                    );
                }
                Ok(posted)
            }
        }
    }

    async fn edit(
        &self,
        delivery: &Delivery,
        sent: &PostedMessage,
        event: &Event,
        state: AlertState,
    ) -> Result<Edited, Failure> {
        let Mode::WebApi { base, token, .. } = &self.mode else {
            return Ok(Edited::Gone);
        };
        let mut body = self.renderer.payload(event, state, delivery.metrics());
        body["channel"] = json!(sent.channel);
        body["ts"] = json!(sent.ts);
        let response = Self::call(
            delivery,
            (base, token),
            "chat.update",
            &body,
            classify_update,
        )
        .await?;
        Ok(match web_api_error(&response) {
            Some(_) => Edited::Gone,
            None => Edited::Done,
        })
    }
}

/// The `error` of a Web API answer with `"ok": false`.
fn web_api_error(response: &Response) -> Option<String> {
    #[derive(Deserialize)]
    struct Answer {
        ok: bool,
        error: Option<String>,
    }
    let answer: Answer = serde_json::from_slice(&response.body).ok()?;
    (!answer.ok).then(|| answer.error.unwrap_or_else(|| "unknown_error".to_string()))
}

/// Judges a Web API answer: HTTP first (429, 5xx), then `ok`/`error`.
fn classify_web_api(response: &Response) -> Verdict {
    match classify_http(response) {
        Verdict::Delivered => {}
        other => return other,
    }
    match web_api_error(response) {
        None if response.json().is_some() => Verdict::Delivered,
        None => Verdict::Rejected {
            reason: "Slack's answer is not JSON".to_string(),
        },
        Some(error) if RETRYABLE_ERRORS.contains(&error.as_str()) => Verdict::Retry {
            after: retry_after(&response.headers),
            reason: format!("Slack answered {error}"),
        },
        Some(error) => Verdict::Rejected {
            reason: format!("Slack answered {error}"),
        },
    }
}

/// Like [`classify_web_api`], declining the errors that mean the message to
/// update is gone (a new one is posted instead).
fn classify_update(response: &Response) -> Verdict {
    match web_api_error(response) {
        Some(error) if GONE_ERRORS.contains(&error.as_str()) => Verdict::Declined {
            reason: format!("Slack answered {error}"),
        },
        _ => classify_web_api(response),
    }
}

/// Judges an incoming webhook's answer: `ok` (text) is success; errors are
/// text bodies with a 4xx status, permanent except 429.
fn classify_webhook(response: &Response) -> Verdict {
    // Whole: the delivery core redacts secrets, then cuts it for the log.
    let body = String::from_utf8_lossy(&response.body).trim().to_string();
    match classify_http(response) {
        Verdict::Delivered if web_api_error(response).is_some() => classify_web_api(response),
        Verdict::Delivered => Verdict::Delivered,
        Verdict::Retry { after, .. } => Verdict::Retry {
            after,
            reason: format!("HTTP {}: {body}", response.status.as_u16()),
        },
        Verdict::Rejected { .. } | Verdict::Declined { .. } => Verdict::Rejected {
            reason: match response.status {
                StatusCode::NOT_FOUND if body == "no_service" => {
                    "HTTP 404: no_service (the webhook was revoked)".to_string()
                }
                status => format!("HTTP {}: {body}", status.as_u16()),
            },
        },
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bytes::Bytes;
    use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER};

    use super::*;

    fn response(status: u16, body: &str, retry: Option<&'static str>) -> Response {
        let mut headers = HeaderMap::new();
        if let Some(retry) = retry {
            headers.insert(RETRY_AFTER, HeaderValue::from_static(retry));
        }
        Response {
            status: StatusCode::from_u16(status).unwrap(),
            headers,
            body: Bytes::from(body.to_string()),
        }
    }

    #[test]
    fn web_api_errors_are_permanent_except_rate_limits() {
        let ok = response(200, r#"{"ok":true,"channel":"C1","ts":"1.2"}"#, None);
        assert_eq!(classify_web_api(&ok), Verdict::Delivered);
        for error in [
            "channel_not_found",
            "invalid_auth",
            "invalid_blocks",
            "not_in_channel",
        ] {
            let answer = response(200, &format!(r#"{{"ok":false,"error":"{error}"}}"#), None);
            assert!(
                matches!(classify_web_api(&answer), Verdict::Rejected { reason } if reason.contains(error)),
                "{error}"
            );
        }
        let limited = response(200, r#"{"ok":false,"error":"rate_limited"}"#, Some("3"));
        assert_eq!(
            classify_web_api(&limited),
            Verdict::Retry {
                after: Some(Duration::from_secs(3)),
                reason: "Slack answered rate_limited".to_string()
            }
        );
        let throttled = response(429, "", Some("2"));
        assert!(matches!(
            classify_web_api(&throttled),
            Verdict::Retry { after: Some(d), .. } if d == Duration::from_secs(2)
        ));
    }

    #[test]
    fn updates_of_vanished_messages_are_declined() {
        let gone = response(200, r#"{"ok":false,"error":"message_not_found"}"#, None);
        assert!(matches!(classify_update(&gone), Verdict::Declined { .. }));
        assert!(matches!(classify_web_api(&gone), Verdict::Rejected { .. }));
    }

    #[test]
    fn webhooks_answer_in_text() {
        assert_eq!(
            classify_webhook(&response(200, "ok", None)),
            Verdict::Delivered
        );
        match classify_webhook(&response(400, "invalid_payload", None)) {
            Verdict::Rejected { reason } => assert_eq!(reason, "HTTP 400: invalid_payload"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            classify_webhook(&response(404, "channel_not_found", None)),
            Verdict::Rejected { .. }
        ));
        assert!(matches!(
            classify_webhook(&response(429, "rate_limited", Some("1"))),
            Verdict::Retry { after: Some(_), .. }
        ));
        assert!(matches!(
            classify_webhook(&response(500, "rollup_error", None)),
            Verdict::Retry { .. }
        ));
    }
}
