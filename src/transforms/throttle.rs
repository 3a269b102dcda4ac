//! `throttle`: at most `threshold` events per key per window, so one noisy
//! pattern cannot flood an alert channel ("one alert per pattern per hour").
//!
//! Windows are fixed and per key: a key's window opens with its first event
//! and lasts `window_secs`; the next event after it closed opens a new one.
//! (A global clock-aligned window would let a burst straddling the boundary
//! through twice; a per-key window never does.) Events over the threshold are
//! not lost: they go to `ID.dropped`, and when a window that dropped anything
//! closes, one summary event on `ID.summaries` says how many, so an operator
//! reading alerts still learns that a problem kept happening. When nothing
//! consumes `ID.dropped`, the events over the threshold are counted as
//! discarded intentionally instead.
//!
//! Alerts are throttled by episode, not by event: for events that declare
//! `.alert.state` (as `threshold`'s do), a `resolved` one whose firing was
//! throttled is dropped with it, and every other resolution passes (however
//! long after its firing: a stray resolution is better than an alert left
//! firing in a chat). Resolutions do not count against the window. Key such
//! events on the alert alone (`key = "{{ .alert.key }}"`).
//!
//! Memory is bounded: windows are forgotten when they close, and at most
//! `max_keys` are open at once; a new key beyond that closes the oldest
//! window early (with its summary). Windows close on a timer set to the
//! earliest closing time (windows close in the order they opened, as they
//! all last the same time), not by scanning every key.
//!
//! The windows and the held-back firings survive restarts: they are saved
//! per key in the state store ([`saved_keys`](super::saved_keys), table
//! `transform_throttle`) every second when something changed and at
//! shutdown, and loaded at start, so a restart neither lets through what a
//! window holds back nor loses a held-back firing's resolution. When the
//! input ends, every open window with drops gets its summary (ending then)
//! before the task returns, and counts its drops afresh from there, so a
//! window carried over a restart is never summarised twice. A window whose
//! time ran out while howl was down is over; if a crash kept its summary
//! from being sent, it is sent at start. Saved windows are judged by the
//! current options: a changed `window_secs` moves their end, a changed
//! `threshold` what they still let through.

use std::collections::HashMap;
use std::num::{NonZeroU64, NonZeroUsize};
use std::time::Duration;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use vrl::value::{ObjectMap, Value};

use super::keyed_state::{KeyedState, Removed, Restored};
use super::saved_keys::{Changed, Clock, KeyStore, save_timer, wall_after};
use crate::alert::AlertState;
use crate::components::transform::{
    DropRoute, TaskContext, TaskTransform, Transform, TransformConfig, TransformOutput,
};
use crate::components::{BuildContext, ComponentFuture, OutputSpec};
use crate::diagnostic::BuildError;
use crate::event::{Event, fields};
use crate::internal_events::{ComponentMetrics, ErrorType, Stage};
use crate::options::{FieldPath, Seconds};
use crate::template::Template;

/// Options of the `throttle` transform.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ThrottleConfig {
    /// How many events of one key pass per window, at least 1 (to drop
    /// every event, use a `filter`); the rest go to `ID.dropped`.
    #[schemars(extend("x-placeholder" = 10))]
    threshold: NonZeroU64,
    /// The length of a window. A key's window opens with its first event;
    /// the first event after it closed opens the next one.
    window_secs: Seconds,
    /// The field whose value is the key, e.g. `pattern.id`. Give at most
    /// one of `key_field` and `key`; with neither, all events share one key.
    key_field: Option<FieldPath>,
    /// A template rendering the key, e.g. `{{ .host }}/{{ .pattern.id }}`;
    /// for alerts, `{{ .alert.key }}`.
    key: Option<Template>,
    /// The most keys with an open window; a new key beyond that closes the
    /// oldest window early (with its summary). Bounds memory, and what is
    /// saved under `data_dir`, when keys come from the data.
    #[serde(default = "default_max_keys")]
    max_keys: NonZeroUsize,
}

fn default_max_keys() -> NonZeroUsize {
    const { NonZeroUsize::new(10_000).unwrap() }
}

/// The named outputs, in the order of `outputs()` (their index in
/// `TransformOutput::push_named`).
const DROPPED: usize = 0;
const SUMMARIES: usize = 1;

/// The state-store table of `throttle` transforms.
const TABLE: &str = "transform_throttle";

