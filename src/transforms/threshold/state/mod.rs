//! The life of one rule's alerts, per group, as Prometheus' alerting rules
//! have it: `inactive → pending → firing → resolved`.
//!
//! - A breaching sample makes an inactive group *pending*, from that
//!   sample's time (`since`).
//! - A pending group whose breach has held for `for_secs` (a breaching
//!   sample at `since + for_secs` or later) *fires*.
//! - A sample that does not breach ends the episode: a pending group goes
//!   back to inactive silently, a firing one *resolves*.
//! - A gap without samples longer than `stale_after` ends it too (missing
//!   data is not a breach; a firing group resolves, marked stale). A gap is
//!   seen two ways: in the data, when the next sample's time is that far
//!   after the previous one's, and in real time, when no sample has
//!   *arrived* for that long ([`Tracker::sweep`]). The second catches a
//!   host that stopped reporting altogether.
//!
//! Only pending and firing groups are remembered, so memory follows the
//! number of live problems, capped by `max_groups`. Everything here is
//! pure: sample time and arrival time are parameters, so the tests drive
//! hours of alerting without sleeping, and the task persists and restores
//! [`Group`]s to survive restarts.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

/// Where a remembered group is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Breaching, not yet for `for_secs`.
    Pending,
    /// Breaching for `for_secs` or more; its alert was sent.
    Firing,
}

/// What is remembered about a pending or firing group (saved in the state
/// store, so a restart neither re-fires nor forgets to resolve).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Group {
    /// Pending or firing.
    pub phase: Phase,
    /// The time of the first breaching sample of this episode.
    pub since: DateTime<Utc>,
    /// When it fired, once it has.
    pub fired_at: Option<DateTime<Utc>>,
    /// The time of the latest sample.
    pub last_seen: DateTime<Utc>,
    /// The latest sample's value.
    #[serde(with = "any_f64")]
    pub last_value: f64,
    /// The latest breaching value (what the alert's summary shows).
    #[serde(with = "any_f64")]
    pub breach_value: f64,
    /// The metric name of the latest sample (the rule's may be a glob).
    pub metric: String,
    /// The group's tags: its `group_by` values.
    pub tags: BTreeMap<String, String>,
    /// When the latest sample arrived, in real time. Not saved: a
    /// restarted howl counts from when it loaded the group.
    #[serde(skip, default = "Instant::now")]
    pub arrived: Instant,
    /// The series (metric name and every tag) of its latest sample, to
    /// notice several series sharing the group (0 = not known yet).
    #[serde(skip)]
    pub series: u64,
}

/// One sample, judged.
#[derive(Debug, Clone, Copy)]
pub struct Observation<'a> {
    /// The group's key.
    pub key: &'a str,
    /// The group's tags (kept when the group starts).
    pub tags: &'a BTreeMap<String, String>,
    /// The sample's metric name.
    pub metric: &'a str,
    /// The sample's time.
    pub at: DateTime<Utc>,
    /// When it arrived, in real time.
    pub arrived: Instant,
    /// Its value.
    pub value: f64,
    /// Whether it meets the rule's condition.
    pub breaching: bool,
    /// The sample's series (a hash of its name and every tag).
    pub series: u64,
}

/// What a group did that the world must hear about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// It fired.
    Fired,
    /// It resolved: the condition cleared, or (`stale`) samples stopped.
    Resolved {
        /// True when it resolved because samples stopped coming.
        stale: bool,
    },
}

/// A firing or a resolution.
#[derive(Debug, Clone)]
pub struct Transition {
    /// The group's key.
    pub key: String,
    /// What happened.
    pub change: Change,
    /// When, in sample time.
    pub at: DateTime<Utc>,
    /// The value of the sample that caused it (the last value seen, when
    /// samples stopped).
    pub value: f64,
    /// The group as it was (with `fired_at` set).
    pub group: Group,
}

impl Transition {
    /// How long the problem lasted at this transition: from the first
    /// breaching sample to `at`.
    pub fn active_for(&self) -> TimeDelta {
        self.at - self.group.since
    }
}

/// A new group could not be tracked: `max_groups` are pending or firing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AtCapacity;

/// The groups of one rule.
#[derive(Debug)]
pub struct Tracker {
    hold_for: TimeDelta,
    stale_after: Duration,
    max_groups: usize,
    groups: HashMap<String, Group>,
    /// Groups that ended on a normal sample: that sample's time and arrival.
    /// A late sample older than it is ignored, as it would be while the
    /// group existed (a breach that was over cannot start again in the
    /// past). Forgotten after `stale_after`.
    ended: HashMap<String, (DateTime<Utc>, Instant)>,
    changed: bool,
    stale_resets: u64,
    /// Samples whose series differed from the previous one of their group.
    mixed_series: u64,
}

impl Tracker {
    /// A tracker firing after `hold_for` of breach, resetting groups
    /// without samples for `stale_after`, holding at most `max_groups`.
    pub fn new(hold_for: Duration, stale_after: Duration, max_groups: usize) -> Self {
        Self {
            hold_for: delta(hold_for),
            stale_after,
            max_groups,
            groups: HashMap::new(),
            ended: HashMap::new(),
            changed: false,
            stale_resets: 0,
            mixed_series: 0,
        }
    }

