//! Durations, as options and command-line flags write them.
//!
//! Every duration option accepts a string with units (`"90s"`, `"15m"`,
//! `"1h30m"`, `"7d"`) or a plain number in the unit its name says: seconds
//! for `*_secs` names and the few unit-less ones (`verdict_ttl`), millis for
//! `*_ms`. So `window_secs = 600` and `window_secs = "10m"` mean the same,
//! and the four conventions the options grew (`f64` seconds, `u64` seconds,
//! milliseconds, `"7d"` strings) are one type to the code.

use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::diagnostic::BuildError;

/// Parses `<number><unit>` runs: units `ms`, `s`, `m`, `h`, `d`, `w`; a bare
/// number means seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("empty duration".into());
    }
    if let Ok(seconds) = text.parse::<u64>() {
        return Ok(Duration::from_secs(seconds));
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(format!(
                "invalid duration `{text}`: expected a number, e.g. `15m`, `1h`, `7d`"
            ));
        }
        let number: u64 = rest[..digits]
            .parse()
            .map_err(|_| format!("invalid duration `{text}`: number too large"))?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "ms" => Duration::from_millis(1),
            "s" => Duration::from_secs(1),
            "m" => Duration::from_secs(60),
            "h" => Duration::from_secs(3600),
            "d" => Duration::from_secs(86_400),
            "w" => Duration::from_secs(7 * 86_400),
            other if other.starts_with('.') => {
                return Err(format!(
                    "invalid duration `{text}`: units take whole numbers; write `1h30m`, or a number of seconds"
                ));
            }
            other => {
                return Err(format!(
                    "invalid duration `{text}`: unknown unit `{other}` (use ms, s, m, h, d or w)"
                ));
            }
        };
        total = unit
            .checked_mul(
                u32::try_from(number)
                    .map_err(|_| format!("invalid duration `{text}`: too large"))?,
            )
            .and_then(|part| total.checked_add(part))
            .ok_or_else(|| format!("invalid duration `{text}`: too large"))?;
        rest = &rest[unit_len..];
    }
    Ok(total)
}

/// A duration option whose plain numbers are seconds (fractions allowed).
pub type Seconds = DurationOption<InSeconds>;
/// A duration option whose plain numbers are milliseconds.
pub type Millis = DurationOption<InMillis>;

/// A duration read from an option; `U` says what a plain number means.
pub struct DurationOption<U> {
    value: Duration,
    unit: PhantomData<U>,
}

/// What a plain number means in a duration option.
pub trait Unit {
    /// The duration of one unit.
    const ONE: Duration;
    /// The unit's name in messages.
    const NAME: &'static str;
}

/// Plain numbers are seconds.
pub struct InSeconds;
/// Plain numbers are milliseconds.
pub struct InMillis;

impl Unit for InSeconds {
    const ONE: Duration = Duration::from_secs(1);
    const NAME: &'static str = "seconds";
}

impl Unit for InMillis {
    const ONE: Duration = Duration::from_millis(1);
    const NAME: &'static str = "milliseconds";
}

impl<U> DurationOption<U> {
    /// A duration of whole seconds (for defaults).
    pub const fn from_secs(secs: u64) -> Self {
        Self::new(Duration::from_secs(secs))
    }

    /// A duration of whole milliseconds (for defaults).
    pub const fn from_millis(millis: u64) -> Self {
        Self::new(Duration::from_millis(millis))
    }

    /// Wraps a duration.
    pub const fn new(value: Duration) -> Self {
        Self {
            value,
            unit: PhantomData,
        }
    }

    /// The duration.
    pub fn get(&self) -> Duration {
        self.value
    }

    /// The duration, refused when it is zero: for intervals and timeouts,
    /// where zero would spin or never wait. `option` names the option in
    /// the error, which then points at it.
    pub fn positive(&self, option: &str) -> Result<Duration, BuildError> {
        if self.value.is_zero() {
            Err(BuildError::new(format!("`{option}` must be more than 0")).for_option(option))
        } else {
            Ok(self.value)
        }
    }
}

