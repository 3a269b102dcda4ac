//! One delivery worker per Alertmanager endpoint.
//!
//! An HA pair gets every alert, and one member being down must not hold up
//! the other: each endpoint has its own worker and a small queue of posts.
//! When a queue is full (its endpoint has been down for a while), that
//! endpoint misses the post, which is safe here: active alerts are re-posted
//! every resend interval, so a recovered Alertmanager catches up with the
//! current state within one interval. When *every* queue is full, a post
//! that carries events waits for room instead (backpressure): missing it
//! everywhere would count its events as lost although Alertmanager never
//! refused them.
//!
//! A post carries the events it came from. They are finalized when every
//! endpoint is done with it: delivered if any endpoint took it.

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use reqwest::header::CONTENT_TYPE;
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;

use crate::event::{Event, EventStatus, finalize_all};
use crate::http::{Delivery, Failure, api_url, classify_http};
use crate::internal_events::ComponentMetrics;

/// Posts a queue may hold before its endpoint starts missing them.
const QUEUE_POSTS: usize = 32;

/// The events behind a post and what became of them.
struct Outcome {
    events: Mutex<Vec<Event>>,
    delivered: AtomicBool,
    /// The worst failure seen: 0 none, 1 gave up (errored), 2 rejected.
    failure: AtomicU8,
    metrics: Arc<ComponentMetrics>,
}

impl Drop for Outcome {
    fn drop(&mut self) {
        let mut events = std::mem::take(self.events.get_mut().unwrap_or_else(|p| p.into_inner()));
        let count = events.len();
        let status = if self.delivered.load(Ordering::Acquire) {
            self.metrics.sent(None, count);
            EventStatus::Delivered
        } else {
            self.metrics
                .discarded_on_error(count, &"no Alertmanager endpoint accepted the alerts");
            match self.failure.load(Ordering::Acquire) {
                2 => EventStatus::Rejected,
                _ => EventStatus::Errored,
            }
        };
        finalize_all(&mut events, status);
    }
}

/// A JSON array of alerts, shared by every endpoint's queue.
pub struct Post {
    body: Bytes,
    outcome: Arc<Outcome>,
}

/// The workers of all endpoints.
pub struct Endpoints {
    queues: Vec<(String, mpsc::Sender<Arc<Post>>)>,
    workers: Vec<JoinHandle<()>>,
    metrics: Arc<ComponentMetrics>,
    /// Pinged whenever a worker takes a post off its queue.
    room: Arc<Notify>,
}

impl Endpoints {
    /// Starts a worker per endpoint base URL.
    pub fn start(endpoints: &[reqwest::Url], delivery: &Delivery) -> Self {
        let mut queues = Vec::new();
        let mut workers = Vec::new();
        let room = Arc::new(Notify::new());
        for endpoint in endpoints {
            let (tx, mut rx) = mpsc::channel::<Arc<Post>>(QUEUE_POSTS);
            // The name in messages, without a password from the URL.
            let shown = delivery.redactor().redact(endpoint.as_str());
            let url = alerts_url(endpoint);
            let delivery = delivery.clone();
            let room = Arc::clone(&room);
            workers.push(tokio::spawn(async move {
                while let Some(post) = rx.recv().await {
                    room.notify_waiters();
                    let result = delivery
                        .execute(
                            |client| {
                                client
                                    .post(url.clone())
                                    .header(CONTENT_TYPE, "application/json")
                                    .body(post.body.clone())
                            },
                            classify_http,
                        )
                        .await;
                    match result {
                        Ok(_) => post.outcome.delivered.store(true, Ordering::Release),
                        Err(failure) => {
                            let code = if matches!(failure, Failure::Rejected { .. }) {
                                2
                            } else {
                                1
                            };
                            post.outcome.failure.fetch_max(code, Ordering::AcqRel);
                        }
                    }
                }
            }));
            queues.push((shown, tx));
        }
        Self {
            queues,
            workers,
            metrics: Arc::clone(delivery.metrics()),
            room,
        }
    }

    /// Queues a post (a JSON array of alerts) for every endpoint with room.
    /// A post with events waits until at least one endpoint has room; a
    /// resend (no events) is missed by full endpoints.
    pub async fn post(&self, body: Bytes, events: Vec<Event>) {
        let must_arrive = !events.is_empty();
        let post = Arc::new(Post {
            body,
            outcome: Arc::new(Outcome {
                events: Mutex::new(events),
                delivered: AtomicBool::new(false),
                failure: AtomicU8::new(0),
                metrics: Arc::clone(&self.metrics),
            }),
        });
        let mut missed = Vec::new();
        for (index, (_, queue)) in self.queues.iter().enumerate() {
            if queue.try_send(Arc::clone(&post)).is_err() {
                missed.push(index);
            }
        }
        if must_arrive && missed.len() == self.queues.len() {
            missed = self.wait_for_room(&post).await;
        }
        for index in missed {
            post.outcome.failure.fetch_max(1, Ordering::AcqRel);
            self.metrics.warn_limited(
                "endpoint_behind",
                &format_args!(
                    "Alertmanager {} is not keeping up (its queue is full); it misses this \
                     post and will catch up with the next resend",
                    self.queues[index].0
                ),
            );
        }
    }

    /// Every queue is full: waits until one has room, queues the post there
    /// and returns the endpoints that still miss it.
    async fn wait_for_room(&self, post: &Arc<Post>) -> Vec<usize> {
        loop {
            // Registered before trying, so a worker taking a post between
            // the try and the wait still wakes us.
            let notified = self.room.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let mut closed = 0;
            for (index, (_, queue)) in self.queues.iter().enumerate() {
                match queue.try_send(Arc::clone(post)) {
                    Ok(()) => {
                        return (0..self.queues.len()).filter(|&i| i != index).collect();
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => closed += 1,
                    Err(mpsc::error::TrySendError::Full(_)) => {}
                }
            }
            if closed == self.queues.len() {
                return (0..self.queues.len()).collect();
            }
            notified.await;
        }
    }

    /// Stops taking posts and waits until every queued post was delivered
    /// or given up on.
    pub async fn finish(self) {
        drop(self.queues);
        for worker in self.workers {
            let _ = worker.await;
        }
    }
}

/// `<base>/api/v2/alerts`, keeping any path prefix of the base (an
/// Alertmanager behind a reverse proxy at `/alertmanager/`).
pub fn alerts_url(base: &reqwest::Url) -> reqwest::Url {
    api_url(base, "api/v2/alerts")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_paths_keep_a_base_prefix() {
        let plain = reqwest::Url::parse("http://127.0.0.1:9093").unwrap();
        assert_eq!(
            alerts_url(&plain).as_str(),
            "http://127.0.0.1:9093/api/v2/alerts"
        );
        let proxied = reqwest::Url::parse("https://ops.example/alertmanager/").unwrap();
        assert_eq!(
            api_url(&proxied, "-/ready").as_str(),
            "https://ops.example/alertmanager/-/ready"
        );
    }
}
