//! The open connections of one server and what each is doing, so that a
//! server at `connections.max` can make room: the connection that has
//! waited longest for a request is closed for the new one. A connection in
//! the middle of a request is never chosen, so trickling clients lose their
//! places to clients that send whole requests, and no request is cut off.
//!
//! Each connection's [`Phase`] lives in a `watch` channel: its task reads
//! the phase to know its deadline, and the registry changes it (to
//! [`Phase::Evicted`]) in the same atomic step that checks it is not
//! [`Phase::Busy`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;
use tokio::time::Instant;

/// What a connection is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    /// Opened at `since`; its first request head has not fully arrived.
    Opening { since: Instant },
    /// A request is being handled.
    Busy,
    /// Answered at `since`; the head of the next request has not fully
    /// arrived (a kept-alive connection, or one whose answer is still
    /// being sent).
    Idle { since: Instant },
    /// Closed to make room for a newer connection.
    Evicted,
}

impl Phase {
    /// Since when the connection has waited for a request, unless it is
    /// handling one (or is gone).
    fn waiting_since(self) -> Option<Instant> {
        match self {
            Self::Opening { since } | Self::Idle { since } => Some(since),
            Self::Busy | Self::Evicted => None,
        }
    }
}

/// The connections of one server.
pub(super) struct Connections {
    max: usize,
    open: Mutex<Open>,
}

#[derive(Default)]
struct Open {
    next_id: u64,
    phases: HashMap<u64, Arc<watch::Sender<Phase>>>,
}

/// What became of a new connection.
pub(super) enum Admission {
    /// It may be served; `evicted` is the connection closed to make room
    /// for it, if one was.
    Admitted {
        ticket: Ticket,
        evicted: Option<Evicted>,
    },
    /// Every open connection is handling a request: refuse this one.
    Full,
}

impl Connections {
    /// At most `max` connections (at least one).
    pub(super) fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            max: max.max(1),
            open: Mutex::new(Open::default()),
        })
    }

    /// Admits a connection opened now, closing the longest-waiting one if
    /// all places are taken.
    pub(super) fn admit(self: &Arc<Self>) -> Admission {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let evicted = if open.phases.len() >= self.max {
            match open.evict_longest_waiting() {
                Some(evicted) => Some(evicted),
                None => return Admission::Full,
            }
        } else {
            None
        };
        let id = open.next_id;
        open.next_id += 1;
        let (phase, watch) = watch::channel(Phase::Opening {
            since: Instant::now(),
        });
        let phase = Arc::new(phase);
        open.phases.insert(id, Arc::clone(&phase));
        Admission::Admitted {
            ticket: Ticket {
                connections: Arc::clone(self),
                id,
                phase,
                watch,
                in_flight: Mutex::new(0),
            },
            evicted,
        }
    }

    /// How many connections are open.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.open
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .phases
            .len()
    }
}

impl Open {
    /// Marks the connection that has waited longest for a request as
    /// evicted (its task then closes it) and forgets it; `None` when every
    /// connection is handling a request.
    fn evict_longest_waiting(&mut self) -> Option<Evicted> {
        let (id, _) = self
            .phases
            .iter()
            .filter_map(|(id, phase)| Some((*id, phase.borrow().waiting_since()?)))
            .min_by_key(|(_, since)| *since)?;
        // It may have begun a request since it was looked at; it is then
        // left alone, and the new connection refused this once.
        let evicted = self.phases[&id].send_if_modified(|phase| {
            let waiting = phase.waiting_since().is_some();
            if waiting {
                *phase = Phase::Evicted;
            }
            waiting
        });
        if evicted {
            self.phases.remove(&id).map(Evicted)
        } else {
            None
        }
    }
}

/// A connection closed to make room, until its task has let go of it.
pub(super) struct Evicted(Arc<watch::Sender<Phase>>);

