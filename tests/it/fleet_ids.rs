//! Pattern ids across a fleet, end to end: an edge routes a service's
//! lines to a partition, the worker holding it mines them, is killed with
//! SIGKILL, and the worker that takes the partition over continues the
//! same pattern space, so the same kinds of lines, arriving there in
//! another order, keep the ids the first worker minted.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::path::Path;
use std::time::Duration;

use crate::common::nats::{NatsServer, start_partitioned_edge};
use crate::common::{Running, free_port, write};
use crate::nats_partitions::{COUNT, TTL_SECS, holders, wait_for_holders};
use crate::pattern_fleet::{ids_by_kind, lines, now_ms, wait_for_shared_save};

/// A worker: the partitioned `nats` source → `pattern` scoped by service
/// → a JSON file, its pattern spaces in the shared bucket `fleet`.
async fn start_worker(server: &NatsServer, dir: &Path) -> Running {
    std::fs::create_dir_all(dir).expect("worker dir");
    let api = free_port();
    let config = write(
        dir,
        "worker.toml",
        &format!(
            "data_dir = \"state\"\n\
             [api]\nenabled = true\naddress = \"127.0.0.1:{api}\"\n\
             [state.shared.nats]\nurl = \"{url}\"\nbucket = \"fleet\"\n\
             [sources.in]\ntype = \"nats\"\nurl = \"{url}\"\nstream = \"LOGS\"\nconsumer = \"workers\"\n\
             filter_subject = \"logs\"\nack_wait_secs = 3\n\
             partitions = {{ count = {COUNT}, lease_ttl_secs = {TTL_SECS} }}\n\
             [transforms.patterns]\ntype = \"pattern\"\ninputs = [\"in\"]\nscope = \"{{{{ .service }}}}\"\n\
             [sinks.out]\ntype = \"file\"\ninputs = [\"patterns\"]\npath = \"out.log\"\nencoding = \"json\"\n",
            url = server.url()
        ),
    );
    Running::start(dir, &config, api, &[]).await
}

/// Appends `messages` of service `sshd` to the edge's log.
fn append(log: &Path, messages: &[String]) {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(log)
        .expect("open log");
    for message in messages {
        let line = serde_json::json!({"service": "sshd", "message": message});
        writeln!(file, "{line}").expect("append");
    }
}

/// What a worker's `out.log` says of each message: (id, new).
fn outcomes(dir: &Path) -> HashMap<String, (String, bool)> {
    std::fs::read_to_string(dir.join("out.log"))
        .unwrap_or_default()
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .map(|event| {
            let id = event["pattern"]["id"].as_str().unwrap_or_default();
            let new = event["pattern"]["new"].as_bool().unwrap_or(false);
            let message = event["message"].as_str().unwrap_or_default();
            (message.to_string(), (id.to_string(), new))
        })
        .collect()
}

/// Waits (bounded) until every message came out of the worker in `dir`.
async fn wait_for(dir: &Path, messages: &[String]) -> HashMap<String, (String, bool)> {
    crate::common::wait_for(
        "every line through the owning worker",
        Duration::from_secs(60),
        || {
            let found = outcomes(dir);
            messages
                .iter()
                .all(|m| found.contains_key(m))
                .then_some(found)
        },
    )
    .await
}

#[tokio::test]
async fn a_partition_that_moves_keeps_its_pattern_ids() {
    let server = NatsServer::start().await;
    let root = tempfile::tempdir().expect("temp dir");
    let (_edge, log) = start_partitioned_edge(&server, root.path(), COUNT, "").await;
    let dirs = [root.path().join("w1"), root.path().join("w2")];
    let mut workers = Vec::new();
    for dir in &dirs {
        workers.push(start_worker(&server, dir).await);
    }
    let pids: Vec<u32> = workers
        .iter()
        .map(|w| w.child.as_ref().expect("running").id())
        .collect();
    wait_for_holders(&server, &pids, 8..=8, Duration::from_secs(30)).await;

    // The worker holding sshd's partition mines it, root's lines first.
    let partition =
        howl::nats::partition::partition_of(b"sshd", NonZeroU32::new(COUNT).expect("a count"));
    let owner_pid = holders(&server).await[&partition];
    let owner = pids.iter().position(|p| *p == owner_pid).expect("an owner");
    let survivor = 1 - owner;
    let first = lines(&["root", "ubuntu", "pi"], &[0, 1, 2, 3]);
    append(&log, &first);
    let first_out = wait_for(&dirs[owner], &first).await;
    let mined_at = now_ms();
    let first_ids = ids_by_kind(&first_out, &first);
    assert_eq!(first_ids.len(), 4);
    assert!(
        outcomes(&dirs[survivor]).is_empty(),
        "only the partition's owner sees its lines"
    );

    // Killed once its space reached the bucket (saved within 1 s of a new
    // pattern); its partitions move to the survivor within the lease TTL.
    wait_for_shared_save(&server, mined_at).await;
    let mut child = workers[owner].child.take().expect("running");
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");
    wait_for_holders(
        &server,
        &[pids[survivor]],
        16..=16,
        Duration::from_secs(TTL_SECS * 3 + 10),
    )
    .await;

    // The same kinds, another order and other users, at the survivor.
    let second = lines(&["admin", "git", "root"], &[3, 2, 1, 0]);
    append(&log, &second);
    let second_out = wait_for(&dirs[survivor], &second).await;
    assert_eq!(
        ids_by_kind(&second_out, &second),
        first_ids,
        "the survivor continues the dead owner's pattern space"
    );
    assert!(
        second.iter().all(|m| !second_out[m].1),
        "no kind is announced as new a second time"
    );
}
