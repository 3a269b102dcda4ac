//! The keeper of a worker's partition leases: it announces the worker,
//! renews the leases it holds, balances against the other members, runs
//! one consumer per partition held, and fences each partition by time (see
//! the parent module for the protocol).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_nats::Client;
use async_nats::jetstream::kv::{CreateErrorKind, Operation, Store, UpdateErrorKind};
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::super::consumer::{Stop, consume};
use super::super::{ConsumerSpec, MessageDecoder};
use super::{Claim, Plan, aim};
use crate::components::source::{SourceContext, SourceSender};
use crate::http::{RetryPolicy, error_chain};
use crate::internal_events::{ComponentMetrics, ErrorType, Stage};
use crate::nats::kv::{BucketSpec, key_token, open_bucket};
use crate::nats::stream::API_TIMEOUT;

/// A partition this member holds the lease of.
struct Held {
    /// The lease's revision, for the next compare-and-swap renewal.
    revision: u64,
    state: HeldState,
    /// Cancelled to stop fetching (release, fence, shutdown).
    fetching: CancellationToken,
    /// Cancelled to stop waiting for what is downstream.
    waiting: CancellationToken,
    /// The fence: fetching stops by itself at this instant unless a
    /// renewal pushes it further.
    fence: watch::Sender<Instant>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HeldState {
    /// Fetching.
    Active,
    /// Released on purpose: draining, lease still renewed.
    Releasing,
    /// Fenced or taken over: draining, lease no longer ours to renew.
    Lost,
}

/// Holds this member's leases and runs a consumer per held partition.
pub(super) struct Keeper {
    js: async_nats::jetstream::Context,
    kv: Store,
    bucket: BucketSpec,
    /// Since when this member could not announce itself: after a TTL of
    /// that, the bucket is opened again (created again if it was lost,
    /// with the server's store or by an operator).
    unannounced_since: Option<Instant>,
    plan: Plan,
    /// The key prefix of this consumer's fleet (its name as a token).
    group: String,
    /// This member's id.
    me: String,
    /// The value of this member's key and leases.
    claim: Bytes,
    held: BTreeMap<u32, Held>,
    /// The partitions' consumers; each ends with its index.
    tasks: JoinSet<(u32, anyhow::Result<()>)>,
    /// The deletions of leases whose consumer ended: apart from the loop,
    /// so that a slow server holds no renewal back past its fence.
    deleting: JoinSet<()>,
    client: Client,
    spec: ConsumerSpec,
    decode: Arc<MessageDecoder>,
    retry: RetryPolicy,
    out: SourceSender,
    shutdown: CancellationToken,
    shutdown_limit: CancellationToken,
    metrics: Arc<ComponentMetrics>,
}

impl Keeper {
    /// A keeper for the member this process is, with the lease bucket
    /// `kv` opened.
    pub(super) fn new(
        client: Client,
        spec: ConsumerSpec,
        plan: Plan,
        decode: MessageDecoder,
        retry: RetryPolicy,
        cx: SourceContext,
        kv: Store,
    ) -> anyhow::Result<Self> {
        let metrics = Arc::clone(cx.out.metrics());
        // Unique among the members, and telling where it runs.
        let me = key_token(&format!(
            "{}-{}-{:04x}",
            cx.host,
            std::process::id(),
            fastrand::u16(..)
        ));
        let claim = serde_json::to_vec(&Claim {
            member: me.clone(),
            count: plan.count.get(),
        })
        .map(Bytes::from)?;
        tracing::info!(
            component = %metrics.key(),
            member = %me,
            count = plan.count.get(),
            bucket = %plan.bucket,
            "joining the partitioned consumer `{}`",
            spec.name
        );
        Ok(Self {
            js: async_nats::jetstream::new(client.clone()),
            kv,
            bucket: plan.bucket_spec(),
            unannounced_since: None,
            group: key_token(&spec.name),
            plan,
            me,
            claim,
            held: BTreeMap::new(),
            tasks: JoinSet::new(),
            deleting: JoinSet::new(),
            client,
            spec,
            decode: Arc::new(decode),
            retry,
            out: cx.out,
            shutdown: cx.shutdown,
            shutdown_limit: cx.shutdown_limit,
            metrics,
        })
    }

    fn lease_key(&self, index: u32) -> String {
        format!("{}.lease.{index}", self.group)
    }

    fn member_prefix(&self) -> String {
        format!("{}.member.", self.group)
    }

