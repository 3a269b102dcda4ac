//! The JetStream mode: pull from a durable consumer, send each message's
//! events downstream with a notifier of their own, and answer the server
//! once the pipeline has: ack (delivered), nak with a delay (a sink gave
//! up), term (a destination refused them for good).
//!
//! Messages are acknowledged one by one, in whatever order their events
//! complete: the server keeps no position that would need the completed
//! prefix (`AckQueue`) a file checkpoint needs. The answers are sent by a
//! task of their own ([`Acker`]), so a message whose events are slow does
//! not hold up reading, and reading waiting for room downstream
//! (backpressure) does not hold up answers. What is unanswered is bounded
//! by the consumer's `max_ack_pending`: the server stops delivering there.
//!
//! While a message's events are on their way the source tells the server
//! it is still working on it, every half `ack_wait`: a slow or retrying
//! sink does not make the server deliver the message again meanwhile;
//! only a howl that stopped answering has its messages redelivered.
//!
//! At shutdown the source stops pulling, lets the pipeline drain, and
//! answers what completes until the graceful shutdown limit; what is still
//! unanswered then is redelivered by the server after `ack_wait`.

use std::collections::HashMap;
use std::time::Duration;

use async_nats::Client;
use async_nats::connection::State;
use async_nats::jetstream::consumer::pull::{MessagesError, MessagesErrorKind};
use async_nats::jetstream::{self, AckKind, consumer::pull};
use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt, StreamExt};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{BATCH_EVENTS, ConsumerSpec, MessageDecoder};
use crate::components::source::{SourceContext, SourceSender};
use crate::event::{BatchStatus, BatchStatusReceiver, notify_batch};
use crate::http::{RetryPolicy, error_chain};
use crate::internal_events::{ComponentMetrics, ErrorType, Stage};

/// How long one pull request waits for messages, and the heartbeat the
/// server sends meanwhile (a missed one means the connection is gone).
const PULL_EXPIRES: Duration = Duration::from_secs(30);
const PULL_HEARTBEAT: Duration = Duration::from_secs(10);
/// How often the connection is looked at, to pull again once it is back.
const CONNECTION_CHECK: Duration = Duration::from_millis(250);

/// Runs the consumer until shutdown.
pub(super) async fn run(
    client: Client,
    spec: ConsumerSpec,
    decode: MessageDecoder,
    retry: RetryPolicy,
    cx: SourceContext,
) -> anyhow::Result<()> {
    let stop = Stop {
        fetching: cx.shutdown,
        waiting: cx.shutdown_limit,
    };
    consume(client, spec, &decode, retry, cx.out, stop).await
}

/// When [`consume`] stops: `fetching` ends the pulls (what was pulled and
/// not yet sent downstream is nak'ed), then the answers still due are
/// awaited until `waiting`. Howl's shutdown for a whole source; a
/// partition's own tokens for one partition ([`super::partitions`]).
pub(super) struct Stop {
    pub(super) fetching: CancellationToken,
    pub(super) waiting: CancellationToken,
}

