//! The scenario `threshold` is built for, through the real binary and the
//! real example topology `topologies/host-threshold-slack.toml` against a
//! loopback Slack: CPU above 80% on a node for 5 minutes or more gives one
//! firing and one resolved message; 4 minutes gives nothing; a second
//! breach within the hour gives nothing more. And the same for
//! `topologies/prometheus-threshold-alertmanager.toml` against a real
//! Alertmanager: the alert appears with its labels and summary, and
//! resolves.
//!
//! Time is simulated, not waited for: `threshold` judges holds on the
//! samples' own timestamps, so the test replaces the topology's
//! `host_metrics` source with an `http_server` and posts samples stamped
//! over several minutes in one go.

use crate::common::{Running, free_port, post_events, write};
use crate::fake_slack::{FakeSlack, WEBHOOK_PATH};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

const TOPOLOGY: &str = include_str!("../../topologies/host-threshold-slack.toml");
const SOURCE: &str = "[sources.host]\ntype = \"host_metrics\"";
const WEBHOOK_DEFAULT: &str =
    "${SLACK_WEBHOOK_URL:-https://hooks.slack.com/services/T000/B000/replace-me}";

/// The example topology with its source swapped for an `http_server` and
/// its Slack webhook pointed at `slack`, plus the API on `api`.
fn scenario(slack: &FakeSlack, api: u16, http: u16) -> String {
    let start = TOPOLOGY
        .find(SOURCE)
        .expect("the topology reads host_metrics");
    let end = start
        + TOPOLOGY[start..]
            .find("\n[")
            .expect("a table after the source");
    assert!(
        TOPOLOGY.contains(WEBHOOK_DEFAULT),
        "the webhook comes from the environment"
    );
    let mut text = format!(
        "{}[sources.host]\ntype = \"http_server\"\naddress = \"127.0.0.1:{http}\"\ndecoding = \"json\"\n{}",
        &TOPOLOGY[..start],
        &TOPOLOGY[end..]
    );
    text = text.replace(WEBHOOK_DEFAULT, &slack.webhook_url());
    text.push_str(&format!(
        "\n[api]\nenabled = true\naddress = \"127.0.0.1:{api}\"\n"
    ));
    text
}

/// Samples of `name` on `host`, every 15 s from `from` to `to` seconds
/// after `start`, all with `value`, as `host_metrics` would send them.
fn samples(
    start: DateTime<Utc>,
    name: &str,
    host: &str,
    from: i64,
    to: i64,
    value: f64,
) -> Vec<Value> {
    (from..=to)
        .step_by(15)
        .map(|secs| {
            json!({
                "metric": {"name": name, "kind": "gauge", "value": value, "tags": {"host": host}},
                "timestamp": (start + chrono::Duration::seconds(secs)).to_rfc3339(),
                "source_type": "host_metrics",
            })
        })
        .collect()
}

