use super::*;
use crate::patterns::MinerConfig;

const WINDOW: Duration = Duration::from_secs(60);

fn settings(factor: f64, min_count: u64) -> RateSettings {
    RateSettings::new(
        WINDOW,
        SpikeRule { factor, min_count },
        Duration::from_secs(3600),
    )
}

/// A miner and one space's rates, fed line by line.
struct Space {
    miner: Miner,
    rates: Rates,
    expects: Expects,
}

impl Space {
    fn new() -> Self {
        Self {
            miner: Miner::new(MinerConfig::default()).unwrap(),
            rates: Rates::default(),
            expects: Expects::default(),
        }
    }

    fn feed(&mut self, line: &str, times: usize) -> PatternId {
        let mut id = None;
        for _ in 0..times {
            let observation = self.miner.observe(line, None, 0);
            self.rates.record(&observation, &self.expects, "");
            id = Some(observation.id);
        }
        id.expect("at least one line")
    }

    fn roll(&mut self, settings: &RateSettings) -> Vec<SpikeChange> {
        self.rates.roll(&self.miner, settings, 1_000, true)
    }
}

const LINE: &str = "payment accepted for order 12 in 3 ms";

#[test]
fn the_rule_needs_the_factor_and_the_minimum_and_resolves_at_half() {
    let rule = SpikeRule {
        factor: 5.0,
        min_count: 20,
    };
    assert!(rule.fires(50, 10.0));
    assert!(!rule.fires(49, 10.0), "below 5 × 10");
    assert!(!rule.fires(19, 2.0), "5 × 2 but below the minimum");
    assert!(rule.fires(20, 0.0), "a pattern that was silent");
    assert!(!rule.resolves(25, 10.0), "above half of 50");
    assert!(rule.resolves(24, 10.0));
    let none = SpikeRule {
        factor: 1.0,
        min_count: 0,
    };
    assert!(!none.fires(0, 0.0), "no line is never a spike");
}

#[test]
fn the_half_life_sets_the_weight_of_a_bucket() {
    let settings = settings(5.0, 20);
    // 60 buckets per half-life: 60 weights of (1 - alpha) make one half.
    assert!(((1.0 - settings.alpha).powi(60) - 0.5).abs() < 1e-9);
    let mut baseline = Baseline::default();
    for count in [4, 6] {
        baseline.add(count, settings.alpha);
    }
    // Bias-corrected: a young baseline is about the mean of its buckets.
    assert!(
        (baseline.value() - 5.0).abs() < 0.02,
        "{}",
        baseline.value()
    );
    assert!(!baseline.warm());
}

#[test]
fn a_new_pattern_is_not_a_spike_however_busy() {
    let settings = settings(5.0, 20);
    let mut space = Space::new();
    // Created mid-bucket: that bucket is partial and not counted.
    space.feed(LINE, 500);
    assert!(space.roll(&settings).is_empty());
    for bucket in 0..WARMUP_BUCKETS {
        // Busy from the start, then far busier: still warming up.
        space.feed(LINE, if bucket == 3 { 5000 } else { 100 });
        assert!(space.roll(&settings).is_empty(), "bucket {bucket}");
    }
}

#[test]
fn a_spike_fires_once_keeps_its_baseline_and_resolves_with_hysteresis() {
    let settings = settings(5.0, 20);
    let mut space = Space::new();
    let id = space.feed(LINE, 1);
    space.roll(&settings);
    for _ in 0..WARMUP_BUCKETS {
        space.feed(LINE, 4);
        assert!(space.roll(&settings).is_empty());
    }
    // 19 is 5 × 4 but below the minimum of 20.
    space.feed(LINE, 19);
    assert!(space.roll(&settings).is_empty());
    let baseline = space.rates.tracks[0].baseline.value();
    // Threshold max(5 × baseline, 20): about 25.
    space.feed(LINE, 60);
    let fired = space.roll(&settings);
    assert_eq!(fired.len(), 1, "{fired:?}");
    assert!(fired[0].firing);
    assert_eq!(fired[0].id, id);
    assert_eq!(fired[0].count, 60);
    assert_eq!(fired[0].spike.baseline, baseline);
    assert!(fired[0].spike.template.starts_with("payment accepted"));
    // Above half the threshold: still firing, nothing said, the baseline
    // frozen.
    for _ in 0..3 {
        space.feed(LINE, 20);
        assert!(space.roll(&settings).is_empty());
        assert_eq!(space.rates.tracks[0].baseline.value(), baseline);
    }
    space.feed(LINE, 5);
    let resolved = space.roll(&settings);
    assert_eq!(resolved.len(), 1);
    assert!(!resolved[0].firing);
    assert_eq!(resolved[0].count, 5);
    assert_eq!(
        resolved[0].spike.baseline, baseline,
        "the baseline it fired over"
    );
    // The report has the spike, once.
    let reported = space.rates.take_reported();
    assert_eq!(
        reported,
        [Spiked {
            id,
            count: 60,
            baseline
        }]
    );
    assert!(space.rates.take_reported().is_empty());
}

