//! `nats`: consume messages from NATS, by default as one of the workers
//! sharing a JetStream durable pull consumer.
//!
//! With JetStream (the default) the source pulls from the durable consumer
//! `consumer` on `stream`, creating it when it is missing. Several howl
//! instances naming the same consumer share its messages: the server hands
//! each message to one of them (a work queue). A message is acknowledged
//! only once every sink its events reached delivered them (the pipeline's
//! acknowledgements, [`crate::event::finalization`]); when a sink gave up
//! (`Errored`) it is nak'ed with `nak_delay_secs` and redelivered, to this
//! instance or another; when a destination refused it for good
//! (`Rejected`) it is terminated, never redelivered. While its events are
//! on their way, the message is reported in progress, so a slow sink does
//! not cause a redelivery; a message howl never answers (howl died) is
//! redelivered after `ack_wait_secs`. So delivery is
//! at least once, and the duplicates a crash causes are bounded by
//! `max_ack_pending`, the most messages unacknowledged at once across all
//! instances.
//!
//! Each message is decoded with `decoding` (JSON by default: the envelope
//! the `nats` sink writes gives its fields back), its events carry the
//! message's `subject`.
//!
//! With `jetstream = false` the source subscribes to core NATS `subject`
//! (in `queue` group, if set, to share messages among instances): nothing
//! is acknowledged, and what arrives while howl is down or busy elsewhere
//! is lost: **at most once**.
//!
//! The module reads: the options (here) → [`consumer`] (the JetStream
//! loop and its acknowledgements) → [`subscribe`] (core NATS).

mod consumer;
mod subscribe;

use std::num::{NonZeroU32, NonZeroUsize};
use std::sync::Arc;

use chrono::Utc;
use schemars::JsonSchema;
use serde::Deserialize;
use vrl::value::Value;

use super::decoding::{Codec, Decoder, DecodingConfig, SourceDecoder};
use crate::components::registry::WithShared;
use crate::components::source::{Source, SourceConfig, SourceContext};
use crate::components::{BuildContext, ComponentFuture};
use crate::diagnostic::BuildError;
use crate::event::{Event, fields};
use crate::http::{RetryConfig, RetryPolicy};
use crate::nats::stream::valid_subject;
use crate::nats::{Connector, NatsConnection};
use crate::options::Seconds;

/// Options of the `nats` source.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NatsSourceConfig {
    /// Consume a JetStream durable consumer, acknowledging each message once
    /// delivered (at least once); `false` subscribes to core NATS `subject`
    /// (at most once).
    #[serde(default = "default_true")]
    jetstream: bool,
    /// JetStream: the stream to consume; it must exist (the `nats` sink's
    /// `stream` creates it).
    #[schemars(extend("x-placeholder" = "LOGS"))]
    stream: Option<String>,
    /// JetStream: the durable consumer's name. Instances that name the
    /// same consumer share its messages; it is created (explicit acks,
    /// from the start of the stream) when missing.
    #[schemars(extend("x-placeholder" = "workers"))]
    consumer: Option<String>,
    /// JetStream: only messages on subjects this matches (wildcards
    /// allowed); unset: the whole stream. Fixed when the consumer is
    /// created: an existing consumer with another filter is an error.
    filter_subject: Option<String>,
    /// JetStream: the most messages delivered and not yet acknowledged,
    /// across every instance sharing the consumer; delivery pauses at the
    /// limit. Bounds what a crash redelivers, hence the duplicates.
    #[serde(default = "default_max_ack_pending")]
    max_ack_pending: NonZeroU32,
    /// JetStream: a message not acknowledged this long after delivery is
    /// delivered again. While its events are on their way (a slow or
    /// retrying sink) howl reports it in progress every half `ack_wait`,
    /// so this bounds how long the messages of a howl that died (or lost
    /// its connection) wait before another instance gets them.
    #[serde(default = "default_ack_wait")]
    ack_wait_secs: Seconds,
    /// JetStream: a message whose delivery failed (a sink's retries ran
    /// out) is delivered again after this long.
    #[serde(default = "default_nak_delay")]
    nak_delay_secs: Seconds,
    /// JetStream: stop redelivering a message after this many deliveries
    /// (the server then keeps it and announces it on
    /// `$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.<stream>.<consumer>`);
    /// unset: no limit.
    max_deliver: Option<NonZeroU32>,
    /// Core NATS: the subject to subscribe to (wildcards allowed).
    subject: Option<String>,
    /// Core NATS: a queue group; instances in one group share the messages
    /// instead of each getting all of them.
    queue: Option<String>,
    /// How each message becomes events.
    #[serde(default)]
    decoding: NatsDecoding,
}

