//! A fleet's shared triage state (`[state.shared.nats]`): real howl
//! processes, each with its own `data_dir` and API, sharing one bucket on a
//! real `nats-server -js`, with the loopback LLM server counting questions.

use std::path::Path;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use serde_json::{Value, json};

use crate::common::fake_llm::FakeLlm;
use crate::common::nats::NatsServer;
use crate::common::relay::Relay;
use crate::common::{Running, client, free_port, get_json, metric, write};
use crate::llm_suppress::{api_topology, post};

/// One instance of the fleet: its directory (keep it alive), process and
/// source port.
struct Instance {
    dir: tempfile::TempDir,
    howl: Running,
    http: u16,
}

impl Instance {
    /// Starts howl with the triage topology of `llm_suppress`'s tests and
    /// the shared state in `bucket` on `nats`.
    async fn start(nats: &NatsServer, llm: &FakeLlm) -> Self {
        Self::start_with(nats, llm, "decision_timeout_secs = 20").await
    }

    /// [`Self::start`] with `timeouts` (TOML) in the `llm_suppress` table.
    async fn start_with(nats: &NatsServer, llm: &FakeLlm, timeouts: &str) -> Self {
        Self::start_at(&nats.url(), llm, timeouts).await
    }

    /// [`Self::start_with`] reaching the server at `url` (a relay to it).
    async fn start_at(url: &str, llm: &FakeLlm, timeouts: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (api, http) = (free_port(), free_port());
        let triage = format!(
            "provider = \"openai\"\nendpoint = \"{}/v1\"\nmodel = \"fake\"\n{timeouts}",
            llm.base
        );
        let shared = format!("[state.shared.nats]\nurl = \"{url}\"\nbucket = \"fleet\"\n");
        let config = write(
            dir.path(),
            "fleet.toml",
            &api_topology(api, http, &triage, &shared),
        );
        let howl = Running::start(dir.path(), &config, api, &[]).await;
        Self { dir, howl, http }
    }

    /// Waits (bounded) until `shared_state_connected` is `connected`.
    async fn wait_connected(&self, connected: bool, limit: Duration) {
        let want = if connected { 1.0 } else { 0.0 };
        let deadline = Instant::now() + limit;
        loop {
            let text = self.howl.metrics().await;
            if metric(&text, "shared_state_connected", &[]) == Some(want) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "shared_state_connected never became {want} within {limit:?}; stderr:\n{}",
                self.howl.stderr()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The suppressions this instance lists.
    async fn suppressions(&self) -> Vec<Value> {
        get_json(format!("{}/api/v1/suppressions", self.howl.api)).await
    }

    /// This instance's suppression of `pattern`, if it lists one.
    async fn suppression_of(&self, pattern: &str) -> Option<Value> {
        self.suppressions()
            .await
            .into_iter()
            .find(|s| s["pattern_id"] == pattern)
    }

    async fn suppress(&self, pattern: &str, reason: &str) -> Value {
        let response = client()
            .post(format!("{}/api/v1/suppressions", self.howl.api))
            .json(&json!({"pattern_id": pattern, "reason": reason, "created_by": "alice"}))
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_success(),
            "suppressing {pattern}: {}",
            response.status()
        );
        response.json().await.unwrap()
    }

    async fn unsuppress(&self, pattern: &str) {
        let response = client()
            .delete(format!("{}/api/v1/suppressions/{pattern}", self.howl.api))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "unsuppressing {pattern}");
    }
}

fn pattern_event(id: &str, message: &str) -> Value {
    json!({"message": message, "pattern": {"id": id, "template": message, "level": "error"}})
}

