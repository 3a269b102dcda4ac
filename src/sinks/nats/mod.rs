//! `nats`: publish events to NATS, with JetStream acknowledgements.
//!
//! Each event becomes one message on the subject its `subject` template
//! renders (`logs.{{ .service }}`), its payload the event as JSON (the
//! sinks' [`encoding`](crate::sinks::encoding), every field kept) or its
//! `message`; or, with `events_per_message`, the events of a batch that
//! share a subject go out together as a JSON array ([`pack`]). With JetStream (the default) an event counts as delivered
//! only once the server acknowledged that a stream stored it; `msg_id`
//! sets `Nats-Msg-Id`, so a message published again within the stream's
//! duplicate window (a retry after a lost acknowledgement, a replay after
//! a crash) is stored once. With `jetstream = false` messages go to core
//! NATS: delivered once written to the server, at most once, lost when no
//! subscriber listens.
//!
//! Delivery follows the rules every batching sink shares: `batch.*`
//! groups events (a batch's messages are published back to back, then
//! their acknowledgements awaited, so at most `batch.max_events`
//! publishes are in flight), `retry.*` retries what the server did not
//! acknowledge (timeouts, a lost connection, no stream for the subject)
//! with backoff until `retry.max_duration_secs`, and while a batch is
//! retried the sink takes no more input, so upstream waits
//! (backpressure) rather than piling events up in memory.
//!
//! With `partition.*` each event's subject gets a last token, its
//! partition (`logs` → `logs.7`), so that workers sharing the partitions
//! see each key at one worker at a time ([`partition`]).
//!
//! The module reads: the options (here) → [`partition`] (routing by key)
//! → [`sink`] (the run loop) → [`pack`] (several events per message).

mod pack;
mod partition;
mod sink;

use std::num::NonZeroUsize;

use schemars::JsonSchema;
use serde::Deserialize;

use crate::components::BuildContext;
use crate::components::registry::WithShared;
use crate::components::sink::{Sink, SinkConfig};
use crate::diagnostic::BuildError;
use crate::http::{RetryConfig, RetryPolicy};
use crate::nats::NatsConnection;
use crate::nats::compression::Compression;
use crate::nats::stream::{StreamSpec, valid_subject};
use crate::options::Seconds;
use crate::sinks::batch::BatchConfig;
use crate::sinks::encoding::Encoding;
use crate::template::Template;
use partition::PartitionConfig;

/// Options of the `nats` sink.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NatsSinkConfig {
    /// The subject of each event's message, a template such as
    /// `logs.{{ .service }}`. With JetStream a stream must cover it
    /// (see `stream`). An event whose fields render it into a subject that
    /// is not one (spaces, wildcards, empty tokens) or that starts with `$`
    /// (the server's API) when the template does not is dropped.
    #[schemars(extend("x-placeholder" = "logs.{{ .service }}"))]
    subject: Template,
    /// A template for the `Nats-Msg-Id` header, e.g. `{{ .host }}-{{
    /// .request_id }}`: JetStream stores a message whose id it saw within the
    /// stream's duplicate window only once. Derive it from what identifies
    /// the event at its origin, so that a retried or replayed event gets
    /// the same id. Unset: no header, no deduplication.
    msg_id: Option<Template>,
    /// Publish through JetStream and wait for its acknowledgements (at
    /// least once); `false` publishes to core NATS (at most once: nothing
    /// is stored, a message nobody subscribes to is lost).
    #[serde(default = "default_true")]
    jetstream: bool,
    /// A JetStream stream to create at start-up if it is missing (checked
    /// if it exists); unset: the stream must exist.
    stream: Option<StreamSpec>,
    /// The payload: `json` (the whole event as one JSON object, every field
    /// kept: the `nats` source reads it back) or `text` (its `message`).
    #[serde(default)]
    encoding: Encoding,
    /// The most events in one message. `1` (the default): each event is
    /// its own message, a JSON object. More: events of one subject go out
    /// together as a JSON array (up to this many, and up to half the
    /// server's `max_payload` in bytes), which the `nats` source reads as
    /// one event per element. The broker's work is per message, so this is
    /// what takes a fleet past some 50,000 lines/s (README, "Running a
    /// fleet"); but everything past the broker counts messages too: a worker acknowledges, and redelivers
    /// after a crash or a failed delivery, a whole message, so
    /// `max_ack_pending` then bounds messages (up to this many events each),
    /// and `msg_id` deduplicates a message whose id is its first and last
    /// events' ids (`first..last`). Needs `encoding = "json"`.
    #[serde(default = "one")]
    events_per_message: NonZeroUsize,
    /// Compress each message's payload: `zstd` (its fastest level, marked
    /// with a `Content-Encoding: zstd` header, which the `nats` source
    /// decompresses by itself) or `none`. With packed events the broker's
    /// work is per byte, so this is what takes a one-worker fleet past
    /// 300,000 lines/s on two cores (README, "Running a fleet"); workers
    /// older than this option cannot read compressed messages.
    #[serde(default)]
    compression: Compression,
    /// How many batches may be published at once, each awaiting its
    /// acknowledgements and retried on its own. `1` (the default) publishes
    /// batches one after the other, in order. More overlaps one batch's
    /// round trip to the server with the next batch: more throughput,
    /// especially with one event per message; batches then reach the stream
    /// in any order, and a server lost mid-flight may store up to
    /// `concurrency` batches twice (without `msg_id`).
    #[serde(
        default = "one",
        deserialize_with = "crate::options::count_at_most::<_, 64>"
    )]
    #[schemars(range(min = 1, max = 64))]
    concurrency: NonZeroUsize,
    /// The longest wait for the server's acknowledgement of one message;
    /// an unacknowledged message is published again (see `retry`).
    #[serde(default = "default_ack_timeout")]
    ack_timeout_secs: Seconds,
    /// How events are grouped: the messages of a batch are in flight
    /// together.
    #[serde(default)]
    batch: BatchConfig,
    /// How messages the server did not acknowledge are retried.
    #[serde(default)]
    retry: RetryConfig,
    /// Route each event to one of `count` partitions by `key`: its subject
    /// gets the partition index as a last token (`logs` → `logs.7`), for
    /// workers whose `nats` source has `partitions.*` (one worker per
    /// partition at a time). Unset: the subject as rendered.
    partition: Option<PartitionConfig>,
}