// Derives would demand the bounds of `U` as well.
impl<U> Clone for DurationOption<U> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<U> Copy for DurationOption<U> {}

impl<U> PartialEq for DurationOption<U> {
    fn eq(&self, other: &Self) -> bool {
        self.value == other.value
    }
}

impl<U> fmt::Debug for DurationOption<U> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.value)
    }
}

/// The longest duration an option takes: ten years. Longer ones are
/// surely mistakes, and would overflow clocks and deadlines computed from
/// them (`now + 4 × resend_interval`).
pub const LONGEST: Duration = Duration::from_secs(3650 * 86_400);

impl<'de, U: Unit> Deserialize<'de> for DurationOption<U> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(DurationVisitor::<U>(PhantomData))
    }
}

struct DurationVisitor<U>(PhantomData<U>);

impl<U: Unit> DurationVisitor<U> {
    fn number<E: serde::de::Error>(
        number: f64,
        written: &dyn fmt::Display,
    ) -> Result<DurationOption<U>, E> {
        let secs = number * U::ONE.as_secs_f64();
        if !(secs.is_finite() && secs >= 0.0) {
            return Err(E::custom(format!(
                "invalid duration {written}: use a number of {} (0 or more) or a string with units, \
                 e.g. \"30s\", \"5m\", \"1h30m\", \"7d\"",
                U::NAME
            )));
        }
        Self::checked(Duration::from_secs_f64(
            secs.min(LONGEST.as_secs_f64() * 2.0),
        ))
    }

    fn checked<E: serde::de::Error>(value: Duration) -> Result<DurationOption<U>, E> {
        if value > LONGEST {
            return Err(E::custom("duration too long: at most 3650d (ten years)"));
        }
        Ok(DurationOption::new(value))
    }
}

impl<U: Unit> serde::de::Visitor<'_> for DurationVisitor<U> {
    type Value = DurationOption<U>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "a duration: a number of {} or a string with units, e.g. \"30s\", \"5m\", \"1h30m\", \"7d\"",
            U::NAME
        )
    }

    fn visit_i64<E: serde::de::Error>(self, number: i64) -> Result<Self::Value, E> {
        Self::number(number as f64, &number)
    }

    fn visit_u64<E: serde::de::Error>(self, number: u64) -> Result<Self::Value, E> {
        Self::number(number as f64, &number)
    }

    fn visit_f64<E: serde::de::Error>(self, number: f64) -> Result<Self::Value, E> {
        Self::number(number, &format_args!("{number:e}"))
    }

    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Self::Value, E> {
        match text.trim().parse::<f64>() {
            Ok(number) => Self::number(number, &format_args!("`{text}`")),
            Err(_) => Self::checked(parse_duration(text).map_err(E::custom)?),
        }
    }
}

impl<U: Unit> Serialize for DurationOption<U> {
    /// Whole hours and days as `"1h"`, `"7d"` (as users write long
    /// durations); anything else as a plain number of the option's unit.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let secs = self.value.as_secs();
        let whole_secs = self.value.subsec_nanos() == 0;
        if whole_secs && secs >= 3600 && secs.is_multiple_of(86_400) {
            serializer.serialize_str(&format!("{}d", secs / 86_400))
        } else if whole_secs && secs >= 3600 && secs.is_multiple_of(3600) {
            serializer.serialize_str(&format!("{}h", secs / 3600))
        } else {
            let units = self.value.as_secs_f64() / U::ONE.as_secs_f64();
            if units.fract() == 0.0 && units < u64::MAX as f64 {
                serializer.serialize_u64(units as u64)
            } else {
                serializer.serialize_f64(units)
            }
        }
    }
}

impl<U: Unit> JsonSchema for DurationOption<U> {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": ["number", "string"],
            "format": "duration",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_combinations() {
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("15m").unwrap(), Duration::from_secs(900));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("7d").unwrap(), Duration::from_secs(604_800));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert!(
            parse_duration("1x")
                .unwrap_err()
                .contains("unknown unit `x`")
        );
        assert!(parse_duration("h").is_err());
        assert!(parse_duration("").is_err());
    }
}
