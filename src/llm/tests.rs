//! Each network provider against a loopback server speaking its exact wire
//! format: the request it sends, the answer it reads, and what it does with
//! 429 + `Retry-After`, 5xx, slow answers, invalid and off-schema JSON.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::IntoResponse;
use serde_json::{Value, json};

use super::http::HttpSettings;
use super::{Classifier, LlmError, Masker, Prompt, Remote, RemoteSettings, Usage};
use crate::component_key::{ComponentKey, ComponentKind};
use crate::http::Failure;
use crate::internal_events::ComponentMetrics;
use crate::secret::Secret;
use crate::state::triage::Label;

const PROVIDERS: [Remote; 3] = [Remote::Openai, Remote::Ollama, Remote::Anthropic];
const NOISE: &str =
    r#"{"verdict":"noise","confidence":0.92,"reason":"a load balancer health check"}"#;

/// One scripted answer.
#[derive(Clone)]
struct Reply {
    status: u16,
    headers: Vec<(&'static str, &'static str)>,
    body: String,
    delay: Duration,
}

impl Reply {
    fn ok(body: String) -> Self {
        Self {
            status: 200,
            headers: Vec::new(),
            body,
            delay: Duration::ZERO,
        }
    }

    fn status(status: u16, body: Value) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: body.to_string(),
            delay: Duration::ZERO,
        }
    }
}

/// A request as the server saw it.
#[derive(Clone)]
struct Seen {
    path: String,
    headers: HeaderMap,
    body: Value,
    at: Instant,
}

#[derive(Clone)]
struct Server {
    script: Arc<Mutex<VecDeque<Reply>>>,
    seen: Arc<Mutex<Vec<Seen>>>,
    fallback: Reply,
}

