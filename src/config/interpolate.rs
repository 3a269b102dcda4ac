//! `${NAME}` environment interpolation in config files.
//!
//! Syntax: `${NAME}` (error when unset), `${NAME:-default}` (the default when
//! unset or empty), `$$` for a literal `$`. A lone `$` is kept as is, so VRL
//! regexes such as `r'^foo$'` need no escaping. Lines whose first non-blank
//! character is `#` are TOML comments and are copied unchanged.
//!
//! Vector made interpolation opt-in after values carrying newlines were used
//! to inject extra TOML keys. howl keeps it on, because secrets and
//! per-host values from the environment are the common case for an agent,
//! but strict: a value containing a newline is rejected (it could add keys or
//! whole components), and a missing variable without a default is an error
//! naming it rather than a silent empty string. Because no value may contain a
//! newline, line numbers in error messages still match the file on disk.

/// One problem found while interpolating.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterpolationError {
    /// Byte offset of the `$` in the original text.
    pub offset: usize,
    /// What is wrong.
    pub message: String,
}

/// Replaces `${...}` references using `lookup` (normally `std::env::var`).
/// Returns the new text, or every error found.
pub fn interpolate(
    text: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<String, Vec<InterpolationError>> {
    let mut out = String::with_capacity(text.len());
    let mut errors = Vec::new();
    let mut line_start = 0;
    for line in text.split_inclusive('\n') {
        if line.trim_start().starts_with('#') {
            out.push_str(line);
        } else {
            interpolate_line(line, line_start, &lookup, &mut out, &mut errors);
        }
        line_start += line.len();
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

fn interpolate_line(
    line: &str,
    line_start: usize,
    lookup: &impl Fn(&str) -> Option<String>,
    out: &mut String,
    errors: &mut Vec<InterpolationError>,
) {
    let mut rest = line;
    let mut consumed = 0;
    while let Some(dollar) = rest.find('$') {
        out.push_str(&rest[..dollar]);
        let offset = line_start + consumed + dollar;
        let after = &rest[dollar + 1..];
        let advance = if after.starts_with('$') {
            out.push('$');
            2
        } else if let Some(body) = after.strip_prefix('{') {
            match body.find('}') {
                None => {
                    errors.push(InterpolationError {
                        offset,
                        message: "unterminated `${`: add the closing `}` (or write `$${` for a literal `${`)".into(),
                    });
                    out.push_str(&rest[dollar..]);
                    return;
                }
                Some(close) => {
                    let reference = &body[..close];
                    match resolve(reference, lookup) {
                        Ok(value) => out.push_str(&value),
                        Err(message) => errors.push(InterpolationError { offset, message }),
                    }
                    close + 3
                }
            }
        } else {
            out.push('$');
            1
        };
        rest = &rest[dollar + advance..];
        consumed += dollar + advance;
    }
    out.push_str(rest);
}

fn resolve(reference: &str, lookup: &impl Fn(&str) -> Option<String>) -> Result<String, String> {
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
    let value = match (lookup(name), default) {
        (Some(value), Some(default)) if value.is_empty() => default.to_string(),
        (Some(value), _) => value,
        (None, Some(default)) => default.to_string(),
        (None, None) => {
            return Err(format!(
                "environment variable `{name}` is not set (use `${{{name}:-default}}` to give a default)"
            ));
        }
    };
    if value.contains(['\n', '\r']) {
        return Err(format!(
            "environment variable `{name}` contains a newline, which could inject config; refusing it"
        ));
    }
    Ok(value)
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
}
