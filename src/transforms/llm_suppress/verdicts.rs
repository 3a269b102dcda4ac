//! The per-pattern verdict cache of one `llm_suppress` transform.
//!
//! Decisions are per pattern, never per line: a pattern is in one of three
//! states. `Known` holds a classifier's verdict until `verdict_ttl` after it
//! was decided (then the pattern is unknown again and is re-asked). `Asking`
//! means a question is in flight: its events wait (see `pending`), and no
//! second question is asked. `Failed` means the last question got no
//! verdict: until its backoff ends (30 s after the first failure, doubling
//! up to an hour) the pattern's events are decided by `on_error` at once,
//! without a question, so an outage costs one request per pattern per
//! backoff period, not one per line.
//!
//! Known verdicts are written through to the state store (`verdicts` table,
//! see `state::triage`) in one transaction per batch, and loaded at start,
//! so a restart asks nothing twice. Only verdicts of the configured
//! provider and model are loaded: after switching from `builtin` to an LLM,
//! or to another model, patterns are asked again (and their verdicts
//! overwritten). Errors are not stored: after a restart a failed pattern is
//! simply asked again.
//!
//! Memory is bounded: beyond [`MAX_ENTRIES`] patterns, the cache forgets a
//! tenth of them at once, expired verdicts and failures first, then the
//! oldest verdicts (never a question in flight, never an unsaved verdict).
//! A forgotten pattern that comes back is asked again.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::time::Instant;

use super::decision::{Decision, Policy};
use crate::state::triage::{StoredVerdict, load_verdicts, save_verdicts};
use crate::state::{StateError, StateStore};

/// The first wait after a failed question.
const FIRST_BACKOFF: Duration = Duration::from_secs(30);
/// The longest wait between questions about a failing pattern.
const MAX_BACKOFF: Duration = Duration::from_secs(3600);

/// The most patterns one transform keeps in memory (a few hundred bytes
/// each: tens of MiB at most).
pub const MAX_ENTRIES: usize = 100_000;

/// What is known about one pattern.
enum Entry {
    Known {
        verdict: StoredVerdict,
        decision: Decision,
    },
    Asking {
        failures: u32,
    },
    Failed {
        retry_at: Instant,
        failures: u32,
        decision: Decision,
    },
}

