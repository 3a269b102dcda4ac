//! The `stream.*` options: a JetStream stream a component creates when it
//! is missing, and checks when it exists.
//!
//! JetStream stores only what a stream's subjects cover; a publish to a
//! subject no stream covers fails ("no stream found"). Operators usually
//! create streams themselves (sizing, retention, replicas); for a single
//! server and for tests, `stream.*` lets howl create it. An existing
//! stream is never changed: creating it again would not reconcile its
//! config, so a stream whose subjects or retention differ from the options
//! is an error naming the difference, instead of a silent mismatch.

use std::time::Duration;

use async_nats::jetstream;
use async_nats::jetstream::stream::{Config, RetentionPolicy, StorageType};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::diagnostic::BuildError;
use crate::options::Seconds;

/// A stream to create if missing (`stream.*`).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StreamSpec {
    /// The stream's name (no spaces, `.`, `*` or `>`), e.g. `LOGS`.
    pub name: String,
    /// The subjects it stores, wildcards allowed, e.g. `["logs.>"]`.
    pub subjects: Vec<String>,
    /// When stored messages are removed: `limits` (by age and size only;
    /// any number of consumers, each with its own position), `work_queue`
    /// (once its one consumer acknowledged them: howl workers sharing one
    /// durable consumer) or `interest` (once every consumer acknowledged
    /// them).
    #[serde(default)]
    pub retention: Retention,
    /// `file` (survives a server restart) or `memory`.
    #[serde(default)]
    pub storage: Storage,
    /// Messages older than this are removed; `0` keeps them until another
    /// limit (or, for `work_queue`, their acknowledgement) removes them.
    #[serde(default = "no_max_age")]
    pub max_age_secs: Seconds,
    /// How long the server remembers `Nats-Msg-Id`s to drop duplicates;
    /// must outlast the longest a publisher retries (`retry.max_duration_secs`).
    #[serde(default = "default_duplicate_window")]
    pub duplicate_window_secs: Seconds,
}

fn no_max_age() -> Seconds {
    Seconds::from_secs(0)
}

fn default_duplicate_window() -> Seconds {
    Seconds::from_secs(120)
}

/// A stream's retention.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Retention {
    /// Removed by the limits only.
    #[default]
    Limits,
    /// Removed once its consumer acknowledged it.
    WorkQueue,
    /// Removed once every consumer acknowledged it.
    Interest,
}

/// Where a stream keeps its messages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Storage {
    /// On disk.
    #[default]
    File,
    /// In memory (lost when the server stops).
    Memory,
}

/// Why a stream could not be made ready.
#[derive(Debug, thiserror::Error)]
pub enum StreamFailure {
    /// The server did not answer as expected; worth retrying.
    #[error("cannot create or look up JetStream stream `{name}`: {cause}")]
    Unavailable {
        /// The stream.
        name: String,
        /// Why.
        cause: String,
    },
    /// The stream exists with other settings: an operator must decide.
    #[error(
        "JetStream stream `{name}` exists with {what} {found}, but `stream.{option}` asks for \
         {wanted}; howl does not change an existing stream: change the options or the stream"
    )]
    Differs {
        /// The stream.
        name: String,
        /// The setting.
        what: &'static str,
        /// The option.
        option: &'static str,
        /// What the server has.
        found: String,
        /// What the options say.
        wanted: String,
    },
}

impl StreamFailure {
    /// Whether trying again may help.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable { .. })
    }
}

impl StreamSpec {
    /// Checks what the server would refuse, at build time.
    pub fn check(&self) -> Result<(), BuildError> {
        if self.name.is_empty()
            || self
                .name
                .contains(|c: char| c.is_whitespace() || matches!(c, '.' | '*' | '>' | '/' | '\\'))
        {
            return Err(BuildError::new(format!(
                "`stream.name` {:?} is not a stream name: no spaces, `.`, `*`, `>`, `/` or `\\`",
                self.name
            ))
            .for_option("stream.name"));
        }
        if self.subjects.is_empty() || self.subjects.iter().any(|s| !valid_subject(s, true)) {
            return Err(BuildError::new(
                "`stream.subjects` needs at least one subject, each made of dot-separated \
                 tokens without spaces (`*` and a final `>` are wildcards)",
            )
            .for_option("stream.subjects"));
        }
        Ok(())
    }

