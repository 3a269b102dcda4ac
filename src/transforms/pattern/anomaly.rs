//! Spikes and silences of known patterns, as stateful alerts on `ID.anomalies`.
//!
//! **Spikes.** Every pattern's lines are counted in fixed buckets of
//! `rate_window_secs` (one counter increment per line, in a `Vec` indexed by
//! the miner's slot: no hashing). When a bucket ends, its count is compared
//! with the pattern's baseline, an exponentially weighted moving average of
//! its past buckets (bias-corrected, so a young baseline is the plain mean of
//! the buckets it has seen). The pattern *spikes* when the count is at least
//! `spike_factor` × baseline **and** at least `spike_min_count`, once the
//! baseline has seen [`WARMUP_BUCKETS`] full buckets: a brand-new pattern is
//! `new`, not a spike, and the bucket a pattern was created in is partial
//! and never counted. While a spike fires its baseline is frozen (the spike
//! must not become the norm it is compared with); it resolves at the first
//! bucket below half the firing threshold (hysteresis: a rate hovering at
//! the threshold does not flap). The change report's `spike` entries are the
//! spikes fired in its window: one definition of a spike.
//!
//! **Silences.** An expectation (`[[transforms.ID.expect]]`, by pattern id
//! or template glob, optionally in one scope) fires when no matching line
//! came for `every` (since the last one, or since the expectation was first
//! watched), and resolves when a line comes back.
//!
//! Both are stateful alerts (`.alert.state` = `firing` / `resolved`, one
//! `.alert.key` per kind, transform, scope and pattern), saved in the state
//! store before their events are sent: a crash may lose an event but never
//! the knowledge that an alert fires, so it still resolves, and a restart
//! does not fire it again. A resolution repeats its firing's key and
//! severity as saved, though the configuration changed since: a sink knows
//! an alert by them.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use vrl::value::{ObjectMap, Value};

use super::storm::raw_id;
use crate::event::Event;
use crate::patterns::{Level, Miner, Observation, PatternId};

/// Full buckets a baseline needs before its pattern may spike.
pub const WARMUP_BUCKETS: u32 = 5;
/// `.alert.name` of spike alerts.
pub const SPIKE_ALERT: &str = "HowlPatternSpike";
/// `.alert.name` of silence alerts.
pub const SILENCE_ALERT: &str = "HowlPatternSilence";
/// Spikes kept for the change report between two reports, per scope.
const MAX_REPORTED: usize = 1000;

/// What a spike is: the one definition the alerts and the change report
/// share.
#[derive(Debug, Clone, Copy)]
pub struct SpikeRule {
    /// `spike_factor`.
    pub factor: f64,
    /// `spike_min_count`.
    pub min_count: u64,
}

impl SpikeRule {
    /// The count a bucket needs to spike over `baseline` (at least one line).
    pub fn threshold(&self, baseline: f64) -> f64 {
        (self.factor * baseline).max(self.min_count as f64).max(1.0)
    }

    /// Whether `count` spikes over `baseline`.
    pub fn fires(&self, count: u64, baseline: f64) -> bool {
        count as f64 >= self.threshold(baseline)
    }

    /// Whether a spike fired over `baseline` is over at `count`: below half
    /// the firing threshold.
    pub fn resolves(&self, count: u64, baseline: f64) -> bool {
        (count as f64) < self.threshold(baseline) / 2.0
    }
}

/// How rates are measured.
#[derive(Debug, Clone, Copy)]
pub struct RateSettings {
    /// The bucket length (`rate_window_secs`).
    pub window: Duration,
    /// The spike definition.
    pub rule: SpikeRule,
    /// The EWMA weight of a new bucket, from the half-life.
    pub alpha: f64,
}

impl RateSettings {
    /// Settings whose baseline forgets half its weight every `half_life`.
    pub fn new(window: Duration, rule: SpikeRule, half_life: Duration) -> Self {
        let buckets = half_life.as_secs_f64() / window.as_secs_f64().max(1e-3);
        Self {
            window,
            rule,
            alpha: 1.0 - 0.5_f64.powf(1.0 / buckets.max(1e-3)),
        }
    }
}

