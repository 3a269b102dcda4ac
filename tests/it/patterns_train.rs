//! `howl patterns train`: a config's `loki_query` source read over a past
//! window into its pattern store, without sinks, so that the next run knows
//! what routine looks like.

use std::collections::BTreeMap;

use crate::common::fake_loki::{Entry, FakeLoki};
use crate::common::{free_port, howl, howl_in, signal, write};

fn entry(ns: i64, line: &str) -> Entry {
    Entry {
        ns,
        stream: BTreeMap::from([("service".to_string(), "checkout".to_string())]),
        line: line.to_string(),
    }
}

/// Runs `howl patterns train -c CONFIG ARGS...` in `dir`: (exit code,
/// stdout, stderr).
fn train(dir: &std::path::Path, config: &str, args: &[&str]) -> (i32, String, String) {
    let mut all = vec!["patterns", "train", "-c", config];
    all.extend_from_slice(args);
    howl_in(dir, &all, &[])
}

fn config(loki: &str, alertmanager_port: u16) -> String {
    format!(
        "data_dir = \"state\"\n\
         [sources.loki]\ntype = \"loki_query\"\nendpoint = \"{loki}\"\nquery = '{{service=~\".+\"}}'\n\
         limit = 50\n\
         [sources.local]\ntype = \"file\"\ninclude = [\"local/*.log\"]\n\
         [transforms.parse]\ntype = \"remap\"\ninputs = [\"loki\", \"local\"]\n\
         source = '.level = downcase(string(split(string!(.message), \" \")[0]) ?? \"info\")'\n\
         [transforms.patterns]\ntype = \"pattern\"\ninputs = [\"parse\"]\nlevel_field = \"level\"\n\
         scope = \"{{{{ .labels.service }}}}\"\n\
         [sinks.alerts]\ntype = \"alertmanager\"\ninputs = [\"patterns.new\"]\n\
         endpoints = [\"http://127.0.0.1:{alertmanager_port}\"]\n"
    )
}

