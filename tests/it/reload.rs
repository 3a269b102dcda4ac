//! Hot reload through the real binary: while numbered lines flow through
//! `file → remap → pattern → file`, the config is changed through the API,
//! SIGHUP and `--watch-config`, and once made invalid. Every line must
//! arrive exactly once, each kind of line keep one pattern id throughout,
//! and the pattern transform, which never changes, must keep what it
//! learned (a pattern seen before a reload is not new after it).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use crate::common::{Running, client, free_port, metric, signal, wait_for, write};

/// Lines written in all, in batches.
const BATCHES: u64 = 40;
const PER_BATCH: u64 = 60;

fn config(api: u16, stage: &str, extra: &str) -> String {
    format!(
        r#"data_dir = "state"

[api]
enabled = true
address = "127.0.0.1:{api}"

[sources.in]
type = "file"
include = ["in.log"]
poll_interval_ms = 20

[transforms.stage]
type = "remap"
inputs = ["in"]
source = '.stage = "{stage}"'

[transforms.patterns]
type = "pattern"
inputs = ["stage"]

{extra}"#
    )
}

const OUT: &str = r#"
[sinks.out]
type = "file"
inputs = ["patterns"]
path = "out.log"
"#;

const OUT_CHANGED: &str = r#"
[sinks.out]
type = "file"
inputs = ["patterns"]
path = "out.log"
idle_timeout_secs = 31
buffer.max_events = 100
"#;

const NEW_ONLY: &str = r#"
[sinks.new_only]
type = "file"
inputs = ["patterns.new"]
path = "new.log"
"#;

/// The `n`th line: three kinds in turn, and a fourth (`cache`) only in the
/// batches after `cache_from`.
fn line(n: u64, cache: bool) -> String {
    if cache && n % 4 == 3 {
        return format!("n={n} cache miss for key k{}", n * 7);
    }
    match n % 3 {
        0 => format!("n={n} user alice logged in from 10.0.0.{}", n % 250),
        1 => format!("n={n} disk usage {} percent on volume data", n % 100),
        _ => format!("n={n} request GET /api/items/{n} took {} ms", n % 500),
    }
}

fn kind(message: &str) -> &'static str {
    if message.contains("cache miss") {
        "cache"
    } else if message.contains("logged in") {
        "login"
    } else if message.contains("disk usage") {
        "disk"
    } else {
        "request"
    }
}

