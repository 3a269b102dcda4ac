//! Change reports: what changed in the last window, per pattern space.
//!
//! Counts are kept for the current and the previous window only, per
//! pattern seen in either, so the cost is bounded by `max_patterns`. A
//! report compares the two: patterns created in the window are `new`;
//! patterns seen in the previous window but not in this one are `gone`.
//! Its `spike`s are the spike alerts fired in the window (see
//! [`super::anomaly`]): one definition of a spike, so the report and the
//! alerts agree. Then the window rolls over. After a restart the first
//! window has no previous one, so it reports no `gone` patterns.

use std::collections::HashMap;
use std::time::Duration;

use super::anomaly::Spiked;
use crate::patterns::{Miner, PatternId};

/// When to report.
#[derive(Debug, Clone)]
pub struct ReportSettings {
    /// Window length; zero turns reports off.
    pub interval: Duration,
}

/// The kinds of change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Created in this window.
    New,
    /// Seen in the previous window, not in this one.
    Gone,
    /// Fired a spike alert in this window.
    Spike,
}

impl Kind {
    /// The name used in events.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::New => "new",
            Kind::Gone => "gone",
            Kind::Spike => "spike",
        }
    }
}

/// One change of one pattern.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// What happened.
    pub kind: Kind,
    /// The pattern.
    pub id: PatternId,
    /// Its template now (empty if it was evicted meanwhile).
    pub template: String,
    /// Its level.
    pub level: &'static str,
    /// Lines in this window (a spike: in the rate window that fired it).
    pub count: u64,
    /// Lines in the previous window (a spike: its baseline per rate
    /// window, rounded).
    pub baseline: u64,
}

/// The counts of one pattern space.
#[derive(Debug, Default)]
pub struct Windows {
    current: HashMap<PatternId, u64>,
    previous: HashMap<PatternId, u64>,
    created: Vec<PatternId>,
}

impl Windows {
    /// Counts one line of pattern `id`.
    pub fn record(&mut self, id: PatternId, is_new: bool) {
        *self.current.entry(id).or_insert(0) += 1;
        if is_new {
            self.created.push(id);
        }
    }

    /// The changes of the window that ends now, then starts the next one;
    /// `spikes` are those fired in the window.
    pub fn roll(&mut self, miner: &Miner, spikes: Vec<Spiked>) -> Vec<Change> {
        let describe = |kind, id: PatternId, count, baseline| {
            let (template, level) = miner.get(id).map_or((String::new(), "unknown"), |p| {
                (p.template.to_string(), p.level.as_str())
            });
            Change {
                kind,
                id,
                template,
                level,
                count,
                baseline,
            }
        };
        let mut changes = Vec::new();
        for id in std::mem::take(&mut self.created) {
            changes.push(describe(
                Kind::New,
                id,
                self.current.get(&id).copied().unwrap_or(0),
                0,
            ));
        }
        let mut gone: Vec<(&PatternId, &u64)> = self
            .previous
            .iter()
            .filter(|(id, _)| !self.current.contains_key(id))
            .collect();
        gone.sort();
        changes.extend(
            gone.into_iter()
                .map(|(id, baseline)| describe(Kind::Gone, *id, 0, *baseline)),
        );
        changes.extend(spikes.into_iter().map(|spike| {
            describe(
                Kind::Spike,
                spike.id,
                spike.count,
                spike.baseline.round() as u64,
            )
        }));
        self.previous = std::mem::take(&mut self.current);
        changes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::patterns::MinerConfig;

    #[test]
    fn reports_new_gone_and_the_spikes_fired_in_the_window() {
        let mut miner = Miner::new(MinerConfig::default()).unwrap();
        let mut windows = Windows::default();
        let feed = |windows: &mut Windows, miner: &mut Miner, line: &str, times: usize| {
            let mut id = None;
            for _ in 0..times {
                let obs = miner.observe(line, None, 0);
                windows.record(obs.id, obs.is_new);
                id = Some(obs.id);
            }
            id.unwrap()
        };
        let steady = feed(&mut windows, &mut miner, "job cleanup finished in 12 ms", 4);
        let fading = feed(&mut windows, &mut miner, "cache warmed with 100 keys", 3);
        let first = windows.roll(&miner, Vec::new());
        assert_eq!(first.iter().filter(|c| c.kind == Kind::New).count(), 2);
        assert!(
            first.iter().all(|c| c.kind == Kind::New),
            "no previous window yet: {first:?}"
        );

        feed(
            &mut windows,
            &mut miner,
            "job cleanup finished in 15 ms",
            40,
        );
        let brand_new = feed(&mut windows, &mut miner, "disk /var is 97 percent full", 1);
        let spiked = Spiked {
            id: steady,
            count: 40,
            baseline: 3.6,
        };
        let second = windows.roll(&miner, vec![spiked]);
        let kinds: Vec<(Kind, PatternId, u64, u64)> = second
            .iter()
            .map(|c| (c.kind, c.id, c.count, c.baseline))
            .collect();
        assert_eq!(
            kinds,
            vec![
                (Kind::New, brand_new, 1, 0),
                (Kind::Gone, fading, 0, 3),
                (Kind::Spike, steady, 40, 4),
            ]
        );
        assert!(
            second[2].template.starts_with("job cleanup finished in "),
            "{second:?}"
        );
    }
}
