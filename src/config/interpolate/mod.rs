//! `${NAME}` environment interpolation in config files.
//!
//! Syntax: `${NAME}` (error when unset), `${NAME:-default}` (the default when
//! unset or empty), `$$` for a literal `$`. A lone `$` is kept as is, so VRL
//! regexes such as `r'^foo$'` need no escaping. TOML comments (whole lines
//! or after a value) are copied unchanged.
//!
//! Vector made interpolation opt-in after values carrying newlines were used
//! to inject extra TOML keys. howl keeps it on, because secrets and
//! per-host values from the environment are the common case for an agent,
//! but strict, so that a value can only ever be a value:
//!
//! - the text is read as TOML while interpolating, and each value is fitted
//!   to where its reference stands: inside a `"..."` string its `\`, `"`
//!   and control characters are escaped; inside a `'...'` string (which has
//!   no escapes) a value containing `'` or a control character is refused;
//!   outside strings only plain scalars are accepted: as a value (`port =
//!   ${PORT}`) letters, digits, `.`, `_`, `-`, `+`, `:`, and as a key
//!   (`[sinks.${ID}]`) only letters, digits, `_` and `-`, since a `.` there
//!   would make a dotted key;
//! - a value containing a newline is refused everywhere (so line numbers in
//!   error messages still match the file on disk);
//! - a missing variable without a default is an error naming it rather than
//!   a silent empty string, and references do not nest; a default goes in
//!   as written, but may not contain what would end its string or value;
//! - references inside an option that holds VRL are refused by the loader
//!   (`load.rs`), which knows the options: VRL has strings of its own, so a
//!   value escaped for TOML could still rewrite the program. A program reads
//!   the environment with `get_env_var!("NAME")` instead.
//!
//! The scanner follows TOML closely enough to know where each reference
//! stands: strings of the four kinds with their escapes, the one or two
//! extra quotes a multi-line string may end with (`'''it's''''`), comments,
//! and whether a bare word is a key or a value (headers, `=`, arrays and
//! inline tables). The property tests at the end generate documents with
//! references in every kind of place and check that no value ever changes
//! the document's structure.

/// One problem found while interpolating.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterpolationError {
    /// Byte offset of the `$` in the original text.
    pub offset: usize,
    /// What is wrong.
    pub message: String,
}

pub use crate::diagnostic::Replacement;

/// Where in the TOML text the scanner is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Context {
    /// Outside strings and comments (keys, bare values).
    Bare,
    /// After `#`, to the end of the line.
    Comment,
    /// `"..."`, or `"""..."""` when `multi_line`.
    Basic { multi_line: bool },
    /// `'...'`, or `'''...'''` when `multi_line`.
    Literal { multi_line: bool },
}

/// What comes next outside strings, which decides what a reference's value
/// may contain there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    /// A key (`${K} = 1`, `[sinks.${K}]`): a `.` there would split it into
    /// a dotted key, i.e. make new tables.
    Key,
    /// A value (`port = ${PORT}`, an array item).
    Value,
}

/// A bracket open around the scanner, outside strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bracket {
    /// A table header, `[a.b]` or `[[a.b]]`.
    Header,
    /// An array value, `[1, 2]`.
    Array,
    /// An inline table, `{ a = 1 }`.
    InlineTable,
}

/// The TOML structure around the scanner, tracked just far enough to tell
/// keys from values outside strings: what comes next and which brackets
/// are open. Invalid TOML may confuse it, but the parser then refuses the
/// file anyway.
#[derive(Debug)]
struct Structure {
    slot: Slot,
    open: Vec<Bracket>,
}

impl Structure {
    fn new() -> Self {
        Self {
            slot: Slot::Key,
            open: Vec::new(),
        }
    }

