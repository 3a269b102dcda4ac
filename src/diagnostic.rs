//! Config problems as the user sees them: each names the file, the position
//! (line and column, 1-based) where known, and the component.
//!
//! [`BuildError`] is the component-side half: what a component reports when
//! its options do not make sense, with the span it knows; the topology turns
//! it into a [`Diagnostic`] naming the component.
//!
//! Loading never stops at the first problem. Every stage (TOML syntax,
//! options, graph, build) appends to one list, so `howl validate` shows all
//! problems at once, in file order.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// The text of one config file, with what is needed to turn byte offsets
/// into line and column numbers of the file as it is on disk.
#[derive(Debug)]
pub struct SourceFile {
    path: PathBuf,
    /// The text howl parsed (after `${...}` interpolation).
    text: String,
    /// The text on disk, when interpolation changed it.
    original: Option<String>,
    /// Where interpolation replaced text, in order.
    replacements: Vec<Replacement>,
    line_starts: Vec<usize>,
}

/// One `${...}` reference replaced by its value (or a `$$` by `$`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Replacement {
    /// Where the value starts in the interpolated text.
    pub at: usize,
    /// The value's length.
    pub len: usize,
    /// Where the reference starts in the original text.
    pub original_at: usize,
    /// The reference's length.
    pub original_len: usize,
    /// Whether it is a `${...}` reference (`false` for a `$$` escape).
    pub variable: bool,
}

impl SourceFile {
    /// Wraps a file's text, as parsed.
    pub fn new(path: impl Into<PathBuf>, text: String) -> Self {
        let line_starts = line_starts(&text);
        Self {
            path: path.into(),
            text,
            original: None,
            replacements: Vec::new(),
            line_starts,
        }
    }

    /// Wraps a file whose `${...}` references were replaced: positions are
    /// still told in `original`, the file as the user sees it.
    pub fn with_replacements(
        path: impl Into<PathBuf>,
        original: String,
        text: String,
        replacements: Vec<Replacement>,
    ) -> Self {
        if replacements.iter().all(|r| r.len == r.original_len) {
            return Self {
                replacements,
                ..Self::new(path, text)
            };
        }
        Self {
            path: path.into(),
            line_starts: line_starts(&original),
            text,
            original: Some(original),
            replacements,
        }
    }

    /// The offset in the original text of `offset` in the parsed text: a
    /// position inside a replaced value is the reference's start.
    fn original_offset(&self, offset: usize) -> usize {
        let mut shift: isize = 0;
        for replacement in &self.replacements {
            if offset < replacement.at {
                break;
            }
            if offset < replacement.at + replacement.len {
                return replacement.original_at;
            }
            shift += replacement.original_len as isize - replacement.len as isize;
        }
        offset.saturating_add_signed(shift)
    }

    /// The `${...}` references whose values stand inside `span` of the
    /// parsed text (an option's value), for options that may not hold one.
    pub fn references_in(&self, span: &Range<usize>) -> impl Iterator<Item = &Replacement> {
        self.replacements
            .iter()
            .filter(move |r| r.variable && span.start <= r.at && r.at < span.end)
    }

    /// 1-based line and column in the file on disk of `offset` in the file
    /// on disk (a reference's [`Replacement::original_at`]).
    pub fn line_col_on_disk(&self, offset: usize) -> (usize, usize) {
        let text = self.text_on_disk();
        let offset = offset.min(text.len());
        let line = self.line_starts.partition_point(|&start| start <= offset) - 1;
        let start = self.line_starts[line];
        let column = text
            .get(start..offset)
            .map_or(offset - start, |prefix| prefix.chars().count());
        (line + 1, column + 1)
    }

    /// The path as the user gave it.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The text howl parsed.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The text as it is on disk (before `${...}` interpolation).
    pub fn text_on_disk(&self) -> &str {
        self.original.as_deref().unwrap_or(&self.text)
    }

