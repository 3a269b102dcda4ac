//! Keeping secrets out of logs, errors and metrics.
//!
//! A Telegram bot token sits in the URL path, Slack webhook URLs are
//! secrets, auth headers carry tokens. Every message the delivery core
//! builds from a URL, an error or a response body passes through the sink's
//! [`Redactor`], which knows that sink's secrets and replaces them.
//! Options that hold secrets are [`Secret`]s, whose `Debug` hides them, so a
//! config dumped into a log or a panic message does not leak them either.

use std::fmt;

use schemars::JsonSchema;
use serde::Deserialize;

/// A secret option (a bot token, a webhook URL): a string that `Debug`
/// never shows.
#[derive(Clone, Deserialize, JsonSchema)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into())
    }

    /// The secret itself, for building requests (and for a [`Redactor`]).
    pub fn expose(&self) -> &str {
        &self.0
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
        }
        self
    }

    fn add(&mut self, secret: &str, replacement: &str) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_do_not_show_in_debug_output() {
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
}
