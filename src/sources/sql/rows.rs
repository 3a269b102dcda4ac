//! Rows into events: each column a field named after it, its type mapped
//! to the nearest event value; and the stable hash of a row that the
//! cursor remembers.

use bytes::Bytes;
use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use sha2::{Digest, Sha256};
use sqlx::postgres::{PgRow, PgValueFormat, PgValueRef};
use sqlx::sqlite::SqliteRow;
use sqlx::{Column, Row as _, TypeInfo, ValueRef};
use vrl::value::Value;

use super::cursor::{CursorValue, rfc3339};
use crate::event::Event;

/// The columns of one row, in the answer's order.
#[derive(Debug, Default)]
pub struct Decoded {
    pub fields: Vec<(String, Value)>,
    /// About how many bytes the row took on the wire.
    pub bytes: usize,
    /// Columns of a type that has no mapping and whose value is not text:
    /// (column, type); their field is null.
    pub unknown: Vec<(String, String)>,
}

impl Decoded {
    fn push(&mut self, name: &str, value: Value) {
        self.fields.push((name.to_string(), value));
    }
}

/// A PostgreSQL row. Never fails: a value that cannot be decoded is null
/// (and listed in `unknown`).
pub fn pg_row(row: &PgRow) -> Decoded {
    let mut decoded = Decoded::default();
    for (index, column) in row.columns().iter().enumerate() {
        let name = column.name();
        let Ok(raw) = row.try_get_raw(index) else {
            decoded.push(name, Value::Null);
            continue;
        };
        if raw.is_null() {
            decoded.push(name, Value::Null);
            continue;
        }
        let type_name = column.type_info().name().to_string();
        decoded.bytes += raw.as_bytes().map_or(0, <[u8]>::len);
        match pg_value(row, index, &type_name, raw) {
            Some(value) => decoded.push(name, value),
            None => {
                decoded.push(name, Value::Null);
                decoded.unknown.push((name.to_string(), type_name));
            }
        }
    }
    decoded
}

fn pg_value(row: &PgRow, index: usize, type_name: &str, raw: PgValueRef<'_>) -> Option<Value> {
    fn get<'r, T: sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>>(
        row: &'r PgRow,
        index: usize,
    ) -> Option<T> {
        row.try_get::<T, _>(index).ok()
    }
    let value = match type_name {
        "INT2" => Value::Integer(i64::from(get::<i16>(row, index)?)),
        "INT4" => Value::Integer(i64::from(get::<i32>(row, index)?)),
        "INT8" => Value::Integer(get::<i64>(row, index)?),
        "FLOAT4" => float(f64::from(get::<f32>(row, index)?)),
        "FLOAT8" => float(get::<f64>(row, index)?),
        "NUMERIC" => float(pg_numeric(raw)?),
        "BOOL" => Value::Boolean(get::<bool>(row, index)?),
        "TEXT" | "VARCHAR" | "BPCHAR" | "NAME" | "CITEXT" => {
            Value::Bytes(Bytes::from(get::<String>(row, index)?))
        }
        "BYTEA" => Value::Bytes(Bytes::from(get::<Vec<u8>>(row, index)?)),
        "TIMESTAMPTZ" | "TIMESTAMP" => pg_timestamp(raw)?,
        "DATE" => pg_date(raw)?,
        "TIME" => Value::Bytes(Bytes::from(get::<NaiveTime>(row, index)?.to_string())),
        // JSON that serde_json refuses (nested deeper than 128) is its text.
        "JSON" | "JSONB" => match get::<sqlx::types::Json<serde_json::Value>>(row, index) {
            Some(json) => Value::from(json.0),
            None => Value::Bytes(Bytes::from(json_text(raw)?)),
        },
        "UUID" => Value::Bytes(Bytes::from(uuid_text(raw.as_bytes().ok()?)?)),
        "OID" => {
            let bytes: [u8; 4] = raw.as_bytes().ok()?.try_into().ok()?;
            Value::Integer(i64::from(u32::from_be_bytes(bytes)))
        }
        "TEXT[]" | "VARCHAR[]" => Value::Array(
            get::<Vec<Option<String>>>(row, index)?
                .into_iter()
                .map(|v| v.map_or(Value::Null, |s| Value::Bytes(Bytes::from(s))))
                .collect(),
        ),
        "INT4[]" => Value::Array(
            get::<Vec<Option<i32>>>(row, index)?
                .into_iter()
                .map(|v| v.map_or(Value::Null, |i| Value::Integer(i64::from(i))))
                .collect(),
        ),
        "INT8[]" => Value::Array(
            get::<Vec<Option<i64>>>(row, index)?
                .into_iter()
                .map(|v| v.map_or(Value::Null, Value::Integer))
                .collect(),
        ),
        // Other types (enums, domains, xml, ...): their text, when what
        // was received is text.
        _ => Value::Bytes(Bytes::from(readable_text(match raw.format() {
            PgValueFormat::Text => raw.as_str().ok()?,
            PgValueFormat::Binary => std::str::from_utf8(raw.as_bytes().ok()?).ok()?,
        })?)),
    };
    Some(value)
}

