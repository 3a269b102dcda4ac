//! One `threshold` rule, compiled: which samples it looks at (`metric`, a
//! glob over `.metric.name`), how it judges them (`condition`, a plain
//! comparison, or `vrl`, a boolean VRL expression over the whole event),
//! how it groups them (`group_by` tags), and how its alerts read
//! (`severity`, `summary`).
//!
//! Two condition options rather than one that guesses: `condition =
//! "value > 80"` is only ever a comparison, so a typo in it is a config
//! error, never a VRL program that happens to compile; `vrl` is only ever
//! VRL. A comparison also gives the alert its `threshold`.

use std::collections::BTreeMap;
use std::fmt;

use vrl::value::Value;

use crate::event::Event;
use crate::event::metric::Sample;
use crate::template::Template;
use crate::vrl_program::VrlRunner;

/// A comparison operator of `condition`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `>`
    Greater,
    /// `>=`
    GreaterOrEqual,
    /// `<`
    Less,
    /// `<=`
    LessOrEqual,
    /// `==`
    Equal,
    /// `!=`
    NotEqual,
}

impl Op {
    /// Longest first, so `>=` is not read as `>` followed by `=`.
    const ALL: [(&'static str, Op); 6] = [
        (">=", Op::GreaterOrEqual),
        ("<=", Op::LessOrEqual),
        ("==", Op::Equal),
        ("!=", Op::NotEqual),
        (">", Op::Greater),
        ("<", Op::Less),
    ];

    fn holds(self, value: f64, threshold: f64) -> bool {
        match self {
            Op::Greater => value > threshold,
            Op::GreaterOrEqual => value >= threshold,
            Op::Less => value < threshold,
            Op::LessOrEqual => value <= threshold,
            Op::Equal => value == threshold,
            Op::NotEqual => value != threshold,
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = Op::ALL
            .iter()
            .find(|(_, op)| op == self)
            .map_or("?", |(text, _)| text);
        f.write_str(text)
    }
}

/// `value OP number`, e.g. `value > 80`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Comparison {
    /// The operator.
    pub op: Op,
    /// The number compared with.
    pub threshold: f64,
}

impl Comparison {
    /// Parses `value > 80` (the `value` is required, so the text reads as
    /// what it tests).
    pub fn parse(text: &str) -> Result<Self, String> {
        let explain = || {
            format!(
                "`condition` must compare the value with a number, like `value > 80` \
                 (operators: > >= < <= == !=), not `{text}`; for anything else, use `vrl`"
            )
        };
        let rest = text
            .trim()
            .strip_prefix("value")
            .ok_or_else(explain)?
            .trim_start();
        let (op, number) = Op::ALL
            .iter()
            .find_map(|(symbol, op)| rest.strip_prefix(symbol).map(|n| (*op, n)))
            .ok_or_else(explain)?;
        let threshold: f64 = number.trim().parse().map_err(|_| explain())?;
        if threshold.is_nan() {
            return Err(explain());
        }
        Ok(Self { op, threshold })
    }
}

/// A `condition` option parses while the config is read, so a condition
/// that is not a comparison is reported where it is written.
impl<'de> serde::Deserialize<'de> for Comparison {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for Comparison {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "value {} {}", self.op, self.threshold)
    }
}

/// How a rule judges a sample.
pub enum Condition {
    /// A comparison of `.metric.value`.
    Compare(Comparison),
    /// A VRL expression over the whole event (its text, and the program).
    Vrl(String, VrlRunner),
}

/// A compiled rule.
pub struct Rule {
    /// Its name (`.alert.name`).
    pub name: String,
    /// The metric names it looks at.
    pub metric: glob::Pattern,
    /// How it judges a sample.
    pub condition: Condition,
    /// The tags that tell groups apart.
    pub group_by: Vec<String>,
    /// `.alert.severity`.
    pub severity: String,
    /// The summary template (see [`super::alert`] for what it can use).
    pub summary: Template,
    /// The hold time, in seconds, as configured (`.alert.for_secs`).
    pub for_secs: f64,
}

impl Rule {
    /// Whether the rule looks at samples named `name`.
    pub fn matches(&self, name: &str) -> bool {
        self.metric.matches(name)
    }