#[test]
fn learns_the_window_only_and_reports_what_is_new() {
    let dir = tempfile::tempdir().unwrap();
    let loki = FakeLoki::start(None);
    let now = chrono::Utc::now().timestamp_nanos_opt().unwrap();
    let hour = 3_600_000_000_000i64;
    let mut entries = vec![entry(
        now - 5 * hour,
        "WARN old template outside the window 1",
    )];
    for i in 0..300i64 {
        let at = now - hour + i * 1_000_000;
        entries.push(match i % 3 {
            0 => entry(at, &format!("ERROR payment {i} declined by bank")),
            1 => entry(at, &format!("INFO user {i} logged in")),
            _ => entry(at, &format!("INFO cart {i} saved")),
        });
    }
    loki.push(entries);
    // Nothing listens there: training must not deliver alerts.
    let config = write(dir.path(), "topology.toml", &config(&loki.url, free_port()));
    let config = config.to_str().unwrap();

    let (code, stdout, stderr) = train(dir.path(), config, &["--since", "2h"]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(stdout.contains("trained on 300 lines"), "{stdout}");
    assert!(stdout.contains("patterns: 3 in all, 3 new"), "{stdout}");
    assert!(stdout.contains("top error templates:"), "{stdout}");
    assert!(
        stdout.contains("[checkout] ERROR payment <NUM> declined by bank"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("old template"),
        "outside the window: {stdout}"
    );
    assert!(stderr.contains("left out: local (file)"), "{stderr}");
    assert!(
        !stderr.contains('\r') && !stderr.contains("\x1b["),
        "no spinner when stderr is not a terminal: {stderr:?}"
    );
    // The window was read forward in pages of 50, from --since.
    let requests = loki.requests();
    assert!(requests.len() >= 6, "{} requests", requests.len());

    // Again: nothing new.
    let (code, stdout, stderr) = train(dir.path(), config, &["--since", "2h"]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(stdout.contains("patterns: 3 in all, 0 new"), "{stdout}");

    // On a terminal (a pseudo-terminal from util-linux's `script`), a
    // spinner says what it does.
    let output = std::process::Command::new("script")
        .args([
            "-qec",
            &format!(
                "'{}' patterns train -c '{config}' --since 2h",
                env!("CARGO_BIN_EXE_howl")
            ),
            "/dev/null",
        ])
        .current_dir(dir.path())
        .stdin(std::process::Stdio::null())
        .output()
        .expect("util-linux's `script` (the test script installs bsdutils)");
    let screen = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{screen}");
    assert!(screen.contains("training"), "{screen:?}");

    // What `howl run` will know: the store has them.
    let (code, stdout, _) = howl_in(
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
    let listed: Vec<serde_json::Value> = serde_json::from_str(&stdout).unwrap();
    assert_eq!(listed.len(), 3, "{stdout}");
}

#[test]
fn refuses_configs_it_cannot_train_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let only_files = write(
        dir.path(),
        "files.toml",
        "[sources.f]\ntype = \"file\"\ninclude = [\"x.log\"]\n\
         [transforms.p]\ntype = \"pattern\"\ninputs = [\"f\"]\n\
         [sinks.out]\ntype = \"blackhole\"\ninputs = [\"p\"]\n",
    );
    let (code, _, stderr) = train(dir.path(), only_files.to_str().unwrap(), &["--since", "1h"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("no source of the config can read a past window")
            && stderr.contains("f (file)"),
        "{stderr}"
    );
    let no_pattern = write(
        dir.path(),
        "nopattern.toml",
        "[sources.l]\ntype = \"loki_query\"\nendpoint = \"http://127.0.0.1:1\"\nquery = '{a=\"b\"}'\n\
         [sinks.out]\ntype = \"blackhole\"\ninputs = [\"l\"]\n",
    );
    let (code, _, stderr) = train(dir.path(), no_pattern.to_str().unwrap(), &["--since", "1h"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("no `pattern` transform reads from"),
        "{stderr}"
    );
    let (code, _, stderr) = train(
        dir.path(),
        no_pattern.to_str().unwrap(),
        &["--since", "1h", "--until", "2h"],
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("the window is empty"), "{stderr}");
}

#[tokio::test]
async fn trains_on_a_sql_table_through_its_timestamp_cursor() {
    use sqlx::sqlite::{SqliteConnectOptions, SqlitePool};
    let dir = tempfile::tempdir().unwrap();
    let options = SqliteConnectOptions::new()
        .filename(dir.path().join("app.db"))
        .create_if_missing(true);
    let db = SqlitePool::connect_with(options).await.unwrap();
    sqlx::query("CREATE TABLE app_log (id INTEGER PRIMARY KEY, ts TEXT, msg TEXT)")
        .execute(&db)
        .await
        .unwrap();
    let now = chrono::Utc::now();
    let at = |ago_secs: i64| {
        (now - chrono::Duration::seconds(ago_secs))
            .format("%Y-%m-%d %H:%M:%S")
            .to_string()
    };
    // Outside the window: five hours ago. Inside: the last hour, two rows
    // a second (timestamps shared across pages of 7).
    sqlx::query("INSERT INTO app_log (ts, msg) VALUES (?, 'disk 7 replaced by operator')")
        .bind(at(5 * 3600))
        .execute(&db)
        .await
        .unwrap();
    for i in 0..200i64 {
        let msg = if i % 2 == 0 {
            format!("worker {i} started")
        } else {
            format!("job {i} finished in {} ms", i * 3)
        };
        sqlx::query("INSERT INTO app_log (ts, msg) VALUES (?, ?)")
            .bind(at(3000 - i / 2))
            .bind(msg)
            .execute(&db)
            .await
            .unwrap();
    }
    db.close().await;
    let config = write(
        dir.path(),
        "topology.toml",
        "data_dir = \"state\"\n[sources.db]\ntype = \"sql\"\nurl = \"sqlite://app.db\"\n\
         query = \"SELECT id, ts, msg AS message FROM app_log \
         WHERE ts >= $1 ORDER BY ts, id LIMIT 7\"\n\
         cursor_column = \"ts\"\ncursor_start = \"2026-01-01T00:00:00Z\"\n\
         [transforms.patterns]\ntype = \"pattern\"\ninputs = [\"db\"]\n\
         [sinks.out]\ntype = \"blackhole\"\ninputs = [\"patterns\"]\n",
    );
    let (code, stdout, stderr) = train(dir.path(), config.to_str().unwrap(), &["--since", "2h"]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(
        stdout.contains("trained on 200 lines"),
        "{stdout}\n{stderr}"
    );
    assert!(stdout.contains("patterns: 2 in all, 2 new"), "{stdout}");
    assert!(
        !stdout.contains("replaced by operator"),
        "outside the window: {stdout}"
    );
}

/// A config of one `loki_query` source into one `pattern` transform.
fn loki_only(loki: &str, limit: u32) -> String {
    format!(
        "data_dir = \"state\"\n\
         [sources.loki]\ntype = \"loki_query\"\nendpoint = \"{loki}\"\nquery = '{{service=~\".+\"}}'\n\
         limit = {limit}\n\
         [transforms.patterns]\ntype = \"pattern\"\ninputs = [\"loki\"]\n\
         [sinks.out]\ntype = \"blackhole\"\ninputs = [\"patterns\"]\n"
    )
}

#[test]
fn a_nanosecond_too_crowded_to_read_does_not_end_the_window_early() {
    let dir = tempfile::tempdir().unwrap();
    let loki = FakeLoki::start(None);
    let now = chrono::Utc::now().timestamp_nanos_opt().unwrap();
    let crowded = now - 3_600_000_000_000;
    // More entries at one nanosecond than a query may ask for (5,000),
    // then the rest of the window.
    let mut entries: Vec<Entry> = (0..5001)
        .map(|i| entry(crowded, &format!("INFO batch {i} flushed")))
        .collect();
    entries.extend((0..3).map(|i| entry(crowded + 1_000 + i, &format!("WARN disk {i} full"))));
    loki.push(entries);
    let config = write(dir.path(), "topology.toml", &loki_only(&loki.url, 1000));
    let (code, stdout, stderr) = train(dir.path(), config.to_str().unwrap(), &["--since", "2h"]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(stderr.contains("the rest of them are skipped"), "{stderr}");
    assert!(
        stdout.contains("trained on 5003 lines"),
        "{stdout}\n{stderr}"
    );
    assert!(stdout.contains("WARN disk <NUM> full"), "{stdout}");
}

#[test]
fn a_loki_that_ignores_start_fails_the_training_instead_of_reading_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let loki = FakeLoki::start(None);
    let now = chrono::Utc::now().timestamp_nanos_opt().unwrap();
    let hour = 3_600_000_000_000i64;
    // Older than the window, but a broken Loki answers them anyway.
    loki.push((0..20).map(|i| entry(now - 5 * hour + i, &format!("INFO old {i}"))));
    loki.ignore_start();
    let config = write(dir.path(), "topology.toml", &loki_only(&loki.url, 10));
    let (code, stdout, stderr) = train(dir.path(), config.to_str().unwrap(), &["--since", "2h"]);
    assert_ne!(code, 0, "{stdout}\n{stderr}");
    assert!(
        stderr.contains("does not honour the time range asked"),
        "{stderr}"
    );
    assert!(
        loki.requests().len() < 5,
        "{} requests",
        loki.requests().len()
    );
}

#[test]
fn an_interrupted_training_says_so_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let loki = FakeLoki::start(None);
    let now = chrono::Utc::now().timestamp_nanos_opt().unwrap();
    loki.push((0..20).map(|i| entry(now - 60_000_000_000 + i, &format!("INFO line {i}"))));
    // Loki holds the training back: it is stopped while it waits.
    loki.script(&[(429, Some(60))]);
    let config = write(dir.path(), "topology.toml", &loki_only(&loki.url, 10));
    let child = howl()
        .current_dir(dir.path())
        .args([
            "patterns",
            "train",
            "-c",
            config.to_str().unwrap(),
            "--since",
            "2h",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while loki.requests().is_empty() && start.elapsed() < std::time::Duration::from_secs(30) {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::thread::sleep(std::time::Duration::from_millis(200));
    signal(&child, "INT");
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stdout.contains("(interrupted: not to the end)"), "{stdout}");
    assert!(stderr.contains("training was interrupted"), "{stderr}");
}

#[test]
fn a_crowded_nanosecond_past_loki_s_own_limit_is_skipped_not_asked_for_ever() {
    let dir = tempfile::tempdir().unwrap();
    let loki = FakeLoki::start(None);
    loki.max_limit(10);
    let now = chrono::Utc::now().timestamp_nanos_opt().unwrap();
    let crowded = now - 3_600_000_000_000;
    let mut entries: Vec<Entry> = (0..15)
        .map(|i| entry(crowded, &format!("INFO batch {i} flushed")))
        .collect();
    entries.extend((0..3).map(|i| entry(crowded + 1_000 + i, &format!("WARN disk {i} full"))));
    loki.push(entries);
    let config = write(dir.path(), "topology.toml", &loki_only(&loki.url, 10));
    let (code, stdout, stderr) = train(dir.path(), config.to_str().unwrap(), &["--since", "2h"]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(stderr.contains("Loki refuses a larger `limit`"), "{stderr}");
    assert!(stdout.contains("trained on 13 lines"), "{stdout}\n{stderr}");
}
