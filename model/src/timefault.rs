//! The parameters of the faults of time and distance: per-link delays (`delay-links`: one-way
//! delays between pairs of hosts, the shape of a multi-region deployment) and clock faults
//! (`clock`: an offset, a step or a drift of a host's wall clock), parsed and printed in one
//! place so that chaos, lab's scenario files and the soak write them the same way.
//!
//! Text forms: links `a1-a2=11ms a1-a3=85ms,5ms a2-a3=95ms` (pairs of hosts of one system,
//! each with its one-way delay and an optional jitter); a clock fault `offset=+300s`,
//! `jump=-60s` or `drift=+1000ppm` (offsets and steps in s, m, h, d or y; a drift in parts
//! per million of the true rate).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use crate::host::HostName;
use crate::span::Span;

/// A text that is not a set of links or not a clock fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseTimeFaultError {
    #[error("{0:?} is not HOST-HOST=DELAY[,JITTER] (e.g. a1-a2=11ms or a1-a3=85ms,5ms)")]
    LinkForm(String),
    #[error("link {0:?}: {1}")]
    LinkHost(String, String),
    #[error("link {0:?} joins a host to itself")]
    SelfLink(String),
    #[error("links join hosts of one system ({0} and {1} are not)")]
    Systems(String, String),
    #[error("the link {0} is given twice")]
    Twice(String),
    #[error("link {0:?}: {1:?} is not a time like 11ms, 1s or 200us")]
    LinkTime(String, String),
    #[error("link {0:?}: the jitter is larger than the delay")]
    JitterAboveDelay(String),
    #[error("no link given (e.g. \"a1-a2=11ms a1-a3=85ms a2-a3=95ms\")")]
    NoLinks,
    #[error(
        "{0:?} is not a clock fault: offset=+300s, jump=-60s or drift=+1000ppm \
         (offsets and steps in s, m, h, d or y)"
    )]
    ClockForm(String),
    #[error("{0:?}: a clock fault of 0 changes nothing")]
    ClockZero(String),
}

/// One link: a one-way delay (and jitter) each way between two hosts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Link {
    pub a: HostName,
    pub b: HostName,
    pub delay: Span,
    pub jitter: Option<Span>,
}

impl fmt::Display for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}={}", self.a, self.b, self.delay)?;
        if let Some(j) = self.jitter {
            write!(f, ",{j}")?;
        }
        Ok(())
    }
}

impl FromStr for Link {
    type Err = ParseTimeFaultError;
    fn from_str(text: &str) -> Result<Link, Self::Err> {
        let form = || ParseTimeFaultError::LinkForm(text.to_string());
        let (pair, times) = text.split_once('=').ok_or_else(form)?;
        let (a, b) = pair.split_once('-').ok_or_else(form)?;
        let host = |h: &str| {
            h.trim()
                .parse::<HostName>()
                .map_err(|e| ParseTimeFaultError::LinkHost(text.to_string(), e.to_string()))
        };
        let (a, b) = (host(a)?, host(b)?);
        if a == b {
            return Err(ParseTimeFaultError::SelfLink(text.to_string()));
        }
        if a.system != b.system {
            return Err(ParseTimeFaultError::Systems(a.to_string(), b.to_string()));
        }
        let time = |t: &str| {
            t.trim()
                .parse::<Span>()
                .map_err(|_| ParseTimeFaultError::LinkTime(text.to_string(), t.to_string()))
        };
        let (delay, jitter) = match times.split_once(',') {
            Some((d, j)) => (time(d)?, Some(time(j)?)),
            None => (time(times)?, None),
        };
        if jitter.is_some_and(|j| j > delay) {
            return Err(ParseTimeFaultError::JitterAboveDelay(text.to_string()));
        }
        // One spelling per link: the lower-numbered host first.
        let (a, b) = if a.n <= b.n { (a, b) } else { (b, a) };
        Ok(Link {
            a,
            b,
            delay,
            jitter,
        })
    }
}

/// Per-link one-way delays between hosts of one system (at least one link).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Links(Cow<'static, [Link]>);