    /// 1-based line and column (in characters), in the file on disk, of a
    /// byte offset of the parsed text.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        match &self.original {
            Some(_) => self.line_col_on_disk(self.original_offset(offset)),
            None => self.line_col_on_disk(offset),
        }
    }
}

/// A file that is not UTF-8: where its first invalid byte is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotUtf8 {
    /// 1-based line of the byte.
    pub line: usize,
    /// 1-based column of the byte, in characters.
    pub column: usize,
    /// The byte itself.
    pub byte: u8,
}

impl fmt::Display for NotUtf8 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid UTF-8 (byte 0x{:02X}); the file must be saved as UTF-8",
            self.byte
        )
    }
}

/// Decodes a file read as bytes, or says where its first invalid byte is,
/// so the error points at it like any other (`read_to_string` only says
/// that there is one, somewhere).
pub fn decode_utf8(bytes: Vec<u8>) -> Result<String, NotUtf8> {
    String::from_utf8(bytes).map_err(|error| {
        let valid = error.utf8_error().valid_up_to();
        let bytes = error.as_bytes();
        let prefix = String::from_utf8_lossy(&bytes[..valid]).into_owned();
        let (line, column) = SourceFile::new("", prefix).line_col(valid);
        NotUtf8 {
            line,
            column,
            byte: bytes[valid],
        }
    })
}

fn line_starts(text: &str) -> Vec<usize> {
    std::iter::once(0)
        .chain(memchr::memchr_iter(b'\n', text.as_bytes()).map(|i| i + 1))
        .collect()
}

/// How bad a diagnostic is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    /// The config cannot run.
    Error,
    /// The config runs, but probably not as intended.
    Warning,
}

/// One problem found in a config.
#[derive(Clone, Debug)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// The file, when the problem belongs to one.
    pub file: Option<PathBuf>,
    /// 1-based line and column inside `file`.
    pub position: Option<(usize, usize)>,
    /// The component, as `sources.id`.
    pub component: Option<String>,
    /// What is wrong, in one line.
    pub message: String,
    /// A longer explanation, shown indented under the message.
    pub detail: Option<String>,
}

impl Diagnostic {
    /// An error not tied to a position.
    pub fn error(message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Error,
            file: None,
            position: None,
            component: None,
            message: message.into(),
            detail: None,
        }
    }

    /// A warning not tied to a position.
    pub fn warning(message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Warning,
            ..Self::error(message)
        }
    }

    /// Attributes the diagnostic to a file, without a position.
    pub fn in_file(mut self, file: &SourceFile) -> Self {
        self.file = Some(file.path().to_path_buf());
        self
    }

    /// Points the diagnostic at a byte range of a file.
    pub fn at(mut self, file: &SourceFile, span: Option<Range<usize>>) -> Self {
        self.file = Some(file.path().to_path_buf());
        self.position = span.map(|span| file.line_col(span.start));
        self
    }

    /// Points the diagnostic at a byte offset of the file as it is on disk
    /// (where a `${...}` reference is written).
    pub fn at_on_disk(mut self, file: &SourceFile, offset: usize) -> Self {
        self.file = Some(file.path().to_path_buf());
        self.position = Some(file.line_col_on_disk(offset));
        self
    }

    /// Points the diagnostic at a file's first invalid UTF-8 byte.
    pub fn at_invalid_utf8(mut self, path: &Path, at: &NotUtf8) -> Self {
        self.file = Some(path.to_path_buf());
        self.position = Some((at.line, at.column));
        self
    }

    /// Names the component the diagnostic is about.
    pub fn component(mut self, component: impl fmt::Display) -> Self {
        self.component = Some(component.to_string());
        self
    }

    /// Adds a longer explanation.
    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// True for errors.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    /// `error: a.toml:3:9: sinks.out: unknown option `foo``, then the detail
    /// indented, the shape compilers use so editors can jump to the spot.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let severity = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{severity}: ")?;
        if let Some(file) = &self.file {
            write!(f, "{}", file.display())?;
            if let Some((line, column)) = self.position {
                write!(f, ":{line}:{column}")?;
            }
            f.write_str(": ")?;
        }
        if let Some(component) = &self.component {
            write!(f, "{}: ", escape_controls(component))?;
        }
        f.write_str(&escape_controls(&self.message))?;
        if let Some(detail) = &self.detail {
            for line in detail.trim_start_matches(['\n', '\r']).trim_end().lines() {
                write!(f, "\n    {}", escape_controls(line))?;
            }
        }
        Ok(())
    }
}

