//! `howl patterns train`: a config's `loki_query` source read over a past
//! window into its pattern store, without sinks, so that the next run knows
//! what routine looks like.

use std::collections::BTreeMap;

use crate::common::fake_loki::{Entry, FakeLoki};
use crate::common::{free_port, howl_in, write};

fn entry(ns: i64, line: &str) -> Entry {
    Entry {
        ns,
        stream: BTreeMap::from([("service".to_string(), "checkout".to_string())]),
        line: line.to_string(),
    }
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

    let (code, stdout, stderr) = howl_in(
        dir.path(),
        &["patterns", "train", "-c", config, "--since", "2h"],
        &[],
    );
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
    let (code, stdout, stderr) = howl_in(
        dir.path(),
        &["patterns", "train", "-c", config, "--since", "2h"],
        &[],
    );
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
    let (code, _, stderr) = howl_in(
        dir.path(),
        &[
            "patterns",
            "train",
            "-c",
            only_files.to_str().unwrap(),
            "--since",
            "1h",
        ],
        &[],
    );
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
    let (code, _, stderr) = howl_in(
        dir.path(),
        &[
            "patterns",
            "train",
            "-c",
            no_pattern.to_str().unwrap(),
            "--since",
            "1h",
        ],
        &[],
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("no `pattern` transform reads from"),
        "{stderr}"
    );
    let (code, _, stderr) = howl_in(
        dir.path(),
        &[
            "patterns",
            "train",
            "-c",
            no_pattern.to_str().unwrap(),
            "--since",
            "1h",
            "--until",
            "2h",
        ],
        &[],
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
         WHERE julianday(ts) >= julianday($1) ORDER BY ts, id LIMIT 7\"\n\
         cursor_column = \"ts\"\ncursor_start = \"2026-01-01T00:00:00Z\"\n\
         [transforms.patterns]\ntype = \"pattern\"\ninputs = [\"db\"]\n\
         [sinks.out]\ntype = \"blackhole\"\ninputs = [\"patterns\"]\n",
    );
    let (code, stdout, stderr) = howl_in(
        dir.path(),
        &[
            "patterns",
            "train",
            "-c",
            config.to_str().unwrap(),
            "--since",
            "2h",
        ],
        &[],
    );
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
