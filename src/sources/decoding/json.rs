//! JSON straight into VRL values, without an intermediate
//! `serde_json::Value`: one pass over the frame, objects built as
//! `Value::Object`, and strings without escapes kept as slices of the frame
//! (no copy: an event's text points into the chunk it was read in, as the
//! `bytes` codec's `message` does).
//!
//! The frame's UTF-8 is checked once, as a whole, and then parsed as text:
//! parsed as bytes, `serde_json` checks every string on its own, which
//! cost about a tenth of the `json` codec's time on 150-byte JSON lines.
//! (`simd-json` and `sonic-rs` were measured too; building the VRL values,
//! not scanning the JSON, is what costs, and neither gained enough for a
//! dependency.)

use std::collections::BTreeMap;
use std::fmt;

use bytes::Bytes;
use serde::de::{DeserializeSeed, MapAccess, SeqAccess, Visitor};
use vrl::value::{KeyString, Value};

/// Parses one JSON document (surrounding whitespace allowed, nothing else
/// after it).
pub fn parse(frame: &Bytes) -> Result<Value, serde_json::Error> {
    let seed = ValueSeed { frame };
    let value = match std::str::from_utf8(frame) {
        Ok(text) => {
            let mut deserializer = serde_json::Deserializer::from_str(text);
            let value = seed.deserialize(&mut deserializer)?;
            deserializer.end()?;
            value
        }
        // Not UTF-8: parsed as bytes, so that the error says where.
        Err(_) => {
            let mut deserializer = serde_json::Deserializer::from_slice(frame);
            let value = seed.deserialize(&mut deserializer)?;
            deserializer.end()?;
            value
        }
    };
    Ok(value)
}

/// Builds a [`Value`] from whatever the deserializer reads, with strings
/// sliced from `frame` where they are written in it as they are.
#[derive(Clone, Copy)]
struct ValueSeed<'a> {
    frame: &'a Bytes,
}

impl ValueSeed<'_> {
    /// `text` as bytes: a slice of the frame when it lies inside it, else a
    /// copy (never a panic, whatever the deserializer hands over).
    fn bytes(self, text: &[u8]) -> Bytes {
        let start = (text.as_ptr() as usize).wrapping_sub(self.frame.as_ptr() as usize);
        if start <= self.frame.len() && text.len() <= self.frame.len() - start {
            self.frame.slice(start..start + text.len())
        } else {
            Bytes::copy_from_slice(text)
        }
    }
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_> {
    type Value = Value;

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, value: bool) -> Result<Value, E> {
        Ok(Value::Boolean(value))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Value, E> {
        Ok(Value::Integer(value))
    }

    fn visit_u64<E: serde::de::Error>(self, value: u64) -> Result<Value, E> {
        match i64::try_from(value) {
            Ok(value) => Ok(Value::Integer(value)),
            // Beyond i64: a float, as VRL's `parse_json` gives it.
            #[allow(clippy::cast_precision_loss)]
            Err(_) => self.visit_f64(value as f64),
        }
    }

    fn visit_f64<E: serde::de::Error>(self, value: f64) -> Result<Value, E> {
        vrl::compiler::prelude::NotNan::new(value)
            .map(Value::Float)
            .map_err(|_| E::custom("NaN is not a JSON number"))
    }

    fn visit_borrowed_str<E>(self, value: &'de str) -> Result<Value, E> {
        Ok(Value::Bytes(self.bytes(value.as_bytes())))
    }

    fn visit_str<E>(self, value: &str) -> Result<Value, E> {
        Ok(Value::Bytes(Bytes::copy_from_slice(value.as_bytes())))
    }

    fn visit_string<E>(self, value: String) -> Result<Value, E> {
        Ok(Value::Bytes(Bytes::from(value)))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(item) = seq.next_element_seed(self)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = BTreeMap::new();
        while let Some(key) = map.next_key::<KeyString>()? {
            let value = map.next_value_seed(self)?;
            // A repeated key: the last one wins, as in `parse_json`.
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }

    fn visit_bytes<E: serde::de::Error>(self, _value: &[u8]) -> Result<Value, E> {
        Err(E::custom("bytes are not JSON"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> Value {
        parse(&Bytes::copy_from_slice(text.as_bytes())).unwrap()
    }

    #[test]
    fn gives_the_values_vrl_parse_json_gives() {
        let text = r#" {"s":"a\"b","n":-3,"big":18446744073709551615,"f":1.5,"t":true,"z":null,"a":[1,{"x":"y"}],"o":{}} "#;
        let expected: Value = serde_json::from_str(text).unwrap();
        assert_eq!(parsed(text), expected);
    }

    #[test]
    fn strings_without_escapes_point_into_the_frame() {
        let frame = Bytes::from_static(br#"{"msg":"hello","esc":"a\nb"}"#);
        let Value::Object(map) = parse(&frame).unwrap() else {
            panic!("an object")
        };
        let Some(Value::Bytes(msg)) = map.get("msg") else {
            panic!("msg")
        };
        let inside = frame.as_ptr() as usize..frame.as_ptr() as usize + frame.len();
        assert!(inside.contains(&(msg.as_ptr() as usize)), "not copied");
        assert_eq!(map.get("esc"), Some(&Value::from("a\nb")));
    }

    #[test]
    fn a_frame_that_is_not_utf8_is_an_error_that_says_where() {
        let error = parse(&Bytes::from_static(b"{\"a\":\"\xff\"}")).unwrap_err();
        assert!(error.to_string().contains("column 7"), "{error}");
    }

    #[test]
    fn trailing_garbage_and_deep_nesting_are_errors_not_panics() {
        assert!(parse(&Bytes::from_static(b"{} x")).is_err());
        assert!(parse(&Bytes::from_static(b"{\"a\":")).is_err());
        let deep = "[".repeat(100_000);
        assert!(parse(&Bytes::from(deep)).is_err());
    }
}
