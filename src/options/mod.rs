//! Typed option values, shared by every component.
//!
//! Each type parses and checks itself while the config is deserialized, so
//! a bad value is reported at its own line and column, by the loader, with
//! everything else wrong in the file; and a component's `build()` receives
//! values that are already valid instead of checking strings again. Each
//! also says in its schema what it is (`format`), which the generated option
//! tables of the component pages show as the option's type.
//!
//! - [`duration`]: [`Seconds`] and [`Millis`], which take `"30s"`, `"5m"`,
//!   `"7d"` or a plain number in the option's unit.
//! - [`FieldPath`]: a path into an event (`message`, `.kubernetes.pod`).
//! - [`HttpUrl`]: an `http://` or `https://` URL with a host.
//! - [`Regex`]: a regular expression, compiled once.
//! - [`Fraction`]: a number from 0 to 1.
//! - [`TlsConfig`]: a server's certificate and key, for listening sources.
//!
//! Whole numbers that must be at least 1 use the standard `NonZero*` types;
//! templates (`template::Template`) and secrets
//! (`secret::Secret`) parse themselves the same way.

pub mod duration;
pub mod tls;

use std::borrow::Cow;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use vrl::path::OwnedValuePath;

pub use duration::{Millis, Seconds};
pub use tls::TlsConfig;

/// Implements an inline `JsonSchema` for a type written as a string, with
/// the `format` that the generated option tables show as its type
/// (`duration`, `template`, `secret`, ...).
macro_rules! string_schema {
    ($type:ty, $format:literal) => {
        impl schemars::JsonSchema for $type {
            fn inline_schema() -> bool {
                true
            }

            fn schema_name() -> std::borrow::Cow<'static, str> {
                stringify!($type).into()
            }

            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                schemars::json_schema!({ "type": "string", "format": $format })
            }
        }
    };
}
pub(crate) use string_schema;

/// Implements `Serialize` (as the text the user wrote, for documented
/// defaults) and the string schema with the given `format`.
macro_rules! text_option {
    ($type:ty, $format:literal) => {
        impl Serialize for $type {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        string_schema!($type, $format);
    };
}

/// Reads a string and parses it with `parse` while the deserializer still
/// holds the value, so an error points at the value itself even inside a
/// list (`endpoints[2]`); parsed after the string was read, it would point
/// at the whole list. `expecting` says what the option takes, for values
/// that are not strings.
pub fn parse_string<'de, D, T>(
    deserializer: D,
    expecting: &'static str,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
{
    struct Parse<F> {
        expecting: &'static str,
        parse: F,
    }

    impl<T, F: FnOnce(&str) -> Result<T, String>> serde::de::Visitor<'_> for Parse<F> {
        type Value = T;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.expecting)
        }

        fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<T, E> {
            (self.parse)(text).map_err(E::custom)
        }
    }

    deserializer.deserialize_str(Parse { expecting, parse })
}

/// A path into an event, as VRL writes it (`message`, `.host`,
/// `.kubernetes.pod_name`, `."odd key"`); the leading `.` is optional.
#[derive(Clone, PartialEq)]
pub struct FieldPath {
    text: String,
    path: OwnedValuePath,
}

impl FieldPath {
    /// Parses a path.
    pub fn parse(text: &str) -> Result<Self, String> {
        let bare = text.strip_prefix('.').unwrap_or(text);
        vrl::path::parse_value_path(bare)
            .map(|path| Self {
                text: text.to_string(),
                path,
            })
            .map_err(|e| format!("invalid field path `{text}`: {e}"))
    }

    /// The parsed path.
    pub fn path(&self) -> &OwnedValuePath {
        &self.path
    }

    /// The path as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Debug for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FieldPath({})", self.text)
    }
}

impl<'de> Deserialize<'de> for FieldPath {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        parse_string(deserializer, "a field path", Self::parse)
    }
}

text_option!(FieldPath, "field-path");

/// An `http://` or `https://` URL with a host: where howl sends requests.
#[derive(Clone, PartialEq, Eq)]
pub struct HttpUrl {
    url: reqwest::Url,
    /// As written (the parsed form adds a `/` to a bare host), for messages
    /// and documented defaults.
    text: String,
}

impl HttpUrl {
    /// Parses and checks a URL. Errors show it with any user info hidden
    /// (`http://***@host`): it may hold a password.
    pub fn parse(text: &str) -> Result<Self, String> {
        match reqwest::Url::parse(text) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {
                Ok(Self {
                    url,
                    text: text.to_string(),
                })
            }
            Ok(_) => Err(format!(
                "`{}` is not an http(s) URL with a host (e.g. `http://127.0.0.1:9093`)",
                without_user_info(text)
            )),
            Err(error) => Err(format!(
                "invalid URL `{}`: {error}",
                without_user_info(text)
            )),
        }
    }

    /// The URL.
    pub fn url(&self) -> &reqwest::Url {
        &self.url
    }

    /// The URL as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

