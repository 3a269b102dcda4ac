//! The `telegram` sink against a loopback Bot API (`fake_telegram`), with
//! alert events fed through an `http_server` source of the real binary.

use std::time::Duration;

use crate::common::{
    Running, free_port, metric, post_events, post_events_accepted, wait_with_limit, write,
};
use crate::fake_telegram::FakeTelegram;
use serde_json::{Value, json};

const TOKEN: &str = "123456:SECRET-token_ABC";
const CHAT: i64 = -1_001_234_567_890;

/// howl with an `http_server` source feeding one `telegram` sink named
/// `tg`; fast retries and no rate limit unless `extra` says otherwise.
struct Setup {
    dir: tempfile::TempDir,
    config: std::path::PathBuf,
    api: u16,
    ingest: String,
}

impl Setup {
    fn new(fake: &FakeTelegram, extra: &str) -> Self {
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

[sources.in]
type = "http_server"
address = "127.0.0.1:{http}"
path = "/alerts"
decoding = "json"

[sinks.tg]
type = "telegram"
inputs = ["in"]
bot_token = "{TOKEN}"
chat_id = {CHAT}
api_base = "{url}"
retry.initial_backoff_secs = 0.05
retry.max_backoff_secs = 0.2
retry.max_duration_secs = 5.0
{extra}
"#,
                url = fake.url,
            ),
        );
        Self {
            dir,
            config,
            api,
            ingest: format!("http://127.0.0.1:{http}/alerts"),
        }
    }

    async fn start(&self) -> Running {
        Running::start(self.dir.path(), &self.config, self.api, &[]).await
    }
}

/// Fast sends unless the test is about pacing.
const UNLIMITED: &str = "rate_limit.num = 1000";

fn alert(key: &str, state: &str, summary: &str) -> Value {
    json!({"alert": {"key": key, "state": state, "summary": summary, "severity": "critical", "name": "DiskFull"}, "host": "db-1"})
}

fn sent_events(text: &str) -> f64 {
    metric(
        text,
        "component_sent_events_total",
        &["component_id=\"tg\""],
    )
    .unwrap_or(0.0)
}

#[tokio::test]
async fn escapes_hostile_values_and_disables_link_previews() {
    let fake = FakeTelegram::start(TOKEN).await;
    let setup = Setup::new(&fake, UNLIMITED);
    let howl = setup.start().await;
    post_events(
        &setup.ingest,
        &json!([{
            "message": "<script>alert('x')</script> &amp; <b>not bold</b> https://evil.example",
            "host": "web-1",
            "pattern": {"id": "p-1", "template": "<script><*> &amp; <*>", "level": "ERROR"},
        }]),
    )
    .await;
    let sent = fake.wait_calls("sendMessage", 1).await;
    let params = &sent[0].params;
    assert_eq!(params["chat_id"], json!(CHAT));
    assert_eq!(params["parse_mode"], "HTML");
    assert_eq!(params["link_preview_options"], json!({"is_disabled": true}));
    let text = params["text"].as_str().unwrap();
    assert!(
        text.starts_with("🔥 <b>&lt;script&gt;&lt;*&gt; &amp;amp; &lt;*&gt;</b>\n"),
        "{text}"
    );
    assert!(
        text.contains(
            "&lt;script&gt;alert('x')&lt;/script&gt; &amp;amp; &lt;b&gt;not bold&lt;/b&gt;"
        ),
        "{text}"
    );
    let shown = fake.message(1).expect("Telegram accepted the HTML").text;
    assert_eq!(
        shown,
        "🔥 <script><*> &amp; <*>\n\
         <script>alert('x')</script> &amp; <b>not bold</b> https://evil.example\n\
         ERROR · web-1 · p-1",
        "the chat shows the values exactly as logged"
    );
    howl.wait_for_metric("component_sent_events_total", &["component_id=\"tg\""], 1.0)
        .await;
}

#[tokio::test]
async fn cuts_long_messages_to_4096_characters_with_balanced_tags() {
    let fake = FakeTelegram::start(TOKEN).await;
    let setup = Setup::new(
        &fake,
        &format!("{UNLIMITED}\ntext = \"<b>{{{{ .message }}}}</b>\\n<i>{{{{ .host }}}}</i>\""),
    );
    let _howl = setup.start().await;
    post_events(
        &setup.ingest,
        &json!([{"message": "a<&>b".repeat(2000), "host": "web-1"}]),
    )
    .await;
    let sent = fake.wait_calls("sendMessage", 1).await;
    let raw = sent[0].params["text"].as_str().unwrap();
    assert!(raw.ends_with("…</b>"), "{}", &raw[raw.len() - 30..]);
    let shown = fake
        .message(1)
        .expect("Telegram accepted the cut message")
        .text;
    assert_eq!(shown.encode_utf16().count(), 4096);
    assert!(shown.starts_with("a<&>ba<&>b"));
}

