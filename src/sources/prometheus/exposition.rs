//! A parser for Prometheus' text exposition format, version 0.0.4: what
//! `/metrics` endpoints serve.
//!
//! The format, as Prometheus' own parser reads it:
//!
//! - one sample per line: `name{label="value",...} value [timestamp_ms]`;
//!   the label block is optional, may be empty (`{}`), may end in a comma,
//!   and may have blanks around its tokens;
//! - label values escape `\\`, `\"` and `\n` (other backslashes are kept
//!   as written); values are Go floats, including `NaN`, `+Inf`, `-Inf`;
//! - `# HELP name text` and `# TYPE name counter|gauge|histogram|summary|untyped`
//!   describe a family; other `#` lines and blank lines are comments;
//! - a histogram `h` is exposed as `h_bucket{le=...}`, `h_sum`, `h_count`,
//!   a summary `s` as `s{quantile=...}`, `s_sum`, `s_count`.
//!
//! Each sample gets a [`MetricKind`] from its family's `TYPE`: counters,
//! and the `_bucket`, `_sum` and `_count` series of histograms and
//! summaries, are counters; gauges, summary quantiles and untyped samples
//! are gauges.
//!
//! Like Prometheus, one malformed line fails the whole scrape (a partial
//! scrape would look like series vanishing): the error names the line.

use std::collections::HashMap;

use crate::event::metric::MetricKind;

/// One sample of a scrape.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The series name (`http_requests_total`, `latency_bucket`).
    pub name: String,
    /// Its labels, in the order written.
    pub labels: Vec<(String, String)>,
    /// Its value (NaN and infinities included).
    pub value: f64,
    /// The exposed timestamp, in milliseconds since the epoch, if any.
    pub timestamp_ms: Option<i64>,
    /// Gauge or counter, from the family's `TYPE`.
    pub kind: MetricKind,
}

/// Why an exposition could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct ParseError {
    /// The 1-based line number.
    pub line: usize,
    /// What is wrong there.
    pub message: String,
}

/// The declared type of a metric family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FamilyType {
    Counter,
    Gauge,
    Histogram,
    Summary,
    Untyped,
}

/// Parses a whole exposition.
pub fn parse(text: &str) -> Result<Vec<Sample>, ParseError> {
    let mut types: HashMap<&str, FamilyType> = HashMap::new();
    let mut samples = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let error = |message: String| ParseError {
            line: index + 1,
            message,
        };
        let line = line.trim_matches([' ', '\t', '\r']);
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            if let Some((name, family)) = parse_type(comment).map_err(error)? {
                types.insert(name, family);
            }
            continue;
        }
        let (name, labels, value, timestamp_ms) = parse_sample(line).map_err(error)?;
        let kind = kind_of(&types, name, &labels);
        samples.push(Sample {
            name: name.to_string(),
            labels,
            value,
            timestamp_ms,
            kind,
        });
    }
    Ok(samples)
}

/// Reads a `# TYPE name type` comment; other comments (`# HELP`, free
/// text) give `None`.
fn parse_type(comment: &str) -> Result<Option<(&str, FamilyType)>, String> {
    let mut words = comment.split_ascii_whitespace();
    if words.next() != Some("TYPE") {
        return Ok(None);
    }
    let (Some(name), Some(family), None) = (words.next(), words.next(), words.next()) else {
        return Err("`# TYPE` needs a metric name and a type".to_string());
    };
    if !is_metric_name(name) {
        return Err(format!("invalid metric name `{name}` in `# TYPE`"));
    }
    let family = match family {
        "counter" => FamilyType::Counter,
        "gauge" => FamilyType::Gauge,
        "histogram" => FamilyType::Histogram,
        "summary" => FamilyType::Summary,
        "untyped" => FamilyType::Untyped,
        other => return Err(format!("unknown metric type `{other}` for `{name}`")),
    };
    Ok(Some((name, family)))
}

