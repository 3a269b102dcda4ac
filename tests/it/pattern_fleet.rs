//! Pattern spaces shared by a fleet through the JetStream bucket of
//! `[state.shared.nats]`: the bucket layout (chunks, heads, torn writes,
//! compare-and-swap) against a real nats-server, and two real howl
//! processes that hand a scope over and keep its pattern ids.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use howl::nats::kv::SharedNats;
use howl::nats::pattern_spaces::{Save, SpaceBucket, SpaceError, SpaceLink, Update};
use howl::nats::{NatsConnection, kv::key_token};
use howl::patterns::{Miner, MinerConfig, MinerSnapshot};

use crate::common::nats::NatsServer;
use crate::common::{Running, free_port, write};

/// Random bytes (they do not compress), `len` of them.
fn noise(len: usize) -> Vec<u8> {
    let mut rng = fastrand::Rng::with_seed(7);
    (0..len).map(|_| rng.u8(..)).collect()
}

async fn bucket(server: &NatsServer, namespace: &str) -> SpaceBucket {
    SpaceBucket::open(&server.jetstream().await, "fleet", namespace)
        .await
        .expect("open the patterns bucket")
}

/// The keys of the bucket that start with `prefix`.
async fn keys(bucket: &SpaceBucket, prefix: &str) -> Vec<String> {
    use futures_util::StreamExt;
    let mut keys: Vec<String> = bucket
        .store()
        .keys()
        .await
        .expect("keys")
        .filter_map(|key| async move { key.ok() })
        .filter(|key| std::future::ready(key.starts_with(prefix)))
        .collect()
        .await;
    keys.sort();
    keys
}

/// A patterns bucket pre-created with an age limit would drop spaces
/// silently (a scope that moves would mint new ids): it is refused as
/// broken, naming the bucket and the limit.
#[tokio::test]
async fn a_patterns_bucket_with_an_age_limit_is_refused() {
    let server = NatsServer::start().await;
    server
        .create_aged_bucket("fleet_patterns", 1, Duration::from_secs(60))
        .await;
    match SpaceBucket::open(&server.jetstream().await, "fleet", "p").await {
        Err(error @ SpaceError::Broken { .. }) => {
            let text = error.to_string();
            assert!(
                text.contains("fleet_patterns") && text.contains("60s"),
                "{text}"
            );
        }
        Err(other) => panic!("refused, but not as broken: {other}"),
        Ok(_) => panic!("a bucket that drops spaces was opened"),
    }
}

#[tokio::test]
async fn a_space_larger_than_one_value_round_trips_through_chunks() {
    let server = NatsServer::start().await;
    let bucket = bucket(&server, "patterns").await;
    // 2.5 MiB that do not compress: more than twice the server's 1 MiB
    // max_payload, so one value could not hold it.
    let big = noise(5 * 512 * 1024);
    let revision = bucket
        .write("sshd", &big, None, "test", 1)
        .await
        .expect("write");
    let chunks = keys(&bucket, "chunk.patterns.sshd.test.1.").await;
    assert!(chunks.len() >= 3, "cut into chunks: {chunks:?}");
    let fetched = bucket.read("sshd").await.expect("read").expect("saved");
    assert_eq!(fetched.revision, revision);
    assert_eq!(fetched.head.chunks as usize, chunks.len());
    assert!(fetched.snapshot == big, "the same bytes come back");

    // The next, smaller generation goes to the other slot; the one after
    // reuses the first and purges the chunks the big one left beyond it.
    let small = b"{\"small\":true}".repeat(10);
    let revision = bucket
        .write("sshd", &small, Some(revision), "test", 2)
        .await
        .expect("write 2");
    bucket
        .write("sshd", &small, Some(revision), "test", 3)
        .await
        .expect("write 3");
    assert_eq!(keys(&bucket, "chunk.patterns.sshd.test.1.").await.len(), 1);
    let fetched = bucket.read("sshd").await.unwrap().unwrap();
    assert_eq!(fetched.snapshot, small);
    assert_eq!(fetched.head.generation, 3);
    // Scopes of any text, one key token each; other namespaces apart.
    bucket.write("my.svc/α", b"x", None, "t", 1).await.unwrap();
    assert_eq!(
        bucket.read("my.svc/α").await.unwrap().unwrap().snapshot,
        b"x"
    );
    let other = self::bucket(&server, "other").await;
    assert!(other.read("sshd").await.unwrap().is_none());
    assert_eq!(
        bucket.scope_of_head(&format!("head.patterns.{}", key_token("my.svc/α"))),
        Some("my.svc/α".to_string())
    );
}

