//! The run loop of sources that *query* a store for what is new since a
//! cursor (`loki_query`, `sql`, `http_client`), and the cursor's
//! persistence.
//!
//! A store that holds the logs already (Loki, a database, an HTTP API) can
//! be asked again, so these sources need no buffer of their own: what
//! matters is the cursor, the place in the store up to which everything
//! was delivered. [`run`] keeps two of them:
//!
//! - the **read cursor**, where the next query starts, which moves as soon
//!   as a page is sent (a page in flight is never asked for again);
//! - the **delivered cursor**, which moves only when every page up to it
//!   was acknowledged by the sinks ([`AckQueue`]), and is the one saved in
//!   the state store (table `source_cursors`, key: the source's id).
//!
//! So a graceful restart neither repeats nor skips anything (shutdown waits
//! for the pages in flight, up to the graceful shutdown limit), and a crash
//! (`kill -9`, power loss) repeats at most what was in flight, never skips:
//! at-least-once. A page whose delivery failed for good (a sink's retries
//! ran out, a destination refused it) is counted and logged and the cursor
//! moves past it, as the `file` source does: asking again would fail again
//! and hold every later row back.
//!
//! In flight is bounded: with more than `MAX_UNACKED_EVENTS` events sent but
//! not acknowledged, the loop waits before it asks for more (backpressure
//! that reaches the store, not memory).
//!
//! The same loop reads a past window once and stops ([`Mode::Window`]), for
//! `howl patterns train`: then no cursor is loaded or saved.

use std::collections::VecDeque;
use std::fmt::Debug;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::components::source::SourceContext;
use crate::event::acks::{AckQueue, Completed};
use crate::event::{Event, notify_batch};
use crate::internal_events::{ComponentMetrics, ErrorType, Stage};
use crate::sources::polling::Schedule;
use crate::state::{StateError, StateStore};

/// The state table of the cursors; keys are source ids.
const TABLE: &str = "source_cursors";

/// The most events sent but not yet acknowledged before the loop waits.
const MAX_UNACKED_EVENTS: usize = 100_000;

/// One answer of the store.
#[derive(Debug)]
pub struct Page<C> {
    /// The events of the page, in the store's order.
    pub events: Vec<Event>,
    /// The bytes read for them (the answer's size).
    pub bytes: usize,
    /// The cursor after this page: the next query starts here.
    pub cursor: C,
    /// True when the store has more right now: ask again at once rather
    /// than at the next interval.
    pub more: bool,
}

/// A source that queries a store from a cursor.
pub trait Pull: Send {
    /// Where in the store a query starts; saved as JSON.
    type Cursor: Clone + Debug + PartialEq + Serialize + DeserializeOwned + Send + Sync;

    /// Asks for the page after `cursor`. An `Err` is logged (naming the
    /// source) and the same cursor is asked again at the next interval.
    fn pull(
        &mut self,
        cursor: &Self::Cursor,
    ) -> impl Future<Output = anyhow::Result<Page<Self::Cursor>>> + Send;
}

/// Whether the source follows the store or reads one window.
#[derive(Debug, Clone, Copy)]
pub enum Mode {
    /// Polls every interval, from the saved cursor, until shutdown.
    Follow,
    /// Reads until the store has nothing more, then stops; saves nothing
    /// (`howl patterns train`).
    Window,
}

