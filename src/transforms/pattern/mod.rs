//! `pattern`: learn the templates of log lines as they stream by and say
//! which are new.
//!
//! Every event gets a `.pattern` object (`id`, `template`, `new`, `count`,
//! `level`, `first_seen`, and `scope` with `scope`). The stable `id` is what
//! suppressions, verdicts and Alertmanager silences key on. Four outputs:
//!
//! - `ID`: every event, annotated;
//! - `ID.new`: only the events that created their pattern (the "new kind of
//!   log line" signal), thinned during a storm;
//! - `ID.storm`: one alert event per scope and `storm_window_secs` in which
//!   more than `storm_threshold` new patterns appeared, grouping those that
//!   were held off `ID.new` (see [`storm`]);
//! - `ID.changes`: every `report_interval_secs`, one event per change in the
//!   window: `new` patterns, `gone` ones (seen in the previous window, not
//!   in this one) and `spike`s (the spike alerts fired in the window);
//! - `ID.anomalies`: stateful alerts (firing, then resolved) when a known
//!   pattern spikes over its baseline rate or an expected one goes silent
//!   (see [`anomaly`]).
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

mod anomaly;
mod report;
mod storm;
mod task;

use std::num::NonZeroUsize;

use schemars::JsonSchema;
use serde::Deserialize;

use crate::components::registry::WithShared;
use crate::components::transform::{Transform, TransformConfig};
use crate::components::{BuildContext, OutputSpec};
use crate::diagnostic::BuildError;
use crate::options::{FieldPath, Seconds};
use crate::patterns::{Level, Miner, MinerConfig, PatternId};
use crate::template::Template;

/// Options of the `pattern` transform besides the miner's, which are a
/// [`MinerConfig`] written in the same table (`howl patterns mine` reads
/// those from the same files).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PatternConfig {
    /// The field holding the text to mine. Events without it (or with it
    /// `null`) pass through untouched.
    #[serde(default = "default_field")]
    field: FieldPath,
    /// A template naming separate pattern spaces, e.g. `{{ .service }}`: the
    /// same line in two services is then two patterns. Unset: one space.
    scope: Option<Template>,
    /// A field holding the event's level (`ERROR`, `warning`, `err`, `3`,
    /// ...); unset: the level is read from the line's header.
    level_field: Option<FieldPath>,
    /// The most scopes; further scope values share one space named
    /// `_overflow`.
    #[serde(default = "default_max_scopes")]
    max_scopes: NonZeroUsize,
    /// How often a change report is emitted on `ID.changes`, covering the
    /// window since the last one; `0` turns reports off.
    #[serde(default = "default_report_interval")]
    report_interval_secs: Seconds,
    /// A pattern spikes when its lines in one `rate_window_secs` are at
    /// least this many times its baseline (1 or more): a spike alert on
    /// `ID.anomalies`, and a `spike` in the change report.
    #[serde(default = "default_spike_factor")]
    spike_factor: f64,
    /// ... and at least this many lines.
    #[serde(default = "default_spike_min_count")]
    spike_min_count: u64,
    /// The bucket in which each pattern's lines are counted for spikes (at
    /// least 1 s).
    #[serde(default = "default_rate_window")]
    rate_window_secs: Seconds,
    /// How fast a baseline forgets: a bucket's weight halves every this
    /// long (an exponentially weighted moving average of the buckets).
    #[serde(default = "default_half_life")]
    baseline_half_life_secs: Seconds,
    /// Patterns expected regularly (a heartbeat, `backup finished`): a
    /// silence alert on `ID.anomalies` when none came for `every`.
    #[serde(default)]
    expect: Vec<ExpectConfig>,
    /// Storms: once this many new patterns went to `ID.new` from one scope
    /// within `storm_window_secs`, the window's further new patterns are
    /// held off `ID.new` and announced together as one event on
    /// `ID.storm` when the window ends; `0` turns grouping off.
    #[serde(default = "default_storm_threshold")]
    storm_threshold: u64,
    /// The window in which new patterns are counted per scope for
    /// `storm_threshold`; it opens with the scope's first new pattern.
    #[serde(default = "default_storm_window")]
    storm_window_secs: Seconds,
    /// New patterns of this level or above are never held in a storm:
    /// they go to `ID.new` at once (`fatal`, `error`, `warn`, `info`,
    /// `debug`; `none` holds every level).
    #[serde(default = "default_storm_exempt_level")]
    storm_exempt_level: String,
}

