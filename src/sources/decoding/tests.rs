use std::num::NonZeroUsize;

use super::*;
use crate::component_key::{ComponentKey, ComponentKind};
use crate::sources::lines::LineSplitter;

fn decoder(codec: Codec) -> Decoder {
    Decoder::new(DecodingConfig { codec }, "stdin")
}

fn host() -> [(&'static str, Value); 1] {
    [(fields::HOST, Value::from("box"))]
}

/// The events `codec` makes of `frame`, or its error.
fn decode(codec: Codec, frame: &str) -> Result<Vec<Event>, DecodeError> {
    let mut events = Vec::new();
    decoder(codec).try_decode(
        &Bytes::copy_from_slice(frame.as_bytes()),
        Utc::now(),
        &host(),
        |event| events.push(event),
    )?;
    Ok(events)
}

/// What a running source makes of `frame`: decoded, or raw when it does not
/// decode.
fn kept(codec: Codec, frame: &str) -> Vec<Event> {
    let key = ComponentKey::new(ComponentKind::Source, "s", "stdin");
    let source = SourceDecoder::new(
        decoder(codec),
        key.shared_id(),
        Arc::new(ComponentMetrics::new(key)),
    );
    let mut events = Vec::new();
    source.decode(
        Bytes::copy_from_slice(frame.as_bytes()),
        Utc::now(),
        &host(),
        &mut events,
    );
    events
}

fn field<'a>(event: &'a Event, name: &str) -> Option<&'a Value> {
    event.get_field(name)
}

#[test]
fn bytes_keeps_the_frame_as_message_with_the_standard_fields() {
    let events = kept(Codec::Bytes, "{\"not\": \"parsed\"}");
    assert_eq!(events.len(), 1);
    let event = &events[0];
    assert_eq!(
        field(event, "message"),
        Some(&Value::from("{\"not\": \"parsed\"}"))
    );
    assert_eq!(field(event, "source_type"), Some(&Value::from("stdin")));
    assert_eq!(field(event, "host"), Some(&Value::from("box")));
    assert!(matches!(
        field(event, "timestamp"),
        Some(Value::Timestamp(_))
    ));
    assert_eq!(event.metadata().source_id(), Some("s"));
}

