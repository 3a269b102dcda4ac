//! The `sql` source against a real PostgreSQL (a cluster of its own on
//! loopback, [`common::postgres`]) and a SQLite file: numbered rows, each
//! delivered exactly once across graceful restarts and dropped
//! connections, at least once (nothing skipped) across `kill -9`; rows
//! sharing a timestamp across page boundaries; every column type; and the
//! password never in the logs.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use crate::common::postgres::{PASSWORD, Postgres};
use crate::common::{Running, free_port, wait_for, write};

const LIMIT: Duration = Duration::from_secs(60);

/// A topology: the `sql` source `db` (its URL from `$DB_URL`) with
/// `options`, delivering JSON lines to `out.jsonl`.
fn topology(api: u16, options: &str) -> String {
    format!(
        "data_dir = \"state\"\n[api]\nenabled = true\naddress = \"127.0.0.1:{api}\"\n\
         [sources.db]\ntype = \"sql\"\nurl = \"${{DB_URL}}\"\ninterval_secs = 0.2\n{options}\n\
         [sinks.out]\ntype = \"file\"\ninputs = [\"db\"]\npath = \"out.jsonl\"\n"
    )
}

/// The events delivered so far (whole lines only: a `kill -9` may cut the
/// last one).
fn delivered(dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("out.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

/// How many times each `id` was delivered.
fn counts(dir: &Path) -> BTreeMap<i64, usize> {
    let mut counts = BTreeMap::new();
    for event in delivered(dir) {
        let id = event["id"].as_i64().expect("an integer id");
        *counts.entry(id).or_default() += 1;
    }
    counts
}

/// Waits until every id of `1..=last` was delivered.
async fn wait_for_ids(dir: &Path, last: i64, howl: &Running) {
    let what = format!(
        "ids 1..={last} delivered; howl's stderr:\n{}",
        howl.stderr()
    );
    wait_for(&what, LIMIT, || {
        // Counting lines first spares parsing 100,000 events at every look
        // before they can all be there (in a debug build, under a loaded CI
        // machine, the parsing took a good part of the time limit).
        let lines = std::fs::read(dir.join("out.jsonl"))
            .map_or(0, |bytes| bytes.iter().filter(|&&c| c == b'\n').count());
        if (lines as i64) < last {
            return None;
        }
        let counts = counts(dir);
        (1..=last).all(|id| counts.contains_key(&id)).then_some(())
    })
    .await;
}

/// Fails unless each id of `1..=last` was delivered exactly once, and no
/// other.
fn assert_exactly_once(dir: &Path, last: i64) {
    let counts = counts(dir);
    let repeated: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        repeated.is_empty(),
        "delivered more than once: {repeated:?}"
    );
    let missing: Vec<_> = (1..=last).filter(|id| !counts.contains_key(id)).collect();
    assert!(missing.is_empty(), "never delivered: {missing:?}");
    assert_eq!(counts.len() as i64, last, "ids beyond {last}");
}

async fn start(dir: &Path, config: &str, api: u16, url: &str) -> Running {
    let path = write(dir, "topology.toml", config);
    Running::start_with_env(dir, &path, api, &[("DB_URL", url)]).await
}

async fn insert_numbered(pool: &sqlx::PgPool, from: i64, to: i64) {
    sqlx::query(
        "INSERT INTO app_log (id, level, msg) SELECT i, 'info', 'line ' || i \
         FROM generate_series($1::bigint, $2::bigint) AS i",
    )
    .bind(from)
    .bind(to)
    .execute(pool)
    .await
    .expect("insert rows");
}

async fn numbered_table(pg: &Postgres) -> sqlx::PgPool {
    let app = pg.app().await;
    sqlx::query(
        "CREATE TABLE app_log (id bigint PRIMARY KEY, level text NOT NULL, msg text NOT NULL)",
    )
    .execute(&app)
    .await
    .expect("create table");
    sqlx::query("ALTER TABLE app_log OWNER TO howl")
        .execute(&app)
        .await
        .expect("owner");
    app
}

const NUMBERED: &str = "query = \"SELECT id, level, msg AS message FROM app_log WHERE id > $1 \
                        ORDER BY id LIMIT 100\"\ncursor_column = \"id\"\ncursor_start = 0";

#[tokio::test]
async fn sql_postgres_numbered_rows_exactly_once_across_restarts_and_at_least_once_across_kill_9() {
    let pg = Postgres::start().await;
    let app = numbered_table(&pg).await;
    insert_numbered(&app, 1, 1000).await;
    let dir = tempfile::tempdir().unwrap();
    let api = free_port();
    let config = topology(api, NUMBERED);

    let mut howl = start(dir.path(), &config, api, &pg.url()).await;
    wait_for_ids(dir.path(), 1000, &howl).await;
    let output = howl.terminate(LIMIT);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        !stderr.contains(PASSWORD),
        "the password was logged:\n{stderr}"
    );
    assert_exactly_once(dir.path(), 1000);
    let first = delivered(dir.path());
    assert_eq!(first[0]["message"], "line 1");
    assert_eq!(first[0]["level"], "info");
    assert_eq!(first[0]["source_type"], "sql");

    // Rows inserted while howl is down: each exactly once, none repeated.
    insert_numbered(&app, 1001, 1500).await;
    let mut howl = start(dir.path(), &config, api, &pg.url()).await;
    wait_for_ids(dir.path(), 1500, &howl).await;
    // New rows while it runs, too.
    insert_numbered(&app, 1501, 1600).await;
    wait_for_ids(dir.path(), 1600, &howl).await;
    let output = howl.terminate(LIMIT);
    assert!(output.status.success());
    assert_exactly_once(dir.path(), 1600);

    // kill -9 in the middle of a long read: restarted, nothing is missing,
    // and only what was in flight is repeated.
    insert_numbered(&app, 1601, 100_000).await;
    let out = dir.path().join("out.jsonl");
    let size = |path: &Path| std::fs::metadata(path).map_or(0, |m| m.len());
    let before = size(&out);
    let mut howl = start(dir.path(), &config, api, &pg.url()).await;
    // Some 5000 rows in (a line is about 100 bytes).
    wait_for("a part of the new rows", LIMIT, || {
        (size(&out) > before + 500_000).then_some(())
    })
    .await;
    let child = howl.child.take().unwrap();
    crate::common::signal(&child, "KILL");
    let _ = howl.finish(child, LIMIT);
    let before_restart = counts(dir.path()).len();
    let mut howl = start(dir.path(), &config, api, &pg.url()).await;
    assert!(before_restart < 100_000, "all delivered before the kill");
    wait_for_ids(dir.path(), 100_000, &howl).await;
    let output = howl.terminate(LIMIT);
    assert!(output.status.success());
    let counts = counts(dir.path());
    assert_eq!(counts.len(), 100_000, "every row, and no other");
    let repeated: Vec<i64> = counts
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(id, _)| *id)
        .collect();
    assert!(counts.values().all(|n| *n <= 2), "a row came three times");
    // Repeated rows are those the crash left unacknowledged: after the
    // graceful part (1..=1600), one contiguous run.
    if let (Some(first), Some(last)) = (repeated.first(), repeated.last()) {
        assert!(
            *first > 1600,
            "a row delivered before a graceful stop came again"
        );
        assert_eq!(
            repeated.len() as i64,
            last - first + 1,
            "not one run: {repeated:?}"
        );
    }
    println!(
        "kill -9 after {before_restart} of 100000 rows: {} rows delivered twice",
        repeated.len()
    );
}

