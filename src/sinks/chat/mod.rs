//! The flow every chat alert sink shares (`telegram`, `slack`): one message
//! per alert, threaded and updated in place.
//!
//! A chat is read by people, so an alert should be *one* conversation, not a
//! stream of unrelated messages:
//!
//! - the first firing occurrence of an alert key posts a message, and the
//!   sink remembers it (Telegram: chat + message id; Slack: channel + ts);
//! - later firing occurrences of the same key, while it is active, reply to
//!   that message (a Telegram reply, a Slack thread), so they notify without
//!   scattering;
//! - the resolving occurrence (`on_resolve`) edits the first message to show
//!   the alert resolved (`edit`, the default), replies to it (`reply`),
//!   posts a new message (`send`) or sends nothing (`ignore`); then the key
//!   is forgotten. When the message to edit is gone (deleted), or was never
//!   known (the alert fired before this sink existed, or the platform gives
//!   no message reference, as Slack's incoming webhooks do), a new message is
//!   posted instead.
//!
//! What the sink remembers lives in the state store ([`AlertStore`]), so a
//! restart in the middle of an alert still edits the right message. At most
//! [`MAX_TRACKED`] alerts are remembered, the oldest forgotten first: pattern
//! alerts never resolve, and memory must stay bounded.
//!
//! The platforms differ only in how a message is rendered, sent and edited,
//! which is the [`ChatApi`] each sink implements; the flow, the state, the
//! event statuses and the metrics are here, once. Events are delivered one
//! at a time, in order, so an alert's resolution never overtakes its firing.

pub mod actions;
pub mod markup;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::alert::{AlertState, AlertStore, DEFAULT_KEY, render_key};
use crate::component_key::ComponentKey;
use crate::components::ComponentFuture;
use crate::components::sink::{Sink, SinkContext};
use crate::diagnostic::BuildError;
use crate::event::{Event, EventStatus};
use crate::http::{Delivery, DeliverySettings, Failure};
use crate::internal_events::{ComponentMetrics, ErrorType, Stage};
use crate::secret::Redactor;
use crate::state::StateHandle;
use crate::template::Template;

/// The most alerts a chat sink remembers messages for.
pub const MAX_TRACKED: usize = 10_000;

/// What a chat sink does when an alert resolves.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OnResolve {
    /// Edit the alert's first message to show it resolved.
    #[default]
    Edit,
    /// Reply to the alert's first message (in its thread).
    Reply,
    /// Post a new message.
    Send,
    /// Send nothing (the alert is still forgotten).
    Ignore,
}

/// The default `key` of a chat sink: the rule key of a threshold alert,
/// else the pattern id of a `pattern` event ([`DEFAULT_KEY`]).
pub fn default_key() -> Template {
    Template::parse(DEFAULT_KEY).expect("`DEFAULT_KEY` is a valid template")
}

/// The outcome of an edit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Edited {
    /// The message now shows the new text (or already did).
    Done,
    /// The message no longer exists: post a new one instead.
    Gone,
}

/// How one chat platform renders, posts and edits alert messages.
///
/// Implementations build requests and read answers; [`Delivery`] (passed in,
/// owned by the sink) sends them with retries, rate limits and redaction.
pub trait ChatApi: Send + Sync + 'static {
    /// What identifies a posted message, as remembered in the state store.
    type Sent: Serialize + DeserializeOwned + Clone + Send + Sync + 'static;

    /// The start-up check (`healthcheck.*`), if the platform has one.
    fn healthcheck(&self, delivery: &Delivery) -> impl Future<Output = anyhow::Result<()>> + Send;

    /// Posts a message about `event`, as a reply to (in the thread of)
    /// `reply_to` when given. Returns the new message's reference, when the
    /// platform gives one.
    fn post(
        &self,
        delivery: &Delivery,
        event: &Event,
        state: AlertState,
        reply_to: Option<&Self::Sent>,
    ) -> impl Future<Output = Result<Option<Self::Sent>, Failure>> + Send;

    /// Replaces the content of message `sent` with a rendering of `event`.
    fn edit(
        &self,
        delivery: &Delivery,
        sent: &Self::Sent,
        event: &Event,
        state: AlertState,
    ) -> impl Future<Output = Result<Edited, Failure>> + Send;
}

