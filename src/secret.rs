//! Keeping secrets out of logs, errors and metrics.
//!
//! A Telegram bot token sits in the URL path, Slack webhook URLs are
//! secrets, auth headers carry tokens. Every message the delivery core
//! builds from a URL, an error or a response body passes through the sink's
//! [`Redactor`], which knows that sink's secrets and replaces them.
//! Options holding secrets are read as [`Secret`] (a token, a password) or
//! [`SecretUrl`] (a URL that is a credential as a whole), whose `Debug`
//! hides the value, so printing a config can never leak them either. What
//! is secret is known from these types, never guessed from how a value
//! looks.
//!
//! Proving knowledge of a secret without sending it is here too:
//! [`hmac_sha256`] (Slack's request signatures, howl's signed links) and
//! [`constant_time_eq`], for every comparison with a secret.

use std::fmt;

use serde::Deserialize;

/// A configured value that must never be printed (a token, a password, a
/// webhook URL): `Debug` shows `***`, and reading it takes an explicit
/// [`Secret::expose`]. It has no `Serialize`, so it cannot be written out by
/// accident either.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        secret_string(deserializer).map(Self)
    }
}

/// Reads a string without ever repeating a value of another type in the
/// error (`headers.X-Key = 9876543210` must not print the number).
fn secret_string<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    struct Visitor;

    impl serde::de::Visitor<'_> for Visitor {
        type Value = String;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a string")
        }

        fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<String, E> {
            Ok(text.to_string())
        }

        fn visit_string<E: serde::de::Error>(self, text: String) -> Result<String, E> {
            Ok(text)
        }

        fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<String, E> {
            Err(not_a_string())
        }

        fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<String, E> {
            Err(not_a_string())
        }

        fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<String, E> {
            Err(not_a_string())
        }

        fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<String, E> {
            Err(not_a_string())
        }
    }

    fn not_a_string<E: serde::de::Error>() -> E {
        E::custom("expected a string (in quotes); the value is a secret, so it is not shown")
    }

    deserializer.deserialize_str(Visitor)
}

crate::options::string_schema!(Secret, "secret");

impl Secret {
    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into())
    }

    /// The value itself, for building requests (and for a [`Redactor`]),
    /// never for messages.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self(value.to_string())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// A URL that is a secret as a whole: a webhook URL, whose path or query is
/// the credential (Slack's `https://hooks.slack.com/services/T…/B…/x…`).
///
/// It is checked while the config is read (an `http://` or `https://` URL
/// with a host), and like [`Secret`] it is never printed: `Debug` shows
/// `scheme://host/***`, errors about it never repeat it, and it has no
/// `Serialize`. What must be hidden is known from the type rather than
/// guessed from how a piece looks: a [`Redactor`] given a `SecretUrl` hides
/// the whole URL, its path and query, and every path segment, query value
/// and user-info part on its own, since a receiver may echo any of them.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretUrl {
    /// As written, for the redactor (it may differ from `url`'s normalized
    /// form, which is what the HTTP client shows).
    text: Secret,
    url: reqwest::Url,
}

impl SecretUrl {
    /// Parses and checks a URL; the error never contains the value.
    pub fn parse(text: &str) -> Result<Self, String> {
        const HIDDEN: &str = "(the URL is a secret, so it is not shown)";
        let url =
            reqwest::Url::parse(text).map_err(|error| format!("invalid URL: {error} {HIDDEN}"))?;
        // Not even the scheme is repeated: `token:rest` parses as a URL
        // whose "scheme" is the start of the token.
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            return Err(format!(
                "expected an http:// or https:// URL with a host {HIDDEN}"
            ));
        }
        Ok(Self {
            text: Secret::new(text),
            url,
        })
    }

    /// The URL, for building requests (never for messages).
    pub fn url(&self) -> &reqwest::Url {
        &self.url
    }

    /// The URL as written, for a [`Redactor`] (never for messages).
    pub fn expose(&self) -> &str {
        self.text.expose()
    }

    /// What messages show instead: `scheme://host/***`.
    pub fn shown(&self) -> String {
        let host = self.url.host_str().unwrap_or_default();
        format!("{}://{host}/***", self.url.scheme())
    }

    /// The parts a receiver might echo on their own: each path segment,
    /// query value and user-info part, as sent and percent-decoded.
    fn pieces(&self) -> Vec<String> {
        let url = &self.url;
        let segments = url.path_segments().into_iter().flatten();
        // A pair's value, or the whole pair when it has no `=` (`?token`).
        let query_values = url
            .query()
            .unwrap_or_default()
            .split('&')
            .map(|pair| pair.split_once('=').map_or(pair, |(_, value)| value));
        let user_info = [url.username()].into_iter().chain(url.password());
        let mut pieces = Vec::new();
        for piece in segments.chain(query_values).chain(user_info) {
            pieces.push(piece.to_string());
            pieces.push(percent_decode(piece));
            // Form encoding writes a space as `+`.
            pieces.push(percent_decode(&piece.replace('+', " ")));
        }
        pieces
    }
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretUrl({})", self.shown())
    }
}

