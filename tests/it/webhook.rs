//! The `webhook` sink through the real binary, against receivers on
//! loopback: bodies and Content-Type per encoding, `payload` shaping, auth
//! headers, retries (503, 400, Retry-After), batching, healthchecks, and
//! secrets kept out of howl's logs.

use std::process::Output;
use std::time::{Duration, Instant};

use crate::common::capture::{Capture, Reply};
use crate::common::{Running, free_port, stdin_json, write};

const LIMIT: Duration = Duration::from_secs(60);

/// One webhook sink named `hook` reading the parsed events.
fn hook(options: &str) -> String {
    stdin_json(&format!(
        "[sinks.hook]\ntype = \"webhook\"\ninputs = [\"parse\"]\n{options}"
    ))
}

/// Runs `howl run` on `config` with `input` on stdin until it exits
/// (bounded); the receivers keep answering meanwhile.
async fn run(config: String, input: &str, extra: &[&str]) -> Output {
    let input = input.to_string();
    let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let dir = tempfile::tempdir().expect("temp dir");
        write(dir.path(), "topology.toml", &config);
        let mut args = vec!["run", "-c", "topology.toml"];
        args.extend(extra.iter().map(String::as_str));
        crate::common::run_with_input(&args, dir.path(), input.as_bytes(), LIMIT)
    })
    .await
    .expect("howl runner")
}

/// Like [`run`], and asserts that howl exited 0; returns its stderr.
async fn run_ok(config: String, input: &str) -> String {
    let output = run(config, input, &[]).await;
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "howl failed:\n{stderr}");
    stderr
}

/// Like [`run`], for input some of which the sink cannot deliver: stdin
/// waits for every line's fate, so howl exits 1 and says how many lines
/// were not delivered. Returns its stderr.
async fn run_undelivered(config: String, input: &str, read: usize) -> String {
    let output = run(config, input, &[]).await;
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("not every line of the {read} read was delivered")),
        "howl says what was not delivered:\n{stderr}"
    );
    stderr
}

const THREE: &str =
    "{\"message\":\"a\",\"n\":1}\n{\"message\":\"b\",\"n\":2}\n{\"message\":\"c\",\"n\":3}\n";

#[tokio::test]
async fn json_posts_each_event_on_its_own_with_content_type_and_user_agent() {
    let receiver = Capture::start(vec![]).await;
    run_ok(hook(&format!("uri = \"{}/hooks/a\"", receiver.base)), THREE).await;
    let seen = receiver.requests();
    let bodies: Vec<String> = seen.iter().map(|r| r.text()).collect();
    assert_eq!(
        bodies,
        [
            r#"{"message":"a","n":1}"#,
            r#"{"message":"b","n":2}"#,
            r#"{"message":"c","n":3}"#
        ],
        "one request per event, in order"
    );
    for request in &seen {
        assert_eq!(request.method, "POST");
        assert_eq!(request.path, "/hooks/a");
        assert_eq!(request.header("content-type"), "application/json");
        assert_eq!(
            request.header("user-agent"),
            concat!("howl/", env!("CARGO_PKG_VERSION"))
        );
    }
}

#[tokio::test]
async fn ndjson_sends_batches_of_max_events_with_the_chosen_method() {
    let receiver = Capture::start(vec![]).await;
    run_ok(
        hook(&format!(
            "uri = \"{}/bulk\"\nmethod = \"put\"\nencoding = \"ndjson\"\nbatch.max_events = 2\nbatch.timeout_secs = 30",
            receiver.base
        )),
        THREE,
    )
    .await;
    let seen = receiver.requests();
    let bodies: Vec<String> = seen.iter().map(|r| r.text()).collect();
    assert_eq!(
        bodies,
        [
            "{\"message\":\"a\",\"n\":1}\n{\"message\":\"b\",\"n\":2}\n",
            "{\"message\":\"c\",\"n\":3}\n"
        ],
        "a full batch at once, the rest when the input ends"
    );
    for request in &seen {
        assert_eq!(request.method, "PUT");
        assert_eq!(request.header("content-type"), "application/x-ndjson");
    }
}

