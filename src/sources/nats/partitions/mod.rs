//! `partitions.*`: one owner per partition across a fleet of workers.
//!
//! Edges (the `nats` sink with `partition.*`) publish each event on
//! `<prefix>.<index>`, the index a stable hash of its scope (a service).
//! Every worker names the same `consumer` and `filter_subject` (the
//! prefix, `logs`): partition `i` is consumed through the durable pull
//! consumer `<consumer>-<i>` filtered on `<prefix>.<i>`, and at any time by
//! **one** worker, the holder of its lease. So a scope's events meet one
//! pattern space at a time, and the ids it mints stay consistent.
//!
//! # Leases
//!
//! Leases live in their own key-value bucket (`lease_bucket`) whose
//! `max_age` is the lease TTL: nats-server 2.9 has no per-key TTL, so a
//! key that is not rewritten within the TTL is removed by the bucket's age
//! limit, silently (no watch event). Keys, for consumer `workers`:
//!
//! - `workers.lease.<i>`: who holds partition `i` (`{"member", "count"}`);
//!   taken with `create` (only if absent: first writer wins), renewed with
//!   `update(revision)` (compare-and-swap: a renewal after someone else
//!   took it fails, and the old holder learns it lost the partition);
//! - `workers.member.<id>`: each worker's announcement, rewritten at every
//!   renewal; the live members are the keys present.
//!
//! A worker renews every TTL/3. Contenders poll `entry()` of the leases
//! they lack at the same pace (there is no expiry event to wait for).
//!
//! # Fencing, by time
//!
//! A holder that could not renew a lease for TTL/2, counted from when it
//! *sent* its last successful renewal, stops fetching that partition by
//! itself, whatever the reason (server away, process stalled, network
//! cut): a timer per partition does it, independent of the renewals. The
//! server removes the lease no earlier than TTL after that renewal was
//! stored, later than it was sent; only then can another worker `create`
//! it. So two workers never fetch one partition at once, with a margin of
//! TTL/2 for clock drift between the two (a rate, not an offset: the
//! server's and the worker's clocks are never compared) and for a pull
//! stopped mid-flight. What was fetched before the stop but not yet handed
//! downstream is nak'ed at once; what is downstream finishes and is
//! acknowledged as usual. A killed holder's partitions move after at most
//! TTL (its leases expire) plus one poll (TTL/3).
//!
//! # Balance
//!
//! The members, sorted by id, split `count` exactly: each aims at
//! `count / members`, and the first `count % members` one more (16 among 3:
//! 6, 5, 5). A worker holding more than its aim releases the extras
//! gracefully: it stops fetching, lets what is downstream finish (at most
//! the lease TTL, renewing the lease meanwhile so nobody starts on the
//! partition before its events are through), then deletes the lease. One
//! holding fewer takes free leases. A newcomer therefore gets partitions
//! within a few polls; a departed member's share is taken once its member
//! key and leases expired. At shutdown a worker releases everything the
//! same way, so a graceful restart hands partitions over at once, not
//! after the TTL.
//!
//! # What must agree
//!
//! Every edge and worker of a fleet must use the same `count`. Workers
//! write theirs in their member key and leases: a worker that finds a live
//! member or lease with another count refuses to start (and a running one
//! reports it as an error). Edges cannot be checked: an edge with a larger
//! count publishes to partitions nobody consumes (the stream keeps them).

//!
//! The module reads: the options and the start (here) → [`keeper`] (the
//! leases, the balance, a consumer per partition held, the fences).

mod keeper;

use std::num::NonZeroU32;
use std::time::Duration;

use async_nats::Client;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{ConsumerSpec, MessageDecoder};
use crate::components::source::SourceContext;
use crate::diagnostic::BuildError;
use crate::http::{RetryPolicy, error_chain};
use crate::nats::kv::{BucketSpec, open_bucket, valid_bucket_name};
use crate::nats::partition::check_count;
use crate::options::Seconds;
use keeper::Keeper;

/// The `partitions` table of the `nats` source.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct PartitionsConfig {
    /// How many partitions (1 to 1024): the edges' `partition.count`,
    /// the same on every edge and worker. More partitions than workers
    /// balance better (16 over 3 workers: 6/5/5) and move in smaller
    /// pieces when a worker dies; each costs a durable consumer and a
    /// lease renewal every `lease_ttl_secs / 3`.
    count: u32,
    /// The key-value bucket holding the leases, created (its `max_age` the
    /// lease TTL) when missing. Not the shared-state bucket: its age limit
    /// would expire everything in it.
    #[serde(default = "default_bucket")]
    lease_bucket: String,
    /// How long a lease lasts without renewal: a dead worker's partitions
    /// move after at most this (plus a third of it); a holder that cannot
    /// renew stops fetching after half of it. Shorter moves faster but
    /// makes a worker give up its partitions on a shorter server hiccup.
    #[serde(default = "default_ttl")]
    lease_ttl_secs: Seconds,
}

