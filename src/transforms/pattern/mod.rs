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
use crate::patterns::{Level, Miner, MinerConfig};
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
    /// A pattern spikes when its count in a report window is at least this
    /// many times its count in the previous window (1 or more).
    #[serde(default = "default_spike_factor")]
    spike_factor: f64,
    /// ... and at least this many lines.
    #[serde(default = "default_spike_min_count")]
    spike_min_count: u64,
    /// Storms: once this many new patterns went to `ID.new` from one scope
    /// within `storm_window_secs`, the window's further new patterns are
    /// held off `ID.new` and announced together as one event on
    /// `ID.storm` when the window ends; `0` turns grouping off.
    #[serde(default = "default_storm_threshold")]
    storm_threshold: u64,
    /// The window in which new patterns are counted per scope for
    /// `storm_threshold`.
    #[serde(default = "default_storm_window")]
    storm_window_secs: Seconds,
    /// New patterns of this level or above are never held in a storm:
    /// they go to `ID.new` at once (`fatal`, `error`, `warn`, `info`,
    /// `debug`; `none` holds every level).
    #[serde(default = "default_storm_exempt_level")]
    storm_exempt_level: String,
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
/// Their positions among the named outputs (the order of `outputs()`).
const NEW_OUTPUT: usize = 0;
const CHANGES_OUTPUT: usize = 1;
const STORM_OUTPUT: usize = 2;

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
        ]
    }

    fn build(&self, cx: &BuildContext) -> Result<Transform, BuildError> {
        let PatternConfig {
            field,
            scope,
            level_field,
            max_scopes,
            report_interval_secs,
            spike_factor,
            spike_min_count,
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
        Ok(Transform::Task(Box::new(task::PatternTask::new(
            task::Settings {
                namespace: cx.key.id().to_string(),
                field: field.path().clone(),
                level_field: level_field.as_ref().map(|f| f.path().clone()),
                scope: scope.clone(),
                miner: self.shared.clone(),
                max_scopes: max_scopes.get(),
                report: report::ReportSettings {
                    interval: report_interval_secs.get(),
                    spike_factor: *spike_factor,
                    spike_min_count: *spike_min_count,
                },
                storm: storm::StormSettings {
                    threshold: *storm_threshold,
                    window: storm_window_secs.get(),
                    exempt,
                },
            },
        ))))
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
}