    fn config(&self) -> Config {
        Config {
            name: self.name.clone(),
            subjects: self.subjects.clone(),
            retention: match self.retention {
                Retention::Limits => RetentionPolicy::Limits,
                Retention::WorkQueue => RetentionPolicy::WorkQueue,
                Retention::Interest => RetentionPolicy::Interest,
            },
            storage: match self.storage {
                Storage::File => StorageType::File,
                Storage::Memory => StorageType::Memory,
            },
            max_age: self.max_age_secs.get(),
            duplicate_window: self.duplicate_window_secs.get(),
            num_replicas: 1,
            ..Default::default()
        }
    }

    /// Creates the stream if it is missing; checks an existing one's
    /// subjects and retention against the options.
    pub async fn ensure(&self, js: &jetstream::Context) -> Result<(), StreamFailure> {
        let wanted = self.config();
        let stream = js
            .get_or_create_stream(wanted.clone())
            .await
            .map_err(|error| StreamFailure::Unavailable {
                name: self.name.clone(),
                cause: crate::http::error_chain(&error),
            })?;
        let found = &stream.cached_info().config;
        let mut found_subjects = found.subjects.clone();
        let mut wanted_subjects = wanted.subjects.clone();
        found_subjects.sort();
        wanted_subjects.sort();
        if found_subjects != wanted_subjects {
            return Err(StreamFailure::Differs {
                name: self.name.clone(),
                what: "subjects",
                option: "subjects",
                found: format!("{found_subjects:?}"),
                wanted: format!("{wanted_subjects:?}"),
            });
        }
        if found.retention != wanted.retention {
            return Err(StreamFailure::Differs {
                name: self.name.clone(),
                what: "retention",
                option: "retention",
                found: format!("{:?}", found.retention),
                wanted: format!("{:?}", wanted.retention),
            });
        }
        Ok(())
    }
}

/// Whether `subject` is a NATS subject: non-empty dot-separated tokens
/// without whitespace; with `wildcards`, a token may be `*` and the last
/// may be `>`.
pub fn valid_subject(subject: &str, wildcards: bool) -> bool {
    // Called for every event a sink publishes: no allocation.
    let mut tokens = subject.split('.').peekable();
    while let Some(token) = tokens.next() {
        let last = tokens.peek().is_none();
        let valid = !token.is_empty()
            && !token.contains(char::is_whitespace)
            && match token {
                "*" => wildcards,
                ">" => wildcards && last,
                _ => !token.contains(['*', '>']),
            };
        if !valid {
            return false;
        }
    }
    true
}

/// The default wait for a JetStream answer (a publish acknowledgement, an
/// API call).
pub const API_TIMEOUT: Duration = Duration::from_secs(5);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_are_tokens_and_wildcards_only_where_allowed() {
        assert!(valid_subject("logs.api", false));
        assert!(valid_subject("logs.>", true));
        assert!(valid_subject("logs.*.errors", true));
        assert!(!valid_subject("logs.>", false));
        assert!(!valid_subject("logs.>.x", true));
        assert!(!valid_subject("logs..api", false));
        assert!(!valid_subject("", false));
        assert!(!valid_subject("logs api", false));
        assert!(!valid_subject("logs.a*", true));
    }

    #[test]
    fn stream_names_and_subjects_are_checked_at_build() {
        let spec = |text: &str| toml::from_str::<StreamSpec>(text).expect("parses");
        assert!(
            spec("name = \"LOGS\"\nsubjects = [\"logs.>\"]")
                .check()
                .is_ok()
        );
        let bad_name = spec("name = \"my.logs\"\nsubjects = [\"logs.>\"]").check();
        assert_eq!(bad_name.unwrap_err().option.as_deref(), Some("stream.name"));
        let no_subject = spec("name = \"LOGS\"\nsubjects = []").check();
        assert_eq!(
            no_subject.unwrap_err().option.as_deref(),
            Some("stream.subjects")
        );
    }
}
