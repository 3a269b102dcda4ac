use std::io::Write;

use proptest::prelude::*;
use vrl::value::Value;

use super::proto::{
    AnyValue, ArrayValue, ExportLogsServiceRequest, InstrumentationScope, KeyValue, KeyValueList,
    LogRecord, Resource, ResourceLogs, ScopeLogs, any_value::Value as V,
};
use super::*;
use crate::event::Event;

const LIMIT: usize = 1 << 20;

fn headers(content_type: &str, content_encoding: Option<&str>) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, content_type.parse().unwrap());
    if let Some(encoding) = content_encoding {
        headers.insert(header::CONTENT_ENCODING, encoding.parse().unwrap());
    }
    headers
}

fn text(event: &Event, path: &str) -> Option<String> {
    let path = vrl::path::parse_value_path(path).unwrap();
    event.get(&path).map(|v| match (v, v.to_str_lossy()) {
        (Value::Timestamp(at), _) => at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
        (_, Some(text)) => text.into_owned(),
        _ => v.to_string(),
    })
}

fn some(value: V) -> Option<AnyValue> {
    Some(AnyValue { value: Some(value) })
}

fn kv(key: &str, value: V) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: some(value),
    }
}

fn sample_request() -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: vec![kv("service.name", V::StringValue("checkout".into()))],
                dropped_attributes_count: 0,
            }),
            scope_logs: vec![ScopeLogs {
                scope: Some(InstrumentationScope {
                    name: "app.logger".into(),
                    version: "2.1".into(),
                    ..Default::default()
                }),
                log_records: vec![
                    LogRecord {
                        time_unix_nano: 1_755_856_800_123_456_789,
                        observed_time_unix_nano: 1_755_856_800_200_000_000,
                        severity_number: 17,
                        severity_text: "ERROR".into(),
                        body: some(V::StringValue("payment declined".into())),
                        attributes: vec![
                            kv("http.status_code", V::IntValue(402)),
                            kv(
                                "ctx",
                                V::KvlistValue(KeyValueList {
                                    values: vec![kv("retry", V::BoolValue(true))],
                                }),
                            ),
                        ],
                        flags: 0x101,
                        trace_id: vec![
                            0x0a, 0xf7, 0x65, 0x19, 0x16, 0xcd, 0x43, 0xdd, 0x84, 0x48, 0xeb, 0x21,
                            0x1c, 0x80, 0x31, 0x9c,
                        ],
                        span_id: vec![0xb7, 0xad, 0x6b, 0x71, 0x69, 0x20, 0x33, 0x31],
                        ..Default::default()
                    },
                    LogRecord {
                        observed_time_unix_nano: 1_755_856_801_000_000_000,
                        severity_number: 10,
                        body: some(V::ArrayValue(ArrayValue {
                            values: vec![
                                some(V::DoubleValue(1.5)).unwrap(),
                                some(V::BytesValue(vec![0, 1])).unwrap(),
                            ],
                        })),
                        trace_id: vec![0; 16],
                        span_id: vec![1, 2, 3],
                        dropped_attributes_count: 2,
                        ..Default::default()
                    },
                ],
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

const SAMPLE_JSON: &str = r#"{"resourceLogs":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"checkout"}}]},
 "scopeLogs":[{"scope":{"name":"app.logger","version":"2.1"},
  "logRecords":[{"timeUnixNano":"1755856800123456789","observedTimeUnixNano":"1755856800200000000",
   "severityNumber":17,"severityText":"ERROR","body":{"stringValue":"payment declined"},
   "attributes":[{"key":"http.status_code","value":{"intValue":"402"}},
                 {"key":"ctx","value":{"kvlistValue":{"values":[{"key":"retry","value":{"boolValue":true}}]}}}],
   "traceId":"0AF7651916CD43DD8448EB211C80319C","spanId":"b7ad6b7169203331","flags":257},
   {"observedTimeUnixNano":1755856801000000000,"severityNumber":10,
    "body":{"arrayValue":{"values":[{"doubleValue":1.5},{"bytesValue":"AAE="}]}},
    "traceId":"00000000000000000000000000000000","spanId":"010203","droppedAttributesCount":2}]}]}]}"#;

