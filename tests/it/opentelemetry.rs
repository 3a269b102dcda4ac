//! `opentelemetry` with the real client: the OpenTelemetry Python SDK's
//! OTLP/HTTP log exporter (in `target/venv`, which `scripts/test` makes)
//! sends `logging` records to howl; and the answers, status codes and
//! content types of OTLP/HTTP, checked with hand-made protobuf and JSON
//! bodies.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::common::{Running, free_port, wait_for, write};

/// Starts howl with an `opentelemetry` source (OTLP/HTTP and OTLP/gRPC)
/// writing every event as JSON to `out.log`; gives the `/v1/logs` URL and
/// the gRPC address.
async fn start() -> (tempfile::TempDir, Running, String, String) {
    start_with(false).await
}

/// [`start`], with both servers over TLS when `tls` (a certificate for
/// 127.0.0.1 signed by the test CA, `ca.pem` in the directory).
async fn start_with(tls: bool) -> (tempfile::TempDir, Running, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let (api, otlp, grpc) = (free_port(), free_port(), free_port());
    let (tls_options, scheme) = if tls {
        crate::syslog::make_certificates(dir.path());
        (
            "tls.crt_file = \"crt.pem\"\ntls.key_file = \"key.pem\"\n",
            "https",
        )
    } else {
        ("", "http")
    };
    let config = write(
        dir.path(),
        "otel.toml",
        &format!(
            "[api]\nenabled = true\naddress = \"127.0.0.1:{api}\"\n\
             [sources.otel]\ntype = \"opentelemetry\"\n\
             [sources.otel.http]\naddress = \"127.0.0.1:{otlp}\"\n{tls_options}\
             [sources.otel.grpc]\naddress = \"127.0.0.1:{grpc}\"\n{tls_options}\
             [sinks.out]\ntype = \"file\"\ninputs = [\"otel\"]\npath = \"out.log\"\nencoding = \"json\"\n"
        ),
    );
    let howl = Running::start(dir.path(), &config, api, &[]).await;
    (
        dir,
        howl,
        format!("{scheme}://127.0.0.1:{otlp}/v1/logs"),
        format!("127.0.0.1:{grpc}"),
    )
}

/// The events written so far.
fn written(dir: &Path) -> Vec<serde_json::Value> {
    crate::common::complete_lines(&dir.join("out.log"))
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

fn venv_python() -> PathBuf {
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/test (or `python3 -m venv target/venv && \
         target/venv/bin/pip install opentelemetry-sdk opentelemetry-exporter-otlp-proto-http \
         opentelemetry-exporter-otlp-proto-grpc`)",
        python.display()
    );
    python
}

const EXPORTER: &str = r#"
import logging, sys, warnings
warnings.simplefilter("ignore", DeprecationWarning)
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.resources import Resource

provider = LoggerProvider(resource=Resource.create({"service.name": "checkout"}))
ca = sys.argv[3] if len(sys.argv) > 3 else None
if sys.argv[2] == "grpc":
    import grpc
    from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
    if ca:
        credentials = grpc.ssl_channel_credentials(open(ca, "rb").read())
        exporter = OTLPLogExporter(endpoint=sys.argv[1], insecure=False, credentials=credentials,
                                   compression=grpc.Compression.Gzip, timeout=10)
    else:
        exporter = OTLPLogExporter(endpoint=sys.argv[1], insecure=True,
                                   compression=grpc.Compression.Gzip, timeout=10)
else:
    from opentelemetry.exporter.otlp.proto.http import Compression
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    exporter = OTLPLogExporter(endpoint=sys.argv[1], compression=Compression.Gzip, timeout=10,
                               certificate_file=ca)
provider.add_log_record_processor(BatchLogRecordProcessor(exporter))
log = logging.getLogger("app.payments")
log.setLevel(logging.DEBUG)
log.propagate = False
log.addHandler(LoggingHandler(level=logging.DEBUG, logger_provider=provider))