#[tokio::test]
async fn json_array_sends_one_array_per_batch() {
    let receiver = Capture::start(vec![]).await;
    run_ok(
        hook(&format!(
            "uri = \"{}/bulk\"\nencoding = \"json_array\"\nbatch.timeout_secs = 30",
            receiver.base
        )),
        THREE,
    )
    .await;
    let seen = receiver.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        seen[0].text(),
        r#"[{"message":"a","n":1},{"message":"b","n":2},{"message":"c","n":3}]"#
    );
    assert_eq!(seen[0].header("content-type"), "application/json");
}

#[tokio::test]
async fn payload_shapes_each_document_and_skips_events_it_fails_on() {
    let receiver = Capture::start(vec![]).await;
    let stderr = run_undelivered(
        hook(&format!(
            "uri = \"{}/chat\"\nencoding = \"json_array\"\nbatch.timeout_secs = 30\n\
             payload = '{{\"text\": upcase(string!(.message)), \"n\": .n}}'",
            receiver.base
        )),
        "{\"message\":\"disk full\",\"n\":1}\n{\"message\":5}\n{\"message\":\"db down\",\"n\":3}\n",
        3,
    )
    .await;
    let seen = receiver.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        seen[0].text(),
        r#"[{"n":1,"text":"DISK FULL"},{"n":3,"text":"DB DOWN"}]"#
    );
    assert!(
        stderr.contains("script_failed") && stderr.contains("`payload` failed"),
        "the failing event is reported:\n{stderr}"
    );
}

#[tokio::test]
async fn bearer_basic_and_custom_headers_reach_the_receiver() {
    let receiver = Capture::start(vec![]).await;
    let base = &receiver.base;
    run_ok(
        stdin_json(&format!(
            "[sinks.bearer]\ntype = \"webhook\"\ninputs = [\"parse\"]\nuri = \"{base}/bearer\"\n\
             auth.strategy = \"bearer\"\nauth.token = \"t0ken-123\"\nheaders.X-Tenant = \"acme\"\n\
             [sinks.basic]\ntype = \"webhook\"\ninputs = [\"parse\"]\nuri = \"{base}/basic\"\n\
             auth = {{ strategy = \"basic\", user = \"am\", password = \"secret\" }}\n\
             headers.Content-Type = \"application/vnd.acme+json\"\n"
        )),
        "{\"message\":\"a\"}\n",
    )
    .await;
    let seen = receiver.requests();
    let at = |path: &str| {
        seen.iter()
            .find(|r| r.path == path)
            .unwrap_or_else(|| panic!("no request to {path}: {seen:?}"))
    };
    assert_eq!(at("/bearer").header("authorization"), "Bearer t0ken-123");
    assert_eq!(at("/bearer").header("x-tenant"), "acme");
    assert_eq!(at("/basic").header("authorization"), "Basic YW06c2VjcmV0");
    assert_eq!(
        at("/basic").header("content-type"),
        "application/vnd.acme+json",
        "headers override the encoding's Content-Type"
    );
}

#[tokio::test]
async fn request_concurrency_overlaps_requests_and_the_default_of_one_keeps_them_in_order() {
    let slow = || {
        (0..3)
            .map(|_| Reply::status(200).delay(Duration::from_millis(400)))
            .collect()
    };
    let spread = |receiver: &Capture| {
        let seen = receiver.requests();
        assert_eq!(seen.len(), 3);
        seen[2].at - seen[0].at
    };
    let parallel = Capture::start(slow()).await;
    run_ok(
        hook(&format!(
            "uri = \"{}/h\"\nrequest.concurrency = 3",
            parallel.base
        )),
        THREE,
    )
    .await;
    let spread_parallel = spread(&parallel);
    assert!(
        spread_parallel < Duration::from_millis(350),
        "3 slots: all three requests were in flight at once, not one after another ({spread_parallel:?})"
    );

    let serial = Capture::start(slow()).await;
    run_ok(hook(&format!("uri = \"{}/h\"", serial.base)), THREE).await;
    let spread_serial = spread(&serial);
    assert!(
        spread_serial >= Duration::from_millis(780),
        "one slot: each request waits for the previous answer ({spread_serial:?})"
    );
    let order: Vec<i64> = serial
        .requests()
        .iter()
        .map(|r| r.json()["n"].as_i64().unwrap())
        .collect();
    assert_eq!(order, [1, 2, 3]);
}

