//! `llm_suppress` with a chain of providers, through the real binary and
//! loopback servers speaking the providers' wire formats: a primary that
//! goes down is skipped while the secondary answers, and used again once
//! its health check passes; events that must stay local never reach a
//! remote provider, even when every local one is down.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::fake_llm::FakeLlm;
use crate::common::{Running, free_port, get_json, metric, wait_for, write};
use crate::llm_suppress::{api_topology, event_in, post};

/// The `llm_suppress` tests' topology: http_server → triage → files.
fn topology(api: u16, http: u16, triage: &str) -> String {
    api_topology(api, http, triage, "")
}

fn event(id: &str, message: &str, sensitive: bool) -> Value {
    json!({
        "message": message,
        "sensitive": sensitive,
        "pattern": {"id": id, "template": message, "level": "error"},
    })
}

/// The passed event with `message`, once it is written.
async fn passed(dir: &Path, message: &str) -> Value {
    event_in(dir, "passed.jsonl", message).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_that_goes_down_is_skipped_and_used_again_once_it_is_back() {
    let (primary, secondary) = (FakeLlm::start().await, FakeLlm::start().await);
    let dir = tempfile::tempdir().unwrap();
    let (api, http) = (free_port(), free_port());
    let triage = format!(
        "providers = [\n\
         {{ name = \"primary\", provider = \"openai\", endpoint = \"{}/v1\", model = \"m1\", timeout_secs = 1 }},\n\
         {{ name = \"secondary\", provider = \"ollama\", endpoint = \"{}\", model = \"m2\" }},\n\
         ]\nprovider_backoff_secs = 1\n",
        primary.base, secondary.base
    );
    let config = write(dir.path(), "a.toml", &topology(api, http, &triage));
    let howl = Running::start(dir.path(), &config, api, &[]).await;

    post(http, event("p1", "disk full on db-1", false)).await;
    let first = passed(dir.path(), "disk full on db-1").await;
    assert_eq!(first["triage"]["provider"], "primary", "{first}");
    assert_eq!(first["triage"]["model"], "openai/m1", "{first}");

    primary.set_down(true);
    post(http, event("p2", "queue stalled on worker-7", false)).await;
    let second = passed(dir.path(), "queue stalled on worker-7").await;
    assert_eq!(second["triage"]["provider"], "secondary", "{second}");
    assert_eq!(second["triage"]["model"], "ollama/m2", "{second}");
    assert_eq!(second["triage"]["source"], "llm", "{second}");
    let asked_while_down = primary.requests().len();

    // Down: not asked again, however many new patterns come.
    post(http, event("p3", "cache evicted on node-3", false)).await;
    let third = passed(dir.path(), "cache evicted on node-3").await;
    assert_eq!(third["triage"]["provider"], "secondary", "{third}");
    assert_eq!(primary.requests().len(), asked_while_down);

    // Back: its health check passes and it answers again.
    primary.set_down(false);
    wait_for("a passing health check", Duration::from_secs(20), || {
        (primary.health_checks() > 0).then_some(())
    })
    .await;
    let mut answered_by = String::new();
    for round in 0..50 {
        let message = format!("certificate expiring on host-{round}");
        post(http, event(&format!("p4-{round}"), &message, false)).await;
        let event = passed(dir.path(), &message).await;
        answered_by = event["triage"]["provider"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if answered_by == "primary" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        answered_by, "primary",
        "the primary is used again once it is back"
    );

    let metrics = howl.metrics().await;
    for (provider, outcome) in [
        ("primary", "ok"),
        ("primary", "failed"),
        ("secondary", "ok"),
    ] {
        let labels = [
            format!("provider=\"{provider}\""),
            format!("outcome=\"{outcome}\""),
        ];
        let labels: Vec<&str> = labels.iter().map(String::as_str).collect();
        assert!(
            metric(&metrics, "llm_requests_total", &labels).is_some_and(|v| v >= 1.0),
            "llm_requests_total{{{provider},{outcome}}}:\n{metrics}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_that_must_stay_local_never_reach_a_remote_provider() {
    let (cloud, local) = (FakeLlm::start().await, FakeLlm::start().await);
    let dir = tempfile::tempdir().unwrap();
    let (api, http) = (free_port(), free_port());
    let triage = format!(
        "providers = [\n\
         {{ name = \"cloud\", provider = \"anthropic\", endpoint = \"{}\", model = \"c\" }},\n\
         {{ name = \"local\", provider = \"openai\", endpoint = \"{}/v1\", model = \"l\", local = true, timeout_secs = 1 }},\n\
         ]\nlocal_required = '.sensitive == true'\n",
        cloud.base, local.base
    );
    let config = write(dir.path(), "a.toml", &topology(api, http, &triage));
    let _howl = Running::start(dir.path(), &config, api, &[]).await;

    // Two events of one pattern in one batch, the second sensitive: its
    // line would be a sample of the pattern's question, so the question
    // stays local.
    post(
        http,
        json!([
            event("s0", "login ok for user bob", false),
            event("s0", "login ok for user PATIENT-4711", true),
        ]),
    )
    .await;
    let first = passed(dir.path(), "login ok for user bob").await;
    assert_eq!(first["triage"]["provider"], "local", "{first}");

    post(
        http,
        event("s1", "payment card declined for account 42", true),
    )
    .await;
    let kept = passed(dir.path(), "payment card declined for account 42").await;
    assert_eq!(kept["triage"]["provider"], "local", "{kept}");

    // Every local provider down: on_error decides; the cloud is not asked.
    local.set_down(true);
    post(http, event("s2", "refund failed for account 43", true)).await;
    let failed = passed(dir.path(), "refund failed for account 43").await;
    assert_eq!(failed["triage"]["source"], "error", "{failed}");
    assert!(
        failed["triage"]["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("local"),
        "{failed}"
    );
    assert!(
        cloud.requests().is_empty(),
        "a sensitive event reached the cloud"
    );

    // Other events may go to the cloud, first in the chain.
    post(http, event("n1", "disk full on db-9", false)).await;
    let open = passed(dir.path(), "disk full on db-9").await;
    assert_eq!(open["triage"]["provider"], "cloud", "{open}");
    assert_eq!(cloud.requests().len(), 1);
    for request in cloud.requests() {
        let text = request.body.to_string();
        assert!(
            !text.contains("account"),
            "sensitive text reached the cloud: {text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compared_provider_never_decides_and_its_disagreements_are_listed() {
    let (primary, candidate) = (FakeLlm::start().await, FakeLlm::start().await);
    candidate.set_contrary(true);
    let dir = tempfile::tempdir().unwrap();
    let (api, http, dead) = (free_port(), free_port(), free_port());
    // First in the chain: a provider that refuses connections, with a long
    // timeout. The chain must not wait it out.
    let triage = format!(
        "providers = [\n\
         {{ name = \"gone\", provider = \"openai\", endpoint = \"http://127.0.0.1:{dead}/v1\", model = \"g\", timeout_secs = 10 }},\n\
         {{ name = \"primary\", provider = \"openai\", endpoint = \"{}/v1\", model = \"m1\" }},\n\
         {{ name = \"candidate\", provider = \"ollama\", endpoint = \"{}\", model = \"m2\" }},\n\
         ]\ncompare = [\"candidate\"]\n",
        primary.base, candidate.base
    );
    let config = write(dir.path(), "a.toml", &topology(api, http, &triage));
    let howl = Running::start(dir.path(), &config, api, &[]).await;

    let started = std::time::Instant::now();
    post(http, event("c1", "GET /healthz 200", false)).await;
    let suppressed_path = dir.path().join("suppressed.jsonl");
    let noise = wait_for(
        "the health check suppressed",
        Duration::from_secs(30),
        || {
            std::fs::read_to_string(&suppressed_path)
                .ok()?
                .lines()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .find(|e| e["message"] == "GET /healthz 200")
        },
    )
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "a refused connection must not cost its timeout: {:?}",
        started.elapsed()
    );
    assert_eq!(
        noise["triage"]["provider"], "primary",
        "the candidate never decides: {noise}"
    );
    post(http, event("c2", "disk full on db-1", false)).await;
    passed(dir.path(), "disk full on db-1").await;

    // Both disagreements are listed, with both verdicts and reasons.
    let mut compared: Vec<Value> = Vec::new();
    for _ in 0..200 {
        let rows: Vec<Value> = get_json(format!("{}/api/v1/patterns", howl.api)).await;
        compared = rows
            .into_iter()
            .filter(|r| r["comparisons"].as_array().is_some_and(|c| !c.is_empty()))
            .collect();
        if compared.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(compared.len(), 2, "{compared:?}");
    for row in &compared {
        let comparison = &row["comparisons"][0];
        assert_eq!(comparison["provider"], "candidate", "{row}");
        assert_eq!(comparison["decided_by"], "primary", "{row}");
        assert_eq!(comparison["agrees"], false, "{row}");
        assert_ne!(comparison["verdict"], comparison["decided"], "{row}");
    }
    let review: Value = get_json(format!("{}/api/v1/review", howl.api)).await;
    let text = review["text"].as_str().unwrap_or_default();
    assert!(text.contains("compared providers disagree"), "{text}");
    assert!(text.contains("candidate says"), "{text}");
    let metrics = howl.metrics().await;
    assert_eq!(
        metric(
            &metrics,
            "llm_comparisons_total",
            &["provider=\"candidate\"", "result=\"disagree\""]
        ),
        Some(2.0),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_category_kept_from_models_never_reaches_one_and_a_canary_meets_its_incumbent() {
    let llm = FakeLlm::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (api, http) = (free_port(), free_port());
    // The incumbent model decides two patterns.
    let first = format!(
        "provider = \"openai\"\nendpoint = \"{}/v1\"\nmodel = \"old\"\n",
        llm.base
    );
    let config = write(dir.path(), "a.toml", &topology(api, http, &first));
    let mut howl = Running::start(dir.path(), &config, api, &[]).await;
    post(http, event("p1", "disk full on db-1", false)).await;
    passed(dir.path(), "disk full on db-1").await;
    post(http, event("p2", "GET /healthz 200", false)).await;
    wait_for("two questions", Duration::from_secs(20), || {
        (llm.requests().len() == 2).then_some(())
    })
    .await;
    assert!(howl.terminate(Duration::from_secs(30)).status.success());

    // A new model in canary, and hosts kept from models.
    let second = format!(
        "provider = \"openai\"\nendpoint = \"{}/v1\"\nmodel = \"new\"\nmode = \"canary\"\ncanary_percent = 100\n\
         policy = [{{ name = \"hosts\", condition = '.category == \"host\"', llm_allowed = false }}]\n",
        llm.base
    );
    write(dir.path(), "a.toml", &topology(api, http, &second));
    let howl = Running::start(dir.path(), &config, api, &[]).await;
    let mut host = event("h1", "cpu 99% on host web-3", false);
    host["category"] = json!("host");
    post(http, host).await;
    let host = passed(dir.path(), "cpu 99% on host web-3").await;
    assert_eq!(host["triage"]["policy"], "hosts", "{host}");
    assert_eq!(host["triage"]["source"], "builtin", "{host}");
    assert_eq!(
        llm.requests().len(),
        2,
        "the host category reached no model"
    );

    // The new model is asked again about both patterns, and agrees.
    post(http, event("p1", "disk full on db-2", false)).await;
    post(http, event("p2", "GET /healthz 204", false)).await;
    let metrics = wait_for_canary(&howl, 2.0).await;
    assert_eq!(
        metric(
            &metrics,
            "llm_canary_comparisons_total",
            &["result=\"disagree\""]
        ),
        None,
        "{metrics}"
    );
    let canary = passed(dir.path(), "disk full on db-2").await;
    assert_eq!(canary["triage"]["canary"], true, "{canary}");
}

async fn wait_for_canary(howl: &Running, agree: f64) -> String {
    for _ in 0..400 {
        let metrics = howl.metrics().await;
        if metric(
            &metrics,
            "llm_canary_comparisons_total",
            &["result=\"agree\""],
        ) == Some(agree)
        {
            return metrics;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the canary was not compared with its incumbent {agree} times");
}
