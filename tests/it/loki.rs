//! The `loki` source as shippers reach it: JSON (Fluent Bit's `loki`
//! output, gzipped or not) and snappy-compressed protobuf (Alloy,
//! Promtail, Vector), encoded here independently of howl's own decoder
//! from the field numbers of Loki's `push.proto`.

use std::io::Write;
use std::time::Duration;

use prost::Message;
use serde_json::Value;

use crate::common::{Running, client, free_port, wait_for, write};

#[derive(Clone, PartialEq, prost::Message)]
struct PushRequest {
    #[prost(message, repeated, tag = "1")]
    streams: Vec<StreamAdapter>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct StreamAdapter {
    #[prost(string, tag = "1")]
    labels: String,
    #[prost(message, repeated, tag = "2")]
    entries: Vec<EntryAdapter>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct EntryAdapter {
    #[prost(message, optional, tag = "1")]
    timestamp: Option<Timestamp>,
    #[prost(string, tag = "2")]
    line: String,
    #[prost(message, repeated, tag = "3")]
    structured_metadata: Vec<LabelPair>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Timestamp {
    #[prost(int64, tag = "1")]
    seconds: i64,
    #[prost(int32, tag = "2")]
    nanos: i32,
}

#[derive(Clone, PartialEq, prost::Message)]
struct LabelPair {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(string, tag = "2")]
    value: String,
}

fn events(dir: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("out.log"))
        .unwrap_or_default()
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

#[tokio::test]
async fn json_gzip_and_snappy_protobuf_pushes_arrive_with_labels_and_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let (api, port) = (free_port(), free_port());
    let config = write(
        dir.path(),
        "loki.toml",
        &format!(
            "[api]\nenabled = true\naddress = \"127.0.0.1:{api}\"\n\
             [sources.loki]\ntype = \"loki\"\naddress = \"127.0.0.1:{port}\"\n\
             [sinks.out]\ntype = \"file\"\ninputs = [\"loki\"]\npath = \"out.log\"\nencoding = \"json\"\n\
             acknowledgements.enabled = true\n"
        ),
    );
    let _howl = Running::start(dir.path(), &config, api, &[]).await;
    let url = format!("http://127.0.0.1:{port}/loki/api/v1/push");
    let http = client();

    let json = r#"{"streams":[{"stream":{"job":"api","host":"web-1"},
      "values":[["1755856800123456789","GET /pay 500",{"trace_id":"0af7"}]]}]}"#;
    let answer = http
        .post(&url)
        .header("content-type", "application/json")
        .header("x-scope-orgid", "team-a")
        .body(json)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 204, "Loki's answer once delivered");

    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(json.replace("GET /pay 500", "gzipped line").as_bytes())
        .unwrap();
    let answer = http
        .post(&url)
        .header("content-type", "application/json")
        .header("content-encoding", "gzip")
        .body(gz.finish().unwrap())
        .send()
        .await
        .unwrap();
    assert!(answer.status().is_success(), "{}", answer.status());

    let request = PushRequest {
        streams: vec![StreamAdapter {
            labels: r#"{env="prod", job="payments"}"#.to_string(),
            entries: vec![EntryAdapter {
                timestamp: Some(Timestamp {
                    seconds: 1_755_856_800,
                    nanos: 7,
                }),
                line: "protobuf line".to_string(),
                structured_metadata: vec![LabelPair {
                    name: "user".to_string(),
                    value: "u42".to_string(),
                }],
            }],
        }],
    };
    let body = snap::raw::Encoder::new()
        .compress_vec(&request.encode_to_vec())
        .unwrap();
    let answer = http
        .post(&url)
        .header("content-type", "application/x-protobuf")
        .body(body)
        .send()
        .await
        .unwrap();
    assert!(answer.status().is_success(), "{}", answer.status());

    let bad = http
        .post(&url)
        .header("content-type", "application/json")
        .body("{\"streams\": 1}")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let reason = bad.text().await.unwrap();
    assert!(reason.contains("not a Loki JSON push"), "{reason}");

    let got = wait_for("three events", Duration::from_secs(10), || {
        let got = events(dir.path());
        (got.len() >= 3).then_some(got)
    })
    .await;
    let by_message = |m: &str| {
        got.iter()
            .find(|e| e["message"] == m)
            .unwrap_or_else(|| panic!("no {m} in {got:#?}"))
            .clone()
    };
    let e = by_message("GET /pay 500");
    assert_eq!(e["labels"]["job"], "api");
    assert_eq!(e["host"], "web-1");
    assert_eq!(e["tenant"], "team-a");
    assert_eq!(e["structured_metadata"]["trace_id"], "0af7");
    assert_eq!(e["timestamp"], "2025-08-22T10:00:00.123456789Z");
    by_message("gzipped line");
    let e = by_message("protobuf line");
    assert_eq!(e["labels"]["env"], "prod");
    assert_eq!(e["structured_metadata"]["user"], "u42");
    assert_eq!(e["source_type"], "loki");
}
