//! What a verdict means for an event: annotate it (`.triage`) and send it
//! on (`ID`) or aside (`ID.suppressed`).
//!
//! Every way of deciding (an operator's suppression, a rule, a stored
//! verdict, an error) ends in a [`Decision`], made once per pattern and
//! verdict and then applied to each event of the pattern, so the policy
//! (`mode`, `min_confidence`, `on_error`) lives in one place, [`Policy`],
//! and the per-event cost is one clone of a small prebuilt object.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use vrl::value::{KeyString, ObjectMap, Value};

use crate::components::transform::{DropRoute, TransformOutput};
use crate::event::Event;
use crate::internal_events::ComponentMetrics;
use crate::state::triage::Label;
use crate::state::triage::{OperatorAction, StoredVerdict, Suppression};

/// Whether verdicts suppress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Suppress what the verdicts say is noise.
    #[default]
    Enforce,
    /// Decide and annotate, suppress nothing: to watch what would be
    /// suppressed before turning it on.
    Shadow,
}

/// What an error (outage, timeout, invalid answer, budget) means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OnError {
    /// Pass the event (fail open: never lose an alert to an outage).
    #[default]
    Pass,
    /// Suppress it.
    Suppress,
}

/// Where a decision came from (`.triage.source`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// An operator's suppression.
    Operator,
    /// A language model's verdict.
    Llm,
    /// The built-in classifier's verdict.
    Builtin,
    /// `always_alert` matched.
    Rule,
    /// Seen while learning (`learn_for`): routine.
    Learned,
    /// Inherited from a close pattern's decision.
    Inherited,
    /// No verdict could be had.
    Error,
}

impl Source {
    /// The value of `.triage.source`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Operator => "operator",
            Self::Llm => "llm",
            Self::Builtin => "builtin",
            Self::Rule => "rule",
            Self::Learned => "learned",
            Self::Inherited => "inherited",
            Self::Error => "error",
        }
    }
}

/// The verdict of decisions without a classifier's answer.
pub const UNKNOWN: &str = "unknown";

/// A decision, ready to apply to every event of its pattern.
#[derive(Debug, Clone)]
pub struct Decision {
    /// The `.triage` object.
    annotation: Value,
    /// Whether events go to `ID.suppressed`.
    suppress: bool,
}

impl Decision {
    /// Annotates `event` and emits it on the default output or, when
    /// suppressed, through `suppressed`.
    pub fn apply(
        &self,
        mut event: Event,
        out: &mut TransformOutput,
        suppressed: DropRoute,
        metrics: &ComponentMetrics,
    ) {
        event.insert_field("triage", self.annotation.clone());
        if self.suppress {
            suppressed.drop_event(event, out, metrics, "suppressed as noise");
        } else {
            out.push(event);
        }
    }

    /// Whether it sends events to `ID.suppressed`.
    pub fn suppresses(&self) -> bool {
        self.suppress
    }
}

/// The policy options, turning verdicts into decisions.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// `mode`.
    pub mode: Mode,
    /// `min_confidence`.
    pub min_confidence: f64,
    /// `on_error`.
    pub on_error: OnError,
}

impl Policy {
    /// `always_alert` matched: pass, whatever else is known.
    pub fn rule(&self) -> Decision {
        self.decide(
            Label::Important.as_str(),
            None,
            "always_alert matched",
            Source::Rule,
            false,
            None,
        )
    }

    /// An operator suppressed the pattern, or set it to always alert.
    pub fn operator(&self, suppression: &Suppression) -> Decision {
        let (label, suppress) = match suppression.action {
            OperatorAction::Suppress => (Label::Noise, true),
            OperatorAction::AlwaysAlert => (Label::Important, false),
        };
        self.decide(
            label.as_str(),
            None,
            &suppression.reason,
            Source::Operator,
            suppress,
            Some(&suppression.id),
        )
    }

    /// A classifier's verdict: noise suppresses when it is confident enough.
    pub fn verdict(&self, verdict: &StoredVerdict) -> Decision {
        let source = match verdict.source {
            crate::state::triage::VerdictSource::Llm => Source::Llm,
            crate::state::triage::VerdictSource::Builtin => Source::Builtin,
            crate::state::triage::VerdictSource::Learned => Source::Learned,
        };
        let mut decision = self.decide(
            verdict.verdict.as_str(),
            Some(verdict.confidence),
            &verdict.reason,
            source,
            verdict.verdict == Label::Noise && verdict.confidence >= self.min_confidence,
            None,
        );
        if let (Some(provider), Value::Object(triage)) =
            (&verdict.provider, &mut decision.annotation)
        {
            triage.insert(KeyString::from("provider"), Value::from(provider.as_str()));
            triage.insert(
                KeyString::from("model"),
                Value::from(verdict.model.as_str()),
            );
        }
        decision
    }