    /// The group of a sample: its key (`NAME`, or `NAME/tag=value,...` in
    /// `group_by` order) and its tags. A missing tag counts as empty, as a
    /// missing label does in Prometheus.
    pub fn group(&self, sample: &Sample<'_>) -> (String, BTreeMap<String, String>) {
        let mut key = self.name.clone();
        let mut tags = BTreeMap::new();
        for (index, tag) in self.group_by.iter().enumerate() {
            let value = sample.tag(tag).unwrap_or_default();
            key.push(if index == 0 { '/' } else { ',' });
            key.push_str(tag);
            key.push('=');
            key.push_str(value);
            tags.insert(tag.clone(), value.to_string());
        }
        (key, tags)
    }

    /// Whether `value` (the sample of `event`) breaches the rule; an error
    /// when a VRL condition fails on this event.
    pub fn breaches(&mut self, event: &mut Event, value: f64) -> Result<bool, String> {
        match &mut self.condition {
            Condition::Compare(comparison) => Ok(comparison.op.holds(value, comparison.threshold)),
            Condition::Vrl(_, runner) => match runner.run(event.value_mut()) {
                Ok(Value::Boolean(breaching)) => Ok(breaching),
                Ok(other) => Err(format!("`vrl` returned {other} instead of a boolean")),
                Err(error) => Err(format!("`vrl` failed: {error}")),
            },
        }
    }

    /// The comparison's number, for `.alert.threshold`.
    pub fn threshold(&self) -> Option<f64> {
        match &self.condition {
            Condition::Compare(comparison) => Some(comparison.threshold),
            Condition::Vrl(..) => None,
        }
    }

    /// The condition as the user wrote it (normalised for comparisons).
    pub fn condition_text(&self) -> String {
        match &self.condition {
            Condition::Compare(comparison) => comparison.to_string(),
            Condition::Vrl(text, _) => text.clone(),
        }
    }
}

/// Whether `name` can be a rule name: it is the start of every alert key
/// (`NAME/host=web-1`) and an Alertmanager `alertname`, so it keeps to
/// letters, digits and `_ . : -`.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comparisons_read_every_operator_and_number_form() {
        for (text, op, threshold) in [
            ("value > 80", Op::Greater, 80.0),
            ("value>=80.5", Op::GreaterOrEqual, 80.5),
            ("  value <  -1e3 ", Op::Less, -1000.0),
            ("value <= 0", Op::LessOrEqual, 0.0),
            ("value == 1", Op::Equal, 1.0),
            ("value != 1", Op::NotEqual, 1.0),
        ] {
            assert_eq!(
                Comparison::parse(text),
                Ok(Comparison { op, threshold }),
                "{text}"
            );
        }
        assert_eq!(
            Comparison::parse("value >= 80").unwrap().to_string(),
            "value >= 80"
        );
    }

    #[test]
    fn anything_but_a_comparison_is_refused_with_a_pointer_to_vrl() {
        for text in [
            "> 80",
            "value > eighty",
            "value => 80",
            "value > 80 && value < 90",
            ".metric.value > 80",
            "value > NaN",
        ] {
            let error = Comparison::parse(text).unwrap_err();
            assert!(error.contains("use `vrl`"), "{text}: {error}");
        }
    }

    #[test]
    fn comparisons_hold_as_written() {
        let holds = |text: &str, value: f64| {
            let c = Comparison::parse(text).unwrap();
            c.op.holds(value, c.threshold)
        };
        assert!(holds("value > 80", 80.1) && !holds("value > 80", 80.0));
        assert!(holds("value >= 80", 80.0));
        assert!(holds("value < 1", 0.5) && !holds("value <= 1", 1.5));
        assert!(holds("value == 0", 0.0) && holds("value != 0", 1.0));
        assert!(holds("value > 80", f64::INFINITY));
    }

    #[test]
    fn rule_names_stay_usable_in_keys_and_labels() {
        assert!(valid_name("HighCpu") && valid_name("disk.full:root-1"));
        assert!(!valid_name("") && !valid_name("High Cpu") && !valid_name("a/b"));
    }
}