fn header(request: &crate::fake_slack::Request) -> String {
    request.body["attachments"][0]["blocks"][0]["text"]["text"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

const SENT: &str = "component_sent_events_total";

#[tokio::test]
async fn a_six_minute_breach_sends_one_firing_and_one_resolved_message_and_four_minutes_nothing() {
    let slack = FakeSlack::start("unused").await;
    let dir = tempfile::tempdir().unwrap();
    let (api, http) = (free_port(), free_port());
    let config = write(dir.path(), "scenario.toml", &scenario(&slack, api, http));
    let howl = Running::start(dir.path(), &config, api, &[]).await;
    let url = format!("http://127.0.0.1:{http}/");
    let start = Utc::now() - chrono::Duration::hours(2);

    // node-a: CPU at 95% for 4 minutes, then normal; memory normal.
    let mut node_a = samples(start, "cpu_usage_percent", "node-a", 0, 240, 95.0);
    node_a.extend(samples(
        start,
        "cpu_usage_percent",
        "node-a",
        255,
        255,
        12.0,
    ));
    node_a.extend(samples(
        start,
        "memory_used_percent",
        "node-a",
        0,
        255,
        60.0,
    ));
    post_events(&url, &Value::Array(node_a)).await;
    // node-b: CPU at 93% for 6 minutes, then normal.
    let mut node_b = samples(start, "cpu_usage_percent", "node-b", 0, 360, 93.0);
    node_b.extend(samples(
        start,
        "cpu_usage_percent",
        "node-b",
        375,
        375,
        12.0,
    ));
    post_events(&url, &Value::Array(node_b)).await;

    let messages = slack.wait_calls(WEBHOOK_PATH, 2).await;
    assert_eq!(header(&messages[0]), "🔥 CPU 93% > 80% on node-b for 5m");
    assert_eq!(
        header(&messages[1]),
        "✅ Resolved: CPU 93% > 80% on node-b for 6m 15s"
    );
    let context = messages[0].body["attachments"][0]["blocks"][2]["elements"][0]["text"]
        .as_str()
        .unwrap_or_default();
    assert!(context.contains("HighCpu/host=node-b"), "{context}");
    // Samples are judged in order: had node-a's 4-minute breach fired, its
    // alert would have left `hot` before node-b's.
    howl.wait_for_metric(SENT, &["component_id=\"slack\""], 2.0)
        .await;
    assert_eq!(
        crate::common::metric(&howl.metrics().await, SENT, &["component_id=\"hot\""]),
        Some(2.0),
        "threshold emitted node-b's firing and resolution only"
    );

    // node-b breaches again within the hour: `hot` fires and resolves
    // again, `hourly` drops both, Slack hears nothing more.
    let mut again = samples(start, "cpu_usage_percent", "node-b", 600, 960, 97.0);
    again.extend(samples(
        start,
        "cpu_usage_percent",
        "node-b",
        975,
        975,
        12.0,
    ));
    post_events(&url, &Value::Array(again)).await;
    howl.wait_for_metric(SENT, &["component_id=\"hot\""], 4.0)
        .await;
    howl.wait_for_metric(
        "component_discarded_events_total",
        &["component_id=\"hourly\"", "intentional=\"true\""],
        2.0,
    )
    .await;
    assert_eq!(
        slack.calls(WEBHOOK_PATH).len(),
        2,
        "at most one alert per issue per hour"
    );
    let metrics = howl.metrics().await;
    assert_eq!(
        crate::common::metric(
            &metrics,
            "threshold_alerts",
            &["rule=\"HighCpu\"", "state=\"firing\""]
        ),
        Some(0.0),
        "nothing is firing any more"
    );
}

const PROMETHEUS_TOPOLOGY: &str =
    include_str!("../../topologies/prometheus-threshold-alertmanager.toml");

/// The Prometheus example topology with its `prometheus_query` source
/// swapped for an `http_server` (samples are posted, stamped over simulated
/// minutes) and its sink pointed at a real Alertmanager.
fn prometheus_scenario(am_url: &str, api: u16, http: u16) -> String {
    let start = PROMETHEUS_TOPOLOGY
        .find("[sources.prometheus]")
        .expect("the topology reads prometheus_query");
    let end = start
        + PROMETHEUS_TOPOLOGY[start..]
            .find("\n[transforms.")
            .expect("a transform after the source");
    let default_url = "${ALERTMANAGER_URL:-http://127.0.0.1:9093}";
    assert!(PROMETHEUS_TOPOLOGY.contains(default_url));
    let mut text = format!(
        "{}[sources.prometheus]\ntype = \"http_server\"\naddress = \"127.0.0.1:{http}\"\ndecoding = \"json\"\n{}",
        &PROMETHEUS_TOPOLOGY[..start],
        &PROMETHEUS_TOPOLOGY[end..]
    )
    .replace(default_url, am_url)
    .replace("data_dir = \"./data\"", "data_dir = \"state\"");
    text.push_str(&format!(
        "\n[api]\nenabled = true\naddress = \"127.0.0.1:{api}\"\n"
    ));
    text
}

#[tokio::test]
async fn prometheus_topology_fires_and_resolves_in_a_real_alertmanager() {
    let dir = tempfile::tempdir().unwrap();
    let am = crate::common::alertmanager::Alertmanager::start(dir.path(), free_port()).await;
    let (api, http) = (free_port(), free_port());
    let config = write(
        dir.path(),
        "scenario.toml",
        &prometheus_scenario(&am.url, api, http),
    );
    let _howl = Running::start(dir.path(), &config, api, &[]).await;
    let url = format!("http://127.0.0.1:{http}/");
    let start = Utc::now() - chrono::Duration::hours(2);
    let instance_samples = |from, to, value: f64| {
        samples(start, "cpu_usage_percent", "unused", from, to, value)
            .into_iter()
            .map(|mut sample| {
                sample["metric"]["tags"] = json!({"instance": "node-b:9100"});
                sample["source_type"] = json!("prometheus_query");
                sample
            })
            .collect::<Vec<_>>()
    };

    // 6 minutes at 93%: fires after 5.
    post_events(&url, &Value::Array(instance_samples(0, 360, 93.0))).await;
    let alerts = am
        .wait_for_alerts("HighCpu", std::time::Duration::from_secs(15), |a| {
            a.iter().any(|x| x["labels"]["alertname"] == "HighCpu")
        })
        .await;
    let alert = alerts
        .iter()
        .find(|x| x["labels"]["alertname"] == "HighCpu")
        .unwrap();
    assert_eq!(alert["labels"]["instance"], "node-b:9100");
    assert_eq!(alert["labels"]["alert_key"], "HighCpu/instance=node-b:9100");
    assert_eq!(alert["labels"]["level"], "warning");
    assert_eq!(
        alert["annotations"]["summary"],
        "CPU 93% > 80% on node-b:9100 for 5m"
    );

    // Alertmanager notifies a resolution only of an alert it notified as
    // firing (after its group_wait): wait for that first, as the alert now
    // arrives at once rather than after a batch timeout.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(15);
    while !am.notified().iter().any(|n| n["status"] == "firing") {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no firing notification"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    // Back to normal: the sink resolves it; Alertmanager drops it from the
    // active alerts and notifies the resolution.
    post_events(&url, &Value::Array(instance_samples(375, 375, 12.0))).await;
    am.wait_for_alerts(
        "HighCpu to resolve",
        std::time::Duration::from_secs(15),
        |a| !a.iter().any(|x| x["labels"]["alertname"] == "HighCpu"),
    )
    .await;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let notified = am.notified();
        if let Some(resolved) = notified.iter().find(|n| n["status"] == "resolved") {
            assert_eq!(resolved["alerts"][0]["labels"]["alertname"], "HighCpu");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no resolved notification: {notified:#?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// With `-v`, each group's way to an alert is logged: ok → pending (and
/// when it would fire) → firing → ok.
#[tokio::test]
async fn verbose_logs_each_groups_transitions() {
    let dir = tempfile::tempdir().unwrap();
    let (api, http) = (free_port(), free_port());
    let config = write(
        dir.path(),
        "a.toml",
        &format!(
            "[api]\nenabled = true\naddress = \"127.0.0.1:{api}\"\n\
             [sources.in]\ntype = \"http_server\"\naddress = \"127.0.0.1:{http}\"\ndecoding = \"json\"\n\
             [transforms.hot]\ntype = \"threshold\"\ninputs = [\"in\"]\n\
             [[transforms.hot.rules]]\nname = \"HighCpu\"\nmetric = \"cpu_usage_percent\"\n\
             condition = \"value > 80\"\nfor_secs = 60\ngroup_by = [\"host\"]\n\
             [sinks.out]\ntype = \"blackhole\"\ninputs = [\"hot\"]\n"
        ),
    );
    let howl = Running::start(dir.path(), &config, api, &["-v"]).await;
    let start = Utc::now() - chrono::Duration::hours(1);
    let mut events = samples(start, "cpu_usage_percent", "web-1", 0, 90, 95.0);
    events.extend(samples(start, "cpu_usage_percent", "web-1", 105, 105, 10.0));
    post_events(&format!("http://127.0.0.1:{http}/"), &Value::Array(events)).await;
    let log = crate::common::wait_for(
        "the transitions",
        std::time::Duration::from_secs(10),
        || {
            let log = howl.stderr();
            log.contains("threshold: firing -> ok").then_some(log)
        },
    )
    .await;
    for expected in [
        "threshold: ok -> pending (fires if it stays so for 60s)",
        "threshold: pending -> firing",
        "threshold: firing -> ok",
    ] {
        assert!(log.contains(expected), "{expected} missing:\n{log}");
    }
    assert!(
        log.contains("rule=HighCpu") && log.contains("group=HighCpu/host=web-1"),
        "{log}"
    );
}
