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
//! With `partitions.*` the source consumes a partitioned stream (the
//! `nats` sink's `partition.*`): one durable consumer per partition, each
//! partition consumed by one instance at a time, held through a lease
//! ([`partitions`]).
//!
//! The module reads: the options (here) → [`consumer`] (the JetStream
//! loop and its acknowledgements) → [`partitions`] (leases, one consumer
//! per partition held) → [`subscribe`] (core NATS).

mod consumer;
mod partitions;
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
use crate::internal_events::{ComponentMetrics, ErrorType, Stage};
use crate::nats::compression;
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
    /// created: an existing consumer with another filter is not used, but
    /// reported (an error) and looked at again with backoff until an
    /// operator deletes it; with `partitions`, the other partitions go on
    /// meanwhile.
    /// With `partitions`, required: the subject prefix the edges publish
    /// under (`logs` for `logs.0` … `logs.15`), without wildcards.
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
    /// JetStream: consume a partitioned stream (the `nats` sink's
    /// `partition.*`) with each partition consumed by one instance at a
    /// time: partition `i` through the durable consumer `<consumer>-<i>`,
    /// filtered on `<filter_subject>.<i>`, by the instance holding its
    /// lease. Instances split the partitions evenly and take over those of
    /// an instance that died. Unset: all instances share one consumer.
    partitions: Option<partitions::PartitionsConfig>,
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
    Partitioned(ConsumerSpec, partitions::Plan),
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
            let spec = ConsumerSpec {
                stream,
                name,
                filter_subject: self.filter_subject.clone(),
                max_ack_pending: self.max_ack_pending,
                ack_wait: self.ack_wait_secs.positive("ack_wait_secs")?,
                nak_delay: self.nak_delay_secs.get(),
                max_deliver: self.max_deliver,
            };
            match &self.partitions {
                None => Mode::JetStream(spec),
                Some(partitions) => {
                    let plan = partitions.build()?;
                    match &spec.filter_subject {
                        Some(prefix) if valid_subject(prefix, false) => {}
                        _ => {
                            return Err(BuildError::new(
                                "`partitions` needs `filter_subject`: the subject prefix the \
                                 edges publish under (`logs` for `logs.0`, `logs.1`, …), \
                                 without wildcards",
                            )
                            .for_option("filter_subject"));
                        }
                    }
                    Mode::Partitioned(spec, plan)
                }
            }
        } else {
            for (set, option) in [
                (self.stream.is_some(), "stream"),
                (self.consumer.is_some(), "consumer"),
                (self.filter_subject.is_some(), "filter_subject"),
                (self.max_deliver.is_some(), "max_deliver"),
                (self.partitions.is_some(), "partitions"),
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
                metrics: Arc::clone(cx.out.metrics()),
            };
            match self.mode {
                Mode::JetStream(spec) => consumer::run(client, spec, decode, self.retry, cx).await,
                Mode::Partitioned(spec, plan) => {
                    partitions::run(client, spec, plan, decode, self.retry, cx).await
                }
                Mode::Core(subscription) => subscribe::run(client, subscription, decode, cx).await,
            }
        })
    }
}

/// Turns one message into its events.
pub(super) struct MessageDecoder {
    decoder: SourceDecoder,
    host: Value,
    metrics: Arc<ComponentMetrics>,
}

/// The most events sent downstream in one batch (messages ready together
/// are sent together).
pub(super) const BATCH_EVENTS: NonZeroUsize = NonZeroUsize::new(256).unwrap();

