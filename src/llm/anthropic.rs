//! `provider = "anthropic"`: Anthropic's Messages API.
//!
//! `POST {endpoint}/v1/messages` with the `x-api-key` and
//! `anthropic-version: 2023-06-01` headers, `max_tokens` (required there),
//! the system prompt in `system`, and `temperature: 0`. The answer's shape
//! is enforced the portable way: a forced tool call (`tools` with the
//! verdict schema, `tool_choice` naming it), whose `input` is the verdict.
//! A plain text answer is read as JSON too, for gateways that drop tools.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{Value, json};

use super::Classifier;
use super::contract::{self, Answer, LlmError, Prompt, SYSTEM_PROMPT, Usage};
use super::http::{HttpProvider, HttpSettings, secret_header};
use super::openai::count;
use crate::diagnostic::BuildError;
use crate::internal_events::ComponentMetrics;

/// The default `endpoint`.
pub const DEFAULT_ENDPOINT: &str = "https://api.anthropic.com";
/// The API version howl speaks.
const VERSION: &str = "2023-06-01";
/// The name of the forced tool.
const TOOL: &str = "verdict";

/// An Anthropic Messages client.
pub struct Anthropic {
    http: HttpProvider,
    model: String,
    max_tokens: u32,
}

impl Anthropic {
    /// A client for `model` at `settings.endpoint`.
    pub fn new(
        settings: &HttpSettings,
        model: &str,
        max_tokens: u32,
        metrics: Arc<ComponentMetrics>,
    ) -> Result<Self, BuildError> {
        let mut headers = HeaderMap::new();
        headers.insert(
            HeaderName::from_static("anthropic-version"),
            HeaderValue::from_static(VERSION),
        );
        if let Some(key) = &settings.api_key {
            let (name, value) = secret_header("x-api-key", key.expose())?;
            headers.insert(name, value);
        }
        Ok(Self {
            http: HttpProvider::new(settings, "v1/messages", "v1/models", headers, metrics)?,
            model: model.to_string(),
            max_tokens,
        })
    }

    fn body(&self, prompt: &Prompt) -> Value {
        json!({
            "model": self.model,
            "max_tokens": self.max_tokens,
            "system": SYSTEM_PROMPT,
            "messages": [{"role": "user", "content": prompt.user_content()}],
            "temperature": 0,
            "tools": [{
                "name": TOOL,
                "description": "Record the triage verdict for the log pattern.",
                "input_schema": contract::schema(),
            }],
            "tool_choice": {"type": "tool", "name": TOOL},
        })
    }

    async fn ask(&self, prompt: &Prompt) -> Result<Answer, LlmError> {
        parse(&self.http.post(&self.body(prompt)).await?)
    }
}

impl Classifier for Anthropic {
    fn provider(&self) -> &'static str {
        "anthropic"
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

/// Reads a message: the forced tool's input, else its text as JSON.
fn parse(body: &Value) -> Result<Answer, LlmError> {
    match body.get("stop_reason").and_then(Value::as_str) {
        Some("max_tokens") => return Err(LlmError::Truncated),
        Some("refusal") => return Err(LlmError::Refused("stop_reason: refusal".into())),
        _ => {}
    }
    let blocks = body
        .get("content")
        .and_then(Value::as_array)
        .ok_or_else(|| LlmError::InvalidAnswer("the response has no `content`".into()))?;
    let tool_input = blocks.iter().find(|block| {
        block.get("type").and_then(Value::as_str) == Some("tool_use")
            && block.get("name").and_then(Value::as_str) == Some(TOOL)
    });
    let verdict = match tool_input.and_then(|block| block.get("input")) {
        Some(input) => contract::validate(input)?,
        None => {
            let text: String = blocks
                .iter()
                .filter(|block| block.get("type").and_then(Value::as_str) == Some("text"))
                .filter_map(|block| block.get("text").and_then(Value::as_str))
                .collect();
            contract::parse_text(&text)?
        }
    };
    Ok(Answer {
        verdict,
        usage: body.get("usage").map(|usage| Usage {
            input: count(usage, "input_tokens"),
            output: count(usage, "output_tokens"),
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::triage::Label;

    #[test]
    fn reads_the_forced_tool_call_or_plain_text() {
        let tool = json!({
            "id": "msg_1", "type": "message", "role": "assistant", "model": "claude",
            "content": [{"type": "tool_use", "id": "toolu_1", "name": "verdict",
                         "input": {"verdict": "noise", "confidence": 0.95, "reason": "scanner"}}],
            "stop_reason": "tool_use", "usage": {"input_tokens": 300, "output_tokens": 40},
        });
        let answer = parse(&tool).unwrap();
        assert_eq!(answer.verdict.label, Label::Noise);
        assert_eq!(
            answer.usage,
            Some(Usage {
                input: 300,
                output: 40
            })
        );
        let text = json!({
            "content": [{"type": "text", "text": "{\"verdict\":\"important\",\"confidence\":0.7,\"reason\":\"oom\"}"}],
            "stop_reason": "end_turn",
        });
        assert_eq!(parse(&text).unwrap().verdict.label, Label::Important);
        let cut = json!({"content": [{"type": "text", "text": "{"}], "stop_reason": "max_tokens"});
        assert!(matches!(parse(&cut), Err(LlmError::Truncated)));
    }
}
