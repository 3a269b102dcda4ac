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
//!   to where its reference stands: inside a `"..."` string its `\` and `"`
//!   are escaped; inside a `'...'` string (which has no escapes) a value
//!   containing `'` is refused; outside strings (`port = ${PORT}`) only plain
//!   scalars (letters, digits, `.`, `_`, `-`, `+`, `:`) are accepted;
//! - a value containing a newline is refused everywhere (so line numbers in
//!   error messages still match the file on disk);
//! - a missing variable without a default is an error naming it rather than
//!   a silent empty string, and references do not nest.

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

const BASIC_ML: &[u8] = b"\"\"\"";
const LITERAL_ML: &[u8] = b"'''";

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
/// disk (`diagnostic::SourceFile::with_replacements`).
pub fn interpolate_mapped(
    text: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<(String, Vec<Replacement>), Vec<InterpolationError>> {
    let mut replacements = Vec::new();
    let mut out = String::with_capacity(text.len());
    let mut errors = Vec::new();
    let mut context = Context::Bare;
    let bytes = text.as_bytes();
    // The start of the text not yet copied to `out`. Everything the scanner
    // acts on is ASCII, so slicing at these offsets keeps UTF-8 intact.
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        let rest = &bytes[i..];
        match (context, bytes[i]) {
            (Context::Comment, b'\n') => context = Context::Bare,
            (Context::Comment, _) => {}
            (Context::Bare, b'#') => context = Context::Comment,
            (Context::Bare, b'"') if rest.starts_with(BASIC_ML) => {
                context = Context::Basic { multi_line: true };
                i += 2;
            }
            (Context::Bare, b'"') => context = Context::Basic { multi_line: false },
            (Context::Bare, b'\'') if rest.starts_with(LITERAL_ML) => {
                context = Context::Literal { multi_line: true };
                i += 2;
            }
            (Context::Bare, b'\'') => context = Context::Literal { multi_line: false },
            // An escape: the next byte cannot end the string.
            (Context::Basic { .. }, b'\\') => i += 1,
            (Context::Basic { multi_line: true }, b'"') if rest.starts_with(BASIC_ML) => {
                context = Context::Bare;
                i += 2;
            }
            (Context::Literal { multi_line: true }, b'\'') if rest.starts_with(LITERAL_ML) => {
                context = Context::Bare;
                i += 2;
            }
            (Context::Basic { multi_line: false }, b'"')
            | (Context::Literal { multi_line: false }, b'\'') => context = Context::Bare,
            // An unclosed one-line string ends with its line (TOML reports it).
            (
                Context::Basic { multi_line: false } | Context::Literal { multi_line: false },
                b'\n',
            ) => context = Context::Bare,
            (Context::Bare | Context::Basic { .. } | Context::Literal { .. }, b'$') => {
                out.push_str(&text[copied..i]);
                let out_start = out.len();
                let consumed = reference(text, i, context, &lookup, &mut out, &mut errors);
                replacements.push(Replacement {
                    at: out_start,
                    len: out.len() - out_start,
                    original_at: i,
                    original_len: consumed,
                });
                i += consumed;
                copied = i;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    out.push_str(&text[copied.min(text.len())..]);
    if errors.is_empty() {
        Ok((out, replacements))
    } else {
        Err(errors)
    }
}

/// Handles the `$` at `at`: writes its replacement to `out` and returns how
/// many bytes of `text` it stood for.
fn reference(
    text: &str,
    at: usize,
    context: Context,
    lookup: &impl Fn(&str) -> Option<String>,
    out: &mut String,
    errors: &mut Vec<InterpolationError>,
) -> usize {
    let after = &text[at + 1..];
    if after.starts_with('$') {
        out.push('$');
        return 2;
    }
    let Some(body) = after.strip_prefix('{') else {
        out.push('$');
        return 1;
    };
    let line_end = body.find('\n').unwrap_or(body.len());
    let Some(close) = body[..line_end].find('}') else {
        errors.push(InterpolationError {
            offset: at,
            message: "unterminated `${`: add the closing `}` (or write `$${` for a literal `${`)"
                .into(),
        });
        out.push_str(&text[at..at + 2 + line_end]);
        return 2 + line_end;
    };
    match resolve(&body[..close], context, lookup) {
        Ok(value) => out.push_str(&value),
        Err(message) => errors.push(InterpolationError {
            offset: at,
            message,
        }),
    }
    close + 3
}

fn resolve(
    reference: &str,
    context: Context,
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
    fit(name, &value, context)
}

/// Fits an environment value to where its reference stands, or refuses it
/// when it could change the config's structure there.
fn fit(name: &str, value: &str, context: Context) -> Result<String, String> {
    if value.contains(['\n', '\r']) {
        return Err(format!(
            "environment variable `{name}` contains a newline, which could inject config; refusing it"
        ));
    }
    match context {
        Context::Basic { .. } => Ok(value.replace('\\', "\\\\").replace('"', "\\\"")),
        Context::Literal { .. } if value.contains('\'') => Err(format!(
            "environment variable `{name}` contains `'`, which would end the '...' string it \
             stands in; use a \"...\" string there"
        )),
        Context::Literal { .. } | Context::Comment => Ok(value.to_string()),
        Context::Bare => match value
            .chars()
            .find(|c| !(c.is_alphanumeric() || matches!(c, '.' | '_' | '-' | '+' | ':')))
        {
            None => Ok(value.to_string()),
            Some(c) => Err(format!(
                "environment variable `{name}` contains `{c}` and its reference is not inside a \
                 string, where only plain values (numbers, words) are safe; quote it: \"${{{name}}}\""
            )),
        },
    }
}

fn is_valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

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
    fn multi_line_vrl_keeps_its_dollars_and_gets_its_values() {
        let text = "source = '''\nx = r'^a$'\n.host = \"${HOST}\"\n'''\n# ${NOPE}\n";
        assert_eq!(
            interpolate(text, env).unwrap(),
            "source = '''\nx = r'^a$'\n.host = \"web-1\"\n'''\n# ${NOPE}\n"
        );
    }
}
