//! Change reports: what changed in the last window, per pattern space.
//!
//! Counts are kept for the current and the previous window only, per
//! pattern seen in either, so the cost is bounded by `max_patterns`. A
//! report compares the two: patterns created in the window are `new`;
//! patterns seen in the previous window but not in this one are `gone`;
//! patterns counted at least `spike_factor` times their previous count (and
//! at least `spike_min_count` times) `spike`. Then the window rolls over.
//! After a restart the first window has no baseline, so it reports only
//! `new` patterns.

use std::collections::HashMap;
use std::time::Duration;

use crate::patterns::{Miner, PatternId};

/// When and how to report.
#[derive(Debug, Clone)]
pub struct ReportSettings {
    /// Window length; zero turns reports off.
    pub interval: Duration,
    /// Spike threshold, relative to the previous window.
    pub spike_factor: f64,
    /// Spike threshold, absolute.
    pub spike_min_count: u64,
}

/// The kinds of change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Created in this window.
    New,
    /// Seen in the previous window, not in this one.
    Gone,
    /// Much more frequent than in the previous window.
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
    /// Lines in this window.
    pub count: u64,
    /// Lines in the previous window.
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

    /// The changes of the window that ends now, then starts the next one.
    pub fn roll(&mut self, miner: &Miner, settings: &ReportSettings) -> Vec<Change> {
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
        let mut spikes: Vec<(&PatternId, &u64)> = self
            .current
            .iter()
            .filter(|(id, count)| {
                let baseline = self.previous.get(id).copied().unwrap_or(0);
                baseline > 0
                    && **count >= settings.spike_min_count
                    && **count as f64 >= settings.spike_factor * baseline as f64
            })
            .collect();
        spikes.sort();
        changes.extend(spikes.into_iter().map(|(id, count)| {
            describe(
                Kind::Spike,
                *id,
                *count,
                self.previous.get(id).copied().unwrap_or(0),
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

    fn settings() -> ReportSettings {
        ReportSettings {
            interval: Duration::from_secs(60),
            spike_factor: 5.0,
            spike_min_count: 10,
        }
    }

    #[test]
    fn reports_new_gone_and_spiking_patterns() {
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
        let first = windows.roll(&miner, &settings());
        assert_eq!(first.iter().filter(|c| c.kind == Kind::New).count(), 2);
        assert!(
            first.iter().all(|c| c.kind == Kind::New),
            "no baseline yet: {first:?}"
        );

        feed(
            &mut windows,
            &mut miner,
            "job cleanup finished in 15 ms",
            40,
        );
        let brand_new = feed(&mut windows, &mut miner, "disk /var is 97 percent full", 1);
        let second = windows.roll(&miner, &settings());
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
