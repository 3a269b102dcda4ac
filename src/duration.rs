//! Human durations (`90s`, `15m`, `1h`, `7d`, `1h30m`), for options and
//! command-line flags where seconds would be unreadable (`--new-since 7d`).

use std::time::Duration;

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
            other => {
                return Err(format!(
                    "invalid duration `{text}`: unknown unit `{other}` (use ms, s, m, h, d or w)"
                ));
            }
        };
        total += unit
            .checked_mul(
                u32::try_from(number)
                    .map_err(|_| format!("invalid duration `{text}`: too large"))?,
            )
            .ok_or_else(|| format!("invalid duration `{text}`: too large"))?;
        rest = &rest[unit_len..];
    }
    Ok(total)
}

/// A non-negative number of seconds.
pub fn seconds(value: f64, name: &str) -> Result<Duration, BuildError> {
    if value.is_finite() && value >= 0.0 {
        Ok(Duration::from_secs_f64(value))
    } else {
        Err(BuildError::new(format!(
            "`{name}` must be a number of seconds, 0 or more"
        )))
    }
}

/// A positive number of seconds.
pub fn positive(value: f64, name: &str) -> Result<Duration, BuildError> {
    match seconds(value, name)? {
        d if d.is_zero() => Err(BuildError::new(format!("`{name}` must be more than 0"))),
        d => Ok(d),
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