log.debug("cache warm", extra={"entries": 3})
log.info("order placed", extra={"order.id": "A-17", "amount": 12.5})
log.warning("slow answer", extra={"latency_ms": 812})
log.error("payment declined", extra={"retry": True})
flushed = provider.force_flush(10000)
provider.shutdown()
sys.exit(0 if flushed else 3)
"#;

#[tokio::test]
async fn the_python_sdks_otlp_http_exporter_delivers_records_with_their_fields() {
    exports_with_the_python_sdk("http", false).await;
}

#[tokio::test]
async fn the_python_sdks_otlp_grpc_exporter_delivers_records_with_their_fields() {
    exports_with_the_python_sdk("grpc", false).await;
}

#[tokio::test]
async fn the_python_sdks_exporters_deliver_over_tls_with_howls_certificate() {
    exports_with_the_python_sdk("http", true).await;
    exports_with_the_python_sdk("grpc", true).await;
}

/// The SDK's OTLP exporter (`http` or `grpc`, gzip; over TLS, trusting the
/// test CA, when `tls`) sends four `logging` records; each is one event
/// with its fields.
async fn exports_with_the_python_sdk(transport: &str, tls: bool) {
    let python = venv_python();
    let (dir, mut howl, url, grpc) = start_with(tls).await;
    let script = write(dir.path(), "export.py", EXPORTER);
    let endpoint = if transport == "grpc" { grpc } else { url };
    let mut command = tokio::process::Command::new(&python);
    command.arg(&script).arg(&endpoint).arg(transport);
    if tls {
        // `requests` lets these variables override the exporter's own CA
        // file (psf/requests#3829): without them, it trusts the test CA.
        command
            .arg(dir.path().join("ca.pem"))
            .env_remove("REQUESTS_CA_BUNDLE")
            .env_remove("CURL_CA_BUNDLE");
    }
    let output = tokio::time::timeout(Duration::from_secs(60), command.kill_on_drop(true).output())
        .await
        .expect("the exporter finishes within 60 s")
        .unwrap();
    assert!(
        output.status.success(),
        "the exporter failed: {}\nhowl: {}",
        String::from_utf8_lossy(&output.stderr),
        howl.stderr()
    );
    let events = wait_for("4 events in out.log", Duration::from_secs(10), || {
        let events = written(dir.path());
        (events.len() >= 4).then_some(events)
    })
    .await;
    assert_eq!(events.len(), 4, "{events:#?}");
    let by_message = |message: &str| {
        events
            .iter()
            .find(|e| e["message"] == message)
            .unwrap_or_else(|| panic!("no event {message:?}: {events:#?}"))
    };
    for (message, level, number, text) in [
        ("cache warm", "debug", 5, "DEBUG"),
        ("order placed", "info", 9, "INFO"),
        ("slow answer", "warn", 13, "WARN"),
        ("payment declined", "error", 17, "ERROR"),
    ] {
        let event = by_message(message);
        assert_eq!(event["level"], level, "{event:#}");
        assert_eq!(event["severity_number"], number, "{event:#}");
        assert_eq!(event["severity_text"], text, "{event:#}");
        assert_eq!(event["source_type"], "opentelemetry");
        assert_eq!(event["resources"]["service.name"], "checkout", "{event:#}");
        assert_eq!(event["scope"]["name"], "app.payments", "{event:#}");
        assert!(event["timestamp"].is_string(), "{event:#}");
        assert!(event["observed_timestamp"].is_string(), "{event:#}");
    }
    assert_eq!(by_message("cache warm")["attributes"]["entries"], 3);
    let order = by_message("order placed");
    assert_eq!(order["attributes"]["order.id"], "A-17");
    assert_eq!(order["attributes"]["amount"], 12.5);
    assert_eq!(by_message("slow answer")["attributes"]["latency_ms"], 812);
    assert_eq!(by_message("payment declined")["attributes"]["retry"], true);

    let output = howl.terminate(Duration::from_secs(20));
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The few messages a test request needs, with OTLP's field numbers.
#[derive(Clone, PartialEq, prost::Message)]
struct Request {
    #[prost(message, repeated, tag = "1")]
    resource_logs: Vec<ResourceLogs>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ResourceLogs {
    #[prost(message, repeated, tag = "2")]
    scope_logs: Vec<ScopeLogs>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ScopeLogs {
    #[prost(message, repeated, tag = "2")]
    log_records: Vec<LogRecord>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct LogRecord {
    #[prost(int32, tag = "2")]
    severity_number: i32,
    #[prost(message, optional, tag = "5")]
    body: Option<StringValue>,
    #[prost(bytes = "vec", tag = "9")]
    trace_id: Vec<u8>,
}

/// An `AnyValue` holding a string.
#[derive(Clone, PartialEq, prost::Message)]
struct StringValue {
    #[prost(string, tag = "1")]
    string_value: String,
}

/// `google.rpc.Status`.
#[derive(Clone, PartialEq, prost::Message)]
struct Status {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

#[tokio::test]
async fn answers_per_the_otlp_spec_in_the_requests_encoding() {
    use prost::Message;

    let (dir, mut howl, url, _) = start().await;
    let client = crate::common::client();

    let json = r#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[
        {"severityNumber":21,"body":{"stringValue":"from json"},"traceId":"0AF7651916CD43DD8448EB211C80319C"}]}]}]}"#;
    let ok = client
        .post(&url)
        .header("content-type", "application/json")
        .body(json)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.headers()["content-type"], "application/json");
    assert_eq!(ok.text().await.unwrap(), "{}");

    let request = Request {
        resource_logs: vec![ResourceLogs {
            scope_logs: vec![ScopeLogs {
                log_records: vec![LogRecord {
                    severity_number: 14,
                    body: Some(StringValue {
                        string_value: "from protobuf".into(),
                    }),
                    trace_id: vec![0; 16],
                }],
            }],
        }],
    };
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&request.encode_to_vec()).unwrap();
    let ok = client
        .post(&url)
        .header("content-type", "application/x-protobuf")
        .header("content-encoding", "gzip")
        .body(gz.finish().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.headers()["content-type"], "application/x-protobuf");
    assert!(ok.bytes().await.unwrap().is_empty(), "an empty response");

    let bad = client
        .post(&url)
        .header("content-type", "application/x-protobuf")
        .body(vec![0x0a, 0xff, 0x01])
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    assert_eq!(bad.headers()["content-type"], "application/x-protobuf");
    let status = Status::decode(bad.bytes().await.unwrap()).unwrap();
    assert_eq!(status.code, 3, "INVALID_ARGUMENT");
    assert!(
        status.message.contains("invalid OTLP protobuf"),
        "{status:?}"
    );

    let bad_json = client
        .post(&url)
        .header("content-type", "application/json")
        .body(r#"{"resource_logs":[]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(bad_json.status(), 400);
    let status: serde_json::Value = bad_json.json().await.unwrap();
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .contains("lowerCamelCase"),
        "{status}"
    );

    let unknown = client
        .post(&url)
        .header("content-type", "text/plain")
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 415);
    assert_eq!(unknown.headers()["content-type"], "application/json");

    let traces = client
        .post(url.replace("/v1/logs", "/v1/traces"))
        .header("content-type", "application/x-protobuf")
        .send()
        .await
        .unwrap();
    assert_eq!(traces.status(), 404);

    let output = howl.terminate(Duration::from_secs(20));
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let events = written(dir.path());
    assert_eq!(events.len(), 2, "only the accepted requests: {events:#?}");
    assert_eq!(events[0]["message"], "from json");
    assert_eq!(events[0]["level"], "fatal");
    assert_eq!(events[0]["trace_id"], "0af7651916cd43dd8448eb211c80319c");
    assert_eq!(events[1]["message"], "from protobuf");
    assert_eq!(events[1]["level"], "warn");
    assert!(
        events[1].get("trace_id").is_none(),
        "an all-zero id is none"
    );
}

