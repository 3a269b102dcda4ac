//! The `nats` sink and source against a real `nats-server -js` (Debian's
//! 2.9.10 in CI), through the howl binary: publish acknowledgements,
//! `Nats-Msg-Id` deduplication, the round trip through a stream, a
//! consuming howl killed mid-stream, a failing sink's messages redelivered,
//! and the server stopped while a howl publishes.

use std::time::Duration;

use futures_util::StreamExt;

use crate::common::nats::{
    NatsServer, append_lines, lines_in, numbered_lines, start_consumer, start_file_publisher,
    wait_for_all_lines,
};
use crate::common::{metric, run_with_input, write};

/// `n` JSON lines `{"id": i, "service": "a"|"b", "message": "line i"}`.
fn numbered_json(range: std::ops::Range<usize>) -> String {
    range
        .map(|i| {
            let service = if i % 2 == 0 { "a" } else { "b" };
            format!("{{\"id\":{i},\"service\":\"{service}\",\"message\":\"line {i}\"}}\n")
        })
        .collect()
}

/// stdin (JSON lines) → the sink `out` with `options`.
fn stdin_to_nats(url: &str, options: &str) -> String {
    format!(
        "[sources.in]\ntype = \"stdin\"\ndecoding.codec = \"json\"\n\
         [sinks.out]\ntype = \"nats\"\ninputs = [\"in\"]\nurl = \"{url}\"\n{options}\n"
    )
}

fn run_stdin(config: &str, input: &str) -> std::process::Output {
    let dir = tempfile::tempdir().expect("temp dir");
    write(dir.path(), "topology.toml", config);
    run_with_input(
        &["run", "-c", "topology.toml"],
        dir.path(),
        input.as_bytes(),
        Duration::from_secs(60),
    )
}

#[tokio::test]
async fn the_sink_stores_each_event_once_per_msg_id_on_its_subject() {
    let server = NatsServer::start().await;
    let config = stdin_to_nats(
        &server.url(),
        "subject = \"logs.{{ .service }}\"\nmsg_id = \"line-{{ .id }}\"\n\
         stream = { name = \"LOGS\", subjects = [\"logs.>\"] }\nbatch.max_events = 16",
    );
    // Lines 0..100, then 40..60 again: the same ids, inside the window.
    let input = numbered_json(0..100) + &numbered_json(40..60);
    let output = run_stdin(&config, &input);
    assert!(
        output.status.success(),
        "howl failed ({:?}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let stored = server.stored("LOGS").await;
    assert_eq!(stored.len(), 100, "each id stored once");
    let mut seen = [false; 100];
    for (subject, id, payload) in &stored {
        let event: serde_json::Value = serde_json::from_slice(payload).expect("JSON payload");
        let index = event["id"].as_u64().expect("id kept") as usize;
        assert!(!seen[index], "line {index} stored twice");
        seen[index] = true;
        assert_eq!(
            subject,
            &format!("logs.{}", event["service"].as_str().unwrap())
        );
        assert_eq!(id.as_deref(), Some(format!("line-{index}").as_str()));
        assert_eq!(event["message"], format!("line {index}"));
        assert!(event["timestamp"].is_string(), "fields kept: {event}");
        assert_eq!(event["source_type"], "stdin");
    }
}

#[tokio::test]
async fn a_subject_no_stream_covers_is_named_and_the_events_errored() {
    let server = NatsServer::start().await;
    server.create_stream("OTHER", &["other.>"]).await;
    let config = stdin_to_nats(
        &server.url(),
        "subject = \"logs.{{ .service }}\"\nretry.initial_backoff_secs = 0.1\n\
         retry.max_duration_secs = 1",
    );
    let output = run_stdin(&config, &numbered_json(0..3));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success(),
        "stdin counts the lines not delivered"
    );
    assert!(
        stderr.lines().any(|line| line
            .contains("no JetStream stream covers subject `logs.a`: a stream must cover it")
            && line.contains("component=sinks.out")),
        "the error names the component, the subject and the fix:\n{stderr}"
    );
    assert!(server.stored("OTHER").await.is_empty());
}