#[tokio::test]
async fn sql_postgres_rows_sharing_timestamps_across_pages_and_restarts() {
    let pg = Postgres::start().await;
    let app = pg.app().await;
    // The same rows in a `timestamptz` and a `timestamp` table: the cursor
    // is bound as timestamptz, compared with both.
    for (table, kind) in [("log_tz", "timestamptz"), ("log_naive", "timestamp")] {
        for statement in [
            format!("CREATE TABLE {table} (id bigint, ts {kind} NOT NULL, msg text)"),
            format!("ALTER TABLE {table} OWNER TO howl"),
        ] {
            sqlx::query(&statement)
                .execute(&app)
                .await
                .expect(&statement);
        }
    }
    // Rows 1..=n: 3 per second (so groups straddle pages of 5).
    let insert = |from: i64, to: i64| {
        let app = app.clone();
        async move {
            for table in ["log_tz", "log_naive"] {
                sqlx::query(&format!(
                    "INSERT INTO {table} SELECT i, \
                     timestamp '2026-03-01 00:00:00' + ((i - 1) / 3) * interval '1 second', \
                     'line ' || i FROM generate_series($1::bigint, $2::bigint) AS i"
                ))
                .bind(from)
                .bind(to)
                .execute(&app)
                .await
                .expect("insert");
            }
        }
    };
    insert(1, 301).await;
    let source = |name: &str, table: &str| {
        format!(
            "[sources.{name}]\ntype = \"sql\"\nurl = \"${{DB_URL}}\"\ninterval_secs = 0.2\n\
             query = \"SELECT id, '{table}' AS tbl, ts AS timestamp, msg AS message FROM {table} \
             WHERE ts >= $1 ORDER BY ts LIMIT 5\"\ncursor_column = \"timestamp\"\n\
             cursor_start = \"2026-01-01T00:00:00Z\"\n"
        )
    };
    let dir = tempfile::tempdir().unwrap();
    let api = free_port();
    let config = format!(
        "data_dir = \"state\"\n[api]\nenabled = true\naddress = \"127.0.0.1:{api}\"\n{}{}\
         [sinks.out]\ntype = \"file\"\ninputs = [\"tz\", \"naive\"]\npath = \"out.jsonl\"\n",
        source("tz", "log_tz"),
        source("naive", "log_naive")
    );
    let per_table = |dir: &Path| {
        let mut tables: BTreeMap<String, BTreeMap<i64, usize>> = BTreeMap::new();
        for event in delivered(dir) {
            let table = event["tbl"].as_str().unwrap().to_string();
            let id = event["id"].as_i64().unwrap();
            *tables.entry(table).or_default().entry(id).or_default() += 1;
        }
        tables
    };
    let wait_all = |last: i64, howl: &Running| {
        let what = format!("ids 1..={last} of both tables; stderr:\n{}", howl.stderr());
        let dir = dir.path().to_path_buf();
        async move {
            wait_for(&what, LIMIT, || {
                let tables = per_table(&dir);
                (tables.len() == 2
                    && tables
                        .values()
                        .all(|ids| (1..=last).all(|id| ids.contains_key(&id))))
                .then_some(())
            })
            .await
        }
    };
    let check = |last: i64| {
        for (table, ids) in per_table(dir.path()) {
            let wrong: Vec<_> = ids.iter().filter(|(_, n)| **n != 1).collect();
            assert!(
                wrong.is_empty(),
                "{table}: delivered more than once: {wrong:?}"
            );
            assert_eq!(ids.len() as i64, last, "{table}: {ids:?}");
        }
    };

    let mut howl = start(dir.path(), &config, api, &pg.url()).await;
    wait_all(301, &howl).await;
    let output = howl.terminate(LIMIT);
    assert!(output.status.success());
    check(301);
    let first = delivered(dir.path());
    assert_eq!(
        first[0]["timestamp"], "2026-03-01T00:00:00Z",
        "{}",
        first[0]
    );

    // Row 301 was alone at the last second; 302 and 303 share it and
    // arrive while howl is down: they are read, 301 is not again.
    insert(302, 450).await;
    let mut howl = start(dir.path(), &config, api, &pg.url()).await;
    wait_all(450, &howl).await;
    let output = howl.terminate(LIMIT);
    assert!(output.status.success());
    check(450);
}

