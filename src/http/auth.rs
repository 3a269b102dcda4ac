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
use crate::secret::{Redactor, Secret, base64};

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
                if token.expose().is_empty() {
                    // An unset `${TOKEN:-}` gives one: fail rather than
                    // send an empty credential.
                    return Err(BuildError::new("`auth.token` is empty").for_option("auth.token"));
                }
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
                if user.is_empty() || password.expose().is_empty() {
                    let option = if user.is_empty() {
                        "auth.user"
                    } else {
                        "auth.password"
                    };
                    return Err(BuildError::new(format!("`{option}` is empty")).for_option(option));
                }
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

/// The user's `headers.*` options as request headers, each value added to
/// the redactor as a secret (API keys travel in headers). Errors name the
/// header, never its value. `has_auth`: an `auth` table is set too, so an
/// `Authorization` header here would be a second, conflicting credential.
pub fn user_headers(
    written: &std::collections::BTreeMap<String, Secret>,
    has_auth: bool,
    mut redactor: Redactor,
) -> Result<(reqwest::header::HeaderMap, Redactor), BuildError> {
    use reqwest::header::{AUTHORIZATION, HeaderName};
    let mut headers = reqwest::header::HeaderMap::new();
    for (written, value) in written {
        let option = format!("headers.{written}");
        let name = HeaderName::from_bytes(written.as_bytes()).map_err(|_| {
            BuildError::new(format!(
                "`{option}`: `{written}` is not a valid header name"
            ))
            .for_option(&option)
        })?;
        if name == AUTHORIZATION && has_auth {
            return Err(BuildError::new(
                "set either `auth` or an `Authorization` header in `headers`, not both",
            )
            .for_option(option));
        }
        redactor = redactor.secret(value.expose());
        let mut value = HeaderValue::from_str(value.expose()).map_err(|_| {
            BuildError::new(format!(
                "`{option}`: the value contains characters not allowed in an HTTP header"
            ))
            .for_option(&option)
        })?;
        value.set_sensitive(true);
        headers.insert(name, value);
    }
    Ok((headers, redactor))
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
