//! Partition shapes: which host refuses traffic from which. A shape is written as groups
//! (`"a1 | a2 a3"`: hosts in different groups cannot talk at all) or named:
//!
//! - `halves`: the first ⌊n/2⌋ hosts against the rest (`a1 | a2 a3`, `a1 a2 | a3 a4 a5`);
//! - `bridge`: two halves that cannot talk, and the middle host talking to both
//!   (`a1 | a3` with a2 the bridge; `a1 a2 | a4 a5` with a3);
//! - `majorities-ring`: every host reaches a majority, no two hosts the same one. For 5 hosts
//!   each talks to its two ring neighbours (symmetric). For 3 hosts no symmetric cut does it, so
//!   the ring is directed at the connection level: host i reaches hosts i and i+1, and host
//!   i+2 refuses the connections host i opens (while host i still accepts those of i+2). On
//!   Perseus that is "node pi reaches acceptors ai and a(i+1)": three different majorities.
//!
//! [`Shape`] is the parsed text (a misspelt host or name fails where the text is read: chaos's
//! command line, a scenario file); [`Shape::grudges`] lays it over a system's hosts: per host,
//! the peers whose every packet it drops (`cut`) and the peers whose connections it refuses
//! (`refuse`). chaos turns a grudge into iptables rules. Pure: no I/O here.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::host::HostName;

/// A partition as written.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum Shape {
    /// Hosts in different groups cannot talk; hosts in no group see everyone.
    Groups(Vec<Vec<HostName>>),
    Halves,
    Bridge,
    MajoritiesRing,
}

/// A shape that cannot be, as text or over a system's hosts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShapeError {
    #[error(
        "unknown partition {0:?}: groups like \"a1 | a2 a3\" or one of halves, bridge, \
         majorities-ring"
    )]
    Unknown(String),
    #[error("partition {spec:?}: {source}")]
    Host {
        spec: String,
        source: crate::host::ParseHostError,
    },
    #[error("{host} appears twice in the partition {spec:?}")]
    Twice { host: HostName, spec: String },
    #[error("partition {0:?} has an empty side")]
    EmptySide(String),
    #[error("{host} is not a host of this system (hosts: {hosts})")]
    Foreign { host: HostName, hosts: String },
    #[error("{what} (hosts: {hosts})")]
    DoesNotFit { what: &'static str, hosts: String },
}

impl Shape {
    /// The named shapes, for help texts and errors.
    pub const NAMED: &'static [&'static str] = &["halves", "bridge", "majorities-ring"];

    /// The grudge of every host that has one, over the system's `hosts` (in order).
    pub fn grudges(&self, hosts: &[HostName]) -> Result<Grudges, ShapeError> {
        match self {
            Shape::Halves => {
                let k = hosts.len() / 2;
                groups(&[hosts[..k].to_vec(), hosts[k..].to_vec()], hosts)
            }
            Shape::Bridge => {
                if hosts.len() < 3 || hosts.len().is_multiple_of(2) {
                    return Err(ShapeError::DoesNotFit {
                        what: "bridge needs an odd number of hosts, at least 3",
                        hosts: names(hosts),
                    });
                }
                let mid = hosts.len() / 2;
                groups(&[hosts[..mid].to_vec(), hosts[mid + 1..].to_vec()], hosts)
            }
            Shape::MajoritiesRing => ring(hosts),
            Shape::Groups(gs) => {
                if let Some(&host) = gs.iter().flatten().find(|h| !hosts.contains(h)) {
                    return Err(ShapeError::Foreign {
                        host,
                        hosts: names(hosts),
                    });
                }
                groups(gs, hosts)
            }
        }
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Shape::Halves => f.write_str("halves"),
            Shape::Bridge => f.write_str("bridge"),
            Shape::MajoritiesRing => f.write_str("majorities-ring"),
            Shape::Groups(gs) => {
                let sides: Vec<String> = gs
                    .iter()
                    .map(|g| {
                        g.iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join(" ")
                    })
                    .collect();
                f.write_str(&sides.join(" | "))
            }
        }
    }
}

impl FromStr for Shape {
    type Err = ShapeError;
    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        let spec = spec.trim();
        match spec {
            "halves" => return Ok(Shape::Halves),
            "bridge" => return Ok(Shape::Bridge),
            "majorities-ring" => return Ok(Shape::MajoritiesRing),
            _ if !spec.contains('|') => return Err(ShapeError::Unknown(spec.to_string())),
            _ => {}
        }
        let mut gs: Vec<Vec<HostName>> = Vec::new();
        for part in spec.split('|') {
            let mut g = Vec::new();
            for word in part.split_whitespace() {
                let h: HostName = word.parse().map_err(|source| ShapeError::Host {
                    spec: spec.to_string(),
                    source,
                })?;
                if gs.iter().chain(std::iter::once(&g)).any(|x| x.contains(&h)) {
                    return Err(ShapeError::Twice {
                        host: h,
                        spec: spec.to_string(),
                    });
                }
                g.push(h);
            }
            if g.is_empty() {
                return Err(ShapeError::EmptySide(spec.to_string()));
            }
            gs.push(g);
        }
        Ok(Shape::Groups(gs))
    }
}

impl From<Shape> for String {
    fn from(s: Shape) -> String {
        s.to_string()
    }
}