#[tokio::test]
async fn retries_503_then_delivers_the_same_body() {
    let receiver = Capture::start(vec![Reply::status(503), Reply::status(503)]).await;
    run_ok(
        hook(&format!(
            "uri = \"{}/h\"\nretry.initial_backoff_secs = 0.05\nretry.max_backoff_secs = 0.1",
            receiver.base
        )),
        "{\"message\":\"a\"}\n",
    )
    .await;
    let bodies: Vec<String> = receiver.requests().iter().map(|r| r.text()).collect();
    assert_eq!(bodies, [r#"{"message":"a"}"#; 3], "two 503s, then 200");
}

#[tokio::test]
async fn never_retries_a_400_and_logs_the_answer() {
    let receiver = Capture::start(vec![
        Reply::status(400).body("invalid_payload: missing text"),
    ])
    .await;
    let stderr = run_undelivered(
        hook(&format!(
            "uri = \"{}/h\"\nretry.initial_backoff_secs = 0.01\nretry.max_backoff_secs = 0.01",
            receiver.base
        )),
        "{\"message\":\"a\"}\n{\"message\":\"b\"}\n",
        2,
    )
    .await;
    let bodies: Vec<String> = receiver.requests().iter().map(|r| r.text()).collect();
    assert_eq!(
        bodies,
        [r#"{"message":"a"}"#, r#"{"message":"b"}"#],
        "the refused request is not sent again; the next one goes out"
    );
    assert!(
        stderr.contains("400") && stderr.contains("invalid_payload: missing text"),
        "the refusal and the start of its answer are logged:\n{stderr}"
    );
}

#[tokio::test]
async fn honours_retry_after() {
    let receiver = Capture::start(vec![Reply::status(429).header("retry-after", "1")]).await;
    run_ok(
        hook(&format!(
            "uri = \"{}/h\"\nretry.initial_backoff_secs = 0.01\nretry.max_backoff_secs = 0.01",
            receiver.base
        )),
        "{\"message\":\"a\"}\n",
    )
    .await;
    let seen = receiver.requests();
    assert_eq!(seen.len(), 2);
    let gap = seen[1].at - seen[0].at;
    assert!(
        gap >= Duration::from_millis(950) && gap < Duration::from_secs(5),
        "Retry-After: 1 was not honoured (backoff alone is 10 ms): waited {gap:?}"
    );
}

#[tokio::test]
async fn a_partial_batch_goes_out_at_once_when_nothing_else_waits() {
    let receiver = Capture::start(vec![]).await;
    let (_dir, mut howl, url) = Running::with_http_source(&format!(
        "[sinks.hook]\ntype = \"webhook\"\ninputs = [\"in\"]\nuri = \"{}/h\"\n\
         encoding = \"ndjson\"\nbatch.max_events = 100\nbatch.timeout_secs = 0.5\n\
         payload = '.message'\n",
        receiver.base
    ))
    .await;
    let posted = Instant::now();
    let response = crate::common::client()
        .post(&url)
        .body("one\ntwo\n")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let seen = receiver.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(seen[0].text(), "\"one\"\n\"two\"\n");
    let waited = seen[0].at - posted;
    assert!(
        waited < Duration::from_millis(450),
        "a 2-event batch of max 100 with nothing else waiting goes out at once, not after \
         the 0.5 s timeout: {waited:?}"
    );
    // Wait off the runtime: the receiver runs on it and must keep answering
    // while howl drains.
    let output = tokio::task::spawn_blocking(move || howl.terminate(Duration::from_secs(20)))
        .await
        .expect("terminate");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(receiver.requests().len(), 1);
}

#[tokio::test]
async fn healthcheck_sends_head_and_a_required_failure_stops_howl() {
    let receiver = Capture::start(vec![Reply::status(503)]).await;
    let output = run(
        hook(&format!(
            // A path of 3 characters, too short to be hidden in messages
            // (every longer piece of a secret URL is, even a plain word
            // such as `health`).
            "uri = \"{0}/h\"\nhealthcheck.uri = \"{0}/up\"\nhealthcheck.required = true\n\
             auth.strategy = \"bearer\"\nauth.token = \"t0ken-123\"",
            receiver.base
        )),
        "{\"message\":\"a\"}\n",
        &[],
    )
    .await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("healthcheck of the webhook receiver failed: HTTP 503"),
        "{stderr}"
    );
    let seen = receiver.requests();
    assert_eq!(
        seen.len(),
        1,
        "nothing is sent after a failed required check"
    );
    assert_eq!(seen[0].method, "HEAD");
    assert_eq!(seen[0].path, "/up");
    assert_eq!(seen[0].header("authorization"), "Bearer t0ken-123");
}

#[tokio::test]
async fn secrets_never_reach_the_logs_when_delivery_fails() {
    /// The `hook` sink's secrets, which its receiver echoes back.
    const HOOK_SECRETS: [&str; 5] = [
        "SECRET-PATH-TOKEN",
        "SECRET-QUERY",
        "SECRET-HEADER-VALUE",
        "SECRET-BEARER",
        "SECRET-CHECK-PATH",
    ];
    let echo = format!("denied; you sent {}", HOOK_SECRETS.join(" "));
    let receiver = Capture::start(vec![
        Reply::status(500).body(&echo),
        Reply::status(401).body(&echo),
    ])
    .await;
    let dead = free_port();
    let base = &receiver.base;
    let output = run(
        stdin_json(&format!(
            "[sinks.hook]\ntype = \"webhook\"\ninputs = [\"parse\"]\n\
             uri = \"{base}/hooks/SECRET-PATH-TOKEN?key=SECRET-QUERY\"\n\
             headers.X-Api-Key = \"SECRET-HEADER-VALUE\"\n\
             auth.strategy = \"bearer\"\nauth.token = \"SECRET-BEARER\"\n\
             healthcheck.uri = \"{base}/SECRET-CHECK-PATH\"\n\
             [sinks.dead]\ntype = \"webhook\"\ninputs = [\"parse\"]\n\
             uri = \"http://127.0.0.1:{dead}/hooks/SECRET-DEAD-PATH\"\n\
             retry.initial_backoff_secs = 0.05\nretry.max_backoff_secs = 0.1\nretry.max_duration_secs = 0.5\n"
        )),
        "{\"message\":\"a\"}\n",
        &["-vv"],
    )
    .await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    // The refused events are not delivered: stdin says so with exit 1.
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("was delivered: "), "{stderr}");
    assert_eq!(
        receiver.requests().len(),
        2,
        "the check and one refused POST"
    );
    // The failures were logged, with the receiver's answer...
    assert!(
        stderr.contains("healthcheck of the webhook receiver failed"),
        "{stderr}"
    );
    assert!(
        stderr.contains("401") && stderr.contains("denied; you sent"),
        "{stderr}"
    );
    assert!(stderr.contains("gave up after"), "{stderr}");
    // ...and without a single secret, even the ones the receiver echoed.
    for secret in HOOK_SECRETS.iter().chain(&["SECRET-DEAD-PATH"]) {
        assert!(!stderr.contains(secret), "{secret} leaked:\n{stderr}");
    }
}

#[tokio::test]
async fn secret_url_pieces_never_reach_the_logs_even_as_plain_words() {
    // Every piece of a webhook URL's path and query is secret because the
    // URL is, whatever it looks like: here they are ordinary words, which
    // the receiver echoes one by one.
    const PIECES: [&str; 4] = ["alerts", "notify", "general", "orange"];
    let echo = "unknown channel general (route alerts/notify, key orange)";
    let receiver = Capture::start(vec![Reply::status(404).body(echo)]).await;
    let output = run(
        hook(&format!(
            "uri = \"{}/alerts/notify?channel=general&key=orange\"",
            receiver.base
        )),
        "{\"message\":\"a\"}\n",
        &["-vv"],
    )
    .await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    // The refused events are not delivered: stdin says so with exit 1.
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("was delivered: "), "{stderr}");
    assert_eq!(receiver.requests().len(), 1, "one refused POST");
    assert!(
        stderr.contains("unknown channel *** (route ***/***, key ***)"),
        "the answer is logged, its secret pieces hidden:\n{stderr}"
    );
    for piece in PIECES {
        assert!(!stderr.contains(piece), "`{piece}` leaked:\n{stderr}");
    }
}

