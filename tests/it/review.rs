//! `howl review` and `howl rules` on a store with known changes, the
//! scheduled `review` source posting its digest to a (fake) Telegram chat
//! with a button per suggestion, and applying a suggestion.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::common::{Running, free_port, get_json, howl_in, run_with_input, write};
use crate::fake_telegram::FakeTelegram;

const STDIN_PATTERNS: &str = "data_dir = \"data\"\n[sources.in]\ntype = \"stdin\"\n\
    [transforms.patterns]\ntype = \"pattern\"\ninputs = [\"in\"]\n\
    [sinks.out]\ntype = \"blackhole\"\ninputs = [\"patterns\"]\n";

/// Feeds `lines` through the pattern transform into `dir`'s store.
fn feed(dir: &Path, lines: &[(&str, usize)]) {
    let input: String = lines
        .iter()
        .flat_map(|(line, n)| std::iter::repeat_n(format!("{line}\n"), *n))
        .collect();
    let output = run_with_input(
        &["-q", "run", "-c", "patterns.toml"],
        dir,
        input.as_bytes(),
        Duration::from_secs(30),
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn review_json(dir: &Path) -> Value {
    let (code, stdout, stderr) = howl_in(
        dir,
        &["review", "--data-dir", "data", "--json", "--commit"],
        &[],
    );
    assert_eq!(code, 0, "{stderr}");
    serde_json::from_str(&stdout).unwrap()
}

fn templates(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|i| i["template"].as_str().unwrap().to_string())
        .collect()
}

const DAY: [(&str, usize); 3] = [
    ("INFO health check ok", 50),
    ("INFO backup finished in 42 seconds", 5),
    ("WARN cache miss for key 17", 10),
];

#[tokio::test]
async fn a_review_reports_exactly_what_changed_and_its_suggestions_apply() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "patterns.toml", STDIN_PATTERNS);
    feed(dir.path(), &DAY);
    let first = review_json(dir.path());
    assert_eq!(
        first["spaces"][0]["new"].as_array().unwrap().len(),
        3,
        "no baseline yet"
    );
    feed(dir.path(), &DAY);
    let quiet = review_json(dir.path());
    assert!(
        quiet["spaces"][0]["new"].as_array().unwrap().is_empty(),
        "{quiet:#}"
    );
    feed(
        dir.path(),
        &[
            ("INFO health check ok", 50),
            ("WARN cache miss for key 17", 400),
            ("ERROR payment service refused connection to 10.0.0.7", 3),
        ],
    );
    // Without --commit, a review only looks: the baseline stays.
    let (code, text, _) = howl_in(dir.path(), &["review", "--data-dir", "data"], &[]);
    assert_eq!(code, 0);
    assert!(
        text.contains("Gone quiet:") && text.contains("Spiking:"),
        "{text}"
    );
    let day = review_json(dir.path());
    let space = &day["spaces"][0];
    assert_eq!(
        templates(&space["gone"]),
        ["INFO backup finished in <NUM> seconds"]
    );
    assert_eq!(
        templates(&space["spiking"]),
        ["WARN cache miss for key <NUM>"]
    );
    let new = templates(&space["new"]);
    assert_eq!(new.len(), 1);
    assert!(
        new[0].starts_with("ERROR payment service refused connection"),
        "{new:?}"
    );
    let suggestions = space["suggestions"].as_array().unwrap();
    let always = suggestions
        .iter()
        .find(|s| s["kind"] == "always_alert")
        .expect("always alert on the new error");

    // A running howl on the same store: the suggestion is listed and
    // applied over the API, and the trail says so.
    let (api, http) = (free_port(), free_port());
    let config = write(
        dir.path(),
        "running.toml",
        &format!(
            "data_dir = \"data\"\n[api]\nenabled = true\naddress = \"127.0.0.1:{api}\"\n\
             [sources.in]\ntype = \"http_server\"\naddress = \"127.0.0.1:{http}\"\n\
             [sinks.out]\ntype = \"blackhole\"\ninputs = [\"in\"]\n"
        ),
    );
    let mut howl = Running::start(dir.path(), &config, api, &[]).await;
    let url = format!("http://127.0.0.1:{api}");
    let cwd = dir.path().to_path_buf();
    let id = always["id"].as_str().unwrap().to_string();
    let (list, apply, again) = tokio::task::spawn_blocking(move || {
        (
            howl_in(&cwd, &["rules", "list", "--api", &url], &[]),
            howl_in(&cwd, &["rules", "apply", &id, "--api", &url], &[]),
            howl_in(&cwd, &["rules", "apply", &id, "--api", &url], &[]),
        )
    })
    .await
    .unwrap();
    assert_eq!(list.0, 0, "{}", list.2);
    assert!(
        list.1.contains(always["id"].as_str().unwrap()),
        "{}",
        list.1
    );
    assert_eq!(apply.0, 0, "{}", apply.2);
    assert!(
        apply.1.contains("applied") && apply.1.contains("always_alert"),
        "{}",
        apply.1
    );
    assert_eq!(again.0, 1, "applied once: {}", again.1);
    let decisions: Vec<Value> =
        get_json(format!("http://127.0.0.1:{api}/api/v1/suppressions")).await;
    assert_eq!(decisions[0]["action"], "always_alert");
    assert_eq!(decisions[0]["pattern_id"], always["pattern_id"]);
    howl.terminate(Duration::from_secs(20));
}

#[tokio::test]
async fn the_scheduled_review_posts_its_digest_with_a_button_per_suggestion() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "patterns.toml", STDIN_PATTERNS);
    feed(dir.path(), &DAY);
    let token = "123456:SECRET-token";
    let fake = FakeTelegram::start(token).await;
    let api = free_port();
    let config = write(
        dir.path(),
        "review.toml",
        &format!(
            "data_dir = \"data\"\n[api]\nenabled = true\naddress = \"127.0.0.1:{api}\"\n\
             [sources.review]\ntype = \"review\"\ninterval = \"1s\"\n\
             [sinks.tg]\ntype = \"telegram\"\ninputs = [\"review\"]\nbot_token = \"{token}\"\n\
             chat_id = -100\napi_base = \"{url}\"\nparse_mode = \"none\"\n\
             text = \"{{{{ .message }}}}\"\nactions.allowed_users = [7]\n",
            url = fake.url
        ),
    );
    let mut howl = Running::start(dir.path(), &config, api, &[]).await;
    let sent = fake.wait_calls("sendMessage", 1).await;
    let message = &sent[0].params;
    let text = message["text"].as_str().unwrap();
    assert!(text.starts_with("howl review, "), "{text}");
    assert!(text.contains("\npatterns: 65 lines\n"), "{text}");
    assert!(text.contains("Suggested:"), "{text}");
    // A button per suggestion it can apply: suppressing the health checks.
    let rows = message["reply_markup"]["inline_keyboard"]
        .as_array()
        .unwrap();
    assert!(!rows.is_empty(), "{message:#}");
    assert!(
        rows.iter().any(|row| row[0]["text"]
            .as_str()
            .unwrap()
            .starts_with("Suppress 1d: INFO health check ok")),
        "{rows:?}"
    );
    println!("digest as sent to Telegram:\n{text}\nbuttons: {rows:?}");
    howl.terminate(Duration::from_secs(20));
}
