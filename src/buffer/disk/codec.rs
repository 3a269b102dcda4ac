//! Events as bytes on disk: a small tagged binary encoding of howl's
//! `Event` (its VRL value and the id of the source that made it).
//!
//! Not serde: vrl's `Serialize` for `Value` is JSON-shaped (timestamps and
//! regexes come back as strings, bytes through lossy UTF-8), and a disk
//! buffer must give back exactly what it was given. Each value is a tag
//! byte, then its data; lengths and integers are LEB128 varints. The same
//! depth limit applies when encoding and decoding, so nothing is ever
//! written that cannot be read back (Vector's disk buffer once wrote records
//! its decoder refused, and would then not start).
//!
//! Decoding treats its input as hostile: every length is checked against
//! what is left, nothing panics, and a bad record is an error, not a crash.

use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use vrl::value::{KeyString, ObjectMap, Value};

use crate::event::Event;

/// How deeply values may nest (objects and arrays within each other).
pub const MAX_DEPTH: usize = 64;

const NULL: u8 = 0;
const FALSE: u8 = 1;
const TRUE: u8 = 2;
const INTEGER: u8 = 3;
const FLOAT: u8 = 4;
const BYTES: u8 = 5;
const STRING: u8 = 6;
const REGEX: u8 = 7;
const TIMESTAMP: u8 = 8;
const ARRAY: u8 = 9;
const OBJECT: u8 = 10;

/// Why a record could not be decoded (or an event encoded).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// The bytes end in the middle of a value.
    #[error("the record ends in the middle of a value")]
    Truncated,
    /// An unknown tag, an invalid float or timestamp, bad UTF-8...
    #[error("invalid record: {0}")]
    Invalid(&'static str),
    /// Values nest deeper than [`MAX_DEPTH`].
    #[error("values nest deeper than {MAX_DEPTH} levels")]
    TooDeep,
}

/// Appends `events` to `out`.
pub fn encode_events(events: &[Event], out: &mut Vec<u8>) -> Result<(), CodecError> {
    for event in events {
        encode_event(event, out)?;
    }
    Ok(())
}

/// Appends one event: its source id (empty when none), then its value.
pub fn encode_event(event: &Event, out: &mut Vec<u8>) -> Result<(), CodecError> {
    let source = event.metadata().source_id().unwrap_or_default();
    put_bytes(source.as_bytes(), out);
    encode_value(event.value(), out, 0)
}

/// Reads `count` events from `bytes`, which must hold exactly them. Byte
/// values share `bytes` (no copy): a record's events are read, delivered
/// and dropped together.
pub fn decode_events(bytes: &Bytes, count: usize) -> Result<Vec<Event>, CodecError> {
    let mut reader = Reader {
        whole: bytes,
        bytes,
        at: 0,
    };
    let mut events = Vec::with_capacity(count.min(bytes.len()));
    // Most records hold events of one source: its id is allocated once.
    let mut last_source: Option<Arc<str>> = None;
    for _ in 0..count {
        let source = reader.bytes()?;
        let source = std::str::from_utf8(source).map_err(|_| CodecError::Invalid("source id"))?;
        let value = reader.value(0)?;
        let mut event = Event::from_value(value);
        if !source.is_empty() {
            let id = match &last_source {
                Some(id) if **id == *source => Arc::clone(id),
                _ => {
                    let id: Arc<str> = Arc::from(source);
                    last_source = Some(Arc::clone(&id));
                    id
                }
            };
            event = event.with_source_id(id);
        }
        events.push(event);
    }
    if reader.at != bytes.len() {
        return Err(CodecError::Invalid("bytes left after the last event"));
    }
    Ok(events)
}

