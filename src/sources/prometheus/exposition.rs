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
mod tests {
    use super::*;

    fn labels(sample: &Sample) -> Vec<(&str, &str)> {
        sample
            .labels
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect()
    }

    fn find<'a>(samples: &'a [Sample], name: &str) -> &'a Sample {
        samples
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("no sample {name}"))
    }

    #[test]
    fn reads_the_example_of_the_format_documentation() {
        let text = r#"# HELP http_requests_total The total number of HTTP requests.
    # TYPE http_requests_total counter
    http_requests_total{method="post",code="200"} 1027 1395066363000
    http_requests_total{method="post",code="400"}    3 1395066363000

    # Escaping in label values:
    msdos_file_access_time_seconds{path="C:\\DIR\\FILE.TXT",error="Cannot find file:\n\"FILE.TXT\""} 1.458255915e9

    # Minimalistic line:
    metric_without_timestamp_and_labels 12.47

    # A weird metric from before the epoch:
    something_weird{problem="division by zero"} +Inf -3982045

    # A histogram, which has a pretty complex representation in the text format:
    # HELP http_request_duration_seconds A histogram of the request duration.
    # TYPE http_request_duration_seconds histogram
    http_request_duration_seconds_bucket{le="0.05"} 24054
    http_request_duration_seconds_bucket{le="+Inf"} 144320
    http_request_duration_seconds_sum 53423
    http_request_duration_seconds_count 144320

    # Finally a summary, which has a complex representation, too:
    # HELP rpc_duration_seconds A summary of the RPC duration in seconds.
    # TYPE rpc_duration_seconds summary
    rpc_duration_seconds{quantile="0.01"} 3102
    rpc_duration_seconds{quantile="0.99"} 76656
    rpc_duration_seconds_sum 1.7560473e+07
    rpc_duration_seconds_count 2693
    "#;
        let samples = parse(text).unwrap();
        assert_eq!(samples.len(), 13);
        let first = &samples[0];
        assert_eq!(first.name, "http_requests_total");
        assert_eq!(labels(first), [("method", "post"), ("code", "200")]);
        assert_eq!(
            (first.value, first.timestamp_ms, first.kind),
            (1027.0, Some(1_395_066_363_000), MetricKind::Counter)
        );
        let msdos = find(&samples, "msdos_file_access_time_seconds");
        assert_eq!(
            labels(msdos),
            [
                ("path", r"C:\DIR\FILE.TXT"),
                ("error", "Cannot find file:\n\"FILE.TXT\"")
            ]
        );
        assert_eq!(msdos.value, 1.458_255_915e9);
        assert_eq!(
            find(&samples, "metric_without_timestamp_and_labels").kind,
            MetricKind::Gauge,
            "untyped"
        );
        let weird = find(&samples, "something_weird");
        assert_eq!(
            (weird.value, weird.timestamp_ms),
            (f64::INFINITY, Some(-3_982_045))
        );
        let bucket = find(&samples, "http_request_duration_seconds_bucket");
        assert_eq!(bucket.kind, MetricKind::Counter);
        assert_eq!(labels(bucket), [("le", "0.05")]);
        assert_eq!(
            find(&samples, "http_request_duration_seconds_sum").kind,
            MetricKind::Counter
        );
        let quantile = find(&samples, "rpc_duration_seconds");
        assert_eq!(quantile.kind, MetricKind::Gauge);
        let count = find(&samples, "rpc_duration_seconds_count");
        assert_eq!((count.kind, count.value), (MetricKind::Counter, 2693.0));
    }

    #[test]
    fn odd_but_valid_lines_parse() {
        let text = "\
    #   free text comment with # inside
    # HELP odd_total help with \\\\ and \\n escapes and { braces }
    # TYPE odd_total counter
    odd_total{} 1
    odd_total{ a = \"x\" , b=\"y\", } 2
    odd_total{a=\"}{,=\\\"\"} 3\r
    odd_total{a=\"tab\\tkept\"}\t4\t17
    odd_total{a=\"ünïcödé ✓\"} 5
      indented_gauge 6  
    name:with:colons{_under=\"\"} -7.5e-3
    nan_value NaN
    neg_inf -Inf
    lower_inf inf
    ";
        let samples = parse(text).unwrap();
        let values: Vec<f64> = samples.iter().map(|s| s.value).collect();
        assert_eq!(&values[..7], [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, -0.0075]);
        assert!(samples[0].labels.is_empty());
        assert_eq!(labels(&samples[1]), [("a", "x"), ("b", "y")]);
        assert_eq!(labels(&samples[2]), [("a", "}{,=\"")]);
        assert_eq!(labels(&samples[3]), [("a", "tab\\tkept")]);
        assert_eq!(samples[3].timestamp_ms, Some(17));
        assert_eq!(labels(&samples[4]), [("a", "ünïcödé ✓")]);
        assert_eq!(samples[5].name, "indented_gauge");
        assert_eq!(labels(&samples[6]), [("_under", "")]);
        assert!(samples[7].value.is_nan());
        assert_eq!(samples[8].value, f64::NEG_INFINITY);
        assert_eq!(samples[9].value, f64::INFINITY);
        assert!(samples[..5].iter().all(|s| s.kind == MetricKind::Counter));
    }

    #[test]
    fn suffixes_belong_to_a_histogram_or_summary_only_when_declared() {
        let text = "\
    # TYPE requests_count gauge
    requests_count 3
    # TYPE lat summary
    lat_bucket 1
    lat_sum 2
    ";
        let samples = parse(text).unwrap();
        assert_eq!(samples[0].kind, MetricKind::Gauge, "its own TYPE wins");
        assert_eq!(
            samples[1].kind,
            MetricKind::Gauge,
            "summaries have no buckets"
        );
        assert_eq!(samples[2].kind, MetricKind::Counter);
    }

    #[test]
    fn an_empty_exposition_has_no_samples() {
        assert_eq!(parse(""), Ok(Vec::new()));
        assert_eq!(parse("\n# only comments\n\n"), Ok(Vec::new()));
    }

    #[test]
    fn malformed_lines_fail_the_scrape_naming_the_line() {
        for (text, expected) in [
            ("ok 1\n9bad 1", "line 2: invalid metric name `9bad`"),
            ("m{a=\"x\" 1", "expected `,` or `}` after label `a`"),
            ("m{a=x} 1", "must be quoted"),
            ("m{a=\"x} 1", "unterminated value"),
            ("m{a=\"1\",a=\"2\"} 1", "appears twice"),
            ("m{1a=\"x\"} 1", "invalid label name"),
            ("m", "`m` has no value"),
            ("m one", "invalid value `one`"),
            ("m 1 12.5", "invalid timestamp"),
            ("m 1 2 3", "unexpected `3`"),
            ("# TYPE m histogramm", "unknown metric type"),
            ("# TYPE m", "needs a metric name and a type"),
        ] {
            let error = parse(text).unwrap_err().to_string();
            assert!(error.contains(expected), "{text:?}: {error}");
        }
    }
}
