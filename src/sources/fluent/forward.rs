//! One forward message (a whole MessagePack value, already scanned) to
//! events. The mode is told by the array's second element:
//!
//! | mode | shape | second element |
//! |---|---|---|
//! | Message | `[tag, time, record, option?]` | an integer, float or ext (a time) |
//! | Forward | `[tag, [[time, record], ...], option?]` | an array of entries |
//! | PackedForward | `[tag, entries back to back, option?]` | bin, or str (Fluentd's) |
//! | CompressedPackedForward | the same, gzip (maybe several members) | bin, with `compressed: "gzip"` |
//!
//! `nil` is a keepalive. A value that is not an array, or an array of
//! another shape, is ignored and counted; so is an entry that is not
//! `[time, record-map]` (Fluent Bit's `[[time, metadata], record]` is
//! read too). A time that is neither seconds nor EventTime gives the time
//! of arrival.

use std::io::Read;
use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use vrl::value::{KeyString, ObjectMap, Value};

use super::msgpack::{Item, Number, Reader, event_time};
use crate::event::{Event, fields};
use crate::internal_events::{ComponentMetrics, ErrorType, Stage};
use crate::sources::socket::Batch;

/// The `tag` field: the message's tag.
pub const TAG: &str = "tag";

/// What every event of the source is made with.
#[derive(Clone)]
pub struct Maker {
    /// The source's id.
    pub source_id: Arc<str>,
    /// Its metrics.
    pub metrics: Arc<ComponentMetrics>,
    /// The largest message, and decompressed payload, accepted.
    pub max_message_bytes: usize,
}

/// What a message's option map asks for.
#[derive(Debug, Default)]
struct Options {
    /// The `chunk` value as sent, to echo byte for byte.
    chunk: Option<Bytes>,
    compressed: Option<Bytes>,
}

impl Maker {
    /// The batch of one message (`None`: a keepalive, or nothing usable,
    /// which is counted).
    pub fn message(&self, message: Bytes, host: &Value) -> Option<Batch> {
        match self.read(message, host) {
            Ok(batch) => batch,
            Err(why) => {
                self.metrics.error(
                    ErrorType::DecodeFailed,
                    Stage::Receiving,
                    &format_args!("a forward message was ignored: {why}"),
                );
                None
            }
        }
    }

    fn read(&self, message: Bytes, host: &Value) -> Result<Option<Batch>, String> {
        let mut reader = Reader::new(message);
        let len = match reader.next() {
            Some(Item::Nil) => return Ok(None),
            Some(Item::Array(len)) if len >= 2 => len,
            Some(Item::Array(len)) => return Err(format!("an array of {len} elements")),
            _ => return Err("not an array".to_string()),
        };
        let tag = match reader.next() {
            Some(Item::Str(tag) | Item::Bin(tag)) => {
                Value::from(String::from_utf8_lossy(&tag).into_owned())
            }
            _ => return Err("its tag is not a string".to_string()),
        };
        let mut events = Vec::new();
        let mut bad_entries = 0;
        // The elements read after the tag, when the option map follows.
        let read;
        match reader.next() {
            Some(Item::Number(number)) => {
                let time = seconds(number);
                read = 2;
                match reader.value() {
                    Some(Value::Object(record)) if len >= 3 => {
                        events.push(self.event(record, time, &tag, host));
                    }
                    _ => return Err("Message mode without a record map".to_string()),
                }
            }
            Some(Item::Ext(kind, data)) => {
                let time = event_time(kind, &data);
                read = 2;
                match reader.value() {
                    Some(Value::Object(record)) if len >= 3 => {
                        events.push(self.event(record, time, &tag, host));
                    }
                    _ => return Err("Message mode without a record map".to_string()),
                }
            }
            Some(Item::Array(entries)) => {
                read = 1;
                if entries > MAX_ENTRIES_PER_MESSAGE {
                    return Err(too_many_entries());
                }
                for _ in 0..entries {
                    let entry = reader.raw().ok_or("a Forward entry is cut")?;
                    match self.entry(entry, &tag, host) {
                        Some(event) => events.push(event),
                        None => bad_entries += 1,
                    }
                }
            }
            Some(Item::Str(packed) | Item::Bin(packed)) => {
                let options = options(&mut reader, len - 2)?;
                let packed = match options.compressed.as_deref() {
                    Some(b"gzip") => self.gunzip(&packed)?,
                    _ => packed,
                };
                let mut entries = Reader::new(packed);
                while !entries.is_empty() {
                    if events.len() + bad_entries >= MAX_ENTRIES_PER_MESSAGE {
                        return Err(too_many_entries());
                    }
                    let Some(entry) = entries.raw() else {
                        bad_entries += 1;
                        break;
                    };
                    match self.entry(entry, &tag, host) {
                        Some(event) => events.push(event),
                        None => bad_entries += 1,
                    }
                }
                self.count_bad(bad_entries);
                return Ok(Some(self.batch(events, options.chunk)));
            }
            _ => return Err("its second element is not a time, entries or packed entries".into()),
        }
        let options = options(&mut reader, len - 1 - read)?;
        self.count_bad(bad_entries);
        Ok(Some(self.batch(events, options.chunk)))
    }