#[test]
fn a_rare_pattern_spiking_fires_over_a_baseline_near_zero() {
    let settings = settings(5.0, 20);
    let mut space = Space::new();
    space.feed("disk /dev/sda1 remounted read-only", 1);
    let busy = space.feed(LINE, 1);
    space.roll(&settings);
    for _ in 0..10 {
        space.feed(LINE, 30);
        assert!(space.roll(&settings).is_empty());
    }
    let rare = space.feed("disk /dev/sdb2 remounted read-only", 25);
    space.feed(LINE, 30);
    let fired = space.roll(&settings);
    assert_eq!(fired.len(), 1, "{fired:?}");
    assert_eq!(fired[0].id, rare);
    assert_ne!(rare, busy);
    assert!(fired[0].spike.baseline < 0.01);
}

#[test]
fn an_evicted_pattern_drops_its_state_and_resolves_its_spike() {
    let settings = settings(5.0, 20);
    let mut space = Space {
        miner: Miner::new(MinerConfig {
            max_patterns: 1,
            ..MinerConfig::default()
        })
        .unwrap(),
        ..Space::new()
    };
    let id = space.feed(LINE, 1);
    space.roll(&settings);
    for _ in 0..WARMUP_BUCKETS {
        space.feed(LINE, 2);
        space.roll(&settings);
    }
    space.feed(LINE, 40);
    assert!(space.roll(&settings)[0].firing);
    // Another pattern takes the only place (and the slot).
    space.feed("completely different words here now", 1);
    let changes = space.roll(&settings);
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert!(!changes[0].firing);
    assert_eq!(changes[0].id, id);
    assert!(
        space
            .rates
            .saved(&settings)
            .tracks
            .iter()
            .all(|t| t.id != id)
    );
}

#[test]
fn rates_are_restored_by_id_with_their_firing_spikes() {
    let settings = settings(5.0, 20);
    let mut space = Space::new();
    space.feed("noise line one two three", 3);
    let id = space.feed(LINE, 1);
    space.roll(&settings);
    for _ in 0..WARMUP_BUCKETS {
        space.feed(LINE, 2);
        space.roll(&settings);
    }
    space.feed(LINE, 40);
    assert_eq!(space.roll(&settings).len(), 1);
    let saved = serde_json::to_vec(&space.rates.saved(&settings)).unwrap();
    let snapshot = space.miner.snapshot();

    let miner = Miner::restore(MinerConfig::default(), snapshot).unwrap();
    let saved: SavedRates = serde_json::from_slice(&saved).unwrap();
    let mut restored = Space {
        rates: Rates::restore(saved, &miner, &Expects::default(), ("t", ""), &settings),
        miner,
        expects: Expects::default(),
    };
    // Still firing: a busy bucket says nothing; a quiet one resolves it.
    restored.feed(LINE, 30);
    assert!(restored.roll(&settings).is_empty());
    restored.feed(LINE, 1);
    let resolved = restored.roll(&settings);
    assert_eq!(resolved.len(), 1);
    assert_eq!((resolved[0].id, resolved[0].firing), (id, false));

    // A firing spike whose pattern is not restored resolves too.
    let mut space = Space::new();
    let id = space.feed(LINE, 1);
    space.roll(&settings);
    for _ in 0..WARMUP_BUCKETS {
        space.feed(LINE, 2);
        space.roll(&settings);
    }
    space.feed(LINE, 40);
    space.roll(&settings);
    let empty = Miner::new(MinerConfig::default()).unwrap();
    let mut rates = Rates::restore(
        space.rates.saved(&settings),
        &empty,
        &Expects::default(),
        ("t", ""),
        &settings,
    );
    let resolved = rates.roll(&empty, &settings, 0, false);
    assert_eq!(resolved.len(), 1);
    assert_eq!((resolved[0].id, resolved[0].firing), (id, false));
}

#[test]
fn globs_match_templates_with_stars_only() {
    for (glob, text, expected) in [
        ("backup * finished", "backup nightly finished", true),
        ("backup * finished", "backup nightly finished late", false),
        ("backup*", "backup", true),
        ("*finished*", "job <*> finished in <DUR>", true),
        ("cron[<NUM>]: *", "cron[<NUM>]: (root) CMD", true),
        ("a?c", "abc", false),
        ("a*b*a", "aba", true),
        ("a*a", "a", false),
        ("heartbeat", "heartbeat ok", false),
    ] {
        assert_eq!(glob_matches(glob, text), expected, "{glob} / {text}");
    }
}

