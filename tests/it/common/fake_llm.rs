//! A loopback LLM server speaking the OpenAI (`/v1/chat/completions`),
//! Ollama native (`/api/chat`) and Anthropic (`/v1/messages`) wire formats.
//! It records every request and answers "noise" for prompts mentioning a
//! health check (`healthz`), "important" otherwise; or 503 to everything
//! while `down` is set; each answer after `delay` (a slow model). `GET /v1/models` and `/api/tags` (what howl's
//! health checks ask) answer 200, or 503 while `down`.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::IntoResponse;
use axum::routing::get;
use serde_json::{Value, json};

/// One request the server received.
#[derive(Debug, Clone)]
pub struct Request {
    pub body: Value,
}

#[derive(Clone, Default)]
struct Shared {
    requests: Arc<Mutex<Vec<Request>>>,
    down: Arc<AtomicBool>,
    health_checks: Arc<AtomicUsize>,
    contrary: Arc<AtomicBool>,
    delay: Arc<Mutex<std::time::Duration>>,
}

/// A running fake (stops with the test's runtime).
pub struct FakeLlm {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    shared: Shared,
}

impl FakeLlm {
    /// Starts the server.
    pub async fn start() -> Self {
        let shared = Shared::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("address"));
        // The providers' model lists: what howl's health checks GET.
        let router = Router::new()
            .route("/v1/models", get(models))
            .route("/api/tags", get(models))
            .fallback(answer)
            .with_state(shared.clone());
        tokio::spawn(async move { axum::serve(listener, router).await });
        Self { base, shared }
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Request> {
        self.shared.requests.lock().unwrap().clone()
    }

    /// Makes it answer the opposite verdict (a model that disagrees).
    pub fn set_contrary(&self, contrary: bool) {
        self.shared.contrary.store(contrary, Ordering::Release);
    }

    /// Makes every answer to a question wait `delay` first.
    pub fn set_delay(&self, delay: std::time::Duration) {
        *self.shared.delay.lock().unwrap() = delay;
    }

    /// Makes every answer a 503 (or normal again).
    pub fn set_down(&self, down: bool) {
        self.shared.down.store(down, Ordering::Release);
    }
}

/// Health checks seen so far.
impl FakeLlm {
    pub fn health_checks(&self) -> usize {
        self.shared.health_checks.load(Ordering::Acquire)
    }
}

async fn models(State(shared): State<Shared>) -> impl IntoResponse {
    shared.health_checks.fetch_add(1, Ordering::AcqRel);
    if shared.down.load(Ordering::Acquire) {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"error": "down"})),
        );
    }
    (
        StatusCode::OK,
        Json(json!({"object": "list", "data": [{"id": "fake", "object": "model"}]})),
    )
}

/// The text of every message of a request (system and user).
pub fn prompt_text(body: &Value) -> String {
    let mut text = body["system"].as_str().unwrap_or_default().to_string();
    for message in body["messages"].as_array().into_iter().flatten() {
        text.push('\n');
        text.push_str(message["content"].as_str().unwrap_or_default());
    }
    text
}

async fn answer(
    State(shared): State<Shared>,
    uri: Uri,
    Json(body): Json<Value>,
) -> impl IntoResponse {
    let path = uri.path().to_string();
    let user = body["messages"]
        .as_array()
        .and_then(|m| m.iter().rev().find(|m| m["role"] == "user"))
        .and_then(|m| m["content"].as_str())
        .unwrap_or_default()
        .to_string();
    shared.requests.lock().unwrap().push(Request { body });
    let delay = *shared.delay.lock().unwrap();
    tokio::time::sleep(delay).await;
    if shared.down.load(Ordering::Acquire) {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"error": "down"})),
        );
    }
    let verdict = if user.contains("healthz") != shared.contrary.load(Ordering::Acquire) {
        json!({"verdict": "noise", "confidence": 0.95, "reason": "a routine health check"})
    } else {
        json!({"verdict": "important", "confidence": 0.9, "reason": "looks like a real problem"})
    };
    let text = verdict.to_string();
    let body = match path.as_str() {
        "/v1/chat/completions" => json!({
            "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "fake",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 50, "completion_tokens": 10, "total_tokens": 60},
        }),
        "/api/chat" => json!({
            "model": "fake", "created_at": "2026-11-22T10:00:00Z",
            "message": {"role": "assistant", "content": text},
            "done": true, "done_reason": "stop", "prompt_eval_count": 50, "eval_count": 10,
        }),
        "/v1/messages" => json!({
            "id": "msg_1", "type": "message", "role": "assistant", "model": "fake",
            "content": [{"type": "tool_use", "id": "toolu_1", "name": "verdict", "input": verdict}],
            "stop_reason": "tool_use", "usage": {"input_tokens": 50, "output_tokens": 10},
        }),
        _ => {
            return (
                StatusCode::NOT_FOUND,
                Json(json!({"error": "no such route"})),
            );
        }
    };
    (StatusCode::OK, Json(body))
}