/// One `[[transforms.ID.expect]]`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExpectConfig {
    /// The expected pattern's id (16 hex digits, as in `.pattern.id`).
    id: Option<String>,
    /// Or a glob over templates: `*` matches any run of characters (spaces
    /// included), every other character itself, e.g. `backup * finished*`.
    template: Option<String>,
    /// Only lines of this scope count (needs the transform's `scope`);
    /// unset: lines of any scope.
    scope: Option<String>,
    /// The longest gap between two matching lines before the silence
    /// alert fires, e.g. `"10m"`.
    every: Seconds,
    /// The silence alert's `.alert.severity`.
    #[serde(default = "default_severity")]
    severity: String,
}

fn default_severity() -> String {
    "warning".to_string()
}

fn default_rate_window() -> Seconds {
    Seconds::from_secs(60)
}

fn default_half_life() -> Seconds {
    Seconds::from_secs(3600)
}

/// The most expectations (their index is kept per pattern in 16 bits).
const MAX_EXPECTS: usize = 1000;

/// The expectations, checked.
fn expects(configs: &[ExpectConfig], scoped: bool) -> Result<anomaly::Expects, BuildError> {
    if configs.len() > MAX_EXPECTS {
        return Err(
            BuildError::new(format!("at most {MAX_EXPECTS} `expect` entries")).for_option("expect"),
        );
    }
    let mut expects = Vec::with_capacity(configs.len());
    for config in configs {
        let (matcher, what) = match (&config.id, &config.template) {
            (Some(id), None) => {
                let parsed = id.parse::<PatternId>().map_err(|e| {
                    BuildError::new(format!("`expect[].id` `{id}`: {e}")).for_option("id")
                })?;
                (anomaly::Matcher::Id(parsed), format!("id = {id:?}"))
            }
            (None, Some(glob)) if !glob.trim().is_empty() => (
                anomaly::Matcher::Template(glob.clone()),
                format!("template = {glob:?}"),
            ),
            (None, Some(_)) => {
                return Err(BuildError::new("`expect[].template` is empty").for_option("template"));
            }
            _ => {
                return Err(BuildError::new(
                    "each `expect` needs exactly one of `id` and `template`",
                )
                .for_option("expect"));
            }
        };
        if config.scope.is_some() && !scoped {
            return Err(BuildError::new(
                "`expect[].scope` needs the transform's `scope` option (without it there is one space)",
            )
            .for_option("scope"));
        }
        let label = match &config.scope {
            Some(scope) => format!("{what}, scope = {scope:?}"),
            None => what,
        };
        if expects.iter().any(|e: &anomaly::Expect| e.label == label) {
            return Err(
                BuildError::new(format!("`expect` {label} is listed twice")).for_option("expect")
            );
        }
        expects.push(anomaly::Expect {
            label,
            matcher,
            scope: config.scope.clone(),
            every: config.every.positive("every")?,
            severity: config.severity.clone(),
        });
    }
    Ok(anomaly::Expects(expects))
}

fn default_field() -> FieldPath {
    super::default_field_path("message")
}

fn default_max_scopes() -> NonZeroUsize {
    const { NonZeroUsize::new(1000).unwrap() }
}

fn default_report_interval() -> Seconds {
    Seconds::from_secs(3600)
}

fn default_spike_factor() -> f64 {
    5.0
}

fn default_spike_min_count() -> u64 {
    20
}

fn default_storm_threshold() -> u64 {
    10
}

fn default_storm_window() -> Seconds {
    Seconds::from_secs(60)
}

fn default_storm_exempt_level() -> String {
    "error".to_string()
}

/// The level of `storm_exempt_level`: `None` for `none`.
fn exempt_level(text: &str) -> Result<Option<Level>, BuildError> {
    if text.eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    match Level::parse_value(text) {
        Some(level) if level != Level::Unknown => Ok(Some(level)),
        _ => Err(BuildError::new(format!(
            "`storm_exempt_level` must be `fatal`, `error`, `warn`, `info`, `debug` or `none`, not `{text}`"
        ))
        .for_option("storm_exempt_level")),
    }
}

