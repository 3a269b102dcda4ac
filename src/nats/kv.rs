//! JetStream key-value buckets: the shared state of a fleet of howl
//! instances (suppressions, verdicts, leases) lives in them.
//!
//! A bucket `B` is the stream `KV_B` over the subjects `$KV.B.>`; a key is
//! a subject token path. async-nats creates buckets through a call that
//! first queries the account, which fails against Debian's nats-server
//! 2.9 (it lacks fields the client requires). So [`open_bucket`] creates
//! the bucket's stream itself, with the settings the client would use, and
//! then opens it as a bucket: this works on 2.9 and on newer servers
//! alike. An existing bucket is opened as it is (an operator may have
//! sized it); only one that cannot work as a bucket is refused.
//!
//! Keys are restricted to `[-/_=.A-Za-z0-9]`, and `.` separates subject
//! tokens: [`key_token`] turns any text (a component id, a scope value)
//! into one token, reversibly, so that keys never collide and a watch on
//! `prefix.>` sees exactly its keys.

use std::fmt::Write as _;
use std::time::Duration;

use async_nats::jetstream;
use async_nats::jetstream::kv::Store;
use async_nats::jetstream::stream::{Config, DiscardPolicy, StorageType};

use super::stream::API_TIMEOUT;

/// The fleet's shared state (`[state.shared.nats]`, checked): the server
/// and the bucket every instance of one fleet names.
#[derive(Debug, Clone)]
pub struct SharedNats {
    /// The bucket.
    pub bucket: String,
    /// The server and credentials.
    pub connector: super::Connector,
    /// Where `[state]` is written (`file:line:column`), for the messages
    /// of a reload that would change it.
    pub defined_at: String,
}

/// A bucket to open, creating it when missing.
#[derive(Debug, Clone)]
pub struct BucketSpec {
    /// The bucket's name (`[A-Za-z0-9_-]+`).
    pub name: String,
    /// How many values of one key the server keeps (1 to 64): more than
    /// one lets an operator read what a key held before.
    pub history: i64,
    /// Entries older than this are removed by the server (`ZERO`: kept).
    /// On 2.9 the removal sends no watch event: readers must also check
    /// the age they keep in values.
    pub max_age: Duration,
}

/// Why a bucket could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum BucketFailure {
    /// The server did not answer as expected; worth retrying.
    #[error("cannot create or open the JetStream key-value bucket `{name}`: {cause}")]
    Unavailable {
        /// The bucket.
        name: String,
        /// Why.
        cause: String,
    },
    /// A stream of the bucket's name exists but is not a bucket.
    #[error(
        "the JetStream stream `KV_{name}` exists but is not a key-value bucket ({why}); \
         delete it or choose another bucket name"
    )]
    NotABucket {
        /// The bucket.
        name: String,
        /// What is wrong with it.
        why: String,
    },
    /// The bucket exists with an age limit where howl keeps entries for
    /// good: the server would remove them silently (2.9 sends no watch
    /// event for it), so instances started later would never see them.
    #[error(
        "the bucket `{name}` removes entries after {age:?}: what howl keeps there would \
         vanish from it; it needs a bucket without an age limit (delete the bucket or name \
         another)"
    )]
    AgeLimited {
        /// The bucket.
        name: String,
        /// Its age limit.
        age: Duration,
    },
}

impl BucketFailure {
    /// Whether trying again may help.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable { .. })
    }
}

/// Whether `name` may name a bucket (the client refuses others).
pub fn valid_bucket_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Creates the bucket when it is missing, then opens it. An existing one
/// is refused when it is not a bucket, or when it has an age limit and
/// `spec` keeps entries for good (`max_age` zero).
pub async fn open_bucket(
    js: &jetstream::Context,
    spec: &BucketSpec,
) -> Result<Store, BucketFailure> {
    let unavailable = |error: &dyn std::error::Error| BucketFailure::Unavailable {
        name: spec.name.clone(),
        cause: crate::http::error_chain(error),
    };
    let wanted = Config {
        name: format!("KV_{}", spec.name),
        subjects: vec![format!("$KV.{}.>", spec.name)],
        max_messages_per_subject: spec.history.clamp(1, 64),
        max_age: spec.max_age,
        storage: StorageType::File,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        discard: DiscardPolicy::New,
        num_replicas: 1,
        ..Default::default()
    };
    let stream = tokio::time::timeout(API_TIMEOUT, js.get_or_create_stream(wanted.clone()))
        .await
        .map_err(|elapsed| unavailable(&elapsed))?
        .map_err(|error| unavailable(&error))?;
    let found = &stream.cached_info().config;
    if found.subjects != wanted.subjects {
        return Err(BucketFailure::NotABucket {
            name: spec.name.clone(),
            why: format!(
                "its subjects are {:?}, not {:?}",
                found.subjects, wanted.subjects
            ),
        });
    }
    if found.max_messages_per_subject < 1 {
        return Err(BucketFailure::NotABucket {
            name: spec.name.clone(),
            why: "it keeps no per-key history limit".into(),
        });
    }
    if spec.max_age.is_zero() && !found.max_age.is_zero() {
        return Err(BucketFailure::AgeLimited {
            name: spec.name.clone(),
            age: found.max_age,
        });
    }
    tokio::time::timeout(API_TIMEOUT, js.get_key_value(&spec.name))
        .await
        .map_err(|elapsed| unavailable(&elapsed))?
        .map_err(|error| unavailable(&error))
}

/// `text` as one key token: letters, digits, `-` and `_` stay; every other
/// byte (`.` and `=` included) becomes `=` and two hex digits. Reversible
/// and injective, so two texts never share a key.
pub fn key_token(text: &str) -> String {
    let mut token = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_' {
            token.push(char::from(byte));
        } else {
            let _ = write!(token, "={byte:02X}");
        }
    }
    if token.is_empty() {
        // The empty text (the unscoped space) still needs a token.
        token.push('=');
    }
    token
}

/// The text of a [`key_token`], or `None` if it is not one.
pub fn from_key_token(token: &str) -> Option<String> {
    if token == "=" {
        return Some(String::new());
    }
    let mut bytes = Vec::with_capacity(token.len());
    let mut rest = token.as_bytes();
    while let Some((&first, tail)) = rest.split_first() {
        if first == b'=' {
            let hex = tail.get(..2)?;
            let hex = std::str::from_utf8(hex).ok()?;
            bytes.push(u8::from_str_radix(hex, 16).ok()?);
            rest = &tail[2..];
        } else {
            bytes.push(first);
            rest = tail;
        }
    }
    String::from_utf8(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_tokens_are_single_allowed_tokens_and_reversible() {
        for text in ["", "api", "my.service", "a=b", "ünï code", "x/y z", "=41"] {
            let token = key_token(text);
            assert!(
                token
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '=')),
                "{token}"
            );
            assert!(!token.contains('.'));
            assert_eq!(from_key_token(&token).as_deref(), Some(text), "{token}");
        }
        // Injective where a naive escape would not be: `=41` is not `A`.
        assert_ne!(key_token("=41"), key_token("A"));
        assert_ne!(key_token(""), key_token("="));
        assert_eq!(from_key_token("=4"), None);
    }

    #[test]
    fn bucket_names_are_checked() {
        assert!(valid_bucket_name("howl"));
        assert!(valid_bucket_name("howl_leases-2"));
        assert!(!valid_bucket_name(""));
        assert!(!valid_bucket_name("howl.state"));
        assert!(!valid_bucket_name("howl state"));
    }
}
