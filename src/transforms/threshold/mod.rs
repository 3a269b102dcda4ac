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
mod rule;
mod state;
mod task;

use std::time::Duration;

use schemars::JsonSchema;
use serde::Deserialize;
use toml::Spanned;

use crate::components::transform::{Transform, TransformConfig};
use crate::components::{BuildContext, OutputSpec};
use crate::diagnostic::BuildError;
use crate::options::duration::{positive, seconds};
use crate::template::Template;
use crate::vrl_program::{VrlOrigin, VrlRunner, compile_condition};
use rule::{Comparison, Condition, Rule};
use state::Tracker;

/// Options of the `threshold` transform.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ThresholdConfig {
    /// The rules (`[[transforms.ID.rules]]` tables).
    rules: Vec<RuleConfig>,
    /// A group that gets no sample for this many seconds starts over: a
    /// pending breach is forgotten, a firing alert resolves (marked
    /// `stale`). Missing data never counts as a breach.
    #[serde(default = "default_stale_after")]
    stale_after_secs: f64,
    /// The most groups one rule keeps pending or firing; further groups
    /// are ignored with a warning. Bounds memory when tags come from data.
    #[serde(default = "default_max_groups")]
    max_groups: usize,
}

/// One rule.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct RuleConfig {
    /// The rule's name: `.alert.name`, and the start of its alert keys.
    name: String,
    /// The metric names it judges (`.metric.name`); `*` and `?` globs.
    metric: String,
    /// A comparison of the sample's value with a number: `value > 80`
    /// (also `>=`, `<`, `<=`, `==`, `!=`). Give this or `vrl`.
    condition: Option<String>,
    /// A VRL expression over the whole metric event that returns a
    /// boolean, for conditions a comparison cannot express. Give this or
    /// `condition`.
    #[schemars(with = "Option<String>")]
    vrl: Option<Spanned<String>>,
    /// How long, in seconds, the condition must hold (from the first
    /// breaching sample, by the samples' timestamps) before the alert
    /// fires. `0` fires on the first breaching sample.
    #[serde(default)]
    for_secs: f64,
    /// The tags (`.metric.tags`) whose values tell groups apart: one alert
    /// per host is `["host"]`. Empty: one group.
    #[serde(default)]
    group_by: Vec<String>,
    /// `.alert.severity` of its alerts.
    #[serde(default = "default_severity")]
    severity: String,
    /// `.alert.summary`, a template over the rule's context (`.value`,
    /// `.threshold`, `.duration`, `.tags.*`, ...). Default: `NAME: METRIC
    /// is VALUE (CONDITION) on GROUP for DURATION`.
    summary: Option<String>,
}

fn default_stale_after() -> f64 {
    120.0
}

fn default_max_groups() -> usize {
    10_000
}

fn default_severity() -> String {
    "warning".to_string()
}

impl TransformConfig for ThresholdConfig {
    fn outputs(&self) -> Vec<OutputSpec> {
        vec![OutputSpec::default_output()]
    }

    fn build(&self, cx: &BuildContext) -> Result<Transform, BuildError> {
        let stale_after = positive(self.stale_after_secs, "stale_after_secs")?;
        if self.max_groups == 0 {
            return Err(BuildError::new("`max_groups` must be at least 1"));
        }
        if self.rules.is_empty() {
            return Err(BuildError::new(
                "`rules` is empty: add at least one `[[transforms.ID.rules]]`",
            ));
        }
        let mut rules = Vec::new();
        for config in &self.rules {
            if rules
                .iter()
                .any(|(rule, _): &(Rule, Tracker)| rule.name == config.name)
            {
                return Err(BuildError::new(format!(
                    "two rules are named `{}`; names must be unique",
                    config.name
                )));
            }
            let (rule, hold_for) = config.build(cx).map_err(|mut error| {
                error.message = format!("rule `{}`: {}", config.name, error.message);
                error
            })?;
            rules.push((rule, Tracker::new(hold_for, stale_after, self.max_groups)));
        }
        Ok(Transform::Task(Box::new(task::ThresholdTask {
            namespace: cx.key.id().to_string(),
            rules,
            stale_after,
        })))
    }
}

impl RuleConfig {
    /// The compiled rule and its hold time.
    fn build(&self, cx: &BuildContext) -> Result<(Rule, Duration), BuildError> {
        if !rule::valid_name(&self.name) {
            return Err(BuildError::new(
                "`name` must be letters, digits, `_`, `.`, `:` or `-`",
            ));
        }
        let metric = glob::Pattern::new(&self.metric)
            .map_err(|e| BuildError::new(format!("`metric` is not a valid glob: {e}")))?;
        let condition = match (&self.condition, &self.vrl) {
            (Some(text), None) => {
                Condition::Compare(Comparison::parse(text).map_err(BuildError::new)?)
            }
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
                ));
            }
        };
        if self.group_by.iter().any(|tag| tag.is_empty()) {
            return Err(BuildError::new("`group_by` names an empty tag"));
        }
        let comparison = match &condition {
            Condition::Compare(comparison) => Some(comparison.to_string()),
            Condition::Vrl(..) => None,
        };
        let summary_text = self.summary.clone().unwrap_or_else(|| {
            alert::default_summary(&self.name, comparison, !self.group_by.is_empty())
        });
        let summary = Template::parse(&summary_text)
            .map_err(|e| BuildError::new(format!("`summary`: {e}")))?;
        let hold_for = seconds(self.for_secs, "for_secs")?;
        let rule = Rule {
            name: self.name.clone(),
            metric,
            condition,
            group_by: self.group_by.clone(),
            severity: self.severity.clone(),
            summary,
            for_secs: self.for_secs,
        };
        Ok((rule, hold_for))
    }
}

#[cfg(test)]
mod tests;
