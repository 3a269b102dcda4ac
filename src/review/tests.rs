//! A store with known changes: the review lists exactly those.

use super::*;
use crate::patterns::{Miner, MinerConfig};
use crate::state::patterns::{FieldsSeen, save_fields, save_spaces};

fn lines(miner: &mut Miner, line: &str, n: usize) {
    for _ in 0..n {
        miner.observe(line, None, 0);
    }
}

fn ids(items: &[Item]) -> Vec<String> {
    items.iter().map(|i| i.template.clone()).collect()
}

#[test]
fn a_review_lists_exactly_the_changes_and_suggests_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let store = StateStore::open(dir.path()).unwrap();
    let mut miner = Miner::new(MinerConfig::default()).unwrap();
    let save = |miner: &Miner| save_spaces(&store, "transforms.patterns", [("", miner)]).unwrap();
    let t0 = DateTime::parse_from_rfc3339("2026-12-01T00:00:00Z")
        .unwrap()
        .with_timezone(&Utc);

    // Day 0: a baseline.
    lines(&mut miner, "INFO health check ok", 50);
    lines(&mut miner, "INFO backup finished in 42 seconds", 5);
    lines(&mut miner, "WARN cache miss for key 17", 10);
    save(&miner);
    let first = review(&store, t0, true).unwrap();
    assert_eq!(first.since, None);
    assert_eq!(first.spaces[0].new.len(), 3, "no baseline: all new");

    // Day 1: the same mix, so the next review has growth to compare.
    lines(&mut miner, "INFO health check ok", 50);
    lines(&mut miner, "INFO backup finished in 42 seconds", 5);
    lines(&mut miner, "WARN cache miss for key 17", 10);
    save(&miner);
    let second = review(&store, t0 + chrono::Duration::days(1), true).unwrap();
    let day1 = &second.spaces[0];
    assert!(
        day1.new.is_empty() && day1.gone.is_empty() && day1.spiking.is_empty(),
        "{day1:#?}"
    );
    assert!(day1.level_shifts.is_empty());

    // Day 2: backups stop, cache misses spike, a new error appears, and a
    // dry run changes nothing.
    lines(&mut miner, "INFO health check ok", 50);
    lines(&mut miner, "WARN cache miss for key 17", 400);
    lines(
        &mut miner,
        "ERROR payment service refused connection to 10.0.0.7",
        3,
    );
    save(&miner);
    let at = t0 + chrono::Duration::days(2);
    let dry = review(&store, at, false).unwrap();
    let again = review(&store, at, true).unwrap();
    assert_eq!(dry, again, "a dry run leaves the checkpoint");
    let day2 = &again.spaces[0];
    assert_eq!(again.since, Some(t0 + chrono::Duration::days(1)));
    assert_eq!(day2.space, "transforms.patterns");
    assert_eq!(day2.lines, 453);
    assert_eq!(ids(&day2.new).len(), 1);
    assert!(
        day2.new[0]
            .template
            .starts_with("ERROR payment service refused"),
        "{:?}",
        day2.new
    );
    assert_eq!(ids(&day2.gone), ["INFO backup finished in <NUM> seconds"]);
    assert_eq!(ids(&day2.spiking), ["WARN cache miss for key <NUM>"]);
    assert_eq!(day2.spiking[0].count, 400);
    assert_eq!(day2.spiking[0].before, 10);
    let warn = day2
        .level_shifts
        .iter()
        .find(|s| s.level == "warn")
        .unwrap();
    assert_eq!((warn.before, warn.now), (15.0, 88.0));
    assert_eq!(day2.noisiest[0].template, "WARN cache miss for key <NUM>");

    // Suggestions: always alert on the new error; the rest per the
    // built-in classifier; each kept for `apply`.
    let always = day2
        .suggestions
        .iter()
        .find(|s| s.kind == RuleKind::AlwaysAlert)
        .expect("always alert on the new error");
    assert_eq!(always.pattern_id, day2.new[0].pattern_id);
    let suppress = day2
        .suggestions
        .iter()
        .find(|s| s.kind == RuleKind::Suppress)
        .expect("suppress the health checks");
    assert_eq!(suppress.template, "INFO health check ok");
    assert!(
        suppress.reason.contains("built-in classifier"),
        "{}",
        suppress.reason
    );
    let waiting = rules(&store).unwrap();
    assert!(waiting.iter().any(|r| r.id == always.id));
    assert_eq!(
        take_rule(&store, &always.id).unwrap().as_ref(),
        Some(always)
    );
    assert!(
        take_rule(&store, &always.id).unwrap().is_none(),
        "applied once"
    );

    let text = render(&again);
    assert!(
        text.contains("Gone quiet:") && text.contains("Spiking:"),
        "{text}"
    );
    assert!(text.contains(&always.id), "{text}");
}

