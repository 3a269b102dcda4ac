use super::*;

const STALE: Duration = Duration::from_secs(120);

/// A tracker for `value > 80` held for five minutes, and a clock: sample
/// `n` seconds after the start happens (and arrives) at `start + n`.
struct Clock {
    tracker: Tracker,
    start: DateTime<Utc>,
    real: Instant,
}

impl Clock {
    fn new(hold_secs: u64) -> Self {
        Self {
            tracker: Tracker::new(Duration::from_secs(hold_secs), STALE, 100),
            start: DateTime::from_timestamp(1_763_800_000, 0).unwrap(),
            real: Instant::now(),
        }
    }

    fn at(&self, secs: i64) -> DateTime<Utc> {
        self.start + TimeDelta::seconds(secs)
    }

    /// One sample of `key` at `secs` with `value`.
    fn sample(&mut self, key: &str, secs: i64, value: f64) -> Vec<Transition> {
        let tags = BTreeMap::from([("host".to_string(), key.to_string())]);
        let arrived = self.real + Duration::from_secs(secs.max(0) as u64);
        self.tracker
            .observe(Observation {
                key,
                tags: &tags,
                metric: "cpu_usage_percent",
                at: self.at(secs),
                arrived,
                value,
                breaching: value > 80.0,
                series: 1,
            })
            .expect("room for the group")
    }

    /// Samples of `key` every 15 s over `from..=to` seconds, all `value`;
    /// returns every transition with the second it happened.
    fn run(&mut self, key: &str, from: i64, to: i64, value: f64) -> Vec<(i64, Change)> {
        (from..=to)
            .step_by(15)
            .flat_map(|secs| {
                self.sample(key, secs, value)
                    .into_iter()
                    .map(move |t| (secs, t.change))
            })
            .collect()
    }
}

const FIRED: Change = Change::Fired;
const RESOLVED: Change = Change::Resolved { stale: false };
const STALE_RESOLVED: Change = Change::Resolved { stale: true };

#[test]
fn a_breach_is_pending_until_it_has_held_for_the_whole_time_then_fires_once() {
    let mut clock = Clock::new(300);
    assert!(clock.run("web-1", 0, 285, 95.0).is_empty());
    assert_eq!(clock.tracker.counts(), (1, 0), "pending");
    let fired = clock.sample("web-1", 300, 96.0);
    assert_eq!(fired.len(), 1);
    let fired = &fired[0];
    assert_eq!(fired.change, FIRED);
    assert_eq!(fired.at, clock.at(300));
    assert_eq!(fired.active_for(), TimeDelta::seconds(300));
    assert_eq!((fired.value, fired.group.breach_value), (96.0, 96.0));
    assert_eq!(fired.group.fired_at, Some(clock.at(300)));
    assert_eq!(clock.tracker.counts(), (0, 1), "firing");
    assert!(
        clock.run("web-1", 315, 900, 99.0).is_empty(),
        "it fires once, however long it lasts"
    );
}

#[test]
fn an_interrupted_breach_never_fires_and_the_next_one_counts_from_its_own_start() {
    let mut clock = Clock::new(300);
    assert!(clock.run("web-1", 0, 240, 95.0).is_empty());
    assert!(clock.sample("web-1", 255, 40.0).is_empty());
    assert_eq!(clock.tracker.counts(), (0, 0), "back to inactive");
    assert_eq!(clock.run("web-1", 270, 600, 95.0), [(570, FIRED)]);
}

#[test]
fn resolves_when_the_condition_clears_with_the_time_it_fired() {
    let mut clock = Clock::new(300);
    clock.run("web-1", 0, 360, 95.0);
    let resolved = clock.sample("web-1", 375, 42.0);
    assert_eq!(resolved.len(), 1);
    let resolved = &resolved[0];
    assert_eq!(resolved.change, RESOLVED);
    assert_eq!(resolved.group.fired_at, Some(clock.at(300)));
    assert_eq!(resolved.active_for(), TimeDelta::seconds(375));
    assert_eq!(resolved.value, 42.0, "the value that cleared it");
    assert_eq!(resolved.group.breach_value, 95.0, "the last breaching one");
    assert_eq!(clock.tracker.counts(), (0, 0));
    assert!(clock.sample("web-1", 390, 42.0).is_empty());
}