    fn batch(&self, events: Vec<Event>, chunk: Option<Bytes>) -> Batch {
        Batch {
            events,
            answer: chunk.map(|chunk| {
                // {"ack": chunk}: a map of one pair, the key a 3-byte str.
                let mut answer = Vec::with_capacity(5 + chunk.len());
                answer.extend_from_slice(b"\x81\xa3ack");
                answer.extend_from_slice(&chunk);
                Bytes::from(answer)
            }),
        }
    }

    fn count_bad(&self, entries: usize) {
        if entries > 0 {
            self.metrics.error(
                ErrorType::DecodeFailed,
                Stage::Receiving,
                &format_args!("{entries} forward entries were not [time, record] and were ignored"),
            );
        }
    }

    /// Decompresses CompressedPackedForward data: every gzip member, at
    /// most `max_message_bytes` of output.
    fn gunzip(&self, data: &[u8]) -> Result<Bytes, String> {
        let limit = self.max_message_bytes;
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(data)
            .take(limit as u64 + 1)
            .read_to_end(&mut out)
            .map_err(|e| format!("its gzip data cannot be read: {e}"))?;
        if out.len() > limit {
            return Err(format!(
                "its gzip data decompresses beyond max_message_bytes ({limit})"
            ));
        }
        Ok(Bytes::from(out))
    }

    /// The event of one entry: `[time, record]`, or Fluent Bit's
    /// `[[time, metadata], record]`.
    fn entry(&self, entry: Bytes, tag: &Value, host: &Value) -> Option<Event> {
        let mut reader = Reader::new(entry);
        let Some(Item::Array(2..)) = reader.next() else {
            return None;
        };
        let time = match reader.next()? {
            Item::Number(number) => seconds(number),
            Item::Ext(kind, data) => event_time(kind, &data),
            Item::Array(inner @ 1..) => {
                let time = match reader.next()? {
                    Item::Number(number) => seconds(number),
                    Item::Ext(kind, data) => event_time(kind, &data),
                    _ => None,
                };
                for _ in 1..inner {
                    reader.skip()?;
                }
                time
            }
            _ => None,
        };
        let Value::Object(record) = reader.value()? else {
            return None;
        };
        Some(self.event(record, time, tag, host))
    }

    /// An event: the record's fields, then `tag`, `timestamp`,
    /// `source_type` (which replace fields of those names) and `host`
    /// (which does not).
    fn event(
        &self,
        mut record: ObjectMap,
        time: Option<DateTime<Utc>>,
        tag: &Value,
        host: &Value,
    ) -> Event {
        record.insert(KeyString::from(TAG), tag.clone());
        record.insert(
            KeyString::from(fields::TIMESTAMP),
            Value::Timestamp(time.unwrap_or_else(Utc::now)),
        );
        record.insert(KeyString::from(fields::SOURCE_TYPE), Value::from("fluent"));
        record
            .entry(KeyString::from(fields::HOST))
            .or_insert_with(|| host.clone());
        Event::from_value(Value::Object(record)).with_source_id(Arc::clone(&self.source_id))
    }
}

/// A time in seconds (integer, or float from older senders).
fn seconds(number: Number) -> Option<DateTime<Utc>> {
    match number {
        Number::Int(seconds) => DateTime::from_timestamp(seconds, 0),
        Number::Big(_) => None,
        Number::Float(seconds) if seconds.is_finite() => {
            let whole = seconds.floor();
            let nanos = ((seconds - whole) * 1e9) as u32;
            DateTime::from_timestamp(whole as i64, nanos.min(999_999_999))
        }
        Number::Float(_) => None,
    }
}

/// Reads the option map, when the message has one (`left` elements are
/// still unread).
fn options(reader: &mut Reader, left: usize) -> Result<Options, String> {
    let mut options = Options::default();
    if left == 0 {
        return Ok(options);
    }
    match reader.next() {
        Some(Item::Map(pairs)) => {
            for _ in 0..pairs {
                let key = reader.next().ok_or("its option map is cut")?;
                match key {
                    Item::Str(key) if key.as_ref() == b"chunk" => {
                        options.chunk = Some(reader.raw().ok_or("its option map is cut")?);
                    }
                    Item::Str(key) if key.as_ref() == b"compressed" => match reader.next() {
                        Some(Item::Str(value) | Item::Bin(value)) => {
                            options.compressed = Some(value);
                        }
                        _ => return Err("its `compressed` option is not a string".into()),
                    },
                    Item::Array(_) | Item::Map(_) => {
                        return Err("its option map has a compound key".into());
                    }
                    _ => reader.skip().ok_or("its option map is cut")?,
                }
            }
            Ok(options)
        }
        Some(Item::Nil) => Ok(options),
        _ => Err("its option is not a map".into()),
    }
}

/// The most entries one message may hold. Each becomes an event of a
/// kilobyte or two in memory however small its record, so a message of
/// millions of empty records (a few bytes each) would take gigabytes;
/// Fluent Bit and Fluentd chunks hold far fewer.
pub const MAX_ENTRIES_PER_MESSAGE: usize = 200_000;

fn too_many_entries() -> String {
    format!("more than {MAX_ENTRIES_PER_MESSAGE} entries in one message")
}
