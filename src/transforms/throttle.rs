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
//! long after its firing, and also after a restart, when the throttle has
//! forgotten: a stray resolution is better than an alert left firing in a
//! chat). Resolutions do not count against the window. Key such events on
//! the alert alone (`key = "{{ .alert.key }}"`).
//!
//! Memory is bounded: windows are forgotten when they close, and at most
//! `max_keys` are open at once; a new key beyond that closes the oldest
//! window early (with its summary). Windows close on a timer set to the
//! earliest closing time (windows close in the order they opened, as they
//! all last the same time), not by scanning every key. When the input ends,
//! every open window with drops gets its summary before the task returns.

use std::num::{NonZeroU64, NonZeroUsize};
use std::time::Duration;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::Deserialize;
use tokio::time::Instant;
use vrl::value::{ObjectMap, Value};

use super::keyed_state::{KeyedState, Removed};
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
    /// oldest window early (with its summary). Bounds memory when keys come
    /// from the data.
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
}

/// One key's current window.
#[derive(Debug)]
struct Window {
    passed: u64,
    suppressed: u64,
    /// Wall-clock time of the opening, for the summary.
    opened_at: DateTime<Utc>,
}

impl TaskTransform for Throttle {
    fn run(self: Box<Self>, cx: TaskContext) -> ComponentFuture {
        Box::pin(self.run_loop(cx))
    }
}

impl Throttle {
    async fn run_loop(mut self: Box<Self>, mut cx: TaskContext) -> anyhow::Result<()> {
        let dropped = DropRoute::new(&cx.outputs, DROPPED);
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
                    self.close_expired(Instant::now(), &mut out);
                    out
                }
                batch = cx.input.recv() => {
                    let Some(events) = batch else { break };
                    let now = Instant::now();
                    let mut out = cx.outputs.collector(events.len());
                    // Close what is due first, so an event never lands in a
                    // window that should already be over.
                    self.close_expired(now, &mut out);
                    for event in events {
                        self.handle(event, now, &mut out, &cx.metrics, dropped);
                    }
                    out
                }
            };
            cx.outputs.send(out).await;
        }
        let now = Instant::now();
        let mut out = cx.outputs.collector(0);
        for window in self.windows.drain() {
            self.summarise(window, now, &mut out);
        }
        cx.outputs.send(out).await;
        Ok(())
    }

    fn handle(
        &mut self,
        event: Event,
        now: Instant,
        out: &mut TransformOutput,
        metrics: &ComponentMetrics,
        dropped: DropRoute,
    ) {
        let key = self.render_key(&event, metrics);
        match AlertState::declared(&event) {
            Some(AlertState::Resolved) => {
                if self.held_back.remove(&key).is_some() {
                    dropped.drop_event(event, out, metrics, "its firing was throttled");
                } else {
                    out.push(event);
                }
                return;
            }
            Some(AlertState::Firing) => {
                if self.passes(&key, now) {
                    self.held_back.remove(&key);
                } else if self.held_back.get_mut(&key, now).is_none() {
                    self.held_back.insert(key.clone(), (), now);
                }
            }
            None => {}
        }
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
                    opened_at: Utc::now(),
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
                    self.summarise(pushed_out, now, out);
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

    fn close_expired(&mut self, now: Instant, out: &mut TransformOutput) {
        while let Some(window) = self.windows.pop_expired(now) {
            self.summarise(window, now, out);
        }
    }

    /// Emits the summary of a window that ends at `now` (or at its natural
    /// end, if that came first), when it dropped anything.
    fn summarise(&self, window: Removed<Window>, now: Instant, out: &mut TransformOutput) {
        let Removed { key, value, opened } = window;
        if value.suppressed == 0 {
            return;
        }
        let covered = now.saturating_duration_since(opened).min(self.window);
        let start = value.opened_at;
        let end = start + chrono::Duration::from_std(covered).unwrap_or(chrono::TimeDelta::MAX);
        let message = format!(
            "suppressed {} event(s) of key {key:?} in {:.0}s over the threshold of {} per {}s",
            value.suppressed,
            covered.as_secs_f64(),
            self.threshold,
            self.window.as_secs_f64(),
        );
        let mut info = ObjectMap::new();
        info.insert("key".into(), Value::from(key));
        info.insert("suppressed".into(), Value::from(value.suppressed as i64));
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
        out.push_named(SUMMARIES, Event::from_value(Value::Object(summary)));
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
}