/// `scheme://user:pass@host/...` as `scheme://***@host/...`.
fn without_user_info(text: &str) -> String {
    let authority_start = text.find("://").map_or(0, |at| at + 3);
    let authority_end = text[authority_start..]
        .find(['/', '?', '#'])
        .map_or(text.len(), |at| authority_start + at);
    match text[authority_start..authority_end].rfind('@') {
        Some(at) => format!(
            "{}***{}",
            &text[..authority_start],
            &text[authority_start + at..]
        ),
        None => text.to_string(),
    }
}

impl fmt::Debug for HttpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HttpUrl({})", self.text)
    }
}

impl<'de> Deserialize<'de> for HttpUrl {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        parse_string(deserializer, "an http(s) URL", Self::parse)
    }
}

text_option!(HttpUrl, "url");

/// A regular expression (Rust `regex` syntax), compiled once while the
/// config is read.
#[derive(Clone)]
pub struct Regex(regex::Regex);

impl Regex {
    /// Compiles a pattern.
    pub fn new(pattern: &str) -> Result<Self, String> {
        regex::Regex::new(pattern)
            .map(Self)
            .map_err(|e| format!("invalid regular expression `{pattern}`: {e}"))
    }

    /// The compiled expression.
    pub fn regex(&self) -> &regex::Regex {
        &self.0
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl PartialEq for Regex {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl fmt::Debug for Regex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Regex({})", self.0.as_str())
    }
}

impl<'de> Deserialize<'de> for Regex {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        parse_string(deserializer, "a regular expression", Self::new)
    }
}

text_option!(Regex, "regex");

/// Reads a count from 1 to `MAX`, for counts that size something in
/// memory (a buffer's permits, requests in flight): beyond `MAX` a value is
/// surely a mistake, and would exhaust memory or overflow. Use with
/// `#[serde(deserialize_with = "crate::options::count_at_most::<_, MAX>")]`
/// and `#[schemars(range(min = 1, max = MAX))]`.
pub fn count_at_most<'de, D: Deserializer<'de>, const MAX: usize>(
    deserializer: D,
) -> Result<std::num::NonZeroUsize, D::Error> {
    let value = u64::deserialize(deserializer)?;
    usize::try_from(value)
        .ok()
        .filter(|v| *v <= MAX)
        .and_then(std::num::NonZeroUsize::new)
        .ok_or_else(|| {
            serde::de::Error::custom(format!(
                "expected a whole number from 1 to {MAX}, not {value}"
            ))
        })
}

/// A number from 0 to 1 (a share, a confidence).
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd, Serialize)]
#[serde(transparent)]
pub struct Fraction(f64);

impl Fraction {
    /// A fraction, if `value` is one.
    pub fn new(value: f64) -> Option<Self> {
        (0.0..=1.0).contains(&value).then_some(Self(value))
    }

    /// The number.
    pub fn get(self) -> f64 {
        self.0
    }
}

impl<'de> Deserialize<'de> for Fraction {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = f64::deserialize(deserializer)?;
        Self::new(value)
            .ok_or_else(|| serde::de::Error::custom(format!("must be from 0 to 1, not {value}")))
    }
}

impl JsonSchema for Fraction {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> Cow<'static, str> {
        "Fraction".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": "number", "minimum": 0.0, "maximum": 1.0 })
    }
}

/// The error `text` gives while it is read as options `C` (a value checked
/// by its type): its message, and the text it points at. For unit tests of
/// option types, here and in every component.
#[cfg(test)]
pub fn parse_error<C: serde::de::DeserializeOwned + fmt::Debug>(text: &str) -> (String, String) {
    error_at(text, &toml::from_str::<C>(text).expect_err(text))
}