/// The event with `message`, once `dir`'s passed or suppressed file holds
/// it, with the file's name.
async fn decided(dir: &Path, message: &str) -> (&'static str, Value) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        for file in ["passed.jsonl", "suppressed.jsonl"] {
            let text = std::fs::read_to_string(dir.join(file)).unwrap_or_default();
            if let Some(event) = text
                .lines()
                .filter_map(|line| serde_json::from_str::<Value>(line).ok())
                .find(|event| event["message"] == message)
            {
                return (file, event);
            }
        }
        assert!(
            Instant::now() < deadline,
            "{message:?} was never decided in {}",
            dir.display()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls `check` every 10 ms until it returns `Some`; fails after `limit`.
async fn until<T, F: Future<Output = Option<T>>>(
    what: &str,
    limit: Duration,
    mut check: impl FnMut() -> F,
) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "{what} within {limit:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_fleet_of_three_shares_suppressions_verdicts_and_the_audit_trail() {
    let nats = NatsServer::start().await;
    let llm = FakeLlm::start().await;
    let fleet = join_all((0..3).map(|_| Instance::start(&nats, &llm))).await;
    for instance in &fleet {
        instance.wait_connected(true, Duration::from_secs(15)).await;
    }

    // The same new patterns reach all three at once: one question each for
    // the whole fleet, and every instance decides by its verdict.
    let patterns = [
        ("1111111111111111", "GET /healthz 200"),
        ("2222222222222222", "disk /var is full"),
        ("3333333333333333", "db connection refused"),
    ];
    join_all(fleet.iter().enumerate().flat_map(|(i, instance)| {
        patterns.iter().map(move |(id, message)| {
            post(instance.http, pattern_event(id, &format!("{message} #{i}")))
        })
    }))
    .await;
    for (i, instance) in fleet.iter().enumerate() {
        for (id, message) in patterns {
            let (file, event) = decided(instance.dir.path(), &format!("{message} #{i}")).await;
            assert_eq!(
                event["triage"]["source"], "llm",
                "instance {i}, {id}: {event}"
            );
            let expected = if id.starts_with('1') {
                "suppressed.jsonl"
            } else {
                "passed.jsonl"
            };
            assert_eq!(file, expected, "instance {i}, {id}: {event}");
        }
    }
    assert_eq!(
        llm.requests().len(),
        patterns.len(),
        "one question per pattern across the fleet"
    );

    // A suppression made through A's API is in force on B and C within 1 s.
    let (a, b, c) = (&fleet[0], &fleet[1], &fleet[2]);
    let disk = patterns[1].0;
    let started = Instant::now();
    let created = a.suppress(disk, "known, ticket OPS-1").await;
    for other in [b, c] {
        until(
            "B and C list A's suppression",
            Duration::from_secs(5),
            || other.suppression_of(disk),
        )
        .await;
    }
    let took = started.elapsed();
    println!("suppression in force on B and C after {took:?}");
    assert!(took <= Duration::from_secs(1), "took {took:?}");
    for (i, other) in [(1, b), (2, c)] {
        let message = format!("disk /var is full again #{i}");
        post(other.http, pattern_event(disk, &message)).await;
        let (file, event) = decided(other.dir.path(), &message).await;
        assert_eq!(file, "suppressed.jsonl", "{event}");
        assert_eq!(event["triage"]["source"], "operator");
        assert_eq!(event["triage"]["suppression_id"], created["id"]);
    }

    // The decision is in every instance's audit trail.
    for other in [b, c] {
        until(
            "A's decision in the others' audit trails",
            Duration::from_secs(5),
            || async {
                let records: Vec<Value> =
                    get_json(format!("{}/api/v1/audit?pattern_id={disk}", other.howl.api)).await;
                records
                    .into_iter()
                    .find(|r| r["action"] == "suppress" && r["who"] == "alice")
            },
        )
        .await;
    }

    // Deleted on C: gone everywhere (a tombstone, not a missing key).
    let started = Instant::now();
    c.unsuppress(disk).await;
    for other in [a, b] {
        until(
            "the deletion on A and B",
            Duration::from_secs(5),
            || async { other.suppression_of(disk).await.is_none().then_some(()) },
        )
        .await;
    }
    assert!(
        started.elapsed() <= Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    let message = "disk /var is full once more #0";
    post(a.http, pattern_event(disk, message)).await;
    assert_eq!(decided(a.dir.path(), message).await.0, "passed.jsonl");
    assert_eq!(
        llm.requests().len(),
        patterns.len(),
        "still nothing asked twice"
    );
}

#[tokio::test]
async fn instances_keep_working_through_a_nats_outage_and_reconcile_after_it() {
    let mut nats = NatsServer::start().await;
    let llm = FakeLlm::start().await;
    let (a, b) = (
        Instance::start(&nats, &llm).await,
        Instance::start(&nats, &llm).await,
    );
    a.wait_connected(true, Duration::from_secs(15)).await;
    b.wait_connected(true, Duration::from_secs(15)).await;
    // Suppressed everywhere before the outage, deleted on B during it.
    let (old, fresh) = ("aaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbb");
    a.suppress(old, "noise").await;
    until("B gets the suppression", Duration::from_secs(5), || {
        b.suppression_of(old)
    })
    .await;

    nats.stop();
    a.wait_connected(false, Duration::from_secs(10)).await;
    b.wait_connected(false, Duration::from_secs(10)).await;
    // Triage goes on: a new pattern is asked locally and decided.
    post(
        a.http,
        pattern_event("cccccccccccccccc", "GET /healthz 503"),
    )
    .await;
    assert_eq!(
        decided(a.dir.path(), "GET /healthz 503").await.0,
        "suppressed.jsonl"
    );
    // Two decisions about one pattern, the later on B; a deletion on B.
    a.suppress(fresh, "first, on A").await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    b.suppress(fresh, "second, on B").await;
    b.unsuppress(old).await;
    assert!(
        a.suppression_of(old).await.is_some(),
        "nothing reaches A while NATS is down"
    );

    nats.restart().await;
    for instance in [&a, &b] {
        instance.wait_connected(true, Duration::from_secs(15)).await;
    }
    for (name, instance) in [("A", &a), ("B", &b)] {
        let reason = until(
            &format!("{name} settles on the later decision"),
            Duration::from_secs(10),
            || async {
                let reason = instance.suppression_of(fresh).await?["reason"].clone();
                (reason == "second, on B").then_some(reason)
            },
        )
        .await;
        assert_eq!(reason, "second, on B");
        until(
            &format!("{name} has B's deletion"),
            Duration::from_secs(10),
            || async { instance.suppression_of(old).await.is_none().then_some(()) },
        )
        .await;
    }
    // Events of the pattern are suppressed on A by B's decision.
    post(a.http, pattern_event(fresh, "after the outage")).await;
    let (file, event) = decided(a.dir.path(), "after the outage").await;
    assert_eq!(file, "suppressed.jsonl");
    assert_eq!(event["triage"]["reason"], "second, on B", "{event}");
    assert!(
        a.howl.stderr().contains("out of reach"),
        "the outage is logged:\n{}",
        a.howl.stderr()
    );
}

/// The fleet's bucket as another writer sees it (the instances create it).
async fn bucket(nats: &NatsServer) -> async_nats::jetstream::kv::Store {
    nats.jetstream()
        .await
        .get_key_value("fleet")
        .await
        .expect("the fleet's bucket")
}

/// A value stamped far in the future (a hostile writer, or an instance
/// whose clock is years off) must not win every later change: here a
/// tombstone from 2099 sits on a pattern's key; an operator's suppression
/// made afterwards on A still reaches B.
#[tokio::test]
async fn a_change_stamped_in_the_future_does_not_outrank_every_later_one() {
    let nats = NatsServer::start().await;
    let llm = FakeLlm::start().await;
    let (a, b) = (
        Instance::start(&nats, &llm).await,
        Instance::start(&nats, &llm).await,
    );
    a.wait_connected(true, Duration::from_secs(15)).await;
    b.wait_connected(true, Duration::from_secs(15)).await;
    let pattern = "dddddddddddddddd";
    bucket(&nats)
        .await
        .put(
            format!("supp.{pattern}"),
            r#"{"at":"2099-01-01T00:00:00Z","origin":"ffffffffffffffff","value":null}"#.into(),
        )
        .await
        .unwrap();
    a.suppress(pattern, "made after the bogus tombstone").await;
    until(
        "B gets A's suppression despite the tombstone from 2099",
        Duration::from_secs(10),
        || b.suppression_of(pattern),
    )
    .await;
    assert!(
        a.howl.stderr().contains("in the future"),
        "the bogus stamp is logged:\n{}",
        a.howl.stderr()
    );
}

/// A claim on a question whose deadline lies far in the future (a hostile
/// value, or a claimant whose clock is far ahead that then died) must not
/// keep the fleet from ever asking about the pattern.
#[tokio::test]
async fn a_claim_that_never_runs_out_does_not_block_the_question_forever() {
    let nats = NatsServer::start().await;
    let llm = FakeLlm::start().await;
    let instance =
        Instance::start_with(&nats, &llm, "decision_timeout_secs = 1\ntimeout_secs = 2").await;
    let (howl, http) = (&instance.howl, instance.http);
    until("connected", Duration::from_secs(15), || async {
        (metric(&howl.metrics().await, "shared_state_connected", &[]) == Some(1.0)).then_some(())
    })
    .await;
    let pattern = "eeeeeeeeeeeeeeee";
    bucket(&nats)
        .await
        .put(
            format!("ask.triage.{pattern}"),
            r#"{"owner":"ffffffffffffffff","deadline":"2099-01-01T00:00:00Z"}"#.into(),
        )
        .await
        .unwrap();
    let asked_before = llm.requests().len();
    post(http, pattern_event(pattern, "never asked?")).await;
    until(
        "the classifier is asked about the pattern despite the endless claim",
        Duration::from_secs(30),
        || async { (llm.requests().len() > asked_before).then_some(()) },
    )
    .await;
}

/// A bucket pre-created with an age limit (by an operator, or another
/// bucket's name reused, such as a lease bucket) would drop decisions
/// silently: it is refused, and the refusal names the bucket and why.
#[tokio::test]
async fn a_bucket_with_an_age_limit_is_refused() {
    let nats = NatsServer::start().await;
    nats.create_aged_bucket("fleet", 5, Duration::from_secs(60))
        .await;
    let llm = FakeLlm::start().await;
    let a = Instance::start(&nats, &llm).await;
    until("the refusal is logged", Duration::from_secs(15), || async {
        a.howl
            .stderr()
            .contains("`fleet` removes entries after 60s")
            .then_some(())
    })
    .await;
    let text = a.howl.metrics().await;
    assert_eq!(
        metric(&text, "shared_state_connected", &[]),
        Some(0.0),
        "not connected to a bucket that drops decisions"
    );
}

/// POSTs a reload to `howl`: the status and the JSON answer.
/// Writes `config` as the instance's `fleet.toml` and asks for a reload:
/// the answer's status and body.
async fn reload_with(instance: &Instance, config: &str) -> (u16, Value) {
    write(instance.dir.path(), "fleet.toml", config);
    post_reload(&instance.howl).await
}

async fn post_reload(howl: &Running) -> (u16, Value) {
    let response = client()
        .post(format!("{}/api/v1/reload", howl.api))
        .send()
        .await
        .expect("POST /api/v1/reload");
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON answer"))
}

#[tokio::test]
async fn a_reload_that_changes_the_shared_state_is_refused_naming_the_file_and_option() {
    let nats = NatsServer::start_with(&["--user", "howl", "--pass", "first-Pw"]).await;
    let llm = FakeLlm::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (api, http) = (free_port(), free_port());
    let triage = format!(
        "provider = \"openai\"\nendpoint = \"{}/v1\"\nmodel = \"fake\"\n",
        llm.base
    );
    let shared = |bucket: &str, password: &str| {
        format!(
            "[state.shared.nats]\nurl = \"{}\"\nbucket = \"{bucket}\"\n\
             auth = {{ strategy = \"user_password\", user = \"howl\", password = \"{password}\" }}\n",
            nats.url()
        )
    };
    let config =
        |bucket: &str, password: &str| api_topology(api, http, &triage, &shared(bucket, password));
    let path = write(dir.path(), "fleet.toml", &config("fleet", "first-Pw"));
    let howl = Running::start(dir.path(), &path, api, &[]).await;
    let mut instance = Instance { dir, howl, http };
    instance.wait_connected(true, Duration::from_secs(15)).await;

    // Unchanged: applied, nothing to do.
    let (status, body) = post_reload(&instance.howl).await;
    assert_eq!(status, 200, "{body}");

    // The password alone changed (rotated): the running connection still
    // uses the old one, so "reloaded" would be a lie.
    let (status, body) = reload_with(&instance, &config("fleet", "second-Pw")).await;
    assert_eq!(status, 400, "a new password was taken as applied: {body}");
    let reasons = body["reasons"].to_string();
    assert!(reasons.contains("fleet.toml"), "no file named: {body}");
    assert!(
        reasons.contains("state.shared.nats.auth"),
        "no option named: {body}"
    );
    assert!(
        !reasons.contains("second-Pw"),
        "the secret is shown: {body}"
    );

    // Another bucket: refused, naming the option and both names.
    let (status, body) = reload_with(&instance, &config("other", "first-Pw")).await;
    assert_eq!(status, 400, "{body}");
    let reasons = body["reasons"].to_string();
    assert!(reasons.contains("fleet.toml"), "no file named: {body}");
    assert!(
        reasons.contains("state.shared.nats.bucket") && reasons.contains("`other`"),
        "the option is not named: {body}"
    );

    // Back as started: nothing wedged, still connected, and it still works.
    let (status, body) = reload_with(&instance, &config("fleet", "first-Pw")).await;
    assert_eq!(status, 200, "{body}");
    instance.wait_connected(true, Duration::from_secs(5)).await;
    instance.suppress("p-reload", "after the reloads").await;
    let client =
        async_nats::ConnectOptions::with_user_and_password("howl".into(), "first-Pw".into())
            .connect(nats.url())
            .await
            .expect("connect as howl");
    let bucket = async_nats::jetstream::new(client)
        .get_key_value("fleet")
        .await
        .expect("the bucket");
    until(
        "the suppression reaches the bucket",
        Duration::from_secs(15),
        || async {
            let mut keys = bucket.keys().await.ok()?;
            while let Some(Ok(key)) = futures_util::StreamExt::next(&mut keys).await {
                if key.contains("p-reload") {
                    return Some(());
                }
            }
            None
        },
    )
    .await;
    instance.howl.terminate_cleanly(Duration::from_secs(30));
}

/// Sends `event` to `http` without waiting for the answer: the source
/// answers only once the event was decided, and here the instance may be
/// killed before that.
fn send_in_background(http: u16, event: Value) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let _ = client()
            .post(format!("http://127.0.0.1:{http}/"))
            .json(&event)
            .send()
            .await;
    })
}

