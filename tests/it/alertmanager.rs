//! The `alertmanager` sink against a real Alertmanager 0.25 on loopback.

use std::path::Path;
use std::time::Duration;

use crate::common::alertmanager::Alertmanager;
use crate::common::{Running, client, free_port, write};

/// howl with an http_server source (JSON events) feeding the sink.
fn topology(api: u16, http: u16, am_url: &str, extra: &str) -> String {
    format!(
        "data_dir = \"state\"\n[api]\nenabled = true\naddress = \"127.0.0.1:{api}\"\n\
         [sources.in]\ntype = \"http_server\"\naddress = \"127.0.0.1:{http}\"\ndecoding = \"json\"\n\
         [sinks.am]\ntype = \"alertmanager\"\ninputs = [\"in\"]\nendpoints = [\"{am_url}\"]\n\
         batch.timeout_secs = 0.1\nretry.initial_backoff_secs = 0.2\nretry.max_backoff_secs = 1\n{extra}\n"
    )
}

fn pattern_event(id: &str) -> serde_json::Value {
    serde_json::json!({
        "message": "ERROR disk /var is full (97%)",
        "host": "web-1",
        "source_type": "file",
        "pattern": {"id": id, "template": "ERROR disk <PATH> is full (<NUM>%)", "level": "error", "new": true},
    })
}

async fn post(http: u16, event: serde_json::Value) {
    let response = client()
        .post(format!("http://127.0.0.1:{http}/"))
        .json(&event)
        .send()
        .await
        .expect("post event");
    assert_eq!(response.status(), 200);
}

fn with_pattern<'a>(alerts: &'a [serde_json::Value], id: &str) -> Option<&'a serde_json::Value> {
    alerts.iter().find(|a| a["labels"]["pattern_id"] == id)
}

struct Setup {
    _dir: tempfile::TempDir,
    am: Alertmanager,
    _howl: Running,
    http: u16,
}

async fn setup(extra: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let am = Alertmanager::start(dir.path(), free_port()).await;
    let (api, http) = (free_port(), free_port());
    let config = write(dir.path(), "a.toml", &topology(api, http, &am.url, extra));
    let howl = Running::start(dir.path(), &config, api, &[]).await;
    Setup {
        _dir: dir,
        am,
        _howl: howl,
        http,
    }
}

#[tokio::test]
async fn alert_arrives_with_default_labels_and_our_fingerprint() {
    let s = setup("").await;
    post(s.http, pattern_event("0123456789abcdef")).await;
    let alerts =
        s.am.wait_for_alerts("the pattern alert", Duration::from_secs(10), |a| {
            with_pattern(a, "0123456789abcdef").is_some()
        })
        .await;
    let alert = with_pattern(&alerts, "0123456789abcdef").unwrap();
    let labels: std::collections::BTreeMap<String, String> =
        serde_json::from_value(alert["labels"].clone()).unwrap();
    assert_eq!(labels["alertname"], "HowlNewPattern");
    assert_eq!(labels["level"], "error");
    assert_eq!(labels["host"], "web-1");
    assert_eq!(
        labels["source"], "http_server",
        "the source that received it"
    );
    assert!(
        !labels.contains_key("alert_key"),
        "empty labels are not sent"
    );
    assert_eq!(
        alert["annotations"]["summary"],
        "ERROR disk <PATH> is full (<NUM>%)"
    );
    assert_eq!(
        alert["annotations"]["sample"],
        "ERROR disk /var is full (97%)"
    );
    assert_eq!(alert["status"]["state"], "active");
    assert_eq!(
        alert["fingerprint"],
        howl::sinks::alertmanager::fingerprint(&labels)
    );
}