async fn answer(
    State(server): State<Server>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> impl IntoResponse {
    server.seen.lock().unwrap().push(Seen {
        path: uri.path().to_string(),
        headers,
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        at: Instant::now(),
    });
    let reply = server
        .script
        .lock()
        .unwrap()
        .pop_front()
        .unwrap_or_else(|| server.fallback.clone());
    tokio::time::sleep(reply.delay).await;
    let mut headers = HeaderMap::new();
    for (name, value) in reply.headers {
        headers.insert(name, HeaderValue::from_static(value));
    }
    (
        StatusCode::from_u16(reply.status).unwrap(),
        headers,
        reply.body,
    )
}

/// The body a provider's server answers with when its model said `text`
/// (Anthropic's forced tool carries a JSON object as `input`).
fn answer_body(provider: Remote, text: &str) -> String {
    match provider {
        Remote::Openai => json!({
            "id": "chatcmpl-1", "object": "chat.completion", "created": 1_764_000_000, "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text, "refusal": null}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120},
        }),
        Remote::Ollama => json!({
            "model": "m", "created_at": "2026-11-22T10:00:00Z",
            "message": {"role": "assistant", "content": text},
            "done": true, "done_reason": "stop", "total_duration": 1_000_000,
            "prompt_eval_count": 100, "eval_count": 20,
        }),
        Remote::Anthropic => {
            let content = match serde_json::from_str::<Value>(text) {
                Ok(input) if input.is_object() => {
                    json!([{"type": "tool_use", "id": "toolu_1", "name": "verdict", "input": input}])
                }
                _ => json!([{"type": "text", "text": text}]),
            };
            json!({
                "id": "msg_1", "type": "message", "role": "assistant", "model": "m",
                "content": content, "stop_reason": "tool_use",
                "usage": {"input_tokens": 100, "output_tokens": 20},
            })
        }
    }
    .to_string()
}

/// Each provider's rate-limit error body.
fn rate_limited(provider: Remote) -> Value {
    match provider {
        Remote::Openai => {
            json!({"error": {"message": "Rate limit reached", "type": "requests", "param": null, "code": "rate_limit_exceeded"}})
        }
        Remote::Ollama => json!({"error": "too many requests"}),
        Remote::Anthropic => {
            json!({"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}})
        }
    }
}

struct Setup {
    classifier: Arc<dyn Classifier>,
    server: Server,
}

impl Setup {
    async fn start(provider: Remote, script: Vec<Reply>, timeout: f64, deadline: f64) -> Self {
        let server = Server {
            script: Arc::new(Mutex::new(script.into())),
            seen: Arc::new(Mutex::new(Vec::new())),
            fallback: Reply::ok(answer_body(provider, NOISE)),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let router = Router::new().fallback(answer).with_state(server.clone());
        tokio::spawn(async move { axum::serve(listener, router).await });
        let base = match provider {
            Remote::Openai => format!("http://{address}/v1"),
            Remote::Ollama | Remote::Anthropic => format!("http://{address}"),
        };
        let settings = RemoteSettings {
            kind: provider,
            http: HttpSettings {
                endpoint: reqwest::Url::parse(&base).unwrap(),
                api_key: Some(Secret::from("sk-test-0123456789abcdef")),
                timeout: Duration::from_secs_f64(timeout),
                deadline: Duration::from_secs_f64(deadline),
                concurrency: 2,
            },
            model: "llama3.2".into(),
            max_tokens: 200,
        };
        let metrics = Arc::new(ComponentMetrics::new(ComponentKey::new(
            ComponentKind::Transform,
            "triage",
            "llm_suppress",
        )));
        Self {
            classifier: settings.connect(metrics).unwrap(),
            server,
        }
    }

    async fn ask(&self) -> Result<super::Answer, LlmError> {
        let prompt = Prompt::new(
            "GET /healthz <NUM>",
            "info",
            &[Arc::from("GET /healthz 200 from 10.1.2.3")],
            &Masker::default(),
        );
        self.classifier.classify(&prompt).await
    }

    fn seen(&self) -> Vec<Seen> {
        self.server.seen.lock().unwrap().clone()
    }
}

fn header<'a>(seen: &'a Seen, name: &str) -> &'a str {
    seen.headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

#[tokio::test]
async fn each_provider_speaks_its_wire_format() {
    for provider in PROVIDERS {
        let setup = Setup::start(provider, Vec::new(), 5.0, 10.0).await;
        let answer = setup.ask().await.unwrap();
        assert_eq!(answer.verdict.label, Label::Noise, "{provider:?}");
        assert_eq!(answer.verdict.confidence, 0.92);
        assert_eq!(
            answer.usage,
            Some(Usage {
                input: 100,
                output: 20
            })
        );
        let seen = setup.seen();
        assert_eq!(seen.len(), 1);
        let (request, body) = (&seen[0], &seen[0].body);
        assert_eq!(body["model"], "llama3.2");
        assert!(header(request, "content-type").starts_with("application/json"));
        let user = |messages: &Value| {
            messages
                .as_array()
                .and_then(|m| m.iter().find(|m| m["role"] == "user"))
                .and_then(|m| m["content"].as_str())
                .unwrap_or_default()
                .to_string()
        };
        match provider {
            Remote::Openai => {
                assert_eq!(request.path, "/v1/chat/completions");
                assert_eq!(
                    header(request, "authorization"),
                    "Bearer sk-test-0123456789abcdef"
                );
                assert_eq!(body["temperature"], 0);
                assert_eq!(body["max_tokens"], 200, "the field Ollama's /v1 reads");
                assert_eq!(body["stream"], false);
                assert_eq!(body["messages"][0]["role"], "system");
                assert_eq!(body["response_format"]["type"], "json_schema");
                let schema = &body["response_format"]["json_schema"];
                assert_eq!(schema["strict"], true);
                assert_eq!(schema["schema"]["additionalProperties"], false);
                assert!(user(&body["messages"]).contains("GET /healthz <NUM>"));
            }
            Remote::Ollama => {
                assert_eq!(request.path, "/api/chat");
                assert_eq!(body["stream"], false);
                assert_eq!(body["options"]["temperature"], 0);
                assert_eq!(body["options"]["num_predict"], 200);
                assert_eq!(
                    body["format"]["required"],
                    json!(["verdict", "confidence", "reason"])
                );
                assert!(user(&body["messages"]).contains("Level: info"));
            }
            Remote::Anthropic => {
                assert_eq!(request.path, "/v1/messages");
                assert_eq!(header(request, "x-api-key"), "sk-test-0123456789abcdef");
                assert_eq!(header(request, "anthropic-version"), "2023-06-01");
                assert_eq!(
                    header(request, "authorization"),
                    "",
                    "Anthropic takes x-api-key only"
                );
                assert_eq!(body["max_tokens"], 200);
                assert_eq!(body["temperature"], 0);
                assert!(
                    body["system"]
                        .as_str()
                        .unwrap()
                        .contains("noise or important")
                );
                assert_eq!(
                    body["tool_choice"],
                    json!({"type": "tool", "name": "verdict"})
                );
                assert_eq!(body["tools"][0]["input_schema"]["type"], "object");
                assert!(
                    user(&body["messages"]).contains("<IP>"),
                    "samples arrive masked"
                );
            }
        }
    }
}

#[tokio::test]
async fn a_429_is_retried_after_its_retry_after() {
    for provider in PROVIDERS {
        let mut limited = Reply::status(429, rate_limited(provider));
        limited.headers.push(("retry-after", "1"));
        let setup = Setup::start(provider, vec![limited], 5.0, 10.0).await;
        assert_eq!(
            setup.ask().await.unwrap().verdict.label,
            Label::Noise,
            "{provider:?}"
        );
        let seen = setup.seen();
        assert_eq!(seen.len(), 2, "{provider:?}");
        let gap = seen[1].at - seen[0].at;
        assert!(
            gap >= Duration::from_millis(950),
            "{provider:?} waited only {gap:?}"
        );
    }
}

#[tokio::test]
async fn server_errors_are_retried_and_client_errors_are_not() {
    for provider in PROVIDERS {
        let crashed = Reply::status(500, json!({"error": "internal"}));
        let setup = Setup::start(provider, vec![crashed], 5.0, 10.0).await;
        assert!(setup.ask().await.is_ok(), "{provider:?}: a 500 is retried");
        assert_eq!(setup.seen().len(), 2);

        let refused = Reply::status(
            401,
            json!({"error": {"message": "bad key sk-test-0123456789abcdef"}}),
        );
        let setup = Setup::start(provider, vec![refused], 5.0, 10.0).await;
        let error = setup.ask().await.unwrap_err();
        assert!(
            matches!(error, LlmError::Http(Failure::Rejected { .. })),
            "{provider:?}: {error}"
        );
        assert!(
            !error.to_string().contains("sk-test"),
            "the key is redacted: {error}"
        );
        assert_eq!(setup.seen().len(), 1, "{provider:?}: a 401 is final");
    }
    let mut overloaded = Reply::status(
        529,
        json!({"type": "error", "error": {"type": "overloaded_error", "message": "busy"}}),
    );
    overloaded.headers.push(("retry-after", "0"));
    let setup = Setup::start(Remote::Anthropic, vec![overloaded], 5.0, 10.0).await;
    assert!(setup.ask().await.is_ok(), "Anthropic's 529 is retried");
}

#[tokio::test]
async fn a_slow_answer_past_the_timeout_is_an_error_within_the_deadline() {
    for provider in PROVIDERS {
        let mut slow = Reply::ok(answer_body(provider, NOISE));
        slow.delay = Duration::from_secs(5);
        let setup = Setup::start(provider, vec![slow.clone(), slow.clone(), slow], 0.3, 0.8).await;
        let started = Instant::now();
        let error = setup.ask().await.unwrap_err();
        assert!(
            matches!(&error, LlmError::Http(Failure::GaveUp { last, .. }) if last.contains("timed out")),
            "{provider:?}: {error}"
        );
        assert_eq!(error.outcome(), "failed");
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
    }
}

#[tokio::test]
async fn invalid_json_is_an_error_and_not_retried() {
    for provider in PROVIDERS {
        let prose = Reply::ok(answer_body(provider, "It is probably noise."));
        let html = Reply::ok("<html>502 Bad Gateway</html>".into());
        let setup = Setup::start(provider, vec![prose, html], 5.0, 10.0).await;
        for _ in 0..2 {
            let error = setup.ask().await.unwrap_err();
            assert!(
                matches!(error, LlmError::InvalidAnswer(_)),
                "{provider:?}: {error}"
            );
            assert_eq!(error.outcome(), "invalid");
        }
        assert_eq!(setup.seen().len(), 2, "one request per question");
    }
}

#[tokio::test]
async fn off_schema_json_is_an_error() {
    for provider in PROVIDERS {
        let maybe = Reply::ok(answer_body(
            provider,
            r#"{"verdict":"maybe","confidence":0.5,"reason":"unsure"}"#,
        ));
        let out_of_range = Reply::ok(answer_body(
            provider,
            r#"{"verdict":"noise","confidence":7,"reason":"very sure"}"#,
        ));
        let setup = Setup::start(provider, vec![maybe, out_of_range], 5.0, 10.0).await;
        for _ in 0..2 {
            let error = setup.ask().await.unwrap_err();
            assert!(
                matches!(error, LlmError::InvalidAnswer(_)),
                "{provider:?}: {error}"
            );
        }
    }
}

#[tokio::test]
async fn openai_falls_back_to_plain_json_when_response_format_is_refused() {
    let refused = Reply::status(
        400,
        json!({"error": {"message": "response_format is not supported", "type": "invalid_request_error"}}),
    );
    let setup = Setup::start(Remote::Openai, vec![refused], 5.0, 10.0).await;
    assert_eq!(setup.ask().await.unwrap().verdict.label, Label::Noise);
    setup.ask().await.unwrap();
    let seen = setup.seen();
    assert_eq!(seen.len(), 3);
    assert!(seen[0].body.get("response_format").is_some());
    assert!(
        seen[1].body.get("response_format").is_none(),
        "asked again without it"
    );
    assert!(
        seen[2].body.get("response_format").is_none(),
        "and never again"
    );
    let system = seen[1].body["messages"][0]["content"].as_str().unwrap();
    assert!(system.contains("JSON"), "the prompt itself asks for JSON");
}

#[tokio::test]
async fn openai_adapts_to_reasoning_models_that_refuse_max_tokens_and_temperature() {
    // OpenAI's exact answers for an o-series model.
    let no_max_tokens = Reply::status(
        400,
        json!({"error": {"message": "Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens' instead.", "type": "invalid_request_error", "param": "max_tokens", "code": "unsupported_parameter"}}),
    );
    let no_temperature = Reply::status(
        400,
        json!({"error": {"message": "Unsupported value: 'temperature' does not support 0 with this model. Only the default (1) value is supported.", "type": "invalid_request_error", "param": "temperature", "code": "unsupported_value"}}),
    );
    let setup = Setup::start(
        Remote::Openai,
        vec![no_max_tokens, no_temperature],
        5.0,
        10.0,
    )
    .await;
    assert_eq!(setup.ask().await.unwrap().verdict.label, Label::Noise);
    setup.ask().await.unwrap();
    let seen = setup.seen();
    assert_eq!(seen.len(), 4, "two refusals, then one request per question");
    assert_eq!(seen[0].body["max_tokens"], 200);
    assert_eq!(seen[0].body["temperature"], 0);
    assert!(seen[1].body.get("max_tokens").is_none());
    assert_eq!(seen[1].body["max_completion_tokens"], 200);
    assert_eq!(seen[1].body["temperature"], 0);
    for later in &seen[2..] {
        assert_eq!(later.body["max_completion_tokens"], 200);
        assert!(later.body.get("max_tokens").is_none());
        assert!(later.body.get("temperature").is_none());
        assert!(
            later.body.get("response_format").is_some(),
            "structured output is kept: only what was refused changes"
        );
    }
}

#[tokio::test]
async fn openai_gives_up_when_a_refusal_leaves_nothing_to_change() {
    let refused = || {
        Reply::status(
            400,
            json!({"error": {"message": "model not allowed", "type": "invalid_request_error", "param": "model"}}),
        )
    };
    let setup = Setup::start(
        Remote::Openai,
        vec![refused(), refused(), refused()],
        5.0,
        10.0,
    )
    .await;
    let error = setup.ask().await.unwrap_err();
    assert!(
        matches!(error, LlmError::Http(Failure::Rejected { .. })),
        "{error}"
    );
    assert_eq!(
        setup.seen().len(),
        2,
        "asked once more without response_format, then gave up"
    );
}