/// An instance killed (`kill -9`) while it asks the classifier, after
/// claiming the question and before sharing its verdict: it no longer
/// renews its claim, and another instance takes the question over within
/// about one lease (5 s), while the event it holds still waits for a
/// verdict (`decision_timeout_secs` 30): decided by its own question, not
/// released unjudged.
#[tokio::test]
async fn a_claimant_killed_before_its_verdict_is_taken_over_after_its_claim_runs_out() {
    let nats = NatsServer::start().await;
    let llm = FakeLlm::start().await;
    let timeouts = "decision_timeout_secs = 30\ntimeout_secs = 10";
    let started = Instant::now();
    let mut a = Instance::start_with(&nats, &llm, timeouts).await;
    let b = Instance::start_with(&nats, &llm, timeouts).await;
    a.wait_connected(true, Duration::from_secs(15)).await;
    b.wait_connected(true, Duration::from_secs(15)).await;
    eprintln!("both connected {:?} after the start", started.elapsed());
    // A slow classifier: `a` is still asking when it is killed.
    llm.set_delay(Duration::from_secs(60));
    let pattern = "abababababababab";
    let sending = send_in_background(a.http, pattern_event(pattern, "first, on a"));
    let kv = bucket(&nats).await;
    let claim = until("a claims the question", Duration::from_secs(15), || async {
        kv.entry(format!("ask.triage.{pattern}")).await.ok()?
    })
    .await;
    until("a asks", Duration::from_secs(15), || async {
        (!llm.requests().is_empty()).then_some(())
    })
    .await;
    eprintln!(
        "a claimed and asked {:?} after the start",
        started.elapsed()
    );
    let mut child = a.howl.child.take().expect("running");
    child.kill().expect("kill -9");
    child.wait().expect("reap");
    sending.abort();
    let killed = Instant::now();
    llm.set_delay(Duration::ZERO);
    let asked = llm.requests().len();
    let _answered = send_in_background(b.http, pattern_event(pattern, "then, on b"));
    let (file, event) = decided(b.dir.path(), "then, on b").await;
    let waited = killed.elapsed();
    eprintln!(
        "b decided ({file}) {waited:?} after the claimant was killed; claim: {}",
        String::from_utf8_lossy(&claim.value)
    );
    assert!(llm.requests().len() > asked, "b never asked by itself");
    assert_eq!(
        event["triage"]["source"], "llm",
        "released unjudged: {event}"
    );
    // One lease (5 s) after a's last renewal, plus slack; far below
    // decision_timeout_secs.
    assert!(
        waited < Duration::from_secs(12),
        "b held its event {waited:?}"
    );
    let verdict = bucket(&nats)
        .await
        .get(format!("verdict.triage.{pattern}"))
        .await
        .expect("read the verdict");
    let verdict = verdict.expect("b's verdict is shared");
    eprintln!("b's verdict: {}", String::from_utf8_lossy(&verdict));
}

