//! The `llm_suppress` transform through the real binary, against a loopback
//! server speaking the OpenAI, Ollama and Anthropic wire formats: one
//! question per pattern, redaction, failing open, persistence across
//! restarts, the suppression API and its metrics, and the command line
//! with a real Alertmanager's silences.

use std::path::Path;
use std::time::Duration;

use crate::common::alertmanager::Alertmanager;
use crate::common::fake_llm::{FakeLlm, prompt_text};
use crate::common::{
    Running, client, free_port, get_json, howl_in, run_with_input, wait_for, write,
};
use serde_json::{Value, json};

/// stdin → pattern → llm_suppress → console (passing) and a file
/// (suppressed).
fn stdin_topology(triage: &str) -> String {
    format!(
        "data_dir = \"state\"\n\
         [sources.in]\ntype = \"stdin\"\n\
         [transforms.patterns]\ntype = \"pattern\"\ninputs = [\"in\"]\n\
         [transforms.triage]\ntype = \"llm_suppress\"\ninputs = [\"patterns\"]\n{triage}\n\
         [sinks.alerts]\ntype = \"console\"\ninputs = [\"triage\"]\n\
         [sinks.suppressed]\ntype = \"file\"\ninputs = [\"triage.suppressed\"]\npath = \"suppressed.jsonl\"\n"
    )
}

fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).expect("JSON event"))
        .collect()
}

