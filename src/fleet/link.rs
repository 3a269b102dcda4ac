//! The background task that keeps an instance and the bucket in step:
//! connect, open the buckets, watch them, push the outbox, clean up; after
//! any failure, start again (with backoff) from a fresh connection and a
//! fresh watch, which re-delivers the bucket's current state (applying it
//! again changes nothing: the conflict rule keeps what is later).

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::kv::{CreateErrorKind, Entry, Operation, Store, UpdateErrorKind};
use async_nats::jetstream::{self};
use chrono::Utc;
use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;

use super::outbox::{Bucket, Pending};
use super::wire::{self, Envelope, Stamp};
use super::{AUDIT_MAX_AGE, Fleet, Seen, SharedRecord, TABLE, TOMBSTONE_TTL, lock};
use crate::nats::Connector;
use crate::nats::kv::{BucketSpec, open_bucket};
use crate::state::audit::AuditRecord;
use crate::state::triage::{StoredVerdict, Suppression};

/// How long one call to the server may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest wait between attempts to reach the bucket.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How often the connection's state is checked.
const POLL: Duration = Duration::from_millis(250);
/// How often tombstones and applied audit ids are cleaned up.
const CLEANUP: Duration = Duration::from_secs(3600);
/// The most audit records written here in one transaction.
const AUDIT_BATCH: usize = 256;
/// The longest wait for a watch's first delivery of the bucket.
const CATCH_UP: Duration = Duration::from_secs(5);

/// Why a session with the bucket ended (logged, then started again).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Lost(String);

fn lost(what: &str, error: impl std::fmt::Display) -> Lost {
    Lost(format!("{what}: {error}"))
}

async fn within<T, E: std::fmt::Display>(
    what: &str,
    call: impl Future<Output = Result<T, E>>,
) -> Result<T, Lost> {
    match tokio::time::timeout(CALL_TIMEOUT, call).await {
        Ok(result) => result.map_err(|error| lost(what, error)),
        Err(_) => Err(Lost(format!("{what}: no answer within {CALL_TIMEOUT:?}"))),
    }
}

/// Runs until `stop`: sessions, and waits between them.
pub(super) async fn run(fleet: Arc<Fleet>, connector: Connector, stop: CancellationToken) {
    let mut failures: u32 = 0;
    // Said once per outage, not per attempt.
    let mut said_down = false;
    loop {
        let started = tokio::time::Instant::now();
        let ended = tokio::select! {
            () = stop.cancelled() => return,
            ended = session(&fleet, &connector, &stop, &mut said_down) => ended,
        };
        fleet.set_online(None);
        let Err(why) = ended else { return };
        if !said_down {
            tracing::warn!(
                bucket = %fleet.bucket,
                "shared state: the NATS bucket is out of reach ({why}); running on the local \
                 store and the last state seen; local changes are pushed when it is back"
            );
            said_down = true;
        } else {
            tracing::debug!(bucket = %fleet.bucket, "shared state: still out of reach: {why}");
        }
        if started.elapsed() > Duration::from_secs(30) {
            failures = 0;
        }
        failures = failures.saturating_add(1);
        let wait =
            (Duration::from_millis(250) * 2u32.saturating_pow(failures.min(5))).min(MAX_BACKOFF);
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
    }
}

