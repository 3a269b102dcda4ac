//! Miner configuration and its validation.
//!
//! One configuration is meant to work untuned across systems; the knobs exist for bounding resources
//! (`max_patterns`, `max_tokens`, `max_samples`) and for the user's own knowledge of their logs
//! (`masks`, `disable_builtin_masks`). `similarity` is exposed for experiments; the default is what the
//! accuracy tests are run with.
//!
//! Validation happens once, in [`super::Miner::new`], so the hot path never has to handle bad values.

use std::fmt;

use regex::Regex;
use serde::{Deserialize, Serialize};

use super::mask::{BUILTIN_NAMES, Builtins, Masker};

/// Configuration of a [`super::Miner`].
///
/// Deserialises from the pipeline's config file (`#[serde(default)]`, so every field is optional), e.g.
/// `masks = [{ name = "order", pattern = "ORD-\\d+" }]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MinerConfig {
    /// Upper bound on live patterns; beyond it the least-recently-seen pattern is evicted. Bounds memory
    /// when a source emits unbounded distinct shapes (e.g. unmasked ids in every line).
    pub max_patterns: usize,
    /// Lines are cut after this many tokens: bounds per-line work and template size.
    pub max_tokens: usize,
    /// Fraction of a template's constant tokens a line must share to join it (Drain's `st`, but
    /// computed over constant positions only, so heavily masked lines still match their template).
    pub similarity: f64,
    /// Raw example lines kept per pattern, for humans looking at an alert.
    pub max_samples: usize,
    /// User masks, applied before the built-ins, in order. A mask named `order` turns its matches
    /// into `<ORDER>`.
    pub masks: Vec<UserMask>,
    /// Built-in mask classes to switch off, by name: `num`, `duration`, `hex`, `ip`, `mac`, `uuid`,
    /// `url`, `path`, `time`, `email`, `hostport`, `bool`, `kv`, `long`, `fqn`.
    pub disable_builtin_masks: Vec<String>,
}

impl Default for MinerConfig {
    fn default() -> Self {
        MinerConfig {
            max_patterns: 10_000,
            max_tokens: 128,
            similarity: 0.6,
            max_samples: 3,
            masks: Vec::new(),
            disable_builtin_masks: Vec::new(),
        }
    }
}

/// A user-defined mask: every match of `pattern` is replaced by the placeholder `<NAME>`.
///
/// Why regex here but not for built-ins: users know their own id formats (`ORD-\d+`), and one regex per
/// configured mask is an acceptable, opt-in cost.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserMask {
    /// Placeholder name: letters, digits and `_`, starting with a letter. `order` gives `<ORDER>`.
    pub name: String,
    /// Regular expression (Rust `regex` syntax) matching the variable text.
    pub pattern: String,
}

/// Why a configuration was rejected.
#[derive(Clone, Debug, PartialEq)]
pub enum ConfigError {
    /// `disable_builtin_masks` names a class that does not exist (typos must not silently do nothing).
    UnknownBuiltinMask(String),
    /// A user mask name is empty, too long, or has characters other than letters, digits and `_`.
    InvalidMaskName(String),
    /// A user mask pattern does not compile, or matches the empty string.
    InvalidMaskPattern {
        /// The mask's name.
        name: String,
        /// What is wrong with it.
        message: String,
    },
    /// A numeric setting is outside its allowed range.
    OutOfRange {
        /// The setting.
        field: &'static str,
        /// The allowed range.
        message: String,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::UnknownBuiltinMask(n) => {
                let known: Vec<&str> = BUILTIN_NAMES.iter().map(|(n, _)| *n).collect();
                write!(
                    f,
                    "unknown built-in mask {n:?}; known: {}",
                    known.join(", ")
                )
            }
            ConfigError::InvalidMaskName(n) => {
                write!(
                    f,
                    "invalid mask name {n:?}: use 1-32 letters, digits or '_', starting with a letter"
                )
            }
            ConfigError::InvalidMaskPattern { name, message } => {
                write!(f, "mask {name:?}: {message}")
            }
            ConfigError::OutOfRange { field, message } => write!(f, "{field}: {message}"),
        }
    }
}

impl std::error::Error for ConfigError {}

impl MinerConfig {
    /// Checks every field and compiles the masks.
    pub(crate) fn build_masker(&self) -> Result<Masker, ConfigError> {
        if self.max_patterns == 0 {
            return Err(ConfigError::OutOfRange {
                field: "max_patterns",
                message: "must be at least 1".into(),
            });
        }
        if !(1..=4096).contains(&self.max_tokens) {
            return Err(ConfigError::OutOfRange {
                field: "max_tokens",
                message: "must be in 1..=4096".into(),
            });
        }
        if !(self.similarity > 0.0 && self.similarity <= 1.0) {
            return Err(ConfigError::OutOfRange {
                field: "similarity",
                message: "must be in (0, 1]".into(),
            });
        }
        if self.max_samples > 100 {
            return Err(ConfigError::OutOfRange {
                field: "max_samples",
                message: "must be at most 100".into(),
            });
        }
        let builtins = Builtins::all()
            .without(self.disable_builtin_masks.iter().map(String::as_str))
            .map_err(ConfigError::UnknownBuiltinMask)?;
        let mut user = Vec::with_capacity(self.masks.len());
        for m in &self.masks {
            let ok_name = !m.name.is_empty()
                && m.name.len() <= 32
                && m.name.as_bytes()[0].is_ascii_alphabetic()
                && m.name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if !ok_name {
                return Err(ConfigError::InvalidMaskName(m.name.clone()));
            }
            let re = Regex::new(&m.pattern).map_err(|e| ConfigError::InvalidMaskPattern {
                name: m.name.clone(),
                message: e.to_string(),
            })?;
            if re.is_match("") {
                return Err(ConfigError::InvalidMaskPattern {
                    name: m.name.clone(),
                    message: "pattern matches the empty string".into(),
                });
            }
            user.push((re, format!("<{}>", m.name.to_ascii_uppercase())));
        }
        Ok(Masker::new(builtins, user))
    }
}
