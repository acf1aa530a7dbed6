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
//! The result is a grudge: per host, the peers whose every packet it drops (`cut`) and the
//! peers whose connections it refuses (`refuse`); netfault.rs turns it into iptables rules.

use std::collections::BTreeMap;

use anyhow::{bail, Result};

use crate::host::HostName;

/// What one host refuses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grudge {
    /// Every packet from these hosts is dropped (both sides do it: a symmetric cut).
    pub cut: Vec<HostName>,
    /// Connections these hosts open to this one are dropped (the other way still works).
    pub refuse: Vec<HostName>,
}

/// The named shapes, for help texts and errors.
pub const NAMED: &[&str] = &["halves", "bridge", "majorities-ring"];

/// A partition: the grudge of every host that has one.
pub type Shape = BTreeMap<HostName, Grudge>;

/// Parses `"a1 | a2 a3"` or a named shape against the system's `hosts` (in order).
pub fn parse(spec: &str, hosts: &[HostName]) -> Result<Shape> {
    let spec = spec.trim();
    match spec {
        "halves" => {
            let k = hosts.len() / 2;
            groups(&[hosts[..k].to_vec(), hosts[k..].to_vec()], hosts)
        }
        "bridge" => bridge(hosts),
        "majorities-ring" => ring(hosts),
        _ if spec.contains('|') => {
            let mut gs = Vec::new();
            for part in spec.split('|') {
                let mut g = Vec::new();
                for word in part.split_whitespace() {
                    let h: HostName = word.parse()?;
                    if !hosts.contains(&h) {
                        bail!("{h} is not a host of this system (hosts: {})", names(hosts));
                    }
                    if gs
                        .iter()
                        .chain(std::iter::once(&g))
                        .any(|x: &Vec<_>| x.contains(&h))
                    {
                        bail!("{h} appears twice in the partition {spec:?}");
                    }
                    g.push(h);
                }
                if g.is_empty() {
                    bail!("partition {spec:?} has an empty side");
                }
                gs.push(g);
            }
            groups(&gs, hosts)
        }
        _ => bail!(
            "unknown partition {spec:?}: groups like \"a1 | a2 a3\" or one of {}",
            NAMED.join(", ")
        ),
    }
}

fn names(hosts: &[HostName]) -> String {
    hosts
        .iter()
        .map(|h| h.to_string())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Hosts in different groups cut each other; hosts in no group stay whole (they see all).
fn groups(gs: &[Vec<HostName>], hosts: &[HostName]) -> Result<Shape> {
    if gs.len() < 2 || gs.iter().any(Vec::is_empty) {
        bail!(
            "a partition needs two non-empty sides (hosts: {})",
            names(hosts)
        );
    }
    let mut shape = Shape::new();
    for (i, g) in gs.iter().enumerate() {
        for h in g {
            let cut: Vec<HostName> = gs
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .flat_map(|(_, o)| o.iter().copied())
                .collect();
            shape.insert(
                *h,
                Grudge {
                    cut,
                    refuse: Vec::new(),
                },
            );
        }
    }
    Ok(shape)
}

fn bridge(hosts: &[HostName]) -> Result<Shape> {
    if hosts.len() < 3 || hosts.len().is_multiple_of(2) {
        bail!(
            "bridge needs an odd number of hosts, at least 3 (hosts: {})",
            names(hosts)
        );
    }
    let mid = hosts.len() / 2;
    groups(&[hosts[..mid].to_vec(), hosts[mid + 1..].to_vec()], hosts)
}

fn ring(hosts: &[HostName]) -> Result<Shape> {
    let n = hosts.len();
    let mut shape = Shape::new();
    match n {
        3 => {
            for i in 0..n {
                // Host i+2 refuses what host i opens: i reaches only {i, i+1}.
                shape
                    .entry(hosts[(i + 2) % n])
                    .or_default()
                    .refuse
                    .push(hosts[i]);
            }
        }
        5 => {
            for i in 0..n {
                let cut = vec![hosts[(i + 2) % n], hosts[(i + 3) % n]];
                shape.insert(
                    hosts[i],
                    Grudge {
                        cut,
                        refuse: Vec::new(),
                    },
                );
            }
        }
        _ => bail!("majorities-ring is defined for 3 or 5 hosts, not {n}"),
    }
    Ok(shape)
}

/// Who each host reaches under the shape (itself included): for tests and the docs.
pub fn reaches(shape: &Shape, hosts: &[HostName], from: HostName) -> Vec<HostName> {
    hosts
        .iter()
        .copied()
        .filter(|to| {
            if *to == from {
                return true;
            }
            let g_to = shape.get(to).cloned().unwrap_or_default();
            let g_from = shape.get(&from).cloned().unwrap_or_default();
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

    #[test]
    fn groups_cut_across() {
        let h = hs(3);
        let s = parse("a1 | a2 a3", &h).unwrap();
        assert_eq!(reaches(&s, &h, h[0]), vec![h[0]]);
        assert_eq!(reaches(&s, &h, h[1]), vec![h[1], h[2]]);
        assert_eq!(s, parse("halves", &h).unwrap());
    }

    #[test]
    fn bridge_sees_both_sides() {
        let h = hs(3);
        let s = parse("bridge", &h).unwrap();
        assert_eq!(reaches(&s, &h, h[1]), h);
        assert_eq!(reaches(&s, &h, h[0]), vec![h[0], h[1]]);
        assert_eq!(reaches(&s, &h, h[2]), vec![h[1], h[2]]);
    }

    #[test]
    fn majorities_ring_gives_every_host_a_different_majority() {
        for n in [3u8, 5] {
            let h = hs(n);
            let s = parse("majorities-ring", &h).unwrap();
            let seen: Vec<Vec<HostName>> = h.iter().map(|&x| reaches(&s, &h, x)).collect();
            for (i, v) in seen.iter().enumerate() {
                assert!(v.len() > h.len() / 2, "{n}: host {i} sees {v:?}");
                for w in &seen[i + 1..] {
                    assert_ne!(v, w);
                }
            }
        }
        assert!(parse("majorities-ring", &hs(4)).is_err());
    }

    #[test]
    fn bad_shapes_are_refused_with_the_reason() {
        let h = hs(3);
        let err = |s: &str| format!("{:#}", parse(s, &h).unwrap_err());
        assert!(err("a1 | a1 a2").contains("twice"));
        assert!(err("a1 |").contains("empty side"));
        assert!(err("a1 | e2").contains("not a host"));
        assert!(err("a1 | a9").contains("unknown host"));
        assert!(err("triangle").contains("unknown partition"));
    }
}
