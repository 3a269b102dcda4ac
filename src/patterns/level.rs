//! Severity detection, normalised to [`Level`].
//!
//! Two sources, in order of trust:
//!
//! 1. **A level value from the caller** (`level_hint`), when the user named a level field in their
//!    structured logs. Spellings from every common ecosystem are accepted: words (`ERROR`, `warning`,
//!    `crit`, ...), single letters (Android/glog `V D I W E F A`) and syslog severity numbers `0..=7`.
//! 2. **The text of the line**, scanned only in its *header region*: the first [`HEADER_TOKENS`]
//!    whitespace tokens. Following the reference measurements (§5.4), a level is taken from
//!    * a syslog `<PRI>` prefix;
//!    * a `level=`/`severity=`/`"level":` key in those tokens (logfmt, JSON);
//!    * an upper-case keyword such as `ERROR`, `[WARN]`, `<INFO>`;
//!    * a lower-case or capitalised keyword only when it is clearly a level marker: bracketed
//!      (`[error]`) or a leading `error:`/`Warning:` in the first two tokens;
//!    * an Android/logcat single letter when every token before it looks like header (date, time,
//!      pid: it contains a digit), or a glog `E0102` / logcat `W/Tag` prefix.
//!
//! A capitalised word deep in a message (`CPU: Trace cache`, `A connection request ...`) is never taken
//! as the level; that is the false positive the reference warns about. When nothing matches the level
//! is [`Level::Unknown`].

use serde::{Deserialize, Serialize};
use std::fmt;

use super::mask::{CLASS, class};
use super::spans::{json_member, json_member_break};

/// How many leading whitespace tokens count as "header" for text detection. BGL-style logs put the
/// level in the 9th field, so 8 is too few; 10 is what the reference measured at 100% agreement.
pub(crate) const HEADER_TOKENS: usize = 10;

/// Normalised severity of a log line.
///
/// Why an enum rather than the raw string: alert rules and dashboards need one vocabulary across
/// syslog numbers, Android letters and the many spellings of "warning". Ordered by severity
/// (`Unknown < Debug < ... < Fatal`) so "the worst level seen" is a simple `max`.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// No level could be determined.
    #[default]
    Unknown,
    /// DEBUG, TRACE, VERBOSE, syslog 7.
    Debug,
    /// INFO, NOTICE, syslog 5–6.
    Info,
    /// WARN, WARNING, syslog 4.
    Warn,
    /// ERROR, ERR, syslog 3.
    Error,
    /// FATAL, CRITICAL, EMERG, ALERT, PANIC, SEVERE, syslog 0–2.
    Fatal,
}

