//! Keeping secrets out of logs, errors and metrics.
//!
//! A Telegram bot token sits in the URL path, Slack webhook URLs are
//! secrets, auth headers carry tokens. Every message the delivery core
//! builds from a URL, an error or a response body passes through the sink's
//! [`Redactor`], which knows that sink's secrets and replaces them.
//! Options holding secrets are read as [`Secret`], whose `Debug` hides the
//! value, so printing a config can never leak them either.

use std::fmt;

use schemars::JsonSchema;
use serde::Deserialize;

/// A configured value that must never be printed (a token, a password, a
/// webhook URL): `Debug` shows `***`, and reading it takes an explicit
/// [`Secret::expose`]. It has no `Serialize`, so it cannot be written out by
/// accident either.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl JsonSchema for Secret {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Secret".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "type": "string", "format": "secret" })
    }
}

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

/// Replaces a sink's secrets in text.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    /// (secret, replacement), longest first so a secret containing another
    /// is replaced whole.
    secrets: Vec<(String, String)>,
}

impl Redactor {
    /// Adds a secret, shown as `***`.
    pub fn secret(mut self, secret: &str) -> Self {
        self.add(secret, "***");
        self
    }

    /// Adds a URL whose path and query are secret (webhook URLs): it is
    /// shown as `scheme://host/***`.
    pub fn secret_url(mut self, url: &str) -> Self {
        let shown = match reqwest::Url::parse(url) {
            Ok(parsed) => format!(
                "{}://{}/***",
                parsed.scheme(),
                parsed.host_str().unwrap_or("?")
            ),
            Err(_) => "***".to_string(),
        };
        self.add(url, &shown);
        if let Ok(parsed) = reqwest::Url::parse(url) {
            let path_and_query = &url[url.find(parsed.path()).unwrap_or(url.len())..];
            self.add(path_and_query, "/***");
            // A receiver may echo a piece of the URL in its error page
            // ("unknown token X"): hide the pieces that look like tokens
            // too, keeping plain words (`hooks`, `sendMessage`) readable.
            for segment in parsed.path_segments().into_iter().flatten() {
                if looks_like_a_token(segment) {
                    self.add(segment, "***");
                }
            }
            for pair in parsed.query().unwrap_or_default().split('&') {
                if let Some((_, value)) = pair.split_once('=') {
                    self.add(value, "***");
                }
            }
        }
        self
    }

    fn add(&mut self, secret: &str, replacement: &str) {
        if self.secrets.iter().any(|(known, _)| known == secret) {
            return;
        }
        // Very short "secrets" would mangle ordinary text; tokens are long.
        if secret.len() >= 4 && secret != "/" {
            self.secrets
                .push((secret.to_string(), replacement.to_string()));
            self.secrets
                .sort_by_key(|(s, _)| std::cmp::Reverse(s.len()));
        }
    }

    /// The text with every secret replaced.
    pub fn redact(&self, text: &str) -> String {
        let mut text = text.to_string();
        for (secret, replacement) in &self.secrets {
            if text.contains(secret.as_str()) {
                text = text.replace(secret.as_str(), replacement);
            }
        }
        text
    }
}

/// Ids and tokens have digits or are long; path words are short letters.
fn looks_like_a_token(segment: &str) -> bool {
    segment.len() >= 16 || segment.bytes().any(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_do_not_show_in_debug_output() {
        let secret = Secret::from("hunter2-token");
        assert_eq!(format!("{secret:?}"), "Secret(***)");
        assert_eq!(secret.expose(), "hunter2-token");
        let secret: Secret = serde_json::from_str("\"123456:ABC-DEF\"").unwrap();
        assert_eq!(secret.expose(), "123456:ABC-DEF");
        assert_eq!(format!("{secret:?}"), "Secret(***)");
    }

    #[test]
    fn replaces_tokens_and_webhook_urls() {
        let redactor = Redactor::default()
            .secret("123456:ABC-DEF")
            .secret_url("https://hooks.slack.com/services/T000/B000/XXXX");
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
    fn hides_token_like_pieces_of_a_url_echoed_on_their_own() {
        let redactor = Redactor::default()
            .secret_url("https://example.com/hooks/aZ8kQ2/notify?key=letmein&v=2");
        assert_eq!(
            redactor.redact("unknown hook aZ8kQ2 (key letmein) for notify"),
            "unknown hook *** (key ***) for notify",
            "plain words of the path stay readable"
        );
    }
}
