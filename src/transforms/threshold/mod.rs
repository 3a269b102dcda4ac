//! `threshold`: alert when a metric stays beyond a threshold for a while
//! ("CPU above 80% on any node for 5 minutes"), and say when it is over.
//!
//! Each rule picks samples by metric name, judges each one (a comparison
//! such as `value > 80`, or a VRL expression), and follows every group
//! (`group_by` tags, e.g. one per host) through Prometheus' alert life:
//! `inactive → pending → firing → resolved` ([`state`]). Only firings and
//! resolutions leave the transform, as alert events the alert sinks
//! render as they are ([`alert`]); the samples themselves stop here.
//!
//! - [`rule`]: a rule, compiled;
//! - [`state`]: the per-group state machine (pure, time as a parameter);
//! - [`alert`]: the alert events;
//! - [`task`]: the running transform, with persistence.

mod alert;

/// How alert values read (`93.12`, `80`, `1.5e-4`): the `pattern`
/// transform's spike alerts write their numbers the same way.
pub(super) use alert::number as alert_number;
mod rule;
mod state;
mod task;

use std::num::NonZeroUsize;
use std::time::Duration;

use schemars::JsonSchema;
use serde::Deserialize;
use toml::Spanned;

use crate::components::transform::{Transform, TransformConfig};
use crate::components::{BuildContext, OutputSpec};
use crate::diagnostic::BuildError;
use crate::options::Seconds;
use crate::template::Template;
use crate::vrl_program::{VrlCondition, VrlOrigin, VrlRunner, compile_condition};
use rule::{Comparison, Condition, Rule};
use state::Tracker;

/// Options of the `threshold` transform.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ThresholdConfig {
    /// The rules, as `[[transforms.ID.rules]]` tables; at least one.
    #[schemars(extend("x-placeholder" = [{ "name": "high_cpu", "metric": "cpu_usage_percent", "condition": "value > 80" }]))]
    rules: Vec<RuleConfig>,
    /// A group that gets no sample for this long starts over: a pending
    /// breach is forgotten, a firing alert resolves (marked `stale`).
    /// Missing data never counts as a breach. Keep it above two intervals
    /// of the source.
    #[serde(default = "default_stale_after")]
    stale_after_secs: Seconds,
    /// The most groups one rule keeps pending or firing; further groups
    /// are ignored with a warning. Bounds memory when tags come from data.
    #[serde(default = "default_max_groups")]
    max_groups: NonZeroUsize,
}

/// One rule.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct RuleConfig {
    /// The rule's name: `.alert.name`, and the start of its alert keys.
    /// Letters, digits, `_`, `.`, `:` and `-`; unique among the rules.
    name: String,
    /// The metric names it judges (`.metric.name`), as a glob: `*` and `?`
    /// match any characters.
    metric: String,
    /// A comparison of the sample's value with a number, `value OP NUMBER`
    /// with `OP` one of `>`, `>=`, `<`, `<=`, `==`, `!=` (`value > 80`); it
    /// gives the alert its `.alert.threshold`. Give this or `vrl`.
    #[schemars(with = "Option<String>")]
    condition: Option<Comparison>,
    /// A VRL expression over the whole metric event that returns a
    /// boolean, for conditions a comparison cannot express. Give this or
    /// `condition`.
    #[schemars(with = "Option<VrlCondition>")]
    vrl: Option<Spanned<String>>,
    /// How long the condition must hold (from the first breaching sample,
    /// by the samples' timestamps) before the alert fires. `0` fires on the
    /// first breaching sample.
    #[serde(default = "no_hold")]
    for_secs: Seconds,
    /// The tags (`.metric.tags`) whose values tell groups apart: one alert
    /// per host is `["host"]`. Empty: one group.
    #[serde(default)]
    group_by: Vec<String>,
    /// `.alert.severity` of its alerts: sinks colour and label them by it.
    #[serde(default = "default_severity")]
    severity: String,
    /// `.alert.summary`, which sinks show as the title: a template over the
    /// rule's context (`.value`, `.threshold`, `.duration`, `.tags.*`, ...;
    /// see [Summaries](#summaries)).
    #[schemars(extend(
        "x-default" = "`NAME: {{ .metric }} is {{ .value }} (CONDITION) on {{ .group }} for {{ .duration }}`"
    ))]
    summary: Option<Template>,
}

