//! End-to-end behaviour of `howl run` on real topologies: end of input,
//! fanout, named outputs, dropped-event routing, shutdown, backpressure.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::{Running, free_port, howl, metric, run_topology, write};

fn lines(n: usize) -> String {
    (0..n)
        .map(|i| format!("line {i} INFO something happened\n"))
        .collect()
}

#[test]
fn stdin_eof_processes_every_line_and_exits_zero() {
    let mut input = lines(20_000);
    input.push_str("last line without newline");
    let (dir, stdout) = run_topology(
        "[sources.in]\ntype = \"stdin\"\n[sinks.out]\ntype = \"console\"\ninputs = [\"in\"]\nencoding = \"text\"\n",
        input.as_bytes(),
    );
    let got: Vec<&str> = stdout.lines().collect();
    assert_eq!(got.len(), 20_001);
    assert_eq!(got[0], "line 0 INFO something happened");
    assert_eq!(got[19_999], "line 19999 INFO something happened");
    assert_eq!(got[20_000], "last line without newline");
    assert!(
        !dir.path().join("data").join("howl.redb").exists(),
        "a stateless run must not create a store"
    );
}

#[test]
fn one_worker_thread_runs_the_same_pipeline_and_zero_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "t.toml",
        "[sources.in]\ntype = \"stdin\"\n[transforms.up]\ntype = \"remap\"\ninputs = [\"in\"]\n\
         source = '.message = upcase!(.message)'\n[sinks.out]\ntype = \"console\"\ninputs = [\"up\"]\n\
         encoding = \"text\"\n",
    );
    let input = lines(5_000);
    let limit = Duration::from_secs(60);
    for args in [
        &["run", "--threads", "1", "-c", "t.toml"][..],
        &["run", "-c", "t.toml"][..],
    ] {
        let output = crate::common::run_with_input(args, dir.path(), input.as_bytes(), limit);
        assert!(output.status.success(), "{args:?}: {output:?}");
        let stdout = String::from_utf8(output.stdout).unwrap();
        assert_eq!(stdout.lines().count(), 5_000, "{args:?}");
        assert_eq!(
            stdout.lines().last(),
            Some("LINE 4999 INFO SOMETHING HAPPENED")
        );
    }
    // Zero, and a count no machine runs (100,000 threads took minutes and
    // gigabytes before the first line, if the OS allowed them at all), are
    // refused at once, naming the option.
    for threads in ["0", "100000", "abc"] {
        let started = std::time::Instant::now();
        let output = crate::common::run_with_input(
            &["run", "--threads", threads, "-c", "t.toml"],
            dir.path(),
            b"",
            limit,
        );
        assert_eq!(output.status.code(), Some(2), "{threads}: {output:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("--threads"), "{stderr}");
        assert!(started.elapsed() < Duration::from_secs(10), "{threads}");
    }
}

#[test]
fn long_lines_are_truncated_not_lost() {
    let input = format!("short\n{}\nafter\n", "x".repeat(1_000_000));
    let (_dir, stdout) = run_topology(
        "[sources.in]\ntype = \"stdin\"\nmax_line_bytes = 10\n[sinks.out]\ntype = \"console\"\ninputs = [\"in\"]\nencoding = \"text\"\n",
        input.as_bytes(),
    );
    assert_eq!(stdout, "short\nxxxxxxxxxx\nafter\n");
}

#[test]
fn fanout_delivers_a_copy_to_each_consumer() {
    let input = lines(5_000);
    let (dir, _) = run_topology(
        "[sources.in]\ntype = \"stdin\"\n\
         [sinks.a]\ntype = \"file\"\ninputs = [\"in\"]\npath = \"a.log\"\nencoding = \"text\"\n\
         [sinks.b]\ntype = \"file\"\ninputs = [\"in\"]\npath = \"out/b.log\"\nencoding = \"text\"\n",
        input.as_bytes(),
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("a.log")).unwrap(),
        input
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("out/b.log")).unwrap(),
        input
    );
}

