//! Saving the per-key state of `throttle` and `dedupe` in the state store,
//! so that a restart neither re-sends what a window held back nor forgets
//! what was seen.
//!
//! Each transform keeps one record per key under `<component id>/<key>`, in
//! a table of its type ([`AlertStore`]), so two transforms never share
//! state. Saving stays off the hot path: handling an event only notes its
//! key as changed ([`Changed::note`]); every [`SAVE_EVERY`] when something
//! changed, and at shutdown, the records of the changed keys are written
//! and those of keys that left are deleted, in one redb transaction
//! ([`KeyStore::save`]), on a blocking thread, so the transform does not
//! wait for the disk. A `kill -9` so loses at most the changes of the last
//! interval (and of a write still in flight), and leaves the previous or
//! the new state, never a mix.
//!
//! What is stored is bounded by what is held: a key that leaves memory
//! (its time is up, or the cap pushed it out) leaves the store at the next
//! save.
//!
//! Time: while running, the transforms measure windows on the monotonic
//! clock (`Instant`), which a change of the wall clock cannot disturb but
//! which means nothing to another process. Records hold wall-clock times,
//! converted when saving and loading ([`Clock`]), so the time howl was down
//! counts: a window that ended meanwhile is over when howl starts again.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::task::JoinHandle;
use tokio::time::{Instant, Interval, MissedTickBehavior};

use crate::alert::AlertStore;
use crate::components::transform::TaskContext;
use crate::internal_events::{ComponentMetrics, ErrorType, Stage};
use crate::state::{StateError, StateHandle};

/// How often changed keys are saved while running: what a `kill -9` can
/// lose at most (as for the `file` source's checkpoints).
pub const SAVE_EVERY: Duration = Duration::from_secs(1);

/// A timer ticking every [`SAVE_EVERY`], its first tick one interval from
/// now (the state was just loaded), never bunching up missed ticks.
pub fn save_timer() -> Interval {
    let mut timer = tokio::time::interval_at(Instant::now() + SAVE_EVERY, SAVE_EVERY);
    timer.set_missed_tick_behavior(MissedTickBehavior::Delay);
    timer
}

/// One moment on both clocks, to convert between them.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    instant: Instant,
    wall: DateTime<Utc>,
}

impl Clock {
    /// Now.
    pub fn now() -> Self {
        Self::at(Instant::now(), Utc::now())
    }

    /// A given moment (tests pretend hours passed between runs with it).
    pub fn at(instant: Instant, wall: DateTime<Utc>) -> Self {
        Self { instant, wall }
    }

    /// The monotonic side of this moment.
    pub fn instant(&self) -> Instant {
        self.instant
    }

    /// The wall-clock time of the monotonic `at`.
    pub fn wall_of(&self, at: Instant) -> DateTime<Utc> {
        if at <= self.instant {
            wall_before(self.wall, self.instant - at)
        } else {
            wall_after(self.wall, at - self.instant)
        }
    }

    /// How long ago the wall-clock `at` was; zero when it is in the future
    /// (the clock was set back while howl was down).
    pub fn age_of(&self, at: DateTime<Utc>) -> Duration {
        (self.wall - at).to_std().unwrap_or_default()
    }

    /// The monotonic moment of the wall-clock `at`, in the past. Callers
    /// drop entries older than their lifetime first, so this only reaches
    /// back that far; where the monotonic clock cannot (it may start at
    /// boot), the entry counts as new.
    pub fn instant_of(&self, at: DateTime<Utc>) -> Instant {
        self.instant
            .checked_sub(self.age_of(at))
            .unwrap_or(self.instant)
    }
}