/// Both encodings of the same request give the same events.
fn assert_sample(events: &[Event]) {
    assert_eq!(events.len(), 2);
    let first = &events[0];
    assert_eq!(text(first, "message").as_deref(), Some("payment declined"));
    assert_eq!(
        text(first, "timestamp").as_deref(),
        Some("2025-08-22T10:00:00.123456789Z")
    );
    assert_eq!(
        text(first, "observed_timestamp").as_deref(),
        Some("2025-08-22T10:00:00.200Z")
    );
    assert_eq!(text(first, "level").as_deref(), Some("error"));
    assert_eq!(text(first, "severity_text").as_deref(), Some("ERROR"));
    assert_eq!(text(first, "severity_number").as_deref(), Some("17"));
    assert_eq!(
        text(first, "attributes.\"http.status_code\"").as_deref(),
        Some("402")
    );
    assert_eq!(
        first.get(&vrl::path::parse_value_path("attributes.ctx.retry").unwrap()),
        Some(&Value::Boolean(true))
    );
    assert_eq!(
        text(first, "resources.\"service.name\"").as_deref(),
        Some("checkout")
    );
    assert_eq!(text(first, "scope.name").as_deref(), Some("app.logger"));
    assert_eq!(text(first, "scope.version").as_deref(), Some("2.1"));
    assert_eq!(
        text(first, "trace_id").as_deref(),
        Some("0af7651916cd43dd8448eb211c80319c")
    );
    assert_eq!(text(first, "span_id").as_deref(), Some("b7ad6b7169203331"));
    assert_eq!(
        text(first, "flags").as_deref(),
        Some("1"),
        "reserved bits masked"
    );
    assert_eq!(text(first, "source_type").as_deref(), Some("opentelemetry"));

    let second = &events[1];
    // No time: the observed time; a structured body stays structured.
    assert_eq!(
        text(second, "timestamp").as_deref(),
        Some("2025-08-22T10:00:01Z")
    );
    let body = second.get_field("message").unwrap();
    assert_eq!(
        body,
        &Value::Array(vec![
            Value::Float(vrl::compiler::prelude::NotNan::new(1.5).unwrap()),
            Value::Bytes(vec![0u8, 1].into()),
        ])
    );
    assert_eq!(text(second, "level").as_deref(), Some("info"));
    assert_eq!(
        text(second, "dropped_attributes_count").as_deref(),
        Some("2")
    );
    for absent in [
        "trace_id",
        "span_id",
        "flags",
        "severity_text",
        "attributes",
    ] {
        assert_eq!(text(second, absent), None, "{absent} is left out");
    }
    assert_eq!(text(second, "scope.name").as_deref(), Some("app.logger"));
}

#[test]
fn decodes_protobuf_records_with_vectors_field_names() {
    let body = sample_request().encode_to_vec();
    let events = decode(body.into(), &headers(PROTOBUF, None), LIMIT)
        .unwrap()
        .events;
    assert_sample(&events);
}

#[test]
fn decodes_otlp_json_with_hex_ids_and_string_integers() {
    let events = decode(
        SAMPLE_JSON.into(),
        &headers("application/json; charset=utf-8", None),
        LIMIT,
    )
    .unwrap()
    .events;
    assert_sample(&events);
}

#[test]
fn decodes_gzip_bodies_and_refuses_one_that_inflates_past_the_limit() {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&sample_request().encode_to_vec()).unwrap();
    let body = gz.finish().unwrap();
    let events = decode(body.clone().into(), &headers(PROTOBUF, Some("gzip")), LIMIT)
        .unwrap()
        .events;
    assert_sample(&events);

    let too_large = decode(body.into(), &headers(PROTOBUF, Some("gzip")), 50).unwrap_err();
    assert_eq!(too_large.status, StatusCode::PAYLOAD_TOO_LARGE);

    let bomb = {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&vec![0u8; 4 * LIMIT]).unwrap();
        gz.finish().unwrap()
    };
    let refused = decode(bomb.into(), &headers(JSON, Some("gzip")), LIMIT).unwrap_err();
    assert_eq!(refused.status, StatusCode::PAYLOAD_TOO_LARGE);

    let not_gzip = decode("{}".into(), &headers(JSON, Some("gzip")), LIMIT).unwrap_err();
    assert_eq!(not_gzip.status, StatusCode::BAD_REQUEST);
    assert!(not_gzip.message.contains("gzip"), "{}", not_gzip.message);
}

