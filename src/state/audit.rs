//! The audit trail: every decision about a pattern, with who made it,
//! when, why and from where (the API, a chat button, a classifier, a
//! rule), kept in the state store so it survives restarts, and bounded:
//! the newest [`MAX_RECORDS`] of each kind are kept, the oldest dropped as
//! new ones come. The two kinds are people's decisions and automatic ones
//! (verdicts, rules): a storm of new patterns, each with its verdict, must
//! not push out who suppressed what.
//!
//! Records are keyed by their kind and a sequence number (zero-padded, so
//! the store's key order is their order); one [`Audit`] per process hands
//! out the numbers.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{StateError, StateHandle};

/// The table of records.
const TABLE: &str = "audit";

/// The most records kept.
pub const MAX_RECORDS: u64 = 10_000;

/// The most characters of one text of a record.
pub const MAX_TEXT_CHARS: usize = 512;

/// One decision, as recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// When.
    pub at: DateTime<Utc>,
    /// What: `suppress`, `always_alert`, `unsuppress`, `verdict`, `rule`,
    /// `press_refused`.
    pub action: String,
    /// The pattern it is about (empty when none).
    pub pattern_id: String,
    /// Who: a person (`telegram @alice (id 7)`, the API's `created_by`),
    /// a model (`openai/llama3.2`), `rules`.
    pub who: String,
    /// Why, in their words.
    pub why: String,
    /// From where: `api`, `telegram`, `slack`, or the component
    /// (`transforms.triage`).
    pub via: String,
    /// More, by action: the decision's id and ttl, a verdict's label and
    /// confidence.
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub detail: serde_json::Value,
}

impl AuditRecord {
    /// A record made now.
    /// Texts are cut to [`MAX_TEXT_CHARS`], so the trail stays bounded in
    /// bytes as well as in records, whatever the data holds.
    pub fn now(action: &str, pattern_id: &str, who: &str, why: &str, via: &str) -> Self {
        let cut = |text: &str| text.chars().take(MAX_TEXT_CHARS).collect();
        Self {
            at: Utc::now(),
            action: cut(action),
            pattern_id: cut(pattern_id),
            who: cut(who),
            why: cut(why),
            via: cut(via),
            detail: serde_json::Value::Null,
        }
    }

    /// With `detail`.
    pub fn with_detail(mut self, detail: serde_json::Value) -> Self {
        self.detail = detail;
        self
    }
}

/// The process's audit trail (cheap to clone).
#[derive(Clone, Debug)]
pub struct Audit {
    state: StateHandle,
    /// The next sequence number of each kind (people's, automatic), once
    /// known.
    next: Arc<Mutex<Option<[u64; 2]>>>,
}

/// The key prefixes of the two kinds.
const KINDS: [&str; 2] = ["p/", "a/"];

/// Which kind a record is: 1 for automatic decisions, 0 for people's.
fn kind(record: &AuditRecord) -> usize {
    usize::from(matches!(record.action.as_str(), "verdict" | "rule"))
}

fn key(kind: usize, sequence: u64) -> String {
    format!("{}{sequence:020}", KINDS[kind])
}

impl Audit {
    /// The trail kept in `state` (nothing is read until first use).
    pub fn new(state: StateHandle) -> Self {
        Self {
            state,
            next: Arc::new(Mutex::new(None)),
        }
    }

    /// Records decisions, in order, in one transaction; the oldest records
    /// beyond [`MAX_RECORDS`] go.
    pub fn record(&self, records: &[AuditRecord]) -> Result<(), StateError> {
        if records.is_empty() {
            return Ok(());
        }
        let store = self.state.store()?;
        let mut next = self.next.lock().unwrap_or_else(|p| p.into_inner());
        let mut sequences = match *next {
            Some(next) => next,
            None => {
                let mut found = [0; 2];
                for (kind, prefix) in KINDS.iter().enumerate() {
                    found[kind] = store
                        .scan(TABLE, prefix)?
                        .last()
                        .and_then(|(key, _)| key[prefix.len()..].parse::<u64>().ok())
                        .map_or(0, |last| last + 1);
                }
                found
            }
        };
        let mut put = Vec::with_capacity(records.len());
        let mut delete = Vec::new();
        for record in records {
            let kind = kind(record);
            let sequence = sequences[kind];
            sequences[kind] += 1;
            let bytes =
                serde_json::to_vec(record).map_err(|e| StateError::Storage(e.to_string()))?;
            put.push((key(kind, sequence), bytes));
            if let Some(old) = sequence.checked_sub(MAX_RECORDS) {
                delete.push(key(kind, old));
            }
        }
        store.write(TABLE, &put, &delete)?;
        *next = Some(sequences);
        Ok(())
    }

    /// The newest records first (both kinds, by time), at most `limit`,
    /// only about `pattern_id` when given. Each kind is read from its
    /// newest record back, stopping at `limit`.
    pub fn list(
        &self,
        limit: usize,
        pattern_id: Option<&str>,
    ) -> Result<Vec<AuditRecord>, StateError> {
        let store = self.state.store()?;
        let mut records: Vec<AuditRecord> = Vec::new();
        for prefix in KINDS {
            let entries = store.scan_rev(TABLE, prefix, limit, |bytes| {
                pattern_id.is_none_or(|p| {
                    serde_json::from_slice::<AuditRecord>(bytes).is_ok_and(|r| r.pattern_id == p)
                })
            })?;
            records.extend(
                entries
                    .into_iter()
                    .filter_map(|(_, bytes)| serde_json::from_slice(&bytes).ok()),
            );
        }
        // Stable: records of one time keep their order (newest first).
        records.sort_by_key(|record| std::cmp::Reverse(record.at));
        records.truncate(limit);
        Ok(records)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_survive_a_restart_newest_first_and_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateHandle::new(dir.path().to_path_buf());
        let audit = Audit::new(state.clone());
        audit
            .record(&[
                AuditRecord::now("suppress", "p1", "@alice", "noise", "telegram"),
                AuditRecord::now("verdict", "p2", "builtin", "health check", "transforms.t"),
            ])
            .unwrap();
        // Another handle on the same store, as after a restart.
        let again = Audit::new(state.clone());
        again
            .record(&[AuditRecord::now("unsuppress", "p1", "api", "", "api")])
            .unwrap();
        let all = again.list(10, None).unwrap();
        let actions: Vec<&str> = all.iter().map(|r| r.action.as_str()).collect();
        assert_eq!(actions, ["unsuppress", "verdict", "suppress"]);
        assert_eq!(again.list(10, Some("p1")).unwrap().len(), 2);
        assert_eq!(again.list(1, None).unwrap().len(), 1);

        let many: Vec<AuditRecord> = (0..MAX_RECORDS)
            .map(|i| AuditRecord::now("verdict", &format!("q{i}"), "builtin", "", "t"))
            .collect();
        again.record(&many).unwrap();
        let kept = again.list(usize::MAX, None).unwrap();
        let verdicts: Vec<&AuditRecord> = kept.iter().filter(|r| r.action == "verdict").collect();
        assert_eq!(verdicts.len() as u64, MAX_RECORDS, "bounded");
        assert!(
            verdicts.iter().all(|r| r.pattern_id.starts_with('q')),
            "the oldest verdict went first"
        );
        let people: Vec<&str> = kept
            .iter()
            .filter(|r| r.action != "verdict")
            .map(|r| r.action.as_str())
            .collect();
        assert_eq!(
            people,
            ["unsuppress", "suppress"],
            "a storm of verdicts keeps people's decisions"
        );
    }
}