/// PostgreSQL's epoch, 2000-01-01T00:00:00Z, in Unix seconds.
const PG_EPOCH: i64 = 946_684_800;

/// A `timestamptz` or `timestamp` (taken as UTC): microseconds since
/// [`PG_EPOCH`], decoded here rather than by sqlx, whose decoding panics on
/// `infinity` and on years past chrono's (262 143; PostgreSQL goes to
/// 294 276), which would take the source down at every start. `infinity`
/// and `-infinity` are their text; a time past chrono's range is `None`.
fn pg_timestamp(raw: PgValueRef<'_>) -> Option<Value> {
    let text = match raw.format() {
        PgValueFormat::Binary => {
            let micros = i64::from_be_bytes(raw.as_bytes().ok()?.try_into().ok()?);
            return match micros {
                i64::MAX => Some(Value::from("infinity")),
                i64::MIN => Some(Value::from("-infinity")),
                _ => DateTime::from_timestamp_micros(micros.checked_add(PG_EPOCH * 1_000_000)?)
                    .map(Value::Timestamp),
            };
        }
        PgValueFormat::Text => raw.as_str().ok()?,
    };
    Some(match parse_timestamp(text) {
        Some(at) => Value::Timestamp(at),
        None => Value::Bytes(Bytes::from(text.to_string())),
    })
}

/// A `date`: days since [`PG_EPOCH`], at midnight UTC; as for
/// [`pg_timestamp`], `infinity` is its text and a date past chrono's range
/// `None`.
fn pg_date(raw: PgValueRef<'_>) -> Option<Value> {
    let text = match raw.format() {
        PgValueFormat::Binary => {
            let days = i32::from_be_bytes(raw.as_bytes().ok()?.try_into().ok()?);
            return match days {
                i32::MAX => Some(Value::from("infinity")),
                i32::MIN => Some(Value::from("-infinity")),
                _ => {
                    let seconds = i64::from(days).checked_mul(86_400)?.checked_add(PG_EPOCH)?;
                    DateTime::from_timestamp(seconds, 0).map(Value::Timestamp)
                }
            };
        }
        PgValueFormat::Text => raw.as_str().ok()?,
    };
    Some(match NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d") {
        Ok(day) => Value::Timestamp(day.and_time(NaiveTime::MIN).and_utc()),
        Err(_) => Value::Bytes(Bytes::from(text.to_string())),
    })
}

/// The text of a `json` or `jsonb` value (binary `jsonb` is a version
/// byte, 1, then the text).
fn json_text(raw: PgValueRef<'_>) -> Option<String> {
    let text = match raw.format() {
        PgValueFormat::Text => raw.as_str().ok()?,
        PgValueFormat::Binary => {
            let bytes = raw.as_bytes().ok()?;
            let bytes = match (raw.type_info().name(), bytes.split_first()) {
                ("JSONB", Some((1, rest))) => rest,
                ("JSONB", _) => return None,
                _ => bytes,
            };
            std::str::from_utf8(bytes).ok()?
        }
    };
    Some(text.to_string())
}

/// Text that is not a binary value read as text: no control characters
/// but tabs and newlines.
fn readable_text(text: &str) -> Option<String> {
    let binary = text
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r'));
    (!binary).then(|| text.to_string())
}