fn expect(matcher: Matcher, scope: Option<&str>, every_secs: u64) -> Expect {
    let label = format!("{matcher:?} {scope:?}");
    Expect {
        label,
        matcher,
        scope: scope.map(str::to_string),
        every: Duration::from_secs(every_secs),
        severity: "critical".to_string(),
    }
}

#[test]
fn expectations_no_known_pattern_feeds_are_named_with_why() {
    let backup = PatternId::from_u64(7);
    let expects = Expects(vec![
        expect(Matcher::Template("backup *".into()), None, 60),
        // Narrower, but after the broader one: never gets a line.
        expect(Matcher::Template("backup nightly *".into()), None, 60),
        expect(Matcher::Template("heartbaet *".into()), None, 60),
        // Only the `db` scope's lines: another scope's pattern is no match.
        expect(Matcher::Id(backup), Some("db"), 60),
        expect(Matcher::Template("gc pause *".into()), None, 60),
    ]);
    let patterns = [
        (backup, "backup nightly finished", "web"),
        (PatternId::from_u64(8), "gc pause <DUR>", "web"),
    ];
    assert_eq!(
        expects.unheard(patterns),
        vec![
            (1, Unheard::Shadowed),
            (2, Unheard::NoMatch),
            (3, Unheard::NoMatch)
        ]
    );
    // In its scope, the id expectation matches, but the broad glob
    // listed first takes the pattern.
    assert!(
        expects
            .unheard([(backup, "backup nightly finished", "db")])
            .contains(&(3, Unheard::Shadowed))
    );
}

#[test]
fn expectations_match_by_id_or_template_in_their_scope_first_one_wins() {
    let id = PatternId::from_u64(7);
    let expects = Expects(vec![
        expect(Matcher::Id(id), None, 60),
        expect(Matcher::Template("backup *".into()), Some("db"), 60),
        expect(Matcher::Template("*".into()), None, 60),
    ]);
    assert_eq!(expects.find(id, "backup done", "db"), Some(0));
    assert_eq!(
        expects.find(PatternId::from_u64(8), "backup done", "db"),
        Some(1)
    );
    assert_eq!(
        expects.find(PatternId::from_u64(8), "backup done", "web"),
        Some(2)
    );
}

#[test]
fn a_silence_fires_when_overdue_and_resolves_when_a_line_comes() {
    let id = PatternId::from_u64(0xbeef);
    let expects = Expects(vec![
        expect(Matcher::Template("backup *".into()), None, 60),
        expect(Matcher::Id(id), Some("db"), 30),
    ]);
    let start = 1_800_000_000_000;
    let mut silences = Silences::restore(SavedSilences::default(), &expects, "t", start);
    let seen = PatternId::from_u64(0xabc);
    silences.seen(0, "db", seen, start + 10_000);
    assert!(silences.check(&expects, start + 29_999).is_empty());
    // Never seen: overdue 30 s after start.
    let fired = silences.check(&expects, start + 30_000);
    assert_eq!(fired.len(), 1);
    assert!(fired[0].firing);
    assert_eq!(fired[0].silent.key, format!("silence:t:db:{id}"));
    assert_eq!(fired[0].severity, "critical");
    assert!(fired[0].last_seen_ms.is_none());
    // Seen 10 s after start, every 60 s: overdue at 70 s, once.
    assert!(silences.check(&expects, start + 69_999).is_empty());
    let fired = silences.check(&expects, start + 70_000);
    assert_eq!(fired.len(), 1);
    assert_eq!(fired[0].silent.key, format!("silence:t:db:{seen}"));
    assert_eq!(fired[0].last, Some(("db".to_string(), seen)));
    assert!(silences.check(&expects, start + 200_000).is_empty());
    // Back: resolved with the key it fired with.
    silences.seen(0, "db", seen, start + 201_000);
    let resolved = silences.check(&expects, start + 201_500);
    assert_eq!(resolved.len(), 1);
    assert!(!resolved[0].firing);
    assert_eq!(resolved[0].silent.key, format!("silence:t:db:{seen}"));
    assert_eq!(resolved[0].silent.fired_at_ms, start + 70_000);
}