#[test]
fn named_outputs_split_events_and_unmatched_keeps_the_rest() {
    let (dir, _) = run_topology(
        r#"
[sources.in]
type = "stdin"

[transforms.r]
type = "route"
inputs = ["in"]
route.errors = 'contains(string!(.message), "ERROR")'
route.db = 'contains(string!(.message), "db")'

[sinks.errors]
type = "file"
inputs = ["r.errors"]
path = "errors.log"
encoding = "text"

[sinks.db]
type = "file"
inputs = ["r.db"]
path = "db.log"
encoding = "text"

[sinks.rest]
type = "file"
inputs = ["r._unmatched"]
path = "rest.log"
encoding = "text"
"#,
        b"ERROR db down\nINFO ok\nERROR disk full\nWARN db slow\n",
    );
    let read = |f: &str| std::fs::read_to_string(dir.path().join(f)).unwrap_or_default();
    assert_eq!(read("errors.log"), "ERROR db down\nERROR disk full\n");
    assert_eq!(read("db.log"), "ERROR db down\nWARN db slow\n");
    assert_eq!(read("rest.log"), "INFO ok\n");
}

#[test]
fn remap_routes_dropped_events_with_the_error_attached() {
    let (dir, _) = run_topology(
        r#"
[sources.in]
type = "stdin"

[transforms.parse]
type = "remap"
inputs = ["in"]
drop_on_error = true
reroute_dropped = true
source = '''
. = parse_json!(string!(.message))
.parsed = true
'''

[sinks.good]
type = "file"
inputs = ["parse"]
path = "good.log"

[sinks.bad]
type = "file"
inputs = ["parse.dropped"]
path = "bad.log"
"#,
        b"{\"n\":1}\nnot json\n{\"n\":2}\n",
    );
    let good = std::fs::read_to_string(dir.path().join("good.log")).unwrap();
    assert_eq!(
        good,
        "{\"n\":1,\"parsed\":true}\n{\"n\":2,\"parsed\":true}\n"
    );
    let bad = std::fs::read_to_string(dir.path().join("bad.log")).unwrap();
    let bad: serde_json::Value = serde_json::from_str(bad.trim()).unwrap();
    assert_eq!(
        bad["message"], "not json",
        "the original event is kept unchanged"
    );
    assert_eq!(bad["dropped"]["reason"], "error");
    assert_eq!(bad["dropped"]["component_id"], "parse");
    assert!(
        bad["dropped"]["message"]
            .as_str()
            .unwrap()
            .contains("unable to parse json"),
        "{bad}"
    );
}

#[test]
fn remap_passes_the_original_event_on_error_by_default() {
    let (_dir, stdout) = run_topology(
        "[sources.in]\ntype = \"stdin\"\n[transforms.p]\ntype = \"remap\"\ninputs = [\"in\"]\nsource = '.a = 1; . = parse_json!(string!(.message))'\n[sinks.out]\ntype = \"console\"\ninputs = [\"p\"]\nencoding = \"text\"\n",
        b"not json\n",
    );
    assert_eq!(stdout, "not json\n");
}

fn http_to_sink(api: u16, http: u16, sink: &str) -> String {
    format!(
        "[api]\nenabled = true\naddress = \"127.0.0.1:{api}\"\n\
         [sources.in]\ntype = \"http_server\"\naddress = \"127.0.0.1:{http}\"\n\
         {sink}"
    )
}

#[tokio::test]
async fn sigterm_drains_accepted_events_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let (api, http) = (free_port(), free_port());
    let config = write(
        dir.path(),
        "a.toml",
        &http_to_sink(
            api,
            http,
            "[transforms.slow]\ntype = \"remap\"\ninputs = [\"in\"]\nsource = '.n = 1'\n\
             [sinks.out]\ntype = \"file\"\ninputs = [\"slow\"]\npath = \"out.log\"\nencoding = \"text\"\n",
        ),
    );
    let mut howl = Running::start(dir.path(), &config, api, &[]).await;
    let client = crate::common::client();
    let mut accepted = 0;
    for batch in 0..50 {
        let body: String = (0..100).map(|i| format!("event {batch}-{i}\n")).collect();
        let response = client
            .post(format!("http://127.0.0.1:{http}/"))
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        accepted += 100;
    }
    let output = howl.terminate(Duration::from_secs(30));
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let written = std::fs::read_to_string(dir.path().join("out.log")).unwrap();
    assert_eq!(
        written.lines().count(),
        accepted,
        "every accepted event is flushed before exit"
    );
}