/// A bias-corrected exponentially weighted moving average of bucket counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Baseline {
    sum: f64,
    weight: f64,
    buckets: u32,
}

impl Baseline {
    /// Adds one full bucket's count.
    fn add(&mut self, count: u64, alpha: f64) {
        self.sum = (1.0 - alpha) * self.sum + alpha * count as f64;
        self.weight = (1.0 - alpha) * self.weight + alpha;
        self.buckets = self.buckets.saturating_add(1);
    }

    /// Lines per bucket; 0 before the first bucket.
    pub fn value(&self) -> f64 {
        if self.weight > 0.0 {
            self.sum / self.weight
        } else {
            0.0
        }
    }

    /// Whether enough buckets were seen to call a count a spike.
    pub fn warm(&self) -> bool {
        self.buckets >= WARMUP_BUCKETS
    }

    /// The baseline in buckets `ratio` times as long: `rate_window_secs`
    /// changed between two runs.
    fn rescaled(self, ratio: f64) -> Self {
        Self {
            sum: self.sum * ratio,
            ..self
        }
    }
}

/// A firing spike: what its resolution compares with and says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Spike {
    /// Its `.alert.key`, kept so that its resolution has the same (a sink
    /// keeps a declared firing alert until a resolution with its key and
    /// labels). Empty in stores of the first version: see
    /// [`Rates::restore`].
    #[serde(default)]
    pub key: String,
    /// When it fired (Unix ms).
    pub fired_at_ms: i64,
    /// The baseline it fired over (frozen while it fires).
    pub baseline: f64,
    /// The count that fired it.
    pub count: u64,
    /// The pattern's template and level (for a pattern evicted meanwhile).
    pub template: String,
    /// Its level.
    pub level: Level,
}

/// One pattern's rate.
#[derive(Debug, Clone, Default)]
struct Track {
    id: Option<PatternId>,
    /// Lines in the current bucket.
    count: u64,
    /// Created in the current bucket: its count is not a full bucket's.
    partial: bool,
    baseline: Baseline,
    /// Boxed: one track per pattern slot (up to `max_patterns` × the
    /// scopes), and few fire; inline it would more than double a track.
    spike: Option<Box<Spike>>,
    /// The expectation its lines satisfy.
    expect: Option<u16>,
}

/// A spike firing or resolving.
#[derive(Debug, Clone, PartialEq)]
pub struct SpikeChange {
    /// The pattern.
    pub id: PatternId,
    /// `true`: it fired; `false`: it resolved.
    pub firing: bool,
    /// The bucket's count.
    pub count: u64,
    /// The spike (template and level as of now).
    pub spike: Spike,
}

/// A spike for the change report.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spiked {
    /// The pattern.
    pub id: PatternId,
    /// The bucket's count.
    pub count: u64,
    /// The baseline it spiked over.
    pub baseline: f64,
}

/// The rates of one pattern space.
#[derive(Debug, Default)]
pub struct Rates {
    /// The transform's id and the space's scope, for the alert keys.
    component: String,
    scope: String,
    /// By miner slot.
    tracks: Vec<Track>,
    /// Spikes fired since the last report.
    reported: Vec<Spiked>,
    /// Firing spikes whose pattern is gone (evicted, or not restored):
    /// resolved at the next bucket's end.
    orphans: Vec<(PatternId, Spike)>,
}

/// The rates as saved: baselines and firing spikes by pattern id (slots
/// do not survive a restart), and the bucket length they count lines in
/// (absent in stores of the first version: taken as unchanged).
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct SavedRates {
    tracks: Vec<SavedTrack>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    window_ms: Option<u64>,
}

#[derive(Debug, Serialize, Deserialize)]
struct SavedTrack {
    #[serde(with = "raw_id")]
    id: PatternId,
    baseline: Baseline,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    spike: Option<Spike>,
}

