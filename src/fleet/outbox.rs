//! Local changes on their way to the bucket.
//!
//! Every change this instance makes is first written here, in the state
//! store, and removed once the bucket took it (or a later change from
//! another instance made it moot). So a change made while NATS is out of
//! reach, even one followed by a restart, is pushed when NATS is back.
//! One entry per key: a later local change of the same key replaces an
//! earlier one that was not pushed yet (only the last counts).

use std::sync::{Arc, Mutex};

use crate::state::{StateError, StateHandle};

/// The table of pending changes.
const TABLE: &str = "shared_state_outbox";

/// Which bucket a change goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bucket {
    /// The state bucket (decisions, verdicts).
    State,
    /// The audit bucket.
    Audit,
}

impl Bucket {
    fn prefix(self) -> &'static str {
        match self {
            Self::State => "s/",
            Self::Audit => "a/",
        }
    }
}

/// A change waiting to be pushed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    /// Where it goes.
    pub bucket: Bucket,
    /// Its key in that bucket.
    pub key: String,
    /// The value.
    pub value: Vec<u8>,
}

/// The outbox (cheap to clone).
#[derive(Debug, Clone)]
pub struct Outbox {
    state: StateHandle,
    /// Serialises "remove if unchanged" against a new change of the key.
    lock: Arc<Mutex<()>>,
}

impl Outbox {
    /// The outbox kept in `state`.
    pub fn new(state: StateHandle) -> Self {
        Self {
            state,
            lock: Arc::new(Mutex::new(())),
        }
    }

    /// Queues changes, in one transaction.
    pub fn add(&self, changes: &[Pending]) -> Result<(), StateError> {
        let put: Vec<(String, Vec<u8>)> = changes
            .iter()
            .map(|c| (format!("{}{}", c.bucket.prefix(), c.key), c.value.clone()))
            .collect();
        let _guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        self.state.store()?.write(TABLE, &put, &[])
    }

    /// Every change waiting, state bucket first, in key order.
    pub fn pending(&self) -> Result<Vec<Pending>, StateError> {
        let store = self.state.store()?;
        let mut all = Vec::new();
        for bucket in [Bucket::State, Bucket::Audit] {
            for (key, value) in store.scan(TABLE, bucket.prefix())? {
                all.push(Pending {
                    bucket,
                    key: key[bucket.prefix().len()..].to_string(),
                    value,
                });
            }
        }
        Ok(all)
    }

    /// The change of `key` (state bucket) waiting, if any.
    pub fn waiting(&self, key: &str) -> Result<Option<Vec<u8>>, StateError> {
        self.state
            .store()?
            .get(TABLE, &format!("{}{key}", Bucket::State.prefix()))
    }

    /// Removes `change`, unless a later change of its key replaced it
    /// meanwhile (that one still has to go).
    pub fn done(&self, change: &Pending) -> Result<(), StateError> {
        let key = format!("{}{}", change.bucket.prefix(), change.key);
        let _guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let store = self.state.store()?;
        if store.get(TABLE, &key)?.as_deref() == Some(change.value.as_slice()) {
            store.write(TABLE, &[], &[key])?;
        }
        Ok(())
    }

    /// How many changes wait.
    pub fn count(&self) -> Result<usize, StateError> {
        Ok(self.state.store()?.scan(TABLE, "")?.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_replaced_while_pushed_stays_queued() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::new(StateHandle::new(dir.path().to_path_buf()));
        let first = Pending {
            bucket: Bucket::State,
            key: "supp.p".into(),
            value: b"1".to_vec(),
        };
        outbox.add(std::slice::from_ref(&first)).unwrap();
        let pushed = outbox.pending().unwrap();
        assert_eq!(pushed, vec![first.clone()]);
        let second = Pending {
            value: b"2".to_vec(),
            ..first.clone()
        };
        outbox.add(std::slice::from_ref(&second)).unwrap();
        outbox.done(&first).unwrap();
        assert_eq!(outbox.waiting("supp.p").unwrap(), Some(b"2".to_vec()));
        outbox.done(&second).unwrap();
        assert_eq!(outbox.count().unwrap(), 0);
    }
}
