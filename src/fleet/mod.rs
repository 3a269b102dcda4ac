//! Triage state shared by a fleet of howl instances (`[state.shared.nats]`).
//!
//! What is shared: operators' decisions (suppressions and always-alert
//! rules), the verdicts `llm_suppress` transforms got by asking a
//! classifier, and the audit trail. What stays local: everything else in
//! the state store (patterns, file checkpoints, learning periods, verdicts
//! of the built-in rules and of the learning period, comparisons), and the
//! Alertmanager silences, which belong to the instance that made the
//! change.
//!
//! How: the decisions and verdicts live in a JetStream key-value bucket
//! (history 5; keys in `wire`), the audit records in a second bucket
//! `<bucket>_audit`, bounded by age ([`AUDIT_MAX_AGE`]). Each instance:
//!
//! - writes every local change to its own store first (as without a fleet)
//!   and queues it in the `outbox`; a background task (`link`) pushes
//!   queued changes to the bucket;
//! - watches the bucket (`watch_with_history`), keeps an in-memory mirror
//!   of it, and applies the changes of other instances to its own
//!   registries: a suppression made anywhere is in force everywhere
//!   within a second;
//! - before asking a classifier about a new pattern, claims the question
//!   in the bucket (`create`: the first writer wins); the others hold the
//!   pattern's events as while they ask, until the verdict arrives through
//!   the watch, or take the question over when the claim runs out.
//!
//! The conflict rule: the last write wins, by timestamp (the writer's
//! clock; on an exact tie, the greater instance id). A deletion is written
//! as a tombstone carrying its time, so an older change arriving later
//! (from an instance that was cut off) cannot bring a deleted decision
//! back. Tombstones are purged after [`TOMBSTONE_TTL`]; a change made
//! offline longer ago than that is dropped rather than pushed.
//!
//! Outages: nothing in the pipeline waits on NATS. While the bucket is out
//! of reach, an instance works on its own store and the last state it
//! saw; questions are asked locally; changes wait in the outbox and are
//! pushed (reconciled by the rule above) when the bucket is back. `/health`
//! does not depend on NATS: `shared_state_connected` says whether the
//! bucket is in reach.

mod link;
mod outbox;
mod wire;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::kv::{CreateErrorKind, Entry, Operation, Store, UpdateErrorKind};
use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use tokio::sync::{Notify, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::nats::Connector;
use crate::state::audit::AuditRecord;
use crate::state::shared::{Claim, ClaimLease, SharedState};
use crate::state::triage::{StoredVerdict, Suppression};
use crate::state::{StateError, StateHandle};
use crate::suppressions::Suppressions;
use outbox::{Bucket, Outbox, Pending};
use wire::{ClaimValue, Envelope, Stamp};

/// How long audit records stay in the audit bucket (each instance keeps
/// its own copy, bounded as without a fleet).
pub const AUDIT_MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);