impl Rates {
    /// The rates of scope `scope` of transform `component`, none counted.
    pub fn new(component: &str, scope: &str) -> Self {
        Self {
            component: component.to_string(),
            scope: scope.to_string(),
            ..Self::default()
        }
    }

    /// Counts one line; returns the expectation it satisfies. The hot
    /// path: an index, a compare and an increment, unless the pattern is
    /// new to its slot or its template changed.
    #[inline]
    pub fn record(
        &mut self,
        observation: &Observation<'_>,
        expects: &Expects,
        scope: &str,
    ) -> Option<u16> {
        let slot = observation.slot as usize;
        if slot >= self.tracks.len() {
            self.tracks.resize_with(slot + 1, Track::default);
        }
        let track = &mut self.tracks[slot];
        if observation.is_new || track.id != Some(observation.id) {
            let old = std::mem::take(track);
            if let (Some(id), Some(spike)) = (old.id, old.spike) {
                // The slot's pattern was evicted before the bucket ended.
                self.orphans.push((id, *spike));
            }
            track.id = Some(observation.id);
            track.partial = true;
            track.expect = expects.find(observation.id, observation.template, scope);
        } else if observation.changed {
            track.expect = expects.find(observation.id, observation.template, scope);
        }
        track.count += 1;
        track.expect
    }

    /// Ends the bucket: the spikes that fired or resolved. `report` keeps
    /// the fired ones for the next change report.
    pub fn roll(
        &mut self,
        miner: &Miner,
        settings: &RateSettings,
        now_ms: i64,
        report: bool,
    ) -> Vec<SpikeChange> {
        let rule = settings.rule;
        let mut changes: Vec<SpikeChange> = std::mem::take(&mut self.orphans)
            .into_iter()
            .map(|(id, spike)| SpikeChange {
                id,
                firing: false,
                count: 0,
                spike,
            })
            .collect();
        for (slot, track) in self.tracks.iter_mut().enumerate() {
            let Some(id) = track.id else { continue };
            if miner.id_at(slot as u32) != Some(id) {
                // Evicted: its state goes with it, resolving what fired.
                if let Some(spike) = track.spike.take() {
                    changes.push(SpikeChange {
                        id,
                        firing: false,
                        count: 0,
                        spike: *spike,
                    });
                }
                *track = Track::default();
                continue;
            }
            let count = std::mem::take(&mut track.count);
            if std::mem::take(&mut track.partial) {
                continue;
            }
            let current = |spike: &Spike| {
                let mut spike = spike.clone();
                if let Some(view) = miner.get(id) {
                    spike.template = view.template.to_string();
                    spike.level = view.level;
                }
                spike
            };
            match &track.spike {
                Some(spike) if rule.resolves(count, spike.baseline) => {
                    changes.push(SpikeChange {
                        id,
                        firing: false,
                        count,
                        spike: current(spike),
                    });
                    track.spike = None;
                    track.baseline.add(count, settings.alpha);
                }
                // Still firing: the baseline stays frozen.
                Some(_) => {}
                None if track.baseline.warm() && rule.fires(count, track.baseline.value()) => {
                    let (template, level) = miner
                        .get(id)
                        .map(|view| (view.template.to_string(), view.level))
                        .unwrap_or_default();
                    let spike = Spike {
                        key: alert_key(Kind::Spike, &self.component, &self.scope, &id.to_string()),
                        fired_at_ms: now_ms,
                        baseline: track.baseline.value(),
                        count,
                        template,
                        level,
                    };
                    if report && self.reported.len() < MAX_REPORTED {
                        self.reported.push(Spiked {
                            id,
                            count,
                            baseline: spike.baseline,
                        });
                    }
                    changes.push(SpikeChange {
                        id,
                        firing: true,
                        count,
                        spike: spike.clone(),
                    });
                    track.spike = Some(Box::new(spike));
                }
                None => track.baseline.add(count, settings.alpha),
            }
        }
        changes
    }

