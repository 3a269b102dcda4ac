//! Per-category policy: `policy` rules, evaluated in order on a pattern's
//! first event, choose for the pattern whether a language model may be
//! asked, which providers may answer, the `min_confidence` and the `mode`
//! (enforce, shadow or canary). The chosen rule's name goes in
//! `.triage.policy` and the audit trail.
//!
//! Decisions are made once per pattern by the transform's own policy (see
//! `decision`); a pattern under a rule, or under a canary, gets them
//! *reframed* by the rule's policy, once per pattern and decision (cached),
//! so the per-event cost stays one clone. A pattern under no rule and no
//! canary takes the fast path: no lookup beyond one map probe.

use std::collections::HashMap;
use std::sync::Arc;

use vrl::compiler::Program;
use vrl::value::Value;

use super::decision::{Decision, Framing};
use crate::components::transform::{DropRoute, TransformOutput};
use crate::event::Event;
use crate::internal_events::{ComponentMetrics, ErrorType, Stage};
use crate::vrl_program::VrlRunner;

/// One `policy` rule, checked.
pub struct RuleSettings {
    /// Its `condition`.
    pub condition: Arc<Program>,
    /// `llm_allowed`: `Some(false)` keeps the category from models.
    pub llm_allowed: Option<bool>,
    /// `providers`: the only providers that may answer (`None`: any).
    pub providers: Option<Arc<[String]>>,
    /// Its name, `min_confidence`, `mode` and `canary_percent`.
    pub framing: Framing,
}

/// The most patterns whose rule is remembered; beyond it the memory is
/// cleared and rules are evaluated again (a few microseconds each).
const MAX_REMEMBERED: usize = 100_000;

/// Chooses rules per pattern and frames decisions by them.
pub struct Framer {
    rules: Vec<(VrlRunner, RuleSettings)>,
    /// The transform's own framing when it needs one (a canary).
    default: Option<Framing>,
    /// Each pattern's rule (its index), chosen on its first event.
    chosen: HashMap<String, Option<usize>>,
    /// Reframed decisions: the base annotation they came from, and the
    /// result.
    reframed: HashMap<String, (Value, Decision)>,
    /// Where suppressed events go.
    suppressed: DropRoute,
    metrics: Arc<ComponentMetrics>,
}

impl Framer {
    /// A framer of `rules`, with the transform's own framing (`Some` for a
    /// canary), applying decisions through `suppressed` and counting in
    /// `metrics`: every decision after the policy stage goes through it.
    pub fn new(
        rules: Vec<RuleSettings>,
        default: Option<Framing>,
        suppressed: DropRoute,
        metrics: Arc<ComponentMetrics>,
    ) -> Self {
        Self {
            rules: rules
                .into_iter()
                .map(|rule| (VrlRunner::new(Arc::clone(&rule.condition)), rule))
                .collect(),
            default,
            chosen: HashMap::new(),
            reframed: HashMap::new(),
            suppressed,
            metrics,
        }
    }

    /// The rule of `pattern`, chosen on its first event: the first whose
    /// condition holds (a condition that fails counts as false, and is
    /// counted as an error).
    pub fn rule_for(&mut self, pattern: &str, event: &mut Event) -> Option<&RuleSettings> {
        if self.rules.is_empty() {
            return None;
        }
        let index = match self.chosen.get(pattern) {
            Some(index) => *index,
            None => {
                let mut found = None;
                for (index, (runner, rule)) in self.rules.iter_mut().enumerate() {
                    match runner.run(event.value_mut()) {
                        Ok(Value::Boolean(true)) => {
                            found = Some(index);
                            break;
                        }
                        Ok(_) => {}
                        Err(error) => self.metrics.error(
                            ErrorType::ConditionFailed,
                            Stage::Processing,
                            &format_args!(
                                "the condition of policy `{}` failed (taken as false): {error}",
                                rule.framing.name.as_deref().unwrap_or_default()
                            ),
                        ),
                    }
                }
                if self.chosen.len() >= MAX_REMEMBERED {
                    self.chosen.clear();
                    self.reframed.clear();
                }
                self.chosen.insert(pattern.to_string(), found);
                found
            }
        };
        index.and_then(|i| self.rules.get(i)).map(|(_, rule)| rule)
    }

    /// Whether `pattern`'s verdicts are judged by a canary (its rule's
    /// mode, or the transform's).
    pub fn is_canary(&self, pattern: &str) -> bool {
        let index = self.chosen.get(pattern).copied().flatten();
        let framing = match index.and_then(|i| self.rules.get(i)) {
            Some((_, rule)) => Some(&rule.framing),
            None => self.default.as_ref(),
        };
        framing.is_some_and(|f| f.mode == super::decision::Mode::Canary)
    }

    /// The name of the rule `pattern` falls under, if any.
    pub fn policy_of(&self, pattern: &str) -> Option<&str> {
        let index = self.chosen.get(pattern).copied().flatten()?;
        self.rules.get(index)?.1.framing.name.as_deref()
    }

    /// Applies `decision` to an event of `pattern`, reframed by the
    /// pattern's rule or the transform's canary when there is one.
    pub fn apply(
        &mut self,
        pattern: &str,
        decision: &Decision,
        event: Event,
        out: &mut TransformOutput,
    ) {
        let Self {
            rules,
            default,
            chosen,
            reframed,
            suppressed,
            metrics,
        } = self;
        let index = chosen.get(pattern).copied().flatten();
        let framing = match index.and_then(|i| rules.get(i)) {
            Some((_, rule)) => &rule.framing,
            None => match default {
                Some(framing) => &*framing,
                // No rule, no canary: the decision as it was made.
                None => return decision.apply(event, out, *suppressed, metrics),
            },
        };
        // A pattern's rule is fixed once chosen (both maps are cleared
        // together), so the pattern alone keys its reframed decision.
        let fresh = match reframed.get(pattern) {
            Some((base, framed)) if *base == *decision.annotation() => framed,
            _ => {
                if reframed.len() >= MAX_REMEMBERED {
                    reframed.clear();
                }
                let framed = framing.reframe(decision, pattern);
                reframed.insert(pattern.to_string(), (decision.annotation().clone(), framed));
                &reframed[pattern].1
            }
        };
        fresh.apply(event, out, *suppressed, metrics);
    }
}

#[cfg(test)]
mod tests {
    use super::super::decision::{Mode, in_canary};

    #[test]
    fn a_canary_takes_its_share_of_patterns_and_always_the_same_ones() {
        for percent in [5.0, 10.0, 50.0] {
            let ids: Vec<String> = (0..1000u64)
                .map(|i| format!("{:016x}", i.wrapping_mul(0x9e37_79b9_7f4a_7c15)))
                .collect();
            let chosen: Vec<bool> = ids.iter().map(|id| in_canary(id, percent)).collect();
            let share = chosen.iter().filter(|c| **c).count() as f64 / 10.0;
            assert!(
                (share - percent).abs() <= 3.0,
                "{percent}% asked, {share}% chosen"
            );
            let again: Vec<bool> = ids.iter().map(|id| in_canary(id, percent)).collect();
            assert_eq!(chosen, again, "the same patterns, every time");
        }
        assert!(!in_canary("abc", 0.0) && in_canary("abc", 100.0));
        assert_eq!(Mode::default(), Mode::Enforce);
    }
}