impl TryFrom<String> for Shape {
    type Error = ShapeError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

/// What one host refuses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grudge {
    /// Every packet from these hosts is dropped (both sides do it: a symmetric cut).
    pub cut: Vec<HostName>,
    /// Connections these hosts open to this one are dropped (the other way still works).
    pub refuse: Vec<HostName>,
}

/// A partition laid over a system: the grudge of every host that has one.
pub type Grudges = BTreeMap<HostName, Grudge>;

fn names(hosts: &[HostName]) -> String {
    hosts
        .iter()
        .map(|h| h.to_string())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Hosts in different groups cut each other; hosts in no group stay whole (they see all).
fn groups(gs: &[Vec<HostName>], hosts: &[HostName]) -> Result<Grudges, ShapeError> {
    if gs.len() < 2 || gs.iter().any(Vec::is_empty) {
        return Err(ShapeError::DoesNotFit {
            what: "a partition needs two non-empty sides",
            hosts: names(hosts),
        });
    }
    let mut out = Grudges::new();
    for (i, g) in gs.iter().enumerate() {
        for h in g {
            let cut: Vec<HostName> = gs
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .flat_map(|(_, o)| o.iter().copied())
                .collect();
            out.insert(
                *h,
                Grudge {
                    cut,
                    refuse: Vec::new(),
                },
            );
        }
    }
    Ok(out)
}

fn ring(hosts: &[HostName]) -> Result<Grudges, ShapeError> {
    let n = hosts.len();
    let mut out = Grudges::new();
    match n {
        3 => {
            for i in 0..n {
                // Host i+2 refuses what host i opens: i reaches only {i, i+1}.
                out.entry(hosts[(i + 2) % n])
                    .or_default()
                    .refuse
                    .push(hosts[i]);
            }
        }
        5 => {
            for i in 0..n {
                let cut = vec![hosts[(i + 2) % n], hosts[(i + 3) % n]];
                out.insert(
                    hosts[i],
                    Grudge {
                        cut,
                        refuse: Vec::new(),
                    },
                );
            }
        }
        _ => {
            return Err(ShapeError::DoesNotFit {
                what: "majorities-ring is defined for 3 or 5 hosts",
                hosts: names(hosts),
            })
        }
    }
    Ok(out)
}

/// Who each host reaches under the grudges (itself included): for the events and the docs.
pub fn reaches(grudges: &Grudges, hosts: &[HostName], from: HostName) -> Vec<HostName> {
    hosts
        .iter()
        .copied()
        .filter(|to| {
            if *to == from {
                return true;
            }
            let g_to = grudges.get(to).cloned().unwrap_or_default();
            let g_from = grudges.get(&from).cloned().unwrap_or_default();
            // `from` opens a connection to `to`: `to` must not cut or refuse `from`, and
            // `from` must not cut `to` (the answers would be dropped).
            !g_to.cut.contains(&from) && !g_to.refuse.contains(&from) && !g_from.cut.contains(to)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hs(n: u8) -> Vec<HostName> {
        (1..=n).map(HostName::perseus).collect()
    }

    fn lay(spec: &str, hosts: &[HostName]) -> Result<Grudges, ShapeError> {
        spec.parse::<Shape>()?.grudges(hosts)
    }

    #[test]
    fn groups_cut_across() {
        let h = hs(3);
        let s = lay("a1 | a2 a3", &h).unwrap();
        assert_eq!(reaches(&s, &h, h[0]), vec![h[0]]);
        assert_eq!(reaches(&s, &h, h[1]), vec![h[1], h[2]]);
        assert_eq!(s, lay("halves", &h).unwrap());
        assert_eq!(
            "a1 |a2  a3".parse::<Shape>().unwrap().to_string(),
            "a1 | a2 a3"
        );
    }

    #[test]
    fn bridge_sees_both_sides() {
        let h = hs(3);
        let s = lay("bridge", &h).unwrap();
        assert_eq!(reaches(&s, &h, h[1]), h);
        assert_eq!(reaches(&s, &h, h[0]), vec![h[0], h[1]]);
        assert_eq!(reaches(&s, &h, h[2]), vec![h[1], h[2]]);
    }

    #[test]
    fn majorities_ring_gives_every_host_a_different_majority() {
        for n in [3u8, 5] {
            let h = hs(n);
            let s = lay("majorities-ring", &h).unwrap();
            let seen: Vec<Vec<HostName>> = h.iter().map(|&x| reaches(&s, &h, x)).collect();
            for (i, v) in seen.iter().enumerate() {
                assert!(v.len() > h.len() / 2, "{n}: host {i} sees {v:?}");
                for w in &seen[i + 1..] {
                    assert_ne!(v, w);
                }
            }
        }
        assert!(lay("majorities-ring", &hs(4)).is_err());
    }

    #[test]
    fn bad_shapes_are_refused_with_the_reason() {
        let h = hs(3);
        let err = |s: &str| lay(s, &h).unwrap_err().to_string();
        assert!(err("a1 | a1 a2").contains("twice"));
        assert!(err("a1 |").contains("empty side"));
        assert!(err("a1 | e2").contains("not a host of this system"));
        assert!(err("a1 | a9").contains("unknown host"));
        assert!(err("triangle").contains("unknown partition"));
        assert!(err("majorities-rnig").contains("unknown partition"));
    }
}