    /// The spikes fired since the last call.
    pub fn take_reported(&mut self) -> Vec<Spiked> {
        std::mem::take(&mut self.reported)
    }

    /// What is saved: baselines that saw a bucket and firing spikes,
    /// counted in buckets of `settings.window`.
    pub fn saved(&self, settings: &RateSettings) -> SavedRates {
        let tracks = self
            .tracks
            .iter()
            .filter_map(|track| {
                let id = track.id?;
                (track.baseline.buckets > 0 || track.spike.is_some()).then(|| SavedTrack {
                    id,
                    baseline: track.baseline,
                    spike: track.spike.as_deref().cloned(),
                })
            })
            .chain(self.orphans.iter().map(|(id, spike)| SavedTrack {
                id: *id,
                baseline: Baseline::default(),
                spike: Some(spike.clone()),
            }))
            .collect();
        SavedRates {
            tracks,
            window_ms: u64::try_from(settings.window.as_millis()).ok(),
        }
    }

    /// The rates saved by an earlier run, put back in the slots `miner`
    /// (restored from the same save) gives their patterns. Firing spikes of
    /// patterns it no longer has resolve at the first bucket's end.
    /// Baselines counted in buckets of another length (`rate_window_secs`
    /// changed) are scaled to `settings.window`: lines per 60 s compared
    /// with a 10-minute bucket would make every pattern spike.
    /// A spike fired by the first version has no key saved: it is given
    /// the key that version sent (`spike:SCOPE:ID`), or it would never
    /// resolve in the sinks.
    pub fn restore(
        saved: SavedRates,
        miner: &Miner,
        expects: &Expects,
        (component, scope): (&str, &str),
        settings: &RateSettings,
    ) -> Self {
        let mut rates = Rates {
            tracks: vec![Track::default(); miner.slots()],
            ..Rates::new(component, scope)
        };
        let ratio = match saved.window_ms {
            Some(ms) if ms > 0 => settings.window.as_secs_f64() * 1000.0 / ms as f64,
            _ => 1.0,
        };
        for mut saved in saved.tracks {
            saved.baseline = saved.baseline.rescaled(ratio);
            if let Some(spike) = &mut saved.spike {
                spike.baseline *= ratio;
                if spike.key.is_empty() {
                    spike.key = format!("spike:{scope}:{}", saved.id);
                }
            }
            match miner.slot_of(saved.id) {
                Some(slot) if (slot as usize) < rates.tracks.len() => {
                    let template = miner.get(saved.id).map(|view| view.template);
                    rates.tracks[slot as usize] = Track {
                        id: Some(saved.id),
                        count: 0,
                        // The bucket howl starts in is not compared: a
                        // source catching up on the lines written while
                        // howl was down would make every busy pattern spike.
                        partial: true,
                        baseline: saved.baseline,
                        spike: saved.spike.map(Box::new),
                        expect: template.and_then(|t| expects.find(saved.id, t, scope)),
                    };
                }
                _ => {
                    if let Some(spike) = saved.spike {
                        rates.orphans.push((saved.id, spike));
                    }
                }
            }
        }
        rates
    }
}

/// How an expectation finds its patterns.
#[derive(Debug, Clone, PartialEq)]
pub enum Matcher {
    /// One pattern id.
    Id(PatternId),
    /// A glob over templates: `*` matches any run of characters, anything
    /// else itself (templates are full of `[`, `?` and `<...>`).
    Template(String),
}

/// One `[[expect]]`.
#[derive(Debug, Clone)]
pub struct Expect {
    /// `id = "..."` or `template = "..."` (and `scope = "..."`): its name in
    /// messages and in the state store.
    pub label: String,
    /// Which patterns.
    pub matcher: Matcher,
    /// Only lines of this scope count; `None`: any scope.
    pub scope: Option<String>,
    /// The longest expected gap.
    pub every: Duration,
    /// `.alert.severity` of its silence.
    pub severity: String,
}