    pub(super) async fn run(mut self) -> anyhow::Result<()> {
        let mut tick = tokio::time::interval(self.plan.ttl / 3);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut first = true;
        loop {
            tokio::select! {
                _ = self.shutdown.cancelled() => break,
                Some(joined) = self.tasks.join_next(), if !self.tasks.is_empty() => {
                    self.ended(joined)?;
                }
                _ = tick.tick() => {
                    self.renew().await;
                    self.balance(first).await?;
                    first = false;
                }
            }
        }
        // Shutdown: every consumer stops fetching (their tokens are the
        // shutdown's children) and drains; the leases are renewed
        // meanwhile and deleted as each partition is through.
        for held in self.held.values_mut() {
            if held.state == HeldState::Active {
                held.state = HeldState::Releasing;
            }
        }
        while !self.tasks.is_empty() {
            tokio::select! {
                Some(joined) = self.tasks.join_next() => { self.ended(joined)?; }
                _ = tick.tick() => self.renew().await,
            }
        }
        while self.deleting.join_next().await.is_some() {}
        let member = format!("{}{}", self.member_prefix(), self.me);
        let _ = tokio::time::timeout(API_TIMEOUT, self.kv.delete(member)).await;
        Ok(())
    }

    /// Announces this member and renews every lease it still holds.
    async fn renew(&mut self) {
        let member = format!("{}{}", self.member_prefix(), self.me);
        let announced =
            match tokio::time::timeout(self.call_limit(), self.kv.put(member, self.claim.clone()))
                .await
            {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(error)) => Err(error_chain(&error)),
                Err(_) => Err("no answer in time".to_string()),
            };
        match announced {
            Ok(()) => self.unannounced_since = None,
            Err(cause) => {
                self.trouble(&format_args!("cannot announce this member: {cause}"));
                let since = *self.unannounced_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= self.plan.ttl {
                    match open_bucket(&self.js, &self.bucket).await {
                        Ok(kv) => self.kv = kv,
                        Err(failure) => self.trouble(&format_args!("{failure}")),
                    }
                }
            }
        }
        // Every renewal at once: one slow answer must not hold the others
        // back past their fences.
        let mut due = Vec::new();
        let held: Vec<(u32, HeldState, bool, u64)> = self
            .held
            .iter()
            .map(|(i, h)| (*i, h.state, h.fetching.is_cancelled(), h.revision))
            .collect();
        for (index, state, stopped, revision) in held {
            match state {
                HeldState::Lost => {}
                // The fence fired (it logged why): no renewal can undo it.
                HeldState::Active if stopped => self.lose(index, "fenced"),
                _ => due.push((index, revision)),
            }
        }
        let limit = self.call_limit();
        let renewals = due.iter().map(|(index, revision)| {
            let key = self.lease_key(*index);
            let (kv, claim) = (&self.kv, self.claim.clone());
            async move {
                let sent = Instant::now();
                let renewed = tokio::time::timeout(limit, kv.update(&key, claim, *revision)).await;
                (*index, sent, renewed)
            }
        });
        for (index, sent, renewed) in futures_util::future::join_all(renewals).await {
            match renewed {
                Ok(Ok(revision)) => {
                    let half = self.plan.ttl / 2;
                    if let Some(held) = self.held.get_mut(&index) {
                        held.revision = revision;
                        let _ = held.fence.send(sent + half);
                    }
                }
                Ok(Err(error)) if error.kind() == UpdateErrorKind::WrongLastRevision => {
                    tracing::info!(
                        component = %self.metrics.key(),
                        partition = index,
                        "lost partition {index}: its lease expired and was taken, or changed \
                         under this worker; stopped fetching it"
                    );
                    self.lose(index, "taken over");
                }
                Ok(Err(error)) => {
                    self.trouble(&format_args!(
                        "cannot renew the lease of partition {index}: {}",
                        error_chain(&error)
                    ));
                }
                Err(_) => {
                    self.trouble(&format_args!(
                        "cannot renew the lease of partition {index}: no answer in time"
                    ));
                }
            }
        }
    }

    /// The longest wait for one call to the bucket: a quarter of the TTL
    /// (at most the usual API timeout), so that a slow server cannot delay
    /// the renewals of a round past the fences.
    fn call_limit(&self) -> Duration {
        API_TIMEOUT.min(self.plan.ttl / 4)
    }

    /// Stops fetching `index` and forgets its lease (it drains, then ends).
    fn lose(&mut self, index: u32, why: &'static str) {
        if let Some(held) = self.held.get_mut(&index)
            && held.state != HeldState::Lost
        {
            held.fetching.cancel();
            held.state = HeldState::Lost;
            self.metrics.partition_lease_change("lost");
            tracing::debug!(component = %self.metrics.key(), partition = index, why, "lease lost");
            self.report_owned();
        }
    }

