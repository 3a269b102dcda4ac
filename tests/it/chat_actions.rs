//! Acting on alerts from the chat: the `telegram` sink's buttons, pressed
//! in a loopback Bot API (`fake_telegram`, which reports presses through
//! `getUpdates`), change the suppressions of the real binary, which
//! `llm_suppress` applies and a real Alertmanager mirrors as silences.

use std::time::Duration;

use serde_json::{Value, json};

use crate::common::alertmanager::Alertmanager;
use crate::common::{Running, client, free_port, post_events, write};
use crate::fake_telegram::FakeTelegram;

const TOKEN: &str = "123456:SECRET-token_ABC";
const CHAT: i64 = -1_001_234_567_890;
const PATTERN: &str = "feedfacecafebeef";
const ALICE: i64 = 7;
const MALLORY: i64 = 99;

fn event(message: &str) -> Value {
    json!({
        "message": message,
        "pattern": {"id": PATTERN, "template": "disk full on <*>", "level": "error"},
    })
}

async fn suppressions(api: u16) -> Vec<Value> {
    client()
        .get(format!("http://127.0.0.1:{api}/api/v1/suppressions"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Polls the suppressions (bounded) until `check` holds.
async fn suppressions_until(api: u16, what: &str, check: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    for _ in 0..500 {
        let listed = suppressions(api).await;
        if check(&listed) {
            return listed;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!(
        "timed out waiting for {what}: {:?}",
        suppressions(api).await
    );
}

/// Alertmanager's active silences of `PATTERN`.
async fn active_silences(am: &Alertmanager) -> Vec<Value> {
    let all: Vec<Value> = client()
        .get(format!("{}/api/v2/silences", am.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    all.into_iter()
        .filter(|s| s["status"]["state"] == "active" && s["matchers"][0]["value"] == PATTERN)
        .collect()
}

#[tokio::test]
async fn buttons_suppress_undo_and_always_alert_for_allowed_users_only() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeTelegram::start(TOKEN).await;
    let am = Alertmanager::start(dir.path(), free_port()).await;
    let (api, http) = (free_port(), free_port());
    let config = write(
        dir.path(),
        "topology.toml",
        &format!(
            r#"
[api]
enabled = true
address = "127.0.0.1:{api}"

[sources.in]
type = "http_server"
address = "127.0.0.1:{http}"
decoding = "json"

[transforms.triage]
type = "llm_suppress"
inputs = ["in"]
alertmanager_silence = {{ url = "{am}", duration = "1h" }}

[sinks.tg]
type = "telegram"
inputs = ["triage"]
bot_token = "{TOKEN}"
chat_id = {CHAT}
api_base = "{url}"
rate_limit.num = 1000
actions.allowed_users = [{ALICE}, "@bob"]
"#,
            am = am.url,
            url = fake.url,
        ),
    );
    let mut howl = Running::start(dir.path(), &config, api, &[]).await;
    let ingest = format!("http://127.0.0.1:{http}/");

    // An important line is posted with the three default buttons.
    post_events(&ingest, &event("disk full on db-1")).await;
    let sent = fake.wait_calls("sendMessage", 1).await;
    let buttons = &sent[0].params["reply_markup"]["inline_keyboard"][0];
    let data: Vec<&str> = buttons
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["callback_data"].as_str().unwrap())
        .collect();
    assert_eq!(
        data,
        [
            format!("s:86400:{PATTERN}"),
            format!("s:604800:{PATTERN}"),
            format!("a:{PATTERN}")
        ]
    );
    let original = fake.message(1).unwrap();

    // Someone not allowed presses: told so, nothing changes.
    fake.press(1, MALLORY, Some("mallory"), &format!("s:604800:{PATTERN}"));
    let answers = fake.wait_calls("answerCallbackQuery", 1).await;
    assert_eq!(answers[0].params["text"], "You are not allowed to do this.");
    assert_eq!(answers[0].params["show_alert"], true);
    assert!(suppressions(api).await.is_empty());
    assert_eq!(fake.message(1).unwrap().raw, original.raw);

    // Alice suppresses for 7 days: the suppression, its silence, the
    // answer and the edited message.
    fake.press(1, ALICE, Some("alice"), &format!("s:604800:{PATTERN}"));
    let listed = suppressions_until(api, "the suppression", |l| l.len() == 1).await;
    let suppression = &listed[0];
    assert_eq!(suppression["pattern_id"], PATTERN);
    assert_eq!(suppression["action"], "suppress");
    assert_eq!(suppression["created_by"], "telegram @alice (id 7)");
    assert_eq!(
        active_silences(&am).await.len(),
        1,
        "mirrored in Alertmanager"
    );
    let answers = fake.wait_calls("answerCallbackQuery", 2).await;
    assert_eq!(answers[1].params["text"], "Suppressed for 7d.");
    let edits = fake.wait_calls("editMessageText", 1).await;
    let edited = fake.message(1).unwrap();
    assert!(
        edited.text.starts_with(&original.text)
            && edited.text.ends_with("Suppressed for 7d by @alice"),
        "{:?}",
        edited.text
    );
    let undo = &edited.keyboard["inline_keyboard"][0][0];
    assert_eq!(undo["text"], "Undo");
    assert_eq!(
        undo["callback_data"],
        format!("u:{}", suppression["id"].as_str().unwrap())
    );
    assert_eq!(edits[0].params["chat_id"], CHAT);

    // Its lines are suppressed now: nothing more reaches the chat.
    post_events(&ingest, &event("disk full on db-2")).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(fake.calls("sendMessage").len(), 1);

    // Undo: the suppression and its silence end, the message is as before.
    fake.press(
        1,
        ALICE,
        Some("alice"),
        undo["callback_data"].as_str().unwrap(),
    );
    suppressions_until(api, "the suppression to end", <[Value]>::is_empty).await;
    fake.wait_calls("editMessageText", 2).await;
    let restored = fake.message(1).unwrap();
    assert_eq!(restored.text, original.text);
    assert_eq!(restored.keyboard, original.keyboard, "the buttons are back");
    assert!(active_silences(&am).await.is_empty(), "the silence expired");

    // Bob (by name) sets it to always alert: no silence for that.
    fake.press(1, 1234, Some("Bob"), &format!("a:{PATTERN}"));
    let listed = suppressions_until(api, "the always-alert decision", |l| l.len() == 1).await;
    assert_eq!(listed[0]["action"], "always_alert");
    assert_eq!(listed[0]["created_by"], "telegram @Bob (id 1234)");
    assert!(active_silences(&am).await.is_empty());
    post_events(&ingest, &event("disk full on db-3")).await;
    fake.wait_calls("sendMessage", 2).await;
    assert!(fake.all_answered());

    let output = howl.terminate(Duration::from_secs(20));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(!stderr.contains("SECRET"), "the token leaked: {stderr}");
}
