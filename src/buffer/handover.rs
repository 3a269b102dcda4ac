//! A component's end of its input buffer, which a reload can take back.
//!
//! A reload that rebuilds a transform or sink keeps its buffer: the
//! upstream fanouts keep sending into it while the old instance stops and
//! the new one starts, so nothing in the buffer or on its way there is
//! lost, and the upstream components need not change at all. To stop, the
//! old instance is told its input has ended ([`Detach::hand_over`]): it
//! flushes what it holds, as at shutdown, and finishes; dropping its input
//! puts the buffer's receiving end back in the slot, for the new instance.
//!
//! A component that is removed instead drains what is already queued
//! ([`Detach::drain`]) and finishes; its buffer then goes with it.

use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

use super::BufferReceiver;
use crate::event::Event;

/// The receiving end a transform or sink reads.
pub struct Input {
    receiver: Option<BufferReceiver>,
    detach: Option<Detach>,
    /// Whether a drain has closed the buffer to its senders.
    draining: bool,
}

/// The topology's handle on a running component's input.
#[derive(Clone)]
pub struct Detach {
    hand_over: CancellationToken,
    drain: CancellationToken,
    /// Cancelled once the receiver is in the slot.
    handed: CancellationToken,
    slot: Arc<Mutex<Option<BufferReceiver>>>,
}

impl Input {
    /// An input no reload will take back (tests, `howl test`).
    pub fn fixed(receiver: BufferReceiver) -> Self {
        Self {
            receiver: Some(receiver),
            detach: None,
            draining: false,
        }
    }

    /// An input the returned [`Detach`] can end early.
    pub fn detachable(receiver: BufferReceiver) -> (Self, Detach) {
        let detach = Detach {
            hand_over: CancellationToken::new(),
            drain: CancellationToken::new(),
            handed: CancellationToken::new(),
            slot: Arc::new(Mutex::new(None)),
        };
        let input = Self {
            receiver: Some(receiver),
            detach: Some(detach.clone()),
            draining: false,
        };
        (input, detach)
    }

    /// The next batch; `None` once every upstream is done, or once a
    /// reload detached this component (after what was queued, when it
    /// drains).
    pub async fn recv(&mut self) -> Option<Vec<Event>> {
        // Disjoint borrows of the fields: no per-batch clone of the handle.
        let Self {
            receiver: slot,
            detach,
            draining,
        } = self;
        let Some(detach) = detach.as_ref() else {
            return slot.as_mut()?.recv().await;
        };
        loop {
            if detach.hand_over.is_cancelled() {
                // Stop reading now; the buffer goes to the replacement as
                // soon as this returns, not when the component finishes, so
                // the replacement can start while this one flushes.
                if let Some(receiver) = slot.take() {
                    *lock(&detach.slot) = Some(receiver);
                    detach.handed.cancel();
                }
                return None;
            }
            let receiver = slot.as_mut()?;
            if detach.drain.is_cancelled() && !*draining {
                *draining = true;
                if !receiver.close_to_senders() {
                    // A disk buffer keeps its events for a sink of the same
                    // id; nothing to drain here.
                    return None;
                }
            }
            if *draining {
                // Closed to senders: ends once what is queued is read.
                return receiver.recv().await;
            }
            tokio::select! {
                biased;
                () = detach.hand_over.cancelled() => continue,
                () = detach.drain.cancelled() => continue,
                batch = receiver.recv() => return batch,
            }
        }
    }
}

impl Input {
    /// Whether nothing waits in a memory buffer now (`false` for a disk
    /// buffer, which cannot tell cheaply).
    pub fn is_idle(&self) -> bool {
        self.receiver.as_ref().is_some_and(BufferReceiver::is_idle)
    }

    /// A batch that is already waiting in a memory buffer, without waiting
    /// (`None` also once a reload detached this input).
    pub fn try_recv(&mut self) -> Option<Vec<Event>> {
        if let Some(detach) = &self.detach
            && (detach.hand_over.is_cancelled() || detach.drain.is_cancelled())
        {
            return None;
        }
        self.receiver.as_mut()?.try_recv()
    }
}

impl From<BufferReceiver> for Input {
    fn from(receiver: BufferReceiver) -> Self {
        Self::fixed(receiver)
    }
}