/// Why an expectation gets no line from the patterns known so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unheard {
    /// It matches none of them.
    NoMatch,
    /// It matches some, but an earlier expectation takes each of them.
    Shadowed,
}

impl Expect {
    /// Whether lines of this pattern, in this scope, are what it expects.
    fn matches(&self, id: PatternId, template: &str, scope: &str) -> bool {
        self.scope.as_deref().is_none_or(|s| s == scope)
            && match &self.matcher {
                Matcher::Id(wanted) => *wanted == id,
                Matcher::Template(glob) => glob_matches(glob, template),
            }
    }
}

/// Every expectation, in configuration order (the first that matches a
/// pattern takes its lines).
#[derive(Debug, Clone, Default)]
pub struct Expects(pub Vec<Expect>);

impl Expects {
    /// The expectation the pattern's lines satisfy, if any.
    pub fn find(&self, id: PatternId, template: &str, scope: &str) -> Option<u16> {
        self.0
            .iter()
            .position(|expect| expect.matches(id, template, scope))
            .and_then(|index| u16::try_from(index).ok())
    }

    /// The expectations that no known pattern (`(id, template, scope)`)
    /// will feed, each with why: a typo in an id or a glob, or an earlier
    /// expectation taking the same patterns, would otherwise show only as
    /// a silence alert after `every`.
    pub fn unheard<'a>(
        &self,
        patterns: impl IntoIterator<Item = (PatternId, &'a str, &'a str)>,
    ) -> Vec<(usize, Unheard)> {
        let mut matched = vec![false; self.0.len()];
        let mut taken = vec![false; self.0.len()];
        for (id, template, scope) in patterns {
            let mut first = true;
            for (index, expect) in self.0.iter().enumerate() {
                if expect.matches(id, template, scope) {
                    matched[index] = true;
                    taken[index] |= first;
                    first = false;
                }
            }
        }
        (0..self.0.len())
            .filter_map(|index| match (matched[index], taken[index]) {
                (false, _) => Some((index, Unheard::NoMatch)),
                (true, false) => Some((index, Unheard::Shadowed)),
                (true, true) => None,
            })
            .collect()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// `*` matches any run of characters (across spaces); every other
/// character matches itself.
pub fn glob_matches(glob: &str, text: &str) -> bool {
    let mut parts = glob.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

/// A firing silence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Silent {
    /// Its `.alert.key`, kept so that its resolution has the same.
    pub key: String,
    /// When it fired (Unix ms).
    pub fired_at_ms: i64,
    /// The scope in its key.
    pub scope: String,
    /// The pattern in its key (the last seen, or the expected id).
    pub id: String,
    /// Its `.alert.severity` (a label in Alertmanager: a resolution with
    /// another would not resolve it); `None` in stores of the first
    /// version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<String>,
}

/// One expectation's watch.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Watch {
    label: String,
    /// When it was first watched (Unix ms).
    since_ms: i64,
    last_seen_ms: Option<i64>,
    #[serde(default)]
    last_scope: String,
    #[serde(default, with = "raw_id::option")]
    last_id: Option<PatternId>,
    #[serde(default)]
    firing: Option<Silent>,
}

/// A silence firing or resolving.
#[derive(Debug, Clone, PartialEq)]
pub struct SilenceChange {
    /// `true`: it fired; `false`: it resolved.
    pub firing: bool,
    /// Its key, scope and pattern.
    pub silent: Silent,
    /// The expectation's `every` (unknown for a removed expectation).
    pub every: Option<Duration>,
    /// The last matching line (Unix ms).
    pub last_seen_ms: Option<i64>,
    /// The last matching pattern, for its template and level.
    pub last: Option<(String, PatternId)>,
    /// `.alert.severity`.
    pub severity: String,
    /// The expectation.
    pub label: String,
}