#[tokio::test]
async fn grpc_failures_carry_their_status_in_trailers_only_answers() {
    use prost::Message;

    let (_dir, mut howl, _, grpc) = start().await;
    let client = reqwest::Client::builder()
        .http2_prior_knowledge()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let call = |path: &str, body: Vec<u8>| {
        client
            .post(format!("http://{grpc}{path}"))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(body)
            .send()
    };
    let frame = |message: Vec<u8>| {
        let mut framed = vec![0];
        framed.extend_from_slice(&(message.len() as u32).to_be_bytes());
        framed.extend_from_slice(&message);
        framed
    };
    const EXPORT: &str = "/opentelemetry.proto.collector.logs.v1.LogsService/Export";

    let request = Request {
        resource_logs: vec![ResourceLogs {
            scope_logs: vec![ScopeLogs {
                log_records: vec![LogRecord {
                    severity_number: 9,
                    body: Some(StringValue {
                        string_value: "over grpc".into(),
                    }),
                    trace_id: Vec::new(),
                }],
            }],
        }],
    };
    let ok = call(EXPORT, frame(request.encode_to_vec())).await.unwrap();
    assert_eq!(ok.version(), reqwest::Version::HTTP_2);
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.headers()["content-type"], "application/grpc");
    assert_eq!(
        &ok.bytes().await.unwrap()[..],
        &[0, 0, 0, 0, 0],
        "one empty ExportLogsServiceResponse"
    );

    for (path, body, code, message) in [
        (
            EXPORT,
            frame(vec![0x0a, 0xff, 0x01]),
            "3",
            "invalid OTLP protobuf",
        ),
        (EXPORT, vec![0, 0], "3", "5-byte prefix"),
        (
            "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
            frame(Vec::new()),
            "12",
            "no such path",
        ),
    ] {
        let refused = call(path, body).await.unwrap();
        assert_eq!(refused.status(), 200, "{path}");
        assert_eq!(refused.headers()["grpc-status"], code, "{path}");
        let text = refused.headers()["grpc-message"].to_str().unwrap();
        assert!(text.contains(message), "{path}: {text}");
    }

    let output = howl.terminate(Duration::from_secs(20));
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test]
async fn a_full_pipeline_is_answered_503_with_retry_after_and_a_status() {
    let dir = tempfile::tempdir().unwrap();
    let (api, otlp) = (free_port(), free_port());
    let config = write(
        dir.path(),
        "otel.toml",
        &format!(
            "[api]\nenabled = true\naddress = \"127.0.0.1:{api}\"\n\
             [sources.otel]\ntype = \"opentelemetry\"\nhttp.address = \"127.0.0.1:{otlp}\"\n\
             http.ack_timeout_secs = 2\n\
             [sinks.slow]\ntype = \"blackhole\"\ninputs = [\"otel\"]\nrate = 1\nbuffer.max_events = 1\n"
        ),
    );
    let _howl = Running::start(dir.path(), &config, api, &[]).await;
    let url = format!("http://127.0.0.1:{otlp}/v1/logs");
    let records: Vec<String> = (0..10)
        .map(|i| format!(r#"{{"body":{{"stringValue":"line {i}"}}}}"#))
        .collect();
    let body = format!(
        r#"{{"resourceLogs":[{{"scopeLogs":[{{"logRecords":[{}]}}]}}]}}"#,
        records.join(",")
    );
    let client = crate::common::client();
    let mut requests = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let request = client
            .post(&url)
            .header("content-type", "application/json")
            .body(body.clone());
        requests.spawn(async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let retry_after = response.headers().get("retry-after").cloned();
            let json: serde_json::Value = response.json().await.unwrap();
            (status, retry_after, json)
        });
    }
    let answers = requests.join_all().await;
    let refused: Vec<_> = answers.iter().filter(|(s, ..)| *s == 503).collect();
    assert!(!refused.is_empty(), "{answers:?}");
    for (_, retry_after, status) in refused {
        assert_eq!(retry_after.as_ref().unwrap(), "1");
        assert_eq!(status["code"], 14, "UNAVAILABLE: {status}");
        assert!(
            status["message"].as_str().unwrap().contains("retry"),
            "{status}"
        );
    }
}
