//! `provider = "ollama"`: Ollama's native chat API.
//!
//! `POST {endpoint}/api/chat` with `stream: false` (Ollama streams NDJSON
//! chunks by default), the answer's JSON schema as `format` (Ollama
//! constrains the output to it), and `options.temperature: 0`,
//! `options.num_predict` for the token limit. Token usage is
//! `prompt_eval_count` and `eval_count`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use reqwest::header::HeaderMap;
use serde_json::{Value, json};

use super::Classifier;
use super::contract::{self, Answer, LlmError, Prompt, SYSTEM_PROMPT, Usage};
use super::http::{HttpProvider, HttpSettings, secret_header};
use super::openai::count;
use crate::diagnostic::BuildError;
use crate::internal_events::ComponentMetrics;

/// The default `endpoint`.
pub const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:11434";

/// An Ollama native chat client.
pub struct Ollama {
    http: HttpProvider,
    model: String,
    max_tokens: u32,
}

impl Ollama {
    /// A client for `model` at `settings.endpoint` (an `api_key`, if set, is
    /// sent as a bearer token, for Ollama behind an authenticating proxy).
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
            http: HttpProvider::new(settings, "api/chat", "api/tags", headers, metrics)?,
            model: model.to_string(),
            max_tokens,
        })
    }

    fn body(&self, prompt: &Prompt) -> Value {
        json!({
            "model": self.model,
            "messages": [
                {"role": "system", "content": SYSTEM_PROMPT},
                {"role": "user", "content": prompt.user_content()},
            ],
            "stream": false,
            "format": contract::schema(),
            "options": {"temperature": 0, "num_predict": self.max_tokens},
        })
    }

    async fn ask(&self, prompt: &Prompt) -> Result<Answer, LlmError> {
        parse(&self.http.post(&self.body(prompt)).await?)
    }
}

impl Classifier for Ollama {
    fn provider(&self) -> &'static str {
        "ollama"
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

/// Reads a non-streamed chat response.
fn parse(body: &Value) -> Result<Answer, LlmError> {
    if body.get("done_reason").and_then(Value::as_str) == Some("length") {
        return Err(LlmError::Truncated);
    }
    let content = body
        .pointer("/message/content")
        .and_then(Value::as_str)
        .ok_or_else(|| LlmError::InvalidAnswer("the response has no `message.content`".into()))?;
    let usage =
        (body.get("prompt_eval_count").is_some() || body.get("eval_count").is_some()).then(|| {
            Usage {
                input: count(body, "prompt_eval_count"),
                output: count(body, "eval_count"),
            }
        });
    Ok(Answer {
        verdict: contract::parse_text(content)?,
        usage,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::triage::Label;

    #[test]
    fn reads_message_content_and_eval_counts() {
        let body = json!({
            "model": "llama3.2", "created_at": "2026-11-22T10:00:00Z",
            "message": {"role": "assistant", "content": "{\"verdict\":\"important\",\"confidence\":0.9,\"reason\":\"disk full\"}"},
            "done": true, "done_reason": "stop", "prompt_eval_count": 80, "eval_count": 12,
        });
        let answer = parse(&body).unwrap();
        assert_eq!(answer.verdict.label, Label::Important);
        assert_eq!(
            answer.usage,
            Some(Usage {
                input: 80,
                output: 12
            })
        );
        let cut = json!({"message": {"content": "{"}, "done": true, "done_reason": "length"});
        assert!(matches!(parse(&cut), Err(LlmError::Truncated)));
    }
}
