//! A loopback Telegram Bot API: `/bot{token}/{method}`, answering with the
//! Bot API's shapes (`{"ok":true,"result":{...}}`, `{"ok":false,
//! "error_code","description","parameters"?}`), and checking what a real
//! server checks: the token, HTML that parses (only Telegram's tags, closed
//! in order, entities complete), 1-4096 characters after entity parsing,
//! messages that exist before they are edited or replied to.
//!
//! Tests can script the next answers to a method, delete messages, and read
//! every request with the time it arrived.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// The chat id the fake reports for `@username` chats.
pub const CHANNEL_ID: i64 = -1_009_999;

/// One request the fake received.
#[derive(Debug, Clone)]
pub struct Request {
    pub at: Instant,
    /// The token from the path.
    pub token: String,
    /// The method, lower-cased.
    pub method: String,
    /// The JSON parameters (`{}` for a GET).
    pub params: Value,
}

/// A message as the fake chat shows it.
#[derive(Debug, Clone)]
pub struct Message {
    pub chat_id: i64,
    /// The visible text (after entity parsing).
    pub text: String,
    /// The text as sent (with its markup).
    pub raw: String,
    /// Its inline keyboard (`reply_markup`), or null.
    pub keyboard: Value,
}

/// A scripted answer: status, body, `Retry-After` header.
type Scripted = (u16, Value, Option<&'static str>);

#[derive(Default)]
struct Inner {
    requests: Vec<Request>,
    messages: BTreeMap<i64, Message>,
    next_id: i64,
    script: HashMap<String, VecDeque<Scripted>>,
    /// Updates not yet confirmed by a `getUpdates` offset.
    updates: VecDeque<Value>,
    next_update: i64,
    /// Callback queries not yet answered, by id.
    unanswered: Vec<String>,
}

/// A running fake Bot API.
#[derive(Clone)]
pub struct FakeTelegram {
    /// The base URL to configure as `api_base`.
    pub url: String,
    token: Arc<str>,
    inner: Arc<Mutex<Inner>>,
}

impl FakeTelegram {
    /// Starts a fake that accepts `token`.
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

    /// The next answer to `method` (in order, before the fake's own logic).
    pub fn script(
        &self,
        method: &str,
        status: u16,
        body: Value,
        retry_after: Option<&'static str>,
    ) {
        self.lock()
            .script
            .entry(method.to_ascii_lowercase())
            .or_default()
            .push_back((status, body, retry_after));
    }

    /// Deletes a message, as a chat admin would.
    pub fn delete(&self, message_id: i64) {
        self.lock().messages.remove(&message_id);
    }

    /// The requests to `method` so far.
    pub fn calls(&self, method: &str) -> Vec<Request> {
        let method = method.to_ascii_lowercase();
        let inner = self.lock();
        inner
            .requests
            .iter()
            .filter(|r| r.method == method)
            .cloned()
            .collect()
    }

    /// Waits (bounded) until `method` was called `n` times; returns the calls.
    pub async fn wait_calls(&self, method: &str, n: usize) -> Vec<Request> {
        common_wait(method, n, || {
            let calls = self.calls(method);
            (calls.len() >= n).then_some(calls)
        })
        .await
    }

    /// A user presses the button with `data` under message `message_id`
    /// (which must exist), as `getUpdates` will report it.
    pub fn press(&self, message_id: i64, user_id: i64, username: Option<&str>, data: &str) {
        let update = self.press_update(message_id, user_id, username, data);
        self.lock().updates.push_back(update);
    }

    /// The update of a press, as Telegram would post it to a webhook
    /// (not queued for `getUpdates`).
    pub fn press_update(
        &self,
        message_id: i64,
        user_id: i64,
        username: Option<&str>,
        data: &str,
    ) -> Value {
        let mut inner = self.lock();
        let message = inner
            .messages
            .get(&message_id)
            .cloned()
            .expect("a button under an existing message");
        inner.next_update += 1;
        let update_id = 1000 + inner.next_update;
        let query_id = format!("cb-{update_id}");
        inner.unanswered.push(query_id.clone());
        let mut from = json!({"id": user_id, "is_bot": false, "first_name": "Op"});
        if let Some(name) = username {
            from["username"] = json!(name);
        }
        json!({
            "update_id": update_id,
            "callback_query": {
                "id": query_id,
                "from": from,
                "message": message_json(message_id, &message),
                "chat_instance": "42",
                "data": data,
            }
        })
    }

    /// Queues an update as given (malformed ones included); returns its id.
    pub fn push_update(&self, mut update: Value) -> i64 {
        let mut inner = self.lock();
        inner.next_update += 1;
        let update_id = 1000 + inner.next_update;
        update["update_id"] = json!(update_id);
        inner.updates.push_back(update);
        update_id
    }

    /// Whether every press was answered (`answerCallbackQuery`).
    pub fn all_answered(&self) -> bool {
        self.lock().unanswered.is_empty()
    }

    /// A message of the chat.
    pub fn message(&self, id: i64) -> Option<Message> {
        self.lock().messages.get(&id).cloned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap()
    }
}

async fn common_wait<T>(method: &str, n: usize, check: impl FnMut() -> Option<T>) -> T {
    crate::common::wait_for(
        &format!("{n} call(s) of {method}"),
        Duration::from_secs(20),
        check,
    )
    .await
}

fn ok(result: Value) -> Response {
    (
        StatusCode::OK,
        axum::Json(json!({"ok": true, "result": result})),
    )
        .into_response()
}

fn error(code: u16, description: &str) -> Response {
    (
        StatusCode::from_u16(code).unwrap(),
        axum::Json(json!({"ok": false, "error_code": code, "description": description})),
    )
        .into_response()
}

async fn handle(State(fake): State<FakeTelegram>, uri: Uri, body: Bytes) -> Response {
    let mut segments = uri.path().trim_start_matches('/').splitn(2, '/');
    let token = segments
        .next()
        .unwrap_or_default()
        .strip_prefix("bot")
        .unwrap_or_default();
    let method = segments.next().unwrap_or_default().to_ascii_lowercase();
    let params: Value = if body.is_empty() {
        json!({})
    } else {
        match serde_json::from_slice(&body) {
            Ok(params) => params,
            Err(_) => return error(400, "Bad Request: invalid JSON"),
        }
    };
    if method == "getupdates" {
        return get_updates(&fake, token, &params).await;
    }
    let mut inner = fake.lock();
    inner.requests.push(Request {
        at: Instant::now(),
        token: token.to_string(),
        method: method.clone(),
        params: params.clone(),
    });
    if token != &*fake.token {
        return error(401, "Unauthorized");
    }
    if let Some((status, body, retry_after)) =
        inner.script.get_mut(&method).and_then(VecDeque::pop_front)
    {
        let mut headers = HeaderMap::new();
        if let Some(retry) = retry_after {
            headers.insert("retry-after", HeaderValue::from_static(retry));
        }
        return (
            StatusCode::from_u16(status).unwrap(),
            headers,
            axum::Json(body),
        )
            .into_response();
    }
    match method.as_str() {
        "getme" => {
            ok(json!({"id": 42, "is_bot": true, "first_name": "howl", "username": "howl_test_bot"}))
        }
        "sendmessage" => send_message(&mut inner, &params),
        "editmessagetext" => edit_message(&mut inner, &params),
        "answercallbackquery" => {
            let id = params["callback_query_id"].as_str().unwrap_or_default();
            match inner.unanswered.iter().position(|known| known == id) {
                Some(at) => {
                    inner.unanswered.remove(at);
                    ok(json!(true))
                }
                None => error(
                    400,
                    "Bad Request: query is too old and response timeout expired or query ID is invalid",
                ),
            }
        }
        _ => error(404, "Not Found"),
    }
}

/// `getUpdates`: drops what `offset` confirms, answers the rest at once,
/// or waits (at most a second here, whatever `timeout` asks) for one.
async fn get_updates(fake: &FakeTelegram, token: &str, params: &Value) -> Response {
    {
        let mut inner = fake.lock();
        inner.requests.push(Request {
            at: Instant::now(),
            token: token.to_string(),
            method: "getupdates".into(),
            params: params.clone(),
        });
        if token != &*fake.token {
            return error(401, "Unauthorized");
        }
        if let Some((status, body, _)) = inner
            .script
            .get_mut("getupdates")
            .and_then(VecDeque::pop_front)
        {
            return (StatusCode::from_u16(status).unwrap(), axum::Json(body)).into_response();
        }
        if let Some(offset) = params["offset"].as_i64() {
            inner
                .updates
                .retain(|u| u["update_id"].as_i64().is_some_and(|id| id >= offset));
        }
    }
    for _ in 0..20 {
        let pending: Vec<Value> = fake.lock().updates.iter().cloned().collect();
        if !pending.is_empty() {
            return ok(Value::Array(pending));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    ok(json!([]))
}

/// A refusal: the error code and description to answer with.
type Refusal = (u16, String);

fn refuse(code: u16, description: &str) -> Refusal {
    (code, description.to_string())
}

/// The chat's numeric id.
fn chat_of(params: &Value) -> Result<i64, Refusal> {
    match &params["chat_id"] {
        Value::Number(n) => n
            .as_i64()
            .ok_or_else(|| refuse(400, "Bad Request: chat not found")),
        Value::String(s) if s.starts_with('@') => Ok(CHANNEL_ID),
        Value::String(s) => s
            .parse()
            .map_err(|_| refuse(400, "Bad Request: chat not found")),
        _ => Err(refuse(400, "Bad Request: chat_id is empty")),
    }
}

/// The text as sent and as shown (after entity parsing).
fn visible_text(params: &Value) -> Result<(String, String), Refusal> {
    let raw = params["text"]
        .as_str()
        .ok_or_else(|| refuse(400, "Bad Request: message text is empty"))?;
    let text = match params["parse_mode"].as_str() {
        None => raw.to_string(),
        Some("HTML") => parse_html(raw)
            .map_err(|e| refuse(400, &format!("Bad Request: can't parse entities: {e}")))?,
        Some(other) => {
            return Err(refuse(
                400,
                &format!("Bad Request: unsupported parse_mode {other}"),
            ));
        }
    };
    if text.trim().is_empty() {
        return Err(refuse(400, "Bad Request: message text is empty"));
    }
    if text.encode_utf16().count() > 4096 {
        return Err(refuse(400, "Bad Request: message is too long"));
    }
    Ok((raw.to_string(), text))
}

/// The chat and the text of a `sendMessage` or `editMessageText`.
fn chat_and_text(params: &Value) -> Result<(i64, String, String), Refusal> {
    let chat_id = chat_of(params)?;
    let (raw, text) = visible_text(params)?;
    Ok((chat_id, raw, text))
}

fn message_json(id: i64, message: &Message) -> Value {
    let mut json = json!({
        "message_id": id,
        "date": 1_763_800_000,
        "chat": {"id": message.chat_id, "type": "supergroup", "title": "alerts"},
        "text": message.text,
    });
    if !message.keyboard.is_null() {
        json["reply_markup"] = message.keyboard.clone();
    }
    json
}

fn send_message(inner: &mut Inner, params: &Value) -> Response {
    let (chat_id, raw, text) = match chat_and_text(params) {
        Ok(parts) => parts,
        Err((code, description)) => return error(code, &description),
    };
    let reply_to = params["reply_parameters"]["message_id"].as_i64();
    if let Some(reply_to) = reply_to
        && !inner.messages.contains_key(&reply_to)
        && params["reply_parameters"]["allow_sending_without_reply"] != json!(true)
    {
        return error(400, "Bad Request: message to be replied not found");
    }
    inner.next_id += 1;
    let id = inner.next_id;
    let message = Message {
        chat_id,
        text,
        raw,
        keyboard: params["reply_markup"].clone(),
    };
    let answer = message_json(id, &message);
    inner.messages.insert(id, message);
    ok(answer)
}

fn edit_message(inner: &mut Inner, params: &Value) -> Response {
    let (chat_id, raw, text) = match chat_and_text(params) {
        Ok(parts) => parts,
        Err((code, description)) => return error(code, &description),
    };
    let Some(id) = params["message_id"].as_i64() else {
        return error(400, "Bad Request: message identifier is not specified");
    };
    let Some(message) = inner.messages.get_mut(&id).filter(|m| m.chat_id == chat_id) else {
        return error(400, "Bad Request: message to edit not found");
    };
    if message.raw == raw && message.keyboard == params["reply_markup"] {
        return error(
            400,
            "Bad Request: message is not modified: specified new message content and reply markup are exactly the same as a current content and reply markup of the message",
        );
    }
    message.raw = raw;
    message.text = text;
    message.keyboard = params["reply_markup"].clone();
    let answer = message_json(id, message);
    ok(answer)
}

/// Telegram's HTML: the tags it supports, closed in order; entities
/// `&lt; &gt; &amp; &quot;` and numeric ones. Returns the visible text.
fn parse_html(text: &str) -> Result<String, String> {
    const TAGS: &[&str] = &[
        "b",
        "strong",
        "i",
        "em",
        "u",
        "ins",
        "s",
        "strike",
        "del",
        "span",
        "tg-spoiler",
        "a",
        "code",
        "pre",
        "blockquote",
        "tg-emoji",
    ];
    let mut visible = String::new();
    let mut open: Vec<String> = Vec::new();
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        match c {
            '<' => {
                let end = rest.find('>').ok_or("Unclosed start tag")?;
                let inner = &rest[1..end];
                if let Some(name) = inner.strip_prefix('/') {
                    match open.pop() {
                        Some(last) if last == name.trim() => {}
                        _ => return Err(format!("Unmatched end tag \"{name}\"")),
                    }
                } else {
                    let name = inner.split_whitespace().next().unwrap_or_default();
                    if !TAGS.contains(&name) {
                        return Err(format!("Unsupported start tag \"{name}\""));
                    }
                    open.push(name.to_string());
                }
                rest = &rest[end + 1..];
            }
            '>' => return Err("Character '>' is reserved".to_string()),
            '&' => {
                let end = rest
                    .find(';')
                    .filter(|e| *e <= 10)
                    .ok_or("Character '&' is reserved")?;
                let entity = &rest[1..end];
                let decoded = match entity {
                    "lt" => '<',
                    "gt" => '>',
                    "amp" => '&',
                    "quot" => '"',
                    numeric => numeric
                        .strip_prefix('#')
                        .and_then(|n| match n.strip_prefix(['x', 'X']) {
                            Some(hex) => u32::from_str_radix(hex, 16).ok(),
                            None => n.parse().ok(),
                        })
                        .and_then(char::from_u32)
                        .ok_or_else(|| format!("Unsupported HTML entity \"&{numeric};\""))?,
                };
                visible.push(decoded);
                rest = &rest[end + 1..];
            }
            other => {
                visible.push(other);
                rest = &rest[other.len_utf8()..];
            }
        }
    }
    match open.pop() {
        Some(last) => Err(format!(
            "Can't find end tag corresponding to start tag \"{last}\""
        )),
        None => Ok(visible),
    }
}