fn default_stale_after() -> Seconds {
    Seconds::from_secs(120)
}

fn default_max_groups() -> NonZeroUsize {
    const { NonZeroUsize::new(10_000).unwrap() }
}

fn no_hold() -> Seconds {
    Seconds::from_secs(0)
}

fn default_severity() -> String {
    "warning".to_string()
}

impl TransformConfig for ThresholdConfig {
    fn outputs(&self) -> Vec<OutputSpec> {
        vec![OutputSpec::default_output()]
    }

    fn build(&self, cx: &BuildContext) -> Result<Transform, BuildError> {
        let stale_after = self.stale_after_secs.positive("stale_after_secs")?;
        if self.rules.is_empty() {
            return Err(BuildError::new(
                "`rules` is empty: add at least one `[[transforms.ID.rules]]`",
            )
            .for_option("rules"));
        }
        let mut rules = Vec::new();
        for (index, config) in self.rules.iter().enumerate() {
            if rules
                .iter()
                .any(|(rule, _): &(Rule, Tracker)| rule.name == config.name)
            {
                return Err(BuildError::new(format!(
                    "two rules are named `{}`; names must be unique",
                    config.name
                ))
                .for_option(format!("rules[{index}].name")));
            }
            let (rule, hold_for) = config.build(cx, index).map_err(|mut error| {
                error.message = format!("rule `{}`: {}", config.name, error.message);
                error
            })?;
            rules.push((
                rule,
                Tracker::new(hold_for, stale_after, self.max_groups.get()),
            ));
        }
        Ok(Transform::Task(Box::new(task::ThresholdTask {
            namespace: cx.key.id().to_string(),
            rules,
            stale_after,
        })))
    }
}

impl RuleConfig {
    /// The compiled rule (the `index`th of `rules`) and its hold time.
    fn build(&self, cx: &BuildContext, index: usize) -> Result<(Rule, Duration), BuildError> {
        let option = |name: &str| format!("rules[{index}].{name}");
        if !rule::valid_name(&self.name) {
            return Err(
                BuildError::new("`name` must be letters, digits, `_`, `.`, `:` or `-`")
                    .for_option(option("name")),
            );
        }
        let metric = glob::Pattern::new(&self.metric).map_err(|e| {
            BuildError::new(format!("`metric` is not a valid glob: {e}"))
                .for_option(option("metric"))
        })?;
        let condition = match (&self.condition, &self.vrl) {
            (Some(comparison), None) => Condition::Compare(*comparison),
            (None, Some(source)) => {
                let program = compile_condition(
                    source.get_ref(),
                    VrlOrigin::Inline(source.span()),
                    &cx.file,
                    "vrl",
                )?;
                Condition::Vrl(
                    source.get_ref().trim().to_string(),
                    VrlRunner::new(std::sync::Arc::new(program)),
                )
            }
            (Some(_), Some(source)) => {
                return Err(BuildError::new(
                    "give `condition` (a comparison such as `value > 80`) or `vrl` (a VRL \
                     expression), not both",
                )
                .at(source.span()));
            }
            (None, None) => {
                return Err(BuildError::new(
                    "needs a `condition` (a comparison such as `value > 80`) or a `vrl` \
                     expression",
                )
                .for_option(format!("rules[{index}]")));
            }
        };
        if self.group_by.iter().any(|tag| tag.is_empty()) {
            return Err(
                BuildError::new("`group_by` names an empty tag").for_option(option("group_by"))
            );
        }
        let summary = match &self.summary {
            Some(summary) => summary.clone(),
            None => {
                let comparison = self.condition.map(|c| c.to_string());
                let text =
                    alert::default_summary(&self.name, comparison, !self.group_by.is_empty());
                Template::parse(&text).map_err(|e| {
                    BuildError::new(format!("the default `summary`: {e}"))
                        .for_option(option("name"))
                })?
            }
        };
        let hold_for = self.for_secs.get();
        let rule = Rule {
            name: self.name.clone(),
            metric,
            condition,
            group_by: self.group_by.clone(),
            severity: self.severity.clone(),
            summary,
            for_secs: hold_for.as_secs_f64(),
        };
        Ok((rule, hold_for))
    }
}

#[cfg(test)]
mod tests;