#[tokio::test]
async fn sql_postgres_more_rows_at_one_timestamp_than_the_limit_is_an_error_not_a_loop() {
    let pg = Postgres::start().await;
    let app = pg.app().await;
    for statement in [
        "CREATE TABLE app_log (id bigint, ts timestamptz NOT NULL, msg text)",
        "ALTER TABLE app_log OWNER TO howl",
        "INSERT INTO app_log SELECT i, timestamptz '2026-03-01 00:00:00Z', 'line ' || i \
         FROM generate_series(1, 8) AS i",
    ] {
        sqlx::query(statement).execute(&app).await.expect(statement);
    }
    let dir = tempfile::tempdir().unwrap();
    let api = free_port();
    let config = topology(
        api,
        "query = \"SELECT id, ts, msg AS message FROM app_log WHERE ts >= $1 ORDER BY ts \
         LIMIT 5\"\ncursor_column = \"ts\"\ncursor_start = \"2026-01-01T00:00:00Z\"",
    );
    let howl = start(dir.path(), &config, api, &pg.url()).await;
    wait_for("the no-progress error", LIMIT, || {
        howl.stderr().contains("no progress").then_some(())
    })
    .await;
    let stderr = howl.stderr();
    assert!(stderr.contains("raise the query's LIMIT"), "{stderr}");
    assert!(
        stderr.contains("component=sources.db"),
        "the error names the source: {stderr}"
    );
    assert_eq!(counts(dir.path()).len(), 5, "the first page, once");
}