/// An error's message and the text of `text` it points at.
#[cfg(test)]
pub fn error_at(text: &str, error: &toml::de::Error) -> (String, String) {
    let at = error
        .span()
        .and_then(|span| text.get(span))
        .unwrap_or_default();
    (error.message().to_string(), at.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct Options {
        path: Option<FieldPath>,
        url: Option<HttpUrl>,
        regex: Option<Regex>,
        share: Option<Fraction>,
        wait_secs: Option<Seconds>,
        poll_ms: Option<Millis>,
    }

    fn parse(text: &str) -> Result<Options, String> {
        toml::from_str(text).map_err(|e| e.message().to_string())
    }

    #[test]
    fn durations_take_units_or_plain_numbers_in_the_option_unit() {
        use std::time::Duration;
        let secs = |text: &str| parse(text).unwrap().wait_secs.unwrap().get();
        assert_eq!(secs("wait_secs = 90"), Duration::from_secs(90));
        assert_eq!(secs("wait_secs = 0.5"), Duration::from_millis(500));
        assert_eq!(secs("wait_secs = \"1h30m\""), Duration::from_secs(5400));
        assert_eq!(secs("wait_secs = \"7d\""), Duration::from_secs(604_800));
        assert_eq!(secs("wait_secs = \"2.5\""), Duration::from_millis(2500));
        let ms = parse("poll_ms = 250").unwrap().poll_ms.unwrap().get();
        assert_eq!(ms, Duration::from_millis(250));
        for bad in [
            "wait_secs = -1",
            "wait_secs = \"soon\"",
            "wait_secs = true",
            "wait_secs = nan",
        ] {
            let error = parse(bad).unwrap_err();
            assert!(error.contains("duration"), "{bad}: {error}");
        }
        for too_long in [
            "wait_secs = 9223372036854775807".to_string(),
            "wait_secs = 1e30".to_string(),
            "wait_secs = \"3651d\"".to_string(),
            format!("wait_secs = \"{}\"", "4294967295w".repeat(50)),
        ] {
            let error = parse(&too_long).unwrap_err();
            assert!(error.contains("too l"), "{too_long}: {error}");
        }
        assert!(
            parse("wait_secs = \"1.5h\"")
                .unwrap_err()
                .contains("whole numbers")
        );
    }

    #[test]
    fn durations_document_their_default_as_users_write_it() {
        let json = |d: Seconds| serde_json::to_string(&d).unwrap();
        assert_eq!(json(Seconds::from_secs(30)), "30");
        assert_eq!(json(Seconds::from_secs(3600)), "\"1h\"");
        assert_eq!(json(Seconds::from_secs(7 * 86_400)), "\"7d\"");
        assert_eq!(json(Seconds::from_millis(1500)), "1.5");
        assert_eq!(
            serde_json::to_string(&Millis::from_millis(250)).unwrap(),
            "250"
        );
    }

    #[test]
    fn a_bad_item_of_a_list_is_reported_at_the_item() {
        #[derive(Debug, Deserialize)]
        struct Lists {
            #[allow(dead_code)]
            urls: Vec<HttpUrl>,
        }
        let text = "urls = ['http://a', 'localhost:9']";
        let error = toml::from_str::<Lists>(text).unwrap_err();
        assert!(error.message().contains("http(s)"), "{error}");
        assert_eq!(error.span().map(|span| &text[span]), Some("'localhost:9'"));
    }

    #[test]
    fn a_bad_duration_in_a_list_of_tables_points_at_its_value() {
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct Rule {
            name: String,
            for_secs: Seconds,
        }
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct Rules {
            rules: Vec<Rule>,
        }
        let text =
            "[[rules]]\nname = 'a'\nfor_secs = 5\n[[rules]]\nname = 'b'\nfor_secs = 'soon'\n";
        let error = toml::from_str::<Rules>(text).unwrap_err();
        let span = error.span().expect("a position");
        assert_eq!(&text[span], "'soon'");
    }

    #[test]
    fn values_are_checked_while_parsing() {
        assert!(parse("path = '.a.b'").unwrap().path.is_some());
        assert!(
            parse("path = 'a..b'")
                .unwrap_err()
                .contains("invalid field path")
        );
        assert!(parse("url = 'ftp://x'").unwrap_err().contains("http(s)"));
        let error = parse("url = 'http://am:SECRETPW@127.0.0.1:99999'").unwrap_err();
        assert!(!error.contains("SECRETPW"), "{error}");
        assert!(error.contains("http://***@127.0.0.1:99999"), "{error}");
        let url = parse("url = 'http://127.0.0.1:9/x'").unwrap().url.unwrap();
        assert_eq!(url.url().port(), Some(9));
        assert!(
            parse("regex = 'a('")
                .unwrap_err()
                .contains("regular expression")
        );
        let regex = parse("regex = 'ORD-\\d+'").unwrap().regex.unwrap();
        assert!(regex.regex().is_match("ORD-12"));
        assert!(parse("share = 1.5").unwrap_err().contains("from 0 to 1"));
        assert_eq!(parse("share = 0.25").unwrap().share.unwrap().get(), 0.25);
    }
}
