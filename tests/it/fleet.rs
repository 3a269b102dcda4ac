//! The fleet, through real howl binaries and a real `nats-server -js`:
//! edges (`file` → `nats` sink) publishing numbered lines onto a work-queue
//! stream, workers (`nats` source → `file` sink) sharing one durable
//! consumer. A worker killed with SIGKILL and started again, and the
//! server stopped for 30 s while the edges publish: every line arrives at
//! least once, and the duplicates stay within what the options bound.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::nats::{
    NatsServer, append_lines, lines_in, start_consumer, start_file_publisher, wait_for_all_lines,
    wait_for_all_lines_in,
};
use crate::common::{Running, metric, wait_for};

/// Cuts a line torn by a SIGKILL off the end of `path`: its message was
/// not acknowledged, so it comes again, whole.
fn cut_torn_line(path: &Path) {
    let text = std::fs::read(path).unwrap_or_default();
    let whole = text
        .iter()
        .rposition(|b| *b == b'\n')
        .map_or(0, |at| at + 1);
    std::fs::write(path, &text[..whole]).expect("cut a torn line");
}

/// Stops `howl` with SIGTERM and checks that it exited cleanly.
fn stop_cleanly(howl: &mut Running, what: &str) {
    let output = howl.terminate(Duration::from_secs(20));
    assert!(
        output.status.success(),
        "{what} did not exit cleanly:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test]
async fn two_edges_three_workers_a_worker_killed_and_restarted_every_line_arrives() {
    const LINES: usize = 100_000;
    const MAX_ACK_PENDING: u32 = 1000;
    let started = Instant::now();
    let server = NatsServer::start().await;
    server.create_work_queue().await;
    // Three workers on one durable consumer; a short ack_wait, so that what
    // the killed worker held goes to the others soon.
    let worker_options = format!("max_ack_pending = {MAX_ACK_PENDING}\nack_wait_secs = 2");
    let dirs: Vec<tempfile::TempDir> = (0..3)
        .map(|_| tempfile::tempdir().expect("temp dir"))
        .collect();
    let outs: Vec<std::path::PathBuf> = dirs.iter().map(|d| d.path().join("out.log")).collect();
    let mut workers = Vec::new();
    for dir in &dirs {
        workers.push(start_consumer(&server, dir.path(), "out.log", &worker_options).await);
    }
    // Two edges, half of the lines each, two batches in flight each.
    // `msg_id` makes a publish retried after a lost acknowledgement stored
    // once, so every duplicate below is the workers' doing.
    let edge_options = "msg_id = \"{{ .message }}\"\nbatch.max_events = 500\nconcurrency = 2\n";
    let edge_dirs = [
        tempfile::tempdir().expect("temp dir"),
        tempfile::tempdir().expect("temp dir"),
    ];
    let mut edges = Vec::new();
    for (i, dir) in edge_dirs.iter().enumerate() {
        let half = LINES / 2;
        let (edge, _) = start_file_publisher(
            dir.path(),
            &server.url(),
            i * half..(i + 1) * half,
            edge_options,
            "",
        )
        .await;
        edges.push(edge);
    }
    let paths = || outs.iter().map(|p| p.as_path()).collect::<Vec<_>>();
    let written = || paths().iter().map(|p| lines_in(p).len()).sum::<usize>();
    wait_for(
        "the workers to write 20,000 lines",
        Duration::from_secs(40),
        || (written() >= 20_000).then_some(()),
    )
    .await;
    let mut victim = workers[0].child.take().expect("running");
    victim.kill().expect("kill -9 a worker");
    victim.wait().expect("reap it");
    let at_kill = written();
    assert!(at_kill < LINES, "killed mid-stream, not after the end");
    cut_torn_line(&outs[0]);
    workers[0] = start_consumer(&server, dirs[0].path(), "out.log", &worker_options).await;
    let counts = wait_for_all_lines_in(&paths(), LINES, Duration::from_secs(45)).await;
    let duplicates: u32 = counts.iter().map(|c| c - 1).sum();
    eprintln!(
        "killed a worker after {at_kill} lines; {duplicates} duplicates; per worker: {:?}; {:?} in all",
        paths()
            .iter()
            .map(|p| lines_in(p).len())
            .collect::<Vec<_>>(),
        started.elapsed()
    );
    // Only what the killed worker held unacknowledged comes again, and
    // the consumer never lets more than max_ack_pending out at once.
    assert!(
        duplicates <= MAX_ACK_PENDING,
        "{duplicates} duplicates, more than max_ack_pending ({MAX_ACK_PENDING})"
    );
    // Everything was acknowledged: the work queue is empty.
    server
        .wait_for_stream("LOGS", "empty", Duration::from_secs(15), |n| n == 0)
        .await;
    assert!(
        workers[0].stderr().contains("consuming"),
        "the restarted worker took its place on the consumer:\n{}",
        workers[0].stderr()
    );
    for (i, worker) in workers.iter_mut().enumerate() {
        stop_cleanly(worker, &format!("worker {i}"));
    }
    for (i, edge) in edges.iter_mut().enumerate() {
        stop_cleanly(edge, &format!("edge {i}"));
    }
}

/// An edge that packs `per_message` events into each message, with short
/// acknowledgement timeouts and retry backoffs (`retry` adds to them).
fn edge_options(per_message: usize, retry: &str) -> String {
    format!(
        "msg_id = \"{{{{ .message }}}}\"\nevents_per_message = {per_message}\n\
         batch.max_events = 500\nack_timeout_secs = 1\nretry.initial_backoff_secs = 0.2\n\
         retry.max_backoff_secs = 1\n{retry}"
    )
}

#[tokio::test]
async fn an_edge_holds_its_lines_through_a_30_s_outage_and_the_worker_resumes() {
    const OUTAGE: Duration = Duration::from_secs(30);
    const PER_MESSAGE: usize = 20;
    const MAX_ACK_PENDING: u32 = 10;
    let mut server = NatsServer::start().await;
    server.create_work_queue().await;
    let worker_dir = tempfile::tempdir().expect("temp dir");
    let out = worker_dir.path().join("out.log");
    let mut worker = start_consumer(
        &server,
        worker_dir.path(),
        "out.log",
        &format!("max_ack_pending = {MAX_ACK_PENDING}\nack_wait_secs = 2"),
    )
    .await;
    let edge_dir = tempfile::tempdir().expect("temp dir");
    // The default retry budget (300 s) outlasts the outage: the sink keeps
    // its batch and takes nothing more, so the file source stops reading.
    let (mut edge, log) = start_file_publisher(
        edge_dir.path(),
        &server.url(),
        0..1000,
        &edge_options(PER_MESSAGE, ""),
        "",
    )
    .await;
    wait_for_all_lines(&out, 1000, Duration::from_secs(30)).await;
    server.stop();
    // The log goes on growing while the server is away.
    let down = Instant::now();
    let mut next = 1000;
    while down.elapsed() < OUTAGE {
        append_lines(&log, next..next + 500);
        next += 500;
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    let during = next;
    // Nothing reached the worker while the server was away.
    let stranded = lines_in(&out).len();
    server.restart().await;
    append_lines(&log, next..next + 1000);
    next += 1000;
    let back = Instant::now();
    let counts = wait_for_all_lines(&out, next, Duration::from_secs(40)).await;
    let resumed_after = back.elapsed();
    let duplicates: u32 = counts.iter().map(|c| c - 1).sum();
    eprintln!(
        "{} lines written during a {OUTAGE:?} outage; all {next} lines arrived {resumed_after:?} \
         after the restart; {duplicates} duplicates; {stranded} lines at the worker when it came \
         back",
        during - 1000,
    );
    // The edge's retried packs keep their ids (deduplicated by the
    // stream); what the worker had unacknowledged when the server went
    // away comes again: at most max_ack_pending messages of PER_MESSAGE
    // events.
    let bound = MAX_ACK_PENDING * PER_MESSAGE as u32;
    assert!(
        duplicates <= bound,
        "{duplicates} duplicates, more than {bound}"
    );
    let stderr = edge.stderr();
    assert!(
        stderr.contains("not acknowledged") && stderr.contains("NATS connection (re)established"),
        "the edge logs the outage and the return:\n{stderr}"
    );
    // Pulling again only after two missed heartbeats would take 20 s or
    // more; the worker pulls again as soon as the connection is back (by
    // itself, or through the client, which also re-pulls on reconnect:
    // either way, not through the heartbeat).
    assert!(
        resumed_after < Duration::from_secs(12),
        "the worker pulls again as soon as the server is back, not after missed heartbeats \
         ({resumed_after:?}):\n{}",
        worker.stderr()
    );
    server
        .wait_for_stream("LOGS", "empty", Duration::from_secs(15), |n| n == 0)
        .await;
    stop_cleanly(&mut edge, "the edge");
    stop_cleanly(&mut worker, "the worker");
}

#[tokio::test]
async fn a_retry_budget_shorter_than_the_outage_discards_and_counts_what_it_gave_up() {
    let mut server = NatsServer::start().await;
    server.create_work_queue().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut edge, log) = start_file_publisher(
        dir.path(),
        &server.url(),
        0..500,
        &edge_options(10, "retry.max_duration_secs = 2\n"),
        "",
    )
    .await;
    server
        .wait_for_stream("LOGS", "500 lines' packs", Duration::from_secs(20), |n| {
            n >= 50
        })
        .await;
    server.stop();
    // Lines keep coming for 6 s of outage, three times the retry budget.
    for step in 0..3 {
        append_lines(&log, 500 + step * 500..1000 + step * 500);
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    server.restart().await;
    append_lines(&log, 2000..2500);
    let discarded = || async {
        let text = edge.metrics().await;
        metric(
            &text,
            "component_discarded_events_total",
            &["component_id=\"out\"", "intentional=\"false\""],
        )
        .unwrap_or(0.0)
    };
    // Every line is stored, or counted as given up on: wait until the two
    // add up (the last lines are stored once the server is back).
    let deadline = Instant::now() + Duration::from_secs(30);
    let (stored, gave_up) = loop {
        let messages = server.stored("LOGS").await;
        let payloads = messages.into_iter().map(|(_, _, payload)| payload);
        let mut counts = vec![0u32; 2500];
        for payload in payloads {
            let pack: Vec<serde_json::Value> =
                serde_json::from_slice(&payload).expect("a pack is a JSON array");
            for event in pack {
                let line = event["message"].as_str().expect("a message").to_string();
                let index: usize = line
                    .strip_prefix("line ")
                    .and_then(|i| i.parse().ok())
                    .expect("a numbered line");
                counts[index] += 1;
            }
        }
        let stored = counts.iter().filter(|c| **c > 0).count();
        let gave_up = discarded().await as usize;
        if stored + gave_up >= 2500 && counts[2499] > 0 {
            break (stored, gave_up);
        }
        assert!(
            Instant::now() < deadline,
            "{stored} lines stored and {gave_up} given up on, of 2500:\n{}",
            edge.stderr()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // Given up on is not always lost: what the sink had handed to the
    // client before the connection dropped is written when it comes back,
    // stored though counted. The count is an upper bound on the loss.
    eprintln!("retry budget 2 s, outage 6 s: {stored} lines stored, {gave_up} given up on");
    assert!(
        gave_up > 0,
        "a 2 s retry budget gives up during a 6 s outage"
    );
    assert!(
        edge.stderr().contains("gave up on"),
        "giving up is logged:\n{}",
        edge.stderr()
    );
    stop_cleanly(&mut edge, "the edge");
}