/// The watches of every expectation.
#[derive(Debug, Default)]
pub struct Silences {
    /// The `pattern` transform's id, in the alert keys.
    component: String,
    watches: Vec<Watch>,
    /// Firing silences of expectations no longer configured.
    orphans: Vec<Watch>,
    /// Whether a watch changed since the last save.
    pub dirty: bool,
}

/// The silences as saved.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct SavedSilences {
    watches: Vec<Watch>,
}

impl Silences {
    /// The watches of `expects` of transform `component`, continuing those
    /// saved (matched by label); new ones are watched from `now_ms`. Times
    /// after `now_ms` (saved by a run whose clock was ahead) count as
    /// `now_ms`, or a silence would wait for the clock to catch up.
    pub fn restore(saved: SavedSilences, expects: &Expects, component: &str, now_ms: i64) -> Self {
        let mut saved = saved.watches;
        for watch in &mut saved {
            watch.since_ms = watch.since_ms.min(now_ms);
            watch.last_seen_ms = watch.last_seen_ms.map(|last| last.min(now_ms));
        }
        let watches = expects
            .0
            .iter()
            .map(
                |expect| match saved.iter().position(|w| w.label == expect.label) {
                    Some(at) => saved.swap_remove(at),
                    None => Watch {
                        label: expect.label.clone(),
                        since_ms: now_ms,
                        ..Watch::default()
                    },
                },
            )
            .collect();
        Self {
            component: component.to_string(),
            watches,
            orphans: saved.into_iter().filter(|w| w.firing.is_some()).collect(),
            dirty: true,
        }
    }

    /// A line of expectation `index` at `now_ms`.
    #[inline]
    pub fn seen(&mut self, index: u16, scope: &str, id: PatternId, now_ms: i64) {
        let Some(watch) = self.watches.get_mut(index as usize) else {
            return;
        };
        watch.last_seen_ms = Some(now_ms);
        if watch.last_id != Some(id) || watch.last_scope != scope {
            watch.last_id = Some(id);
            watch.last_scope = scope.to_string();
        }
        self.dirty = true;
    }

    /// The silences that fire or resolve at `now_ms`.
    pub fn check(&mut self, expects: &Expects, now_ms: i64) -> Vec<SilenceChange> {
        let mut changes: Vec<SilenceChange> = std::mem::take(&mut self.orphans)
            .into_iter()
            .filter_map(|watch| {
                let silent = watch.firing?;
                Some(SilenceChange {
                    firing: false,
                    every: None,
                    last_seen_ms: watch.last_seen_ms,
                    last: watch.last_id.map(|id| (watch.last_scope, id)),
                    severity: silent
                        .severity
                        .clone()
                        .unwrap_or_else(|| "warning".to_string()),
                    silent,
                    label: watch.label,
                })
            })
            .collect();
        for (watch, expect) in self.watches.iter_mut().zip(&expects.0) {
            let every_ms = i64::try_from(expect.every.as_millis()).unwrap_or(i64::MAX);
            let from = watch.last_seen_ms.unwrap_or(watch.since_ms);
            let overdue = now_ms.saturating_sub(from) >= every_ms;
            let silent = match (overdue, &watch.firing) {
                (true, None) => {
                    let scope = expect
                        .scope
                        .clone()
                        .unwrap_or_else(|| watch.last_scope.clone());
                    let id = match (&expect.matcher, watch.last_id) {
                        (Matcher::Id(id), _) => id.to_string(),
                        (_, Some(id)) => id.to_string(),
                        (Matcher::Template(_), None) => label_id(&expect.label).to_string(),
                    };
                    let silent = Silent {
                        key: alert_key(Kind::Silence, &self.component, &scope, &id),
                        fired_at_ms: now_ms,
                        scope,
                        id,
                        severity: Some(expect.severity.clone()),
                    };
                    watch.firing = Some(silent.clone());
                    Some((true, silent))
                }
                (false, Some(_)) => watch.firing.take().map(|silent| (false, silent)),
                _ => None,
            };
            if let Some((firing, silent)) = silent {
                changes.push(SilenceChange {
                    firing,
                    every: Some(expect.every),
                    last_seen_ms: watch.last_seen_ms,
                    last: watch.last_id.map(|id| (watch.last_scope.clone(), id)),
                    // What it fired with, though `severity` changed since.
                    severity: silent
                        .severity
                        .clone()
                        .unwrap_or_else(|| expect.severity.clone()),
                    silent,
                    label: expect.label.clone(),
                });
            }
        }
        if !changes.is_empty() {
            self.dirty = true;
        }
        changes
    }

