//! `http_server`: accept events over HTTP POST.
//!
//! What the answers mean, and how requests, credentials and backpressure
//! are handled, is [`super::http_receiver`]'s, shared with the other HTTP
//! sources; this module cuts bodies into frames and decodes them as
//! `framing` and `decoding` say ([`super::decoding`]). The older
//! `decoding = "text" | "json" | "ndjson"` is read as a shorthand for a
//! codec and a framing, so configs written for it keep working.
//!
//! Unlike the stream sources, a body with a frame that does not decode is
//! refused whole (400, naming the line): the client still holds it, so
//! nothing is lost, and it learns of its mistake at once.

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::sync::Arc;

use bytes::Bytes;
use chrono::Utc;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use vrl::value::Value;

use super::decoding::{Codec, Decoder, DecodingConfig, Framing, FramingConfig, LINES};
use super::http_receiver::{
    AuthConfig, Decoder as BodyDecoder, JsonAnswers, Listening, MAX_EVENTS_PER_REQUEST, Protocol,
    Receiver, Refusal, check_literal_path, too_many_events,
};
use super::lines::split_whole;
use crate::components::BuildContext;
use crate::components::source::{Source, SourceConfig};
use crate::diagnostic::BuildError;
use crate::event::Event;
use crate::http::server::ConnectionsConfig;
use crate::options::{Seconds, TlsConfig};

/// Options of the `http_server` source.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpServerConfig {
    /// The address and port to listen on, e.g. `127.0.0.1:8080` (or
    /// `0.0.0.0:8080` to accept connections from other machines).
    #[schemars(extend("x-placeholder" = "127.0.0.1:8080"))]
    address: SocketAddr,
    /// The URL path that accepts POSTs; other paths answer 404. It is
    /// literal: it starts with `/` and has no `:param`, `*` or `{...}`.
    #[serde(default = "default_path")]
    path: String,
    /// How each frame becomes an event; also accepts the older shorthand
    /// `decoding = "text"` (the `bytes` codec, one event per line),
    /// `"json"` (`json`, one event per body, an array one per element) or
    /// `"ndjson"` (`json`, one per line).
    #[serde(default)]
    decoding: Decoding,
    /// How a body is cut into frames.
    #[serde(default)]
    framing: FramingConfig,
    /// The largest body accepted, in bytes; a larger one is refused with
    /// 413, whether its `Content-Length` says so or it turns out larger
    /// while it is read.
    #[serde(default = "default_max_body_bytes")]
    max_body_bytes: NonZeroUsize,
    /// Require credentials: a bearer token, or a user and password.
    auth: Option<AuthConfig>,
    /// How long a request waits for its events to be delivered (by every
    /// sink with `acknowledgements.enabled`) before it is answered 503; the
    /// events may still be delivered afterwards, so the client's retry may
    /// duplicate them. Keep it above the sinks' retry budget
    /// (`retry.max_duration_secs`) for fewer duplicates, below the client's
    /// own timeout so it hears the answer.
    #[serde(default = "default_ack_timeout")]
    ack_timeout_secs: Seconds,
    /// Limits on connections, against slow and abusive clients.
    #[serde(default)]
    connections: ConnectionsConfig,
    /// Serve HTTPS with this certificate and key (PEM files), read when
    /// howl starts; unset: plain HTTP.
    tls: Option<TlsConfig>,
}

fn default_ack_timeout() -> Seconds {
    Seconds::from_secs(60)
}

fn default_path() -> String {
    "/".to_string()
}

fn default_max_body_bytes() -> NonZeroUsize {
    const TEN_MIB: NonZeroUsize = NonZeroUsize::new(10 * 1024 * 1024).unwrap();
    TEN_MIB
}

/// How request bodies become events: the `decoding` table, or the older
/// shorthand that names a codec and a framing at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Decoding {
    /// `decoding.codec = ...`, framed as `framing` says.
    Table(DecodingConfig),
    /// `decoding = "text" | "json" | "ndjson"`.
    Shorthand(Shorthand),
}

