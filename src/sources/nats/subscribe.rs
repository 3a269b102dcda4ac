//! The core NATS mode: subscribe (in a queue group, if set) and send each
//! message's events downstream. Nothing is acknowledged: a message that
//! arrives while howl is down, or that the client drops because howl
//! reads too slowly (NATS calls it a slow consumer), is lost. At most
//! once.

use async_nats::Client;
use futures_util::{FutureExt, StreamExt};

use super::{BATCH_EVENTS, MessageDecoder, Subscription};
use crate::components::source::SourceContext;
use crate::http::error_chain;

/// Runs the subscription until shutdown.
pub(super) async fn run(
    client: Client,
    subscription: Subscription,
    decode: MessageDecoder,
    mut cx: SourceContext,
) -> anyhow::Result<()> {
    let subject = subscription.subject.clone();
    let subscribed = match subscription.queue {
        Some(queue) => client.queue_subscribe(subject.clone(), queue).await,
        None => client.subscribe(subject.clone()).await,
    };
    let mut messages = subscribed.map_err(|error| {
        anyhow::anyhow!(
            "{}: cannot subscribe to `{subject}`: {}",
            cx.key,
            error_chain(&error)
        )
    })?;
    loop {
        let first = tokio::select! {
            _ = cx.shutdown.cancelled() => break,
            next = messages.next() => match next {
                Some(message) => message,
                None => break,
            },
        };
        let mut events = Vec::new();
        let mut bytes = first.payload.len();
        decode.decode(
            first.subject.as_str(),
            first.headers.as_ref(),
            first.payload,
            &mut events,
        );
        while events.len() < BATCH_EVENTS.get() {
            match messages.next().now_or_never() {
                Some(Some(message)) => {
                    bytes += message.payload.len();
                    decode.decode(
                        message.subject.as_str(),
                        message.headers.as_ref(),
                        message.payload,
                        &mut events,
                    );
                }
                _ => break,
            }
        }
        cx.out.metrics().received(events.len(), bytes);
        if !events.is_empty() {
            tokio::select! {
                _ = cx.shutdown.cancelled() => break,
                _ = cx.out.send(events) => {}
            }
        }
    }
    let _ = messages.unsubscribe().await;
    Ok(())
}
