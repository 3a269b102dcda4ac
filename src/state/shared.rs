//! The fleet's shared copy of triage state, as this process's registries
//! see it.
//!
//! With `[state.shared.nats]`, the decisions kept in this store
//! (operators' suppressions, classifier verdicts, the audit trail) are also
//! kept in a JetStream key-value bucket that every instance of a fleet
//! reads and writes. The code that talks to NATS (the `fleet` module) sits in a
//! higher layer than the registries that must tell it about changes
//! (`suppressions`, the `llm_suppress` transform), so they meet here, at
//! the store's layer, through the [`SharedState`] trait: the registries
//! call it, `fleet` implements it. Without `[state]` nothing implements it
//! and every caller skips it.
//!
//! Every call is cheap and never waits on the network: a change is queued
//! locally and pushed by a background task; reads are served from an
//! in-memory mirror of the bucket. Only [`SharedState::claim`] talks to the
//! server, with a short bound, and answers [`Claim::Alone`] when it cannot.

use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use tokio::sync::watch;
use tokio::time::Instant;

use super::audit::AuditRecord;
use super::triage::{StoredVerdict, Suppression};

/// The answer to "may I ask the classifier about this pattern?".
#[derive(Debug)]
pub enum Claim {
    /// This instance holds the fleet's claim: it asks, and its verdict is
    /// shared. Keep the lease while asking: dropping it stops renewing the
    /// claim, so that others take over soon if this instance dies.
    Asker(ClaimLease),
    /// Another instance asks; wait for its verdict until `until`, then
    /// claim again, passing `seen` (it may have died).
    Waiter {
        /// When to look at the claim again: a lease from now.
        until: Instant,
        /// The version of the claim seen now: if the claim is still at it
        /// when claimed again, its owner did not renew it for a whole lease
        /// (by this instance's clock), and the claim is taken over.
        seen: u64,
    },
    /// The bucket cannot be reached: ask locally (triage never waits on
    /// NATS).
    Alone,
}

/// Keeps a claim alive while its owner asks.
///
/// A claim is a short lease, renewed in the background while this value
/// lives: a question may take much longer than the lease (retries, a chain
/// of providers), yet an owner killed mid-question is noticed within one
/// lease, before the other instances' held events time out. Dropping it
/// (the question ended, or its task was aborted) stops the renewals.
#[derive(Debug)]
pub struct ClaimLease {
    renewing: Option<tokio::task::AbortHandle>,
}

impl ClaimLease {
    /// A lease renewed by the task behind `renewing`, stopped on drop.
    pub fn renewed_by(renewing: tokio::task::AbortHandle) -> Self {
        Self {
            renewing: Some(renewing),
        }
    }
}

impl Drop for ClaimLease {
    fn drop(&mut self) {
        if let Some(renewing) = self.renewing.take() {
            renewing.abort();
        }
    }
}

/// The fleet's shared triage state (implemented by the `fleet` module).
pub trait SharedState: Send + Sync + std::fmt::Debug {
    /// An operator's decision about `pattern_id` changed here, at `at`:
    /// `Some` is the decision now in force, `None` its deletion. Queued for
    /// the bucket; a change seen later from another instance with an older
    /// `at` does not undo it (the last write wins, by timestamp).
    fn suppression_changed(
        &self,
        pattern_id: &str,
        suppression: Option<&Suppression>,
        at: DateTime<Utc>,
    );

    /// Decisions were recorded in this instance's audit trail: queued for
    /// every other instance's.
    fn audit_recorded(&self, records: &[AuditRecord]);

    /// The fleet's verdict of transform `component` on `pattern_id`, as last
    /// seen in the bucket (any model, live or not: the caller checks).
    fn verdict(&self, component: &str, pattern_id: &str) -> Option<StoredVerdict>;

    /// This instance's transform `component` decided a verdict by asking:
    /// queued for the bucket, where the other instances find it.
    fn verdict_decided(&self, component: &str, pattern_id: &str, verdict: &StoredVerdict);

    /// Claims the one question about `pattern_id` the fleet may ask for
    /// transform `component`. First writer wins. Another instance's claim
    /// is taken over when it is still at `seen` (from the caller's last
    /// [`Claim::Waiter`] about it): not renewed for a whole lease, so its
    /// owner died or stopped asking.
    fn claim(
        &self,
        component: &str,
        pattern_id: &str,
        seen: Option<u64>,
    ) -> BoxFuture<'static, Claim>;

    /// Changes each time something from another instance was applied: wait
    /// on it, then read what you wait for again.
    fn changes(&self) -> watch::Receiver<u64>;
}
