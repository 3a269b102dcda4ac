//! Spike and silence alerts of the `pattern` transform, through the binary:
//! `topologies/heartbeat-silence-alertmanager.toml` with its file source
//! swapped for an `http_server`, small windows, and a real Alertmanager. A
//! spike fires and resolves there; a heartbeat that went silent while howl
//! was killed fires after the restart and resolves when it is back.

use std::time::Duration;

use serde_json::{Value, json};

use crate::common::alertmanager::Alertmanager;
use crate::common::{Running, free_port, post_events, write};

const TOPOLOGY: &str = include_str!("../../topologies/heartbeat-silence-alertmanager.toml");

/// The example topology, fed over HTTP, with seconds instead of minutes.
fn scenario(am_url: &str, api: u16, http: u16) -> String {
    let start = TOPOLOGY
        .find("[sources.app]")
        .expect("the topology has a source");
    let end = start
        + TOPOLOGY[start..]
            .find("\n[transforms.")
            .expect("a transform after the source");
    let mut text = format!(
        "{}[sources.app]\ntype = \"http_server\"\naddress = \"127.0.0.1:{http}\"\ndecoding = \"json\"\n{}",
        &TOPOLOGY[..start],
        &TOPOLOGY[end..]
    );
    for (from, to) in [
        ("${ALERTMANAGER_URL:-http://127.0.0.1:9093}", am_url),
        ("data_dir = \"./data\"", "data_dir = \"state\""),
        ("rate_window_secs = 60", "rate_window_secs = 1"),
        ("every = \"5m\"", "every = \"3s\""),
    ] {
        assert!(text.contains(from), "{from}");
        text = text.replace(from, to);
    }
    text.push_str(&format!(
        "\n[api]\nenabled = true\naddress = \"127.0.0.1:{api}\"\n"
    ));
    text
}

fn lines(text: &str, n: usize) -> Value {
    Value::Array(
        (0..n)
            .map(|i| json!({ "message": format!("{text} {i}") }))
            .collect(),
    )
}

/// The alerts named `name`.
fn named<'a>(alerts: &'a [Value], name: &str) -> Vec<&'a Value> {
    alerts
        .iter()
        .filter(|a| a["labels"]["alertname"] == name)
        .collect()
}

/// Whether Alertmanager notified `status` for `name`.
fn has_notified(am: &Alertmanager, name: &str, status: &str) -> bool {
    am.notified().iter().any(|n| {
        n["status"] == status
            && n["alerts"]
                .as_array()
                .is_some_and(|alerts| alerts.iter().any(|a| a["labels"]["alertname"] == name))
    })
}