fn encode_value(value: &Value, out: &mut Vec<u8>, depth: usize) -> Result<(), CodecError> {
    if depth > MAX_DEPTH {
        return Err(CodecError::TooDeep);
    }
    match value {
        Value::Null => out.push(NULL),
        Value::Boolean(false) => out.push(FALSE),
        Value::Boolean(true) => out.push(TRUE),
        Value::Integer(n) => {
            out.push(INTEGER);
            put_varint(zigzag(*n), out);
        }
        Value::Float(f) => {
            out.push(FLOAT);
            out.extend_from_slice(&f.into_inner().to_le_bytes());
        }
        Value::Bytes(bytes) => {
            out.push(BYTES);
            put_bytes(bytes, out);
        }
        Value::String(text) => {
            out.push(STRING);
            put_bytes(text.as_bytes(), out);
        }
        Value::Regex(regex) => {
            out.push(REGEX);
            put_bytes(regex.as_str().as_bytes(), out);
        }
        Value::Timestamp(at) => {
            out.push(TIMESTAMP);
            put_varint(zigzag(at.timestamp()), out);
            put_varint(u64::from(at.timestamp_subsec_nanos()), out);
        }
        Value::Array(items) => {
            out.push(ARRAY);
            put_varint(items.len() as u64, out);
            for item in items {
                encode_value(item, out, depth + 1)?;
            }
        }
        Value::Object(map) => {
            out.push(OBJECT);
            put_varint(map.len() as u64, out);
            for (key, item) in map {
                put_bytes(key.as_str().as_bytes(), out);
                encode_value(item, out, depth + 1)?;
            }
        }
    }
    Ok(())
}