fn default_true() -> bool {
    true
}

fn one() -> NonZeroUsize {
    NonZeroUsize::MIN
}

fn default_ack_timeout() -> Seconds {
    Seconds::from_secs(5)
}

impl SinkConfig for WithShared<NatsSinkConfig, NatsConnection> {
    fn build(&self, cx: &BuildContext) -> Result<Box<dyn Sink>, BuildError> {
        self.own.build(&self.shared, cx)
    }

    fn acknowledgements_by_default(&self) -> bool {
        true
    }
}

impl NatsSinkConfig {
    fn build(
        &self,
        connection: &NatsConnection,
        cx: &BuildContext,
    ) -> Result<Box<dyn Sink>, BuildError> {
        if self.subject.is_static() && !valid_subject(self.subject.as_str(), false) {
            return Err(BuildError::new(format!(
                "`subject` {:?} is not a NATS subject to publish to: dot-separated tokens, \
                 no spaces, no wildcards",
                self.subject.as_str()
            ))
            .for_option("subject"));
        }
        if let Some(stream) = &self.stream {
            if !self.jetstream {
                return Err(BuildError::new(
                    "`stream` needs JetStream: core NATS (`jetstream = false`) stores nothing",
                )
                .for_option("stream"));
            }
            stream.check()?;
        }
        if self.events_per_message.get() > 1 && self.encoding != Encoding::Json {
            return Err(BuildError::new(
                "`events_per_message` above 1 packs events into a JSON array: it needs \
                 `encoding = \"json\"`",
            )
            .for_option("events_per_message"));
        }
        if self.msg_id.is_some() && !self.jetstream {
            return Err(BuildError::new(
                "`msg_id` needs JetStream: core NATS does not deduplicate",
            )
            .for_option("msg_id"));
        }
        Ok(Box::new(sink::NatsSink {
            connector: connection.connector(cx)?,
            subject: self.subject.clone(),
            msg_id: self.msg_id.clone(),
            jetstream: self.jetstream,
            stream: self.stream.clone(),
            encoding: self.encoding,
            ack_timeout: self.ack_timeout_secs.positive("ack_timeout_secs")?,
            retry: RetryPolicy::new(&self.retry)?,
            batch_events: self.batch.max_events,
            batch_timeout: self.batch.timeout_secs.get(),
            partition: self
                .partition
                .as_ref()
                .map(PartitionConfig::build)
                .transpose()?,
            events_per_message: self.events_per_message,
            concurrency: self.concurrency,
            compression: self.compression,
        }))
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::sync::Arc;

    use super::*;
    use crate::component_key::{ComponentKey, ComponentKind};
    use crate::diagnostic::SourceFile;

    fn error(options: &str) -> BuildError {
        let config = WithShared::<NatsSinkConfig, NatsConnection>::from_toml(options)
            .expect("options parse");
        let built = config.build(&BuildContext {
            key: ComponentKey::new(ComponentKind::Sink, "out", "nats"),
            file: Arc::new(SourceFile::new(
                PathBuf::from("t.toml"),
                options.to_string(),
            )),
            data_dir: std::env::temp_dir(),
        });
        match built {
            Ok(_) => panic!("builds: {options}"),
            Err(error) => error,
        }
    }

    #[test]
    fn options_that_need_jetstream_or_a_publishable_subject_are_refused() {
        let url = "url = \"nats://127.0.0.1:4222\"\n";
        let wildcard = error(&format!("{url}subject = \"logs.>\""));
        assert_eq!(wildcard.option.as_deref(), Some("subject"));
        let core_dedupe = error(&format!(
            "{url}subject = \"logs\"\njetstream = false\nmsg_id = \"{{{{ .id }}}}\""
        ));
        assert_eq!(core_dedupe.option.as_deref(), Some("msg_id"));
        let core_stream = error(&format!(
            "{url}subject = \"logs\"\njetstream = false\nstream = {{ name = \"L\", subjects = [\"logs\"] }}"
        ));
        assert_eq!(core_stream.option.as_deref(), Some("stream"));
        for count in [0, 1025] {
            let partition = error(&format!(
                "{url}subject = \"logs\"\npartition = {{ key = \"{{{{ .service }}}}\", count = {count} }}"
            ));
            assert_eq!(partition.option.as_deref(), Some("partition.count"));
        }
        let packed_text = error(&format!(
            "{url}subject = \"logs\"\nencoding = \"text\"\nevents_per_message = 10"
        ));
        assert_eq!(packed_text.option.as_deref(), Some("events_per_message"));
    }
}
