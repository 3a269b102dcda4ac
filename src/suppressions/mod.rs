//! Operators' suppressions: "this pattern is noise", decided by a person
//! with one click (`POST /api/v1/suppressions`, `howl suppress`), in force
//! at once, without a restart, and kept across restarts.
//!
//! One [`Suppressions`] registry exists per howl process. `howl run`
//! creates it (in the process-wide `Shared` handles) and hands the same handle to the API,
//! which changes it, and to every `llm_suppress` transform, which reads it
//! for each event. Reading must be cheap, so the registry publishes an
//! immutable [`Snapshot`] (a map by pattern id) and a generation counter: a
//! transform compares one atomic number per batch and takes a new snapshot
//! only after a change. Changes are rare (a person clicks), so each one
//! copies the map.
//!
//! Keys and ids: at most one suppression per pattern id (suppressing a
//! suppressed pattern again replaces the reason, ttl and author but keeps
//! the id); the id (`sup-` and 12 hex digits) is what `DELETE
//! /api/v1/suppressions/{id}` takes, and so does the pattern id, for
//! convenience. Suppressions are not scoped: pattern ids are already
//! unique across `pattern` transforms' scopes.
//!
//! Expiry: a suppression with a ttl ends by itself; an ended one is no
//! longer in force (transforms check the time) and is dropped from the
//! store at the next change or listing.
//!
//! Alertmanager silences: a transform with `alertmanager_silence` registers
//! a [`Silencer`] here when it starts. Creating a suppression then creates
//! a silence in each registered Alertmanager, and deleting it expires them.
//! A silence that cannot be created does not stop the suppression, which is
//! howl's own decision and already in force: the error is returned to the
//! caller and logged, and the silence is made later (see below).
//!
//! Silences are kept in step by a background task started with the first
//! silencer ([`Suppressions::maintain_silences`], every quarter of the
//! shortest `duration`, at most hourly): a silence that ends within half its
//! `duration` while its suppression goes on (a suppression without a ttl,
//! or one longer than `duration`) is replaced by a fresh one, and a missing
//! silence (its Alertmanager was down) is created.
//!
//! A fleet (`[state.shared.nats]`): every change made here is also handed to
//! the fleet's [`SharedState`] ([`Suppressions::share_with`]), and changes
//! made on other instances arrive through [`Suppressions::apply_remote`],
//! which applies the later one by timestamp and bumps the generation like a
//! local change. Silences stay with the instance that made the change: the
//! others neither create, renew nor expire them (their copy is marked
//! `remote`); the maker expires its silences when a later change from
//! anywhere replaces or deletes its suppression.

mod silence;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use chrono::{DateTime, Utc};

pub use silence::{MATCHER_LABEL, Silencer};

use crate::diagnostic::escape_controls;
use crate::state::audit::{Audit, AuditRecord};
use crate::state::shared::SharedState;
pub use crate::state::triage::OperatorAction;
use crate::state::triage::{SilenceRef, Suppression, load_suppressions, save_suppressions};
use crate::state::{StateError, StateHandle};

/// The longest `reason` or `created_by` accepted.
const MAX_TEXT_BYTES: usize = 4096;

/// The longest id accepted (a pattern id is 16 hex digits, a suppression
/// id `sup-` and 12).
const MAX_ID_BYTES: usize = 256;

/// Checks an id a client sent (`field` names it in the error): 1 to
/// [`MAX_ID_BYTES`] printable ASCII characters, no spaces. Ids are keys in
/// the store, labels of Alertmanager silences and words of howl's logs, so
/// a newline or a NUL in one would forge or cut a log line.
fn check_id(field: &str, id: &str) -> Result<(), SuppressionError> {
    let problem = if id.is_empty() {
        Some("is empty".to_string())
    } else if id.len() > MAX_ID_BYTES {
        Some(format!("is longer than {MAX_ID_BYTES} bytes"))
    } else {
        id.chars().find(|c| !c.is_ascii_graphic()).map(|c| {
            format!(
                "contains {}",
                match c {
                    ' ' => "a space".to_string(),
                    c => format!("U+{:04X}", u32::from(c)),
                }
            )
        })
    };
    match problem {
        None => Ok(()),
        Some(problem) => Err(SuppressionError::Invalid(format!(
            "`{field}` {problem}: an id is 1 to {MAX_ID_BYTES} printable ASCII characters, \
             without spaces or control characters"
        ))),
    }
}

