//! `loki_query` against a loopback Loki (`common::fake_loki`): numbered
//! lines, many sharing a nanosecond across pages, read once each across a
//! graceful restart, none skipped across a `kill -9`, through a 429 with
//! `Retry-After` and the tenant header.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::fake_loki::{Entry, FakeLoki};
use crate::common::{Running, complete_lines, free_port, signal, write};

/// The password of the basic credentials, from the environment.
const PASSWORD: &str = "pw-7c1e0b4d";
const ENV: [(&str, &str); 1] = [("LOKI_PASSWORD", PASSWORD)];

/// What Loki's proxy expects: `Basic base64("howl:" + PASSWORD)`.
fn authorization() -> String {
    use base64::Engine;
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("howl:{PASSWORD}"));
    format!("Basic {encoded}")
}

fn now_ns() -> i64 {
    chrono::Utc::now().timestamp_nanos_opt().unwrap()
}

/// Lines `first..=last`, five to a nanosecond from `base`, over three
/// streams.
fn numbered(first: usize, last: usize, base: i64) -> Vec<Entry> {
    (first..=last)
        .map(|i| Entry {
            ns: base + (i as i64 / 5) * 1000,
            stream: BTreeMap::from([
                ("job".to_string(), "app".to_string()),
                ("pod".to_string(), format!("p{}", i % 3)),
            ]),
            line: format!("line {i}"),
        })
        .collect()
}

fn topology(api: u16, loki: &str, limit: usize) -> String {
    format!(
        "data_dir = \"state\"\n[api]\nenabled = true\naddress = \"127.0.0.1:{api}\"\n\
         [sources.loki]\ntype = \"loki_query\"\nendpoint = \"{loki}\"\n\
         query = '{{job=\"app\"}}'\nlimit = {limit}\nsince = \"1h\"\ndelay_secs = 0\n\
         interval_secs = 0.2\ntenant = \"team-a\"\n\
         auth = {{ strategy = \"basic\", user = \"howl\", password = \"${{LOKI_PASSWORD}}\" }}\n\
         [sinks.out]\ntype = \"file\"\ninputs = [\"loki\"]\npath = \"out.log\"\nencoding = \"text\"\n"
    )
}

/// How many times each line number is in `out.log`, from its complete
/// lines.
fn counts(path: &Path) -> BTreeMap<usize, usize> {
    let (counts, torn) = counts_and_torn(path);
    assert!(torn.is_empty(), "unexpected lines {torn:?}");
    counts
}

/// [`counts`], and the complete lines that are not `line N`: what a
/// `kill -9` leaves when it cuts a write short (the sink ends such a line
/// before it appends again).
fn counts_and_torn(path: &Path) -> (BTreeMap<usize, usize>, Vec<String>) {
    let mut counts = BTreeMap::new();
    let mut torn = Vec::new();
    for line in complete_lines(path).lines() {
        match line.strip_prefix("line ").and_then(|n| n.parse().ok()) {
            Some(number) => *counts.entry(number).or_default() += 1,
            None => torn.push(line.to_string()),
        }
    }
    (counts, torn)
}

/// Waits (bounded) until `out.log` holds `distinct` different lines.
async fn wait_for_distinct(path: &Path, distinct: usize) -> BTreeMap<usize, usize> {
    let start = Instant::now();
    loop {
        let (counts, _) = counts_and_torn(path);
        if counts.len() >= distinct || start.elapsed() > Duration::from_secs(60) {
            return counts;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_each_line_once_across_a_graceful_restart_and_shared_nanoseconds() {
    let dir = tempfile::tempdir().unwrap();
    let loki = FakeLoki::start(Some("team-a"));
    loki.require_authorization(&authorization());
    let base = now_ns() - 600_000_000_000;
    loki.push(numbered(1, 300, base));
    // The first answer: Loki rate limiting.
    loki.script(&[(429, Some(1))]);
    let api = free_port();
    let config = write(dir.path(), "loki.toml", &topology(api, &loki.url, 7));
    let out = dir.path().join("out.log");

    let mut howl = Running::start_with_env(dir.path(), &config, api, &ENV).await;
    let counts_before = wait_for_distinct(&out, 300).await;
    let output = tokio::task::block_in_place(|| howl.terminate(Duration::from_secs(20)));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert_eq!(counts_before.len(), 300, "{stderr}");
    assert!(
        !stderr.contains(PASSWORD),
        "the password was logged: {stderr}"
    );
    let requests = loki.requests();
    assert!(
        requests.len() > 300 / 7,
        "pages of 7: {} requests",
        requests.len()
    );
    // After the 429, the same window was asked again, once `Retry-After`
    // had passed.
    let ((first_at, first), (second_at, second)) = (&requests[0], &requests[1]);
    assert_eq!(second.get("start"), first.get("start"));
    let waited = second_at.duration_since(*first_at);
    assert!(
        waited >= Duration::from_millis(950),
        "retried after {waited:?}"
    );
    assert_eq!(first.get("limit").map(String::as_str), Some("7"));

    // Lines that arrive while howl is down.
    loki.push(numbered(301, 500, now_ns()));
    let mut howl = Running::start_with_env(dir.path(), &config, api, &ENV).await;
    wait_for_distinct(&out, 500).await;
    let output = tokio::task::block_in_place(|| howl.terminate(Duration::from_secs(20)));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let counts = counts(&out);
    let wrong: Vec<_> = (1..=500)
        .filter(|n| counts.get(n) != Some(&1))
        .map(|n| (n, counts.get(&n).copied().unwrap_or(0)))
        .collect();
    assert!(wrong.is_empty(), "lines not read exactly once: {wrong:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_9_repeats_at_most_what_was_in_flight_and_skips_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let loki = FakeLoki::start(Some("team-a"));
    loki.require_authorization(&authorization());
    let total = 20_000;
    loki.push(numbered(1, total, now_ns() - 600_000_000_000));
    let api = free_port();
    let config = write(dir.path(), "loki.toml", &topology(api, &loki.url, 100));
    let out = dir.path().join("out.log");

    let mut howl = Running::start_with_env(dir.path(), &config, api, &ENV).await;
    wait_for_distinct(&out, 2_000).await;
    let child = howl.child.take().unwrap();
    signal(&child, "KILL");
    let killed = tokio::task::block_in_place(|| howl.finish(child, Duration::from_secs(10)));
    assert!(!killed.status.success());
    let (at_kill, torn_at_kill) = counts_and_torn(&out);
    let at_kill = at_kill.len();

    let mut howl = Running::start_with_env(dir.path(), &config, api, &ENV).await;
    let counts = wait_for_distinct(&out, total).await;
    let output = tokio::task::block_in_place(|| howl.terminate(Duration::from_secs(20)));
    assert!(output.status.success());
    // The kill may cut one line short; it stays a line of its own, and no
    // other line is damaged.
    let (_, torn) = counts_and_torn(&out);
    assert!(
        torn.len() <= 1 && torn.iter().all(|t| "line ".starts_with(t.as_str())),
        "damaged lines: {torn:?} (at the kill: {torn_at_kill:?})"
    );
    let missing: Vec<usize> = (1..=total).filter(|n| !counts.contains_key(n)).collect();
    assert!(missing.is_empty(), "lines skipped: {missing:?}");
    let repeated: usize = counts.values().map(|c| c - 1).sum();
    // Only what was read before the kill can be read twice.
    assert!(
        repeated <= at_kill,
        "{repeated} lines repeated, more than the {at_kill} read before the kill"
    );
}