/// Waits (bounded) until Alertmanager notified `status` for `name`.
async fn notified(am: &Alertmanager, name: &str, status: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while !has_notified(am, name, status) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no {status} notification of {name}: {:#?}",
            am.notified()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_spike_fires_and_resolves_in_a_real_alertmanager() {
    let dir = tempfile::tempdir().unwrap();
    let am = Alertmanager::start(dir.path(), free_port()).await;
    let (api, http) = (free_port(), free_port());
    let config = write(dir.path(), "scenario.toml", &scenario(&am.url, api, http));
    let howl = Running::start(dir.path(), &config, api, &[]).await;
    let url = format!("http://127.0.0.1:{http}/");
    const JOB: &str = "job cleanup finished, items";

    // Warm-up: a partial bucket, then five or more at about 2 lines each.
    for _ in 0..8 {
        post_events(&url, &lines(JOB, 2)).await;
        tokio::time::sleep(Duration::from_millis(1000)).await;
    }
    assert!(named(&am.alerts().await, "HowlPatternSpike").is_empty());
    // 60 lines in one bucket: at least 20, far above 5 × 2. Then 10 every
    // quarter second (about 40 a bucket, above half the threshold: still
    // firing) until Alertmanager has notified it, which it does only after
    // its group_wait.
    post_events(&url, &lines(JOB, 60)).await;
    let mut spike = None;
    for _ in 0..60 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        if spike.is_none() {
            spike = named(&am.alerts().await, "HowlPatternSpike")
                .first()
                .map(|a| (*a).clone());
        }
        if spike.is_some() && has_notified(&am, "HowlPatternSpike", "firing") {
            break;
        }
        post_events(&url, &lines(JOB, 10)).await;
    }
    let spike = spike.expect("the spike reached Alertmanager");
    let id = spike["labels"]["pattern_id"].as_str().unwrap().to_string();
    assert_eq!(id.len(), 16, "{spike:#}");
    assert_eq!(
        spike["labels"]["alert_key"],
        format!("spike:patterns::{id}")
    );
    let summary = spike["annotations"]["summary"].as_str().unwrap();
    // The bucket of the 60 lines (and maybe a few more of either side).
    let count: u64 = summary
        .strip_prefix("log pattern spiking: ")
        .and_then(|rest| rest.split_once(" lines in 1s (baseline "))
        .and_then(|(count, _)| count.parse().ok())
        .unwrap_or_else(|| panic!("{summary}"));
    assert!(count >= 60, "{summary}");
    assert!(
        summary.ends_with(": job cleanup finished, items <NUM>"),
        "{summary}"
    );
    notified(&am, "HowlPatternSpike", "firing").await;
    assert_eq!(
        howl.wait_for_metric(
            "pattern_anomalies_total",
            &["kind=\"spike\"", "state=\"firing\""],
            1.0
        )
        .await,
        1.0
    );

    // Back to its rate: resolved at the end of the next bucket.
    for _ in 0..3 {
        post_events(&url, &lines(JOB, 2)).await;
        tokio::time::sleep(Duration::from_millis(1000)).await;
    }
    am.wait_for_alerts("the spike to resolve", Duration::from_secs(10), |a| {
        named(a, "HowlPatternSpike").is_empty()
    })
    .await;
    notified(&am, "HowlPatternSpike", "resolved").await;
    howl.wait_for_metric(
        "pattern_anomalies_total",
        &["kind=\"spike\"", "state=\"resolved\""],
        1.0,
    )
    .await;
}

#[tokio::test]
async fn a_heartbeat_silent_while_howl_was_down_fires_after_the_restart() {
    let dir = tempfile::tempdir().unwrap();
    let am = Alertmanager::start(dir.path(), free_port()).await;
    let (api, http) = (free_port(), free_port());
    let config = write(dir.path(), "scenario.toml", &scenario(&am.url, api, http));
    let url = format!("http://127.0.0.1:{http}/");
    const BEAT: &str = "scheduler heartbeat ok, tick";

    let mut howl = Running::start(dir.path(), &config, api, &[]).await;
    post_events(&url, &lines(BEAT, 1)).await;
    // Saved within a second of its new pattern; then a kill -9 before the
    // heartbeat is due.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut child = howl.child.take().expect("running");
    child.kill().expect("kill -9");
    child.wait().expect("reaped");
    assert!(named(&am.alerts().await, "HowlPatternSilence").is_empty());

    // Down past `every` (3 s): overdue at once after the restart.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let howl = Running::start(dir.path(), &config, api, &[]).await;
    let alerts = am
        .wait_for_alerts("the silence", Duration::from_secs(10), |a| {
            !named(a, "HowlPatternSilence").is_empty()
        })
        .await;
    let silence = named(&alerts, "HowlPatternSilence")[0];
    let id = silence["labels"]["pattern_id"].as_str().unwrap();
    assert_eq!(
        silence["labels"]["alert_key"],
        format!("silence:patterns::{id}")
    );
    assert_eq!(silence["labels"]["level"], "critical");
    let summary = silence["annotations"]["summary"].as_str().unwrap();
    assert!(
        summary.starts_with("expected log line silent: none for ")
            && summary.ends_with("(expected every 3s): scheduler heartbeat ok, tick <NUM>"),
        "{summary}"
    );
    notified(&am, "HowlPatternSilence", "firing").await;

    // The heartbeat is back: resolved.
    post_events(&url, &lines(BEAT, 1)).await;
    am.wait_for_alerts("the silence to resolve", Duration::from_secs(10), |a| {
        named(a, "HowlPatternSilence").is_empty()
    })
    .await;
    notified(&am, "HowlPatternSilence", "resolved").await;
    // Warned of at the restart: the backup, never seen; not the heartbeat.
    let log = howl.stderr();
    let unmatched: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("matches no known pattern"))
        .collect();
    assert_eq!(unmatched.len(), 1, "{log}");
    assert!(unmatched[0].contains("backup"), "{log}");
}