/// Why a component's options cannot be turned into a working component.
#[derive(Debug, Clone)]
pub struct BuildError {
    /// One line saying what is wrong and what to do.
    pub message: String,
    /// Where in the config file the problem is, when known (byte range).
    pub span: Option<Range<usize>>,
    /// Where the problem is, in another file (a VRL `file = ...`), when known:
    /// the file and its 1-based line and column.
    /// Boxed: rare, and it keeps `Result<_, BuildError>` small.
    pub external: Option<Box<(PathBuf, usize, usize)>>,
    /// A multi-line explanation (e.g. VRL's own diagnostic rendering).
    pub detail: Option<String>,
    /// The option the problem is about (`batch.max_events`,
    /// `rules[0].for_secs`): when no `span` is set, the error points at
    /// where that option is written.
    pub option: Option<String>,
}

impl BuildError {
    /// An error without a position (see [`Self::for_option`]).
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            span: None,
            external: None,
            detail: None,
            option: None,
        }
    }

    /// Says which option is wrong, so the error points at where it is
    /// written (or, for a default left unset, at the component). Checks that
    /// need several options at once stay in `build()`; this keeps their
    /// errors positioned like those found while parsing.
    pub fn for_option(mut self, path: impl Into<String>) -> Self {
        self.option = Some(path.into());
        self
    }

    /// Points the error at a byte range of the config file.
    pub fn at(mut self, span: Range<usize>) -> Self {
        self.span = Some(span);
        self
    }

    /// Adds a multi-line explanation.
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }
}

impl BuildError {
    /// The diagnostic a user sees: at the error's own position when it has
    /// one (in the config, or in a separate file such as a VRL `file`), else
    /// where its option is written (`options`), else at the component's
    /// table (`span` of `file`); always naming the component.
    pub fn into_diagnostic(
        self,
        component: &impl fmt::Display,
        file: &SourceFile,
        span: &Range<usize>,
        options: &OptionSpans,
    ) -> Diagnostic {
        let option_span = self.option.as_deref().and_then(|path| options.get(path));
        let mut diagnostic = match (self.external.map(|e| *e), self.span.or(option_span)) {
            (Some((path, line, column)), _) => {
                let mut d = Diagnostic::error(self.message);
                d.file = Some(path);
                d.position = Some((line, column));
                d
            }
            (None, Some(at)) => Diagnostic::error(self.message).at(file, Some(at)),
            (None, None) => Diagnostic::error(self.message).at(file, Some(span.clone())),
        };
        diagnostic = diagnostic.component(component);
        match self.detail {
            Some(detail) => diagnostic.detail(detail),
            None => diagnostic,
        }
    }
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for BuildError {}

/// Where each option of one component is written: its value's byte range,
/// by dotted path (`batch.max_events`, `rules[0].for_secs`), recorded by the
/// loader so that errors found after parsing still point at the option.
#[derive(Debug, Clone, Default)]
pub struct OptionSpans(BTreeMap<String, Range<usize>>);

impl OptionSpans {
    /// Records where the option at `path` is written.
    pub fn insert(&mut self, path: String, span: Range<usize>) {
        self.0.insert(path, span);
    }

    /// The option written exactly at `span` (a nested table or a list
    /// item), if any; the most specific one when several share it (a list
    /// of tables and its first item).
    pub fn path_at(&self, span: &Range<usize>) -> Option<&str> {
        self.0
            .iter()
            .filter(|(_, at)| *at == span)
            .max_by_key(|(path, _)| path.len())
            .map(|(path, _)| path.as_str())
    }

