//! The built-in HTTP API: `/health` and `/metrics`.
//!
//! It is off by default, as Vector's is: a `cat log | howl run` step in CI
//! should not take a port, and two howl processes on one machine should not
//! fight over 8686. Turn it on with `[api] enabled = true` for sidecars and
//! agents that are scraped by Prometheus.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;
use schemars::JsonSchema;
use serde::Deserialize;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The `[api]` table.
#[derive(Debug, Clone, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    /// Serve the API.
    #[serde(default)]
    pub enabled: bool,
    /// Where to listen.
    #[serde(default = "default_address")]
    pub address: SocketAddr,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            address: default_address(),
        }
    }
}

fn default_address() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8686))
}

/// What the handlers read.
#[derive(Clone)]
struct ApiState {
    prometheus: PrometheusHandle,
    shutting_down: Arc<AtomicBool>,
}

/// Binds the API and serves it until `stop` is cancelled. Binding happens
/// before this returns, so a taken port is reported at start-up.
pub async fn serve(
    address: SocketAddr,
    prometheus: PrometheusHandle,
    shutting_down: Arc<AtomicBool>,
    stop: CancellationToken,
) -> anyhow::Result<(SocketAddr, JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .map_err(|e| anyhow::anyhow!("[api]: cannot listen on {address}: {e}"))?;
    let local = listener.local_addr()?;
    let router = Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .with_state(ApiState {
            prometheus,
            shutting_down,
        });
    let task = tokio::spawn(async move {
        let served = axum::serve(listener, router)
            .with_graceful_shutdown(stop.cancelled_owned())
            .await;
        if let Err(error) = served {
            tracing::error!("API server failed: {error}");
        }
    });
    Ok((local, task))
}

async fn health(State(state): State<ApiState>) -> impl IntoResponse {
    if state.shutting_down.load(Ordering::Acquire) {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({ "status": "shutting_down" })),
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
        state.prometheus.render(),
    )
}
