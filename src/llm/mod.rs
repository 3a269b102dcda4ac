//! Classifiers for the `llm_suppress` transform: "is this log pattern noise
//! or important?", asked of an LLM or answered by a built-in heuristic.
//!
//! - [`contract`]: the one request (system prompt, user content, JSON
//!   schema) and the one validated answer every provider shares;
//! - [`redact`]: the masking every prompt goes through before it leaves;
//! - one file per provider: [`openai`] (any OpenAI-compatible server),
//!   [`ollama`] (native API), [`anthropic`], and [`builtin`] (no network);
//! - [`http`]: what the HTTP providers share, on top of the sinks' delivery
//!   core (retries, `Retry-After`, timeouts, concurrency, redaction, metrics).
//!
//! Providers know nothing about events, caching or budgets: the transform
//! asks one question per pattern and decides what an answer or an error
//! means. This keeps every provider a small, testable wire adapter.

pub mod anthropic;
pub mod budget;
pub mod builtin;
pub mod chain;
pub mod contract;
pub mod http;
pub mod ollama;
pub mod openai;
pub mod redact;
#[cfg(test)]
mod tests;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use contract::{Answer, LlmError, Prompt, Usage, Verdict};
pub use redact::Masker;

use crate::diagnostic::BuildError;
use crate::internal_events::ComponentMetrics;
use http::HttpSettings;

/// Something that can classify a pattern over the network.
pub trait Classifier: Send + Sync {
    /// The provider's name, for metrics (`provider` label) and the audit
    /// trail.
    fn provider(&self) -> &'static str;

    /// Asks one question. Errors (transport, refusals, invalid answers) are
    /// never verdicts.
    fn classify<'a>(
        &'a self,
        prompt: &'a Prompt,
    ) -> Pin<Box<dyn Future<Output = Result<Answer, LlmError>> + Send + 'a>>;

    /// A cheap check that the provider answers (no tokens spent), used to
    /// put a failed provider of a chain back in service. `Err` says why.
    fn health_check(&self) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + '_>> {
        Box::pin(std::future::ready(Ok(())))
    }
}

/// Which API to ask.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// Chat Completions at `{endpoint}/chat/completions`: OpenAI, Ollama's
    /// `/v1`, vLLM, llama.cpp, LM Studio, OpenRouter.
    Openai,
    /// Ollama's native `{endpoint}/api/chat`.
    Ollama,
    /// Anthropic Messages at `{endpoint}/v1/messages`.
    Anthropic,
    /// The built-in heuristic classifier; no network.
    #[default]
    Builtin,
}

impl ProviderKind {
    /// The name used in options and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Openai => "openai",
            Self::Ollama => "ollama",
            Self::Anthropic => "anthropic",
            Self::Builtin => "builtin",
        }
    }

    /// The network API, `None` for the built-in classifier.
    pub fn remote(self) -> Option<Remote> {
        match self {
            Self::Openai => Some(Remote::Openai),
            Self::Ollama => Some(Remote::Ollama),
            Self::Anthropic => Some(Remote::Anthropic),
            Self::Builtin => None,
        }
    }
}

/// The providers reached over the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Remote {
    /// See [`openai`].
    Openai,
    /// See [`ollama`].
    Ollama,
    /// See [`anthropic`].
    Anthropic,
}

impl Remote {
    /// The provider's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Openai => "openai",
            Self::Ollama => "ollama",
            Self::Anthropic => "anthropic",
        }
    }

    /// The endpoint used when the options name none.
    pub fn default_endpoint(self) -> &'static str {
        match self {
            Self::Openai => openai::DEFAULT_ENDPOINT,
            Self::Ollama => ollama::DEFAULT_ENDPOINT,
            Self::Anthropic => anthropic::DEFAULT_ENDPOINT,
        }
    }
}

/// A network provider, checked and ready to connect.
#[derive(Debug, Clone)]
pub struct RemoteSettings {
    /// Which API.
    pub kind: Remote,
    /// Where, and with which limits.
    pub http: HttpSettings,
    /// The model to ask.
    pub model: String,
    /// The token limit of an answer.
    pub max_tokens: u32,
}

impl RemoteSettings {
    /// Builds the client (its requests are counted in `metrics`).
    pub fn connect(
        &self,
        metrics: Arc<ComponentMetrics>,
    ) -> Result<Arc<dyn Classifier>, BuildError> {
        let (http, model, tokens) = (&self.http, self.model.as_str(), self.max_tokens);
        Ok(match self.kind {
            Remote::Openai => Arc::new(openai::OpenAi::new(http, model, tokens, metrics)?),
            Remote::Ollama => Arc::new(ollama::Ollama::new(http, model, tokens, metrics)?),
            Remote::Anthropic => Arc::new(anthropic::Anthropic::new(http, model, tokens, metrics)?),
        })
    }
}
