//! The `pattern` transform through the real binary: fields, the `new` and
//! `changes` outputs, persistence across restarts and crashes.

use std::time::Duration;

use crate::common::{Running, client, free_port, run_with_input, write};

fn events(stdout: &str) -> Vec<serde_json::Value> {
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON event"))
        .collect()
}

const TOPOLOGY: &str = r#"
data_dir = "state"

[sources.in]
type = "stdin"

[transforms.patterns]
type = "pattern"
inputs = ["in"]

[sinks.all]
type = "console"
inputs = ["patterns"]

[sinks.new]
type = "file"
inputs = ["patterns.new"]
path = "new.log"
encoding = "text"
"#;

fn run(dir: &std::path::Path, input: &str) -> Vec<serde_json::Value> {
    let output = run_with_input(
        &["run", "-c", "a.toml"],
        dir,
        input.as_bytes(),
        Duration::from_secs(60),
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    events(&String::from_utf8(output.stdout).unwrap())
}

const LINES: &str = "\
2026-11-22T10:00:00Z ERROR [db] connection to 10.0.0.5:5432 refused after 3 attempts
2026-11-22T10:00:01Z INFO [http] GET /api/orders/17 200 12ms
2026-11-22T10:00:02Z ERROR [db] connection to 10.0.0.9:5432 refused after 5 attempts
2026-11-22T10:00:03Z INFO [http] GET /api/orders/99 200 7ms
";

#[test]
fn annotates_events_and_sends_new_patterns_to_the_new_output() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a.toml", TOPOLOGY);
    let events = run(dir.path(), LINES);
    assert_eq!(events.len(), 4);
    let pattern = |i: usize| &events[i]["pattern"];
    assert_eq!(pattern(0)["new"], true);
    assert_eq!(pattern(1)["new"], true);
    assert_eq!(pattern(2)["new"], false, "same kind of line as the first");
    assert_eq!(pattern(2)["id"], pattern(0)["id"]);
    assert_eq!(pattern(3)["id"], pattern(1)["id"]);
    assert_ne!(pattern(0)["id"], pattern(1)["id"]);
    assert_eq!(pattern(2)["count"], 2);
    assert_eq!(pattern(0)["level"], "error");
    assert_eq!(pattern(1)["level"], "info");
    let id = pattern(0)["id"].as_str().unwrap();
    assert!(
        id.len() == 16 && id.chars().all(|c| c.is_ascii_hexdigit()),
        "{id}"
    );
    assert!(pattern(0)["first_seen"].is_string());
    assert!(
        pattern(2)["template"]
            .as_str()
            .unwrap()
            .contains("<NUM> attempts"),
        "{}",
        pattern(2)["template"]
    );
    let new = std::fs::read_to_string(dir.path().join("new.log")).unwrap();
    assert_eq!(new.lines().count(), 2, "only the two creating lines: {new}");
}

#[test]
fn a_restart_keeps_ids_and_announces_nothing_known() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a.toml", TOPOLOGY);
    let first = run(dir.path(), LINES);
    std::fs::remove_file(dir.path().join("new.log")).unwrap();
    let second = run(dir.path(), LINES);
    assert!(
        second.iter().all(|e| e["pattern"]["new"] == false),
        "replay after restart: {second:#?}"
    );
    for (a, b) in first.iter().zip(&second) {
        assert_eq!(
            a["pattern"]["id"], b["pattern"]["id"],
            "ids survive the restart"
        );
    }
    assert_eq!(second[0]["pattern"]["count"], 3, "counts continue");
    assert!(
        !dir.path().join("new.log").exists(),
        "nothing was new the second time"
    );
}

