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

use std::num::NonZeroUsize;

use schemars::JsonSchema;
use serde::Deserialize;
use tokio::time::Instant;
use vrl::path::OwnedValuePath;

use super::keyed_state::KeyedState;
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
    /// How many distinct keys are remembered; beyond that the least
    /// recently seen is forgotten. Memory grows with it times the size of
    /// the compared values.
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
            seen: KeyedState::new(window, self.cache_size.get()),
        })))
    }
}

struct Dedupe {
    fields: Vec<OwnedValuePath>,
    seen: KeyedState<()>,
}

impl TaskTransform for Dedupe {
    fn run(mut self: Box<Self>, mut cx: TaskContext) -> ComponentFuture {
        Box::pin(async move {
            let dropped = DropRoute::new(&cx.outputs, DROPPED);
            while let Some(events) = cx.input.recv().await {
                let now = Instant::now();
                let mut out = cx.outputs.collector(events.len());
                for event in events {
                    self.handle(event, now, &mut out, &cx.metrics, dropped);
                }
                cx.outputs.send(out).await;
            }
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
        if self.seen.get_mut(&key, now).is_some() {
            self.seen.touch(&key);
            dropped.drop_event(event, out, metrics, "duplicate");
        } else {
            // Whatever this pushes out (an expired sighting of the same key,
            // or the least recently seen key) is simply forgotten.
            let _ = self.seen.insert(key, (), now);
            out.push(event);
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
}
