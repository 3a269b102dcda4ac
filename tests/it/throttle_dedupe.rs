//! `throttle` and `dedupe` through the real binary: what passes, what is
//! routed to `ID.dropped`, the summaries a throttle emits when its input
//! ends, how unrouted drops are counted, and what survives a restart (a
//! graceful one, and a `kill -9`).

use std::path::Path;
use std::time::Duration;

use crate::common::{
    Running, free_port, metric, post_events, run_topology, run_with_input, stdin_json, write,
};

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

// What survives a restart. A `stdin` topology run twice in one directory
// (its `data_dir` is `./data`) is a graceful restart: the input ends, the
// transforms save, howl exits 0.

/// Runs `config` in `dir` on `input` to its end (asserting exit 0).
fn run_in(dir: &Path, config: &str, input: &str) {
    write(dir, "topology.toml", config);
    let output = run_with_input(
        &["run", "-c", "topology.toml"],
        dir,
        input.as_bytes(),
        Duration::from_secs(60),
    );
    assert!(
        output.status.success(),
        "howl run failed ({:?}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Reads and removes a file a sink appends to, so each run reads its own.
fn take(dir: &Path, file: &str) -> String {
    let path = dir.join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    let _ = std::fs::remove_file(path);
    text
}

/// A throttle `limit` on `parse` with `options`, writing what passes,
/// what it drops and its summaries to files.
fn throttle_topology(options: &str) -> String {
    stdin_json(&format!(
        r#"
[transforms.limit]
type = "throttle"
inputs = ["parse"]
{options}

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
"#
    ))
}

fn line(message: &str, key: &str) -> String {
    format!("{{\"message\":\"{message}\",\"pattern\":{{\"id\":\"{key}\"}}}}\n")
}

#[test]
fn a_throttle_window_holds_back_across_a_graceful_restart() {
    let dir = tempfile::tempdir().unwrap();
    let config = throttle_topology("key_field = \"pattern.id\"\nthreshold = 1\nwindow_secs = 3600");
    run_in(dir.path(), &config, &(line("a1", "A") + &line("a2", "A")));
    assert_eq!(take(dir.path(), "passed.log"), "a1\n");
    assert_eq!(take(dir.path(), "dropped.log"), "a2\n");
    let first = json_lines(&take(dir.path(), "summaries.log"));
    assert_eq!(first.len(), 1, "the input ended: a summary");

    run_in(dir.path(), &config, &(line("a3", "A") + &line("b1", "B")));
    assert_eq!(
        take(dir.path(), "passed.log"),
        "b1\n",
        "A's window still holds back"
    );
    assert_eq!(take(dir.path(), "dropped.log"), "a3\n");
    let second = json_lines(&take(dir.path(), "summaries.log"));
    assert_eq!(second.len(), 1, "{second:?}");
    assert_eq!(
        second[0]["throttle"]["suppressed"], 1,
        "a2 was summarised before the restart, and only then: {second:?}"
    );
    let time = |summary: &serde_json::Value, field: &str| {
        let text = summary["throttle"][field].as_str().expect("a timestamp");
        chrono::DateTime::parse_from_rfc3339(text).expect("RFC 3339")
    };
    let gap = time(&second[0], "window_start") - time(&first[0], "window_end");
    assert!(
        gap.abs() < chrono::Duration::milliseconds(100),
        "the second summary starts where the first ended (but for clock reading jitter): {gap}"
    );
}

#[tokio::test]
async fn a_throttle_window_holds_back_after_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let (api, http) = (free_port(), free_port());
    let config = write(
        dir.path(),
        "topology.toml",
        &format!(
            r#"
[api]
enabled = true
address = "127.0.0.1:{api}"

[sources.in]
type = "http_server"
address = "127.0.0.1:{http}"
decoding = "json"

[transforms.limit]
type = "throttle"
inputs = ["in"]
key_field = "pattern.id"
threshold = 1
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
"#
        ),
    );
    let url = format!("http://127.0.0.1:{http}/");
    let event = |message: &str, key: &str| serde_json::json!([{"message": message, "pattern": {"id": key}}]);

    let mut howl = Running::start(dir.path(), &config, api, &[]).await;
    post_events(&url, &event("a1", "A")).await;
    post_events(&url, &event("a2", "A")).await;
    // Beyond the save interval (one second), with room for a slow machine.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let child = howl.child.take().expect("running");
    crate::common::signal(&child, "KILL");
    howl.finish(child, Duration::from_secs(10));
    assert_eq!(take(dir.path(), "passed.log"), "a1\n");
    assert_eq!(take(dir.path(), "dropped.log"), "a2\n");
    assert_eq!(take(dir.path(), "summaries.log"), "", "killed: no summary");

    let mut howl = Running::start(dir.path(), &config, api, &[]).await;
    post_events(&url, &event("a3", "A")).await;
    post_events(&url, &event("b1", "B")).await;
    let output = howl.terminate(Duration::from_secs(20));
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        take(dir.path(), "passed.log"),
        "b1\n",
        "A's window survived the kill"
    );
    assert_eq!(take(dir.path(), "dropped.log"), "a3\n");
    let summaries = json_lines(&take(dir.path(), "summaries.log"));
    assert_eq!(summaries.len(), 1, "{summaries:?}");
    assert_eq!(
        summaries[0]["throttle"]["suppressed"], 2,
        "a2, dropped before the kill, is in the summary: {summaries:?}"
    );
}