/// The output that gets only events of new patterns.
const NEW: &str = "new";
/// The output of change reports.
const CHANGES: &str = "changes";
/// The output of storm events.
const STORM: &str = "storm";
/// The output of spike and silence alerts.
const ANOMALIES: &str = "anomalies";
/// Their positions among the named outputs (the order of `outputs()`).
const NEW_OUTPUT: usize = 0;
const CHANGES_OUTPUT: usize = 1;
const STORM_OUTPUT: usize = 2;
const ANOMALIES_OUTPUT: usize = 3;

impl TransformConfig for WithShared<PatternConfig, MinerConfig> {
    fn outputs(&self) -> Vec<OutputSpec> {
        // `new` is a copy of some of the default output's events: reading
        // only the default output loses nothing, so no warning for it.
        let mut storm = OutputSpec::named(STORM, false);
        if self.own.storm_threshold > 0 {
            // Most topologies read only the default output and need no
            // warning about `storm`; but reading `new` without `storm`
            // loses every new pattern a storm held back.
            storm = storm.complementing(NEW);
        }
        vec![
            OutputSpec::default_output(),
            OutputSpec::named(NEW, false),
            OutputSpec::named(CHANGES, false),
            storm,
            OutputSpec::named(ANOMALIES, false),
        ]
    }

    fn build(&self, cx: &BuildContext) -> Result<Transform, BuildError> {
        Ok(Transform::Task(Box::new(task::PatternTask::new(
            self.settings(cx)?,
        ))))
    }
}

