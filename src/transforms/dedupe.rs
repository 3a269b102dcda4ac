//! `dedupe`: drop events that repeat one seen recently, compared on a list
//! of fields (by default `message`).
//!
//! An event is a duplicate when an earlier event had the same values in
//! every compared field (a missing field and a `null` one differ) and that
//! earlier sighting is still remembered: at most `cache_size` keys are kept,
//! the least recently seen forgotten first, and with `window_secs` a key is
//! also forgotten that long after the event that let it through. Duplicates
//! do not extend the window, so a line repeating forever passes once per
//! window: a reminder that it is still happening, not a flood. (The time is
//! the event's arrival in this transform; a clock in the data could be
//! wrong or replayed.)
//!
//! Duplicates go to `ID.dropped`, as in `throttle`, so a topology can keep
//! or count them; when nothing consumes `ID.dropped` they are counted as
//! discarded intentionally. State is shared by every event, so this runs as
//! one task rather than as copies on several cores.
//!
//! What it remembers survives restarts: every key's first and last
//! sighting is saved in the state store ([`saved_keys`](super::saved_keys),
//! table `transform_dedupe`) every second when something changed and at
//! shutdown, and loaded at start, so a restart lets no repeat through. A key
//! whose window ran out while howl was down is forgotten; beyond
//! `cache_size`, the least recently seen keys are. Saved keys are judged by
//! the current options (a changed `window_secs` moves when they are
//! forgotten; keys of other `fields` simply never match and age out).

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::time::Duration;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use vrl::path::OwnedValuePath;

use super::keyed_state::{KeyedState, Restored};
use super::saved_keys::{Changed, Clock, KeyStore, save_timer};
use crate::components::transform::{
    DropRoute, TaskContext, TaskTransform, Transform, TransformConfig, TransformOutput,
};
use crate::components::{BuildContext, ComponentFuture, OutputSpec};
use crate::diagnostic::BuildError;
use crate::event::Event;
use crate::internal_events::ComponentMetrics;
use crate::options::{FieldPath, Seconds};

/// Options of the `dedupe` transform.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DedupeConfig {
    /// The fields compared to decide that two events are the same, as paths
    /// (`message`, `pattern.id`, `.host`); at least one.
    #[serde(default = "default_fields")]
    fields: Vec<FieldPath>,
    /// How many distinct keys are remembered (and saved under `data_dir`);
    /// beyond that the least recently seen is forgotten. Memory grows with
    /// it times the size of the compared values.
    #[serde(default = "default_cache_size")]
    cache_size: NonZeroUsize,
    /// Forget a key this long after the event that let it through (a
    /// duplicate then passes again, as a reminder); unset remembers keys
    /// until `cache_size` pushes them out.
    window_secs: Option<Seconds>,
}

fn default_fields() -> Vec<FieldPath> {
    vec![super::default_field_path("message")]
}

fn default_cache_size() -> NonZeroUsize {
    const { NonZeroUsize::new(5000).unwrap() }
}

/// The index of `ID.dropped` among the named outputs.
const DROPPED: usize = 0;

/// The state-store table of `dedupe` transforms.
const TABLE: &str = "transform_dedupe";

/// How often keys whose window ran out are swept from memory and the
/// store (a scan of every key; lookups ignore them meanwhile).
const SWEEP_EVERY: Duration = Duration::from_secs(10);

impl TransformConfig for DedupeConfig {
    fn outputs(&self) -> Vec<OutputSpec> {
        vec![
            OutputSpec::default_output(),
            OutputSpec::named("dropped", false),
        ]
    }

    fn build(&self, _cx: &BuildContext) -> Result<Transform, BuildError> {
        if self.fields.is_empty() {
            return Err(
                BuildError::new("`fields` must name at least one field to compare")
                    .for_option("fields"),
            );
        }
        let window = self
            .window_secs
            .map(|secs| secs.positive("window_secs"))
            .transpose()?;
        Ok(Transform::Task(Box::new(Dedupe {
            fields: self.fields.iter().map(|f| f.path().clone()).collect(),
            window,
            seen: KeyedState::new(window, self.cache_size.get()),
            changed: Changed::default(),
        })))
    }
}

struct Dedupe {
    fields: Vec<OwnedValuePath>,
    /// How long after the sighting that let it through a key is forgotten
    /// (`None`: only `cache_size` forgets).
    window: Option<Duration>,
    /// The keys seen, opened by the sighting that let them through and
    /// touched by every repeat (least recently seen evicted first).
    seen: KeyedState<()>,
    /// Keys whose saved record is out of date.
    changed: Changed,
}

