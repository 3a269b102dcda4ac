//! Miner configuration and its validation.
//!
//! One configuration is meant to work untuned across systems; the knobs exist for bounding resources
//! (`max_patterns`, `max_tokens`, `max_samples`) and for the user's own knowledge of their logs
//! (`masks`, `disable_builtin_masks`). `similarity` is exposed for experiments; the default is what the
//! accuracy tests are run with.
//!
//! [`MinerConfig`] is the one definition of these settings: the `pattern` transform takes it as a
//! group of its options and `howl patterns mine --config` reads it from the same files, so its doc
//! comments are what users read (the Options table of the `pattern` page is generated from them).
//!
//! Every setting is checked while it is read, so a bad value in a config file is reported at its line
//! and column; [`super::Miner::new`] runs the same checks on settings built in code, so the hot path
//! never has to handle bad values.

use std::fmt;

use regex::Regex;
use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize};

use super::mask::{BUILTIN_NAMES, Builtins, Masker};

/// Configuration of a [`super::Miner`].
///
/// Deserialises from the pipeline's config file (`#[serde(default)]`, so every field is optional), e.g.
/// `masks = [{ name = "order", pattern = "ORD-\\d+" }]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct MinerConfig {
    /// The most patterns kept per scope; beyond it the least recently seen pattern is evicted (and
    /// counted in `pattern_evictions_total`). Bounds memory when lines carry values no mask
    /// catches, which make every line look new.
    #[serde(deserialize_with = "read_max_patterns")]
    #[schemars(range(min = 1))]
    pub max_patterns: usize,
    /// Lines are cut to this many tokens (1 to 4096) before mining: bounds the work per line and the
    /// size of a template.
    #[serde(deserialize_with = "read_max_tokens")]
    #[schemars(range(min = 1, max = MAX_TOKENS))]
    pub max_tokens: usize,
    /// How alike a line must be to a pattern to join it: the share of the pattern's constant words
    /// the line must have at their positions, more than 0 and at most 1 (1: only identical lines,
    /// masked values aside). In a row of fields its values that agree count too (see "How patterns
    /// refine").
    #[serde(deserialize_with = "read_similarity")]
    #[schemars(extend("exclusiveMinimum" = 0.0, "maximum" = 1.0))]
    pub similarity: f64,
    /// Sample lines kept per pattern (at most 100): the first distinct ones seen, shown with new
    /// patterns and by `howl patterns list`.
    #[serde(deserialize_with = "read_max_samples")]
    #[schemars(range(max = MAX_SAMPLES))]
    pub max_samples: usize,
    /// Your own masks, tried before the built-in ones, in order: `[{ name = "order", pattern =
    /// "ORD-\\d+" }]` turns `ORD-123` into `<ORDER>`.
    pub masks: Vec<UserMask>,
    /// Built-in masks to turn off, by name: `num`, `duration`, `hex`, `ip`, `mac`, `uuid`, `url`,
    /// `path`, `time`, `email`, `hostport`, `bool`, `kv`, `long`, `fqn`. The text they would mask
    /// then stays literal (or falls to another mask: an IP address becomes numbers).
    #[serde(deserialize_with = "read_builtin_names")]
    pub disable_builtin_masks: Vec<String>,
}

/// The most tokens a line may be cut to.
const MAX_TOKENS: usize = 4096;
/// The most samples a pattern may keep.
const MAX_SAMPLES: usize = 100;

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
/// configured mask is an acceptable, opt-in cost. The pattern stays text here (the miner compiles it
/// once, in [`super::Miner::new`]); reading it from a file checks it already.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UserMask {
    /// The placeholder's name: 1 to 32 letters, digits or `_`, starting with a letter. `order` gives
    /// `<ORDER>`.
    #[serde(deserialize_with = "read_mask_name")]
    pub name: String,
    /// A regular expression (Rust `regex` syntax) matching the variable text within one token; it
    /// must not match the empty string.
    #[serde(deserialize_with = "read_mask_pattern")]
    #[schemars(with = "crate::options::Regex")]
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

impl ConfigError {
    /// The option the error is about, as the `pattern` transform's options name it.
    pub fn option(&self) -> &'static str {
        match self {
            ConfigError::UnknownBuiltinMask(_) => "disable_builtin_masks",
            ConfigError::InvalidMaskName(_) | ConfigError::InvalidMaskPattern { .. } => "masks",
            ConfigError::OutOfRange { field, .. } => field,
        }
    }
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
            ConfigError::OutOfRange { field, message } => write!(f, "`{field}` {message}"),
        }
    }
}

impl std::error::Error for ConfigError {}

impl MinerConfig {
    /// Checks every field and compiles the masks.
    pub(crate) fn build_masker(&self) -> Result<Masker, ConfigError> {
        check_max_patterns(&self.max_patterns)?;
        check_max_tokens(&self.max_tokens)?;
        check_similarity(&self.similarity)?;
        check_max_samples(&self.max_samples)?;
        let builtins = builtins_without(&self.disable_builtin_masks)?;
        let mut user = Vec::with_capacity(self.masks.len());
        for m in &self.masks {
            check_mask_name(&m.name)?;
            let re = compile_mask_pattern(&m.pattern).map_err(|message| {
                ConfigError::InvalidMaskPattern {
                    name: m.name.clone(),
                    message,
                }
            })?;
            user.push((re, format!("<{}>", m.name.to_ascii_uppercase())));
        }
        Ok(Masker::new(builtins, user))
    }
}