impl Level {
    /// Lower-case name, as used in labels: `fatal|error|warn|info|debug|unknown`.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Unknown => "unknown",
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
            Level::Fatal => "fatal",
        }
    }

    /// Normalises a level *value* (from a structured field): words, single letters, syslog numbers.
    /// Returns `None` when the value is not recognisable, so the caller can fall back to the text.
    pub fn parse_value(value: &str) -> Option<Level> {
        let v = value
            .trim()
            .trim_matches(|c: char| "[]()<>{}\"',:;|".contains(c));
        if v.is_empty() || v.len() > 16 {
            return None;
        }
        if v.len() == 1 {
            let b = v.as_bytes()[0];
            if b.is_ascii_digit() {
                return Some(syslog_severity(b - b'0'));
            }
            return letter(b.to_ascii_uppercase());
        }
        let mut buf = [0u8; 16];
        let lower = &mut buf[..v.len()];
        lower.copy_from_slice(v.as_bytes());
        lower.make_ascii_lowercase();
        word(lower)
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

fn syslog_severity(n: u8) -> Level {
    match n {
        0..=2 => Level::Fatal,
        3 => Level::Error,
        4 => Level::Warn,
        5 | 6 => Level::Info,
        _ => Level::Debug,
    }
}

/// Android / glog single-letter levels.
fn letter(b: u8) -> Option<Level> {
    Some(match b {
        b'V' | b'D' | b'T' => Level::Debug,
        b'I' | b'N' => Level::Info,
        b'W' => Level::Warn,
        b'E' => Level::Error,
        b'F' | b'A' | b'C' => Level::Fatal,
        _ => return None,
    })
}

/// Whether `w` is a level word in any case (`INFO`, `Warning`): the tokenizer must not read a
/// header's level as a word of the message.
pub(crate) fn is_level_word(w: &[u8]) -> bool {
    let mut lower = [0u8; 13];
    let Some(lower) = lower.get_mut(..w.len()) else {
        return false;
    };
    lower.copy_from_slice(w);
    lower.make_ascii_lowercase();
    word(lower).is_some()
}

/// Level keywords, already lower-cased.
fn word(w: &[u8]) -> Option<Level> {
    Some(match w {
        b"fatal" | b"crit" | b"critical" | b"emerg" | b"emergency" | b"alert" | b"panic"
        | b"severe" => Level::Fatal,
        b"error" | b"err" | b"eror" => Level::Error,
        b"warn" | b"warning" => Level::Warn,
        b"info" | b"information" | b"informational" | b"notice" => Level::Info,
        b"debug" | b"dbg" | b"trace" | b"verbose" | b"fine" | b"finer" | b"finest" => Level::Debug,
        _ => return None,
    })
}

/// Keys whose value is a level in logfmt/JSON lines.
fn is_level_key(k: &[u8]) -> bool {
    let k = trim_bytes(k, b"\"'{,");
    k.eq_ignore_ascii_case(b"level")
        || k.eq_ignore_ascii_case(b"lvl")
        || k.eq_ignore_ascii_case(b"severity")
        || k.eq_ignore_ascii_case(b"loglevel")
        || k.eq_ignore_ascii_case(b"log_level")
        || k.eq_ignore_ascii_case(b"log.level")
        || k.eq_ignore_ascii_case(b"levelname")
}

fn trim_bytes<'a>(mut s: &'a [u8], set: &[u8]) -> &'a [u8] {
    if s.first().is_some_and(u8::is_ascii_alphanumeric)
        && s.last().is_some_and(u8::is_ascii_alphanumeric)
    {
        return s;
    }
    while let Some((f, rest)) = s.split_first() {
        if set.contains(f) {
            s = rest;
        } else {
            break;
        }
    }
    while let Some((l, rest)) = s.split_last() {
        if set.contains(l) {
            s = rest;
        } else {
            break;
        }
    }
    s
}

/// Determines the level: the hint wins when it is recognisable, else the line's header region.
#[cfg(test)]
pub(crate) fn detect(line: &str, hint: Option<&str>) -> Level {
    if let Some(l) = hint.and_then(Level::parse_value) {
        return l;
    }
    from_text(line.as_bytes())
}

const TRIM: &[u8] = b"[](){}<>:,|\"'";

