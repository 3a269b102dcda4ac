//! `pattern`: learn the templates of log lines as they stream by and say
//! which are new.
//!
//! Every event gets a `.pattern` object (`id`, `template`, `new`, `count`,
//! `level`, `first_seen`, and `scope` with `scope`). The stable `id` is what
//! suppressions, verdicts and Alertmanager silences key on. Three outputs:
//!
//! - `ID`: every event, annotated;
//! - `ID.new`: only the events that created their pattern (the "new kind of
//!   log line" signal);
//! - `ID.changes`: every `report_interval_secs`, one event per change in the
//!   window: `new` patterns, `gone` ones (seen in the previous window, not
//!   in this one) and `spike`s (at least `spike_factor` times the previous
//!   window's count, and at least `spike_min_count`).
//!
//! The miner's state (patterns, counts, first/last seen, samples) is kept in
//! the state store and loaded at start, so a restart does not re-announce
//! known patterns. It is saved within about a second of a new pattern, every
//! 30 seconds otherwise, and at shutdown; each save is one transaction, so a
//! `kill -9` at any moment leaves a loadable store (at most the last second's
//! new patterns are announced again after such a crash).
//!
//! This is a task transform, not a parallel one: the miner is one shared,
//! ordered state. It costs well under a microsecond per line.

mod report;
mod task;

use schemars::JsonSchema;
use serde::Deserialize;

use crate::components::transform::{Transform, TransformConfig};
use crate::components::{BuildContext, OutputSpec};
use crate::diagnostic::BuildError;
use crate::patterns::{MinerConfig, UserMask};
use crate::template::Template;

/// Options of the `pattern` transform.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PatternConfig {
    /// The field holding the text to mine.
    #[serde(default = "default_field")]
    field: String,
    /// A template naming separate pattern spaces, e.g. `{{ .service }}`: the
    /// same line in two services is then two patterns. Unset: one space.
    scope: Option<String>,
    /// A field holding the event's level (`ERROR`, `warn`, `3`, ...); unset:
    /// the level is read from the line's header.
    level_field: Option<String>,
    /// Extra masks, tried before the built-in ones: `[{ name = "order",
    /// pattern = "ORD-\\d+" }]` turns `ORD-123` into `<ORDER>`.
    #[serde(default)]
    masks: Vec<MaskConfig>,
    /// Built-in masks to turn off, by name: `num`, `duration`, `hex`, `ip`,
    /// `mac`, `uuid`, `url`, `path`, `time`, `email`, `hostport`, `bool`,
    /// `kv`, `long`, `fqn`.
    #[serde(default)]
    disable_builtin_masks: Vec<String>,
    /// The most patterns kept per scope; the least recently seen is evicted
    /// beyond it (and counted in `pattern_evictions_total`).
    #[serde(default = "default_max_patterns")]
    max_patterns: usize,
    /// Lines are cut to this many tokens before mining.
    #[serde(default = "default_max_tokens")]
    max_tokens: usize,
    /// How alike (0 to 1) a line must be to a pattern to join it.
    #[serde(default = "default_similarity")]
    similarity: f64,
    /// Sample lines kept per pattern.
    #[serde(default = "default_max_samples")]
    max_samples: usize,
    /// The most scopes; further scope values share one space named
    /// `_overflow`.
    #[serde(default = "default_max_scopes")]
    max_scopes: usize,
    /// Seconds between change reports on `ID.changes`; `0` turns them off.
    #[serde(default = "default_report_interval")]
    report_interval_secs: u64,
    /// A pattern spikes when its count in a report window is at least this
    /// many times its count in the previous window.
    #[serde(default = "default_spike_factor")]
    spike_factor: f64,
    /// ... and at least this many lines.
    #[serde(default = "default_spike_min_count")]
    spike_min_count: u64,
}

/// A user mask.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct MaskConfig {
    /// The placeholder's name (`order` gives `<ORDER>`).
    name: String,
    /// A regular expression matching one token.
    pattern: String,
}

fn default_field() -> String {
    "message".to_string()
}

fn default_max_patterns() -> usize {
    MinerConfig::default().max_patterns
}

fn default_max_tokens() -> usize {
    MinerConfig::default().max_tokens
}

fn default_similarity() -> f64 {
    MinerConfig::default().similarity
}

fn default_max_samples() -> usize {
    MinerConfig::default().max_samples
}

fn default_max_scopes() -> usize {
    1000
}

fn default_report_interval() -> u64 {
    3600
}

fn default_spike_factor() -> f64 {
    5.0
}

fn default_spike_min_count() -> u64 {
    20
}

/// The output that gets only events of new patterns.
const NEW: &str = "new";
/// The output of change reports.
const CHANGES: &str = "changes";
/// Their positions among the named outputs (the order of `outputs()`).
const NEW_OUTPUT: usize = 0;
const CHANGES_OUTPUT: usize = 1;

impl PatternConfig {
    /// The miner settings, checked (the CLI shares them).
    pub fn miner_config(&self) -> Result<MinerConfig, BuildError> {
        let config = MinerConfig {
            max_patterns: self.max_patterns,
            max_tokens: self.max_tokens,
            similarity: self.similarity,
            max_samples: self.max_samples,
            masks: self
                .masks
                .iter()
                .map(|m| UserMask {
                    name: m.name.clone(),
                    pattern: m.pattern.clone(),
                })
                .collect(),
            disable_builtin_masks: self.disable_builtin_masks.clone(),
        };
        crate::patterns::Miner::new(config.clone()).map_err(|e| BuildError::new(e.to_string()))?;
        Ok(config)
    }
}

impl TransformConfig for PatternConfig {
    fn outputs(&self) -> Vec<OutputSpec> {
        vec![
            OutputSpec::default_output(),
            OutputSpec::named(NEW, true),
            OutputSpec::named(CHANGES, false),
        ]
    }

    fn build(&self, cx: &BuildContext) -> Result<Transform, BuildError> {
        let path = |option: &str, text: &str| {
            vrl::path::parse_value_path(text.strip_prefix('.').unwrap_or(text)).map_err(|e| {
                BuildError::new(format!("`{option}`: invalid field path `{text}`: {e}"))
            })
        };
        let scope = self
            .scope
            .as_deref()
            .map(|text| Template::parse(text).map_err(|e| BuildError::new(format!("`scope`: {e}"))))
            .transpose()?;
        if self.max_scopes == 0 {
            return Err(BuildError::new("`max_scopes` must be at least 1"));
        }
        if !(self.spike_factor.is_finite() && self.spike_factor >= 1.0) {
            return Err(BuildError::new(
                "`spike_factor` must be a number, 1 or more",
            ));
        }
        Ok(Transform::Task(Box::new(task::PatternTask::new(
            task::Settings {
                namespace: cx.key.id().to_string(),
                field: path("field", &self.field)?,
                level_field: self
                    .level_field
                    .as_deref()
                    .map(|f| path("level_field", f))
                    .transpose()?,
                scope,
                miner: self.miner_config()?,
                max_scopes: self.max_scopes,
                report: report::ReportSettings {
                    interval: std::time::Duration::from_secs(self.report_interval_secs),
                    spike_factor: self.spike_factor,
                    spike_min_count: self.spike_min_count,
                },
            },
        ))))
    }
}