#[test]
fn unknown_content_types_and_encodings_are_415_and_bad_bodies_400() {
    for (content_type, encoding) in [
        ("text/plain", None),
        ("application/protobuf", None),
        (JSON, Some("br")),
    ] {
        let refused = decode("{}".into(), &headers(content_type, encoding), LIMIT).unwrap_err();
        assert_eq!(
            refused.status,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "{content_type}"
        );
    }
    let none = decode("{}".into(), &HeaderMap::new(), LIMIT).unwrap_err();
    assert_eq!(none.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(none.message.contains("got none"), "{}", none.message);

    for (body, expected) in [
        ("not json", "invalid JSON"),
        ("[]", "not a JSON object"),
        (r#"{"resource_logs":[{}]}"#, "lowerCamelCase"),
        (r#"{"resourceLogs":{}}"#, "`resourceLogs` is not an array"),
        (
            r#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"traceId":"zz"}]}]}]}"#,
            "`traceId` is not hex",
        ),
        (
            r#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"timeUnixNano":"-1"}]}]}]}"#,
            "`timeUnixNano`",
        ),
    ] {
        let refused = decode(body.into(), &headers(JSON, None), LIMIT).unwrap_err();
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{body}");
        assert!(
            refused.message.contains(expected),
            "{body}: {}",
            refused.message
        );
    }
    let refused = decode(vec![0x0a, 0xff].into(), &headers(PROTOBUF, None), LIMIT).unwrap_err();
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert!(refused.message.contains("invalid OTLP protobuf"));
}

#[test]
fn an_empty_request_is_no_events_and_empty_values_are_null() {
    for (body, content_type) in [("{}", JSON), ("", PROTOBUF)] {
        let events = decode(body.into(), &headers(content_type, None), LIMIT)
            .unwrap()
            .events;
        assert!(events.is_empty());
    }
    let body = r#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"body":{},
        "attributes":[{"key":"nothing","value":{}},{"key":"nan","value":{"doubleValue":"NaN"}}]}]}]}]}"#;
    let events = decode(body.into(), &headers(JSON, None), LIMIT)
        .unwrap()
        .events;
    assert_eq!(events[0].get_field("message"), Some(&Value::Null));
    assert_eq!(
        text(&events[0], "attributes.nothing").as_deref(),
        Some("null")
    );
    assert_eq!(text(&events[0], "attributes.nan").as_deref(), Some("null"));
    // No time at all: the time of arrival; no severity: no level.
    assert!(events[0].get_field("timestamp").is_some());
    assert_eq!(events[0].get_field("level"), None);
}

#[test]
fn severity_numbers_map_to_howls_levels() {
    for (number, expected) in [
        (0, None),
        (1, Some("debug")),
        (4, Some("debug")),
        (5, Some("debug")),
        (8, Some("debug")),
        (9, Some("info")),
        (12, Some("info")),
        (13, Some("warn")),
        (16, Some("warn")),
        (17, Some("error")),
        (20, Some("error")),
        (21, Some("fatal")),
        (24, Some("fatal")),
        (25, None),
        (-1, None),
    ] {
        assert_eq!(log::level(number), expected, "{number}");
    }
    // An unspecified number falls back to the text.
    let body = r#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"severityText":"Warning"}]}]}]}"#;
    let events = decode(body.into(), &headers(JSON, None), LIMIT)
        .unwrap()
        .events;
    assert_eq!(text(&events[0], "level").as_deref(), Some("warn"));
    assert_eq!(events[0].get_field("severity_number"), None);
}

#[test]
fn answers_in_the_requests_encoding() {
    let protobuf = OtlpAnswers.delivered(3, None, &headers(PROTOBUF, None));
    assert_eq!(protobuf.status(), StatusCode::OK);
    assert_eq!(protobuf.headers()[header::CONTENT_TYPE], PROTOBUF);
    let json = OtlpAnswers.delivered(3, None, &headers(JSON, None));
    assert_eq!(json.headers()[header::CONTENT_TYPE], JSON);
    let refused = OtlpAnswers.refused(StatusCode::BAD_REQUEST, "nope", &headers(PROTOBUF, None));
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    assert_eq!(refused.headers()[header::CONTENT_TYPE], PROTOBUF);
}