#[test]
fn throttle_episodes_stay_whole_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let config = throttle_topology("key = \"{{ .alert.key }}\"\nthreshold = 1\nwindow_secs = 3600");
    let alert = |message: &str, key: &str, state: &str| {
        format!(
            "{{\"message\":\"{message}\",\"alert\":{{\"key\":\"{key}\",\"state\":\"{state}\"}}}}\n"
        )
    };
    let first = [
        alert("fire-1", "cpu", "firing"),
        alert("resolve-1", "cpu", "resolved"),
        alert("fire-2", "cpu", "firing"),
        alert("fire-disk", "disk", "firing"),
    ];
    run_in(dir.path(), &config, &first.concat());
    assert_eq!(
        take(dir.path(), "passed.log"),
        "fire-1\nresolve-1\nfire-disk\n"
    );
    assert_eq!(take(dir.path(), "dropped.log"), "fire-2\n");

    let second = [
        alert("resolve-2", "cpu", "resolved"),
        alert("resolve-disk", "disk", "resolved"),
    ];
    run_in(dir.path(), &config, &second.concat());
    assert_eq!(
        take(dir.path(), "passed.log"),
        "resolve-disk\n",
        "the resolution of a firing that passed before the restart passes"
    );
    assert_eq!(
        take(dir.path(), "dropped.log"),
        "resolve-2\n",
        "the resolution of a firing held back before the restart is held back too"
    );
}

#[test]
fn windows_that_ran_out_while_howl_was_down_are_over() {
    let dir = tempfile::tempdir().unwrap();
    let config = stdin_json(
        r#"
[transforms.limit]
type = "throttle"
inputs = ["parse"]
threshold = 1
window_secs = 1

[transforms.once]
type = "dedupe"
inputs = ["parse"]
window_secs = 1

[sinks.limited]
type = "file"
inputs = ["limit"]
path = "limited.log"
encoding = "text"

[sinks.deduped]
type = "file"
inputs = ["once"]
path = "deduped.log"
encoding = "text"

[sinks.summaries]
type = "file"
inputs = ["limit.summaries"]
path = "summaries.log"
"#,
    );
    let input = line("x", "") + &line("x", "");
    run_in(dir.path(), &config, &input);
    assert_eq!(take(dir.path(), "limited.log"), "x\n");
    assert_eq!(take(dir.path(), "deduped.log"), "x\n");
    assert_eq!(json_lines(&take(dir.path(), "summaries.log")).len(), 1);

    std::thread::sleep(Duration::from_millis(1500));
    run_in(dir.path(), &config, &line("x", ""));
    assert_eq!(
        take(dir.path(), "limited.log"),
        "x\n",
        "the throttle window is over"
    );
    assert_eq!(
        take(dir.path(), "deduped.log"),
        "x\n",
        "the dedupe key is forgotten"
    );
    assert_eq!(
        take(dir.path(), "summaries.log"),
        "",
        "the window was summarised before the restart, and not again"
    );
}

#[test]
fn dedupe_remembers_across_a_restart_each_transform_its_own_keys() {
    let dir = tempfile::tempdir().unwrap();
    let once = r#"
[transforms.once]
type = "dedupe"
inputs = ["parse"]

[sinks.out]
type = "file"
inputs = ["once"]
path = "once.log"
encoding = "text"
"#;
    run_in(dir.path(), &stdin_json(once), &line("disk full", ""));
    assert_eq!(take(dir.path(), "once.log"), "disk full\n");

    let with_another = format!(
        r#"{once}
[transforms.other]
type = "dedupe"
inputs = ["parse"]

[sinks.other_out]
type = "file"
inputs = ["other"]
path = "other.log"
encoding = "text"
"#
    );
    run_in(
        dir.path(),
        &stdin_json(&with_another),
        &(line("disk full", "") + &line("db down", "")),
    );
    assert_eq!(
        take(dir.path(), "once.log"),
        "db down\n",
        "`once` remembers `disk full`"
    );
    assert_eq!(
        take(dir.path(), "other.log"),
        "disk full\ndb down\n",
        "`other` never saw it: state is per transform"
    );
}
