//! Triage that learns from decisions: a new pattern whose template is
//! close to one already decided as noise (an operator's suppression, a
//! classifier's noise verdict, or a pattern learnt as routine) inherits
//! that decision instead of alerting as new.
//!
//! **Close** means: the same number of tokens (whitespace-separated), and
//! at most [`MAX_DIFFERENCES`] positions where they differ, a `<*>` (or
//! any `<...>` placeholder) matching anything. `cron[<NUM>]: (root) CMD
//! (run-parts /etc/cron.hourly)` and `... /etc/cron.daily)` are close (one
//! word); a different message of the same length usually differs in more.
//!
//! A close neighbour's decision is **not** inherited when the new pattern
//! is more severe than it (a higher level, or fatal at all), or carries a
//! failure word (`error`, `failed`, `denied`, `timeout`, ...) that the
//! neighbour lacks: "disk check ok" being noise says nothing about "disk
//! check failed".

use std::collections::HashMap;

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
    failure: Vec<usize>,
    why: Why,
}

/// The patterns decided as noise, by token count.
#[derive(Debug, Default)]
pub struct Neighbours {
    by_pattern: HashMap<String, Neighbour>,
    by_len: HashMap<usize, Vec<String>>,
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

/// The positions of failure words (a word, stripped of punctuation).
fn failures(tokens: &[String]) -> Vec<usize> {
    tokens
        .iter()
        .enumerate()
        .filter(|(_, token)| {
            token
                .split(|c: char| !c.is_ascii_alphanumeric())
                .any(|word| FAILURE_WORDS.contains(&word))
        })
        .map(|(i, _)| i)
        .collect()
}

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
        if tokens.is_empty() {
            return;
        }
        if self.order.len() >= MAX_NEIGHBOURS
            && let Some(oldest) = self.order.pop_front()
        {
            self.forget(&oldest);
        }
        let len = tokens.len();
        let neighbour = Neighbour {
            failure: failures(&tokens),
            level: Level::parse_value(level).unwrap_or_default(),
            tokens,
            why,
        };
        self.by_pattern.insert(pattern.to_string(), neighbour);
        self.by_len
            .entry(len)
            .or_default()
            .push(pattern.to_string());
        self.order.push_back(pattern.to_string());
    }

    /// Forgets a pattern (its decision ended).
    pub fn forget(&mut self, pattern: &str) {
        if let Some(neighbour) = self.by_pattern.remove(pattern)
            && let Some(list) = self.by_len.get_mut(&neighbour.tokens.len())
        {
            list.retain(|p| p != pattern);
        }
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
        let candidates = self.by_len.get(&tokens.len())?;
        let mut best: Option<Found> = None;
        for pattern in candidates {
            let Some(neighbour) = self.by_pattern.get(pattern) else {
                continue;
            };
            if level > neighbour.level && neighbour.level != Level::Unknown {
                continue;
            }
            // A failure word where the neighbour has none.
            if failure.iter().any(|at| !neighbour.failure.contains(at)) {
                continue;
            }
            let differences = tokens
                .iter()
                .zip(&neighbour.tokens)
                .filter(|(a, b)| a != b && !is_placeholder(a) && !is_placeholder(b))
                .count();
            if differences == 0 || differences > MAX_DIFFERENCES {
                continue;
            }
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
}
