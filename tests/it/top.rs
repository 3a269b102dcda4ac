//! `howl top` against a running howl: a plain-text snapshot with `--once`,
//! and the terminal view in a real pseudo-terminal (util-linux `script`),
//! quit with `q`.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::json;

use crate::common::{Running, howl, post_events, wait_with_limit};

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
async fn top_once_prints_a_row_per_component_with_its_rates() {
    let (_dir, howl_run, url) = Running::with_http_source(REST).await;
    let api = howl_run.api.clone();
    // Events keep flowing while the snapshot is taken.
    let feeder = tokio::spawn(async move {
        for i in 0..150 {
            post_events(&url, &json!({"message": format!("line {i}")})).await;
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    let snapshot = tokio::task::spawn_blocking(move || {
        howl()
            .args(["top", "--once", "--interval", "1", "--api", &api])
            .output()
            .expect("run howl top")
    })
    .await
    .unwrap();
    feeder.await.unwrap();
    let stdout = String::from_utf8_lossy(&snapshot.stdout);
    assert!(
        snapshot.status.success(),
        "{}",
        String::from_utf8_lossy(&snapshot.stderr)
    );
    let rows: Vec<Vec<&str>> = stdout
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows[0][0], "COMPONENT", "{stdout}");
    let ids: Vec<&str> = rows[1..].iter().map(|r| r[0]).collect();
    assert_eq!(
        ids,
        ["in", "parse", "out"],
        "sources, transforms, sinks:\n{stdout}"
    );
    let parse_in: f64 = rows[2][3].parse().expect("IN/S is a number");
    assert!(parse_in > 0.0, "events flowed through parse:\n{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn top_once_says_when_no_howl_answers() {
    let output = howl()
        .args(["top", "--once", "--api", "http://127.0.0.1:9"])
        .output()
        .expect("run howl top");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("cannot reach howl's API"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_terminal_view_draws_the_components_and_quits_with_q() {
    let (_dir, howl_run, _url) = Running::with_http_source(REST).await;
    // The pseudo-terminal gets a size (it has none without a terminal).
    let command = format!(
        "stty cols 120 rows 20; {} top --api {}",
        env!("CARGO_BIN_EXE_howl"),
        howl_run.api
    );
    // `script` runs it in a pseudo-terminal and copies what it draws.
    let mut child = Command::new("script")
        .args(["-q", "-e", "-c", &command, "/dev/null"])
        .env("TERM", "xterm")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("util-linux `script` (Debian's bsdutils) must be installed");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    child.stdin.as_mut().unwrap().write_all(b"q").unwrap();
    let output = wait_with_limit(child, Duration::from_secs(20));
    let screen = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{screen}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        screen.contains("howl") && screen.contains("sorted"),
        "{screen}"
    );
    assert!(screen.contains("COMPONENT"), "{screen}");
    assert!(
        screen.contains("parse") && screen.contains("blackhole"),
        "{screen}"
    );
}