/// A message remembered for an active alert.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Tracked<S> {
    /// The platform's reference to the alert's first message.
    sent: S,
    /// When it was posted (Unix microseconds), to forget the oldest first.
    since: i64,
}

/// A chat sink: the shared flow around one platform's [`ChatApi`].
pub struct ChatSink<A> {
    api: A,
    settings: DeliverySettings,
    redactor: Redactor,
    key: Template,
    on_resolve: OnResolve,
}

/// Chat sinks send one message at a time, so that an alert's resolution
/// can never overtake its firing; a larger `request.concurrency` is refused
/// rather than silently ignored.
pub fn require_sequential(settings: &DeliverySettings) -> Result<(), BuildError> {
    if settings.concurrency > 1 {
        return Err(BuildError::new(format!(
            "`request.concurrency` must be 1 for a chat sink (it is {}): messages go out one at a \
             time so that a resolution never overtakes its firing; use `rate_limit.*` to pace them",
            settings.concurrency
        ))
        .for_option("request.concurrency"));
    }
    Ok(())
}

impl<A: ChatApi> ChatSink<A> {
    /// A sink over `api`; the delivery machinery itself is created when the
    /// sink runs (building stays free of I/O).
    pub fn new(
        api: A,
        settings: DeliverySettings,
        redactor: Redactor,
        key: Template,
        on_resolve: OnResolve,
    ) -> Self {
        Self {
            api,
            settings,
            redactor,
            key,
            on_resolve,
        }
    }
}

impl<A: ChatApi> Sink for ChatSink<A> {
    fn run(self: Box<Self>, cx: SinkContext) -> ComponentFuture {
        Box::pin(self.run_loop(cx))
    }
}

/// What became of one event.
enum Outcome {
    /// A message was posted or edited.
    Delivered,
    /// Nothing was to be sent (`on_resolve = "ignore"`).
    Skipped,
}

impl<A: ChatApi> ChatSink<A> {
    async fn run_loop(self: Box<Self>, mut cx: SinkContext) -> anyhow::Result<()> {
        let delivery = Delivery::new(
            self.settings.clone(),
            cx.metrics.clone(),
            self.redactor.clone(),
        )?;
        self.api.healthcheck(&delivery).await?;
        let mut alerts = Alerts::<A::Sent>::load(&cx.state, &cx.key, cx.metrics.clone())?;
        while let Some(events) = cx.input.recv().await {
            for mut event in events {
                let outcome = self.deliver(&delivery, &mut alerts, &event).await;
                finish(&mut event, outcome, &cx.metrics);
            }
        }
        Ok(())
    }

    /// Posts, replies to or edits the message of `event`'s alert, and
    /// remembers or forgets the alert's first message accordingly.
    async fn deliver(
        &self,
        delivery: &Delivery,
        alerts: &mut Alerts<A::Sent>,
        event: &Event,
    ) -> Result<Outcome, Failure> {
        let key = render_key(&self.key, event);
        let state = AlertState::of(event);
        let first = key.as_deref().and_then(|k| alerts.get(k)).cloned();
        if state == AlertState::Firing {
            let sent = self
                .api
                .post(delivery, event, state, first.as_ref())
                .await?;
            if let (Some(key), None, Some(sent)) = (key, first, sent) {
                alerts.remember(key, sent);
            }
            return Ok(Outcome::Delivered);
        }
        let outcome = match (self.on_resolve, first) {
            (OnResolve::Ignore, _) => Outcome::Skipped,
            (OnResolve::Edit, Some(first)) => {
                match self.api.edit(delivery, &first, event, state).await? {
                    Edited::Done => {}
                    Edited::Gone => {
                        self.api.post(delivery, event, state, None).await?;
                    }
                }
                Outcome::Delivered
            }
            (OnResolve::Reply, first) => {
                self.api
                    .post(delivery, event, state, first.as_ref())
                    .await?;
                Outcome::Delivered
            }
            (OnResolve::Edit | OnResolve::Send, _) => {
                self.api.post(delivery, event, state, None).await?;
                Outcome::Delivered
            }
        };
        if let Some(key) = key {
            alerts.forget(&key);
        }
        Ok(outcome)
    }
}