#[test]
fn ids_stay_when_templates_generalise() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a.toml", TOPOLOGY);
    let lines: String = ["alice", "bob", "carol", "dave", "erin"]
        .iter()
        .map(|user| format!("user {user} logged in from the web console\n"))
        .collect();
    let events = run(dir.path(), &lines);
    let new: Vec<bool> = events.iter().map(|e| e["pattern"]["new"] == true).collect();
    assert_eq!(new, vec![true, true, false, false, false], "{events:#?}");
    let generalised = &events[2]["pattern"]["id"];
    assert_eq!(&events[3]["pattern"]["id"], generalised);
    assert_eq!(
        &events[4]["pattern"]["id"], generalised,
        "the id survives the template generalising"
    );
    // Every event from the one that generalised the pattern on carries the
    // new template (the `.pattern` object is cached per pattern, and must
    // follow the template as it refines).
    for event in &events[2..] {
        assert_eq!(
            event["pattern"]["template"], "user <*> logged in from the web console",
            "{events:#?}"
        );
    }
    // Bob's line created the pattern that Carol's generalised: the same id
    // showed the older template first, and counts run on.
    assert_eq!(&events[1]["pattern"]["id"], generalised);
    assert_eq!(
        events[1]["pattern"]["template"],
        "user bob logged in from the web console"
    );
    assert_eq!(events[4]["pattern"]["count"], 4, "{events:#?}");
}

#[test]
fn user_masks_level_field_and_scopes() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "a.toml",
        r#"
[sources.in]
type = "stdin"

[transforms.parse]
type = "remap"
inputs = ["in"]
source = '. = parse_json!(string!(.message))'

[transforms.patterns]
type = "pattern"
inputs = ["parse"]
field = "msg"
level_field = "severity"
scope = "{{ .service }}"
masks = [{ name = "order", pattern = "ORD-\\d+" }]

[sinks.out]
type = "console"
inputs = ["patterns"]
"#,
    );
    let input = concat!(
        r#"{"service":"shop","severity":"warning","msg":"payment pending for ORD-123 since noon"}"#,
        "\n",
        r#"{"service":"shop","severity":"warning","msg":"payment pending for ORD-987 since noon"}"#,
        "\n",
        r#"{"service":"billing","severity":"err","msg":"payment pending for ORD-555 since noon"}"#,
        "\n",
        r#"{"service":"billing","text":"no msg field here"}"#,
        "\n",
    );
    let events = run(dir.path(), input);
    let p = |i: usize| &events[i]["pattern"];
    assert_eq!(p(0)["template"], "payment pending for <ORDER> since noon");
    assert_eq!(p(0)["level"], "warn", "from the level field, normalised");
    assert_eq!(p(1)["new"], false);
    assert_eq!(p(2)["new"], true, "another scope is another pattern space");
    assert_ne!(
        p(2)["id"],
        p(0)["id"],
        "one line in two scopes is two patterns with two ids: a suppression of one must not \
         silence the other"
    );
    assert_eq!(p(2)["scope"], "billing");
    assert_eq!(p(2)["level"], "error");
    assert!(
        events[3].get("pattern").is_none(),
        "an event without the field passes untouched"
    );
    assert_eq!(events.len(), 4);
}