impl TransformConfig for ThrottleConfig {
    fn outputs(&self) -> Vec<OutputSpec> {
        vec![
            OutputSpec::default_output(),
            OutputSpec::named("dropped", false),
            OutputSpec::named("summaries", false),
        ]
    }

    fn build(&self, _cx: &BuildContext) -> Result<Transform, BuildError> {
        let window = self.window_secs.positive("window_secs")?;
        let key = match (&self.key_field, &self.key) {
            (Some(_), Some(_)) => {
                return Err(BuildError::new(
                    "give at most one of `key_field` (a field) and `key` (a template)",
                )
                .for_option("key"));
            }
            (Some(field), None) => Some(Template::field(field.as_str()).map_err(|e| {
                BuildError::new(format!("`key_field`: {e}")).for_option("key_field")
            })?),
            (None, key) => key.clone(),
        };
        Ok(Transform::Task(Box::new(Throttle {
            threshold: self.threshold.get(),
            window,
            key,
            windows: KeyedState::new(Some(window), self.max_keys.get()),
            held_back: KeyedState::new(None, self.max_keys.get()),
            changed: Changed::default(),
        })))
    }
}

struct Throttle {
    threshold: u64,
    window: Duration,
    key: Option<Template>,
    windows: KeyedState<Window>,
    /// Alerts whose latest firing was throttled: their resolution is too.
    held_back: KeyedState<()>,
    /// Keys whose saved record is out of date.
    changed: Changed,
}

/// One key's current window (it opened when its entry in `windows` did).
#[derive(Debug)]
struct Window {
    passed: u64,
    suppressed: u64,
    /// Since when `suppressed` counts: the opening, or the summary sent
    /// when the input last ended (the start of the next summary).
    counted_since: Instant,
}

/// What is saved of one key, in wall-clock time.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct SavedKey {
    /// Its open window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    window: Option<SavedWindow>,
    /// When its alert's latest firing was held back (so its resolution is).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    held_back_at: Option<DateTime<Utc>>,
}

/// A saved [`Window`].
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct SavedWindow {
    /// When it opened: it ends `window_secs` later.
    opened_at: DateTime<Utc>,
    /// How many events it let through.
    passed: u64,
    /// How many it dropped since `counted_since`.
    suppressed: u64,
    /// Where its next summary starts.
    counted_since: DateTime<Utc>,
}

impl TaskTransform for Throttle {
    fn run(self: Box<Self>, cx: TaskContext) -> ComponentFuture {
        Box::pin(self.run_loop(cx))
    }
}