/// Reports an event's fate to its source and to the metrics.
fn finish(event: &mut Event, outcome: Result<Outcome, Failure>, metrics: &ComponentMetrics) {
    match outcome {
        Ok(Outcome::Delivered) => {
            event.finalize(EventStatus::Delivered);
            metrics.sent(None, 1);
        }
        Ok(Outcome::Skipped) => {
            // Left unfinalized, the event counts as dropped: done, for its
            // source, like an event a filter removed.
            metrics.discarded_intentionally(1, "on_resolve = \"ignore\"");
        }
        Err(failure) => {
            let status = match failure {
                Failure::Rejected { .. } => EventStatus::Rejected,
                Failure::GaveUp { .. } => EventStatus::Errored,
            };
            event.finalize(status);
            metrics.discarded_on_error(1, &failure);
        }
    }
}

/// The alerts a sink remembers messages for, in memory and in the store.
struct Alerts<S> {
    active: HashMap<String, Tracked<S>>,
    store: AlertStore<Tracked<S>>,
    metrics: Arc<ComponentMetrics>,
    /// At most this many are remembered ([`MAX_TRACKED`]).
    limit: usize,
}

impl<S: Serialize + DeserializeOwned + Clone> Alerts<S> {
    fn load(
        state: &StateHandle,
        key: &ComponentKey,
        metrics: Arc<ComponentMetrics>,
    ) -> anyhow::Result<Self> {
        let store = AlertStore::open(state, key.id())
            .map_err(|e| anyhow::anyhow!("cannot open the alert state: {e}"))?;
        let active = store
            .load()
            .map_err(|e| anyhow::anyhow!("cannot load the alert state: {e}"))?;
        if !active.is_empty() {
            tracing::info!(component = %key, alerts = active.len(), "remembering the messages of active alerts");
        }
        Ok(Self {
            active,
            store,
            metrics,
            limit: MAX_TRACKED,
        })
    }

    fn get(&self, key: &str) -> Option<&S> {
        self.active.get(key).map(|tracked| &tracked.sent)
    }

    fn remember(&mut self, key: String, sent: S) {
        let mut evicted = Vec::new();
        while self.active.len() >= self.limit.max(1) {
            let Some(oldest) = self
                .active
                .iter()
                .min_by_key(|(_, tracked)| tracked.since)
                .map(|(key, _)| key.clone())
            else {
                break;
            };
            self.active.remove(&oldest);
            evicted.push(oldest);
        }
        let tracked = Tracked {
            sent,
            since: chrono::Utc::now().timestamp_micros(),
        };
        let deleted: Vec<&str> = evicted.iter().map(String::as_str).collect();
        self.save(&[(key.as_str(), &tracked)], &deleted);
        self.active.insert(key, tracked);
    }

    fn forget(&mut self, key: &str) {
        if self.active.remove(key).is_some() {
            self.save(&[], &[key]);
        }
    }

    fn save(&self, put: &[(&str, &Tracked<S>)], delete: &[&str]) {
        if let Err(error) = self.store.save(put, delete) {
            self.metrics.error(
                ErrorType::StateSaveFailed,
                Stage::Sending,
                &format_args!("cannot save which messages belong to active alerts: {error}"),
            );
        }
    }
}
