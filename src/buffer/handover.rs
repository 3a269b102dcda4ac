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
}

/// The topology's handle on a running component's input.
#[derive(Clone)]
pub struct Detach {
    hand_over: CancellationToken,
    drain: CancellationToken,
    slot: Arc<Mutex<Option<BufferReceiver>>>,
}

impl Input {
    /// An input no reload will take back (tests, `howl test`).
    pub fn fixed(receiver: BufferReceiver) -> Self {
        Self {
            receiver: Some(receiver),
            detach: None,
        }
    }

    /// An input the returned [`Detach`] can end early.
    pub fn detachable(receiver: BufferReceiver) -> (Self, Detach) {
        let detach = Detach {
            hand_over: CancellationToken::new(),
            drain: CancellationToken::new(),
            slot: Arc::new(Mutex::new(None)),
        };
        let input = Self {
            receiver: Some(receiver),
            detach: Some(detach.clone()),
        };
        (input, detach)
    }

    /// The next batch; `None` once every upstream is done, or once a
    /// reload detached this component (after what was queued, when it
    /// drains).
    pub async fn recv(&mut self) -> Option<Vec<Event>> {
        let receiver = self.receiver.as_mut()?;
        let Some(detach) = &self.detach else {
            return receiver.recv().await;
        };
        if detach.hand_over.is_cancelled() {
            return None;
        }
        if detach.drain.is_cancelled() {
            return receiver.try_recv();
        }
        tokio::select! {
            biased;
            () = detach.hand_over.cancelled() => None,
            () = detach.drain.cancelled() => receiver.try_recv(),
            batch = receiver.recv() => batch,
        }
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
            *detach.slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(receiver);
        }
    }
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

    /// The buffer's receiving end, once the component handed it over and
    /// finished.
    pub fn take(&self) -> Option<BufferReceiver> {
        self.slot.lock().unwrap_or_else(|p| p.into_inner()).take()
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
        assert!(input.recv().await.is_none(), "the old reader stops at once");
        assert!(detach.take().is_none(), "not yet handed back while read");
        drop(input);
        let mut next = Input::fixed(detach.take().expect("handed back on drop"));
        tx.send(events(1)).await.unwrap();
        assert_eq!(next.recv().await.map(|b| b.len()), Some(3));
        assert_eq!(next.recv().await.map(|b| b.len()), Some(1));
    }

    #[tokio::test]
    async fn a_draining_input_reads_what_is_queued_then_ends() {
        let (tx, rx) = channel(10, WhenFull::Block, metrics());
        let (mut input, detach) = Input::detachable(rx);
        tx.send(events(2)).await.unwrap();
        tx.send(events(1)).await.unwrap();
        detach.drain();
        assert_eq!(input.recv().await.map(|b| b.len()), Some(2));
        assert_eq!(input.recv().await.map(|b| b.len()), Some(1));
        assert!(input.recv().await.is_none());
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