/// What to do with an event of a pattern.
pub enum Lookup<'a> {
    /// A live verdict decides.
    Known(&'a Decision),
    /// A question is in flight: hold the event.
    Asking,
    /// The last question failed and its backoff is running: decide by
    /// `on_error` now.
    BackingOff(&'a Decision),
    /// Nothing is known (or the verdict expired): ask.
    Unknown,
}

/// The verdicts of one transform.
pub struct Verdicts {
    component: String,
    policy: Policy,
    entries: HashMap<String, Entry>,
    /// Patterns whose verdict changed since the last save.
    dirty: HashSet<String>,
    /// The bound on `entries` ([`MAX_ENTRIES`]; smaller in tests).
    max_entries: usize,
}

impl Verdicts {
    /// The verdicts `component` stored with `model` (expired ones are kept
    /// until re-asked: they are overwritten then).
    pub fn load(
        store: &StateStore,
        component: &str,
        models: &[String],
        policy: Policy,
    ) -> Result<Self, StateError> {
        Self::load_at_most(store, component, models, policy, MAX_ENTRIES)
    }

    fn load_at_most(
        store: &StateStore,
        component: &str,
        models: &[String],
        policy: Policy,
        max_entries: usize,
    ) -> Result<Self, StateError> {
        let mut verdicts = Self::new(component, policy);
        verdicts.max_entries = max_entries;
        let saved = load_verdicts(store, Some(component))?;
        for saved in saved
            .into_iter()
            .filter(|s| models.contains(&s.verdict.model))
        {
            let decision = policy.verdict(&saved.verdict);
            verdicts.entries.insert(
                saved.pattern_id,
                Entry::Known {
                    verdict: saved.verdict,
                    decision,
                },
            );
        }
        while verdicts.entries.len() >= verdicts.max_entries {
            verdicts.make_room();
        }
        Ok(verdicts)
    }

    /// The live or stored verdict of `pattern`, if one is known.
    pub fn stored(&self, pattern: &str) -> Option<&StoredVerdict> {
        match self.entries.get(pattern)? {
            Entry::Known { verdict, .. } => Some(verdict),
            _ => None,
        }
    }

    /// Whether a question about `pattern` is in flight.
    pub fn is_asking(&self, pattern: &str) -> bool {
        matches!(self.entries.get(pattern), Some(Entry::Asking { .. }))
    }

    /// No verdicts yet.
    pub fn new(component: &str, policy: Policy) -> Self {
        Self {
            component: component.to_string(),
            policy,
            entries: HashMap::new(),
            dirty: HashSet::new(),
            max_entries: MAX_ENTRIES,
        }
    }

    /// Forgets a tenth of the patterns when the cache is full (see the
    /// module docs for which).
    fn make_room(&mut self) {
        if self.entries.len() < self.max_entries {
            return;
        }
        let keep = self.max_entries - self.max_entries / 10 - 1;
        let now = Utc::now();
        let mut candidates: Vec<(DateTime<Utc>, &String)> = self
            .entries
            .iter()
            .filter(|(pattern, _)| !self.dirty.contains(*pattern))
            .filter_map(|(pattern, entry)| match entry {
                Entry::Known { verdict, .. } if verdict.is_live(now) => {
                    Some((verdict.decided_at, pattern))
                }
                Entry::Known { .. } | Entry::Failed { .. } => {
                    Some((DateTime::<Utc>::MIN_UTC, pattern))
                }
                Entry::Asking { .. } => None,
            })
            .collect();
        candidates.sort_unstable();
        let forget: Vec<String> = candidates
            .into_iter()
            .take(self.entries.len().saturating_sub(keep))
            .map(|(_, pattern)| pattern.clone())
            .collect();
        for pattern in &forget {
            self.entries.remove(pattern);
        }
        tracing::debug!(
            component = %self.component,
            forgotten = forget.len(),
            "verdict cache full; forgot the oldest verdicts"
        );
    }

    /// How many patterns have a verdict (live or expired).
    pub fn known(&self) -> usize {
        self.entries
            .values()
            .filter(|e| matches!(e, Entry::Known { .. }))
            .count()
    }

    /// What to do with an event of `pattern` (`wall` for verdict expiry,
    /// `now` for backoffs).
    pub fn lookup(&self, pattern: &str, wall: DateTime<Utc>, now: Instant) -> Lookup<'_> {
        match self.entries.get(pattern) {
            Some(Entry::Known { verdict, decision }) if verdict.is_live(wall) => {
                Lookup::Known(decision)
            }
            Some(Entry::Asking { .. }) => Lookup::Asking,
            Some(Entry::Failed {
                retry_at, decision, ..
            }) if *retry_at > now => Lookup::BackingOff(decision),
            _ => Lookup::Unknown,
        }
    }

    /// Records that a question about `pattern` is on its way.
    pub fn asking(&mut self, pattern: &str) {
        let failures = match self.entries.get(pattern) {
            Some(Entry::Failed { failures, .. } | Entry::Asking { failures }) => *failures,
            Some(Entry::Known { .. }) => 0,
            None => {
                self.make_room();
                0
            }
        };
        self.entries
            .insert(pattern.to_string(), Entry::Asking { failures });
    }

    /// Stores a verdict; returns the decision it makes.
    pub fn decided(&mut self, pattern: &str, verdict: StoredVerdict) -> Decision {
        if !self.entries.contains_key(pattern) {
            self.make_room();
        }
        let decision = self.policy.verdict(&verdict);
        self.dirty.insert(pattern.to_string());
        self.entries.insert(
            pattern.to_string(),
            Entry::Known {
                verdict,
                decision: decision.clone(),
            },
        );
        decision
    }

    /// Records a failed question; returns the `on_error` decision that
    /// holds until the backoff ends.
    pub fn failed(&mut self, pattern: &str, reason: &str, now: Instant) -> Decision {
        let failures = match self.entries.get(pattern) {
            Some(Entry::Asking { failures } | Entry::Failed { failures, .. }) => failures + 1,
            Some(Entry::Known { .. }) => 1,
            None => {
                self.make_room();
                1
            }
        };
        let backoff = FIRST_BACKOFF
            .saturating_mul(1 << (failures - 1).min(16))
            .min(MAX_BACKOFF);
        let decision = self.policy.error(reason);
        self.entries.insert(
            pattern.to_string(),
            Entry::Failed {
                retry_at: now + backoff,
                failures,
                decision: decision.clone(),
            },
        );
        decision
    }

    /// Writes the verdicts decided since the last save, in one transaction.
    pub fn save(&mut self, store: &StateStore) -> Result<(), StateError> {
        if self.dirty.is_empty() {
            return Ok(());
        }
        let put: Vec<(&str, &StoredVerdict)> = self
            .dirty
            .iter()
            .filter_map(|pattern| match self.entries.get_key_value(pattern) {
                Some((key, Entry::Known { verdict, .. })) => Some((key.as_str(), verdict)),
                _ => None,
            })
            .collect();
        save_verdicts(store, &self.component, put, [])?;
        self.dirty.clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::triage::Label;
    use crate::state::triage::VerdictSource;
    use crate::transforms::llm_suppress::decision::{Mode, OnError};

    fn policy() -> Policy {
        Policy {
            mode: Mode::Enforce,
            min_confidence: 0.7,
            on_error: OnError::Pass,
        }
    }

    fn noise(decided_at: DateTime<Utc>, ttl: chrono::Duration) -> StoredVerdict {
        StoredVerdict {
            verdict: Label::Noise,
            confidence: 0.9,
            reason: "health check".into(),
            source: VerdictSource::Llm,
            model: "openai/m".into(),
            provider: None,
            decided_at,
            expires_at: decided_at + ttl,
        }
    }

    #[test]
    fn verdicts_expire_after_their_ttl_and_are_asked_again() {
        let mut verdicts = Verdicts::new("t", policy());
        let (wall, now) = (Utc::now(), Instant::now());
        verdicts.asking("p");
        assert!(matches!(verdicts.lookup("p", wall, now), Lookup::Asking));
        verdicts.decided("p", noise(wall, chrono::Duration::days(7)));
        assert!(matches!(verdicts.lookup("p", wall, now), Lookup::Known(d) if d.suppresses()));
        let later = wall + chrono::Duration::days(7);
        assert!(matches!(verdicts.lookup("p", later, now), Lookup::Unknown));
    }

    #[test]
    fn failures_back_off_exponentially_up_to_an_hour() {
        let mut verdicts = Verdicts::new("t", policy());
        let (wall, start) = (Utc::now(), Instant::now());
        let mut waits = Vec::new();
        for _ in 0..9 {
            verdicts.asking("p");
            verdicts.failed("p", "outage", start);
            let mut wait = Duration::ZERO;
            while matches!(
                verdicts.lookup("p", wall, start + wait),
                Lookup::BackingOff(_)
            ) {
                wait += Duration::from_secs(1);
            }
            waits.push(wait.as_secs());
        }
        assert_eq!(waits, [30, 60, 120, 240, 480, 960, 1920, 3600, 3600]);
        verdicts.asking("p");
        verdicts.decided("p", noise(wall, chrono::Duration::days(1)));
        verdicts.asking("p");
        verdicts.failed("p", "outage", start);
        assert!(
            matches!(
                verdicts.lookup("p", wall, start + Duration::from_secs(31)),
                Lookup::Unknown
            ),
            "a verdict in between resets the backoff"
        );
    }

    #[test]
    fn a_full_cache_forgets_expired_then_oldest_verdicts_but_not_questions_in_flight() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        let mut verdicts = Verdicts::new("t", policy());
        verdicts.max_entries = 20;
        let now = Utc::now();
        verdicts.asking("in-flight");
        verdicts.decided(
            "expired",
            noise(now - chrono::Duration::days(8), chrono::Duration::days(7)),
        );
        for i in 0..17 {
            let age = chrono::Duration::minutes(100 - i);
            verdicts.decided(
                &format!("p{i}"),
                noise(now - age, chrono::Duration::days(7)),
            );
        }
        verdicts.save(&store).unwrap();
        assert_eq!(verdicts.entries.len(), 19);
        // Unsaved verdicts are never forgotten: the next one overflows only
        // after a save.
        verdicts.decided("p17", noise(now, chrono::Duration::days(7)));
        verdicts.save(&store).unwrap();
        assert_eq!(verdicts.entries.len(), 20);
        verdicts.decided("newest", noise(now, chrono::Duration::days(7)));
        let kept: HashSet<&str> = verdicts.entries.keys().map(String::as_str).collect();
        assert!(
            kept.len() <= 18,
            "a tenth forgotten at once: {}",
            kept.len()
        );
        assert!(kept.contains("in-flight"), "a question in flight is kept");
        assert!(kept.contains("newest") && kept.contains("p17"));
        assert!(!kept.contains("expired"), "expired verdicts go first");
        assert!(
            !kept.contains("p0") && !kept.contains("p1"),
            "then the oldest"
        );
        assert!(matches!(
            verdicts.lookup("p0", now, Instant::now()),
            Lookup::Unknown
        ));

        // Loading a store larger than the cache keeps the newest.
        let loaded =
            Verdicts::load_at_most(&store, "t", &["openai/m".to_string()], policy(), 10).unwrap();
        assert!(loaded.entries.len() < 10);
        assert!(loaded.entries.contains_key("p17"));
        assert!(!loaded.entries.contains_key("p0"));
    }

    #[test]
    fn saved_verdicts_load_back_for_the_same_model_only() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        let mut verdicts = Verdicts::new("t", policy());
        verdicts.decided("p", noise(Utc::now(), chrono::Duration::days(7)));
        verdicts.save(&store).unwrap();
        let loaded = Verdicts::load(&store, "t", &["openai/m".to_string()], policy()).unwrap();
        assert_eq!(loaded.known(), 1);
        let other = Verdicts::load(&store, "other", &["openai/m".to_string()], policy()).unwrap();
        assert_eq!(other.known(), 0, "another transform's verdicts are its own");
        let switched =
            Verdicts::load(&store, "t", &["anthropic/claude".to_string()], policy()).unwrap();
        assert_eq!(switched.known(), 0, "another model asks again");
    }
}
