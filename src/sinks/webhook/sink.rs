//! The webhook's run loop: check the receiver (if `healthcheck.uri` is
//! set), then batch, encode and deliver until the input closes.
//!
//! Requests run as tasks, at most `request.concurrency` at once; the next
//! batch is only taken when a slot is free, so a slow receiver backs up
//! into the sink's buffer and from there to the sources, instead of piling
//! up requests in memory. With the default concurrency of 1, requests go
//! out strictly in order.

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use reqwest::Url;
use reqwest::header::HeaderMap;
use tokio::task::JoinSet;

use super::encoder::{Encoder, Request};
use crate::components::ComponentFuture;
use crate::components::sink::{Sink, SinkContext};
use crate::event::{EventStatus, finalize_all};
use crate::http::{Delivery, DeliverySettings, Failure, classify_http};
use crate::internal_events::{ErrorType, Stage};
use crate::secret::Redactor;
use crate::sinks::batch::Batcher;

/// Where and how requests go; shared by the request tasks.
pub(super) struct Target {
    pub(super) method: reqwest::Method,
    pub(super) uri: Url,
    /// Content-Type, auth and the user's headers.
    pub(super) headers: HeaderMap,
    /// The `HEAD` check at start-up, if any.
    pub(super) healthcheck: Option<Url>,
}

/// A built webhook sink.
pub(super) struct Webhook {
    pub(super) target: Arc<Target>,
    pub(super) encoder: Encoder,
    pub(super) settings: DeliverySettings,
    pub(super) redactor: Redactor,
    pub(super) concurrency: usize,
    pub(super) batch_events: NonZeroUsize,
    pub(super) batch_timeout: Duration,
}

impl Sink for Webhook {
    fn run(self: Box<Self>, cx: SinkContext) -> ComponentFuture {
        Box::pin(self.deliver_all(cx))
    }
}

impl Webhook {
    async fn deliver_all(mut self: Box<Self>, mut cx: SinkContext) -> anyhow::Result<()> {
        let delivery = Delivery::new(
            self.settings.clone(),
            Arc::clone(&cx.metrics),
            self.redactor.clone(),
        )?;
        if let Some(check) = &self.target.healthcheck {
            let headers = &self.target.headers;
            delivery
                .healthcheck(
                    "the webhook receiver",
                    |client| client.head(check.clone()).headers(headers.clone()),
                    classify_http,
                )
                .await?;
        }
        let mut batcher = Batcher::new(self.batch_events, self.batch_timeout);
        let mut in_flight = JoinSet::new();
        while let Some(events) = batcher.next(&mut cx.input).await {
            for request in self.encoder.encode(events, &cx.metrics) {
                while in_flight.len() >= self.concurrency {
                    reap(&delivery, in_flight.join_next().await);
                }
                in_flight.spawn(send(delivery.clone(), Arc::clone(&self.target), request));
            }
        }
        while let Some(joined) = in_flight.join_next().await {
            reap(&delivery, Some(joined));
        }
        Ok(())
    }
}

/// Delivers one request and reports its events' fate.
async fn send(delivery: Delivery, target: Arc<Target>, request: Request) {
    let Request { body, mut events } = request;
    let result = delivery
        .execute(
            |client| {
                client
                    .request(target.method.clone(), target.uri.clone())
                    .headers(target.headers.clone())
                    .body(body.clone())
            },
            classify_http,
        )
        .await;
    let metrics = delivery.metrics();
    let status = match result {
        Ok(_) => {
            metrics.sent(None, events.len());
            EventStatus::Delivered
        }
        Err(failure) => {
            // The core has logged the failure with the (redacted) answer.
            let (status, reason) = match failure {
                Failure::Rejected { .. } => (EventStatus::Rejected, "the receiver refused them"),
                Failure::GaveUp { .. } => (EventStatus::Errored, "retries ran out"),
            };
            metrics.discarded_on_error(events.len(), &reason);
            status
        }
    };
    finalize_all(&mut events, status);
}

/// Accounts for a finished request task; a panic is a bug, reported as one.
fn reap(delivery: &Delivery, joined: Option<Result<(), tokio::task::JoinError>>) {
    if let Some(Err(error)) = joined {
        delivery.metrics().error(
            ErrorType::DeliveryTaskFailed,
            Stage::Sending,
            &format_args!("a webhook request task failed: {error}"),
        );
    }
}
