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

mod decision;
mod neighbours;
mod pending;
mod policy;
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

use self::decision::{Framing, Mode, OnError, Policy};
use self::policy::RuleSettings;
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
    #[schemars(extend("x-default" = "`200`"))]
    max_tokens: Option<NonZeroU32>,
    /// Several providers, asked in order: the first that may answer and
    /// does answer decides (see "Provider chains"). Each entry takes
    /// `name`, `provider`, `endpoint`, `model`, `api_key`, `local`,
    /// `timeout_secs`, `max_tokens`, `max_concurrency`,
    /// `requests_per_minute` and `max_requests_per_hour`, as the options of
    /// the same names do for one provider (which must then not be set at
    /// the top level).
    #[serde(default)]
    providers: Vec<ProviderConfig>,
    /// Providers of `providers`, by name, asked every question only to
    /// compare: their verdicts are kept beside the deciding one, with no
    /// effect, and `howl review` and `GET /api/v1/patterns` show where they
    /// differ (see "Rolling out a new model"). They never decide.
    #[serde(default)]
    compare: Vec<String>,
    /// Events for which this condition is true may only go to providers
    /// marked `local = true`; when none of them is in service, `on_error`
    /// decides, never a remote provider. A condition that fails counts as
    /// true, so nothing leaves by mistake.
    #[schemars(with = "Option<VrlCondition>")]
    local_required: Option<Spanned<String>>,
    /// How long a provider of the chain whose question failed (an outage,
    /// timeouts, a refusal) stays out of service before its first health
    /// check (a token-free GET of its list of models); the wait doubles
    /// after each failed check, up to an hour. Meanwhile the next provider
    /// answers.
    #[serde(default = "default_provider_backoff")]
    provider_backoff_secs: Seconds,
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
    #[schemars(extend("x-default" = "`10`"))]
    timeout_secs: Option<Seconds>,
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
    #[serde(default, deserialize_with = "concurrency")]
    #[schemars(range(min = 1, max = 1024))]
    #[schemars(extend("x-default" = "`4`"))]
    max_concurrency: Option<NonZeroUsize>,
    /// The most questions per minute (`0`: no limit); a question over the
    /// budget is not sent and counts as an error.
    #[schemars(extend("x-default" = "`60`"))]
    requests_per_minute: Option<u64>,
    /// The most questions per hour (`0`: no limit).
    #[schemars(extend("x-default" = "`1000`"))]
    max_requests_per_hour: Option<u64>,
    /// Extra regexes whose matches are masked (as `<REDACTED>`) before a
    /// prompt leaves howl, besides the built-in masks.
    #[serde(default)]
    redact: Vec<Regex>,
    /// A noise verdict suppresses only with at least this confidence.
    #[serde(default = "default_min_confidence")]
    min_confidence: Fraction,
    /// `enforce`; `shadow`: decide and annotate, suppress nothing (not
    /// even operators' suppressions); or `canary`: enforce the classifiers'
    /// verdicts for `canary_percent` of the patterns (always the same
    /// ones) and run the rest in shadow (see "Rolling out a new model").
    #[serde(default)]
    mode: Mode,
    /// With `mode = "canary"`: the share of patterns, 0 to 100, whose
    /// verdicts are enforced.
    #[serde(default = "default_canary_percent")]
    canary_percent: f64,
    /// Per-category rules, tried in order on a pattern's first event; the
    /// first whose `condition` holds decides, for the pattern, whether a
    /// language model may be asked, which providers may answer, the
    /// `min_confidence` and the `mode` (see "Per-category policy").
    #[serde(default)]
    policy: Vec<PolicyRuleConfig>,
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

