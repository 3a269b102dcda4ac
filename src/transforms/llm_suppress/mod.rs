//! `llm_suppress`: keep noise out of alerts, per pattern, auditably.
//!
//! For each event the transform looks up its pattern (`.pattern.id`) and
//! decides, in this order:
//!
//! 1. no pattern id: the event passes untouched;
//! 2. `always_alert` matches: it passes (`source = "rule"`), whatever else
//!    is known, an operator's suppression included;
//! 3. an operator suppressed the pattern: it is suppressed (`operator`);
//! 4. `when` is set and does not match: it passes untouched (`when` limits
//!    what may be sent to a classifier, not what an operator may suppress);
//! 5. the pattern has a live verdict (`llm` or `builtin`): the verdict
//!    decides: noise at `min_confidence` or above is suppressed;
//! 6. otherwise the classifier is asked, once for the pattern. The built-in
//!    one answers at once; an LLM's answer is awaited while the pattern's
//!    events are held (up to `decision_timeout_secs`, at most
//!    `max_pending_events` in all), and other patterns keep flowing. No
//!    answer (outage, timeout, garbage, over budget) means `on_error`
//!    decides (`error`), and the pattern is asked again after a backoff.
//!
//! Suppressed events go to `ID.suppressed`, not away; passing and
//! suppressed events carry `.triage` (`verdict`, `reason`, `source`,
//! `action`, and `confidence` or `suppression_id` where known). `mode =
//! "shadow"` decides and annotates but suppresses nothing.
//!
//! Module map: [`decision`] (policy: a verdict → what happens to an
//! event), [`verdicts`] (the per-pattern cache, persisted), [`pending`]
//! (held events), [`budget`] (request limits), [`task`] (the run loop).
//! Providers live in `crate::llm`, suppressions in `crate::suppressions`.

mod budget;
mod decision;
mod pending;
mod task;
#[cfg(test)]
mod tests;
mod verdicts;

use std::sync::Arc;
use std::time::Duration;

use schemars::JsonSchema;
use serde::Deserialize;
use toml::Spanned;

use self::decision::{Mode, OnError, Policy};
use self::task::{Fields, Settings, Triage};
use crate::components::transform::{Transform, TransformConfig};
use crate::components::{BuildContext, OutputSpec};
use crate::diagnostic::BuildError;
use crate::http::base_url;
use crate::llm::http::HttpSettings;
use crate::llm::{Masker, ProviderKind, RemoteSettings};
use crate::options::duration::parse_duration;
use crate::options::duration::positive;
use crate::secret::Secret;
use crate::vrl_program::{VrlOrigin, compile_condition};

