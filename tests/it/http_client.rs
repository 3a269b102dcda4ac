//! `http_client` against a loopback API that pages numbered items behind
//! an `after` cursor: every item once across a graceful restart, pages
//! followed at once, a 503 retried, the API key kept out of the logs.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::common::{Running, free_port, write};

const KEY: &str = "k-5f8a2c91e7";

#[derive(Default)]
struct Api {
    items: u64,
    requests: Vec<BTreeMap<String, String>>,
    fail_next: bool,
}

async fn events(
    State(api): State<Arc<Mutex<Api>>>,
    headers: HeaderMap,
    Query(params): Query<BTreeMap<String, String>>,
) -> Response {
    let mut api = api.lock().unwrap();
    api.requests.push(params.clone());
    if headers.get("x-api-key").and_then(|v| v.to_str().ok()) != Some(KEY) {
        return (StatusCode::UNAUTHORIZED, "bad key").into_response();
    }
    if std::mem::take(&mut api.fail_next) {
        return (StatusCode::SERVICE_UNAVAILABLE, "busy").into_response();
    }
    let after: u64 = match params.get("after").map(String::as_str) {
        None | Some("") => 0,
        Some(text) => match text.parse() {
            Ok(n) => n,
            Err(_) => return (StatusCode::BAD_REQUEST, "bad cursor").into_response(),
        },
    };
    let items: Vec<_> = (after + 1..=api.items.min(after + 10))
        .map(|n| json!({"n": n, "message": format!("item {n}")}))
        .collect();
    let next = items.last().map(|item| item["n"].clone());
    axum::Json(json!({"items": items, "next": next})).into_response()
}

/// An API that ignores the cursor: the same item every time, with a new
/// `next`.
async fn forever(
    State(api): State<Arc<Mutex<Api>>>,
    Query(params): Query<BTreeMap<String, String>>,
) -> Response {
    let mut api = api.lock().unwrap();
    api.requests.push(params);
    let next = api.requests.len().to_string();
    axum::Json(json!({"items": [{"message": "same"}], "next": next})).into_response()
}

/// Starts the API on its own thread's runtime; returns its state and URL.
fn start_api() -> (Arc<Mutex<Api>>, String) {
    let api = Arc::new(Mutex::new(Api::default()));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://{}/events", listener.local_addr().unwrap());
    let state = Arc::clone(&api);
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            let app = Router::new()
                .route("/events", axum::routing::get(events))
                .route("/forever", axum::routing::get(forever))
                .with_state(state);
            let _ = axum::serve(listener, app).await;
        });
    });
    (api, url)
}

fn counts(text: &str) -> BTreeMap<u64, usize> {
    let mut counts = BTreeMap::new();
    for line in text.lines() {
        let n = line
            .strip_prefix("item ")
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("unexpected line {line:?}"));
        *counts.entry(n).or_default() += 1;
    }
    counts
}

async fn wait_for_items(path: &std::path::Path, items: usize) -> BTreeMap<u64, usize> {
    let start = Instant::now();
    loop {
        let counts = counts(&crate::common::complete_lines(path));
        if counts.len() >= items || start.elapsed() > Duration::from_secs(30) {
            return counts;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follows_the_cursor_across_pages_and_a_restart_without_repeating() {
    let (api, url) = start_api();
    {
        let mut api = api.lock().unwrap();
        api.items = 95;
        api.fail_next = true;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = write(
        dir.path(),
        "api.toml",
        &format!(
            "data_dir = \"state\"\n[api]\nenabled = true\naddress = \"127.0.0.1:{port}\"\n\
             [sources.api]\ntype = \"http_client\"\nendpoint = \"{url}\"\n\
             query = {{ after = \"{{{{ cursor }}}}\" }}\nheaders.X-Api-Key = \"${{API_KEY}}\"\n\
             decode = '. = .items'\ncursor = '.next'\ninterval_secs = 30\n\
             retry.initial_backoff_secs = 0.1\n\
             [sinks.out]\ntype = \"file\"\ninputs = [\"api\"]\npath = \"out.log\"\nencoding = \"text\"\n"
        ),
    );
    let out = dir.path().join("out.log");
    let env = [("API_KEY", KEY)];

    let mut howl = Running::start_with_env(dir.path(), &config, port, &env).await;
    // 10 pages and the 503 before them, in one poll: the interval is 30 s.
    let first_run = wait_for_items(&out, 95).await;
    assert_eq!(first_run.len(), 95, "{}", howl.stderr());
    let output = tokio::task::block_in_place(|| howl.terminate(Duration::from_secs(20)));
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    assert!(output.status.success(), "{stderr}");
    assert!(!stderr.contains(KEY), "the API key was logged: {stderr}");
    {
        let api = api.lock().unwrap();
        let afters: Vec<&str> = api.requests.iter().map(|r| r["after"].as_str()).collect();
        assert_eq!(afters[..3], ["", "", "10"], "retried, then the next page");
    }

    // Items that arrive while howl is down: read from the saved cursor.
    api.lock().unwrap().items = 140;
    let mut howl = Running::start_with_env(dir.path(), &config, port, &env).await;
    wait_for_items(&out, 140).await;
    let output = tokio::task::block_in_place(|| howl.terminate(Duration::from_secs(20)));
    assert!(output.status.success());
    let counts = counts(&std::fs::read_to_string(&out).unwrap());
    let wrong: Vec<_> = (1..=140u64)
        .filter(|n| counts.get(n) != Some(&1))
        .map(|n| (n, counts.get(&n).copied().unwrap_or(0)))
        .collect();
    assert!(wrong.is_empty(), "items not read exactly once: {wrong:?}");
    let api = api.lock().unwrap();
    assert_eq!(
        api.requests.iter().filter(|r| r["after"] == "95").count(),
        2,
        "the restart asked from the saved cursor, 95 (once before the stop, once after)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_that_ignores_the_cursor_is_not_asked_in_an_endless_loop() {
    let (api, url) = start_api();
    let url = url.replace("/events", "/forever");
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = write(
        dir.path(),
        "api.toml",
        &format!(
            "data_dir = \"state\"\n[api]\nenabled = true\naddress = \"127.0.0.1:{port}\"\n\
             [sources.api]\ntype = \"http_client\"\nendpoint = \"{url}\"\n\
             query = {{ after = \"{{{{ cursor }}}}\" }}\n\
             decode = '. = .items'\ncursor = '.next'\ninterval_secs = 600\n\
             [sinks.out]\ntype = \"blackhole\"\ninputs = [\"api\"]\n"
        ),
    );
    let mut howl = Running::start(dir.path(), &config, port, &[]).await;
    let requests = || api.lock().unwrap().requests.len();
    let start = Instant::now();
    while requests() < 1000 && start.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let asked = requests();
    let output = tokio::task::block_in_place(|| howl.terminate(Duration::from_secs(20)));
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    assert_eq!(
        asked, 1000,
        "a poll stops after 1000 answers in a row: {stderr}"
    );
    assert!(
        stderr.contains("does the API honour the cursor?"),
        "{stderr}"
    );
}