impl MessageDecoder {
    /// Appends the events of a message on `subject` to `events`; returns
    /// how many it made. A payload with `Content-Encoding` (the sink's
    /// `compression`) is decompressed first; one that does not decompress
    /// is counted and decoded as it came, like any frame that does not
    /// decode: passed on, not dropped. A `timestamp` that JSON carried as
    /// RFC 3339 text (the `nats` sink's envelope) becomes a timestamp again, so that
    /// what reads it downstream (windows, strftime paths) sees the time
    /// the event had before it crossed the broker.
    pub(super) fn decode(
        &self,
        subject: &str,
        headers: Option<&async_nats::HeaderMap>,
        payload: bytes::Bytes,
        events: &mut Vec<Event>,
    ) -> usize {
        let before = events.len();
        let encoding = headers
            .and_then(|headers| headers.get(compression::HEADER))
            .map(|value| value.as_str());
        let payload = match compression::decompress(encoding, payload.clone()) {
            Ok(payload) => payload,
            Err(error) => {
                self.metrics.error(
                    ErrorType::DecodeFailed,
                    Stage::Receiving,
                    &format_args!(
                        "a message on `{subject}` does not decompress ({error}); \
                         its payload is passed on as it came"
                    ),
                );
                payload
            }
        };
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

    /// A JSON decoder as a running source has it.
    fn json_decoder() -> MessageDecoder {
        use crate::component_key::{ComponentKey, ComponentKind};
        let metrics = Arc::new(ComponentMetrics::new(ComponentKey::new(
            ComponentKind::Source,
            "in",
            "nats",
        )));
        MessageDecoder {
            decoder: SourceDecoder::new(
                Decoder::new(DecodingConfig { codec: Codec::Json }, "nats"),
                Arc::from("in"),
                Arc::clone(&metrics),
            ),
            host: Value::from("worker-1"),
            metrics,
        }
    }

    #[test]
    fn a_compressed_pack_decodes_and_a_corrupt_one_is_passed_on() {
        let decode = json_decoder();
        let pack = bytes::Bytes::from_static(br#"[{"message":"a"},{"message":"b"}]"#);
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(compression::HEADER, "zstd");
        let compressed = compression::Compression::Zstd.compress(pack.clone());
        let mut events = Vec::new();
        assert_eq!(
            decode.decode("logs.0", Some(&headers), compressed, &mut events),
            2
        );
        let messages: Vec<_> = events
            .iter()
            .map(|event| event.get_field("message").cloned())
            .collect();
        assert_eq!(messages, [Some(Value::from("a")), Some(Value::from("b"))]);
        // Marked compressed but not: decoded as it came (JSON here), not
        // dropped (the error count is asserted by tests/it/nats.rs).
        events.clear();
        assert_eq!(
            decode.decode("logs.0", Some(&headers), pack, &mut events),
            2
        );
    }

    #[test]
    fn the_sinks_envelope_gives_the_event_back() {
        let decode = json_decoder();
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
        assert_eq!(
            decode.decode("logs.api", None, payload.into(), &mut events),
            1
        );
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
    fn partitions_need_a_prefix_a_count_in_range_and_a_lease_ttl() {
        let base = "url = \"nats://127.0.0.1:4222\"\nstream = \"LOGS\"\nconsumer = \"w\"\n";
        for (options, option) in [
            ("partitions = { count = 16 }", "filter_subject"),
            (
                "filter_subject = \"logs.>\"\npartitions = { count = 16 }",
                "filter_subject",
            ),
            (
                "filter_subject = \"logs\"\npartitions = { count = 0 }",
                "partitions.count",
            ),
            (
                "filter_subject = \"logs\"\npartitions = { count = 1025 }",
                "partitions.count",
            ),
            (
                "filter_subject = \"logs\"\npartitions = { count = 4, lease_ttl_secs = 0.5 }",
                "partitions.lease_ttl_secs",
            ),
            (
                "filter_subject = \"logs\"\npartitions = { count = 4, lease_bucket = \"a.b\" }",
                "partitions.lease_bucket",
            ),
        ] {
            let error = error(&format!("{base}{options}"));
            assert_eq!(error.option.as_deref(), Some(option), "{options}");
        }
        let core = error(
            "url = \"nats://127.0.0.1:4222\"\njetstream = false\nsubject = \"x\"\n\
             partitions = { count = 4 }",
        );
        assert_eq!(core.option.as_deref(), Some("partitions"));
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