/// `duration` after `at` (the end of time, rather than a panic, for an
/// absurd duration).
pub fn wall_after(at: DateTime<Utc>, duration: Duration) -> DateTime<Utc> {
    TimeDelta::from_std(duration)
        .ok()
        .and_then(|delta| at.checked_add_signed(delta))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// `duration` before `at` (the start of time for an absurd duration).
fn wall_before(at: DateTime<Utc>, duration: Duration) -> DateTime<Utc> {
    TimeDelta::from_std(duration)
        .ok()
        .and_then(|delta| at.checked_sub_signed(delta))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// The keys whose record changed since the last save.
#[derive(Debug, Default)]
pub struct Changed(HashSet<String>);

impl Changed {
    /// Notes that `key`'s record changed (it may be gone): cheap enough for
    /// every event.
    pub fn note(&mut self, key: &str) {
        if !self.0.contains(key) {
            self.0.insert(key.to_string());
        }
    }

    /// Whether there is anything to save.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The saved records of one transform.
pub struct KeyStore<T> {
    store: Arc<AlertStore<T>>,
    /// The write in flight, if any: one at a time, so writes land in order.
    writing: Option<JoinHandle<Result<(), Unsaved>>>,
}

/// A write that failed, with the keys it was to save.
struct Unsaved {
    keys: Vec<String>,
    error: StateError,
}

impl<T: Serialize + DeserializeOwned + Send + Sync + 'static> KeyStore<T> {
    /// Opens the records of the transform `cx.key` in `table` (one table per
    /// transform type).
    pub fn open(cx: &TaskContext, table: &'static str) -> anyhow::Result<Self> {
        Self::open_in(&cx.state, table, cx.key.id())
    }

    fn open_in(state: &StateHandle, table: &'static str, id: &str) -> anyhow::Result<Self> {
        let store = AlertStore::open_in(state, table, id)
            .map_err(|e| anyhow::anyhow!("cannot open the saved state: {e}"))?;
        Ok(Self {
            store: Arc::new(store),
            writing: None,
        })
    }

    /// Every saved record, by key. Records that no longer parse (another
    /// format) are skipped with a warning.
    pub fn load(&self) -> anyhow::Result<HashMap<String, T>> {
        self.store
            .load()
            .map_err(|e| anyhow::anyhow!("cannot load the saved state: {e}"))
    }

    /// Starts saving the record of every changed key (`record` gives it;
    /// `None` deletes the key's) in one durable transaction, written on a
    /// blocking thread so that the transform goes on handling events
    /// meanwhile. Returns the keys left to save: none, or, while the
    /// previous write is still going, all of them (for the next call).
    pub async fn save(
        &mut self,
        changed: Changed,
        record: impl Fn(&str) -> Option<T>,
        metrics: &ComponentMetrics,
    ) -> Changed {
        if self.writing.as_ref().is_some_and(|w| !w.is_finished()) {
            return changed;
        }
        let mut changed = changed;
        self.finish_write(&mut changed, metrics).await;
        if changed.is_empty() {
            return changed;
        }
        let records: Vec<(String, Option<T>)> = changed
            .0
            .into_iter()
            .map(|key| {
                let value = record(&key);
                (key, value)
            })
            .collect();
        let store = Arc::clone(&self.store);
        self.writing = Some(tokio::task::spawn_blocking(move || write(&store, records)));
        Changed::default()
    }

    /// Saves everything and waits until it is written: at shutdown. Returns
    /// what could not be saved.
    pub async fn flush(
        &mut self,
        changed: Changed,
        record: impl Fn(&str) -> Option<T>,
        metrics: &ComponentMetrics,
    ) -> Changed {
        let mut changed = changed;
        self.finish_write(&mut changed, metrics).await;
        let mut changed = self.save(changed, record, metrics).await;
        self.finish_write(&mut changed, metrics).await;
        changed
    }

    /// Waits for the write in flight, if any. A failure is counted and
    /// logged (`state_save_failed`), and its keys go back to `changed`, for
    /// the next save to retry.
    async fn finish_write(&mut self, changed: &mut Changed, metrics: &ComponentMetrics) {
        let Some(writing) = self.writing.take() else {
            return;
        };
        let (keys, error) = match writing.await {
            Ok(Ok(())) => return,
            Ok(Err(Unsaved { keys, error })) => (keys, error.to_string()),
            Err(stopped) => (Vec::new(), format!("the writer stopped: {stopped}")),
        };
        metrics.error(
            ErrorType::StateSaveFailed,
            Stage::Processing,
            &format_args!(
                "cannot save the state of {} key(s); retrying: {error}",
                keys.len()
            ),
        );
        for key in keys {
            changed.0.insert(key);
        }
    }
}

/// Writes `records` (`None`: delete) in one transaction.
fn write<T: Serialize + DeserializeOwned>(
    store: &AlertStore<T>,
    records: Vec<(String, Option<T>)>,
) -> Result<(), Unsaved> {
    let put: Vec<(&str, &T)> = records
        .iter()
        .filter_map(|(key, value)| Some((key.as_str(), value.as_ref()?)))
        .collect();
    let delete: Vec<&str> = records
        .iter()
        .filter(|(_, value)| value.is_none())
        .map(|(key, _)| key.as_str())
        .collect();
    store.save(&put, &delete).map_err(|error| Unsaved {
        keys: records.iter().map(|(key, _)| key.clone()).collect(),
        error,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::component_key::{ComponentKey, ComponentKind};

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn the_clocks_convert_both_ways_and_the_future_is_no_age() {
        let instant = Instant::now();
        let wall = DateTime::parse_from_rfc3339("2026-01-01T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let clock = Clock::at(instant + HOUR, wall);
        let hour_ago = wall - TimeDelta::hours(1);
        assert_eq!(clock.wall_of(instant), hour_ago);
        assert_eq!(
            clock.wall_of(instant + 2 * HOUR),
            wall + TimeDelta::hours(1)
        );
        assert_eq!(clock.age_of(hour_ago), HOUR);
        assert_eq!(clock.instant_of(hour_ago), instant);
        let tomorrow = wall + TimeDelta::days(1);
        assert_eq!(clock.age_of(tomorrow), Duration::ZERO);
        assert_eq!(clock.instant_of(tomorrow), instant + HOUR);
    }

    fn store(dir: &std::path::Path, id: &str) -> KeyStore<u64> {
        KeyStore::open_in(&StateHandle::new(dir.to_path_buf()), "test_keys", id).unwrap()
    }

    #[tokio::test]
    async fn saves_changed_keys_deletes_gone_ones_and_keeps_components_apart() {
        let dir = tempfile::tempdir().unwrap();
        let metrics =
            ComponentMetrics::new(ComponentKey::new(ComponentKind::Transform, "a", "test"));
        let held = HashMap::from([("x".to_string(), 1), ("y".to_string(), 2)]);
        {
            let mut store = store(dir.path(), "a");
            let mut changed = Changed::default();
            changed.note("x");
            changed.note("y");
            changed.note("x");
            let left = store
                .save(changed, |key| held.get(key).copied(), &metrics)
                .await;
            assert!(left.is_empty(), "written in the background");
            let mut changed = Changed::default();
            changed.note("y");
            changed.note("never-saved");
            // Waits for the first write before it starts the second.
            let left = store
                .flush(changed, |key| (key == "x").then_some(1), &metrics)
                .await;
            assert!(left.is_empty());
        }
        let loaded = store(dir.path(), "a").load().unwrap();
        assert_eq!(loaded, HashMap::from([("x".to_string(), 1)]));
        assert!(
            store(dir.path(), "b").load().unwrap().is_empty(),
            "b sees nothing of a"
        );
    }
}