fn default_true() -> bool {
    true
}

fn default_max_ack_pending() -> NonZeroU32 {
    const THOUSAND: NonZeroU32 = NonZeroU32::new(1000).unwrap();
    THOUSAND
}

fn default_ack_wait() -> Seconds {
    Seconds::from_secs(30)
}

fn default_nak_delay() -> Seconds {
    Seconds::from_secs(5)
}

/// The `decoding` options: the line sources' codecs, JSON by default.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct NatsDecoding {
    /// How each message becomes events: `json` gives a JSON object's
    /// fields (the envelope the `nats` sink writes gives every field of
    /// the event back; an array, one event per element); `bytes` keeps the
    /// payload as `message`; `syslog` and `logfmt` read those formats. A
    /// message that does not decode is passed on as `bytes` makes it and
    /// counted in `component_errors_total{error_type="decode_failed"}`.
    #[serde(default = "json_codec")]
    codec: Codec,
}

fn json_codec() -> Codec {
    Codec::Json
}

impl Default for NatsDecoding {
    fn default() -> Self {
        Self {
            codec: json_codec(),
        }
    }
}

/// What the JetStream mode consumes.
#[derive(Debug, Clone)]
pub(super) struct ConsumerSpec {
    pub(super) stream: String,
    pub(super) name: String,
    pub(super) filter_subject: Option<String>,
    pub(super) max_ack_pending: NonZeroU32,
    pub(super) ack_wait: std::time::Duration,
    pub(super) nak_delay: std::time::Duration,
    pub(super) max_deliver: Option<NonZeroU32>,
}

/// What the core mode subscribes to.
#[derive(Debug, Clone)]
pub(super) struct Subscription {
    pub(super) subject: String,
    pub(super) queue: Option<String>,
}

/// A built `nats` source.
struct NatsSource {
    connector: Connector,
    mode: Mode,
    decoder: Decoder,
    retry: RetryPolicy,
}

enum Mode {
    JetStream(ConsumerSpec),
    Core(Subscription),
}

impl SourceConfig for WithShared<NatsSourceConfig, NatsConnection> {
    fn build(&self, cx: &BuildContext) -> Result<Box<dyn Source>, BuildError> {
        self.own.build(&self.shared, cx)
    }
}

