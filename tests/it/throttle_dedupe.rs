//! `throttle` and `dedupe` through the real binary: what passes, what is
//! routed to `ID.dropped`, the summaries a throttle emits when its input
//! ends, and how unrouted drops are counted.

use std::time::Duration;

use crate::common::{Running, metric, run_topology, stdin_json};

fn read(dir: &tempfile::TempDir, file: &str) -> String {
    std::fs::read_to_string(dir.path().join(file)).unwrap_or_default()
}

fn json_lines(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

#[test]
fn throttle_routes_excess_events_and_summarises_open_windows_at_the_end() {
    let (dir, _) = run_topology(
        &stdin_json(
            r#"
[transforms.limit]
type = "throttle"
inputs = ["parse"]
key_field = "pattern.id"
threshold = 2
window_secs = 3600

[sinks.passed]
type = "file"
inputs = ["limit"]
path = "passed.log"
encoding = "text"

[sinks.dropped]
type = "file"
inputs = ["limit.dropped"]
path = "dropped.log"
encoding = "text"

[sinks.summaries]
type = "file"
inputs = ["limit.summaries"]
path = "summaries.log"
"#,
        ),
        b"{\"message\":\"a1\",\"pattern\":{\"id\":\"A\"}}\n\
          {\"message\":\"a2\",\"pattern\":{\"id\":\"A\"}}\n\
          {\"message\":\"a3\",\"pattern\":{\"id\":\"A\"}}\n\
          {\"message\":\"b1\",\"pattern\":{\"id\":\"B\"}}\n\
          {\"message\":\"a4\",\"pattern\":{\"id\":\"A\"}}\n",
    );
    assert_eq!(read(&dir, "passed.log"), "a1\na2\nb1\n");
    assert_eq!(read(&dir, "dropped.log"), "a3\na4\n");
    let summaries = json_lines(&read(&dir, "summaries.log"));
    assert_eq!(summaries.len(), 1, "B dropped nothing: {summaries:?}");
    let throttle = &summaries[0]["throttle"];
    assert_eq!(throttle["key"], "A");
    assert_eq!(throttle["suppressed"], 2);
    assert_eq!(throttle["threshold"], 2);
    assert!(
        summaries[0]["message"]
            .as_str()
            .unwrap()
            .starts_with("suppressed 2 event(s) of key \"A\""),
        "{summaries:?}"
    );
}

#[test]
fn dedupe_passes_first_sightings_and_routes_repeats() {
    let (dir, _) = run_topology(
        &stdin_json(
            r#"
[transforms.once]
type = "dedupe"
inputs = ["parse"]
fields = ["service", "message"]

[sinks.out]
type = "file"
inputs = ["once"]
path = "out.log"

[sinks.repeats]
type = "file"
inputs = ["once.dropped"]
path = "repeats.log"
"#,
        ),
        b"{\"service\":\"api\",\"message\":\"timeout\",\"n\":1}\n\
          {\"service\":\"db\",\"message\":\"timeout\",\"n\":2}\n\
          {\"service\":\"api\",\"message\":\"timeout\",\"n\":3}\n\
          {\"service\":\"api\",\"message\":\"ok\",\"n\":4}\n",
    );
    let numbers = |file: &str| -> Vec<i64> {
        json_lines(&read(&dir, file))
            .iter()
            .map(|e| e["n"].as_i64().unwrap())
            .collect()
    };
    assert_eq!(numbers("out.log"), [1, 2, 4]);
    assert_eq!(numbers("repeats.log"), [3], "routed unchanged");
}

#[tokio::test]
async fn unrouted_drops_count_as_intentional_discards() {
    let (_dir, mut howl, url) = Running::with_http_source(
        "[transforms.limit]\ntype = \"throttle\"\ninputs = [\"in\"]\nthreshold = 3\nwindow_secs = 3600\n\
         [transforms.once]\ntype = \"dedupe\"\ninputs = [\"in\"]\n\
         [sinks.out]\ntype = \"blackhole\"\ninputs = [\"limit\", \"once\"]\n",
    )
    .await;
    let response = crate::common::client()
        .post(&url)
        .body("same\nsame\nsame\nsame\nsame\nother\nother\n")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    // Poll (bounded) until both transforms have handled the 7 events.
    let mut text = String::new();
    for _ in 0..200 {
        text = howl.metrics().await;
        let received = |id: &str| {
            metric(
                &text,
                "component_received_events_total",
                &[&format!("component_id=\"{id}\"")],
            )
        };
        if received("limit") == Some(7.0) && received("once") == Some(7.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let count = |name: &str, labels: &[&str]| metric(&text, name, labels).unwrap_or(-1.0);
    let discarded = "component_discarded_events_total";
    let sent = "component_sent_events_total";
    let intentional = "intentional=\"true\"";
    assert_eq!(
        count(discarded, &["component_id=\"limit\"", intentional]),
        4.0,
        "{text}"
    );
    assert_eq!(
        count(sent, &["component_id=\"limit\"", "output=\"_default\""]),
        3.0
    );
    assert_eq!(
        count(discarded, &["component_id=\"once\"", intentional]),
        5.0,
        "{text}"
    );
    assert_eq!(
        count(sent, &["component_id=\"once\"", "output=\"_default\""]),
        2.0
    );
    assert!(
        metric(
            &text,
            sent,
            &["component_id=\"limit\"", "output=\"dropped\""]
        )
        .is_none(),
        "nothing is counted as sent on an output nobody consumes"
    );
    let output = howl.terminate(Duration::from_secs(20));
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