    /// Inherited from the close pattern `from`, whose decision says
    /// `reason`: noise, as it was.
    pub fn inherited(&self, from: &str, reason: &str) -> Decision {
        self.decide(
            Label::Noise.as_str(),
            None,
            &format!("inherited from pattern {from}: {reason}"),
            Source::Inherited,
            true,
            None,
        )
    }

    /// No verdict: `on_error` decides.
    pub fn error(&self, reason: &str) -> Decision {
        self.decide(
            UNKNOWN,
            None,
            reason,
            Source::Error,
            self.on_error == OnError::Suppress,
            None,
        )
    }

    fn decide(
        &self,
        verdict: &str,
        confidence: Option<f64>,
        reason: &str,
        source: Source,
        noise: bool,
        suppression_id: Option<&str>,
    ) -> Decision {
        let suppress = noise && self.mode == Mode::Enforce;
        let action = match (noise, self.mode) {
            (false, _) => "pass",
            (true, Mode::Enforce) => "suppress",
            (true, Mode::Shadow) => "would_suppress",
        };
        let mut triage = ObjectMap::new();
        triage.insert(KeyString::from("verdict"), Value::from(verdict));
        triage.insert(KeyString::from("reason"), Value::from(reason));
        triage.insert(KeyString::from("source"), Value::from(source.as_str()));
        triage.insert(KeyString::from("action"), Value::from(action));
        if let Some(confidence) = confidence {
            triage.insert(
                KeyString::from("confidence"),
                Value::from_f64_or_zero(confidence),
            );
        }
        if let Some(id) = suppression_id {
            triage.insert(KeyString::from("suppression_id"), Value::from(id));
        }
        Decision {
            annotation: Value::Object(triage),
            suppress,
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;
    use crate::state::triage::VerdictSource;

    fn policy(mode: Mode, on_error: OnError) -> Policy {
        Policy {
            mode,
            min_confidence: 0.7,
            on_error,
        }
    }

    fn verdict(label: Label, confidence: f64) -> StoredVerdict {
        StoredVerdict {
            verdict: label,
            confidence,
            reason: "r".into(),
            source: VerdictSource::Llm,
            model: "m".into(),
            provider: None,
            decided_at: Utc::now(),
            expires_at: Utc::now(),
        }
    }

    fn field(decision: &Decision, name: &str) -> Value {
        decision
            .annotation
            .as_object()
            .and_then(|o| o.get(name))
            .cloned()
            .unwrap_or(Value::Null)
    }

    #[test]
    fn confident_noise_suppresses_and_unsure_noise_passes() {
        let enforce = policy(Mode::Enforce, OnError::Pass);
        assert!(enforce.verdict(&verdict(Label::Noise, 0.9)).suppress);
        let unsure = enforce.verdict(&verdict(Label::Noise, 0.5));
        assert!(!unsure.suppress);
        assert_eq!(field(&unsure, "action"), Value::from("pass"));
        assert!(!enforce.verdict(&verdict(Label::Important, 1.0)).suppress);
    }

    #[test]
    fn shadow_mode_suppresses_nothing_but_says_what_it_would_do() {
        let shadow = policy(Mode::Shadow, OnError::Suppress);
        let noise = shadow.verdict(&verdict(Label::Noise, 0.9));
        assert!(!noise.suppress);
        assert_eq!(field(&noise, "action"), Value::from("would_suppress"));
        assert!(!shadow.error("outage").suppress);
    }

    #[test]
    fn errors_follow_on_error() {
        let open = policy(Mode::Enforce, OnError::Pass).error("timeout");
        assert!(!open.suppress);
        assert_eq!(field(&open, "verdict"), Value::from("unknown"));
        assert_eq!(field(&open, "source"), Value::from("error"));
        assert!(
            policy(Mode::Enforce, OnError::Suppress)
                .error("timeout")
                .suppress
        );
    }
}
