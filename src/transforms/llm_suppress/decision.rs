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
    /// Enforce the classifiers' verdicts for `canary_percent` of the
    /// patterns (always the same ones: chosen by a stable hash of the
    /// pattern id), and run the rest in shadow; operators' suppressions and
    /// `on_error` are enforced for all.
    Canary,
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

/// How decisions are framed for a pattern when it differs from the
/// transform's own policy: a `policy` rule (its name, its
/// `min_confidence`, its `mode`), or the transform's canary.
#[derive(Debug, Clone, PartialEq)]
pub struct Framing {
    /// The rule's name (`.triage.policy`); `None` for the transform's own.
    pub name: Option<String>,
    /// `min_confidence`.
    pub min_confidence: f64,
    /// `mode`.
    pub mode: Mode,
    /// `canary_percent`, 0 to 100.
    pub canary_percent: f64,
}

/// Whether `pattern` is among the `percent` of patterns a canary enforces:
/// a stable hash (FNV-1a) of its id, so the same patterns stay in the
/// canary across restarts and instances.
pub fn in_canary(pattern: &str, percent: f64) -> bool {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in pattern.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    // Basis points: 0.01 % steps.
    ((hash % 10_000) as f64) < percent * 100.0
}

impl Framing {
    /// `base` (made by the transform's policy) as this framing decides it:
    /// a classifier's verdict is judged against this `min_confidence`, the
    /// mode says whether noise is suppressed, and the annotation names the
    /// rule (`policy`) and the canary (`canary`: whether this pattern's
    /// verdicts are enforced).
    pub fn reframe(&self, base: &Decision, pattern: &str) -> Decision {
        let Value::Object(mut triage) = base.annotation.clone() else {
            return base.clone();
        };
        let text = |key: &str| {
            triage
                .get(key)
                .map(|value| value.to_string_lossy().into_owned())
                .unwrap_or_default()
        };
        let source = text("source");
        // What a classifier decided, or inherited from what one decided:
        // judged by this framing's confidence and canary.
        let by_classifier = matches!(source.as_str(), "llm" | "builtin" | "learned" | "inherited");
        let noise = if by_classifier && triage.contains_key("confidence") {
            let confidence = match triage.get("confidence") {
                Some(Value::Float(f)) => f.into_inner(),
                Some(Value::Integer(i)) => *i as f64,
                _ => 0.0,
            };
            text("verdict") == Label::Noise.as_str() && confidence >= self.min_confidence
        } else {
            text("action") != "pass"
        };
        let enforce = match self.mode {
            Mode::Enforce => true,
            Mode::Shadow => false,
            Mode::Canary => {
                let canary = in_canary(pattern, self.canary_percent);
                triage.insert(KeyString::from("canary"), Value::from(canary));
                canary || !by_classifier
            }
        };
        let action = match (noise, enforce) {
            (false, _) => "pass",
            (true, true) => "suppress",
            (true, false) => "would_suppress",
        };
        triage.insert(KeyString::from("action"), Value::from(action));
        if let Some(name) = &self.name {
            triage.insert(KeyString::from("policy"), Value::from(name.as_str()));
        }
        Decision {
            annotation: Value::Object(triage),
            suppress: noise && enforce,
        }
    }
}

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

    /// The `.triage` object it puts on events.
    pub fn annotation(&self) -> &Value {
        &self.annotation
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
        // A canary enforces operators, rules and `on_error` as usual; a
        // classifier's noise waits for the canary's framing (`Framing`),
        // which enforces it for the canary's share of patterns.
        let by_classifier = matches!(
            source,
            Source::Llm | Source::Builtin | Source::Learned | Source::Inherited
        );
        let enforce = match self.mode {
            Mode::Enforce => true,
            Mode::Shadow => false,
            Mode::Canary => !by_classifier,
        };
        let suppress = noise && enforce;
        let action = match (noise, enforce) {
            (false, _) => "pass",
            (true, true) => "suppress",
            (true, false) => "would_suppress",
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

#[cfg(test)]
mod framing_tests {
    use chrono::Utc;

    use super::*;
    use crate::state::triage::VerdictSource;

    #[test]
    fn a_stricter_rule_lets_a_less_sure_noise_verdict_pass() {
        let policy = Policy {
            mode: Mode::Enforce,
            min_confidence: 0.7,
            on_error: OnError::Pass,
        };
        let stored = StoredVerdict {
            verdict: Label::Noise,
            confidence: 0.9,
            reason: "r".into(),
            source: VerdictSource::Llm,
            model: "m".into(),
            provider: None,
            decided_at: Utc::now(),
            expires_at: Utc::now(),
        };
        let base = policy.verdict(&stored);
        assert!(base.suppresses());
        let strict = Framing {
            name: Some("strict".into()),
            min_confidence: 0.95,
            mode: Mode::Enforce,
            canary_percent: 10.0,
        };
        let framed = strict.reframe(&base, "p");
        assert!(!framed.suppresses(), "{:?}", framed.annotation());
    }
}
