//! The metric sources through the real binary: `host_metrics` on this
//! machine, `prometheus_scrape` against a loopback `/metrics` serving odd
//! but valid exposition text and against howl's own API, and
//! `prometheus_query` against a real Prometheus (Debian's `prometheus`)
//! and a loopback server answering errors. Every event is written by a
//! `file` sink as JSON and read back.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::common::prometheus::Prometheus;
use crate::common::{Running, free_port, metric, wait_for, write};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::{Value, json};

/// howl with the API on and `source` (a `[sources.in]` table body)
/// written to `events.json`.
async fn run(dir: &Path, source: &str) -> (Running, u16) {
    let api = free_port();
    let config = write(
        dir,
        "topology.toml",
        &format!(
            "[api]\nenabled = true\naddress = \"127.0.0.1:{api}\"\n\
             [sources.in]\n{source}\n\
             [sinks.out]\ntype = \"file\"\ninputs = [\"in\"]\npath = \"events.json\"\n"
        ),
    );
    (Running::start(dir, &config, api, &[]).await, api)
}

/// The events written so far (a line still being written is skipped).
fn events(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("events.json"))
        .unwrap_or_default()
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

/// Waits (bounded) until some written event satisfies `check`; returns
/// all events written by then.
async fn wait_for_event(dir: &Path, what: &str, check: impl Fn(&Value) -> bool) -> Vec<Value> {
    wait_for(what, Duration::from_secs(60), || {
        let events = events(dir);
        events.iter().any(&check).then_some(events)
    })
    .await
}

fn named<'a>(events: &'a [Value], name: &str) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|e| e["metric"]["name"] == name)
        .collect()
}

#[tokio::test]
async fn host_metrics_reports_this_machine_with_the_documented_shape() {
    let dir = tempfile::tempdir().unwrap();
    let (_howl, _) = run(
        dir.path(),
        "type = \"host_metrics\"\nscrape_interval_secs = 0.2",
    )
    .await;
    let events = wait_for_event(dir.path(), "a CPU sample (second cycle)", |e| {
        e["metric"]["name"] == "cpu_usage_percent"
    })
    .await;
    let cpu = named(&events, "cpu_usage_percent")[0];
    assert_eq!(cpu["metric"]["kind"], "gauge");
    assert_eq!(cpu["source_type"], "host_metrics");
    let value = cpu["metric"]["value"].as_f64().unwrap();
    assert!((0.0..=100.0).contains(&value), "{value}");
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_eq!(cpu["metric"]["tags"]["host"], host.trim());
    assert!(cpu["timestamp"].is_string());
    let counter = named(&events, "network_receive_bytes_total");
    assert!(
        counter
            .iter()
            .all(|e| e["metric"]["kind"] == "counter" && e["metric"]["tags"]["device"].is_string()),
        "{counter:?}"
    );
    assert!(!named(&events, "memory_used_percent").is_empty());
}