/// The kind of a sample: its own family's type, or, for the `_bucket`,
/// `_sum` and `_count` series, the type of the histogram or summary they
/// belong to.
fn kind_of(
    types: &HashMap<&str, FamilyType>,
    name: &str,
    labels: &[(String, String)],
) -> MetricKind {
    if let Some(family) = types.get(name) {
        return match family {
            FamilyType::Counter => MetricKind::Counter,
            // A histogram's bare name has no samples; a summary's bare name
            // carries the quantiles, which go up and down.
            FamilyType::Summary if labels.iter().any(|(n, _)| n == "quantile") => MetricKind::Gauge,
            FamilyType::Histogram | FamilyType::Summary => MetricKind::Counter,
            FamilyType::Gauge | FamilyType::Untyped => MetricKind::Gauge,
        };
    }
    for (suffix, histogram_only) in [("_bucket", true), ("_sum", false), ("_count", false)] {
        let Some(family) = name.strip_suffix(suffix).and_then(|base| types.get(base)) else {
            continue;
        };
        match family {
            FamilyType::Histogram => return MetricKind::Counter,
            FamilyType::Summary if !histogram_only => return MetricKind::Counter,
            _ => {}
        }
    }
    MetricKind::Gauge
}

type Parsed<'a> = (&'a str, Vec<(String, String)>, f64, Option<i64>);

/// Reads one sample line.
fn parse_sample(line: &str) -> Result<Parsed<'_>, String> {
    let name_end = line.find(['{', ' ', '\t']).unwrap_or(line.len());
    let name = &line[..name_end];
    if !is_metric_name(name) {
        return Err(format!("invalid metric name `{name}`"));
    }
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(after_brace) = rest.strip_prefix('{') {
        rest = parse_labels(after_brace, &mut labels)?;
    }
    let mut fields = rest.split_ascii_whitespace();
    let value = fields
        .next()
        .ok_or_else(|| format!("`{name}` has no value"))?;
    let value =
        parse_value(value).ok_or_else(|| format!("invalid value `{value}` for `{name}`"))?;
    let timestamp_ms = fields
        .next()
        .map(|ts| {
            ts.parse::<i64>()
                .map_err(|_| format!("invalid timestamp `{ts}` for `{name}`"))
        })
        .transpose()?;
    if let Some(extra) = fields.next() {
        return Err(format!("unexpected `{extra}` after the sample of `{name}`"));
    }
    Ok((name, labels, value, timestamp_ms))
}

/// Reads `label="value", ...}` (after the `{`) and returns what follows
/// the closing brace.
fn parse_labels<'a>(
    mut rest: &'a str,
    labels: &mut Vec<(String, String)>,
) -> Result<&'a str, String> {
    loop {
        rest = rest.trim_start_matches([' ', '\t']);
        if let Some(after) = rest.strip_prefix('}') {
            return Ok(after);
        }
        let name_end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .ok_or("unterminated label set")?;
        let name = &rest[..name_end];
        if !is_label_name(name) {
            return Err(format!("invalid label name `{name}`"));
        }
        rest = rest[name_end..].trim_start_matches([' ', '\t']);
        rest = rest
            .strip_prefix('=')
            .ok_or_else(|| format!("expected `=` after label `{name}`"))?
            .trim_start_matches([' ', '\t']);
        rest = rest
            .strip_prefix('"')
            .ok_or_else(|| format!("the value of label `{name}` must be quoted"))?;
        let (value, after) =
            parse_quoted(rest).ok_or_else(|| format!("unterminated value of label `{name}`"))?;
        if labels.iter().any(|(existing, _)| existing == name) {
            return Err(format!("label `{name}` appears twice"));
        }
        labels.push((name.to_string(), value));
        rest = after.trim_start_matches([' ', '\t']);
        if let Some(after) = rest.strip_prefix(',') {
            rest = after;
        } else if !rest.starts_with('}') {
            return Err(format!("expected `,` or `}}` after label `{name}`"));
        }
    }
}

/// Reads a label value up to its closing quote, unescaping `\\`, `\"` and
/// `\n`; returns the value and what follows the quote.
fn parse_quoted(text: &str) -> Option<(String, &str)> {
    let mut value = String::new();
    let mut chars = text.char_indices();
    while let Some((index, c)) = chars.next() {
        match c {
            '"' => return Some((value, &text[index + 1..])),
            '\\' => match chars.next()? {
                (_, 'n') => value.push('\n'),
                (_, '\\') => value.push('\\'),
                (_, '"') => value.push('"'),
                (_, other) => {
                    value.push('\\');
                    value.push(other);
                }
            },
            other => value.push(other),
        }
    }
    None
}

/// A Go float as Prometheus writes it: decimal or exponent notation, `NaN`,
/// `+Inf`, `-Inf` (case-insensitive, as Go's `ParseFloat`).
fn parse_value(text: &str) -> Option<f64> {
    text.parse::<f64>().ok()
}

fn is_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
#[path = "exposition_tests.rs"]
mod tests;