#[test]
fn silences_continue_after_a_restart_and_removed_ones_resolve() {
    let expects = Expects(vec![
        expect(Matcher::Template("backup *".into()), None, 60),
        expect(Matcher::Template("heartbeat *".into()), None, 60),
    ]);
    let start = 1_800_000_000_000;
    let mut silences = Silences::restore(SavedSilences::default(), &expects, "t", start);
    silences.seen(0, "", PatternId::from_u64(1), start + 1_000);
    assert_eq!(
        silences.check(&expects, start + 60_000).len(),
        1,
        "the heartbeat"
    );
    let saved = serde_json::to_vec(&silences.saved()).unwrap();

    // Down for ten minutes: the backup is overdue at once, the heartbeat
    // still fires (not again).
    let saved: SavedSilences = serde_json::from_slice(&saved).unwrap();
    let mut again = Silences::restore(saved, &expects, "t", start + 600_000);
    let fired = again.check(&expects, start + 600_000);
    assert_eq!(fired.len(), 1, "{fired:?}");
    assert_eq!(fired[0].label, expects.0[0].label);
    assert_eq!(fired[0].last_seen_ms, Some(start + 1_000));

    // The heartbeat's expectation is removed: its silence resolves.
    let fewer = Expects(vec![expects.0[0].clone()]);
    let mut fewer_silences = Silences::restore(again.saved(), &fewer, "t", start + 700_000);
    let resolved = fewer_silences.check(&fewer, start + 700_000);
    assert_eq!(resolved.len(), 1, "{resolved:?}");
    assert!(!resolved[0].firing);
    assert_eq!(resolved[0].label, expects.0[1].label);
    assert_eq!(
        resolved[0].severity, "critical",
        "the severity it fired with: another is another alert in Alertmanager"
    );
    assert!(fewer_silences.check(&fewer, start + 800_000).is_empty());
}

/// Two `pattern` transforms in one topology see the same line: its id is
/// the same in both (seeded by scope only). Their alerts must not share a
/// key, or one's resolution resolves the other's alert in a shared sink.
#[test]
fn two_transforms_alerts_have_keys_of_their_own() {
    let settings = settings(5.0, 20);
    let spike = |component: &str| {
        let mut space = Space {
            rates: Rates::new(component, ""),
            ..Space::new()
        };
        space.feed(LINE, 1);
        space.roll(&settings);
        for _ in 0..WARMUP_BUCKETS {
            space.feed(LINE, 2);
            space.roll(&settings);
        }
        space.feed(LINE, 40);
        let fired = space.roll(&settings);
        assert!(fired[0].firing);
        fired[0].spike.key.clone()
    };
    assert_ne!(spike("prod"), spike("staging"));
    let expects = Expects(vec![expect(Matcher::Template("backup *".into()), None, 60)]);
    let start = 1_800_000_000_000;
    let fired = |component: &str| {
        let mut silences = Silences::restore(SavedSilences::default(), &expects, component, start);
        silences.seen(0, "", PatternId::from_u64(9), start);
        silences.check(&expects, start + 60_000)[0]
            .silent
            .key
            .clone()
    };
    assert_ne!(fired("prod"), fired("staging"));
}

/// `severity` changed while a silence fired: its resolution keeps the
/// severity it fired with (a label in Alertmanager, where another would be
/// another alert and leave this one firing).
#[test]
fn a_silence_resolves_with_the_severity_it_fired_with() {
    let expects = Expects(vec![expect(Matcher::Template("backup *".into()), None, 60)]);
    let start = 1_800_000_000_000;
    let mut silences = Silences::restore(SavedSilences::default(), &expects, "t", start);
    assert_eq!(silences.check(&expects, start + 60_000).len(), 1);
    let mut milder = expects.clone();
    milder.0[0].severity = "info".into();
    let mut again = Silences::restore(
        serde_json::from_slice(&serde_json::to_vec(&silences.saved()).unwrap()).unwrap(),
        &milder,
        "t",
        start + 70_000,
    );
    again.seen(0, "", PatternId::from_u64(3), start + 70_000);
    let resolved = again.check(&milder, start + 71_000);
    assert_eq!(resolved.len(), 1);
    assert!(!resolved[0].firing);
    assert_eq!(resolved[0].severity, "critical");
}

/// A spike fired before keys named the transform was sent as
/// `spike:SCOPE:ID`: restored, it resolves with that key.
#[test]
fn a_spike_saved_without_its_key_resolves_with_the_old_one() {
    let settings = settings(5.0, 20);
    let mut space = Space::new();
    let id = space.feed(LINE, 1);
    space.roll(&settings);
    for _ in 0..WARMUP_BUCKETS {
        space.feed(LINE, 2);
        space.roll(&settings);
    }
    space.feed(LINE, 40);
    space.roll(&settings);
    let mut saved = serde_json::to_value(space.rates.saved(&settings)).unwrap();
    for track in saved["tracks"].as_array_mut().unwrap() {
        if let Some(spike) = track["spike"].as_object_mut() {
            spike.remove("key");
        }
    }
    let mut restored = Space {
        rates: Rates::restore(
            serde_json::from_value(saved).unwrap(),
            &space.miner,
            &Expects::default(),
            ("t", "checkout"),
            &settings,
        ),
        ..Space::new()
    };
    restored.miner = space.miner;
    restored.roll(&settings);
    restored.feed(LINE, 1);
    let resolved = restored.roll(&settings);
    assert_eq!(resolved.len(), 1, "{resolved:?}");
    assert!(!resolved[0].firing);
    assert_eq!(resolved[0].spike.key, format!("spike:checkout:{id}"));
}

