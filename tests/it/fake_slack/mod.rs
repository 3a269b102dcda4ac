//! A loopback Slack: an incoming webhook (`POST /services/...`, answering
//! text `ok` or a text error with a 4xx) and the Web API methods the sink
//! uses (`/api/chat.postMessage`, `/api/chat.update`, `/api/auth.test`,
//! answering HTTP 200 with `{"ok":true,...}` or `{"ok":false,"error"}`),
//! checking what Slack checks: the bearer token, a channel, Block Kit
//! limits (a non-empty header of at most 150 characters, section and
//! context texts of at most 3000), and that updated messages exist.
//!
//! Tests can script the next answers to a path, delete messages, and read
//! every request with the time it arrived.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// The path of the fake's incoming webhook (the secret part of its URL).
pub const WEBHOOK_PATH: &str = "/services/T0HOWL/B0HOWL/sEcReTwEbHoOkPaTh";
/// The channel id the Web API answers with.
pub const CHANNEL_ID: &str = "C0ALERTS";

/// One request the fake received.
#[derive(Debug, Clone)]
pub struct Request {
    pub at: Instant,
    /// The path (`/api/chat.postMessage`, or the webhook's).
    pub path: String,
    /// The `Authorization` header, if any.
    pub authorization: Option<String>,
    /// The JSON body (`null` when it was not JSON).
    pub body: Value,
}

/// A scripted answer: status, content type, body, `Retry-After` header.
type Scripted = (u16, &'static str, String, Option<&'static str>);

#[derive(Default)]
struct Inner {
    requests: Vec<Request>,
    /// ts → the message's body.
    messages: BTreeMap<String, Value>,
    next_ts: u64,
    script: HashMap<String, VecDeque<Scripted>>,
}

/// A running fake Slack.
#[derive(Clone)]
pub struct FakeSlack {
    /// The base URL: the Web API is `{url}/api`, the webhook
    /// `{url}{WEBHOOK_PATH}`.
    pub url: String,
    token: Arc<str>,
    inner: Arc<Mutex<Inner>>,
}

impl FakeSlack {
    /// Starts a fake whose Web API accepts the bot token `token`.
    pub async fn start(token: &str) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let fake = Self {
            url: format!("http://{}", listener.local_addr().unwrap()),
            token: Arc::from(token),
            inner: Arc::default(),
        };
        let router = Router::new().fallback(handle).with_state(fake.clone());
        tokio::spawn(async move { axum::serve(listener, router).await });
        fake
    }

    /// The webhook URL.
    pub fn webhook_url(&self) -> String {
        format!("{}{WEBHOOK_PATH}", self.url)
    }

    /// Scripts the next answer to `path` as a JSON body.
    pub fn script_json(
        &self,
        path: &str,
        status: u16,
        body: Value,
        retry_after: Option<&'static str>,
    ) {
        self.script(
            path,
            (status, "application/json", body.to_string(), retry_after),
        );
    }

    /// Scripts the next answer to `path` as a text body.
    pub fn script_text(
        &self,
        path: &str,
        status: u16,
        body: &str,
        retry_after: Option<&'static str>,
    ) {
        self.script(path, (status, "text/plain", body.to_string(), retry_after));
    }

    fn script(&self, path: &str, answer: Scripted) {
        self.lock()
            .script
            .entry(path.to_string())
            .or_default()
            .push_back(answer);
    }

    /// Deletes a message, as a user would.
    pub fn delete(&self, ts: &str) {
        self.lock().messages.remove(ts);
    }

    /// A message as it shows now.
    pub fn message(&self, ts: &str) -> Option<Value> {
        self.lock().messages.get(ts).cloned()
    }

    /// The requests to `path` so far.
    pub fn calls(&self, path: &str) -> Vec<Request> {
        self.lock()
            .requests
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }

    /// Waits (bounded) until `path` was called `n` times; returns the calls.
    pub async fn wait_calls(&self, path: &str, n: usize) -> Vec<Request> {
        crate::common::wait_for(
            &format!("{n} call(s) of {path}"),
            Duration::from_secs(20),
            || {
                let calls = self.calls(path);
                (calls.len() >= n).then_some(calls)
            },
        )
        .await
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap()
    }
}

fn text(status: u16, body: &str) -> Response {
    (
        StatusCode::from_u16(status).unwrap(),
        [(header::CONTENT_TYPE, "text/plain")],
        body.to_string(),
    )
        .into_response()
}

fn api_ok(fields: Value) -> Response {
    let mut body = json!({"ok": true});
    if let (Some(body), Some(fields)) = (body.as_object_mut(), fields.as_object()) {
        body.extend(fields.clone());
    }
    axum::Json(body).into_response()
}

/// Web API errors come with HTTP 200.
fn api_error(error: &str) -> Response {
    axum::Json(json!({"ok": false, "error": error})).into_response()
}

