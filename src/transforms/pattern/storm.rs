//! Storms: many new patterns in one scope within one window (a deploy, a
//! new version logging differently) are announced as one alert instead of
//! one per pattern.
//!
//! Each scope has its own window: it opens with the scope's first new
//! pattern (one that counts: not exempt) and lasts `storm_window_secs`.
//! Within it the first `storm_threshold` new patterns pass to `ID.new` as
//! usual. The following ones are *held*: kept off `ID.new` and, when the
//! window ends (or the input does), announced together as one event on
//! `ID.storm`. Why windows open with a pattern rather than on a fixed
//! beat: a deploy then starts a window instead of straddling two, which
//! would let twice `storm_threshold` patterns through and split its storm.
//! Patterns at or above `storm_exempt_level` are never held and do not
//! count toward the threshold, so a crash inside a deploy still alerts on
//! its own. Held patterns are known like any other (the miner learnt them)
//! and their lines go to the default output unchanged, `.pattern.new =
//! true` included: only `ID.new` is thinned.
//!
//! A storm is a one-shot alert: its event has `.alert` (name, key,
//! severity, summary, description) but no `.alert.state`, so alert sinks
//! take it as a firing occurrence and resolve it after their
//! `resolve_after_secs`, as they do for a new pattern. (A declared `firing`
//! state would keep it firing until a `resolved` event, which a one-shot
//! never sends.)

use std::time::Duration;

use chrono::{DateTime, Utc};
use vrl::value::{KeyString, ObjectMap, Value};

use crate::event::Event;
use crate::patterns::{Level, Miner, PatternId};

/// Templates listed in `.storm.top`.
pub const TOP: usize = 5;
/// Pattern ids listed in `.storm.pattern_ids`; beyond them only the count
/// grows (and `.storm.truncated` is set).
pub const MAX_IDS: usize = 1000;
/// `.alert.name` of storm events.
pub const ALERT_NAME: &str = "HowlPatternStorm";

/// When to group.
#[derive(Debug, Clone, Copy)]
pub struct StormSettings {
    /// New patterns let through per scope and window; `0` turns storms off.
    pub threshold: u64,
    /// The window.
    pub window: Duration,
    /// Patterns of this level or above are never held; `None`: every level
    /// may be.
    pub exempt: Option<Level>,
}

impl StormSettings {
    /// Whether storms are grouped at all.
    pub fn enabled(&self) -> bool {
        self.threshold > 0 && !self.window.is_zero()
    }
}

/// One scope's current window. Saved with its pattern space, so that
/// patterns held when howl crashes still come out in a storm after the
/// restart: they are known by then, and would otherwise never be
/// announced.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct StormWindow {
    /// New patterns let through to `ID.new` in this window (exempt ones
    /// not counted).
    passed: u64,
    /// New patterns held in this window.
    grouped: u64,
    /// The first [`MAX_IDS`] of them.
    held: Vec<Held>,
    /// When the window opened (Unix ms); `None` while none is open. (Saved
    /// windows from before this field roll at the first check.)
    #[serde(default)]
    opened_ms: Option<i64>,
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Held {
    #[serde(with = "raw_id")]
    id: PatternId,
    template: String,
    level: Level,
}

/// A storm that ended: what its event says.
#[derive(Debug, Clone, PartialEq)]
pub struct Storm {
    /// Patterns grouped.
    pub count: u64,
    /// The most severe, then most frequent, templates.
    pub top: Vec<Top>,
    /// The grouped ids (at most [`MAX_IDS`]).
    pub ids: Vec<PatternId>,
    /// Whether `ids` misses some.
    pub truncated: bool,
    /// The most severe level among the grouped patterns.
    pub level: Level,
}

/// One of a storm's top templates.
#[derive(Debug, Clone, PartialEq)]
pub struct Top {
    /// The pattern.
    pub id: PatternId,
    /// Its template at the window's end.
    pub template: String,
    /// Its most severe level so far.
    pub level: Level,
    /// Its lines so far.
    pub count: u64,
}

/// Pattern ids saved as their raw `u64`.
pub(super) mod raw_id {
    use crate::patterns::PatternId;

    /// An optional id, saved as an optional raw `u64`.
    pub mod option {
        use crate::patterns::PatternId;

        pub fn serialize<S: serde::Serializer>(
            id: &Option<PatternId>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            serde::Serialize::serialize(&id.map(PatternId::as_u64), s)
        }

