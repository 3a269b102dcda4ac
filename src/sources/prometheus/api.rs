//! Prometheus' HTTP query API (`GET /api/v1/query`), as `prometheus_query`
//! reads it: the answer's envelope, its result types, and the one check
//! of a PromQL text howl makes before sending it.
//!
//! An answer is `{"status": "success", "data": {"resultType": ..., "result": ...}}`
//! or `{"status": "error", "errorType": ..., "error": ...}` (with HTTP 400
//! for a bad query, 422 when it cannot be executed, 503 on timeouts).
//! Instant vectors and scalars become samples; a range vector (matrix) is
//! refused with an error saying how to fix the query, because a metric
//! event is one value at one time.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde::de::IgnoredAny;

/// One value of a query result.
#[derive(Debug, Clone, PartialEq)]
pub struct QuerySample {
    /// The series' labels, without `__name__`.
    pub labels: BTreeMap<String, String>,
    /// The value (NaN and infinities included).
    pub value: f64,
    /// The evaluation time Prometheus reports.
    pub timestamp: Option<DateTime<Utc>>,
}

/// Why an answer gave no samples.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnswerError {
    /// Prometheus said the query failed.
    #[error("Prometheus answered {error_type}: {error}")]
    Failed {
        /// `bad_data`, `execution`, `timeout`, ...
        error_type: String,
        /// Its explanation.
        error: String,
    },
    /// The result is a range vector.
    #[error(
        "the query returned a range vector (matrix); prometheus_query takes instant vectors \
         and scalars: remove the range selector `[...]`, or wrap it in a function such as \
         `rate(...)` or `max_over_time(...)`"
    )]
    Matrix,
    /// The result is a string.
    #[error("the query returned a string; prometheus_query takes instant vectors and scalars")]
    String,
    /// Not an answer of the query API.
    #[error("not an answer of Prometheus' query API: {0}")]
    Invalid(String),
}

#[derive(Deserialize)]
struct Envelope {
    status: String,
    data: Option<Data>,
    #[serde(rename = "errorType", default)]
    error_type: String,
    #[serde(default)]
    error: String,
}

#[derive(Deserialize)]
#[serde(tag = "resultType", content = "result", rename_all = "lowercase")]
enum Data {
    Vector(Vec<Series>),
    Scalar(Point),
    /// Refused without reading the contents.
    #[allow(dead_code)]
    Matrix(IgnoredAny),
    /// Refused without reading the contents.
    #[allow(dead_code)]
    String(IgnoredAny),
}

#[derive(Deserialize)]
struct Series {
    #[serde(default)]
    metric: BTreeMap<String, String>,
    /// Absent for native histogram samples (`histogram` instead), which
    /// have no single value.
    value: Option<Point>,
}

/// `[unix seconds, "value"]`.
#[derive(Deserialize)]
struct Point(f64, String);

impl Point {
    fn sample(self, mut labels: BTreeMap<String, String>) -> Option<QuerySample> {
        labels.remove("__name__");
        let value = self.1.parse::<f64>().ok()?;
        let timestamp = DateTime::from_timestamp_millis((self.0 * 1000.0).round() as i64);
        Some(QuerySample {
            labels,
            value,
            timestamp,
        })
    }
}

/// Reads an answer body (of any HTTP status: error answers carry the
/// same envelope).
pub fn parse_answer(body: &[u8]) -> Result<Vec<QuerySample>, AnswerError> {
    let envelope: Envelope =
        serde_json::from_slice(body).map_err(|e| AnswerError::Invalid(e.to_string()))?;
    if envelope.status != "success" {
        return Err(AnswerError::Failed {
            error_type: envelope.error_type,
            error: envelope.error,
        });
    }
    match envelope.data {
        Some(Data::Vector(series)) => Ok(series
            .into_iter()
            .filter_map(|s| s.value?.sample(s.metric))
            .collect()),
        Some(Data::Scalar(point)) => Ok(point.sample(BTreeMap::new()).into_iter().collect()),
        Some(Data::Matrix(_)) => Err(AnswerError::Matrix),
        Some(Data::String(_)) => Err(AnswerError::String),
        None => Err(AnswerError::Invalid("no `data`".to_string())),
    }
}