#[tokio::test]
async fn health_turns_503_while_shutting_down_and_limit_names_busy_components() {
    let dir = tempfile::tempdir().unwrap();
    let (api, http) = (free_port(), free_port());
    let config = write(
        dir.path(),
        "a.toml",
        &http_to_sink(
            api,
            http,
            "[sinks.slow]\ntype = \"blackhole\"\ninputs = [\"in\"]\nrate = 5\n",
        ),
    );
    let mut howl = Running::start(
        dir.path(),
        &config,
        api,
        &["--graceful-shutdown-limit", "2"],
    )
    .await;
    let body: String = (0..100).map(|i| format!("event {i}\n")).collect();
    let response = crate::common::client()
        .post(format!("http://127.0.0.1:{http}/"))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let child = howl.child.take().unwrap();
    crate::common::signal(&child, "TERM");
    // During the drain (100 events at 5/s) /health says we are going away.
    let mut saw_503 = false;
    for _ in 0..50 {
        match crate::common::client()
            .get(format!("{}/health", howl.api))
            .send()
            .await
        {
            Ok(r) if r.status() == 503 => {
                saw_503 = true;
                break;
            }
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    assert!(saw_503, "/health must answer 503 while shutting down");
    let output = howl.finish(child, Duration::from_secs(20));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("graceful shutdown limit of 2s reached; still busy: sinks.slow"),
        "{stderr}"
    );
}

#[tokio::test]
async fn backpressure_keeps_memory_bounded_under_a_slow_sink() {
    let dir = tempfile::tempdir().unwrap();
    let api = free_port();
    let config = write(
        dir.path(),
        "a.toml",
        &format!(
            "[api]\nenabled = true\naddress = \"127.0.0.1:{api}\"\n\
             [sources.gen]\ntype = \"demo_logs\"\ninterval = 0\ncount = 1000000\n\
             [transforms.t]\ntype = \"remap\"\ninputs = [\"gen\"]\nsource = '.seen = true'\n\
             [sinks.slow]\ntype = \"blackhole\"\ninputs = [\"t\"]\nrate = 2000\n"
        ),
    );
    let howl = Running::start(dir.path(), &config, api, &[]).await;
    let pid = howl.child.as_ref().unwrap().id();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut max_rss = 0;
    let mut last = String::new();
    for _ in 0..10 {
        max_rss = max_rss.max(crate::common::rss_kib(pid).unwrap_or(0));
        last = howl.metrics().await;
        let buffered = metric(&last, "buffer_events", &["component_id=\"slow\""]).unwrap();
        assert!(
            buffered <= 500.0,
            "the sink buffer holds at most max_events: {buffered}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let generated = metric(
        &last,
        "component_sent_events_total",
        &["component_id=\"gen\""],
    )
    .unwrap();
    let delivered = metric(
        &last,
        "component_sent_events_total",
        &["component_id=\"slow\""],
    )
    .unwrap();
    // The source was held back: it produced only what the slow sink took
    // plus what the bounded buffers and in-flight batches hold, not 1M.
    assert!(
        generated < 100_000.0,
        "source was not held back: generated {generated}"
    );
    assert!(
        generated - delivered < 5_000.0,
        "too much in flight: {generated} vs {delivered}"
    );
    assert!(
        max_rss > 0 && max_rss < 80 * 1024,
        "RSS not bounded: {max_rss} KiB"
    );
}

#[tokio::test]
async fn drop_newest_discards_and_counts_instead_of_blocking() {
    let dir = tempfile::tempdir().unwrap();
    let api = free_port();
    let config = write(
        dir.path(),
        "a.toml",
        &format!(
            "[api]\nenabled = true\naddress = \"127.0.0.1:{api}\"\n\
             [sources.gen]\ntype = \"demo_logs\"\ninterval = 0.0001\n\
             [sinks.slow]\ntype = \"blackhole\"\ninputs = [\"gen\"]\nrate = 200\nbuffer.max_events = 100\nbuffer.when_full = \"drop_newest\"\n"
        ),
    );
    let howl = Running::start(dir.path(), &config, api, &[]).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let text = howl.metrics().await;
    let generated = metric(
        &text,
        "component_sent_events_total",
        &["component_id=\"gen\""],
    )
    .unwrap();
    let received = metric(
        &text,
        "component_received_events_total",
        &["component_id=\"slow\""],
    )
    .unwrap();
    let dropped = metric(
        &text,
        "component_discarded_events_total",
        &["component_id=\"slow\"", "intentional=\"true\""],
    )
    .unwrap();
    let buffered = metric(&text, "buffer_events", &["component_id=\"slow\""]).unwrap();
    assert!(
        dropped > 1_000.0,
        "a slow sink with drop_newest must drop: {dropped}"
    );
    assert!(
        generated > 5_000.0,
        "the source must not be held back: {generated}"
    );
    // Every generated event is accounted for: taken by the sink, waiting in
    // its buffer, or counted as dropped (give a few ticks of slack for the
    // scrape not being atomic).
    let accounted = received + buffered + dropped;
    assert!(
        (generated - accounted).abs() <= 1_000.0,
        "{generated} generated vs {accounted} accounted"
    );
}

#[test]
fn howl_run_without_config_runs_the_demo() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = howl()
        .arg("run")
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let start = Instant::now();
    let mut events = Vec::new();
    while events.len() < 2 && start.elapsed() < Duration::from_secs(20) {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            events.push(line);
        }
    }
    crate::common::signal(&child, "INT");
    let output = crate::common::wait_with_limit(child, Duration::from_secs(20));
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(events.len(), 2, "the demo prints events to stdout");
    for event in events {
        let event: serde_json::Value = serde_json::from_str(&event).unwrap();
        assert_eq!(event["source_type"], "demo_logs");
        assert!(
            event["level"].is_string(),
            "the demo's remap parsed a level: {event}"
        );
    }
}

