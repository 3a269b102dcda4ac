//! Triage decisions in the state store: the `llm_suppress` transforms'
//! verdicts and the operators' suppressions.
//!
//! - `verdicts/<component id>/<pattern id>`: one [`StoredVerdict`] per
//!   pattern and transform (two transforms may use different models or
//!   rules, so each keeps its own). Each carries its expiry (`verdict_ttl`);
//!   an expired verdict is re-asked and overwritten.
//! - `suppressions/<suppression id>`: one [`Suppression`] per suppressed
//!   pattern, shared by every transform of the process (an operator
//!   silences a pattern, not a component).
//!
//! Values are JSON, like the rest of the store, so `redb` files stay
//! inspectable and fields can be added with `#[serde(default)]`. Every
//! write is one transaction: a `kill -9` leaves the previous or the new
//! decision, never a torn one.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::state::{StateError, StateStore};

/// The two verdicts a classifier may give.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Label {
    /// Expected, routine: alerts for it only distract.
    Noise,
    /// May need a human.
    Important,
}

impl Label {
    /// `noise` or `important`, as in events and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Noise => "noise",
            Self::Important => "important",
        }
    }
}

/// The table of verdicts.
pub const VERDICTS: &str = "verdicts";
/// The table of suppressions.
pub const SUPPRESSIONS: &str = "suppressions";

/// Who or what decided a verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VerdictSource {
    /// A language model's answer.
    Llm,
    /// The built-in heuristic classifier.
    Builtin,
    /// Seen during the learning period (`learn_for`): routine.
    Learned,
}

impl VerdictSource {
    /// `llm`, `builtin` or `learned`, as in `.triage.source`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Llm => "llm",
            Self::Builtin => "builtin",
            Self::Learned => "learned",
        }
    }
}

/// A classifier's verdict on one pattern.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredVerdict {
    /// Noise or important.
    pub verdict: Label,
    /// How sure the classifier was, 0 to 1.
    pub confidence: f64,
    /// Its one-sentence reason.
    pub reason: String,
    /// Who decided.
    pub source: VerdictSource,
    /// The provider and model that answered (`openai/llama3.2`, `builtin`).
    pub model: String,
    /// The name, in its transform's `providers` chain, of the provider
    /// that answered (unset for verdicts of rules and of the learning
    /// period, and for those stored before chains existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// When it was decided.
    pub decided_at: DateTime<Utc>,
    /// When it must be asked again.
    pub expires_at: DateTime<Utc>,
}

impl StoredVerdict {
    /// Whether it still holds at `now`.
    pub fn is_live(&self, now: DateTime<Utc>) -> bool {
        self.expires_at > now
    }
}

/// A verdict as saved, with its place.
#[derive(Debug, Clone, PartialEq)]
pub struct SavedVerdict {
    /// The transform that decided it.
    pub component: String,
    /// The pattern it is about.
    pub pattern_id: String,
    /// The verdict.
    pub verdict: StoredVerdict,
}

fn verdict_key(component: &str, pattern_id: &str) -> String {
    format!("{component}/{pattern_id}")
}

/// Every verdict of `component`, or of every transform when `None`.
/// Unreadable entries (a format from a newer howl) are skipped with a
/// warning rather than failing the start: a verdict can always be re-asked.
pub fn load_verdicts(
    store: &StateStore,
    component: Option<&str>,
) -> Result<Vec<SavedVerdict>, StateError> {
    let prefix = component.map(|c| format!("{c}/")).unwrap_or_default();
    let mut verdicts = Vec::new();
    for (key, bytes) in store.scan(VERDICTS, &prefix)? {
        let Some((component, pattern_id)) = key.rsplit_once('/') else {
            continue;
        };
        match serde_json::from_slice(&bytes) {
            Ok(verdict) => verdicts.push(SavedVerdict {
                component: component.to_string(),
                pattern_id: pattern_id.to_string(),
                verdict,
            }),
            Err(error) => tracing::warn!("skipping unreadable verdict `{key}`: {error}"),
        }
    }
    Ok(verdicts)
}

/// Where verdicts of providers asked only to compare (`compare`) are kept:
/// `<component id>/<pattern id>/<provider>`.
pub const COMPARISONS: &str = "verdict_comparisons";