/// Whether a PromQL expression selects a range at its top level
/// (`up[5m]`, `rate(x[5m])[1h:1m]`), which makes its result a range
/// vector. Ranges inside parentheses (`rate(x[5m])`) are fine. Strings,
/// label matchers and comments are skipped, so a `[` inside them does not
/// count.
pub fn has_top_level_range(query: &str) -> bool {
    let mut depth = 0usize;
    let mut chars = query.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' | '\'' | '`' => skip_string(&mut chars, c),
            '#' => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
            }
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            '[' if depth == 0 => return true,
            _ => {}
        }
    }
    false
}

/// Skips to the end of a string opened by `quote` (backquoted strings have
/// no escapes).
fn skip_string(chars: &mut std::str::Chars<'_>, quote: char) {
    while let Some(c) = chars.next() {
        if c == '\\' && quote != '`' {
            chars.next();
        } else if c == quote {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vector_results_become_one_sample_per_series_without_the_name() {
        let body = br#"{"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"__name__":"up","job":"node","instance":"a:9100"},"value":[1763800000.5,"1"]},
            {"metric":{"job":"node","instance":"b:9100"},"value":[1763800000.5,"NaN"]},
            {"metric":{},"value":[1763800000.5,"+Inf"]},
            {"metric":{"le":"x"},"histogram":[1763800000.5,{"count":"1"}]}
        ]},"warnings":["some warning"]}"#;
        let samples = parse_answer(body).unwrap();
        assert_eq!(samples.len(), 3, "the native histogram has no value");
        assert_eq!(
            samples[0].labels,
            BTreeMap::from([
                ("instance".to_string(), "a:9100".to_string()),
                ("job".to_string(), "node".to_string())
            ])
        );
        assert_eq!(samples[0].value, 1.0);
        assert_eq!(
            samples[0].timestamp.unwrap().timestamp_millis(),
            1_763_800_000_500
        );
        assert!(samples[1].value.is_nan());
        assert_eq!(samples[2].value, f64::INFINITY);
    }

    #[test]
    fn a_scalar_is_one_sample_without_labels() {
        let body =
            br#"{"status":"success","data":{"resultType":"scalar","result":[1763800000,"42.5"]}}"#;
        let samples = parse_answer(body).unwrap();
        assert_eq!(samples.len(), 1);
        assert_eq!(samples[0].value, 42.5);
        assert!(samples[0].labels.is_empty());
    }

    #[test]
    fn errors_and_unusable_results_say_what_happened() {
        let error = parse_answer(
            br#"{"status":"error","errorType":"bad_data","error":"1:5: parse error: unexpected end of input"}"#,
        )
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            "Prometheus answered bad_data: 1:5: parse error: unexpected end of input"
        );
        let matrix = parse_answer(
            br#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1,"1"]]}]}}"#,
        )
        .unwrap_err();
        assert_eq!(matrix, AnswerError::Matrix);
        assert!(matrix.to_string().contains("remove the range selector"));
        assert_eq!(
            parse_answer(
                br#"{"status":"success","data":{"resultType":"string","result":[1,"s"]}}"#
            ),
            Err(AnswerError::String)
        );
        assert!(matches!(
            parse_answer(b"<html>502 Bad Gateway</html>"),
            Err(AnswerError::Invalid(_))
        ));
    }

    #[test]
    fn finds_ranges_at_the_top_level_only() {
        for query in [
            "up[5m]",
            "node_load1 [5m] offset 1h",
            "rate(http_requests_total[5m])[30m:1m]",
            "http_requests_total{path=\"/a\"}[1h]",
        ] {
            assert!(has_top_level_range(query), "{query}");
        }
        for query in [
            "up",
            "rate(http_requests_total[5m])",
            "sum by (job) (rate(x[5m]))",
            "max_over_time(rate(x[5m])[30m:1m])",
            "x{path=\"/[a]\"}",
            "x{path=`[`} # a comment [5m]\n+ 1",
            "x{path='\\'['}",
        ] {
            assert!(!has_top_level_range(query), "{query}");
        }
    }
}
