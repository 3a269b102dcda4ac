//! The one request and the one answer every provider shares.
//!
//! A question is always the same: "here is a log pattern (its template, its
//! level, up to three redacted sample lines); is it noise or important?".
//! Keeping the system prompt, the JSON schema and the validation of the
//! answer here, not in each provider, means an OpenAI, Ollama or Anthropic
//! answer is judged by exactly the same rules, and a provider file is only
//! about its wire format.
//!
//! Answers are validated locally even when the server was asked for
//! structured output (many OpenAI-compatible servers ignore the request):
//! code fences are stripped, the first `{...}` object is read, and it must
//! have a `verdict` of `noise` or `important`, a `confidence` from 0 to 1
//! and a non-empty `reason`. Anything else is an [`LlmError::InvalidAnswer`],
//! never a verdict: a garbled answer must not suppress an alert. Extra keys
//! are ignored (small models like to add some).

use std::sync::Arc;

use serde_json::{Value, json};

use super::redact::Masker;
use crate::http::Failure;
use crate::state::triage::Label;

/// What the classifier is told, once per question.
pub const SYSTEM_PROMPT: &str = "You triage log patterns for an alerting pipeline. \
Each pattern is a log template (variable parts shown as <PLACEHOLDERS>) with its level and a few \
sample lines; secrets in the samples are masked. Decide whether an alert for this pattern would be \
noise or important. noise: expected, routine or harmless events nobody needs to act on, such as \
health checks, SSH scanner chatter (invalid users, failed passwords from unknown hosts), connection \
resets during deploys, retry and backoff notices that resolve themselves, debug chatter. \
important: anything that may need a human: errors affecting users or data, crashes, exhausted \
resources, security events beyond routine scanning, anything you are unsure about. \
Answer with a JSON object only, no prose: \
{\"verdict\": \"noise\" or \"important\", \"confidence\": a number from 0 to 1, \
\"reason\": \"one short sentence\"}.";

/// The longest reason kept from an answer, in characters.
const REASON_LIMIT: usize = 200;

/// A validated answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// Noise or important.
    pub label: Label,
    /// How sure the classifier is, 0 to 1.
    pub confidence: f64,
    /// One sentence, for the audit trail (`.triage.reason`).
    pub reason: String,
}

/// Tokens a request used, as the provider reported them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Prompt tokens.
    pub input: u64,
    /// Answer tokens.
    pub output: u64,
}

/// A classifier's answer: the verdict and what it cost.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// The verdict.
    pub verdict: Verdict,
    /// Token usage, when the provider reports it.
    pub usage: Option<Usage>,
}

/// Why a question got no verdict. Every one of these fails open.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LlmError {
    /// The request failed: refused, or retries (429, 5xx, timeouts,
    /// connection errors) ran out.
    #[error("request failed: {0}")]
    Http(#[from] Failure),
    /// The answer was not JSON, or not of the expected shape.
    #[error("invalid answer: {0}")]
    InvalidAnswer(String),
    /// The model stopped at the token limit; the answer is incomplete.
    #[error("the answer was cut at the token limit")]
    Truncated,
    /// The model declined to answer.
    #[error("the model refused to answer: {0}")]
    Refused(String),
    /// No answer within the question's time limit (retries and waiting
    /// for a concurrency slot included).
    #[error("no answer within {0:?}")]
    Deadline(std::time::Duration),
}

impl LlmError {
    /// The `outcome` label of `llm_requests_total`.
    pub fn outcome(&self) -> &'static str {
        match self {
            Self::Http(Failure::Rejected { .. }) => "rejected",
            Self::Http(Failure::GaveUp { .. }) | Self::Deadline(_) => "failed",
            Self::InvalidAnswer(_) | Self::Truncated | Self::Refused(_) => "invalid",
        }
    }
}

/// The pattern a question is about, already redacted: the only way to make
/// one is [`Prompt::new`], which masks secrets, so no provider can be handed
/// raw log text.
#[derive(Debug, Clone, PartialEq)]
pub struct Prompt {
    template: String,
    level: String,
    samples: Vec<String>,
}

/// Samples sent per question at most.
pub const MAX_SAMPLES: usize = 3;
/// Characters of one sample sent at most (a stack trace is cut).
const SAMPLE_LIMIT: usize = 500;

impl Prompt {
    /// Masks secrets in the template and samples (keeping at most
    /// [`MAX_SAMPLES`] distinct samples, each cut to 500 characters).
    pub fn new(template: &str, level: &str, samples: &[Arc<str>], masker: &Masker) -> Self {
        let mut kept: Vec<String> = Vec::new();
        for sample in samples {
            // Mask first: a secret cut in half would no longer be recognised.
            let masked = cut(&masker.mask(sample), SAMPLE_LIMIT);
            if kept.len() < MAX_SAMPLES && !kept.contains(&masked) {
                kept.push(masked);
            }
        }
        Self {
            template: cut(&masker.mask(template), SAMPLE_LIMIT),
            level: cut(level, 20),
            samples: kept,
        }
    }

    /// The (masked) template.
    pub fn template(&self) -> &str {
        &self.template
    }

    /// The level (`error`, `info`, `unknown`, ...).
    pub fn level(&self) -> &str {
        &self.level
    }

    /// The (masked) samples.
    pub fn samples(&self) -> &[String] {
        &self.samples
    }