/// One connection: returns `Ok` on `stop`, the reason otherwise.
async fn session(
    fleet: &Arc<Fleet>,
    connector: &Connector,
    stop: &CancellationToken,
    said_down: &mut bool,
) -> Result<(), Lost> {
    let client = within("connecting", connector.connect()).await?;
    let js = jetstream::new(client.clone());
    let state = within(
        "opening the bucket",
        open_bucket(
            &js,
            &BucketSpec {
                name: fleet.bucket.clone(),
                history: 5,
                max_age: Duration::ZERO,
            },
        ),
    )
    .await?;
    let audit = within(
        "opening the audit bucket",
        open_bucket(
            &js,
            &BucketSpec {
                name: format!("{}_audit", fleet.bucket),
                history: 1,
                max_age: AUDIT_MAX_AGE,
            },
        ),
    )
    .await?;
    let mut watch = within("watching the bucket", state.watch_with_history(">")).await?;
    let mut audit_watch =
        within("watching the audit bucket", audit.watch_with_history(">")).await?;
    let empty = within("reading the bucket's status", state.status())
        .await?
        .values()
        == 0;
    let mut caught_up = false;
    let catch_up = tokio::time::sleep(if empty { Duration::ZERO } else { CATCH_UP });
    tokio::pin!(catch_up);
    let mut poll = tokio::time::interval(POLL);
    let mut cleanup = tokio::time::interval(CLEANUP);
    cleanup.reset();
    // Other instances' audit records, written here in batches.
    let mut records = Vec::new();
    loop {
        tokio::select! {
            () = stop.cancelled() => return Ok(()),
            () = &mut catch_up, if !caught_up => {
                caught_up = true;
                online(fleet, &state, &audit, said_down).await?;
            }
            entry = watch.next() => {
                let entry = entry
                    .ok_or_else(|| Lost("the bucket's watch ended".into()))?
                    .map_err(|error| lost("watching the bucket", error))?;
                let current = entry.seen_current;
                apply(fleet, entry).await;
                if current && !caught_up {
                    caught_up = true;
                    online(fleet, &state, &audit, said_down).await?;
                }
            }
            entry = audit_watch.next() => {
                let entry = entry
                    .ok_or_else(|| Lost("the audit bucket's watch ended".into()))?
                    .map_err(|error| lost("watching the audit bucket", error))?;
                collect_audit(fleet, entry, &mut records);
                if records.len() >= AUDIT_BATCH {
                    apply_audit(fleet, &mut records);
                }
            }
            () = fleet.pushed.notified(), if caught_up => push(fleet, &state, &audit).await?,
            _ = poll.tick() => {
                apply_audit(fleet, &mut records);
                // (`Pending` is the state before the first connection has
                // settled, not a loss.)
                if client.connection_state() == async_nats::connection::State::Disconnected {
                    return Err(Lost("the connection to NATS was lost".into()));
                }
            }
            _ = cleanup.tick(), if caught_up => clean_up(fleet, &state).await?,
        }
    }
}

/// The bucket's state has been seen: take claims, push what waits.
async fn online(
    fleet: &Arc<Fleet>,
    state: &Store,
    audit: &Store,
    said_down: &mut bool,
) -> Result<(), Lost> {
    fleet.set_online(Some(state.clone()));
    let waiting = fleet.outbox.count().unwrap_or_default();
    tracing::info!(
        bucket = %fleet.bucket,
        instance = %fleet.origin,
        waiting,
        "shared state: in step with the NATS bucket{}",
        if *said_down { " again" } else { "" }
    );
    *said_down = false;
    push(fleet, state, audit).await
}

/// Applies a change of the state bucket.
async fn apply(fleet: &Fleet, entry: Entry) {
    let Some((family, texts)) = wire::parse_key(&entry.key) else {
        return;
    };
    if entry.operation != Operation::Put {
        // Purged (a cleaned-up tombstone or claim): nothing to undo.
        let mut mirror = lock(&fleet.mirror);
        mirror.stamps.remove(&entry.key);
        mirror.verdicts.remove(&entry.key);
        return;
    }
    match family {
        wire::SUPPRESSION => {
            let Some(envelope) = parse::<Suppression>(&entry) else {
                return;
            };
            let gone_at = match &envelope.value {
                None => Some(envelope.stamp.at),
                Some(suppression) => suppression.expires_at,
            };
            if !remember(fleet, &entry, &envelope.stamp, gone_at)
                || envelope.stamp.origin == fleet.origin
                || waiting_is_later(fleet, &entry.key, &envelope.stamp)
            {
                return;
            }
            let pattern_id = &texts[0];
            let wins_tie = envelope.stamp.origin > fleet.origin;
            match fleet
                .suppressions
                .apply_remote(pattern_id, envelope.value, envelope.stamp.at, wins_tie)
                .await
            {
                Ok(true) => fleet.applied("suppression"),
                Ok(false) => {}
                Err(error) => tracing::error!(
                    "shared state: cannot apply another instance's decision about pattern {}: {error}",
                    crate::diagnostic::escape_controls(pattern_id)
                ),
            }
        }
        wire::VERDICT => {
            let Some(envelope) = parse::<StoredVerdict>(&entry) else {
                return;
            };
            let gone_at = envelope
                .value
                .as_ref()
                .map_or(envelope.stamp.at, |verdict| verdict.expires_at);
            if !remember(fleet, &entry, &envelope.stamp, Some(gone_at)) {
                return;
            }
            {
                let mut mirror = lock(&fleet.mirror);
                match envelope.value {
                    Some(verdict) => mirror.verdicts.insert(entry.key.clone(), verdict),
                    None => mirror.verdicts.remove(&entry.key),
                };
            }
            if envelope.stamp.origin != fleet.origin {
                fleet.applied("verdict");
            }
        }
        wire::ASK => {
            // Claims stay until they run out (so that an instance that
            // sees the pattern a little later waits for the verdict rather
            // than asking again); only the cleanup needs to know them.
            if let Ok(claim) = serde_json::from_slice::<wire::ClaimValue>(&entry.value) {
                let stamp = Stamp {
                    at: claim.deadline,
                    origin: claim.owner,
                };
                remember(fleet, &entry, &stamp, Some(stamp.at));
            }
        }
        _ => {}
    }
}

