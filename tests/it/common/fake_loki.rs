//! A loopback Loki that answers `GET /loki/api/v1/query_range` as Grafana
//! Loki documents it (v2/v3): log queries only, `start` inclusive and `end`
//! exclusive in nanoseconds, `limit` entries at most across streams,
//! `direction=forward` oldest first, entries grouped by stream in the
//! answer, errors as `{"status":"error","error":...}`; `X-Scope-OrgID`
//! required when a tenant is set, as multi-tenant Loki does. Loki is not
//! packaged for Debian, so this stands in for it.
//!
//! It runs on a runtime of its own thread, so a test blocked waiting for
//! howl to exit never holds an answer back.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// One stored entry.
#[derive(Debug, Clone)]
pub struct Entry {
    pub ns: i64,
    pub stream: BTreeMap<String, String>,
    pub line: String,
}

#[derive(Default)]
struct Inner {
    entries: Vec<Entry>,
    tenant: Option<String>,
    /// The `Authorization` header required, if any.
    authorization: Option<String>,
    /// Answers to give before the real ones: (status, Retry-After).
    script: VecDeque<(u16, Option<u64>)>,
    requests: Vec<(std::time::Instant, BTreeMap<String, String>)>,
    /// Broken on purpose: answers from the first entry whatever `start`.
    ignore_start: bool,
    /// `max_entries_limit_per_query`, when set.
    max_limit: Option<i64>,
}

/// The fake Loki; stopped when dropped (its thread ends with the process).
#[derive(Clone)]
pub struct FakeLoki {
    inner: Arc<Mutex<Inner>>,
    pub url: String,
}

impl FakeLoki {
    /// Starts a Loki on a free loopback port; with `tenant`, only that
    /// `X-Scope-OrgID` is answered.
    pub fn start(tenant: Option<&str>) -> Self {
        let inner = Arc::new(Mutex::new(Inner {
            tenant: tenant.map(str::to_string),
            ..Inner::default()
        }));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind fake loki");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr: SocketAddr = listener.local_addr().expect("address");
        let state = Arc::clone(&inner);
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                let app = Router::new()
                    .route("/loki/api/v1/query_range", axum::routing::get(query_range))
                    .route("/ready", axum::routing::get(|| async { "ready" }))
                    .with_state(state);
                let _ = axum::serve(listener, app).await;
            });
        });
        Self {
            inner,
            url: format!("http://{addr}"),
        }
    }

    /// Stores entries (kept in time order, streams in label order within a
    /// nanosecond, as Loki merges them).
    pub fn push(&self, entries: impl IntoIterator<Item = Entry>) {
        let mut inner = self.inner.lock().unwrap();
        inner.entries.extend(entries);
        inner
            .entries
            .sort_by(|a, b| (a.ns, &a.stream).cmp(&(b.ns, &b.stream)));
    }

    /// Requires this `Authorization` header (a proxy in front of Loki, or
    /// Grafana Cloud): other requests are answered 401.
    pub fn require_authorization(&self, value: &str) {
        self.inner.lock().unwrap().authorization = Some(value.to_string());
    }

    /// Answers the next requests with these statuses first (a `Retry-After`
    /// in seconds with each, if given).
    pub fn script(&self, answers: &[(u16, Option<u64>)]) {
        self.inner
            .lock()
            .unwrap()
            .script
            .extend(answers.iter().copied());
    }

    /// Breaks it: from now on it ignores `start` (a proxy that drops the
    /// parameter), answering the same first page for ever.
    pub fn ignore_start(&self) {
        self.inner.lock().unwrap().ignore_start = true;
    }

    /// Refuses a `limit` above this, as Loki's
    /// `max_entries_limit_per_query` does.
    pub fn max_limit(&self, max: i64) {
        self.inner.lock().unwrap().max_limit = Some(max);
    }

    /// Every request so far: when it came, its query parameters.
    pub fn requests(&self) -> Vec<(std::time::Instant, BTreeMap<String, String>)> {
        self.inner.lock().unwrap().requests.clone()
    }
}

fn error(status: StatusCode, message: &str) -> Response {
    (
        status,
        axum::Json(json!({"status": "error", "errorType": "bad_data", "error": message})),
    )
        .into_response()
}

async fn query_range(
    State(inner): State<Arc<Mutex<Inner>>>,
    headers: HeaderMap,
    Query(params): Query<BTreeMap<String, String>>,
) -> Response {
    let mut inner = inner.lock().unwrap();
    inner
        .requests
        .push((std::time::Instant::now(), params.clone()));
    if let Some((status, retry_after)) = inner.script.pop_front() {
        let status = StatusCode::from_u16(status).expect("status");
        let mut response = error(status, "scripted failure").into_response();
        if let Some(seconds) = retry_after {
            response
                .headers_mut()
                .insert("retry-after", seconds.to_string().parse().expect("header"));
        }
        return response;
    }
    if let Some(expected) = &inner.authorization {
        let given = headers.get("authorization").and_then(|v| v.to_str().ok());
        if given != Some(expected.as_str()) {
            return (StatusCode::UNAUTHORIZED, "unauthorized\n").into_response();
        }
    }
    if let Some(tenant) = &inner.tenant {
        let given = headers.get("x-scope-orgid").and_then(|v| v.to_str().ok());
        if given != Some(tenant.as_str()) {
            return (StatusCode::UNAUTHORIZED, "no org id\n").into_response();
        }
    }
    let number = |name: &str| params.get(name).and_then(|v| v.parse::<i64>().ok());
    let (start, end, limit) = match (number("start"), number("end"), number("limit")) {
        (Some(start), Some(end), Some(limit)) => (start, end, limit),
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid parameter: start, end or limit",
            );
        }
    };
    if let Some(max) = inner.max_limit
        && limit > max
    {
        return error(
            StatusCode::BAD_REQUEST,
            &format!(
                "max entries limit per query exceeded, limit > max_entries_limit_per_query ({limit} > {max})"
            ),
        );
    }
    if params.get("direction").map(String::as_str) != Some("forward") {
        return error(
            StatusCode::BAD_REQUEST,
            "this fake answers forward queries only",
        );
    }
    if params.get("query").is_none_or(|q| q.trim().is_empty()) {
        return error(
            StatusCode::BAD_REQUEST,
            "parse error : syntax error: unexpected $end",
        );
    }
    if end <= start {
        return error(
            StatusCode::BAD_REQUEST,
            "the end time must be after the start time",
        );
    }
    let selected: Vec<&Entry> = inner
        .entries
        .iter()
        .filter(|e| (inner.ignore_start || e.ns >= start) && e.ns < end)
        .take(usize::try_from(limit).unwrap_or(0))
        .collect();
    let mut streams: BTreeMap<&BTreeMap<String, String>, Vec<serde_json::Value>> = BTreeMap::new();
    for entry in selected {
        streams
            .entry(&entry.stream)
            .or_default()
            .push(json!([entry.ns.to_string(), entry.line]));
    }
    let result: Vec<serde_json::Value> = streams
        .into_iter()
        .map(|(stream, values)| json!({"stream": stream, "values": values}))
        .collect();
    axum::Json(json!({
        "status": "success",
        "data": {"resultType": "streams", "result": result, "stats": {}}
    }))
    .into_response()
}