    /// Looks at the members, releases what is over this member's aim and
    /// takes free partitions up to it. On the `first` round, a member or
    /// lease with another `count` is fatal (this worker is the odd one).
    async fn balance(&mut self, first: bool) -> anyhow::Result<()> {
        let members = match self.members().await {
            Ok(members) => members,
            Err(cause) => {
                self.trouble(&format_args!("cannot list the members: {cause}"));
                return Ok(());
            }
        };
        let count = self.plan.count.get();
        let mut ids = vec![self.me.clone()];
        for (id, theirs) in &members {
            if *theirs != count {
                let message = format!(
                    "member `{id}` of consumer `{}` runs with partitions.count = {theirs}, this \
                     worker with {count}: every edge and worker of a fleet must use the same count",
                    self.spec.name
                );
                if first {
                    anyhow::bail!("{}: {message}; not starting", self.metrics.key());
                }
                self.metrics
                    .error(ErrorType::ConfigMismatch, Stage::Receiving, &message);
            }
            ids.push(id.clone());
        }
        ids.sort();
        ids.dedup();
        let rank = ids.iter().position(|id| *id == self.me).unwrap_or(0);
        let target = aim(count, ids.len(), rank);
        let active: Vec<u32> = self
            .held
            .iter()
            .filter(|(_, held)| held.state == HeldState::Active)
            .map(|(index, _)| *index)
            .collect();
        if active.len() > target {
            for index in active.iter().rev().take(active.len() - target) {
                self.release(*index, target);
            }
            return Ok(());
        }
        let mut holding = active.len();
        // Start looking where this member's share would begin, so that
        // members do not all contend for partition 0 first.
        let start = (rank * count as usize / ids.len()) as u32;
        for offset in 0..count {
            if holding >= target || self.shutdown.is_cancelled() {
                break;
            }
            let index = (start + offset) % count;
            if self.held.contains_key(&index) {
                continue;
            }
            let key = self.lease_key(index);
            let entry =
                match tokio::time::timeout(self.call_limit(), self.kv.entry(key.clone())).await {
                    Ok(Ok(entry)) => entry,
                    Ok(Err(error)) => {
                        self.trouble(&format_args!(
                            "cannot read the lease of partition {index}: {}",
                            error_chain(&error)
                        ));
                        continue;
                    }
                    Err(_) => continue,
                };
            if let Some(entry) = &entry
                && entry.operation == Operation::Put
            {
                if let Ok(claim) = serde_json::from_slice::<Claim>(&entry.value)
                    && claim.count != count
                    && first
                {
                    anyhow::bail!(
                        "{}: partition {index} is leased by `{}` with partitions.count = {}, \
                         this worker has {count}: every edge and worker of a fleet must use the \
                         same count; not starting",
                        self.metrics.key(),
                        claim.member,
                        claim.count
                    );
                }
                continue;
            }
            let sent = Instant::now();
            match tokio::time::timeout(self.call_limit(), self.kv.create(&key, self.claim.clone()))
                .await
            {
                Ok(Ok(revision)) => {
                    holding += 1;
                    // Logged before the consumer starts: nothing of the
                    // partition is handled before this line.
                    tracing::info!(
                        component = %self.metrics.key(),
                        partition = index,
                        "took partition {index} (consumer `{}-{index}`); holding {holding}, \
                         aiming at {target} of {count} among {} member(s)",
                        self.spec.name,
                        ids.len()
                    );
                    self.start(index, revision, sent);
                }
                Ok(Err(error)) if error.kind() == CreateErrorKind::AlreadyExists => {}
                Ok(Err(error)) => {
                    self.trouble(&format_args!(
                        "cannot take the lease of partition {index}: {}",
                        error_chain(&error)
                    ));
                }
                Err(_) => {}
            }
        }
        Ok(())
    }

    /// The other live members and their counts.
    async fn members(&self) -> Result<Vec<(String, u32)>, String> {
        let prefix = self.member_prefix();
        let listing = async {
            let mut keys = self.kv.keys().await.map_err(|error| error.to_string())?;
            let mut members = Vec::new();
            while let Some(key) = keys.next().await {
                let key = key.map_err(|error| error.to_string())?;
                let Some(id) = key.strip_prefix(&prefix) else {
                    continue;
                };
                if id == self.me {
                    continue;
                }
                let count = match self.kv.get(key.clone()).await {
                    Ok(Some(value)) => serde_json::from_slice::<Claim>(&value)
                        .map(|claim| claim.count)
                        .unwrap_or(0),
                    // Expired or deleted since the listing.
                    Ok(None) => continue,
                    Err(error) => return Err(error.to_string()),
                };
                members.push((id.to_string(), count));
            }
            Ok(members)
        };
        tokio::time::timeout(self.call_limit(), listing)
            .await
            .map_err(|_| "no answer in time".to_string())?
    }