#[tokio::test]
async fn values_not_kept_as_sent_are_accepted_and_told_as_a_partial_success() {
    let mut request = sample_request();
    let record = &mut request.resource_logs[0].scope_logs[0].log_records[0];
    record.trace_id = vec![1, 2, 3];
    record.attributes.push(proto::KeyValue {
        key: "ratio".into(),
        value: Some(proto::AnyValue {
            value: Some(proto::any_value::Value::DoubleValue(f64::NAN)),
        }),
    });
    let decoded = decode(
        request.encode_to_vec().into(),
        &headers(PROTOBUF, None),
        LIMIT,
    )
    .unwrap();
    let warning = decoded.warning.expect("a warning");
    assert!(
        // The sample's second record has a 3-byte span id already.
        warning.contains("2 record(s) had a trace_id or span_id of the wrong length"),
        "{warning}"
    );
    assert!(warning.contains("1 value(s) were NaN"), "{warning}");
    let first = &decoded.events[0];
    assert_eq!(first.get_field("trace_id"), None, "the bad id is left out");
    let ratio = vrl::path::parse_value_path("attributes.ratio").unwrap();
    assert_eq!(first.get(&ratio), Some(&Value::Null));
    let mut clean = sample_request();
    clean.resource_logs[0].scope_logs[0].log_records[1].span_id = Vec::new();
    let clean = decode(
        clean.encode_to_vec().into(),
        &headers(PROTOBUF, None),
        LIMIT,
    )
    .unwrap();
    assert_eq!(clean.warning, None);

    // The answers carry it: protobuf's `partial_success`, rejecting
    // nothing, and OTLP/JSON's `partialSuccess`.
    let answer = OtlpAnswers.delivered(2, Some(&warning), &headers(PROTOBUF, None));
    let body = axum::body::to_bytes(answer.into_body(), 1 << 20)
        .await
        .unwrap();
    let response = proto::ExportLogsServiceResponse::decode(body).unwrap();
    let partial = response.partial_success.expect("partial success");
    assert_eq!(partial.rejected_log_records, 0);
    assert_eq!(partial.error_message, warning);
    let answer = OtlpAnswers.delivered(2, Some("careful"), &headers(JSON, None));
    let body = axum::body::to_bytes(answer.into_body(), 1 << 20)
        .await
        .unwrap();
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&body).unwrap(),
        serde_json::json!({"partialSuccess": {"errorMessage": "careful"}})
    );
    let answer = OtlpAnswers.delivered(2, None, &headers(JSON, None));
    let body = axum::body::to_bytes(answer.into_body(), 1 << 20)
        .await
        .unwrap();
    assert_eq!(&body[..], b"{}");
}

#[test]
fn builds_with_and_without_grpc() {
    for options in [
        "http.address = \"127.0.0.1:4318\"",
        "http.address = \"127.0.0.1:4318\"\ngrpc.address = \"127.0.0.1:4317\"",
    ] {
        let config: OpentelemetryConfig = toml::from_str(options).unwrap();
        assert!(
            config.build(&crate::sources::test_context(options)).is_ok(),
            "{options}"
        );
    }
    let error = toml::from_str::<OpentelemetryConfig>(
        "http.address = \"127.0.0.1:4318\"\ngrpc.address = \"127.0.0.1:4317\"\ngrpc.tls.enabled = true",
    )
    .unwrap_err();
    assert!(error.to_string().contains("tls"), "{error}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn garbage_never_panics(body in proptest::collection::vec(proptest::arbitrary::any::<u8>(), 0..512)) {
        for content_type in [PROTOBUF, JSON] {
            for encoding in [None, Some("gzip")] {
                let _ = decode(body.clone().into(), &headers(content_type, encoding), LIMIT);
            }
        }
    }

    #[test]
    fn mutated_protobuf_never_panics(flips in proptest::collection::vec((proptest::arbitrary::any::<usize>(), proptest::arbitrary::any::<u8>()), 1..8)) {
        let mut body = sample_request().encode_to_vec();
        for (at, byte) in flips {
            let len = body.len();
            body[at % len] = byte;
        }
        let _ = decode(body.into(), &headers(PROTOBUF, None), LIMIT);
    }
}
