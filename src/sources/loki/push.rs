//! The two encodings of a push request: Loki's JSON, and its protobuf
//! (`PushRequest` of `pkg/push/push.proto`) in snappy's block format.
//!
//! The protobuf messages are written out here (five small ones) rather
//! than generated: Loki's `.proto` imports gogoproto, and generating would
//! need `protoc` at build time.

use chrono::{DateTime, Utc};

use super::labels::parse_labels;
use super::{Entry, Stream};

/// `logproto.PushRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PushRequest {
    /// The streams pushed.
    #[prost(message, repeated, tag = "1")]
    pub streams: Vec<StreamAdapter>,
}

/// `logproto.StreamAdapter`: a stream's labels as Prometheus label text.
#[derive(Clone, PartialEq, prost::Message)]
pub struct StreamAdapter {
    /// `{env="prod", job="api"}`.
    #[prost(string, tag = "1")]
    pub labels: String,
    /// The stream's entries.
    #[prost(message, repeated, tag = "2")]
    pub entries: Vec<EntryAdapter>,
}

/// `logproto.EntryAdapter`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct EntryAdapter {
    /// When the line was logged.
    #[prost(message, optional, tag = "1")]
    pub timestamp: Option<Timestamp>,
    /// The log line.
    #[prost(string, tag = "2")]
    pub line: String,
    /// Structured metadata: name/value pairs.
    #[prost(message, repeated, tag = "3")]
    pub structured_metadata: Vec<LabelPairAdapter>,
}

/// `google.protobuf.Timestamp`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Timestamp {
    /// Seconds since the Unix epoch.
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    /// Nanoseconds within the second.
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

/// `logproto.LabelPairAdapter`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct LabelPairAdapter {
    /// The name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// The value.
    #[prost(string, tag = "2")]
    pub value: String,
}

/// Streams from a snappy-compressed protobuf body, decompressed to at most
/// `limit` bytes.
pub(super) fn from_protobuf(body: &[u8], limit: usize) -> Result<Vec<Stream>, String> {
    let length = snap::raw::decompress_len(body)
        .map_err(|e| format!("the body is not snappy-compressed protobuf: {e}"))?;
    if length > limit {
        return Err(format!(
            "the body decompresses to {length} bytes, more than {limit} (8 times max_body_bytes)"
        ));
    }
    let raw = snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(|e| format!("the body is not snappy-compressed protobuf: {e}"))?;
    let request = <PushRequest as prost::Message>::decode(&raw[..])
        .map_err(|e| format!("the body is not a Loki PushRequest: {e}"))?;
    request
        .streams
        .into_iter()
        .map(|stream| {
            Ok(Stream {
                labels: parse_labels(&stream.labels)?,
                entries: stream
                    .entries
                    .into_iter()
                    .map(|entry| Entry {
                        at: entry.timestamp.and_then(|t| {
                            DateTime::from_timestamp(t.seconds, u32::try_from(t.nanos).ok()?)
                        }),
                        line: entry.line,
                        metadata: entry
                            .structured_metadata
                            .into_iter()
                            .map(|pair| (pair.name, pair.value))
                            .collect(),
                    })
                    .collect(),
            })
        })
        .collect()
}

#[derive(serde::Deserialize)]
struct JsonPush {
    streams: Vec<JsonStream>,
}

#[derive(serde::Deserialize)]
struct JsonStream {
    #[serde(default)]
    stream: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    values: Vec<Vec<serde_json::Value>>,
}

/// Streams from a JSON body.
pub(super) fn from_json(body: &[u8]) -> Result<Vec<Stream>, String> {
    let push: JsonPush = serde_json::from_slice(body)
        .map_err(|e| format!("the body is not a Loki JSON push: {e}"))?;
    push.streams
        .into_iter()
        .enumerate()
        .map(|(s, stream)| {
            let entries = stream
                .values
                .into_iter()
                .enumerate()
                .map(|(v, value)| {
                    json_entry(value).map_err(|e| format!("streams[{s}].values[{v}]: {e}"))
                })
                .collect::<Result<_, _>>()?;
            Ok(Stream {
                labels: stream.stream.into_iter().collect(),
                entries,
            })
        })
        .collect()
}

/// `["<unix nanoseconds>", "line", {metadata}?]`.
fn json_entry(value: Vec<serde_json::Value>) -> Result<Entry, String> {
    let mut parts = value.into_iter();
    let at = match parts.next() {
        Some(serde_json::Value::String(nanos)) => nanos
            .parse::<i64>()
            .map(DateTime::<Utc>::from_timestamp_nanos)
            .map_err(|_| format!("the timestamp `{nanos}` is not Unix nanoseconds"))?,
        _ => return Err("the timestamp must be a string of Unix nanoseconds".to_string()),
    };
    let line = match parts.next() {
        Some(serde_json::Value::String(line)) => line,
        _ => return Err("the line must be a string".to_string()),
    };
    let metadata = match parts.next() {
        None | Some(serde_json::Value::Null) => Vec::new(),
        Some(serde_json::Value::Object(map)) => map
            .into_iter()
            .map(|(k, v)| {
                let v = match v {
                    serde_json::Value::String(s) => s,
                    other => other.to_string(),
                };
                (k, v)
            })
            .collect(),
        Some(_) => return Err("structured metadata must be an object".to_string()),
    };
    Ok(Entry {
        at: Some(at),
        line,
        metadata,
    })
}