#[tokio::test]
async fn chunks_without_their_head_are_never_read() {
    let server = NatsServer::start().await;
    let bucket = bucket(&server, "patterns").await.with_chunk_bytes(64);
    let first = noise(1000);
    bucket.write("sshd", &first, None, "a", 1).await.unwrap();
    // A writer killed mid-save: generation 2's chunks (slot 0), no head.
    let kv = bucket.store();
    for index in 0..20u32 {
        let mut value = 2u64.to_le_bytes().to_vec();
        value.extend_from_slice(&[0xAB; 64]);
        kv.put(bucket.chunk_key("sshd", Some("a"), 2, index), value.into())
            .await
            .unwrap();
    }
    let read = bucket.read("sshd").await.unwrap().unwrap();
    assert_eq!(read.head.generation, 1);
    assert!(read.snapshot == first, "the head's generation is read");

    // A chunk of the head's own slot overwritten (a reader overtaken by two
    // saves): the generation check refuses it rather than mixing spaces.
    let mut stranger = 3u64.to_le_bytes().to_vec();
    stranger.extend_from_slice(&[0xCD; 64]);
    kv.put(bucket.chunk_key("sshd", Some("a"), 1, 3), stranger.into())
        .await
        .unwrap();
    // (The head stays put: corrupt, not overtaken.)
    match bucket.read("sshd").await {
        Err(SpaceError::Broken { cause, .. }) => {
            assert!(cause.contains("another generation"), "{cause}")
        }
        other => panic!("a torn space was read: {other:?}"),
    }
    // And a chunk of the right generation with other bytes: the checksum.
    let mut forged = 1u64.to_le_bytes().to_vec();
    forged.extend_from_slice(&[0xCD; 64]);
    kv.put(bucket.chunk_key("sshd", Some("a"), 1, 3), forged.into())
        .await
        .unwrap();
    match bucket.read("sshd").await {
        Err(SpaceError::Broken { cause, .. }) => {
            assert!(cause.contains("checksum"), "{cause}")
        }
        other => panic!("a torn space was read: {other:?}"),
    }
}

/// Two instances saving one space at once, both from the same revision (a
/// hand-over: the old owner's last save meets the new owner's first):
/// one wins, the other gets a conflict, and the space the head names
/// still reads, whole; the loser's chunks never overwrite the winner's.
#[tokio::test]
async fn two_saves_racing_from_one_revision_leave_a_space_that_reads() {
    let server = NatsServer::start().await;
    // Two connections, as two instances have: their writes interleave.
    let a = bucket(&server, "patterns").await.with_chunk_bytes(64);
    let b = bucket(&server, "patterns").await.with_chunk_bytes(64);
    let mut base = Some(a.write("sshd", &noise(3000), None, "a", 1).await.unwrap());
    let mut broken = Vec::new();
    for round in 0..20u8 {
        let (mine, theirs) = (vec![round; 2000], vec![round.wrapping_add(100); 2000]);
        let (left, right) = tokio::join!(
            a.write("sshd", &mine, base, "a", 10),
            b.write("sshd", &theirs, base, "b", 10),
        );
        let wins = usize::from(left.is_ok()) + usize::from(right.is_ok());
        assert!(wins <= 1, "round {round}: both saves went through");
        match a.read("sshd").await {
            Ok(Some(fetched)) => {
                assert!(
                    fetched.snapshot == mine || fetched.snapshot == theirs || wins == 0,
                    "round {round}: the space read is neither save"
                );
                base = Some(fetched.revision);
            }
            other => {
                broken.push(format!("round {round}: {other:?}"));
                base = a.head("sshd").await.unwrap().map(|(_, revision)| revision);
            }
        }
    }
    assert!(
        broken.is_empty(),
        "{} of 20 races left a space that does not read: {broken:?}",
        broken.len()
    );
    // No chunk outlives its use: the head's, and at most the other slot
    // of each writer's set (2000 bytes that do not compress much, in 64).
    let fetched = a.read("sshd").await.unwrap().unwrap();
    let left = keys(&a, "chunk.patterns.sshd.").await;
    assert!(
        left.len() <= 3 * fetched.head.chunks as usize,
        "{} chunks left for a space of {}: {left:?}",
        left.len(),
        fetched.head.chunks
    );
}