impl Evicted {
    /// Resolves once the connection's task has ended, and with it its
    /// socket: waiting for it keeps the open sockets at `max`, however
    /// fast new connections arrive.
    pub(super) async fn closed(self) {
        self.0.closed().await;
    }
}

/// One admitted connection's place; dropping it frees the place.
pub(super) struct Ticket {
    connections: Arc<Connections>,
    id: u64,
    phase: Arc<watch::Sender<Phase>>,
    /// Held from admission until the ticket is dropped, so that
    /// [`Evicted::closed`] waits for the connection's task to end.
    watch: watch::Receiver<Phase>,
    /// Requests in progress: one at most over HTTP/1, several streams at
    /// once over HTTP/2; the connection is idle only when none is.
    in_flight: Mutex<usize>,
}

impl Ticket {
    /// Follows the connection's phase.
    pub(super) fn watch(&self) -> watch::Receiver<Phase> {
        self.watch.clone()
    }

    /// Marks the connection busy until the returned guard is dropped;
    /// `None` when it was evicted (its request must not be handled).
    pub(super) fn begin_request(self: &Arc<Self>) -> Option<InRequest> {
        let mut in_flight = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        let admitted = self.phase.send_if_modified(|phase| {
            let admitted = *phase != Phase::Evicted;
            if admitted {
                *phase = Phase::Busy;
            }
            admitted
        });
        if admitted {
            *in_flight += 1;
        }
        admitted.then(|| InRequest(Arc::clone(self)))
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut open = self
            .connections
            .open
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        open.phases.remove(&self.id);
    }
}

/// A request in progress; when dropped (answered, or abandoned), the
/// connection waits for its next request.
pub(super) struct InRequest(Arc<Ticket>);

impl Drop for InRequest {
    fn drop(&mut self) {
        let mut in_flight = self.0.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        *in_flight -= 1;
        if *in_flight > 0 {
            return;
        }
        self.0.phase.send_if_modified(|phase| {
            let busy = *phase == Phase::Busy;
            if busy {
                *phase = Phase::Idle {
                    since: Instant::now(),
                };
            }
            busy
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admitted(admission: Admission) -> (Ticket, Option<Evicted>) {
        match admission {
            Admission::Admitted { ticket, evicted } => (ticket, evicted),
            Admission::Full => panic!("refused"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn at_the_limit_the_longest_waiting_connection_makes_room() {
        let connections = Connections::new(2);
        let (first, evicted) = admitted(connections.admit());
        assert!(evicted.is_none());
        tokio::time::advance(std::time::Duration::from_secs(1)).await;
        let (second, _) = admitted(connections.admit());
        let (third, evicted) = admitted(connections.admit());
        let evicted = evicted.expect("room was made");
        assert_eq!(*first.watch().borrow(), Phase::Evicted);
        assert_eq!(connections.len(), 2);
        let first = Arc::new(first);
        assert!(
            first.begin_request().is_none(),
            "an evicted connection handles no request"
        );
        let closed = tokio::spawn(evicted.closed());
        tokio::task::yield_now().await;
        assert!(!closed.is_finished(), "not closed while its ticket lives");
        drop(first);
        closed.await.unwrap();
        assert_eq!(connections.len(), 2, "the evicted place was already freed");
        drop((second, third));
        assert_eq!(connections.len(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn busy_connections_are_never_evicted_and_a_full_server_refuses() {
        let connections = Connections::new(1);
        let (only, _) = admitted(connections.admit());
        let only = Arc::new(only);
        let request = only.begin_request().expect("not evicted");
        assert!(matches!(connections.admit(), Admission::Full));
        drop(request);
        assert!(matches!(*only.watch().borrow(), Phase::Idle { .. }));
        let (_newer, evicted) = admitted(connections.admit());
        assert!(evicted.is_some(), "an idle connection makes room");
        assert_eq!(*only.watch().borrow(), Phase::Evicted);
    }
}