    /// The most deeply nested option whose value contains `span`.
    pub fn path_containing(&self, span: &Range<usize>) -> Option<&str> {
        self.0
            .iter()
            .filter(|(_, at)| at.start <= span.start && span.end <= at.end)
            .min_by_key(|(_, at)| at.end - at.start)
            .map(|(path, _)| path.as_str())
    }

    /// Where `path` is written; for a path not written (left to its
    /// default), where its closest written parent is (`rules[0]` for
    /// `rules[0].for_secs`).
    pub fn get(&self, path: &str) -> Option<Range<usize>> {
        let mut path = path;
        loop {
            if let Some(span) = self.0.get(path) {
                return Some(span.clone());
            }
            path = &path[..path.rfind(['.', '['])?];
        }
    }
}

/// Text from a config (a value, an id) as it may be shown on a terminal:
/// control characters (NUL, escape sequences, a right-to-left override)
/// are written as `\u{...}` instead of being sent to the terminal, where
/// they could hide or forge what the user reads.
///
/// The same goes for text a client sent that howl writes to its own log
/// (a suppression's `reason`): a newline in it would start a line that
/// looks like howl's own.
pub fn escape_controls(text: &str) -> std::borrow::Cow<'_, str> {
    let dangerous = |c: char| c != '\t' && is_control_or_bidi(c);
    if !text.chars().any(dangerous) {
        return std::borrow::Cow::Borrowed(text);
    }
    std::borrow::Cow::Owned(
        text.chars()
            .map(|c| {
                if dangerous(c) {
                    format!("\\u{{{:04x}}}", u32::from(c))
                } else {
                    c.to_string()
                }
            })
            .collect(),
    )
}

/// Whether `c` is a control character (tab included) or one that reorders
/// the text around it (the bidirectional overrides and isolates): what a
/// terminal or a log viewer would act on instead of showing.
fn is_control_or_bidi(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Formats a list of names as `a, b, c` (or `(none)`), for "expected one of".
pub fn name_list<I, S>(names: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let list: Vec<String> = names
        .into_iter()
        .map(|n| format!("`{}`", n.as_ref()))
        .collect();
    if list.is_empty() {
        "(none)".to_string()
    } else {
        list.join(", ")
    }
}

/// The candidate closest to `name` by edit distance, if it is close enough to
/// be a likely typo ("did you mean `max_events`?").
pub fn did_you_mean<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (levenshtein(name, c), c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_is_one_based_and_counts_characters() {
        let file = SourceFile::new("a.toml", "a = 1\nbé = 2\n".to_string());
        assert_eq!(file.line_col(0), (1, 1));
        assert_eq!(file.line_col(6), (2, 1));
        // "bé" is 3 bytes; "=" at byte 10 is the 4th character of line 2.
        assert_eq!(file.line_col(10), (2, 4));
    }

    #[test]
    fn invalid_utf8_is_located() {
        let at = decode_utf8(b"a = 1\nb\xC3\xA9 = \"\xFF\"\n".to_vec()).unwrap_err();
        assert_eq!((at.line, at.column, at.byte), (2, 7, 0xFF));
        assert_eq!(decode_utf8(b"ok".to_vec()).unwrap(), "ok");
    }

    #[test]
    fn display_names_file_position_and_component() {
        let file = SourceFile::new("a.toml", "x\n[sinks.out]\n".to_string());
        let d = Diagnostic::error("unknown option `foo`")
            .at(&file, Some(2..3))
            .component("sinks.out")
            .detail("line one\nline two");
        assert_eq!(
            d.to_string(),
            "error: a.toml:2:1: sinks.out: unknown option `foo`\n    line one\n    line two"
        );
    }

    #[test]
    fn suggests_close_names_only() {
        let names = ["max_events", "when_full"];
        assert_eq!(did_you_mean("max_event", names), Some("max_events"));
        assert_eq!(did_you_mean("colour", names), None);
    }
}
