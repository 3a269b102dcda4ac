//! `decoding` and `framing`: how a source cuts its input into frames and
//! turns each frame into an event, the same way in every source that has
//! them (`stdin`, `file`, `http_server`, `socket`), with Vector's option
//! names, so that structured input needs no `remap`.
//!
//! **Framing** (`framing.method`) cuts a stream into frames at a newline
//! (`newline_delimited`, a trailing `\r` dropped) or at another ASCII
//! character (`character_delimited`); `bytes` takes what arrived whole (an
//! HTTP body, a datagram) as one frame, and is refused where input is a
//! stream. Empty frames are no events. The source's `max_line_bytes` bounds
//! a frame (see [`super::lines`]).
//!
//! **Decoding** (`decoding.codec`) turns a frame into events: `bytes` keeps
//! it as `message` (zero-copy, the cost of a source without decoding);
//! `json` gives an object's fields (an array gives one event per element; a
//! value that is not an object becomes `message`); `syslog` the fields the
//! `syslog` source gives; `logfmt` its pairs ([`logfmt`]). Then, as
//! Vector does, `timestamp` (the time the frame was read) and `host` are
//! added where the decoded data has none (what the data says wins), while
//! `source_type` and the source's own fields (`file`, `path`, `port`) are
//! always the source's: they say how howl got the event.
//!
//! **A frame that does not decode is not lost**: it passes on as `bytes`
//! makes it (its raw `message`), and is counted in
//! `component_errors_total{error_type="decode_failed",stage="receiving"}`
//! with a rate-limited error log naming the component. (`http_server`
//! refuses such a body with 400 instead: its client still holds it and
//! learns at once.)

pub mod json;
pub mod logfmt;

use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use vrl::value::{KeyString, Value};

use crate::diagnostic::BuildError;
use crate::event::{Event, fields};
use crate::internal_events::{ComponentMetrics, ErrorType, Stage};
use crate::options::parse_string;

/// The `decoding` options of a source.
#[derive(Debug, Clone, Copy, Default, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DecodingConfig {
    /// How each frame becomes an event: `bytes` keeps it as `message`;
    /// `json` gives a JSON object's fields (an array, one event per
    /// element; another value becomes `message`); `syslog` reads RFC 5424
    /// or RFC 3164 into the `syslog` source's fields; `logfmt` reads
    /// `key=value` pairs (`key="quoted \" value"`, a bare `key` is `true`).
    /// `timestamp` and `host` are added where the decoded data has none;
    /// `source_type` and the source's own fields (`file`, `path`, `port`)
    /// are always set. A frame that does not decode is
    /// passed on as `bytes` makes it and counted in
    /// `component_errors_total{error_type="decode_failed"}` (`http_server`
    /// refuses its body with 400 instead).
    #[serde(default)]
    pub codec: Codec,
}

/// How a frame becomes an event.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Codec {
    /// The frame is the `message`.
    #[default]
    Bytes,
    /// A JSON document.
    Json,
    /// An RFC 5424 or RFC 3164 syslog message.
    Syslog,
    /// logfmt `key=value` pairs.
    Logfmt,
}

/// The `framing` options of a source.
#[derive(Debug, Clone, Copy, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FramingConfig {
    /// How input is cut into frames: `newline_delimited` (a line; a
    /// trailing `\r` is dropped), `character_delimited` (up to
    /// `framing.character_delimited.delimiter`), or `bytes` (an HTTP body
    /// or a datagram whole; not for streams). Unset: `newline_delimited`,
    /// except `bytes` for datagrams and for `http_server` with the `json`
    /// codec. Empty frames are skipped.
    #[schemars(extend("x-default" = "the source's"))]
    pub method: Option<FramingMethod>,
    /// For `method = "character_delimited"`.
    pub character_delimited: Option<CharacterDelimitedConfig>,
}

/// How input is cut into frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FramingMethod {
    /// One frame per line.
    NewlineDelimited,
    /// One frame per run up to a delimiter character.
    CharacterDelimited,
    /// What arrived whole is one frame.
    Bytes,
}

/// The options of `character_delimited` framing.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CharacterDelimitedConfig {
    /// The character that ends a frame: one ASCII character, such as
    /// `","`, `"\t"` or `"\u0000"`. It is not part of the frame.
    pub delimiter: Delimiter,
}