        pub fn deserialize<'de, D: serde::Deserializer<'de>>(
            d: D,
        ) -> Result<Option<PatternId>, D::Error> {
            <Option<u64> as serde::Deserialize>::deserialize(d)
                .map(|id| id.map(PatternId::from_u64))
        }
    }

    pub fn serialize<S: serde::Serializer>(id: &PatternId, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(id.as_u64())
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<PatternId, D::Error> {
        <u64 as serde::Deserialize>::deserialize(d).map(PatternId::from_u64)
    }
}

impl StormWindow {
    /// True when nothing passed or was held in this window (nothing to
    /// save, nothing to send).
    pub fn is_empty(&self) -> bool {
        self.passed == 0 && self.grouped == 0
    }

    /// Decides about one new pattern seen at `now_ms`: `true` sends it to
    /// `ID.new`, `false` holds it for this window's storm. The first that
    /// counts opens the window.
    pub fn admit(
        &mut self,
        settings: &StormSettings,
        id: PatternId,
        template: &str,
        level: Level,
        now_ms: i64,
    ) -> bool {
        if !settings.enabled() || settings.exempt.is_some_and(|exempt| level >= exempt) {
            return true;
        }
        self.opened_ms.get_or_insert(now_ms);
        if self.passed < settings.threshold {
            self.passed += 1;
            return true;
        }
        self.grouped += 1;
        if self.held.len() < MAX_IDS {
            self.held.push(Held {
                id,
                template: template.to_string(),
                level,
            });
        }
        false
    }

    /// When the open window opened (Unix ms).
    pub fn opened_ms(&self) -> Option<i64> {
        self.opened_ms
    }

    /// Whether the window has lasted `window` at `now_ms` and should roll.
    /// A window that opened after `now_ms` was saved by a run whose clock
    /// was ahead (fixed since): it is due, or its held patterns would wait
    /// until the clock caught up.
    pub fn is_due(&self, window: Duration, now_ms: i64) -> bool {
        let window_ms = i64::try_from(window.as_millis()).unwrap_or(i64::MAX);
        match self.opened_ms {
            Some(opened) => opened > now_ms || now_ms.saturating_sub(opened) >= window_ms,
            None => !self.is_empty(),
        }
    }

    /// Ends the window: the storm it held, if any. The next window starts
    /// fresh. Templates, levels and counts are read from `miner` as they
    /// stand now (a pattern evicted meanwhile keeps what it had when held).
    pub fn roll(&mut self, miner: &Miner) -> Option<Storm> {
        let window = std::mem::take(self);
        if window.grouped == 0 {
            return None;
        }
        let mut all: Vec<Top> = window
            .held
            .into_iter()
            .map(|held| match miner.get(held.id) {
                Some(view) => Top {
                    id: held.id,
                    template: view.template.to_string(),
                    level: view.level.max(held.level),
                    count: view.count,
                },
                None => Top {
                    id: held.id,
                    template: held.template,
                    level: held.level,
                    count: 1,
                },
            })
            .collect();
        let ids: Vec<PatternId> = all.iter().map(|top| top.id).collect();
        let level = all.iter().map(|top| top.level).max().unwrap_or_default();
        all.sort_by(|a, b| {
            b.level
                .cmp(&a.level)
                .then(b.count.cmp(&a.count))
                .then_with(|| a.template.cmp(&b.template))
        });
        all.truncate(TOP);
        Some(Storm {
            count: window.grouped,
            truncated: (ids.len() as u64) < window.grouped,
            top: all,
            ids,
            level,
        })
    }
}

/// Where a storm happened.
pub struct StormScope<'a> {
    /// The component id (for the alert key).
    pub component: &'a str,
    /// The scope value; `None` when the transform has no `scope`.
    pub scope: Option<&'a str>,
    /// The window.
    pub start: DateTime<Utc>,
    /// Its end.
    pub end: DateTime<Utc>,
}

