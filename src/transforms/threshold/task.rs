//! The running `threshold` transform: metric events in, alert events out,
//! groups persisted.
//!
//! Time has two sources, kept apart on purpose. Whether a breach has held
//! for `for_secs` is judged on the samples' own `timestamp`s (sample time),
//! so a replay or a test can cover hours in a second and a slow pipeline
//! does not stretch a hold. Whether samples have stopped coming is judged
//! on real time: a sweep resets groups nothing has arrived for in
//! `stale_after_secs`.
//!
//! The pending and firing groups are saved to the state store (table
//! `transform_threshold`) at once when a group starts, fires or ends, and
//! every few seconds otherwise (for the latest sample times), and loaded
//! at start: a restart mid-incident neither fires again nor forgets to
//! resolve. Saved groups of rules that no longer exist are dropped.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::time::Instant;

use super::alert::alert_event;
use super::rule::Rule;
use super::state::{AtCapacity, Group, Observation, Phase, Tracker, Transition};
use crate::alert::AlertStore;
use crate::components::ComponentFuture;
use crate::components::transform::{TaskContext, TaskTransform, TransformOutput};
use crate::event::Event;
use crate::event::metric::{NotASample, Sample};
use crate::internal_events::{ComponentMetrics, ErrorType, Stage, ThresholdRuleMetrics};

/// The state-store table of `threshold` transforms.
const TABLE: &str = "transform_threshold";
/// How often sample times are saved when nothing else changed.
const SAVE_EVERY: Duration = Duration::from_secs(10);

/// The transform, built and ready to run.
pub struct ThresholdTask {
    /// The component id (the state-store namespace).
    pub namespace: String,
    /// The rules, each with its groups.
    pub rules: Vec<(Rule, Tracker)>,
    /// How long without samples resets a group.
    pub stale_after: Duration,
}

/// The running state.
struct Running {
    rules: Vec<RuleState>,
    store: AlertStore<Group>,
    /// Keys saved last time, to delete those that ended since.
    saved: HashSet<String>,
    /// Whether a sample time moved since the last save.
    unsaved_samples: bool,
    metrics: Arc<ComponentMetrics>,
}

struct RuleState {
    rule: Rule,
    tracker: Tracker,
    metrics: ThresholdRuleMetrics,
}

impl TaskTransform for ThresholdTask {
    fn run(self: Box<Self>, mut cx: TaskContext) -> ComponentFuture {
        Box::pin(async move {
            let store = AlertStore::open_in(&cx.state, TABLE, &self.namespace)?;
            let rules = self
                .rules
                .into_iter()
                .map(|(rule, tracker)| RuleState {
                    metrics: cx.metrics.threshold_rule(&rule.name),
                    rule,
                    tracker,
                })
                .collect();
            let mut running = Running {
                rules,
                store,
                saved: HashSet::new(),
                unsaved_samples: false,
                metrics: Arc::clone(&cx.metrics),
            };
            running.load(&cx.key.to_string())?;
            let mut sweep = tokio::time::interval(
                (self.stale_after / 4).clamp(Duration::from_millis(100), Duration::from_secs(15)),
            );
            let mut save = tokio::time::interval(SAVE_EVERY);
            loop {
                let mut out = cx.outputs.collector(0);
                tokio::select! {
                    batch = cx.input.recv() => match batch {
                        Some(events) => running.handle(events, &mut out),
                        None => break,
                    },
                    _ = sweep.tick() => running.sweep(&mut out),
                    _ = save.tick() => {
                        if running.unsaved_samples {
                            running.save();
                        }
                    }
                }
                running.after_change();
                if !out.default.is_empty() {
                    cx.outputs.send(out).await;
                }
            }
            running.save();
            Ok(())
        })
    }
}

impl Running {
    /// Puts back the groups saved by the previous run.
    fn load(&mut self, component: &str) -> anyhow::Result<()> {
        let mut dropped = Vec::new();
        let mut loaded = 0;
        for (key, group) in self.store.load()? {
            let rule_name = key.split('/').next().unwrap_or_default();
            match self.rules.iter_mut().find(|r| r.rule.name == rule_name) {
                Some(state) => {
                    state.tracker.restore(key.clone(), group);
                    self.saved.insert(key);
                    loaded += 1;
                }
                None => dropped.push(key),
            }
        }
        if loaded > 0 {
            tracing::info!(
                component,
                groups = loaded,
                "loaded pending and firing alert groups"
            );
        }
        if !dropped.is_empty() {
            tracing::info!(
                component,
                groups = dropped.len(),
                "dropping saved alert groups of rules that no longer exist"
            );
            let keys: Vec<&str> = dropped.iter().map(String::as_str).collect();
            self.store.save(&[], &keys)?;
        }
        for state in &mut self.rules {
            state.tracker.take_changed();
        }
        self.report();
        Ok(())
    }