fn default_bucket() -> String {
    "howl_leases".to_string()
}

fn default_ttl() -> Seconds {
    Seconds::from_secs(10)
}

/// A checked `partitions` table.
#[derive(Debug, Clone)]
pub(super) struct Plan {
    count: NonZeroU32,
    bucket: String,
    ttl: Duration,
}

impl Plan {
    /// The lease bucket: one value per key, entries expiring after the
    /// TTL.
    fn bucket_spec(&self) -> BucketSpec {
        BucketSpec {
            name: self.bucket.clone(),
            history: 1,
            max_age: self.ttl,
        }
    }
}

impl PartitionsConfig {
    /// Checks the options.
    pub(super) fn build(&self) -> Result<Plan, BuildError> {
        let count = check_count(self.count, "partitions.count")?;
        if !valid_bucket_name(&self.lease_bucket) {
            return Err(BuildError::new(format!(
                "`partitions.lease_bucket` {:?} is not a bucket name: letters, digits, `_` and `-`",
                self.lease_bucket
            ))
            .for_option("partitions.lease_bucket"));
        }
        let ttl = self.lease_ttl_secs.get();
        if ttl < Duration::from_secs(1) {
            return Err(BuildError::new(
                "`partitions.lease_ttl_secs` must be at least 1 (leases are renewed every third of it)",
            )
            .for_option("partitions.lease_ttl_secs"));
        }
        Ok(Plan {
            count,
            bucket: self.lease_bucket.clone(),
            ttl,
        })
    }
}

/// What a member key and a lease hold.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Claim {
    pub(super) member: String,
    pub(super) count: u32,
}

/// The partitions a member aims at: `count` split exactly among
/// `members`, the first `count % members` (by rank) taking one more.
pub(super) fn aim(count: u32, members: usize, rank: usize) -> usize {
    let count = count as usize;
    let members = members.max(1);
    count / members + usize::from(rank < count % members)
}

/// Runs the partitioned source until shutdown.
pub(super) async fn run(
    client: Client,
    spec: ConsumerSpec,
    plan: Plan,
    decode: MessageDecoder,
    retry: RetryPolicy,
    cx: SourceContext,
) -> anyhow::Result<()> {
    let metrics = cx.out.metrics();
    let js = async_nats::jetstream::new(client.clone());
    let kv = match open_bucket(&js, &plan.bucket_spec()).await {
        Ok(kv) => kv,
        Err(failure) => anyhow::bail!("{}: `partitions.lease_bucket`: {failure}", metrics.key()),
    };
    let found = kv
        .status()
        .await
        .map_err(|error| {
            anyhow::anyhow!(
                "{}: cannot read the lease bucket's settings: {}",
                metrics.key(),
                error_chain(&error)
            )
        })?
        .max_age();
    if found != plan.ttl {
        anyhow::bail!(
            "{}: the lease bucket `{}` expires entries after {found:?}, but \
             `partitions.lease_ttl_secs` is {:?}: leases expire by the bucket's age limit, so \
             they must agree (use another bucket, or the bucket's TTL on every worker)",
            metrics.key(),
            plan.bucket,
            plan.ttl
        );
    }
    Keeper::new(client, spec, plan, decode, retry, cx, kv)?
        .run()
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_split_the_partitions_exactly() {
        assert_eq!(
            (0..3).map(|rank| aim(16, 3, rank)).collect::<Vec<_>>(),
            [6, 5, 5]
        );
        assert_eq!((0..2).map(|rank| aim(16, 2, rank)).sum::<usize>(), 16);
        assert_eq!(aim(16, 1, 0), 16);
        // More members than partitions: some hold none.
        assert_eq!(
            (0..5).map(|rank| aim(3, 5, rank)).collect::<Vec<_>>(),
            [1, 1, 1, 0, 0]
        );
        for members in 1..40 {
            let total: usize = (0..members).map(|rank| aim(1024, members, rank)).sum();
            assert_eq!(total, 1024, "{members} members");
        }
    }
}