#[test]
fn schema_drift_lists_the_fields_that_appeared_and_those_that_went() {
    let dir = tempfile::tempdir().unwrap();
    let store = StateStore::open(dir.path()).unwrap();
    let mut miner = Miner::new(MinerConfig::default()).unwrap();
    lines(&mut miner, "INFO request served", 10);
    save_spaces(&store, "patterns", [("", &miner)]).unwrap();
    let t0 = DateTime::parse_from_rfc3339("2026-12-01T00:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    let at = |hours: i64| (t0 + chrono::Duration::hours(hours)).timestamp_millis();
    let mut fields = FieldsSeen::default();
    fields.note(["message", "user", "host"].into_iter(), at(-1));
    save_fields(&store, "patterns", [("", &fields)]).unwrap();
    let first = review(&store, t0, true).unwrap();
    assert!(first.spaces[0].fields_appeared.is_empty() && first.spaces[0].fields_gone.is_empty());

    // A day on: `host` is gone, `trace_id` appeared.
    fields.note(["message", "user"].into_iter(), at(1));
    fields.note(["message", "trace_id"].into_iter(), at(2));
    save_fields(&store, "patterns", [("", &fields)]).unwrap();
    let second = review(&store, t0 + chrono::Duration::days(1), true).unwrap();
    assert_eq!(second.spaces[0].fields_appeared, ["trace_id"]);
    assert_eq!(second.spaces[0].fields_gone, ["host"]);
    assert!(render(&second).contains("Fields new: trace_id\nFields gone: host\n"));

    // Another day with only `message`: `trace_id` and `user` went too, and
    // `host` is not reported again.
    fields.note(["message"].into_iter(), at(25));
    save_fields(&store, "patterns", [("", &fields)]).unwrap();
    let third = review(&store, t0 + chrono::Duration::days(2), true).unwrap();
    assert!(third.spaces[0].fields_appeared.is_empty());
    assert_eq!(third.spaces[0].fields_gone, ["trace_id", "user"]);
}

#[test]
fn a_digest_shows_control_characters_visibly_and_skips_quiet_spaces() {
    let digest = Digest {
        at: Utc::now(),
        since: None,
        spaces: vec![
            SpaceDigest {
                space: "patterns/evil\nSuggested:".into(),
                lines: 1,
                new: vec![Item {
                    pattern_id: "p".into(),
                    template: "INFO \u{1b}[2J forged\n  rule-deadbeef suppress".into(),
                    level: "info".into(),
                    count: 1,
                    before: 0,
                }],
                ..SpaceDigest::default()
            },
            SpaceDigest {
                space: "patterns/quiet".into(),
                ..SpaceDigest::default()
            },
        ],
        divergences: Vec::new(),
    };
    let text = render(&digest);
    assert!(!text.contains('\u{1b}'), "{text:?}");
    assert_eq!(
        text.lines()
            .filter(|l| l.trim_start().starts_with("rule-"))
            .count(),
        0,
        "no forged line: {text}"
    );
    assert!(!text.contains("patterns/quiet"), "{text}");
    assert!(text.contains("(1 space(s) without changes)"), "{text}");
}

#[test]
fn a_count_that_restarted_is_counted_not_gone() {
    let dir = tempfile::tempdir().unwrap();
    let store = StateStore::open(dir.path()).unwrap();
    let t0 = DateTime::parse_from_rfc3339("2026-12-01T00:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    let mut miner = Miner::new(MinerConfig::default()).unwrap();
    lines(&mut miner, "INFO backup finished ok", 10);
    save_spaces(&store, "patterns", [("", &miner)]).unwrap();
    review(&store, t0, true).unwrap();
    lines(&mut miner, "INFO backup finished ok", 10);
    save_spaces(&store, "patterns", [("", &miner)]).unwrap();
    review(&store, t0 + chrono::Duration::days(1), true).unwrap();
    // The pattern was evicted and came back: its count starts again.
    let mut fresh = Miner::new(MinerConfig::default()).unwrap();
    lines(&mut fresh, "INFO backup finished ok", 3);
    save_spaces(&store, "patterns", [("", &fresh)]).unwrap();
    let digest = review(&store, t0 + chrono::Duration::days(2), true).unwrap();
    assert!(
        digest.spaces[0].gone.is_empty(),
        "{:?}",
        digest.spaces[0].gone
    );
    assert_eq!(digest.spaces[0].lines, 3);
}