    /// What is saved.
    pub fn saved(&self) -> SavedSilences {
        SavedSilences {
            watches: self.watches.iter().chain(&self.orphans).cloned().collect(),
        }
    }
}

/// A stable id for an expectation that never matched: FNV-1a of its label.
fn label_id(label: &str) -> PatternId {
    let hash = label.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    PatternId::from_u64(hash)
}

/// The pattern an anomaly is about.
pub struct About<'a> {
    /// Its id (text).
    pub id: &'a str,
    /// Its template.
    pub template: &'a str,
    /// Its scope ("" without `scope`).
    pub scope: &'a str,
    /// Its level.
    pub level: Level,
}

/// The `.alert.key` of an anomaly: `KIND:COMPONENT:SCOPE:ID`. The
/// component keeps two `pattern` transforms apart: the same line has the
/// same id in both (ids are seeded by scope only), and one's resolution
/// must not resolve the other's alert in a sink both feed.
fn alert_key(kind: Kind, component: &str, scope: &str, id: &str) -> String {
    format!("{}:{component}:{scope}:{id}", kind.as_str())
}

/// The event of a spike firing or resolving.
pub fn spike_event(
    change: &SpikeChange,
    scope: &str,
    settings: &RateSettings,
    now: DateTime<Utc>,
) -> Event {
    let window_secs = settings.window.as_secs_f64();
    let baseline = change.spike.baseline;
    let id = change.id.to_string();
    let template = change.spike.template.as_str();
    let within = in_scope(scope);
    let rate = format!(
        "{} lines in {}s (baseline {} per {}s)",
        change.count,
        number(window_secs),
        number(baseline),
        number(window_secs)
    );
    let summary = if change.firing {
        format!("log pattern spiking{within}: {rate}: {template}")
    } else {
        format!("log pattern back to its rate{within}: {rate}: {template}")
    };
    let mut details = ObjectMap::new();
    details.insert("count".into(), int(change.count));
    details.insert("baseline".into(), Value::from_f64_or_zero(baseline));
    details.insert(
        "factor".into(),
        Value::from_f64_or_zero(settings.rule.factor),
    );
    details.insert("min_count".into(), int(settings.rule.min_count));
    details.insert(
        "threshold".into(),
        Value::from_f64_or_zero(settings.rule.threshold(baseline)),
    );
    details.insert("window_secs".into(), Value::from_f64_or_zero(window_secs));
    anomaly_event(
        Kind::Spike,
        change.firing,
        &About {
            id: &id,
            template,
            scope,
            level: change.spike.level,
        },
        Alert {
            key: change.spike.key.clone(),
            severity: "warning",
            summary,
            fired_at_ms: change.spike.fired_at_ms,
        },
        ("rate", details),
        now,
    )
}

