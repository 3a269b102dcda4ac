//! `alert_webhook` with the real sender: Debian's Alertmanager notifies
//! howl, which runs `topologies/alert-router.toml` as shipped against a
//! loopback Bot API. A firing alert becomes one Telegram message, its
//! repeats none, and its resolution edits that message.

use std::path::Path;

use serde_json::json;

use crate::common::alertmanager::Alertmanager;
use crate::common::{Running, free_port, metric};
use crate::fake_telegram::FakeTelegram;

const TOKEN: &str = "123456:SECRET-token_ABC";

#[tokio::test]
async fn an_alertmanager_alert_fires_and_resolves_as_one_edited_telegram_message() {
    let dir = tempfile::tempdir().unwrap();
    let telegram = FakeTelegram::start(TOKEN).await;
    let (api, alerts, am_port) = (free_port(), free_port(), free_port());
    let topology = Path::new(env!("CARGO_MANIFEST_DIR")).join("topologies/alert-router.toml");
    let api_address = format!("127.0.0.1:{api}");
    let alerts_address = format!("127.0.0.1:{alerts}");
    let howl = Running::start_with_env(
        dir.path(),
        &topology,
        api,
        &[
            ("HOWL_API_ADDRESS", &api_address),
            ("HOWL_ALERTS_ADDRESS", &alerts_address),
            ("TELEGRAM_API_BASE", &telegram.url),
            ("TELEGRAM_BOT_TOKEN", TOKEN),
            ("TELEGRAM_CHAT_ID", "-1001234567890"),
        ],
    )
    .await;
    let am = Alertmanager::start_with_webhook(
        dir.path(),
        am_port,
        &format!("http://{alerts_address}/alerts"),
    )
    .await;

    let labels = json!({"alertname": "DiskFull", "severity": "critical", "instance": "db-1"});
    let started = chrono::Utc::now();
    am.post_alerts(json!([{
        "labels": labels,
        "annotations": {"summary": "Disk 97% full on db-1"},
        "startsAt": started.to_rfc3339(),
    }]))
    .await;
    let sent = telegram.wait_calls("sendMessage", 1).await;
    let text = sent[0].params["text"].as_str().unwrap();
    assert!(text.contains("Disk 97% full on db-1"), "{text}");
    assert!(
        text.contains("critical · alertmanager · DiskFull"),
        "{text}"
    );

    // The same alert again (Alertmanager re-notifies a group when it
    // changes): a second alert joins the group, so the first is sent again.
    am.post_alerts(json!([{
        "labels": {"alertname": "DiskFull", "severity": "critical", "instance": "db-2"},
        "annotations": {"summary": "Disk 91% full on db-2"},
        "startsAt": started.to_rfc3339(),
    }]))
    .await;
    telegram.wait_calls("sendMessage", 2).await;

    am.post_alerts(json!([{
        "labels": labels,
        "annotations": {"summary": "Disk 97% full on db-1"},
        "startsAt": started.to_rfc3339(),
        "endsAt": chrono::Utc::now().to_rfc3339(),
    }]))
    .await;
    let edits = telegram.wait_calls("editMessageText", 1).await;
    let edited = edits[0].params["text"].as_str().unwrap();
    assert!(edited.contains("Resolved:"), "{edited}");
    assert!(edited.contains("Disk 97% full on db-1"), "{edited}");
    let id = edits[0].params["message_id"].as_i64().unwrap();
    let message = telegram.message(id).unwrap();
    assert!(
        message.text.contains("Resolved:") && message.text.contains("db-1"),
        "the firing message of db-1 is the one edited: {message:?}"
    );
    let sends = telegram.calls("sendMessage");
    assert_eq!(
        sends.len(),
        2,
        "one message per alert, repeats dropped: {sends:#?}"
    );

    // Alertmanager was answered 200 each time (it would retry a 5xx), and
    // the repeats were dropped by the dedupe, not lost on the way.
    let metrics = howl.metrics().await;
    let received = metric(
        &metrics,
        "component_received_events_total",
        &["component_id=\"incoming\""],
    )
    .unwrap();
    assert!(received >= 4.0, "{received} alerts received");
    let errors = metric(
        &metrics,
        "component_errors_total",
        &["component_id=\"incoming\""],
    );
    assert_eq!(errors, None, "{metrics}");
}