impl Throttle {
    async fn run_loop(mut self: Box<Self>, mut cx: TaskContext) -> anyhow::Result<()> {
        let dropped = DropRoute::new(&cx.outputs, DROPPED);
        let mut store = KeyStore::open(&cx, TABLE)?;
        let mut out = cx.outputs.collector(0);
        self.restore(store.load()?, &Clock::now(), &mut out);
        if self.windows.len() + self.held_back.len() > 0 {
            tracing::info!(
                component = %cx.key,
                windows = self.windows.len(),
                held_back = self.held_back.len(),
                "loaded saved throttle windows"
            );
        }
        cx.outputs.send(out).await;
        self.save(&mut store, &cx.metrics).await;
        let mut save = save_timer();
        loop {
            let next_close = self.windows.next_expiry();
            let closing = async {
                match next_close {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            let out = tokio::select! {
                () = closing => {
                    let mut out = cx.outputs.collector(0);
                    self.close_expired(&Clock::now(), &mut out);
                    out
                }
                batch = cx.input.recv() => {
                    let Some(events) = batch else { break };
                    let clock = Clock::now();
                    let mut out = cx.outputs.collector(events.len());
                    // Close what is due first, so an event never lands in a
                    // window that should already be over.
                    self.close_expired(&clock, &mut out);
                    for event in events {
                        self.handle(event, &clock, &mut out, &cx.metrics, dropped);
                    }
                    out
                }
                _ = save.tick() => {
                    self.save(&mut store, &cx.metrics).await;
                    continue;
                }
            };
            cx.outputs.send(out).await;
        }
        let clock = Clock::now();
        let mut out = cx.outputs.collector(0);
        self.summarise_open_windows(&clock, &mut out);
        cx.outputs.send(out).await;
        // Saved after the summaries left: a crash in between sends them
        // again rather than never.
        let changed = std::mem::take(&mut self.changed);
        self.changed = store
            .flush(changed, |key| self.record(key, &clock), &cx.metrics)
            .await;
        Ok(())
    }

    fn handle(
        &mut self,
        event: Event,
        clock: &Clock,
        out: &mut TransformOutput,
        metrics: &ComponentMetrics,
        dropped: DropRoute,
    ) {
        let now = clock.instant();
        let key = self.render_key(&event, metrics);
        match AlertState::declared(&event) {
            Some(AlertState::Resolved) => {
                if self.held_back.remove(&key).is_some() {
                    self.changed.note(&key);
                    dropped.drop_event(event, out, metrics, "its firing was throttled");
                } else {
                    out.push(event);
                }
                return;
            }
            Some(AlertState::Firing) => {
                if self.passes(&key, now) {
                    self.held_back.remove(&key);
                } else if self.held_back.get_mut(&key, now).is_none()
                    && let Some(pushed_out) = self.held_back.insert(key.clone(), (), now)
                {
                    self.changed.note(&pushed_out.key);
                }
            }
            None => {}
        }
        self.changed.note(&key);
        match self.windows.get_mut(&key, now) {
            Some(window) if window.passed < self.threshold => {
                window.passed += 1;
                out.push(event);
            }
            Some(window) => {
                window.suppressed += 1;
                dropped.drop_event(event, out, metrics, "over the throttle threshold");
            }
            None => {
                let window = Window {
                    passed: 1,
                    suppressed: 0,
                    counted_since: now,
                };
                if let Some(pushed_out) = self.windows.insert(key, window, now) {
                    if pushed_out.opened + self.window > now {
                        metrics.warn_limited(
                            "throttle_max_keys",
                            &format_args!(
                                "more than `max_keys` = {} keys have an open window; closing the oldest early",
                                self.windows.len()
                            ),
                        );
                    }
                    self.changed.note(&pushed_out.key);
                    self.summarise(pushed_out, clock, out);
                }
                out.push(event);
            }
        }
    }

    /// Whether an event of `key` arriving at `now` is within the threshold.
    fn passes(&mut self, key: &str, now: Instant) -> bool {
        self.windows
            .get_mut(key, now)
            .is_none_or(|window| window.passed < self.threshold)
    }

    fn render_key(&self, event: &Event, metrics: &ComponentMetrics) -> String {
        let Some(template) = &self.key else {
            return String::new();
        };
        let rendered = template.render(event);
        if !rendered.missing.is_empty() {
            metrics.error(
                ErrorType::TemplateFailed,
                Stage::Processing,
                &format_args!(
                    "the throttle key refers to missing field(s) {}; rendered them empty",
                    rendered.missing.join(", ")
                ),
            );
        }
        rendered.text
    }

    fn close_expired(&mut self, clock: &Clock, out: &mut TransformOutput) {
        while let Some(window) = self.windows.pop_expired(clock.instant()) {
            self.changed.note(&window.key);
            self.summarise(window, clock, out);
        }
    }

    /// Emits the summary of a window that ends now (or at its natural end,
    /// if that came first), when it dropped anything.
    fn summarise(&self, window: Removed<Window>, clock: &Clock, out: &mut TransformOutput) {
        let Removed { key, value, opened } = window;
        if value.suppressed == 0 {
            return;
        }
        let end = clock.instant().min(opened + self.window);
        let start = value.counted_since.min(end);
        let summary = self.summary(
            key,
            value.suppressed,
            clock.wall_of(start),
            clock.wall_of(end),
        );
        out.push_named(SUMMARIES, summary);
    }

    /// When the input ends: the summary of every open window that dropped
    /// anything, ending now. The windows stay (they are saved and go on
    /// after a restart), counting their drops afresh from now.
    fn summarise_open_windows(&mut self, clock: &Clock, out: &mut TransformOutput) {
        let mut due = Vec::new();
        for (key, window, opened) in self.windows.entries_mut() {
            if window.suppressed == 0 {
                continue;
            }
            let end = clock.instant().min(opened + self.window);
            due.push((
                key.to_string(),
                window.suppressed,
                window.counted_since.min(end),
                end,
            ));
            window.suppressed = 0;
            window.counted_since = end;
        }
        for (key, suppressed, start, end) in due {
            self.changed.note(&key);
            let summary = self.summary(key, suppressed, clock.wall_of(start), clock.wall_of(end));
            out.push_named(SUMMARIES, summary);
        }
    }

    /// The summary event of `suppressed` drops of `key` from `start` to
    /// `end`.
    fn summary(
        &self,
        key: String,
        suppressed: u64,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Event {
        let covered = (end - start).to_std().unwrap_or_default();
        let message = format!(
            "suppressed {suppressed} event(s) of key {key:?} in {:.0}s over the threshold of {} per {}s",
            covered.as_secs_f64(),
            self.threshold,
            self.window.as_secs_f64(),
        );
        let mut info = ObjectMap::new();
        info.insert("key".into(), Value::from(key));
        info.insert("suppressed".into(), Value::from(suppressed as i64));
        info.insert("threshold".into(), Value::from(self.threshold as i64));
        info.insert(
            "window_secs".into(),
            Value::from_f64_or_zero(self.window.as_secs_f64()),
        );
        info.insert("window_start".into(), Value::Timestamp(start));
        info.insert("window_end".into(), Value::Timestamp(end));
        let mut summary = ObjectMap::new();
        summary.insert(fields::MESSAGE.into(), Value::from(message));
        summary.insert(fields::TIMESTAMP.into(), Value::Timestamp(end));
        summary.insert("throttle".into(), Value::Object(info));
        Event::from_value(Value::Object(summary))
    }

    /// What is saved of `key` (`None`: nothing, its record goes).
    fn record(&self, key: &str, clock: &Clock) -> Option<SavedKey> {
        let window = self.windows.entry(key).map(|entry| SavedWindow {
            opened_at: clock.wall_of(entry.opened),
            passed: entry.value.passed,
            suppressed: entry.value.suppressed,
            counted_since: clock.wall_of(entry.value.counted_since),
        });
        let held_back_at = self
            .held_back
            .entry(key)
            .map(|entry| clock.wall_of(entry.opened));
        (window.is_some() || held_back_at.is_some()).then_some(SavedKey {
            window,
            held_back_at,
        })
    }

    /// Starts saving the records of the keys that changed (a failure is
    /// counted, and the next save tries again).
    async fn save(&mut self, store: &mut KeyStore<SavedKey>, metrics: &ComponentMetrics) {
        let clock = Clock::now();
        let changed = std::mem::take(&mut self.changed);
        self.changed = store
            .save(changed, |key| self.record(key, &clock), metrics)
            .await;
    }

    /// Puts back what an earlier run saved, judged by the current options.
    /// A window whose time ran out meanwhile is over: it is not restored,
    /// its record goes, and drops it counted since its last summary (a
    /// crash kept it from being sent) get one now, ending when the window
    /// did. Beyond `max_keys`, the oldest windows close at once, as they
    /// would while running.
    fn restore(
        &mut self,
        saved: HashMap<String, SavedKey>,
        clock: &Clock,
        out: &mut TransformOutput,
    ) {
        let mut saved: Vec<_> = saved.into_iter().collect();
        saved.sort_unstable_by(|(a, _), (b, _)| a.cmp(b));
        let mut windows = Vec::new();
        let mut held_back = Vec::new();
        for (key, record) in saved {
            if let Some(window) = record.window {
                if clock.age_of(window.opened_at) >= self.window {
                    self.changed.note(&key);
                    if window.suppressed > 0 {
                        let end = wall_after(window.opened_at, self.window);
                        let start = window.counted_since.min(end);
                        let summary = self.summary(key.clone(), window.suppressed, start, end);
                        out.push_named(SUMMARIES, summary);
                    }
                } else {
                    let opened = clock.instant_of(window.opened_at);
                    windows.push(Restored {
                        key: key.clone(),
                        value: Window {
                            passed: window.passed,
                            suppressed: window.suppressed,
                            counted_since: clock.instant_of(window.counted_since).max(opened),
                        },
                        opened,
                        used: opened,
                    });
                }
            }
            if let Some(at) = record.held_back_at {
                let at = clock.instant_of(at);
                held_back.push(Restored {
                    key,
                    value: (),
                    opened: at,
                    used: at,
                });
            }
        }
        for pushed_out in self.windows.restore(windows) {
            self.changed.note(&pushed_out.key);
            self.summarise(pushed_out, clock, out);
        }
        for pushed_out in self.held_back.restore(held_back) {
            self.changed.note(&pushed_out.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transforms::task_harness::{Harness, event, messages};

    const HOUR: Duration = Duration::from_secs(3600);

    fn throttle(options: &str) -> Harness {
        Harness::start::<ThrottleConfig>(options, &["dropped", "summaries"])
    }

    fn summary_field(summary: &Event, name: &str) -> Value {
        let path = vrl::path::parse_value_path(&format!("throttle.{name}")).unwrap();
        summary.get(&path).cloned().unwrap_or(Value::Null)
    }

    #[tokio::test(start_paused = true)]
    async fn passes_threshold_events_per_key_and_routes_the_rest_to_dropped() {
        let mut h = throttle("threshold = 2\nwindow_secs = 60\nkey_field = \"service\"");
        h.send(vec![
            event("a1", "a"),
            event("a2", "a"),
            event("a3", "a"),
            event("b1", "b"),
            event("a4", "a"),
        ])
        .await;
        h.settle().await;
        assert_eq!(messages(&h.take(None)), ["a1", "a2", "b1"]);
        assert_eq!(messages(&h.take(Some("dropped"))), ["a3", "a4"]);
        assert!(
            h.take(Some("summaries")).is_empty(),
            "the window is still open"
        );
        h.finish().await;
    }

    #[tokio::test(start_paused = true)]
    async fn summarises_a_window_with_drops_when_it_closes_and_then_opens_a_new_one() {
        let mut h = throttle("threshold = 1\nwindow_secs = 3600\nkey = \"{{ .service }}\"");
        let start = Instant::now();
        h.send(vec![event("a1", "a"), event("a2", "a"), event("b1", "b")])
            .await;
        tokio::time::sleep(Duration::from_secs(1800)).await;
        h.send(vec![event("a3", "a")]).await;
        tokio::time::sleep(HOUR - Duration::from_secs(1800) - Duration::from_millis(10)).await;
        h.settle().await;
        assert!(h.take(Some("summaries")).is_empty(), "not before the hour");

        let summaries = h.next(Some("summaries")).await;
        assert!(Instant::now() - start >= HOUR);
        assert_eq!(summaries.len(), 1, "b dropped nothing: no summary for it");
        let summary = &summaries[0];
        assert_eq!(summary_field(summary, "key"), Value::from("a"));
        assert_eq!(summary_field(summary, "suppressed"), Value::from(2));
        assert_eq!(
            summary_field(summary, "window_secs"),
            Value::from_f64_or_zero(3600.0)
        );
        let (Value::Timestamp(from), Value::Timestamp(to)) = (
            summary_field(summary, "window_start"),
            summary_field(summary, "window_end"),
        ) else {
            panic!("window bounds are timestamps: {summary:?}")
        };
        assert_eq!(to - from, chrono::Duration::seconds(3600));
        let message = summary.get_field("message").unwrap().to_string_lossy();
        assert!(
            message.contains("suppressed 2 event(s) of key \"a\""),
            "{message}"
        );

        h.send(vec![event("a5", "a")]).await;
        h.settle().await;
        assert_eq!(
            messages(&h.take(None)),
            ["a1", "b1", "a5"],
            "a new window lets the key through again"
        );
        h.finish().await;
    }

    fn alert(message: &str, key: &str, state: &str) -> Event {
        Event::from_value(vrl::value!({
            "message": message,
            "alert": {"key": key, "state": state},
        }))
    }

    #[tokio::test(start_paused = true)]
    async fn alerts_are_throttled_by_episode_and_resolutions_follow_their_firing() {
        let mut h = throttle("threshold = 1\nwindow_secs = 4\nkey = \"{{ .alert.key }}\"");
        h.send(vec![alert("fire-1", "cpu", "firing")]).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        h.send(vec![alert("resolve-1", "cpu", "resolved")]).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        // A second episode inside the window: throttled, and so is its
        // resolution, even after the window closed.
        h.send(vec![alert("fire-2", "cpu", "firing")]).await;
        tokio::time::sleep(Duration::from_secs(3)).await;
        h.send(vec![alert("resolve-2", "cpu", "resolved")]).await;
        // A third episode in a new window passes, and its resolution too,
        // however much later it comes.
        h.send(vec![alert("fire-3", "cpu", "firing")]).await;
        tokio::time::sleep(Duration::from_secs(3600)).await;
        h.send(vec![alert("resolve-3", "cpu", "resolved")]).await;
        // A resolution the throttle knows nothing of (its firing came before
        // a restart) passes: better than an alert left firing.
        h.send(vec![alert("resolve-old", "disk", "resolved")]).await;
        h.settle().await;
        assert_eq!(
            messages(&h.take(None)),
            ["fire-1", "resolve-1", "fire-3", "resolve-3", "resolve-old"]
        );
        assert_eq!(messages(&h.take(Some("dropped"))), ["fire-2", "resolve-2"]);
        h.finish().await;
    }

    #[tokio::test(start_paused = true)]
    async fn emits_pending_summaries_when_the_input_closes() {
        let h = throttle("threshold = 1\nwindow_secs = 3600");
        h.send(vec![event("x", "a"), event("y", "b"), event("z", "c")])
            .await;
        tokio::time::sleep(Duration::from_secs(60)).await;
        let outputs = h.finish().await;
        assert_eq!(messages(&outputs.default), ["x"], "one global key");
        let summaries = &outputs.named["summaries"];
        assert_eq!(summaries.len(), 1);
        assert_eq!(summary_field(&summaries[0], "suppressed"), Value::from(2));
        let (Value::Timestamp(from), Value::Timestamp(to)) = (
            summary_field(&summaries[0], "window_start"),
            summary_field(&summaries[0], "window_end"),
        ) else {
            panic!("window bounds are timestamps")
        };
        assert_eq!(
            to - from,
            chrono::Duration::seconds(60),
            "a window cut short says so"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn max_keys_closes_the_oldest_window_early_with_its_summary() {
        let mut h =
            throttle("threshold = 1\nwindow_secs = 3600\nkey_field = \"service\"\nmax_keys = 2");
        h.send(vec![event("a1", "a"), event("a2", "a"), event("b1", "b")])
            .await;
        h.send(vec![event("c1", "c")]).await;
        h.settle().await;
        let summaries = h.take(Some("summaries"));
        assert_eq!(summaries.len(), 1);
        assert_eq!(summary_field(&summaries[0], "key"), Value::from("a"));
        h.send(vec![event("a3", "a")]).await;
        h.settle().await;
        assert_eq!(
            messages(&h.take(None)),
            ["a1", "b1", "c1", "a3"],
            "an evicted key starts over"
        );
        h.finish().await;
    }

    #[tokio::test(start_paused = true)]
    async fn drops_without_a_consumer_are_not_routed() {
        let h = Harness::start::<ThrottleConfig>("threshold = 1\nwindow_secs = 10", &[]);
        h.send(vec![event("1", "a"), event("2", "a")]).await;
        let outputs = h.finish().await;
        assert_eq!(messages(&outputs.default), ["1"]);
        assert!(!outputs.named.contains_key("dropped"));
    }

    #[test]
    fn rejects_contradictory_or_empty_options() {
        use crate::transforms::task_harness::{build_error, parse_error};
        for (options, expected) in [
            (
                "threshold = 1\nwindow_secs = 0",
                "`window_secs` must be more than 0",
            ),
            (
                "threshold = 1\nwindow_secs = 1\nkey = \"x\"\nkey_field = \"y\"",
                "at most one of",
            ),
        ] {
            let message = build_error::<ThrottleConfig>(options);
            assert!(message.contains(expected), "{options}: {message}");
        }
        for (options, expected, at) in [
            ("threshold = 0\nwindow_secs = 1", "nonzero", "0"),
            (
                "threshold = 1\nwindow_secs = 1\nkey = \"{{ .a\"",
                "invalid template",
                "\"{{ .a\"",
            ),
            (
                "threshold = 1\nwindow_secs = 1\nmax_keys = 0",
                "nonzero",
                "0",
            ),
            (
                "threshold = 1\nwindow_secs = \"soon\"",
                "invalid duration",
                "\"soon\"",
            ),
        ] {
            let (message, span) = parse_error::<ThrottleConfig>(options);
            assert!(message.contains(expected), "{options}: {message}");
            assert_eq!(span, at, "{options}: {message}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn window_secs_takes_a_duration_with_units() {
        let mut h = throttle("threshold = 1\nwindow_secs = \"1h\"");
        h.send(vec![event("a1", "a"), event("a2", "a")]).await;
        let summaries = h.next(Some("summaries")).await;
        assert_eq!(
            summary_field(&summaries[0], "window_secs"),
            Value::from_f64_or_zero(3600.0)
        );
        h.finish().await;
    }

    // Saving and restoring. Each test keeps its state in a directory of
    // its own; a second harness on it is a restart.

    use std::path::Path;

    use crate::alert::AlertStore;
    use crate::state::StateHandle;

    fn throttle_in(dir: &Path, options: &str) -> Harness {
        Harness::start_with_state::<ThrottleConfig>(
            options,
            &["dropped", "summaries"],
            StateHandle::new(dir.to_path_buf()),
        )
    }

    /// The records of the test transform (id `t`), as saved.
    fn saved(dir: &Path) -> HashMap<String, SavedKey> {
        let state = StateHandle::new(dir.to_path_buf());
        let store = AlertStore::<SavedKey>::open_in(&state, TABLE, "t").unwrap();
        store.load().unwrap()
    }

    /// Saves records for the test transform, as an earlier run would have.
    fn save(dir: &Path, records: &[(&str, SavedKey)]) {
        let state = StateHandle::new(dir.to_path_buf());
        let store = AlertStore::<SavedKey>::open_in(&state, TABLE, "t").unwrap();
        let put: Vec<(&str, &SavedKey)> = records.iter().map(|(k, r)| (*k, r)).collect();
        store.save(&put, &[]).unwrap();
    }

    fn bounds(summary: &Event) -> (DateTime<Utc>, DateTime<Utc>) {
        match (
            summary_field(summary, "window_start"),
            summary_field(summary, "window_end"),
        ) {
            (Value::Timestamp(start), Value::Timestamp(end)) => (start, end),
            _ => panic!("window bounds are timestamps: {summary:?}"),
        }
    }

    const ONE_AN_HOUR: &str = "threshold = 1\nwindow_secs = 3600\nkey_field = \"service\"";

    #[tokio::test(start_paused = true)]
    async fn a_window_holds_back_across_a_restart_and_is_never_summarised_twice() {
        let dir = tempfile::tempdir().unwrap();
        let h = throttle_in(dir.path(), ONE_AN_HOUR);
        h.send(vec![event("a1", "a"), event("a2", "a")]).await;
        tokio::time::sleep(Duration::from_secs(600)).await;
        let first = h.finish().await;
        assert_eq!(messages(&first.default), ["a1"]);
        let first_summary = &first.named["summaries"];
        assert_eq!(first_summary.len(), 1, "the input ended: a summary");
        let (_, first_end) = bounds(&first_summary[0]);

        let h = throttle_in(dir.path(), ONE_AN_HOUR);
        h.send(vec![event("a3", "a"), event("b1", "b")]).await;
        let second = h.finish().await;
        assert_eq!(
            messages(&second.default),
            ["b1"],
            "a's window still holds back after the restart"
        );
        assert_eq!(messages(&second.named["dropped"]), ["a3"]);
        let summaries = &second.named["summaries"];
        assert_eq!(summaries.len(), 1);
        assert_eq!(
            summary_field(&summaries[0], "suppressed"),
            Value::from(1),
            "only the drop since the last summary"
        );
        let (start, _) = bounds(&summaries[0]);
        let gap = (start - first_end).abs();
        assert!(
            gap < chrono::Duration::seconds(1),
            "summaries follow each other: {first_end} then {start}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_crash_loses_at_most_what_changed_since_the_last_save() {
        let dir = tempfile::tempdir().unwrap();
        let h = throttle_in(dir.path(), ONE_AN_HOUR);
        h.send(vec![event("a1", "a"), event("a2", "a")]).await;
        // Saves tick every second from the start: one passes, not the next.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        // Handled, but crashed before the next save: forgotten.
        h.send(vec![event("b1", "b")]).await;
        h.settle().await;
        h.crash().await;

        let h = throttle_in(dir.path(), ONE_AN_HOUR);
        h.send(vec![event("a3", "a"), event("b2", "b")]).await;
        let outputs = h.finish().await;
        assert_eq!(
            messages(&outputs.default),
            ["b2"],
            "a was saved within a second; b1 came after the last save"
        );
        let summaries = &outputs.named["summaries"];
        assert_eq!(
            summary_field(&summaries[0], "suppressed"),
            Value::from(2),
            "the drop before the crash is not lost from the summary"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_window_that_ran_out_while_howl_was_down_is_over() {
        let dir = tempfile::tempdir().unwrap();
        let now = Utc::now();
        let ago = |minutes: i64| now - chrono::Duration::minutes(minutes);
        let window = |opened_at, suppressed| SavedKey {
            window: Some(SavedWindow {
                opened_at,
                passed: 1,
                suppressed,
                counted_since: opened_at,
            }),
            held_back_at: None,
        };
        save(
            dir.path(),
            &[
                ("over", window(ago(90), 0)),
                ("crashed", window(ago(120), 3)),
                ("open", window(ago(10), 0)),
            ],
        );

        let h = throttle_in(dir.path(), ONE_AN_HOUR);
        h.send(vec![event("o", "over"), event("p", "open")]).await;
        let outputs = h.finish().await;
        assert_eq!(messages(&outputs.default), ["o"], "`open` still holds back");
        let summaries: Vec<_> = outputs.named["summaries"]
            .iter()
            .filter(|s| summary_field(s, "key") != Value::from("open"))
            .collect();
        assert_eq!(summaries.len(), 1, "none for `over`: {summaries:?}");
        assert_eq!(summary_field(summaries[0], "key"), Value::from("crashed"));
        assert_eq!(summary_field(summaries[0], "suppressed"), Value::from(3));
        assert_eq!(
            bounds(summaries[0]),
            (ago(120), ago(60)),
            "the summary a crash kept back, ending when the window did"
        );
        let left = saved(dir.path());
        assert!(
            !left.contains_key("crashed"),
            "an expired window leaves the store"
        );
        assert!(left.contains_key("open") && left.contains_key("over"));
    }

    #[tokio::test(start_paused = true)]
    async fn episodes_stay_whole_across_a_restart() {
        let options = "threshold = 1\nwindow_secs = 3600\nkey = \"{{ .alert.key }}\"";
        let dir = tempfile::tempdir().unwrap();
        let h = throttle_in(dir.path(), options);
        h.send(vec![
            alert("fire-1", "cpu", "firing"),
            alert("resolve-1", "cpu", "resolved"),
            alert("fire-2", "cpu", "firing"),
            alert("fire-disk", "disk", "firing"),
        ])
        .await;
        let first = h.finish().await;
        assert_eq!(
            messages(&first.default),
            ["fire-1", "resolve-1", "fire-disk"]
        );

        let h = throttle_in(dir.path(), options);
        h.send(vec![
            alert("resolve-2", "cpu", "resolved"),
            alert("resolve-disk", "disk", "resolved"),
            alert("fire-3", "cpu", "firing"),
        ])
        .await;
        let second = h.finish().await;
        assert_eq!(
            messages(&second.default),
            ["resolve-disk"],
            "a firing that passed gets its resolution through"
        );
        assert_eq!(
            messages(&second.named["dropped"]),
            ["resolve-2", "fire-3"],
            "a firing held back before the restart takes its resolution with it, \
             and the window still counts"
        );
        assert!(
            saved(dir.path())["cpu"].held_back_at.is_some(),
            "fire-3 is held back in turn"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn saved_windows_are_judged_by_the_current_options() {
        let dir = tempfile::tempdir().unwrap();
        let h = throttle_in(dir.path(), ONE_AN_HOUR);
        h.send(vec![event("a1", "a"), event("b1", "b")]).await;
        tokio::time::sleep(Duration::from_secs(120)).await;
        h.finish().await;

        let shorter = "threshold = 1\nwindow_secs = 60\nkey_field = \"service\"\nmax_keys = 1";
        let h = throttle_in(dir.path(), shorter);
        h.send(vec![event("a2", "a")]).await;
        let outputs = h.finish().await;
        assert_eq!(
            messages(&outputs.default),
            ["a2"],
            "two minutes old: over, with a window of one minute"
        );
        assert_eq!(
            saved(dir.path()).into_keys().collect::<Vec<_>>(),
            ["a"],
            "max_keys bounds the store too"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn max_keys_applies_to_restored_windows_oldest_first() {
        let dir = tempfile::tempdir().unwrap();
        let h = throttle_in(dir.path(), ONE_AN_HOUR);
        h.send(vec![event("a1", "a")]).await;
        tokio::time::sleep(Duration::from_secs(5)).await;
        h.send(vec![event("b1", "b")]).await;
        h.settle().await;
        h.finish().await;

        let h = throttle_in(dir.path(), &format!("{ONE_AN_HOUR}\nmax_keys = 1"));
        h.send(vec![event("b2", "b"), event("a2", "a")]).await;
        let outputs = h.finish().await;
        assert_eq!(messages(&outputs.named["dropped"]), ["b2"], "b was kept");
        assert_eq!(
            messages(&outputs.default),
            ["a2"],
            "a, the oldest, was closed at start"
        );
    }
}