/// One `policy` rule.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct PolicyRuleConfig {
    /// Its name, put in `.triage.policy` and the audit trail.
    name: String,
    /// The events of the category: a VRL condition, e.g.
    /// `includes(["host", "resource"], .alert.labels.category)`.
    #[schemars(with = "VrlCondition")]
    condition: Spanned<String>,
    /// `false`: the built-in rules and operators decide the category; no
    /// language model is asked.
    #[schemars(extend("x-default" = "`true`"))]
    llm_allowed: Option<bool>,
    /// The only providers (by name) that may answer for the category.
    #[schemars(extend("x-default" = "every provider"))]
    providers: Option<Vec<String>>,
    /// As `min_confidence`, for the category.
    #[schemars(extend("x-default" = "the transform's"))]
    min_confidence: Option<Fraction>,
    /// As `mode`, for the category.
    #[schemars(extend("x-default" = "the transform's"))]
    mode: Option<Mode>,
    /// As `canary_percent`, for the category.
    #[schemars(extend("x-default" = "the transform's"))]
    canary_percent: Option<f64>,
}

fn default_canary_percent() -> f64 {
    10.0
}

/// One provider of a chain (`providers`).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ProviderConfig {
    /// Its name: in metrics (`provider` label), verdicts and the audit
    /// trail.
    name: String,
    /// `openai`, `ollama`, `anthropic` or `builtin` (the rules: a last
    /// resort that always answers and never leaves howl).
    provider: ProviderKind,
    /// As `endpoint`.
    #[schemars(extend("x-default" = "the provider's"))]
    endpoint: Option<HttpUrl>,
    /// As `model`.
    #[schemars(extend("x-default" = "required for network providers"))]
    model: Option<String>,
    /// As `api_key`.
    api_key: Option<Secret>,
    /// Whether data that must stay local (`local_required`) may go to it.
    #[serde(default)]
    local: bool,
    /// As `timeout_secs`.
    #[schemars(extend("x-default" = "`10`"))]
    timeout_secs: Option<Seconds>,
    /// As `max_tokens`.
    #[schemars(extend("x-default" = "`200`"))]
    max_tokens: Option<NonZeroU32>,
    /// As `max_concurrency`.
    #[serde(default, deserialize_with = "concurrency")]
    #[schemars(extend("x-default" = "`4`"))]
    max_concurrency: Option<NonZeroUsize>,
    /// As `requests_per_minute`: this provider's own budget.
    #[schemars(extend("x-default" = "`60`"))]
    requests_per_minute: Option<u64>,
    /// As `max_requests_per_hour`.
    #[schemars(extend("x-default" = "`1000`"))]
    max_requests_per_hour: Option<u64>,
}

fn concurrency<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<NonZeroUsize>, D::Error> {
    crate::options::count_at_most::<_, 1024>(deserializer).map(Some)
}

