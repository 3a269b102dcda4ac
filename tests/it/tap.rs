//! `howl tap` and `GET /api/v1/tap` against a running howl: the events
//! leaving a component, filtered, sampled and limited; a slow tapper never
//! slows the pipeline, and learns what it missed.

use std::process::Stdio;
use std::time::Duration;

use serde_json::json;

use crate::common::{Running, client, howl, post_events, wait_with_limit};

const REST: &str = r#"decoding = "json"

[transforms.parse]
type = "remap"
inputs = ["in"]
source = '.parsed = true'

[sinks.out]
type = "blackhole"
inputs = ["parse"]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn howl_tap_prints_the_filtered_events_leaving_a_component_and_stops_at_the_limit() {
    let (_dir, howl_run, url) = Running::with_http_source(REST).await;
    let mut tap = howl()
        .args([
            "tap",
            "parse",
            "--limit",
            "3",
            "--filter",
            ".level == \"error\"",
            "--api",
            &howl_run.api,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn howl tap");
    // The tap connects when it connects: send until it has its three.
    let mut sent = 0;
    while sent < 200 {
        post_events(
            &url,
            &json!([
                {"message": format!("e{sent}"), "level": "error"},
                {"message": format!("i{sent}"), "level": "info"},
            ]),
        )
        .await;
        sent += 1;
        if tap.try_wait().ok().flatten().is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let output = wait_with_limit(tap, Duration::from_secs(20));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let events: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(events.len(), 3, "{stdout}");
    for event in &events {
        assert_eq!(event["level"], "error", "{event}");
        assert_eq!(event["parsed"], true, "the events leaving `parse`: {event}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tapping_an_unknown_output_names_the_ones_that_run() {
    let (_dir, howl_run, _url) = Running::with_http_source(REST).await;
    let output = howl()
        .args(["tap", "pars", "--api", &howl_run.api])
        .output()
        .expect("run howl tap");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("no output `pars` runs"), "{stderr}");
    assert!(stderr.contains("in, parse"), "{stderr}");

    let bad = client()
        .get(format!(
            "{}/api/v1/tap?output=parse&filter=.a%20%2B%2B",
            howl_run.api
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    assert!(bad.text().await.unwrap().contains("filter"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tapper_that_does_not_read_never_slows_the_pipeline_and_learns_what_it_missed() {
    let (_dir, howl_run, url) = Running::with_http_source(REST).await;
    let mut tap = client()
        .get(format!("{}/api/v1/tap?output=parse", howl_run.api))
        .send()
        .await
        .expect("GET /api/v1/tap");
    assert_eq!(tap.status(), 200);
    assert_eq!(
        tap.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    // The tap is in place once its first comment arrives.
    let first = tap.chunk().await.unwrap().unwrap();
    assert!(first.starts_with(b": tapping"), "{first:?}");

    // 300 events of 40 KiB each (12 MB, more than the tap's queue and the
    // sockets hold) while the tapper reads nothing: every POST is still
    // answered once delivered.
    let big = "x".repeat(40 * 1024);
    let started = std::time::Instant::now();
    for i in 0..300 {
        post_events(&url, &json!({"message": format!("{i} {big}")})).await;
    }
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_secs(60),
        "the pipeline was held up by the tap: {elapsed:?}"
    );
    howl_run
        .wait_for_metric(
            "component_received_events_total",
            &["component_id=\"out\""],
            300.0,
        )
        .await;

    // Now read: events, then the count of what was dropped.
    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !text.contains("event: dropped") {
        let chunk = tokio::time::timeout_at(deadline, tap.chunk())
            .await
            .expect("the tap says what it dropped within 30 s")
            .unwrap()
            .expect("the stream goes on");
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(text.contains("data: {"), "events came first");
    let dropped: u64 = text
        .split("event: dropped\ndata: {\"dropped\":")
        .nth(1)
        .and_then(|rest| rest.split('}').next())
        .and_then(|n| n.parse().ok())
        .expect("a dropped count");
    assert!(dropped > 0 && dropped < 300, "{dropped}");
}