#[tokio::test]
async fn change_reports_announce_new_and_gone_patterns() {
    let dir = tempfile::tempdir().unwrap();
    let (api, http) = (free_port(), free_port());
    let config = write(
        dir.path(),
        "a.toml",
        &format!(
            "data_dir = \"state\"\n[api]\nenabled = true\naddress = \"127.0.0.1:{api}\"\n\
             [sources.in]\ntype = \"http_server\"\naddress = \"127.0.0.1:{http}\"\n\
             [transforms.patterns]\ntype = \"pattern\"\ninputs = [\"in\"]\nreport_interval_secs = 1\n\
             [sinks.all]\ntype = \"blackhole\"\ninputs = [\"patterns\"]\n\
             [sinks.changes]\ntype = \"file\"\ninputs = [\"patterns.changes\"]\npath = \"changes.log\"\n"
        ),
    );
    let _howl = Running::start(dir.path(), &config, api, &[]).await;
    let body = "disk /var is 97 percent full\ndisk /home is 91 percent full\nbackup of db-1 finished in 42 s\n";
    let response = client()
        .post(format!("http://127.0.0.1:{http}/"))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    // Two new patterns in the window they arrive in, and both gone in a
    // later window with no lines.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let changes = loop {
        let text = std::fs::read_to_string(dir.path().join("changes.log")).unwrap_or_default();
        let changes: Vec<serde_json::Value> = text
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        let count = |kind: &str| {
            changes
                .iter()
                .filter(|c| c["change"]["kind"] == kind)
                .count()
        };
        if count("new") == 2 && count("gone") == 2 {
            break changes;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "expected 2 new and 2 gone: {changes:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let new = changes
        .iter()
        .find(|c| c["change"]["kind"] == "new")
        .unwrap();
    assert!(
        new["message"]
            .as_str()
            .unwrap()
            .starts_with("new log pattern: ")
    );
    assert_eq!(new["pattern"]["id"], new["change"]["pattern_id"]);
    assert!(new["change"]["window_secs"].as_i64().unwrap() >= 0);
    let disk = changes
        .iter()
        .find(|c| {
            c["change"]["kind"] == "gone"
                && c["change"]["template"]
                    .as_str()
                    .unwrap()
                    .starts_with("disk")
        })
        .expect("the disk pattern is gone");
    assert_eq!(disk["change"]["baseline_count"], 2);
}

#[tokio::test]
async fn kill_9_at_any_moment_leaves_a_loadable_store() {
    let dir = tempfile::tempdir().unwrap();
    let api = free_port();
    let config = write(
        dir.path(),
        "a.toml",
        &format!(
            "data_dir = \"state\"\n[api]\nenabled = true\naddress = \"127.0.0.1:{api}\"\n\
             [sources.gen]\ntype = \"demo_logs\"\ninterval = 0.0005\n\
             [transforms.patterns]\ntype = \"pattern\"\ninputs = [\"gen\"]\n\
             [sinks.out]\ntype = \"blackhole\"\ninputs = [\"patterns\"]\n"
        ),
    );
    for round in 0..6u64 {
        let mut howl = Running::start(dir.path(), &config, api, &[]).await;
        // Vary the moment of the kill: during start-up saves, mid-stream, ...
        tokio::time::sleep(Duration::from_millis(150 + round * 230)).await;
        let child = howl.child.take().unwrap();
        crate::common::signal(&child, "KILL");
        let output = howl.finish(child, Duration::from_secs(10));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            !stderr.contains("cannot be restored"),
            "round {round}: {stderr}"
        );
        assert!(
            !stderr.contains("component failed"),
            "round {round}: {stderr}"
        );
    }
    let (code, listed, stderr) = crate::common::howl_in(
        dir.path(),
        &["patterns", "list", "--data-dir", "state"],
        &[],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(
        listed.lines().count() > 5,
        "patterns survived the crashes:\n{listed}"
    );
}

#[test]
fn evicts_the_least_recently_seen_pattern_beyond_max_patterns() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "a.toml",
        &TOPOLOGY.replace("type = \"pattern\"", "type = \"pattern\"\nmax_patterns = 2"),
    );
    let events = run(
        dir.path(),
        "alpha service started\nbeta queue drained\nalpha service started\ngamma cache warmed\nbeta queue drained\n",
    );
    let new: Vec<bool> = events.iter().map(|e| e["pattern"]["new"] == true).collect();
    // gamma evicts beta (least recently seen), so beta is new again.
    assert_eq!(new, vec![true, true, false, true, true]);
    let (code, listed, _) = crate::common::howl_in(
        dir.path(),
        &[
            "patterns",
            "list",
            "--data-dir",
            "state",
            "--format",
            "json",
        ],
        &[],
    );
    assert_eq!(code, 0);
    let listed: Vec<serde_json::Value> = serde_json::from_str(&listed).unwrap();
    assert_eq!(listed.len(), 2, "{listed:#?}");
}

#[test]
fn a_null_field_passes_untouched() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "a.toml",
        r#"
[sources.in]
type = "stdin"

[transforms.nulls]
type = "remap"
inputs = ["in"]
source = '.message = null'

[transforms.patterns]
type = "pattern"
inputs = ["nulls"]

[sinks.out]
type = "blackhole"
inputs = ["patterns"]

[[tests]]
name = "null is not mined"
[[tests.inputs]]
insert_at = "nulls"
value = "anything"
[[tests.outputs]]
extract_from = "patterns"
count = 1
[[tests.outputs.conditions]]
source = 'assert!(!exists(.pattern), "a null was mined")'
"#,
    );
    let (code, stdout, stderr) = crate::common::howl_in(dir.path(), &["test", "-c", "a.toml"], &[]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(stdout.contains("1 passed, 0 failed"), "{stdout}");
}