fn parse<T: serde::de::DeserializeOwned>(entry: &Entry) -> Option<Envelope<T>> {
    match serde_json::from_slice::<Envelope<T>>(&entry.value) {
        Ok(envelope) if wire::from_the_future(&envelope.stamp, Utc::now()) => {
            tracing::warn!(
                key = %entry.key,
                origin = %crate::diagnostic::escape_controls(&envelope.stamp.origin),
                "shared state: skipping a change stamped {} in the future (more than {} ahead \
                 of this clock: a clock far off, or a value not written by howl); the next \
                 change of the key replaces it",
                envelope.stamp.at,
                wire::MAX_CLOCK_SKEW
            );
            None
        }
        Ok(envelope) => Some(envelope),
        Err(error) => {
            tracing::warn!(
                key = %entry.key,
                "shared state: skipping an unreadable value (written by a newer howl?): {error}"
            );
            None
        }
    }
}

/// Notes a key's latest change; `false` when a later one was seen
/// already.
fn remember(
    fleet: &Fleet,
    entry: &Entry,
    stamp: &Stamp,
    gone_at: Option<chrono::DateTime<Utc>>,
) -> bool {
    let mut mirror = lock(&fleet.mirror);
    if let Some(seen) = mirror.stamps.get(&entry.key)
        && !wire::wins(stamp, &seen.stamp)
    {
        return false;
    }
    mirror.stamps.insert(
        entry.key.clone(),
        Seen {
            revision: entry.revision,
            stamp: stamp.clone(),
            gone_at,
        },
    );
    true
}

/// Whether this instance has a later change of `key` still to push.
fn waiting_is_later(fleet: &Fleet, key: &str, incoming: &Stamp) -> bool {
    let Ok(Some(bytes)) = fleet.outbox.waiting(key) else {
        return false;
    };
    serde_json::from_slice::<Envelope<serde_json::Value>>(&bytes)
        .is_ok_and(|mine| wire::wins(&mine.stamp, incoming))
}

/// Keeps another instance's audit record for [`apply_audit`].
fn collect_audit(fleet: &Fleet, entry: Entry, records: &mut Vec<(String, AuditRecord)>) {
    if entry.operation != Operation::Put {
        return;
    }
    let Some(id) = entry.key.strip_prefix("audit.") else {
        return;
    };
    match serde_json::from_slice::<SharedRecord>(&entry.value) {
        Ok(shared) if shared.origin != fleet.origin => {
            records.push((format!("audit/{id}"), shared.record));
        }
        Ok(_) => {}
        Err(error) => {
            tracing::warn!(key = %entry.key, "shared state: skipping an unreadable audit record: {error}")
        }
    }
}

/// Records other instances' audit records here, each once (the ids
/// applied are kept: a new watch delivers the bucket's records again).
fn apply_audit(fleet: &Fleet, records: &mut Vec<(String, AuditRecord)>) {
    if records.is_empty() {
        return;
    }
    let records = std::mem::take(records);
    let result = fleet.state.store().and_then(|store| {
        let mut fresh = Vec::new();
        let mut seen = Vec::new();
        for (id, record) in records {
            if store.get(TABLE, &id)?.is_none() {
                fresh.push(record);
                seen.push((id, Vec::new()));
            }
        }
        if !fresh.is_empty() {
            fleet.suppressions.audit().record(&fresh)?;
            store.write(TABLE, &seen, &[])?;
        }
        Ok(fresh.len())
    });
    match result {
        Ok(0) => {}
        Ok(_) => fleet.applied("audit"),
        Err(error) => {
            tracing::error!("shared state: cannot record other instances' decisions: {error}");
        }
    }
}

/// Pushes every waiting change.
async fn push(fleet: &Fleet, state: &Store, audit: &Store) -> Result<(), Lost> {
    let waiting = fleet
        .outbox
        .pending()
        .map_err(|error| lost("reading the outbox", error))?;
    for change in waiting {
        match change.bucket {
            Bucket::Audit => {
                within(
                    "writing an audit record",
                    audit.put(&change.key, change.value.clone().into()),
                )
                .await?;
            }
            Bucket::State => push_state(state, &change).await?,
        }
        if let Err(error) = fleet.outbox.done(&change) {
            tracing::error!("shared state: cannot update the outbox: {error}");
        }
    }
    metrics::gauge!("shared_state_outbox_changes")
        .set(fleet.outbox.count().unwrap_or_default() as f64);
    Ok(())
}