fn put_bytes(bytes: &[u8], out: &mut Vec<u8>) {
    put_varint(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}

fn put_varint(mut n: u64, out: &mut Vec<u8>) {
    while n >= 0x80 {
        out.push((n as u8 & 0x7f) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn zigzag(n: i64) -> u64 {
    ((n << 1) ^ (n >> 63)) as u64
}

fn unzigzag(n: u64) -> i64 {
    ((n >> 1) as i64) ^ -((n & 1) as i64)
}

struct Reader<'a> {
    /// The record, for values that share it.
    whole: &'a Bytes,
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Result<u8, CodecError> {
        let byte = *self.bytes.get(self.at).ok_or(CodecError::Truncated)?;
        self.at += 1;
        Ok(byte)
    }

    fn varint(&mut self) -> Result<u64, CodecError> {
        let mut n: u64 = 0;
        for shift in (0..64).step_by(7) {
            let byte = self.byte()?;
            n |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(n);
            }
        }
        Err(CodecError::Invalid("varint too long"))
    }

    /// A length, checked against what is left (a corrupt length must never
    /// make us allocate or read beyond the record).
    fn length(&mut self) -> Result<usize, CodecError> {
        let len = usize::try_from(self.varint()?).map_err(|_| CodecError::Truncated)?;
        if len > self.bytes.len() - self.at {
            return Err(CodecError::Truncated);
        }
        Ok(len)
    }

    fn bytes(&mut self) -> Result<&'a [u8], CodecError> {
        let len = self.length()?;
        let slice = &self.bytes[self.at..self.at + len];
        self.at += len;
        Ok(slice)
    }

    fn text(&mut self, what: &'static str) -> Result<&'a str, CodecError> {
        std::str::from_utf8(self.bytes()?).map_err(|_| CodecError::Invalid(what))
    }

    fn value(&mut self, depth: usize) -> Result<Value, CodecError> {
        if depth > MAX_DEPTH {
            return Err(CodecError::TooDeep);
        }
        Ok(match self.byte()? {
            NULL => Value::Null,
            FALSE => Value::Boolean(false),
            TRUE => Value::Boolean(true),
            INTEGER => Value::Integer(unzigzag(self.varint()?)),
            FLOAT => {
                let end = self.at + 8;
                let raw = self.bytes.get(self.at..end).ok_or(CodecError::Truncated)?;
                self.at = end;
                let mut le = [0; 8];
                le.copy_from_slice(raw);
                let float = f64::from_le_bytes(le);
                let float =
                    ordered_float_not_nan(float).ok_or(CodecError::Invalid("a NaN float"))?;
                Value::Float(float)
            }
            BYTES => {
                let len = self.length()?;
                let value = self.whole.slice(self.at..self.at + len);
                self.at += len;
                Value::Bytes(value)
            }
            STRING => Value::from(self.text("a string that is not UTF-8")?.to_string()),
            REGEX => {
                let pattern = self.text("a regex that is not UTF-8")?;
                let regex = regex::Regex::new(pattern).map_err(|_| CodecError::Invalid("regex"))?;
                Value::Regex(vrl::value::ValueRegex::new(Arc::new(regex)))
            }
            TIMESTAMP => {
                let secs = unzigzag(self.varint()?);
                let nanos =
                    u32::try_from(self.varint()?).map_err(|_| CodecError::Invalid("timestamp"))?;
                let at: DateTime<Utc> = DateTime::from_timestamp(secs, nanos)
                    .ok_or(CodecError::Invalid("timestamp out of range"))?;
                Value::Timestamp(at)
            }
            ARRAY => {
                let len = self.length()?; // each item takes at least a byte
                let mut items = Vec::with_capacity(len);
                for _ in 0..len {
                    items.push(self.value(depth + 1)?);
                }
                Value::Array(items)
            }
            OBJECT => {
                let len = self.length()?;
                // Keys were written in order: building from a sorted list
                // skips a search per key.
                let mut entries = Vec::with_capacity(len);
                for _ in 0..len {
                    let key = self.text("a key that is not UTF-8")?;
                    entries.push((KeyString::from(key), self.value(depth + 1)?));
                }
                Value::Object(entries.into_iter().collect::<ObjectMap>())
            }
            _ => return Err(CodecError::Invalid("unknown value tag")),
        })
    }
}

fn ordered_float_not_nan(float: f64) -> Option<vrl::compiler::prelude::NotNan<f64>> {
    vrl::compiler::prelude::NotNan::new(float).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(seed: u64) -> Value {
        let mut rng = fastrand::Rng::with_seed(seed);
        fn value(rng: &mut fastrand::Rng, depth: usize) -> Value {
            match rng.u8(0..if depth > 4 { 8 } else { 10 }) {
                0 => Value::Null,
                1 => Value::Boolean(rng.bool()),
                2 => Value::Integer(rng.i64(..)),
                3 => Value::Float(
                    vrl::compiler::prelude::NotNan::new(rng.f64() * 1e6 - 5e5).unwrap(),
                ),
                4 => Value::Bytes(Bytes::from(
                    (0..rng.usize(0..40))
                        .map(|_| rng.u8(..))
                        .collect::<Vec<_>>(),
                )),
                5 => Value::from(format!("text {} ünïcödé", rng.u32(..))),
                6 => Value::Timestamp(
                    DateTime::from_timestamp(rng.i64(0..4_000_000_000), rng.u32(0..1_000_000_000))
                        .unwrap(),
                ),
                7 => Value::Regex(vrl::value::ValueRegex::new(Arc::new(
                    regex::Regex::new(r"^a\d+$").unwrap(),
                ))),
                8 => Value::Array(
                    (0..rng.usize(0..4))
                        .map(|_| value(rng, depth + 1))
                        .collect(),
                ),
                _ => {
                    let mut map = ObjectMap::new();
                    for i in 0..rng.usize(0..5) {
                        map.insert(KeyString::from(format!("k{i}")), value(rng, depth + 1));
                    }
                    Value::Object(map)
                }
            }
        }
        value(&mut rng, 0)
    }

    #[test]
    fn events_come_back_exactly_as_they_went_in() {
        for seed in 0..300 {
            let events = vec![
                Event::from_value(sample(seed)).with_source_id(Arc::from("app")),
                Event::from_value(sample(seed + 10_000)),
            ];
            let mut bytes = Vec::new();
            encode_events(&events, &mut bytes).unwrap();
            let back = decode_events(&Bytes::from(bytes), events.len()).unwrap();
            for (before, after) in events.iter().zip(&back) {
                assert_eq!(before.value(), after.value(), "seed {seed}");
                assert_eq!(before.metadata().source_id(), after.metadata().source_id());
            }
        }
    }

    #[test]
    fn decoding_garbage_never_panics() {
        let mut rng = fastrand::Rng::with_seed(7);
        let mut valid = Vec::new();
        encode_events(&[Event::from_value(sample(1))], &mut valid).unwrap();
        for _ in 0..5_000 {
            let mut bytes = valid.clone();
            match rng.u8(0..3) {
                0 => {
                    let at = rng.usize(0..bytes.len());
                    bytes[at] = rng.u8(..);
                }
                1 => bytes.truncate(rng.usize(0..bytes.len())),
                _ => bytes = (0..rng.usize(0..64)).map(|_| rng.u8(..)).collect(),
            }
            let _ = decode_events(&Bytes::from(bytes), rng.usize(0..4));
        }
    }

    #[test]
    fn values_nested_too_deep_are_refused_on_the_way_in() {
        let mut value = Value::Null;
        for _ in 0..=MAX_DEPTH + 1 {
            value = Value::Array(vec![value]);
        }
        let mut bytes = Vec::new();
        let error = encode_event(&Event::from_value(value), &mut bytes).unwrap_err();
        assert_eq!(error, CodecError::TooDeep);
    }
}