impl Links {
    /// The CASPaxos paper's three regions (West US 2, West Central US, Southeast Asia: RTTs
    /// 21.8, 169 and 189.2 ms), one-way, on the Perseus hosts.
    pub const EXAMPLE: Links = Links(Cow::Borrowed(&[
        Link {
            a: HostName::perseus(1),
            b: HostName::perseus(2),
            delay: Span::from_micros(10_900),
            jitter: None,
        },
        Link {
            a: HostName::perseus(1),
            b: HostName::perseus(3),
            delay: Span::from_micros(84_500),
            jitter: None,
        },
        Link {
            a: HostName::perseus(2),
            b: HostName::perseus(3),
            delay: Span::from_micros(94_600),
            jitter: None,
        },
    ]));

    pub fn links(&self) -> &[Link] {
        &self.0
    }

    /// Per host, the delay of its packets to each peer it has a link with (what that host's
    /// delayer holds its outgoing packets for).
    pub fn per_host(&self) -> BTreeMap<HostName, Vec<(HostName, Span, Option<Span>)>> {
        let mut out: BTreeMap<HostName, Vec<_>> = BTreeMap::new();
        for l in self.0.iter() {
            out.entry(l.a).or_default().push((l.b, l.delay, l.jitter));
            out.entry(l.b).or_default().push((l.a, l.delay, l.jitter));
        }
        out
    }

    /// The system whose hosts the links join.
    pub fn system(&self) -> crate::host::System {
        self.0[0].a.system
    }
}

impl fmt::Display for Links {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        f.write_str(&parts.join(" "))
    }
}

impl FromStr for Links {
    type Err = ParseTimeFaultError;
    fn from_str(text: &str) -> Result<Links, Self::Err> {
        let mut links: Vec<Link> = Vec::new();
        for word in text.split_whitespace() {
            let link: Link = word.parse()?;
            if let Some(first) = links.first() {
                if first.a.system != link.a.system {
                    return Err(ParseTimeFaultError::Systems(
                        first.a.to_string(),
                        link.a.to_string(),
                    ));
                }
            }
            if links.iter().any(|l| (l.a, l.b) == (link.a, link.b)) {
                return Err(ParseTimeFaultError::Twice(format!("{}-{}", link.a, link.b)));
            }
            links.push(link);
        }
        if links.is_empty() {
            return Err(ParseTimeFaultError::NoLinks);
        }
        Ok(Links(Cow::Owned(links)))
    }
}

/// What a clock fault does to a host's wall clock (its monotonic clock stays true, as on a
/// machine whose wall clock is wrong).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClockShift {
    /// The processes start again with their wall clock this many seconds off.
    Offset(i64),
    /// The running processes' wall clock steps by this many seconds now (an NTP step).
    Jump(i64),
    /// The processes start again with their wall clock running this many parts per million
    /// fast (negative: slow).
    Drift(i32),
}

/// Seconds per unit of an offset or a step.
const UNITS: &[(&str, i64)] = &[
    ("s", 1),
    ("m", 60),
    ("h", 3600),
    ("d", 86_400),
    ("y", 31_536_000),
];

/// `+300s` → 300, `-1y` → -31536000.
fn parse_seconds(text: &str) -> Option<i64> {
    let t = text.trim();
    let (n, unit) = UNITS
        .iter()
        .find_map(|(u, s)| t.strip_suffix(u).map(|n| (n, *s)))?;
    let n: i64 = n.strip_prefix('+').unwrap_or(n).parse().ok()?;
    n.checked_mul(unit)
}

fn signed(n: i64) -> String {
    if n >= 0 {
        format!("+{n}")
    } else {
        n.to_string()
    }
}

impl ClockShift {
    /// libfaketime's spec for a process started under this fault, given the offset already
    /// in force (seconds): `+300`, `+0 x1.001000`.
    pub fn faketime_spec(self, current_offset: i64) -> String {
        match self {
            ClockShift::Offset(s) => signed(s),
            ClockShift::Jump(s) => signed(current_offset.saturating_add(s)),
            ClockShift::Drift(ppm) => format!(
                "{} x{:.6}",
                signed(current_offset),
                1.0 + f64::from(ppm) / 1e6
            ),
        }
    }
}

