//! The systems under test, one [`System`] each, and everything the tools need to know about one
//! that is a fact rather than code: its hosts and their addresses, the compose profile that
//! starts them, where its users reach it, how to tell it is healthy, how to find its leader and
//! what consistency its reads promise (what the checker may expect).
//!
//! The code that speaks a system's protocol lives next to the tool that needs it: the client
//! in `loadgen/src/store/` (one module per system, behind the `Store` trait), the leader lookup
//! in `chaos/src/leader.rs` (one function per [`Leadership`]). docs/systems.md says how to add
//! a system: a variant here, a client module, a leader lookup when it has a new kind of leader,
//! and its compose services.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use crate::host::HostName;

/// A system the testbed can run and load (`SYSTEM=` in the Makefile).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum System {
    /// Perseus itself: CASPaxos nodes over Redis acceptors, leaderless (hosts a1..a3).
    Perseus,
    /// etcd 3.4 through its v2 keys API (hosts e1..e3).
    Etcd,
    /// The same etcd cluster through its v3 API (range + txn), on the same hosts e1..e3.
    Etcd3,
    /// ZooKeeper 3.8, a three-server ensemble (hosts z1..z3).
    Zookeeper,
    /// NATS 2.9 with JetStream, a key-value bucket with three replicas (hosts j1..j3).
    Nats,
    /// MariaDB 10.11 with Galera 4, multi-primary (hosts g1..g3).
    Galera,
    /// PostgreSQL 15 with Patroni (leader key in the etcd cluster e1..e3) and HAProxy, with
    /// synchronous replication (hosts q1..q3).
    Postgres,
    /// Redis 7.0 with Sentinel: a primary, two replicas, three sentinels, asynchronous
    /// replication (hosts r1..r3).
    Sentinel,
}

/// How to tell that a host serves, asked from where its users stand (chaos's probes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthCheck {
    /// `GET path` on `port` answers 200.
    Http { port: u16, path: &'static str },
    /// ZooKeeper's four-letter word `srvr` on `port` names a mode (leader, follower): the
    /// server is in a quorum. A server without one answers "not currently serving requests".
    ZookeeperSrvr { port: u16 },
    /// The host's sentinel on `port` answers `SENTINEL CKQUORUM` with OK: it sees enough
    /// sentinels to agree on a failover (and so knows the primary).
    SentinelQuorum { port: u16 },
}

/// How chaos finds the leader that `kill-leader` and friends hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leadership {
    /// No leader: every host serves on its own; `leader` means the first host.
    Leaderless,
    /// etcd's `GET /v2/stats/self` on each member; the leader a majority names.
    EtcdStats,
    /// ZooKeeper's `srvr` on each server: the one in `Mode: leader`, with a majority serving.
    ZookeeperSrvr,
    /// NATS's monitoring `GET /jsz?streams=true&accounts=true` on each server: the leader of the
    /// key-value bucket's stream (the one every write and every read of the load goes through)
    /// that a majority of the servers name.
    NatsStreamLeader,
    /// Patroni's REST API `GET /cluster` on each host (port 8008): the member with role
    /// `leader` that a majority of the hosts name.
    PatroniLeader,
    /// `SENTINEL get-master-addr-by-name` on each host's sentinel: the primary a majority of
    /// the sentinels name (a primary cut off with its own sentinel is not chosen).
    SentinelPrimary,
}

/// What a system's reads promise: what the load generator's checker holds it to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consistency {
    /// Every read returns the latest acknowledged write (or one still in flight): the checker
    /// flags any older value as a stale read, wherever the read was served.
    Linearizable,
    /// Reads are served locally by the server the session is on: one session sees its own
    /// writes and never goes back in time, but may lag behind other sessions' writes until it
    /// syncs. The single-writer checker (one key per session) holds exactly; with shared keys a
    /// client may read behind the others (not a violation), but never behind itself, and the
    /// final read of each key syncs first.
    Sequential,
    /// One primary serves every read and write, so they are linearizable while it stays the
    /// primary; replication is asynchronous, so a failover may lose writes the old primary
    /// acknowledged (Redis with Sentinel). The checker applies the linearizable rules
    /// unchanged: every such loss is a lost-write violation, reported with its key, versions
    /// and second.
    LinearizableUntilFailover,
}

impl Consistency {
    /// The promise's name in reports and in `chaos describe`.
    pub fn as_str(self) -> &'static str {
        match self {
            Consistency::Linearizable => "linearizable",
            Consistency::Sequential => "sequential",
            Consistency::LinearizableUntilFailover => "linearizable-until-failover",
        }
    }
}

/// A name that is not a system.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown system {0:?}: expected one of perseus, etcd, etcd3, zookeeper, nats, galera, postgres, sentinel")]
pub struct ParseSystemError(pub String);

impl System {
    pub const ALL: [System; 8] = [
        System::Perseus,
        System::Etcd,
        System::Etcd3,
        System::Zookeeper,
        System::Nats,
        System::Galera,
        System::Postgres,
        System::Sentinel,
    ];