/// Level from the text of a line (scans its header tokens itself). A compact JSON line's
/// members are tokens of their own, as the tokenizer reads them (see `LineBuf::level`, which
/// must find what this finds): `"level":"error",` after `{"ts":"…",` is a header token.
pub(crate) fn from_text(line: &[u8]) -> Level {
    let n = line.len();
    let mut i = 0;
    // End of the compact JSON member being read: its words end at whitespace only.
    let mut member_end = 0;
    let toks = std::iter::from_fn(|| {
        while i < n && line[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= n {
            return None;
        }
        let start = i;
        if start >= member_end
            && let Some(m) = json_member(line, start)
        {
            member_end = m.end;
        }
        let in_member = start < member_end;
        let mut acc = 0u8;
        while i < n && !(in_member && i == member_end) {
            let c = CLASS[line[i] as usize];
            if c & class::WS != 0 {
                break;
            }
            acc |= c;
            i += 1;
            if !in_member && i - 1 > start && json_member_break(line, i - 1) {
                break;
            }
        }
        Some((&line[start..i], acc))
    });
    from_tokens(line, toks)
}

/// Level from a line's first whitespace tokens (with their OR-ed byte classes), when the caller has
/// already split the line.
pub(crate) fn from_tokens<'a>(line: &[u8], toks: impl Iterator<Item = (&'a [u8], u8)>) -> Level {
    // Syslog <PRI> prefix: severity is PRI mod 8.
    if line.first() == Some(&b'<') {
        let digits = line[1..].iter().take_while(|b| b.is_ascii_digit()).count();
        if (1..=3).contains(&digits) && line.get(1 + digits) == Some(&b'>') {
            let pri: u32 = line[1..1 + digits]
                .iter()
                .fold(0, |a, b| a * 10 + u32::from(b - b'0'));
            return syslog_severity((pri % 8) as u8);
        }
    }
    let mut all_header_like = true;
    for (k, (tok, acc)) in toks.take(HEADER_TOKENS).enumerate() {
        if let Some(l) = token_level(tok, acc, k, all_header_like) {
            return l;
        }
        if acc & class::DIGIT == 0 {
            all_header_like = false;
        }
    }
    Level::Unknown
}

/// `level=error`, `"level":"error",`, `severity:WARN`: the value of a level key.
fn key_value_level(tok: &[u8]) -> Option<Level> {
    // All level keys start with l or s: reject everything else before searching for the separator.
    let key_start = tok.iter().position(|b| !b"{\"',".contains(b))?;
    if !matches!(tok[key_start], b'l' | b'L' | b's' | b'S') {
        return None;
    }
    let p = tok[..tok.len().min(16)]
        .iter()
        .position(|&b| b == b'=' || b == b':')?;
    if !(3..=13).contains(&p) || !is_level_key(&tok[..p]) {
        return None;
    }
    let v = &tok[p + 1..];
    let v = &v[..v
        .iter()
        .position(|b| b",;&}".contains(b))
        .unwrap_or(v.len())];
    std::str::from_utf8(v).ok().and_then(Level::parse_value)
}

