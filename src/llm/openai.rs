//! `provider = "openai"`: the Chat Completions API, spoken by OpenAI and by
//! most local servers (Ollama's `/v1`, vLLM, llama.cpp, LM Studio) and
//! gateways (OpenRouter).
//!
//! `POST {endpoint}/chat/completions` with `temperature: 0` and `max_tokens`
//! set explicitly: Ollama's compatibility layer defaults the temperature to
//! 1 and reads only `max_tokens` (not `max_completion_tokens`). The answer's
//! shape is requested with `response_format` (a strict JSON schema).
//!
//! Servers differ, so the request adapts to what a server refuses (400 or
//! 422), once, for the life of the process: OpenAI's reasoning models (o1,
//! o3, o4-mini, gpt-5...) refuse `max_tokens` (`error.param = "max_tokens"`:
//! `max_completion_tokens` is sent instead) and any `temperature` but the
//! default (`error.param = "temperature"`: it is left out); a server that
//! refuses anything else is asked without `response_format`, relying on the
//! JSON instructions in the prompt.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

use super::Classifier;
use super::contract::{self, Answer, LlmError, Prompt, SYSTEM_PROMPT, Usage};
use super::http::{HttpProvider, HttpSettings, secret_header};
use crate::diagnostic::BuildError;
use crate::http::Failure;
use crate::internal_events::ComponentMetrics;

/// The default `endpoint`.
pub const DEFAULT_ENDPOINT: &str = "https://api.openai.com/v1";

/// An OpenAI-compatible chat completions client.
pub struct OpenAi {
    http: HttpProvider,
    model: String,
    max_tokens: u32,
    /// Whether to send `response_format`; cleared when the server refuses it.
    structured: AtomicBool,
    /// Whether to name the limit `max_completion_tokens` (set when the
    /// server refuses `max_tokens`).
    completion_tokens: AtomicBool,
    /// Whether to send `temperature: 0`; cleared when the server refuses it.
    temperature: AtomicBool,
    metrics: Arc<ComponentMetrics>,
}

/// At most this many adaptations (one per refusable field) per question.
const MAX_ADAPTATIONS: usize = 3;

impl OpenAi {
    /// A client for `model` at `settings.endpoint`.
    pub fn new(
        settings: &HttpSettings,
        model: &str,
        max_tokens: u32,
        metrics: Arc<ComponentMetrics>,
    ) -> Result<Self, BuildError> {
        let mut headers = HeaderMap::new();
        if let Some(key) = &settings.api_key {
            let (name, value) =
                secret_header("authorization", &format!("Bearer {}", key.expose()))?;
            headers.insert(name, value);
        }
        Ok(Self {
            http: HttpProvider::new(
                settings,
                "chat/completions",
                "models",
                headers,
                Arc::clone(&metrics),
            )?,
            model: model.to_string(),
            max_tokens,
            structured: AtomicBool::new(true),
            completion_tokens: AtomicBool::new(false),
            temperature: AtomicBool::new(true),
            metrics,
        })
    }

    fn body(&self, prompt: &Prompt) -> Value {
        let mut body = json!({
            "model": self.model,
            "messages": [
                {"role": "system", "content": SYSTEM_PROMPT},
                {"role": "user", "content": prompt.user_content()},
            ],
            "stream": false,
        });
        let limit = if self.completion_tokens.load(Ordering::Relaxed) {
            "max_completion_tokens"
        } else {
            "max_tokens"
        };
        body[limit] = json!(self.max_tokens);
        if self.temperature.load(Ordering::Relaxed) {
            body["temperature"] = json!(0);
        }
        if self.structured.load(Ordering::Relaxed) {
            body["response_format"] = json!({
                "type": "json_schema",
                "json_schema": {"name": "verdict", "strict": true, "schema": contract::schema()},
            });
        }
        body
    }