#[test]
fn validate_reports_auth_and_payload_mistakes_in_the_config() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "hooks.toml",
        "[sources.in]\ntype = \"stdin\"\n\
         [sinks.both]\ntype = \"webhook\"\ninputs = [\"in\"]\nuri = \"http://127.0.0.1:1/h\"\n\
         auth.strategy = \"bearer\"\nauth.token = \"t\"\nheaders.Authorization = \"Bearer x\"\n\
         [sinks.typo]\ntype = \"webhook\"\ninputs = [\"in\"]\nuri = \"http://127.0.0.1:1/h\"\n\
         auth.strategy = \"basic\"\nauth.usr = \"am\"\n\
         [sinks.vrl]\ntype = \"webhook\"\ninputs = [\"in\"]\nuri = \"http://127.0.0.1:1/h\"\n\
         payload = '{\"text\": upcase(.message)}'\n",
    );
    let (code, _, stderr) = crate::common::validate(dir.path(), &[&file]);
    assert_eq!(code, 78, "{stderr}");
    assert!(
        stderr.contains("hooks.toml:9:25: sinks.both")
            && stderr.contains("`Authorization` header in `headers`, not both"),
        "the error points at the header:\n{stderr}"
    );
    assert!(
        stderr.contains("unknown option `auth.usr`") && stderr.contains("did you mean `auth.user`"),
        "{stderr}"
    );
    assert!(
        stderr.contains("hooks.toml:20:") && stderr.contains("VRL error in `payload`"),
        "the VRL error points at its line in the config file:\n{stderr}"
    );
}