impl Drop for Input {
    fn drop(&mut self) {
        if let (Some(detach), Some(receiver)) = (&self.detach, self.receiver.take())
            && detach.hand_over.is_cancelled()
        {
            *lock(&detach.slot) = Some(receiver);
            detach.handed.cancel();
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

impl Detach {
    /// Ends the component's input so its replacement can take the buffer
    /// ([`take`](Self::take), once the component has finished).
    pub fn hand_over(&self) {
        self.hand_over.cancel();
    }

    /// Ends the component's input once what is queued has been read.
    pub fn drain(&self) {
        self.drain.cancel();
    }

    /// The buffer's receiving end, once the component handed it over (it
    /// stopped reading, or finished).
    pub fn take(&self) -> Option<BufferReceiver> {
        lock(&self.slot).take()
    }

    /// Whether the component has handed its buffer over.
    pub fn is_handed(&self) -> bool {
        self.handed.is_cancelled()
    }

    /// Waits until the component has handed its buffer over.
    pub async fn handed(&self) {
        self.handed.cancelled().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buffer::{WhenFull, channel};
    use crate::component_key::{ComponentKey, ComponentKind};
    use crate::internal_events::ComponentMetrics;

    fn events(n: usize) -> Vec<Event> {
        (0..n)
            .map(|i| Event::from_value(vrl::value::Value::from(i as i64)))
            .collect()
    }

    fn metrics() -> Arc<ComponentMetrics> {
        Arc::new(ComponentMetrics::new(ComponentKey::new(
            ComponentKind::Sink,
            "test",
            "blackhole",
        )))
    }

    #[tokio::test]
    async fn a_handed_over_buffer_keeps_what_was_queued_for_the_next_reader() {
        let (tx, rx) = channel(10, WhenFull::Block, metrics());
        let (mut input, detach) = Input::detachable(rx);
        tx.send(events(2)).await.unwrap();
        assert_eq!(input.recv().await.map(|b| b.len()), Some(2));
        tx.send(events(3)).await.unwrap();
        detach.hand_over();
        assert!(
            detach.take().is_none(),
            "not handed back before the reader stops"
        );
        assert!(input.recv().await.is_none(), "the old reader stops at once");
        detach.handed().await;
        let mut next = Input::fixed(detach.take().expect("handed back once it stops reading"));
        drop(input);
        tx.send(events(1)).await.unwrap();
        assert_eq!(next.recv().await.map(|b| b.len()), Some(3));
        assert_eq!(next.recv().await.map(|b| b.len()), Some(1));
    }

    #[tokio::test]
    async fn a_draining_input_reads_what_is_queued_then_ends_and_gives_later_batches_back() {
        let (tx, rx) = channel(3, WhenFull::Block, metrics());
        let (mut input, detach) = Input::detachable(rx);
        tx.send(events(2)).await.unwrap();
        tx.send(events(1)).await.unwrap();
        // A producer blocked on the full buffer when the drain begins.
        let blocked = tokio::spawn({
            let tx = tx.clone();
            async move { tx.send_or_return(events(2)).await }
        });
        tokio::task::yield_now().await;
        detach.drain();
        assert_eq!(input.recv().await.map(|b| b.len()), Some(2));
        assert_eq!(input.recv().await.map(|b| b.len()), Some(1));
        assert!(input.recv().await.is_none());
        let returned = blocked.await.unwrap().expect_err("refused, not taken");
        assert_eq!(
            returned.len(),
            2,
            "the batch comes back whole, for its new consumer"
        );
        assert_eq!(
            tx.send_or_return(events(1)).await.map_err(|b| b.len()),
            Err(1)
        );
        drop(input);
        assert!(detach.take().is_none(), "a drained buffer is not kept");
    }

    #[tokio::test]
    async fn a_waiting_reader_is_woken_by_the_hand_over() {
        let (_tx, rx) = channel(10, WhenFull::Block, metrics());
        let (mut input, detach) = Input::detachable(rx);
        let reader = tokio::spawn(async move { input.recv().await.is_none() });
        tokio::task::yield_now().await;
        detach.hand_over();
        assert!(reader.await.unwrap());
        assert!(detach.take().is_some());
    }
}