    /// The user message: the pattern, as plain text.
    pub fn user_content(&self) -> String {
        let mut text = format!(
            "Log pattern template: {}\nLevel: {}\n",
            self.template, self.level
        );
        if !self.samples.is_empty() {
            text.push_str("Sample lines:\n");
            for sample in &self.samples {
                text.push_str("- ");
                text.push_str(sample);
                text.push('\n');
            }
        }
        text.push_str("Is this pattern noise or important? Answer in JSON.");
        text
    }
}

fn cut(text: &str, limit: usize) -> String {
    match text.char_indices().nth(limit) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_string(),
    }
}

/// The JSON schema of an answer (flat, every key required, no others: the
/// shape OpenAI's strict mode demands, which the others accept too).
pub fn schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "verdict": {"type": "string", "enum": ["noise", "important"]},
            "confidence": {"type": "number", "minimum": 0, "maximum": 1},
            "reason": {"type": "string", "maxLength": REASON_LIMIT},
        },
        "required": ["verdict", "confidence", "reason"],
        "additionalProperties": false,
    })
}

/// Reads a verdict from a model's text: code fences and prose around the
/// first JSON object are tolerated; the object itself must fit the schema.
pub fn parse_text(text: &str) -> Result<Verdict, LlmError> {
    let start = text
        .find('{')
        .ok_or_else(|| invalid("no JSON object in the answer", text))?;
    let mut stream = serde_json::Deserializer::from_str(&text[start..]).into_iter::<Value>();
    match stream.next() {
        Some(Ok(value)) => validate(&value),
        _ => Err(invalid("the answer is not valid JSON", text)),
    }
}

/// Checks a JSON value against the schema.
pub fn validate(value: &Value) -> Result<Verdict, LlmError> {
    let shown = value.to_string();
    let object = value
        .as_object()
        .ok_or_else(|| invalid("the answer is not a JSON object", &shown))?;
    let label = match object.get("verdict").and_then(Value::as_str) {
        Some("noise") => Label::Noise,
        Some("important") => Label::Important,
        _ => {
            return Err(invalid(
                "`verdict` must be \"noise\" or \"important\"",
                &shown,
            ));
        }
    };
    let confidence = object
        .get("confidence")
        .and_then(Value::as_f64)
        .filter(|c| (0.0..=1.0).contains(c))
        .ok_or_else(|| invalid("`confidence` must be a number from 0 to 1", &shown))?;
    let reason = object
        .get("reason")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .ok_or_else(|| invalid("`reason` must be a non-empty string", &shown))?;
    Ok(Verdict {
        label,
        confidence,
        reason: cut(reason, REASON_LIMIT),
    })
}

fn invalid(what: &str, answer: &str) -> LlmError {
    LlmError::InvalidAnswer(format!("{what}: {}", cut(answer, 200)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_across_the_cut_is_masked_before_cutting() {
        let sample = format!("{} key AKIAIOSFODNN7EXAMPLE and more", "x".repeat(480));
        let prompt = Prompt::new(
            "t",
            "error",
            &[Arc::from(sample.as_str())],
            &Masker::default(),
        );
        assert!(!prompt.samples[0].contains("AKIA"), "{}", prompt.samples[0]);
    }

    #[test]
    fn reads_a_bare_object_and_one_wrapped_in_fences_and_prose() {
        let bare =
            parse_text(r#"{"verdict":"noise","confidence":0.9,"reason":"health check"}"#).unwrap();
        assert_eq!(bare.label, Label::Noise);
        assert_eq!(bare.confidence, 0.9);
        let fenced = parse_text(
            "Sure!\n```json\n{\"verdict\": \"important\", \"confidence\": 1, \"reason\": \"disk full\", \"extra\": 1}\n```\n",
        )
        .unwrap();
        assert_eq!(fenced.label, Label::Important);
        assert_eq!(fenced.reason, "disk full");
    }

    #[test]
    fn off_schema_answers_are_errors_not_verdicts() {
        for answer in [
            "noise",
            "{\"verdict\": \"noise\", \"confidence\": 0.9",
            r#"{"verdict":"maybe","confidence":0.9,"reason":"x"}"#,
            r#"{"verdict":"noise","confidence":1.5,"reason":"x"}"#,
            r#"{"verdict":"noise","confidence":"high","reason":"x"}"#,
            r#"{"verdict":"noise","confidence":0.9}"#,
            r#"{"verdict":"noise","confidence":0.9,"reason":"  "}"#,
            r#"["noise"]"#,
        ] {
            assert!(
                matches!(parse_text(answer), Err(LlmError::InvalidAnswer(_))),
                "{answer}"
            );
        }
    }

    #[test]
    fn prompts_mask_secrets_and_keep_three_distinct_samples() {
        let masker = Masker::new(&[]).unwrap();
        let samples: Vec<Arc<str>> = [
            "login by bob@example.com",
            "login by bob@example.com",
            "login by eve@example.com",
            "login by al@example.com",
            "login by zed@example.org",
        ]
        .into_iter()
        .map(Arc::from)
        .collect();
        let prompt = Prompt::new("login by <EMAIL>", "info", &samples, &masker);
        assert_eq!(
            prompt.samples(),
            ["login by <EMAIL>"],
            "masked, then deduplicated"
        );
        let content = prompt.user_content();
        assert!(!content.contains("example.com"), "{content}");
        assert!(content.contains("Level: info"));
    }
}