    /// Judges a batch of samples against every rule.
    fn handle(&mut self, events: Vec<Event>, out: &mut TransformOutput) {
        let arrived = Instant::now();
        let mut not_metrics = 0;
        for mut event in events {
            let (name, value, at, groups) = match Sample::read(&event) {
                Ok(sample) if sample.value.is_nan() => continue,
                Ok(sample) => {
                    let groups: Vec<_> = self
                        .rules
                        .iter()
                        .enumerate()
                        .filter(|(_, state)| state.rule.matches(sample.name))
                        .map(|(index, state)| (index, state.rule.group(&sample)))
                        .collect();
                    let at = sample.timestamp.unwrap_or_else(Utc::now);
                    let series = series_of(&sample);
                    (sample.name.to_string(), sample.value, at, (groups, series))
                }
                Err(NotASample::NotAMetric) => {
                    not_metrics += 1;
                    continue;
                }
                Err(error) => {
                    self.metrics.error(
                        ErrorType::InvalidMetric,
                        Stage::Processing,
                        &format_args!("ignoring a metric event: {error}"),
                    );
                    continue;
                }
            };
            let (groups, series) = groups;
            for (index, (key, tags)) in groups {
                let state = &mut self.rules[index];
                let breaching = match state.rule.breaches(&mut event, value) {
                    Ok(breaching) => breaching,
                    Err(error) => {
                        self.metrics.error(
                            ErrorType::ConditionFailed,
                            Stage::Processing,
                            &format_args!("rule `{}`: {error}", state.rule.name),
                        );
                        continue;
                    }
                };
                let before = state.tracker.phase(&key);
                let observed = state.tracker.observe(Observation {
                    key: &key,
                    tags: &tags,
                    metric: &name,
                    at,
                    arrived,
                    value,
                    breaching,
                    series,
                });
                self.unsaved_samples = true;
                let after = state.tracker.phase(&key);
                if before != after {
                    // `-v` shows each group's way to an alert, so a rule
                    // that is pending (or never breaches) is not a mystery.
                    let name = |phase: Option<Phase>| match phase {
                        None => "ok",
                        Some(Phase::Pending) => "pending",
                        Some(Phase::Firing) => "firing",
                    };
                    tracing::debug!(
                        rule = %state.rule.name,
                        group = %key,
                        value,
                        "threshold: {} -> {}{}",
                        name(before),
                        name(after),
                        if after == Some(Phase::Pending) {
                            format!(" (fires if it stays so for {}s)", state.rule.for_secs)
                        } else {
                            String::new()
                        }
                    );
                }
                match observed {
                    Ok(transitions) => emit(&state.rule, &transitions, &self.metrics, out),
                    Err(AtCapacity) => self.metrics.warn_limited(
                        "threshold_max_groups",
                        &format_args!(
                            "rule `{}` has `max_groups` pending or firing groups; ignoring the new group `{key}` \
                             (raise `max_groups` or group by fewer tags)",
                            state.rule.name
                        ),
                    ),
                }
            }
        }
        if not_metrics > 0 {
            self.metrics
                .discarded_intentionally(not_metrics, "not a metric event");
            self.metrics.warn_limited(
                "not_a_metric",
                &"ignoring events without a `.metric` object (threshold rules judge metric events)",
            );
        }
    }

    /// Resets the groups whose samples stopped arriving.
    fn sweep(&mut self, out: &mut TransformOutput) {
        let now = Instant::now();
        for state in &mut self.rules {
            let transitions = state.tracker.sweep(now);
            emit(&state.rule, &transitions, &self.metrics, out);
        }
    }

    /// Saves at once when a group started, fired or ended, and updates the
    /// rules' gauges.
    fn after_change(&mut self) {
        let mut changed = false;
        for state in &mut self.rules {
            changed |= state.tracker.take_changed();
            state
                .metrics
                .stale_resets(state.tracker.take_stale_resets());
            if state.tracker.take_mixed_series() > 0 {
                self.metrics.warn_limited(
                    "threshold_mixed_series",
                    &format_args!(
                        "rule `{}`: samples of several series (different tags) share one group, so its alert follows whichever came last; add the tags that tell them apart to `group_by`",
                        state.rule.name
                    ),
                );
            }
        }
        if changed {
            self.save();
            self.report();
        }
    }

    fn report(&self) {
        for state in &self.rules {
            let (pending, firing) = state.tracker.counts();
            state.metrics.groups(pending, firing);
        }
    }

    /// Saves every pending and firing group and deletes the ones that
    /// ended, in one transaction. A failure is counted and logged; the
    /// next change tries again.
    fn save(&mut self) {
        let groups: Vec<(&str, &Group)> = self
            .rules
            .iter()
            .flat_map(|state| state.tracker.groups())
            .map(|(key, group)| (key.as_str(), group))
            .collect();
        let live: HashSet<String> = groups.iter().map(|(key, _)| key.to_string()).collect();
        let ended: Vec<&str> = self
            .saved
            .iter()
            .filter(|key| !live.contains(*key))
            .map(String::as_str)
            .collect();
        match self.store.save(&groups, &ended) {
            Ok(()) => {
                self.saved = live;
                self.unsaved_samples = false;
            }
            Err(error) => self.metrics.error(
                ErrorType::StateSaveFailed,
                Stage::Processing,
                &format_args!("cannot save the alert groups: {error}"),
            ),
        }
    }
}

fn emit(
    rule: &Rule,
    transitions: &[Transition],
    metrics: &ComponentMetrics,
    out: &mut TransformOutput,
) {
    for transition in transitions {
        out.push(alert_event(rule, transition, metrics));
    }
}

/// A hash of a sample's series: its name and every tag.
fn series_of(sample: &crate::event::metric::Sample<'_>) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    sample.name.hash(&mut hasher);
    for (key, value) in sample.tags.into_iter().flatten() {
        key.as_str().hash(&mut hasher);
        value.to_string_lossy().hash(&mut hasher);
    }
    // 0 means "not known"; a real hash of 0 is vanishingly rare and merely
    // skips one comparison.
    hasher.finish()
}