#[tokio::test]
async fn alertmanager_webhook_encoding_speaks_alertmanagers_receiver_format() {
    let receiver = Capture::start(vec![]).await;
    let events = concat!(
        r#"{"message":"disk full","host":"web-1","pattern":{"id":"0123456789abcdef","template":"disk full","level":"error"}}"#,
        "\n",
        r#"{"host":"web-2","alert":{"name":"HighCpu","key":"HighCpu/web-2","state":"resolved","severity":"warning","summary":"CPU back to 40%","started_at":"2026-11-22T07:55:00Z","fired_at":"2026-11-22T08:00:00Z","resolved_at":"2026-11-22T08:07:00Z"}}"#,
        "\n",
    );
    run_ok(
        hook(&format!(
            "uri = \"{}/alert\"\nencoding = \"alertmanager_webhook\"\nbatch.max_events = 10\nlabels.team = \"ops\"",
            receiver.base
        )),
        events,
    )
    .await;
    let seen = receiver.requests();
    assert_eq!(seen.len(), 1, "one notification per batch");
    assert_eq!(seen[0].header("content-type"), "application/json");
    let body = seen[0].json();
    assert_eq!(body["version"], "4");
    assert_eq!(body["receiver"], "hook");
    assert_eq!(body["status"], "firing");
    assert_eq!(body["commonLabels"], serde_json::json!({"team": "ops"}));
    let alerts = body["alerts"].as_array().unwrap();
    assert_eq!(alerts.len(), 2);
    assert_eq!(alerts[0]["status"], "firing");
    assert_eq!(alerts[0]["labels"]["alertname"], "HowlNewPattern");
    assert_eq!(alerts[0]["labels"]["pattern_id"], "0123456789abcdef");
    assert_eq!(alerts[0]["endsAt"], "0001-01-01T00:00:00Z");
    let labels: std::collections::BTreeMap<String, String> =
        serde_json::from_value(alerts[0]["labels"].clone()).unwrap();
    assert_eq!(
        alerts[0]["fingerprint"],
        howl::sinks::alertmanager::fingerprint(&labels)
    );
    assert_eq!(alerts[1]["status"], "resolved");
    assert_eq!(alerts[1]["labels"]["alertname"], "HighCpu");
    assert_eq!(alerts[1]["annotations"]["summary"], "CPU back to 40%");
    assert_eq!(
        alerts[1]["startsAt"], "2026-11-22T08:00:00.000Z",
        "the episode's start (when it fired), as on its firing"
    );
    assert_eq!(
        alerts[1]["endsAt"], "2026-11-22T08:07:00.000Z",
        "when it resolved"
    );
}