    /// The name users type (`SYSTEM=etcd3`).
    pub fn name(self) -> &'static str {
        match self {
            System::Perseus => "perseus",
            System::Etcd => "etcd",
            System::Etcd3 => "etcd3",
            System::Zookeeper => "zookeeper",
            System::Nats => "nats",
            System::Galera => "galera",
            System::Postgres => "postgres",
            System::Sentinel => "sentinel",
        }
    }

    /// The title reports and tables use.
    pub fn title(self) -> &'static str {
        match self {
            System::Perseus => "Perseus (CASPaxos, leaderless)",
            System::Etcd => "etcd 3.4 (Raft, v2 API)",
            System::Etcd3 => "etcd 3.4 (Raft, v3 API)",
            System::Zookeeper => "ZooKeeper 3.8 (Zab)",
            System::Nats => "NATS 2.9 JetStream KV (Raft)",
            System::Galera => "MariaDB 10.11 Galera 4 (multi-primary, certified)",
            System::Postgres => "PostgreSQL 15 + Patroni 3.0 (synchronous replication)",
            System::Sentinel => "Redis 7.0 + Sentinel (asynchronous replication)",
        }
    }

    /// The system whose hosts these are: etcd v3 runs on the etcd cluster, the others on
    /// their own.
    pub fn cluster(self) -> System {
        match self {
            System::Etcd3 => System::Etcd,
            s => s,
        }
    }

    /// The letter of its host names (`a1`, `e1`, `z1`, `j1`).
    pub fn prefix(self) -> char {
        match self.cluster() {
            System::Perseus => 'a',
            System::Zookeeper => 'z',
            System::Nats => 'j',
            System::Galera => 'g',
            System::Postgres => 'q',
            System::Sentinel => 'r',
            _ => 'e',
        }
    }

    /// The hosts of the system, in order.
    pub fn hosts(self) -> [HostName; 3] {
        let system = self.cluster();
        [1, 2, 3].map(|n| HostName { system, n })
    }

    /// The compose profile that starts its hosts (Perseus' hosts have none: `make up` alone).
    pub fn profile(self) -> Option<&'static str> {
        match self.cluster() {
            System::Perseus => None,
            System::Zookeeper => Some("zookeeper"),
            System::Nats => Some("nats"),
            System::Galera => Some("galera"),
            // e1..e3 too (Patroni's store): they share the profile, the q hosts depend on them
            System::Postgres => Some("postgres"),
            System::Sentinel => Some("sentinel"),
            _ => Some("etcd"),
        }
    }

    /// The image its hosts run: Perseus and etcd are in the small Perseus image, the others in
    /// the systems image (compose/systems/Dockerfile).
    pub fn image(self) -> &'static str {
        match self.cluster() {
            System::Perseus | System::Etcd => "perseus:latest",
            _ => "perseus-systems:latest",
        }
    }

    /// The compose services of host `n`; the first owns the network namespace.
    pub fn services(self, n: u8) -> Vec<String> {
        let p = self.prefix();
        match self.cluster() {
            System::Perseus => vec![format!("a{n}"), format!("p{n}")],
            _ => vec![format!("{p}{n}")],
        }
    }

    /// Host `n`'s fixed address on the `perseus` network (10.77.0.0/24).
    pub fn address(self, n: u8) -> Ipv4Addr {
        let base = match self.cluster() {
            System::Perseus => 10,
            System::Zookeeper => 30,
            System::Nats => 40,
            System::Galera => 60,
            System::Postgres => 70,
            System::Sentinel => 80,
            _ => 20,
        };
        Ipv4Addr::new(10, 77, 0, base + n)
    }

    /// The port clients use, on the host's address.
    pub fn client_port(self) -> u16 {
        match self.cluster() {
            System::Perseus => 8080,
            System::Zookeeper => 2181,
            System::Nats => 4222,
            System::Galera => 3306,
            // HAProxy, which leads to the current primary
            System::Postgres => 5000,
            // the host's sentinel, which names the primary
            System::Sentinel => 26379,
            _ => 2379,
        }
    }

    /// The URL scheme of its load generator endpoints.
    pub fn scheme(self) -> &'static str {
        match self {
            System::Zookeeper => "zk",
            System::Nats => "nats",
            System::Galera => "mysql",
            System::Postgres => "postgres",
            System::Sentinel => "sentinel",
            _ => "http",
        }
    }

    /// The load generator's endpoints, one per host: `scheme://address:port`.
    pub fn nodes(self) -> Vec<String> {
        self.hosts()
            .iter()
            .map(|h| {
                format!(
                    "{}://{}:{}",
                    self.scheme(),
                    self.address(h.n),
                    self.client_port()
                )
            })
            .collect()
    }

    /// How chaos tells a host serves.
    pub fn health(self) -> HealthCheck {
        match self.cluster() {
            System::Zookeeper => HealthCheck::ZookeeperSrvr { port: 2181 },
            // the clustercheck beside MariaDB: 200 when Synced in the primary component
            System::Galera => HealthCheck::Http {
                port: 9200,
                path: "/",
            },
            // Patroni: 200 when PostgreSQL runs (primary or streaming replica)
            System::Postgres => HealthCheck::Http {
                port: 8008,
                path: "/health",
            },
            System::Sentinel => HealthCheck::SentinelQuorum { port: 26379 },
            System::Nats => HealthCheck::Http {
                port: 8222,
                path: "/healthz",
            },
            s => HealthCheck::Http {
                port: s.client_port(),
                path: "/health",
            },
        }
    }

    /// How chaos finds its leader.
    pub fn leadership(self) -> Leadership {
        match self.cluster() {
            System::Perseus | System::Galera => Leadership::Leaderless,
            System::Postgres => Leadership::PatroniLeader,
            System::Sentinel => Leadership::SentinelPrimary,
            System::Zookeeper => Leadership::ZookeeperSrvr,
            System::Nats => Leadership::NatsStreamLeader,
            _ => Leadership::EtcdStats,
        }
    }

    /// What its reads promise (see [`Consistency`]): etcd's reads go through the Raft leader
    /// (v2 with `quorum=true`, v3 range without `serializable`); NATS KV reads go through the
    /// stream leader (`allow_direct` off: `$JS.API.STREAM.MSG.GET`, not direct get from any
    /// replica); ZooKeeper serves reads from the local server.
    pub fn consistency(self) -> Consistency {
        match self {
            System::Zookeeper => Consistency::Sequential,
            System::Sentinel => Consistency::LinearizableUntilFailover,
            _ => Consistency::Linearizable,
        }
    }
}