fn read_events(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

async fn post_reload(api: &str) -> (u16, serde_json::Value) {
    let response = client()
        .post(format!("{api}/api/v1/reload"))
        .send()
        .await
        .expect("POST /api/v1/reload");
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON answer"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_keeps_every_line_once_and_the_patterns_it_learned() {
    let dir = tempfile::tempdir().unwrap();
    let api = free_port();
    let path = write(dir.path(), "a.toml", &config(api, "a", OUT));
    std::fs::write(dir.path().join("in.log"), "").unwrap();
    let mut howl = Running::start(dir.path(), &path, api, &["--watch-config"]).await;

    let mut input = std::fs::OpenOptions::new()
        .append(true)
        .open(dir.path().join("in.log"))
        .unwrap();
    let mut n = 0;
    let mut cache = false;
    for batch in 0..BATCHES {
        let mut text = String::new();
        for _ in 0..PER_BATCH {
            text.push_str(&line(n, cache));
            text.push('\n');
            n += 1;
        }
        input.write_all(text.as_bytes()).unwrap();
        tokio::time::sleep(Duration::from_millis(40)).await;
        match batch {
            8 => {
                // The API: the remap changes (rebuilt), a sink is added on
                // `patterns.new` (the pattern transform is rewired).
                write(
                    dir.path(),
                    "a.toml",
                    &config(api, "b", &format!("{OUT}{NEW_ONLY}")),
                );
                let (status, body) = post_reload(&howl.api).await;
                assert_eq!(status, 200, "{body}");
                assert_eq!(body["rebuilt"], serde_json::json!(["stage"]), "{body}");
                assert_eq!(body["added"], serde_json::json!(["new_only"]), "{body}");
                assert_eq!(body["rewired"], serde_json::json!(["patterns"]), "{body}");
                // From now on a fourth kind of line appears: new.
                cache = true;
            }
            16 => {
                // SIGHUP: the sink changes, with a new buffer.
                write(
                    dir.path(),
                    "a.toml",
                    &config(api, "c", &format!("{OUT_CHANGED}{NEW_ONLY}")),
                );
                signal(howl.child.as_ref().unwrap(), "HUP");
                howl.wait_for_metric("config_reloads_total", &["result=\"applied\""], 2.0)
                    .await;
            }
            20 => {
                // An invalid config is refused, with its position, and
                // the running one is kept.
                write(
                    dir.path(),
                    "a.toml",
                    &config(api, "d\" +", &format!("{OUT_CHANGED}{NEW_ONLY}")),
                );
                let (status, body) = post_reload(&howl.api).await;
                assert_eq!(status, 400, "{body}");
                let reasons = body["reasons"].to_string();
                assert!(reasons.contains("a.toml:"), "{body}");
                assert!(reasons.contains("transforms.stage"), "{body}");
            }
            26 => {
                // A watched change: the sink on `new` goes, the remap changes.
                write(dir.path(), "a.toml", &config(api, "e", OUT_CHANGED));
                howl.wait_for_metric("config_reloads_total", &["result=\"applied\""], 3.0)
                    .await;
            }
            _ => {}
        }
    }
    let total = n;
    let out = dir.path().join("out.log");
    wait_for("every line in out.log", Duration::from_secs(60), || {
        (read_events(&out).len() as u64 >= total).then_some(())
    })
    .await;
    let metrics = howl.metrics().await;
    let output = howl.terminate(Duration::from_secs(30));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");

    // Exactly once.
    let events = read_events(&out);
    let mut seen: HashMap<u64, u32> = HashMap::new();
    let mut ids: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    let mut stages = BTreeSet::new();
    for event in &events {
        let message = event["message"].as_str().expect("message");
        let number: u64 = message
            .strip_prefix("n=")
            .and_then(|rest| rest.split(' ').next())
            .and_then(|n| n.parse().ok())
            .expect("numbered line");
        *seen.entry(number).or_default() += 1;
        ids.entry(kind(message)).or_default().insert(
            event["pattern"]["id"]
                .as_str()
                .expect("pattern id")
                .to_string(),
        );
        stages.insert(event["stage"].as_str().unwrap_or_default().to_string());
    }
    let missing: Vec<u64> = (0..total).filter(|n| !seen.contains_key(n)).collect();
    let twice: Vec<(&u64, &u32)> = seen.iter().filter(|(_, c)| **c > 1).collect();
    assert!(missing.is_empty(), "lines lost: {missing:?}");
    assert!(twice.is_empty(), "lines delivered twice: {twice:?}");
    assert_eq!(events.len() as u64, total);

    // One pattern id per kind of line, across every reload.
    for (kind, set) in &ids {
        assert_eq!(set.len(), 1, "{kind} has pattern ids {set:?}");
    }
    assert_eq!(ids.len(), 4, "{ids:?}");
    // Each reload took effect (the invalid one did not).
    for stage in ["a", "b", "c", "e"] {
        assert!(
            stages.contains(stage),
            "no line went through stage {stage}: {stages:?}"
        );
    }
    assert!(!stages.iter().any(|s| s.starts_with('d')), "{stages:?}");

    // The sink added on `patterns.new` saw only the kind that was new
    // after the reload: the pattern transform kept what it had learned.
    let new = read_events(&dir.path().join("new.log"));
    let new_kinds: BTreeSet<&str> = new
        .iter()
        .map(|e| kind(e["message"].as_str().unwrap_or_default()))
        .collect();
    assert_eq!(new_kinds, BTreeSet::from(["cache"]), "{new:?}");

    assert_eq!(
        metric(&metrics, "config_reloads_total", &["result=\"applied\""]),
        Some(3.0),
        "{metrics}"
    );
    assert_eq!(
        metric(&metrics, "config_reloads_total", &["result=\"refused\""]),
        Some(1.0),
        "{metrics}"
    );
    assert!(stderr.contains("reload refused"), "{stderr}");
    assert!(stderr.contains("config reloaded"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_refuses_a_new_data_dir_or_api_and_keeps_running() {
    let dir = tempfile::tempdir().unwrap();
    let api = free_port();
    let path = write(dir.path(), "a.toml", &config(api, "a", OUT));
    std::fs::write(dir.path().join("in.log"), "n=0 hello\n").unwrap();
    let mut howl = Running::start(dir.path(), &path, api, &[]).await;

    let moved = config(api, "a", OUT).replace("data_dir = \"state\"", "data_dir = \"elsewhere\"");
    write(dir.path(), "a.toml", &moved);
    let (status, body) = post_reload(&howl.api).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["reasons"].to_string().contains("data_dir"), "{body}");

    let other_api = config(api, "a", OUT).replace(
        "enabled = true\n",
        "enabled = true\nauth_token = \"0123456789abcdef0123456789abcdef\"\n",
    );
    write(dir.path(), "a.toml", &other_api);
    let (status, body) = post_reload(&howl.api).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["reasons"].to_string().contains("[api]"), "{body}");

    // Unchanged: nothing to do, said so.
    write(dir.path(), "a.toml", &config(api, "a", OUT));
    let (status, body) = post_reload(&howl.api).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["summary"], "nothing changed", "{body}");

    let out = dir.path().join("out.log");
    wait_for("the line in out.log", Duration::from_secs(20), || {
        (!read_events(&out).is_empty()).then_some(())
    })
    .await;
    let output = howl.terminate(Duration::from_secs(30));
    assert!(output.status.success());
}

/// A file → remap (`stage_id`) → file (`out`) topology with the given
/// source poll interval, remap id and stage, and sink buffer size.
fn flow_config(api: u16, poll_ms: u32, stage_id: &str, stage: &str, max_events: u32) -> String {
    format!(
        r#"data_dir = "state"

[api]
enabled = true
address = "127.0.0.1:{api}"

[sources.in]
type = "file"
include = ["in.log"]
poll_interval_ms = {poll_ms}

[transforms.{stage_id}]
type = "remap"
inputs = ["in"]
source = '.stage = "{stage}"'

[sinks.out]
type = "file"
inputs = ["{stage_id}"]
path = "out.log"
buffer.max_events = {max_events}
"#
    )
}

/// Checks that `out.log` holds each of `total` numbered lines once.
fn assert_exactly_once(out: &Path, total: u64) {
    let mut seen: HashMap<u64, u32> = HashMap::new();
    for event in read_events(out) {
        let number: u64 = event["message"]
            .as_str()
            .and_then(|m| m.strip_prefix("n="))
            .and_then(|rest| rest.split(' ').next())
            .and_then(|n| n.parse().ok())
            .expect("numbered line");
        *seen.entry(number).or_default() += 1;
    }
    let missing: Vec<u64> = (0..total).filter(|n| !seen.contains_key(n)).collect();
    let twice: Vec<(&u64, &u32)> = seen.iter().filter(|(_, c)| **c > 1).collect();
    assert!(
        missing.is_empty(),
        "{} lines lost: {:?}",
        missing.len(),
        &missing[..missing.len().min(20)]
    );
    assert!(twice.is_empty(), "{} lines delivered twice", twice.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renames_buffer_switches_and_source_with_transform_changes_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let api = free_port();
    // A backlog, so that reloads happen while buffers are full.
    let total: u64 = 60_000;
    let text: String = (0..total)
        .map(|n| format!("n={n} {}\n", line(n, false)))
        .collect();
    std::fs::write(dir.path().join("in.log"), text).unwrap();
    let path = write(dir.path(), "a.toml", &flow_config(api, 20, "s0", "a", 100));
    let howl = Running::start(dir.path(), &path, api, &[]).await;

    let steps = [
        // Rename the transform (removed + added, rewired).
        flow_config(api, 20, "s1", "b", 100),
        // Switch the sink's memory buffer.
        flow_config(api, 20, "s1", "b", 150),
        flow_config(api, 20, "s1", "b", 100),
        // Rename back, and switch the buffer in the same reload.
        flow_config(api, 20, "s0", "c", 150),
        // Change the source and the transform after it at once.
        flow_config(api, 21, "s0", "d", 150),
    ];
    for step in steps {
        write(dir.path(), "a.toml", &step);
        let started = std::time::Instant::now();
        let (status, body) = post_reload(&howl.api).await;
        assert_eq!(status, 200, "{body}");
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "a reload took {:?}: {body}",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    let out = dir.path().join("out.log");
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while (read_events(&out).len() as u64) < total {
        assert!(
            std::time::Instant::now() < deadline,
            "only {} of {total} lines arrived; stderr:\n{}",
            read_events(&out).len(),
            howl.stderr()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Nothing more trickles in.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut howl = howl;
    let output = howl.terminate(Duration::from_secs(30));
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_exactly_once(&out, total);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_never_takes_howl_down() {
    let dir = tempfile::tempdir().unwrap();
    let (api, web, taken) = (free_port(), free_port(), free_port());
    let _squatter = std::net::TcpListener::bind(("127.0.0.1", taken)).unwrap();
    let dead = free_port(); // nothing listens there
    let config = |port: u16, timeout: u32, filter: &str| {
        format!(
            r#"data_dir = "state"
[api]
enabled = true
address = "127.0.0.1:{api}"

[sources.web]
type = "http_server"
address = "127.0.0.1:{port}"

[transforms.keep]
type = "filter"
inputs = ["web"]
condition = '{filter}'

[sinks.hook]
type = "webhook"
inputs = ["keep"]
uri = "http://127.0.0.1:{dead}/hook"
request.timeout_secs = {timeout}
"#
        )
    };
    let path = write(dir.path(), "a.toml", &config(web, 5, "true"));
    let howl = Running::start(dir.path(), &path, api, &["--graceful-shutdown-limit", "3"]).await;
    // An event the sink cannot deliver (its destination is down).
    let post = client()
        .post(format!("http://127.0.0.1:{web}/"))
        .body("hello")
        .timeout(Duration::from_millis(500))
        .send();
    let _ = post.await;

    // 1. The sink changes while it retries: the reload answers, howl runs.
    write(dir.path(), "a.toml", &config(web, 6, "true"));
    let (status, body) = post_reload(&howl.api).await;
    assert_eq!(status, 200, "{body}");
    // 2. The source moves to a port another process holds.
    write(dir.path(), "a.toml", &config(taken, 6, "true"));
    let (status, body) = post_reload(&howl.api).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body["warnings"]
            .to_string()
            .contains("stopped right after it started"),
        "{body}"
    );
    // 3. A condition nested deeper than a worker thread's stack allows.
    let deep = format!("{}true{}", "(".repeat(300), ")".repeat(300));
    write(dir.path(), "a.toml", &config(web, 6, &deep));
    let (status, body) = post_reload(&howl.api).await;
    assert!(status == 200 || status == 400, "{status} {body}");
    // A tap with such a filter is refused, not a crash.
    let mut url = reqwest::Url::parse(&format!("{}/api/v1/tap", howl.api)).unwrap();
    url.query_pairs_mut()
        .append_pair("output", "keep")
        .append_pair("filter", &deep);
    let tap = client().get(url).send().await.unwrap();
    assert_eq!(tap.status(), 400);

    let health = client()
        .get(format!("{}/health", howl.api))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200, "howl still runs");
    let stderr = howl.stderr();
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!stderr.contains("shutting down"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tap_on_a_component_a_reload_removes_ends() {
    let dir = tempfile::tempdir().unwrap();
    let api = free_port();
    std::fs::write(dir.path().join("in.log"), "n=0 hello\n").unwrap();
    let path = write(dir.path(), "a.toml", &flow_config(api, 20, "s0", "a", 100));
    let howl = Running::start(dir.path(), &path, api, &[]).await;
    let mut tap = client()
        .get(format!("{}/api/v1/tap?output=s0", howl.api))
        .send()
        .await
        .unwrap();
    assert_eq!(tap.status(), 200);
    write(dir.path(), "a.toml", &flow_config(api, 20, "s1", "a", 100));
    let (status, body) = post_reload(&howl.api).await;
    assert_eq!(status, 200, "{body}");
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        while let Ok(Some(_)) = tap.chunk().await {}
    })
    .await;
    assert!(ended.is_ok(), "the tap's stream ends with its component");
}