/// A head written before chunk sets existed names none: its chunks are read
/// from the shared slots, and the next save (into its writer's set) purges
/// them.
#[tokio::test]
async fn a_space_saved_before_chunk_sets_still_reads_and_moves_to_a_set() {
    let server = NatsServer::start().await;
    let bucket = bucket(&server, "patterns").await.with_chunk_bytes(64);
    let old = noise(500);
    bucket.write("sshd", &old, None, "w", 1).await.unwrap();
    // Rewrite it as the previous layout had it.
    let kv = bucket.store();
    let (head, _) = bucket.head("sshd").await.unwrap().unwrap();
    for index in 0..head.chunks {
        let value = kv
            .get(bucket.chunk_key("sshd", Some("w"), 1, index))
            .await
            .unwrap()
            .unwrap();
        kv.put(bucket.chunk_key("sshd", None, 1, index), value)
            .await
            .unwrap();
        kv.purge(bucket.chunk_key("sshd", Some("w"), 1, index))
            .await
            .unwrap();
    }
    let mut legacy = serde_json::to_value(&head).unwrap();
    legacy.as_object_mut().unwrap().remove("set");
    kv.put(
        bucket.head_key("sshd"),
        serde_json::to_vec(&legacy).unwrap().into(),
    )
    .await
    .unwrap();
    let fetched = bucket.read("sshd").await.unwrap().unwrap();
    assert_eq!(fetched.head.set, None);
    assert!(fetched.snapshot == old, "the old layout reads");
    let new = noise(700);
    bucket
        .write("sshd", &new, Some(fetched.revision), "v", 2)
        .await
        .unwrap();
    assert!(bucket.read("sshd").await.unwrap().unwrap().snapshot == new);
    assert_eq!(
        keys(&bucket, "chunk.patterns.sshd.1.").await,
        Vec::<String>::new(),
        "the old layout's chunks are purged once the head moved on"
    );
}

#[tokio::test]
async fn a_save_based_on_a_stale_revision_is_refused() {
    let server = NatsServer::start().await;
    let bucket = bucket(&server, "patterns").await;
    let first = bucket.write("sshd", b"a", None, "a", 1).await.unwrap();
    let second = bucket
        .write("sshd", b"b", Some(first), "b", 2)
        .await
        .unwrap();
    match bucket.write("sshd", b"c", Some(first), "c", 3).await {
        Err(SpaceError::Conflict { revision, head, .. }) => {
            assert_eq!(revision, second);
            assert_eq!(head.writer, "b");
        }
        other => panic!("a stale save went through: {other:?}"),
    }
    // Creating what exists is a conflict too.
    assert!(matches!(
        bucket.write("sshd", b"d", None, "d", 4).await,
        Err(SpaceError::Conflict { .. })
    ));
    assert_eq!(bucket.read("sshd").await.unwrap().unwrap().snapshot, b"b");
}

fn shared(server: &NatsServer) -> SharedNats {
    let connection = NatsConnection {
        url: server.url(),
        auth: None,
        tls: None,
    };
    SharedNats {
        bucket: "fleet".into(),
        connector: connection
            .connector_for("state.shared.nats", Path::to_path_buf)
            .unwrap(),
        defined_at: "test".to_string(),
    }
}