/// What is saved of one key, in wall-clock time.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct SavedSighting {
    /// The sighting that let it through: its window counts from here.
    first_seen: DateTime<Utc>,
    /// The latest sighting: its place in the eviction order.
    last_seen: DateTime<Utc>,
}

impl TaskTransform for Dedupe {
    fn run(mut self: Box<Self>, mut cx: TaskContext) -> ComponentFuture {
        Box::pin(async move {
            let dropped = DropRoute::new(&cx.outputs, DROPPED);
            let mut store = KeyStore::open(&cx, TABLE)?;
            self.restore(store.load()?, &Clock::now());
            if self.seen.len() > 0 {
                tracing::info!(component = %cx.key, keys = self.seen.len(), "loaded saved dedupe keys");
            }
            self.save(&mut store, &cx.metrics).await;
            let mut save = save_timer();
            let mut sweep = tokio::time::interval(SWEEP_EVERY);
            loop {
                tokio::select! {
                    batch = cx.input.recv() => {
                        let Some(events) = batch else { break };
                        let now = Instant::now();
                        let mut out = cx.outputs.collector(events.len());
                        for event in events {
                            self.handle(event, now, &mut out, &cx.metrics, dropped);
                        }
                        cx.outputs.send(out).await;
                    }
                    _ = save.tick() => self.save(&mut store, &cx.metrics).await,
                    _ = sweep.tick(), if self.window.is_some() => {
                        for key in self.seen.remove_expired(Instant::now()) {
                            self.changed.note(&key);
                        }
                    }
                }
            }
            let clock = Clock::now();
            let changed = std::mem::take(&mut self.changed);
            self.changed = store
                .flush(changed, |key| self.record(key, &clock), &cx.metrics)
                .await;
            Ok(())
        })
    }
}

impl Dedupe {
    fn handle(
        &mut self,
        event: Event,
        now: Instant,
        out: &mut TransformOutput,
        metrics: &ComponentMetrics,
        dropped: DropRoute,
    ) {
        let key = self.key(&event);
        self.changed.note(&key);
        if self.seen.get_mut(&key, now).is_some() {
            self.seen.touch(&key, now);
            dropped.drop_event(event, out, metrics, "duplicate");
        } else {
            // Whatever this pushes out (an expired sighting of the same key,
            // or the least recently seen key) is forgotten, here and in the
            // store.
            if let Some(pushed_out) = self.seen.insert(key, (), now) {
                self.changed.note(&pushed_out.key);
            }
            out.push(event);
        }
    }

    /// What is saved of `key` (`None`: nothing, its record goes).
    fn record(&self, key: &str, clock: &Clock) -> Option<SavedSighting> {
        self.seen.entry(key).map(|entry| SavedSighting {
            first_seen: clock.wall_of(entry.opened),
            last_seen: clock.wall_of(entry.used),
        })
    }

    /// Starts saving the records of the keys that changed (a failure is
    /// counted, and the next save tries again).
    async fn save(&mut self, store: &mut KeyStore<SavedSighting>, metrics: &ComponentMetrics) {
        let clock = Clock::now();
        let changed = std::mem::take(&mut self.changed);
        self.changed = store
            .save(changed, |key| self.record(key, &clock), metrics)
            .await;
    }

    /// Puts back what an earlier run saved, judged by the current options:
    /// keys whose window ran out meanwhile are forgotten, and beyond
    /// `cache_size` the least recently seen are; their records go.
    fn restore(&mut self, saved: HashMap<String, SavedSighting>, clock: &Clock) {
        let mut restored = Vec::with_capacity(saved.len());
        for (key, sighting) in saved {
            if self
                .window
                .is_some_and(|window| clock.age_of(sighting.first_seen) >= window)
            {
                self.changed.note(&key);
                continue;
            }
            let opened = clock.instant_of(sighting.first_seen);
            restored.push(Restored {
                key,
                value: (),
                opened,
                used: clock.instant_of(sighting.last_seen).max(opened),
            });
        }
        for pushed_out in self.seen.restore(restored) {
            self.changed.note(&pushed_out.key);
        }
    }

