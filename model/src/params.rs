//! How a fault is applied beyond its kind, and the typed values its parameters take: the
//! [`Layer`] of a Perseus host a fault hits, the [`Scope`] of packets a loss drops, and a
//! bandwidth [`Rate`]. Each is parsed once from its text (chaos's options, scenario fields)
//! and printed back the same way; a misspelt value fails where it is read, naming the choices.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A text that is not one of a closed set of words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} {got:?} is not one of {choices}")]
pub struct ParseChoiceError {
    pub what: &'static str,
    pub got: String,
    pub choices: String,
}

/// Reads and prints a closed set of words (`host`, `acceptor`, `node`).
macro_rules! words {
    ($ty:ident, $what:literal, { $($variant:ident = $word:literal),+ $(,)? }) => {
        impl $ty {
            /// Every value, in order.
            pub const ALL: &'static [$ty] = &[$($ty::$variant),+];

            /// The word for it.
            pub fn name(self) -> &'static str {
                match self { $($ty::$variant => $word),+ }
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }

        impl FromStr for $ty {
            type Err = ParseChoiceError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                $ty::ALL.iter().copied().find(|v| v.name() == s).ok_or_else(|| ParseChoiceError {
                    what: $what,
                    got: s.to_string(),
                    choices: $ty::ALL.iter().map(|v| v.name()).collect::<Vec<_>>().join(", "),
                })
            }
        }

        impl From<$ty> for String {
            fn from(v: $ty) -> String {
                v.name().to_string()
            }
        }

        impl TryFrom<String> for $ty {
            type Error = ParseChoiceError;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                s.parse()
            }
        }
    };
}

/// Which part of a Perseus host a layered fault hits (`--layer`, a step's `layer`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum Layer {
    /// The whole host (every container).
    #[default]
    Host,
    /// Only the Redis acceptor `aN`.
    Acceptor,
    /// Only the node `pN`.
    Node,
}
words!(Layer, "layer", { Host = "host", Acceptor = "acceptor", Node = "node" });

/// Which packets a loss drops (`--scope`, a step's `scope`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum Scope {
    /// Packets to and from the other hosts of the system.
    #[default]
    Peers,
    /// Every packet that enters or leaves the namespace (clients too; loopback excepted).
    All,
}
words!(Scope, "scope", { Peers = "peers", All = "all" });

/// The units tc takes for a rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RateUnit {
    Bit,
    Kbit,
    Mbit,
    Gbit,
    Bps,
    Kbps,
    Mbps,
}
words!(RateUnit, "rate unit", {
    Bit = "bit", Kbit = "kbit", Mbit = "mbit", Gbit = "gbit", Bps = "bps", Kbps = "kbps",
    Mbps = "mbps",
});

/// A bandwidth in tc's form (`256kbit`, `1.5mbit`): above zero, exact to a thousandth.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rate {
    /// The number times 1000.
    pub thousandths: u64,
    pub unit: RateUnit,
}

impl Rate {
    pub const fn new(whole: u64, unit: RateUnit) -> Rate {
        Rate {
            thousandths: whole * 1000,
            unit,
        }
    }
}

/// A text that is not a rate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseRateError {
    #[error("{0:?} is not a rate like 256kbit or 10mbit")]
    NotARate(String),
    #[error("{0:?}: the rate must be above zero")]
    Zero(String),
    #[error("{0:?}: unit must be bit, kbit, mbit, gbit, bps, kbps or mbps")]
    Unit(String),
}

impl FromStr for Rate {
    type Err = ParseRateError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        let digits = text.trim_end_matches(|c: char| c.is_ascii_alphabetic());
        let number: f64 = digits
            .parse()
            .map_err(|_| ParseRateError::NotARate(text.to_string()))?;
        let unit: RateUnit = text[digits.len()..]
            .parse()
            .map_err(|_| ParseRateError::Unit(text.to_string()))?;
        if !number.is_finite() || number > 1e12 {
            return Err(ParseRateError::NotARate(text.to_string()));
        }
        let thousandths = (number * 1000.0).round();
        if thousandths < 1.0 {
            return Err(ParseRateError::Zero(text.to_string()));
        }
        Ok(Rate {
            thousandths: thousandths as u64,
            unit,
        })
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (whole, part) = (self.thousandths / 1000, self.thousandths % 1000);
        if part == 0 {
            write!(f, "{whole}{}", self.unit)
        } else {
            let frac = format!("{part:03}");
            write!(f, "{whole}.{}{}", frac.trim_end_matches('0'), self.unit)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_round_trip_and_name_the_choices() {
        assert_eq!("acceptor".parse::<Layer>(), Ok(Layer::Acceptor));
        assert_eq!(Layer::Node.to_string(), "node");
        let err = "redis".parse::<Layer>().unwrap_err().to_string();
        let names: Vec<&str> = Layer::ALL.iter().map(|l| l.name()).collect();
        assert_eq!(
            err,
            format!("layer \"redis\" is not one of {}", names.join(", "))
        );
        assert_eq!("all".parse::<Scope>(), Ok(Scope::All));
        assert!("every".parse::<Scope>().is_err());
        assert_eq!(serde_json::to_string(&Scope::All).unwrap(), "\"all\"");
    }

    #[test]
    fn rates() {
        for text in ["256kbit", "10mbit", "1.5mbit", "2gbit", "800bps"] {
            assert_eq!(text.parse::<Rate>().unwrap().to_string(), text);
        }
        assert_eq!(
            "256kbit".parse::<Rate>(),
            Ok(Rate::new(256, RateUnit::Kbit))
        );
        for bad in ["fast", "10furlongs", "0kbit", "kbit", "-3kbit", ""] {
            assert!(bad.parse::<Rate>().is_err(), "{bad}");
        }
    }
}
