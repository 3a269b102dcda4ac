//! Measuring and cutting chat markup without breaking it.
//!
//! Telegram's HTML and Slack's mrkdwn have the same shape: text with `<...>`
//! markup (Telegram: tags that must be closed again; Slack: self-contained
//! links and mentions) and `&...;` entities. Chat platforms cap a message's
//! length and refuse a message cut in the middle of `&amp;` or `<b>`, so a
//! cut falls between tokens, never inside one, and the tags still open at the
//! cut are closed after the ellipsis.
//!
//! Values from events are escaped before they get here (and capped with
//! [`head`] first, so a 1 MB log line is not escaped in full only to be cut),
//! so any `<` or `&` left in a text is markup from the sink's own templates.

/// A destination's text format: its markup and how it counts length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// Telegram `parse_mode = "HTML"`: tags are balanced; the length is
    /// counted in UTF-16 code units of the text after entity parsing (what
    /// Telegram's 4096 limit means).
    TelegramHtml,
    /// Telegram without `parse_mode`: every character is text; UTF-16 code
    /// units.
    TelegramPlain,
    /// Slack mrkdwn: `<...>` (links, mentions) is atomic; the length is the
    /// characters as sent, entities and link syntax included (Slack does not
    /// say how it counts, so count the most).
    SlackMrkdwn,
    /// Slack `plain_text` objects (headers): characters as sent.
    SlackPlain,
}

/// The mark of a cut.
pub const ELLIPSIS: char = '…';

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind<'a> {
    /// One character of text.
    Text,
    /// `&name;` or `&#123;`.
    Entity,
    /// An opening tag, with its name.
    Open(&'a str),
    /// A closing tag, with its name.
    Close(&'a str),
    /// Slack's `<...>`.
    Link,
}

impl Dialect {
    fn has_markup(self) -> bool {
        matches!(self, Self::TelegramHtml | Self::SlackMrkdwn)
    }

    /// The length of one token as this dialect counts it.
    fn units(self, raw: &str, kind: Kind<'_>) -> usize {
        match self {
            Self::TelegramHtml | Self::TelegramPlain => match kind {
                Kind::Text => raw.encode_utf16().count(),
                Kind::Entity => decoded_utf16_len(raw),
                Kind::Open(_) | Kind::Close(_) | Kind::Link => 0,
            },
            Self::SlackMrkdwn | Self::SlackPlain => raw.chars().count(),
        }
    }
}

/// Splits a text into tokens: characters, entities, tags or links.
struct Tokens<'a> {
    rest: &'a str,
    dialect: Dialect,
}

impl<'a> Iterator for Tokens<'a> {
    type Item = (&'a str, Kind<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        let rest = self.rest;
        let first = rest.chars().next()?;
        let (len, kind) = match first {
            '<' if self.dialect.has_markup() => match rest.find('>') {
                Some(end) => (end + 1, self.tag_kind(&rest[1..end])),
                None => (1, Kind::Text),
            },
            '&' if self.dialect.has_markup() => match entity_len(rest) {
                Some(len) => (len, Kind::Entity),
                None => (1, Kind::Text),
            },
            other => (other.len_utf8(), Kind::Text),
        };
        self.rest = &rest[len..];
        Some((&rest[..len], kind))
    }
}

impl<'a> Tokens<'a> {
    fn new(text: &'a str, dialect: Dialect) -> Self {
        Self {
            rest: text,
            dialect,
        }
    }

    fn tag_kind(&self, inner: &'a str) -> Kind<'a> {
        if self.dialect != Dialect::TelegramHtml {
            return Kind::Link;
        }
        match inner.strip_prefix('/') {
            Some(name) => Kind::Close(name.trim()),
            None => Kind::Open(inner.split_whitespace().next().unwrap_or_default()),
        }
    }
}

/// The length of the entity at the start of `text` (`&amp;`, `&#60;`,
/// `&#x3c;`), if there is one.
fn entity_len(text: &str) -> Option<usize> {
    let end = text.char_indices().take(12).find(|(_, c)| *c == ';')?.0;
    let body = &text[1..end];
    let valid = !body.is_empty()
        && (body.chars().all(|c| c.is_ascii_alphanumeric())
            || body
                .strip_prefix('#')
                .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_alphanumeric())));
    valid.then_some(end + 1)
}