/// Runs `puller` until shutdown (or, in [`Mode::Window`], until the store
/// has nothing more), starting from the saved cursor or else `initial`.
pub async fn run<P: Pull>(
    mut puller: P,
    initial: P::Cursor,
    interval: Duration,
    mode: Mode,
    mut cx: SourceContext,
) -> anyhow::Result<()> {
    let source_id = cx.key.shared_id();
    let metrics = Arc::clone(cx.out.metrics());
    let mut cursors = match mode {
        Mode::Follow => Cursors::load(cx.state.store()?, cx.key.id(), initial)?,
        Mode::Window => Cursors::unsaved(initial),
    };
    let mut schedule = Schedule::every(interval);
    'cycles: loop {
        // Between cycles, save what gets acknowledged.
        loop {
            tokio::select! {
                biased;
                () = cx.shutdown.cancelled() => break 'cycles,
                Some(completed) = cursors.acks.next() => cursors.acknowledged(completed, &metrics),
                () = schedule.tick() => break,
            }
        }
        // One cycle: pages until the store has nothing more.
        loop {
            while cursors.acks.pending_events() > MAX_UNACKED_EVENTS {
                tokio::select! {
                    biased;
                    () = cx.shutdown.cancelled() => break 'cycles,
                    Some(completed) = cursors.acks.next() => cursors.acknowledged(completed, &metrics),
                }
            }
            let page = tokio::select! {
                biased;
                () = cx.shutdown.cancelled() => break 'cycles,
                page = puller.pull(&cursors.read) => page,
            };
            let page = match (page, mode) {
                (Ok(page), _) => page,
                (Err(error), Mode::Window) => return Err(error),
                (Err(error), Mode::Follow) => {
                    metrics.error(
                        ErrorType::QueryFailed,
                        Stage::Receiving,
                        &format_args!("{error:#}; asking again in {interval:?}"),
                    );
                    break;
                }
            };
            metrics.received(page.events.len(), page.bytes);
            if page.events.is_empty() {
                let end = cursors.sent(page.cursor);
                cursors.acks.skip_to(end);
            } else {
                let mut events: Vec<Event> = page
                    .events
                    .into_iter()
                    .map(|event| event.with_source_id(Arc::clone(&source_id)))
                    .collect();
                let count = events.len();
                let status = notify_batch(&mut events);
                // A send cut short by shutdown dropped its events: they
                // were not delivered, so the cursor must not pass them.
                tokio::select! {
                    biased;
                    () = cx.shutdown.cancelled() => break 'cycles,
                    () = cx.out.send(events) => {}
                }
                let end = cursors.sent(page.cursor);
                cursors.acks.push(end, count, status);
            }
            let completed = cursors.acks.poll();
            cursors.acknowledged(completed, &metrics);
            if !page.more {
                break;
            }
        }
        if let Mode::Window = mode {
            break;
        }
    }
    // Let the pipeline drain, then save what it delivered.
    drop(cx.out);
    loop {
        tokio::select! {
            biased;
            () = cx.shutdown_limit.cancelled() => break,
            completed = cursors.acks.next() => match completed {
                Some(completed) => cursors.acknowledged(completed, &metrics),
                None => break,
            },
        }
    }
    let pending = cursors.acks.pending_events();
    if pending > 0 {
        tracing::warn!(
            component = %cx.key,
            "{pending} events were still in flight at the graceful shutdown limit; they are \
             read again at the next start"
        );
    }
    cursors.save()?;
    Ok(())
}

/// The read and delivered cursors of one running source.
struct Cursors<C> {
    /// Where the cursor is saved (none in [`Mode::Window`]).
    store: Option<(Arc<StateStore>, String)>,
    /// Where the next query starts.
    read: C,
    /// The pages sent: their number and the cursor after each, until they
    /// are acknowledged.
    pending: VecDeque<(u64, C)>,
    /// Pages sent so far (positions in `acks` are page numbers).
    pages: u64,
    acks: AckQueue<u64>,
    /// The cursor after the last page delivered.
    delivered: C,
    /// What the store holds.
    saved: C,
}

impl<C: Clone + PartialEq + Serialize + DeserializeOwned> Cursors<C> {
    /// The cursor saved for source `id`, or `initial` when there is none.
    fn load(store: Arc<StateStore>, id: &str, initial: C) -> Result<Self, StateError> {
        let cursor = match store.get(TABLE, id)? {
            Some(bytes) => match serde_json::from_slice(&bytes) {
                Ok(cursor) => cursor,
                Err(error) => {
                    // A cursor of another shape: the source's type changed
                    // under the same id. Its cursor means nothing now.
                    tracing::warn!(
                        source = id,
                        "the saved cursor does not fit this source ({error}); starting afresh"
                    );
                    initial
                }
            },
            None => initial,
        };
        let mut cursors = Self::unsaved(cursor);
        cursors.store = Some((store, id.to_string()));
        Ok(cursors)
    }

    fn unsaved(cursor: C) -> Self {
        Self {
            store: None,
            read: cursor.clone(),
            pending: VecDeque::new(),
            pages: 0,
            acks: AckQueue::new(0),
            delivered: cursor.clone(),
            saved: cursor,
        }
    }

