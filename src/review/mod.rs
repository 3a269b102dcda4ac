//! The review: what changed in the pattern stores since the last review,
//! and what to do about it.
//!
//! A review compares each pattern space (`pattern` transform and scope)
//! with the checkpoint the previous review left in the store (each
//! pattern's count then, and how much it had grown over the interval
//! before), and lists:
//!
//! - **new** patterns (not in the checkpoint);
//! - **gone** patterns: they grew in the interval before (at least
//!   [`REGULAR`] lines) and not at all since;
//! - **spiking** patterns: at least [`SPIKE_FACTOR`] times their growth in
//!   the interval before, and at least [`SPIKE_MIN`] lines;
//! - **level shifts**: a level whose share of the interval's lines moved
//!   by [`LEVEL_SHIFT`] percentage points or more;
//! - the **noisiest** patterns of the interval;
//! - **schema drift**: top-level fields of the events (noted on a sample
//!   of them by the `pattern` transform) that appeared since, or were
//!   seen in the interval before and not since.
//!
//! With it come **suggested rules**, each with its reason: suppress a new
//! or noisy pattern that a classifier (a stored verdict, else the built-in
//! classifier, which needs no network) calls noise; always alert on a new
//! error or fatal pattern it calls important; throttle an important
//! pattern that was among the noisiest. A suggestion has an id (`rule-`
//! and 8 hex digits of its kind and pattern) and is kept in the store
//! until it is applied: `howl rules apply <id>`, or its chat button.
//!
//! A review that is *committed* (the scheduled one, `howl review` without
//! `--dry-run`) leaves the new checkpoint; a dry run leaves the store as
//! it was.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::llm::{Masker, Prompt, builtin};
use crate::patterns::Level;
use crate::state::patterns::{load_fields, load_spaces};
use crate::state::triage::{Label, load_comparisons, load_suppressions, load_verdicts};
use crate::state::{StateError, StateStore};

/// Where checkpoints are kept, per space.
const CHECKPOINTS: &str = "review_checkpoints";
/// Where suggestions wait to be applied, by id.
const RULES: &str = "review_rules";

/// Growth in the interval before that makes a pattern regular.
pub const REGULAR: u64 = 3;
/// How many times its growth before makes a pattern spike.
pub const SPIKE_FACTOR: u64 = 10;
/// The fewest lines that make a spike.
pub const SPIKE_MIN: u64 = 100;
/// The percentage points a level's share must move to be a shift.
pub const LEVEL_SHIFT: f64 = 10.0;
/// How many of each list a digest shows.
const TOP: usize = 5;
/// The most suggestions kept waiting.
const MAX_RULES: usize = 1000;

/// What a space looked like at the last review.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Checkpoint {
    at: Option<DateTime<Utc>>,
    /// Per pattern: its count then, and its growth over the interval
    /// before.
    patterns: HashMap<String, (u64, u64)>,
    /// Lines per level over the interval before.
    levels: BTreeMap<String, u64>,
    /// The top-level fields seen in the interval before.
    #[serde(default)]
    fields: std::collections::BTreeSet<String>,
}

/// One pattern in a digest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Item {
    /// Its id.
    pub pattern_id: String,
    /// Its template.
    pub template: String,
    /// Its level.
    pub level: String,
    /// Lines since the last review.
    pub count: u64,
    /// Lines in the interval before.
    pub before: u64,
}

/// A level whose share moved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LevelShift {
    /// The level.
    pub level: String,
    /// Its share of the lines in the interval before, in percent.
    pub before: f64,
    /// Its share since, in percent.
    pub now: f64,
}

/// What a suggestion would do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleKind {
    /// Suppress the pattern for 7 days.
    Suppress,
    /// Always alert on it.
    AlwaysAlert,
    /// Throttle it (a change to the config: `throttle` on `pattern.id`).
    Throttle,
}

impl RuleKind {
    /// Its name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Suppress => "suppress",
            Self::AlwaysAlert => "always_alert",
            Self::Throttle => "throttle",
        }
    }
}

/// A suggested rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Suggestion {
    /// `rule-` and 8 hex digits.
    pub id: String,
    /// What it would do.
    pub kind: RuleKind,
    /// The pattern.
    pub pattern_id: String,
    /// Its template.
    pub template: String,
    /// Why.
    pub reason: String,
}

