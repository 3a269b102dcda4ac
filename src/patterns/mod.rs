//! Log-template mining: which *kind* of line is this, and have we seen it before?
//!
//! howl feeds every log message to a [`Miner`], which groups messages into **patterns** (templates such
//! as `Failed password for <*> from <IP> port <NUM> ssh2`) and says whether a message belongs to a known
//! pattern or creates a **new** one. New patterns are what howl alerts on, so the miner is built around
//! three promises:
//!
//! * **Stable identity.** A pattern's [`PatternId`] is fixed when it is created, derived from the
//!   creating line's masked text (16 hex chars), kept when the template generalises, and kept across
//!   restarts through [`Miner::snapshot`] / [`Miner::restore`].
//! * **No false "new".** A masked variable meeting a wildcard is a match, templates only generalise,
//!   and exact repeats hit a cache, so replaying the same input creates zero new patterns.
//! * **Bounded cost.** One pass over each line with hand-written classifiers (no regex unless the user
//!   adds masks), a hash lookup for repeats, at most `max_patterns` patterns with least-recently-seen
//!   eviction, at most `max_tokens` tokens per line.
//!
//! The algorithm is Drain-family (a fixed-depth prefix tree keyed by token count and leading tokens,
//! then a similarity check against the templates in the leaf), with the fixes the reference notes call
//! for: typed masking built in, wildcard-aware similarity, a slow path that lets optional variable
//! tokens vary the token count, and exact matching for short lines. Three generic structural rules keep
//! a large template from absorbing a rare different event: adjacent differing words, differing
//! key=value keys and differing UPPER-CASE words are never merged (see `template.rs`).
//!
//! One configuration is meant for every system; nothing in here knows any particular log format.
//!
//! Module map:
//!
//! | file | what |
//! |---|---|
//! | `config.rs` | [`MinerConfig`] (also the `pattern` transform's miner options), [`UserMask`], [`ConfigError`] |
//! | `mask.rs` | one-pass token classifiers (numbers, IPs, UUIDs, paths, times, key=value, ...) |
//! | `tokenize.rs` | whitespace split, multi-token joins (`1.16 KB`, date runs), hashing |
//! | `template.rs` | template slots, similarity, alignment of different lengths, display |
//! | `tail.rs` | open tails: free text after a label as one value of any length |
//! | `middle.rs` | open middles: free text between a label and `key=value` fields, likewise |
//! | `miner.rs` | [`Miner`]: routing, matching, merging, creation, LRU eviction |
//! | `level.rs` | [`Level`] detection from a hint or the line's header |
//! | `id.rs` | [`PatternId`], FNV-1a 64 |
//! | `snapshot.rs` | [`MinerSnapshot`], [`RestoreError`] |
//! | `tests.rs`, `loghub.rs` | behaviour tests; Loghub fixture reader and grouping accuracy (test only) |
//!
//! ```
//! use howl::patterns::{Miner, MinerConfig};
//!
//! let mut miner = Miner::new(MinerConfig::default()).unwrap();
//! let first = miner.observe("Accepted password for root from 10.0.0.1 port 22 ssh2", None, 0);
//! assert!(first.is_new);
//! let id = first.id;
//! let again = miner.observe("Accepted password for alice from 10.0.0.9 port 4711 ssh2", None, 1);
//! assert!(!again.is_new);
//! assert_eq!(again.id, id);
//! assert_eq!(again.template, "Accepted password for <*> from <IP> port <NUM> ssh2");
//! ```

mod config;
mod id;
mod level;
mod mask;
mod middle;
mod miner;
mod snapshot;
mod spans;
mod tail;
mod template;
mod tokenize;
mod traceback;

#[cfg(test)]
#[allow(dead_code)]
mod loghub;
#[cfg(test)]
mod tests;

pub use config::{ConfigError, MinerConfig, UserMask};
pub use id::{ParsePatternIdError, PatternId};
pub use level::Level;
pub use miner::{Miner, Observation, PatternView};
pub use snapshot::{MinerSnapshot, RestoreError, SNAPSHOT_VERSION};