    /// Records a page sent (or empty) that ends at `cursor`: the next
    /// query starts there. Returns its position for `acks`.
    fn sent(&mut self, cursor: C) -> u64 {
        self.pages += 1;
        self.read = cursor.clone();
        self.pending.push_back((self.pages, cursor));
        self.pages
    }

    /// Moves the delivered cursor over what `acks` completed, logs pages
    /// that failed, and saves.
    fn acknowledged(&mut self, completed: Completed, metrics: &ComponentMetrics) {
        if !completed.all_delivered() {
            metrics.warn_limited(
                "not_delivered",
                &format_args!(
                    "{}; the cursor moves past them",
                    completed.describe_failures("events")
                ),
            );
        }
        let acked = self.acks.acked();
        while let Some((page, _)) = self.pending.front()
            && *page <= acked
        {
            if let Some((_, cursor)) = self.pending.pop_front() {
                self.delivered = cursor;
            }
        }
        if let Err(error) = self.save() {
            metrics.error(
                ErrorType::WriteFailed,
                Stage::Processing,
                &format_args!("cannot save the cursor: {error}"),
            );
        }
    }

    /// Writes the delivered cursor when it moved.
    fn save(&mut self) -> Result<(), StateError> {
        let Some((store, id)) = &self.store else {
            return Ok(());
        };
        if self.delivered == self.saved {
            return Ok(());
        }
        let value = serde_json::to_vec(&self.delivered)
            .map_err(|error| StateError::Storage(error.to_string()))?;
        store.write(TABLE, &[(id.clone(), value)], &[])?;
        self.saved = self.delivered.clone();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{BatchNotifier, EventFinalizers, EventStatus};
    use crate::internal_events::ComponentMetrics;

    fn metrics() -> ComponentMetrics {
        ComponentMetrics::new(crate::component_key::ComponentKey::new(
            crate::component_key::ComponentKind::Source,
            "s",
            "test",
        ))
    }

    fn saved(store: &StateStore) -> Option<u32> {
        store
            .get(TABLE, "s")
            .unwrap()
            .map(|bytes| serde_json::from_slice(&bytes).unwrap())
    }

    #[test]
    fn the_saved_cursor_never_passes_a_page_in_flight_and_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let metrics = metrics();
        {
            let store = Arc::new(StateStore::open(dir.path()).unwrap());
            let mut cursors = Cursors::load(Arc::clone(&store), "s", 0u32).unwrap();
            let send = |cursors: &mut Cursors<u32>, cursor| {
                let (notifier, rx) = BatchNotifier::new_with_receiver();
                let end = cursors.sent(cursor);
                cursors.acks.push(end, 1, rx);
                EventFinalizers::new(notifier)
            };
            let mut first = send(&mut cursors, 10);
            let mut second = send(&mut cursors, 20);
            assert_eq!(cursors.read, 20, "the next query starts after both");
            second.update_status(EventStatus::Delivered);
            drop(second);
            let completed = cursors.acks.poll();
            cursors.acknowledged(completed, &metrics);
            assert_eq!(saved(&store), None, "the first page is still in flight");
            first.update_status(EventStatus::Delivered);
            drop(first);
            let completed = cursors.acks.poll();
            cursors.acknowledged(completed, &metrics);
            assert_eq!(saved(&store), Some(20));
            // An empty page moves the cursor once what is before it is done.
            let end = cursors.sent(30);
            cursors.acks.skip_to(end);
            let completed = cursors.acks.poll();
            cursors.acknowledged(completed, &metrics);
            assert_eq!(saved(&store), Some(30));
        }
        let store = Arc::new(StateStore::open(dir.path()).unwrap());
        let cursors = Cursors::load(store, "s", 0u32).unwrap();
        assert_eq!(cursors.read, 30);
    }

    #[test]
    fn a_cursor_of_another_shape_starts_afresh() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(StateStore::open(dir.path()).unwrap());
        store
            .write(TABLE, &[("s".to_string(), b"\"text\"".to_vec())], &[])
            .unwrap();
        let cursors = Cursors::load(store, "s", 7u32).unwrap();
        assert_eq!(cursors.read, 7);
    }
}
