//! Controls: named variants of a system, run by the same make targets (`SYSTEM=<control>`),
//! each a way real deployments are known to break linearizability. A checker that passes all
//! of them has not been shown to work, so every report of a control prints whether the
//! history checker caught it.

use std::fmt;
use std::str::FromStr;

use crate::system::System;

/// A known way to be non-linearizable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Control {
    /// etcd's v2 API read without `quorum=true` (its own client's default): a member cut off
    /// from the others keeps answering from its copy, so its clients read stale values.
    EtcdStaleReads,
    /// ZooKeeper's reads without `sync`: served from the session's server, which may lag
    /// (sequentially consistent, which ZooKeeper promises; not linearizable).
    ZookeeperNoSync,
    /// Redis with Sentinel with its primary cut off: it acknowledges writes that the promoted
    /// replica never gets (asynchronous replication): lost writes.
    SentinelPrimaryCut,
}

/// A name that is not a control.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown control {0:?}: expected one of etcd-stale-reads, zookeeper-no-sync, sentinel-primary-cut")]
pub struct ParseControlError(pub String);

impl Control {
    pub const ALL: [Control; 3] = [
        Control::EtcdStaleReads,
        Control::ZookeeperNoSync,
        Control::SentinelPrimaryCut,
    ];

    /// The name users type (`SYSTEM=etcd-stale-reads`).
    pub fn name(self) -> &'static str {
        match self {
            Control::EtcdStaleReads => "etcd-stale-reads",
            Control::ZookeeperNoSync => "zookeeper-no-sync",
            Control::SentinelPrimaryCut => "sentinel-primary-cut",
        }
    }

    /// The system it runs.
    pub fn system(self) -> System {
        match self {
            Control::EtcdStaleReads => System::Etcd,
            Control::ZookeeperNoSync => System::Zookeeper,
            Control::SentinelPrimaryCut => System::Sentinel,
        }
    }

    /// The load generator's arguments that make the variant.
    pub fn loadgen_args(self) -> &'static [&'static str] {
        match self {
            Control::EtcdStaleReads => &["--local-reads"],
            // the ZooKeeper client reads without sync, the Sentinel one from the primary it
            // was told of: the variant is the fault, not the client
            Control::ZookeeperNoSync | Control::SentinelPrimaryCut => &[],
        }
    }

    /// The scenario that shows it best (`make experiment SCENARIO=…`).
    pub fn scenario(self) -> &'static str {
        match self {
            Control::EtcdStaleReads | Control::ZookeeperNoSync => "kill-and-isolate",
            Control::SentinelPrimaryCut => "isolate-primary",
        }
    }

    /// Whether the system's own promise allows what the checker must find (ZooKeeper
    /// promises sequential consistency only).
    pub fn allowed_by_promise(self) -> bool {
        matches!(self, Control::ZookeeperNoSync)
    }

    /// What the checker must find, for reports.
    pub fn expectation(self) -> &'static str {
        match self {
            Control::EtcdStaleReads => "stale reads from the isolated member (not linearizable)",
            Control::ZookeeperNoSync => {
                "reads behind other sessions' writes when they happen (not linearizable, but \
                 allowed: ZooKeeper promises sequential consistency)"
            }
            Control::SentinelPrimaryCut => {
                "acknowledged writes lost by the failover (not linearizable)"
            }
        }
    }
}

impl fmt::Display for Control {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Control {
    type Err = ParseControlError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Control::ALL
            .into_iter()
            .find(|c| c.name() == s.trim())
            .ok_or_else(|| ParseControlError(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for c in Control::ALL {
            assert_eq!(c.name().parse::<Control>(), Ok(c));
        }
        assert!("etcd".parse::<Control>().is_err());
    }
}