impl<'de> Deserialize<'de> for SecretUrl {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = secret_string(deserializer)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

crate::options::string_schema!(SecretUrl, "secret-url");

/// Every byte but unreserved ones (RFC 3986) as `%XX`: how a secret
/// travels in a URL or a form.
fn percent_encode(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

/// `%XX` escapes decoded (a receiver may echo a piece decoded); invalid
/// escapes are kept as they are.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| text.get(i + 1..i + 3))
            .flatten()
            .filter(|hex| hex.bytes().all(|b| b.is_ascii_hexdigit()))
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) => {
                decoded.push(byte);
                i += 3;
            }
            None => {
                decoded.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

/// Standard base64 with padding (RFC 4648 §4): how basic-auth credentials
/// travel, so the redactor must know that form of a secret too; a dozen
/// lines instead of a dependency.
pub fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let bytes = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = u32::from(bytes[0]) << 16 | u32::from(bytes[1]) << 8 | u32::from(bytes[2]);
        for (index, shift) in [18u32, 12, 6, 0].into_iter().enumerate() {
            if index <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> shift & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Replaces a sink's secrets in text.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    /// (secret, replacement), longest first, so that where secrets overlap
    /// the longest one's replacement is shown.
    secrets: Vec<(String, String)>,
}

impl Redactor {
    /// Adds a secret, shown as `***`, at any length (a short token is
    /// still a token), as written and in the forms a receiver may echo it
    /// in (percent-encoded).
    pub fn secret(mut self, secret: &str) -> Self {
        for form in [secret.to_string(), percent_encode(secret)] {
            self.add_exact(&form, "***");
        }
        self
    }

    /// Adds the credentials of a URL's user info or of basic auth: the
    /// password, and `user:password` as basic auth sends it (base64), which
    /// a receiver echoing the `Authorization` header would show.
    pub fn credentials(mut self, user: &str, password: &str) -> Self {
        self = self.secret(password);
        for (user, password) in [
            (user.to_string(), password.to_string()),
            (percent_decode(user), percent_decode(password)),
        ] {
            self.add_exact(&base64(format!("{user}:{password}").as_bytes()), "***");
        }
        self
    }

    /// Adds the user info of a URL that is not itself secret (an
    /// Alertmanager endpoint `http://user:pass@host`), if it has any.
    pub fn url_credentials(self, url: &reqwest::Url) -> Self {
        match url.password() {
            Some(password) => self.credentials(url.username(), password),
            None => self,
        }
    }

    /// Adds a secret URL: the whole URL is shown as `scheme://host/***`,
    /// its path and query as `/***`, and each of its pieces (path segments,
    /// query values, user info) as `***`, whatever they look like.
    pub fn secret_url(mut self, url: &SecretUrl) -> Self {
        let shown = url.shown();
        self.add(url.expose(), &shown);
        self.add(url.url().as_str(), &shown);
        let path = url.url().path();
        if let Some(query) = url.url().query() {
            self.add(&format!("{path}?{query}"), "/***");
        }
        self.add(path, "/***");
        for piece in url.pieces() {
            self.add(&piece, "***");
        }
        self.url_credentials(url.url())
    }

    /// Adds a piece of a secret URL: pieces shorter than 4 characters
    /// (`v`, `api`) are left readable, since hiding them would mangle
    /// ordinary text while hiding little.
    fn add(&mut self, secret: &str, replacement: &str) {
        if secret.len() >= 4 {
            self.add_exact(secret, replacement);
        }
    }

    fn add_exact(&mut self, secret: &str, replacement: &str) {
        if secret.is_empty() || self.secrets.iter().any(|(known, _)| known == secret) {
            return;
        }
        self.secrets
            .push((secret.to_string(), replacement.to_string()));
        self.secrets
            .sort_by_key(|(s, _)| std::cmp::Reverse(s.len()));
    }

    /// The text with every secret replaced, then cut to at most `limit`
    /// characters (marked `…`): cutting first could leave the start of a
    /// secret that no longer matches.
    pub fn redact_cut(&self, text: &str, limit: usize) -> String {
        let redacted = self.redact(text);
        match redacted.char_indices().nth(limit) {
            Some((cut, _)) => format!("{}…", &redacted[..cut]),
            None => redacted,
        }
    }

    /// The text with every secret replaced.
    ///
    /// All occurrences are found in the original text and replaced in one
    /// pass, so a replacement is never searched again: a path segment that
    /// also occurs in the host (`https://example.com/example/...`) hides
    /// the segment, not part of the `https://example.com/***` shown for the
    /// whole URL. Overlapping occurrences are hidden together.
    pub fn redact(&self, text: &str) -> String {
        let mut hits: Vec<(usize, usize, &str)> = Vec::new();
        for (secret, replacement) in &self.secrets {
            hits.extend(
                text.match_indices(secret.as_str())
                    .map(|(at, found)| (at, at + found.len(), replacement.as_str())),
            );
        }
        // Leftmost first; at one position the longest secret first (the
        // sort is stable and `secrets` is longest first).
        hits.sort_by_key(|&(start, _, _)| start);
        let mut redacted = String::with_capacity(text.len());
        let mut copied = 0;
        let mut hits = hits.into_iter().peekable();
        while let Some((start, mut end, replacement)) = hits.next() {
            while let Some(&(next_start, next_end, _)) = hits.peek() {
                if next_start >= end {
                    break;
                }
                end = end.max(next_end);
                hits.next();
            }
            redacted.push_str(&text[copied..start]);
            redacted.push_str(replacement);
            copied = end;
        }
        redacted.push_str(&text[copied..]);
        redacted
    }
}

/// Compares without stopping at the first difference, so response times do
/// not reveal how much of a guessed secret was right.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// HMAC-SHA256 (RFC 2104) of `message` under `key`.
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    const BLOCK: usize = 64;
    let mut block = [0u8; BLOCK];
    if key.len() > BLOCK {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.map(|b| b ^ byte);
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_sha256_matches_rfc_4231() {
        // Test cases 1, 2 and 6 (a key longer than a block).
        let cases: [(&[u8], &[u8], &str); 3] = [
            (
                &[0x0b; 20],
                b"Hi There",
                "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
            ),
            (
                b"Jefe",
                b"what do ya want for nothing?",
                "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
            ),
            (
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First",
                "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
            ),
        ];
        for (key, message, expected) in cases {
            assert_eq!(hex(&hmac_sha256(key, message)), expected);
        }
        assert!(constant_time_eq(b"s3cret", b"s3cret"));
        assert!(!constant_time_eq(b"s3cret", b"s3creT"));
        assert!(!constant_time_eq(b"s3cret", b"s3cret-longer"));
    }

    #[test]
    fn derived_forms_of_secrets_are_hidden_too() {
        let redactor = Redactor::default().secret("tok/en+1").secret_url(&url(
            "https://alice:pa55w0rdX@example.com/hook?QUERYONLYSECRET&sig=ab+cd+efgh",
        ));
        let basic = base64(b"alice:pa55w0rdX");
        for (echo, hidden) in [
            (format!("Authorization: Basic {basic}"), basic.as_str()),
            ("unknown key QUERYONLYSECRET".to_string(), "QUERYONLYSECRET"),
            ("signature ab cd efgh".to_string(), "ab cd efgh"),
            ("token tok%2Fen%2B1 refused".to_string(), "tok%2Fen%2B1"),
            ("short secret pa55w0rdX".to_string(), "pa55w0rdX"),
        ] {
            let shown = redactor.redact(&echo);
            assert!(!shown.contains(hidden), "{echo} -> {shown}");
        }
        let short = Redactor::default().secret("pw1");
        assert_eq!(short.redact("password pw1 refused"), "password *** refused");
    }

    #[test]
    fn cutting_a_long_answer_never_leaves_half_a_secret() {
        let redactor = Redactor::default().secret("SECRETSECRETSECRETSECRET");
        let body = format!(
            "{}SECRETSECRETSECRETSECRET{}",
            "x".repeat(490),
            "y".repeat(100)
        );
        let shown = redactor.redact_cut(&body, 500);
        assert!(!shown.contains("SECRETSE"), "{shown}");
        assert!(shown.ends_with('…'));
    }

    #[test]
    fn base64_pads_every_remainder() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foob"), "Zm9vYg==");
        assert_eq!(base64(&[0xfb, 0xff]), "+/8=");
    }

    fn url(text: &str) -> SecretUrl {
        SecretUrl::parse(text).expect("a valid URL")
    }

    #[test]
    fn secrets_do_not_show_in_debug_output() {
        let secret = Secret::from("hunter2-token");
        assert_eq!(format!("{secret:?}"), "Secret(***)");
        assert_eq!(secret.expose(), "hunter2-token");
        let secret: Secret = serde_json::from_str("\"123456:ABC-DEF\"").unwrap();
        assert_eq!(secret.expose(), "123456:ABC-DEF");
        assert_eq!(format!("{secret:?}"), "Secret(***)");
        let error =
            toml::from_str::<std::collections::BTreeMap<String, Secret>>("key = 9876543210")
                .unwrap_err()
                .message()
                .to_string();
        assert!(
            !error.contains("9876543210"),
            "a mistyped secret is never shown: {error}"
        );
        let hook = url("https://hooks.slack.com/services/T000/B000/XXXX");
        assert_eq!(
            format!("{hook:?}"),
            "SecretUrl(https://hooks.slack.com/***)"
        );
    }

    #[test]
    fn replaces_tokens_and_webhook_urls() {
        let redactor = Redactor::default()
            .secret("123456:ABC-DEF")
            .secret_url(&url("https://hooks.slack.com/services/T000/B000/XXXX"));
        assert_eq!(
            redactor.redact("POST https://api.telegram.org/bot123456:ABC-DEF/sendMessage failed"),
            "POST https://api.telegram.org/bot***/sendMessage failed"
        );
        assert_eq!(
            redactor
                .redact("error sending to https://hooks.slack.com/services/T000/B000/XXXX: 404"),
            "error sending to https://hooks.slack.com/***: 404"
        );
        assert_eq!(
            redactor.redact("path /services/T000/B000/XXXX"),
            "path /***"
        );
    }

    #[test]
    fn every_piece_of_a_secret_url_is_hidden_on_its_own() {
        let redactor = Redactor::default().secret_url(&url(
            "https://example.com/hooks/notify/aZ8kQ2?key=letmein&v=2",
        ));
        assert_eq!(
            redactor.redact("unknown hooks aZ8kQ2 (key letmein) for notify at /hooks"),
            "unknown *** *** (key ***) for *** at /***",
            "a secret URL's path segments and query values are secret, words or not"
        );
        assert_eq!(
            redactor.redact("v=2 and x"),
            "v=2 and x",
            "pieces shorter than 4 characters would mangle ordinary text"
        );
    }

    #[test]
    fn secret_url_pieces_are_hidden_as_sent_and_decoded() {
        let redactor = Redactor::default().secret_url(&url(
            "https://user:pa55word@example.com/team%20alpha?sig=a%2Bb%2Bc",
        ));
        assert_eq!(
            redactor.redact("team alpha / team%20alpha / a+b+c / a%2Bb%2Bc / pa55word"),
            "*** / *** / *** / *** / ***"
        );
    }

    #[test]
    fn a_replacement_is_never_redacted_again() {
        let redactor = Redactor::default().secret_url(&url("https://example.com/example/abcd"));
        assert_eq!(
            redactor.redact("POST https://example.com/example/abcd: 404 (example)"),
            "POST https://example.com/***: 404 (***)",
            "the host shown for the URL keeps the word that is also a path segment"
        );
    }

    #[test]
    fn overlapping_secrets_are_hidden_together() {
        let redactor = Redactor::default().secret("xabc").secret("abcdef");
        assert_eq!(redactor.redact("1 xabcdef 2"), "1 *** 2");
    }

    #[test]
    fn secret_urls_are_checked_without_repeating_the_value() {
        let parse = |text: &str| {
            serde_json::from_str::<SecretUrl>(&format!("\"{text}\"")).map_err(|e| e.to_string())
        };
        for (bad, expected) in [
            (
                "ftp://files.example/s3cr3t",
                "expected an http:// or https:// URL",
            ),
            (
                "s3cr3t:rest-of-a-token",
                "expected an http:// or https:// URL",
            ),
            ("not a url s3cr3t", "invalid URL"),
            ("https://", "invalid URL"),
        ] {
            let error = parse(bad).unwrap_err();
            assert!(error.contains(expected), "{bad}: {error}");
            assert!(!error.contains("s3cr3t"), "{bad}: {error}");
        }
        let hook = parse("http://127.0.0.1:9000/hooks/s3cr3t").unwrap();
        assert_eq!(hook.url().port(), Some(9000));
        assert_eq!(hook.expose(), "http://127.0.0.1:9000/hooks/s3cr3t");
    }
}