#[tokio::test]
async fn waits_the_retry_after_of_a_429() {
    let fake = FakeTelegram::start(TOKEN).await;
    fake.script(
        "sendMessage",
        429,
        json!({"ok": false, "error_code": 429, "description": "Too Many Requests: retry after 1", "parameters": {"retry_after": 1}}),
        None,
    );
    let setup = Setup::new(&fake, UNLIMITED);
    let howl = setup.start().await;
    post_events(
        &setup.ingest,
        &json!([alert("disk", "firing", "Disk full")]),
    )
    .await;
    let sent = fake.wait_calls("sendMessage", 2).await;
    let waited = sent[1].at - sent[0].at;
    assert!(
        waited >= Duration::from_millis(950),
        "retried after {waited:?}, not the 1 s Telegram asked for"
    );
    assert_eq!(sent[0].params, sent[1].params, "the same message again");
    howl.wait_for_metric("component_sent_events_total", &["component_id=\"tg\""], 1.0)
        .await;
}

#[tokio::test]
async fn retries_503_and_never_retries_a_400() {
    let fake = FakeTelegram::start(TOKEN).await;
    let unavailable = json!({"ok": false, "error_code": 503, "description": "Service Unavailable"});
    fake.script("sendMessage", 503, unavailable.clone(), None);
    fake.script("sendMessage", 503, unavailable, None);
    let setup = Setup::new(&fake, UNLIMITED);
    let howl = setup.start().await;
    post_events(&setup.ingest, &json!([alert("a", "firing", "first")])).await;
    howl.wait_for_metric("component_sent_events_total", &["component_id=\"tg\""], 1.0)
        .await;
    assert_eq!(
        fake.calls("sendMessage").len(),
        3,
        "two 503s, then delivered"
    );
    assert!(fake.message(1).is_some());

    fake.script(
        "sendMessage",
        400,
        json!({"ok": false, "error_code": 400, "description": "Bad Request: chat not found"}),
        None,
    );
    post_events_accepted(&setup.ingest, &json!([alert("b", "firing", "second")])).await;
    howl.wait_for_metric(
        "component_discarded_events_total",
        &["component_id=\"tg\"", "intentional=\"false\""],
        1.0,
    )
    .await;
    let text = howl.metrics().await;
    assert_eq!(
        fake.calls("sendMessage").len(),
        4,
        "the 400 was not retried"
    );
    assert_eq!(
        metric(
            &text,
            "component_errors_total",
            &["component_id=\"tg\"", "error_type=\"request_rejected\""]
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(&text, "http_client_retries_total", &["component_id=\"tg\""]),
        Some(2.0)
    );
    assert_eq!(sent_events(&text), 1.0);
}

#[tokio::test]
async fn replies_to_repeats_and_edits_the_message_when_the_alert_resolves() {
    let fake = FakeTelegram::start(TOKEN).await;
    let setup = Setup::new(&fake, UNLIMITED);
    let howl = setup.start().await;
    assert_eq!(
        fake.wait_calls("getMe", 1).await[0].token,
        TOKEN,
        "healthcheck at start"
    );
    post_events(
        &setup.ingest,
        &json!([
            alert("disk:db-1", "firing", "Disk 95% full on db-1"),
            alert("other", "firing", "Something else"),
            alert("disk:db-1", "firing", "Disk 97% full on db-1"),
            alert("disk:db-1", "resolved", "Disk 60% full on db-1"),
        ]),
    )
    .await;
    let edits = fake.wait_calls("editMessageText", 1).await;
    let sent = fake.calls("sendMessage");
    assert_eq!(sent.len(), 3);
    assert!(sent[0].params.get("reply_parameters").is_none());
    assert_eq!(
        sent[2].params["reply_parameters"],
        json!({"message_id": 1, "allow_sending_without_reply": true}),
        "the repeat replies to the alert's first message"
    );
    assert_eq!(edits[0].params["chat_id"], json!(CHAT));
    assert_eq!(edits[0].params["message_id"], json!(1));
    assert_eq!(
        fake.message(1).unwrap().text,
        "✅ Resolved: Disk 60% full on db-1\ncritical · db-1 · disk:db-1"
    );
    assert_eq!(
        fake.message(2).unwrap().text,
        "🔥 Something else\nDiskFull\ncritical · db-1 · other",
        "other alerts are untouched"
    );
    howl.wait_for_metric("component_sent_events_total", &["component_id=\"tg\""], 4.0)
        .await;
}

#[tokio::test]
async fn unchanged_edits_succeed_and_deleted_messages_are_posted_again() {
    let fake = FakeTelegram::start(TOKEN).await;
    let setup = Setup::new(&fake, UNLIMITED);
    let howl = setup.start().await;
    post_events(
        &setup.ingest,
        &json!([alert("a", "firing", "A"), alert("b", "firing", "B")]),
    )
    .await;
    fake.wait_calls("sendMessage", 2).await;
    fake.script(
        "editMessageText",
        400,
        json!({"ok": false, "error_code": 400, "description": "Bad Request: message is not modified: specified new message content and reply markup are exactly the same as a current content and reply markup of the message"}),
        None,
    );
    fake.delete(2);
    post_events(
        &setup.ingest,
        &json!([alert("a", "resolved", "A"), alert("b", "resolved", "B")]),
    )
    .await;
    howl.wait_for_metric("component_sent_events_total", &["component_id=\"tg\""], 4.0)
        .await;
    let edits = fake.calls("editMessageText");
    assert_eq!(edits.len(), 2);
    assert_eq!(edits[1].params["message_id"], json!(2));
    let sent = fake.calls("sendMessage");
    assert_eq!(sent.len(), 3, "only the deleted message was posted again");
    assert!(
        sent[2].params["text"]
            .as_str()
            .unwrap()
            .contains("Resolved")
    );
    let text = howl.metrics().await;
    assert_eq!(
        metric(&text, "component_errors_total", &["component_id=\"tg\""]),
        None,
        "neither answer is an error"
    );
}

#[tokio::test]
async fn a_restart_during_an_alert_still_edits_the_original_message() {
    let fake = FakeTelegram::start(TOKEN).await;
    let setup = Setup::new(&fake, UNLIMITED);
    let mut howl = setup.start().await;
    post_events(
        &setup.ingest,
        &json!([
            alert("other", "firing", "Unrelated"),
            alert("disk", "firing", "Disk full")
        ]),
    )
    .await;
    howl.wait_for_metric("component_sent_events_total", &["component_id=\"tg\""], 2.0)
        .await;
    let stopped = howl.terminate(Duration::from_secs(20));
    assert!(
        stopped.status.success(),
        "{}",
        String::from_utf8_lossy(&stopped.stderr)
    );

    let howl = setup.start().await;
    post_events(
        &setup.ingest,
        &json!([alert("disk", "resolved", "Disk fine again")]),
    )
    .await;
    let edits = fake.wait_calls("editMessageText", 1).await;
    assert_eq!(
        edits[0].params["message_id"],
        json!(2),
        "the message of `disk`"
    );
    assert!(
        fake.message(2)
            .unwrap()
            .text
            .starts_with("✅ Resolved: Disk fine again")
    );
    assert!(fake.message(1).unwrap().text.starts_with("🔥 Unrelated"));
    assert_eq!(fake.calls("sendMessage").len(), 2, "nothing new was posted");
    howl.wait_for_metric("component_sent_events_total", &["component_id=\"tg\""], 1.0)
        .await;
}

#[tokio::test]
async fn paces_messages_to_one_per_second_by_default() {
    let fake = FakeTelegram::start(TOKEN).await;
    let setup = Setup::new(&fake, "");
    let _howl = setup.start().await;
    post_events(
        &setup.ingest,
        &json!([{"message": "one"}, {"message": "two"}, {"message": "three"}]),
    )
    .await;
    let sent = fake.wait_calls("sendMessage", 3).await;
    for pair in sent.windows(2) {
        let gap = pair[1].at - pair[0].at;
        assert!(gap >= Duration::from_millis(900), "sent {gap:?} apart");
    }
}

#[tokio::test]
async fn missing_fields_render_empty_are_counted_and_the_alert_still_goes_out() {
    let fake = FakeTelegram::start(TOKEN).await;
    let setup = Setup::new(
        &fake,
        &format!(
            "{UNLIMITED}\nparse_mode = \"none\"\ntext = \"{{{{ .alert.name }}}} on {{{{ .host }}}}\""
        ),
    );
    let howl = setup.start().await;
    post_events(&setup.ingest, &json!([{"host": "web-1"}])).await;
    let sent = fake.wait_calls("sendMessage", 1).await;
    assert_eq!(sent[0].params["text"], " on web-1");
    assert!(sent[0].params.get("parse_mode").is_none(), "plain text");
    howl.wait_for_metric(
        "component_errors_total",
        &["component_id=\"tg\"", "error_type=\"template_failed\""],
        1.0,
    )
    .await;
}

/// Asserts the token is nowhere in `log`, and that the log does report the
/// failure (so the test cannot pass by logging nothing).
fn assert_redacted(log: &str, expected: &str) {
    assert!(!log.contains(TOKEN), "the token leaked:\n{log}");
    assert!(
        !log.contains("SECRET-token"),
        "part of the token leaked:\n{log}"
    );
    assert!(log.contains(expected), "expected `{expected}` in:\n{log}");
}

#[tokio::test]
async fn never_logs_the_bot_token() {
    let fake = FakeTelegram::start(TOKEN).await;
    // A hostile server that echoes the URL (and so the token) in its errors.
    let echo = format!("Bad Request: chat not found at /bot{TOKEN}/sendMessage");
    fake.script(
        "getMe",
        500,
        json!({"ok": false, "error_code": 500, "description": echo}),
        None,
    );
    fake.script(
        "sendMessage",
        400,
        json!({"ok": false, "error_code": 400, "description": echo}),
        None,
    );
    let closed = free_port();
    let setup = Setup::new(
        &fake,
        &format!(
            "{UNLIMITED}\n\
             [sinks.unreachable]\ntype = \"telegram\"\ninputs = [\"in\"]\nbot_token = \"{TOKEN}\"\n\
             chat_id = \"@alerts\"\napi_base = \"http://127.0.0.1:{closed}\"\nretry.max_duration_secs = 0.5\n\
             retry.initial_backoff_secs = 0.05\nrate_limit.num = 1000\n"
        ),
    );
    let mut howl = setup.start().await;
    post_events_accepted(
        &setup.ingest,
        &json!([alert("disk", "firing", "Disk full")]),
    )
    .await;
    howl.wait_for_metric(
        "component_errors_total",
        &["component_id=\"tg\"", "error_type=\"request_rejected\""],
        1.0,
    )
    .await;
    howl.wait_for_metric(
        "component_errors_total",
        &[
            "component_id=\"unreachable\"",
            "error_type=\"retries_exhausted\"",
        ],
        1.0,
    )
    .await;
    let metrics = howl.metrics().await;
    assert!(!metrics.contains("SECRET-token"), "{metrics}");
    let output = howl.terminate(Duration::from_secs(20));
    let log = String::from_utf8_lossy(&output.stderr);
    assert_redacted(&log, "chat not found at /bot***/sendMessage");
    assert_redacted(&log, "healthcheck of the Telegram bot (getMe) failed");
    assert_redacted(&log, "gave up after");
}

#[tokio::test]
async fn a_required_healthcheck_with_a_bad_token_stops_howl_without_leaking_it() {
    let fake = FakeTelegram::start("999:the-right-token").await;
    let setup = Setup::new(&fake, "healthcheck.required = true");
    let child = crate::common::howl()
        .args(["run", "-c"])
        .arg(&setup.config)
        .current_dir(setup.dir.path())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Waiting blocks: keep it off the runtime that serves the fake.
    let output =
        tokio::task::spawn_blocking(move || wait_with_limit(child, Duration::from_secs(30)))
            .await
            .unwrap();
    assert!(!output.status.success());
    let log = String::from_utf8_lossy(&output.stderr);
    assert_redacted(&log, "HTTP 401: Unauthorized (healthcheck.required = true)");
    assert!(fake.calls("sendMessage").is_empty());
}

#[test]
fn invalid_options_are_config_errors() {
    let dir = tempfile::tempdir().unwrap();
    let config = |sink: &str| {
        format!(
            "[sources.in]\ntype = \"stdin\"\n[sinks.tg]\ntype = \"telegram\"\ninputs = [\"in\"]\nbot_token = \"1:x\"\n{sink}\n"
        )
    };
    for (sink, expected) in [
        (
            "chat_id = \"alerts\"",
            "a chat id must be a number or `@channelusername`, not `alerts`",
        ),
        (
            "chat_id = 1\ntext = \"<b>{{ .message }}\"",
            "`text` is not valid Telegram HTML: <b> is never closed",
        ),
        (
            "chat_id = 1\nresolved_text = \"<div>x</div>\"",
            "Telegram does not support the tag <div>",
        ),
        (
            "chat_id = 1\napi_base = \"ftp://x\"",
            "`ftp://x` is not an http(s) URL with a host",
        ),
        (
            "chat_id = 1\non_resolve = \"delete\"",
            "unknown variant `delete`",
        ),
        (
            "chat_id = 1\nparse_mode = \"Markdown\"",
            "unknown variant `Markdown`",
        ),
    ] {
        let path = write(dir.path(), "bad.toml", &config(sink));
        let (code, _, stderr) = crate::common::validate(dir.path(), &[path.as_path()]);
        assert_ne!(code, 0, "{sink}");
        assert!(
            stderr.contains(expected),
            "{sink}: expected `{expected}` in\n{stderr}"
        );
    }
}
