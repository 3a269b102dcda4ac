//! Prometheus label text, as a Loki stream's labels travel in protobuf:
//! `{env="prod", job="api"}`, values with Go string escapes.
//!
//! Lenient where real clients are sloppy: Vector writes values without
//! escaping them, so a quote inside a value is taken as part of it unless
//! it is followed by `,` or `}` (the end of the pair).

/// The pairs of `{name="value", ...}`, or why the text is not label text.
pub fn parse_labels(text: &str) -> Result<Vec<(String, String)>, String> {
    let bad = |why: &str| format!("bad stream labels `{text}`: {why}");
    let inner = text
        .trim()
        .strip_prefix('{')
        .and_then(|t| t.strip_suffix('}'))
        .ok_or_else(|| bad("not in braces"))?;
    let mut pairs = Vec::new();
    let mut rest = inner.trim_start();
    while !rest.is_empty() {
        let eq = rest.find('=').ok_or_else(|| bad("a name without `=`"))?;
        let name = rest[..eq].trim();
        if name.is_empty()
            || !name
                .chars()
                .enumerate()
                .all(|(i, c)| c == '_' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit()))
        {
            return Err(bad(&format!("`{name}` is not a label name")));
        }
        let after = rest[eq + 1..].trim_start();
        let body = after
            .strip_prefix('"')
            .ok_or_else(|| bad("a value without quotes"))?;
        let (value, used) =
            read_value(body).ok_or_else(|| bad("a value without its closing quote"))?;
        pairs.push((name.to_string(), value));
        rest = body[used..].trim_start();
        rest = rest.strip_prefix(',').unwrap_or(rest).trim_start();
    }
    Ok(pairs)
}

/// The value up to its closing quote (`body` starts after the opening
/// one), and how many bytes of `body` it used, the quote included.
fn read_value(body: &str) -> Option<(String, usize)> {
    let mut value = String::new();
    let mut chars = body.char_indices();
    while let Some((at, c)) = chars.next() {
        match c {
            '\\' => {
                let (_, escaped) = chars.next()?;
                match escaped {
                    'n' => value.push('\n'),
                    't' => value.push('\t'),
                    'r' => value.push('\r'),
                    'a' => value.push('\u{7}'),
                    'b' => value.push('\u{8}'),
                    'f' => value.push('\u{c}'),
                    'v' => value.push('\u{b}'),
                    // Go's \xNN, \uNNNN, \UNNNNNNNN and octal \NNN, as
                    // strconv.Quote writes them.
                    'x' | 'u' | 'U' | '0'..='7' => {
                        let (digits, radix) = match escaped {
                            'x' => (2, 16),
                            'u' => (4, 16),
                            'U' => (8, 16),
                            _ => (2, 8),
                        };
                        let mut code = if radix == 8 { escaped.to_digit(8)? } else { 0 };
                        for _ in 0..digits {
                            let (_, digit) = chars.next()?;
                            code = code
                                .checked_mul(radix)?
                                .checked_add(digit.to_digit(radix)?)?;
                        }
                        if escaped == 'x' || radix == 8 {
                            // A byte: ASCII as itself, others as the
                            // replacement character (labels are text).
                            value.push(if code < 0x80 {
                                char::from(code as u8)
                            } else {
                                char::REPLACEMENT_CHARACTER
                            });
                        } else {
                            value.push(char::from_u32(code)?);
                        }
                    }
                    other => value.push(other),
                }
            }
            '"' => {
                let next = body[at + 1..].trim_start().chars().next();
                if matches!(next, None | Some(',') | Some('}')) {
                    return Some((value, at + 1));
                }
                value.push('"');
            }
            other => value.push(other),
        }
    }
    None
}