impl WithShared<PatternConfig, MinerConfig> {
    /// The running transform's settings, checked.
    fn settings(&self, cx: &BuildContext) -> Result<task::Settings, BuildError> {
        let PatternConfig {
            field,
            scope,
            level_field,
            max_scopes,
            report_interval_secs,
            spike_factor,
            spike_min_count,
            rate_window_secs,
            baseline_half_life_secs,
            expect,
            storm_threshold,
            storm_window_secs,
            storm_exempt_level,
        } = &self.own;
        if !(spike_factor.is_finite() && *spike_factor >= 1.0) {
            return Err(
                BuildError::new("`spike_factor` must be a number, 1 or more")
                    .for_option("spike_factor"),
            );
        }
        // Every bucket's end visits every pattern's counter: a bucket of a
        // millisecond would spin on that instead of mining lines.
        if rate_window_secs.get() < std::time::Duration::from_secs(1) {
            return Err(BuildError::new("`rate_window_secs` must be at least 1s")
                .for_option("rate_window_secs"));
        }
        let rates = anomaly::RateSettings::new(
            rate_window_secs.get(),
            anomaly::SpikeRule {
                factor: *spike_factor,
                min_count: *spike_min_count,
            },
            baseline_half_life_secs.positive("baseline_half_life_secs")?,
        );
        let expects = expects(expect, scope.is_some())?;
        let exempt = exempt_level(storm_exempt_level)?;
        if *storm_threshold > 0 && storm_window_secs.get().is_zero() {
            return Err(BuildError::new(
                "`storm_window_secs` must be more than 0 (set `storm_threshold = 0` to turn storms off)",
            )
            .for_option("storm_window_secs"));
        }
        // The settings were checked while they were read; building a miner
        // here keeps the task's promise that every scope's miner builds.
        Miner::new(self.shared.clone())
            .map_err(|e| BuildError::new(e.to_string()).for_option(e.option()))?;
        Ok(task::Settings {
            namespace: cx.key.id().to_string(),
            field: field.path().clone(),
            level_field: level_field.as_ref().map(|f| f.path().clone()),
            scope: scope.clone(),
            miner: self.shared.clone(),
            max_scopes: max_scopes.get(),
            report: report::ReportSettings {
                interval: report_interval_secs.get(),
            },
            storm: storm::StormSettings {
                threshold: *storm_threshold,
                window: storm_window_secs.get(),
                exempt,
            },
            rates,
            expects: std::sync::Arc::new(expects),
            clock_start: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transforms::task_harness::context;

    type Options = WithShared<PatternConfig, MinerConfig>;

    fn read(text: &str) -> Result<Options, (String, String)> {
        Options::from_toml(text).map_err(|error| crate::options::error_at(text, &error))
    }

    #[test]
    fn miner_settings_and_own_options_share_one_table() {
        let options = read(
            "field = '.msg'\nreport_interval_secs = '5m'\n\
             masks = [{ name = 'order', pattern = 'ORD-\\d+' }]\nsimilarity = 0.8",
        )
        .unwrap();
        assert_eq!(options.own.field.as_str(), ".msg");
        assert_eq!(
            options.own.report_interval_secs.get(),
            std::time::Duration::from_secs(300)
        );
        assert_eq!(options.shared.masks[0].name, "order");
        assert_eq!(options.shared.similarity, 0.8);
        assert_eq!(
            options.shared.max_patterns,
            MinerConfig::default().max_patterns
        );
        assert!(options.build(&context("")).is_ok());
    }

    #[test]
    fn bad_values_of_either_half_fail_where_they_are_written() {
        for (text, expected, at) in [
            ("max_tokens = 0", "`max_tokens` must be from 1 to 4096", "0"),
            ("max_scopes = 0", "nonzero", "0"),
            ("scope = '{{ .service'", "invalid template", "'{{ .service'"),
            (
                "report_interval_secs = 'hourly'",
                "invalid duration",
                "'hourly'",
            ),
            ("level_field = 'a..b'", "invalid field path", "'a..b'"),
            ("storm_threshold = -1", "invalid value", "-1"),
        ] {
            let (message, span) = read(text).expect_err(text);
            assert!(message.contains(expected), "{text}: {message}");
            assert_eq!(span, at, "{text}: {message}");
        }
    }

    #[test]
    fn storm_options_are_checked_at_build() {
        for (text, option) in [
            ("storm_exempt_level = 'loud'", "storm_exempt_level"),
            ("storm_exempt_level = 'unknown'", "storm_exempt_level"),
            ("storm_window_secs = 0", "storm_window_secs"),
        ] {
            let Err(error) = read(text).unwrap().build(&context("")) else {
                panic!("{text} builds")
            };
            assert_eq!(error.option.as_deref(), Some(option), "{text}");
        }
        for text in [
            "storm_exempt_level = 'none'",
            "storm_exempt_level = 'WARN'",
            "storm_threshold = 0\nstorm_window_secs = 0",
        ] {
            assert!(read(text).unwrap().build(&context("")).is_ok(), "{text}");
        }
    }

    #[test]
    fn a_spike_factor_below_one_names_its_option() {
        let Err(error) = read("spike_factor = 0.5").unwrap().build(&context("")) else {
            panic!("a spike factor below 1 builds")
        };
        assert_eq!(error.option.as_deref(), Some("spike_factor"));
    }

    #[test]
    fn anomaly_options_are_checked_at_build() {
        for (text, option) in [
            ("rate_window_secs = 0", "rate_window_secs"),
            ("rate_window_secs = 0.001", "rate_window_secs"),
            ("rate_window_secs = '999ms'", "rate_window_secs"),
            ("baseline_half_life_secs = 0", "baseline_half_life_secs"),
            ("[[expect]]\nevery = '10m'", "expect"),
            (
                "[[expect]]\nid = '00000000deadbeef'\ntemplate = 'a*'\nevery = '10m'",
                "expect",
            ),
            ("[[expect]]\nid = 'heartbeat'\nevery = '10m'", "id"),
            ("[[expect]]\ntemplate = ' '\nevery = '10m'", "template"),
            ("[[expect]]\ntemplate = 'a*'\nevery = 0", "every"),
            (
                "[[expect]]\ntemplate = 'a*'\nscope = 'db'\nevery = 5",
                "scope",
            ),
            (
                "[[expect]]\ntemplate = 'a*'\nevery = 5\n[[expect]]\ntemplate = 'a*'\nevery = 9",
                "expect",
            ),
        ] {
            let Err(error) = read(text).unwrap().build(&context("")) else {
                panic!("{text} builds")
            };
            assert_eq!(error.option.as_deref(), Some(option), "{text}: {error:?}");
        }
        let options = read(
            "scope = '{{ .service }}'\nrate_window_secs = '5m'\n\
             [[expect]]\ntemplate = 'backup * finished'\nscope = 'db'\nevery = '1h'\n\
             [[expect]]\nid = '00000000deadbeef'\nevery = '10m'\nseverity = 'critical'",
        )
        .unwrap();
        let settings = options.settings(&context("")).unwrap();
        assert_eq!(settings.rates.window, std::time::Duration::from_secs(300));
        assert_eq!(settings.expects.0.len(), 2);
        assert_eq!(
            settings.expects.0[0].label,
            "template = \"backup * finished\", scope = \"db\""
        );
        assert_eq!(settings.expects.0[1].severity, "critical");
        assert_eq!(
            settings.expects.0[1].every,
            std::time::Duration::from_secs(600)
        );
    }
}