#[test]
fn json_objects_give_their_fields_and_what_they_say_wins() {
    let events = decode(
        Codec::Json,
        r#"{"level":"warn","msg":"disk","n":3,"timestamp":"2024-01-02T03:04:05Z","host":"web-1","source_type":"file"}"#,
    )
    .unwrap();
    let event = &events[0];
    assert_eq!(field(event, "level"), Some(&Value::from("warn")));
    assert_eq!(field(event, "n"), Some(&Value::from(3)));
    assert_eq!(field(event, "message"), None, "no message of its own");
    assert_eq!(
        field(event, "timestamp"),
        Some(&Value::from("2024-01-02T03:04:05Z")),
        "the object's own timestamp is kept"
    );
    assert_eq!(field(event, "host"), Some(&Value::from("web-1")));
    assert_eq!(
        field(event, "source_type"),
        Some(&Value::from("stdin")),
        "always the source that got it"
    );

    let events = decode(Codec::Json, r#"{"msg":"x"}"#).unwrap();
    assert!(matches!(
        field(&events[0], "timestamp"),
        Some(Value::Timestamp(_))
    ));
    assert_eq!(field(&events[0], "host"), Some(&Value::from("box")));
}

#[test]
fn json_arrays_give_an_event_per_element_and_other_values_a_message() {
    let events = decode(Codec::Json, r#"[{"a":1}, "two", 3, []]"#).unwrap();
    assert_eq!(events.len(), 4);
    assert_eq!(field(&events[0], "a"), Some(&Value::from(1)));
    assert_eq!(field(&events[1], "message"), Some(&Value::from("two")));
    assert_eq!(field(&events[2], "message"), Some(&Value::from(3)));
    assert_eq!(field(&events[3], "message"), Some(&Value::Array(vec![])));
    assert_eq!(
        field(&decode(Codec::Json, "\"text\"").unwrap()[0], "message"),
        Some(&Value::from("text"))
    );
    assert!(decode(Codec::Json, "[]").unwrap().is_empty());
    assert!(decode(Codec::Json, "  \t").unwrap().is_empty());
}

#[test]
fn a_frame_that_does_not_decode_passes_on_raw() {
    for (codec, frame) in [
        (Codec::Json, "{\"cut\": \"in the mid"),
        (Codec::Json, "{} {}"),
        (Codec::Logfmt, "a plain sentence"),
        (Codec::Syslog, "no priority here"),
    ] {
        assert!(decode(codec, frame).is_err(), "{codec:?} {frame}");
        let events = kept(codec, frame);
        assert_eq!(events.len(), 1, "{codec:?} {frame}");
        assert_eq!(field(&events[0], "message"), Some(&Value::from(frame)));
        assert_eq!(field(&events[0], "host"), Some(&Value::from("box")));
        assert_eq!(events[0].metadata().source_id(), Some("s"));
    }
    let error = decode(Codec::Json, "{oops").unwrap_err();
    assert!(error.to_string().starts_with("invalid JSON: "), "{error}");
    assert!(
        error
            .at("on line 2")
            .starts_with("invalid JSON on line 2: ")
    );
}

#[test]
fn logfmt_gives_its_pairs_as_strings() {
    let events = decode(
        Codec::Logfmt,
        r#"level=error msg="disk \"sda\" full" retry code= dup=1 dup=2"#,
    )
    .unwrap();
    let event = &events[0];
    assert_eq!(field(event, "level"), Some(&Value::from("error")));
    assert_eq!(field(event, "msg"), Some(&Value::from("disk \"sda\" full")));
    assert_eq!(field(event, "retry"), Some(&Value::Boolean(true)));
    assert_eq!(field(event, "code"), Some(&Value::from("")));
    assert_eq!(
        field(event, "dup"),
        Some(&Value::Array(vec![Value::from("1"), Value::from("2")]))
    );
    assert_eq!(field(event, "host"), Some(&Value::from("box")));
}

#[test]
fn syslog_gives_the_syslog_sources_fields_in_both_rfcs() {
    let events = decode(
        Codec::Syslog,
        "<165>1 2024-05-06T07:08:09Z web-1 app 42 ID7 [origin ip=\"10.0.0.1\"] disk full",
    )
    .unwrap();
    let event = &events[0];
    assert_eq!(field(event, "message"), Some(&Value::from("disk full")));
    assert_eq!(field(event, "hostname"), Some(&Value::from("web-1")));
    assert_eq!(field(event, "host"), Some(&Value::from("web-1")));
    assert_eq!(field(event, "appname"), Some(&Value::from("app")));
    assert_eq!(field(event, "procid"), Some(&Value::from(42)));
    assert_eq!(field(event, "msgid"), Some(&Value::from("ID7")));
    assert_eq!(field(event, "facility"), Some(&Value::from("local4")));
    assert_eq!(field(event, "severity"), Some(&Value::from("notice")));
    assert_eq!(field(event, "version"), Some(&Value::from(1)));
    assert_eq!(field(event, "source_type"), Some(&Value::from("stdin")));
    let Some(Value::Timestamp(at)) = field(event, "timestamp") else {
        panic!("a timestamp")
    };
    assert_eq!(at.to_rfc3339(), "2024-05-06T07:08:09+00:00");
    let Some(Value::Object(origin)) = field(event, "origin") else {
        panic!("structured data")
    };
    assert_eq!(origin.get("ip"), Some(&Value::from("10.0.0.1")));

    let events = decode(Codec::Syslog, "<13>Dec  6 05:34:35 app: local text").unwrap();
    let event = &events[0];
    assert_eq!(field(event, "message"), Some(&Value::from("local text")));
    assert_eq!(field(event, "appname"), Some(&Value::from("app")));
    assert_eq!(
        field(event, "host"),
        Some(&Value::from("box")),
        "the source's host"
    );
}

#[test]
fn frames_split_at_a_delimiter_across_chunks_and_decode() {
    // Frames of a character-delimited stream whose delimiter falls at a
    // chunk boundary, a CRLF inside a frame, and an oversized frame.
    let mut splitter = LineSplitter::with_delimiter(NonZeroUsize::new(12).unwrap(), b';');
    let mut frames = Vec::new();
    for chunk in ["a=1;b=\"x", "\"", ";", "c=2\r\n;d=123456789012345;e=5"] {
        splitter.push(Bytes::copy_from_slice(chunk.as_bytes()), |frame| {
            frames.push(frame)
        });
    }
    splitter.finish(|frame| frames.push(frame));
    let texts: Vec<(String, bool)> = frames
        .iter()
        .map(|(f, cut)| (String::from_utf8_lossy(f).into_owned(), *cut))
        .collect();
    assert_eq!(
        texts,
        [
            ("a=1".to_string(), false),
            ("b=\"x\"".to_string(), false),
            ("c=2\r\n".to_string(), false),
            ("d=1234567890".to_string(), true),
            ("e=5".to_string(), false),
        ]
    );
    let b = decode(Codec::Logfmt, &texts[1].0).unwrap();
    assert_eq!(field(&b[0], "b"), Some(&Value::from("x")));
}

#[test]
fn framing_options_are_checked_and_name_their_option() {
    let framing = |text: &str| toml::from_str::<FramingConfig>(text).unwrap();
    assert_eq!(framing("").resolve(LINES, false).unwrap(), LINES);
    assert_eq!(
        framing("").resolve(Framing::Whole, true).unwrap(),
        Framing::Whole
    );
    assert_eq!(
        framing("method = \"character_delimited\"\ncharacter_delimited.delimiter = \"\\t\"")
            .stream_delimiter()
            .unwrap(),
        b'\t'
    );
    let error = framing("method = \"bytes\"")
        .stream_delimiter()
        .unwrap_err();
    assert!(error.message.contains("reads a stream"), "{error}");
    assert_eq!(error.option.as_deref(), Some("framing.method"));
    let error = framing("method = \"character_delimited\"")
        .stream_delimiter()
        .unwrap_err();
    assert!(
        error
            .message
            .contains("needs `framing.character_delimited.delimiter`"),
        "{error}"
    );
    let error = framing("method = \"newline_delimited\"\ncharacter_delimited.delimiter = \",\"")
        .stream_delimiter()
        .unwrap_err();
    assert_eq!(error.option.as_deref(), Some("framing.character_delimited"));
    for bad in ["\"\"", "\"ab\"", "\"é\"", "1"] {
        let text =
            format!("method = \"character_delimited\"\ncharacter_delimited.delimiter = {bad}");
        let (message, at) = crate::options::parse_error::<FramingConfig>(&text);
        assert!(message.contains("one ASCII character"), "{bad}: {message}");
        assert_eq!(at, bad);
    }
    let (message, at) = crate::options::parse_error::<DecodingConfig>("codec = \"yaml\"");
    assert!(message.contains("unknown variant `yaml`"), "{message}");
    assert!(message.contains("`logfmt`"), "lists the codecs: {message}");
    assert_eq!(at, "\"yaml\"");
}
