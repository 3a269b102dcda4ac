//! Acting on alerts from the chat: the `telegram` sink's buttons, pressed
//! in a loopback Bot API (`fake_telegram`, which reports presses through
//! `getUpdates`), change the suppressions of the real binary, which
//! `llm_suppress` applies and a real Alertmanager mirrors as silences.

use std::time::Duration;

use serde_json::{Value, json};

use crate::common::alertmanager::Alertmanager;
use crate::common::{Running, client, free_port, get_json, post_events, write};
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
    get_json(format!("http://127.0.0.1:{api}/api/v1/suppressions")).await
}

/// The audit trail of `pattern`, newest first.
async fn audit(api: u16, pattern: &str) -> Vec<Value> {
    get_json(format!(
        "http://127.0.0.1:{api}/api/v1/audit?pattern_id={pattern}"
    ))
    .await
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
    let all: Vec<Value> = get_json(format!("{}/api/v2/silences", am.url)).await;
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
    let config = telegram_topology(
        dir.path(),
        &fake,
        (api, http),
        &format!(
            "alertmanager_silence = {{ url = \"{}\", duration = \"1h\" }}",
            am.url
        ),
        &format!("{ALICE}, \"@bob\""),
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
    assert!(
        undo["callback_data"]
            .as_str()
            .unwrap()
            .starts_with(&format!("u:{}:", suppression["id"].as_str().unwrap())),
        "{undo}"
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

    // The audit trail has every decision, newest first, with who and
    // from where, over the API and from `howl audit`.
    let trail: Vec<Value> = audit(api, PATTERN).await;
    let people: Vec<(&str, &str, &str)> = trail
        .iter()
        .filter(|r| r["action"] != "verdict")
        .map(|r| {
            (
                r["action"].as_str().unwrap(),
                r["who"].as_str().unwrap(),
                r["via"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        people,
        [
            ("always_alert", "telegram @Bob (id 1234)", "telegram"),
            ("unsuppress", "telegram @alice (id 7)", "telegram"),
            ("suppress", "telegram @alice (id 7)", "telegram"),
        ]
    );
    let verdict = trail.iter().find(|r| r["action"] == "verdict").unwrap();
    assert_eq!(verdict["via"], "transforms.triage");
    assert_eq!(verdict["who"], "builtin");
    let api_url = format!("http://127.0.0.1:{api}");
    let cli_dir = dir.path().to_path_buf();
    let (code, stdout, stderr) = tokio::task::spawn_blocking(move || {
        crate::common::howl_in(
            &cli_dir,
            &[
                "audit",
                "--api",
                &api_url,
                "--pattern",
                PATTERN,
                "--limit",
                "2",
            ],
            &[],
        )
    })
    .await
    .unwrap();
    assert_eq!(code, 0, "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "a header and two records: {stdout}");
    assert!(
        lines[1].contains("always_alert") && lines[1].contains("@Bob"),
        "{stdout}"
    );

    let output = howl.terminate(Duration::from_secs(20));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(!stderr.contains("SECRET"), "the token leaked: {stderr}");
}

const SLACK_TOKEN: &str = "xoxb-SECRET-slack";
const SIGNING_SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";

/// A Slack interactivity request for a press of the button with `value`
/// under message `ts`, by `user`, as Slack form-encodes it.
fn slack_press(fake: &crate::fake_slack::FakeSlack, ts: &str, user: &str, value: &str) -> String {
    let mut message = fake.message(ts).expect("the message exists");
    message["ts"] = json!(ts);
    let payload = json!({
        "type": "block_actions",
        "user": {"id": user, "username": user.to_lowercase(), "team_id": "T0HOWL"},
        "channel": {"id": crate::fake_slack::CHANNEL_ID, "name": "alerts"},
        "container": {"type": "message", "message_ts": ts, "channel_id": crate::fake_slack::CHANNEL_ID},
        "message": message,
        "actions": [{"type": "button", "action_id": "howl_0", "block_id": "howl_actions", "value": value}],
        "response_url": "https://hooks.slack.com/actions/T0/1/x",
        "trigger_id": "1.2.3",
    });
    format!("payload={}", url_encode(&payload.to_string()))
}

fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' => {
                (b as char).to_string()
            }
            b' ' => "+".to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// Posts `body` to howl's Slack endpoint signed with `secret` at `at`.
async fn post_signed(api: u16, body: &str, secret: &str, at: i64) -> reqwest::Response {
    let timestamp = at.to_string();
    let signature = format!(
        "v0={}",
        howl::secret::hex(&howl::secret::hmac_sha256(
            secret.as_bytes(),
            format!("v0:{timestamp}:{body}").as_bytes()
        ))
    );
    client()
        .post(format!("http://127.0.0.1:{api}/api/v1/slack/actions"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-slack-request-timestamp", timestamp)
        .header("x-slack-signature", signature)
        .body(body.to_string())
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn slack_presses_must_be_signed_recently_and_by_an_allowed_user() {
    let dir = tempfile::tempdir().unwrap();
    let fake = crate::fake_slack::FakeSlack::start(SLACK_TOKEN).await;
    let (api, http) = (free_port(), free_port());
    let config = write(
        dir.path(),
        "topology.toml",
        &format!(
            r#"
[api]
enabled = true
address = "127.0.0.1:{api}"
auth_token = "api-token"

[sources.in]
type = "http_server"
address = "127.0.0.1:{http}"
decoding = "json"

[transforms.triage]
type = "llm_suppress"
inputs = ["in"]

[sinks.slack]
type = "slack"
inputs = ["triage"]
token = "{SLACK_TOKEN}"
channel = "{channel}"
api_base = "{url}/api"
rate_limit.num = 1000
actions.signing_secret = "{SIGNING_SECRET}"
actions.allowed_users = ["U0ALICE"]
"#,
            channel = crate::fake_slack::CHANNEL_ID,
            url = fake.url,
        ),
    );
    let mut howl = Running::start(dir.path(), &config, api, &[]).await;
    post_events(
        &format!("http://127.0.0.1:{http}/"),
        &event("disk full on db-1"),
    )
    .await;
    let posted = fake.wait_calls("/api/chat.postMessage", 1).await;
    let blocks = posted[0].body["attachments"][0]["blocks"]
        .as_array()
        .unwrap();
    let buttons = blocks.last().unwrap();
    assert_eq!(buttons["type"], "actions");
    assert_eq!(
        buttons["elements"][1]["value"],
        format!("s:604800:{PATTERN}")
    );
    let ts = "1763800000.000001";
    let now = chrono::Utc::now().timestamp();
    let suppress = slack_press(&fake, ts, "U0ALICE", &format!("s:604800:{PATTERN}"));

    // A bad signature, an old timestamp, or no signature: 401, no change.
    for (secret, at) in [("wrong-secret", now), (SIGNING_SECRET, now - 301)] {
        let answer = post_signed(api, &suppress, secret, at).await;
        assert_eq!(answer.status(), 401);
    }
    let unsigned = client()
        .post(format!("http://127.0.0.1:{api}/api/v1/slack/actions"))
        .body(suppress.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(unsigned.status(), 401);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(suppressions(api).await.is_empty());
    assert!(fake.calls("/api/chat.update").is_empty());

    // Signed, by someone not allowed: told privately, no change.
    let mallory = slack_press(&fake, ts, "U0MALLORY", &format!("s:604800:{PATTERN}"));
    assert_eq!(
        post_signed(api, &mallory, SIGNING_SECRET, now)
            .await
            .status(),
        200
    );
    let told = fake.wait_calls("/api/chat.postEphemeral", 1).await;
    assert_eq!(told[0].body["user"], "U0MALLORY");
    assert_eq!(told[0].body["text"], "You are not allowed to do this.");
    assert!(suppressions(api).await.is_empty());

    // Signed, by Alice: applied, and the message updated.
    assert_eq!(
        post_signed(api, &suppress, SIGNING_SECRET, now)
            .await
            .status(),
        200
    );
    let listed = suppressions_until(api, "the suppression", |l| l.len() == 1).await;
    assert_eq!(listed[0]["created_by"], "slack @u0alice (U0ALICE)");
    fake.wait_calls("/api/chat.update", 1).await;
    let updated = fake.message(ts).unwrap();
    let blocks = updated["attachments"][0]["blocks"].as_array().unwrap();
    let status = &blocks[blocks.len() - 2];
    assert_eq!(
        status["elements"][0]["text"],
        "⚙ Suppressed for 7d by <@U0ALICE>"
    );
    let undo = &blocks[blocks.len() - 1]["elements"][0];
    assert_eq!(undo["text"]["text"], "Undo");
    assert_eq!(
        blocks[0]["type"], "header",
        "the rest of the message is kept"
    );

    // Undo puts the buttons back.
    let undo_press = slack_press(&fake, ts, "U0ALICE", undo["value"].as_str().unwrap());
    assert_eq!(
        post_signed(api, &undo_press, SIGNING_SECRET, now)
            .await
            .status(),
        200
    );
    suppressions_until(api, "the suppression to end", <[Value]>::is_empty).await;
    fake.wait_calls("/api/chat.update", 2).await;
    let restored = fake.message(ts).unwrap();
    let blocks = restored["attachments"][0]["blocks"].as_array().unwrap();
    assert_eq!(
        blocks.last().unwrap()["elements"].as_array().unwrap().len(),
        3
    );

    let output = howl.terminate(Duration::from_secs(20));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        !stderr.contains("SECRET") && !stderr.contains(SIGNING_SECRET),
        "{stderr}"
    );
}

/// A topology of `http_server` → `llm_suppress` (with `triage` options)
/// → `telegram` with buttons for `allowed` users, in `dir`.
fn telegram_topology(
    dir: &std::path::Path,
    fake: &FakeTelegram,
    (api, http): (u16, u16),
    triage: &str,
    allowed: &str,
) -> std::path::PathBuf {
    write(
        dir,
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
{triage}

[sinks.tg]
type = "telegram"
inputs = ["triage"]
bot_token = "{TOKEN}"
chat_id = {CHAT}
api_base = "{url}"
rate_limit.num = 1000
actions.allowed_users = [{allowed}]
"#,
            url = fake.url,
        ),
    )
}

#[tokio::test]
async fn an_unreadable_update_is_skipped_and_a_restart_never_applies_a_press_twice() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeTelegram::start(TOKEN).await;
    let (api, http) = (free_port(), free_port());
    let config = telegram_topology(dir.path(), &fake, (api, http), "", &ALICE.to_string());
    let mut howl = Running::start(dir.path(), &config, api, &[]).await;
    post_events(
        &format!("http://127.0.0.1:{http}/"),
        &event("disk full on db-1"),
    )
    .await;
    fake.wait_calls("sendMessage", 1).await;

    // A callback query without `from` (no real Telegram sends one), then
    // a real press: the first is skipped, the second applied.
    fake.push_update(
        json!({"callback_query": {"id": "broken", "chat_instance": "1", "data": "a:x"}}),
    );
    fake.press(1, ALICE, Some("alice"), &format!("s:86400:{PATTERN}"));
    suppressions_until(api, "the press after the unreadable update", |l| {
        l.len() == 1
    })
    .await;
    fake.wait_calls("answerCallbackQuery", 1).await;
    let stderr = howl.stderr();
    assert!(stderr.contains("was skipped"), "{stderr}");
    let last_offset = fake
        .wait_calls("getUpdates", 1)
        .await
        .iter()
        .filter_map(|call| call.params["offset"].as_i64())
        .max();
    howl.terminate(Duration::from_secs(20));

    // After a restart, the first poll starts past every update already
    // taken, whatever the server still holds.
    let before = fake.calls("getUpdates").len();
    let mut howl = Running::start(dir.path(), &config, api, &[]).await;
    let calls = fake.wait_calls("getUpdates", before + 1).await;
    let first = &calls[before];
    assert!(
        first.params["offset"].as_i64() >= last_offset,
        "{:?}",
        first.params
    );
    assert_eq!(
        first.params["offset"].as_i64(),
        Some(1000 + 2 + 1),
        "past both updates"
    );
    howl.terminate(Duration::from_secs(20));
}

/// A signed link's parts, from its URL.
fn link_parts(url: &str) -> std::collections::HashMap<String, String> {
    let query = url.split_once('?').expect("a query").1;
    query
        .split('&')
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap();
            (k.to_string(), v.to_string())
        })
        .collect()
}

#[tokio::test]
async fn signed_links_suppress_only_after_the_post_and_refuse_tampering_and_expiry() {
    let dir = tempfile::tempdir().unwrap();
    let (api, http) = (free_port(), free_port());
    let config = write(
        dir.path(),
        "topology.toml",
        &format!(
            r#"
[api]
enabled = true
address = "127.0.0.1:{api}"
auth_token = "api-token"
links.secret = "0123456789abcdef0123456789abcdef"
links.base_url = "http://127.0.0.1:{api}"
links.ttl = "1h"

[sources.in]
type = "http_server"
address = "127.0.0.1:{http}"
decoding = "json"

[transforms.patterns]
type = "pattern"
inputs = ["in"]

[transforms.triage]
type = "llm_suppress"
inputs = ["patterns"]

[sinks.out]
type = "file"
inputs = ["triage"]
path = "out.log"
encoding = "json"
"#
        ),
    );
    let mut howl = Running::start(dir.path(), &config, api, &[]).await;
    post_events(
        &format!("http://127.0.0.1:{http}/"),
        &json!([{"message": "ERROR payment <script>alert(1)</script> declined for order 42"}]),
    )
    .await;
    // The file sink takes events before it writes them: wait for the line.
    let out = crate::common::wait_for("the event in out.log", Duration::from_secs(10), || {
        std::fs::read_to_string(dir.path().join("out.log"))
            .ok()
            .filter(|text| text.ends_with('\n'))
    })
    .await;
    let event: Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    let url = event["suppress_url"]
        .as_str()
        .expect("a suppress_url")
        .to_string();
    let pattern = event["pattern"]["id"].as_str().unwrap().to_string();
    assert!(
        url.starts_with(&format!(
            "http://127.0.0.1:{api}/api/v1/links/suppress?p={pattern}&e="
        )),
        "{url}"
    );

    // Opening it changes nothing; the page escapes what the log holds.
    let page = client().get(&url).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["cache-control"], "no-store");
    let html = page.text().await.unwrap();
    assert!(html.contains(&pattern), "{html}");
    assert!(html.contains("name=\"d\" value=\"7d\""), "{html}");
    assert!(!html.contains("<script>"), "escaped: {html}");
    assert!(suppressions(api).await.is_empty(), "a GET changes nothing");

    let parts = link_parts(&url);
    let post = |p: &str, e: &str, s: &str, d: &str| {
        client()
            .post(format!("http://127.0.0.1:{api}/api/v1/links/suppress"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!(
                "p={}&e={}&s={}&d={}",
                url_encode(p),
                url_encode(e),
                url_encode(s),
                url_encode(d)
            ))
            .send()
    };
    // Tampered: another pattern, a later expiry, another signature.
    for (p, e, s) in [
        ("0000000000000000", parts["e"].as_str(), parts["s"].as_str()),
        (pattern.as_str(), "99999999999", parts["s"].as_str()),
        (pattern.as_str(), parts["e"].as_str(), "00"),
    ] {
        let answer = post(p, e, s, "7d").await.unwrap();
        assert_eq!(answer.status(), 403, "{p} {e} {s}");
    }
    // Another duration than the page offers.
    let answer = post(&pattern, &parts["e"], &parts["s"], "99d")
        .await
        .unwrap();
    assert_eq!(answer.status(), 400);
    assert!(suppressions(api).await.is_empty());

    // The page's own POST suppresses, and the trail says how.
    let answer = post(&pattern, &parts["e"], &parts["s"], "7d")
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let listed = suppressions(api).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["pattern_id"], pattern.as_str());
    let trail: Vec<Value> = audit(api, &pattern).await;
    assert_eq!(trail[0]["action"], "suppress");
    assert_eq!(trail[0]["via"], "link");

    // Replayed, the link changes nothing more: the pattern is decided.
    let replay = post(&pattern, &parts["e"], &parts["s"], "30d")
        .await
        .unwrap();
    assert_eq!(replay.status(), 409);
    assert!(
        replay
            .text()
            .await
            .unwrap()
            .contains("already has a decision")
    );
    let again: Vec<Value> = audit(api, &pattern).await;
    assert_eq!(again.len(), trail.len(), "no new record");
    howl.terminate(Duration::from_secs(20));
}

#[tokio::test]
async fn an_expired_link_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (api, http) = (free_port(), free_port());
    let config = write(
        dir.path(),
        "topology.toml",
        &format!(
            "[api]\nenabled = true\naddress = \"127.0.0.1:{api}\"\n\
             links = {{ secret = \"0123456789abcdef0123456789abcdef\", base_url = \"http://127.0.0.1:{api}\" }}\n\
             [sources.in]\ntype = \"http_server\"\naddress = \"127.0.0.1:{http}\"\n\
             [sinks.out]\ntype = \"blackhole\"\ninputs = [\"in\"]\n"
        ),
    );
    let mut howl = Running::start(dir.path(), &config, api, &[]).await;
    // Signed with the right secret, expired a second ago.
    let expired = chrono::Utc::now().timestamp() - 1;
    let signature = howl::secret::hex(&howl::secret::hmac_sha256(
        b"0123456789abcdef0123456789abcdef",
        format!("suppress:feedfacecafebeef:{expired}").as_bytes(),
    ));
    let page = client()
        .get(format!(
            "http://127.0.0.1:{api}/api/v1/links/suppress?p=feedfacecafebeef&e={expired}&s={signature}"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 403);
    assert!(page.text().await.unwrap().contains("expired"));
    howl.terminate(Duration::from_secs(20));
}

#[test]
fn a_weak_link_secret_is_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "a.toml",
        "[api]\nenabled = true\nlinks = { secret = \"short\", base_url = \"https://howl.example\" }\n\
         [sources.in]\ntype = \"stdin\"\n[sinks.out]\ntype = \"blackhole\"\ninputs = [\"in\"]\n",
    );
    let (code, _, stderr) = crate::common::validate(dir.path(), &[std::path::Path::new("a.toml")]);
    assert_eq!(code, 78, "{stderr}");
    assert!(stderr.contains("at least 16 characters"), "{stderr}");
}

#[tokio::test]
async fn presses_can_arrive_through_a_webhook_with_its_secret_token() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeTelegram::start(TOKEN).await;
    let (api, http) = (free_port(), free_port());
    let config = telegram_topology(dir.path(), &fake, (api, http), "", &ALICE.to_string());
    let text = std::fs::read_to_string(&config).unwrap()
        + "actions.updates = \"webhook\"\nactions.webhook_secret = \"s3cret_Token-1\"\n";
    std::fs::write(&config, text).unwrap();
    let mut howl = Running::start(dir.path(), &config, api, &[]).await;
    post_events(
        &format!("http://127.0.0.1:{http}/"),
        &event("disk full on db-1"),
    )
    .await;
    fake.wait_calls("sendMessage", 1).await;
    let update = fake.press_update(1, ALICE, Some("alice"), &format!("s:86400:{PATTERN}"));
    let post = |token: Option<&'static str>| {
        let mut request = client()
            .post(format!("http://127.0.0.1:{api}/api/v1/telegram/tg/updates"))
            .json(&update);
        if let Some(token) = token {
            request = request.header("x-telegram-bot-api-secret-token", token);
        }
        request.send()
    };
    for wrong in [None, Some("s3cret_Token-2")] {
        assert_eq!(post(wrong).await.unwrap().status(), 401);
    }
    let other = client()
        .post(format!(
            "http://127.0.0.1:{api}/api/v1/telegram/nope/updates"
        ))
        .header("x-telegram-bot-api-secret-token", "s3cret_Token-1")
        .json(&update)
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 404);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(suppressions(api).await.is_empty());
    assert_eq!(post(Some("s3cret_Token-1")).await.unwrap().status(), 200);
    suppressions_until(api, "the press through the webhook", |l| l.len() == 1).await;
    fake.wait_calls("answerCallbackQuery", 1).await;
    assert!(
        fake.calls("getUpdates").is_empty(),
        "no polling with a webhook"
    );
    howl.terminate(Duration::from_secs(20));
}
