//! Durations as flights write them: `90s`, `30m`, `2h`, `1d`, or combined (`1h30m`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration(u64);

impl Duration {
    pub const fn from_secs(secs: u64) -> Self {
        Self(secs)
    }

    pub const fn as_secs(self) -> u64 {
        self.0
    }

    pub fn as_std(self) -> std::time::Duration {
        std::time::Duration::from_secs(self.0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("a duration is a number with a unit (s, m, h or d), such as `90s`, `30m` or `2h`")]
    Malformed,
    #[error("`{0}` is not a time unit: use s, m, h or d")]
    UnknownUnit(String),
    #[error("a duration must be longer than zero")]
    Zero,
    #[error("that duration is too long")]
    Overflow,
}

impl FromStr for Duration {
    type Err = ParseError;

    fn from_str(text: &str) -> Result<Self, ParseError> {
        let mut rest = text.trim();
        if rest.is_empty() {
            return Err(ParseError::Malformed);
        }
        let mut total: u64 = 0;
        while !rest.is_empty() {
            let digits = rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len());
            if digits == 0 {
                return Err(ParseError::Malformed);
            }
            let amount: u64 = rest[..digits].parse().map_err(|_| ParseError::Overflow)?;
            rest = &rest[digits..];
            let unit_len = rest
                .find(|c: char| c.is_ascii_digit())
                .unwrap_or(rest.len());
            let unit = &rest[..unit_len];
            rest = &rest[unit_len..];
            let scale = unit_seconds(unit)?;
            total = amount
                .checked_mul(scale)
                .and_then(|secs| total.checked_add(secs))
                .ok_or(ParseError::Overflow)?;
        }
        if total == 0 {
            return Err(ParseError::Zero);
        }
        Ok(Self(total))
    }
}

fn unit_seconds(unit: &str) -> Result<u64, ParseError> {
    match unit {
        "" => Err(ParseError::Malformed),
        "s" | "sec" | "secs" => Ok(1),
        "m" | "min" | "mins" => Ok(60),
        "h" | "hr" | "hrs" => Ok(3600),
        "d" => Ok(86_400),
        other => Err(ParseError::UnknownUnit(other.to_owned())),
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0;
        for (unit, size) in [("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)] {
            if rest >= size {
                write!(f, "{}{unit}", rest / size)?;
                rest %= size;
            }
        }
        if self.0 == 0 {
            f.write_str("0s")?;
        }
        Ok(())
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_combinations() {
        assert_eq!("90s".parse(), Ok(Duration(90)));
        assert_eq!("30m".parse(), Ok(Duration(1800)));
        assert_eq!("2h".parse(), Ok(Duration(7200)));
        assert_eq!("1h30m".parse(), Ok(Duration(5400)));
        assert_eq!("1d".parse(), Ok(Duration(86_400)));
    }

    #[test]
    fn rejects_what_is_not_a_duration() {
        assert_eq!("soon".parse::<Duration>(), Err(ParseError::Malformed));
        assert_eq!("90".parse::<Duration>(), Err(ParseError::Malformed));
        assert_eq!(
            "5w".parse::<Duration>(),
            Err(ParseError::UnknownUnit("w".into()))
        );
        assert_eq!("0s".parse::<Duration>(), Err(ParseError::Zero));
        assert_eq!(
            "99999999999999999999s".parse::<Duration>(),
            Err(ParseError::Overflow)
        );
    }

    #[test]
    fn displays_in_the_largest_units() {
        assert_eq!(Duration(5400).to_string(), "1h30m");
        assert_eq!(Duration(90).to_string(), "1m30s");
        assert_eq!(Duration(1800).to_string(), "30m");
    }
}
