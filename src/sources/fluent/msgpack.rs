//! Just enough MessagePack for the forward protocol, written here rather
//! than taken from a crate because the protocol needs two things crates
//! do not give together: telling "not all there yet" from "broken" on a
//! stream without framing, and refusing a declared length before
//! allocating it.
//!
//! [`value_len`] scans one value without allocating anything: it says how
//! many bytes the value takes, that more bytes are needed, or that the
//! bytes cannot be MessagePack (an unused type byte, nesting deeper than
//! [`MAX_DEPTH`], a declared length beyond the limit). Once a whole value
//! is in hand, a [`Reader`] walks it and turns parts of it into VRL values.

use bytes::Bytes;
use chrono::{DateTime, Utc};
use vrl::value::{KeyString, ObjectMap, Value};

/// The deepest nesting of arrays and maps accepted: deeper input is
/// refused, so neither scanning nor conversion can exhaust the stack.
pub const MAX_DEPTH: usize = 64;

/// Why bytes are not a value we accept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invalid {
    /// A value longer than the limit, by its header or its bytes.
    TooLong(u64),
    /// The byte `0xc1`, which MessagePack never uses.
    Reserved,
    /// Arrays and maps nested deeper than [`MAX_DEPTH`].
    TooDeep,
}

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::TooLong(len) => {
                write!(f, "a value declares {len} bytes or entries, over the limit")
            }
            Self::Reserved => f.write_str("the byte 0xc1 is not MessagePack"),
            Self::TooDeep => write!(f, "values nested deeper than {MAX_DEPTH}"),
        }
    }
}

/// The size of the value at the start of `buf`: `Ok(None)` when `buf`
/// holds only part of it. No value is accepted, and no length trusted,
/// beyond `limit` bytes.
pub fn value_len(buf: &[u8], limit: usize) -> Result<Option<usize>, Invalid> {
    Scan::default().run(buf, limit)
}

/// A scan of one value that can be resumed when more bytes arrive, so a
/// large value read in many pieces is scanned once, not once per piece.
#[derive(Debug, Default)]
pub struct Scan {
    /// The bytes scanned so far.
    at: usize,
    /// Values still to scan at each depth (arrays and maps push their item
    /// counts): an explicit stack, not recursion. Empty: a new scan.
    pending: Vec<u64>,
}

impl Scan {
    /// Goes on scanning `buf` (the same bytes as before, perhaps with more
    /// after them): the value's size once it is all there. Start a new
    /// scan for the next value.
    pub fn run(&mut self, buf: &[u8], limit: usize) -> Result<Option<usize>, Invalid> {
        if self.pending.is_empty() && self.at == 0 {
            self.pending.push(1);
        }
        while let Some(&left) = self.pending.last() {
            if left == 0 {
                self.pending.pop();
                continue;
            }
            let Some(header) = header(buf.get(self.at..).unwrap_or_default())? else {
                return Ok(None);
            };
            let size = header.len as u64 + header.body;
            if self.at as u64 + size > limit as u64 {
                return Err(Invalid::TooLong(size));
            }
            // Every item takes at least a byte: a count beyond the limit
            // cannot be honest.
            if header.items > limit as u64 {
                return Err(Invalid::TooLong(header.items));
            }
            if ((buf.len() - self.at) as u64) < size {
                return Ok(None);
            }
            if header.items > 0 && self.pending.len() > MAX_DEPTH {
                return Err(Invalid::TooDeep);
            }
            self.at += size as usize;
            if let Some(left) = self.pending.last_mut() {
                *left -= 1;
            }
            if header.items > 0 {
                self.pending.push(header.items);
            }
        }
        let len = self.at;
        self.at = 0;
        Ok(Some(len))
    }
}

/// What a value's first bytes say.
#[derive(Debug, Clone, Copy)]
struct Header {
    /// The bytes of the header itself (type byte and length).
    len: usize,
    /// The bytes of data that follow it (strings, binaries, numbers, ext).
    body: u64,
    /// The values that follow it: array items, or map keys and values.
    items: u64,
    kind: Kind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Nil,
    Bool(bool),
    PosFix(u8),
    NegFix(i8),
    Uint,
    Int,
    F32,
    F64,
    Str,
    Bin,
    Array,
    Map,
    /// An extension; its type byte is the first of the body.
    Ext,
}