#[test]
fn a_gap_in_the_samples_resets_the_group_instead_of_counting_as_breach() {
    let mut clock = Clock::new(300);
    clock.run("web-1", 0, 120, 95.0);
    // Nothing for 200 s (more than the 120 s stale_after): the breach
    // starts over at 320 and needs its own five minutes.
    assert_eq!(clock.run("web-1", 320, 640, 95.0), [(620, FIRED)]);
    // A firing group whose samples pause too long resolves as stale, at
    // the moment it went stale, before the next sample starts over.
    let after_gap = clock.sample("web-1", 1000, 95.0);
    assert_eq!(after_gap.len(), 1);
    assert_eq!(after_gap[0].change, STALE_RESOLVED);
    assert_eq!(
        after_gap[0].at,
        clock.at(635 + 120),
        "the last sample was at 635"
    );
    assert_eq!(clock.tracker.counts(), (1, 0), "pending again from 1000");
}

#[test]
fn samples_that_stop_arriving_resolve_a_firing_group_on_the_sweep() {
    let mut clock = Clock::new(300);
    clock.run("web-1", 0, 300, 95.0);
    clock.run("web-2", 0, 60, 95.0);
    let last_arrival = clock.real + Duration::from_secs(300);
    assert!(
        clock
            .tracker
            .sweep(last_arrival + STALE - Duration::from_secs(1))
            .is_empty(),
        "web-2 was reset quietly (pending), web-1 is not stale yet"
    );
    assert_eq!(clock.tracker.counts(), (0, 1));
    let swept = clock
        .tracker
        .sweep(last_arrival + STALE + Duration::from_secs(1));
    assert_eq!(swept.len(), 1);
    assert_eq!(
        (swept[0].key.as_str(), swept[0].change),
        ("web-1", STALE_RESOLVED)
    );
    assert_eq!(swept[0].at, clock.at(300 + 120));
    assert_eq!(clock.tracker.counts(), (0, 0));
}

#[test]
fn each_group_has_its_own_life() {
    let mut clock = Clock::new(300);
    let mut fired = Vec::new();
    for secs in (0..=600).step_by(15) {
        let web2 = if secs < 200 { 50.0 } else { 90.0 };
        for (key, value) in [("web-1", 95.0), ("web-2", web2), ("web-3", 10.0)] {
            fired.extend(
                clock
                    .sample(key, secs, value)
                    .into_iter()
                    .map(|t| (t.key, secs)),
            );
        }
    }
    assert_eq!(
        fired,
        [("web-1".to_string(), 300), ("web-2".to_string(), 510)]
    );
}

#[test]
fn without_a_hold_time_the_first_breach_fires() {
    let mut clock = Clock::new(0);
    assert_eq!(clock.run("web-1", 0, 15, 95.0), [(0, FIRED)]);
}

#[test]
fn late_samples_do_not_move_the_state_back() {
    let mut clock = Clock::new(300);
    clock.run("web-1", 0, 285, 95.0);
    assert!(clock.sample("web-1", 100, 10.0).is_empty(), "out of order");
    assert_eq!(clock.sample("web-1", 300, 95.0)[0].change, FIRED);
}

#[test]
fn max_groups_refuses_new_groups_but_keeps_the_tracked_ones() {
    let mut tracker = Tracker::new(Duration::ZERO, STALE, 1);
    let tags = BTreeMap::new();
    let sample = |key| Observation {
        key,
        tags: &tags,
        metric: "m",
        at: Utc::now(),
        arrived: Instant::now(),
        value: 1.0,
        breaching: true,
        series: 1,
    };
    assert_eq!(tracker.observe(sample("a")).map(|t| t.len()), Ok(1));
    assert_eq!(
        tracker.observe(sample("b")).map(|t| t.len()),
        Err(AtCapacity)
    );
    assert_eq!(tracker.observe(sample("a")).map(|t| t.len()), Ok(0));
}

