//! Credentials an HTTP sink sends in the `Authorization` header:
//! `auth.strategy = "bearer"` with `auth.token`, or `"basic"` with
//! `auth.user` and `auth.password` — the two schemes Vector's `http` sink
//! and Alertmanager's `http_config` share.
//!
//! The options are one flat table rather than a serde enum tagged by
//! `strategy`: the config loader reports unknown keys from the options
//! schema, and a flat table keeps every `auth.*` key known whichever
//! strategy is picked. [`AuthConfig::header`] then says what the chosen
//! strategy lacks or does not use, so a `user` next to a bearer token is
//! an error rather than silently ignored.

use reqwest::header::HeaderValue;
use schemars::JsonSchema;
use serde::Deserialize;

use crate::diagnostic::BuildError;
use crate::secret::{Redactor, Secret};

/// The `auth` table of an HTTP sink.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// `bearer` (sends `Authorization: Bearer <token>`) or `basic` (sends
    /// `Authorization: Basic base64(<user>:<password>)`).
    pub strategy: AuthStrategy,
    /// The token, for `strategy = "bearer"`.
    pub token: Option<Secret>,
    /// The user name, for `strategy = "basic"`.
    pub user: Option<String>,
    /// The password, for `strategy = "basic"`.
    pub password: Option<Secret>,
}

/// How the credentials are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AuthStrategy {
    /// `Authorization: Bearer <token>`.
    Bearer,
    /// `Authorization: Basic base64(<user>:<password>)` (RFC 7617).
    Basic,
}

impl AuthConfig {
    /// The `Authorization` header value, marked sensitive so the HTTP stack
    /// never prints it; an error when the strategy's fields are missing or
    /// fields of the other strategy are set.
    pub fn header(&self) -> Result<HeaderValue, BuildError> {
        let text = match self.strategy {
            AuthStrategy::Bearer => {
                if self.user.is_some() || self.password.is_some() {
                    return Err(BuildError::new(
                        "`auth.user` and `auth.password` belong to `strategy = \"basic\"`; \
                         a bearer strategy takes only `auth.token`",
                    )
                    .for_option(if self.user.is_some() {
                        "auth.user"
                    } else {
                        "auth.password"
                    }));
                }
                let token = self.token.as_ref().ok_or_else(|| {
                    BuildError::new("`auth.strategy = \"bearer\"` needs `auth.token`")
                        .for_option("auth.strategy")
                })?;
                format!("Bearer {}", token.expose())
            }
            AuthStrategy::Basic => {
                if self.token.is_some() {
                    return Err(BuildError::new(
                        "`auth.token` belongs to `strategy = \"bearer\"`; \
                         a basic strategy takes `auth.user` and `auth.password`",
                    )
                    .for_option("auth.token"));
                }
                let (Some(user), Some(password)) = (&self.user, &self.password) else {
                    return Err(BuildError::new(
                        "`auth.strategy = \"basic\"` needs `auth.user` and `auth.password`",
                    )
                    .for_option("auth.strategy"));
                };
                if user.contains(':') {
                    return Err(BuildError::new(
                        "`auth.user` cannot contain `:` (basic auth separates user and password with it)",
                    )
                    .for_option("auth.user"));
                }
                format!(
                    "Basic {}",
                    base64(format!("{user}:{}", password.expose()).as_bytes())
                )
            }
        };
        let mut value = HeaderValue::from_str(&text).map_err(|_| {
            BuildError::new(
                "the `auth` credentials contain characters not allowed in an HTTP header",
            )
            .for_option("auth")
        })?;
        value.set_sensitive(true);
        Ok(value)
    }

    /// Adds the credentials to `redactor`, raw and as sent (a destination
    /// that echoes the request in its error page must not leak them either).
    pub fn redact(&self, mut redactor: Redactor) -> Redactor {
        for secret in [&self.token, &self.password].into_iter().flatten() {
            redactor = redactor.secret(secret.expose());
        }
        if let Ok(header) = self.header()
            && let Ok(text) = header.to_str()
            && let Some((_, credentials)) = text.split_once(' ')
        {
            redactor = redactor.secret(credentials);
        }
        redactor
    }
}

/// Standard base64 with padding (RFC 4648 §4), for basic auth; a dozen
/// lines instead of a dependency.
fn base64(input: &[u8]) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(strategy: AuthStrategy, token: Option<&str>, user: Option<&str>) -> AuthConfig {
        AuthConfig {
            strategy,
            token: token.map(Secret::from),
            user: user.map(str::to_string),
            password: user.map(|_| Secret::from("secret")),
        }
    }

    #[test]
    fn basic_auth_matches_what_alertmanager_sends() {
        // The protocol notes saw `Authorization: Basic YW06c2VjcmV0` for am:secret.
        let header = auth(AuthStrategy::Basic, None, Some("am"))
            .header()
            .unwrap();
        assert_eq!(header.to_str().unwrap(), "Basic YW06c2VjcmV0");
        assert!(header.is_sensitive());
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

    #[test]
    fn each_strategy_needs_its_own_fields_only() {
        let bearer = auth(AuthStrategy::Bearer, Some("t0ken"), None);
        assert_eq!(bearer.header().unwrap().to_str().unwrap(), "Bearer t0ken");
        assert!(auth(AuthStrategy::Bearer, None, None).header().is_err());
        assert!(
            auth(AuthStrategy::Bearer, Some("t0ken"), Some("u"))
                .header()
                .is_err()
        );
        assert!(auth(AuthStrategy::Basic, None, None).header().is_err());
        assert!(
            auth(AuthStrategy::Basic, Some("t0ken"), Some("u"))
                .header()
                .is_err()
        );
        assert!(
            auth(AuthStrategy::Basic, None, Some("a:b"))
                .header()
                .is_err()
        );
    }

    #[test]
    fn redacts_raw_and_encoded_credentials() {
        let redactor = auth(AuthStrategy::Basic, None, Some("am")).redact(Redactor::default());
        assert_eq!(
            redactor.redact("echo: secret / YW06c2VjcmV0"),
            "echo: *** / ***"
        );
    }
}