#[tokio::test]
async fn resends_keep_an_alert_active_and_silence_resolves_it() {
    // endsAt = now + 4 s; without resends it would end after 4 s.
    let s = setup("resend_interval_secs = 1\nresolve_after_secs = 7").await;
    post(s.http, pattern_event("aaaaaaaaaaaaaaaa")).await;
    s.am.wait_for_alerts("the alert", Duration::from_secs(10), |a| {
        with_pattern(a, "aaaaaaaaaaaaaaaa").is_some()
    })
    .await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let alerts = s.am.alerts().await;
    let alert = with_pattern(&alerts, "aaaaaaaaaaaaaaaa")
        .expect("still active after 5 s thanks to resends");
    let ends_at = chrono::DateTime::parse_from_rfc3339(alert["endsAt"].as_str().unwrap()).unwrap();
    assert!(
        ends_at > chrono::Utc::now(),
        "endsAt keeps moving forward: {ends_at}"
    );
    // No new occurrence: resolved 7 s after the only one.
    s.am.wait_for_alerts(
        "the silent alert to resolve",
        Duration::from_secs(10),
        |a| with_pattern(a, "aaaaaaaaaaaaaaaa").is_none(),
    )
    .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let notified = s.am.notified();
        if notified.iter().any(|n| n["status"] == "resolved") {
            let firing = notified.iter().filter(|n| n["status"] == "firing").count();
            assert_eq!(
                firing, 1,
                "one firing notification, no duplicates from resends: {notified:#?}"
            );
            let resolved = notified.iter().find(|n| n["status"] == "resolved").unwrap();
            assert_eq!(
                resolved["alerts"][0]["annotations"]["summary"],
                "ERROR disk <PATH> is full (<NUM>%)",
                "the resolution carries the annotations"
            );
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no resolved notification: {notified:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn an_explicit_resolve_event_ends_the_alert() {
    let s = setup("").await;
    let firing = serde_json::json!({"host": "web-2", "alert": {"name": "HighCpu", "key": "HighCpu/web-2", "state": "firing", "severity": "warning", "summary": "CPU 93% > 80% on web-2 for 5m"}});
    post(s.http, firing).await;
    let alerts =
        s.am.wait_for_alerts("HighCpu", Duration::from_secs(10), |a| {
            a.iter().any(|x| x["labels"]["alertname"] == "HighCpu")
        })
        .await;
    let alert = alerts
        .iter()
        .find(|x| x["labels"]["alertname"] == "HighCpu")
        .unwrap();
    assert_eq!(alert["labels"]["alert_key"], "HighCpu/web-2");
    assert_eq!(alert["labels"]["level"], "warning");
    assert_eq!(
        alert["annotations"]["summary"],
        "CPU 93% > 80% on web-2 for 5m"
    );
    let resolved = serde_json::json!({"host": "web-2", "alert": {"name": "HighCpu", "key": "HighCpu/web-2", "state": "resolved", "severity": "warning", "summary": "CPU back to 40%"}});
    post(s.http, resolved).await;
    s.am.wait_for_alerts("HighCpu to resolve", Duration::from_secs(10), |a| {
        !a.iter().any(|x| x["labels"]["alertname"] == "HighCpu")
    })
    .await;
}

#[tokio::test]
async fn a_silence_on_pattern_id_suppresses_the_notification() {
    let s = setup("").await;
    s.am.silence("pattern_id", "5555555555555555").await;
    post(s.http, pattern_event("5555555555555555")).await;
    post(s.http, pattern_event("6666666666666666")).await;
    let alerts =
        s.am.wait_for_alerts("both alerts", Duration::from_secs(10), |a| {
            with_pattern(a, "5555555555555555").is_some()
                && with_pattern(a, "6666666666666666").is_some()
        })
        .await;
    assert_eq!(
        with_pattern(&alerts, "5555555555555555").unwrap()["status"]["state"],
        "suppressed"
    );
    // The unsilenced one is notified (group_wait 1 s); the silenced one never is.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !s
        .am
        .notified()
        .iter()
        .any(|n| n["alerts"][0]["labels"]["pattern_id"] == "6666666666666666")
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the unsilenced alert was not notified"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let silenced_notified = s.am.notified().iter().any(|n| {
        n["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["labels"]["pattern_id"] == "5555555555555555")
    });
    assert!(!silenced_notified, "a silenced alert must not be notified");
}

#[tokio::test]
async fn alerts_arrive_once_alertmanager_comes_up() {
    let dir = tempfile::tempdir().unwrap();
    let am_port = free_port();
    let (api, http) = (free_port(), free_port());
    let config = write(
        dir.path(),
        "a.toml",
        &topology(api, http, &format!("http://127.0.0.1:{am_port}"), ""),
    );
    // Alertmanager is down: howl starts anyway (the healthcheck only warns).
    let howl = Running::start(dir.path(), &config, api, &[]).await;
    // The source answers only once the alert is delivered, after
    // Alertmanager comes up: post meanwhile, and hear the 200 at the end.
    let posted = tokio::spawn(post(http, pattern_event("7777777777777777")));
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        !posted.is_finished(),
        "no answer before the alert is delivered"
    );
    let am = Alertmanager::start(dir.path(), am_port).await;
    am.wait_for_alerts("the alert after retries", Duration::from_secs(15), |a| {
        with_pattern(a, "7777777777777777").is_some()
    })
    .await;
    tokio::time::timeout(Duration::from_secs(30), posted)
        .await
        .expect("the source answers once the alert is delivered")
        .expect("200 once delivered");
    let metrics = howl.metrics().await;
    let retries = crate::common::metric(
        &metrics,
        "http_client_retries_total",
        &["component_id=\"am\""],
    )
    .unwrap_or(0.0);
    assert!(retries >= 1.0, "the delivery was retried: {retries}");
}

#[tokio::test]
async fn a_restart_of_howl_keeps_the_alert_and_still_resolves_it() {
    let dir = tempfile::tempdir().unwrap();
    let am = Alertmanager::start(dir.path(), free_port()).await;
    let (api, http) = (free_port(), free_port());
    let config = write(
        dir.path(),
        "a.toml",
        &topology(
            api,
            http,
            &am.url,
            "resend_interval_secs = 1\nresolve_after_secs = 6",
        ),
    );
    let mut howl = Running::start(dir.path(), &config, api, &[]).await;
    post(http, pattern_event("8888888888888888")).await;
    am.wait_for_alerts("the alert", Duration::from_secs(10), |a| {
        with_pattern(a, "8888888888888888").is_some()
    })
    .await;
    let output = howl.terminate(Duration::from_secs(20));
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    restart_and_expect_resolution(dir.path(), &config, api, &am).await;
    let firing = am
        .notified()
        .iter()
        .filter(|n| {
            n["status"] == "firing" && n["alerts"][0]["labels"]["pattern_id"] == "8888888888888888"
        })
        .count();
    assert_eq!(firing, 1, "the restart did not start a second episode");
}

async fn restart_and_expect_resolution(dir: &Path, config: &Path, api: u16, am: &Alertmanager) {
    let _howl = Running::start(dir, config, api, &[]).await;
    am.wait_for_alerts(
        "the resolution after the restart",
        Duration::from_secs(15),
        |a| with_pattern(a, "8888888888888888").is_none(),
    )
    .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !am.notified().iter().any(|n| n["status"] == "resolved") {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no resolved notification after the restart"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_restarted_alertmanager_is_rebuilt_by_resends() {
    let dir = tempfile::tempdir().unwrap();
    let mut am = Alertmanager::start(dir.path(), free_port()).await;
    let (api, http) = (free_port(), free_port());
    let config = write(
        dir.path(),
        "a.toml",
        &topology(api, http, &am.url, "resend_interval_secs = 1"),
    );
    let _howl = Running::start(dir.path(), &config, api, &[]).await;
    post(http, pattern_event("9999999999999999")).await;
    am.wait_for_alerts("the alert", Duration::from_secs(10), |a| {
        with_pattern(a, "9999999999999999").is_some()
    })
    .await;
    am.restart().await;
    am.wait_for_alerts(
        "the alert re-posted to the new Alertmanager",
        Duration::from_secs(10),
        |a| with_pattern(a, "9999999999999999").is_some(),
    )
    .await;
}

/// How long the outage lasts in `alerts_fired_while_alertmanager_was_down_all_arrive`:
/// 60 s, as the delivery contract promises; `HOWL_TEST_OUTAGE_SECS` shortens it
/// while iterating.
fn outage() -> Duration {
    let secs = std::env::var("HOWL_TEST_OUTAGE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    Duration::from_secs(secs)
}

/// Alerts fire (one new alert per second, each its own `alert_key`) from a
/// log file before, during and after a 60 s Alertmanager outage, which
/// also wipes what Alertmanager held (it keeps alerts in memory only).
/// Afterwards it holds every alert: those fired during the outage waited
/// in the sink's retries, those fired before came back with the resends,
/// and nothing was discarded.
#[tokio::test]
async fn alerts_fired_while_alertmanager_was_down_all_arrive() {
    let dir = tempfile::tempdir().unwrap();
    let mut am = Alertmanager::start(dir.path(), free_port()).await;
    let api = free_port();
    let log = dir.path().join("alerts.log");
    std::fs::write(&log, "").unwrap();
    let config = write(
        dir.path(),
        "a.toml",
        &format!(
            "data_dir = \"state\"\n[api]\nenabled = true\naddress = \"127.0.0.1:{api}\"\n\
             [sources.log]\ntype = \"file\"\ninclude = [\"{log}\"]\nread_from = \"beginning\"\n\
             [transforms.alert]\ntype = \"remap\"\ninputs = [\"log\"]\n\
             source = '''\n.alert.name = \"DiskFull\"\n.alert.key = string!(.message)\n'''\n\
             [sinks.am]\ntype = \"alertmanager\"\ninputs = [\"alert\"]\nendpoints = [\"{url}\"]\n\
             resend_interval_secs = 5\nbatch.timeout_secs = 0.1\n\
             retry.initial_backoff_secs = 0.2\nretry.max_backoff_secs = 2\n",
            log = log.display(),
            url = am.url,
        ),
    );
    let howl = Running::start(dir.path(), &config, api, &[]).await;
    let mut fired = 0usize;
    let fire = |count: usize, fired: &mut usize| {
        let mut lines = String::new();
        for _ in 0..count {
            *fired += 1;
            lines.push_str(&format!("disk-{fired:03}\n"));
        }
        let mut file = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
        std::io::Write::write_all(&mut file, lines.as_bytes()).unwrap();
    };
    let holds_all = |fired: usize| {
        move |alerts: &[serde_json::Value]| {
            (1..=fired).all(|n| {
                let key = format!("disk-{n:03}");
                alerts
                    .iter()
                    .any(|a| a["labels"]["alert_key"] == key.as_str())
            })
        }
    };

    fire(5, &mut fired);
    am.wait_for_alerts(
        "the alerts fired before the outage",
        Duration::from_secs(15),
        holds_all(fired),
    )
    .await;
    am.stop();
    let outage = outage();
    let start = tokio::time::Instant::now();
    while start.elapsed() < outage {
        fire(1, &mut fired);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    am.restart().await;
    fire(5, &mut fired);
    am.wait_for_alerts(
        "every alert after the outage",
        Duration::from_secs(30),
        holds_all(fired),
    )
    .await;
    assert!(
        fired >= 10 + outage.as_secs() as usize - 1,
        "{fired} alerts fired"
    );
    let metrics = howl.metrics().await;
    let discarded = crate::common::metric(
        &metrics,
        "component_discarded_events_total",
        &["component_id=\"am\""],
    )
    .unwrap_or(0.0);
    assert_eq!(discarded, 0.0, "nothing discarded:\n{metrics}");
    let retries = crate::common::metric(
        &metrics,
        "http_client_retries_total",
        &["component_id=\"am\""],
    )
    .unwrap_or(0.0);
    assert!(retries >= 1.0, "the outage was retried through: {retries}");
}