/// Consumes `spec` into `out` until `stop.fetching`, then answers what
/// completes until `stop.waiting`.
pub(super) async fn consume(
    client: Client,
    spec: ConsumerSpec,
    decode: &MessageDecoder,
    retry: RetryPolicy,
    mut out: SourceSender,
    stop: Stop,
) -> anyhow::Result<()> {
    let Stop {
        fetching: shutdown,
        waiting: shutdown_limit,
    } = stop;
    let metrics = std::sync::Arc::clone(out.metrics());
    let js = jetstream::new(client.clone());
    let Some(mut consumer) = open(&js, &spec, &retry, &metrics, &shutdown).await? else {
        return Ok(());
    };
    let (answers, to_answer) = mpsc::unbounded_channel();
    let acker = tokio::spawn(
        Acker {
            nak_delay: spec.nak_delay,
            // The server's ack_wait: an existing consumer keeps its own.
            progress_every: (consumer.cached_info().config.ack_wait / 2)
                .max(Duration::from_millis(100)),
            metrics: std::sync::Arc::clone(&metrics),
        }
        .run(to_answer),
    );
    // Messages per pull request: what may be unanswered, capped.
    let per_pull = (spec.max_ack_pending.get() as usize).clamp(1, 256);
    let mut attempt = 0;
    // Each way back to the top of this loop means the consumer may be
    // gone (deleted, or the server lost its store): pulling from the old
    // handle would wait forever, so it is looked up, or created, again.
    let mut reopen = false;
    'pulling: loop {
        if reopen {
            attempt += 1;
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(retry.backoff(attempt)) => {}
            }
            consumer = match open(&js, &spec, &retry, &metrics, &shutdown).await? {
                Some(consumer) => consumer,
                None => break,
            };
        }
        reopen = true;
        let messages = tokio::select! {
            _ = shutdown.cancelled() => break,
            messages = consumer
                .stream()
                .max_messages_per_batch(per_pull)
                .expires(PULL_EXPIRES)
                .heartbeat(PULL_HEARTBEAT)
                .messages() => messages,
        };
        let mut messages = match messages {
            Ok(messages) => messages,
            Err(error) => {
                metrics.error(
                    ErrorType::ReadFailed,
                    Stage::Receiving,
                    &format_args!(
                        "cannot pull from consumer `{}` of stream `{}`: {}; opening it again",
                        spec.name,
                        spec.stream,
                        error_chain(&error),
                    ),
                );
                continue;
            }
        };
        let mut connection = tokio::time::interval(CONNECTION_CHECK);
        let mut lost = false;
        loop {
            let next = tokio::select! {
                _ = shutdown.cancelled() => break 'pulling,
                next = messages.next() => next,
                _ = connection.tick() => {
                    // A pull request dies with the connection (a server
                    // restart forgets it); the pull stream would notice
                    // only after two missed heartbeats. Pull afresh as
                    // soon as the connection is back.
                    match client.connection_state() {
                        State::Connected if lost => {
                            tracing::info!(
                                component = %metrics.key(),
                                consumer = %spec.name,
                                "connection back; pulling again"
                            );
                            continue 'pulling;
                        }
                        State::Connected => {}
                        _ => lost = true,
                    }
                    continue;
                }
            };
            let first = match next {
                Some(Ok(message)) => message,
                Some(Err(error)) => {
                    pull_trouble(&metrics, &spec, &error);
                    if consumer_gone(&error) {
                        continue 'pulling;
                    }
                    continue;
                }
                None => {
                    // The pull stream gave up (its consumer deleted, the
                    // connection gone for long): open the consumer again.
                    continue 'pulling;
                }
            };
            attempt = 0;
            // Messages already here go downstream together, up to
            // BATCH_EVENTS events (a message packing several events, see
            // the sink's `events_per_message`, counts them all).
            let mut batch = Vec::new();
            let mut events = Vec::new();
            let mut statuses = Vec::new();
            let mut bytes = 0;
            let mut next = Some(first);
            let mut ended = false;
            while let Some(message) = next.take() {
                bytes += message.payload.len();
                let start = events.len();
                let made = decode.decode(
                    message.subject.as_str(),
                    message.headers.as_ref(),
                    message.payload.clone(),
                    &mut events,
                );
                statuses.push((made > 0).then(|| notify_batch(&mut events[start..])));
                batch.push(message);
                if events.len() >= BATCH_EVENTS.get() {
                    break;
                }
                match messages.next().now_or_never() {
                    Some(Some(Ok(message))) => next = Some(message),
                    Some(Some(Err(error))) => {
                        pull_trouble(&metrics, &spec, &error);
                        ended = consumer_gone(&error);
                    }
                    Some(None) => ended = true,
                    None => {}
                }
            }
            metrics.received(events.len(), bytes);
            if !events.is_empty() {
                let sent = tokio::select! {
                    _ = shutdown.cancelled() => false,
                    _ = out.send(events) => true,
                };
                if !sent {
                    // Never reached the pipeline: give them back now, for
                    // another instance (or the next start) to take.
                    for message in batch {
                        let _ = message.ack_with(AckKind::Nak(None)).await;
                    }
                    break 'pulling;
                }
            }
            for (message, status) in batch.into_iter().zip(statuses) {
                // A message without events (blank, an empty JSON array)
                // has nothing to wait for.
                let _ = answers.send((message, status));
            }
            if ended {
                continue 'pulling;
            }
        }
    }
    // Let the pipeline drain, and answer what completes meanwhile.
    drop(out);
    drop(answers);
    let abort = acker.abort_handle();
    tokio::select! {
        _ = acker => {}
        _ = shutdown_limit.cancelled() => abort.abort(),
    }
    // The answers are queued on the connection, not yet written: without
    // this the process may exit first, and messages already delivered
    // downstream are delivered again after ack_wait.
    tokio::select! {
        flushed = client.flush() => if let Err(error) = flushed {
            metrics.error(
                ErrorType::WriteFailed,
                Stage::Receiving,
                &format_args!(
                    "cannot send the last acknowledgements at shutdown ({}); the server \
                     redelivers those messages after ack_wait",
                    error_chain(&error)
                ),
            );
        },
        _ = shutdown_limit.cancelled() => {}
    }
    Ok(())
}

