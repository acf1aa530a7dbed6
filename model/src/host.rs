//! The hosts of the testbed. Each system runs three hosts on the `perseus` network:
//!
//! - Perseus: a host `aN` is the Redis acceptor container `aN` plus the node container `pN`
//!   that shares its network namespace;
//! - every other system: a host is its single server container (`eN` for etcd, which v2 and
//!   v3 share, `zN`, `jN`, ...: the letters are in [`System`]'s table).
//!
//! Faults act on a host as a whole. The first container of a host owns the network namespace
//! (isolation rules go there, health checks run there). A host name's number is also the
//! load generator's node column (`a1` and `e1` are `n1`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

pub use crate::system::System;

/// A text that names no host.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown host {0:?}: expected {hosts} or leader", hosts = every_host_range())]
pub struct ParseHostError(pub String);

/// `a1..a3, e1..e3, ...`: the hosts of every system that has its own.
fn every_host_range() -> String {
    System::ALL
        .iter()
        .filter(|s| s.cluster() == **s)
        .map(|s| format!("{0}1..{0}3", s.prefix()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A host name (`a1`, `e2`, ...): `system` is the system that owns the hosts
/// ([`System::cluster`]; etcd v3's hosts are etcd's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct HostName {
    pub system: System,
    /// 1-based.
    pub n: u8,
}

impl System {
    /// The hosts of the system, in order (etcd v3's are etcd's).
    pub fn hosts(self) -> [HostName; 3] {
        let system = self.cluster();
        [1, 2, 3].map(|n| HostName { system, n })
    }
}

impl HostName {
    pub const fn perseus(n: u8) -> Self {
        HostName {
            system: System::Perseus,
            n,
        }
    }

    pub const fn etcd(n: u8) -> Self {
        HostName {
            system: System::Etcd,
            n,
        }
    }

    /// The Compose services of the host; the first owns the network namespace.
    pub fn services(self) -> Vec<String> {
        self.system.services(self.n)
    }

    /// The load generator's node (0-based column index) this host serves.
    pub fn node_index(self) -> usize {
        usize::from(self.n).saturating_sub(1)
    }
}

impl fmt::Display for HostName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.system.prefix(), self.n)
    }
}

impl FromStr for HostName {
    type Err = ParseHostError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        System::ALL
            .iter()
            .flat_map(|sys| sys.hosts())
            .find(|h| h.to_string() == s)
            .ok_or_else(|| ParseHostError(s.to_string()))
    }
}

impl From<HostName> for String {
    fn from(h: HostName) -> String {
        h.to_string()
    }
}

impl TryFrom<String> for HostName {
    type Error = ParseHostError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

/// What a command or a scenario step names: a host, or `leader` (resolved against a system
/// when the action runs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum HostArg {
    Host(HostName),
    Leader,
}

impl HostArg {
    /// The host, when this names one.
    pub fn host(self) -> Option<HostName> {
        match self {
            HostArg::Host(h) => Some(h),
            HostArg::Leader => None,
        }
    }
}

impl fmt::Display for HostArg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostArg::Host(h) => h.fmt(f),
            HostArg::Leader => f.write_str("leader"),
        }
    }
}

impl FromStr for HostArg {
    type Err = ParseHostError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "leader" {
            Ok(HostArg::Leader)
        } else {
            s.parse().map(HostArg::Host)
        }
    }
}

impl From<HostArg> for String {
    fn from(h: HostArg) -> String {
        h.to_string()
    }
}

impl TryFrom<String> for HostArg {
    type Error = ParseHostError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hosts() {
        assert_eq!("a1".parse::<HostName>(), Ok(HostName::perseus(1)));
        assert_eq!(
            "a3".parse::<HostName>().map(|h| h.services()),
            Ok(vec!["a3".into(), "p3".into()])
        );
        assert_eq!("e2".parse::<HostName>(), Ok(HostName::etcd(2)));
        assert_eq!(
            "e3".parse::<HostName>().map(|h| h.services()),
            Ok(vec!["e3".into()])
        );
        assert_eq!(HostName::etcd(2).to_string(), "e2");
        assert_eq!(HostName::etcd(3).node_index(), 2);
        assert!("a4".parse::<HostName>().is_err());
        assert!("e0".parse::<HostName>().is_err());
        assert!("p1".parse::<HostName>().is_err());
        assert!("".parse::<HostName>().is_err());
        assert!("leader".parse::<HostName>().is_err());
    }

    #[test]
    fn parses_host_args() {
        assert_eq!("leader".parse::<HostArg>(), Ok(HostArg::Leader));
        assert_eq!(
            "e1".parse::<HostArg>(),
            Ok(HostArg::Host(HostName::etcd(1)))
        );
        assert!("Leader".parse::<HostArg>().is_err());
        assert!("leaders".parse::<HostArg>().is_err());
        assert_eq!(
            serde_json::to_string(&HostArg::Host(HostName::perseus(2))).unwrap(),
            "\"a2\""
        );
        assert_eq!(
            serde_json::from_str::<HostArg>("\"leader\"").unwrap(),
            HostArg::Leader
        );
    }
}