fn float(value: f64) -> Value {
    if value.is_nan() {
        Value::Null
    } else {
        Value::from_f64_or_zero(value)
    }
}

/// PostgreSQL's binary NUMERIC: digit count, weight (of the first digit,
/// in powers of 10000), sign, display scale, then base-10000 digits.
fn pg_numeric(raw: PgValueRef<'_>) -> Option<f64> {
    if let PgValueFormat::Text = raw.format() {
        return raw.as_str().ok()?.trim().parse().ok();
    }
    numeric_from_binary(raw.as_bytes().ok()?)
}

fn numeric_from_binary(bytes: &[u8]) -> Option<f64> {
    let word = |at: usize| -> Option<u16> {
        Some(u16::from_be_bytes([*bytes.get(at)?, *bytes.get(at + 1)?]))
    };
    let digits = i32::from(word(0)?);
    let weight = i32::from(word(2)? as i16);
    // The digit of 10000^power, written out in decimal and parsed, so the
    // float is the nearest to the exact value.
    let digit = |power: i32| -> Option<u16> {
        let index = weight - power;
        if (0..digits).contains(&index) {
            word(8 + 2 * usize::try_from(index).ok()?)
        } else {
            Some(0)
        }
    };
    let mut text = String::new();
    match word(4)? {
        0x0000 => {}
        0x4000 => text.push('-'),
        0xD000 => return Some(f64::INFINITY),
        0xF000 => return Some(f64::NEG_INFINITY),
        _ => return Some(f64::NAN),
    }
    if weight >= 0 {
        for power in (0..=weight).rev() {
            text.push_str(&format!("{:04}", digit(power)?));
        }
    } else {
        text.push('0');
    }
    text.push('.');
    for power in ((weight - digits + 1).min(-1)..=-1).rev() {
        text.push_str(&format!("{:04}", digit(power)?));
    }
    text.parse().ok()
}

fn uuid_text(bytes: &[u8]) -> Option<String> {
    if bytes.len() != 16 {
        return None;
    }
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    Some(format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    ))
}

/// A SQLite row: by the value's own storage class (SQLite's types are
/// per value), with the column's declared type for booleans and dates.
pub fn sqlite_row(row: &SqliteRow) -> Decoded {
    let mut decoded = Decoded::default();
    for (index, column) in row.columns().iter().enumerate() {
        let name = column.name();
        let declared = column.type_info().name().to_string();
        let Ok(raw) = row.try_get_raw(index) else {
            decoded.push(name, Value::Null);
            continue;
        };
        if raw.is_null() {
            decoded.push(name, Value::Null);
            continue;
        }
        let stored = raw.type_info().name().to_string();
        let value = match (declared.as_str(), stored.as_str()) {
            ("BOOLEAN", "INTEGER") => row.try_get::<bool, _>(index).ok().map(Value::Boolean),
            ("DATETIME" | "DATE", _) => row
                .try_get::<DateTime<Utc>, _>(index)
                .ok()
                .map(Value::Timestamp),
            _ => None,
        };
        let value = value.or_else(|| match stored.as_str() {
            "INTEGER" => row.try_get::<i64, _>(index).ok().map(Value::Integer),
            "REAL" => row.try_get::<f64, _>(index).ok().map(float),
            "TEXT" => row
                .try_get::<String, _>(index)
                .ok()
                .map(|s| Value::Bytes(Bytes::from(s))),
            "BLOB" => row
                .try_get::<Vec<u8>, _>(index)
                .ok()
                .map(|b| Value::Bytes(Bytes::from(b))),
            _ => None,
        });
        decoded.bytes += match &value {
            Some(Value::Bytes(bytes)) => bytes.len(),
            _ => 8,
        };
        match value {
            Some(value) => decoded.push(name, value),
            None => {
                decoded.push(name, Value::Null);
                decoded.unknown.push((name.to_string(), stored));
            }
        }
    }
    decoded
}