/// The suppressions in force, by pattern id (entries may have ended since
/// the snapshot was taken: check [`Suppression::is_live`]).
pub type Snapshot = Arc<HashMap<String, Suppression>>;

/// Why a change was refused.
#[derive(Debug, thiserror::Error)]
pub enum SuppressionError {
    /// The request does not make sense (answered with 400).
    #[error("{0}")]
    Invalid(String),
    /// The state store failed.
    #[error(transparent)]
    State(#[from] StateError),
}

/// A request to suppress a pattern (or to have it always alert).
#[derive(Debug, Clone)]
pub struct NewSuppression {
    /// The pattern.
    pub pattern_id: String,
    /// From where the request came, for the audit trail: `api`,
    /// `telegram`, `slack`.
    pub via: String,
    /// Suppress it, or have it always alert.
    pub action: OperatorAction,
    /// Why.
    pub reason: String,
    /// How long; `None` = until deleted.
    pub ttl: Option<Duration>,
    /// Who asks.
    pub created_by: String,
}

/// Who ends a decision, for the audit trail.
#[derive(Debug, Clone)]
pub struct Actor {
    /// Who: a person's name, `api`.
    pub who: String,
    /// From where: `api`, `telegram`, `slack`.
    pub via: String,
}

/// What a change did.
#[derive(Debug, Clone)]
pub struct Changed {
    /// The suppression created, replaced or deleted.
    pub suppression: Suppression,
    /// Whether a suppression of the same pattern was replaced.
    pub replaced: bool,
    /// Silences that could not be created or expired.
    pub silence_errors: Vec<String>,
}

/// The process-wide registry (cheap to clone: a shared handle).
#[derive(Clone)]
pub struct Suppressions {
    inner: Arc<Inner>,
}

struct Inner {
    state: StateHandle,
    audit: Audit,
    /// `None` until first loaded from the store.
    table: Mutex<Option<Snapshot>>,
    generation: AtomicU64,
    silencers: Mutex<Vec<Arc<Silencer>>>,
    /// Whether the silence maintenance task runs.
    maintaining: std::sync::atomic::AtomicBool,
    /// The fleet's shared state, with `[state.shared.nats]`.
    shared: OnceLock<Arc<dyn SharedState>>,
}

impl std::fmt::Debug for Suppressions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Suppressions")
            .field("generation", &self.generation())
            .finish_non_exhaustive()
    }
}

