//! The task that runs a pure transform.
//!
//! With `concurrency` > 1, batches are handed to copies of the transform
//! running as separate tasks (so on separate cores), while results are
//! emitted strictly in the order the batches arrived: parallel speed without
//! reordering a log stream.

use std::collections::VecDeque;
use std::sync::Arc;

use tokio::task::{JoinError, JoinHandle};

use crate::components::transform::{
    SyncTransform, TransformInput, TransformOutput, TransformOutputs,
};
use crate::event::Event;
use crate::internal_events::ComponentMetrics;

type Finished = (Box<dyn SyncTransform>, TransformOutput);

/// Runs `transform` until its input closes, then returns (dropping its
/// outputs, which lets downstream drain).
pub async fn run_sync(
    transform: Box<dyn SyncTransform>,
    mut input: TransformInput,
    mut outputs: TransformOutputs,
    metrics: Arc<ComponentMetrics>,
    concurrency: usize,
) -> anyhow::Result<()> {
    if concurrency <= 1 {
        let mut transform = transform;
        while let Some(events) = input.recv().await {
            let mut out = outputs.collector(events.len());
            apply(transform.as_mut(), events, &mut out, &metrics);
            outputs.send(out).await;
        }
        return Ok(());
    }

    let mut idle: Vec<Box<dyn SyncTransform>> =
        (1..concurrency).map(|_| transform.clone_box()).collect();
    idle.push(transform);
    let mut in_flight: VecDeque<JoinHandle<Finished>> = VecDeque::new();
    let mut input_open = true;
    while input_open || !in_flight.is_empty() {
        tokio::select! {
            biased;
            finished = next_finished(&mut in_flight), if !in_flight.is_empty() => {
                in_flight.pop_front();
                let (transform, out) = finished?;
                idle.push(transform);
                outputs.send(out).await;
            }
            batch = input.recv(), if input_open && !idle.is_empty() => match batch {
                None => input_open = false,
                Some(events) => {
                    let Some(mut transform) = idle.pop() else { continue };
                    let metrics = Arc::clone(&metrics);
                    let mut out = outputs.collector(events.len());
                    in_flight.push_back(tokio::spawn(async move {
                        apply(transform.as_mut(), events, &mut out, &metrics);
                        (transform, out)
                    }));
                }
            },
        }
    }
    Ok(())
}

async fn next_finished(
    in_flight: &mut VecDeque<JoinHandle<Finished>>,
) -> Result<Finished, JoinError> {
    match in_flight.front_mut() {
        Some(handle) => handle.await,
        None => std::future::pending().await,
    }
}

fn apply(
    transform: &mut dyn SyncTransform,
    events: Vec<Event>,
    out: &mut TransformOutput,
    metrics: &ComponentMetrics,
) {
    for event in events {
        transform.transform(event, out, metrics);
    }
}