#[test]
fn alertmanager_webhook_options_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let check = |options: &str, expected: &str| {
        write(
            dir.path(),
            "a.toml",
            &hook(&format!("uri = \"http://127.0.0.1:9/x\"\n{options}")),
        );
        let (code, _, stderr) =
            crate::common::howl_in(dir.path(), &["validate", "-c", "a.toml"], &[]);
        assert_eq!(code, 78, "{stderr}");
        assert!(
            stderr.contains(expected),
            "expected {expected:?} in {stderr}"
        );
    };
    check(
        "encoding = \"alertmanager_webhook\"\npayload = '{\"x\": 1}'",
        "`payload` does not apply with `encoding = \"alertmanager_webhook\"`",
    );
    check(
        "labels.team = \"ops\"",
        "`labels` and `annotations` apply only with",
    );
    check(
        "encoding = \"alertmanager_webhook\"\nlabels.\"bad-name\" = \"x\"",
        "label name `bad-name` is not valid",
    );
}

/// Request durations are documented as a histogram, and Prometheus must be
/// able to aggregate them across instances: `/metrics` exposes buckets, not
/// a summary's quantiles.
#[tokio::test]
async fn request_durations_are_exposed_as_a_histogram_with_buckets() {
    let receiver = Capture::start(vec![]).await;
    let dir = tempfile::tempdir().unwrap();
    let api = free_port();
    let config = write(
        dir.path(),
        "topology.toml",
        &format!(
            "[api]\nenabled = true\naddress = \"127.0.0.1:{api}\"\n\
             [sources.demo]\ntype = \"demo_logs\"\ninterval = 0.05\n\
             [sinks.hook]\ntype = \"webhook\"\ninputs = [\"demo\"]\nuri = \"{}/h\"\n",
            receiver.base
        ),
    );
    let howl = Running::start(dir.path(), &config, api, &[]).await;
    howl.wait_for_metric(
        "http_client_requests_total",
        &["component_id=\"hook\"", "status=\"2xx\""],
        3.0,
    )
    .await;
    let text = howl.metrics().await;
    let name = "http_client_request_duration_seconds";
    assert!(text.contains(&format!("# TYPE {name} histogram")), "{text}");
    let buckets: Vec<&str> = text
        .lines()
        .filter(|line| line.starts_with(&format!("{name}_bucket{{")))
        .collect();
    assert!(
        buckets.iter().any(|l| l.contains("le=\"0.005\""))
            && buckets.iter().any(|l| l.contains("le=\"+Inf\"")),
        "{buckets:#?}"
    );
    assert!(
        crate::common::metric(&text, &format!("{name}_count"), &["component_id=\"hook\""])
            .is_some_and(|count| count >= 3.0),
        "{text}"
    );
    assert!(
        !text.contains(&format!("{name}{{quantile=")),
        "no summary: {text}"
    );
}
