//! Test support (compiled only for tests, and included by `tests/it/pattern_accuracy.rs` and the examples through
//! `#[path]`): a tiny CSV reader for the Loghub fixtures and the grouping-accuracy metric.
//!
//! The fixtures live in `fixtures/loghub/` under the crate root (`CARGO_MANIFEST_DIR`), or in the
//! directory named by the `HOWL_LOGHUB_FIXTURES` environment variable.

use std::collections::HashMap;
use std::hash::Hash;
use std::path::PathBuf;

/// The eight fixture systems.
pub const DATASETS: [&str; 8] = [
    "Android",
    "Apache",
    "HDFS",
    "HPC",
    "Linux",
    "OpenSSH",
    "Proxifier",
    "Zookeeper",
];

/// Parses RFC-4180-style CSV: comma separated, fields optionally quoted, `""` inside quotes is a quote,
/// quoted fields may contain commas and newlines. CRLF and LF line ends.
pub fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut chars = text.chars().peekable();
    let mut in_quotes = false;
    let mut any = false;
    while let Some(c) = chars.next() {
        any = true;
        if in_quotes {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    chars.next();
                    field.push('"');
                } else {
                    in_quotes = false;
                }
            } else {
                field.push(c);
            }
            continue;
        }
        match c {
            '"' if field.is_empty() => in_quotes = true,
            ',' => row.push(std::mem::take(&mut field)),
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
                any = false;
            }
            _ => field.push(c),
        }
    }
    if any {
        row.push(field);
        rows.push(row);
    }
    rows
}

/// One labelled dataset: message contents and two label sets.
pub struct Dataset {
    pub name: &'static str,
    pub contents: Vec<String>,
    /// Loghub-2.0 corrected `EventTemplate`.
    pub corrected: Vec<String>,
    /// Original Loghub `EventId`.
    pub original: Vec<String>,
}

pub fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join("loghub")
}

fn column(rows: &[Vec<String>], name: &str) -> Vec<String> {
    let idx = rows[0]
        .iter()
        .position(|h| h == name)
        .unwrap_or_else(|| panic!("no column {name}"));
    rows[1..]
        .iter()
        .map(|r| r.get(idx).cloned().unwrap_or_default())
        .collect()
}

pub fn load(name: &'static str) -> Dataset {
    let dir = fixtures_dir().join(name);
    let read =
        |f: String| std::fs::read_to_string(dir.join(&f)).unwrap_or_else(|e| panic!("{f}: {e}"));
    let corr = parse_csv(&read(format!("{name}_2k.log_structured_corrected.csv")));
    let orig = parse_csv(&read(format!("{name}_2k.log_structured.csv")));
    let contents = column(&corr, "Content");
    let corrected = column(&corr, "EventTemplate");
    let original = column(&orig, "EventId");
    assert_eq!(
        contents.len(),
        original.len(),
        "{name}: label files differ in length"
    );
    Dataset {
        name,
        contents,
        corrected,
        original,
    }
}

/// Grouping accuracy: a ground-truth group is correct iff all its lines are in one predicted group that
/// holds nothing else; GA = lines in correct groups / lines. Lines with an empty truth label are dropped.
pub fn grouping_accuracy<P: Eq + Hash + Clone>(pred: &[P], truth: &[String]) -> f64 {
    let keep: Vec<usize> = (0..truth.len()).filter(|&i| !truth[i].is_empty()).collect();
    let mut pred_size: HashMap<&P, usize> = HashMap::new();
    for &i in &keep {
        *pred_size.entry(&pred[i]).or_default() += 1;
    }
    let mut groups: HashMap<&str, Vec<usize>> = HashMap::new();
    for &i in &keep {
        groups.entry(truth[i].as_str()).or_default().push(i);
    }
    let mut correct = 0usize;
    for lines in groups.values() {
        let p = &pred[lines[0]];
        if lines.iter().all(|&i| &pred[i] == p) && pred_size[p] == lines.len() {
            correct += lines.len();
        }
    }
    correct as f64 / keep.len() as f64
}

#[cfg(test)]
mod csv_tests {
    use super::parse_csv;

    #[test]
    fn csv_handles_quotes_escapes_and_crlf() {
        let rows = parse_csv("a,b\r\n\"x,1\",\"say \"\"hi\"\"\"\n\"multi\nline\",\n");
        assert_eq!(
            rows,
            vec![
                vec!["a", "b"],
                vec!["x,1", "say \"hi\""],
                vec!["multi\nline", ""]
            ]
        );
    }
}
