//! `GET /api/v1/tap?output=ID[.OUTPUT]`: the events leaving a component, as
//! they flow, in Server-Sent Events (`data: <event as JSON>`), for `howl
//! tap` and any SSE client.
//!
//! Query options: `sample` (keep one event in N), `limit` (end after N
//! events), `filter` (a VRL condition; only events for which it is true).
//! The tap has a bounded queue: when the client reads too slowly, batches
//! are dropped for it and announced as `event: dropped` with the running
//! count, while the pipeline goes on at full speed (see `buffer::tap`).

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use hyper::body::Frame;
use serde::Deserialize;
use tokio::sync::mpsc;

use super::{ApiError, ApiState, authorize};
use crate::buffer::tap::Subscription;
use crate::diagnostic::SourceFile;
use crate::vrl_program::{VrlOrigin, VrlRunner, compile_condition};

/// Batches a tapper's queue holds before batches are dropped for it.
const TAP_QUEUE_BATCHES: usize = 64;
/// How often a tap says how much it dropped, and checks the client is
/// still there when nothing flows.
const TAP_TICK: Duration = Duration::from_secs(1);
/// Ticks between keep-alive comments while nothing flows.
const KEEPALIVE_TICKS: u32 = 10;

/// The query of a tap.
#[derive(Debug, Deserialize)]
pub(super) struct TapQuery {
    output: String,
    #[serde(default)]
    sample: Option<u64>,
    #[serde(default)]
    limit: Option<u64>,
    #[serde(default)]
    filter: Option<String>,
}

/// A response body fed by a channel, so a task can write the stream.
struct ChannelBody(mpsc::Receiver<Bytes>);

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0
            .poll_recv(cx)
            .map(|chunk| chunk.map(|b| Ok(Frame::data(b))))
    }
}

pub(super) async fn tap(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Query(query): Query<TapQuery>,
) -> Result<Response, ApiError> {
    // Events can hold anything: a tap needs the token when one is set.
    authorize(&state, &headers)?;
    let sample = query.sample.unwrap_or(1);
    if sample == 0 {
        return Err(ApiError::BadRequest("`sample` must be at least 1".into()));
    }
    if query.limit == Some(0) {
        return Err(ApiError::BadRequest("`limit` must be at least 1".into()));
    }
    let filter = match query.filter.clone() {
        Some(source) => Some(VrlRunner::new(Arc::new(compile_filter(source).await?))),
        None => None,
    };
    let taps = &state.cx.shared.taps;
    let Some(subscription) = taps.subscribe(&query.output, TAP_QUEUE_BATCHES) else {
        return Err(ApiError::NotFound(format!(
            "no output `{}` runs; these do: {}",
            query.output,
            taps.outputs().join(", ")
        )));
    };
    let (chunks, body) = mpsc::channel(16);
    tokio::spawn(stream(subscription, chunks, filter, sample, query.limit));
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        Body::new(ChannelBody(body)),
    )
        .into_response())
}

/// The deepest nesting of brackets a filter may have: the VRL compiler
/// recurses once per level, and a client must not be able to exhaust a
/// thread's stack with a few hundred parentheses.
const MAX_FILTER_NESTING: usize = 64;

/// Compiles a tap's filter on a thread of its own, with a large stack,
/// after refusing absurd nesting.
async fn compile_filter(source: String) -> Result<vrl::compiler::Program, ApiError> {
    let mut depth: usize = 0;
    let mut deepest = 0;
    for c in source.chars() {
        match c {
            '(' | '[' | '{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            ')' | ']' | '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    if deepest > MAX_FILTER_NESTING {
        return Err(ApiError::BadRequest(format!(
            "filter: brackets nested {deepest} deep; at most {MAX_FILTER_NESTING}"
        )));
    }
    let compiled = crate::vrl_program::on_large_stack(move || {
        let file = SourceFile::new("<tap filter>", source.clone());
        compile_condition(&source, VrlOrigin::Inline(0..source.len()), &file, "filter").map_err(
            |error| {
                let detail = error.detail.map(|d| format!(": {d}")).unwrap_or_default();
                format!("filter: {}{detail}", error.message)
            },
        )
    })
    .await;
    match compiled {
        Ok(Ok(program)) => Ok(program),
        Ok(Err(message)) => Err(ApiError::BadRequest(message)),
        Err(error) => Err(ApiError::Internal(format!(
            "cannot compile the filter: {error}"
        ))),
    }
}

/// Writes the tapped events to the client until the limit, or until the
/// client goes away (the subscription then ends with this task).
async fn stream(
    mut subscription: Subscription,
    chunks: mpsc::Sender<Bytes>,
    mut filter: Option<VrlRunner>,
    sample: u64,
    limit: Option<u64>,
) {
    let mut seen: u64 = 0;
    let mut sent: u64 = 0;
    let mut dropped_said = 0;
    let mut idle_ticks = 0;
    let mut tick = tokio::time::interval(TAP_TICK);
    // A first comment tells the client the tap is in place.
    if chunks
        .send(Bytes::from_static(b": tapping\n\n"))
        .await
        .is_err()
    {
        return;
    }
    loop {
        let mut out = Vec::new();
        tokio::select! {
            batch = subscription.batches.recv() => {
                let Some(batch) = batch else { return };
                idle_ticks = 0;
                for value in batch {
                    if let Some(runner) = &mut filter {
                        let mut probe = value.clone();
                        if !matches!(runner.run(&mut probe), Ok(vrl::value::Value::Boolean(true))) {
                            continue;
                        }
                    }
                    seen += 1;
                    if !(seen - 1).is_multiple_of(sample) {
                        continue;
                    }
                    out.extend_from_slice(b"data: ");
                    let _ = serde_json::to_writer(&mut out, &value);
                    out.extend_from_slice(b"\n\n");
                    sent += 1;
                    if limit.is_some_and(|limit| sent >= limit) {
                        let _ = chunks.send(Bytes::from(out)).await;
                        return;
                    }
                }
            }
            _ = tick.tick() => {
                let dropped = subscription.dropped();
                if dropped != dropped_said {
                    dropped_said = dropped;
                    out.extend_from_slice(format!("event: dropped\ndata: {{\"dropped\":{dropped}}}\n\n").as_bytes());
                } else {
                    idle_ticks += 1;
                    if idle_ticks >= KEEPALIVE_TICKS {
                        idle_ticks = 0;
                        out.extend_from_slice(b": keepalive\n\n");
                    }
                }
            }
        }
        if !out.is_empty() && chunks.send(Bytes::from(out)).await.is_err() {
            return;
        }
    }
}