/// A miner's snapshot after `lines`.
fn mined(lines: &[&str]) -> (Miner, Vec<u8>) {
    let mut miner = Miner::new(MinerConfig::default()).unwrap();
    for line in lines {
        miner.observe(line, None, 1_000);
    }
    let bytes = serde_json::to_vec(&miner.snapshot()).unwrap();
    (miner, bytes)
}

/// The link's next update (bounded).
async fn next(link: &mut SpaceLink) -> Update {
    tokio::time::timeout(Duration::from_secs(10), link.update())
        .await
        .expect("an update within 10s")
        .expect("the link runs")
}

/// Updates until `Ready`.
async fn until_ready(link: &mut SpaceLink) -> Vec<Update> {
    let mut seen = Vec::new();
    loop {
        match next(link).await {
            Update::Ready => return seen,
            other => seen.push(other),
        }
    }
}

fn templates(snapshot: MinerSnapshot) -> Vec<String> {
    let miner = Miner::restore(MinerConfig::default(), snapshot).unwrap();
    let mut templates: Vec<String> = miner.patterns().map(|p| p.template.to_string()).collect();
    templates.sort();
    templates
}

#[tokio::test]
async fn a_save_that_lost_the_race_loads_the_winners_space() {
    let server = NatsServer::start().await;
    let shared = shared(&server);
    let mut one = SpaceLink::start_with(&shared, "patterns", HashMap::new(), 256);
    assert!(until_ready(&mut one).await.is_empty());
    let (_, a) = mined(&["disk sda1 full"]);
    one.save(Save {
        scope: "db".into(),
        base: None,
        saved_at_ms: 1,
        snapshot: a,
    });
    let Update::Based {
        revision: Some(base),
        push: false,
        ..
    } = next(&mut one).await
    else {
        panic!("saved")
    };

    // Another instance starts: it loads the space.
    let mut two = SpaceLink::start_with(&shared, "patterns", HashMap::new(), 256);
    let loaded = until_ready(&mut two).await;
    assert!(
        matches!(&loaded[..], [Update::Loaded { scope, revision, .. }] if scope == "db" && *revision == base),
        "{loaded:?}"
    );
    // Both save from the same base: the first wins; the second gets the
    // first's space instead of overwriting it.
    let (_, b) = mined(&["disk sda1 full", "user bob logged in"]);
    two.save(Save {
        scope: "db".into(),
        base: Some(base),
        saved_at_ms: 2,
        snapshot: b,
    });
    let Update::Based {
        revision: Some(won),
        ..
    } = next(&mut two).await
    else {
        panic!("saved")
    };
    let (_, c) = mined(&["disk sda1 full", "cache miss for key 7"]);
    one.save(Save {
        scope: "db".into(),
        base: Some(base),
        saved_at_ms: 3,
        snapshot: c,
    });
    // `one` hears of `two`'s save (through the watch, or its refused
    // compare-and-swap) and gets two's space; its own save is not made.
    let Update::Loaded {
        revision, snapshot, ..
    } = next(&mut one).await
    else {
        panic!("loaded")
    };
    assert_eq!(revision, won);
    assert_eq!(
        templates(snapshot),
        ["disk sda1 full", "user bob logged in"]
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        one.try_update().is_none(),
        "nothing more: no save of its own"
    );
    let bucket = bucket(&server, "patterns").await;
    let now = bucket.read("db").await.unwrap().unwrap();
    assert_eq!(now.revision, won, "the loser's save was not made");
    assert_eq!(
        templates(serde_json::from_slice(&now.snapshot).unwrap()),
        ["disk sda1 full", "user bob logged in"]
    );
}