/// How long a tombstone (and an expired verdict) stays in the bucket.
pub const TOMBSTONE_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// The longest a claim or a check of the bucket may take before the
/// question is asked locally.
const CLAIM_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a claim holds unless its owner renews it (a third of this
/// apart, while it asks). Short against `decision_timeout_secs` (15 s by
/// default), so that when an owner dies mid-question another instance
/// takes over while its held events still wait for a verdict. Another
/// instance takes a claim over once it has seen it unchanged for a whole
/// lease, timed by its own clock: the deadline a claim names is the owner's
/// clock, and clocks of a fleet may be seconds apart.
const CLAIM_LEASE: Duration = Duration::from_secs(5);

/// The table of this instance's id, and of the audit ids applied here.
const TABLE: &str = "shared_state";

/// A fleet's shared state, as seen by one instance (implements
/// [`SharedState`]).
#[derive(Debug)]
pub struct Fleet {
    /// This instance's id (random, kept in the store).
    origin: String,
    /// The bucket's name, for messages.
    bucket: String,
    outbox: Outbox,
    state: StateHandle,
    suppressions: Suppressions,
    mirror: Mutex<Mirror>,
    /// Bumped when a change of another instance is applied.
    changes: watch::Sender<u64>,
    /// Wakes the push task.
    pushed: Notify,
    /// The bucket, while it is in reach.
    store: Mutex<Option<Store>>,
    connected: AtomicBool,
}

/// What this instance last saw in the bucket.
#[derive(Debug, Default)]
struct Mirror {
    /// Per key of a decision or verdict: what was last seen.
    stamps: HashMap<String, Seen>,
    /// Verdicts by key.
    verdicts: HashMap<String, StoredVerdict>,
}

/// The last change seen of a key.
#[derive(Debug)]
struct Seen {
    /// Its revision (a cleanup purges only that one).
    revision: u64,
    /// When and where it was made.
    stamp: Stamp,
    /// When it stopped mattering: a tombstone's time, a verdict's or
    /// suppression's end (`None`: it matters).
    gone_at: Option<DateTime<Utc>>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

impl Fleet {
    /// Starts sharing through `bucket` on the server `connector` reaches
    /// (`[state.shared.nats]`): the returned handle is handed to `suppressions` (and
    /// through it to the `llm_suppress` transforms); a background task
    /// connects, watches and pushes until `stop`. Returns at once: the
    /// bucket may be out of reach.
    pub fn start(
        bucket: &str,
        connector: Connector,
        state: StateHandle,
        suppressions: Suppressions,
        stop: CancellationToken,
    ) -> Result<Arc<Self>, StateError> {
        let origin = instance_id(&state)?;
        let (changes, _) = watch::channel(0);
        let fleet = Arc::new(Self {
            origin,
            bucket: bucket.to_string(),
            outbox: Outbox::new(state.clone()),
            state,
            suppressions: suppressions.clone(),
            mirror: Mutex::new(Mirror::default()),
            changes,
            pushed: Notify::new(),
            store: Mutex::new(None),
            connected: AtomicBool::new(false),
        });
        metrics::gauge!("shared_state_connected").set(0.0);
        suppressions.share_with(Arc::clone(&fleet) as Arc<dyn SharedState>);
        tokio::spawn(link::run(Arc::clone(&fleet), connector, stop));
        Ok(fleet)
    }

    fn stamp(&self, at: DateTime<Utc>) -> Stamp {
        Stamp {
            at,
            origin: self.origin.clone(),
        }
    }

    /// Queues a change and wakes the push task; a failure is logged (the
    /// change holds locally, only the fleet misses it).
    fn queue(&self, changes: Vec<Pending>) {
        if changes.is_empty() {
            return;
        }
        match self.outbox.add(&changes) {
            Ok(()) => self.pushed.notify_one(),
            Err(error) => tracing::error!(
                bucket = %self.bucket,
                "shared state: cannot queue a change for the fleet: {error}"
            ),
        }
    }

    fn set_online(&self, store: Option<Store>) {
        let online = store.is_some();
        *lock(&self.store) = store;
        self.connected.store(online, Ordering::Release);
        metrics::gauge!("shared_state_connected").set(if online { 1.0 } else { 0.0 });
    }

    /// Counts, and announces, a change of another instance applied here.
    fn applied(&self, family: &'static str) {
        metrics::counter!("shared_state_remote_changes_total", "family" => family).increment(1);
        self.changes.send_modify(|n| *n += 1);
    }
}

/// This instance's id: made at the first start, kept in the store.
fn instance_id(state: &StateHandle) -> Result<String, StateError> {
    let store = state.store()?;
    if let Some(id) = store.get(TABLE, "instance")?
        && let Ok(id) = String::from_utf8(id)
    {
        return Ok(id);
    }
    let id = format!("{:016x}", fastrand::u64(..));
    store.write(TABLE, &[("instance".into(), id.clone().into_bytes())], &[])?;
    Ok(id)
}

impl SharedState for Fleet {
    fn suppression_changed(
        &self,
        pattern_id: &str,
        suppression: Option<&Suppression>,
        at: DateTime<Utc>,
    ) {
        let value = suppression.map(|s| Suppression {
            // Silences are this instance's to keep.
            silences: Vec::new(),
            remote: false,
            ..s.clone()
        });
        let envelope = Envelope {
            stamp: self.stamp(at),
            value,
        };
        if let Ok(bytes) = serde_json::to_vec(&envelope) {
            self.queue(vec![Pending {
                bucket: Bucket::State,
                key: wire::suppression_key(pattern_id),
                value: bytes,
            }]);
        }
    }

    fn audit_recorded(&self, records: &[AuditRecord]) {
        let changes = records
            .iter()
            .filter_map(|record| {
                let value = serde_json::to_vec(&SharedRecord {
                    origin: self.origin.clone(),
                    record: record.clone(),
                })
                .ok()?;
                Some(Pending {
                    bucket: Bucket::Audit,
                    key: format!("{}.{}", wire::AUDIT, wire::audit_id(record.at)),
                    value,
                })
            })
            .collect();
        self.queue(changes);
    }

    fn verdict(&self, component: &str, pattern_id: &str) -> Option<StoredVerdict> {
        lock(&self.mirror)
            .verdicts
            .get(&wire::verdict_key(component, pattern_id))
            .cloned()
    }

    fn verdict_decided(&self, component: &str, pattern_id: &str, verdict: &StoredVerdict) {
        let envelope = Envelope {
            stamp: self.stamp(verdict.decided_at),
            value: Some(verdict),
        };
        if let Ok(bytes) = serde_json::to_vec(&envelope) {
            self.queue(vec![Pending {
                bucket: Bucket::State,
                key: wire::verdict_key(component, pattern_id),
                value: bytes,
            }]);
        }
    }

    fn claim(
        &self,
        component: &str,
        pattern_id: &str,
        seen: Option<u64>,
    ) -> BoxFuture<'static, Claim> {
        let store = self
            .connected
            .load(Ordering::Acquire)
            .then(|| lock(&self.store).clone())
            .flatten();
        let key = wire::ask_key(component, pattern_id);
        let owner = self.origin.clone();
        Box::pin(async move {
            let Some(store) = store else {
                return Claim::Alone;
            };
            match tokio::time::timeout(CLAIM_TIMEOUT, claim(&store, &key, &owner, seen)).await {
                Ok(Some(Claimed::Mine { revision })) => Claim::Asker(renew(
                    store,
                    Renewal {
                        key,
                        owner,
                        revision,
                    },
                )),
                Ok(Some(Claimed::Theirs { revision })) => Claim::Waiter {
                    until: Instant::now() + CLAIM_LEASE,
                    seen: revision,
                },
                Ok(None) | Err(_) => Claim::Alone,
            }
        })
    }

    fn changes(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }
}

/// An audit record as shared: with the instance that made it, so that its
/// own echo is not recorded twice.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct SharedRecord {
    origin: String,
    record: AuditRecord,
}