/// The last run's clock was a year ahead (fixed since): its times are
/// taken as now, so a silence fires `every` after the restart, not a year
/// later.
#[test]
fn a_silence_saved_by_a_clock_that_was_ahead_still_fires() {
    let expects = Expects(vec![expect(Matcher::Template("backup *".into()), None, 60)]);
    let ahead = 1_900_000_000_000;
    let mut silences = Silences::restore(SavedSilences::default(), &expects, "t", ahead);
    silences.seen(0, "", PatternId::from_u64(3), ahead + 1_000);
    let saved = serde_json::to_vec(&silences.saved()).unwrap();
    let now = ahead - 365 * 86_400_000;
    let mut again = Silences::restore(serde_json::from_slice(&saved).unwrap(), &expects, "t", now);
    assert!(again.check(&expects, now + 59_000).is_empty());
    let fired = again.check(&expects, now + 60_000);
    assert_eq!(fired.len(), 1, "{fired:?}");
    assert!(fired[0].firing);
}

#[test]
fn events_have_the_alert_shape_the_sinks_read() {
    let settings = settings(5.0, 20);
    let now = DateTime::from_timestamp(1_800_000_100, 0).unwrap();
    let change = SpikeChange {
        id: PatternId::from_u64(0x1234),
        firing: true,
        count: 60,
        spike: Spike {
            key: "spike:t:checkout:0000000000001234".into(),
            fired_at_ms: 1_800_000_040_000,
            baseline: 4.0,
            count: 60,
            template: "payment accepted for order <NUM>".into(),
            level: Level::Info,
        },
    };
    let event = spike_event(&change, "checkout", &settings, now);
    let field = |event: &Event, path: &str| {
        event
            .get(&vrl::path::parse_value_path(path).unwrap())
            .cloned()
            .unwrap_or_else(|| panic!("no {path}"))
    };
    assert_eq!(field(&event, "alert.kind"), Value::from("spike"));
    assert_eq!(field(&event, "alert.state"), Value::from("firing"));
    assert_eq!(
        field(&event, "alert.key"),
        Value::from("spike:t:checkout:0000000000001234")
    );
    assert_eq!(field(&event, "alert.name"), Value::from(SPIKE_ALERT));
    assert_eq!(field(&event, "pattern.scope"), Value::from("checkout"));
    assert_eq!(field(&event, "pattern.level"), Value::from("info"));
    assert_eq!(field(&event, "rate.count"), Value::Integer(60));
    assert_eq!(
        field(&event, "rate.window_secs"),
        Value::from_f64_or_zero(60.0)
    );
    assert_eq!(
        crate::alert::AlertState::declared(&event),
        Some(crate::alert::AlertState::Firing)
    );
    let render = |event: &Event, text: &str| {
        crate::template::Template::parse(text)
            .unwrap()
            .render(event)
            .text
    };
    assert_eq!(
        render(&event, crate::alert::DEFAULT_KEY),
        "spike:t:checkout:0000000000001234"
    );
    assert_eq!(
        render(
            &event,
            "{{ .alert.summary ?? .pattern.template ?? .message }}"
        ),
        "log pattern spiking in checkout: 60 lines in 60s (baseline 4 per 60s): payment accepted for order <NUM>"
    );

    let resolved = spike_event(
        &SpikeChange {
            firing: false,
            count: 3,
            ..change
        },
        "",
        &settings,
        now,
    );
    assert_eq!(field(&resolved, "alert.state"), Value::from("resolved"));
    assert_eq!(
        field(&resolved, "alert.key"),
        Value::from("spike:t:checkout:0000000000001234"),
        "a resolution has its firing's key"
    );
    assert!(matches!(
        field(&resolved, "alert.resolved_at"),
        Value::Timestamp(_)
    ));
    assert_eq!(
        crate::alert::AlertState::of(&resolved),
        crate::alert::AlertState::Resolved
    );

    let silence = silence_event(
        &SilenceChange {
            firing: true,
            silent: Silent {
                key: "silence:t:db:0000000000000007".into(),
                fired_at_ms: 1_800_000_100_000,
                scope: "db".into(),
                id: "0000000000000007".into(),
                severity: Some("critical".into()),
            },
            every: Some(Duration::from_secs(600)),
            last_seen_ms: Some(1_800_000_000_000 - 500_000),
            last: None,
            severity: "critical".into(),
            label: "template = \"backup *\"".into(),
        },
        Some(("backup <*> finished", Level::Info)),
        now,
    );
    assert_eq!(field(&silence, "alert.kind"), Value::from("silence"));
    assert_eq!(field(&silence, "alert.severity"), Value::from("critical"));
    assert_eq!(field(&silence, "alert.name"), Value::from(SILENCE_ALERT));
    assert_eq!(
        field(&silence, "silence.expected_every_secs"),
        Value::from_f64_or_zero(600.0)
    );
    assert_eq!(
        field(&silence, "message"),
        Value::from(
            "expected log line silent in db: none for 600s (expected every 600s): backup <*> finished"
        )
    );
}

