//! Pushes as the shippers send them: Fluent Bit's JSON (plain and
//! gzipped), Alloy's and Promtail's protobuf in snappy blocks, Vector's
//! protobuf with `Content-Encoding: snappy` and unescaped label values.

use std::io::Write;

use prost::Message;

use super::labels::parse_labels;
use super::push::{EntryAdapter, LabelPairAdapter, PushRequest, StreamAdapter, Timestamp};
use super::*;

const LIMIT: usize = 1 << 20;

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (k, v) in pairs {
        map.insert(
            axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    map
}

fn s(event: &Event, path: &str) -> String {
    let mut value = event.value();
    for part in path.split('.') {
        value = value
            .as_object()
            .and_then(|o| o.get(part))
            .unwrap_or_else(|| panic!("no {path} in {:?}", event.value()));
    }
    value.to_string_lossy().into_owned()
}

const JSON: &str = r#"{"streams":[{"stream":{"job":"api","env":"prod","host":"web-1"},
  "values":[["1755856800123456789","GET /health 200"],
            ["1755856800223456789","GET /pay 500",{"trace_id":"0af7651916cd43dd","user":"u42"}]]}]}"#;

#[test]
fn json_pushes_give_one_event_per_entry_with_labels_and_metadata() {
    let events = decode(
        Bytes::from_static(JSON.as_bytes()),
        &headers(&[
            ("content-type", "application/json"),
            ("x-scope-orgid", "team-a"),
        ]),
        LIMIT,
        Utc::now(),
    )
    .unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(s(&events[0], "message"), "GET /health 200");
    assert_eq!(s(&events[0], "timestamp"), "2025-08-22T10:00:00.123456789Z");
    assert_eq!(s(&events[0], "labels.job"), "api");
    assert_eq!(s(&events[0], "host"), "web-1");
    assert_eq!(s(&events[0], "tenant"), "team-a");
    assert_eq!(s(&events[0], "source_type"), "loki");
    assert!(events[0].get_field("structured_metadata").is_none());
    assert_eq!(s(&events[1], "structured_metadata.user"), "u42");
}

#[test]
fn gzipped_json_as_fluent_bit_sends_it() {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(JSON.as_bytes()).unwrap();
    let body = Bytes::from(gz.finish().unwrap());
    let events = decode(
        body,
        &headers(&[
            ("content-type", "application/json"),
            ("content-encoding", "gzip"),
        ]),
        LIMIT,
        Utc::now(),
    )
    .unwrap();
    assert_eq!(events.len(), 2);
}

#[test]
fn deflate_is_raw_as_loki_reads_it_or_zlib_wrapped_as_http_says() {
    let mut raw = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
    raw.write_all(JSON.as_bytes()).unwrap();
    let mut zlib = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    zlib.write_all(JSON.as_bytes()).unwrap();
    for body in [raw.finish().unwrap(), zlib.finish().unwrap()] {
        let events = decode(
            Bytes::from(body),
            &headers(&[
                ("content-type", "application/json"),
                ("content-encoding", "deflate"),
            ]),
            LIMIT,
            Utc::now(),
        )
        .unwrap();
        assert_eq!(events.len(), 2);
    }
}

fn protobuf(labels: &str) -> Vec<u8> {
    let request = PushRequest {
        streams: vec![StreamAdapter {
            labels: labels.to_string(),
            entries: vec![EntryAdapter {
                timestamp: Some(Timestamp {
                    seconds: 1_755_856_800,
                    nanos: 5,
                }),
                line: "level=error msg=\"payment failed\"".to_string(),
                structured_metadata: vec![LabelPairAdapter {
                    name: "trace_id".to_string(),
                    value: "abc".to_string(),
                }],
            }],
        }],
    };
    snap::raw::Encoder::new()
        .compress_vec(&request.encode_to_vec())
        .unwrap()
}