#[tokio::test]
async fn sql_postgres_connection_dropped_mid_poll_loses_and_repeats_nothing() {
    let pg = Postgres::start().await;
    let app = numbered_table(&pg).await;
    let dir = tempfile::tempdir().unwrap();
    let api = free_port();
    // Each query takes 0.2 s (`pg_sleep`), so that terminating howl's
    // connection while it reads hits a query in progress.
    let config = topology(
        api,
        "query = \"SELECT id, level, msg AS message FROM app_log, pg_sleep(0.2) \
         WHERE id > $1 ORDER BY id LIMIT 100\"\ncursor_column = \"id\"\ncursor_start = 0",
    );
    let howl = start(dir.path(), &config, api, &pg.url()).await;
    let mut next = 1;
    let mut terminated = 0;
    for _ in 0..10 {
        insert_numbered(&app, next, next + 299).await;
        next += 300;
        tokio::time::sleep(Duration::from_millis(120)).await;
        let killed: Vec<bool> = sqlx::query_scalar(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'howl'",
        )
        .fetch_all(&app)
        .await
        .expect("terminate howl's connection");
        terminated += killed.into_iter().filter(|k| *k).count();
    }
    let last = next - 1;
    wait_for_ids(dir.path(), last, &howl).await;
    let mut howl = howl;
    let output = howl.terminate(LIMIT);
    assert!(output.status.success());
    assert!(
        terminated >= 5,
        "howl's connection was terminated {terminated} times"
    );
    assert_exactly_once(dir.path(), last);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains(PASSWORD), "{stderr}");
    assert!(
        stderr.contains("the query failed") && stderr.contains("administrator command"),
        "no query was cut short: {stderr}"
    );
}

#[tokio::test]
async fn sql_postgres_column_types_become_fields() {
    let pg = Postgres::start().await;
    let app = pg.app().await;
    for statement in [
        "CREATE TYPE mood AS ENUM ('ok', 'sad')",
        "CREATE TABLE typed (id int4, small int2, big int8, real4 float4, real8 float8, \
         num numeric(12,3), yes bool, t text, v varchar(9), c char(3), raw bytea, \
         at timestamptz, naive timestamp, day date, doc jsonb, plain json, u uuid, \
         tags text[], m mood, nothing text, span interval)",
        "ALTER TABLE typed OWNER TO howl",
        "INSERT INTO typed VALUES (1, -2, 9000000000, 1.5, 2.25, -12345.678, true, 'héllo', \
         'var', 'ab', '\\x00ff', '2026-03-01 12:00:00.5+02', '2026-03-01 12:00:00', \
         '2026-03-01', '{\"a\": [1, 2.5, null], \"b\": {\"c\": \"d\"}}', '[true]', \
         'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{x,y}', 'sad', NULL, '1 day')",
    ] {
        sqlx::query(statement).execute(&app).await.expect(statement);
    }
    let dir = tempfile::tempdir().unwrap();
    let api = free_port();
    let config = topology(
        api,
        "query = \"SELECT * FROM typed WHERE id > $1 ORDER BY id\"\ncursor_column = \"id\"\n\
         cursor_start = 0",
    );
    let howl = start(dir.path(), &config, api, &pg.url()).await;
    let event = wait_for("the row", LIMIT, || delivered(dir.path()).pop()).await;
    let expected = serde_json::json!({
        "id": 1, "small": -2, "big": 9_000_000_000_i64, "real4": 1.5, "real8": 2.25,
        "num": -12345.678, "yes": true, "t": "héllo", "v": "var", "c": "ab ",
        "at": "2026-03-01T10:00:00.500Z", "naive": "2026-03-01T12:00:00Z",
        "day": "2026-03-01T00:00:00Z",
        "doc": {"a": [1, 2.5, null], "b": {"c": "d"}}, "plain": [true],
        "u": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "tags": ["x", "y"], "m": "sad",
        "nothing": null, "span": null, "source_type": "sql",
    });
    for (key, value) in expected.as_object().unwrap() {
        assert_eq!(&event[key], value, "{key} in {event}");
    }
    // bytea: bytes (written as text by the JSON encoding, lossily).
    assert!(event.get("raw").is_some(), "{event}");
    wait_for("the unknown type warning", LIMIT, || {
        howl.stderr()
            .contains("`span` is of type INTERVAL")
            .then_some(())
    })
    .await;
}

