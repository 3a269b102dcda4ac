//! The server side of bearer tokens: checking `Authorization: Bearer
//! <token>` on requests howl receives (the API's mutating endpoints, the
//! `http_server` source). One check, so both answer the same way: the
//! scheme in any case, as HTTP says, and the token compared in constant
//! time.

use reqwest::header::{self, HeaderMap};

/// Whether the request carries exactly `token` as its bearer token.
pub fn bearer_matches(headers: &HeaderMap, token: &str) -> bool {
    bearer_token(headers).is_some_and(|given| constant_time_eq(given.as_bytes(), token.as_bytes()))
}

/// The token of an `Authorization: Bearer <token>` header.
fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim_start())
}

/// Compares without stopping at the first difference, so response times do
/// not reveal how much of a guessed token was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
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
    fn tokens_compare_whole() {
        assert!(constant_time_eq(b"s3cret", b"s3cret"));
        assert!(!constant_time_eq(b"s3cret", b"s3creT"));
        assert!(!constant_time_eq(b"s3cret", b"s3cret-longer"));
        assert!(!constant_time_eq(b"", b"x"));
    }
}
