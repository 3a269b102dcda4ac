//! Triage that learns from decisions: a new pattern whose template is
//! close to one already decided as noise (an operator's suppression, a
//! classifier's noise verdict, or a pattern learnt as routine) inherits
//! that decision instead of alerting as new.
//!
//! **Close** means: the same number of tokens (whitespace-separated), at
//! most [`MAX_DIFFERENCES`] positions where they differ and at most a
//! quarter of them, and at least three the same, a `<*>` (or any `<...>`
//! placeholder) matching anything. `cron[<NUM>]: (root) CMD (run-parts
//! /etc/cron.hourly)` and `... /etc/cron.daily)` are close (one word of
//! five); "heartbeat ok" and "ransomware detected" are not.
//!
//! A close neighbour's decision is **not** inherited when the new pattern
//! is more severe than it (a higher level, an error next to a neighbour of
//! no known level, or fatal at all), or carries a failure word (`error`,
//! `failed`, `denied`, `timeout`, ...) that the neighbour lacks: "disk
//! check ok" being noise says nothing about "disk check failed".
//!
//! Finding a neighbour costs a look-up of the new template's rarest tokens
//! in an index (a close neighbour matches at least one of any three of
//! its positions), not a comparison with every neighbour.

use std::collections::{HashMap, HashSet};

use crate::patterns::Level;

/// The most differing tokens between close templates.
pub const MAX_DIFFERENCES: usize = 2;

/// The most neighbours kept; beyond it, the oldest are forgotten.
const MAX_NEIGHBOURS: usize = 20_000;

/// Words that say something went wrong: a pattern with one its neighbour
/// lacks never inherits the neighbour's "noise".
const FAILURE_WORDS: &[&str] = &[
    "error",
    "errors",
    "err",
    "fail",
    "failed",
    "failure",
    "fatal",
    "panic",
    "exception",
    "denied",
    "refused",
    "timeout",
    "timed",
    "unreachable",
    "critical",
    "crash",
    "crashed",
    "killed",
    "corrupt",
    "corrupted",
    "lost",
    "abort",
    "aborted",
];

/// Why a pattern's decision may be inherited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// An operator suppressed it.
    Operator,
    /// A classifier called it noise.
    Verdict,
    /// It was seen while learning (`learn_for`).
    Routine,
}

/// A decided pattern, as neighbours compare it.
#[derive(Debug, Clone)]
struct Neighbour {
    tokens: Vec<String>,
    level: Level,
    failure: Vec<String>,
    why: Why,
}

/// The index key of a token: the template's length, the position, the
/// token (`<*>` for any placeholder).
type Posting = (usize, usize, String);

/// The patterns decided as noise, indexed by their tokens.
#[derive(Debug, Default)]
pub struct Neighbours {
    by_pattern: HashMap<String, Neighbour>,
    /// Which neighbours have a token at a position, for a length.
    postings: HashMap<Posting, HashSet<String>>,
    /// Neighbours by length (for a template too vague to look up).
    by_len: HashMap<usize, HashSet<String>>,
    order: std::collections::VecDeque<String>,
}

/// A close neighbour found for a new pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// The neighbour's pattern id.
    pub pattern: String,
    /// How it was decided.
    pub why: Why,
    /// How many tokens differ.
    pub differences: usize,
}

fn tokens(template: &str) -> Vec<String> {
    template
        .split_whitespace()
        .map(|t| t.to_ascii_lowercase())
        .collect()
}

fn is_placeholder(token: &str) -> bool {
    token.starts_with('<') && token.ends_with('>') && token.len() >= 3
}

fn posting_token(token: &str) -> String {
    if is_placeholder(token) {
        "<*>".to_string()
    } else {
        token.to_string()
    }
}

/// The failure words of a template (words, stripped of punctuation).
fn failures(tokens: &[String]) -> Vec<String> {
    let mut words: Vec<String> = tokens
        .iter()
        .flat_map(|token| token.split(|c: char| !c.is_ascii_alphanumeric()))
        .filter(|word| FAILURE_WORDS.contains(word))
        .map(str::to_string)
        .collect();
    words.sort();
    words.dedup();
    words
}

/// Whether two templates of one length are close: at most
/// [`MAX_DIFFERENCES`] positions differ, at most a quarter of them, and at
/// least [`MIN_SAME`] are the same (a placeholder matches anything). Short
/// templates are never close: "heartbeat ok" says nothing about
/// "ransomware detected".
fn closeness(a: &[String], b: &[String]) -> Option<usize> {
    let differences = a
        .iter()
        .zip(b)
        .filter(|(x, y)| x != y && !is_placeholder(x) && !is_placeholder(y))
        .count();
    let same = a.len() - differences;
    (differences > 0
        && differences <= MAX_DIFFERENCES
        && differences * 4 <= a.len()
        && same >= MIN_SAME)
        .then_some(differences)
}