impl Default for Decoding {
    fn default() -> Self {
        Self::Table(DecodingConfig::default())
    }
}

/// The values of the older `decoding` string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
enum Shorthand {
    /// The `bytes` codec, one frame per line.
    Text,
    /// The `json` codec, the whole body one frame.
    Json,
    /// The `json` codec, one frame per line.
    Ndjson,
}

impl<'de> Deserialize<'de> for Decoding {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Either;

        impl<'de> serde::de::Visitor<'de> for Either {
            type Value = Decoding;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a table such as `{ codec = \"json\" }`, or `\"text\"`, `\"json\"` or `\"ndjson\"`")
            }

            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Decoding, E> {
                Shorthand::deserialize(serde::de::value::StrDeserializer::<E>::new(text))
                    .map(Decoding::Shorthand)
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Decoding, A::Error> {
                DecodingConfig::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(Decoding::Table)
            }
        }

        deserializer.deserialize_any(Either)
    }
}

impl JsonSchema for Decoding {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "HttpDecoding".into()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "anyOf": [
                generator.subschema_for::<DecodingConfig>(),
                generator.subschema_for::<Shorthand>(),
            ]
        })
    }
}

impl HttpServerConfig {
    /// The codec and framing the options choose; a shorthand already
    /// names its framing, so `framing` beside it is refused.
    fn decoding(&self) -> Result<(Decoder, Framing), BuildError> {
        let config = match self.decoding {
            Decoding::Table(config) => config,
            Decoding::Shorthand(shorthand) => {
                if self.framing.method.is_some() || self.framing.character_delimited.is_some() {
                    return Err(BuildError::new(
                        "the `decoding` shorthand sets the framing too; write \
                         `decoding.codec = ...` to choose a `framing` of your own",
                    )
                    .for_option("framing"));
                }
                let (codec, framing) = match shorthand {
                    Shorthand::Text => (Codec::Bytes, LINES),
                    Shorthand::Json => (Codec::Json, Framing::Whole),
                    Shorthand::Ndjson => (Codec::Json, LINES),
                };
                return Ok((
                    Decoder::new(DecodingConfig { codec }, "http_server"),
                    framing,
                ));
            }
        };
        // A JSON body is one document (an array gives one event per
        // element); anything else is read line by line, as before.
        let default = match config.codec {
            Codec::Json => Framing::Whole,
            Codec::Bytes | Codec::Syslog | Codec::Logfmt => LINES,
        };
        Ok((
            Decoder::new(config, "http_server"),
            self.framing.resolve(default, true)?,
        ))
    }
}

impl SourceConfig for HttpServerConfig {
    fn build(&self, cx: &BuildContext) -> Result<Box<dyn Source>, BuildError> {
        check_literal_path(&self.path)?;
        let (decoder, framing) = self.decoding()?;
        let extra = [("path", Value::from(self.path.as_str()))];
        let body_decoder: BodyDecoder =
            Arc::new(move |body, _headers| Ok(decode(&decoder, framing, body, &extra)?.into()));
        Ok(Box::new(Receiver {
            address: self.address,
            path: self.path.clone(),
            methods: axum::routing::MethodFilter::POST,
            listening: Listening::new(
                self.max_body_bytes,
                self.auth.as_ref(),
                &self.ack_timeout_secs,
                &self.connections,
                self.tls.as_ref(),
                cx,
                "",
            )?,
            decoder: body_decoder,
            answers: Arc::new(JsonAnswers),
            protocol: Protocol::Http1,
        }))
    }
}