/// A restart: the groups go through JSON (as in the state store) into a
/// fresh tracker.
fn restart(clock: &mut Clock) {
    let saved: Vec<(String, String)> = clock
        .tracker
        .groups()
        .map(|(key, group)| (key.clone(), serde_json::to_string(group).unwrap()))
        .collect();
    clock.tracker = Tracker::new(Duration::from_secs(300), STALE, 100);
    for (key, json) in saved {
        clock
            .tracker
            .restore(key, serde_json::from_str(&json).unwrap());
    }
}

#[test]
fn a_restart_mid_pending_keeps_counting_from_the_first_breach() {
    let mut clock = Clock::new(300);
    clock.run("web-1", 0, 150, 95.0);
    restart(&mut clock);
    assert_eq!(clock.run("web-1", 165, 400, 95.0), [(300, FIRED)]);
}

#[test]
fn a_restart_mid_firing_neither_fires_again_nor_forgets_to_resolve() {
    let mut clock = Clock::new(300);
    clock.run("web-1", 0, 330, 95.0);
    restart(&mut clock);
    assert!(
        clock.run("web-1", 345, 600, 95.0).is_empty(),
        "no second firing"
    );
    let resolved = clock.sample("web-1", 615, 10.0);
    assert_eq!(resolved.len(), 1);
    assert_eq!(resolved[0].change, RESOLVED);
    assert_eq!(resolved[0].group.fired_at, Some(clock.at(300)));
}

#[test]
fn infinite_values_survive_saving() {
    let mut clock = Clock::new(0);
    clock.sample("web-1", 0, f64::INFINITY);
    restart(&mut clock);
    let (_, group) = clock.tracker.groups().next().unwrap();
    assert_eq!(group.breach_value, f64::INFINITY);
}

#[test]
fn a_late_sample_from_before_the_end_of_a_breach_does_not_start_it_again() {
    let mut clock = Clock::new(0);
    assert_eq!(clock.sample("web-1", 10, 95.0)[0].change, FIRED);
    assert_eq!(clock.sample("web-1", 20, 10.0)[0].change, RESOLVED);
    assert!(
        clock.sample("web-1", 15, 95.0).is_empty(),
        "older than the sample that ended it: ignored, as while it lasted"
    );
    assert_eq!(clock.tracker.counts(), (0, 0));

    let mut clock = Clock::new(10);
    clock.sample("web-1", 0, 95.0);
    clock.sample("web-1", 20, 95.0);
    clock.sample("web-1", 30, 10.0);
    clock.sample("web-1", 25, 95.0);
    assert!(
        clock.sample("web-1", 36, 95.0).is_empty(),
        "a new breach counts from its own first sample (36), not the late one (25)"
    );
    assert_eq!(clock.sample("web-1", 46, 95.0)[0].change, FIRED);
}

#[test]
fn several_series_in_one_group_are_noticed() {
    let mut tracker = Tracker::new(Duration::ZERO, STALE, 10);
    let tags = BTreeMap::new();
    let sample = |series, value: f64| Observation {
        key: "DiskFull/host=a",
        tags: &tags,
        metric: "filesystem_used_percent",
        at: Utc::now(),
        arrived: Instant::now(),
        value,
        breaching: value > 90.0,
        series,
    };
    tracker.observe(sample(7, 97.0)).unwrap();
    tracker.observe(sample(7, 98.0)).unwrap();
    assert_eq!(tracker.take_mixed_series(), 0, "one series");
    tracker.observe(sample(8, 95.0)).unwrap();
    assert_eq!(tracker.take_mixed_series(), 1, "/boot joined /var's group");
}