/// A fresh suppression id: `sup-` and 12 hex digits, so it is never
/// mistaken for a pattern id (16 hex digits).
fn new_id() -> String {
    format!("sup-{:012x}", fastrand::u64(..1 << 48))
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

impl Suppressions {
    /// A registry kept in `state` (nothing is read until first use).
    pub fn new(state: StateHandle) -> Self {
        Self {
            inner: Arc::new(Inner {
                audit: Audit::new(state.clone()),
                state,
                table: Mutex::new(None),
                generation: AtomicU64::new(0),
                silencers: Mutex::new(Vec::new()),
                maintaining: std::sync::atomic::AtomicBool::new(false),
                shared: OnceLock::new(),
            }),
        }
    }

    /// The audit trail of decisions (these, and those components record).
    pub fn audit(&self) -> &Audit {
        &self.inner.audit
    }

    /// Records decisions (and hands them to the fleet); a failure is
    /// logged, never the decision's.
    pub fn record(&self, records: &[AuditRecord]) {
        if let Err(error) = self.inner.audit.record(records) {
            tracing::error!("cannot record decisions in the audit trail: {error}");
        }
        if let Some(shared) = self.shared_state() {
            shared.audit_recorded(records);
        }
    }

    /// Shares changes with a fleet from now on (once per process; a second
    /// call is ignored).
    pub fn share_with(&self, shared: Arc<dyn SharedState>) {
        let _ = self.inner.shared.set(shared);
    }

    /// The fleet's shared state, when there is one: the `llm_suppress`
    /// transforms share their verdicts through it.
    pub fn shared_state(&self) -> Option<Arc<dyn SharedState>> {
        self.inner.shared.get().cloned()
    }

    /// A number that changes with every change of the suppressions.
    pub fn generation(&self) -> u64 {
        self.inner.generation.load(Ordering::Acquire)
    }

    /// The suppressions now, loading them from the store on first use.
    pub fn snapshot(&self) -> Result<Snapshot, StateError> {
        let mut table = lock(&self.inner.table);
        Ok(Arc::clone(self.loaded(&mut table)?))
    }

    /// The suppressions in force, oldest first.
    pub fn list(&self) -> Result<Vec<Suppression>, StateError> {
        let now = Utc::now();
        let mut table = lock(&self.inner.table);
        self.drop_ended(&mut table, now)?;
        let mut live: Vec<Suppression> = self.loaded(&mut table)?.values().cloned().collect();
        live.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        Ok(live)
    }

    /// Registers an Alertmanager to mirror suppressions in (once per URL),
    /// and starts keeping silences in step (when called on a runtime).
    pub fn add_silencer(&self, silencer: Silencer) {
        {
            let mut silencers = lock(&self.inner.silencers);
            if !silencers.iter().any(|known| known.url() == silencer.url()) {
                silencers.push(Arc::new(silencer));
            }
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current()
            && !self.inner.maintaining.swap(true, Ordering::AcqRel)
        {
            let this = self.clone();
            runtime.spawn(async move {
                loop {
                    tokio::time::sleep(this.maintenance_period()).await;
                    this.maintain_silences().await;
                }
            });
        }
    }

    /// A quarter of the shortest silence duration, between 1 s and 1 h.
    fn maintenance_period(&self) -> Duration {
        self.silencers()
            .iter()
            .map(|s| s.duration() / 4)
            .min()
            .unwrap_or(Duration::from_secs(3600))
            .clamp(Duration::from_secs(1), Duration::from_secs(3600))
    }

    /// Brings every suppression's silences in step (see the module docs);
    /// returns the errors, which are also logged.
    pub async fn maintain_silences(&self) -> Vec<String> {
        let silencers = self.silencers();
        if silencers.is_empty() {
            return Vec::new();
        }
        let snapshot = match self.snapshot() {
            Ok(snapshot) => snapshot,
            Err(error) => return vec![format!("cannot read the suppressions: {error}")],
        };
        let now = Utc::now();
        let mut errors = Vec::new();
        // Another instance's suppression is mirrored by that instance.
        let silenced = snapshot
            .values()
            .filter(|s| s.is_live(now) && s.action == OperatorAction::Suppress && !s.remote);
        for suppression in silenced {
            let mut silences = suppression.silences.clone();
            let mut replaced = Vec::new();
            for silencer in &silencers {
                let existing = silences.iter().position(|r| r.url == silencer.url());
                let due = match existing.and_then(|i| silences[i].ends_at) {
                    None => true,
                    Some(ends) => {
                        let half = chrono::Duration::from_std(silencer.duration() / 2)
                            .unwrap_or(chrono::TimeDelta::MAX);
                        ends - now < half && suppression.expires_at.is_none_or(|end| end > ends)
                    }
                };
                if !due {
                    continue;
                }
                match silencer.create(suppression).await {
                    Ok(Some((id, ends_at))) => {
                        let fresh = SilenceRef {
                            url: silencer.url().to_string(),
                            id,
                            ends_at: Some(ends_at),
                        };
                        match existing {
                            Some(i) => replaced.push(std::mem::replace(&mut silences[i], fresh)),
                            None => silences.push(fresh),
                        }
                    }
                    Ok(None) => {}
                    Err(error) => {
                        tracing::warn!(
                            "cannot renew the silence of suppression {}: {}",
                            suppression.id,
                            escape_controls(&error)
                        );
                        errors.push(error);
                    }
                }
            }
            if silences == suppression.silences {
                continue;
            }
            let attached = self.change(|map| match map.get_mut(&suppression.pattern_id) {
                Some(current)
                    if current.id == suppression.id
                        && current.created_at == suppression.created_at =>
                {
                    current.silences = silences.clone();
                    Ok((vec![current.clone()], Vec::new()))
                }
                _ => Ok((Vec::new(), Vec::new())),
            });
            if matches!(attached, Ok(true)) {
                tracing::debug!(id = %suppression.id, "suppression's silences renewed");
                errors.extend(self.expire_silences(&replaced).await);
            } else {
                // Deleted or replaced meanwhile (or the store failed): the
                // fresh silences must not outlive it.
                let fresh: Vec<SilenceRef> = silences
                    .into_iter()
                    .filter(|s| !suppression.silences.contains(s))
                    .collect();
                errors.extend(self.expire_silences(&fresh).await);
            }
        }
        errors
    }

    /// Suppresses a pattern (replacing its suppression, if any) and mirrors
    /// it as silences.
    pub async fn create(&self, request: NewSuppression) -> Result<Changed, SuppressionError> {
        let pattern_id = request.pattern_id.trim().to_string();
        check_id("pattern_id", &pattern_id)?;
        if request.reason.trim().is_empty() {
            return Err(SuppressionError::Invalid(
                "`reason` must say why the pattern is suppressed (it is the audit trail)".into(),
            ));
        }
        // Both travel with every suppressed event and into silences.
        if request.reason.len() > MAX_TEXT_BYTES || request.created_by.len() > MAX_TEXT_BYTES {
            return Err(SuppressionError::Invalid(format!(
                "`reason` and `created_by` may hold at most {MAX_TEXT_BYTES} bytes"
            )));
        }
        if request.ttl.is_some_and(|ttl| ttl.is_zero()) {
            return Err(SuppressionError::Invalid(
                "`ttl` must be more than 0".into(),
            ));
        }
        let now = Utc::now();
        let expires_at = request
            .ttl
            .map(|ttl| {
                chrono::Duration::from_std(ttl)
                    .ok()
                    .and_then(|ttl| now.checked_add_signed(ttl))
                    .ok_or_else(|| SuppressionError::Invalid("`ttl` is too long".into()))
            })
            .transpose()?;
        let request_via = request.via.clone();
        let mut previous = None;
        let mut created = None;
        self.change(|map| {
            previous = map.get(&pattern_id).cloned();
            let suppression = Suppression {
                id: previous.as_ref().map_or_else(new_id, |p| p.id.clone()),
                pattern_id: pattern_id.clone(),
                action: request.action,
                reason: request.reason.trim().to_string(),
                created_by: request.created_by,
                created_at: now,
                expires_at,
                silences: Vec::new(),
                remote: false,
            };
            map.insert(pattern_id.clone(), suppression.clone());
            created = Some(suppression.clone());
            Ok((vec![suppression], Vec::new()))
        })?;
        let Some(mut suppression) = created else {
            return Err(StateError::Storage("the suppression was not recorded".into()).into());
        };
        if let Some(shared) = self.shared_state() {
            shared.suppression_changed(&pattern_id, Some(&suppression), now);
        }
        // The free text is the client's: escaped, so that a newline in it
        // cannot start a log line of its own (in the text format, which
        // writes values as they are, and in JSON, whose readers would show
        // the decoded newline).
        tracing::info!(
            pattern_id = %escape_controls(&suppression.pattern_id),
            id = %suppression.id,
            created_by = %escape_controls(&suppression.created_by),
            "{}: {}",
            match suppression.action {
                OperatorAction::Suppress => "pattern suppressed",
                OperatorAction::AlwaysAlert => "pattern set to always alert",
            },
            escape_controls(&suppression.reason)
        );
        self.record(&[AuditRecord::now(
            suppression.action.as_str(),
            &suppression.pattern_id,
            &suppression.created_by,
            &suppression.reason,
            &request_via,
        )
        .with_detail(serde_json::json!({
            "id": suppression.id,
            "expires_at": suppression.expires_at,
            "replaced": previous.is_some(),
        }))]);
        let mut silence_errors = Vec::new();
        if let Some(previous) = &previous {
            silence_errors.extend(self.expire_silences(&previous.silences).await);
        }
        let (silences, errors) = match suppression.action {
            OperatorAction::Suppress => self.create_silences(&suppression).await,
            // An alert that must always reach people is never silenced.
            OperatorAction::AlwaysAlert => (Vec::new(), Vec::new()),
        };
        silence_errors.extend(errors);
        if !silences.is_empty() {
            let attached = self.change(|map| match map.get_mut(&suppression.pattern_id) {
                Some(current) if current.id == suppression.id && current.created_at == now => {
                    current.silences = silences.clone();
                    Ok((vec![current.clone()], Vec::new()))
                }
                _ => Ok((Vec::new(), Vec::new())),
            })?;
            if attached {
                suppression.silences = silences;
            } else {
                // Deleted or replaced while the silences were being made.
                silence_errors.extend(self.expire_silences(&silences).await);
            }
        }
        Ok(Changed {
            suppression,
            replaced: previous.is_some(),
            silence_errors,
        })
    }

    /// Deletes the suppression with this id (or of this pattern) and
    /// expires its silences; `None` when there is none.
    pub async fn remove(
        &self,
        id_or_pattern: &str,
        by: &Actor,
    ) -> Result<Option<Changed>, SuppressionError> {
        check_id("id", id_or_pattern)?;
        let mut removed = None;
        self.change(|map| {
            let key = map
                .values()
                .find(|s| s.id == id_or_pattern)
                .map(|s| s.pattern_id.clone())
                .or_else(|| {
                    map.contains_key(id_or_pattern)
                        .then(|| id_or_pattern.to_string())
                });
            removed = key.and_then(|key| map.remove(&key));
            Ok((Vec::new(), removed.iter().map(|s| s.id.clone()).collect()))
        })?;
        let Some(suppression) = removed else {
            return Ok(None);
        };
        if let Some(shared) = self.shared_state() {
            shared.suppression_changed(&suppression.pattern_id, None, Utc::now());
        }
        tracing::info!(
            pattern_id = %escape_controls(&suppression.pattern_id),
            id = %suppression.id,
            by = %escape_controls(&by.who),
            "suppression deleted"
        );
        self.record(&[AuditRecord::now(
            "unsuppress",
            &suppression.pattern_id,
            &by.who,
            &format!(
                "ended the {} decision {}",
                suppression.action.as_str(),
                suppression.id
            ),
            &by.via,
        )
        .with_detail(serde_json::json!({"id": suppression.id}))]);
        let silence_errors = self.expire_silences(&suppression.silences).await;
        Ok(Some(Changed {
            suppression,
            replaced: false,
            silence_errors,
        }))
    }

    /// Applies a change made on another instance at `at` (`None`: the
    /// suppression of `pattern_id` was deleted), unless this instance's
    /// own decision about the pattern is later: the last write wins, by
    /// timestamp (`wins_tie` settles an equal one). Silences this instance
    /// made for the decision it replaces are expired. Returns whether
    /// anything changed. Nothing is recorded in the audit trail: the
    /// instance that made the change recorded it, and records travel too.
    pub async fn apply_remote(
        &self,
        pattern_id: &str,
        incoming: Option<Suppression>,
        at: DateTime<Utc>,
        wins_tie: bool,
    ) -> Result<bool, SuppressionError> {
        let mut replaced = None;
        let changed = self.change(|map| {
            if let Some(local) = map.get(pattern_id) {
                // The same change seen again (a watch after a restart).
                let same = incoming
                    .as_ref()
                    .is_some_and(|s| s.id == local.id && local.created_at == at);
                if same || local.created_at > at || (local.created_at == at && !wins_tie) {
                    return Ok((Vec::new(), Vec::new()));
                }
            }
            replaced = map.remove(pattern_id);
            let mut delete: Vec<String> = replaced.iter().map(|s| s.id.clone()).collect();
            match incoming {
                Some(mut suppression) => {
                    suppression.pattern_id = pattern_id.to_string();
                    suppression.remote = true;
                    suppression.silences = Vec::new();
                    delete.retain(|id| *id != suppression.id);
                    map.insert(pattern_id.to_string(), suppression.clone());
                    Ok((vec![suppression], delete))
                }
                None => Ok((Vec::new(), delete)),
            }
        })?;
        if changed {
            tracing::info!(
                pattern_id = %escape_controls(pattern_id),
                "suppression {} on another instance of the fleet",
                if self.snapshot()?.contains_key(pattern_id) { "changed" } else { "deleted" }
            );
        }
        if let Some(replaced) = replaced
            && !replaced.silences.is_empty()
        {
            // Alertmanager may be slow: the caller (the fleet's watch) must
            // not wait for it.
            let this = self.clone();
            tokio::spawn(async move {
                this.expire_silences(&replaced.silences).await;
            });
        }
        Ok(changed)
    }

    /// The loaded table, reading the store the first time.
    fn loaded<'a>(&self, table: &'a mut Option<Snapshot>) -> Result<&'a Snapshot, StateError> {
        if table.is_none() {
            let store = self.inner.state.store()?;
            let map = load_suppressions(&store)?
                .into_iter()
                .map(|s| (s.pattern_id.clone(), s))
                .collect();
            *table = Some(Arc::new(map));
            self.inner.generation.fetch_add(1, Ordering::AcqRel);
        }
        table
            .as_ref()
            .ok_or_else(|| StateError::Storage("suppressions not loaded".into()))
    }

    /// Applies `edit` to a copy of the table; it returns what to save and
    /// which ids to delete. The store is written first, then the copy is
    /// published: a failed write changes nothing. Returns whether `edit`
    /// changed anything.
    fn change(
        &self,
        edit: impl FnOnce(
            &mut HashMap<String, Suppression>,
        ) -> Result<(Vec<Suppression>, Vec<String>), SuppressionError>,
    ) -> Result<bool, SuppressionError> {
        let mut table = lock(&self.inner.table);
        let mut map = HashMap::clone(self.loaded(&mut table)?);
        let (put, delete) = edit(&mut map)?;
        if put.is_empty() && delete.is_empty() {
            return Ok(false);
        }
        let store = self.inner.state.store()?;
        save_suppressions(&store, &put.iter().collect::<Vec<_>>(), &delete)?;
        *table = Some(Arc::new(map));
        self.inner.generation.fetch_add(1, Ordering::AcqRel);
        Ok(true)
    }

    /// Forgets suppressions that have ended.
    fn drop_ended(
        &self,
        table: &mut Option<Snapshot>,
        now: DateTime<Utc>,
    ) -> Result<(), StateError> {
        let ended: Vec<String> = self
            .loaded(table)?
            .values()
            .filter(|s| !s.is_live(now))
            .map(|s| s.id.clone())
            .collect();
        if ended.is_empty() {
            return Ok(());
        }
        let store = self.inner.state.store()?;
        save_suppressions(&store, &[], &ended)?;
        let mut map = HashMap::clone(self.loaded(table)?);
        map.retain(|_, s| s.is_live(now));
        *table = Some(Arc::new(map));
        self.inner.generation.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }

    fn silencers(&self) -> Vec<Arc<Silencer>> {
        lock(&self.inner.silencers).clone()
    }

    async fn create_silences(&self, suppression: &Suppression) -> (Vec<SilenceRef>, Vec<String>) {
        let mut made = Vec::new();
        let mut errors = Vec::new();
        for silencer in self.silencers() {
            match silencer.create(suppression).await {
                Ok(Some((id, ends_at))) => made.push(SilenceRef {
                    url: silencer.url().to_string(),
                    id,
                    ends_at: Some(ends_at),
                }),
                Ok(None) => {}
                Err(error) => {
                    tracing::warn!(
                        "cannot create the silence of suppression {}: {}",
                        suppression.id,
                        escape_controls(&error)
                    );
                    errors.push(error);
                }
            }
        }
        (made, errors)
    }

    async fn expire_silences(&self, silences: &[SilenceRef]) -> Vec<String> {
        let silencers = self.silencers();
        let mut errors = Vec::new();
        for silence in silences {
            let result = match silencers.iter().find(|s| s.url() == silence.url) {
                Some(silencer) => silencer.expire(&silence.id).await,
                None => Err(format!(
                    "no running llm_suppress transform has `alertmanager_silence.url` = {}; \
                     silence {} ends by itself",
                    silence.url, silence.id
                )),
            };
            if let Err(error) = result {
                tracing::warn!(
                    "cannot expire silence {}: {}",
                    escape_controls(&silence.id),
                    escape_controls(&error)
                );
                errors.push(error);
            }
        }
        errors
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tester() -> Actor {
        Actor {
            who: "tester".into(),
            via: "test".into(),
        }
    }

    fn request(pattern: &str, ttl: Option<Duration>) -> NewSuppression {
        NewSuppression {
            action: OperatorAction::Suppress,
            via: "test".into(),
            pattern_id: pattern.into(),
            reason: "deploy noise".into(),
            ttl,
            created_by: "ops".into(),
        }
    }

    #[tokio::test]
    async fn changes_are_published_at_once_and_persist() {
        let dir = tempfile::tempdir().unwrap();
        let registry = Suppressions::new(StateHandle::new(dir.path().to_path_buf()));
        let before = registry.generation();
        let created = registry.create(request("p1", None)).await.unwrap();
        assert!(!created.replaced);
        assert!(created.suppression.id.starts_with("sup-"));
        assert!(registry.generation() > before);
        assert!(registry.snapshot().unwrap().contains_key("p1"));

        let again = registry
            .create(request("p1", Some(Duration::from_secs(60))))
            .await
            .unwrap();
        assert!(again.replaced);
        assert_eq!(again.suppression.id, created.suppression.id, "the id stays");
        assert!(again.suppression.expires_at.is_some());

        let reopened = Suppressions::new(StateHandle::new(dir.path().to_path_buf()));
        drop(registry);
        assert_eq!(reopened.list().unwrap().len(), 1, "kept in the store");
        let removed = reopened
            .remove(&created.suppression.id, &tester())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(removed.suppression.pattern_id, "p1");
        assert!(reopened.list().unwrap().is_empty());
        assert!(reopened.remove("p1", &tester()).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn refuses_requests_without_a_pattern_or_reason() {
        let dir = tempfile::tempdir().unwrap();
        let registry = Suppressions::new(StateHandle::new(dir.path().to_path_buf()));
        let mut no_reason = request("p1", None);
        no_reason.reason = " ".into();
        assert!(matches!(
            registry.create(no_reason).await,
            Err(SuppressionError::Invalid(_))
        ));
        assert!(matches!(
            registry.create(request("two words", None)).await,
            Err(SuppressionError::Invalid(_))
        ));
        assert!(matches!(
            registry.create(request("p1", Some(Duration::ZERO))).await,
            Err(SuppressionError::Invalid(_))
        ));
        for id in [
            "a\u{0}b",
            "a\nb",
            "a\u{202e}b",
            "é",
            &"x".repeat(MAX_ID_BYTES + 1),
        ] {
            let Err(SuppressionError::Invalid(message)) = registry.create(request(id, None)).await
            else {
                panic!("{id:?} was accepted as a pattern id");
            };
            assert!(message.starts_with("`pattern_id` "), "{message}");
            let Err(SuppressionError::Invalid(message)) = registry.remove(id, &tester()).await
            else {
                panic!("{id:?} was accepted as an id to remove");
            };
            assert!(message.starts_with("`id` "), "{message}");
        }
        let mut essay = request("p1", None);
        essay.reason = "x".repeat(MAX_TEXT_BYTES + 1);
        assert!(matches!(
            registry.create(essay).await,
            Err(SuppressionError::Invalid(_))
        ));
    }

    #[tokio::test]
    async fn another_instances_change_applies_only_when_it_is_later() {
        let dir = tempfile::tempdir().unwrap();
        let registry = Suppressions::new(StateHandle::new(dir.path().to_path_buf()));
        let local = registry
            .create(request("p1", None))
            .await
            .unwrap()
            .suppression;
        let at = local.created_at;
        let remote = |reason: &str, at: DateTime<Utc>| Suppression {
            id: "sup-remote".into(),
            reason: reason.into(),
            created_at: at,
            ..local.clone()
        };
        let earlier = at - chrono::Duration::seconds(1);
        let later = at + chrono::Duration::seconds(1);
        assert!(
            !registry
                .apply_remote("p1", Some(remote("older", earlier)), earlier, true)
                .await
                .unwrap()
        );
        assert!(
            !registry
                .apply_remote("p1", None, earlier, true)
                .await
                .unwrap(),
            "an older deletion loses"
        );
        assert_eq!(registry.snapshot().unwrap()["p1"].reason, local.reason);

        let generation = registry.generation();
        assert!(
            registry
                .apply_remote("p1", Some(remote("newer", later)), later, false)
                .await
                .unwrap()
        );
        assert!(registry.generation() > generation, "transforms pick it up");
        let applied = registry.snapshot().unwrap()["p1"].clone();
        assert_eq!((applied.reason.as_str(), applied.remote), ("newer", true));
        assert!(
            !registry
                .apply_remote("p1", Some(remote("newer", later)), later, true)
                .await
                .unwrap(),
            "seen again: no change"
        );
        // Kept in the store like a local one.
        let reopened = Suppressions::new(StateHandle::new(dir.path().to_path_buf()));
        drop(registry);
        assert_eq!(reopened.list().unwrap()[0].id, "sup-remote");
        let deleted_at = later + chrono::Duration::seconds(1);
        assert!(
            reopened
                .apply_remote("p1", None, deleted_at, false)
                .await
                .unwrap()
        );
        assert!(reopened.list().unwrap().is_empty());
    }

    #[tokio::test]
    async fn removal_also_takes_the_pattern_id() {
        let dir = tempfile::tempdir().unwrap();
        let registry = Suppressions::new(StateHandle::new(dir.path().to_path_buf()));
        registry.create(request("p9", None)).await.unwrap();
        assert!(registry.remove("p9", &tester()).await.unwrap().is_some());
        assert!(registry.snapshot().unwrap().is_empty());
    }
}