/// A claimant whose question takes longer than the claim's lease (a slow
/// model) renews its claim while it asks: the other instance waits for its
/// verdict and does not ask itself, though the question outlasts two
/// leases.
#[tokio::test]
async fn a_claim_is_renewed_while_its_owner_asks_longer_than_the_lease() {
    let nats = NatsServer::start().await;
    let llm = FakeLlm::start().await;
    let timeouts = "decision_timeout_secs = 30\ntimeout_secs = 25";
    let a = Instance::start_with(&nats, &llm, timeouts).await;
    let b = Instance::start_with(&nats, &llm, timeouts).await;
    a.wait_connected(true, Duration::from_secs(15)).await;
    b.wait_connected(true, Duration::from_secs(15)).await;
    llm.set_delay(Duration::from_secs(12));
    let pattern = "cdcdcdcdcdcdcdcd";
    let _on_a = send_in_background(a.http, pattern_event(pattern, "slow, on a"));
    let kv = bucket(&nats).await;
    let claim = until("a claims the question", Duration::from_secs(15), || async {
        kv.entry(format!("ask.triage.{pattern}")).await.ok()?
    })
    .await;
    let asked = Instant::now();
    let _on_b = send_in_background(b.http, pattern_event(pattern, "slow, on b"));
    let (file, event) = decided(b.dir.path(), "slow, on b").await;
    eprintln!("b decided ({file}) {:?} after a claimed", asked.elapsed());
    assert_eq!(
        event["triage"]["source"], "llm",
        "released unjudged: {event}"
    );
    assert_eq!(
        llm.requests().len(),
        1,
        "b asked too, though a was still asking"
    );
    assert!(
        asked.elapsed() > Duration::from_secs(10),
        "the question did not outlast two leases"
    );
    let now = kv
        .entry(format!("ask.triage.{pattern}"))
        .await
        .expect("read the claim")
        .expect("the claim");
    assert!(
        now.revision > claim.revision,
        "the claim was never renewed: {} then {}",
        claim.revision,
        now.revision
    );
    assert_eq!(decided(a.dir.path(), "slow, on a").await.0, file);
}