    /// Takes in one byte read outside strings and comments (or the newline
    /// that ends a comment).
    fn step(&mut self, byte: u8) {
        let top = self.open.last().copied();
        match byte {
            b'[' => match (self.slot, top) {
                (Slot::Key, None) => self.open.push(Bracket::Header),
                (Slot::Value, _) => self.open.push(Bracket::Array),
                // The second `[` of `[[a]]`, or invalid TOML.
                (Slot::Key, Some(_)) => {}
            },
            b']' if matches!(top, Some(Bracket::Header | Bracket::Array)) => {
                self.open.pop();
            }
            b'{' if self.slot == Slot::Value => {
                self.open.push(Bracket::InlineTable);
                self.slot = Slot::Key;
            }
            b'}' if top == Some(Bracket::InlineTable) => {
                self.open.pop();
                self.slot = Slot::Value;
            }
            b'=' => self.slot = Slot::Value,
            b',' => match top {
                Some(Bracket::Array) => self.slot = Slot::Value,
                Some(Bracket::InlineTable) => self.slot = Slot::Key,
                _ => {}
            },
            b'\n' => {
                // A header ends with its line; arrays (and, since TOML 1.1,
                // inline tables) may go on.
                if top == Some(Bracket::Header) {
                    self.open.pop();
                }
                if self.open.is_empty() {
                    self.slot = Slot::Key;
                }
            }
            _ => {}
        }
    }
}

/// Where a reference stands, which decides how its value is fitted in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    /// Outside strings, as a key or a value.
    Bare(Slot),
    /// In a `"..."` or `"""..."""` string.
    Basic,
    /// In a `'...'` or `'''...'''` string.
    Literal,
}

/// How many times `quote` repeats from the start of `rest`.
fn run_of(rest: &[u8], quote: u8) -> usize {
    rest.iter().take_while(|&&b| b == quote).count()
}

