//! The `nats` sink's run loop: connect (retrying while the server is
//! away), make sure of the stream if asked, then batch, publish and await
//! acknowledgements until the input closes.
//!
//! A batch is retried message by message: what the server acknowledged is
//! delivered at once, what it did not is published again after a backoff,
//! with the same `Nats-Msg-Id`, so a message whose acknowledgement was lost
//! (not the message itself) is stored once. Retries may reorder messages
//! within a subject; the stream's sequence says in which order they were
//! stored.

use std::num::NonZeroUsize;
use std::time::{Duration, Instant};

use async_nats::connection::State;
use async_nats::jetstream::ErrorCode;
use async_nats::jetstream::context::{PublishError, PublishErrorKind};
use async_nats::jetstream::message::PublishMessage;
use async_nats::{Client, jetstream};
use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::future::join_all;
use futures_util::stream::FuturesUnordered;
use tokio_util::sync::CancellationToken;

use crate::components::ComponentFuture;
use crate::components::sink::{Sink, SinkContext};
use crate::event::{Event, EventStatus, finalize_all};
use crate::http::{RetryPolicy, error_chain};
use crate::internal_events::{ComponentMetrics, ErrorType, Stage};
use crate::nats::Connector;
use crate::nats::compression::{self, Compression};
use crate::nats::stream::{StreamSpec, valid_subject};
use crate::sinks::batch::Batcher;
use crate::sinks::encoding::Encoding;
use crate::template::Template;

use super::pack::Packing;
use super::partition::Partitioner;

/// A built `nats` sink.
pub(super) struct NatsSink {
    pub(super) connector: Connector,
    pub(super) subject: Template,
    pub(super) msg_id: Option<Template>,
    pub(super) jetstream: bool,
    pub(super) stream: Option<StreamSpec>,
    pub(super) encoding: Encoding,
    pub(super) ack_timeout: Duration,
    pub(super) retry: RetryPolicy,
    pub(super) batch_events: NonZeroUsize,
    pub(super) batch_timeout: Duration,
    /// `partition.*`: the partition index is the subject's last token.
    pub(super) partition: Option<Partitioner>,
    /// Events per message; its byte budget is set from the server's
    /// `max_payload` once connected.
    pub(super) events_per_message: NonZeroUsize,
    /// Batches published at once.
    pub(super) concurrency: NonZeroUsize,
    /// How payloads are compressed, after packing.
    pub(super) compression: Compression,
}

/// One message on its way out: one event, or several packed
/// ([`super::pack`]).
pub(super) struct Outgoing {
    pub(super) subject: String,
    pub(super) id: Option<String>,
    pub(super) payload: Bytes,
    pub(super) events: Vec<Event>,
}

/// Where messages go.
enum Publisher {
    /// Stored by a stream, acknowledged.
    JetStream(jetstream::Context),
    /// Core NATS: fire and forget, flushed per batch.
    Core(Client),
}

/// Why one message was not delivered.
struct Failed {
    /// Publishing it again will not help.
    permanent: bool,
    /// No stream covers its subject (for `stream.*`: the stream is gone,
    /// e.g. the server lost its store, and is created again).
    no_stream: bool,
    /// Its acknowledgement did not come in time (the server may be
    /// stalled, with the message queued: see [`NatsSink::deliver`]).
    timed_out: bool,
    /// The cause, for logs.
    cause: String,
}

impl Sink for NatsSink {
    fn run(self: Box<Self>, cx: SinkContext) -> ComponentFuture {
        Box::pin(self.deliver_all(cx))
    }
}

