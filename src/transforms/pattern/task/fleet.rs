//! The transform's side of the fleet's shared pattern spaces (see
//! [`crate::nats::pattern_spaces`]): start the link and wait (bounded)
//! for its first look at the bucket, and apply what it hands over between
//! batches, never per line.

use std::collections::HashMap;
use std::time::Duration;

use super::{PatternObjects, Space, State};
use crate::nats::kv::SharedNats;
use crate::nats::pattern_spaces::{SpaceLink, Update};
use crate::patterns::{Miner, MinerSnapshot};
use crate::state::StateError;
use crate::state::patterns::load_saved_at;
use crate::transforms::pattern::anomaly::Rates;

/// How long the transform waits at start for the fleet's spaces before it
/// mines on its local ones (the bucket may be out of reach; mining must
/// not wait on it for long).
pub(super) const STARTUP_SYNC: Duration = Duration::from_secs(5);

/// How long the link may take, as the transform stops, to make the saves
/// it holds.
pub(super) const FINISH_LIMIT: Duration = Duration::from_secs(5);

impl State {
    /// Starts the link to the fleet's spaces and waits (at most
    /// [`STARTUP_SYNC`]) until it has compared them with the local ones:
    /// a scope that moved here continues from its former owner's space.
    pub(super) async fn join_fleet(&mut self, shared: &SharedNats) -> Result<(), StateError> {
        let namespace = self.settings.namespace.clone();
        let mut local = HashMap::new();
        for scope in self.spaces.keys() {
            local.insert(
                scope.clone(),
                load_saved_at(&self.store, &namespace, scope)?,
            );
        }
        let mut link = SpaceLink::start(shared, &namespace, local);
        let deadline = tokio::time::Instant::now() + STARTUP_SYNC;
        loop {
            match tokio::time::timeout_at(deadline, link.update()).await {
                Ok(Some(Update::Ready)) => break,
                Ok(Some(update)) => self.apply_fleet_update(update),
                Ok(None) => break,
                Err(_) => {
                    tracing::warn!(
                        component = %namespace,
                        "the fleet's pattern spaces did not arrive within {}s; mining on the local ones until they do",
                        STARTUP_SYNC.as_secs()
                    );
                    break;
                }
            }
        }
        self.fleet = Some(link);
        // What was loaded is in the local store at the next save tick.
        Ok(())
    }

    /// Applies what the link handed over since the last call: cheap when
    /// nothing was (one channel poll).
    pub(super) fn take_fleet_updates(&mut self) {
        while let Some(update) = self.fleet.as_mut().and_then(SpaceLink::try_update) {
            self.apply_fleet_update(update);
        }
    }

    fn apply_fleet_update(&mut self, update: Update) {
        match update {
            Update::Loaded {
                scope,
                revision,
                saved_at_ms,
                snapshot,
            } => self.continue_from(scope, revision, saved_at_ms, snapshot),
            Update::Based {
                scope,
                revision,
                push,
            } => {
                let Some(space) = self.spaces.get_mut(&scope) else {
                    return;
                };
                if revision > space.base {
                    space.base = revision;
                }
                if push {
                    space.dirty = true;
                    self.new_since_save = true;
                }
            }
            Update::Ready => {}
        }
    }

    /// Continues `scope` from another instance's save at `revision`; the
    /// patterns made here since this instance's last save are dropped.
    fn continue_from(
        &mut self,
        scope: String,
        revision: u64,
        saved_at_ms: i64,
        snapshot: MinerSnapshot,
    ) {
        if let Some(space) = self.spaces.get(&scope)
            && space.base.is_some_and(|base| base >= revision)
        {
            return;
        }
        let miner = match Miner::restore(self.settings.miner.clone(), snapshot) {
            Ok(miner) => miner.in_scope(&scope),
            Err(error) => {
                tracing::warn!(
                    component = %self.settings.namespace,
                    scope,
                    "the fleet's copy of this pattern space cannot be restored ({error}); keeping this instance's"
                );
                return;
            }
        };
        if !self.spaces.contains_key(&scope) {
            if self.spaces.len() >= self.settings.max_scopes {
                // Beyond `max_scopes` here: lines of it go to the overflow.
                return;
            }
            let rates = Rates::new(&self.settings.namespace, &scope);
            let fresh = Space::fresh(
                Miner::new(self.settings.miner.clone())
                    .unwrap_or_else(|_| unreachable!("validated at build")),
                rates,
            );
            self.spaces.insert(scope.clone(), fresh);
        }
        let Some(space) = self.spaces.get_mut(&scope) else {
            return;
        };
        space.miner = miner;
        space.objects = PatternObjects::default();
        space.base = Some(revision);
        space.saved_at_ms = saved_at_ms;
        space.dirty = false;
        space.reloaded = true;
        self.new_since_save = true;
    }
}