    /// Takes one sample into account. Samples older than the group's
    /// latest are ignored (the state only moves forward).
    pub fn observe(&mut self, sample: Observation<'_>) -> Result<Vec<Transition>, AtCapacity> {
        let mut out = Vec::new();
        if let Some(group) = self.groups.get(sample.key) {
            if sample.at < group.last_seen {
                return Ok(out);
            }
            if (sample.at - group.last_seen) > delta(self.stale_after) {
                let at = group.last_seen + delta(self.stale_after);
                out.extend(self.reset(sample.key, at));
            }
        }
        if !self.groups.contains_key(sample.key) {
            if let Some((ended_at, arrived)) = self.ended.get_mut(sample.key) {
                if sample.at < *ended_at {
                    return Ok(out);
                }
                (*ended_at, *arrived) = (sample.at, sample.arrived);
            }
            if !sample.breaching {
                return Ok(out);
            }
            if self.groups.len() >= self.max_groups {
                return Err(AtCapacity);
            }
            self.changed = true;
            self.groups.insert(
                sample.key.to_string(),
                Group {
                    phase: Phase::Pending,
                    since: sample.at,
                    fired_at: None,
                    last_seen: sample.at,
                    last_value: sample.value,
                    breach_value: sample.value,
                    metric: sample.metric.to_string(),
                    tags: sample.tags.clone(),
                    arrived: sample.arrived,
                    series: sample.series,
                },
            );
        }
        let hold_for = self.hold_for;
        let Some(group) = self.groups.get_mut(sample.key) else {
            return Ok(out);
        };
        if group.series != 0 && group.series != sample.series {
            self.mixed_series += 1;
        }
        group.series = sample.series;
        group.last_seen = sample.at;
        group.last_value = sample.value;
        group.arrived = sample.arrived;
        if group.metric != sample.metric {
            group.metric = sample.metric.to_string();
        }
        if !sample.breaching {
            if let Some(group) = self.groups.remove(sample.key) {
                self.changed = true;
                if self.ended.len() < self.max_groups {
                    self.ended
                        .insert(sample.key.to_string(), (sample.at, sample.arrived));
                }
                if group.phase == Phase::Firing {
                    out.push(transition(
                        sample.key,
                        Change::Resolved { stale: false },
                        sample.at,
                        sample.value,
                        group,
                    ));
                }
            }
            return Ok(out);
        }
        group.breach_value = sample.value;
        if group.phase == Phase::Pending && sample.at - group.since >= hold_for {
            group.phase = Phase::Firing;
            group.fired_at = Some(sample.at);
            self.changed = true;
            out.push(transition(
                sample.key,
                Change::Fired,
                sample.at,
                sample.value,
                group.clone(),
            ));
        }
        Ok(out)
    }

    /// Resets the groups no sample has arrived for in `stale_after` of
    /// real time (as of `now`); firing ones resolve, as stale.
    pub fn sweep(&mut self, now: Instant) -> Vec<Transition> {
        let stale_after = self.stale_after;
        self.ended
            .retain(|_, (_, arrived)| now.saturating_duration_since(*arrived) <= stale_after);
        let stale: Vec<(String, DateTime<Utc>)> = self
            .groups
            .iter()
            .filter(|(_, g)| now.saturating_duration_since(g.arrived) > self.stale_after)
            .map(|(key, g)| (key.clone(), g.last_seen + delta(self.stale_after)))
            .collect();
        stale
            .into_iter()
            .filter_map(|(key, at)| self.reset(&key, at))
            .collect()
    }

    /// Forgets a group whose samples stopped; a firing one resolves at `at`.
    fn reset(&mut self, key: &str, at: DateTime<Utc>) -> Option<Transition> {
        let group = self.groups.remove(key)?;
        self.changed = true;
        self.stale_resets += 1;
        (group.phase == Phase::Firing).then(|| {
            let value = group.last_value;
            transition(key, Change::Resolved { stale: true }, at, value, group)
        })
    }

    /// The pending and firing groups.
    pub fn groups(&self) -> impl Iterator<Item = (&String, &Group)> {
        self.groups.iter()
    }

    /// How many groups are pending and how many firing.
    pub fn counts(&self) -> (usize, usize) {
        let firing = self
            .groups
            .values()
            .filter(|g| g.phase == Phase::Firing)
            .count();
        (self.groups.len() - firing, firing)
    }

    /// Puts back a group saved before a restart.
    pub fn restore(&mut self, key: String, group: Group) {
        self.groups.insert(key, group);
    }

    /// How many samples, since the last call, belonged to another series
    /// than the previous sample of their group: `group_by` leaves out a tag
    /// that tells series apart, and the group flaps between them.
    pub fn take_mixed_series(&mut self) -> u64 {
        std::mem::take(&mut self.mixed_series)
    }

    /// How many groups were forgotten because their samples stopped, since
    /// the last call.
    pub fn take_stale_resets(&mut self) -> u64 {
        std::mem::take(&mut self.stale_resets)
    }

    /// Whether a group started, fired or ended since the last call: the
    /// moments the state must be saved at once.
    /// Where group `key` is: pending, firing, or `None` (ok).
    pub fn phase(&self, key: &str) -> Option<Phase> {
        self.groups.get(key).map(|group| group.phase)
    }

    pub fn take_changed(&mut self) -> bool {
        std::mem::take(&mut self.changed)
    }
}

fn transition(
    key: &str,
    change: Change,
    at: DateTime<Utc>,
    value: f64,
    group: Group,
) -> Transition {
    Transition {
        key: key.to_string(),
        change,
        at,
        value,
        group,
    }
}

fn delta(duration: Duration) -> TimeDelta {
    TimeDelta::from_std(duration).unwrap_or(TimeDelta::MAX)
}

/// Saves floats JSON cannot hold (`±Inf`) as strings, so a breach by an
/// infinite value survives a restart too.
mod any_f64 {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(value: &f64, serializer: S) -> Result<S::Ok, S::Error> {
        if value.is_finite() {
            value.serialize(serializer)
        } else {
            value.to_string().serialize(serializer)
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either {
            Number(f64),
            Text(String),
        }
        match Either::deserialize(deserializer)? {
            Either::Number(value) => Ok(value),
            Either::Text(text) => text.parse().map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests;