impl NatsSourceConfig {
    fn build(
        &self,
        connection: &NatsConnection,
        cx: &BuildContext,
    ) -> Result<Box<dyn Source>, BuildError> {
        let mode = if self.jetstream {
            for (set, option) in [
                (self.subject.is_some(), "subject"),
                (self.queue.is_some(), "queue"),
            ] {
                if set {
                    return Err(BuildError::new(format!(
                        "`{option}` is for core NATS (`jetstream = false`); with JetStream, \
                         name the `stream` and `consumer` (and `filter_subject`)"
                    ))
                    .for_option(option));
                }
            }
            let required = |value: &Option<String>, option: &str, what: &str| {
                value.clone().filter(|v| !v.is_empty()).ok_or_else(|| {
                    BuildError::new(format!("`{option}` is required with JetStream: {what}"))
                        .for_option(option)
                })
            };
            let stream = required(&self.stream, "stream", "the stream to consume")?;
            let name = required(
                &self.consumer,
                "consumer",
                "the durable consumer's name, shared by the instances that split its messages",
            )?;
            if name.contains(|c: char| c.is_whitespace() || matches!(c, '.' | '*' | '>')) {
                return Err(BuildError::new(format!(
                    "`consumer` {name:?} is not a consumer name: no spaces, `.`, `*` or `>`"
                ))
                .for_option("consumer"));
            }
            if let Some(filter) = &self.filter_subject
                && !valid_subject(filter, true)
            {
                return Err(BuildError::new(format!(
                    "`filter_subject` {filter:?} is not a NATS subject"
                ))
                .for_option("filter_subject"));
            }
            Mode::JetStream(ConsumerSpec {
                stream,
                name,
                filter_subject: self.filter_subject.clone(),
                max_ack_pending: self.max_ack_pending,
                ack_wait: self.ack_wait_secs.positive("ack_wait_secs")?,
                nak_delay: self.nak_delay_secs.get(),
                max_deliver: self.max_deliver,
            })
        } else {
            for (set, option) in [
                (self.stream.is_some(), "stream"),
                (self.consumer.is_some(), "consumer"),
                (self.filter_subject.is_some(), "filter_subject"),
                (self.max_deliver.is_some(), "max_deliver"),
            ] {
                if set {
                    return Err(BuildError::new(format!(
                        "`{option}` needs JetStream; core NATS (`jetstream = false`) takes \
                         `subject` (and `queue`)"
                    ))
                    .for_option(option));
                }
            }
            let subject = self.subject.clone().ok_or_else(|| {
                BuildError::new("`subject` is required with `jetstream = false`")
                    .for_option("subject")
            })?;
            if !valid_subject(&subject, true) {
                return Err(BuildError::new(format!(
                    "`subject` {subject:?} is not a NATS subject"
                ))
                .for_option("subject"));
            }
            Mode::Core(Subscription {
                subject,
                queue: self.queue.clone(),
            })
        };
        Ok(Box::new(NatsSource {
            connector: connection.connector(cx)?,
            mode,
            decoder: Decoder::new(
                DecodingConfig {
                    codec: self.decoding.codec,
                },
                "nats",
            ),
            // Connecting and opening the consumer back off as sinks do,
            // without giving up: the source has nothing else to do.
            retry: RetryPolicy::new(&RetryConfig::default())?,
        }))
    }
}

impl Source for NatsSource {
    fn run(self: Box<Self>, cx: SourceContext) -> ComponentFuture {
        Box::pin(async move {
            let Some(client) = self
                .connector
                .connect_retrying(&self.retry, &cx.shutdown)
                .await?
            else {
                return Ok(());
            };
            let decode = MessageDecoder {
                decoder: SourceDecoder::new(
                    self.decoder,
                    cx.key.shared_id(),
                    Arc::clone(cx.out.metrics()),
                ),
                host: Value::from(cx.host.as_ref()),
            };
            match self.mode {
                Mode::JetStream(spec) => consumer::run(client, spec, decode, self.retry, cx).await,
                Mode::Core(subscription) => subscribe::run(client, subscription, decode, cx).await,
            }
        })
    }
}

/// Turns one message into its events.
pub(super) struct MessageDecoder {
    decoder: SourceDecoder,
    host: Value,
}

/// The most events sent downstream in one batch (messages ready together
/// are sent together).
pub(super) const BATCH_EVENTS: NonZeroUsize = NonZeroUsize::new(256).unwrap();

