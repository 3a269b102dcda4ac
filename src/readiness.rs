//! Whether howl is ready: every source that listens has bound its address.
//!
//! `/health` answers `200 ok` only once this holds, and `503 starting`
//! before. Why: sources bind in their own tasks, after the API is up, so a
//! readiness probe (Kubernetes, a load balancer, a test) that trusted an
//! early `200` sent its first lines to a port that was not open yet and got
//! "connection refused". A source that cannot bind ends with its error,
//! which ends the wait too: howl is then failing, not starting.
//!
//! The topology takes one [`ReadyToken`] per listening source when it
//! spawns it (so the count is up before the source's task first runs); the
//! source marks it once its listener is bound. A token dropped unmarked (the
//! source stopped or failed) counts as marked. Until the topology has
//! spawned its sources ([`Readiness::sources_spawned`]) howl is starting
//! too: the API is up before them (a disk buffer is read back first), and a
//! count of zero then only says that no source has taken its token yet.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// The count of listening sources not bound yet, and whether the topology
/// has spawned its sources (cheap to clone: every clone reads the same).
#[derive(Clone, Debug, Default)]
pub struct Readiness {
    pending: Arc<AtomicUsize>,
    spawned: Arc<AtomicBool>,
}

impl Readiness {
    /// Whether the topology has spawned its sources and every listening
    /// one has bound.
    pub fn is_ready(&self) -> bool {
        self.spawned.load(Ordering::Acquire) && self.pending.load(Ordering::Acquire) == 0
    }

    /// Says the topology has spawned its sources, each listening one with
    /// its token taken: from now on the count alone says whether howl is
    /// ready.
    pub fn sources_spawned(&self) {
        self.spawned.store(true, Ordering::Release);
    }

    /// A token for a source that is about to listen: not ready until it is
    /// marked or dropped.
    pub fn pending(&self) -> ReadyToken {
        ReadyToken::on(&self.pending)
    }
}

/// A source's part of the [`Readiness`] count. The default token counts for
/// nothing: sources that do not listen get it.
#[derive(Debug, Default)]
pub struct ReadyToken {
    pending: Option<Arc<AtomicUsize>>,
    marked: AtomicBool,
}

impl ReadyToken {
    /// A pending token on `count`, counted from now.
    fn on(count: &Arc<AtomicUsize>) -> ReadyToken {
        count.fetch_add(1, Ordering::AcqRel);
        ReadyToken {
            pending: Some(Arc::clone(count)),
            marked: AtomicBool::new(false),
        }
    }

    /// Says the source is listening. Only the first call counts.
    pub fn listening(&self) {
        if let Some(pending) = &self.pending
            && !self.marked.swap(true, Ordering::AcqRel)
        {
            pending.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// Another token on the same count, for a source that binds twice (an
    /// HTTP and a gRPC port): taken while this one is pending, so the count
    /// never touches zero between the two.
    pub fn split(&self) -> ReadyToken {
        match &self.pending {
            Some(pending) if !self.marked.load(Ordering::Acquire) => ReadyToken::on(pending),
            _ => ReadyToken::default(),
        }
    }
}

impl Drop for ReadyToken {
    fn drop(&mut self) {
        self.listening();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_once_every_token_is_marked_or_dropped_and_marking_twice_counts_once() {
        let readiness = Readiness::default();
        assert!(!readiness.is_ready(), "no source spawned yet");
        readiness.sources_spawned();
        assert!(readiness.is_ready());
        let http = readiness.pending();
        let grpc = http.split();
        let other = readiness.pending();
        assert!(!readiness.is_ready());
        http.listening();
        http.listening();
        assert!(!readiness.is_ready(), "one mark per token");
        drop(other);
        assert!(!readiness.is_ready());
        grpc.listening();
        assert!(readiness.is_ready());
        drop(http);
        drop(grpc);
        assert!(readiness.is_ready());
        // A split after the mark is no part of the count.
        let late = readiness.pending();
        late.listening();
        let none = late.split();
        assert!(readiness.is_ready());
        drop(none);
        assert!(readiness.is_ready());
        // The default token counts for nothing.
        ReadyToken::default().listening();
        assert!(readiness.is_ready());
    }
}
