//! The server side of request credentials: checking `Authorization:
//! Bearer <token>` and `Authorization: Basic <user:password>` on requests
//! howl receives (the API's mutating endpoints, the HTTP sources). One
//! check, so every server answers the same way: the scheme in any case, as
//! HTTP says, and secrets compared in constant time.

use reqwest::header::{self, HeaderMap};

use crate::secret::constant_time_eq;

/// Whether the request carries exactly `token` as its bearer token.
pub fn bearer_matches(headers: &HeaderMap, token: &str) -> bool {
    bearer_token(headers).is_some_and(|given| constant_time_eq(given.as_bytes(), token.as_bytes()))
}

/// Whether the request carries exactly `username` and `password` as
/// basic credentials (both compared in constant time, so a wrong user
/// costs the same as a wrong password).
pub fn basic_matches(headers: &HeaderMap, username: &str, password: &str) -> bool {
    use base64::Engine as _;
    let Some(encoded) = credentials(headers, "basic") else {
        return false;
    };
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else {
        return false;
    };
    let Some(colon) = decoded.iter().position(|b| *b == b':') else {
        return false;
    };
    let user_ok = constant_time_eq(&decoded[..colon], username.as_bytes());
    let password_ok = constant_time_eq(&decoded[colon + 1..], password.as_bytes());
    user_ok & password_ok
}

/// The credentials of an `Authorization: <scheme> <credentials>` header.
fn credentials<'h>(headers: &'h HeaderMap, scheme: &str) -> Option<&'h str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(given, _)| given.eq_ignore_ascii_case(scheme))
        .map(|(_, credentials)| credentials.trim_start())
}

/// The token of an `Authorization: Bearer <token>` header.
fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    credentials(headers, "bearer")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        let mut headers = HeaderMap::new();
        for (value, expected) in [
            ("Bearer tok", Some("tok")),
            ("bearer tok", Some("tok")),
            ("BEARER  tok", Some("tok")),
            ("Basic tok", None),
            ("Bearertok", None),
        ] {
            headers.insert(header::AUTHORIZATION, value.parse().unwrap());
            assert_eq!(bearer_token(&headers), expected, "{value}");
            assert_eq!(
                bearer_matches(&headers, "tok"),
                expected.is_some(),
                "{value}"
            );
        }
    }

    #[test]
    fn basic_credentials_must_match_both_parts() {
        let mut headers = HeaderMap::new();
        // "am:s3cret" and variants, as Alertmanager's basic_auth sends them.
        for (value, expected) in [
            ("Basic YW06czNjcmV0", true),
            ("basic  YW06czNjcmV0", true),
            ("Basic YW06czNjcmVU", false),
            ("Basic Ym06czNjcmV0", false),
            ("Basic YW0=", false),
            ("Basic !!!", false),
            ("Bearer YW06czNjcmV0", false),
        ] {
            headers.insert(header::AUTHORIZATION, value.parse().unwrap());
            assert_eq!(basic_matches(&headers, "am", "s3cret"), expected, "{value}");
        }
    }
}