/// Why a row's cursor column cannot give the next `$1`.
#[derive(Debug, PartialEq)]
pub enum CursorError {
    Missing,
    Null,
    Unusable(&'static str),
    NotATimestamp(String),
}

impl CursorError {
    /// The message, naming the column.
    pub fn describe(&self, column: &str) -> String {
        match self {
            Self::Missing => format!(
                "the query's rows have no column `{column}` (cursor_column): select it, under \
                 that name"
            ),
            Self::Null => format!(
                "a row's `{column}` (cursor_column) is NULL, so the next query cannot start \
                 after it: filter NULLs out (`WHERE {column} IS NOT NULL`)"
            ),
            Self::NotATimestamp(text) => format!(
                "a row's `{column}` (cursor_column) is the text {text:?}, which is not a \
                 timestamp, but the cursor is one (`cursor_start` is a timestamp): select a \
                 timestamp, RFC 3339 text or `YYYY-MM-DD HH:MM:SS`"
            ),
            Self::Unusable(kind) => format!(
                "a row's `{column}` (cursor_column) is {kind}, which cannot be a cursor: use an \
                 integer, text or timestamp column"
            ),
        }
    }
}

/// A timestamp written as text: RFC 3339, or SQLite's
/// `YYYY-MM-DD HH:MM:SS[.fff]` (also with a `T`), taken as UTC.
pub fn parse_timestamp(text: &str) -> Option<DateTime<Utc>> {
    rfc3339::parse(text).or_else(|| {
        ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"]
            .iter()
            .find_map(|format| NaiveDateTime::parse_from_str(text.trim(), format).ok())
            .map(|at| at.and_utc())
    })
}

/// The cursor column's value in a row. Text is a timestamp when the cursor
/// is one (SQLite stores timestamps as text), and must then read as one.
pub fn cursor_value(
    fields: &[(String, Value)],
    column: &str,
    current: &CursorValue,
) -> Result<CursorValue, CursorError> {
    let (_, value) = fields
        .iter()
        .find(|(name, _)| name == column)
        .ok_or(CursorError::Missing)?;
    match value {
        Value::Integer(value) => Ok(CursorValue::Integer(*value)),
        Value::Timestamp(at) => Ok(CursorValue::Timestamp(*at)),
        Value::Bytes(bytes) => {
            let text = String::from_utf8_lossy(bytes).into_owned();
            match current {
                CursorValue::Timestamp(_) => match parse_timestamp(&text) {
                    Some(at) => Ok(CursorValue::Timestamp(at)),
                    None => Err(CursorError::NotATimestamp(text)),
                },
                _ => Ok(CursorValue::Text(text)),
            }
        }
        Value::Null => Err(CursorError::Null),
        Value::Float(_) => Err(CursorError::Unusable("a float")),
        Value::Boolean(_) => Err(CursorError::Unusable("a boolean")),
        Value::Object(_) => Err(CursorError::Unusable("an object")),
        Value::Array(_) => Err(CursorError::Unusable("an array")),
        Value::Regex(_) => Err(CursorError::Unusable("a regex")),
        #[allow(unreachable_patterns)]
        _ => Err(CursorError::Unusable("of an unknown kind")),
    }
}

/// What the event of a row did not take: a `timestamp` column that is
/// not a timestamp.
#[derive(Debug, PartialEq)]
pub struct BadTimestamp;

/// The event of a row: every column a field; `message` is the message,
/// `timestamp` (a timestamp, or RFC 3339 text) the event's timestamp, else
/// the time it was read.
pub fn to_event(
    fields: Vec<(String, Value)>,
    now: DateTime<Utc>,
    source_type: &'static str,
) -> (Event, Option<BadTimestamp>) {
    let mut timestamp = now;
    let mut bad = None;
    let mut message = None;
    let mut rest = Vec::with_capacity(fields.len());
    for (name, value) in fields {
        match (name.as_str(), value) {
            ("timestamp", Value::Timestamp(at)) => timestamp = at,
            ("timestamp", Value::Bytes(text)) => {
                match parse_timestamp(&String::from_utf8_lossy(&text)) {
                    Some(at) => timestamp = at,
                    None => bad = Some(BadTimestamp),
                }
            }
            ("timestamp", Value::Null) => {}
            ("timestamp", _) => bad = Some(BadTimestamp),
            ("message", value) => message = Some(value),
            (_, value) => rest.push((name, value)),
        }
    }
    let mut event = Event::log(Bytes::new(), timestamp, source_type);
    match message {
        Some(value) => event.insert_field("message", value),
        None => {
            if let Some(map) = event.value_mut().as_object_mut() {
                map.remove("message");
            }
        }
    }
    for (name, value) in rest {
        event.insert_field(&name, value);
    }
    (event, bad)
}

/// A stable hash of a row's columns (names and values), saved in cursors:
/// SHA-256 of a fixed encoding, cut to 64 bits. Stable across builds and
/// versions, unlike std's hasher.
pub fn hash_fields(fields: &[(String, Value)]) -> u64 {
    let mut hasher = Sha256::new();
    for (name, value) in fields {
        feed_bytes(&mut hasher, name.as_bytes());
        feed(&mut hasher, value);
    }
    let digest = hasher.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_le_bytes(first)
}

fn feed_bytes(hasher: &mut Sha256, bytes: &[u8]) {
    hasher.update((bytes.len() as u64).to_le_bytes());
    hasher.update(bytes);
}

fn feed(hasher: &mut Sha256, value: &Value) {
    match value {
        Value::Null => hasher.update([0]),
        Value::Boolean(b) => hasher.update([1, u8::from(*b)]),
        Value::Integer(i) => {
            hasher.update([2]);
            hasher.update(i.to_le_bytes());
        }
        Value::Float(f) => {
            hasher.update([3]);
            hasher.update(f.into_inner().to_bits().to_le_bytes());
        }
        Value::Bytes(bytes) => {
            hasher.update([4]);
            feed_bytes(hasher, bytes);
        }
        Value::Timestamp(at) => {
            hasher.update([5]);
            hasher.update(at.timestamp().to_le_bytes());
            hasher.update(at.timestamp_subsec_nanos().to_le_bytes());
        }
        Value::Object(map) => {
            hasher.update([6]);
            hasher.update((map.len() as u64).to_le_bytes());
            for (key, value) in map {
                feed_bytes(hasher, key.as_bytes());
                feed(hasher, value);
            }
        }
        Value::Array(items) => {
            hasher.update([7]);
            hasher.update((items.len() as u64).to_le_bytes());
            for item in items {
                feed(hasher, item);
            }
        }
        #[allow(unreachable_patterns)]
        other => {
            hasher.update([8]);
            feed_bytes(hasher, other.to_string().as_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> Value {
        Value::Bytes(Bytes::from(s.to_string()))
    }

    #[test]
    fn numeric_values_are_read_from_postgresql_binary_form() {
        // 12345.678: digits 1, 2345, 6780 at weight 1; -0.5: 5000 at -1.
        let number = |digits: &[u16], weight: i16, sign: u16| {
            let mut bytes = Vec::new();
            for word in [digits.len() as u16, weight as u16, sign, 3] {
                bytes.extend(word.to_be_bytes());
            }
            for digit in digits {
                bytes.extend(digit.to_be_bytes());
            }
            numeric_from_binary(&bytes).unwrap()
        };
        assert_eq!(number(&[1, 2345, 6780], 1, 0), 12345.678);
        assert_eq!(number(&[7], 2, 0), 7e8);
        assert_eq!(number(&[12], -2, 0), 0.000_000_12);
        assert_eq!(number(&[5000], -1, 0x4000), -0.5);
        assert_eq!(number(&[], 0, 0), 0.0);
        assert!(number(&[], 0, 0xC000).is_nan());
        assert_eq!(numeric_from_binary(&[0, 1]), None);
        assert_eq!(
            uuid_text(&[0xab; 16]).unwrap(),
            "abababab-abab-abab-abab-abababababab"
        );
    }

    #[test]
    fn message_and_timestamp_columns_make_the_event_and_the_rest_are_fields() {
        let at = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let now = DateTime::from_timestamp(1, 0).unwrap();
        let (event, bad) = to_event(
            vec![
                ("id".into(), Value::Integer(3)),
                ("timestamp".into(), Value::Timestamp(at)),
                ("message".into(), text("disk full")),
                (
                    "data".into(),
                    Value::from(serde_json::json!({"a": [1, 2.5, null]})),
                ),
            ],
            now,
            "sql",
        );
        assert_eq!(bad, None);
        assert_eq!(event.get_field("message"), Some(&text("disk full")));
        assert_eq!(event.get_field("timestamp"), Some(&Value::Timestamp(at)));
        assert_eq!(event.get_field("id"), Some(&Value::Integer(3)));
        assert_eq!(event.get_field("source_type"), Some(&text("sql")));
        let data = event.get_field("data").unwrap().as_object().unwrap();
        assert_eq!(data.get("a").unwrap().as_array().unwrap().len(), 3);

        // RFC 3339 text is a timestamp; a number is not, and the event
        // takes the time it was read. No `message` column: no message.
        let (event, bad) = to_event(
            vec![("timestamp".into(), text("2023-11-14T22:13:20Z"))],
            now,
            "sql",
        );
        assert_eq!(
            (event.get_field("timestamp"), bad),
            (Some(&Value::Timestamp(at)), None)
        );
        assert_eq!(event.get_field("message"), None);
        let (event, bad) = to_event(vec![("timestamp".into(), Value::Integer(5))], now, "sql");
        assert_eq!(bad, Some(BadTimestamp));
        assert_eq!(event.get_field("timestamp"), Some(&Value::Timestamp(now)));
    }

    #[test]
    fn the_cursor_column_must_be_present_not_null_and_usable() {
        let fields = vec![
            ("id".to_string(), Value::Integer(4)),
            ("ts".to_string(), text("2023-11-14T22:13:20Z")),
            ("gone".to_string(), Value::Null),
            ("f".to_string(), Value::from_f64_or_zero(1.5)),
        ];
        let int = CursorValue::Integer(0);
        let at = CursorValue::Timestamp(DateTime::from_timestamp(0, 0).unwrap());
        assert_eq!(
            cursor_value(&fields, "id", &int),
            Ok(CursorValue::Integer(4))
        );
        assert_eq!(
            cursor_value(&fields, "ts", &at),
            Ok(CursorValue::Timestamp(
                DateTime::from_timestamp(1_700_000_000, 0).unwrap()
            ))
        );
        assert_eq!(
            cursor_value(&fields, "ts", &CursorValue::Text(String::new())),
            Ok(CursorValue::Text("2023-11-14T22:13:20Z".into()))
        );
        let missing = cursor_value(&fields, "nope", &int).unwrap_err();
        assert!(missing.describe("nope").contains("no column `nope`"));
        let null = cursor_value(&fields, "gone", &int).unwrap_err();
        assert!(
            null.describe("gone")
                .contains("`gone` (cursor_column) is NULL")
        );
        assert_eq!(
            cursor_value(&fields, "f", &int),
            Err(CursorError::Unusable("a float"))
        );
    }

    #[test]
    fn timestamps_in_text_take_their_offset() {
        let at = DateTime::from_timestamp(1_772_352_000, 0).unwrap();
        assert_eq!(at.to_rfc3339(), "2026-03-01T08:00:00+00:00");
        for text in [
            "2026-03-01T08:00:00Z",
            "2026-03-01 08:00:00",
            "2026-03-01T08:00:00",
            "2026-03-01 10:00:00+02:00",
            "2026-03-01T10:00:00+02:00",
            "2026-03-01 03:00:00-05:00",
            "2026-03-01 08:00:00Z",
            "2026-03-01 08:00:00.000",
        ] {
            assert_eq!(parse_timestamp(text), Some(at), "{text}");
        }
    }

    #[test]
    fn the_row_hash_is_stable_and_sees_every_column() {
        let row = vec![
            ("id".to_string(), Value::Integer(1)),
            ("message".to_string(), text("a")),
        ];
        // Fixed: the hash is saved in cursors, so it must never change.
        assert_eq!(hash_fields(&row), hash_fields(&row.clone()));
        assert_eq!(hash_fields(&row), 9_825_815_287_741_428_194);
        let other = vec![
            ("id".to_string(), Value::Integer(1)),
            ("message".to_string(), text("b")),
        ];
        assert_ne!(hash_fields(&row), hash_fields(&other));
        let renamed = vec![
            ("id".to_string(), Value::Integer(1)),
            ("msg".to_string(), text("a")),
        ];
        assert_ne!(hash_fields(&row), hash_fields(&renamed));
        // Text "1" and integer 1 differ.
        assert_ne!(
            hash_fields(&[("id".to_string(), Value::Integer(1))]),
            hash_fields(&[("id".to_string(), text("1"))])
        );
    }
}