/// The event of a silence firing or resolving; `about` is its pattern's
/// template and level when known.
pub fn silence_event(
    change: &SilenceChange,
    about: Option<(&str, Level)>,
    now: DateTime<Utc>,
) -> Event {
    let silent = &change.silent;
    let (template, level) = about.unwrap_or(("", Level::Unknown));
    let within = in_scope(&silent.scope);
    let what = if template.is_empty() {
        change.label.clone()
    } else {
        template.to_string()
    };
    let every = change
        .every
        .map(|every| number(every.as_secs_f64()))
        .unwrap_or_else(|| "?".to_string());
    let last = change
        .last_seen_ms
        .and_then(DateTime::<Utc>::from_timestamp_millis);
    let summary = match (change.firing, last) {
        (true, Some(last)) => format!(
            "expected log line silent{within}: none for {}s (expected every {every}s): {what}",
            (now - last).num_seconds().max(0)
        ),
        (true, None) => {
            format!("expected log line never seen{within} (expected every {every}s): {what}")
        }
        (false, _) => format!("expected log line back{within}: {what}"),
    };
    let mut details = ObjectMap::new();
    if let Some(every) = change.every {
        details.insert(
            "expected_every_secs".into(),
            Value::from_f64_or_zero(every.as_secs_f64()),
        );
    }
    details.insert(
        "last_seen".into(),
        last.map_or(Value::Null, Value::Timestamp),
    );
    details.insert("expectation".into(), Value::from(change.label.as_str()));
    anomaly_event(
        Kind::Silence,
        change.firing,
        &About {
            id: &silent.id,
            template,
            scope: &silent.scope,
            level,
        },
        Alert {
            key: silent.key.clone(),
            severity: &change.severity,
            summary,
            fired_at_ms: silent.fired_at_ms,
        },
        ("silence", details),
        now,
    )
}

/// The two kinds of anomaly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A rate far above its baseline.
    Spike,
    /// An expected pattern gone quiet.
    Silence,
}

impl Kind {
    /// `spike` or `silence`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Spike => "spike",
            Kind::Silence => "silence",
        }
    }
}

struct Alert<'a> {
    key: String,
    severity: &'a str,
    summary: String,
    fired_at_ms: i64,
}

/// The shape both kinds share, the fields `threshold`'s alerts have: the
/// alert sinks render, throttle and resolve them unchanged.
fn anomaly_event(
    kind: Kind,
    firing: bool,
    about: &About<'_>,
    alert: Alert<'_>,
    (name, details): (&str, ObjectMap),
    now: DateTime<Utc>,
) -> Event {
    let state = if firing { "firing" } else { "resolved" };
    let fired_at = DateTime::<Utc>::from_timestamp_millis(alert.fired_at_ms).unwrap_or(now);
    let mut object = ObjectMap::new();
    object.insert(
        "name".into(),
        Value::from(match kind {
            Kind::Spike => SPIKE_ALERT,
            Kind::Silence => SILENCE_ALERT,
        }),
    );
    object.insert("kind".into(), Value::from(kind.as_str()));
    object.insert("state".into(), Value::from(state));
    object.insert("key".into(), Value::from(alert.key));
    object.insert("severity".into(), Value::from(alert.severity));
    object.insert("summary".into(), Value::from(alert.summary.as_str()));
    object.insert("description".into(), Value::from(about.template));
    object.insert("started_at".into(), Value::Timestamp(fired_at));
    object.insert("fired_at".into(), Value::Timestamp(fired_at));
    object.insert(
        "active_for_secs".into(),
        Value::from_f64_or_zero(((now - fired_at).num_milliseconds().max(0) as f64) / 1000.0),
    );
    if !firing {
        object.insert("resolved_at".into(), Value::Timestamp(now));
    }
    let mut pattern = ObjectMap::new();
    pattern.insert("id".into(), Value::from(about.id));
    pattern.insert("template".into(), Value::from(about.template));
    pattern.insert("scope".into(), Value::from(about.scope));
    pattern.insert("level".into(), Value::from(about.level.as_str()));

    let mut event = Event::from_value(Value::from(alert.summary));
    event.insert_field("timestamp", now);
    event.insert_field("alert", Value::Object(object));
    event.insert_field("pattern", Value::Object(pattern));
    event.insert_field(name, Value::Object(details));
    event
}

fn in_scope(scope: &str) -> String {
    if scope.is_empty() {
        String::new()
    } else {
        format!(" in {scope}")
    }
}

fn int(value: u64) -> Value {
    Value::Integer(value.min(i64::MAX as u64) as i64)
}

fn number(value: f64) -> String {
    crate::transforms::threshold::alert_number(value)
}

#[cfg(test)]
mod tests;