/// Reads a header: `Ok(None)` when `buf` ends inside it.
fn header(buf: &[u8]) -> Result<Option<Header>, Invalid> {
    let Some(&byte) = buf.first() else {
        return Ok(None);
    };
    let simple = |body: u64, kind| {
        Some(Header {
            len: 1,
            body,
            items: 0,
            kind,
        })
    };
    let sized = |width: usize, kind, ext: u64| -> Option<Header> {
        let bytes = buf.get(1..1 + width)?;
        let len = bytes.iter().fold(0u64, |n, b| n << 8 | u64::from(*b));
        let (body, items) = match kind {
            Kind::Array => (0, len),
            Kind::Map => (0, len * 2),
            _ => (len + ext, 0),
        };
        Some(Header {
            len: 1 + width,
            body,
            items,
            kind,
        })
    };
    Ok(match byte {
        0x00..=0x7f => simple(0, Kind::PosFix(byte)),
        0x80..=0x8f => Some(Header {
            len: 1,
            body: 0,
            items: u64::from(byte & 0x0f) * 2,
            kind: Kind::Map,
        }),
        0x90..=0x9f => Some(Header {
            len: 1,
            body: 0,
            items: u64::from(byte & 0x0f),
            kind: Kind::Array,
        }),
        0xa0..=0xbf => simple(u64::from(byte & 0x1f), Kind::Str),
        0xc0 => simple(0, Kind::Nil),
        0xc1 => return Err(Invalid::Reserved),
        0xc2 | 0xc3 => simple(0, Kind::Bool(byte == 0xc3)),
        0xc4 => sized(1, Kind::Bin, 0),
        0xc5 => sized(2, Kind::Bin, 0),
        0xc6 => sized(4, Kind::Bin, 0),
        0xc7 => sized(1, Kind::Ext, 1),
        0xc8 => sized(2, Kind::Ext, 1),
        0xc9 => sized(4, Kind::Ext, 1),
        0xca => simple(4, Kind::F32),
        0xcb => simple(8, Kind::F64),
        0xcc => simple(1, Kind::Uint),
        0xcd => simple(2, Kind::Uint),
        0xce => simple(4, Kind::Uint),
        0xcf => simple(8, Kind::Uint),
        0xd0 => simple(1, Kind::Int),
        0xd1 => simple(2, Kind::Int),
        0xd2 => simple(4, Kind::Int),
        0xd3 => simple(8, Kind::Int),
        0xd4 => simple(2, Kind::Ext),
        0xd5 => simple(3, Kind::Ext),
        0xd6 => simple(5, Kind::Ext),
        0xd7 => simple(9, Kind::Ext),
        0xd8 => simple(17, Kind::Ext),
        0xd9 => sized(1, Kind::Str, 0),
        0xda => sized(2, Kind::Str, 0),
        0xdb => sized(4, Kind::Str, 0),
        0xdc => sized(2, Kind::Array, 0),
        0xdd => sized(4, Kind::Array, 0),
        0xde => sized(2, Kind::Map, 0),
        0xdf => sized(4, Kind::Map, 0),
        0xe0..=0xff => simple(0, Kind::NegFix(byte as i8)),
    })
}

/// A number read from a value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Number {
    /// Any integer that fits `i64`.
    Int(i64),
    /// An unsigned integer above `i64::MAX`.
    Big(u64),
    /// A float.
    Float(f64),
}

/// One item read by [`Reader::next`], without its contents.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    /// `nil`.
    Nil,
    /// A boolean.
    Bool(bool),
    /// A number.
    Number(Number),
    /// A string's bytes (not checked to be UTF-8).
    Str(Bytes),
    /// A binary's bytes.
    Bin(Bytes),
    /// An array of this many items, which follow.
    Array(usize),
    /// A map of this many pairs, which follow, key then value.
    Map(usize),
    /// An extension: its type and data.
    Ext(i8, Bytes),
}

/// Walks values already checked by [`value_len`]: reading past their end
/// gives `None`, never a panic.
pub struct Reader {
    buf: Bytes,
    at: usize,
}

impl Reader {
    /// A reader over `buf`, at its start.
    pub fn new(buf: Bytes) -> Self {
        Self { buf, at: 0 }
    }

    /// Whether everything was read.
    pub fn is_empty(&self) -> bool {
        self.at >= self.buf.len()
    }