/// What a provider asked only to compare answered, beside the verdict that
/// decided: for rolling out a model, never for deciding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// The compared provider's name in the chain.
    pub provider: String,
    /// Its `kind/model`.
    pub model: String,
    /// Its verdict; `None` when it gave none (then `reason` says why).
    pub verdict: Option<Label>,
    /// Its confidence.
    pub confidence: Option<f64>,
    /// Its reason, or why it gave no verdict.
    pub reason: String,
    /// The deciding verdict.
    pub decided: Label,
    /// Who decided (the deciding provider's name).
    pub decided_by: Option<String>,
    /// The deciding verdict's reason.
    pub decided_reason: String,
    /// When the comparison was made.
    pub at: DateTime<Utc>,
}

impl Comparison {
    /// Whether both verdicts agree (`false` when the compared provider gave
    /// none).
    pub fn agrees(&self) -> bool {
        self.verdict == Some(self.decided)
    }
}

/// A comparison as saved, with its place.
#[derive(Debug, Clone, PartialEq)]
pub struct SavedComparison {
    /// The `llm_suppress` transform.
    pub component: String,
    /// The pattern.
    pub pattern_id: String,
    /// What was compared.
    pub comparison: Comparison,
}

/// Saves comparisons of `component` (`(pattern id, comparison)`), one
/// transaction, replacing a provider's earlier one for the same pattern.
pub fn save_comparisons(
    store: &StateStore,
    component: &str,
    comparisons: &[(String, Comparison)],
) -> Result<(), StateError> {
    let mut put = Vec::with_capacity(comparisons.len());
    for (pattern, comparison) in comparisons {
        let bytes =
            serde_json::to_vec(comparison).map_err(|e| StateError::Storage(e.to_string()))?;
        put.push((
            format!("{component}/{pattern}/{}", comparison.provider),
            bytes,
        ));
    }
    store.write(COMPARISONS, &put, &[])
}

/// The comparisons kept, of one transform or of all.
pub fn load_comparisons(
    store: &StateStore,
    component: Option<&str>,
) -> Result<Vec<SavedComparison>, StateError> {
    let prefix = component.map(|c| format!("{c}/")).unwrap_or_default();
    let mut saved = Vec::new();
    for (key, bytes) in store.scan(COMPARISONS, &prefix)? {
        let mut parts = key.splitn(3, '/');
        let (Some(component), Some(pattern_id)) = (parts.next(), parts.next()) else {
            continue;
        };
        match serde_json::from_slice(&bytes) {
            Ok(comparison) => saved.push(SavedComparison {
                component: component.to_string(),
                pattern_id: pattern_id.to_string(),
                comparison,
            }),
            Err(error) => tracing::warn!("skipping unreadable comparison `{key}`: {error}"),
        }
    }
    Ok(saved)
}

/// Saves and deletes verdicts of `component` in one transaction.
pub fn save_verdicts<'a>(
    store: &StateStore,
    component: &str,
    put: impl IntoIterator<Item = (&'a str, &'a StoredVerdict)>,
    delete: impl IntoIterator<Item = &'a str>,
) -> Result<(), StateError> {
    let put = put
        .into_iter()
        .map(|(pattern_id, verdict)| {
            let bytes =
                serde_json::to_vec(verdict).map_err(|e| StateError::Storage(e.to_string()))?;
            Ok((verdict_key(component, pattern_id), bytes))
        })
        .collect::<Result<Vec<_>, StateError>>()?;
    let delete: Vec<String> = delete
        .into_iter()
        .map(|pattern_id| verdict_key(component, pattern_id))
        .collect();
    store.write(VERDICTS, &put, &delete)
}

/// What an operator decided about a pattern.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OperatorAction {
    /// It is noise: suppress its events (and mirror it as silences).
    #[default]
    Suppress,
    /// It always matters: pass its events, whatever a classifier says.
    AlwaysAlert,
}

impl OperatorAction {
    /// Its name, as written in the API and in `.triage`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Suppress => "suppress",
            Self::AlwaysAlert => "always_alert",
        }
    }
}

/// An operator's decision about a pattern: that it is noise (a
/// suppression, the usual case, hence the name) or that it always alerts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Suppression {
    /// Its id (for `DELETE /api/v1/suppressions/{id}`).
    pub id: String,
    /// The pattern it is about.
    pub pattern_id: String,
    /// What was decided (records written before it existed suppress).
    #[serde(default)]
    pub action: OperatorAction,
    /// Why, in the operator's words.
    pub reason: String,
    /// Who decided.
    pub created_by: String,
    /// When.
    pub created_at: DateTime<Utc>,
    /// When it ends by itself; `None` = until deleted.
    pub expires_at: Option<DateTime<Utc>>,
    /// The Alertmanager silences that mirror it (made by this instance).
    #[serde(default)]
    pub silences: Vec<SilenceRef>,
    /// Made on another instance of the fleet and applied from the shared
    /// bucket (`[state.shared.nats]`): its silences are that instance's to
    /// keep, not this one's.
    #[serde(default, skip_serializing_if = "is_false")]
    pub remote: bool,
}