/// The UTF-16 length of the character an entity stands for.
fn decoded_utf16_len(entity: &str) -> usize {
    let body = &entity[1..entity.len() - 1];
    let code = match body.strip_prefix('#') {
        Some(hex) if hex.starts_with(['x', 'X']) => u32::from_str_radix(&hex[1..], 16).ok(),
        Some(decimal) => decimal.parse().ok(),
        None => None,
    };
    code.and_then(char::from_u32).map_or(1, char::len_utf16)
}

/// The length of `text` as the destination counts it.
pub fn length(text: &str, dialect: Dialect) -> usize {
    Tokens::new(text, dialect)
        .map(|(raw, kind)| dialect.units(raw, kind))
        .sum()
}

/// True when `text` shows nothing but whitespace (chat platforms refuse
/// empty messages).
pub fn is_blank(text: &str, dialect: Dialect) -> bool {
    Tokens::new(text, dialect).all(|(raw, kind)| match kind {
        Kind::Text => raw.trim().is_empty(),
        Kind::Entity | Kind::Link => false,
        Kind::Open(_) | Kind::Close(_) => true,
    })
}

/// At most the first `max_chars` characters of a value: a value longer than
/// the whole message can never be shown whole, so it is cut before it is
/// escaped (the final cut, after escaping, is [`truncate`]'s).
pub fn head(value: &str, max_chars: usize) -> &str {
    match value.char_indices().nth(max_chars) {
        Some((end, _)) => &value[..end],
        None => value,
    }
}

/// `text` cut to at most `limit` (as the dialect counts), between tokens,
/// ending in an ellipsis, with the tags open at the cut closed again. A text
/// that fits is returned as is.
pub fn truncate(text: &str, limit: usize, dialect: Dialect) -> String {
    if length(text, dialect) <= limit {
        return text.to_string();
    }
    let budget = limit.saturating_sub(ELLIPSIS.len_utf16());
    let mut out = String::with_capacity(text.len().min(limit * 4));
    let mut used = 0;
    let mut open: Vec<&str> = Vec::new();
    for (raw, kind) in Tokens::new(text, dialect) {
        match kind {
            Kind::Open(_) if used >= budget => break,
            Kind::Open(name) => open.push(name),
            Kind::Close(name) => {
                if let Some(at) = open.iter().rposition(|n| *n == name) {
                    open.truncate(at);
                }
            }
            Kind::Text | Kind::Entity | Kind::Link => {
                let units = dialect.units(raw, kind);
                if used + units > budget {
                    break;
                }
                used += units;
            }
        }
        out.push_str(raw);
    }
    out.push(ELLIPSIS);
    for name in open.iter().rev() {
        out.push_str("</");
        out.push_str(name);
        out.push('>');
    }
    out
}