impl NatsSink {
    async fn deliver_all(self: Box<Self>, mut cx: SinkContext) -> anyhow::Result<()> {
        // Nothing is taken from the input before the server is there:
        // upstream waits (a sink has no shutdown of its own; the topology
        // aborts it at its shutdown limit).
        let never = CancellationToken::new();
        let Some(client) = self.connector.connect_retrying(&self.retry, &never).await? else {
            return Ok(());
        };
        let publisher = if self.jetstream {
            let context = jetstream::ContextBuilder::new()
                .timeout(self.ack_timeout)
                // Never the client's cap: `concurrency` batches are in
                // flight at a time.
                .max_ack_inflight(
                    self.batch_events
                        .get()
                        .saturating_mul(self.concurrency.get())
                        .saturating_mul(2),
                )
                .backpressure_on_inflight(true)
                .build(client.clone());
            if let Some(stream) = &self.stream {
                self.ensure_stream(stream, &context, &cx.metrics).await?;
            }
            Publisher::JetStream(context)
        } else {
            Publisher::Core(client.clone())
        };
        let packing = Packing {
            events: self.events_per_message.get(),
            // Well inside what the server takes, headers included.
            bytes: client.server_info().max_payload / 2,
        };
        let mut batcher = Batcher::new(self.batch_events, self.batch_timeout);
        // Up to `concurrency` batches are published at once, each retried
        // on its own; input is taken only while one more fits, so a server
        // away still holds everything upstream.
        let mut in_flight = FuturesUnordered::new();
        let mut open = true;
        while open || !in_flight.is_empty() {
            tokio::select! {
                batch = batcher.next(&mut cx.input), if open && in_flight.len() < self.concurrency.get() => {
                    match batch {
                        Some(events) => {
                            let mut outgoing = packing.pack(self.prepare(&cx.metrics, events));
                            for message in &mut outgoing {
                                message.payload = self.compression.compress(std::mem::take(&mut message.payload));
                            }
                            in_flight.push(self.deliver(&client, &publisher, &cx.metrics, outgoing));
                        }
                        None => open = false,
                    }
                }
                Some(()) = in_flight.next(), if !in_flight.is_empty() => {}
            }
        }
        if let Err(error) = client.flush().await {
            cx.metrics.error(
                ErrorType::WriteFailed,
                Stage::Sending,
                &format_args!("cannot flush the NATS connection at shutdown: {error}"),
            );
        }
        Ok(())
    }