/// The review of one pattern space.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SpaceDigest {
    /// `transform` or `transform/scope`.
    pub space: String,
    /// Lines since the last review.
    pub lines: u64,
    /// New patterns.
    pub new: Vec<Item>,
    /// Patterns that went quiet.
    pub gone: Vec<Item>,
    /// Patterns that spiked.
    pub spiking: Vec<Item>,
    /// Levels whose share moved.
    pub level_shifts: Vec<LevelShift>,
    /// The noisiest patterns since the last review.
    pub noisiest: Vec<Item>,
    /// Top-level fields of the events that appeared since the last review
    /// (from a sample of the events).
    #[serde(default)]
    pub fields_appeared: Vec<String>,
    /// Fields seen in the interval before and not since.
    #[serde(default)]
    pub fields_gone: Vec<String>,
    /// What to do about it.
    pub suggestions: Vec<Suggestion>,
}

impl SpaceDigest {
    /// Whether there is nothing to say about the space.
    pub fn is_quiet(&self) -> bool {
        self.lines == 0
            && self.new.is_empty()
            && self.gone.is_empty()
            && self.fields_gone.is_empty()
            && self.suggestions.is_empty()
    }
}

impl Digest {
    /// Whether nothing changed anywhere: no new, gone or spiking pattern,
    /// no shift, no drift, nothing to suggest.
    pub fn is_empty(&self) -> bool {
        self.spaces.iter().all(|s| {
            s.new.is_empty()
                && s.gone.is_empty()
                && s.spiking.is_empty()
                && s.level_shifts.is_empty()
                && s.fields_appeared.is_empty()
                && s.fields_gone.is_empty()
                && s.suggestions.is_empty()
        })
    }
}

/// A review of every space.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Digest {
    /// When it was made.
    pub at: DateTime<Utc>,
    /// The previous review, if any.
    pub since: Option<DateTime<Utc>>,
    /// Per space.
    pub spaces: Vec<SpaceDigest>,
    /// Patterns on which a provider asked only to compare (`compare`)
    /// disagrees with the verdict that decided.
    #[serde(default)]
    pub divergences: Vec<Divergence>,
}

/// A pattern where a compared provider and the deciding one disagree.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Divergence {
    /// The `llm_suppress` transform.
    pub component: String,
    /// The pattern.
    pub pattern_id: String,
    /// The compared provider, its verdict (`unknown`: it gave none) and its
    /// reason.
    pub provider: String,
    /// Its verdict.
    pub verdict: String,
    /// Its reason.
    pub reason: String,
    /// Who decided, the verdict and the reason.
    pub decided_by: String,
    /// The deciding verdict.
    pub decided: String,
    /// Its reason.
    pub decided_reason: String,
}

/// The id of a suggestion: stable for a kind and a pattern.
fn rule_id(kind: RuleKind, pattern: &str) -> String {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(format!("{}:{pattern}", kind.as_str()));
    format!("rule-{}", crate::secret::hex(&digest[..4]))
}

/// What a classifier says of a pattern: a stored verdict, else the
/// built-in classifier.
fn judge(
    verdicts: &HashMap<String, (Label, String)>,
    masker: &Masker,
    item: &Item,
) -> (Label, String) {
    if let Some((label, reason)) = verdicts.get(&item.pattern_id) {
        return (*label, format!("the classifier's verdict: {reason}"));
    }
    let prompt = Prompt::new(&item.template, &item.level, &[], masker);
    let verdict = builtin::classify(&prompt);
    (
        verdict.label,
        format!("the built-in classifier: {}", verdict.reason),
    )
}