    /// The next item; for arrays and maps, only their header.
    pub fn next(&mut self) -> Option<Item> {
        let rest = self.buf.get(self.at..)?;
        let header = header(rest).ok()??;
        let body_start = self.at + header.len;
        let body_end = body_start.checked_add(usize::try_from(header.body).ok()?)?;
        let body = self.buf.get(body_start..body_end)?;
        let int = |bytes: &[u8]| bytes.iter().fold(0u64, |n, b| n << 8 | u64::from(*b));
        let item = match header.kind {
            Kind::Nil => Item::Nil,
            Kind::Bool(b) => Item::Bool(b),
            Kind::PosFix(n) => Item::Number(Number::Int(i64::from(n))),
            Kind::NegFix(n) => Item::Number(Number::Int(i64::from(n))),
            Kind::Uint => {
                let n = int(body);
                Item::Number(i64::try_from(n).map_or(Number::Big(n), Number::Int))
            }
            Kind::Int => {
                let n = int(body);
                let bits = body.len() * 8;
                // Sign-extend from the value's own width.
                let n = ((n << (64 - bits)) as i64) >> (64 - bits);
                Item::Number(Number::Int(n))
            }
            Kind::F32 => {
                let bits = u32::try_from(int(body)).ok()?;
                Item::Number(Number::Float(f64::from(f32::from_bits(bits))))
            }
            Kind::F64 => Item::Number(Number::Float(f64::from_bits(int(body)))),
            Kind::Str => Item::Str(self.buf.slice(body_start..body_end)),
            Kind::Bin => Item::Bin(self.buf.slice(body_start..body_end)),
            Kind::Array => Item::Array(usize::try_from(header.items).ok()?),
            Kind::Map => Item::Map(usize::try_from(header.items / 2).ok()?),
            Kind::Ext => Item::Ext(
                *body.first()? as i8,
                self.buf.slice(body_start + 1..body_end),
            ),
        };
        self.at = body_end;
        Some(item)
    }

    /// The raw bytes of the next whole value (as sent), skipping it.
    pub fn raw(&mut self) -> Option<Bytes> {
        let len = value_len(self.buf.get(self.at..)?, usize::MAX).ok()??;
        let raw = self.buf.slice(self.at..self.at + len);
        self.at += len;
        Some(raw)
    }

    /// Skips the next whole value.
    pub fn skip(&mut self) -> Option<()> {
        self.raw().map(drop)
    }

    /// The next whole value as a VRL value: strings and binaries become
    /// bytes, maps objects (keys read as UTF-8, lossily), EventTime a
    /// timestamp, other extensions their data.
    pub fn value(&mut self) -> Option<Value> {
        self.value_at(0)
    }

    fn value_at(&mut self, depth: usize) -> Option<Value> {
        if depth > MAX_DEPTH {
            return None;
        }
        Some(match self.next()? {
            Item::Nil => Value::Null,
            Item::Bool(b) => Value::Boolean(b),
            Item::Number(Number::Int(n)) => Value::Integer(n),
            Item::Number(Number::Big(n)) => float(n as f64),
            Item::Number(Number::Float(f)) => float(f),
            Item::Str(bytes) | Item::Bin(bytes) => Value::Bytes(bytes),
            Item::Array(len) => {
                let mut items = Vec::with_capacity(len.min(self.buf.len()));
                for _ in 0..len {
                    items.push(self.value_at(depth + 1)?);
                }
                Value::Array(items)
            }
            Item::Map(len) => {
                let mut map = ObjectMap::new();
                for _ in 0..len {
                    let key = self.key(depth)?;
                    let value = self.value_at(depth + 1)?;
                    map.insert(key, value);
                }
                Value::Object(map)
            }
            Item::Ext(kind, data) => match event_time(kind, &data) {
                Some(at) => Value::Timestamp(at),
                None => Value::Bytes(data),
            },
        })
    }

    /// A map key as text: strings and binaries lossily as UTF-8, other
    /// values as they print.
    fn key(&mut self, depth: usize) -> Option<KeyString> {
        let start = self.at;
        Some(match self.next()? {
            Item::Str(bytes) | Item::Bin(bytes) | Item::Ext(_, bytes) => {
                KeyString::from(String::from_utf8_lossy(&bytes).into_owned())
            }
            Item::Array(_) | Item::Map(_) => {
                self.at = start;
                KeyString::from(self.value_at(depth + 1)?.to_string())
            }
            Item::Nil => KeyString::from("null"),
            Item::Bool(b) => KeyString::from(b.to_string()),
            Item::Number(Number::Int(n)) => KeyString::from(n.to_string()),
            Item::Number(Number::Big(n)) => KeyString::from(n.to_string()),
            Item::Number(Number::Float(f)) => KeyString::from(f.to_string()),
        })
    }
}

fn float(f: f64) -> Value {
    if f.is_nan() {
        Value::Null
    } else {
        Value::from_f64_or_zero(f)
    }
}

/// EventTime: extension type 0 with 8 bytes, seconds then nanoseconds,
/// both big-endian `u32`.
pub fn event_time(kind: i8, data: &[u8]) -> Option<DateTime<Utc>> {
    if kind != 0 || data.len() != 8 {
        return None;
    }
    let seconds = u32::from_be_bytes(data[..4].try_into().ok()?);
    let nanos = u32::from_be_bytes(data[4..].try_into().ok()?);
    DateTime::from_timestamp(i64::from(seconds), nanos)
}