/// One ASCII character, checked while the config is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delimiter(u8);

impl<'de> Deserialize<'de> for Delimiter {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        parse_string(deserializer, "one ASCII character", |text| {
            match text.as_bytes() {
                [byte] if byte.is_ascii() => Ok(Self(*byte)),
                _ => Err(format!(
                    "the delimiter must be one ASCII character, not {text:?}"
                )),
            }
        })
    }
}

impl JsonSchema for Delimiter {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Delimiter".into()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        String::json_schema(generator)
    }
}

/// How a source cuts its input, once its options are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// Frames end at this byte (`\n` for lines).
    Delimited(u8),
    /// What arrived whole (a body, a datagram) is one frame.
    Whole,
}

/// Newline framing, the default of streams.
pub const LINES: Framing = Framing::Delimited(b'\n');

impl FramingConfig {
    /// The framing the options choose, `default` when `method` is unset.
    /// `whole` says whether the source gets whole messages (an HTTP body, a
    /// datagram); where it reads a stream, `bytes` is refused. Errors name
    /// the option to change.
    pub fn resolve(&self, default: Framing, whole: bool) -> Result<Framing, BuildError> {
        let framing = match (self.method, self.character_delimited) {
            (None, None) => default,
            (None | Some(FramingMethod::CharacterDelimited), Some(options)) => {
                Framing::Delimited(options.delimiter.0)
            }
            (Some(FramingMethod::CharacterDelimited), None) => {
                return Err(BuildError::new(
                    "`framing.method = \"character_delimited\"` needs \
                     `framing.character_delimited.delimiter`, e.g. `\",\"`",
                )
                .for_option("framing.method"));
            }
            (Some(_), Some(_)) => {
                return Err(BuildError::new(
                    "`framing.character_delimited` is only for \
                     `framing.method = \"character_delimited\"`",
                )
                .for_option("framing.character_delimited"));
            }
            (Some(FramingMethod::NewlineDelimited), None) => LINES,
            (Some(FramingMethod::Bytes), None) => Framing::Whole,
        };
        if framing == Framing::Whole && !whole {
            return Err(bytes_refused());
        }
        Ok(framing)
    }

    /// The delimiter of a source that reads a stream (newline by
    /// default); `bytes` is refused.
    pub fn stream_delimiter(&self) -> Result<u8, BuildError> {
        match self.resolve(LINES, false)? {
            Framing::Delimited(delimiter) => Ok(delimiter),
            Framing::Whole => Err(bytes_refused()),
        }
    }
}

fn bytes_refused() -> BuildError {
    BuildError::new(
        "`framing.method = \"bytes\"` takes a message that arrives whole (an HTTP body, a \
         datagram); this source reads a stream: use `newline_delimited` or \
         `character_delimited`",
    )
    .for_option("framing.method")
}