/// Who holds a question's claim, as [`claim`] found it.
enum Claimed {
    /// This instance, at `revision` of the key (renewals must name it).
    Mine { revision: u64 },
    /// Another instance, whose claim is at `revision`.
    Theirs { revision: u64 },
}

/// Claims `key` for `owner`; `None` when the bucket did not answer as
/// expected (the caller then asks alone). `seen` is the revision at which
/// this instance saw another instance's claim a lease ago: a claim still
/// at it was not renewed since (its owner died or stopped asking), and is
/// taken over.
async fn claim(store: &Store, key: &str, owner: &str, seen: Option<u64>) -> Option<Claimed> {
    let mine = claim_value(owner)?;
    // A few rounds: the key may be deleted or taken over between calls.
    for _ in 0..3 {
        match store.create(key, mine.clone().into()).await {
            Ok(revision) => return Some(Claimed::Mine { revision }),
            Err(error) if error.kind() == CreateErrorKind::AlreadyExists => {}
            Err(_) => return None,
        }
        let entry = store.entry(key).await.ok()?;
        let Some(entry) = entry.filter(|e| e.operation == Operation::Put) else {
            continue;
        };
        // Whether the claim is renewed is judged by the revision and this
        // instance's clock, never by the deadline it names: an owner whose
        // clock lags would look dead while it renews, one whose clock is
        // far ahead (or a value written by hand) would hold the question
        // forever.
        match owner_of(&entry.value) {
            Some(theirs) if theirs == owner => {
                return Some(Claimed::Mine {
                    revision: entry.revision,
                });
            }
            Some(_) if seen != Some(entry.revision) && !forgotten(&entry) => {
                return Some(Claimed::Theirs {
                    revision: entry.revision,
                });
            }
            // Not renewed for a lease (its owner died or stopped asking),
            // left from long ago, or unreadable: take it over, unless
            // another instance does so first.
            _ => {
                if let Ok(revision) = store.update(key, mine.clone().into(), entry.revision).await {
                    return Some(Claimed::Mine { revision });
                }
            }
        }
    }
    None
}