/// Replaces `${...}` references using `lookup` (normally `std::env::var`).
/// Returns the new text, or every error found.
pub fn interpolate(
    text: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<String, Vec<InterpolationError>> {
    interpolate_mapped(text, lookup).map(|(out, _)| out)
}

/// Like [`interpolate`], also returning where each replacement stands, so
/// that positions in the new text can be told as positions in the file on
/// disk (`diagnostic::SourceFile::with_replacements`), and so that the
/// loader can tell which options hold a reference.
pub fn interpolate_mapped(
    text: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<(String, Vec<Replacement>), Vec<InterpolationError>> {
    let mut replacements = Vec::new();
    let mut out = String::with_capacity(text.len());
    let mut errors = Vec::new();
    let mut context = Context::Bare;
    let mut structure = Structure::new();
    let bytes = text.as_bytes();
    // The start of the text not yet copied to `out`. Everything the scanner
    // acts on is ASCII, so slicing at these offsets keeps UTF-8 intact.
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        let rest = &bytes[i..];
        // How many bytes this step reads.
        let mut step = 1;
        match (context, bytes[i]) {
            (Context::Comment, b'\n') => {
                context = Context::Bare;
                structure.step(b'\n');
            }
            (Context::Comment, _) => {}
            (Context::Bare, b'#') => context = Context::Comment,
            (Context::Bare, b'"') if rest.starts_with(br#"""""#) => {
                context = Context::Basic { multi_line: true };
                step = 3;
            }
            (Context::Bare, b'"') => context = Context::Basic { multi_line: false },
            (Context::Bare, b'\'') if rest.starts_with(b"'''") => {
                context = Context::Literal { multi_line: true };
                step = 3;
            }
            (Context::Bare, b'\'') => context = Context::Literal { multi_line: false },
            // An escape: the next byte cannot end the string.
            (Context::Basic { .. }, b'\\') => step = 2,
            // In a multi-line string one or two quotes are text; three close
            // it, and one or two more right before those three are text too
            // (`'''it's''''` holds `it's'`).
            (Context::Basic { multi_line: true }, b'"')
            | (Context::Literal { multi_line: true }, b'\'') => {
                step = run_of(rest, bytes[i]);
                if step >= 3 {
                    context = Context::Bare;
                }
            }
            (Context::Basic { multi_line: false }, b'"')
            | (Context::Literal { multi_line: false }, b'\'') => context = Context::Bare,
            // An unclosed one-line string ends with its line (TOML reports it).
            (
                Context::Basic { multi_line: false } | Context::Literal { multi_line: false },
                b'\n',
            ) => {
                context = Context::Bare;
                structure.step(b'\n');
            }
            (Context::Bare | Context::Basic { .. } | Context::Literal { .. }, b'$') => {
                let place = match context {
                    Context::Basic { .. } => Place::Basic,
                    Context::Literal { .. } => Place::Literal,
                    _ => Place::Bare(structure.slot),
                };
                out.push_str(&text[copied..i]);
                let out_start = out.len();
                let (consumed, variable) =
                    reference(text, i, place, &lookup, &mut out, &mut errors);
                let len = out.len() - out_start;
                // A lone `$` is kept as it is: nothing to record.
                if len != consumed || variable {
                    replacements.push(Replacement {
                        at: out_start,
                        len,
                        original_at: i,
                        original_len: consumed,
                        variable,
                    });
                }
                i += consumed;
                copied = i;
                continue;
            }
            (Context::Bare, byte) => structure.step(byte),
            _ => {}
        }
        i += step;
    }
    out.push_str(&text[copied.min(text.len())..]);
    if errors.is_empty() {
        Ok((out, replacements))
    } else {
        Err(errors)
    }
}

/// Handles the `$` at `at`: writes its replacement to `out` and returns how
/// many bytes of `text` it stood for, and whether it was a `${...}`
/// reference (rather than `$$` or a lone `$`).
fn reference(
    text: &str,
    at: usize,
    place: Place,
    lookup: &impl Fn(&str) -> Option<String>,
    out: &mut String,
    errors: &mut Vec<InterpolationError>,
) -> (usize, bool) {
    let after = &text[at + 1..];
    if after.starts_with('$') {
        out.push('$');
        return (2, false);
    }
    let Some(body) = after.strip_prefix('{') else {
        out.push('$');
        return (1, false);
    };
    let line_end = body.find('\n').unwrap_or(body.len());
    let Some(close) = body[..line_end].find('}') else {
        errors.push(InterpolationError {
            offset: at,
            message: "unterminated `${`: add the closing `}` (or write `$${` for a literal `${`)"
                .into(),
        });
        out.push_str(&text[at..at + 2 + line_end]);
        return (2 + line_end, true);
    };
    match resolve(&body[..close], place, lookup) {
        Ok(value) => out.push_str(&value),
        Err(message) => errors.push(InterpolationError {
            offset: at,
            message,
        }),
    }
    (close + 3, true)
}

fn resolve(
    reference: &str,
    place: Place,
    lookup: &impl Fn(&str) -> Option<String>,
) -> Result<String, String> {
    let (name, default) = match reference.split_once(":-") {
        Some((name, default)) => (name, Some(default)),
        None => (reference, None),
    };
    if !is_valid_name(name) {
        return Err(format!(
            "`${{{reference}}}` is not a valid reference: names are letters, digits and `_`, \
             optionally followed by `:-default`"
        ));
    }
    if default.is_some_and(|d| d.contains("${")) {
        return Err(format!(
            "`${{{reference}}}`: references do not nest; the default must be plain text"
        ));
    }
    let default = default
        .map(|d| fit_default(reference, d, place))
        .transpose()?;
    let value = match (lookup(name), default) {
        // A default is the file's own text: it goes in as written.
        (Some(value), Some(default)) if value.is_empty() => return Ok(default.to_string()),
        (None, Some(default)) => return Ok(default.to_string()),
        (Some(value), _) => value,
        (None, None) => {
            return Err(format!(
                "environment variable `{name}` is not set (use `${{{name}:-default}}` to give a default)"
            ));
        }
    };
    fit(name, &value, place)
}

/// A default goes in as written (in a `"..."` string its escapes are
/// TOML's), but it may not end the string or the value it stands in: the
/// scanner would no longer know where the references after it stand.
fn fit_default<'a>(reference: &str, default: &'a str, place: Place) -> Result<&'a str, String> {
    // In a `"..."` string, a default ending in an odd number of `\` would
    // escape the closing quote.
    let trailing_backslashes = default.len() - default.trim_end_matches('\\').len();
    let ends = match place {
        Place::Basic if trailing_backslashes % 2 == 1 => Some(default.len() - 1),
        Place::Basic => default.find('"'),
        Place::Literal => default.find('\''),
        Place::Bare(slot) => default.find(|c| !plain(c, slot)),
    };
    match ends.and_then(|at| default[at..].chars().next()) {
        None => Ok(default),
        Some(c) => Err(format!(
            "the default of `${{{reference}}}` contains `{c}`, which would end the {} it \
             stands in; write the default without it",
            match place {
                Place::Basic | Place::Literal => "string",
                Place::Bare(Slot::Key) => "key",
                Place::Bare(Slot::Value) => "value",
            }
        )),
    }
}