/// Options of the `llm_suppress` transform.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LlmSuppressConfig {
    /// Who classifies patterns: `openai` (any OpenAI-compatible server),
    /// `ollama` (native API), `anthropic`, or `builtin` (a heuristic, no
    /// network).
    #[serde(default)]
    provider: ProviderKind,
    /// The provider's base URL, e.g. `http://127.0.0.1:11434/v1` for
    /// Ollama's OpenAI-compatible API. Defaults to the vendor's.
    endpoint: Option<String>,
    /// The model to ask (required for network providers).
    model: Option<String>,
    /// The API key, if the provider needs one; never logged.
    api_key: Option<Secret>,
    /// The longest answer, in tokens.
    #[serde(default = "default_max_tokens")]
    max_tokens: u32,
    /// The field holding the pattern id.
    #[serde(default = "default_pattern_field")]
    pattern_field: String,
    /// The field holding the pattern's template (sent in the prompt).
    #[serde(default = "default_template_field")]
    template_field: String,
    /// The field holding the pattern's level (sent in the prompt).
    #[serde(default = "default_level_field")]
    level_field: String,
    /// The field holding the raw line (sent, masked, as a sample).
    #[serde(default = "default_message_field")]
    message_field: String,
    /// A VRL condition: only events for which it is true may be sent to the
    /// classifier; the others pass untouched.
    #[schemars(with = "Option<String>")]
    when: Option<Spanned<String>>,
    /// A VRL condition: events for which it is true are never suppressed.
    #[schemars(with = "Option<String>")]
    always_alert: Option<Spanned<String>>,
    /// What an error means (outage, timeout, invalid answer, over budget,
    /// decision timeout): `pass` (fail open) or `suppress`.
    #[serde(default)]
    on_error: OnError,
    /// Give up on one HTTP attempt after this many seconds.
    #[serde(default = "default_timeout")]
    timeout_secs: f64,
    /// Hold a pattern's events at most this many seconds while its verdict
    /// is pending; then `on_error` decides.
    #[serde(default = "default_decision_timeout")]
    decision_timeout_secs: f64,
    /// The most events held at once, across patterns.
    #[serde(default = "default_max_pending")]
    max_pending_events: usize,
    /// The most questions in flight at once.
    #[serde(default = "default_concurrency")]
    max_concurrency: usize,
    /// The most questions per minute (`0`: no limit).
    #[serde(default = "default_per_minute")]
    requests_per_minute: u64,
    /// The most questions per hour (`0`: no limit).
    #[serde(default = "default_per_hour")]
    max_requests_per_hour: u64,
    /// Extra regexes whose matches are masked before a prompt leaves howl.
    #[serde(default)]
    redact: Vec<String>,
    /// A noise verdict suppresses only with at least this confidence.
    #[serde(default = "default_min_confidence")]
    min_confidence: f64,
    /// `enforce`, or `shadow`: decide and annotate, suppress nothing.
    #[serde(default)]
    mode: Mode,
    /// How long a verdict holds before the pattern is asked again, e.g.
    /// `7d`, `12h`.
    #[serde(default = "default_verdict_ttl")]
    verdict_ttl: String,
    /// Mirror operators' suppressions as silences in this Alertmanager.
    alertmanager_silence: Option<SilenceConfig>,
}

/// The `alertmanager_silence` table.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct SilenceConfig {
    /// The Alertmanager's base URL, e.g. `http://127.0.0.1:9093`.
    url: String,
    /// How long the silence of a suppression without a ttl lasts.
    #[serde(default = "default_verdict_ttl")]
    duration: String,
}

fn default_max_tokens() -> u32 {
    200
}

fn default_pattern_field() -> String {
    "pattern.id".into()
}

fn default_template_field() -> String {
    "pattern.template".into()
}

fn default_level_field() -> String {
    "pattern.level".into()
}

fn default_message_field() -> String {
    "message".into()
}

fn default_timeout() -> f64 {
    10.0
}

fn default_decision_timeout() -> f64 {
    15.0
}

fn default_max_pending() -> usize {
    10_000
}

fn default_concurrency() -> usize {
    4
}

fn default_per_minute() -> u64 {
    60
}

fn default_per_hour() -> u64 {
    1000
}

fn default_min_confidence() -> f64 {
    0.7
}

fn default_verdict_ttl() -> String {
    "7d".into()
}

/// The output of suppressed events.
const SUPPRESSED_NAME: &str = "suppressed";
/// Its position among the named outputs.
const SUPPRESSED: usize = 0;

/// Who answers questions.
pub enum Engine {
    /// The built-in classifier, answering at once.
    Builtin,
    /// A network provider, connected when the transform starts.
    Remote(RemoteSettings),
    /// A classifier given by a test.
    #[cfg(test)]
    Given(Arc<dyn crate::llm::Classifier>),
}

impl TransformConfig for LlmSuppressConfig {
    fn outputs(&self) -> Vec<OutputSpec> {
        vec![
            OutputSpec::default_output(),
            OutputSpec::named(SUPPRESSED_NAME, false),
        ]
    }

    fn build(&self, cx: &BuildContext) -> Result<Transform, BuildError> {
        Ok(Transform::Task(Box::new(Triage::new(self.settings(cx)?))))
    }
}