/// Why a frame did not decode.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// Not one JSON document.
    #[error("invalid JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// Neither RFC 5424 nor RFC 3164.
    #[error("invalid syslog: {0}")]
    Syslog(#[from] super::syslog::NotSyslog),
    /// Not logfmt.
    #[error("invalid logfmt: {0}")]
    Logfmt(#[from] logfmt::Error),
}

impl DecodeError {
    /// The error with where it happened (`on line 2`), for a client.
    pub fn at(&self, place: &str) -> String {
        match self {
            Self::Json(error) => format!("invalid JSON {place}: {error}"),
            Self::Syslog(error) => format!("invalid syslog {place}: {error}"),
            Self::Logfmt(error) => format!("invalid logfmt {place}: {error}"),
        }
    }
}

/// Turns frames into events; what a source's `decoding` made of it.
#[derive(Debug, Clone, Copy)]
pub struct Decoder {
    codec: Codec,
    source_type: &'static str,
}

impl Decoder {
    /// A decoder for the source of type `source_type`.
    pub fn new(config: DecodingConfig, source_type: &'static str) -> Self {
        Self {
            codec: config.codec,
            source_type,
        }
    }

    /// The event the `bytes` codec makes: `frame` as `message`, with
    /// `timestamp`, `source_type` and the source's `fields`.
    #[inline]
    pub fn raw(&self, frame: Bytes, now: DateTime<Utc>, extra: &[(&'static str, Value)]) -> Event {
        let mut event = Event::log(frame, now, self.source_type);
        for (name, value) in extra {
            event.insert_field(name, value.clone());
        }
        event
    }

    /// Decodes one frame, giving `emit` its events (none at all when it
    /// does not decode), read at `now`, with the source's fields `extra`
    /// (see [`Self::fill`]).
    pub fn try_decode(
        &self,
        frame: &Bytes,
        now: DateTime<Utc>,
        extra: &[(&'static str, Value)],
        mut emit: impl FnMut(Event),
    ) -> Result<(), DecodeError> {
        match self.codec {
            Codec::Bytes => emit(self.raw(frame.clone(), now, extra)),
            // A blank frame is no JSON document, and no event either.
            Codec::Json if frame.iter().all(u8::is_ascii_whitespace) => {}
            Codec::Json => match json::parse(frame)? {
                Value::Array(items) => {
                    for item in items {
                        emit(self.fill(Event::from_value(item), now, extra));
                    }
                }
                value => emit(self.fill(Event::from_value(value), now, extra)),
            },
            Codec::Syslog => {
                let host = extra
                    .iter()
                    .find(|(name, _)| *name == fields::HOST)
                    .map(|(_, host)| host);
                let event = super::syslog::parse(frame, self.source_type, host)?;
                emit(self.fill(event, now, extra));
            }
            Codec::Logfmt => {
                let map = logfmt::parse(frame)?;
                emit(self.fill(Event::from_value(Value::Object(map)), now, extra));
            }
        }
        Ok(())
    }

    /// Adds the standard fields, as Vector does: `timestamp` and `host`
    /// only where the decoded data has none (it knows better when it
    /// says); `source_type` and the source's other fields always, since
    /// they say how howl got the event (a forwarded event's `source_type`
    /// names the source that received it here).
    fn fill(&self, mut event: Event, now: DateTime<Utc>, extra: &[(&'static str, Value)]) -> Event {
        if let Some(map) = event.value_mut().as_object_mut() {
            if !map.contains_key(fields::TIMESTAMP) {
                map.insert(KeyString::from(fields::TIMESTAMP), Value::Timestamp(now));
            }
            map.insert(
                KeyString::from(fields::SOURCE_TYPE),
                Value::Bytes(Bytes::from_static(self.source_type.as_bytes())),
            );
            for (name, value) in extra {
                if *name != fields::HOST || !map.contains_key(fields::HOST) {
                    map.insert(KeyString::from(*name), value.clone());
                }
            }
        }
        event
    }
}

/// A [`Decoder`] in a running source: each event gets the source's id, and
/// a frame that does not decode passes on raw and is counted.
pub struct SourceDecoder {
    decoder: Decoder,
    source_id: Arc<str>,
    metrics: Arc<ComponentMetrics>,
}

impl SourceDecoder {
    /// The decoder of a running source with this id and these metrics.
    pub fn new(decoder: Decoder, source_id: Arc<str>, metrics: Arc<ComponentMetrics>) -> Self {
        Self {
            decoder,
            source_id,
            metrics,
        }
    }

    /// Appends one frame's events to `events` (see [`Decoder::try_decode`]);
    /// a frame that does not decode becomes what `bytes` makes of it, and
    /// is counted and logged (rate limited).
    #[inline]
    pub fn decode(
        &self,
        frame: Bytes,
        now: DateTime<Utc>,
        extra: &[(&'static str, Value)],
        events: &mut Vec<Event>,
    ) {
        // The `bytes` codec costs what a source without decoding did.
        if self.decoder.codec == Codec::Bytes {
            events.push(
                self.decoder
                    .raw(frame, now, extra)
                    .with_source_id(Arc::clone(&self.source_id)),
            );
            return;
        }
        let decoded = self.decoder.try_decode(&frame, now, extra, |event| {
            events.push(event.with_source_id(Arc::clone(&self.source_id)));
        });
        if let Err(error) = decoded {
            self.metrics.error(
                ErrorType::DecodeFailed,
                Stage::Receiving,
                &format_args!("{error}; the frame is passed on as its raw `message`"),
            );
            events.push(
                self.decoder
                    .raw(frame, now, extra)
                    .with_source_id(Arc::clone(&self.source_id)),
            );
        }
    }
}

#[cfg(test)]
mod tests;