/// A renewal the server carried out but answered too late for its owner
/// (a congested link: the update timed out, yet the claim's revision
/// moved): the owner must not take its own write for another instance's
/// takeover and stop renewing, or its claim runs out while it still asks
/// and the other instance asks the same question a second time.
#[tokio::test]
async fn a_renewal_answered_too_late_does_not_end_the_claim() {
    let nats = NatsServer::start().await;
    let relay = Relay::start(nats.port).await;
    let llm = FakeLlm::start().await;
    let timeouts = "decision_timeout_secs = 30\ntimeout_secs = 25";
    let a = Instance::start_at(&format!("nats://127.0.0.1:{}", relay.port), &llm, timeouts).await;
    let b = Instance::start_with(&nats, &llm, timeouts).await;
    a.wait_connected(true, Duration::from_secs(15)).await;
    b.wait_connected(true, Duration::from_secs(15)).await;
    llm.set_delay(Duration::from_secs(15));
    let pattern = "efefefefefefefef";
    let _on_a = send_in_background(a.http, pattern_event(pattern, "late, on a"));
    until("a asks", Duration::from_secs(15), || async {
        (!llm.requests().is_empty()).then_some(())
    })
    .await;
    // a renews every 1.7 s and gives up on an answer after 2 s: at least
    // one renewal is written but answered only after that.
    relay.hold(true);
    let _on_b = send_in_background(b.http, pattern_event(pattern, "late, on b"));
    tokio::time::sleep(Duration::from_millis(4500)).await;
    relay.hold(false);
    let (file, event) = decided(b.dir.path(), "late, on b").await;
    assert_eq!(
        event["triage"]["source"], "llm",
        "released unjudged: {event}"
    );
    assert_eq!(
        llm.requests().len(),
        1,
        "b asked too, though a was still asking; a's log:\n{}",
        a.howl.stderr()
    );
    assert_eq!(decided(a.dir.path(), "late, on a").await.0, file);
}