    /// Starts consuming partition `index`, whose lease (at `revision`) was
    /// written by a request sent at `sent`.
    fn start(&mut self, index: u32, revision: u64, sent: Instant) {
        let fetching = self.shutdown.child_token();
        let waiting = self.shutdown_limit.child_token();
        let (fence, deadline) = watch::channel(sent + self.plan.ttl / 2);
        tokio::spawn(fence_partition(
            index,
            fetching.clone(),
            deadline,
            self.plan.ttl / 2,
            Arc::clone(&self.metrics),
        ));
        let mut spec = self.spec.clone();
        spec.name = format!("{}-{index}", self.spec.name);
        spec.filter_subject = self
            .spec
            .filter_subject
            .as_ref()
            .map(|prefix| format!("{prefix}.{index}"));
        let (client, decode, retry, out) = (
            self.client.clone(),
            Arc::clone(&self.decode),
            self.retry,
            self.out.clone(),
        );
        let stop = Stop {
            fetching: fetching.clone(),
            waiting: waiting.clone(),
        };
        self.tasks.spawn(async move {
            let result = consume(client, spec, &decode, retry, out, stop).await;
            (index, result)
        });
        self.held.insert(
            index,
            Held {
                revision,
                state: HeldState::Active,
                fetching,
                waiting,
                fence,
            },
        );
        self.metrics.partition_lease_change("taken");
        self.report_owned();
    }

    /// Stops fetching `index` to give it up: what is downstream gets the
    /// lease TTL to finish; the lease is deleted when the consumer ended.
    fn release(&mut self, index: u32, target: usize) {
        let Some(held) = self.held.get_mut(&index) else {
            return;
        };
        held.state = HeldState::Releasing;
        held.fetching.cancel();
        let waiting = held.waiting.clone();
        let drain = self.plan.ttl;
        tokio::spawn(async move {
            tokio::select! {
                _ = waiting.cancelled() => {}
                _ = tokio::time::sleep(drain) => waiting.cancel(),
            }
        });
        tracing::info!(
            component = %self.metrics.key(),
            partition = index,
            "releasing partition {index} (aiming at {target}): stopped fetching, finishing \
             what is downstream"
        );
        self.report_owned();
    }

    /// A partition's consumer ended: delete its lease if still ours.
    fn ended(
        &mut self,
        joined: Result<(u32, anyhow::Result<()>), tokio::task::JoinError>,
    ) -> anyhow::Result<()> {
        let (index, result) = joined?;
        let Some(held) = self.held.remove(&index) else {
            return result;
        };
        held.waiting.cancel();
        // Only our own revision: a lease someone else took stays theirs.
        // Not awaited here: waiting for a server that does not answer
        // would hold every other lease's renewal back past its fence (the
        // lease then expires by itself instead).
        let key = self.lease_key(index);
        let (kv, revision, limit) = (self.kv.clone(), held.revision, self.call_limit());
        self.deleting.spawn(async move {
            let _ =
                tokio::time::timeout(limit, kv.delete_expect_revision(&key, Some(revision))).await;
        });
        while self.deleting.try_join_next().is_some() {}
        // Logged once the consumer ended: nothing of the partition is
        // handled here after this line.
        if held.state == HeldState::Lost {
            tracing::info!(
                component = %self.metrics.key(),
                partition = index,
                "gave up partition {index} (its lease was lost); what was downstream is through"
            );
        } else {
            self.metrics.partition_lease_change("released");
            tracing::info!(
                component = %self.metrics.key(),
                partition = index,
                "released partition {index}"
            );
        }
        self.report_owned();
        result
    }

    fn report_owned(&self) {
        let active = self
            .held
            .values()
            .filter(|held| held.state == HeldState::Active)
            .count();
        self.metrics.partitions_owned(active);
    }

    fn trouble(&self, message: &dyn std::fmt::Display) {
        self.metrics.warn_limited("lease", message);
    }
}

/// Stops fetching partition `index` when its fence passes without a
/// renewal having pushed it further; also when the keeper is gone.
async fn fence_partition(
    index: u32,
    fetching: CancellationToken,
    mut deadline: watch::Receiver<Instant>,
    half: Duration,
    metrics: Arc<ComponentMetrics>,
) {
    loop {
        let at = *deadline.borrow_and_update();
        tokio::select! {
            _ = fetching.cancelled() => return,
            changed = deadline.changed() => if changed.is_err() {
                fetching.cancel();
                return;
            },
            _ = tokio::time::sleep_until(at) => {
                if *deadline.borrow() <= Instant::now() {
                    fetching.cancel();
                    metrics.error(
                        ErrorType::LeaseLost,
                        Stage::Receiving,
                        &format_args!(
                            "stopped fetching partition {index}: its lease was not renewed for \
                             {half:?} (half the lease TTL), so another worker may take it"
                        ),
                    );
                    return;
                }
            }
        }
    }
}