impl LlmSuppressConfig {
    /// Checks every option and turns them into the task's settings.
    fn settings(&self, cx: &BuildContext) -> Result<Settings, BuildError> {
        let decision_timeout = positive(self.decision_timeout_secs, "decision_timeout_secs")?;
        let timeout = positive(self.timeout_secs, "timeout_secs")?;
        let condition = |option: &Option<Spanned<String>>, name: &str| {
            option
                .as_ref()
                .map(|text| {
                    compile_condition(
                        text.get_ref(),
                        VrlOrigin::Inline(text.span()),
                        &cx.file,
                        name,
                    )
                    .map(Arc::new)
                })
                .transpose()
        };
        if !(0.0..=1.0).contains(&self.min_confidence) {
            return Err(BuildError::new("`min_confidence` must be from 0 to 1"));
        }
        if self.max_pending_events == 0 || self.max_concurrency == 0 {
            return Err(BuildError::new(
                "`max_pending_events` and `max_concurrency` must be at least 1",
            ));
        }
        Ok(Settings {
            engine: self.engine(decision_timeout, timeout)?,
            policy: Policy {
                mode: self.mode,
                min_confidence: self.min_confidence,
                on_error: self.on_error,
            },
            fields: Fields {
                pattern: path("pattern_field", &self.pattern_field)?,
                template: path("template_field", &self.template_field)?,
                level: path("level_field", &self.level_field)?,
                message: path("message_field", &self.message_field)?,
            },
            when: condition(&self.when, "when")?,
            always_alert: condition(&self.always_alert, "always_alert")?,
            masker: Masker::new(&self.redact).map_err(BuildError::new)?,
            decision_timeout,
            question_limit: decision_timeout + timeout,
            max_pending: self.max_pending_events,
            verdict_ttl: chrono::Duration::from_std(duration(&self.verdict_ttl, "verdict_ttl")?)
                .map_err(|_| BuildError::new("`verdict_ttl` is too long"))?,
            budget: (self.requests_per_minute, self.max_requests_per_hour),
            silence: self
                .alertmanager_silence
                .as_ref()
                .map(|silence| {
                    base_url(&silence.url, "alertmanager_silence.url")?;
                    Ok((
                        silence.url.clone(),
                        duration(&silence.duration, "alertmanager_silence.duration")?,
                    ))
                })
                .transpose()?,
        })
    }

    /// The classifier the options describe.
    fn engine(&self, decision_timeout: Duration, timeout: Duration) -> Result<Engine, BuildError> {
        let Some(remote) = self.provider.remote() else {
            if self.endpoint.is_some() || self.model.is_some() || self.api_key.is_some() {
                return Err(BuildError::new(
                    "`endpoint`, `model` and `api_key` are for network providers; \
                     set `provider` (openai, ollama, anthropic) or remove them",
                ));
            }
            return Ok(Engine::Builtin);
        };
        let model = self
            .model
            .as_deref()
            .filter(|m| !m.trim().is_empty())
            .ok_or_else(|| {
                BuildError::new(format!(
                    "`provider = \"{}\"` needs `model`",
                    self.provider.as_str()
                ))
            })?;
        let endpoint = self
            .endpoint
            .as_deref()
            .unwrap_or(remote.default_endpoint());
        let endpoint = reqwest::Url::parse(&base_url(endpoint, "endpoint")?)
            .map_err(|e| BuildError::new(format!("`endpoint`: {e}")))?;
        if self.max_tokens == 0 {
            return Err(BuildError::new("`max_tokens` must be at least 1"));
        }
        Ok(Engine::Remote(RemoteSettings {
            kind: remote,
            http: HttpSettings {
                endpoint,
                api_key: self.api_key.clone(),
                timeout,
                deadline: decision_timeout,
                concurrency: self.max_concurrency,
            },
            model: model.to_string(),
            max_tokens: self.max_tokens,
        }))
    }
}

/// A field path option.
fn path(option: &str, text: &str) -> Result<vrl::path::OwnedValuePath, BuildError> {
    vrl::path::parse_value_path(text.strip_prefix('.').unwrap_or(text))
        .map_err(|e| BuildError::new(format!("`{option}`: invalid field path `{text}`: {e}")))
}

/// A positive duration option such as `7d`.
fn duration(text: &str, option: &str) -> Result<Duration, BuildError> {
    match parse_duration(text) {
        Ok(d) if !d.is_zero() => Ok(d),
        Ok(_) => Err(BuildError::new(format!("`{option}` must be more than 0"))),
        Err(e) => Err(BuildError::new(format!("`{option}`: {e}"))),
    }
}