/// Writes a change of a decision or verdict unless the bucket holds a
/// later one: compare-and-set on the key's revision, so two instances
/// writing at once cannot leave the earlier change in the bucket.
async fn push_state(state: &Store, change: &Pending) -> Result<(), Lost> {
    let Ok(mine) = serde_json::from_slice::<Envelope<serde_json::Value>>(&change.value) else {
        return Ok(());
    };
    let age = (Utc::now() - mine.stamp.at).to_std().unwrap_or_default();
    if age > TOMBSTONE_TTL {
        tracing::warn!(
            key = %change.key,
            "shared state: dropping a change made offline more than 7 days ago \
             (the bucket no longer remembers deletions that old)"
        );
        return Ok(());
    }
    for _ in 0..5 {
        let current = within("reading the bucket", state.entry(&change.key)).await?;
        let written = match current.filter(|e| e.operation == Operation::Put) {
            Some(entry) => {
                let theirs = serde_json::from_slice::<Envelope<serde_json::Value>>(&entry.value);
                // (A stamp from the future is not believed: see `parse`.)
                if theirs.is_ok_and(|theirs| {
                    !wire::wins(&mine.stamp, &theirs.stamp)
                        && !wire::from_the_future(&theirs.stamp, Utc::now())
                }) {
                    // A later (or the same) change is there: ours is moot.
                    return Ok(());
                }
                match tokio::time::timeout(
                    CALL_TIMEOUT,
                    state.update(&change.key, change.value.clone().into(), entry.revision),
                )
                .await
                {
                    Ok(Ok(_)) => true,
                    Ok(Err(error)) if error.kind() == UpdateErrorKind::WrongLastRevision => false,
                    Ok(Err(error)) => return Err(lost("writing to the bucket", error)),
                    Err(_) => return Err(Lost("writing to the bucket: no answer".into())),
                }
            }
            None => match tokio::time::timeout(
                CALL_TIMEOUT,
                state.create(&change.key, change.value.clone().into()),
            )
            .await
            {
                Ok(Ok(_)) => true,
                Ok(Err(error)) if error.kind() == CreateErrorKind::AlreadyExists => false,
                Ok(Err(error)) => return Err(lost("writing to the bucket", error)),
                Err(_) => return Err(Lost("writing to the bucket: no answer".into())),
            },
        };
        if written {
            return Ok(());
        }
    }
    Err(Lost(format!("{} keeps changing under us", change.key)))
}

/// Purges tombstones, and decisions, verdicts and claims that ended, once
/// they are older than [`TOMBSTONE_TTL`]; forgets applied audit ids older than the audit
/// bucket keeps records. Any instance may do it: a purge names the
/// revision it saw, so it never removes a newer change.
async fn clean_up(fleet: &Fleet, state: &Store) -> Result<(), Lost> {
    let ttl = chrono::Duration::from_std(TOMBSTONE_TTL).unwrap_or(chrono::TimeDelta::MAX);
    let old = Utc::now() - ttl;
    let stale: Vec<(String, u64)> = lock(&fleet.mirror)
        .stamps
        .iter()
        .filter(|(_, seen)| seen.gone_at.is_some_and(|gone| gone < old))
        .map(|(key, seen)| (key.clone(), seen.revision))
        .collect();
    for (key, revision) in stale {
        // A newer change wins the race: the purge then fails, harmlessly.
        let _ = within("purging", state.purge_expect_revision(&key, Some(revision))).await;
    }
    let audit_ttl = chrono::Duration::from_std(AUDIT_MAX_AGE).unwrap_or(chrono::TimeDelta::MAX);
    let oldest = (Utc::now() - audit_ttl - chrono::Duration::days(1)).timestamp_millis();
    let result = fleet.state.store().and_then(|store| {
        let forget: Vec<String> = store
            .scan(TABLE, "audit/")?
            .into_iter()
            .map(|(key, _)| key)
            .filter(|key| {
                wire::audit_id_millis(&key["audit/".len()..]).is_some_and(|ms| ms < oldest)
            })
            .collect();
        store.write(TABLE, &[], &forget)
    });
    if let Err(error) = result {
        tracing::warn!("shared state: cannot forget old audit ids: {error}");
    }
    Ok(())
}