#[test]
fn snappy_protobuf_as_alloy_and_vector_send_it() {
    for extra in [None, Some(("content-encoding", "snappy"))] {
        let mut pairs = vec![("content-type", "application/x-protobuf")];
        pairs.extend(extra);
        let events = decode(
            Bytes::from(protobuf(r#"{env="prod", job="pay\"ments"}"#)),
            &headers(&pairs),
            LIMIT,
            Utc::now(),
        )
        .unwrap();
        assert_eq!(events.len(), 1, "{extra:?}");
        let e = &events[0];
        assert_eq!(s(e, "message"), "level=error msg=\"payment failed\"");
        assert_eq!(s(e, "timestamp"), "2025-08-22T10:00:00.000000005Z");
        assert_eq!(s(e, "labels.job"), "pay\"ments");
        assert_eq!(s(e, "structured_metadata.trace_id"), "abc");
    }
    // No content type at all: protobuf, as Loki reads it.
    let events = decode(
        Bytes::from(protobuf(r#"{job="x"}"#)),
        &HeaderMap::new(),
        LIMIT,
        Utc::now(),
    )
    .unwrap();
    assert_eq!(events.len(), 1);
}

#[test]
fn labels_read_go_escapes_and_vectors_unescaped_quotes() {
    assert_eq!(
        parse_labels(r#"{a="1", b="x\"y\\z\n", c_2="" }"#).unwrap(),
        vec![
            ("a".to_string(), "1".to_string()),
            ("b".to_string(), "x\"y\\z\n".to_string()),
            ("c_2".to_string(), String::new()),
        ]
    );
    assert_eq!(
        parse_labels(r#"{msg="say "hi" now",job="a"}"#).unwrap(),
        vec![
            ("msg".to_string(), "say \"hi\" now".to_string()),
            ("job".to_string(), "a".to_string()),
        ]
    );
    assert_eq!(parse_labels("{}").unwrap(), vec![]);
    for bad in [
        "job=\"a\"",
        "{job=a}",
        "{job=\"a}",
        "{1job=\"a\"}",
        "{=\"a\"}",
    ] {
        assert!(parse_labels(bad).is_err(), "{bad}");
    }
}

#[test]
fn what_is_not_a_push_says_why_and_bombs_are_refused() {
    let json = headers(&[("content-type", "application/json")]);
    for (body, expected) in [
        ("{", "not a Loki JSON push"),
        (
            r#"{"streams":[{"stream":{},"values":[[1755856800,"x"]]}]}"#,
            "streams[0].values[0]: the timestamp must be a string",
        ),
        (
            r#"{"streams":[{"stream":{},"values":[["soon","x"]]}]}"#,
            "is not Unix nanoseconds",
        ),
    ] {
        let error = decode(Bytes::from(body), &json, LIMIT, Utc::now())
            .unwrap_err()
            .message;
        assert!(error.contains(expected), "{body}: {error}");
    }
    let error = decode(
        Bytes::from_static(b"not snappy at all"),
        &HeaderMap::new(),
        LIMIT,
        Utc::now(),
    )
    .unwrap_err()
    .message;
    assert!(
        error.contains("snappy") || error.contains("PushRequest"),
        "{error}"
    );
    let error = decode(
        Bytes::from_static(b"x"),
        &headers(&[("content-encoding", "br")]),
        LIMIT,
        Utc::now(),
    )
    .unwrap_err()
    .message;
    assert!(error.contains("Content-Encoding `br`"), "{error}");

    // 10 MiB of zeros, compressed to a few KiB, against a 1 MiB limit.
    let zeros = vec![0u8; 10 << 20];
    let bomb = snap::raw::Encoder::new().compress_vec(&zeros).unwrap();
    let error = decode(Bytes::from(bomb), &HeaderMap::new(), LIMIT, Utc::now())
        .unwrap_err()
        .message;
    assert!(error.contains("decompresses to"), "{error}");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&zeros).unwrap();
    let error = decode(
        Bytes::from(gz.finish().unwrap()),
        &headers(&[
            ("content-type", "application/json"),
            ("content-encoding", "gzip"),
        ]),
        LIMIT,
        Utc::now(),
    )
    .unwrap_err()
    .message;
    assert!(error.contains("decompresses to more than"), "{error}");
}

#[test]
fn a_push_of_more_records_than_a_request_may_make_is_refused_with_413() {
    // 100,001 empty entries: a few hundred KiB of JSON, a hundred MiB of
    // events if it were taken.
    let values = vec![r#"["1","x"]"#; MAX_EVENTS_PER_REQUEST + 1].join(",");
    let body = format!(r#"{{"streams":[{{"stream":{{}},"values":[{values}]}}]}}"#);
    let refusal = decode(
        Bytes::from(body),
        &headers(&[("content-type", "application/json")]),
        64 << 20,
        Utc::now(),
    )
    .unwrap_err();
    assert_eq!(refusal.status, axum::http::StatusCode::PAYLOAD_TOO_LARGE);
    assert!(
        refusal.message.contains("send smaller batches"),
        "{}",
        refusal.message
    );
}

#[test]
fn labels_read_every_go_escape() {
    assert_eq!(
        parse_labels(r#"{a="\x41\u00e9\U0001F600\101\a"}"#).unwrap(),
        vec![("a".to_string(), "Aé😀A\u{7}".to_string())]
    );
    assert!(parse_labels(r#"{a="\xZZ"}"#).is_err());
    assert!(
        parse_labels(r#"{a="\uD800"}"#).is_err(),
        "a surrogate is not a character"
    );
}
