//! `http_server` answers what happened to each request: 200 accepted, 400
//! undecodable, 401 unauthenticated, 413 too large, 503 + Retry-After when
//! the pipeline is full (and then nothing of the request was accepted).

use std::time::Duration;

use crate::common::{Running, free_port, metric, tcp, write};

async fn start(sink: &str, source_extra: &str) -> (tempfile::TempDir, Running, String) {
    let dir = tempfile::tempdir().unwrap();
    let (api, http) = (free_port(), free_port());
    let config = write(
        dir.path(),
        "a.toml",
        &format!(
            "[api]\nenabled = true\naddress = \"127.0.0.1:{api}\"\n\
             [sources.in]\ntype = \"http_server\"\naddress = \"127.0.0.1:{http}\"\npath = \"/ingest\"\n{source_extra}\n\
             {sink}"
        ),
    );
    let howl = Running::start(dir.path(), &config, api, &[]).await;
    (dir, howl, format!("http://127.0.0.1:{http}/ingest"))
}

#[tokio::test]
async fn accepts_decodes_and_rejects_with_the_right_status() {
    let (dir, mut howl, url) = start(
        "[sinks.out]\ntype = \"file\"\ninputs = [\"in\"]\npath = \"out.log\"\n",
        "decoding = \"ndjson\"\nmax_body_bytes = 1000\nauth.token = \"s3cret\"",
    )
    .await;
    let client = crate::common::client();
    let post = |body: &'static str, token: Option<&str>| {
        let mut request = client.post(&url).body(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };

    let ok = post("{\"a\":1}\n{\"a\":2}\n", Some("s3cret"))
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(
        ok.json::<serde_json::Value>().await.unwrap(),
        serde_json::json!({"accepted": 2})
    );

    let bad = post("{\"a\":1}\n{oops\n", Some("s3cret")).await.unwrap();
    assert_eq!(bad.status(), 400);
    let error: serde_json::Value = bad.json().await.unwrap();
    assert!(
        error["error"]
            .as_str()
            .unwrap()
            .contains("invalid JSON on line 2"),
        "{error}"
    );

    let anonymous = post("{\"a\":1}\n", None).await.unwrap();
    assert_eq!(anonymous.status(), 401);
    assert_eq!(anonymous.headers()["www-authenticate"], "Bearer");
    let wrong = post("{\"a\":1}\n", Some("guess")).await.unwrap();
    assert_eq!(wrong.status(), 401);

    let big = client
        .post(&url)
        .bearer_auth("s3cret")
        .body(format!("{{\"a\":\"{}\"}}", "x".repeat(5000)))
        .send()
        .await
        .unwrap();
    assert_eq!(big.status(), 413);
    assert!(big.json::<serde_json::Value>().await.unwrap()["error"].is_string());

    let elsewhere = client
        .post(url.replace("/ingest", "/other"))
        .send()
        .await
        .unwrap();
    assert_eq!(elsewhere.status(), 404);
    let get = client.get(&url).send().await.unwrap();
    assert_eq!(get.status(), 405);

    let output = howl.terminate(Duration::from_secs(20));
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let written = std::fs::read_to_string(dir.path().join("out.log")).unwrap();
    assert_eq!(
        written.lines().count(),
        2,
        "only the accepted request's events: {written}"
    );
}

#[tokio::test]
async fn answers_503_with_retry_after_when_the_pipeline_is_full() {
    let (_dir, howl, url) = start(
        "[sinks.slow]\ntype = \"blackhole\"\ninputs = [\"in\"]\nrate = 1\nbuffer.max_events = 1\n",
        "ack_timeout_secs = 2",
    )
    .await;
    let client = crate::common::client();
    // Each request is 10 events: the sink needs 10 s per request, so after
    // one request in the sink and one in its buffer, the buffer stays full.
    let body: String = (0..10).map(|i| format!("line {i}\n")).collect();
    let mut requests = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let request = client.post(&url).body(body.clone());
        requests.spawn(async move {
            let response = request.send().await.unwrap();
            let retry_after = response.headers().get("retry-after").cloned();
            let status = response.status().as_u16();
            (
                status,
                retry_after,
                response.text().await.unwrap_or_default(),
            )
        });
    }
    let answers = requests.join_all().await;
    let full: Vec<_> = answers
        .iter()
        .filter(|(_, _, text)| text.contains("the pipeline is full"))
        .collect();
    assert!(
        !full.is_empty(),
        "a full pipeline must answer 503: {answers:?}"
    );
    for (status, retry_after, _) in &full {
        assert_eq!(*status, 503);
        assert_eq!(retry_after.as_ref().unwrap(), "1");
    }
    assert!(
        answers.iter().any(|(status, ..)| *status == 200),
        "the first request is taken: {answers:?}"
    );
    let text = howl.metrics().await;
    let accepted = 10.0 * (answers.len() - full.len()) as f64;
    let sent = metric(
        &text,
        "component_sent_events_total",
        &["component_id=\"in\""],
    )
    .unwrap();
    assert_eq!(
        sent, accepted,
        "\"pipeline full\" answers must not let any event through"
    );
}