/// The instance a claim's value names, if it is one.
fn owner_of(value: &[u8]) -> Option<String> {
    serde_json::from_slice::<ClaimValue>(value)
        .ok()
        .map(|claim| claim.owner)
}

/// Whether a claim was last written (by the server's clock) so long ago
/// that no clock of a fleet is that far off: its question ended long ago,
/// so it is taken over at once rather than after a lease of watching it.
fn forgotten(entry: &Entry) -> bool {
    let Ok(nanos) = i64::try_from(entry.created.unix_timestamp_nanos()) else {
        return false;
    };
    DateTime::from_timestamp_nanos(nanos) + wire::MAX_CLOCK_SKEW < Utc::now()
}

/// The value of a claim by `owner`, naming when its lease runs out by this
/// instance's clock (for the cleanup, and for people reading the bucket).
fn claim_value(owner: &str) -> Option<Vec<u8>> {
    serde_json::to_vec(&ClaimValue {
        owner: owner.to_string(),
        deadline: Utc::now() + chrono::Duration::from_std(CLAIM_LEASE).ok()?,
    })
    .ok()
}

/// A claim this instance holds, as its renewals need it.
struct Renewal {
    key: String,
    owner: String,
    /// The key's revision as this instance last wrote it.
    revision: u64,
}

/// Renews a claim every third of its lease until the returned lease is
/// dropped, or another instance took the claim over.
fn renew(store: Store, mut claim: Renewal) -> ClaimLease {
    let renewing = tokio::spawn(async move {
        loop {
            tokio::time::sleep(CLAIM_LEASE / 3).await;
            if !renew_once(&store, &mut claim).await {
                return;
            }
        }
    });
    ClaimLease::renewed_by(renewing.abort_handle())
}

/// Writes the claim once more; `false` when another instance holds it now
/// (it found the lease run out: two questions then, never none). A
/// renewal that fails otherwise is tried again at the next turn, while the
/// lease still holds.
async fn renew_once(store: &Store, claim: &mut Renewal) -> bool {
    // Twice at most: once more after finding the key moved by this instance.
    for _ in 0..2 {
        let Some(value) = claim_value(&claim.owner) else {
            return false;
        };
        let update = store.update(&claim.key, value.into(), claim.revision);
        match tokio::time::timeout(CLAIM_TIMEOUT, update).await {
            Ok(Ok(revision)) => {
                claim.revision = revision;
                return true;
            }
            Ok(Err(error)) if error.kind() == UpdateErrorKind::WrongLastRevision => {
                // The key moved. A renewal of ours that the server wrote but
                // answered too late (timed out above) moves it too, as does
                // another question of this instance about the pattern (a
                // reload): while the claim names this instance, go on from
                // its revision.
                let Ok(Ok(entry)) =
                    tokio::time::timeout(CLAIM_TIMEOUT, store.entry(&claim.key)).await
                else {
                    return true;
                };
                match entry.filter(|e| {
                    e.operation == Operation::Put
                        && owner_of(&e.value).is_some_and(|owner| owner == claim.owner)
                }) {
                    Some(entry) => claim.revision = entry.revision,
                    None => return false,
                }
            }
            Ok(Err(_)) | Err(_) => return true,
        }
    }
    true
}