#[test]
fn transforms_keep_input_order_across_workers() {
    let input = lines(50_000);
    let (_dir, stdout) = run_topology(
        "[sources.in]\ntype = \"stdin\"\n\
         [transforms.t]\ntype = \"remap\"\ninputs = [\"in\"]\nsource = '.message = upcase(string!(.message))'\n\
         [sinks.out]\ntype = \"console\"\ninputs = [\"t\"]\nencoding = \"text\"\n",
        input.as_bytes(),
    );
    assert_eq!(stdout, input.to_uppercase());
}

#[test]
fn file_sink_paths_come_from_event_fields() {
    let (dir, _) = run_topology(
        "[sources.in]\ntype = \"stdin\"\n\
         [transforms.t]\ntype = \"remap\"\ninputs = [\"in\"]\nsource = '. = parse_json!(string!(.message))'\n\
         [sinks.out]\ntype = \"file\"\ninputs = [\"t\"]\npath = \"out/{{ .service }}/%Y.log\"\nencoding = \"text\"\n",
        b"{\"service\":\"api\",\"message\":\"a1\"}\n{\"service\":\"db\",\"message\":\"d1\"}\n{\"message\":\"none\"}\n",
    );
    let year = chrono::Utc::now().format("%Y").to_string();
    let read = |service: &str| {
        std::fs::read_to_string(dir.path().join(format!("out/{service}/{year}.log")))
    };
    assert_eq!(read("api").unwrap(), "a1\n");
    assert_eq!(read("db").unwrap(), "d1\n");
    // A missing field renders empty: the event is kept, not dropped.
    assert_eq!(
        std::fs::read_to_string(dir.path().join(format!("out/{year}.log"))).unwrap(),
        "none\n"
    );
}

#[test]
fn a_component_that_cannot_start_stops_howl_with_exit_1() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "a.toml",
        &format!(
            "[sources.web]\ntype = \"http_server\"\naddress = \"127.0.0.1:{port}\"\n\
             [sources.gen]\ntype = \"demo_logs\"\ninterval = 0.01\n\
             [sinks.out]\ntype = \"blackhole\"\ninputs = [\"web\", \"gen\"]\n"
        ),
    );
    let output = crate::common::run_with_input(
        &["run", "-c", "a.toml"],
        dir.path(),
        b"",
        Duration::from_secs(30),
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot listen on 127.0.0.1:{port}")),
        "{stderr}"
    );
    assert!(
        stderr.contains("component(s) failed: sources.web"),
        "{stderr}"
    );
}

#[test]
fn sigterm_turns_what_stdin_already_gave_into_events() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let config = write(
        dir.path(),
        "a.toml",
        "[sources.in]\ntype = \"stdin\"\n[sinks.out]\ntype = \"file\"\ninputs = [\"in\"]\npath = \"out.log\"\nencoding = \"text\"\n",
    );
    let mut child = howl()
        .current_dir(dir.path())
        .args(["run", "-q", "-c"])
        .arg(&config)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"first\nsecond\nunfinished").unwrap();
    stdin.flush().unwrap();
    let out = dir.path().join("out.log");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::fs::read_to_string(&out)
        .unwrap_or_default()
        .lines()
        .count()
        < 2
    {
        assert!(
            Instant::now() < deadline,
            "the complete lines never arrived"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // The pipe stays open: howl is told to stop, not given an end of input.
    crate::common::signal(&child, "TERM");
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "howl did not stop");
        std::thread::sleep(Duration::from_millis(50));
    };
    drop(stdin);
    assert!(status.success());
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        "first\nsecond\nunfinished\n",
        "the unfinished last line is not lost"
    );
}