/// The storm as an event: `message`, `.storm` and `.alert` (see the module
/// docs and the page).
pub fn storm_event(storm: &Storm, at: &StormScope<'_>) -> Event {
    let window_secs = ((at.end - at.start).num_milliseconds().max(0) + 500) / 1000;
    let top_text: Vec<String> = storm
        .top
        .iter()
        .map(|top| format!("[{}] {} (×{})", top.level, top.template, top.count))
        .collect();
    let from = at
        .scope
        .map(|scope| format!(" from {scope}"))
        .unwrap_or_default();
    let summary = format!(
        "storm: {} new patterns in {window_secs}s{from}",
        storm.count
    );
    let message = format!("{summary}; top: {}", top_text.join("; "));

    let mut details = ObjectMap::new();
    if let Some(scope) = at.scope {
        details.insert(KeyString::from("scope"), Value::from(scope));
    }
    details.insert(
        KeyString::from("count"),
        Value::Integer(storm.count.min(i64::MAX as u64) as i64),
    );
    details.insert(KeyString::from("window_start"), Value::Timestamp(at.start));
    details.insert(KeyString::from("window_end"), Value::Timestamp(at.end));
    details.insert(KeyString::from("window_secs"), Value::Integer(window_secs));
    details.insert(KeyString::from("level"), Value::from(storm.level.as_str()));
    let top: Vec<Value> = storm
        .top
        .iter()
        .map(|top| {
            let mut object = ObjectMap::new();
            object.insert(KeyString::from("id"), Value::from(top.id.to_string()));
            object.insert(
                KeyString::from("template"),
                Value::from(top.template.as_str()),
            );
            object.insert(KeyString::from("level"), Value::from(top.level.as_str()));
            object.insert(
                KeyString::from("count"),
                Value::Integer(top.count.min(i64::MAX as u64) as i64),
            );
            Value::Object(object)
        })
        .collect();
    details.insert(KeyString::from("top"), Value::Array(top));
    details.insert(
        KeyString::from("pattern_ids"),
        Value::Array(
            storm
                .ids
                .iter()
                .map(|id| Value::from(id.to_string()))
                .collect(),
        ),
    );
    details.insert(
        KeyString::from("truncated"),
        Value::Boolean(storm.truncated),
    );

    let key = match at.scope {
        Some(scope) => format!("{}.storm/{scope}", at.component),
        None => format!("{}.storm", at.component),
    };
    let mut alert = ObjectMap::new();
    alert.insert(KeyString::from("name"), Value::from(ALERT_NAME));
    alert.insert(KeyString::from("key"), Value::from(key));
    alert.insert(KeyString::from("severity"), Value::from("warning"));
    alert.insert(KeyString::from("summary"), Value::from(summary));
    alert.insert(
        KeyString::from("description"),
        Value::from(top_text.join("\n")),
    );

    let mut event = Event::from_value(Value::from(message));
    event.insert_field("timestamp", at.end);
    event.insert_field("storm", Value::Object(details));
    event.insert_field("alert", Value::Object(alert));
    event
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::patterns::MinerConfig;

    fn settings(threshold: u64, exempt: Option<Level>) -> StormSettings {
        StormSettings {
            threshold,
            window: Duration::from_secs(60),
            exempt,
        }
    }

    #[test]
    fn the_first_threshold_pass_and_the_rest_are_held() {
        let settings = settings(3, Some(Level::Error));
        let mut window = StormWindow::default();
        let passed: Vec<bool> = (0..5)
            .map(|i| window.admit(&settings, PatternId::from_u64(i), "t", Level::Info, 0))
            .collect();
        assert_eq!(passed, [true, true, true, false, false]);
        // Exempt levels pass even during a storm and count for nothing.
        assert!(window.admit(&settings, PatternId::from_u64(9), "crash", Level::Fatal, 0));
        assert!(window.admit(&settings, PatternId::from_u64(8), "e", Level::Error, 0));
        assert!(!window.admit(&settings, PatternId::from_u64(7), "w", Level::Warn, 0));
        let miner = Miner::new(MinerConfig::default()).unwrap();
        let storm = window.roll(&miner).unwrap();
        assert_eq!(storm.count, 3);
        assert_eq!(
            storm.ids,
            [3, 4, 7].map(PatternId::from_u64).to_vec(),
            "in order of arrival"
        );
        assert!(!storm.truncated);
        assert_eq!(storm.top[0].template, "w", "the most severe first");
        assert_eq!(storm.level, Level::Warn);
        // The next window starts fresh.
        assert!(window.roll(&miner).is_none());
        assert!(window.admit(&settings, PatternId::from_u64(10), "t", Level::Info, 0));
    }

    #[test]
    fn a_window_saved_by_a_clock_that_was_ahead_is_due() {
        let mut window = StormWindow::default();
        let year_ms = 365 * 86_400_000;
        let saved_at = 1_900_000_000_000;
        window.admit(
            &settings(1, None),
            PatternId::from_u64(1),
            "a",
            Level::Info,
            saved_at,
        );
        let minute = Duration::from_secs(60);
        assert!(!window.is_due(minute, saved_at + 1_000));
        assert!(window.is_due(minute, saved_at + 60_000));
        assert!(
            window.is_due(minute, saved_at - year_ms),
            "the clock went back"
        );
    }

    #[test]
    fn no_exemption_and_off() {
        let mut window = StormWindow::default();
        let none = settings(1, None);
        assert!(window.admit(&none, PatternId::from_u64(1), "a", Level::Fatal, 0));
        assert!(!window.admit(&none, PatternId::from_u64(2), "b", Level::Fatal, 0));
        let off = settings(0, None);
        let mut window = StormWindow::default();
        assert!((0..50).all(|i| window.admit(&off, PatternId::from_u64(i), "a", Level::Info, 0)));
    }

    #[test]
    fn ids_are_capped_and_the_top_is_by_level_then_count() {
        let settings = settings(1, None);
        let mut window = StormWindow::default();
        let mut miner = Miner::new(MinerConfig::default()).unwrap();
        let mut ids = Vec::new();
        for i in 0..(MAX_IDS + 11) {
            let line = format!("{}a {}b {}c", letters(i), letters(i), letters(i));
            let level = if i == 700 { Some("warn") } else { None };
            let observation = miner.observe(&line, level, 0);
            assert!(observation.is_new, "{line}");
            ids.push(observation.id);
            window.admit(
                &settings,
                observation.id,
                observation.template,
                observation.level,
                0,
            );
        }
        // The pattern held fifth has more lines than the others.
        for _ in 0..3 {
            let line = format!("{}a {}b {}c", letters(5), letters(5), letters(5));
            miner.observe(&line, None, 0);
        }
        let storm = window.roll(&miner).unwrap();
        assert_eq!(storm.count, MAX_IDS as u64 + 10);
        assert_eq!(storm.ids.len(), MAX_IDS);
        assert_eq!(storm.ids[..], ids[1..=MAX_IDS]);
        assert!(storm.truncated);
        assert_eq!(storm.top.len(), TOP);
        assert_eq!(storm.top[0].id, ids[700]);
        assert_eq!(storm.top[0].level, Level::Warn);
        assert_eq!(storm.top[1].id, ids[5]);
        assert_eq!(storm.top[1].count, 4);

        let start = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let event = storm_event(
            &storm,
            &StormScope {
                component: "patterns",
                scope: Some("checkout"),
                start,
                end: start + chrono::TimeDelta::seconds(60),
            },
        );
        let message = event.get_field("message").unwrap().to_string_lossy();
        assert!(
            message.starts_with("storm: 1010 new patterns in 60s from checkout; top: [warn] "),
            "{message}"
        );
        let field = |path: &str| {
            event
                .get(&vrl::path::parse_value_path(path).unwrap())
                .cloned()
                .unwrap_or_else(|| panic!("no {path}"))
        };
        assert_eq!(field("storm.count"), Value::Integer(1010));
        assert_eq!(field("storm.scope"), Value::from("checkout"));
        assert_eq!(field("storm.truncated"), Value::Boolean(true));
        assert_eq!(field("storm.top[0].level"), Value::from("warn"));
        assert_eq!(field("storm.top[0].id"), Value::from(ids[700].to_string()));
        assert_eq!(field("alert.name"), Value::from(ALERT_NAME));
        assert_eq!(field("alert.key"), Value::from("patterns.storm/checkout"));
        assert!(
            event
                .get(&vrl::path::parse_value_path("alert.state").unwrap())
                .is_none(),
            "a one-shot alert declares no state"
        );
        assert_eq!(
            crate::alert::AlertState::of(&event),
            crate::alert::AlertState::Firing
        );
        // What the alert sinks render by default.
        let render = |text: &str| {
            crate::template::Template::parse(text)
                .unwrap()
                .render(&event)
                .text
        };
        assert_eq!(render(crate::alert::DEFAULT_KEY), "patterns.storm/checkout");
        assert_eq!(
            render("{{ .alert.summary ?? .pattern.template ?? .message }}"),
            "storm: 1010 new patterns in 60s from checkout"
        );
        assert_eq!(
            render("{{ .alert.name ?? \"HowlNewPattern\" }}"),
            ALERT_NAME
        );
        assert_eq!(
            render("{{ .alert.severity ?? .pattern.level ?? \"\" }}"),
            "warning"
        );
    }

    /// `i` in letters: `a`, `b`, ..., `z`, `ba`, ... (digits would be masked).
    pub fn letters(mut i: usize) -> String {
        let mut out = Vec::new();
        loop {
            out.push(b'a' + (i % 26) as u8);
            i /= 26;
            if i == 0 {
                break;
            }
        }
        out.reverse();
        String::from_utf8(out).unwrap()
    }
}
