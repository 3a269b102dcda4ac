//! How sinks turn events into bytes: one line per event.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use vrl::value::Value;

use crate::event::{Event, fields};

/// The format of each line.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Encoding {
    /// The whole event as one JSON object.
    #[default]
    Json,
    /// The `message` field as is (the whole event as JSON when it has none).
    Text,
}

impl Encoding {
    /// Appends the event and a newline to `out`.
    pub fn encode(self, event: &Event, out: &mut Vec<u8>) {
        match (self, event.get_field(fields::MESSAGE)) {
            (Encoding::Text, Some(Value::Bytes(message))) => out.extend_from_slice(message),
            (Encoding::Text, Some(message))
                if !matches!(message, Value::Object(_) | Value::Array(_)) =>
            {
                out.extend_from_slice(message.to_string_lossy().as_bytes());
            }
            _ => {
                // Serializing a VRL value cannot fail: keys are strings and
                // every variant has a JSON form.
                let _ = serde_json::to_writer(&mut *out, event.value());
            }
        }
        out.push(b'\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_writes_the_message_and_json_the_event() {
        let event = Event::from_value(vrl::value!({"message": "hello", "n": 1}));
        let mut out = Vec::new();
        Encoding::Text.encode(&event, &mut out);
        Encoding::Json.encode(&event, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "hello\n{\"message\":\"hello\",\"n\":1}\n"
        );
    }

    #[test]
    fn text_without_message_falls_back_to_json() {
        let event = Event::from_value(vrl::value!({"n": 1}));
        let mut out = Vec::new();
        Encoding::Text.encode(&event, &mut out);
        assert_eq!(out, b"{\"n\":1}\n");
    }
}