    async fn ask(&self, prompt: &Prompt) -> Result<Answer, LlmError> {
        let mut adaptations = 0;
        loop {
            match self.http.post(&self.body(prompt)).await {
                Err(LlmError::Http(Failure::Rejected {
                    status: Some(StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY),
                    body,
                    reason,
                })) if adaptations < MAX_ADAPTATIONS && self.adapt(&body) => {
                    adaptations += 1;
                    tracing::debug!("asking again after the server refused the request: {reason}");
                }
                answer => return parse(&answer?),
            }
        }
    }

    /// Changes the request after a refusal (see the module docs); false
    /// when there is nothing left to change.
    fn adapt(&self, error_body: &str) -> bool {
        let param = serde_json::from_str::<Value>(error_body)
            .ok()
            .and_then(|error| error.pointer("/error/param")?.as_str().map(str::to_string));
        match param.as_deref() {
            Some("max_tokens") if !self.completion_tokens.swap(true, Ordering::Relaxed) => {
                self.metrics.warn_limited(
                    "llm_request_adapted",
                    &"the server refused `max_tokens`; sending `max_completion_tokens` from now on",
                );
                true
            }
            Some("temperature") if self.temperature.swap(false, Ordering::Relaxed) => {
                self.metrics.warn_limited(
                    "llm_request_adapted",
                    &"the server refused `temperature: 0`; using the model's default from now on",
                );
                true
            }
            _ if self.structured.swap(false, Ordering::Relaxed) => {
                self.metrics.warn_limited(
                    "llm_structured_output_refused",
                    &"the server refused `response_format`; asking for JSON in the prompt only from now on",
                );
                true
            }
            _ => false,
        }
    }
}

impl Classifier for OpenAi {
    fn provider(&self) -> &'static str {
        "openai"
    }

    fn classify<'a>(
        &'a self,
        prompt: &'a Prompt,
    ) -> Pin<Box<dyn Future<Output = Result<Answer, LlmError>> + Send + 'a>> {
        Box::pin(self.ask(prompt))
    }

    fn health_check(&self) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + '_>> {
        Box::pin(self.http.probe())
    }
}

/// Reads a chat completion.
fn parse(body: &Value) -> Result<Answer, LlmError> {
    let choice = body
        .pointer("/choices/0")
        .ok_or_else(|| LlmError::InvalidAnswer("the response has no `choices`".into()))?;
    if let Some(refusal) = choice.pointer("/message/refusal").and_then(Value::as_str) {
        return Err(LlmError::Refused(refusal.to_string()));
    }
    if choice.get("finish_reason").and_then(Value::as_str) == Some("length") {
        return Err(LlmError::Truncated);
    }
    let content = choice
        .pointer("/message/content")
        .and_then(Value::as_str)
        .ok_or_else(|| LlmError::InvalidAnswer("the choice has no text `content`".into()))?;
    Ok(Answer {
        verdict: contract::parse_text(content)?,
        usage: body.get("usage").map(|usage| Usage {
            input: count(usage, "prompt_tokens"),
            output: count(usage, "completion_tokens"),
        }),
    })
}

/// A token count, 0 when absent.
pub(super) fn count(usage: &Value, key: &str) -> u64 {
    usage.get(key).and_then(Value::as_u64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::triage::Label;

    #[test]
    fn reads_content_and_usage_and_refuses_truncated_or_refused_answers() {
        let ok = json!({
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "{\"verdict\":\"noise\",\"confidence\":0.8,\"reason\":\"probe\"}"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 120, "completion_tokens": 14, "total_tokens": 134},
        });
        let answer = parse(&ok).unwrap();
        assert_eq!(answer.verdict.label, Label::Noise);
        assert_eq!(
            answer.usage,
            Some(Usage {
                input: 120,
                output: 14
            })
        );
        let cut = json!({"choices": [{"message": {"content": "{\"verdict\":"}, "finish_reason": "length"}]});
        assert!(matches!(parse(&cut), Err(LlmError::Truncated)));
        let refused = json!({"choices": [{"message": {"content": null, "refusal": "no"}, "finish_reason": "stop"}]});
        assert!(matches!(parse(&refused), Err(LlmError::Refused(_))));
    }
}