#[tokio::test]
async fn at_start_the_later_of_the_local_and_the_shared_copy_wins() {
    let server = NatsServer::start().await;
    let shared = shared(&server);
    let bucket = bucket(&server, "patterns").await;
    let (_, old) = mined(&["disk sda1 full"]);
    let older = bucket.write("old", &old, None, "x", 100).await.unwrap();
    let newer = bucket.write("new", &old, None, "x", 100).await.unwrap();
    let local = HashMap::from([
        ("old".to_string(), 200),
        ("new".to_string(), 50),
        ("mine".to_string(), 10),
    ]);
    let mut link = SpaceLink::start(&shared, "patterns", local);
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    for update in until_ready(&mut link).await {
        match update {
            Update::Loaded {
                scope, revision, ..
            } => {
                assert_eq!(revision, newer);
                seen.insert(scope, "loaded".into());
            }
            Update::Based {
                scope,
                revision,
                push,
            } => {
                assert!(push);
                assert_eq!(revision, (scope == "old").then_some(older));
                seen.insert(scope, "push".into());
            }
            Update::Ready => unreachable!(),
        }
    }
    assert_eq!(seen["old"], "push", "the local copy was saved later");
    assert_eq!(seen["new"], "loaded", "the shared copy was saved later");
    assert_eq!(seen["mine"], "push", "the bucket has no copy");
}

// ---- two real howl processes -------------------------------------------

/// One instance of the fleet: `in.log` (JSON lines) → `pattern` scoped by
/// `.service` → `out.log`, with its own data_dir, and the shared bucket
/// `fleet` when `nats` is given.
struct Instance {
    dir: PathBuf,
    input: PathBuf,
    output: PathBuf,
    config: PathBuf,
    api: u16,
}

impl Instance {
    fn new(dir: &Path, nats: Option<&str>) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let api = free_port();
        let input = dir.join("in.log");
        let output = dir.join("out.log");
        std::fs::write(&input, "").unwrap();
        let shared = nats
            .map(|url| format!("[state.shared.nats]\nurl = \"{url}\"\nbucket = \"fleet\"\n"))
            .unwrap_or_default();
        let config = write(
            dir,
            "topology.toml",
            &format!(
                "data_dir = \"state\"\n\
                 [api]\nenabled = true\naddress = \"127.0.0.1:{api}\"\n\
                 {shared}\
                 [sources.in]\ntype = \"file\"\ninclude = [\"{}\"]\nread_from = \"beginning\"\n\
                 poll_interval_ms = 50\ndecoding.codec = \"json\"\n\
                 [transforms.patterns]\ntype = \"pattern\"\ninputs = [\"in\"]\nscope = \"{{{{ .service }}}}\"\n\
                 [sinks.out]\ntype = \"file\"\ninputs = [\"patterns\"]\npath = \"{}\"\n",
                input.display(),
                output.display(),
            ),
        );
        Self {
            dir: dir.to_path_buf(),
            input,
            output,
            config,
            api,
        }
    }

    async fn start(&self) -> Running {
        Running::start(&self.dir, &self.config, self.api, &[]).await
    }

    /// Appends `messages` of service `sshd`.
    fn append(&self, messages: &[String]) {
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&self.input)
            .unwrap();
        for message in messages {
            let line = serde_json::json!({"service": "sshd", "message": message});
            writeln!(file, "{line}").unwrap();
        }
    }

    /// What `out.log` says of each message: (id, new), the last time it
    /// was written.
    fn outcomes(&self) -> HashMap<String, (String, bool)> {
        let text = std::fs::read_to_string(&self.output).unwrap_or_default();
        text.lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .map(|event| {
                (
                    event["message"].as_str().unwrap_or_default().to_string(),
                    (
                        event["pattern"]["id"]
                            .as_str()
                            .unwrap_or_default()
                            .to_string(),
                        event["pattern"]["new"].as_bool().unwrap_or(false),
                    ),
                )
            })
            .collect()
    }

    /// Waits (bounded) until every message in `messages` came out.
    async fn wait_for(&self, messages: &[String]) -> HashMap<String, (String, bool)> {
        crate::common::wait_for(
            "every line through the pattern transform",
            Duration::from_secs(30),
            || {
                let outcomes = self.outcomes();
                messages
                    .iter()
                    .all(|m| outcomes.contains_key(m))
                    .then_some(outcomes)
            },
        )
        .await
    }
}