/// `i` in letters (digits would be masked, so every line is its own pattern).
fn letters(mut i: usize) -> String {
    let mut out = Vec::new();
    loop {
        out.push(b'a' + (i % 26) as u8);
        i /= 26;
        if i == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).unwrap()
}

#[test]
fn a_storm_of_new_patterns_is_one_event_on_the_storm_output() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "a.toml",
        r#"
data_dir = "state"

[sources.in]
type = "stdin"

[transforms.patterns]
type = "pattern"
inputs = ["in"]

[sinks.all]
type = "console"
inputs = ["patterns"]

[sinks.new]
type = "file"
inputs = ["patterns.new"]
path = "new.log"

[sinks.storm]
type = "file"
inputs = ["patterns.storm"]
path = "storm.log"
"#,
    );
    let mut input: String = (0..50)
        .map(|i| {
            let x = letters(i);
            format!("INFO {x}alpha {x}beta {x}gamma {x}delta\n")
        })
        .collect();
    input.push_str("ERROR database zyxw is corrupt\n");
    let all = run(dir.path(), &input);
    assert_eq!(all.len(), 51);
    assert!(all.iter().all(|e| e["pattern"]["new"] == true));
    let read = |name: &str| events(&std::fs::read_to_string(dir.path().join(name)).unwrap());
    let new = read("new.log");
    assert_eq!(new.len(), 11, "the first 10 and the error: {new:#?}");
    assert_eq!(new[10]["pattern"]["level"], "error");
    // The window had not ended: the input's end flushed the storm.
    let storm = read("storm.log");
    assert_eq!(storm.len(), 1, "{storm:#?}");
    let storm = &storm[0];
    assert_eq!(storm["storm"]["count"], 40);
    assert_eq!(storm["storm"]["pattern_ids"].as_array().unwrap().len(), 40);
    assert_eq!(storm["storm"]["top"].as_array().unwrap().len(), 5);
    assert_eq!(storm["alert"]["name"], "HowlPatternStorm");
    assert_eq!(storm["alert"]["key"], "patterns.storm");
    assert!(
        storm["message"]
            .as_str()
            .unwrap()
            .starts_with("storm: 40 new patterns in "),
        "{storm}"
    );
}

#[tokio::test]
async fn a_storm_window_closes_on_its_timer_and_is_counted() {
    let dir = tempfile::tempdir().unwrap();
    let (api, http) = (free_port(), free_port());
    let config = write(
        dir.path(),
        "a.toml",
        &format!(
            "data_dir = \"state\"\n[api]\nenabled = true\naddress = \"127.0.0.1:{api}\"\n\
             [sources.in]\ntype = \"http_server\"\naddress = \"127.0.0.1:{http}\"\n\
             [transforms.patterns]\ntype = \"pattern\"\ninputs = [\"in\"]\n\
             storm_threshold = 2\nstorm_window_secs = 1\n\
             [sinks.all]\ntype = \"blackhole\"\ninputs = [\"patterns\"]\n\
             [sinks.storm]\ntype = \"file\"\ninputs = [\"patterns.storm\"]\npath = \"storm.log\"\n"
        ),
    );
    let _howl = Running::start(dir.path(), &config, api, &[]).await;
    let body: String = (0..7)
        .map(|i| {
            let x = letters(i);
            format!("{x}alpha {x}beta {x}gamma {x}delta\n")
        })
        .collect();
    let response = client()
        .post(format!("http://127.0.0.1:{http}/"))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    // No more lines arrive: the window still ends, on its timer.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let storm = loop {
        let text = std::fs::read_to_string(dir.path().join("storm.log")).unwrap_or_default();
        if let Some(line) = text.lines().next() {
            break serde_json::from_str::<serde_json::Value>(line).unwrap();
        }
        assert!(tokio::time::Instant::now() < deadline, "no storm event");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(storm["storm"]["count"], 5);
    let metrics = client()
        .get(format!("http://127.0.0.1:{api}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let value = |name: &str| {
        metrics
            .lines()
            .find(|l| l.contains(name) && l.contains("component_id=\"patterns\""))
            .and_then(|l| l.rsplit(' ').next())
            .unwrap_or_else(|| panic!("no {name} in {metrics}"))
            .to_string()
    };
    assert_eq!(value("pattern_storms_total"), "1");
    assert_eq!(value("pattern_storm_grouped_total"), "5");
}