async fn handle(
    State(fake): State<FakeSlack>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    let parsed: Option<Value> = serde_json::from_slice(&body).ok();
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let mut inner = fake.lock();
    inner.requests.push(Request {
        at: Instant::now(),
        path: path.clone(),
        authorization: authorization.clone(),
        body: parsed.clone().unwrap_or(Value::Null),
    });
    if let Some((status, content_type, body, retry_after)) =
        inner.script.get_mut(&path).and_then(VecDeque::pop_front)
    {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        if let Some(retry) = retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static(retry));
        }
        return (StatusCode::from_u16(status).unwrap(), headers, body).into_response();
    }
    if path == WEBHOOK_PATH {
        return match parsed {
            None => text(400, "invalid_payload"),
            Some(message) => match check_message(&message) {
                Ok(()) => text(200, "ok"),
                Err(error) => text(400, error),
            },
        };
    }
    let Some(method) = path.strip_prefix("/api/") else {
        return text(404, "not found");
    };
    if authorization.as_deref() != Some(&format!("Bearer {}", fake.token)) {
        return api_error(if authorization.is_none() {
            "not_authed"
        } else {
            "invalid_auth"
        });
    }
    let body = parsed.unwrap_or(Value::Null);
    match method {
        "auth.test" => api_ok(
            json!({"url": "https://howl.slack.com/", "team": "howl", "user": "howl", "team_id": "T0HOWL", "user_id": "U0HOWL", "bot_id": "B0HOWL"}),
        ),
        "chat.postMessage" => {
            if body["channel"].as_str().is_none_or(str::is_empty) {
                return api_error("channel_not_found");
            }
            if let Err(error) = check_message(&body) {
                return api_error(error);
            }
            if let Some(parent) = body["thread_ts"].as_str()
                && !inner.messages.contains_key(parent)
            {
                return api_error("thread_not_found");
            }
            inner.next_ts += 1;
            let ts = format!("1763800000.{:06}", inner.next_ts);
            inner.messages.insert(ts.clone(), body.clone());
            api_ok(
                json!({"channel": CHANNEL_ID, "ts": ts, "message": {"text": body["text"], "ts": ts}}),
            )
        }
        "chat.update" => {
            let ts = body["ts"].as_str().unwrap_or_default().to_string();
            if body["channel"] != CHANNEL_ID {
                return api_error("channel_not_found");
            }
            if let Err(error) = check_message(&body) {
                return api_error(error);
            }
            match inner.messages.get_mut(&ts) {
                Some(message) => {
                    *message = body.clone();
                    api_ok(json!({"channel": CHANNEL_ID, "ts": ts, "text": body["text"]}))
                }
                None => api_error("message_not_found"),
            }
        }
        "chat.postEphemeral" => {
            if body["channel"] != CHANNEL_ID {
                return api_error("channel_not_found");
            }
            if body["user"].as_str().is_none_or(str::is_empty) {
                return api_error("user_not_in_channel");
            }
            if body["text"].as_str().is_none_or(str::is_empty) {
                return api_error("no_text");
            }
            api_ok(json!({"message_ts": "1763800000.999999"}))
        }
        _ => api_error("unknown_method"),
    }
}

/// What Slack refuses in a message: no text at all, or blocks beyond the
/// Block Kit limits.
fn check_message(message: &Value) -> Result<(), &'static str> {
    let blocks: Vec<&Value> = message["attachments"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|a| a["blocks"].as_array().into_iter().flatten())
        .chain(message["blocks"].as_array().into_iter().flatten())
        .collect();
    if message["text"].as_str().is_none_or(str::is_empty) && blocks.is_empty() {
        return Err("no_text");
    }
    for block in blocks {
        let length = |text: &Value| text.as_str().map(|t| t.chars().count());
        let ok = match block["type"].as_str() {
            Some("header") => {
                block["text"]["type"] == "plain_text"
                    && length(&block["text"]["text"]).is_some_and(|n| (1..=150).contains(&n))
            }
            Some("section") => {
                length(&block["text"]["text"]).is_some_and(|n| (1..=3000).contains(&n))
            }
            Some("context") => block["elements"].as_array().is_some_and(|e| {
                e.iter()
                    .all(|e| length(&e["text"]).is_some_and(|n| (1..=3000).contains(&n)))
            }),
            // Buttons: 1-25, plain-text labels of at most 75 characters,
            // action ids unique within the block, values of at most 2000.
            Some("actions") => block["elements"].as_array().is_some_and(|e| {
                let ids: std::collections::HashSet<_> =
                    e.iter().map(|b| b["action_id"].to_string()).collect();
                (1..=25).contains(&e.len())
                    && ids.len() == e.len()
                    && e.iter().all(|b| {
                        b["type"] == "button"
                            && b["text"]["type"] == "plain_text"
                            && length(&b["text"]["text"]).is_some_and(|n| (1..=75).contains(&n))
                            && length(&b["value"]).is_some_and(|n| n <= 2000)
                    })
            }),
            _ => false,
        };
        if !ok {
            return Err("invalid_blocks");
        }
    }
    Ok(())
}
