//! The delivery core: how answers are judged, and the delivery loop
//! against a scripted HTTP server on loopback.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::IntoResponse;

use super::*;
use crate::component_key::{ComponentKey, ComponentKind};
use crate::options::Seconds;

/// One scripted answer: status, Retry-After, body, delay before answering.
type Scripted = (u16, Option<&'static str>, &'static str, Duration);

#[derive(Clone, Default)]
struct Script {
    answers: Arc<Mutex<VecDeque<Scripted>>>,
    seen: Arc<Mutex<Vec<(Instant, String)>>>,
}

async fn answer(State(script): State<Script>, body: String) -> impl IntoResponse {
    script.seen.lock().unwrap().push((Instant::now(), body));
    let next = script.answers.lock().unwrap().pop_front();
    let (status, retry, text, delay) = next.unwrap_or((200, None, "", Duration::ZERO));
    tokio::time::sleep(delay).await;
    let mut headers = HeaderMap::new();
    if let Some(retry) = retry {
        headers.insert("retry-after", HeaderValue::from_static(retry));
    }
    (StatusCode::from_u16(status).unwrap(), headers, text)
}

async fn serve(answers: Vec<Scripted>) -> (String, Script) {
    let script = Script::default();
    script.answers.lock().unwrap().extend(answers);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let router = Router::new()
        .route("/hook", axum::routing::post(answer))
        .with_state(script.clone());
    tokio::spawn(async move { axum::serve(listener, router).await });
    (url, script)
}

fn delivery(max_duration: f64, timeout: f64, redactor: Redactor) -> Delivery {
    let seconds = |secs: f64| Seconds::new(Duration::from_secs_f64(secs));
    let options = HttpDelivery {
        retry: RetryConfig {
            initial_backoff_secs: seconds(0.05),
            max_backoff_secs: seconds(0.2),
            max_duration_secs: seconds(max_duration),
        },
        rate_limit: RateLimitConfig::default(),
        request: RequestConfig {
            timeout_secs: seconds(timeout),
            concurrency: std::num::NonZeroUsize::MIN,
        },
    };
    let settings =
        DeliverySettings::new(&options, &options.rate_limit, &HealthcheckConfig::default())
            .unwrap();
    let metrics = Arc::new(ComponentMetrics::new(ComponentKey::new(
        ComponentKind::Sink,
        "test",
        "webhook",
    )));
    Delivery::new(settings, metrics, redactor).unwrap()
}

#[tokio::test]
async fn retries_after_503_then_delivers() {
    let (url, script) = serve(vec![
        (503, None, "busy", Duration::ZERO),
        (503, None, "busy", Duration::ZERO),
        (200, None, "ok", Duration::ZERO),
    ])
    .await;
    let response = delivery(10.0, 5.0, Redactor::default())
        .execute(|client| client.post(&url).body("payload"), classify_http)
        .await
        .unwrap();
    assert_eq!(response.body, "ok");
    let seen = script.seen.lock().unwrap();
    assert_eq!(seen.len(), 3);
    assert!(
        seen.iter().all(|(_, body)| body == "payload"),
        "every attempt resends the same body"
    );
}

#[tokio::test]
async fn a_custom_body_limit_cuts_the_body_at_that_length() {
    let (url, _) = serve(vec![(200, None, "0123456789", Duration::ZERO)]).await;
    let response = delivery(10.0, 5.0, Redactor::default())
        .with_body_limit(4)
        .execute(|client| client.post(&url), classify_http)
        .await
        .unwrap();
    assert_eq!(response.body, "0123", "cut at the limit");
}