/// The lines of four kinds, one user each, in the order of `users`.
pub(crate) fn lines(users: &[&str], kinds: &[usize]) -> Vec<String> {
    let mut lines = Vec::new();
    for (n, &kind) in kinds.iter().enumerate() {
        for (i, user) in users.iter().enumerate() {
            let ip = format!("10.0.{n}.{i}");
            let port = 40000 + n * 10 + i;
            lines.push(match kind {
                0 => format!("Failed password for {user} from {ip} port {port} ssh2"),
                1 => format!("Accepted publickey for {user} from {ip} port {port} ssh2"),
                2 => format!("pam_unix(sshd:session): session opened for user {user} by (uid=0)"),
                _ => format!("Disconnected from user {user} {ip} port {port}"),
            });
        }
    }
    lines
}

/// The kind of a line of [`lines`].
fn kind(message: &str) -> &'static str {
    for (prefix, kind) in [
        ("Failed password", "failed"),
        ("Accepted publickey", "accepted"),
        ("pam_unix", "session"),
        ("Disconnected", "disconnected"),
    ] {
        if message.starts_with(prefix) {
            return kind;
        }
    }
    panic!("not a line of the test: {message}")
}

/// Each kind's one id, asserting there is one.
pub(crate) fn ids_by_kind(
    outcomes: &HashMap<String, (String, bool)>,
    messages: &[String],
) -> BTreeMap<&'static str, String> {
    let mut ids: BTreeMap<&'static str, String> = BTreeMap::new();
    for message in messages {
        let (id, _) = &outcomes[message];
        let kind = kind(message);
        if let Some(known) = ids.get(kind) {
            assert_eq!(known, id, "one id per kind on one instance: {message}");
        }
        ids.insert(kind, id.clone());
    }
    ids
}