fn default_provider_backoff() -> Seconds {
    Seconds::from_secs(30)
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

/// The limits of one network provider.
struct RemoteLimits {
    timeout: Duration,
    deadline: Duration,
    max_tokens: NonZeroU32,
    concurrency: NonZeroUsize,
}

/// The most providers in a chain.
const MAX_PROVIDERS: usize = 16;
const DEFAULT_MAX_TOKENS: NonZeroU32 = NonZeroU32::new(200).unwrap();
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_CONCURRENCY: NonZeroUsize = NonZeroUsize::new(4).unwrap();
const DEFAULT_PER_MINUTE: u64 = 60;
const DEFAULT_PER_HOUR: u64 = 1000;

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

fn default_decision_timeout() -> Seconds {
    Seconds::from_secs(15)
}

fn default_max_pending() -> NonZeroUsize {
    const { NonZeroUsize::new(10_000).unwrap() }
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
    /// The built-in classifier alone, answering at once.
    Builtin,
    /// Providers asked in order (one, for the single-provider options),
    /// connected when the transform starts.
    Chain(Vec<MemberSettings>),
    /// A classifier given by a test, with its budget (per minute, per
    /// hour).
    #[cfg(test)]
    Given(Arc<dyn crate::llm::Classifier>, (u64, u64)),
}

/// One provider of the chain, checked.
pub struct MemberSettings {
    /// Its name.
    pub name: String,
    /// The network provider; `None` for the built-in rules.
    pub remote: Option<RemoteSettings>,
    /// `local`.
    pub local: bool,
    /// Its budget: per minute, per hour.
    pub budget: (u64, u64),
    /// Asked only to compare (`compare`), never to decide.
    pub compare: bool,
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
        let engine = self.engine(decision_timeout)?;
        let slowest = match &engine {
            Engine::Chain(members) => members
                .iter()
                .filter_map(|m| m.remote.as_ref().map(|r| r.http.timeout))
                .max()
                .unwrap_or_default(),
            _ => self.timeout_or_default("timeout_secs", self.timeout_secs.as_ref())?,
        };
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
        if self.local_required.is_some() && !self.providers.iter().any(|p| p.local) {
            return Err(BuildError::new(
                "`local_required` needs at least one provider with `local = true` in `providers` \
                 (for example the `builtin` rules, or a model on this machine)",
            )
            .for_option("local_required"));
        }
        let (rules, framing) = self.policy_rules(cx, &engine)?;
        Ok(Settings {
            rules,
            framing,
            engine,
            local_required: condition(&self.local_required, "local_required")?,
            provider_backoff: self
                .provider_backoff_secs
                .positive("provider_backoff_secs")?,
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
            question_limit: decision_timeout + slowest,
            max_pending: self.max_pending_events.get(),
            verdict_ttl,
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

    /// The `policy` rules, checked and compiled, and the transform's own
    /// framing (`Some` for a canary).
    fn policy_rules(
        &self,
        cx: &BuildContext,
        engine: &Engine,
    ) -> Result<(Vec<RuleSettings>, Option<Framing>), BuildError> {
        let percent = |value: f64, option: &str| {
            if (0.0..=100.0).contains(&value) {
                Ok(value)
            } else {
                Err(BuildError::new(format!("`{option}` must be from 0 to 100")).for_option(option))
            }
        };
        let canary_percent = percent(self.canary_percent, "canary_percent")?;
        let own = Framing {
            name: None,
            min_confidence: self.min_confidence.get(),
            mode: self.mode,
            canary_percent,
        };
        let providers: Vec<String> = match engine {
            Engine::Chain(members) => members.iter().map(|m| m.name.clone()).collect(),
            _ => Vec::new(),
        };
        let mut rules: Vec<RuleSettings> = Vec::new();
        let mut catch_all: Option<&str> = None;
        let mut conditions: Vec<(&str, String)> = Vec::new();
        for (index, rule) in self.policy.iter().enumerate() {
            let at = |option: &str| format!("policy[{index}].{option}");
            let name = rule.name.trim();
            if name.is_empty() {
                return Err(BuildError::new("a policy rule needs a `name`").for_option(at("name")));
            }
            if self.policy[..index].iter().any(|r| r.name.trim() == name) {
                return Err(BuildError::new(format!(
                    "two policy rules are named `{name}`; names must be unique"
                ))
                .for_option(at("name")));
            }
            let text: String = rule.condition.get_ref().split_whitespace().collect();
            if let Some(earlier) = catch_all {
                return Err(BuildError::new(format!(
                    "policy rule `{name}` can never match: rule `{earlier}` before it matches \
                     every event (move it last, or narrow its condition)"
                ))
                .for_option(at("condition")));
            }
            if let Some((earlier, _)) = conditions.iter().find(|(_, c)| *c == text) {
                return Err(BuildError::new(format!(
                    "policy rule `{name}` can never match: rule `{earlier}` before it has the \
                     same condition"
                ))
                .for_option(at("condition")));
            }
            if text == "true" {
                catch_all = Some(name);
            }
            conditions.push((name, text));
            if let Some(names) = &rule.providers
                && let Some(unknown) = names.iter().find(|n| !providers.contains(n))
            {
                return Err(BuildError::new(format!(
                    "policy rule `{name}` names provider `{unknown}`, which is not in the \
                         chain (providers: {})",
                    if providers.is_empty() {
                        "none".to_string()
                    } else {
                        providers.join(", ")
                    }
                ))
                .for_option(at("providers")));
            }
            let condition = compile_condition(
                rule.condition.get_ref(),
                VrlOrigin::Inline(rule.condition.span()),
                &cx.file,
                "condition",
            )
            .map_err(|e| e.for_option(at("condition")))?;
            rules.push(RuleSettings {
                condition: Arc::new(condition),
                llm_allowed: rule.llm_allowed,
                providers: rule.providers.as_ref().map(|n| Arc::from(n.clone())),
                framing: Framing {
                    name: Some(name.to_string()),
                    min_confidence: rule
                        .min_confidence
                        .as_ref()
                        .map_or(own.min_confidence, |f| f.get()),
                    mode: rule.mode.unwrap_or(own.mode),
                    canary_percent: match rule.canary_percent {
                        Some(value) => percent(value, &at("canary_percent"))?,
                        None => canary_percent,
                    },
                },
            });
        }
        let framing = (self.mode == Mode::Canary).then_some(own);
        Ok((rules, framing))
    }

    /// `timeout_secs` (of the transform or of one provider), checked.
    fn timeout_or_default(
        &self,
        option: &str,
        value: Option<&Seconds>,
    ) -> Result<Duration, BuildError> {
        match value {
            Some(seconds) => seconds.positive(option),
            None => Ok(DEFAULT_TIMEOUT),
        }
    }

    /// The classifiers the options describe.
    fn engine(&self, decision_timeout: Duration) -> Result<Engine, BuildError> {
        if self.providers.is_empty() {
            if !self.compare.is_empty() {
                return Err(BuildError::new(
                    "`compare` names providers of `providers`; list the providers there",
                )
                .for_option("compare"));
            }
            return self.single_engine(decision_timeout);
        }
        let per_provider = [
            ("provider", self.provider != ProviderKind::Builtin),
            ("endpoint", self.endpoint.is_some()),
            ("model", self.model.is_some()),
            ("api_key", self.api_key.is_some()),
            ("timeout_secs", self.timeout_secs.is_some()),
            ("max_tokens", self.max_tokens.is_some()),
            ("max_concurrency", self.max_concurrency.is_some()),
            ("requests_per_minute", self.requests_per_minute.is_some()),
            (
                "max_requests_per_hour",
                self.max_requests_per_hour.is_some(),
            ),
        ];
        if let Some((option, _)) = per_provider.into_iter().find(|(_, set)| *set) {
            return Err(BuildError::new(format!(
                "`{option}` is set per provider when `providers` is used; move it into the \
                 providers' entries"
            ))
            .for_option(option));
        }
        if self.providers.len() > MAX_PROVIDERS {
            return Err(BuildError::new(format!(
                "{} providers: a chain takes at most {MAX_PROVIDERS} (each one down costs its \
                 timeout before the next is asked)",
                self.providers.len()
            ))
            .for_option("providers"));
        }
        let mut members = Vec::new();
        let last = self.providers.len() - 1;
        for (index, provider) in self.providers.iter().enumerate() {
            let at = |option: &str| format!("providers[{index}].{option}");
            let name = provider.name.trim();
            if name.is_empty() {
                return Err(BuildError::new("a provider needs a `name`").for_option(at("name")));
            }
            if name.len() > 64
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            {
                return Err(BuildError::new(format!(
                    "provider name {name:?}: use at most 64 letters, digits, `-`, `_` or `.` (it \
                     names the provider in logs, metrics and the audit trail)"
                ))
                .for_option(at("name")));
            }
            if members.iter().any(|m: &MemberSettings| m.name == name) {
                return Err(BuildError::new(format!(
                    "two providers are named `{name}`; names must be unique"
                ))
                .for_option(at("name")));
            }
            let remote = self.remote(
                provider.provider,
                provider.endpoint.as_ref(),
                provider.model.as_deref(),
                provider.api_key.as_ref(),
                RemoteLimits {
                    timeout: self
                        .timeout_or_default(&at("timeout_secs"), provider.timeout_secs.as_ref())?,
                    // A chain moves on to the next provider at once: each
                    // but the last gets one attempt (a refused connection
                    // or a 503 costs no retries); the last retries as a
                    // single provider does, until the decision timeout.
                    deadline: if index == last {
                        decision_timeout
                    } else {
                        Duration::ZERO
                    },
                    max_tokens: provider.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS),
                    concurrency: provider.max_concurrency.unwrap_or(DEFAULT_CONCURRENCY),
                },
                &|option| at(option),
            )?;
            members.push(MemberSettings {
                compare: self.compare.iter().any(|c| c == name),
                name: name.to_string(),
                local: provider.local || remote.is_none(),
                remote,
                budget: (
                    provider.requests_per_minute.unwrap_or(DEFAULT_PER_MINUTE),
                    provider.max_requests_per_hour.unwrap_or(DEFAULT_PER_HOUR),
                ),
            });
        }
        if let Some(unknown) = self
            .compare
            .iter()
            .find(|c| !members.iter().any(|m| m.name == **c))
        {
            return Err(BuildError::new(format!(
                "`compare` names `{unknown}`, which is not in `providers`"
            ))
            .for_option("compare"));
        }
        if members.iter().all(|m| m.compare) {
            return Err(BuildError::new(
                "every provider is in `compare`: at least one must decide",
            )
            .for_option("compare"));
        }
        Ok(Engine::Chain(members))
    }

    /// The engine of the single-provider options: the rules, or a chain
    /// of one.
    fn single_engine(&self, decision_timeout: Duration) -> Result<Engine, BuildError> {
        let remote = self.remote(
            self.provider,
            self.endpoint.as_ref(),
            self.model.as_deref(),
            self.api_key.as_ref(),
            RemoteLimits {
                timeout: self.timeout_or_default("timeout_secs", self.timeout_secs.as_ref())?,
                deadline: decision_timeout,
                max_tokens: self.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS),
                concurrency: self.max_concurrency.unwrap_or(DEFAULT_CONCURRENCY),
            },
            &|option| option.to_string(),
        )?;
        let Some(remote) = remote else {
            return Ok(Engine::Builtin);
        };
        Ok(Engine::Chain(vec![MemberSettings {
            compare: false,
            name: self.provider.as_str().to_string(),
            remote: Some(remote),
            local: false,
            budget: (
                self.requests_per_minute.unwrap_or(DEFAULT_PER_MINUTE),
                self.max_requests_per_hour.unwrap_or(DEFAULT_PER_HOUR),
            ),
        }]))
    }

    /// One network provider's settings (`None` for the built-in rules),
    /// with `at` naming an option in errors.
    fn remote(
        &self,
        kind: ProviderKind,
        endpoint: Option<&HttpUrl>,
        model: Option<&str>,
        api_key: Option<&Secret>,
        limits: RemoteLimits,
        at: &dyn Fn(&str) -> String,
    ) -> Result<Option<RemoteSettings>, BuildError> {
        let Some(remote) = kind.remote() else {
            let network_only = [
                ("endpoint", endpoint.is_some()),
                ("model", model.is_some()),
                ("api_key", api_key.is_some()),
            ];
            if let Some((option, _)) = network_only.into_iter().find(|(_, set)| *set) {
                return Err(BuildError::new(format!(
                    "`{option}` is for network providers; set `provider` (openai, ollama, \
                     anthropic) or remove it"
                ))
                .for_option(at(option)));
            }
            return Ok(None);
        };
        let model = model.filter(|m| !m.trim().is_empty()).ok_or_else(|| {
            BuildError::new(format!("`provider = \"{}\"` needs `model`", kind.as_str()))
                .for_option(at("model"))
        })?;
        let endpoint = match endpoint {
            Some(endpoint) => endpoint.clone(),
            None => HttpUrl::parse(remote.default_endpoint())
                .map_err(|e| BuildError::new(e).for_option(at("endpoint")))?,
        };
        Ok(Some(RemoteSettings {
            kind: remote,
            http: HttpSettings {
                endpoint: endpoint.url().clone(),
                api_key: api_key.cloned(),
                timeout: limits.timeout,
                deadline: limits.deadline,
                concurrency: limits.concurrency.get(),
            },
            model: model.to_string(),
            max_tokens: limits.max_tokens.get(),
        }))
    }
}