/// Valid exposition text a careless parser would trip on.
const ODD_EXPOSITION: &str = "# HELP app_requests_total Requests, with \\\\ and \\n in the help.
# TYPE app_requests_total counter
app_requests_total{path=\"/a,b\",quote=\"say \\\"hi\\\"\",} 1027 1395066363000
app_requests_total{path=\"/}{\"}\t3
# TYPE app_latency_seconds histogram
app_latency_seconds_bucket{le=\"0.1\"} 5
app_latency_seconds_bucket{le=\"+Inf\"} 9
app_latency_seconds_sum 1.5e0
app_latency_seconds_count 9
# TYPE app_quantiles summary
app_quantiles{quantile=\"0.5\"} NaN
app_quantiles_count 0
  app_temperature{instance=\"sensor-1\"} -Inf

";

#[tokio::test]
async fn scrape_reads_odd_exposition_and_reports_a_dead_endpoint_as_down() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target = listener.local_addr().unwrap();
    let app =
        axum::Router::new().route("/metrics", axum::routing::get(|| async { ODD_EXPOSITION }));
    tokio::spawn(async move { axum::serve(listener, app).await });
    let dead = free_port();
    let dir = tempfile::tempdir().unwrap();
    let (howl, _) = run(
        dir.path(),
        &format!(
            "type = \"prometheus_scrape\"\nendpoints = [\"http://{target}/metrics\", \"http://127.0.0.1:{dead}/metrics\"]\n\
             scrape_interval_secs = 0.5\njob = \"app\"\nretry.initial_backoff_secs = 0.05"
        ),
    )
    .await;
    let dead_instance = format!("127.0.0.1:{dead}");
    let events = wait_for_event(dir.path(), "the dead endpoint's up = 0", |e| {
        e["metric"]["name"] == "up" && e["metric"]["tags"]["instance"] == dead_instance.as_str()
    })
    .await;
    let ups = named(&events, "up");
    let live = ups
        .iter()
        .find(|e| e["metric"]["tags"]["instance"] == target.to_string())
        .expect("an up sample for the live endpoint");
    assert_eq!(live["metric"]["value"], 1.0);
    assert_eq!(live["metric"]["tags"]["job"], "app");
    let down = ups
        .iter()
        .find(|e| e["metric"]["tags"]["instance"] == dead_instance.as_str())
        .unwrap();
    assert_eq!(down["metric"]["value"], 0.0);

    let requests = named(&events, "app_requests_total");
    assert_eq!(
        requests[0]["metric"]["tags"],
        json!({"path": "/a,b", "quote": "say \"hi\"", "instance": target.to_string(), "job": "app"})
    );
    assert_eq!(requests[0]["metric"]["kind"], "counter");
    assert_eq!(
        requests[0]["timestamp"], "2014-03-17T14:26:03Z",
        "the exposed timestamp"
    );
    assert_eq!(requests[1]["metric"]["tags"]["path"], "/}{");
    let buckets = named(&events, "app_latency_seconds_bucket");
    assert_eq!(buckets[1]["metric"]["tags"]["le"], "+Inf");
    assert_eq!(buckets[1]["metric"]["kind"], "counter");
    assert!(
        named(&events, "app_quantiles").is_empty(),
        "NaN is no value"
    );
    let temperature = named(&events, "app_temperature")[0];
    assert_eq!(
        temperature["metric"]["tags"]["exported_instance"],
        "sensor-1"
    );
    assert_eq!(
        temperature["metric"]["tags"]["instance"],
        target.to_string()
    );
    assert!(
        temperature["metric"]["value"].is_null(),
        "JSON has no -Inf: {temperature}"
    );

    let metrics = howl.metrics().await;
    assert!(
        metric(
            &metrics,
            "component_errors_total",
            &["component_id=\"in\"", "stage=\"receiving\""]
        )
        .is_some_and(|n| n >= 1.0),
        "the failed scrape is an error in metrics:\n{metrics}"
    );
    assert!(
        howl.stderr()
            .contains(&format!("scrape of {dead_instance} failed"))
    );
}

#[tokio::test]
async fn scrape_reads_howls_own_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let api = free_port();
    let config = write(
        dir.path(),
        "topology.toml",
        &format!(
            "[api]\nenabled = true\naddress = \"127.0.0.1:{api}\"\n\
             [sources.self]\ntype = \"prometheus_scrape\"\nendpoints = [\"http://127.0.0.1:{api}/metrics\"]\n\
             scrape_interval_secs = 0.3\n\
             [sinks.out]\ntype = \"file\"\ninputs = [\"self\"]\npath = \"events.json\"\n"
        ),
    );
    let _howl = Running::start(dir.path(), &config, api, &[]).await;
    let events = wait_for_event(dir.path(), "howl's own sent-events counter", |e| {
        e["metric"]["name"] == "component_sent_events_total"
            && e["metric"]["tags"]["component_id"] == "self"
    })
    .await;
    let sent = named(&events, "component_sent_events_total")
        .into_iter()
        .find(|e| e["metric"]["tags"]["component_id"] == "self")
        .unwrap();
    assert_eq!(sent["metric"]["kind"], "counter");
    assert_eq!(sent["metric"]["tags"]["component_kind"], "source");
    assert_eq!(
        sent["metric"]["tags"]["job"], "self",
        "the default job is the source's id"
    );
    assert_eq!(named(&events, "up")[0]["metric"]["value"], 1.0);
}

#[tokio::test]
async fn query_reads_vectors_and_scalars_from_a_real_prometheus() {
    let dir = tempfile::tempdir().unwrap();
    let prometheus = Prometheus::start(dir.path()).await;
    let (_howl, _) = run(
        dir.path(),
        &format!(
            "type = \"prometheus_query\"\nendpoint = \"{}\"\ninterval_secs = 0.5\n\
             queries = [\n  {{ name = \"target_up\", query = 'up{{job=\"prometheus\"}}' }},\n  \
             {{ name = \"targets\", query = 'scalar(count(up))' }},\n]",
            prometheus.url
        ),
    )
    .await;
    // The first scrape lands about 5 s after Prometheus starts.
    let events = wait_for("a sample of each query", Duration::from_secs(60), || {
        let events = events(dir.path());
        let both = !named(&events, "target_up").is_empty() && !named(&events, "targets").is_empty();
        both.then_some(events)
    })
    .await;
    let up = named(&events, "target_up")[0];
    assert_eq!(up["metric"]["value"], 1.0);
    assert_eq!(
        up["metric"]["tags"],
        json!({"instance": prometheus.url.trim_start_matches("http://"), "job": "prometheus"})
    );
    assert_eq!(up["source_type"], "prometheus_query");
    let targets = named(&events, "targets")[0];
    assert_eq!(targets["metric"]["value"], 1.0);
    assert_eq!(targets["metric"]["tags"], json!({}));
}

/// A Prometheus API that answers errors: `bad_query` is refused (400
/// `bad_data`), `flaky` is unavailable (503) once and then answers, any
/// query naming `hidden_range` gives a matrix.
async fn erring_prometheus() -> String {
    let flaky_calls = Arc::new(AtomicUsize::new(0));
    let app = axum::Router::new()
        .route(
            "/api/v1/query",
            axum::routing::get(
                |State(calls): State<Arc<AtomicUsize>>,
                 Query(params): Query<std::collections::HashMap<String, String>>| async move {
                    let query = params.get("query").cloned().unwrap_or_default();
                    let error = |status: StatusCode, kind: &str, message: &str| {
                        (
                            status,
                            axum::Json(
                                json!({"status": "error", "errorType": kind, "error": message}),
                            ),
                        )
                            .into_response()
                    };
                    if query == "bad_query" {
                        error(
                            StatusCode::BAD_REQUEST,
                            "bad_data",
                            "1:1: parse error: unexpected identifier",
                        )
                    } else if query == "flaky" && calls.fetch_add(1, Ordering::SeqCst) == 0 {
                        error(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "try again")
                    } else if query.contains("hidden_range") {
                        axum::Json(json!({"status": "success", "data": {"resultType": "matrix",
                            "result": [{"metric": {}, "values": [[1, "1"]]}]}}))
                        .into_response()
                    } else {
                        axum::Json(json!({"status": "success", "data": {"resultType": "vector",
                            "result": [{"metric": {"a": "b"}, "value": [1763800000, "7"]}]}}))
                        .into_response()
                    }
                },
            ),
        )
        .with_state(flaky_calls);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

#[tokio::test]
async fn query_retries_an_unavailable_server_and_reports_refused_queries() {
    let url = erring_prometheus().await;
    let dir = tempfile::tempdir().unwrap();
    let (howl, _) = run(
        dir.path(),
        &format!(
            "type = \"prometheus_query\"\nendpoint = \"{url}\"\ninterval_secs = 1\n\
             retry.initial_backoff_secs = 0.05\nretry.max_backoff_secs = 0.1\n\
             queries = [\n  {{ name = \"bad\", query = \"bad_query\" }},\n  \
             {{ name = \"flaky\", query = \"flaky\" }},\n  \
             {{ name = \"matrix\", query = \"(hidden_range[5m])\" }},\n]"
        ),
    )
    .await;
    let events = wait_for_event(dir.path(), "the flaky query's sample", |e| {
        e["metric"]["name"] == "flaky"
    })
    .await;
    assert_eq!(named(&events, "flaky")[0]["metric"]["value"], 7.0);
    assert_eq!(
        named(&events, "flaky")[0]["metric"]["tags"],
        json!({"a": "b"})
    );
    assert!(named(&events, "bad").is_empty() && named(&events, "matrix").is_empty());
    let this = "component_id=\"in\"";
    howl.wait_for_metric("http_client_retries_total", &[this], 1.0)
        .await;
    howl.wait_for_metric(
        "component_errors_total",
        &[
            this,
            "error_type=\"request_rejected\"",
            "stage=\"receiving\"",
        ],
        1.0,
    )
    .await;
    howl.wait_for_metric(
        "component_errors_total",
        &[this, "error_type=\"query_failed\""],
        1.0,
    )
    .await;
    let stderr = howl.stderr();
    assert!(
        stderr.contains("unexpected identifier"),
        "Prometheus' reason is logged:\n{stderr}"
    );
    assert!(
        stderr.contains("query `matrix`") && stderr.contains("range vector"),
        "{stderr}"
    );
}

#[test]
fn a_top_level_range_is_refused_when_the_config_is_validated() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "q.toml",
        "[sources.q]\ntype = \"prometheus_query\"\nendpoint = \"http://127.0.0.1:9090\"\n\
         queries = [{ name = \"u\", query = \"up[5m]\" }]\n\
         [sinks.out]\ntype = \"blackhole\"\ninputs = [\"q\"]\n",
    );
    let (code, _, stderr) = crate::common::validate(dir.path(), &[&file]);
    assert_eq!(code, 78, "{stderr}");
    assert!(
        stderr.contains("query `u` selects a range at its top level"),
        "{stderr}"
    );
}