/// A claim's owner whose clock lags the others' by seconds (a host
/// without NTP) writes deadlines that already look past to them, though it
/// renews its claim in time: the others must go by whether the claim is
/// renewed, not by the deadline it names, or they take a live owner's
/// question over and ask it a second time. The test is that owner here,
/// 4.5 s behind: it renews every second for 12 s, then stops, and only
/// then does the instance take the question over.
#[tokio::test]
async fn a_claim_renewed_by_an_owner_whose_clock_lags_is_not_taken_over() {
    let nats = NatsServer::start().await;
    let llm = FakeLlm::start().await;
    let instance =
        Instance::start_with(&nats, &llm, "decision_timeout_secs = 40\ntimeout_secs = 10").await;
    instance.wait_connected(true, Duration::from_secs(15)).await;
    let pattern = "fafafafafafafafa";
    let key = format!("ask.triage.{pattern}");
    let lagging = || {
        let deadline = chrono::Utc::now() - chrono::Duration::milliseconds(4500)
            + chrono::Duration::seconds(5);
        json!({
            "owner": "ffffffffffffffff",
            "deadline": deadline.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        })
        .to_string()
    };
    let kv = bucket(&nats).await;
    let mut revision = kv.create(&key, lagging().into()).await.expect("claim");
    let _sent = send_in_background(instance.http, pattern_event(pattern, "lagging owner"));
    let renewing = Instant::now();
    while renewing.elapsed() < Duration::from_secs(12) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        revision = match kv.update(&key, lagging().into(), revision).await {
            Ok(revision) => revision,
            Err(error) => panic!(
                "the claim, renewed every second, was taken over after {:?} ({error}); \
                 questions asked: {}",
                renewing.elapsed(),
                llm.requests().len()
            ),
        };
        assert!(
            llm.requests().is_empty(),
            "asked {:?} into a claim renewed every second",
            renewing.elapsed()
        );
    }
    let stopped = Instant::now();
    let (_, event) = decided(instance.dir.path(), "lagging owner").await;
    eprintln!(
        "taken over and decided {:?} after the renewals stopped",
        stopped.elapsed()
    );
    assert_eq!(
        event["triage"]["source"], "llm",
        "released unjudged: {event}"
    );
    assert_eq!(llm.requests().len(), 1);
}