/// Whether `c` may stand in a value written outside strings: numbers,
/// words, dates (`.` `_` `-` `+` `:`); in a key, only what a bare key takes
/// (a `.` would make it a dotted key).
fn plain(c: char, slot: Slot) -> bool {
    match slot {
        Slot::Key => c.is_ascii_alphanumeric() || matches!(c, '_' | '-'),
        Slot::Value => c.is_alphanumeric() || matches!(c, '.' | '_' | '-' | '+' | ':'),
    }
}

/// Fits an environment value to where its reference stands, or refuses it
/// when it could change the config's structure there.
fn fit(name: &str, value: &str, place: Place) -> Result<String, String> {
    if value.contains(['\n', '\r']) {
        return Err(format!(
            "environment variable `{name}` contains a newline, which could inject config; refusing it"
        ));
    }
    match place {
        Place::Basic => Ok(escape_basic(value)),
        Place::Literal if value.contains('\'') => Err(format!(
            "environment variable `{name}` contains `'`, which would end the '...' string it \
             stands in; use a \"...\" string there"
        )),
        Place::Literal if value.contains(is_toml_control) => Err(format!(
            "environment variable `{name}` contains a control character, which a '...' string \
             cannot hold; use a \"...\" string there"
        )),
        Place::Literal => Ok(value.to_string()),
        Place::Bare(slot) => match value.chars().find(|&c| !plain(c, slot)) {
            None => Ok(value.to_string()),
            Some(c) if slot == Slot::Key => Err(format!(
                "environment variable `{name}` contains `{c}` and its reference stands in a key \
                 outside quotes, where only letters, digits, `_` and `-` are safe (a `.` would \
                 make new tables); quote it: \"${{{name}}}\""
            )),
            Some(c) => Err(format!(
                "environment variable `{name}` contains `{c}` and its reference is not inside a \
                 string, where only plain values (numbers, words) are safe; quote it: \"${{{name}}}\""
            )),
        },
    }
}

/// A value as the text of a `"..."` string: `\\`, `"` and control
/// characters escaped.
fn escape_basic(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => escaped.push_str("\\\\"),
            '"' => escaped.push_str("\\\""),
            c if is_toml_control(c) => escaped.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => escaped.push(c),
        }
    }
    escaped
}

/// The characters no TOML string may hold as they are (tab is allowed).
fn is_toml_control(c: char) -> bool {
    c.is_ascii_control() && c != '\t'
}