#[tokio::test]
async fn never_retries_a_400_and_keeps_its_body() {
    let (url, script) = serve(vec![(400, None, "invalid_payload", Duration::ZERO)]).await;
    let failure = delivery(10.0, 5.0, Redactor::default())
        .execute(|client| client.post(&url), classify_http)
        .await
        .unwrap_err();
    assert_eq!(failure.status(), Some(StatusCode::BAD_REQUEST));
    assert_eq!(failure.body(), "invalid_payload");
    assert_eq!(script.seen.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn honours_retry_after() {
    let (url, script) = serve(vec![
        (429, Some("1"), "", Duration::ZERO),
        (200, None, "", Duration::ZERO),
    ])
    .await;
    delivery(10.0, 5.0, Redactor::default())
        .execute(|client| client.post(&url), classify_http)
        .await
        .unwrap();
    let seen = script.seen.lock().unwrap();
    let gap = seen[1].0 - seen[0].0;
    assert!(
        gap >= Duration::from_millis(950),
        "waited only {gap:?} despite Retry-After: 1"
    );
}

#[tokio::test]
async fn gives_up_when_retries_run_out() {
    let always_failing = (0..100).map(|_| (503, None, "", Duration::ZERO)).collect();
    let (url, _) = serve(always_failing).await;
    let started = Instant::now();
    let failure = delivery(0.5, 5.0, Redactor::default())
        .execute(|client| client.post(&url), classify_http)
        .await
        .unwrap_err();
    assert!(
        matches!(failure, Failure::GaveUp { attempts, .. } if attempts > 1),
        "{failure}"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn retries_a_timed_out_attempt() {
    let (url, script) = serve(vec![
        (200, None, "late", Duration::from_secs(3)),
        (200, None, "ok", Duration::ZERO),
    ])
    .await;
    let response = delivery(10.0, 0.3, Redactor::default())
        .execute(|client| client.post(&url), classify_http)
        .await
        .unwrap();
    assert_eq!(response.body, "ok");
    assert_eq!(script.seen.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn secrets_in_urls_never_reach_error_messages() {
    // Nothing listens on this port: every attempt fails to connect.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/bot123456:SECRET-TOKEN/sendMessage");
    let failure = delivery(0.2, 1.0, Redactor::default().secret("123456:SECRET-TOKEN"))
        .execute(|client| client.post(&url), classify_http)
        .await
        .unwrap_err();
    let text = failure.to_string();
    assert!(!text.contains("SECRET-TOKEN"), "{text}");
    assert!(text.contains("gave up"), "{text}");
}

#[tokio::test]
async fn hands_a_declined_answer_back_without_retrying() {
    fn decline_404(response: &Response) -> Verdict {
        if response.status == StatusCode::NOT_FOUND {
            Verdict::Declined {
                reason: "the message is gone".to_string(),
            }
        } else {
            classify_http(response)
        }
    }
    let (url, script) = serve(vec![(404, None, "message_not_found", Duration::ZERO)]).await;
    let response = delivery(10.0, 5.0, Redactor::default())
        .execute(|client| client.post(&url), decline_404)
        .await
        .expect("a declined answer is not a failure");
    assert_eq!(response.status, StatusCode::NOT_FOUND);
    assert_eq!(response.body, "message_not_found");
    assert_eq!(script.seen.lock().unwrap().len(), 1, "never retried");
}

#[tokio::test]
async fn an_answer_cut_off_mid_body_is_retried_not_misread() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let attempts = Arc::new(Mutex::new(0));
    let counted = Arc::clone(&attempts);
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let mut request = vec![0; 4096];
            let _ = socket.read(&mut request).await;
            let attempt = {
                let mut n = counted.lock().unwrap();
                *n += 1;
                *n
            };
            // First: promises 100 bytes, sends 9, hangs up. Then: complete.
            let answer: &[u8] = if attempt == 1 {
                b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\nconnection: close\r\n\r\n{\"ok\":tru"
            } else {
                b"HTTP/1.1 200 OK\r\ncontent-length: 11\r\nconnection: close\r\n\r\n{\"ok\":true}"
            };
            let _ = socket.write_all(answer).await;
            let _ = socket.shutdown().await;
        }
    });
    let response = delivery(10.0, 5.0, Redactor::default())
        .execute(|client| client.post(&url).body("payload"), classify_http)
        .await
        .unwrap();
    assert_eq!(response.body, "{\"ok\":true}");
    assert_eq!(
        *attempts.lock().unwrap(),
        2,
        "the cut-off answer was retried"
    );
}

use reqwest::header::RETRY_AFTER;

fn response(status: u16, retry: Option<&str>) -> Response {
    let mut headers = HeaderMap::new();
    if let Some(value) = retry {
        headers.insert(RETRY_AFTER, HeaderValue::from_str(value).unwrap());
    }
    Response {
        status: StatusCode::from_u16(status).unwrap(),
        headers,
        body: Bytes::new(),
    }
}

#[test]
fn classifies_like_vector() {
    assert_eq!(classify_http(&response(204, None)), Verdict::Delivered);
    for status in [408, 429, 500, 502, 503] {
        assert!(
            matches!(
                classify_http(&response(status, None)),
                Verdict::Retry { .. }
            ),
            "{status}"
        );
    }
    for status in [400, 401, 403, 404, 413, 422, 501] {
        assert!(
            matches!(
                classify_http(&response(status, None)),
                Verdict::Rejected { .. }
            ),
            "{status}"
        );
    }
}

#[test]
fn reads_retry_after_in_seconds_and_as_a_date() {
    let Verdict::Retry { after, .. } = classify_http(&response(429, Some("7"))) else {
        panic!("429 must be retried")
    };
    assert_eq!(after, Some(Duration::from_secs(7)));
    let date = (chrono::Utc::now() + chrono::Duration::seconds(30)).to_rfc2822();
    let wait = retry_after(&response(503, Some(&date)).headers).unwrap();
    assert!(
        wait > Duration::from_secs(25) && wait <= Duration::from_secs(30),
        "{wait:?}"
    );
}

#[test]
fn absurd_retry_after_values_never_overflow() {
    let day = Duration::from_secs(86_400);
    for (value, expected) in [
        ("1e30", Some(day)),
        ("inf", Some(day)),
        ("9223372036854775807", Some(day)),
        ("-1", None),
        ("NaN", None),
    ] {
        let Verdict::Retry { after, .. } = classify_http(&response(429, Some(value))) else {
            panic!("429 must be retried")
        };
        assert_eq!(after, expected, "{value}");
    }
}
