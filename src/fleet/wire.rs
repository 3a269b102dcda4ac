//! What the bucket holds: its keys, and the values written under them.
//!
//! Keys (every free text turned into one token by `nats::kv::key_token`):
//!
//! - `supp.<pattern>`: an operator's decision (suppress or always alert),
//!   or its tombstone;
//! - `verdict.<component>.<pattern>`: the verdict transform `<component>`
//!   got for the pattern;
//! - `ask.<component>.<pattern>`: the claim of the instance asking the
//!   classifier about the pattern ([`ClaimValue`]); written with `create`,
//!   so the first writer wins, and renewed while its owner asks (a claim
//!   another instance saw unchanged for a lease is taken over with a
//!   compare-and-set);
//! - in the audit bucket: `audit.<time-ordered id>`, one record each.
//!
//! Decisions and verdicts are wrapped in an [`Envelope`] carrying when the
//! change was made and by which instance: [`Stamp`]s order changes (the
//! last write wins, by timestamp; on an exact tie the greater instance id).
//! A deletion is an envelope without a value, a *tombstone*, because a KV
//! delete marker carries no time of ours to compare.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::nats::kv::{from_key_token, key_token};

/// The family of `supp.*` keys.
pub const SUPPRESSION: &str = "supp";
/// The family of `verdict.*` keys.
pub const VERDICT: &str = "verdict";
/// The family of `ask.*` keys.
pub const ASK: &str = "ask";
/// The family of `audit.*` keys (audit bucket).
pub const AUDIT: &str = "audit";

/// When a change was made, and where: what "later" means.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Stamp {
    /// When (the writing instance's clock).
    pub at: DateTime<Utc>,
    /// The writing instance's id (settles a tie).
    pub origin: String,
}

/// A value as written in the bucket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope<T> {
    /// When and where it was written.
    #[serde(flatten)]
    pub stamp: Stamp,
    /// The value; `None` is a tombstone (deleted at `stamp.at`).
    pub value: Option<T>,
}

/// The value of an `ask.*` key: who asks, and until when its lease holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClaimValue {
    /// The asking instance.
    pub owner: String,
    /// When the lease runs out unless renewed, by the owner's clock. Other
    /// instances do not go by it (clocks differ: they time renewals by
    /// their own); it dates the claim for the cleanup.
    pub deadline: DateTime<Utc>,
}

/// Whether a change stamped `incoming` replaces one stamped `current`
/// (the conflict rule: the last write wins, by timestamp).
pub fn wins(incoming: &Stamp, current: &Stamp) -> bool {
    incoming > current
}

/// How far ahead of this instance's clock a stamp may be and still be
/// believed: clocks of a fleet drift by seconds, not by an hour. A stamp
/// further ahead (a clock set years off, or a value written by hand) would
/// otherwise outrank every change made until then.
pub const MAX_CLOCK_SKEW: chrono::TimeDelta = chrono::TimeDelta::hours(1);

/// Whether `stamp` is too far in the future to be believed at `now`
/// ([`MAX_CLOCK_SKEW`]): such a change is not applied, and is overwritten
/// by the next change of its key.
pub fn from_the_future(stamp: &Stamp, now: DateTime<Utc>) -> bool {
    stamp.at > now + MAX_CLOCK_SKEW
}

/// The key of an operator's decision about `pattern_id`.
pub fn suppression_key(pattern_id: &str) -> String {
    format!("{SUPPRESSION}.{}", key_token(pattern_id))
}

/// The key of a verdict.
pub fn verdict_key(component: &str, pattern_id: &str) -> String {
    format!(
        "{VERDICT}.{}.{}",
        key_token(component),
        key_token(pattern_id)
    )
}

/// The key of a question's claim.
pub fn ask_key(component: &str, pattern_id: &str) -> String {
    format!("{ASK}.{}.{}", key_token(component), key_token(pattern_id))
}

/// A key, split into its family and its texts (decoded tokens); `None` for
/// a key howl does not write.
pub fn parse_key(key: &str) -> Option<(&str, Vec<String>)> {
    let mut tokens = key.split('.');
    let family = tokens.next()?;
    let texts = tokens.map(from_key_token).collect::<Option<Vec<_>>>()?;
    let expected = match family {
        SUPPRESSION => 1,
        VERDICT | ASK => 2,
        _ => return None,
    };
    (texts.len() == expected).then_some((family, texts))
}

/// A fresh id for an audit record: the time in milliseconds (zero-padded,
/// so ids sort by time) and 64 random bits.
pub fn audit_id(at: DateTime<Utc>) -> String {
    format!(
        "{:013}-{:016x}",
        at.timestamp_millis().max(0),
        fastrand::u64(..)
    )
}

/// The time of an audit id, in milliseconds.
pub fn audit_id_millis(id: &str) -> Option<i64> {
    id.split_once('-')?.0.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(secs: i64, origin: &str) -> Stamp {
        Stamp {
            at: DateTime::from_timestamp(secs, 0).unwrap(),
            origin: origin.into(),
        }
    }

    #[test]
    fn the_later_write_wins_whoever_wrote_first() {
        let (early, late) = (stamp(100, "zz-instance"), stamp(101, "aa-instance"));
        assert!(wins(&late, &early), "later by time wins");
        assert!(!wins(&early, &late), "an older change arriving late loses");
        assert!(
            !wins(&early, &early),
            "the same change is not applied twice"
        );
        // A tie in time is settled the same way on every instance.
        let (a, b) = (stamp(100, "a"), stamp(100, "b"));
        assert!(wins(&b, &a) && !wins(&a, &b));
    }

    #[test]
    fn a_tombstone_outranks_an_older_put_and_round_trips() {
        let put: Envelope<String> = Envelope {
            stamp: stamp(100, "a"),
            value: Some("suppressed".into()),
        };
        let deleted: Envelope<String> = Envelope {
            stamp: stamp(102, "b"),
            value: None,
        };
        let text = serde_json::to_string(&deleted).unwrap();
        assert!(text.contains("\"value\":null"), "{text}");
        let back: Envelope<String> = serde_json::from_str(&text).unwrap();
        assert_eq!(back, deleted);
        assert!(wins(&back.stamp, &put.stamp));
    }

    #[test]
    fn keys_are_one_token_per_text_and_parse_back() {
        let key = verdict_key("my.triage", "3f9a 0c");
        assert_eq!(key.split('.').count(), 3, "{key}");
        assert_eq!(
            parse_key(&key),
            Some((
                VERDICT,
                vec!["my.triage".to_string(), "3f9a 0c".to_string()]
            ))
        );
        assert_eq!(
            parse_key(&ask_key("my.triage", "3f9a 0c")).map(|(family, _)| family),
            Some(ASK)
        );
        assert_eq!(
            parse_key(&suppression_key("abc")),
            Some((SUPPRESSION, vec!["abc".to_string()]))
        );
        assert_eq!(parse_key("supp.a.b"), None);
        assert_eq!(parse_key("other.a"), None);
        let id = audit_id(Utc::now());
        let now = Utc::now();
        let later = |by: chrono::TimeDelta| Stamp {
            at: now + by,
            origin: "a".into(),
        };
        assert!(!from_the_future(&later(chrono::TimeDelta::minutes(5)), now));
        assert!(from_the_future(&later(chrono::TimeDelta::days(365)), now));
        assert!(audit_id_millis(&id).is_some_and(|ms| ms > 0), "{id}");
    }
}