fn is_valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod generated_toml;

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOST" => Some("web-1".into()),
            "EMPTY" => Some(String::new()),
            "EVIL" => Some("x\"\n[sinks.evil]".into()),
            "QUOTE" => Some("a\", path = \"/evil".into()),
            "BACKSLASH" => Some("C:\\dir".into()),
            "APOS" => Some("it's".into()),
            "PORT" => Some("8080".into()),
            _ => None,
        }
    }

    #[test]
    fn replaces_set_variables_and_defaults() {
        let text = "a = \"${HOST}\"\nb = \"${MISSING:-dflt}\"\nc = \"${EMPTY:-e}\"\n";
        assert_eq!(
            interpolate(text, env).unwrap(),
            "a = \"web-1\"\nb = \"dflt\"\nc = \"e\"\n"
        );
    }

    #[test]
    fn double_dollar_is_a_literal_and_lone_dollar_is_kept() {
        assert_eq!(
            interpolate("x = '$${HOST} ^a$ $5'", env).unwrap(),
            "x = '${HOST} ^a$ $5'"
        );
    }

    #[test]
    fn missing_variable_is_an_error_naming_it() {
        let errors = interpolate("a = 1\nb = \"${NOPE}\"", env).unwrap_err();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].offset, 11);
        assert!(errors[0].message.contains("`NOPE` is not set"));
    }

    #[test]
    fn newline_in_value_is_rejected() {
        let errors = interpolate("a = \"${EVIL}\"", env).unwrap_err();
        assert!(errors[0].message.contains("newline"));
    }

    #[test]
    fn comments_are_left_alone() {
        assert_eq!(
            interpolate("  # uses ${NOPE}\na = 1", env).unwrap(),
            "  # uses ${NOPE}\na = 1"
        );
    }

    #[test]
    fn reports_every_error() {
        let errors = interpolate("a = \"${A}\"\nb = \"${B\"\nc = \"${1x}\"", env).unwrap_err();
        assert_eq!(errors.len(), 3);
    }

    #[test]
    fn values_are_escaped_inside_basic_strings() {
        assert_eq!(
            interpolate("a = \"${QUOTE}\"\nb = \"\"\"${BACKSLASH}\"\"\"", env).unwrap(),
            "a = \"a\\\", path = \\\"/evil\"\nb = \"\"\"C:\\\\dir\"\"\""
        );
        let parsed: toml::Table = interpolate("a = \"${QUOTE}\"", env)
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(parsed.len(), 1, "no key was injected");
        assert_eq!(parsed["a"].as_str(), Some("a\", path = \"/evil"));
    }

    #[test]
    fn literal_strings_refuse_values_with_a_quote_and_keep_backslashes() {
        assert_eq!(
            interpolate("a = '${BACKSLASH}'\nb = '''${BACKSLASH}'''", env).unwrap(),
            "a = 'C:\\dir'\nb = '''C:\\dir'''"
        );
        let errors = interpolate("a = '${APOS}'", env).unwrap_err();
        assert!(errors[0].message.contains("contains `'`"), "{errors:?}");
        assert_eq!(interpolate("a = \"${APOS}\"", env).unwrap(), "a = \"it's\"");
    }

    #[test]
    fn bare_references_take_plain_values_only() {
        assert_eq!(interpolate("port = ${PORT}", env).unwrap(), "port = 8080");
        let errors = interpolate("include = [${QUOTE}]", env).unwrap_err();
        assert!(errors[0].message.contains("quote it"), "{errors:?}");
    }

    #[test]
    fn trailing_comments_are_left_alone_but_hashes_in_strings_are_not_comments() {
        assert_eq!(
            interpolate("a = \"x\"   # set ${NOPE} later\nb = \"#${HOST}\"", env).unwrap(),
            "a = \"x\"   # set ${NOPE} later\nb = \"#web-1\""
        );
    }

    #[test]
    fn references_do_not_nest() {
        let errors = interpolate("a = \"${NOPE:-${HOST}}\"", env).unwrap_err();
        assert!(errors[0].message.contains("do not nest"), "{errors:?}");
    }

    #[test]
    fn escaped_quotes_do_not_end_a_string() {
        assert_eq!(
            interpolate("a = \"say \\\"${HOST}\\\" # not a comment ${HOST}\"", env).unwrap(),
            "a = \"say \\\"web-1\\\" # not a comment web-1\""
        );
    }

    #[test]
    fn extra_quotes_before_a_multi_line_close_are_text() {
        let team =
            |name: &str| (name == "TEAM").then(|| "\"ops\", X-Injected = \"yes\"".to_string());
        for text in [
            "headers = { X-Note = '''it's'''', X-Team = ${TEAM} }",
            "headers = { X-Note = '''it's''''', X-Team = ${TEAM} }",
            "headers = { X-Note = \"\"\"say \"hi\"\"\"\"\", X-Team = ${TEAM} }",
        ] {
            let errors = interpolate(text, team).unwrap_err();
            assert!(errors[0].message.contains("quote it"), "{text}: {errors:?}");
        }
        let quoted = "h = { n = '''it's'''', t = \"${TEAM}\" }";
        let parsed: toml::Table = interpolate(quoted, team).unwrap().parse().unwrap();
        assert_eq!(parsed["h"]["n"].as_str(), Some("it's'"));
        assert_eq!(
            parsed["h"]["t"].as_str(),
            Some("\"ops\", X-Injected = \"yes\"")
        );
        assert_eq!(parsed["h"].as_table().unwrap().len(), 2);
    }

    #[test]
    fn bare_keys_take_no_dots() {
        let dotted = |_: &str| Some("a.b".to_string());
        assert!(
            interpolate("x = ${V}", dotted).is_ok(),
            "a value may be 1.5"
        );
        for text in [
            "${K} = 1",
            "[t.${K}]",
            "[[t.${K}]]",
            "a = { ${K} = 1 }",
            "a = { b = 1, ${K} = 2 }",
        ] {
            let errors = interpolate(text, dotted).unwrap_err();
            assert!(
                errors[0].message.contains("stands in a key"),
                "{text}: {errors:?}"
            );
        }
        for text in [
            "a = [${V}]",
            "a = [1, ${V}]",
            "a = { b = ${V} }",
            "[t]\nb = ${V}",
            "a = [\n1,\n${V}]",
        ] {
            assert!(interpolate(text, dotted).is_ok(), "{text}");
        }
    }

    #[test]
    fn defaults_may_not_end_their_string() {
        for text in [
            "a = \"${NOPE:-x\"}\"",
            r#"a = "${NOPE:-x\}""#,
            "a = '${NOPE:-x'}'",
            "a = ${NOPE:-[1]}",
        ] {
            let errors = interpolate(text, env).unwrap_err();
            assert!(
                errors[0].message.contains("the default of"),
                "{text}: {errors:?}"
            );
        }
        assert_eq!(
            interpolate("a = '${NOPE:-C:\\x}'", env).unwrap(),
            "a = 'C:\\x'"
        );
        assert_eq!(interpolate(r"a = '${NOPE:-x\}'", env).unwrap(), r"a = 'x\'");
        assert_eq!(
            interpolate(r#"a = "${NOPE:-x\\}""#, env).unwrap(),
            r#"a = "x\\""#
        );
    }

    #[test]
    fn control_characters_are_escaped_in_basic_strings_and_refused_in_literal_ones() {
        let bell = |_: &str| Some("a\u{7}b".to_string());
        let parsed: toml::Table = interpolate("a = \"${V}\"", bell).unwrap().parse().unwrap();
        assert_eq!(parsed["a"].as_str(), Some("a\u{7}b"));
        let errors = interpolate("a = '${V}'", bell).unwrap_err();
        assert!(
            errors[0].message.contains("control character"),
            "{errors:?}"
        );
    }

    #[test]
    fn multi_line_vrl_keeps_its_dollars_and_gets_its_values() {
        let text = "source = '''\nx = r'^a$'\n.host = \"${HOST}\"\n'''\n# ${NOPE}\n";
        assert_eq!(
            interpolate(text, env).unwrap(),
            "source = '''\nx = r'^a$'\n.host = \"web-1\"\n'''\n# ${NOPE}\n"
        );
    }
}
