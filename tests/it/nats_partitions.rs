//! Partitioned routing and partition leases against a real
//! `nats-server -js`, through howl binaries: the sink's `partition.*`
//! subjects, three workers sharing 16 partitions (balance, a `kill -9`
//! taken over within the lease TTL, a restart rebalanced, no partition
//! consumed by two workers at once, nothing lost), and the errors of a
//! fleet that disagrees on its count or of a lease bucket that is not one.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::common::nats::{NatsServer, start_partitioned_edge};
use crate::common::{Running, free_port, run_with_input, write};

pub(crate) const COUNT: u32 = 16;
/// Short, so that the test sees leases expire; the default is 10 s.
pub(crate) const TTL_SECS: u64 = 4;
const MAX_ACK_PENDING: u32 = 100;

#[tokio::test]
async fn the_sink_publishes_each_key_on_its_partition_subject() {
    let server = NatsServer::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    write(
        dir.path(),
        "edge.toml",
        &format!(
            "[sources.in]\ntype = \"stdin\"\ndecoding.codec = \"json\"\n\
             [sinks.out]\ntype = \"nats\"\ninputs = [\"in\"]\nurl = \"{}\"\nsubject = \"logs\"\n\
             partition = {{ key = \"{{{{ .service }}}}\", count = 16 }}\n\
             stream = {{ name = \"LOGS\", subjects = [\"logs.>\"] }}\n",
            server.url()
        ),
    );
    // The partitions are the values pinned in `nats::partition`'s tests:
    // api 3, auth 8, billing 3, the empty key 6.
    let input = "{\"service\":\"api\",\"message\":\"a\"}\n\
                 {\"service\":\"auth\",\"message\":\"b\"}\n\
                 {\"service\":\"billing\",\"message\":\"c\"}\n\
                 {\"message\":\"no service\"}\n\
                 {\"service\":\"\",\"message\":\"empty service\"}\n";
    let output = run_with_input(
        &["run", "-c", "edge.toml"],
        dir.path(),
        input.as_bytes(),
        Duration::from_secs(60),
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "howl failed:\n{stderr}");
    let stored: Vec<(String, String)> = server
        .stored("LOGS")
        .await
        .into_iter()
        .map(|(subject, _, payload)| {
            let event: serde_json::Value = serde_json::from_slice(&payload).expect("JSON");
            (
                subject,
                event["message"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    let expected = [
        ("logs.3", "a"),
        ("logs.8", "b"),
        ("logs.3", "c"),
        ("logs.6", "no service"),
        ("logs.6", "empty service"),
    ];
    assert_eq!(
        stored,
        expected.map(|(s, m)| (s.to_string(), m.to_string())),
        "each event on its partition's subject, none dropped"
    );
    assert!(
        stderr.contains("`partition.key` refers to missing field(s) .service"),
        "the event without the key's field is reported:\n{stderr}"
    );
}

/// A worker's topology: the `nats` source with `partitions.*` → a `remap`
/// stamping when it handled each event (microseconds) → a JSON `file`
/// sink; `api` is TOML before it (the `[api]` table).
fn worker_config(server: &NatsServer, count: u32, api: &str) -> String {
    format!(
        "{api}[sources.in]\ntype = \"nats\"\nurl = \"{}\"\nstream = \"LOGS\"\nconsumer = \"workers\"\n\
             filter_subject = \"logs\"\nack_wait_secs = 3\nnak_delay_secs = 0.2\n\
             max_ack_pending = {MAX_ACK_PENDING}\n\
             partitions = {{ count = {count}, lease_ttl_secs = {TTL_SECS} }}\n\
             [transforms.stamp]\ntype = \"remap\"\ninputs = [\"in\"]\n\
             source = '.at = to_unix_timestamp(now(), unit: \"microseconds\")'\n\
             [sinks.out]\ntype = \"file\"\ninputs = [\"stamp\"]\npath = \"out.log\"\nencoding = \"json\"\n\
             acknowledgements.enabled = true\n",
        server.url()
    )
}

/// A running worker.
async fn start_worker(server: &NatsServer, dir: &Path, count: u32) -> Running {
    let api = free_port();
    let table = format!("[api]\nenabled = true\naddress = \"127.0.0.1:{api}\"\n");
    let config = write(dir, "worker.toml", &worker_config(server, count, &table));
    Running::start(dir, &config, api, &["--log-format", "json"]).await
}

/// Runs a worker `config` in `dir` until it exits (bounded).
fn run_until_exit(config: &str, dir: &Path) -> std::process::Output {
    write(dir, "worker.toml", config);
    run_with_input(
        &["run", "-c", "worker.toml"],
        dir,
        b"",
        Duration::from_secs(30),
    )
}

/// Appends lines `from..to`: `{"service": "svc-<seq % 48>", "seq": seq}`.
fn append(log: &Path, lines: std::ops::Range<usize>) {
    use std::io::Write;
    let text: String = lines
        .map(|seq| {
            format!(
                "{{\"service\":\"svc-{}\",\"seq\":{seq},\"message\":\"line {seq}\"}}\n",
                seq % 48
            )
        })
        .collect();
    std::fs::OpenOptions::new()
        .append(true)
        .open(log)
        .expect("open log")
        .write_all(text.as_bytes())
        .expect("append");
}

/// Who holds each partition's lease now: the pid in the holder's member
/// id (`<host>-<pid>-<random>`), by partition.
pub(crate) async fn holders(server: &NatsServer) -> BTreeMap<u32, u32> {
    let js = server.jetstream().await;
    let mut found = BTreeMap::new();
    let Ok(kv) = js.get_key_value("howl_leases").await else {
        return found;
    };
    for index in 0..COUNT {
        if let Ok(Some(value)) = kv.get(format!("workers.lease.{index}")).await {
            let claim: serde_json::Value = serde_json::from_slice(&value).expect("lease JSON");
            let member = claim["member"].as_str().expect("member").to_string();
            let pid = member
                .rsplit('-')
                .nth(1)
                .and_then(|pid| pid.parse().ok())
                .expect("a pid in the member id");
            found.insert(index, pid);
        }
    }
    found
}

/// Waits (bounded) until every partition is leased, only by `pids`, each
/// holding `fair` partitions (a range); returns the time it took and the
/// share of each pid.
pub(crate) async fn wait_for_holders(
    server: &NatsServer,
    pids: &[u32],
    fair: std::ops::RangeInclusive<usize>,
    limit: Duration,
) -> (Duration, HashMap<u32, usize>) {
    let started = Instant::now();
    loop {
        let held = holders(server).await;
        let mut share: HashMap<u32, usize> = pids.iter().map(|pid| (*pid, 0)).collect();
        let mut foreign = false;
        for pid in held.values() {
            match share.get_mut(pid) {
                Some(n) => *n += 1,
                None => foreign = true,
            }
        }
        if held.len() == COUNT as usize && !foreign && share.values().all(|n| fair.contains(n)) {
            return (started.elapsed(), share);
        }
        assert!(
            started.elapsed() < limit,
            "after {limit:?} the leases are {held:?}, wanted only {pids:?}, each {fair:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The worker's `nats_partitions_owned` gauge.
async fn owned(worker: &Running) -> Option<f64> {
    crate::common::metric(&worker.metrics().await, "nats_partitions_owned", &[])
}

/// One delivered line: its partition, seq, and when (µs) which worker
/// handled it.
struct Handled {
    partition: u32,
    seq: usize,
    at: i64,
    worker: usize,
}

fn handled(dir: &Path, worker: usize) -> Vec<Handled> {
    crate::common::complete_lines(&dir.join("out.log"))
        .lines()
        .map(|line| {
            let event: serde_json::Value = serde_json::from_str(line).expect("JSON line");
            Handled {
                partition: event["subject"]
                    .as_str()
                    .and_then(|s| s.strip_prefix("logs."))
                    .and_then(|p| p.parse().ok())
                    .expect("a partition subject"),
                seq: event["seq"].as_u64().expect("seq") as usize,
                at: event["at"].as_i64().expect("at"),
                worker,
            }
        })
        .collect()
}

/// The edge, fed ~1,000 lines a second until [`Feed::stop`].
struct Feed {
    edge: Running,
    written: Arc<AtomicUsize>,
    stop: tokio_util::sync::CancellationToken,
    appender: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl Feed {
    /// Starts the edge with 1,000 lines, waits for the stream, and keeps
    /// appending.
    async fn start(server: &NatsServer) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let (edge, log) = start_partitioned_edge(
            server,
            dir.path(),
            COUNT,
            "msg_id = \"{{ .seq }}\"\nbatch.max_events = 200\n",
        )
        .await;
        append(&log, 0..1000);
        server
            .wait_for_stream("LOGS", "some", Duration::from_secs(30), |n| n > 0)
            .await;
        let written = Arc::new(AtomicUsize::new(1000));
        let stop = tokio_util::sync::CancellationToken::new();
        let appender = tokio::spawn({
            let (written, stop) = (Arc::clone(&written), stop.clone());
            async move {
                while !stop.is_cancelled() {
                    let from = written.load(Ordering::SeqCst);
                    append(&log, from..from + 20);
                    written.store(from + 20, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        });
        Self {
            edge,
            written,
            stop,
            appender,
            _dir: dir,
        }
    }

    /// Stops appending; returns how many lines were written, and the edge.
    async fn stop(self) -> (usize, Running) {
        self.stop.cancel();
        self.appender.await.expect("appender");
        (self.written.load(Ordering::SeqCst), self.edge)
    }
}

/// Waits (bounded) until the workers in `dirs` handled every line
/// `0..total` at least once; returns every line handled.
async fn wait_for_every_line(dirs: &[tempfile::TempDir], total: usize) -> Vec<Handled> {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let all: Vec<Handled> = dirs
            .iter()
            .enumerate()
            .flat_map(|(worker, dir)| handled(dir.path(), worker))
            .collect();
        let mut seen = vec![false; total];
        for line in &all {
            seen[line.seq] = true;
        }
        let missing = seen.iter().filter(|s| !**s).count();
        if missing == 0 {
            return all;
        }
        assert!(
            Instant::now() < deadline,
            "{missing} of {total} lines never delivered"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Microseconds since the epoch, as the workers' `now()` stamps.
fn now_micros() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

/// When a worker held a partition, from its logs (JSON): from its
/// `took partition` line to its `released` or `gave up` line, or to
/// `died` (µs) for a worker killed holding it.
type Tenures = HashMap<u32, Vec<(i64, i64)>>;

fn tenures(dir: &Path, died: i64) -> Tenures {
    let mut tenures: Tenures = HashMap::new();
    let log = std::fs::read_to_string(dir.join("howl.stderr")).unwrap_or_default();
    for line in log.lines() {
        let Ok(entry) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let (Some(message), Some(partition)) = (
            entry["fields"]["message"].as_str(),
            entry["fields"]["partition"].as_u64(),
        ) else {
            continue;
        };
        let at = entry["timestamp"]
            .as_str()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .expect("a log timestamp")
            .timestamp_micros();
        let held = tenures.entry(partition as u32).or_default();
        if message.starts_with("took partition") {
            held.push((at, died));
        } else if message.starts_with("released partition") || message.starts_with("gave up") {
            let last = held.last_mut().expect("released after taken");
            last.1 = at;
        }
    }
    tenures
}

/// Each line was handled while its worker held the lease of its
/// partition (by `held`, each worker's tenures), and no two workers
/// handled one partition at once: within each tenure, the span from the
/// first line a worker handled to its last never overlaps another
/// worker's span of the same partition.
///
/// The spans come from the lines, not from the logs: a worker logs giving
/// a partition up once its consumer ended, which may be a moment after a
/// fence stopped it (its last acknowledgements wait for a server that was
/// frozen), and another worker may rightly take it in that moment.
fn assert_one_worker_at_a_time(held: &[Tenures], all: &[Handled]) {
    let within = |worker: usize, line: &Handled| {
        held[worker].get(&line.partition).is_some_and(|spans| {
            spans
                .iter()
                .any(|(from, to)| (*from..=*to).contains(&line.at))
        })
    };
    for line in all {
        assert!(
            within(line.worker, line),
            "worker {} handled line {} of partition {} outside its leases {:?}",
            line.worker,
            line.seq,
            line.partition,
            held[line.worker].get(&line.partition)
        );
    }
    // (worker, partition, first line's time, last line's time) per tenure.
    let mut spans = Vec::new();
    for (worker, tenures) in held.iter().enumerate() {
        for (partition, list) in tenures {
            for (from, to) in list {
                let times = all
                    .iter()
                    .filter(|line| line.worker == worker && line.partition == *partition)
                    .map(|line| line.at)
                    .filter(|at| (*from..=*to).contains(at));
                if let (Some(first), Some(last)) = (times.clone().min(), times.max()) {
                    spans.push((worker, *partition, first, last));
                }
            }
        }
    }
    for a in &spans {
        for b in spans.iter().filter(|b| b.0 > a.0 && b.1 == a.1) {
            assert!(
                a.3 < b.2 || b.3 < a.2,
                "partition {} handled by worker {} from {} to {} and by worker {} from {} to {}",
                a.1,
                a.0,
                a.2,
                a.3,
                b.0,
                b.2,
                b.3
            );
        }
    }
}

/// CPU time (user + system) a process used so far, from /proc.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc/<pid>/stat");
    // Fields after the command (in parentheses): utime and stime are the
    // 12th and 13th, in clock ticks.
    let rest = &stat[stat.rfind(')').expect("comm") + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let ticks: u64 =
        fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
    // SAFETY: sysconf has no memory preconditions.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_millis(ticks * 1000 / per_second)
}

/// Two workers on a fed stream, once each holds half the partitions.
struct TwoWorkers {
    feed: Feed,
    dirs: Vec<tempfile::TempDir>,
    a: Running,
    b: Running,
    pids: [u32; 2],
}

impl TwoWorkers {
    async fn holding_half(server: &NatsServer) -> Self {
        let feed = Feed::start(server).await;
        let dirs: Vec<tempfile::TempDir> =
            (0..2).map(|_| tempfile::tempdir().expect("dir")).collect();
        let a = start_worker(server, dirs[0].path(), COUNT).await;
        let b = start_worker(server, dirs[1].path(), COUNT).await;
        let pids = [&a, &b].map(|w| w.child.as_ref().expect("running").id());
        wait_for_holders(server, &pids, 8..=8, Duration::from_secs(60)).await;
        Self {
            feed,
            dirs,
            a,
            b,
            pids,
        }
    }
}

#[tokio::test]
async fn a_frozen_server_fences_every_worker_and_they_recover_when_it_wakes() {
    let server = NatsServer::start().await;
    let TwoWorkers {
        feed,
        dirs,
        mut a,
        mut b,
        pids,
    } = TwoWorkers::holding_half(&server).await;
    // Frozen for three lease TTLs (and four ack_waits): every lease and
    // every unacknowledged message expires on the server's clock the
    // moment it wakes.
    let ttl = Duration::from_secs(TTL_SECS);
    let frozen = ttl * 3;
    let cpu_before = pids.map(cpu_time);
    server.signal("STOP");
    tokio::time::sleep(frozen).await;
    let cpu_frozen = [0, 1].map(|w| cpu_time(pids[w]) - cpu_before[w]);
    server.signal("CONT");
    let woke = Instant::now();
    eprintln!("CPU used by each worker while the server was frozen {frozen:?}: {cpu_frozen:?}");
    for used in cpu_frozen {
        assert!(
            used < frozen / 4,
            "a worker spun while the server was frozen: {used:?} of CPU"
        );
    }
    let (back, share) = wait_for_holders(&server, &pids, 8..=8, ttl * 6).await;
    eprintln!("partitions held again {back:?} after the server woke: {share:?}");
    let (total, mut edge) = feed.stop().await;
    let all = wait_for_every_line(&dirs, total).await;
    eprintln!(
        "{total} lines, {} duplicates, all delivered {:?} after the server woke",
        all.len() - total,
        woke.elapsed()
    );
    let held: Vec<Tenures> = dirs
        .iter()
        .map(|dir| tenures(dir.path(), i64::MAX))
        .collect();
    assert_one_worker_at_a_time(&held, &all);
    for worker in [&mut a, &mut b, &mut edge] {
        worker.terminate_cleanly(Duration::from_secs(30));
    }
}

#[tokio::test]
async fn a_worker_killed_while_releasing_partitions_to_a_newcomer_loses_nothing() {
    let server = NatsServer::start().await;
    let feed = Feed::start(&server).await;
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().expect("dir")).collect();
    let mut workers = vec![
        start_worker(&server, dirs[0].path(), COUNT).await,
        start_worker(&server, dirs[1].path(), COUNT).await,
    ];
    let pid = |w: &Running| w.child.as_ref().expect("running").id();
    let pids: Vec<u32> = workers.iter().map(pid).collect();
    wait_for_holders(&server, &pids, 8..=8, Duration::from_secs(60)).await;
    // A third joins: the first of the two to start releasing partitions
    // to it is killed (kill -9) in the middle of the release.
    workers.push(start_worker(&server, dirs[2].path(), COUNT).await);
    let deadline = Instant::now() + Duration::from_secs(30);
    let victim = loop {
        if let Some(victim) = (0..2).find(|w| workers[*w].stderr().contains("releasing partition"))
        {
            break victim;
        }
        assert!(
            Instant::now() < deadline,
            "nobody released a partition to the newcomer"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let mut child = workers[victim].child.take().expect("running");
    child.kill().expect("kill -9");
    child.wait().expect("reap");
    let killed_at = now_micros();
    let survivors: Vec<u32> = [1 - victim, 2].iter().map(|w| pid(&workers[*w])).collect();
    let ttl = Duration::from_secs(TTL_SECS);
    let (moved, share) = wait_for_holders(&server, &survivors, 8..=8, ttl * 4).await;
    eprintln!(
        "worker {victim} killed mid-release; its partitions moved after {moved:?}: {share:?}"
    );
    let (total, mut edge) = feed.stop().await;
    let all = wait_for_every_line(&dirs, total).await;
    eprintln!("{total} lines, {} duplicates", all.len() - total);
    assert!(
        all.len() - total <= 8 * MAX_ACK_PENDING as usize,
        "more duplicates than the killed worker could hold unacknowledged"
    );
    let held: Vec<Tenures> = dirs
        .iter()
        .enumerate()
        .map(|(w, dir)| tenures(dir.path(), if w == victim { killed_at } else { i64::MAX }))
        .collect();
    assert_one_worker_at_a_time(&held, &all);
    for w in [1 - victim, 2] {
        workers[w].terminate_cleanly(Duration::from_secs(30));
    }
    edge.terminate_cleanly(Duration::from_secs(30));
}

#[tokio::test]
async fn three_workers_share_partitions_and_take_over_from_a_killed_one() {
    let server = NatsServer::start().await;
    let feed = Feed::start(&server).await;
    let dirs: Vec<tempfile::TempDir> = (0..4).map(|_| tempfile::tempdir().expect("dir")).collect();
    let mut a = start_worker(&server, dirs[0].path(), COUNT).await;
    let mut b = start_worker(&server, dirs[1].path(), COUNT).await;
    let mut c = start_worker(&server, dirs[2].path(), COUNT).await;
    let pid = |w: &Running| w.child.as_ref().expect("running").id();
    let (pa, pb, pc) = (pid(&a), pid(&b), pid(&c));
    let (took, share) =
        wait_for_holders(&server, &[pa, pb, pc], 5..=6, Duration::from_secs(60)).await;
    eprintln!("three workers balanced after {took:?}: {share:?}");
    // Each worker's gauge agrees with the bucket (bounded wait: the gauge
    // moves when a release has drained).
    for (worker, pid) in [(&a, pa), (&b, pb), (&c, pc)] {
        let want = share[&pid] as f64;
        let deadline = Instant::now() + Duration::from_secs(10);
        while owned(worker).await != Some(want) {
            assert!(
                Instant::now() < deadline,
                "worker {pid}: nats_partitions_owned is {:?}, its leases {want}",
                owned(worker).await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    // kill -9: its leases expire, the others take them.
    let mut child = c.child.take().expect("running");
    child.kill().expect("kill -9");
    child.wait().expect("reap");
    let killed_at = now_micros();
    let ttl = Duration::from_secs(TTL_SECS);
    let (moved, share) = wait_for_holders(&server, &[pa, pb], 8..=8, ttl * 3).await;
    eprintln!("a killed worker's partitions moved after {moved:?} (TTL {ttl:?}): {share:?}");
    assert!(
        moved <= ttl + ttl * 2 / 3 + Duration::from_secs(2),
        "partitions moved after {moved:?}, more than TTL + two polls + 2 s"
    );

    // Started again: it gets its share back.
    let mut c2 = start_worker(&server, dirs[3].path(), COUNT).await;
    let pc2 = pid(&c2);
    let (back, share) =
        wait_for_holders(&server, &[pa, pb, pc2], 5..=6, Duration::from_secs(60)).await;
    eprintln!("rebalanced {back:?} after the restart: {share:?}");

    let (total, mut edge) = feed.stop().await;
    let all = wait_for_every_line(&dirs, total).await;
    let duplicates = all.len() - total;
    let per_worker: Vec<usize> = (0..4)
        .map(|w| all.iter().filter(|l| l.worker == w).count())
        .collect();
    eprintln!(
        "{total} lines, {duplicates} duplicates; handled per worker (a, b, c killed, c again): \
         {per_worker:?}"
    );
    // What the killed worker had in flight comes again: at most
    // max_ack_pending per partition it held.
    assert!(
        duplicates <= 6 * MAX_ACK_PENDING as usize,
        "{duplicates} duplicates, more than the killed worker could hold unacknowledged"
    );

    // No partition consumed by two workers at once.
    let held: Vec<Tenures> = dirs
        .iter()
        .enumerate()
        .map(|(worker, dir)| tenures(dir.path(), if worker == 2 { killed_at } else { i64::MAX }))
        .collect();
    assert_one_worker_at_a_time(&held, &all);
    let takes: usize = held.iter().flat_map(|t| t.values()).map(Vec::len).sum();
    let mut by_partition: BTreeMap<u32, Vec<&Handled>> = BTreeMap::new();
    for line in &all {
        by_partition.entry(line.partition).or_default().push(line);
    }
    let mut handovers = 0;
    for lines in by_partition.values_mut() {
        lines.sort_by_key(|line| line.at);
        handovers += lines
            .windows(2)
            .filter(|w| w[0].worker != w[1].worker)
            .count();
    }
    eprintln!("{takes} leases taken; the output changes worker {handovers} times");

    for worker in [&mut a, &mut b, &mut c2, &mut edge] {
        worker.terminate_cleanly(Duration::from_secs(30));
    }
}

#[tokio::test]
async fn a_worker_with_another_count_refuses_to_start() {
    let server = NatsServer::start().await;
    server.create_stream("LOGS", &["logs.>"]).await;
    let (first, second) = (
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
    );
    let mut a = start_worker(&server, first.path(), COUNT).await;
    let pa = a.child.as_ref().expect("running").id();
    wait_for_holders(&server, &[pa], 16..=16, Duration::from_secs(30)).await;
    let output = run_until_exit(&worker_config(&server, 8, ""), second.path());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success(),
        "started with another count:\n{stderr}"
    );
    assert!(
        stderr.contains("runs with partitions.count = 16, this worker with 8")
            && stderr.contains("not starting"),
        "the mismatch is named:\n{stderr}"
    );
    // The first worker keeps its partitions.
    assert_eq!(holders(&server).await.len(), COUNT as usize);
    let output = a.terminate(Duration::from_secs(30));
    assert!(output.status.success());
    // A graceful stop deletes the leases: nobody waits for them to expire.
    assert!(holders(&server).await.is_empty(), "leases left behind");
}

#[tokio::test]
async fn a_lease_bucket_that_is_not_one_or_has_another_ttl_is_refused() {
    let server = NatsServer::start().await;
    server.create_stream("LOGS", &["logs.>"]).await;
    let dir = tempfile::tempdir().expect("dir");
    // A stream where the bucket's would be, over other subjects.
    server.create_stream("KV_not_leases", &["other.>"]).await;
    let output = run_until_exit(
        &worker_config(&server, COUNT, "").replace(
            &format!("lease_ttl_secs = {TTL_SECS}"),
            &format!("lease_ttl_secs = {TTL_SECS}, lease_bucket = \"not_leases\""),
        ),
        dir.path(),
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("`partitions.lease_bucket`")
            && stderr.contains("KV_not_leases` exists but is not a key-value bucket"),
        "{stderr}"
    );
    // A bucket made for another TTL (here: a first worker's 4 s).
    let mut a = start_worker(&server, dir.path(), COUNT).await;
    let other = tempfile::tempdir().expect("dir");
    let output = run_until_exit(
        &worker_config(&server, COUNT, "").replace(
            &format!("lease_ttl_secs = {TTL_SECS}"),
            "lease_ttl_secs = 9",
        ),
        other.path(),
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("expires entries after 4s, but `partitions.lease_ttl_secs` is 9s"),
        "{stderr}"
    );
    a.terminate(Duration::from_secs(30));
}

#[tokio::test]
async fn workers_that_cannot_renew_stop_fetching_within_half_the_ttl() {
    let server = NatsServer::start().await;
    let TwoWorkers {
        feed,
        dirs,
        mut a,
        mut b,
        pids,
    } = TwoWorkers::holding_half(&server).await;
    // The lease bucket vanishes: renewals fail, while fetching still works.
    let deleted = Instant::now();
    let deleted_at = now_micros();
    server
        .jetstream()
        .await
        .delete_stream("KV_howl_leases")
        .await
        .expect("delete the lease bucket");
    let ttl = Duration::from_secs(TTL_SECS);
    // Each partition's fence counts a `lease_lost` error the moment it
    // stops fetching (the `nats_partitions_owned` gauge follows later, at
    // the next renewal round, which a loaded machine may delay past the
    // moment the workers recreate the bucket and take partitions again).
    async fn fences(worker: &Running) -> f64 {
        let metrics = worker.metrics().await;
        crate::common::metric(
            &metrics,
            "component_errors_total",
            &["error_type=\"lease_lost\""],
        )
        .unwrap_or(0.0)
    }
    for worker in [&a, &b] {
        while fences(worker).await < 8.0 {
            assert!(
                deleted.elapsed() < ttl * 2,
                "{} of 8 partitions fenced {:?} after the bucket went",
                fences(worker).await,
                deleted.elapsed()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let fenced = deleted.elapsed();
    let fenced_at = now_micros();
    eprintln!("both workers stopped fetching {fenced:?} after the lease bucket was deleted");
    assert!(
        fenced <= ttl / 2 + Duration::from_millis(1500),
        "stopped after {fenced:?}, well past half the TTL"
    );
    // They recreate the bucket after a TTL of failures, and take the
    // partitions again: nothing is lost.
    wait_for_holders(&server, &pids, 8..=8, ttl * 4).await;
    let (total, mut edge) = feed.stop().await;
    let all = wait_for_every_line(&dirs, total).await;
    // Between the fence (plus what was already downstream) and the
    // retake, nobody handled anything, though the edge kept publishing.
    let retaken = all
        .iter()
        .filter(|line| line.at > deleted_at)
        .map(|line| line.at)
        .filter(|at| *at > fenced_at + 200_000)
        .min()
        .expect("lines handled after the retake");
    let quiet = Duration::from_micros((retaken - fenced_at).max(0) as u64);
    eprintln!("no line handled for {quiet:?} after the fence, until the partitions were retaken");
    assert!(quiet >= ttl / 4, "handled lines {quiet:?} after the fence");
    for worker in [&mut a, &mut b, &mut edge] {
        worker.terminate_cleanly(Duration::from_secs(30));
    }
}

/// Waits (bounded) until the worker's log holds every one of `parts`.
async fn wait_for_report(worker: &Running, parts: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !parts.iter().all(|part| worker.stderr().contains(part)) {
        assert!(
            Instant::now() < deadline,
            "never reported {parts:?}:\n{}",
            worker.stderr()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Publishes `{"seq": i}` to each partition `logs.<i>`.
async fn publish_one_per_partition(server: &NatsServer) {
    let client = server.client().await;
    for index in 0..COUNT {
        client
            .publish(
                format!("logs.{index}"),
                format!("{{\"seq\":{index}}}").into(),
            )
            .await
            .expect("publish");
    }
    client.flush().await.expect("flush");
}

#[tokio::test]
async fn a_consumer_the_work_queue_refuses_is_reported_and_retried_until_fixed() {
    let server = NatsServer::start().await;
    server.create_work_queue().await;
    // Another application's unfiltered consumer on the work queue: the
    // server refuses every partition's filtered consumer (error 10100).
    let stream = server.jetstream().await.get_stream("LOGS").await.unwrap();
    stream
        .create_consumer(async_nats::jetstream::consumer::pull::Config {
            durable_name: Some("other".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let dir = tempfile::tempdir().expect("dir");
    let mut worker = start_worker(&server, dir.path(), COUNT).await;
    wait_for_report(&worker, &["cannot open consumer `workers-"]).await;
    let stderr = worker.stderr();
    assert!(
        stderr.contains("filtered consumer not unique on workqueue stream"),
        "the server's reason is not in the report:\n{stderr}"
    );
    // Retried, not given up: an operator who removes the other consumer
    // gets the worker consuming without a restart.
    server
        .jetstream()
        .await
        .get_stream("LOGS")
        .await
        .unwrap()
        .delete_consumer("other")
        .await
        .expect("delete the other consumer");
    publish_one_per_partition(&server).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while handled(dir.path(), 0).len() < COUNT as usize {
        assert!(
            Instant::now() < deadline,
            "{} of {COUNT} partitions consumed after the other consumer left:\n{}",
            handled(dir.path(), 0).len(),
            worker.stderr()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    worker.terminate_cleanly(Duration::from_secs(30));
}

/// A partition's consumer that exists with another filter (an operator's
/// leftover) is reported and skipped, not fatal: the worker consumes its
/// other partitions meanwhile (before, it exited, and so did every worker
/// that took the partition after it), and consumes that one too once the
/// consumer is deleted.
#[tokio::test]
async fn a_partition_consumer_with_another_filter_is_reported_while_the_others_go_on() {
    let server = NatsServer::start().await;
    server.create_work_queue().await;
    let stream = server.jetstream().await.get_stream("LOGS").await.unwrap();
    stream
        .create_consumer(async_nats::jetstream::consumer::pull::Config {
            durable_name: Some("workers-3".into()),
            filter_subject: "logs.elsewhere".into(),
            ..Default::default()
        })
        .await
        .expect("create the stray consumer");
    let dir = tempfile::tempdir().expect("dir");
    let mut worker = start_worker(&server, dir.path(), COUNT).await;
    // The JSON log escapes the filters' quotes: the parts between them.
    let reported = [
        "consumer `workers-3` on stream `LOGS` exists with filter_subject",
        "logs.elsewhere",
        "but `filter_subject` asks for",
        "delete the consumer",
    ];
    wait_for_report(&worker, &reported).await;
    publish_one_per_partition(&server).await;
    let partitions_handled = || {
        let mut seen: Vec<u32> = handled(dir.path(), 0).iter().map(|h| h.partition).collect();
        seen.sort_unstable();
        seen
    };
    let others: Vec<u32> = (0..COUNT).filter(|i| *i != 3).collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    while partitions_handled() != others {
        assert!(
            Instant::now() < deadline,
            "the other partitions were not consumed: {:?}\n{}",
            partitions_handled(),
            worker.stderr()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stream
        .delete_consumer("workers-3")
        .await
        .expect("delete the stray consumer");
    let all: Vec<u32> = (0..COUNT).collect();
    let deadline = Instant::now() + Duration::from_secs(40);
    while partitions_handled() != all {
        assert!(
            Instant::now() < deadline,
            "partition 3 not consumed after its stray consumer went: {:?}\n{}",
            partitions_handled(),
            worker.stderr()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    worker.terminate_cleanly(Duration::from_secs(30));
}