/// Runs the topology on `input` off the runtime that serves the fake (its
/// answers must keep flowing while we wait); returns (passed, suppressed).
async fn run(dir: &Path, config: &str, input: String) -> (Vec<Value>, Vec<Value>) {
    write(dir, "a.toml", config);
    let cwd = dir.to_path_buf();
    let output = tokio::task::spawn_blocking(move || {
        run_with_input(
            &["run", "-c", "a.toml"],
            &cwd,
            input.as_bytes(),
            Duration::from_secs(90),
        )
    })
    .await
    .expect("howl runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "howl failed:\n{stderr}");
    let suppressed = std::fs::read_to_string(dir.join("suppressed.jsonl")).unwrap_or_default();
    (
        json_lines(&String::from_utf8_lossy(&output.stdout)),
        json_lines(&suppressed),
    )
}

/// 10,000 lines of four kinds: health checks (noise) and three others.
fn ten_thousand_lines() -> String {
    (0..10_000)
        .map(|i| match i % 4 {
            0 => format!("2026-11-22T10:00:00Z INFO GET /healthz 200 {}ms\n", i % 7),
            1 => format!(
                "2026-11-22T10:00:00Z ERROR disk /var/lib/pg is full ({}%)\n",
                90 + i % 9
            ),
            2 => format!("2026-11-22T10:00:00Z WARN payment {i} declined by the bank\n"),
            _ => format!(
                "2026-11-22T10:00:00Z INFO order {i} shipped in {} parcels\n",
                i % 3 + 1
            ),
        })
        .collect()
}

fn distinct_patterns(events: &[Value]) -> std::collections::BTreeSet<String> {
    events
        .iter()
        .filter_map(|e| e["pattern"]["id"].as_str().map(str::to_string))
        .collect()
}

#[tokio::test]
async fn each_provider_triages_ten_thousand_lines_with_one_question_per_pattern() {
    for (provider, path) in [("openai", "/v1"), ("ollama", ""), ("anthropic", "")] {
        let llm = FakeLlm::start().await;
        let dir = tempfile::tempdir().unwrap();
        let triage = format!(
            "provider = \"{provider}\"\nendpoint = \"{}{path}\"\nmodel = \"fake\"\napi_key = \"sk-test-key-0123456789\"",
            llm.base
        );
        let (passed, suppressed) =
            run(dir.path(), &stdin_topology(&triage), ten_thousand_lines()).await;
        assert_eq!(
            passed.len() + suppressed.len(),
            10_000,
            "{provider}: no line lost"
        );
        assert_eq!(suppressed.len(), 2500, "{provider}: the health checks");
        assert!(
            suppressed
                .iter()
                .all(|e| e["message"].as_str().unwrap().contains("/healthz"))
        );
        assert!(
            suppressed
                .iter()
                .all(|e| e["triage"]["source"] == "llm" && e["triage"]["verdict"] == "noise"),
            "{provider}: {:?}",
            suppressed[0]["triage"]
        );
        assert!(passed.iter().all(|e| e["triage"]["verdict"] == "important"));
        let patterns = distinct_patterns(&passed).len() + distinct_patterns(&suppressed).len();
        let requests = llm.requests();
        assert_eq!(
            requests.len(),
            patterns,
            "{provider}: one question per pattern"
        );
        assert!(
            patterns <= 6,
            "{provider}: {patterns} patterns for four kinds of line"
        );
    }
}

/// One line per kind of secret the redaction must mask, and the secret.
const SECRETS: &[(&str, &str)] = &[
    ("login failed for alice@example.com", "alice@example.com"),
    ("connection from 203.0.113.77 dropped", "203.0.113.77"),
    (
        "request with Authorization: Bearer s3cr3tB3arerT0ken.abc",
        "s3cr3tB3arerT0ken.abc",
    ),
    (
        "uploading with key AKIAIOSFODNN7EXAMPLE",
        "AKIAIOSFODNN7EXAMPLE",
    ),
    (
        "push with ghp_abcdefghijklmnopqrstuvwxyz0123456789",
        "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
    ),
    (
        "slack xoxb-1234567890-abcdefghijkl failed",
        "xoxb-1234567890-abcdefghijkl",
    ),
    (
        "openai key sk-proj-Abc123Def456Ghi789Jkl0 rejected",
        "sk-proj-Abc123Def456Ghi789Jkl0",
    ),
    (
        "session eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NSJ9.c2lnbmF0dXJl expired",
        "eyJzdWIiOiIxMjM0NSJ9",
    ),
    ("db login password=hunter2 ok", "hunter2"),
    ("vault secret=T0pS3cret! read", "T0pS3cret!"),
    ("refresh token=abcdef123456 used", "abcdef123456"),
    ("charged card 4111 1111 1111 1111 ok", "4111 1111 1111 1111"),
    ("customer id 7 order ORD-99812 placed", "ORD-99812"),
];

#[tokio::test]
async fn secrets_never_reach_the_provider() {
    let llm = FakeLlm::start().await;
    let dir = tempfile::tempdir().unwrap();
    let triage = format!(
        "provider = \"openai\"\nendpoint = \"{}/v1\"\nmodel = \"fake\"\nredact = ['ORD-\\d+']",
        llm.base
    );
    // Each line twice with a different number, so it is a sample of its
    // pattern whatever the miner makes of it.
    let input: String = SECRETS
        .iter()
        .flat_map(|(line, _)| {
            [
                format!("WARN {line} (try 1)\n"),
                format!("WARN {line} (try 2)\n"),
            ]
        })
        .collect();
    let (passed, suppressed) = run(dir.path(), &stdin_topology(&triage), input).await;
    assert_eq!(passed.len() + suppressed.len(), SECRETS.len() * 2);
    let requests = llm.requests();
    assert!(!requests.is_empty());
    for request in &requests {
        let text = prompt_text(&request.body);
        for (_, secret) in SECRETS {
            assert!(
                !text.contains(secret),
                "`{secret}` reached the provider:\n{text}"
            );
        }
    }
    let everything: String = requests.iter().map(|r| r.body.to_string()).collect();
    assert!(
        everything.contains("<EMAIL>") && everything.contains("<CARD>"),
        "masks are visible"
    );
}

#[tokio::test]
async fn an_outage_fails_open_and_every_alert_passes() {
    let llm = FakeLlm::start().await;
    llm.set_down(true);
    let dir = tempfile::tempdir().unwrap();
    let triage = format!(
        "provider = \"ollama\"\nendpoint = \"{}\"\nmodel = \"fake\"\ntimeout_secs = 1\ndecision_timeout_secs = 2",
        llm.base
    );
    let (passed, suppressed) =
        run(dir.path(), &stdin_topology(&triage), ten_thousand_lines()).await;
    assert!(
        suppressed.is_empty(),
        "nothing is suppressed without a verdict"
    );
    assert_eq!(passed.len(), 10_000);
    assert!(passed.iter().all(|e| e["triage"]["source"] == "error"));
    // Every question was retried within its deadline (503 is retryable),
    // then the patterns backed off: one distinct question per pattern, not
    // one per line.
    let patterns = distinct_patterns(&passed).len();
    let requests = llm.requests();
    let questions: std::collections::BTreeSet<String> =
        requests.iter().map(|r| prompt_text(&r.body)).collect();
    assert_eq!(questions.len(), patterns, "one question per pattern");
    assert!(
        requests.len() < 20 * patterns,
        "{} requests for {patterns} patterns",
        requests.len()
    );
}

/// howl with the API, an http_server source and the triage transform,
/// writing passing and suppressed events to files.
pub(super) fn api_topology(api: u16, http: u16, triage: &str, api_extra: &str) -> String {
    format!(
        "data_dir = \"state\"\n[api]\nenabled = true\naddress = \"127.0.0.1:{api}\"\n{api_extra}\n\
         [sources.in]\ntype = \"http_server\"\naddress = \"127.0.0.1:{http}\"\ndecoding = \"json\"\n\
         [transforms.triage]\ntype = \"llm_suppress\"\ninputs = [\"in\"]\n{triage}\n\
         [sinks.passed]\ntype = \"file\"\ninputs = [\"triage\"]\npath = \"passed.jsonl\"\n\
         [sinks.suppressed]\ntype = \"file\"\ninputs = [\"triage.suppressed\"]\npath = \"suppressed.jsonl\"\n"
    )
}

fn pattern_event(id: &str, message: &str) -> Value {
    json!({"message": message, "pattern": {"id": id, "template": message, "level": "error"}})
}

pub(super) async fn post(http: u16, event: Value) {
    let response = client()
        .post(format!("http://127.0.0.1:{http}/"))
        .json(&event)
        .send()
        .await
        .expect("post event");
    assert_eq!(response.status(), 200);
}

/// Waits (bounded) until `file` in `dir` holds an event with `message`;
/// returns it.
pub(super) async fn event_in(dir: &Path, file: &str, message: &str) -> Value {
    let path = dir.join(file);
    wait_for(
        &format!("{message:?} in {file}"),
        Duration::from_secs(15),
        || {
            let text = std::fs::read_to_string(&path).ok()?;
            json_lines(&text)
                .into_iter()
                .find(|e| e["message"] == message)
        },
    )
    .await
}

#[tokio::test]
async fn verdicts_and_suppressions_survive_a_restart_and_the_api_changes_them_live() {
    let llm = FakeLlm::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (api, http) = (free_port(), free_port());
    let triage = format!(
        "provider = \"openai\"\nendpoint = \"{}/v1\"\nmodel = \"fake\"",
        llm.base
    );
    let config = write(dir.path(), "a.toml", &api_topology(api, http, &triage, ""));
    let mut howl = Running::start(dir.path(), &config, api, &[]).await;
    let base = howl.api.clone();

    post(http, pattern_event("aaaaaaaaaaaaaaaa", "GET /healthz 200")).await;
    post(http, pattern_event("bbbbbbbbbbbbbbbb", "disk /var is full")).await;
    let noise = event_in(dir.path(), "suppressed.jsonl", "GET /healthz 200").await;
    assert_eq!(noise["triage"]["source"], "llm");
    event_in(dir.path(), "passed.jsonl", "disk /var is full").await;
    howl.wait_for_metric(
        "llm_requests_total",
        &["provider=\"openai\"", "outcome=\"ok\""],
        2.0,
    )
    .await;
    let metrics = howl.metrics().await;
    for series in [
        "llm_tokens_total",
        "llm_verdicts_total",
        "llm_pending_events",
        "llm_request_duration_seconds",
    ] {
        assert!(metrics.contains(series), "{series} missing:\n{metrics}");
    }

    // One click: the disk pattern is suppressed from the next event on.
    let created: Value = client()
        .post(format!("{base}/api/v1/suppressions"))
        .json(&json!({"pattern_id": "bbbbbbbbbbbbbbbb", "reason": "known, ticket OPS-1", "ttl": "7d", "created_by": "alice"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["id"].as_str().expect("suppression id").to_string();
    post(
        http,
        pattern_event("bbbbbbbbbbbbbbbb", "disk /var is full again"),
    )
    .await;
    let suppressed = event_in(dir.path(), "suppressed.jsonl", "disk /var is full again").await;
    assert_eq!(suppressed["triage"]["source"], "operator");
    assert_eq!(suppressed["triage"]["suppression_id"], id.as_str());

    let patterns: Vec<Value> = get_json(format!("{base}/api/v1/patterns")).await;
    let disk = patterns
        .iter()
        .find(|p| p["pattern_id"] == "bbbbbbbbbbbbbbbb")
        .expect("the disk pattern is listed");
    assert_eq!(disk["verdicts"]["triage"]["verdict"], "important");
    assert_eq!(disk["suppression"]["id"], id.as_str());

    let stopped = howl.terminate(Duration::from_secs(30));
    assert!(
        stopped.status.success(),
        "{}",
        String::from_utf8_lossy(&stopped.stderr)
    );
    let asked = llm.requests().len();

    let howl = Running::start(dir.path(), &config, api, &[]).await;
    post(http, pattern_event("aaaaaaaaaaaaaaaa", "GET /healthz 204")).await;
    post(
        http,
        pattern_event("bbbbbbbbbbbbbbbb", "disk /var is still full"),
    )
    .await;
    let noise = event_in(dir.path(), "suppressed.jsonl", "GET /healthz 204").await;
    assert_eq!(
        noise["triage"]["source"], "llm",
        "the stored verdict decided"
    );
    let still = event_in(dir.path(), "suppressed.jsonl", "disk /var is still full").await;
    assert_eq!(
        still["triage"]["source"], "operator",
        "the suppression survived"
    );
    assert_eq!(llm.requests().len(), asked, "nothing was asked twice");

    let deleted = client()
        .delete(format!("{base}/api/v1/suppressions/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 200);
    post(
        http,
        pattern_event("bbbbbbbbbbbbbbbb", "disk /var is full at last"),
    )
    .await;
    let back = event_in(dir.path(), "passed.jsonl", "disk /var is full at last").await;
    assert_eq!(back["triage"]["source"], "llm");
    let missing = client()
        .delete(format!("{base}/api/v1/suppressions/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    drop(howl);
}

/// Alertmanager's silences (all states).
async fn silences(am: &Alertmanager) -> Vec<Value> {
    get_json(format!("{}/api/v2/silences", am.url)).await
}

/// Runs the `howl` command line off the test's runtime.
async fn cli(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let dir = dir.to_path_buf();
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        howl_in(&dir, &args, &env)
    })
    .await
    .expect("howl CLI")
}

#[tokio::test]
async fn cli_suppression_creates_and_expires_a_real_alertmanager_silence() {
    let dir = tempfile::tempdir().unwrap();
    let am = Alertmanager::start(dir.path(), free_port()).await;
    let (api, http) = (free_port(), free_port());
    let triage = format!(
        "alertmanager_silence = {{ url = \"{}\", duration = \"1d\" }}",
        am.url
    );
    let config = write(
        dir.path(),
        "a.toml",
        &api_topology(api, http, &triage, "auth_token = \"t0ken-for-tests\""),
    );
    let howl = Running::start(dir.path(), &config, api, &[]).await;
    let pattern = "cccccccccccccccc";
    let suppress = [
        "suppress",
        pattern,
        "--reason",
        "deploy noise, OPS-7",
        "--ttl",
        "2h",
        "--created-by",
        "alice",
        "--api",
        &howl.api,
    ];

    let (code, _, stderr) = cli(dir.path(), &suppress, &[]).await;
    assert_eq!(code, 1, "refused without the token: {stderr}");
    assert!(stderr.contains("auth token"), "{stderr}");
    assert!(silences(&am).await.is_empty());

    let token = [("HOWL_API_TOKEN", "t0ken-for-tests")];
    let (code, stdout, stderr) = cli(dir.path(), &suppress, &token).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains(&format!("suppressed pattern {pattern}")),
        "{stdout}"
    );
    assert!(
        !stderr.contains("warning"),
        "the silence was made: {stderr}"
    );
    let made = silences(&am).await;
    assert_eq!(made.len(), 1, "{made:#?}");
    let silence = &made[0];
    assert_eq!(silence["status"]["state"], "active");
    assert_eq!(
        silence["matchers"],
        json!([{"name": "pattern_id", "value": pattern, "isRegex": false, "isEqual": true}])
    );
    assert_eq!(silence["createdBy"], "alice");
    assert!(
        silence["comment"]
            .as_str()
            .unwrap()
            .contains("deploy noise, OPS-7")
    );
    let ends = chrono::DateTime::parse_from_rfc3339(silence["endsAt"].as_str().unwrap()).unwrap();
    let minutes = (ends.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_minutes();
    assert!(
        (115..=120).contains(&minutes),
        "ends with the suppression's ttl: {minutes} min"
    );

    let (code, stdout, _) = cli(dir.path(), &["suppressions", "--api", &howl.api], &[]).await;
    assert_eq!(code, 0);
    assert!(
        stdout.contains(pattern) && stdout.contains("alice"),
        "{stdout}"
    );

    post(http, pattern_event(pattern, "deploy restarted worker 3")).await;
    let suppressed = event_in(dir.path(), "suppressed.jsonl", "deploy restarted worker 3").await;
    assert_eq!(suppressed["triage"]["source"], "operator");

    let (code, stdout, stderr) = cli(
        dir.path(),
        &["unsuppress", pattern, "--api", &howl.api],
        &token,
    )
    .await;
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains(&format!("unsuppressed pattern {pattern}")),
        "{stdout}"
    );
    let after = silences(&am).await;
    assert_eq!(after[0]["status"]["state"], "expired", "{after:#?}");
    let (code, _, stderr) = cli(
        dir.path(),
        &["unsuppress", pattern, "--api", &howl.api],
        &token,
    )
    .await;
    assert_eq!(code, 1, "nothing left to unsuppress");
    assert!(stderr.contains("404"), "{stderr}");
}

/// The active silences of `pattern` (id, endsAt).
async fn active_silences(am: &Alertmanager, pattern: &str) -> Vec<(String, String)> {
    silences(am)
        .await
        .into_iter()
        .filter(|s| s["status"]["state"] == "active" && s["matchers"][0]["value"] == pattern)
        .map(|s| {
            (
                s["id"].as_str().unwrap_or_default().to_string(),
                s["endsAt"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn silences_are_made_when_alertmanager_returns_and_renewed_before_they_end() {
    let dir = tempfile::tempdir().unwrap();
    let mut am = Alertmanager::start(dir.path(), free_port()).await;
    let (api, http) = (free_port(), free_port());
    // Silences of suppressions without a ttl last 4 s: checked every second,
    // renewed when less than 2 s are left.
    let triage = format!(
        "alertmanager_silence = {{ url = \"{}\", duration = \"4s\" }}",
        am.url
    );
    let config = write(dir.path(), "a.toml", &api_topology(api, http, &triage, ""));
    let howl = Running::start(dir.path(), &config, api, &[]).await;
    let pattern = "dddddddddddddddd";
    // An event through the transform: it runs, so its silencer is registered.
    post(http, pattern_event("eeeeeeeeeeeeeeee", "warming up")).await;
    event_in(dir.path(), "passed.jsonl", "warming up").await;

    // Alertmanager is down when the operator suppresses: the suppression
    // holds, the silence fails and is made once Alertmanager is back.
    am.stop();
    let created: Value = client()
        .post(format!("{}/api/v1/suppressions", howl.api))
        .json(&json!({"pattern_id": pattern, "reason": "flapping probe", "created_by": "bob"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        !created["silence_errors"].as_array().unwrap().is_empty(),
        "{created:#}"
    );
    am.restart().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let first = loop {
        if let Some(silence) = active_silences(&am, pattern).await.pop() {
            break silence;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no silence after Alertmanager came back"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };

    // Before the 4 s silence ends, a fresh one replaces it, and the
    // suppression points at the new one.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let renewed = loop {
        let active = active_silences(&am, pattern).await;
        if let Some(other) = active.iter().find(|(id, _)| *id != first.0) {
            assert!(other.1 > first.1, "the new one ends later: {active:?}");
            break other.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the silence was not renewed: {active:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let all = silences(&am).await;
    let old = all.iter().find(|s| s["id"] == first.0.as_str()).unwrap();
    assert_eq!(
        old["status"]["state"], "expired",
        "the replaced silence is expired"
    );
    let listed: Vec<Value> = get_json(format!("{}/api/v1/suppressions", howl.api)).await;
    let ids: Vec<&str> = listed[0]["silences"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["id"].as_str())
        .collect();
    assert_eq!(ids.len(), 1, "one silence per Alertmanager: {ids:?}");
    assert_ne!(
        ids[0],
        first.0.as_str(),
        "the suppression follows its renewed silence (now {}, or a later one)",
        renewed.0
    );
}

/// What a client sends through the suppression API never forges howl's
/// log: ids with control characters are refused (400, naming the field),
/// and free text is logged with its control characters escaped, in the
/// text and the JSON log formats.
#[tokio::test]
async fn suppression_requests_cannot_forge_log_lines() {
    const FORGED: &str = "2026-12-06T00:00:00Z ERROR forged line";
    for format in ["text", "json"] {
        let dir = tempfile::tempdir().unwrap();
        let api = free_port();
        let config = write(
            dir.path(),
            "a.toml",
            &format!(
                "[api]\nenabled = true\naddress = \"127.0.0.1:{api}\"\n\
                 [sources.in]\ntype = \"demo_logs\"\ninterval = 3600\n\
                 [sinks.out]\ntype = \"blackhole\"\ninputs = [\"in\"]\n"
            ),
        );
        let mut howl = Running::start(dir.path(), &config, api, &["--log-format", format]).await;
        let suppressions = format!("{}/api/v1/suppressions", howl.api);

        let refused = client()
            .post(&suppressions)
            .json(&json!({"pattern_id": "abc\u{0}def", "reason": "r"}))
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 400);
        let body: Value = refused.json().await.unwrap();
        assert!(
            body["error"]
                .as_str()
                .unwrap()
                .starts_with("`pattern_id` contains U+0000"),
            "{body}"
        );
        let refused = client()
            .delete(format!("{suppressions}/abc%0A{FORGED}"))
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 400);
        let body: Value = refused.json().await.unwrap();
        assert!(
            body["error"].as_str().unwrap().starts_with("`id` "),
            "{body}"
        );

        let created = client()
            .post(&suppressions)
            .json(&json!({
                "pattern_id": "feedfeedfeedfeed",
                "reason": format!("noise\n{FORGED}\r\n{FORGED}"),
                "created_by": format!("ops\n{FORGED}"),
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(created.status(), 201);
        let created: Value = created.json().await.unwrap();
        assert_eq!(
            created["reason"],
            format!("noise\n{FORGED}\r\n{FORGED}"),
            "the text itself is kept"
        );

        let stderr = howl.terminate(Duration::from_secs(30)).stderr;
        let stderr = String::from_utf8_lossy(&stderr).into_owned();
        // What a reader sees: the lines as they are, or the decoded JSON
        // fields, one per line, as a log viewer shows them.
        let shown = if format == "json" {
            let mut shown = String::new();
            for line in stderr.lines() {
                let entry: Value =
                    serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
                for value in entry["fields"].as_object().unwrap().values() {
                    shown.push_str(value.as_str().unwrap_or_default());
                    shown.push('\n');
                }
            }
            shown
        } else {
            stderr.clone()
        };
        assert!(shown.contains("pattern suppressed"), "{format}: {stderr}");
        for line in shown.lines() {
            assert!(
                !line.starts_with(FORGED),
                "{format}: forged line in\n{shown}"
            );
            assert!(
                !line.contains(['\0', '\r']),
                "{format}: control characters in\n{shown}"
            );
        }
        assert!(
            shown.contains(&format!(
                "noise\\u{{000a}}{FORGED}\\u{{000d}}\\u{{000a}}{FORGED}"
            )),
            "{format}: the reason, escaped: {shown}"
        );
        assert!(
            shown.contains(&format!("ops\\u{{000a}}{FORGED}")),
            "{format}: created_by, escaped: {shown}"
        );
    }
}