/// The whole transform, on a paused clock.
mod transform {
    use std::time::Duration;

    use chrono::{DateTime, Utc};
    use tokio::time::Instant;
    use vrl::value::Value;

    use crate::components::registry::WithShared;
    use crate::components::transform::TransformConfig;
    use crate::event::Event;
    use crate::patterns::MinerConfig;
    use crate::shared::Shared;
    use crate::state::StateHandle;
    use crate::transforms::pattern::PatternConfig;
    use crate::transforms::pattern::task::PatternTask;
    use crate::transforms::task_harness::{Harness, context};

    fn start(options: &str, dir: &tempfile::TempDir, clock: Option<DateTime<Utc>>) -> Harness {
        let config = WithShared::<PatternConfig, MinerConfig>::from_toml(options).unwrap();
        let mut settings = config.settings(&context(options)).unwrap();
        settings.clock_start = clock;
        Harness::run(
            Box::new(PatternTask::new(settings)),
            config.outputs(),
            &["anomalies", "changes"],
            Shared::with_state(StateHandle::new(dir.path().to_path_buf())),
        )
    }

    fn line(message: &str, service: &str) -> Event {
        Event::from_value(vrl::value!({ "message": message, "service": service }))
    }

    fn lines(message: &str, service: &str, n: usize) -> Vec<Event> {
        (0..n).map(|_| line(message, service)).collect()
    }

    fn get(event: &Event, path: &str) -> Value {
        event
            .get(&vrl::path::parse_value_path(path).unwrap())
            .cloned()
            .unwrap_or_else(|| panic!("no {path} in {event:?}"))
    }

    fn text(event: &Event, path: &str) -> String {
        get(event, path).to_string_lossy().into_owned()
    }

    const SPIKY: &str = "scope = '{{ .service }}'\nrate_window_secs = 10\n\
                         spike_factor = 5\nspike_min_count = 20\nreport_interval_secs = 100\n";
    const LINE: &str = "payment accepted for order 12 in 3 ms";

    /// Sleeps until `secs` after `origin` (virtual time).
    async fn at(origin: Instant, secs: f64) {
        tokio::time::sleep_until(origin + Duration::from_secs_f64(secs)).await;
    }