#[tokio::test]
async fn a_stream_that_differs_from_the_options_stops_the_sink() {
    let server = NatsServer::start().await;
    server.create_stream("LOGS", &["logs.a"]).await;
    let config = stdin_to_nats(
        &server.url(),
        "subject = \"logs.a\"\nstream = { name = \"LOGS\", subjects = [\"logs.>\"] }",
    );
    let output = run_stdin(&config, &numbered_json(0..1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("JetStream stream `LOGS` exists with subjects [\"logs.a\"]"),
        "{stderr}"
    );
}

#[tokio::test]
async fn core_nats_publishes_without_a_stream() {
    let server = NatsServer::start().await;
    let client = server.client().await;
    let mut subscriber = client.subscribe("core.>").await.expect("subscribe");
    client.flush().await.expect("flush");
    let config = stdin_to_nats(
        &server.url(),
        "subject = \"core.{{ .service }}\"\njetstream = false\nencoding = \"text\"",
    );
    let output = run_stdin(&config, &numbered_json(0..5));
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut got = Vec::new();
    while got.len() < 5 {
        let message = tokio::time::timeout(Duration::from_secs(5), subscriber.next())
            .await
            .expect("a message within 5 s")
            .expect("subscription open");
        got.push((
            message.subject.to_string(),
            String::from_utf8_lossy(&message.payload).into_owned(),
        ));
    }
    got.sort();
    assert_eq!(got[0], ("core.a".to_string(), "line 0".to_string()));
    assert_eq!(got[4], ("core.b".to_string(), "line 3".to_string()));
}

/// How many times each line number `0..n` is in `messages` (JSON payloads
/// whose `message` is `line <i>`); panics on anything else.
fn count_lines(payloads: impl Iterator<Item = Vec<u8>>, n: usize) -> Vec<u32> {
    let mut counts = vec![0u32; n];
    for payload in payloads {
        let event: serde_json::Value = serde_json::from_slice(&payload).expect("JSON payload");
        let message = event["message"].as_str().expect("a message");
        let index: usize = message
            .strip_prefix("line ")
            .and_then(|i| i.parse().ok())
            .unwrap_or_else(|| panic!("not a numbered line: {message}"));
        counts[index] += 1;
    }
    counts
}

#[tokio::test]
async fn a_publishing_howl_loses_nothing_while_the_server_is_away() {
    let mut server = NatsServer::start().await;
    server.create_stream("LOGS", &["logs.>"]).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let (howl, log) = start_file_publisher(
        dir.path(),
        &server.url(),
        0..2000,
        "ack_timeout_secs = 1\nretry.initial_backoff_secs = 0.2\nretry.max_backoff_secs = 1\n",
        "",
    )
    .await;
    server
        .wait_for_stream("LOGS", "some", Duration::from_secs(20), |n| n >= 1)
        .await;
    server.stop();
    append_lines(&log, 2000..4000);
    tokio::time::sleep(Duration::from_secs(3)).await;
    server.restart().await;
    append_lines(&log, 4000..6000);
    server
        .wait_for_stream("LOGS", "6000", Duration::from_secs(40), |n| n >= 6000)
        .await;
    let counts = count_lines(
        server
            .stored("LOGS")
            .await
            .into_iter()
            .map(|(_, _, payload)| payload),
        6000,
    );
    let missing: Vec<usize> = (0..6000).filter(|&i| counts[i] == 0).collect();
    assert!(
        missing.is_empty(),
        "lost lines: {missing:?}\n{}",
        howl.stderr()
    );
    let duplicates: u32 = counts.iter().map(|c| c.saturating_sub(1)).sum();
    // Only a batch in flight when the server stopped may be stored twice
    // (its acknowledgements lost): at most `batch.max_events`.
    eprintln!("duplicates after the outage: {duplicates}");
    assert!(duplicates <= 100, "{duplicates} duplicates");
    let stderr = howl.stderr();
    assert!(
        stderr.contains("not acknowledged") && stderr.contains("NATS connection (re)established"),
        "the outage and the return are logged:\n{stderr}"
    );
}

/// Publishes `line 0` .. `line n-1` through a howl (stdin → `nats` sink)
/// onto a work-queue stream `LOGS` over `logs.>`, which the sink creates.
fn publish_numbered(server: &NatsServer, n: usize) {
    let config = stdin_to_nats(
        &server.url(),
        "subject = \"logs.app\"\nmsg_id = \"{{ .message }}\"\nbatch.max_events = 500\n\
         stream = { name = \"LOGS\", subjects = [\"logs.>\"], retention = \"work_queue\" }",
    )
    .replace("decoding.codec = \"json\"\n", "");
    let output = run_stdin(&config, &numbered_lines(0..n));
    assert!(
        output.status.success(),
        "publishing failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test]
async fn lines_go_round_trip_through_the_broker_exactly_once() {
    let server = NatsServer::start().await;
    publish_numbered(&server, 1000);
    let dir = tempfile::tempdir().expect("temp dir");
    let mut howl = start_consumer(&server, dir.path(), "out.log", "").await;
    let counts =
        wait_for_all_lines(&dir.path().join("out.log"), 1000, Duration::from_secs(30)).await;
    assert!(counts.iter().all(|c| *c == 1), "every line exactly once");
    // Acknowledged: the work queue empties.
    server
        .wait_for_stream("LOGS", "empty", Duration::from_secs(10), |n| n == 0)
        .await;
    howl.terminate_cleanly(Duration::from_secs(20));
}

#[tokio::test]
async fn a_consumer_killed_mid_stream_loses_nothing_and_duplicates_are_bounded() {
    const LINES: usize = 20_000;
    const MAX_ACK_PENDING: u32 = 500;
    let server = NatsServer::start().await;
    publish_numbered(&server, LINES);
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("out.log");
    // A short ack_wait: what the killed instance held comes back soon.
    let options = format!("max_ack_pending = {MAX_ACK_PENDING}\nack_wait_secs = 2");
    let mut howl = start_consumer(&server, dir.path(), "out.log", &options).await;
    crate::common::wait_for(
        "a few thousand lines written",
        Duration::from_secs(30),
        || (lines_in(&out).len() >= 3000).then_some(()),
    )
    .await;
    let mut child = howl.child.take().expect("running");
    child.kill().expect("kill -9");
    child.wait().expect("reap");
    let written = lines_in(&out).len();
    assert!(written < LINES, "killed mid-stream, not after the end");
    // A write torn by the kill leaves a partial last line; its messages
    // were not acknowledged, so they come again after the restart.
    let text = std::fs::read(&out).expect("read out.log");
    let whole = text
        .iter()
        .rposition(|b| *b == b'\n')
        .map_or(0, |at| at + 1);
    std::fs::write(&out, &text[..whole]).expect("cut a torn line");
    let mut howl = start_consumer(&server, dir.path(), "out.log", &options).await;
    let counts = wait_for_all_lines(&out, LINES, Duration::from_secs(60)).await;
    let duplicates: u32 = counts.iter().map(|c| c - 1).sum();
    eprintln!("killed after {written} lines; {duplicates} duplicates after the restart");
    assert!(
        duplicates <= MAX_ACK_PENDING,
        "{duplicates} duplicates, more than max_ack_pending"
    );
    server
        .wait_for_stream("LOGS", "empty", Duration::from_secs(10), |n| n == 0)
        .await;
    howl.terminate_cleanly(Duration::from_secs(20));
}

#[tokio::test]
async fn messages_a_sink_failed_are_nakked_and_delivered_later() {
    let server = NatsServer::start().await;
    publish_numbered(&server, 50);
    let dir = tempfile::tempdir().expect("temp dir");
    // `blocked` is a file, so `blocked/out.log` cannot be written: the
    // sink fails the events, the source naks their messages.
    std::fs::write(dir.path().join("blocked"), "").expect("write blocker");
    let mut howl = start_consumer(&server, dir.path(), "blocked/out.log", "").await;
    crate::common::wait_for("a message nak'ed", Duration::from_secs(20), || {
        howl.stderr().contains("nak'ed, redelivered").then_some(())
    })
    .await;
    assert_eq!(
        server
            .wait_for_stream("LOGS", "all 50 kept", Duration::from_secs(5), |n| n == 50)
            .await,
        50,
        "nothing acknowledged while the sink fails"
    );
    std::fs::remove_file(dir.path().join("blocked")).expect("unblock");
    let counts = wait_for_all_lines(
        &dir.path().join("blocked/out.log"),
        50,
        Duration::from_secs(30),
    )
    .await;
    assert!(counts.iter().all(|c| *c >= 1));
    server
        .wait_for_stream("LOGS", "empty", Duration::from_secs(10), |n| n == 0)
        .await;
    let stderr = howl.stderr();
    assert!(
        stderr.contains("component=sources.in") && stderr.contains("(delivery "),
        "{stderr}"
    );
    howl.terminate_cleanly(Duration::from_secs(20));
}

#[tokio::test]
async fn core_nats_messages_are_received_in_a_queue_group() {
    let server = NatsServer::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let api = crate::common::free_port();
    let config = write(
        dir.path(),
        "core.toml",
        &format!(
            "[api]\nenabled = true\naddress = \"127.0.0.1:{api}\"\n\
             [sources.in]\ntype = \"nats\"\nurl = \"{}\"\njetstream = false\nsubject = \"core.>\"\n\
             queue = \"workers\"\ndecoding.codec = \"bytes\"\n\
             [sinks.out]\ntype = \"file\"\ninputs = [\"in\"]\npath = \"out.log\"\n",
            server.url()
        ),
    );
    let mut howl = crate::common::Running::start(dir.path(), &config, api, &[]).await;
    let client = server.client().await;
    // At most once: what is published before the subscription exists is
    // lost, so publish until something arrives.
    let out = dir.path().join("out.log");
    let mut sent = 0;
    let first = loop {
        client
            .publish("core.app", format!("hello {sent}").into())
            .await
            .expect("publish");
        client.flush().await.expect("flush");
        sent += 1;
        if let Some(line) = lines_in(&out).first() {
            break line.clone();
        }
        assert!(sent < 100, "nothing received:\n{}", howl.stderr());
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let event: serde_json::Value = serde_json::from_str(&first).expect("JSON line");
    assert_eq!(event["subject"], "core.app");
    assert_eq!(event["source_type"], "nats");
    assert!(
        event["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("hello ")),
        "{event}"
    );
    howl.terminate_cleanly(Duration::from_secs(20));
}

/// Runs stdin → `nats` sink (creating stream `LOGS`) with `connection`
/// options against `url`; returns the output.
fn publish_with(url: &str, connection: &str) -> std::process::Output {
    let config = stdin_to_nats(
        url,
        &format!(
            "subject = \"logs.{{{{ .service }}}}\"\n\
             stream = {{ name = \"LOGS\", subjects = [\"logs.>\"] }}\n{connection}"
        ),
    );
    run_stdin(&config, &numbered_json(0..3))
}

#[tokio::test]
async fn user_password_token_and_nkey_authenticate_and_stay_out_of_logs() {
    // User and password; a wrong password fails at once, unprinted.
    let server = NatsServer::start_with(&["--user", "howl", "--pass", "s3cret-Pw"]).await;
    let good = publish_with(
        &server.url(),
        "auth = { strategy = \"user_password\", user = \"howl\", password = \"s3cret-Pw\" }",
    );
    assert!(
        good.status.success(),
        "{}",
        String::from_utf8_lossy(&good.stderr)
    );
    let bad = publish_with(
        &server.url(),
        "auth = { strategy = \"user_password\", user = \"howl\", password = \"wr0ng-Pw\" }",
    );
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(!bad.status.success());
    assert!(
        stderr.contains("sinks.out: cannot connect to NATS at")
            && stderr.contains("trying again cannot help")
            && stderr.contains("authorization violation"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("wr0ng-Pw") && !stderr.contains("s3cret-Pw"),
        "{stderr}"
    );
    drop(server);

    let server = NatsServer::start_with(&["--auth", "t0ken-Xyz"]).await;
    let token = publish_with(
        &server.url(),
        "auth = { strategy = \"token\", token = \"t0ken-Xyz\" }",
    );
    assert!(
        token.status.success(),
        "{}",
        String::from_utf8_lossy(&token.stderr)
    );
    assert!(!String::from_utf8_lossy(&token.stderr).contains("t0ken-Xyz"));
    drop(server);

    let user = nkeys::KeyPair::new_user();
    let seed = user.seed().expect("seed");
    let dir = tempfile::tempdir().expect("temp dir");
    let config = write(
        dir.path(),
        "nkey.conf",
        &format!(
            "authorization {{ users = [ {{ nkey: \"{}\" }} ] }}\n",
            user.public_key()
        ),
    );
    let server = NatsServer::start_with(&["-c", config.to_str().expect("utf-8 path")]).await;
    let nkey = publish_with(
        &server.url(),
        &format!("auth = {{ strategy = \"nkey\", nkey_seed = \"{seed}\" }}"),
    );
    assert!(
        nkey.status.success(),
        "{}",
        String::from_utf8_lossy(&nkey.stderr)
    );
    assert!(!String::from_utf8_lossy(&nkey.stderr).contains(&seed));
}

#[tokio::test]
async fn tls_with_a_private_ca() {
    let certs = tempfile::tempdir().expect("temp dir");
    crate::syslog::make_certificates(certs.path());
    let file = |name: &str| certs.path().join(name).display().to_string();
    let (crt, key) = (file("crt.pem"), file("key.pem"));
    let server = NatsServer::start_with(&["--tls", "--tlscert", &crt, "--tlskey", &key]).await;
    let trusted = publish_with(
        &server.url(),
        &format!("tls.ca_file = \"{}\"", file("ca.pem")),
    );
    assert!(
        trusted.status.success(),
        "{}",
        String::from_utf8_lossy(&trusted.stderr)
    );
    // Without the CA the server's certificate is not trusted: refused.
    let untrusted = publish_with(&server.url().replace("nats://", "tls://"), "");
    let stderr = String::from_utf8_lossy(&untrusted.stderr);
    assert!(!untrusted.status.success());
    assert!(
        stderr.contains("trying again cannot help") && stderr.contains("UnknownIssuer"),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_message_over_the_servers_max_payload_is_rejected_not_retried() {
    let server = NatsServer::start().await;
    let config = stdin_to_nats(
        &server.url(),
        "subject = \"logs.{{ .service }}\"\nstream = { name = \"LOGS\", subjects = [\"logs.>\"] }",
    )
    .replace(
        "decoding.codec = \"json\"\n",
        "decoding.codec = \"json\"\nmax_line_bytes = 4000000\n",
    );
    let big = "x".repeat(2 * 1024 * 1024);
    let input = format!(
        "{{\"service\":\"a\",\"message\":\"small\"}}\n{{\"service\":\"a\",\"message\":\"{big}\"}}\n"
    );
    let started = std::time::Instant::now();
    let output = run_stdin(&config, &input);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "stdin counts the refused line");
    assert!(
        stderr.contains("the server refused a message to `logs.a`"),
        "{}",
        &stderr[..stderr.len().min(4000)]
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "refused at once, not retried for retry.max_duration_secs"
    );
    let stored = server.stored("LOGS").await;
    assert_eq!(stored.len(), 1, "the small line is stored");
}

#[tokio::test]
async fn two_instances_on_one_durable_consumer_split_the_work() {
    const LINES: usize = 4000;
    let server = NatsServer::start().await;
    // The stream first, empty: with the lines already in it, the instance that was up first
    // could take all of them before the second one connected (split 4000 / 0 on a busy machine).
    publish_numbered(&server, 0);
    let (first, second) = (
        tempfile::tempdir().expect("temp dir"),
        tempfile::tempdir().expect("temp dir"),
    );
    // Small pulls, so that neither instance takes the whole stream at once.
    let options = "max_ack_pending = 50";
    let mut a = start_consumer(&server, first.path(), "out.log", options).await;
    let mut b = start_consumer(&server, second.path(), "out.log", options).await;
    publish_numbered(&server, LINES);
    server
        .wait_for_stream("LOGS", "empty", Duration::from_secs(60), |n| n == 0)
        .await;
    for howl in [&mut a, &mut b] {
        howl.terminate_cleanly(Duration::from_secs(20));
    }
    let (lines_a, lines_b) = (
        lines_in(&first.path().join("out.log")),
        lines_in(&second.path().join("out.log")),
    );
    eprintln!("split {} / {}", lines_a.len(), lines_b.len());
    assert!(
        !lines_a.is_empty() && !lines_b.is_empty(),
        "both took a share"
    );
    let mut all: Vec<&String> = lines_a.iter().chain(&lines_b).collect();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), LINES, "every line, once across both");
    assert_eq!(lines_a.len() + lines_b.len(), LINES, "no line twice");
}

#[tokio::test]
async fn a_consumer_deleted_under_a_running_source_is_created_again() {
    let server = NatsServer::start().await;
    publish_numbered(&server, 100);
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("out.log");
    let mut howl = start_consumer(&server, dir.path(), "out.log", "").await;
    wait_for_all_lines(&out, 100, Duration::from_secs(30)).await;
    server
        .wait_for_stream("LOGS", "empty", Duration::from_secs(10), |n| n == 0)
        .await;
    server
        .jetstream()
        .await
        .get_stream("LOGS")
        .await
        .expect("stream")
        .delete_consumer("workers")
        .await
        .expect("delete the consumer");
    // Ids 0..100 are deduplicated: lines 100..200 are stored.
    publish_numbered(&server, 200);
    let counts = wait_for_all_lines(&out, 200, Duration::from_secs(30)).await;
    assert!(
        counts.iter().all(|c| *c == 1),
        "every line once: {counts:?}\n{}",
        howl.stderr()
    );
    howl.terminate_cleanly(Duration::from_secs(20));
}

#[tokio::test]
async fn a_server_restarted_without_its_store_gets_its_stream_and_consumer_back() {
    let mut server = NatsServer::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let url = server.url();
    // One howl publishes the file to a work queue and consumes it back.
    let (mut howl, log) = start_file_publisher(
        dir.path(),
        &url,
        0..100,
        "stream = { name = \"LOGS\", subjects = [\"logs.>\"], retention = \"work_queue\" }\n\
         ack_timeout_secs = 1\nretry.initial_backoff_secs = 0.2\nretry.max_backoff_secs = 1\n",
        &format!(
            "[sources.in]\ntype = \"nats\"\nurl = \"{url}\"\nstream = \"LOGS\"\nconsumer = \"workers\"\n\
             [sinks.copy]\ntype = \"file\"\ninputs = [\"in\"]\npath = \"out.log\"\nencoding = \"text\"\n\
             acknowledgements.enabled = true\n"
        ),
    )
    .await;
    let out = dir.path().join("out.log");
    wait_for_all_lines(&out, 100, Duration::from_secs(30)).await;
    server.kill_and_restart_empty().await;
    append_lines(&log, 100..200);
    // The source notices the lost pull request by its missed heartbeats
    // (about 20 s), then opens the consumer again.
    let limit = Duration::from_secs(60);
    let deadline = std::time::Instant::now() + limit;
    let missing = loop {
        let lines = lines_in(&out);
        let missing: Vec<usize> = (100..200)
            .filter(|i| !lines.contains(&format!("line {i}")))
            .collect();
        if missing.is_empty() || std::time::Instant::now() > deadline {
            break missing;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        missing.is_empty(),
        "lines {missing:?} not back after {limit:?}:\n{}",
        howl.stderr()
    );
    howl.terminate_cleanly(Duration::from_secs(20));
}

#[tokio::test]
async fn a_sink_slower_than_ack_wait_causes_no_redelivery() {
    use crate::common::capture::{Capture, Reply};
    const LINES: usize = 20;
    let server = NatsServer::start().await;
    publish_numbered(&server, LINES);
    // The first request takes 3.5 s, far beyond the 1 s ack_wait.
    let receiver =
        Capture::start(vec![Reply::status(200).delay(Duration::from_millis(3500))]).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let api = crate::common::free_port();
    let config = write(
        dir.path(),
        "consumer.toml",
        &format!(
            "[api]\nenabled = true\naddress = \"127.0.0.1:{api}\"\n\
             [sources.in]\ntype = \"nats\"\nurl = \"{}\"\nstream = \"LOGS\"\nconsumer = \"workers\"\n\
             ack_wait_secs = 1\n\
             [sinks.hook]\ntype = \"webhook\"\ninputs = [\"in\"]\nuri = \"{}/in\"\n\
             encoding = \"ndjson\"\nbatch.timeout_secs = 0.1\nacknowledgements.enabled = true\n",
            server.url(),
            receiver.base
        ),
    );
    let mut howl = crate::common::Running::start(dir.path(), &config, api, &[]).await;
    server
        .wait_for_stream("LOGS", "empty", Duration::from_secs(20), |n| n == 0)
        .await;
    // Room for a redelivery to show up, were there one.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let counts = count_lines(
        receiver.requests().iter().flat_map(|request| {
            request
                .body
                .split(|b| *b == b'\n')
                .filter(|line| !line.is_empty())
                .map(<[u8]>::to_vec)
                .collect::<Vec<_>>()
        }),
        LINES,
    );
    assert!(
        counts.iter().all(|c| *c == 1),
        "each line once, none redelivered while in flight: {counts:?}\n{}",
        howl.stderr()
    );
    howl.terminate_cleanly(Duration::from_secs(20));
}

#[tokio::test]
async fn a_message_over_the_streams_max_msg_size_is_rejected_not_retried() {
    let server = NatsServer::start().await;
    server
        .jetstream()
        .await
        .create_stream(async_nats::jetstream::stream::Config {
            name: "LOGS".to_string(),
            subjects: vec!["logs.>".to_string()],
            max_message_size: 1000,
            ..Default::default()
        })
        .await
        .expect("create stream");
    let config = stdin_to_nats(
        &server.url(),
        "subject = \"logs.{{ .service }}\"\nretry.initial_backoff_secs = 0.1\n\
         retry.max_backoff_secs = 0.5\nretry.max_duration_secs = 20",
    );
    let big = "x".repeat(2000);
    let input = format!(
        "{{\"service\":\"a\",\"message\":\"small\"}}\n{{\"service\":\"a\",\"message\":\"{big}\"}}\n"
    );
    let started = std::time::Instant::now();
    let output = run_stdin(&config, &input);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "stdin counts the refused line");
    assert!(
        stderr.contains("the server refused a message to `logs.a`")
            && stderr.contains("message size exceeds maximum allowed"),
        "{stderr}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "refused at once, not retried for retry.max_duration_secs ({:?})",
        started.elapsed()
    );
    assert_eq!(
        server.stored("LOGS").await.len(),
        1,
        "the small line is stored"
    );
}

#[tokio::test]
async fn a_stalled_server_is_probed_with_one_message_not_sent_every_retry() {
    let server = NatsServer::start().await;
    server.create_stream("LOGS", &["logs.>"]).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut howl, log) = start_file_publisher(
        dir.path(),
        &server.url(),
        0..10,
        "ack_timeout_secs = 0.5\nretry.initial_backoff_secs = 0.2\nretry.max_backoff_secs = 0.5\n",
        "",
    )
    .await;
    server
        .wait_for_stream("LOGS", "10", Duration::from_secs(20), |n| n >= 10)
        .await;
    // Frozen, not gone: the connection stays up, acknowledgements stop.
    server.signal("STOP");
    append_lines(&log, 10..60);
    // Long enough for several acknowledgement timeouts and retries.
    tokio::time::sleep(Duration::from_secs(4)).await;
    server.signal("CONT");
    assert!(
        howl.stderr().contains("no acknowledgement in time"),
        "{}",
        howl.stderr()
    );
    server
        .wait_for_stream("LOGS", "60", Duration::from_secs(20), |n| n >= 60)
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let counts = count_lines(
        server
            .stored("LOGS")
            .await
            .into_iter()
            .map(|(_, _, payload)| payload),
        60,
    );
    // One message probes the frozen server at each attempt; every other
    // one is published again only once the probe is acknowledged.
    let more_than_twice = counts.iter().filter(|c| **c > 2).count();
    eprintln!(
        "copies stored per line after the freeze: {:?}",
        &counts[10..]
    );
    assert!(
        counts.iter().all(|c| *c >= 1) && more_than_twice <= 1,
        "each line stored once, or twice when its acknowledgement was late: {counts:?}\n{}",
        howl.stderr()
    );
    howl.terminate_cleanly(Duration::from_secs(20));
}

#[tokio::test]
async fn an_event_cannot_steer_the_subject_into_the_servers_api_or_a_wildcard() {
    let server = NatsServer::start().await;
    let config = stdin_to_nats(
        &server.url(),
        "subject = \"{{ .target }}\"\nstream = { name = \"LOGS\", subjects = [\"logs.>\"] }\n\
         encoding = \"text\"\nretry.initial_backoff_secs = 0.1\nretry.max_duration_secs = 1",
    );
    // An empty message is the empty request the server's API takes.
    let input = "{\"target\":\"logs.a\",\"message\":\"fine\"}\n\
                 {\"target\":\"$JS.API.STREAM.DELETE.LOGS\",\"message\":\"\"}\n\
                 {\"target\":\"logs.>\",\"message\":\"wildcard\"}\n\
                 {\"target\":\"logs.*\",\"message\":\"wildcard\"}\n\
                 {\"target\":\"logs.a b\",\"message\":\"space\"}\n\
                 {\"message\":\"no target\"}\n";
    let output = run_stdin(&config, input);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success(),
        "the hostile lines are not delivered"
    );
    assert!(
        stderr.contains(
            "`subject` rendered \"$JS.API.STREAM.DELETE.LOGS\", which is a subject reserved"
        ),
        "{stderr}"
    );
    for rendered in [
        "logs.>",
        "logs.*",
        "logs.a b",
        "\" (missing field(s) .target)",
    ] {
        assert!(
            stderr.contains(&format!("rendered \"{rendered}")),
            "{rendered}: {stderr}"
        );
    }
    let stored = server.stored("LOGS").await;
    assert_eq!(
        stored.len(),
        1,
        "the stream is still there, its message kept"
    );
}

#[tokio::test]
async fn sigterm_mid_stream_loses_nothing_and_writes_nothing_twice() {
    const LINES: usize = 5000;
    let server = NatsServer::start().await;
    publish_numbered(&server, LINES);
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("out.log");
    // A short ack_wait: messages the server handed to a pull request the
    // stopping instance no longer reads come back after it.
    let options = "ack_wait_secs = 3";
    let mut howl = start_consumer(&server, dir.path(), "out.log", options).await;
    crate::common::wait_for("a thousand lines written", Duration::from_secs(30), || {
        (lines_in(&out).len() >= 1000).then_some(())
    })
    .await;
    howl.terminate_cleanly(Duration::from_secs(20));
    let written = lines_in(&out).len();
    assert!(written < LINES, "stopped mid-stream, not after the end");
    let started = std::time::Instant::now();
    let mut howl = start_consumer(&server, dir.path(), "out.log", options).await;
    let counts = wait_for_all_lines(&out, LINES, Duration::from_secs(15)).await;
    let duplicates: u32 = counts.iter().map(|c| c - 1).sum();
    eprintln!(
        "stopped after {written} lines; the restart finished in {:?} with {duplicates} duplicates",
        started.elapsed()
    );
    assert_eq!(duplicates, 0, "a graceful stop acknowledged what it wrote");
    howl.terminate_cleanly(Duration::from_secs(20));
}

#[tokio::test]
async fn malformed_payloads_become_events_and_are_acknowledged() {
    let server = NatsServer::start().await;
    server.create_work_queue().await;
    let js = server.jetstream().await;
    let huge = format!("{{\"message\":\"{}\"}}", "y".repeat(900 * 1024));
    let payloads: Vec<Vec<u8>> = vec![
        b"not json at all".to_vec(),
        b"42".to_vec(),
        b"\"a string\"".to_vec(),
        b"[1, {\"message\":\"in an array\"}]".to_vec(),
        b"{\"message\":".to_vec(),
        b"[]".to_vec(),
        Vec::new(),
        vec![0xff, 0xfe, 0x00, b'{'],
        huge.into_bytes(),
    ];
    for payload in &payloads {
        js.publish("logs.x", payload.clone().into())
            .await
            .expect("publish")
            .await
            .expect("stored");
    }
    server
        .wait_for_stream("LOGS", "all kept", Duration::from_secs(5), |n| {
            n == payloads.len() as u64
        })
        .await;
    let dir = tempfile::tempdir().expect("temp dir");
    let mut howl = start_consumer(&server, dir.path(), "out.log", "").await;
    // Every message answered: none left for a redelivery loop.
    server
        .wait_for_stream("LOGS", "empty", Duration::from_secs(20), |n| n == 0)
        .await;
    // Not UTF-8 throughout: one payload is not.
    let written =
        String::from_utf8_lossy(&std::fs::read(dir.path().join("out.log")).unwrap_or_default())
            .into_owned();
    for expected in [
        "not json at all",
        "in an array",
        "a string",
        "{\"message\":",
    ] {
        assert!(
            written.contains(expected),
            "{expected:?} missing:\n{}",
            &written[..written.len().min(2000)]
        );
    }
    assert!(
        written.contains(&"y".repeat(1000)),
        "the large message is written"
    );
    let output = howl.terminate(Duration::from_secs(20));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("decode"),
        "decode failures are reported:\n{stderr}"
    );
}

#[tokio::test]
async fn compressed_packs_go_round_trip_and_a_bad_frame_is_passed_on_not_lost() {
    let server = NatsServer::start().await;
    let config = stdin_to_nats(
        &server.url(),
        "subject = \"logs.app\"\nevents_per_message = 100\ncompression = \"zstd\"\n\
         batch.max_events = 500\n\
         stream = { name = \"LOGS\", subjects = [\"logs.>\"], retention = \"work_queue\" }",
    )
    .replace("decoding.codec = \"json\"\n", "");
    let output = run_stdin(&config, &numbered_lines(0..1000));
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // Stored compressed, and marked so.
    let js = server.jetstream().await;
    let mut stream = js.get_stream("LOGS").await.expect("stream");
    let first = stream.get_raw_message(1).await.expect("first message");
    assert_eq!(
        first.headers.get("Content-Encoding").map(|v| v.as_str()),
        Some("zstd")
    );
    assert_eq!(
        &first.payload[..4],
        &[0x28, 0xB5, 0x2F, 0xFD],
        "a zstd frame"
    );
    let stored = stream.info().await.expect("info").state.clone();
    assert_eq!(stored.messages, 10, "1000 events in packs of 100");
    // Marked zstd but not zstd; a frame claiming to expand to 1 TiB; an
    // encoding howl does not know. Each is passed on as it came.
    let mut bomb = vec![0x28, 0xB5, 0x2F, 0xFD, 0xE0];
    bomb.extend_from_slice(&(1u64 << 40).to_le_bytes());
    bomb.extend_from_slice(&[0; 8]);
    for (encoding, payload) in [
        (
            "zstd",
            b"{\"message\":\"plain despite the header\"}".to_vec(),
        ),
        ("zstd", bomb),
        ("br", b"{\"message\":\"an unknown encoding\"}".to_vec()),
    ] {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Content-Encoding", encoding);
        js.publish_with_headers("logs.odd", headers, payload.into())
            .await
            .expect("publish")
            .await
            .expect("stored");
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let mut howl = start_consumer(&server, dir.path(), "out.log", "").await;
    server
        .wait_for_stream("LOGS", "empty", Duration::from_secs(30), |n| n == 0)
        .await;
    // The bomb's bytes are not UTF-8: read leniently.
    let written =
        String::from_utf8_lossy(&std::fs::read(dir.path().join("out.log")).unwrap_or_default())
            .into_owned();
    let mut counts = vec![0u32; 1000];
    for line in written.lines() {
        if let Some(i) = line
            .strip_prefix("line ")
            .and_then(|i| i.parse::<usize>().ok())
        {
            counts[i] += 1;
        }
    }
    assert!(counts.iter().all(|c| *c == 1), "every line exactly once");
    for expected in ["plain despite the header", "an unknown encoding"] {
        assert!(written.contains(expected), "{expected:?} passed on");
    }
    let metrics = howl.metrics().await;
    let decode_failed = metric(
        &metrics,
        "component_errors_total",
        &["error_type=\"decode_failed\"", "component_id=\"in\""],
    );
    assert!(
        decode_failed >= Some(3.0),
        "each bad frame counted: {decode_failed:?}"
    );
    howl.terminate_cleanly(Duration::from_secs(20));
}