#[tokio::test]
async fn malformed_bodies_are_400_oversized_streams_413_and_the_scheme_is_case_insensitive() {
    let (_dir, mut howl, url) = start(
        "[sinks.out]\ntype = \"blackhole\"\ninputs = [\"in\"]\n",
        "max_body_bytes = 100\nauth.token = \"s3cret\"",
    )
    .await;
    let head = "POST /ingest HTTP/1.1\r\nhost: x\r\nauthorization: bearer s3cret\r\n";
    let limit = Duration::from_secs(10);
    let address = tcp::authority(&url);
    let ok = format!("{head}content-length: 5\r\n\r\nhello");
    assert_eq!(
        tcp::status(&address, ok.as_bytes(), limit).await,
        200,
        "`bearer` is `Bearer`"
    );
    let malformed = format!("{head}transfer-encoding: chunked\r\n\r\nZZ\r\nabc\r\n0\r\n\r\n");
    assert_eq!(
        tcp::status(&address, malformed.as_bytes(), limit).await,
        400
    );
    let long = "x".repeat(200);
    let chunked = format!(
        "{head}transfer-encoding: chunked\r\n\r\n{:x}\r\n{long}\r\n0\r\n\r\n",
        long.len()
    );
    assert_eq!(
        tcp::status(&address, chunked.as_bytes(), limit).await,
        413,
        "over max_body_bytes without a content-length"
    );
    let output = howl.terminate(Duration::from_secs(20));
    assert!(output.status.success());
}

#[tokio::test]
async fn a_client_stalled_mid_body_does_not_hold_up_shutdown() {
    let (_dir, mut howl, url) =
        start("[sinks.out]\ntype = \"blackhole\"\ninputs = [\"in\"]\n", "").await;
    let stalled = tcp::send(
        &tcp::authority(&url),
        b"POST /ingest HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\nabc",
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = std::time::Instant::now();
    let output = tokio::task::spawn_blocking(move || howl.terminate(Duration::from_secs(30)))
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "shutdown waited {:?} for a stalled client",
        started.elapsed()
    );
    drop(stalled);
}

/// Every HTTP source serves HTTPS from its `tls` cert and key files: a
/// client trusting the CA delivers, one speaking plain HTTP to the port
/// gets nothing in.
#[tokio::test]
async fn every_http_source_serves_https_from_its_certificate_files() {
    let dir = tempfile::tempdir().unwrap();
    crate::syslog::make_certificates(dir.path());
    let (api, http, loki, alerts) = (free_port(), free_port(), free_port(), free_port());
    let tls = "tls.crt_file = \"crt.pem\"\ntls.key_file = \"key.pem\"";
    let config = write(
        dir.path(),
        "a.toml",
        &format!(
            "[api]\nenabled = true\naddress = \"127.0.0.1:{api}\"\n\
             [sources.http]\ntype = \"http_server\"\naddress = \"127.0.0.1:{http}\"\n{tls}\n\
             [sources.loki]\ntype = \"loki\"\naddress = \"127.0.0.1:{loki}\"\n{tls}\n\
             [sources.alerts]\ntype = \"alert_webhook\"\naddress = \"127.0.0.1:{alerts}\"\n{tls}\n\
             [sinks.out]\ntype = \"file\"\ninputs = [\"http\", \"loki\", \"alerts\"]\npath = \"out.log\"\n\
             encoding = \"json\"\n"
        ),
    );
    let mut howl = Running::start(dir.path(), &config, api, &[]).await;
    let _ = crate::common::client();
    let ca =
        reqwest::Certificate::from_pem(&std::fs::read(dir.path().join("ca.pem")).unwrap()).unwrap();
    let client = reqwest::Client::builder()
        .tls_certs_only([ca])
        .build()
        .unwrap();
    let posts = [
        (http, "/", "{\"message\": \"over https\"}".to_string(), 200),
        (
            loki,
            "/loki/api/v1/push",
            format!(
                "{{\"streams\": [{{\"stream\": {{\"job\": \"j\"}}, \"values\": [[\"{}\", \"loki over https\"]]}}]}}",
                1_700_000_000_000_000_000u64
            ),
            204,
        ),
        (
            alerts,
            "/",
            "{\"alerts\": [{\"labels\": {\"alertname\": \"OverHttps\"}}]}".to_string(),
            200,
        ),
    ];
    for (port, path, body, status) in posts {
        let url = format!("https://127.0.0.1:{port}{path}");
        let answer = client
            .post(&url)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap_or_else(|e| panic!("{url}: {e:?}"));
        assert_eq!(answer.status(), status, "{url}");
        let plain = crate::common::client()
            .post(format!("http://127.0.0.1:{port}{path}"))
            .body(body)
            .timeout(Duration::from_secs(5))
            .send()
            .await;
        assert!(plain.is_err(), "plain HTTP to a TLS port: {plain:?}");
    }
    let out = std::fs::read_to_string(dir.path().join("out.log")).unwrap();
    for expected in ["over https", "loki over https", "OverHttps"] {
        assert!(out.contains(expected), "{expected} missing from {out}");
    }
    assert_eq!(out.lines().count(), 3, "{out}");
    let output = howl.terminate(Duration::from_secs(20));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("TLS handshake with 127.0.0.1:") && stderr.contains("failed"),
        "the plain-text clients are logged: {stderr}"
    );
}

/// A large body is decoded off the async threads (over 64 KiB) and
/// accepted whole, like a small one.
#[tokio::test]
async fn a_large_body_is_accepted_whole() {
    let (dir, mut howl, url) = start(
        "[sinks.out]\ntype = \"file\"\ninputs = [\"in\"]\npath = \"out.log\"\n",
        "decoding = \"ndjson\"",
    )
    .await;
    let body: String = (0..5_000)
        .map(|i| format!("{{\"message\": \"line {i} {}\"}}\n", "x".repeat(40)))
        .collect();
    assert!(body.len() > 128 * 1024);
    let answer = crate::common::client()
        .post(&url)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(
        answer.json::<serde_json::Value>().await.unwrap(),
        serde_json::json!({"accepted": 5000})
    );
    let out = std::fs::read_to_string(dir.path().join("out.log")).unwrap();
    assert_eq!(out.lines().count(), 5000);
    howl.terminate(Duration::from_secs(20));
}