/// Checks that Telegram HTML is well formed: only tags `allowed` accepts,
/// each closed in order, and no stray `<` or `&`. Run on a template's own
/// text at start-up, so a typo is a config error rather than every message
/// being refused with "can't parse entities".
pub fn check_html(text: &str, allowed: impl Fn(&str) -> bool) -> Result<(), String> {
    let mut open: Vec<&str> = Vec::new();
    for (raw, kind) in Tokens::new(text, Dialect::TelegramHtml) {
        match kind {
            Kind::Open(name) if !allowed(name) => {
                return Err(format!("Telegram does not support the tag <{name}>"));
            }
            Kind::Open(name) => open.push(name),
            Kind::Close(name) => match open.pop() {
                Some(last) if last == name => {}
                Some(last) => return Err(format!("</{name}> closes <{last}>")),
                None => return Err(format!("</{name}> has no opening tag")),
            },
            Kind::Text if raw == "<" => {
                return Err("a `<` that starts no tag (write `&lt;` for a literal `<`)".into());
            }
            Kind::Text if raw == "&" => {
                return Err("a `&` that starts no entity (write `&amp;` for a literal `&`)".into());
            }
            Kind::Text | Kind::Entity | Kind::Link => {}
        }
    }
    match open.last() {
        Some(last) => Err(format!("<{last}> is never closed")),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn telegram_counts_text_after_entity_parsing_in_utf16() {
        assert_eq!(length("<b>a&amp;b</b>", Dialect::TelegramHtml), 3);
        assert_eq!(
            length("🔥 x", Dialect::TelegramHtml),
            4,
            "an emoji is two units"
        );
        assert_eq!(length("&#128293;", Dialect::TelegramHtml), 2);
        assert_eq!(length("<b>", Dialect::TelegramPlain), 3);
        assert_eq!(length("<https://x|x> &amp;", Dialect::SlackMrkdwn), 19);
    }

    #[test]
    fn fitting_text_is_untouched() {
        let text = "<b>title</b>\n&lt;script&gt;";
        assert_eq!(truncate(text, 15, Dialect::TelegramHtml), text);
    }

    #[test]
    fn cuts_between_entities_and_closes_open_tags() {
        let text = "<b>ab&amp;cd</b><i>ef</i>";
        // Visible: "ab&cd" + "ef" = 7; a limit of 4 leaves 3 before the ellipsis.
        assert_eq!(truncate(text, 4, Dialect::TelegramHtml), "<b>ab&amp;…</b>");
        assert_eq!(truncate(text, 3, Dialect::TelegramHtml), "<b>ab…</b>");
        let nested = "<blockquote><a href=\"https://x\">link text</a> tail</blockquote>";
        assert_eq!(
            truncate(nested, 5, Dialect::TelegramHtml),
            "<blockquote><a href=\"https://x\">link…</a></blockquote>"
        );
        for limit in 1..30 {
            let cut = truncate(text, limit, Dialect::TelegramHtml);
            assert!(length(&cut, Dialect::TelegramHtml) <= limit, "{cut}");
            check_html(&cut, |_| true).unwrap_or_else(|e| panic!("{cut}: {e}"));
        }
    }

    #[test]
    fn never_starts_a_tag_at_the_cut() {
        assert_eq!(truncate("abc<b>def</b>", 4, Dialect::TelegramHtml), "abc…");
    }

    #[test]
    fn slack_links_and_entities_are_atomic() {
        let text = "see <https://example.com/x|the runbook> &amp; more";
        let cut = truncate(text, 10, Dialect::SlackMrkdwn);
        assert_eq!(cut, "see …");
        let cut = truncate("a &amp; b", 4, Dialect::SlackMrkdwn);
        assert_eq!(cut, "a …");
        assert_eq!(truncate("abcdef", 4, Dialect::SlackPlain), "abc…");
    }

    #[test]
    fn plain_text_has_no_markup() {
        let cut = truncate("<b>&amp;</b>", 5, Dialect::TelegramPlain);
        assert_eq!(cut, "<b>&…");
    }

    #[test]
    fn head_cuts_on_character_boundaries() {
        assert_eq!(head("żółw", 2), "żó");
        assert_eq!(head("ab", 5), "ab");
    }

    #[test]
    fn blank_means_no_visible_text() {
        assert!(is_blank("<b> </b>\n", Dialect::TelegramHtml));
        assert!(!is_blank("<b>&amp;</b>", Dialect::TelegramHtml));
        assert!(!is_blank("x", Dialect::SlackPlain));
    }

    #[test]
    fn html_check_names_the_problem() {
        let ok = |_: &str| true;
        assert!(check_html("<b>x</b> &amp; <i>y</i>", ok).is_ok());
        assert!(check_html("<b>x", ok).unwrap_err().contains("never closed"));
        assert!(
            check_html("<b>x</i>", ok)
                .unwrap_err()
                .contains("closes <b>")
        );
        assert!(check_html("x < y", ok).unwrap_err().contains("&lt;"));
        assert!(check_html("R&D", ok).unwrap_err().contains("&amp;"));
        assert!(
            check_html("<div>x</div>", |t| t == "b")
                .unwrap_err()
                .contains("<div>")
        );
    }
}
