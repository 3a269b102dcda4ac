//! The `slack` sink against a loopback Slack (`fake_slack`): the incoming
//! webhook and the Web API, with alert events fed through an `http_server`
//! source of the real binary.

use std::time::Duration;

use crate::common::{Running, free_port, metric, post_events, post_events_accepted, write};
use crate::fake_slack::{CHANNEL_ID, FakeSlack, WEBHOOK_PATH};
use serde_json::{Value, json};

const TOKEN: &str = "xoxb-1111-2222-sEcReTtOkEn";
const POST: &str = "/api/chat.postMessage";
const UPDATE: &str = "/api/chat.update";

/// howl with an `http_server` source feeding one `slack` sink named
/// `slack` configured by `mode` (plus fast retries and no rate limit).
struct Setup {
    dir: tempfile::TempDir,
    config: std::path::PathBuf,
    api: u16,
    ingest: String,
}

impl Setup {
    fn new(mode: &str) -> Self {
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

[sinks.slack]
type = "slack"
inputs = ["in"]
retry.initial_backoff_secs = 0.05
retry.max_backoff_secs = 0.2
retry.max_duration_secs = 5.0
rate_limit.num = 1000
{mode}
"#
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

fn webhook(fake: &FakeSlack) -> String {
    format!("webhook_url = \"{}\"", fake.webhook_url())
}

fn web_api(fake: &FakeSlack) -> String {
    format!(
        "token = \"{TOKEN}\"\nchannel = \"#alerts\"\napi_base = \"{}/api\"",
        fake.url
    )
}

fn alert(key: &str, state: &str, summary: &str) -> Value {
    json!({"alert": {"key": key, "state": state, "summary": summary, "severity": "critical"}, "host": "db-1"})
}

const SENT: &str = "component_sent_events_total";
const THIS_SINK: &str = "component_id=\"slack\"";

#[tokio::test]
async fn webhook_posts_a_coloured_block_kit_message_with_escaped_values() {
    let fake = FakeSlack::start(TOKEN).await;
    let setup = Setup::new(&webhook(&fake));
    let howl = setup.start().await;
    post_events(
        &setup.ingest,
        &json!([{
            "message": "<!channel> upstream <http://evil|click> timed out & retried",
            "host": "web-1",
            "pattern": {"id": "p-7", "template": "upstream <*> timed out & retried", "level": "error"},
        }]),
    )
    .await;
    let posted = fake.wait_calls(WEBHOOK_PATH, 1).await;
    assert_eq!(
        posted[0].body,
        json!({
            "text": "🔥 upstream &lt;*&gt; timed out &amp; retried",
            "attachments": [{"color": "#E01E5A", "blocks": [
                {"type": "header", "text": {"type": "plain_text", "text": "🔥 upstream <*> timed out & retried", "emoji": true}},
                {"type": "section", "text": {"type": "mrkdwn", "text": "&lt;!channel&gt; upstream &lt;http://evil|click&gt; timed out &amp; retried"}},
                {"type": "context", "elements": [{"type": "mrkdwn", "text": "error · web-1 · http_server · p-7"}]},
            ]}],
            "unfurl_links": false,
            "unfurl_media": false,
        })
    );
    assert!(posted[0].authorization.is_none(), "webhooks carry no token");
    howl.wait_for_metric(SENT, &[THIS_SINK], 1.0).await;
}

#[tokio::test]
async fn webhook_waits_retry_after_on_429_and_never_retries_its_4xx_errors() {
    let fake = FakeSlack::start(TOKEN).await;
    fake.script_text(WEBHOOK_PATH, 429, "rate_limited", Some("1"));
    let setup = Setup::new(&webhook(&fake));
    let howl = setup.start().await;
    post_events_accepted(&setup.ingest, &json!([alert("a", "firing", "first")])).await;
    let calls = fake.wait_calls(WEBHOOK_PATH, 2).await;
    let waited = calls[1].at - calls[0].at;
    assert!(
        waited >= Duration::from_millis(950),
        "retried after {waited:?}"
    );
    howl.wait_for_metric(SENT, &[THIS_SINK], 1.0).await;

    fake.script_text(WEBHOOK_PATH, 400, "invalid_payload", None);
    fake.script_text(WEBHOOK_PATH, 404, "channel_not_found", None);
    post_events_accepted(
        &setup.ingest,
        &json!([
            alert("b", "firing", "second"),
            alert("c", "firing", "third")
        ]),
    )
    .await;
    howl.wait_for_metric(
        "component_errors_total",
        &[THIS_SINK, "error_type=\"request_rejected\""],
        2.0,
    )
    .await;
    assert_eq!(fake.calls(WEBHOOK_PATH).len(), 4, "4xx answers are final");
    let text = howl.metrics().await;
    assert_eq!(metric(&text, SENT, &[THIS_SINK]), Some(1.0));
    assert_eq!(
        metric(
            &text,
            "component_discarded_events_total",
            &[THIS_SINK, "intentional=\"false\""]
        ),
        Some(2.0)
    );
}

#[tokio::test]
async fn web_api_threads_repeats_and_updates_the_message_on_resolve() {
    let fake = FakeSlack::start(TOKEN).await;
    let setup = Setup::new(&web_api(&fake));
    let howl = setup.start().await;
    let checked = fake.wait_calls("/api/auth.test", 1).await;
    assert_eq!(
        checked[0].authorization.as_deref(),
        Some(&*format!("Bearer {TOKEN}"))
    );
    post_events(
        &setup.ingest,
        &json!([
            alert("disk:db-1", "firing", "Disk 95% full"),
            alert("other", "firing", "Something else"),
            alert("disk:db-1", "firing", "Disk 97% full"),
            alert("disk:db-1", "resolved", "Disk back to 60%"),
        ]),
    )
    .await;
    let updates = fake.wait_calls(UPDATE, 1).await;
    let posts = fake.calls(POST);
    assert_eq!(posts.len(), 3);
    assert_eq!(posts[0].body["channel"], "#alerts");
    assert!(posts[0].body.get("thread_ts").is_none());
    let first_ts = "1763800000.000001";
    assert_eq!(
        posts[2].body["thread_ts"], first_ts,
        "the repeat goes to the alert's thread"
    );
    assert_eq!(posts[2].body["channel"], CHANNEL_ID);
    assert_eq!(updates[0].body["channel"], CHANNEL_ID);
    assert_eq!(updates[0].body["ts"], first_ts);
    let shown = fake.message(first_ts).unwrap();
    let attachment = &shown["attachments"][0];
    assert_eq!(attachment["color"], "#2EB67D", "resolved alerts are green");
    assert_eq!(
        attachment["blocks"][0]["text"]["text"],
        "✅ Resolved: Disk back to 60%"
    );
    assert_eq!(shown["text"], "✅ Resolved: Disk back to 60%");
    assert!(
        posts
            .iter()
            .all(|p| p.authorization.as_deref() == Some(&*format!("Bearer {TOKEN}")))
    );
    howl.wait_for_metric(SENT, &[THIS_SINK], 4.0).await;
}

#[tokio::test]
async fn web_api_errors_are_not_retried_except_rate_limits() {
    let fake = FakeSlack::start(TOKEN).await;
    fake.script_text(POST, 429, "", Some("1"));
    fake.script_json(
        POST,
        200,
        json!({"ok": false, "error": "rate_limited"}),
        Some("1"),
    );
    let setup = Setup::new(&web_api(&fake));
    let howl = setup.start().await;
    post_events_accepted(&setup.ingest, &json!([alert("a", "firing", "A")])).await;
    howl.wait_for_metric(SENT, &[THIS_SINK], 1.0).await;
    fake.script_json(
        POST,
        200,
        json!({"ok": false, "error": "channel_not_found"}),
        None,
    );
    fake.script_json(
        POST,
        200,
        json!({"ok": false, "error": "invalid_blocks"}),
        None,
    );
    post_events_accepted(
        &setup.ingest,
        &json!([alert("b", "firing", "B"), alert("c", "firing", "C")]),
    )
    .await;
    howl.wait_for_metric(
        "component_errors_total",
        &[THIS_SINK, "error_type=\"request_rejected\""],
        2.0,
    )
    .await;
    let posts = fake.calls(POST);
    assert_eq!(
        posts.len(),
        5,
        "429, rate_limited, delivered, then two final errors"
    );
    for retry in [1, 2] {
        let waited = posts[retry].at - posts[retry - 1].at;
        assert!(
            waited >= Duration::from_millis(950),
            "retry {retry} after {waited:?}"
        );
    }
    let text = howl.metrics().await;
    assert_eq!(metric(&text, SENT, &[THIS_SINK]), Some(1.0));
    let log = howl.stderr();
    assert!(log.contains("Slack answered channel_not_found"), "{log}");
}

#[tokio::test]
async fn web_api_posts_anew_when_the_message_to_update_is_gone() {
    let fake = FakeSlack::start(TOKEN).await;
    let setup = Setup::new(&web_api(&fake));
    let howl = setup.start().await;
    post_events(
        &setup.ingest,
        &json!([alert("disk", "firing", "Disk full")]),
    )
    .await;
    fake.wait_calls(POST, 1).await;
    fake.delete("1763800000.000001");
    post_events(
        &setup.ingest,
        &json!([alert("disk", "resolved", "Disk fine")]),
    )
    .await;
    let posts = fake.wait_calls(POST, 2).await;
    assert_eq!(fake.calls(UPDATE).len(), 1);
    assert!(posts[1].body.get("thread_ts").is_none());
    assert_eq!(
        posts[1].body["attachments"][0]["blocks"][0]["text"]["text"],
        "✅ Resolved: Disk fine"
    );
    howl.wait_for_metric(SENT, &[THIS_SINK], 2.0).await;
    let text = howl.metrics().await;
    assert_eq!(metric(&text, "component_errors_total", &[THIS_SINK]), None);
}

#[tokio::test]
async fn cuts_the_header_and_section_to_slack_limits() {
    let fake = FakeSlack::start(TOKEN).await;
    let setup = Setup::new(&format!(
        "{}\ntitle = \"{{{{ .message }}}}\"\ntext = \"*{{{{ .message }}}}*\"",
        web_api(&fake)
    ));
    let howl = setup.start().await;
    post_events(&setup.ingest, &json!([{"message": "a<&>b".repeat(2000)}])).await;
    howl.wait_for_metric(SENT, &[THIS_SINK], 1.0).await;
    let posted = &fake.calls(POST)[0].body;
    let blocks = &posted["attachments"][0]["blocks"];
    let header = blocks[0]["text"]["text"].as_str().unwrap();
    assert_eq!(header.chars().count(), 150);
    assert!(
        header.starts_with("🔥 a<&>b") && header.ends_with('…'),
        "{header}"
    );
    let section = blocks[1]["text"]["text"].as_str().unwrap();
    assert!((2995..=3000).contains(&section.chars().count()));
    assert!(section.starts_with("*a&lt;&amp;&gt;b"));
    let cut = section.trim_end_matches('…');
    assert!(
        cut.ends_with('a') || cut.ends_with('b') || cut.ends_with(';'),
        "cut inside an entity: {}",
        &section[section.len() - 20..]
    );
}

#[tokio::test]
async fn never_logs_the_webhook_url_or_the_token() {
    let fake = FakeSlack::start("xoxb-the-right-one").await;
    // Hostile answers that echo the secrets back.
    fake.script_text(
        WEBHOOK_PATH,
        404,
        &format!("no_service {WEBHOOK_PATH}"),
        None,
    );
    fake.script_json(
        POST,
        200,
        json!({"ok": false, "error": "invalid_auth", "warning": format!("token {TOKEN} revoked")}),
        None,
    );
    let setup = Setup::new(&format!(
        "{}\n[sinks.api]\ntype = \"slack\"\ninputs = [\"in\"]\n{}\nrate_limit.num = 1000\n",
        webhook(&fake),
        web_api(&fake)
    ));
    let mut howl = setup.start().await;
    post_events_accepted(
        &setup.ingest,
        &json!([alert("disk", "firing", "Disk full")]),
    )
    .await;
    for sink in ["slack", "api"] {
        howl.wait_for_metric(
            "component_errors_total",
            &[
                &format!("component_id=\"{sink}\""),
                "error_type=\"request_rejected\"",
            ],
            1.0,
        )
        .await;
    }
    let output = howl.terminate(Duration::from_secs(20));
    let log = String::from_utf8_lossy(&output.stderr);
    for secret in ["sEcReTwEbHoOkPaTh", "sEcReTtOkEn"] {
        assert!(!log.contains(secret), "`{secret}` leaked:\n{log}");
    }
    for reported in [
        "no_service /***",
        "Slack answered invalid_auth",
        "token *** revoked",
        "healthcheck of the Slack token (auth.test) failed",
    ] {
        assert!(log.contains(reported), "expected `{reported}` in:\n{log}");
    }
}

#[test]
fn exactly_one_way_to_reach_slack_must_be_configured() {
    let dir = tempfile::tempdir().unwrap();
    for (mode, expected) in [
        (
            "",
            "set `webhook_url` (an incoming webhook) or `token` + `channel`",
        ),
        (
            "webhook_url = \"https://hooks.slack.com/services/T/B/X\"\ntoken = \"xoxb-1\"\nchannel = \"C1\"",
            "not both",
        ),
        ("token = \"xoxb-1\"", "`token` needs `channel`"),
        (
            "webhook_url = \"https://hooks.slack.com/services/T/B/X\"\nchannel = \"C1\"",
            "`channel` is for `token`",
        ),
        (
            "webhook_url = \"hooks.slack.com/x\"",
            "invalid URL: relative URL without a base (the URL is a secret, so it is not shown)",
        ),
    ] {
        let path = write(
            dir.path(),
            "bad.toml",
            &format!(
                "[sources.in]\ntype = \"stdin\"\n[sinks.s]\ntype = \"slack\"\ninputs = [\"in\"]\n{mode}\n"
            ),
        );
        let (code, _, stderr) = crate::common::validate(dir.path(), &[path.as_path()]);
        assert_ne!(code, 0, "{mode}");
        assert!(
            stderr.contains(expected),
            "{mode}: expected `{expected}` in\n{stderr}"
        );
        assert!(
            !stderr.contains("services/T/B/X"),
            "a webhook URL in an error:\n{stderr}"
        );
    }
}
