//! The built-in HTTP API: `/health`, `/metrics`, and the triage endpoints
//! (suppressions, patterns and the audit trail, see [`triage`]).
//!
//! It is off by default, as Vector's is: a `cat log | howl run` step in CI
//! should not take a port, and two howl processes on one machine should not
//! fight over 8686. Turn it on with `[api] enabled = true` for sidecars and
//! agents that are scraped by Prometheus or driven by operators.
//!
//! Endpoints that change something (`POST`, `DELETE`) require
//! `Authorization: Bearer <auth_token>` when `[api] auth_token` is set;
//! reading is open, like `/metrics`. The exceptions are Slack's
//! `POST /api/v1/slack/actions` ([`slack`]), which Slack signs with the
//! app's signing secret instead, and the signed links' `POST
//! /api/v1/links/suppress` ([`links`]), whose signature is its credential. Errors are JSON `{"error": "..."}`
//! with a status mapped in one place, [`ApiError`].

mod links;
mod review;
mod slack;
mod tap;
mod triage;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::api::ApiConfig;
use crate::diagnostic::escape_controls;
use crate::http::bearer::bearer_matches;
use crate::http::server::{self, API_MAX_CONNECTIONS};
use crate::secret::Secret;
use crate::shared::Shared;
use crate::topology::reload::ReloadCall;

/// What the API serves from.
#[derive(Clone)]
pub struct ApiContext {
    /// The metrics recorder, rendered at `/metrics`.
    pub prometheus: PrometheusHandle,
    /// Set once shutdown began (`/health` answers 503 then).
    pub shutting_down: Arc<AtomicBool>,
    /// The state and suppressions shared with the running topology.
    pub shared: Shared,
    /// Where `POST /api/v1/reload` asks for a reload; `None` when this
    /// process cannot reload (the built-in demo).
    pub reload: Option<mpsc::Sender<ReloadCall>>,
}

/// What the handlers read.
#[derive(Clone)]
struct ApiState {
    cx: ApiContext,
    auth_token: Option<Secret>,
}

/// Binds the API and serves it until `stop` is cancelled. Binding happens
/// before this returns, so a taken port is reported at start-up.
pub async fn serve(
    config: &ApiConfig,
    cx: ApiContext,
    stop: CancellationToken,
) -> anyhow::Result<(SocketAddr, JoinHandle<()>)> {
    let address = config.address;
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .map_err(|e| anyhow::anyhow!("[api]: cannot listen on {address}: {e}"))?;
    let local = listener.local_addr()?;
    let router = Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route(
            "/api/v1/suppressions",
            get(triage::list_suppressions).post(triage::create_suppression),
        )
        .route(
            "/api/v1/suppressions/{id}",
            delete(triage::delete_suppression),
        )
        .route("/api/v1/patterns", get(triage::list_patterns))
        .route("/api/v1/audit", get(triage::audit))
        .route(
            "/api/v1/links/suppress",
            get(links::page).post(links::apply),
        )
        .route("/api/v1/slack/actions", post(slack::actions))
        .route(
            "/api/v1/telegram/{sink}/updates",
            post(slack::telegram_updates),
        )
        .route("/api/v1/review", get(review::preview).post(review::commit))
        .route("/api/v1/rules", get(review::rules))
        .route("/api/v1/rules/{id}/apply", post(review::apply))
        .route("/api/v1/reload", post(reload))
        .route("/api/v1/tap", get(tap::tap))
        .with_state(ApiState {
            cx,
            auth_token: config.auth_token.clone(),
        });
    let limits = config.connections.limits(API_MAX_CONNECTIONS);
    let task = tokio::spawn(async move {
        server::serve(listener, router, limits, "[api]", stop).await;
    });
    Ok((local, task))
}

/// `GET /health`: 200 `ok` while running; 503 `starting` until every
/// listening source has bound (see `readiness`), and `shutting_down` once
/// shutdown began, so a readiness probe sends traffic only while howl takes it.
async fn health(State(state): State<ApiState>) -> impl IntoResponse {
    if state.cx.shutting_down.load(Ordering::Acquire) {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({ "status": "shutting_down" })),
        )
    } else if !state.cx.shared.readiness.is_ready() {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({ "status": "starting" })),
        )
    } else {
        (
            StatusCode::OK,
            axum::Json(serde_json::json!({ "status": "ok" })),
        )
    }
}

async fn metrics(State(state): State<ApiState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.cx.prometheus.render(),
    )
}

