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
//! 5. `llm_allowed` is set and false: the built-in rules decide
//!    (`builtin`), whatever a language model said of the pattern before;
//! 6. the pattern has a live verdict (`llm` or `builtin`): the verdict
//!    decides: noise at `min_confidence` or above is suppressed;
//! 7. otherwise the classifier is asked, once for the pattern. The built-in
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
mod neighbours;
mod pending;
mod task;
#[cfg(test)]
mod tests;
mod verdicts;

use std::num::{NonZeroU32, NonZeroUsize};
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
use crate::llm::http::HttpSettings;
use crate::llm::{Masker, ProviderKind, RemoteSettings};
use crate::options::{FieldPath, Fraction, HttpUrl, Regex, Seconds};
use crate::secret::Secret;
use crate::vrl_program::{VrlCondition, VrlOrigin, compile_condition};

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
    /// Ollama's OpenAI-compatible API. Unset: the vendor's
    /// (`https://api.openai.com/v1`, `http://127.0.0.1:11434`,
    /// `https://api.anthropic.com`). Only for network providers.
    #[schemars(extend("x-default" = "the provider's"))]
    endpoint: Option<HttpUrl>,
    /// The model to ask, e.g. `llama3.2`.
    #[schemars(extend("x-default" = "required for network providers"))]
    #[schemars(example = "llama3.2")]
    model: Option<String>,
    /// The provider's API key, if it needs one; write it as `${ENV_VAR}`.
    /// Never logged.
    api_key: Option<Secret>,
    /// The longest answer, in tokens.
    #[serde(default = "default_max_tokens")]
    max_tokens: NonZeroU32,
    /// The field holding the pattern id; events without it pass untouched.
    #[serde(default = "default_pattern_field")]
    pattern_field: FieldPath,
    /// The field holding the pattern's template (sent, masked, in the
    /// prompt). Missing: the message is sent instead.
    #[serde(default = "default_template_field")]
    template_field: FieldPath,
    /// The field holding the pattern's level (sent in the prompt, and used
    /// by the built-in rules).
    #[serde(default = "default_level_field")]
    level_field: FieldPath,
    /// The field holding the raw line (sent, masked, as a sample).
    #[serde(default = "default_message_field")]
    message_field: FieldPath,
    /// Only events for which this condition is true may be sent to the
    /// classifier; the others pass untouched (an operator's suppression
    /// still applies to them).
    #[schemars(with = "Option<VrlCondition>")]
    when: Option<Spanned<String>>,
    /// Rule-first: events for which this condition is false are never sent
    /// to a language model (whatever `provider` says); the built-in rules
    /// and operators decide them, e.g. `!includes(["host", "resource"],
    /// .alert.labels.category)`. A condition that fails counts as false,
    /// so nothing leaves howl by mistake.
    #[schemars(with = "Option<VrlCondition>")]
    llm_allowed: Option<Spanned<String>>,
    /// Events for which this condition is true are never suppressed, not
    /// even by an operator, e.g. `.pattern.level == "fatal"`.
    #[schemars(with = "Option<VrlCondition>")]
    always_alert: Option<Spanned<String>>,
    /// What no verdict means (outage, timeout, invalid answer, over budget,
    /// decision timeout): `pass` (fail open) or `suppress`.
    #[serde(default)]
    on_error: OnError,
    /// Give up on one HTTP attempt after this long (it is then retried).
    #[serde(default = "default_timeout")]
    timeout_secs: Seconds,
    /// Hold a pattern's events at most this long while its verdict is
    /// pending; then `on_error` decides them. Retries of a question also
    /// stop then.
    #[serde(default = "default_decision_timeout")]
    decision_timeout_secs: Seconds,
    /// The most events held at once, across patterns; one more releases the
    /// oldest held event by `on_error`.
    #[serde(default = "default_max_pending")]
    max_pending_events: NonZeroUsize,
    /// The most questions in flight at once; more wait for a slot.
    #[serde(
        default = "default_concurrency",
        deserialize_with = "crate::options::count_at_most::<_, 1024>"
    )]
    #[schemars(range(min = 1, max = 1024))]
    max_concurrency: NonZeroUsize,
    /// The most questions per minute (`0`: no limit); a question over the
    /// budget is not sent and counts as an error.
    #[serde(default = "default_per_minute")]
    requests_per_minute: u64,
    /// The most questions per hour (`0`: no limit).
    #[serde(default = "default_per_hour")]
    max_requests_per_hour: u64,
    /// Extra regexes whose matches are masked (as `<REDACTED>`) before a
    /// prompt leaves howl, besides the built-in masks.
    #[serde(default)]
    redact: Vec<Regex>,
    /// A noise verdict suppresses only with at least this confidence.
    #[serde(default = "default_min_confidence")]
    min_confidence: Fraction,
    /// `enforce`, or `shadow`: decide and annotate, suppress nothing (not
    /// even operators' suppressions).
    #[serde(default)]
    mode: Mode,
    /// How long a verdict holds before the pattern is asked again, e.g.
    /// `"12h"`, `"30d"` (a plain number is seconds).
    #[serde(default = "default_verdict_ttl")]
    verdict_ttl: Seconds,
    /// Mirror operators' suppressions as silences in an Alertmanager.
    alertmanager_silence: Option<SilenceConfig>,
    /// A learning period from the transform's first start, e.g. `"1d"`:
    /// every new pattern seen during it is recorded as routine (noise,
    /// `.triage.source = "learned"`), never asked about, and new patterns
    /// close to a routine one later inherit that.
    learn_for: Option<Seconds>,
}