/// Reviews every space at `now`; with `commit`, leaves the new
/// checkpoints and keeps the suggestions for `apply`.
pub fn review(store: &StateStore, now: DateTime<Utc>, commit: bool) -> Result<Digest, StateError> {
    let masker = Masker::new(&[]).map_err(StateError::Storage)?;
    // Patterns someone already decided about get no suggestion.
    let decided: std::collections::HashSet<String> = load_suppressions(store)?
        .into_iter()
        .filter(|s| s.is_live(now))
        .map(|s| s.pattern_id)
        .collect();
    let verdicts: HashMap<String, (Label, String)> = load_verdicts(store, None)?
        .into_iter()
        .map(|saved| {
            (
                saved.pattern_id,
                (saved.verdict.verdict, saved.verdict.reason),
            )
        })
        .collect();
    let mut spaces = Vec::new();
    let mut since = None;
    let mut checkpoints = Vec::new();
    for space in load_spaces(store, None)? {
        let name = if space.scope.is_empty() {
            space.namespace.clone()
        } else {
            format!("{}/{}", space.namespace, space.scope)
        };
        let previous: Checkpoint = store
            .get(CHECKPOINTS, &name)?
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default();
        since = since.max(previous.at);
        let mut digest = SpaceDigest {
            space: name.clone(),
            ..SpaceDigest::default()
        };
        let mut next = Checkpoint {
            at: Some(now),
            ..Checkpoint::default()
        };
        let mut all = Vec::new();
        for view in space.snapshot.views() {
            let id = view.id.to_string();
            let (then, grew_before) = previous.patterns.get(&id).copied().unwrap_or((0, 0));
            // A count below the checkpoint's restarted (the pattern was
            // evicted and came back): all of it is new since.
            let count = if view.count >= then {
                view.count - then
            } else {
                view.count
            };
            let item = Item {
                pattern_id: id.clone(),
                template: view.template.to_string(),
                level: view.level.as_str().to_string(),
                count,
                before: grew_before,
            };
            digest.lines = digest.lines.saturating_add(count);
            let level = next.levels.entry(item.level.clone()).or_default();
            *level = level.saturating_add(count);
            next.patterns.insert(id.clone(), (view.count, count));
            if previous.at.is_some() && !previous.patterns.contains_key(&id) {
                digest.new.push(item.clone());
            } else if previous.at.is_some() && count == 0 && grew_before >= REGULAR {
                digest.gone.push(item.clone());
            } else if count >= SPIKE_MIN
                && count >= grew_before.saturating_mul(SPIKE_FACTOR)
                && grew_before > 0
            {
                digest.spiking.push(item.clone());
            }
            all.push(item);
        }
        if previous.at.is_none() {
            // The first review has no baseline: everything is new.
            digest.new = all.clone();
        }
        let before_total: u64 = previous
            .levels
            .values()
            .fold(0u64, |sum, n| sum.saturating_add(*n));
        if before_total > 0 && digest.lines > 0 {
            let levels: std::collections::BTreeSet<&String> =
                previous.levels.keys().chain(next.levels.keys()).collect();
            for level in levels {
                let share = |map: &BTreeMap<String, u64>, total: u64| {
                    100.0 * *map.get(level).unwrap_or(&0) as f64 / total as f64
                };
                let (was, is) = (
                    share(&previous.levels, before_total),
                    share(&next.levels, digest.lines),
                );
                if (is - was).abs() >= LEVEL_SHIFT {
                    digest.level_shifts.push(LevelShift {
                        level: level.clone(),
                        before: was.round(),
                        now: is.round(),
                    });
                }
            }
        }
        let fields = load_fields(store, &space.namespace, &space.scope)?;
        let since_ms = previous.at.map(|at| at.timestamp_millis());
        for (name, (first, last)) in &fields.fields {
            if since_ms.is_none_or(|p| *last >= p) {
                next.fields.insert(name.clone());
            }
            if since_ms.is_some_and(|p| *first >= p) {
                digest.fields_appeared.push(name.clone());
            }
        }
        if let Some(p) = since_ms {
            digest.fields_gone = previous
                .fields
                .iter()
                .filter(|name| fields.fields.get(*name).is_none_or(|(_, last)| *last < p))
                .cloned()
                .collect();
        }
        all.sort_by(noisiest_first);
        digest.noisiest = all
            .iter()
            .filter(|i| i.count > 0)
            .take(TOP)
            .cloned()
            .collect();
        for list in [&mut digest.new, &mut digest.gone, &mut digest.spiking] {
            list.sort_by(noisiest_first);
        }
        digest.suggestions = suggest(&digest, &verdicts, &masker);
        digest
            .suggestions
            .retain(|s| !decided.contains(&s.pattern_id));
        for list in [&mut digest.new, &mut digest.gone, &mut digest.spiking] {
            list.truncate(TOP);
        }
        checkpoints.push((name, next));
        spaces.push(digest);
    }
    if commit {
        let put = checkpoints
            .iter()
            .map(|(name, checkpoint)| {
                serde_json::to_vec(checkpoint)
                    .map(|bytes| (name.clone(), bytes))
                    .map_err(|e| StateError::Storage(e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        store.write(CHECKPOINTS, &put, &[])?;
        keep(store, spaces.iter().flat_map(|s| &s.suggestions))?;
    }
    let divergences = load_comparisons(store, None)?
        .into_iter()
        .filter(|saved| !saved.comparison.agrees())
        .map(|saved| {
            let c = saved.comparison;
            Divergence {
                component: saved.component,
                pattern_id: saved.pattern_id,
                provider: c.provider,
                verdict: c.verdict.map_or("unknown", Label::as_str).to_string(),
                reason: c.reason,
                decided_by: c.decided_by.unwrap_or_else(|| "?".into()),
                decided: c.decided.as_str().to_string(),
                decided_reason: c.decided_reason,
            }
        })
        .collect();
    Ok(Digest {
        at: now,
        since,
        spaces,
        divergences,
    })
}

/// Most lines first; by id among equals, so digests are stable.
fn noisiest_first(a: &Item, b: &Item) -> std::cmp::Ordering {
    b.count
        .cmp(&a.count)
        .then_with(|| a.pattern_id.cmp(&b.pattern_id))
}

/// The suggestions of a space's review.
fn suggest(
    digest: &SpaceDigest,
    verdicts: &HashMap<String, (Label, String)>,
    masker: &Masker,
) -> Vec<Suggestion> {
    let mut out: Vec<Suggestion> = Vec::new();
    let mut add = |kind: RuleKind, item: &Item, reason: String| {
        if out.iter().any(|s| s.pattern_id == item.pattern_id) || out.len() >= TOP * 2 {
            return;
        }
        out.push(Suggestion {
            id: rule_id(kind, &item.pattern_id),
            kind,
            pattern_id: item.pattern_id.clone(),
            template: item.template.clone(),
            reason,
        });
    };
    let noisy: Vec<&Item> = digest.noisiest.iter().collect();
    for item in digest.new.iter().chain(noisy.iter().copied()) {
        let (label, why) = judge(verdicts, masker, item);
        let severe = matches!(
            Level::parse_value(&item.level),
            Some(Level::Error | Level::Fatal)
        );
        match label {
            Label::Noise => add(
                RuleKind::Suppress,
                item,
                format!("{} lines since the last review; {why}", item.count),
            ),
            Label::Important
                if noisy.iter().any(|n| n.pattern_id == item.pattern_id)
                    && item.count >= SPIKE_MIN =>
            {
                add(
                    RuleKind::Throttle,
                    item,
                    format!(
                        "important ({why}) but among the noisiest: {} lines since the last review",
                        item.count
                    ),
                )
            }
            Label::Important
                if severe && digest.new.iter().any(|n| n.pattern_id == item.pattern_id) =>
            {
                add(
                    RuleKind::AlwaysAlert,
                    item,
                    format!("a new {} pattern; {why}", item.level),
                )
            }
            Label::Important => {}
        }
    }
    out
}

/// Keeps suggestions for `apply` (the newest [`MAX_RULES`]).
fn keep<'a>(
    store: &StateStore,
    suggestions: impl Iterator<Item = &'a Suggestion>,
) -> Result<(), StateError> {
    let put = suggestions
        .map(|s| {
            serde_json::to_vec(s)
                .map(|bytes| (s.id.clone(), bytes))
                .map_err(|e| StateError::Storage(e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    store.write(RULES, &put, &[])?;
    let kept = store.scan(RULES, "")?;
    if kept.len() > MAX_RULES {
        let excess: Vec<String> = kept
            .into_iter()
            .take(put.len())
            .map(|(key, _)| key)
            .collect();
        store.write(RULES, &[], &excess)?;
    }
    Ok(())
}

/// The suggestions waiting to be applied.
pub fn rules(store: &StateStore) -> Result<Vec<Suggestion>, StateError> {
    Ok(store
        .scan(RULES, "")?
        .into_iter()
        .filter_map(|(_, bytes)| serde_json::from_slice(&bytes).ok())
        .collect())
}

/// A waiting suggestion, taken out of the list (it is being applied).
pub fn take_rule(store: &StateStore, id: &str) -> Result<Option<Suggestion>, StateError> {
    let Some(bytes) = store.get(RULES, id)? else {
        return Ok(None);
    };
    store.write(RULES, &[], &[id.to_string()])?;
    Ok(serde_json::from_slice(&bytes).ok())
}

/// The digest as text, for a chat message or a terminal.
pub fn render(digest: &Digest) -> String {
    let mut out = format!(
        "howl review, {}{}\n",
        digest.at.format("%Y-%m-%d %H:%M UTC"),
        digest
            .since
            .map(|since| format!(" (since {})", since.format("%Y-%m-%d %H:%M")))
            .unwrap_or_default()
    );
    if digest.spaces.is_empty() {
        out.push_str("\nNo pattern store yet.\n");
    }
    let quiet = digest.spaces.iter().filter(|s| s.is_quiet()).count();
    for space in digest.spaces.iter().filter(|s| !s.is_quiet()) {
        out.push_str(&format!(
            "\n{}: {} lines\n",
            shown(&space.space),
            space.lines
        ));
        let list = |out: &mut String, title: &str, items: &[Item]| {
            if items.is_empty() {
                return;
            }
            out.push_str(&format!("{title}:\n"));
            for item in items {
                out.push_str(&format!(
                    "  {} [{}] {} ({}{})\n",
                    shown(&item.pattern_id),
                    shown(&item.level),
                    shown(&cut(&item.template, 80)),
                    item.count,
                    if item.before > 0 {
                        format!(", {} before", item.before)
                    } else {
                        String::new()
                    }
                ));
            }
        };
        list(&mut out, "New", &space.new);
        list(&mut out, "Gone quiet", &space.gone);
        list(&mut out, "Spiking", &space.spiking);
        for shift in &space.level_shifts {
            out.push_str(&format!(
                "Level {}: {}% of lines, was {}%\n",
                shift.level, shift.now, shift.before
            ));
        }
        list(&mut out, "Noisiest", &space.noisiest);
        if !space.fields_appeared.is_empty() {
            out.push_str(&format!(
                "Fields new: {}\n",
                space.fields_appeared.join(", ")
            ));
        }
        if !space.fields_gone.is_empty() {
            out.push_str(&format!(
                "Fields gone: {}\n",
                shown(&space.fields_gone.join(", "))
            ));
        }
        if !space.suggestions.is_empty() {
            out.push_str("Suggested:\n");
            for s in &space.suggestions {
                out.push_str(&format!(
                    "  {} {} {}: {}\n",
                    s.id,
                    s.kind.as_str(),
                    shown(&s.pattern_id),
                    shown(&cut(&s.reason, 120))
                ));
            }
        }
    }
    if quiet > 0 {
        out.push_str(&format!("\n({quiet} space(s) without changes)\n"));
    }
    if !digest.divergences.is_empty() {
        out.push_str("\nWhere compared providers disagree with the verdict that decided:\n");
        for d in &digest.divergences {
            out.push_str(&format!(
                "  {} ({}): {} says {} ({}); {} decided {} ({})\n",
                shown(&d.pattern_id),
                shown(&d.component),
                shown(&d.provider),
                d.verdict,
                shown(&cut(&d.reason, 80)),
                shown(&d.decided_by),
                d.decided,
                shown(&cut(&d.decided_reason, 80)),
            ));
        }
    }
    out
}

/// Text from the logs, shown in a digest: control characters (a newline
/// that would forge a line, a terminal escape) written visibly.
fn shown(text: &str) -> String {
    crate::diagnostic::escape_controls(text).into_owned()
}

fn cut(text: &str, limit: usize) -> String {
    if text.chars().count() <= limit {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(limit - 1).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests;