/// Waits (bounded) until the bucket holds a save of scope `sshd` made at
/// or after `after_ms`.
pub(crate) async fn wait_for_shared_save(server: &NatsServer, after_ms: i64) {
    let bucket = bucket(server, "patterns").await;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(Some((head, _))) = bucket.head("sshd").await
            && head.saved_at_ms >= after_ms
        {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no save of sshd in the bucket after {after_ms}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub(crate) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

#[tokio::test]
async fn a_scope_moved_to_another_instance_keeps_its_pattern_ids() {
    let server = NatsServer::start().await;
    let root = tempfile::tempdir().unwrap();
    let a = Instance::new(&root.path().join("a"), Some(&server.url()));
    let b = Instance::new(&root.path().join("b"), Some(&server.url()));
    // The control: B's input on an instance that shares nothing.
    let alone = Instance::new(&root.path().join("alone"), None);

    // A mines scope sshd, root first.
    let a_lines = lines(&["root", "ubuntu", "pi"], &[0, 1, 2, 3]);
    a.append(&a_lines);
    let mut a_run = a.start().await;
    let a_out = a.wait_for(&a_lines).await;
    let mined_at = now_ms();
    let a_ids = ids_by_kind(&a_out, &a_lines);
    assert_eq!(a_ids.len(), 4);
    // Killed (SIGKILL) only once its save (within 1 s of a new pattern)
    // reached the bucket: a save made after the last line came out.
    wait_for_shared_save(&server, mined_at).await;
    let mut child = a_run.child.take().unwrap();
    child.kill().unwrap();
    child.wait().unwrap();

    // B gets the same kinds in another order, admin first.
    let b_lines = lines(&["admin", "git", "root"], &[3, 2, 1, 0]);
    b.append(&b_lines);
    let mut b_run = b.start().await;
    let b_out = b.wait_for(&b_lines).await;
    assert_eq!(
        ids_by_kind(&b_out, &b_lines),
        a_ids,
        "B continues A's space"
    );
    assert!(
        b_lines.iter().all(|m| !b_out[m].1),
        "no line is a new pattern to B"
    );

    // Without the bucket, the same input mints other ids: the first line
    // of a kind names its pattern.
    alone.append(&b_lines);
    let mut alone_run = alone.start().await;
    let alone_out = alone.wait_for(&b_lines).await;
    let alone_ids = ids_by_kind(&alone_out, &b_lines);
    assert_ne!(alone_ids["failed"], a_ids["failed"]);
    alone_run.terminate(Duration::from_secs(20));

    // B mints a new pattern; the scope then moves back to A (restarted,
    // its local store as it was when it was killed).
    let fresh = vec![
        "Connection closed by authenticating user admin 10.0.9.1 port 50000 [preauth]".to_string(),
    ];
    b.append(&fresh);
    let b_out = b.wait_for(&fresh).await;
    let (fresh_id, is_new) = b_out[&fresh[0]].clone();
    assert!(is_new);
    let minted_at = now_ms();
    wait_for_shared_save(&server, minted_at).await;
    let mut child = b_run.child.take().unwrap();
    child.kill().unwrap();
    child.wait().unwrap();

    let mut a_run = a.start().await;
    let back = vec![
        "Connection closed by authenticating user guest 10.0.9.2 port 50001 [preauth]".to_string(),
        "Failed password for guest from 10.0.9.3 port 50002 ssh2".to_string(),
    ];
    a.append(&back);
    let a_out = a.wait_for(&back).await;
    assert_eq!(a_out[&back[0]], (fresh_id, false), "B's pattern reached A");
    assert_eq!(a_out[&back[1]], (a_ids["failed"].clone(), false));
    let output = a_run.terminate(Duration::from_secs(20));
    assert!(output.status.success());
}

#[tokio::test]
async fn saves_made_while_the_bucket_is_away_are_reconciled_when_it_is_back() {
    let mut server = NatsServer::start().await;
    let shared = shared(&server);
    let bucket = self::bucket(&server, "patterns").await;
    let (_, theirs) = mined(&["disk sda1 full"]);
    let older = bucket.write("ours", &theirs, None, "x", 100).await.unwrap();
    let newer = bucket
        .write("theirs", &theirs, None, "x", 300)
        .await
        .unwrap();
    server.stop();

    // The bucket is out of reach: the link says so at once (mining must
    // not wait), and keeps the saves.
    let started = std::time::Instant::now();
    let mut link = SpaceLink::start(&shared, "patterns", HashMap::new());
    assert!(until_ready(&mut link).await.is_empty());
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let (_, mine) = mined(&["user bob logged in"]);
    for scope in ["ours", "theirs"] {
        link.save(Save {
            scope: scope.into(),
            base: None,
            saved_at_ms: 200,
            snapshot: mine.clone(),
        });
    }

    // Back: the later save wins, scope by scope.
    server.restart().await;
    let mut outcomes = BTreeMap::new();
    while outcomes.len() < 2 {
        match tokio::time::timeout(Duration::from_secs(30), link.update())
            .await
            .expect("reconciled within 30s")
            .expect("the link runs")
        {
            Update::Based {
                scope,
                revision: Some(revision),
                push: false,
            } => {
                assert!(revision > older);
                outcomes.insert(scope, "saved");
            }
            Update::Loaded {
                scope, revision, ..
            } => {
                assert_eq!(revision, newer);
                outcomes.insert(scope, "loaded");
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(
        outcomes["ours"], "saved",
        "ours was saved later (200 > 100)"
    );
    assert_eq!(
        outcomes["theirs"], "loaded",
        "theirs was saved later (300 > 200)"
    );
    let bucket = self::bucket(&server, "patterns").await;
    let ours = bucket.read("ours").await.unwrap().unwrap();
    assert_eq!(ours.snapshot, mine);
    assert_eq!(ours.head.saved_at_ms, 200);
    assert_eq!(
        bucket.read("theirs").await.unwrap().unwrap().revision,
        newer
    );
}

/// A head written by someone else with absurd sizes (garbage, or a hostile
/// writer) is refused as unreadable: the reader must not try to allocate
/// what it claims (an allocation of a petabyte aborts the process).
#[tokio::test]
async fn a_head_claiming_absurd_sizes_is_refused_without_allocating_them() {
    let server = NatsServer::start().await;
    let bucket = bucket(&server, "patterns").await;
    bucket.write("sshd", b"{}", None, "a", 1).await.unwrap();
    let forged = r#"{"generation":1,"chunks":1,"bytes":1000000000000000,"checksum":0,"writer":"x","saved_at_ms":1}"#;
    bucket
        .store()
        .put(bucket.head_key("sshd"), forged.into())
        .await
        .unwrap();
    match bucket.read("sshd").await {
        Err(SpaceError::Broken { cause, .. }) => assert!(cause.contains("bytes"), "{cause}"),
        other => panic!("a head claiming a petabyte was not refused: {other:?}"),
    }
}

/// One head someone else wrote as garbage must not stop the sharing of
/// every other space of the transform (each session used to end at it, so
/// no save ever reached the bucket again); a save of that scope replaces
/// the garbage.
#[tokio::test]
async fn one_unreadable_head_does_not_stop_the_other_spaces() {
    let server = NatsServer::start().await;
    let shared = shared(&server);
    let bucket = bucket(&server, "patterns").await;
    bucket
        .store()
        .put(bucket.head_key("junk"), "not a head".into())
        .await
        .unwrap();
    let mut link = SpaceLink::start_with(&shared, "patterns", HashMap::new(), 256);
    until_ready(&mut link).await;
    for scope in ["db", "junk"] {
        let (_, snapshot) = mined(&["disk sda1 full"]);
        link.save(Save {
            scope: scope.into(),
            base: None,
            saved_at_ms: 1,
            snapshot,
        });
        let update = next(&mut link).await;
        assert!(
            matches!(&update, Update::Based { scope: s, revision: Some(_), .. } if s == scope),
            "{scope} is saved: {update:?}"
        );
        let read = bucket.read(scope).await.unwrap().expect("in the bucket");
        assert_eq!(
            templates(serde_json::from_slice(&read.snapshot).unwrap()),
            ["disk sda1 full"]
        );
    }
}

/// A space whose chunks are corrupt for good (the head stays, its bytes
/// never match its checksum) must not stop the sharing of the other
/// spaces: it used to end every session at the start, so no save reached
/// the bucket again. A save of that scope replaces it.
#[tokio::test]
async fn one_corrupt_space_does_not_stop_the_other_spaces() {
    let server = NatsServer::start().await;
    let shared = shared(&server);
    let bucket = bucket(&server, "patterns").await.with_chunk_bytes(64);
    let (_, old) = mined(&["disk sda1 full", "user bob logged in"]);
    bucket.write("bad", &old, None, "x", 1).await.unwrap();
    let mut forged = 1u64.to_le_bytes().to_vec();
    forged.extend_from_slice(&[0xCD; 64]);
    bucket
        .store()
        .put(bucket.chunk_key("bad", Some("x"), 1, 0), forged.into())
        .await
        .unwrap();
    let mut link = SpaceLink::start_with(&shared, "patterns", HashMap::new(), 256);
    until_ready(&mut link).await;
    for scope in ["db", "bad"] {
        let (_, snapshot) = mined(&["cache miss for key 7"]);
        let base = bucket
            .head(scope)
            .await
            .unwrap()
            .map(|(_, revision)| revision);
        link.save(Save {
            scope: scope.into(),
            base,
            saved_at_ms: 2,
            snapshot,
        });
        let update = next(&mut link).await;
        assert!(
            matches!(&update, Update::Based { scope: s, revision: Some(_), .. } if s == scope),
            "{scope} is saved: {update:?}"
        );
        let read = bucket.read(scope).await.unwrap().expect("in the bucket");
        assert_eq!(
            templates(serde_json::from_slice(&read.snapshot).unwrap()),
            ["cache miss for key <NUM>"]
        );
    }
}