fn is_false(value: &bool) -> bool {
    !value
}

impl Suppression {
    /// Whether it is in force at `now`.
    pub fn is_live(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_none_or(|end| end > now)
    }
}

/// A silence created in an Alertmanager for a suppression.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SilenceRef {
    /// The Alertmanager's base URL.
    pub url: String,
    /// The silence id it returned.
    pub id: String,
    /// When the silence ends (unknown for silences stored by older versions,
    /// which are then renewed once).
    #[serde(default)]
    pub ends_at: Option<DateTime<Utc>>,
}

/// Every saved suppression (unreadable ones skipped with a warning).
pub fn load_suppressions(store: &StateStore) -> Result<Vec<Suppression>, StateError> {
    let mut suppressions = Vec::new();
    for (key, bytes) in store.scan(SUPPRESSIONS, "")? {
        match serde_json::from_slice(&bytes) {
            Ok(suppression) => suppressions.push(suppression),
            Err(error) => tracing::warn!("skipping unreadable suppression `{key}`: {error}"),
        }
    }
    Ok(suppressions)
}

/// Saves `put` and deletes the suppressions with ids in `delete`, in one
/// transaction.
pub fn save_suppressions(
    store: &StateStore,
    put: &[&Suppression],
    delete: &[String],
) -> Result<(), StateError> {
    let put = put
        .iter()
        .map(|s| {
            let bytes = serde_json::to_vec(s).map_err(|e| StateError::Storage(e.to_string()))?;
            Ok((s.id.clone(), bytes))
        })
        .collect::<Result<Vec<_>, StateError>>()?;
    store.write(SUPPRESSIONS, &put, delete)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(label: Label) -> StoredVerdict {
        let now = Utc::now();
        StoredVerdict {
            verdict: label,
            confidence: 0.9,
            reason: "health check".into(),
            source: VerdictSource::Llm,
            model: "openai/llama3.2".into(),
            provider: None,
            decided_at: now,
            expires_at: now + chrono::Duration::days(7),
        }
    }

    #[test]
    fn verdicts_are_kept_per_component_and_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = StateStore::open(dir.path()).unwrap();
            let noise = verdict(Label::Noise);
            let important = verdict(Label::Important);
            save_verdicts(&store, "a", [("p1", &noise), ("p2", &important)], []).unwrap();
            save_verdicts(&store, "b", [("p1", &important)], []).unwrap();
            save_verdicts(&store, "a", [], ["p2"]).unwrap();
        }
        let store = StateStore::open(dir.path()).unwrap();
        let a = load_verdicts(&store, Some("a")).unwrap();
        assert_eq!(a.len(), 1);
        assert_eq!(
            (a[0].pattern_id.as_str(), a[0].verdict.verdict),
            ("p1", Label::Noise)
        );
        assert_eq!(load_verdicts(&store, None).unwrap().len(), 2);
    }

    #[test]
    fn suppressions_round_trip_and_expire() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        let now = Utc::now();
        let suppression = Suppression {
            action: OperatorAction::Suppress,
            id: "s1".into(),
            pattern_id: "0123456789abcdef".into(),
            reason: "known noise".into(),
            created_by: "ops".into(),
            created_at: now,
            expires_at: Some(now + chrono::Duration::hours(1)),
            silences: vec![SilenceRef {
                url: "http://127.0.0.1:9093".into(),
                id: "abc".into(),
                ends_at: Some(now + chrono::Duration::hours(1)),
            }],
            remote: false,
        };
        save_suppressions(&store, &[&suppression], &[]).unwrap();
        let loaded = load_suppressions(&store).unwrap();
        assert_eq!(loaded, std::slice::from_ref(&suppression));
        assert!(loaded[0].is_live(now));
        assert!(!loaded[0].is_live(now + chrono::Duration::hours(2)));
        save_suppressions(&store, &[], &["s1".to_string()]).unwrap();
        assert!(load_suppressions(&store).unwrap().is_empty());
    }
}