// The checks, shared by `build_masker` and the readers below.

fn in_range(field: &'static str, ok: bool, message: &str) -> Result<(), ConfigError> {
    if ok {
        Ok(())
    } else {
        Err(ConfigError::OutOfRange {
            field,
            message: message.to_string(),
        })
    }
}

fn check_max_patterns(value: &usize) -> Result<(), ConfigError> {
    in_range("max_patterns", *value >= 1, "must be at least 1")
}

fn check_max_tokens(value: &usize) -> Result<(), ConfigError> {
    in_range(
        "max_tokens",
        (1..=MAX_TOKENS).contains(value),
        "must be from 1 to 4096",
    )
}

fn check_similarity(value: &f64) -> Result<(), ConfigError> {
    in_range(
        "similarity",
        *value > 0.0 && *value <= 1.0,
        "must be more than 0 and at most 1",
    )
}

fn check_max_samples(value: &usize) -> Result<(), ConfigError> {
    in_range("max_samples", *value <= MAX_SAMPLES, "must be at most 100")
}

fn builtins_without(names: &[String]) -> Result<Builtins, ConfigError> {
    Builtins::all()
        .without(names.iter().map(String::as_str))
        .map_err(ConfigError::UnknownBuiltinMask)
}

fn check_mask_name(name: &str) -> Result<(), ConfigError> {
    let ok = !name.is_empty()
        && name.len() <= 32
        && name.as_bytes()[0].is_ascii_alphabetic()
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(ConfigError::InvalidMaskName(name.to_string()))
    }
}

/// The compiled pattern, or what is wrong with it.
fn compile_mask_pattern(pattern: &str) -> Result<Regex, String> {
    let re = Regex::new(pattern).map_err(|e| e.to_string())?;
    if re.is_match("") {
        return Err("pattern matches the empty string".into());
    }
    Ok(re)
}

// Readers: each reads a setting and runs its check, so a bad value in a file fails where it is
// written (serde's `deserialize_with` takes one function per field).

/// Reads a value and runs `check` on it.
fn checked<'de, D, T>(
    deserializer: D,
    check: impl FnOnce(&T) -> Result<(), ConfigError>,
) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    let value = T::deserialize(deserializer)?;
    check(&value).map_err(serde::de::Error::custom)?;
    Ok(value)
}

fn read_max_patterns<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    checked(d, check_max_patterns)
}

fn read_max_tokens<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    checked(d, check_max_tokens)
}

fn read_similarity<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    checked(d, check_similarity)
}

fn read_max_samples<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    checked(d, check_max_samples)
}

fn read_builtin_names<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    checked(d, |names: &Vec<String>| builtins_without(names).map(drop))
}

fn read_mask_name<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    checked(d, |name: &String| check_mask_name(name))
}

fn read_mask_pattern<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let pattern = String::deserialize(d)?;
    compile_mask_pattern(&pattern)
        .map_err(|message| serde::de::Error::custom(format!("invalid mask pattern: {message}")))?;
    Ok(pattern)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_error(text: &str) -> (String, String) {
        crate::options::parse_error::<MinerConfig>(text)
    }

    #[test]
    fn bad_settings_fail_while_reading_at_the_value() {
        for (text, message, at) in [
            ("max_patterns = 0", "`max_patterns` must be at least 1", "0"),
            (
                "max_tokens = 5000",
                "`max_tokens` must be from 1 to 4096",
                "5000",
            ),
            ("similarity = 0", "`similarity` must be more than 0", "0"),
            (
                "similarity = 1.5",
                "`similarity` must be more than 0",
                "1.5",
            ),
            (
                "max_samples = 101",
                "`max_samples` must be at most 100",
                "101",
            ),
            (
                "disable_builtin_masks = ['ip', 'nmu']",
                "unknown built-in mask \"nmu\"",
                "['ip', 'nmu']",
            ),
            (
                "masks = [{ name = 'a b', pattern = 'x' }]",
                "invalid mask name \"a b\"",
                "'a b'",
            ),
            (
                "masks = [{ name = 'x', pattern = '(' }]",
                "invalid mask pattern",
                "'('",
            ),
            (
                "masks = [{ name = 'x', pattern = 'a*' }]",
                "matches the empty string",
                "'a*'",
            ),
        ] {
            let (error, span) = read_error(text);
            assert!(error.contains(message), "{text}: {error}");
            assert_eq!(span, at, "{text}: {error}");
        }
    }

    #[test]
    fn settings_read_from_a_file_build_a_miner() {
        let config: MinerConfig = toml::from_str(
            "similarity = 1\nmax_samples = 0\nmasks = [{ name = 'order', pattern = 'ORD-\\d+' }]",
        )
        .unwrap();
        assert_eq!(config.similarity, 1.0);
        assert_eq!(config.max_tokens, MinerConfig::default().max_tokens);
        assert!(super::super::Miner::new(config).is_ok());
    }

    #[test]
    fn errors_name_the_option_they_are_about() {
        let error = check_max_tokens(&0).unwrap_err();
        assert_eq!(error.option(), "max_tokens");
        assert_eq!(
            builtins_without(&["nmu".into()]).unwrap_err().option(),
            "disable_builtin_masks"
        );
    }
}