#[tokio::test]
async fn sql_connection_errors_never_show_the_password() {
    let pg = Postgres::start().await;
    let dir = tempfile::tempdir().unwrap();
    let api = free_port();
    let config = topology(api, NUMBERED);
    // A wrong password (PostgreSQL refuses it), then a port where nothing
    // listens.
    let wrong = "Wr0ng-secret-pw";
    let closed = free_port();
    for (url, secret, expected) in [
        (
            format!("postgres://howl:{wrong}@127.0.0.1:{}/app", pg.port),
            wrong,
            "password authentication failed",
        ),
        (
            format!("postgres://howl:{PASSWORD}@127.0.0.1:{closed}/app"),
            PASSWORD,
            "Connection refused",
        ),
    ] {
        let mut howl = start(dir.path(), &config, api, &url).await;
        wait_for(expected, LIMIT, || {
            howl.stderr().contains(expected).then_some(())
        })
        .await;
        let output = howl.terminate(LIMIT);
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(stderr.contains("component=sources.db"), "{stderr}");
        assert!(
            !stderr.contains(secret),
            "the password was logged:\n{stderr}"
        );
        assert!(!stderr.contains(&url), "the URL was logged:\n{stderr}");
    }
}

#[tokio::test]
async fn sql_sqlite_numbered_rows_exactly_once_across_a_restart() {
    use sqlx::sqlite::{SqliteConnectOptions, SqlitePool};
    use std::str::FromStr;
    let dir = tempfile::tempdir().unwrap();
    let options = SqliteConnectOptions::from_str("sqlite://log.db")
        .unwrap()
        .filename(dir.path().join("log.db"))
        .create_if_missing(true);
    let db = SqlitePool::connect_with(options).await.unwrap();
    sqlx::query("CREATE TABLE app_log (id INTEGER PRIMARY KEY, ts DATETIME, msg TEXT)")
        .execute(&db)
        .await
        .unwrap();
    let insert = |from: i64, to: i64| {
        let db = db.clone();
        async move {
            for id in from..=to {
                sqlx::query("INSERT INTO app_log VALUES (?, '2026-03-01 10:00:00', ?)")
                    .bind(id)
                    .bind(format!("line {id}"))
                    .execute(&db)
                    .await
                    .unwrap();
            }
        }
    };
    insert(1, 300).await;
    let api = free_port();
    // A relative path: from the working directory (howl runs in `dir`).
    let config = topology(
        api,
        "query = \"SELECT id, ts AS timestamp, msg AS message FROM app_log WHERE id > ? \
         ORDER BY id LIMIT 50\"\ncursor_column = \"id\"\ncursor_start = 0",
    );
    let mut howl = start(dir.path(), &config, api, "sqlite://log.db").await;
    wait_for_ids(dir.path(), 300, &howl).await;
    assert!(howl.terminate(LIMIT).status.success());
    assert_exactly_once(dir.path(), 300);
    let first = delivered(dir.path());
    assert_eq!(first[0]["timestamp"], "2026-03-01T10:00:00Z");
    assert_eq!(first[0]["message"], "line 1");

    insert(301, 500).await;
    let mut howl = start(dir.path(), &config, api, "sqlite://log.db").await;
    wait_for_ids(dir.path(), 500, &howl).await;
    assert!(howl.terminate(LIMIT).status.success());
    assert_exactly_once(dir.path(), 500);
}

/// How many of howl's queries wait on a lock.
async fn waiting_on_a_lock(app: &sqlx::PgPool) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity WHERE usename = 'howl' AND wait_event_type = 'Lock'",
    )
    .fetch_one(app)
    .await
    .expect("pg_stat_activity")
}