/// Decodes a whole body into its events, or says which frame does not
/// decode (then no event of it is taken). Past [`MAX_EVENTS_PER_REQUEST`]
/// events it stops (413), so a body of many tiny records never holds more
/// events than that.
fn decode(
    decoder: &Decoder,
    framing: Framing,
    body: Bytes,
    extra: &[(&'static str, Value)],
) -> Result<Vec<Event>, Refusal> {
    let now = Utc::now();
    let mut events = Vec::new();
    // Read by the framing loop too, which stops decoding once it is set.
    let too_many = std::cell::Cell::new(false);
    let mut take = |event: Event| {
        if events.len() < MAX_EVENTS_PER_REQUEST {
            events.push(event);
        } else {
            too_many.set(true);
        }
    };
    match framing {
        Framing::Whole => {
            if !body.iter().all(u8::is_ascii_whitespace) {
                decoder
                    .try_decode(&body, now, extra, &mut take)
                    .map_err(|error| Refusal::from(error.to_string()))?;
            }
        }
        Framing::Delimited(delimiter) => {
            let mut failed = None;
            split_whole(&body, delimiter, usize::MAX, |number, (frame, _)| {
                // Past the limit the answer is 413 whatever the rest holds:
                // decoding it would only spend CPU.
                if failed.is_some() || too_many.get() {
                    return;
                }
                if let Err(error) = decoder.try_decode(&frame, now, extra, &mut take) {
                    let place = if delimiter == b'\n' {
                        format!("on line {number}")
                    } else {
                        format!("in frame {number}")
                    };
                    failed = Some(error.at(&place));
                }
            });
            if let Some(why) = failed {
                return Err(Refusal::from(why));
            }
        }
    }
    if too_many.get() {
        return Err(too_many_events());
    }
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::{build_failure, parse_error};

    #[test]
    fn path_and_token_problems_point_at_their_option() {
        let address = "address = \"127.0.0.1:1\"\n";
        for (options, expected, option) in [
            ("path = \"a\"", "`path` must start with `/`", "path"),
            (
                "path = \"/a/{id}\"",
                "`{` would make `/a/{id}` a pattern",
                "path",
            ),
            ("auth.token = \"\"", "`auth.token` is empty", "auth.token"),
        ] {
            let error = build_failure::<HttpServerConfig>(&format!("{address}{options}"));
            assert!(error.message.contains(expected), "{options}: {error}");
            assert_eq!(error.option.as_deref(), Some(option), "{options}");
        }
    }

    #[test]
    fn the_token_is_never_printed_and_a_zero_body_limit_is_refused_while_reading() {
        let config: HttpServerConfig =
            toml::from_str("address = \"127.0.0.1:1\"\nauth.token = \"s3cret\"").unwrap();
        assert!(!format!("{config:?}").contains("s3cret"));
        let (message, at) =
            parse_error::<HttpServerConfig>("address = \"127.0.0.1:1\"\nmax_body_bytes = 0");
        assert!(message.contains("nonzero"), "{message}");
        assert_eq!(at, "0");
    }

    /// The events of `body` under the decoding options `options`.
    fn decode_with(options: &str, body: &'static str) -> Result<Vec<Event>, String> {
        let config: HttpServerConfig =
            toml::from_str(&format!("address = \"127.0.0.1:1\"\n{options}")).unwrap();
        let (decoder, framing) = config.decoding().unwrap();
        decode(
            &decoder,
            framing,
            Bytes::from(body),
            &[("path", Value::from("/"))],
        )
        .map_err(|refusal| refusal.message)
    }

    #[test]
    fn a_body_of_too_many_records_is_refused_without_holding_them_all() {
        let body: &'static str = "x\n".repeat(MAX_EVENTS_PER_REQUEST + 5).leak();
        let error = decode_with("", body).unwrap_err();
        assert!(error.contains("records in one request"), "{error}");
        let array: &'static str = format!("[{}1]", "1,".repeat(MAX_EVENTS_PER_REQUEST)).leak();
        let error = decode_with("decoding = \"json\"", array).unwrap_err();
        assert!(error.contains("records in one request"), "{error}");
        // Past the limit nothing more is decoded: a bad line after it does
        // not turn the 413 into a 400.
        let lines: &'static str =
            format!("{}{{oops\n", "{}\n".repeat(MAX_EVENTS_PER_REQUEST + 1)).leak();
        let error = decode_with("decoding = \"ndjson\"", lines).unwrap_err();
        assert!(error.contains("records in one request"), "{error}");
    }

    #[test]
    fn the_shorthands_decode_as_they_always_did() {
        let text = decode_with("decoding = \"text\"", "a\r\n\nb\n").unwrap();
        assert_eq!(text.len(), 2);
        assert_eq!(text[0].get_field("message"), Some(&Value::from("a")));
        assert_eq!(text[0].get_field("path"), Some(&Value::from("/")));
        let json = decode_with("decoding = \"json\"", r#"[{"a":1},{"a":2}]"#).unwrap();
        assert_eq!(json.len(), 2);
        assert!(
            decode_with("decoding = \"json\"", " \n ")
                .unwrap()
                .is_empty()
        );
        let ndjson = decode_with("decoding = \"ndjson\"", "{\"a\":1}\n \n{\"a\":2}\n").unwrap();
        assert_eq!(ndjson.len(), 2);
        assert_eq!(ndjson[1].get_field("a"), Some(&Value::from(2)));
        assert!(ndjson[1].get_field("timestamp").is_some());
        assert_eq!(
            ndjson[1].get_field("source_type"),
            Some(&Value::from("http_server"))
        );
    }

    #[test]
    fn the_table_form_takes_a_codec_and_a_framing() {
        let json = decode_with("decoding.codec = \"json\"", r#"{"a":1}"#).unwrap();
        assert_eq!(json.len(), 1);
        let lines = decode_with(
            "decoding.codec = \"json\"\nframing.method = \"newline_delimited\"",
            "{\"a\":1}\n{\"a\":2}",
        )
        .unwrap();
        assert_eq!(lines.len(), 2);
        let logfmt = decode_with(
            "decoding.codec = \"logfmt\"\nframing.method = \"character_delimited\"\nframing.character_delimited.delimiter = \";\"",
            "a=1;b=2 c",
        )
        .unwrap();
        assert_eq!(logfmt.len(), 2);
        assert_eq!(logfmt[1].get_field("c"), Some(&Value::Boolean(true)));
        let whole = decode_with("framing.method = \"bytes\"", "one\ntwo").unwrap();
        assert_eq!(
            whole[0].get_field("message"),
            Some(&Value::from("one\ntwo"))
        );
    }

    #[test]
    fn a_frame_that_does_not_decode_names_its_line_and_refuses_the_body() {
        let error = decode_with("decoding = \"ndjson\"", "{\"a\":1}\n\n{oops\n").unwrap_err();
        assert!(error.contains("invalid JSON on line 3"), "{error}");
        let error = decode_with(
            "decoding.codec = \"logfmt\"\nframing.method = \"character_delimited\"\nframing.character_delimited.delimiter = \",\"",
            "a=1,just words",
        )
        .unwrap_err();
        assert!(error.contains("invalid logfmt in frame 2"), "{error}");
        let error = decode_with("decoding = \"json\"", "{oops").unwrap_err();
        assert!(error.starts_with("invalid JSON: "), "{error}");
    }

    #[test]
    fn a_shorthand_with_a_framing_and_bad_values_point_at_their_option() {
        let error = build_failure::<HttpServerConfig>(
            "address = \"127.0.0.1:1\"\ndecoding = \"ndjson\"\nframing.method = \"bytes\"",
        );
        assert!(
            error.message.contains("shorthand sets the framing"),
            "{error}"
        );
        assert_eq!(error.option.as_deref(), Some("framing"));
        let (message, at) =
            parse_error::<HttpServerConfig>("address = \"127.0.0.1:1\"\ndecoding = \"xml\"");
        assert!(message.contains("unknown variant `xml`"), "{message}");
        assert_eq!(at, "\"xml\"");
        let (message, at) =
            parse_error::<HttpServerConfig>("address = \"127.0.0.1:1\"\ndecoding.codec = \"xml\"");
        assert!(message.contains("unknown variant `xml`"), "{message}");
        assert_eq!(at, "\"xml\"");
        let (message, _) =
            parse_error::<HttpServerConfig>("address = \"127.0.0.1:1\"\ndecoding.kodec = \"json\"");
        assert!(message.contains("unknown field `kodec`"), "{message}");
    }
}
