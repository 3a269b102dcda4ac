//! `review`: the review on a schedule. Every `interval` it reviews the
//! pattern stores of this howl (see [`crate::review`]: new, gone quiet and
//! spiking patterns, level shifts, the noisiest, and suggested rules),
//! leaves the checkpoint the next review compares with, and emits the
//! digest as one event, to any sink: its `.message` is the digest as text,
//! `.review` the digest itself, and `.alert` makes it one chat message per
//! review, whose buttons (on `telegram` and `slack` sinks with `actions`)
//! apply the suggestions.
//!
//! The first review comes one interval after the start, not at it: a
//! restart must not send a digest of the few minutes since the last one.

use std::time::Duration;

use schemars::JsonSchema;
use serde::Deserialize;
use vrl::value::Value;

use crate::components::source::{Source, SourceConfig, SourceContext};
use crate::components::{BuildContext, ComponentFuture};
use crate::diagnostic::BuildError;
use crate::event::{Event, fields};
use crate::internal_events::{ErrorType, Stage};
use crate::options::Seconds;

/// Options of the `review` source.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReviewConfig {
    /// How often to review, e.g. `"1d"`, `"12h"`.
    #[serde(default = "default_interval")]
    interval: Seconds,
}

fn default_interval() -> Seconds {
    Seconds::from_secs(86_400)
}

impl SourceConfig for ReviewConfig {
    fn build(&self, _cx: &BuildContext) -> Result<Box<dyn Source>, BuildError> {
        let interval = self.interval.positive("interval")?;
        if interval < Duration::from_secs(1) {
            return Err(
                BuildError::new("`interval` must be at least a second").for_option("interval")
            );
        }
        Ok(Box::new(Review { interval }))
    }
}

struct Review {
    interval: Duration,
}

impl Source for Review {
    fn run(self: Box<Self>, mut cx: SourceContext) -> ComponentFuture {
        Box::pin(async move {
            let source_id = cx.key.shared_id();
            loop {
                tokio::select! {
                    () = cx.shutdown.cancelled() => return Ok(()),
                    () = tokio::time::sleep(self.interval) => {}
                }
                let state = cx.state.clone();
                let reviewed = tokio::task::spawn_blocking(move || {
                    let store = state.store()?;
                    Ok::<_, anyhow::Error>(crate::review::review(&store, chrono::Utc::now(), true)?)
                })
                .await;
                let digest = match reviewed {
                    Ok(Ok(digest)) => digest,
                    Ok(Err(error)) => {
                        cx.out.metrics().error(
                            ErrorType::StateReadFailed,
                            Stage::Receiving,
                            &format_args!("the review failed: {error}"),
                        );
                        continue;
                    }
                    Err(error) => return Err(anyhow::anyhow!("the review stopped: {error}")),
                };
                if digest.is_empty() {
                    // Nothing changed: no message about nothing.
                    continue;
                }
                let event = digest_event(&digest).with_source_id(source_id.clone());
                cx.out.metrics().received(1, 0);
                tokio::select! {
                    () = cx.shutdown.cancelled() => return Ok(()),
                    () = cx.out.send(vec![event]) => {}
                }
            }
        })
    }
}

/// The event of a digest.
pub fn digest_event(digest: &crate::review::Digest) -> Event {
    let count =
        |f: fn(&crate::review::SpaceDigest) -> usize| digest.spaces.iter().map(f).sum::<usize>();
    let summary = format!(
        "howl review: {} new, {} gone quiet, {} spiking, {} suggestion(s)",
        count(|s| s.new.len()),
        count(|s| s.gone.len()),
        count(|s| s.spiking.len()),
        count(|s| s.suggestions.len()),
    );
    let mut event = Event::from_value(Value::Object(Default::default()));
    event.insert_field(fields::MESSAGE, crate::review::render(digest));
    event.insert_field(fields::TIMESTAMP, digest.at);
    event.insert_field(fields::SOURCE_TYPE, "review");
    event.insert_field(
        "review",
        serde_json::to_value(digest).map_or(Value::Null, Value::from),
    );
    event.insert_field(
        "alert",
        Value::from(serde_json::json!({
            "name": "howl review",
            "state": "firing",
            "severity": "info",
            "summary": summary,
            "key": format!("review/{}", digest.at.timestamp_micros()),
        })),
    );
    event
}