/// The fewest tokens that must be the same.
const MIN_SAME: usize = 3;

impl Neighbours {
    /// Whether `pattern` is known.
    pub fn contains(&self, pattern: &str) -> bool {
        self.by_pattern.contains_key(pattern)
    }

    /// Notes a pattern decided as noise (once; later calls change nothing).
    pub fn note(&mut self, pattern: &str, template: &str, level: &str, why: Why) {
        if self.by_pattern.contains_key(pattern) {
            return;
        }
        let tokens = tokens(template);
        if tokens.len() < MIN_SAME {
            return;
        }
        if self.order.len() >= MAX_NEIGHBOURS
            && let Some(oldest) = self.order.pop_front()
        {
            self.forget(&oldest);
        }
        let len = tokens.len();
        for (position, token) in tokens.iter().enumerate() {
            self.postings
                .entry((len, position, posting_token(token)))
                .or_default()
                .insert(pattern.to_string());
        }
        self.by_len
            .entry(len)
            .or_default()
            .insert(pattern.to_string());
        let neighbour = Neighbour {
            failure: failures(&tokens),
            level: Level::parse_value(level).unwrap_or_default(),
            tokens,
            why,
        };
        self.by_pattern.insert(pattern.to_string(), neighbour);
        self.order.push_back(pattern.to_string());
    }

    /// Forgets a pattern (its decision ended).
    pub fn forget(&mut self, pattern: &str) {
        let Some(neighbour) = self.by_pattern.remove(pattern) else {
            return;
        };
        let len = neighbour.tokens.len();
        for (position, token) in neighbour.tokens.iter().enumerate() {
            let key = (len, position, posting_token(token));
            if let Some(set) = self.postings.get_mut(&key) {
                set.remove(pattern);
                if set.is_empty() {
                    self.postings.remove(&key);
                }
            }
        }
        if let Some(set) = self.by_len.get_mut(&len) {
            set.remove(pattern);
        }
    }

    /// The neighbours that may be close to `tokens`: a close one differs
    /// in at most [`MAX_DIFFERENCES`] positions, so among any
    /// `MAX_DIFFERENCES + 1` concrete positions it matches at least one;
    /// the rarest ones are looked up (with the neighbours that have a
    /// placeholder there).
    fn candidates(&self, tokens: &[String]) -> HashSet<&String> {
        let len = tokens.len();
        let mut lists: Vec<(usize, Vec<&HashSet<String>>)> = tokens
            .iter()
            .enumerate()
            .filter(|(_, token)| !is_placeholder(token))
            .map(|(position, token)| {
                let sets: Vec<&HashSet<String>> = [token.clone(), "<*>".to_string()]
                    .into_iter()
                    .filter_map(|t| self.postings.get(&(len, position, t)))
                    .collect();
                (sets.iter().map(|s| s.len()).sum(), sets)
            })
            .collect();
        if lists.len() <= MAX_DIFFERENCES {
            return self.by_len.get(&len).into_iter().flatten().collect();
        }
        lists.sort_by_key(|(size, _)| *size);
        lists
            .into_iter()
            .take(MAX_DIFFERENCES + 1)
            .flat_map(|(_, sets)| sets)
            .flatten()
            .collect()
    }