/// `KEY=VALUE` lines for the shell scripts and the Makefile (`chaos --target S describe`):
/// name, title, cluster, profile, image, services, hosts, nodes, consistency.
pub fn describe(system: System) -> String {
    let services: Vec<String> = system
        .hosts()
        .iter()
        .flat_map(|h| system.services(h.n))
        .collect();
    let hosts: Vec<String> = system.hosts().iter().map(ToString::to_string).collect();
    format!(
        "name={}\ntitle='{}'\ncluster={}\nprofile={}\nimage={}\nservices='{}'\nhosts='{}'\nnodes={}\nconsistency={}\n",
        system.name(),
        system.title(),
        system.cluster().name(),
        system.profile().unwrap_or(""),
        system.image(),
        services.join(" "),
        hosts.join(" "),
        system.nodes().join(","),
        system.consistency().as_str()
    )
}

impl fmt::Display for System {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for System {
    type Err = ParseSystemError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        System::ALL
            .into_iter()
            .find(|sys| sys.name() == s)
            .ok_or_else(|| ParseSystemError(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for s in System::ALL {
            assert_eq!(s.name().parse::<System>(), Ok(s));
        }
        assert!("Etcd".parse::<System>().is_err());
        assert!("".parse::<System>().is_err());
    }

    #[test]
    fn etcd3_shares_the_etcd_hosts() {
        assert_eq!(System::Etcd3.hosts(), System::Etcd.hosts());
        assert_eq!(System::Etcd3.profile(), Some("etcd"));
        assert_eq!(System::Etcd3.leadership(), Leadership::EtcdStats);
        assert_eq!(System::Etcd3.nodes(), System::Etcd.nodes());
    }

    #[test]
    fn addresses_and_endpoints() {
        assert_eq!(
            System::Perseus.nodes(),
            vec![
                "http://10.77.0.11:8080",
                "http://10.77.0.12:8080",
                "http://10.77.0.13:8080"
            ]
        );
        assert_eq!(System::Zookeeper.nodes()[0], "zk://10.77.0.31:2181");
        assert_eq!(System::Nats.nodes()[2], "nats://10.77.0.43:4222");
        assert_eq!(System::Zookeeper.services(2), vec!["z2".to_string()]);
        assert_eq!(
            System::Perseus.services(1),
            vec!["a1".to_string(), "p1".into()]
        );
        assert_eq!(System::Zookeeper.consistency(), Consistency::Sequential);
        assert_eq!(System::Nats.consistency(), Consistency::Linearizable);
        assert_eq!(System::Galera.nodes()[0], "mysql://10.77.0.61:3306");
        assert_eq!(System::Postgres.nodes()[1], "postgres://10.77.0.72:5000");
        assert_eq!(System::Sentinel.nodes()[2], "sentinel://10.77.0.83:26379");
        assert_eq!(System::Sentinel.services(3), vec!["r3".to_string()]);
        assert_eq!(System::Galera.leadership(), Leadership::Leaderless);
        assert_eq!(
            System::Sentinel.consistency(),
            Consistency::LinearizableUntilFailover
        );
        let d = describe(System::Etcd3);
        assert!(
            d.contains("profile=etcd\n") && d.contains("services='e1 e2 e3'\n"),
            "{d}"
        );
        assert!(describe(System::Perseus).contains("services='a1 p1 a2 p2 a3 p3'"));
    }
}