/// The `alertmanager_silence` table.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct SilenceConfig {
    /// The base URL of the Alertmanager that gets a silence for each
    /// operator's suppression, e.g. `http://127.0.0.1:9093`.
    url: HttpUrl,
    /// How long one silence lasts when its suppression has no `ttl` (or a
    /// longer one); it is renewed before it ends. A plain number is
    /// seconds.
    #[serde(default = "default_verdict_ttl")]
    duration: Seconds,
}

fn default_max_tokens() -> NonZeroU32 {
    const { NonZeroU32::new(200).unwrap() }
}

fn default_pattern_field() -> FieldPath {
    super::default_field_path("pattern.id")
}

fn default_template_field() -> FieldPath {
    super::default_field_path("pattern.template")
}

fn default_level_field() -> FieldPath {
    super::default_field_path("pattern.level")
}

fn default_message_field() -> FieldPath {
    super::default_field_path("message")
}

fn default_timeout() -> Seconds {
    Seconds::from_secs(10)
}

fn default_decision_timeout() -> Seconds {
    Seconds::from_secs(15)
}

fn default_max_pending() -> NonZeroUsize {
    const { NonZeroUsize::new(10_000).unwrap() }
}

fn default_concurrency() -> NonZeroUsize {
    const { NonZeroUsize::new(4).unwrap() }
}

fn default_per_minute() -> u64 {
    60
}

fn default_per_hour() -> u64 {
    1000
}

fn default_min_confidence() -> Fraction {
    Fraction::new(0.7).unwrap_or_else(|| unreachable!("0.7 is a fraction"))
}

/// A week: how long verdicts and silences last by default.
fn default_verdict_ttl() -> Seconds {
    Seconds::from_secs(7 * 24 * 3600)
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
        let decision_timeout = self
            .decision_timeout_secs
            .positive("decision_timeout_secs")?;
        let timeout = self.timeout_secs.positive("timeout_secs")?;
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
        let verdict_ttl = chrono::Duration::from_std(self.verdict_ttl.positive("verdict_ttl")?)
            .map_err(|_| BuildError::new("`verdict_ttl` is too long").for_option("verdict_ttl"))?;
        // The masker compiles its patterns itself (they were checked while
        // the options were read, so this cannot fail for them).
        let redact: Vec<String> = self.redact.iter().map(|r| r.as_str().to_string()).collect();
        Ok(Settings {
            engine: self.engine(decision_timeout, timeout)?,
            policy: Policy {
                mode: self.mode,
                min_confidence: self.min_confidence.get(),
                on_error: self.on_error,
            },
            fields: Fields {
                pattern: self.pattern_field.path().clone(),
                template: self.template_field.path().clone(),
                level: self.level_field.path().clone(),
                message: self.message_field.path().clone(),
            },
            when: condition(&self.when, "when")?,
            llm_allowed: condition(&self.llm_allowed, "llm_allowed")?,
            always_alert: condition(&self.always_alert, "always_alert")?,
            masker: Masker::new(&redact).map_err(|e| BuildError::new(e).for_option("redact"))?,
            decision_timeout,
            question_limit: decision_timeout + timeout,
            max_pending: self.max_pending_events.get(),
            verdict_ttl,
            budget: (self.requests_per_minute, self.max_requests_per_hour),
            learn_for: match &self.learn_for {
                Some(period) => Some(
                    chrono::Duration::from_std(period.positive("learn_for")?).map_err(|_| {
                        BuildError::new("`learn_for` is too long").for_option("learn_for")
                    })?,
                ),
                None => None,
            },
            silence: match &self.alertmanager_silence {
                Some(silence) => Some((
                    silence.url.as_str().to_string(),
                    silence.duration.positive("alertmanager_silence.duration")?,
                )),
                None => None,
            },
        })
    }

    /// The classifier the options describe.
    fn engine(&self, decision_timeout: Duration, timeout: Duration) -> Result<Engine, BuildError> {
        let Some(remote) = self.provider.remote() else {
            let network_only = [
                ("endpoint", self.endpoint.is_some()),
                ("model", self.model.is_some()),
                ("api_key", self.api_key.is_some()),
            ];
            if let Some((option, _)) = network_only.into_iter().find(|(_, set)| *set) {
                return Err(BuildError::new(format!(
                    "`{option}` is for network providers; set `provider` (openai, ollama, \
                     anthropic) or remove it"
                ))
                .for_option(option));
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
                .for_option("model")
            })?;
        let endpoint = match &self.endpoint {
            Some(endpoint) => endpoint.clone(),
            None => HttpUrl::parse(remote.default_endpoint())
                .map_err(|e| BuildError::new(e).for_option("endpoint"))?,
        };
        Ok(Engine::Remote(RemoteSettings {
            kind: remote,
            http: HttpSettings {
                endpoint: endpoint.url().clone(),
                api_key: self.api_key.clone(),
                timeout,
                deadline: decision_timeout,
                concurrency: self.max_concurrency.get(),
            },
            model: model.to_string(),
            max_tokens: self.max_tokens.get(),
        }))
    }
}