    /// The closest decided neighbour of a new pattern whose decision it
    /// may inherit (see the module docs), if any; `live` says whether a
    /// neighbour's decision still holds.
    pub fn find(
        &self,
        template: &str,
        level: &str,
        mut live: impl FnMut(&str, Why) -> bool,
    ) -> Option<Found> {
        let level = Level::parse_value(level).unwrap_or_default();
        if level == Level::Fatal {
            return None;
        }
        let tokens = tokens(template);
        let failure = failures(&tokens);
        let mut candidates: Vec<&String> = self.candidates(&tokens).into_iter().collect();
        candidates.sort();
        let mut best: Option<Found> = None;
        for pattern in candidates {
            let Some(neighbour) = self.by_pattern.get(pattern) else {
                continue;
            };
            // A neighbour of no known level counts as `info`: an error
            // never inherits from it.
            let theirs = match neighbour.level {
                Level::Unknown => Level::Info,
                known => known,
            };
            if level > theirs {
                continue;
            }
            // A failure word the neighbour lacks.
            if failure.iter().any(|word| !neighbour.failure.contains(word)) {
                continue;
            }
            let Some(differences) = closeness(&tokens, &neighbour.tokens) else {
                continue;
            };
            if best.as_ref().is_some_and(|b| b.differences <= differences) {
                continue;
            }
            if !live(pattern, neighbour.why) {
                continue;
            }
            best = Some(Found {
                pattern: pattern.clone(),
                why: neighbour.why,
                differences,
            });
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_templates_inherit_and_failures_or_higher_levels_do_not() {
        let mut neighbours = Neighbours::default();
        neighbours.note(
            "hourly",
            "cron[<NUM>]: (root) CMD (run-parts /etc/cron.hourly)",
            "info",
            Why::Operator,
        );
        neighbours.note("check", "disk check ok on <*>", "info", Why::Verdict);
        let always = |_: &str, _: Why| true;
        let found = neighbours
            .find(
                "cron[<NUM>]: (root) CMD (run-parts /etc/cron.daily)",
                "info",
                always,
            )
            .unwrap();
        assert_eq!(found.pattern, "hourly");
        assert_eq!(found.differences, 1);
        // Not close: another length, or three words apart.
        assert!(
            neighbours
                .find("cron[<NUM>]: (root) CMD", "info", always)
                .is_none()
        );
        assert!(
            neighbours
                .find(
                    "cron[<NUM>]: (root) RUN (make-parts /etc/x)",
                    "info",
                    always
                )
                .is_none()
        );
        // A failure word the neighbour lacks, a higher level, fatal.
        assert!(
            neighbours
                .find("disk check failed on <*>", "info", always)
                .is_none()
        );
        assert!(
            neighbours
                .find(
                    "ERROR cron[<NUM>]: (root) CMD (run-parts /etc/cron.daily)",
                    "info",
                    always
                )
                .is_none(),
            "another length anyway"
        );
        assert!(
            neighbours
                .find(
                    "cron[<NUM>]: (root) CMD (run-parts /etc/cron.daily)",
                    "error",
                    always
                )
                .is_none()
        );
        assert!(
            neighbours
                .find(
                    "cron[<NUM>]: (root) CMD (run-parts /etc/cron.daily)",
                    "fatal",
                    always
                )
                .is_none()
        );
        assert!(
            neighbours
                .find("disk check ok on db-1", "info", always)
                .is_none(),
            "no difference is the same pattern, not a neighbour"
        );
        assert!(
            neighbours
                .find("disk check ok at <*>", "info", always)
                .is_some()
        );
        // A decision that ended is not inherited.
        assert!(
            neighbours
                .find(
                    "cron[<NUM>]: (root) CMD (run-parts /etc/cron.daily)",
                    "info",
                    |_, _| false
                )
                .is_none()
        );
        neighbours.forget("hourly");
        assert!(
            neighbours
                .find(
                    "cron[<NUM>]: (root) CMD (run-parts /etc/cron.daily)",
                    "info",
                    always
                )
                .is_none()
        );
    }

    #[test]
    fn short_unrelated_or_worse_lines_never_inherit() {
        let mut neighbours = Neighbours::default();
        let always = |_: &str, _: Why| true;
        neighbours.note("hb", "heartbeat ok", "", Why::Verdict);
        assert!(
            !neighbours.contains("hb"),
            "too short to be anyone's neighbour"
        );
        neighbours.note("hb3", "INFO heartbeat ok", "info", Why::Verdict);
        assert!(
            neighbours
                .find("INFO payments halted", "info", always)
                .is_none()
        );
        neighbours.note("db", "healthcheck db <NUM> ok", "", Why::Verdict);
        assert!(
            neighbours
                .find("replication db <NUM> stalled", "error", always)
                .is_none(),
            "an error never inherits from a neighbour of no known level"
        );
        neighbours.note(
            "retry",
            "WARN upstream timeout, retrying in <*>",
            "warn",
            Why::Verdict,
        );
        assert!(
            neighbours
                .find("WARN database corrupted, retrying in <*>", "warn", always)
                .is_none()
        );
        neighbours.note("login", "INFO user <NUM> logged in", "info", Why::Verdict);
        assert!(
            neighbours
                .find("INFO user <NUM> became admin", "info", always)
                .is_none()
        );
    }

    #[test]
    fn the_index_finds_the_close_neighbour_among_thousands() {
        let mut neighbours = Neighbours::default();
        for i in 0..20_000 {
            neighbours.note(
                &format!("p{i}"),
                &format!("job w{i} finished step s{i} on n{i} ok"),
                "info",
                Why::Routine,
            );
        }
        let always = |_: &str, _: Why| true;
        let found = neighbours
            .find("job w7 finished step s7 on n8 ok", "info", always)
            .unwrap();
        assert_eq!(found.pattern, "p7");
        assert!(
            neighbours
                .find("job x finished step y on z ok", "info", always)
                .is_none()
        );
    }
}