impl MessageDecoder {
    /// Appends the events of a message on `subject` to `events`; returns
    /// how many it made. A `timestamp` that JSON carried as RFC 3339 text
    /// (the `nats` sink's envelope) becomes a timestamp again, so that
    /// what reads it downstream (windows, strftime paths) sees the time
    /// the event had before it crossed the broker.
    pub(super) fn decode(
        &self,
        subject: &str,
        payload: bytes::Bytes,
        events: &mut Vec<Event>,
    ) -> usize {
        let before = events.len();
        let extra = [
            (fields::HOST, self.host.clone()),
            ("subject", Value::from(subject)),
        ];
        self.decoder.decode(payload, Utc::now(), &extra, events);
        for event in &mut events[before..] {
            let parsed = match event.get_field(fields::TIMESTAMP) {
                Some(Value::Bytes(text)) => std::str::from_utf8(text)
                    .ok()
                    .and_then(|text| chrono::DateTime::parse_from_rfc3339(text).ok()),
                _ => None,
            };
            if let Some(at) = parsed {
                event.insert_field(fields::TIMESTAMP, Value::Timestamp(at.with_timezone(&Utc)));
            }
        }
        events.len() - before
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::test_context;

    fn error(options: &str) -> BuildError {
        let config = WithShared::<NatsSourceConfig, NatsConnection>::from_toml(options)
            .expect("options parse");
        match config.build(&test_context(options)) {
            Ok(_) => panic!("builds: {options}"),
            Err(error) => error,
        }
    }

    #[test]
    fn the_sinks_envelope_gives_the_event_back() {
        use crate::component_key::{ComponentKey, ComponentKind};
        let metrics = Arc::new(crate::internal_events::ComponentMetrics::new(
            ComponentKey::new(ComponentKind::Source, "in", "nats"),
        ));
        let decode = MessageDecoder {
            decoder: SourceDecoder::new(
                Decoder::new(DecodingConfig { codec: Codec::Json }, "nats"),
                Arc::from("in"),
                metrics,
            ),
            host: Value::from("worker-1"),
        };
        let mut original = Event::log(
            bytes::Bytes::from_static(b"disk full"),
            "2026-12-06T10:00:00.123Z".parse().unwrap(),
            "file",
        );
        original.insert_field("host", "edge-7");
        original.insert_field("service", "api");
        let mut payload = Vec::new();
        crate::sinks::encoding::Encoding::Json.encode(&original, &mut payload);
        let mut events = Vec::new();
        assert_eq!(decode.decode("logs.api", payload.into(), &mut events), 1);
        let event = &events[0];
        assert_eq!(
            event.get_field("timestamp"),
            original.get_field("timestamp"),
            "a timestamp again, not text"
        );
        for (field, value) in [
            ("message", "disk full"),
            ("host", "edge-7"),
            ("service", "api"),
            ("subject", "logs.api"),
            ("source_type", "nats"),
        ] {
            assert_eq!(event.get_field(field), Some(&Value::from(value)), "{field}");
        }
    }

    #[test]
    fn each_mode_takes_its_own_options() {
        let url = "url = \"nats://127.0.0.1:4222\"\n";
        assert_eq!(
            error(&format!("{url}consumer = \"w\"")).option.as_deref(),
            Some("stream")
        );
        assert_eq!(
            error(&format!("{url}stream = \"LOGS\"")).option.as_deref(),
            Some("consumer")
        );
        assert_eq!(
            error(&format!("{url}stream = \"LOGS\"\nconsumer = \"a.b\""))
                .option
                .as_deref(),
            Some("consumer")
        );
        assert_eq!(
            error(&format!(
                "{url}stream = \"L\"\nconsumer = \"w\"\nsubject = \"x\""
            ))
            .option
            .as_deref(),
            Some("subject")
        );
        assert_eq!(
            error(&format!(
                "{url}jetstream = false\nsubject = \"x\"\nconsumer = \"w\""
            ))
            .option
            .as_deref(),
            Some("consumer")
        );
        assert_eq!(
            error(&format!("{url}jetstream = false")).option.as_deref(),
            Some("subject")
        );
    }
}