#[tokio::test]
async fn sql_postgres_a_query_that_never_answers_times_out_and_sigterm_does_not_wait_for_it() {
    let pg = Postgres::start().await;
    let app = numbered_table(&pg).await;
    insert_numbered(&app, 1, 50).await;
    let dir = tempfile::tempdir().unwrap();
    let api = free_port();
    let config = |timeout: &str| topology(api, &format!("{NUMBERED}\ntimeout_secs = {timeout}"));

    // A lock held on the table: howl's query waits on it, and gives up
    // after `timeout_secs`, naming the source; the rows written under the
    // lock come once it is released, each once.
    let mut howl = start(dir.path(), &config("1"), api, &pg.url()).await;
    wait_for_ids(dir.path(), 50, &howl).await;
    let mut lock = app.begin().await.expect("begin");
    sqlx::query("LOCK TABLE app_log IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *lock)
        .await
        .expect("lock");
    sqlx::query(
        "INSERT INTO app_log (id, level, msg) SELECT i, 'info', 'line ' || i \
         FROM generate_series(51, 100) AS i",
    )
    .execute(&mut *lock)
    .await
    .expect("insert under the lock");
    wait_for("the timeout error", LIMIT, || {
        howl.stderr()
            .lines()
            .any(|line| {
                line.contains("component=sources.db")
                    && (line.contains("no answer within 1s (timeout_secs")
                        || line.contains("canceling statement due to statement timeout"))
            })
            .then_some(())
    })
    .await;
    lock.commit().await.expect("commit");
    wait_for_ids(dir.path(), 100, &howl).await;
    let output = howl.terminate(LIMIT);
    assert!(output.status.success());
    assert_exactly_once(dir.path(), 100);
    // Only howl's error, naming the source: not sqlx's own "slow
    // statement" warning, which named none.
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("slow statement"), "{stderr}");

    // A query that would wait an hour: SIGTERM stops howl at once, and the
    // cursor saved is after the rows delivered.
    let mut howl = start(dir.path(), &config("3600"), api, &pg.url()).await;
    let mut lock = app.begin().await.expect("begin");
    sqlx::query("LOCK TABLE app_log IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *lock)
        .await
        .expect("lock");
    let deadline = std::time::Instant::now() + LIMIT;
    while waiting_on_a_lock(&app).await == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "howl's query never waited on the lock: {}",
            howl.stderr()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stopping = std::time::Instant::now();
    let output = howl.terminate(LIMIT);
    let took = stopping.elapsed();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(took < Duration::from_secs(10), "shutdown took {took:?}");
    lock.rollback().await.expect("rollback");
    insert_numbered(&app, 101, 150).await;
    let mut howl = start(dir.path(), &config("60"), api, &pg.url()).await;
    wait_for_ids(dir.path(), 150, &howl).await;
    assert!(howl.terminate(LIMIT).status.success());
    assert_exactly_once(dir.path(), 150);
}

#[tokio::test]
async fn sql_postgres_errors_say_where_and_why_and_a_changed_column_type_does_not_stick_the_polls()
{
    let pg = Postgres::start().await;
    let app = numbered_table(&pg).await;
    insert_numbered(&app, 1, 10).await;
    let dir = tempfile::tempdir().unwrap();
    let api = free_port();
    let source = |name: &str, options: &str| {
        format!(
            "[sources.{name}]\ntype = \"sql\"\nurl = \"${{DB_URL}}\"\ninterval_secs = 0.2\n\
             {options}\n"
        )
    };
    let config = format!(
        "data_dir = \"state\"\n[api]\nenabled = true\naddress = \"127.0.0.1:{api}\"\n{}{}{}{}\
         [sinks.out]\ntype = \"file\"\ninputs = [\"db\", \"typo\", \"text_start\", \"desc\"]\n\
         path = \"out.jsonl\"\n",
        source("db", NUMBERED),
        source(
            "typo",
            "query = \"SELECT id FROM app_log WHERE id > $1 ORDR BY id LIMIT 9\"\n\
             cursor_column = \"id\"\ncursor_start = 0"
        ),
        source(
            "text_start",
            "query = \"SELECT id FROM app_log WHERE id > $1 ORDER BY id LIMIT 9\"\n\
             cursor_column = \"id\"\ncursor_start = \"abc\""
        ),
        source(
            "desc",
            "query = \"SELECT id FROM app_log WHERE id > $1 ORDER BY id DESC LIMIT 9\"\n\
             cursor_column = \"id\"\ncursor_start = 0"
        ),
    );
    let mut howl = start(dir.path(), &config, api, &pg.url()).await;
    wait_for_ids(dir.path(), 10, &howl).await;
    // The column's type changes under the running source: its next polls
    // still work (a statement kept prepared would fail each of them with
    // "cached plan must not change result type").
    sqlx::query("ALTER TABLE app_log ALTER COLUMN msg TYPE varchar(200)")
        .execute(&app)
        .await
        .expect("alter");
    insert_numbered(&app, 11, 20).await;
    wait_for_ids(dir.path(), 20, &howl).await;
    let line_of = |stderr: &str, source: &str| {
        stderr
            .lines()
            .find(|line| line.contains(&format!("component=sources.{source} ")))
            .map(str::to_string)
    };
    let stderr = wait_for("an error of each broken source", LIMIT, || {
        let stderr = howl.stderr();
        ["typo", "text_start", "desc"]
            .iter()
            .all(|source| line_of(&stderr, source).is_some())
            .then_some(stderr)
    })
    .await;
    let output = howl.terminate(LIMIT);
    assert!(output.status.success());
    let typo = line_of(&stderr, "typo").unwrap();
    assert!(
        typo.contains("syntax error at or near \"ORDR\" (at character 38 of the query: `ORDR BY"),
        "{typo}"
    );
    let text_start = line_of(&stderr, "text_start").unwrap();
    assert!(
        text_start.contains("operator does not exist: bigint > text")
            && text_start.contains("`$1` is the cursor, sent as text"),
        "{text_start}"
    );
    let desc = line_of(&stderr, "desc").unwrap();
    assert!(
        desc.contains(
            "not in the order of `id` (cursor_column): a row with `id` = 9 came after 10"
        ) || desc.contains("a row with `id` = 19 came after 20"),
        "{desc}"
    );
    // Only `db` delivered, each row once: the reversed query none.
    assert_exactly_once(dir.path(), 20);
}

#[tokio::test]
async fn sql_postgres_infinite_and_far_values_are_fields_not_a_crash() {
    let pg = Postgres::start().await;
    let app = pg.app().await;
    for statement in [
        "CREATE TABLE edge (id int, at timestamptz, naive timestamp, day date, num numeric, \
         doc jsonb)",
        "ALTER TABLE edge OWNER TO howl",
        // sqlx's own decoding panics on `infinity` and on years past
        // chrono's: the source died at every start.
        "INSERT INTO edge VALUES (1, 'infinity', '-infinity', 'infinity', 'NaN', NULL), \
         (2, '4713-01-01 00:00:00+00 BC', '294276-12-31 23:59:59', '-infinity', 1.5, \
         (SELECT (repeat('[', 200) || repeat(']', 200))::jsonb)), \
         (3, '2026-03-01 00:00:00+00', '2026-03-01 00:00:00', '2026-03-01', 2, '{\"a\": 1}')",
    ] {
        sqlx::query(statement).execute(&app).await.expect(statement);
    }
    let dir = tempfile::tempdir().unwrap();
    let api = free_port();
    let config = topology(
        api,
        "query = \"SELECT * FROM edge WHERE id > $1 ORDER BY id\"\ncursor_column = \"id\"\n\
         cursor_start = 0",
    );
    let mut howl = start(dir.path(), &config, api, &pg.url()).await;
    wait_for_ids(dir.path(), 3, &howl).await;
    let output = howl.terminate(LIMIT);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let events = delivered(dir.path());
    let field = |id: usize, name: &str| events[id - 1][name].clone();
    assert_eq!(field(1, "at"), "infinity");
    assert_eq!(field(1, "naive"), "-infinity");
    assert_eq!(field(1, "day"), "infinity");
    assert_eq!(field(1, "num"), serde_json::Value::Null);
    assert_eq!(field(2, "at"), "-4712-01-01T00:00:00Z");
    // Past chrono's years: null, with a warning naming the column.
    assert_eq!(field(2, "naive"), serde_json::Value::Null);
    assert!(
        stderr.contains("column `naive` is of type TIMESTAMP"),
        "{stderr}"
    );
    assert_eq!(field(2, "day"), "-infinity");
    // Deeper than serde_json reads: the JSON's text.
    let doc = field(2, "doc");
    assert!(doc.as_str().is_some_and(|d| d.starts_with("[[[[")), "{doc}");
    assert_eq!(field(3, "at"), "2026-03-01T00:00:00Z");
    assert_eq!(field(3, "naive"), "2026-03-01T00:00:00Z");
    assert_eq!(field(3, "day"), "2026-03-01T00:00:00Z");
    assert_eq!(field(3, "doc"), serde_json::json!({"a": 1}));
}