    /// Creates or checks `stream.*`, retrying while the server cannot
    /// answer; a stream that differs from the options stops the sink.
    async fn ensure_stream(
        &self,
        stream: &StreamSpec,
        context: &jetstream::Context,
        metrics: &ComponentMetrics,
    ) -> anyhow::Result<()> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match stream.ensure(context).await {
                Ok(()) => return Ok(()),
                Err(failure) if failure.is_transient() => {
                    let wait = self.retry.backoff(attempt);
                    metrics.warn_limited(
                        "stream",
                        &format_args!("{failure}; retrying in {:.1}s", wait.as_secs_f64()),
                    );
                    tokio::time::sleep(wait).await;
                }
                Err(failure) => {
                    anyhow::bail!("{}: {failure}", metrics.key());
                }
            }
        }
    }

    /// Publishes a batch until every message is acknowledged, refused for
    /// good, or its retries ran out, and finalizes each event accordingly.
    async fn deliver(
        &self,
        client: &Client,
        publisher: &Publisher,
        metrics: &ComponentMetrics,
        mut outgoing: Vec<Outgoing>,
    ) {
        let started = Instant::now();
        let deadline = started + self.retry.max_duration;
        let mut attempt: u32 = 0;
        // After acknowledgements timed out, the server may be stalled (busy,
        // frozen) with the messages queued on the connection, which stays
        // up: publishing them all again at each attempt would store one more
        // copy of each per attempt once it wakes up. So the next attempt
        // publishes one message, and the rest only once that one is
        // acknowledged: each other message is stored at most twice.
        let mut probing = false;
        while !outgoing.is_empty() {
            attempt += 1;
            // While disconnected the client queues what is published and
            // sends it all on reconnect: publishing a retry then would store
            // one more copy per attempt. Wait for the connection instead.
            if attempt > 1 && !wait_connected(client, deadline).await {
                let cause = "the connection to the server is down".to_string();
                self.give_up(metrics, &mut outgoing, attempt - 1, started, &cause);
                return;
            }
            let held = outgoing.split_off(if probing { 1 } else { outgoing.len() });
            let results = publisher
                .publish_all(&outgoing, self.compression.header_value())
                .await;
            let (mut delivered, mut bytes, mut retry) = (Vec::new(), 0, Vec::new());
            let mut last_cause = None;
            let (mut no_stream, mut timed_out) = (false, false);
            for (message, result) in outgoing.into_iter().zip(results) {
                match result {
                    Ok(()) => {
                        bytes += message.payload.len();
                        delivered.extend(message.events);
                    }
                    Err(Failed {
                        permanent: true,
                        cause,
                        ..
                    }) => {
                        metrics.error(
                            ErrorType::RequestRejected,
                            Stage::Sending,
                            &format_args!(
                                "the server refused a message to `{}` ({cause}); it is dropped",
                                message.subject
                            ),
                        );
                        metrics.discarded_on_error(message.events.len(), &"the server refused it");
                        let mut events = message.events;
                        finalize_all(&mut events, EventStatus::Rejected);
                    }
                    Err(failed) => {
                        no_stream |= failed.no_stream;
                        timed_out |= failed.timed_out;
                        last_cause = Some(failed.cause);
                        retry.push(message);
                    }
                }
            }
            if !delivered.is_empty() {
                metrics.sent(None, delivered.len());
                metrics.sent_bytes(bytes);
                finalize_all(&mut delivered, EventStatus::Delivered);
            }
            retry.extend(held);
            outgoing = retry;
            probing = timed_out;
            let Some(cause) = last_cause else {
                // Every message answered; after a probe, the rest goes now.
                continue;
            };
            let wait = self.retry.backoff(attempt);
            let elapsed = started.elapsed();
            if elapsed.saturating_add(wait) > self.retry.max_duration {
                self.give_up(metrics, &mut outgoing, attempt, started, &cause);
                return;
            }
            if no_stream
                && let (Some(stream), Publisher::JetStream(context)) = (&self.stream, publisher)
            {
                // Created at start, gone since: create it again (a
                // transient failure here is the next attempt's business).
                match stream.ensure(context).await {
                    Ok(()) => tracing::warn!(
                        component = %metrics.key(),
                        "JetStream stream `{}` was gone; created it again",
                        stream.name
                    ),
                    Err(failure) => {
                        metrics.warn_limited("stream", &format_args!("{failure}"));
                    }
                }
            }
            metrics.warn_limited(
                "retrying",
                &format_args!(
                    "{} message(s) not acknowledged ({cause}); retrying in {:.1}s (attempt {attempt}); \
                     upstream waits",
                    outgoing.len(),
                    wait.as_secs_f64()
                ),
            );
            tokio::time::sleep(wait).await;
        }
    }

    /// Counts and reports the messages whose retries ran out.
    fn give_up(
        &self,
        metrics: &ComponentMetrics,
        outgoing: &mut [Outgoing],
        attempts: u32,
        started: Instant,
        cause: &str,
    ) {
        metrics.error(
            ErrorType::RetriesExhausted,
            Stage::Sending,
            &format_args!(
                "gave up on {} message(s) after {attempts} attempt(s) over {:?}; last error: {cause}",
                outgoing.len(),
                started.elapsed()
            ),
        );
        let events = outgoing.iter().map(|message| message.events.len()).sum();
        metrics.discarded_on_error(events, &"retries ran out");
        for message in outgoing {
            finalize_all(&mut message.events, EventStatus::Errored);
        }
    }

    /// Renders each event's subject and id and encodes its payload. An
    /// event whose subject does not render to a subject one can publish to
    /// is refused (`Rejected`): it would never be stored.
    fn prepare(&self, metrics: &ComponentMetrics, events: Vec<Event>) -> Vec<Outgoing> {
        let mut outgoing = Vec::with_capacity(events.len());
        for mut event in events {
            let mut subject = self.subject.render(&event);
            if let Some(partition) = &self.partition {
                subject.text = partition.subject(&subject.text, &event, metrics);
            }
            // `$JS.API.STREAM.DELETE.<name>` and the like are the server's
            // API: only a subject the operator wrote may start with `$`,
            // never one an event's fields made so.
            let reserved = subject.text.starts_with('$') && !self.subject.as_str().starts_with('$');
            if reserved || !valid_subject(&subject.text, false) {
                let what = match reserved {
                    true => "a subject reserved for the server (its API, system events)",
                    false => "not a NATS subject",
                };
                metrics.error(
                    ErrorType::TemplateFailed,
                    Stage::Processing,
                    &format_args!(
                        "`subject` rendered {:?}{}, which is {what}; the event is dropped",
                        subject.text,
                        missing_note(&subject.missing)
                    ),
                );
                metrics.discarded_on_error(1, &"no valid subject");
                event.finalize(EventStatus::Rejected);
                continue;
            }
            let id = self.msg_id.as_ref().map(|template| {
                let id = template.render(&event);
                if !id.missing.is_empty() {
                    metrics.error(
                        ErrorType::TemplateFailed,
                        Stage::Processing,
                        &format_args!(
                            "`msg_id` refers to missing field(s) {}; rendered them empty",
                            id.missing.join(", ")
                        ),
                    );
                }
                id.text
            });
            let mut payload = Vec::new();
            self.encoding.encode(&event, &mut payload);
            payload.pop(); // The newline that ends a line in a file.
            outgoing.push(Outgoing {
                subject: subject.text,
                id: id.filter(|id| !id.is_empty()),
                payload: Bytes::from(payload),
                events: vec![event],
            });
        }
        outgoing
    }
}