#[test]
fn a_closed_stderr_never_crashes_howl() {
    use std::io::Write;
    use std::process::Stdio;
    let dir = tempfile::tempdir().unwrap();
    let config = crate::common::write(
        dir.path(),
        "a.toml",
        "[sources.in]\ntype = \"stdin\"\n[sinks.out]\ntype = \"file\"\ninputs = [\"in\"]\npath = \"out.log\"\n",
    );
    // `-v` logs plenty; whoever read stderr is gone (`2>&1 | head -1`).
    let mut child = crate::common::howl()
        .args(["-v", "run", "-c"])
        .arg(&config)
        .current_dir(dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stderr.take());
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(lines(1000).as_bytes()).unwrap();
    drop(stdin);
    let output = crate::common::wait_with_limit(child, std::time::Duration::from_secs(30));
    assert_eq!(output.status.code(), Some(0), "no panic (101)");
    let written = std::fs::read_to_string(dir.path().join("out.log")).unwrap();
    assert_eq!(written.lines().count(), 1000);
}

#[test]
fn the_file_sink_waits_out_a_full_disk_and_then_writes_every_line() {
    use std::io::Write;
    use std::process::Stdio;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.log");
    // A "disk" that is always full.
    std::os::unix::fs::symlink("/dev/full", &out).unwrap();
    let config = crate::common::write(
        dir.path(),
        "a.toml",
        "[sources.in]\ntype = \"stdin\"\n[sinks.out]\ntype = \"file\"\ninputs = [\"in\"]\n\
         path = \"out.log\"\nacknowledgements.enabled = true\n",
    );
    let stderr = dir.path().join("stderr.log");
    let mut child = crate::common::howl()
        .args(["run", "-c"])
        .arg(&config)
        .current_dir(dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(lines(100).as_bytes()).unwrap();
    drop(stdin);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !std::fs::read_to_string(&stderr)
        .unwrap_or_default()
        .contains("retrying in")
    {
        assert!(std::time::Instant::now() < deadline, "no retry logged");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(
        child.try_wait().unwrap().is_none(),
        "still waiting, not done"
    );
    // Room again: the path is now a real file.
    std::fs::remove_file(&out).unwrap();
    std::fs::write(&out, "").unwrap();
    let output = crate::common::wait_with_limit(child, std::time::Duration::from_secs(30));
    let log = std::fs::read_to_string(&stderr).unwrap_or_default();
    assert_eq!(output.status.code(), Some(0), "{log}");
    let written = std::fs::read_to_string(&out).unwrap();
    assert_eq!(written.lines().count(), 100, "{log}");
}

/// A shutdown that waits for a sink whose destination is down says what it
/// waits for, and that a second Ctrl-C quits at once; the second one does.
#[tokio::test]
async fn a_slow_shutdown_says_what_it_waits_for_and_a_second_ctrl_c_quits() {
    let dir = tempfile::tempdir().unwrap();
    let (api, http, dead) = (
        crate::common::free_port(),
        crate::common::free_port(),
        crate::common::free_port(),
    );
    let config = crate::common::write(
        dir.path(),
        "a.toml",
        &format!(
            "[api]\nenabled = true\naddress = \"127.0.0.1:{api}\"\n\
             [sources.in]\ntype = \"http_server\"\naddress = \"127.0.0.1:{http}\"\n\
             [sinks.out]\ntype = \"webhook\"\ninputs = [\"in\"]\nuri = \"http://127.0.0.1:{dead}/\"\n\
             retry.initial_backoff_secs = 0.2\nretry.max_duration_secs = 600.0\n\
             healthcheck.enabled = false\n"
        ),
    );
    let mut howl = crate::common::Running::start(dir.path(), &config, api, &[]).await;
    let url = format!("http://127.0.0.1:{http}/");
    tokio::spawn(async move {
        let _ = crate::common::client().post(url).body("stuck").send().await;
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let child = howl.child.take().unwrap();
    crate::common::signal(&child, "INT");
    crate::common::wait_for("the progress line", Duration::from_secs(15), || {
        howl.stderr()
            .contains("still shutting down: waiting for sinks.out")
            .then_some(())
    })
    .await;
    let stderr = howl.stderr();
    assert!(stderr.contains("Press Ctrl-C again"), "{stderr}");
    let started = Instant::now();
    crate::common::signal(&child, "INT");
    let output = crate::common::wait_with_limit(child, Duration::from_secs(10));
    assert_eq!(output.status.code(), Some(130));
    assert!(started.elapsed() < Duration::from_secs(5), "at once");
}