impl fmt::Display for ClockShift {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClockShift::Offset(s) => write!(f, "offset={}s", signed(*s)),
            ClockShift::Jump(s) => write!(f, "jump={}s", signed(*s)),
            ClockShift::Drift(ppm) => write!(f, "drift={}ppm", signed(i64::from(*ppm))),
        }
    }
}

impl FromStr for ClockShift {
    type Err = ParseTimeFaultError;
    fn from_str(text: &str) -> Result<ClockShift, Self::Err> {
        let form = || ParseTimeFaultError::ClockForm(text.to_string());
        let (what, value) = text.trim().split_once('=').ok_or_else(form)?;
        let shift = match what.trim() {
            "offset" => ClockShift::Offset(parse_seconds(value).ok_or_else(form)?),
            "jump" => ClockShift::Jump(parse_seconds(value).ok_or_else(form)?),
            "drift" => {
                let v = value.trim();
                let n = v.strip_suffix("ppm").ok_or_else(form)?;
                let n: i32 = n
                    .strip_prefix('+')
                    .unwrap_or(n)
                    .parse()
                    .map_err(|_| form())?;
                // Slower than stopped, or more than a thousand times fast, is not a drift.
                if !(-999_999..=999_000_000).contains(&n) {
                    return Err(form());
                }
                ClockShift::Drift(n)
            }
            _ => return Err(form()),
        };
        if matches!(
            shift,
            ClockShift::Offset(0) | ClockShift::Jump(0) | ClockShift::Drift(0)
        ) {
            return Err(ParseTimeFaultError::ClockZero(text.to_string()));
        }
        Ok(shift)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_round_trip_and_split_per_host() {
        let l: Links = "a1-a2=11ms a3-a1=85ms,5ms a2-a3=95ms".parse().unwrap();
        assert_eq!(l.to_string(), "a1-a2=11ms a1-a3=85ms,5ms a2-a3=95ms");
        let per = l.per_host();
        let a1 = &per[&HostName::perseus(1)];
        assert_eq!(a1.len(), 2);
        assert_eq!(a1[1].0, HostName::perseus(3));
        assert_eq!(a1[1].2, Some(Span::from_millis(5)));
        assert_eq!(l.system(), crate::host::System::Perseus);
        for bad in [
            "",
            "a1-a2",
            "a1=5ms",
            "a1-a1=5ms",
            "a1-e2=5ms",
            "a1-a2=5ms e1-e2=5ms",
            "a1-a2=soon",
            "a1-a2=5ms,10ms",
            "a1-a2=5ms a2-a1=6ms",
            "a1-a9=5ms",
        ] {
            assert!(bad.parse::<Links>().is_err(), "{bad}");
        }
    }

    #[test]
    fn clock_shifts() {
        for (text, shift, spec) in [
            ("offset=+300s", ClockShift::Offset(300), "+300"),
            ("offset=-2m", ClockShift::Offset(-120), "-120"),
            (
                "offset=+200y",
                ClockShift::Offset(200 * 31_536_000),
                "+6307200000",
            ),
            ("jump=-60s", ClockShift::Jump(-60), "+240"),
            ("drift=+1000ppm", ClockShift::Drift(1000), "+300 x1.001000"),
            ("drift=-500ppm", ClockShift::Drift(-500), "+300 x0.999500"),
        ] {
            let s: ClockShift = text.parse().unwrap();
            assert_eq!(s, shift);
            assert_eq!(s.faketime_spec(300), spec);
            let again: ClockShift = s.to_string().parse().unwrap();
            assert_eq!(again, s);
        }
        assert_eq!(ClockShift::Offset(300).to_string(), "offset=+300s");
        for bad in [
            "offset",
            "offset=300",
            "offset=+0s",
            "jump=soon",
            "drift=5",
            "drift=-1000000ppm",
            "skew=+3s",
            "offset=+99999999999999999y",
        ] {
            assert!(bad.parse::<ClockShift>().is_err(), "{bad}");
        }
    }
}