    /// The compared values as one string: per field, `-` when it is absent,
    /// else `=` and its JSON, each followed by a separator JSON never
    /// contains unescaped.
    fn key(&self, event: &Event) -> String {
        let mut key = String::new();
        for path in &self.fields {
            match event.get(path) {
                None => key.push('-'),
                Some(value) => {
                    key.push('=');
                    // Serializing a VRL value cannot fail (string keys,
                    // no non-finite floats).
                    key.push_str(&serde_json::to_string(value).unwrap_or_default());
                }
            }
            key.push('\n');
        }
        key
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::transforms::task_harness::{Harness, build_error, event, messages, parse_error};

    fn dedupe(options: &str) -> Harness {
        Harness::start::<DedupeConfig>(options, &["dropped"])
    }

    #[tokio::test(start_paused = true)]
    async fn drops_events_whose_message_was_seen_and_routes_them_to_dropped() {
        let h = dedupe("");
        h.send(vec![
            event("disk full", "a"),
            event("db down", "a"),
            event("disk full", "b"),
        ])
        .await;
        let outputs = h.finish().await;
        assert_eq!(messages(&outputs.default), ["disk full", "db down"]);
        let dropped = &outputs.named["dropped"];
        assert_eq!(messages(dropped), ["disk full"]);
        assert_eq!(
            dropped[0].get_field("service").unwrap().to_string_lossy(),
            "b",
            "the duplicate itself is routed, unchanged"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn compares_every_listed_field_and_tells_missing_from_null() {
        let h = dedupe("fields = [\"message\", \".service\"]");
        let mut null_service = event("m", "");
        null_service.insert_field("service", vrl::value::Value::Null);
        let no_service = Event::from_value(vrl::value!({"message": "m"}));
        h.send(vec![
            event("m", "a"),
            event("m", "b"),
            event("m", "a"),
            null_service.clone(),
            no_service.clone(),
            null_service,
            no_service,
        ])
        .await;
        let outputs = h.finish().await;
        assert_eq!(outputs.default.len(), 4, "m/a, m/b, m/null, m/missing");
        assert_eq!(outputs.named["dropped"].len(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn forgets_a_key_window_secs_after_the_event_that_let_it_through() {
        let mut h = dedupe("window_secs = 10");
        h.send(vec![event("tick", "a")]).await;
        tokio::time::sleep(Duration::from_secs(6)).await;
        h.send(vec![event("tick", "b")]).await;
        h.settle().await;
        assert_eq!(h.take(Some("dropped")).len(), 1, "6 s later: a duplicate");
        tokio::time::sleep(Duration::from_secs(4)).await;
        h.send(vec![event("tick", "c")]).await;
        let outputs = h.finish().await;
        assert_eq!(
            messages(&outputs.default),
            ["tick", "tick"],
            "10 s after the first, the dropped one in between did not extend the window"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn cache_size_forgets_the_least_recently_seen_key() {
        let h = dedupe("cache_size = 2");
        h.send(vec![
            event("a", ""),
            event("b", ""),
            event("a", ""), // duplicate; a is now the most recently seen
            event("c", ""), // forgets b, not a
            event("a", ""), // still a duplicate
            event("b", ""), // forgotten: passes again
        ])
        .await;
        let outputs = h.finish().await;
        assert_eq!(messages(&outputs.default), ["a", "b", "c", "b"]);
        assert_eq!(messages(&outputs.named["dropped"]), ["a", "a"]);
    }

    #[tokio::test(start_paused = true)]
    async fn duplicates_without_a_consumer_are_not_routed() {
        let h = Harness::start::<DedupeConfig>("", &[]);
        h.send(vec![event("x", ""), event("x", "")]).await;
        let outputs = h.finish().await;
        assert_eq!(messages(&outputs.default), ["x"]);
        assert!(outputs.named.is_empty());
    }

    #[test]
    fn rejects_unusable_options() {
        assert!(build_error::<DedupeConfig>("fields = []").contains("at least one field"));
        assert!(build_error::<DedupeConfig>("window_secs = 0").contains("more than 0"));
        for (options, expected, at) in [
            ("cache_size = 0", "nonzero", "0"),
            ("window_secs = -1", "invalid duration", "-1"),
            (
                "fields = [\"a..b\"]",
                "invalid field path `a..b`",
                "\"a..b\"",
            ),
        ] {
            let (message, span) = parse_error::<DedupeConfig>(options);
            assert!(message.contains(expected), "{options}: {message}");
            assert_eq!(span, at, "{options}: {message}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn window_secs_takes_a_duration_with_units() {
        let mut h = dedupe("window_secs = \"1m\"");
        h.send(vec![event("tick", "a")]).await;
        tokio::time::sleep(Duration::from_secs(59)).await;
        h.send(vec![event("tick", "b")]).await;
        h.settle().await;
        assert_eq!(h.take(Some("dropped")).len(), 1, "59 s later: a duplicate");
        tokio::time::sleep(Duration::from_secs(1)).await;
        h.send(vec![event("tick", "c")]).await;
        let outputs = h.finish().await;
        assert_eq!(messages(&outputs.default), ["tick", "tick"]);
    }

    // Saving and restoring. Each test keeps its state in a directory of
    // its own; a second harness on it is a restart.

    use std::path::Path;

    use chrono::Utc;

    use crate::alert::AlertStore;
    use crate::state::StateHandle;

    fn dedupe_in(dir: &Path, options: &str) -> Harness {
        Harness::start_with_state::<DedupeConfig>(
            options,
            &["dropped"],
            StateHandle::new(dir.to_path_buf()),
        )
    }

    fn store(dir: &Path) -> AlertStore<SavedSighting> {
        AlertStore::open_in(&StateHandle::new(dir.to_path_buf()), TABLE, "t").unwrap()
    }

    /// The key `dedupe` compares for an event with this `message`.
    fn key_of(message: &str) -> String {
        format!("={message:?}\n")
    }

    #[tokio::test(start_paused = true)]
    async fn what_was_seen_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let h = dedupe_in(dir.path(), "window_secs = 600");
        h.send(vec![event("disk full", "a")]).await;
        h.finish().await;

        let h = dedupe_in(dir.path(), "window_secs = 600");
        h.send(vec![event("disk full", "b"), event("db down", "b")])
            .await;
        let outputs = h.finish().await;
        assert_eq!(messages(&outputs.default), ["db down"]);
        assert_eq!(messages(&outputs.named["dropped"]), ["disk full"]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_crash_loses_at_most_what_was_seen_since_the_last_save() {
        let dir = tempfile::tempdir().unwrap();
        let h = dedupe_in(dir.path(), "");
        h.send(vec![event("saved", "")]).await;
        tokio::time::sleep(Duration::from_millis(1500)).await;
        h.send(vec![event("unsaved", "")]).await;
        h.settle().await;
        h.crash().await;

        let h = dedupe_in(dir.path(), "");
        h.send(vec![event("saved", ""), event("unsaved", "")]).await;
        let outputs = h.finish().await;
        assert_eq!(messages(&outputs.default), ["unsaved"]);
    }

    /// Saves sightings for the test transform, as an earlier run would
    /// have: `(message, first seen, last seen)`, in minutes ago.
    fn save_sightings(dir: &Path, sightings: &[(&str, i64, i64)]) {
        let now = Utc::now();
        let ago = |minutes: i64| now - chrono::Duration::minutes(minutes);
        let records: Vec<(String, SavedSighting)> = sightings
            .iter()
            .map(|(message, first, last)| {
                let sighting = SavedSighting {
                    first_seen: ago(*first),
                    last_seen: ago(*last),
                };
                (key_of(message), sighting)
            })
            .collect();
        let put: Vec<(&str, &SavedSighting)> =
            records.iter().map(|(k, r)| (k.as_str(), r)).collect();
        store(dir).save(&put, &[]).unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn keys_whose_window_ran_out_while_howl_was_down_are_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        save_sightings(
            dir.path(),
            &[
                // Seen again a minute ago, but let through 11 minutes ago.
                ("old", 11, 1),
                ("recent", 5, 5),
            ],
        );
        let h = dedupe_in(dir.path(), "window_secs = 600");
        h.send(vec![event("old", ""), event("recent", "")]).await;
        let outputs = h.finish().await;
        assert_eq!(messages(&outputs.default), ["old"], "its window ran out");
        assert_eq!(messages(&outputs.named["dropped"]), ["recent"]);
    }

    #[tokio::test(start_paused = true)]
    async fn beyond_cache_size_the_least_recently_seen_saved_keys_are_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        save_sightings(
            dir.path(),
            &[("first", 30, 2), ("second", 20, 20), ("third", 10, 10)],
        );
        let h = dedupe_in(dir.path(), "cache_size = 2");
        h.send(vec![
            event("first", ""),
            event("third", ""),
            event("second", ""),
        ])
        .await;
        let outputs = h.finish().await;
        assert_eq!(messages(&outputs.named["dropped"]), ["first", "third"]);
        assert_eq!(messages(&outputs.default), ["second"]);
        assert_eq!(
            store(dir.path()).load().unwrap().len(),
            2,
            "the store is bounded too"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn keys_whose_window_runs_out_leave_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let h = dedupe_in(dir.path(), "window_secs = 5");
        h.send(vec![event("brief", "")]).await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        h.crash().await;
        assert_eq!(store(dir.path()).load().unwrap().len(), 1, "saved");

        let h = dedupe_in(dir.path(), "window_secs = 5");
        tokio::time::sleep(SWEEP_EVERY + Duration::from_secs(2)).await;
        h.crash().await;
        assert!(
            store(dir.path()).load().unwrap().is_empty(),
            "swept and deleted without a new event or a shutdown"
        );
    }
}
