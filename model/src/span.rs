//! Spans of time as people write them in scenario files, expectations and fault parameters
//! (`10s`, `500ms`, `2m`, `1.5s`, `200us`; a bare number is seconds), parsed in one place.
//! [`Span`] prints itself in the largest unit that keeps it exact (`50ms`, `2s`, `200us`),
//! which is also a form tc accepts for a delay.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A text that is not a span of time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseSpanError {
    #[error("{0:?} is not a duration like 10s, 500ms or 2m")]
    NotANumber(String),
    #[error("{text:?}: unknown unit {unit:?} (us, ms, s or m)")]
    UnknownUnit { text: String, unit: String },
}

/// Parses `10s`, `500ms`, `2m`, `1.5s`, `200us` or `7` (seconds).
pub fn parse_duration(text: &str) -> Result<Duration, ParseSpanError> {
    let text = text.trim();
    let (number, unit) = text
        .find(|c: char| c.is_ascii_alphabetic())
        .map(|i| text.split_at(i))
        .unwrap_or((text, "s"));
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| ParseSpanError::NotANumber(text.to_string()))?;
    let seconds = match unit {
        "us" => value / 1_000_000.0,
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        _ => {
            return Err(ParseSpanError::UnknownUnit {
                text: text.to_string(),
                unit: unit.to_string(),
            })
        }
    };
    if !seconds.is_finite() || seconds < 0.0 {
        return Err(ParseSpanError::NotANumber(text.to_string()));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// A span of time written as text (`50ms`); serde reads and writes the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct Span(pub Duration);

impl Span {
    pub const fn from_millis(ms: u64) -> Span {
        Span(Duration::from_millis(ms))
    }

    pub const fn from_micros(us: u64) -> Span {
        Span(Duration::from_micros(us))
    }

    /// Whole milliseconds.
    pub fn ms(self) -> i64 {
        i64::try_from(self.0.as_millis()).unwrap_or(i64::MAX)
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let us = self.0.as_micros();
        if us.is_multiple_of(1_000_000) {
            write!(f, "{}s", us / 1_000_000)
        } else if us.is_multiple_of(1000) {
            write!(f, "{}ms", us / 1000)
        } else {
            write!(f, "{us}us")
        }
    }
}

impl FromStr for Span {
    type Err = ParseSpanError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_duration(s).map(Span)
    }
}

impl From<Span> for String {
    fn from(s: Span) -> String {
        s.to_string()
    }
}

impl TryFrom<String> for Span {
    type Error = ParseSpanError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("200us").unwrap(), Duration::from_micros(200));
        assert_eq!(parse_duration("7").unwrap(), Duration::from_secs(7));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5h").is_err());
        assert!(parse_duration("-1s").is_err());
    }

    #[test]
    fn prints_in_the_largest_exact_unit() {
        for (text, shown) in [
            ("50ms", "50ms"),
            ("2s", "2s"),
            ("1.5s", "1500ms"),
            ("200us", "200us"),
            ("2m", "120s"),
        ] {
            assert_eq!(text.parse::<Span>().unwrap().to_string(), shown);
        }
    }
}