/// Level named by one header token, if any (see the module docs for the rules).
#[inline]
fn token_level(tok: &[u8], acc: u8, k: usize, all_header_like: bool) -> Option<Level> {
    // Fast reject of ordinary words ("connection", "Failed"): no key=value, not bracketed, not a
    // leading "error:", and a lower-case second letter rules out UPPER keywords, glog and logcat.
    if acc & (class::TRIG | class::COLON) == 0
        && tok.len() > 1
        && tok[1].is_ascii_lowercase()
        && tok[0].is_ascii_alphabetic()
    {
        return None;
    }
    // level=error, "level":"error", severity:WARN
    if acc & (class::TRIG | class::COLON) != 0
        && let Some(l) = key_value_level(tok)
    {
        return Some(l);
    }
    let core = trim_bytes(tok, TRIM);
    if core.len() == 1 {
        // Android/logcat letter, only in header position (everything before it has digits).
        if k > 0 && all_header_like && b"VDIWEFA".contains(&core[0]) {
            return letter(core[0]);
        }
        return None;
    }
    if k == 0 && core.len() > 1 && b"VDIWEFA".contains(&tok[0]) {
        // glog "E0102 ..." and logcat "W/Tag(123):" prefixes.
        let glog = core.len() == 5 && core[1..].iter().all(u8::is_ascii_digit);
        let logcat = tok.len() > 2 && tok[1] == b'/';
        if glog || logcat {
            return letter(tok[0]);
        }
    }
    if !(3..=13).contains(&core.len()) {
        return None;
    }
    // Only an UPPER-case keyword, a bracketed one or a leading "error:" counts; check that first, it
    // rejects almost every ordinary word without a table lookup.
    let upper = core.iter().all(|b| b.is_ascii_uppercase());
    let bracketed = matches!(tok.first(), Some(b'[' | b'<' | b'('));
    let leading_colon = k < 2 && tok.last() == Some(&b':');
    if !(upper || bracketed || leading_colon) {
        return None;
    }
    let mut buf = [0u8; 13];
    let lower = &mut buf[..core.len()];
    lower.copy_from_slice(core);
    lower.make_ascii_lowercase();
    word(lower)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_level_keywords_are_detected() {
        assert_eq!(
            detect("2024-01-02 12:00:00,123 ERROR [main] Foo: boom", None),
            Level::Error
        );
        assert_eq!(
            detect(
                "081109 203615 148 INFO dfs.DataNode$PacketResponder: done",
                None
            ),
            Level::Info
        );
        assert_eq!(
            detect(
                "[Sun Dec 04 04:47:44 2005] [notice] workerEnv.init() ok",
                None
            ),
            Level::Info
        );
        assert_eq!(
            detect("[Sun Dec 04 04:47:44 2005] [error] mod_jk child", None),
            Level::Error
        );
        assert_eq!(detect("WARNING: disk almost full", None), Level::Warn);
        assert_eq!(detect("ts=1 level=warn msg=\"x\"", None), Level::Warn);
        assert_eq!(
            detect("{\"level\":\"debug\",\"msg\":\"x\"}", None),
            Level::Debug
        );
        assert_eq!(detect("a b c d e f g h CRITICAL x", None), Level::Fatal);
    }

    #[test]
    fn syslog_severities_are_detected() {
        assert_eq!(
            detect("<11>Oct 11 22:14:15 host app: x", None),
            Level::Error
        );
        assert_eq!(detect("<12>Oct 11 22:14:15 host app: x", None), Level::Warn);
        assert_eq!(detect("<14>Oct 11 22:14:15 host app: x", None), Level::Info);
        assert_eq!(detect("<15>x", None), Level::Debug);
        assert_eq!(detect("<8>x", None), Level::Fatal);
        assert_eq!(Level::parse_value("3"), Some(Level::Error));
    }

    #[test]
    fn android_letters_are_detected_only_in_header_position() {
        assert_eq!(
            detect("03-17 16:13:38.811  1702  2395 D WindowManager: x", None),
            Level::Debug
        );
        assert_eq!(
            detect("03-17 16:13:38.811  1702  2395 E Foo: x", None),
            Level::Error
        );
        assert_eq!(detect("W/ActivityManager( 1234): slow", None), Level::Warn);
        assert_eq!(
            detect("E0102 12:00:00.000 123 file.cc:1] boom", None),
            Level::Error
        );
        // "A" in a sentence is not the Android "assert" level.
        assert_eq!(
            detect("proxy:5070 error : A connection request was canceled", None),
            Level::Unknown
        );
    }

    #[test]
    fn capitalised_words_in_the_message_are_not_levels() {
        assert_eq!(detect("CPU: Trace cache: 12K uops", None), Level::Unknown);
        assert_eq!(
            detect("the Error handler was removed", None),
            Level::Unknown
        );
        assert_eq!(
            detect(
                "one two three four five six seven eight nine ten ERROR",
                None
            ),
            Level::Unknown
        );
        assert_eq!(
            detect("error: Received disconnect from 1.2.3.4", None),
            Level::Error
        );
    }

    #[test]
    fn level_hint_wins_and_is_normalised() {
        assert_eq!(detect("ERROR in text", Some("debug")), Level::Debug);
        assert_eq!(detect("x", Some("W")), Level::Warn);
        assert_eq!(detect("x", Some("Warning")), Level::Warn);
        assert_eq!(detect("x", Some("crit")), Level::Fatal);
        assert_eq!(detect("x", Some("notice")), Level::Info);
        // An unrecognised hint falls back to the text.
        assert_eq!(detect("ERROR x", Some("combo")), Level::Error);
        assert_eq!(Level::Fatal.to_string(), "fatal");
        assert!(Level::Fatal > Level::Error && Level::Debug > Level::Unknown);
    }
}