    /// Feeds 1 line at 0.5 s (a partial bucket), then 4 per 10 s bucket
    /// for the warm-up: the baseline is 4 from 60 s on.
    async fn warm_up(h: &Harness, origin: Instant) {
        at(origin, 0.5).await;
        h.send(vec![line(LINE, "checkout")]).await;
        for bucket in 1..=5 {
            at(origin, f64::from(bucket) * 10.0 + 1.0).await;
            h.send(lines(LINE, "checkout", 4)).await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_spike_fires_then_resolves_and_the_report_agrees() {
        let dir = tempfile::tempdir().unwrap();
        let origin = Instant::now();
        let mut h = start(SPIKY, &dir, None);
        warm_up(&h, origin).await;
        // Another scope's busy pattern, all along: no spike of its own.
        at(origin, 61.0).await;
        h.send(lines(LINE, "search", 200)).await;
        h.send(lines(LINE, "checkout", 50)).await;
        at(origin, 70.5).await;
        let fired = h.take(Some("anomalies"));
        assert_eq!(fired.len(), 1, "{fired:?}");
        let fired = &fired[0];
        let id = text(fired, "pattern.id");
        assert_eq!(text(fired, "alert.state"), "firing");
        assert_eq!(text(fired, "alert.kind"), "spike");
        assert_eq!(text(fired, "alert.key"), format!("spike:t:checkout:{id}"));
        assert_eq!(get(fired, "rate.count"), Value::Integer(50));
        assert_eq!(get(fired, "rate.baseline"), Value::from_f64_or_zero(4.0));
        assert_eq!(text(fired, "pattern.scope"), "checkout");
        // Still high, above half the threshold (20): nothing.
        h.send(lines(LINE, "checkout", 15)).await;
        at(origin, 80.5).await;
        assert!(h.take(Some("anomalies")).is_empty());
        h.send(lines(LINE, "checkout", 4)).await;
        at(origin, 90.5).await;
        let resolved = h.take(Some("anomalies"));
        assert_eq!(resolved.len(), 1, "{resolved:?}");
        assert_eq!(text(&resolved[0], "alert.state"), "resolved");
        assert_eq!(
            text(&resolved[0], "alert.key"),
            format!("spike:t:checkout:{id}")
        );
        // The change report names the same spike.
        at(origin, 100.5).await;
        let changes = h.take(Some("changes"));
        let spikes: Vec<&Event> = changes
            .iter()
            .filter(|e| text(e, "change.kind") == "spike")
            .collect();
        assert_eq!(spikes.len(), 1, "{changes:?}");
        assert_eq!(text(spikes[0], "pattern.id"), id);
        assert_eq!(get(spikes[0], "change.count"), Value::Integer(50));
        assert_eq!(get(spikes[0], "change.baseline_count"), Value::Integer(4));
        h.finish().await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_firing_spike_survives_a_crash_is_not_fired_again_and_resolves() {
        let dir = tempfile::tempdir().unwrap();
        let origin = Instant::now();
        let mut h = start(SPIKY, &dir, None);
        warm_up(&h, origin).await;
        at(origin, 61.0).await;
        h.send(lines(LINE, "checkout", 50)).await;
        at(origin, 70.5).await;
        let fired = h.take(Some("anomalies"));
        assert_eq!(fired.len(), 1);
        // kill -9 right after the alert went out.
        h.crash().await;

        let origin = Instant::now();
        let mut h = start(SPIKY, &dir, None);
        at(origin, 1.0).await;
        h.send(lines(LINE, "checkout", 30)).await;
        at(origin, 10.5).await;
        assert!(
            h.take(Some("anomalies")).is_empty(),
            "still firing: not fired again"
        );
        h.send(lines(LINE, "checkout", 3)).await;
        at(origin, 20.5).await;
        let resolved = h.take(Some("anomalies"));
        assert_eq!(resolved.len(), 1, "{resolved:?}");
        assert_eq!(text(&resolved[0], "alert.state"), "resolved");
        assert_eq!(
            text(&resolved[0], "alert.key"),
            text(&fired[0], "alert.key")
        );
        h.finish().await;
    }

    /// `rate_window_secs` raised from 10 s to 60 s between two runs: the
    /// baselines saved in lines per 10 s are lines per 60 s now, so a
    /// pattern keeping its rate does not spike (4 per 10 s was compared
    /// with 24 per minute: every busy pattern fired after the restart).
    #[tokio::test(start_paused = true)]
    async fn a_changed_rate_window_rescales_the_baselines() {
        let dir = tempfile::tempdir().unwrap();
        let origin = Instant::now();
        let h = start(SPIKY, &dir, None);
        warm_up(&h, origin).await;
        at(origin, 61.0).await;
        h.finish().await;

        let longer = SPIKY.replace("rate_window_secs = 10", "rate_window_secs = 60");
        let origin = Instant::now();
        let mut h = start(&longer, &dir, None);
        // Two minutes at the same rate (the first bucket, howl's start,
        // is not compared).
        for step in 0..12 {
            at(origin, f64::from(step) * 10.0 + 1.0).await;
            h.send(lines(LINE, "checkout", 4)).await;
        }
        at(origin, 120.5).await;
        let anomalies = h.take(Some("anomalies"));
        assert!(anomalies.is_empty(), "the same rate spiked: {anomalies:?}");
        // Five times the rate still spikes, over the rescaled baseline.
        h.send(lines(LINE, "checkout", 120)).await;
        at(origin, 180.5).await;
        let fired = h.take(Some("anomalies"));
        assert_eq!(fired.len(), 1, "{fired:?}");
        let Value::Float(baseline) = get(&fired[0], "rate.baseline") else {
            panic!("a baseline")
        };
        assert!((baseline.into_inner() - 24.0).abs() < 1e-6, "{baseline}");
        h.finish().await;
    }

    /// Down for a while, then a file source catches up: the lines written
    /// meanwhile all arrive in the first bucket. That is no spike; the next
    /// buckets are compared as before.
    #[tokio::test(start_paused = true)]
    async fn a_backlog_caught_up_after_a_restart_does_not_spike() {
        let dir = tempfile::tempdir().unwrap();
        let origin = Instant::now();
        let h = start(SPIKY, &dir, None);
        warm_up(&h, origin).await;
        at(origin, 61.0).await;
        h.finish().await;

        let origin = Instant::now();
        let mut h = start(SPIKY, &dir, None);
        at(origin, 1.0).await;
        // Two and a half minutes of lines at 4 per 10 s.
        h.send(lines(LINE, "checkout", 60)).await;
        at(origin, 10.5).await;
        let anomalies = h.take(Some("anomalies"));
        assert!(anomalies.is_empty(), "the backlog spiked: {anomalies:?}");
        at(origin, 11.0).await;
        h.send(lines(LINE, "checkout", 4)).await;
        at(origin, 21.0).await;
        h.send(lines(LINE, "checkout", 50)).await;
        at(origin, 30.5).await;
        let fired = h.take(Some("anomalies"));
        assert_eq!(fired.len(), 1, "a spike after it still fires: {fired:?}");
        assert_eq!(get(&fired[0], "rate.count"), Value::Integer(50));
        h.finish().await;
    }

    const EXPECTING: &str = "scope = '{{ .service }}'\n\
        [[expect]]\ntemplate = 'backup * finished'\nevery = '30s'\nseverity = 'critical'\n\
        [[expect]]\nid = '00000000deadbeef'\nscope = 'db'\nevery = 20\n";

    #[tokio::test(start_paused = true)]
    async fn silences_fire_when_overdue_and_resolve_when_the_line_is_back() {
        let dir = tempfile::tempdir().unwrap();
        let origin = Instant::now();
        let mut h = start(EXPECTING, &dir, None);
        at(origin, 5.0).await;
        h.send(vec![line("backup nightly finished", "db")]).await;
        // The id never comes: overdue 20 s after the start.
        at(origin, 21.5).await;
        let fired = h.take(Some("anomalies"));
        assert_eq!(fired.len(), 1, "{fired:?}");
        assert_eq!(
            text(&fired[0], "alert.key"),
            "silence:t:db:00000000deadbeef"
        );
        assert_eq!(get(&fired[0], "silence.last_seen"), Value::Null);
        // The backup: overdue 30 s after its line.
        at(origin, 34.0).await;
        assert!(h.take(Some("anomalies")).is_empty());
        at(origin, 36.5).await;
        let fired = h.take(Some("anomalies"));
        assert_eq!(fired.len(), 1, "{fired:?}");
        let backup = &fired[0];
        let id = text(backup, "pattern.id");
        assert_eq!(text(backup, "alert.key"), format!("silence:t:db:{id}"));
        assert_eq!(text(backup, "alert.kind"), "silence");
        assert_eq!(text(backup, "alert.severity"), "critical");
        assert_eq!(text(backup, "pattern.template"), "backup nightly finished");
        assert_eq!(
            get(backup, "silence.expected_every_secs"),
            Value::from_f64_or_zero(30.0)
        );
        // Nothing more while it stays silent.
        at(origin, 60.0).await;
        assert!(h.take(Some("anomalies")).is_empty());
        h.send(vec![line("backup weekly finished", "db")]).await;
        at(origin, 61.5).await;
        let resolved = h.take(Some("anomalies"));
        assert_eq!(resolved.len(), 1, "{resolved:?}");
        assert_eq!(text(&resolved[0], "alert.state"), "resolved");
        assert_eq!(
            text(&resolved[0], "alert.key"),
            format!("silence:t:db:{id}")
        );
        h.finish().await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_silence_that_began_while_howl_was_down_fires_at_start_once() {
        let dir = tempfile::tempdir().unwrap();
        let t0 = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let options = "[[expect]]\ntemplate = 'heartbeat *'\nevery = '30s'\n";
        let origin = Instant::now();
        let mut h = start(options, &dir, Some(t0));
        at(origin, 2.0).await;
        h.send(vec![line("heartbeat ok", "")]).await;
        // Saved within a second of the new pattern; then a kill -9.
        at(origin, 5.0).await;
        assert!(h.take(Some("anomalies")).is_empty());
        h.crash().await;

        // Back a minute later: overdue since 32 s.
        let later = t0 + chrono::TimeDelta::seconds(65);
        let origin = Instant::now();
        let mut h = start(options, &dir, Some(later));
        at(origin, 1.5).await;
        let fired = h.take(Some("anomalies"));
        assert_eq!(fired.len(), 1, "{fired:?}");
        assert_eq!(text(&fired[0], "alert.state"), "firing");
        assert_eq!(
            get(&fired[0], "silence.last_seen"),
            Value::Timestamp(t0 + chrono::TimeDelta::seconds(2))
        );
        h.crash().await;

        // Restarted again: still firing, not fired again; the line resolves it.
        let origin = Instant::now();
        let mut h = start(options, &dir, Some(later + chrono::TimeDelta::seconds(10)));
        at(origin, 3.0).await;
        assert!(h.take(Some("anomalies")).is_empty());
        h.send(vec![line("heartbeat ok", "")]).await;
        at(origin, 4.5).await;
        let resolved = h.take(Some("anomalies"));
        assert_eq!(resolved.len(), 1, "{resolved:?}");
        assert_eq!(text(&resolved[0], "alert.state"), "resolved");
        assert_eq!(
            text(&resolved[0], "alert.key"),
            text(&fired[0], "alert.key")
        );
        h.finish().await;
    }
}