/// `POST /api/v1/reload`: reads the config files again and applies them
/// (see `howl run`'s reload). 200 with what changed; 400 with every reason
/// when the new config was refused (the old one keeps running).
async fn reload(State(state): State<ApiState>, headers: HeaderMap) -> Result<Response, ApiError> {
    authorize(&state, &headers)?;
    let Some(calls) = &state.cx.reload else {
        return Err(ApiError::BadRequest(
            "this howl cannot reload: it runs the built-in demo (start it with -c FILE)".into(),
        ));
    };
    let (reply, answer) = oneshot::channel();
    let call = ReloadCall {
        trigger: "api",
        reply,
    };
    if calls.send(call).await.is_err() {
        return Err(ApiError::Unavailable("howl is shutting down".into()));
    }
    match answer.await {
        Ok(Ok(report)) => Ok(axum::Json(serde_json::json!({
            "status": "reloaded",
            "summary": report.to_string(),
            "added": report.added,
            "removed": report.removed,
            "rebuilt": report.rebuilt,
            "rewired": report.rewired,
            "warnings": report.warnings,
        }))
        .into_response()),
        Ok(Err(refused)) => Ok((
            StatusCode::BAD_REQUEST,
            axum::Json(serde_json::json!({
                "status": "refused",
                "error": "the new config was not applied; the running one is kept",
                "reasons": refused.0,
            })),
        )
            .into_response()),
        Err(_) => Err(ApiError::Unavailable("howl is shutting down".into())),
    }
}

/// Why a request failed; the one place errors become status codes.
#[derive(Debug)]
enum ApiError {
    /// The request is malformed or asks for something impossible.
    BadRequest(String),
    /// A token is required and was missing or wrong.
    Unauthorized,
    /// Nothing has that id.
    NotFound(String),
    /// A signed request whose signature does not hold (401, without the
    /// bearer challenge: a token would not help).
    BadSignature(String),
    /// Too busy now: retry (503).
    Unavailable(String),
    /// howl failed (the state store).
    Internal(String),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let challenge = matches!(self, Self::Unauthorized);
        let retry = matches!(self, Self::Unavailable(_));
        let (status, message) = match self {
            Self::BadRequest(message) => (StatusCode::BAD_REQUEST, message),
            Self::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                "this endpoint needs `Authorization: Bearer <[api] auth_token>`".to_string(),
            ),
            Self::NotFound(message) => (StatusCode::NOT_FOUND, message),
            Self::BadSignature(message) => (StatusCode::UNAUTHORIZED, message),
            Self::Unavailable(message) => (StatusCode::SERVICE_UNAVAILABLE, message),
            Self::Internal(message) => {
                tracing::error!("API request failed: {}", escape_controls(&message));
                (StatusCode::INTERNAL_SERVER_ERROR, message)
            }
        };
        let mut response =
            (status, axum::Json(serde_json::json!({ "error": message }))).into_response();
        if challenge {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        if retry {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
        }
        response
    }
}

/// Checks the bearer token of a mutating request, when one is configured.
fn authorize(state: &ApiState, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(token) = &state.auth_token else {
        return Ok(());
    };
    if bearer_matches(headers, token.expose()) {
        Ok(())
    } else {
        Err(ApiError::Unauthorized)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn health_says_starting_until_every_listening_source_is_bound() {
        let dir = tempfile::tempdir().unwrap();
        let shared = Shared::new(dir.path().to_path_buf());
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let cx = ApiContext {
            prometheus: recorder.handle(),
            shutting_down: Arc::new(AtomicBool::new(false)),
            shared: shared.clone(),
            reload: None,
        };
        let config = ApiConfig {
            enabled: true,
            address: "127.0.0.1:0".parse().unwrap(),
            ..ApiConfig::default()
        };
        let token = shared.readiness.pending();
        let stop = CancellationToken::new();
        let (address, task) = serve(&config, cx.clone(), stop.clone()).await.unwrap();
        let client = crate::http::http_client(std::time::Duration::from_secs(5)).unwrap();
        let health = || async {
            let response = client
                .get(format!("http://{address}/health"))
                .send()
                .await
                .unwrap();
            let status = response.status();
            (status, response.json::<serde_json::Value>().await.unwrap())
        };
        let (status, body) = health().await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["status"], "starting");
        // The topology has spawned its sources; one has not bound yet.
        shared.readiness.sources_spawned();
        let (status, body) = health().await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["status"], "starting");
        token.listening();
        let (status, body) = health().await;
        assert_eq!(
            (status, body["status"].as_str()),
            (StatusCode::OK, Some("ok"))
        );
        cx.shutting_down.store(true, Ordering::Release);
        let (status, body) = health().await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["status"], "shutting_down");
        stop.cancel();
        let _ = task.await;
    }
}