/// Waits until the client is connected; false if `deadline` passes first.
async fn wait_connected(client: &Client, deadline: Instant) -> bool {
    while client.connection_state() != State::Connected {
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    true
}

fn missing_note(missing: &[String]) -> String {
    if missing.is_empty() {
        String::new()
    } else {
        format!(" (missing field(s) {})", missing.join(", "))
    }
}

impl Publisher {
    /// Publishes every message back to back, then collects each one's
    /// outcome, in order; `encoding` is the payloads' `Content-Encoding`.
    async fn publish_all(
        &self,
        messages: &[Outgoing],
        encoding: Option<&'static str>,
    ) -> Vec<Result<(), Failed>> {
        match self {
            Publisher::JetStream(context) => {
                let mut pending = Vec::with_capacity(messages.len());
                for message in messages {
                    let mut publish = PublishMessage::build().payload(message.payload.clone());
                    if let Some(id) = &message.id {
                        publish = publish.message_id(id);
                    }
                    if let Some(encoding) = encoding {
                        publish = publish.header(compression::HEADER, encoding);
                    }
                    pending.push(context.send_publish(message.subject.clone(), publish).await);
                }
                // The acknowledgements arrive concurrently; each waits at
                // most the context's timeout from here.
                let acks = join_all(pending.into_iter().map(|sent| async move {
                    match sent {
                        Ok(ack) => ack.await.map(|_| ()),
                        Err(error) => Err(error),
                    }
                }))
                .await;
                acks.into_iter()
                    .zip(messages)
                    .map(|(ack, message)| ack.map_err(|error| judge(&error, &message.subject)))
                    .collect()
            }
            Publisher::Core(client) => {
                let mut results = Vec::with_capacity(messages.len());
                for message in messages {
                    let subject = message.subject.clone();
                    let payload = message.payload.clone();
                    let sent = match encoding {
                        Some(encoding) => {
                            let mut headers = async_nats::HeaderMap::new();
                            headers.insert(compression::HEADER, encoding);
                            client.publish_with_headers(subject, headers, payload).await
                        }
                        None => client.publish(subject, payload).await,
                    };
                    results.push(sent.map_err(|error| Failed {
                        no_stream: false,
                        timed_out: false,
                        permanent: matches!(
                            error.kind(),
                            async_nats::client::PublishErrorKind::MaxPayloadExceeded
                        ),
                        cause: error_chain(&error),
                    }));
                }
                // Delivered (at most once) only once written to the server.
                if let Err(error) = client.flush().await {
                    let cause = format!("cannot flush to the server: {}", error_chain(&error));
                    for result in &mut results {
                        if result.is_ok() {
                            *result = Err(Failed {
                                permanent: false,
                                no_stream: false,
                                timed_out: false,
                                cause: cause.clone(),
                            });
                        }
                    }
                }
                results
            }
        }
    }
}

/// The JetStream error code the server answered a publish with, if any.
fn server_code(error: &PublishError) -> Option<ErrorCode> {
    std::error::Error::source(error)
        .and_then(|source| source.downcast_ref::<jetstream::Error>())
        .map(jetstream::Error::error_code)
}

/// Whether publishing again may help, and why it failed, naming the
/// subject where the cause is about it.
fn judge(error: &PublishError, subject: &str) -> Failed {
    let (permanent, cause) = match error.kind() {
        PublishErrorKind::StreamNotFound => (
            false,
            format!(
                "no JetStream stream covers subject `{subject}`: a stream must cover it \
                 (create one, or set `stream.*` to have howl create it)"
            ),
        ),
        PublishErrorKind::TimedOut => (false, "no acknowledgement in time".to_string()),
        PublishErrorKind::BrokenPipe => {
            (false, "the connection to the server was lost".to_string())
        }
        PublishErrorKind::MaxPayloadExceeded
        | PublishErrorKind::WrongLastMessageId
        | PublishErrorKind::WrongLastSequence => (true, error_chain(error)),
        // Over the stream's `max_msg_size` (below the server's
        // `max_payload`): the same message is refused every time.
        PublishErrorKind::Other
            if server_code(error) == Some(ErrorCode::STREAM_MESSAGE_EXCEEDS_MAXIMUM) =>
        {
            (true, error_chain(error))
        }
        _ => (false, error_chain(error)),
    };
    Failed {
        permanent,
        no_stream: error.kind() == PublishErrorKind::StreamNotFound,
        timed_out: error.kind() == PublishErrorKind::TimedOut,
        cause,
    }
}