/// Logs (rate limited) a missed heartbeat or a failed pull: the pull
/// stream goes on, and pulls again, by itself.
fn pull_trouble(
    metrics: &ComponentMetrics,
    spec: &ConsumerSpec,
    error: &(dyn std::error::Error + 'static),
) {
    metrics.warn_limited(
        "pull",
        &format_args!(
            "pulling from consumer `{}`: {}",
            spec.name,
            error_chain(error)
        ),
    );
}

/// Whether a pull error means the consumer is no longer there (deleted,
/// its stream gone, nobody answering for it): pulling again from the same
/// handle cannot help, opening it again can.
fn consumer_gone(error: &MessagesError) -> bool {
    matches!(
        error.kind(),
        MessagesErrorKind::ConsumerDeleted
            | MessagesErrorKind::NoResponders
            | MessagesErrorKind::Pull
    )
}

/// Looks the stream up and opens (or creates) the durable consumer,
/// retrying while the server cannot answer, and while the consumer exists
/// with another filter (reported each time); `None` on shutdown.
async fn open(
    js: &jetstream::Context,
    spec: &ConsumerSpec,
    retry: &RetryPolicy,
    metrics: &ComponentMetrics,
    shutdown: &CancellationToken,
) -> anyhow::Result<Option<jetstream::consumer::Consumer<pull::Config>>> {
    let wanted = pull::Config {
        durable_name: Some(spec.name.clone()),
        ack_policy: jetstream::consumer::AckPolicy::Explicit,
        ack_wait: spec.ack_wait,
        max_ack_pending: i64::from(spec.max_ack_pending.get()),
        max_deliver: spec.max_deliver.map_or(-1, |n| i64::from(n.get())),
        filter_subject: spec.filter_subject.clone().unwrap_or_default(),
        ..Default::default()
    };
    let mut attempt = 0;
    loop {
        attempt += 1;
        let opened = match js.get_stream(&spec.stream).await {
            Ok(stream) => stream
                .get_or_create_consumer(&spec.name, wanted.clone())
                .await
                .map_err(|error| {
                    format!(
                        "cannot open consumer `{}` on stream `{}`: {}",
                        spec.name,
                        spec.stream,
                        error_chain(&error)
                    )
                }),
            Err(error) => Err(format!(
                "cannot find stream `{}` ({}): it must exist, created by an operator or \
                 by the `nats` sink's `stream` option",
                spec.stream,
                error_chain(&error)
            )),
        };
        // A consumer that exists with another filter would hand over
        // other messages than the ones asked for: not used, but reported
        // and tried again like a server that cannot answer, so that an
        // operator can delete it without restarting howl, and so that one
        // misconfigured partition does not stop a worker's others.
        let opened = opened.and_then(|consumer| {
            let found = &consumer.cached_info().config.filter_subject;
            if *found == wanted.filter_subject {
                Ok(consumer)
            } else {
                Err(format!(
                    "consumer `{}` on stream `{}` exists with filter_subject {found:?}, but \
                     `filter_subject` asks for {:?}: it is not used; delete the consumer (or \
                     name another `consumer`)",
                    spec.name, spec.stream, wanted.filter_subject
                ))
            }
        });
        match opened {
            Ok(consumer) => {
                let found = &consumer.cached_info().config;
                if found.ack_wait != wanted.ack_wait
                    || found.max_ack_pending != wanted.max_ack_pending
                {
                    tracing::warn!(
                        component = %metrics.key(),
                        "consumer `{}` exists with ack_wait {:?} and max_ack_pending {}, \
                         which differ from the options; the server's settings apply",
                        spec.name,
                        found.ack_wait,
                        found.max_ack_pending
                    );
                }
                tracing::info!(
                    component = %metrics.key(),
                    stream = %spec.stream,
                    consumer = %spec.name,
                    "consuming"
                );
                return Ok(Some(consumer));
            }
            Err(cause) => {
                let wait = retry.backoff(attempt).max(Duration::from_millis(100));
                metrics.error(
                    ErrorType::ReadFailed,
                    Stage::Receiving,
                    &format_args!("{cause}; retrying in {:.1}s", wait.as_secs_f64()),
                );
                tokio::select! {
                    _ = shutdown.cancelled() => return Ok(None),
                    _ = tokio::time::sleep(wait) => {}
                }
            }
        }
    }
}

/// Answers the server for each message once its events completed, and
/// meanwhile tells it that howl is still working on it.
struct Acker {
    nak_delay: Duration,
    /// How often a message still on its way is reported in progress
    /// (`+WPI`, which restarts its `ack_wait`): half the consumer's
    /// `ack_wait`, so that a sink slower than `ack_wait` (retrying, or just
    /// slow) does not make the server deliver its messages again, to this
    /// instance or another, while they are in the pipeline. Only a howl
    /// that stopped answering has its messages redelivered.
    progress_every: Duration,
    metrics: std::sync::Arc<ComponentMetrics>,
}

type Answer = (jetstream::Message, Option<BatchStatusReceiver>);

impl Acker {
    async fn run(self, mut messages: mpsc::UnboundedReceiver<Answer>) {
        // The messages waiting for their events, by a number of their own;
        // `pending` completes with that number and the events' status.
        let mut waiting = HashMap::new();
        let mut pending = FuturesUnordered::new();
        let mut next_key: u64 = 0;
        let mut progress = tokio::time::interval_at(
            tokio::time::Instant::now() + self.progress_every,
            self.progress_every,
        );
        progress.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut open = true;
        while open || !pending.is_empty() {
            tokio::select! {
                received = messages.recv(), if open => match received {
                    Some((message, status)) => {
                        let key = next_key;
                        next_key += 1;
                        waiting.insert(key, message);
                        pending.push(async move {
                            let status = match status {
                                Some(status) => status.await.unwrap_or(BatchStatus::Errored),
                                None => BatchStatus::Delivered,
                            };
                            (key, status)
                        });
                    }
                    None => open = false,
                },
                Some((key, status)) = pending.next(), if !pending.is_empty() => {
                    if let Some(message) = waiting.remove(&key) {
                        self.answer(message, status).await;
                    }
                }
                _ = progress.tick(), if !waiting.is_empty() => {
                    for message in waiting.values() {
                        // Lost with the connection at worst: the message
                        // is then redelivered, as without this.
                        let _ = message.ack_with(AckKind::Progress).await;
                    }
                }
            }
        }
    }

    async fn answer(&self, message: jetstream::Message, status: BatchStatus) {
        let (kind, what) = match status {
            BatchStatus::Delivered => (AckKind::Ack, None),
            BatchStatus::Errored => (
                AckKind::Nak(Some(self.nak_delay)),
                Some("not delivered (a sink's retries ran out); nak'ed, redelivered"),
            ),
            BatchStatus::Rejected => (
                AckKind::Term,
                Some("refused for good by a destination; terminated, never redelivered"),
            ),
        };
        if let Some(what) = what {
            let deliveries = message.info().map_or(0, |info| info.delivered);
            self.metrics.warn_limited(
                "undelivered",
                &format_args!(
                    "a message on `{}` (delivery {deliveries}) was {what}",
                    message.subject
                ),
            );
        }
        if let Err(error) = message.ack_with(kind).await {
            self.metrics.error(
                ErrorType::WriteFailed,
                Stage::Receiving,
                &format_args!(
                    "cannot acknowledge a message on `{}` ({}); the server redelivers it after ack_wait",
                    message.subject,
                    error_chain(&*error)
                ),
            );
        }
    }
}
