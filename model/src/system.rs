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
#[error("unknown system {0:?}: expected one of {names}", names = System::names().join(", "))]
pub struct ParseSystemError(pub String);

/// Everything about a system that is a fact rather than code: one row of [`SPECS`].
#[derive(Debug)]
pub struct Spec {
    /// The name users type (`SYSTEM=etcd3`).
    pub name: &'static str,
    /// The title reports and tables use.
    pub title: &'static str,
    /// Its hosts: its own, or another system's (etcd v3 runs on etcd's).
    pub hosts: Hosts,
    /// The URL scheme of its load generator endpoints.
    pub scheme: &'static str,
    /// What its reads promise (see [`Consistency`]).
    pub consistency: Consistency,
}

/// Where a system's hosts come from.
#[derive(Debug)]
pub enum Hosts {
    Own(HostFacts),
    /// The hosts of that system.
    Of(System),
}

/// The facts of a system's own three hosts.
#[derive(Debug)]
pub struct HostFacts {
    /// The letter of its host names (`a1`, `e1`).
    pub prefix: char,
    /// The letter of a second service in each host's network namespace (Perseus's node `pN`).
    pub inner: Option<char>,
    /// The compose profile that starts its hosts (Perseus's hosts have none).
    pub profile: Option<&'static str>,
    /// The image its hosts run.
    pub image: &'static str,
    /// Host `n` is at 10.77.0.(base + n).
    pub base: u8,
    /// The port clients use, on the host's address.
    pub client_port: u16,
    pub health: HealthCheck,
    pub leadership: Leadership,
}

/// Every system, in the order of [`System::ALL`] (a test keeps them in step).
pub static SPECS: [Spec; 8] = [
    Spec {
        name: "perseus",
        title: "Perseus (CASPaxos, leaderless)",
        hosts: Hosts::Own(HostFacts {
            prefix: 'a',
            inner: Some('p'),
            profile: None,
            image: "perseus:latest",
            base: 10,
            client_port: 8080,
            health: HealthCheck::Http {
                port: 8080,
                path: "/health",
            },
            leadership: Leadership::Leaderless,
        }),
        scheme: "http",
        consistency: Consistency::Linearizable,
    },
    Spec {
        name: "etcd",
        title: "etcd 3.4 (Raft, v2 API)",
        hosts: Hosts::Own(HostFacts {
            prefix: 'e',
            inner: None,
            profile: Some("etcd"),
            image: "perseus:latest",
            base: 20,
            client_port: 2379,
            health: HealthCheck::Http {
                port: 2379,
                path: "/health",
            },
            leadership: Leadership::EtcdStats,
        }),
        scheme: "http",
        // Reads go through the Raft leader (v2 with `quorum=true`).
        consistency: Consistency::Linearizable,
    },
    Spec {
        name: "etcd3",
        title: "etcd 3.4 (Raft, v3 API)",
        hosts: Hosts::Of(System::Etcd),
        scheme: "http",
        // v3 range without `serializable` goes through the leader.
        consistency: Consistency::Linearizable,
    },
    Spec {
        name: "zookeeper",
        title: "ZooKeeper 3.8 (Zab)",
        hosts: Hosts::Own(HostFacts {
            prefix: 'z',
            inner: None,
            profile: Some("zookeeper"),
            image: "perseus-systems:latest",
            base: 30,
            client_port: 2181,
            health: HealthCheck::ZookeeperSrvr { port: 2181 },
            leadership: Leadership::ZookeeperSrvr,
        }),
        scheme: "zk",
        // The local server answers reads.
        consistency: Consistency::Sequential,
    },
    Spec {
        name: "nats",
        title: "NATS 2.9 JetStream KV (Raft)",
        hosts: Hosts::Own(HostFacts {
            prefix: 'j',
            inner: None,
            profile: Some("nats"),
            image: "perseus-systems:latest",
            base: 40,
            client_port: 4222,
            health: HealthCheck::Http {
                port: 8222,
                path: "/healthz",
            },
            leadership: Leadership::NatsStreamLeader,
        }),
        scheme: "nats",
        // KV reads go through the stream leader (`allow_direct` off:
        // `$JS.API.STREAM.MSG.GET`, not a direct get from any replica).
        consistency: Consistency::Linearizable,
    },
    Spec {
        name: "galera",
        title: "MariaDB 10.11 Galera 4 (multi-primary, certified)",
        hosts: Hosts::Own(HostFacts {
            prefix: 'g',
            inner: None,
            profile: Some("galera"),
            image: "perseus-systems:latest",
            base: 60,
            client_port: 3306,
            // the clustercheck beside MariaDB: 200 when Synced in the primary component
            health: HealthCheck::Http {
                port: 9200,
                path: "/",
            },
            leadership: Leadership::Leaderless,
        }),
        scheme: "mysql",
        consistency: Consistency::Linearizable,
    },
    Spec {
        name: "postgres",
        title: "PostgreSQL 15 + Patroni 3.0 (synchronous replication)",
        hosts: Hosts::Own(HostFacts {
            prefix: 'q',
            inner: None,
            // e1..e3 too (Patroni's store): they share the profile, the q hosts depend on them
            profile: Some("postgres"),
            image: "perseus-systems:latest",
            base: 70,
            // HAProxy, which leads to the current primary
            client_port: 5000,
            // Patroni: 200 when PostgreSQL runs (primary or streaming replica)
            health: HealthCheck::Http {
                port: 8008,
                path: "/health",
            },
            leadership: Leadership::PatroniLeader,
        }),
        scheme: "postgres",
        consistency: Consistency::Linearizable,
    },
    Spec {
        name: "sentinel",
        title: "Redis 7.0 + Sentinel (asynchronous replication)",
        hosts: Hosts::Own(HostFacts {
            prefix: 'r',
            inner: None,
            profile: Some("sentinel"),
            image: "perseus-systems:latest",
            base: 80,
            // the host's sentinel, which names the primary
            client_port: 26379,
            health: HealthCheck::SentinelQuorum { port: 26379 },
            leadership: Leadership::SentinelPrimary,
        }),
        scheme: "sentinel",
        consistency: Consistency::LinearizableUntilFailover,
    },
];

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

    /// Every system's name, for help texts and errors.
    pub fn names() -> Vec<&'static str> {
        SPECS.iter().map(|s| s.name).collect()
    }

    /// The system's row.
    pub fn spec(self) -> &'static Spec {
        &SPECS[self as usize]
    }

    /// The facts of the hosts it runs on (its own, or etcd's for etcd3).
    pub fn host_facts(self) -> &'static HostFacts {
        match &self.cluster().spec().hosts {
            Hosts::Own(facts) => facts,
            // `cluster` names a system with hosts of its own (the table test checks it).
            Hosts::Of(_) => unreachable!("a system's cluster has hosts of its own"),
        }
    }

    /// The name users type (`SYSTEM=etcd3`).
    pub fn name(self) -> &'static str {
        self.spec().name
    }

    /// The title reports and tables use.
    pub fn title(self) -> &'static str {
        self.spec().title
    }

    /// The system whose hosts these are: etcd v3 runs on the etcd cluster, the others on
    /// their own.
    pub fn cluster(self) -> System {
        match self.spec().hosts {
            Hosts::Of(s) => s,
            Hosts::Own(_) => self,
        }
    }

    /// The letter of its host names (`a1`, `e1`, `z1`, `j1`).
    pub fn prefix(self) -> char {
        self.host_facts().prefix
    }

    /// The compose profile that starts its hosts (Perseus' hosts have none: `make up` alone).
    pub fn profile(self) -> Option<&'static str> {
        self.host_facts().profile
    }

    /// The image its hosts run: Perseus and etcd are in the small Perseus image, the others in
    /// the systems image (compose/systems/Dockerfile).
    pub fn image(self) -> &'static str {
        self.host_facts().image
    }

    /// The compose services of host `n`; the first owns the network namespace.
    pub fn services(self, n: u8) -> Vec<String> {
        let facts = self.host_facts();
        std::iter::once(facts.prefix)
            .chain(facts.inner)
            .map(|c| format!("{c}{n}"))
            .collect()
    }

    /// Host `n`'s fixed address on the `perseus` network (10.77.0.0/24).
    pub fn address(self, n: u8) -> Ipv4Addr {
        Ipv4Addr::new(10, 77, 0, self.host_facts().base + n)
    }

    /// The port clients use, on the host's address.
    pub fn client_port(self) -> u16 {
        self.host_facts().client_port
    }

    /// The URL scheme of its load generator endpoints.
    pub fn scheme(self) -> &'static str {
        self.spec().scheme
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
        self.host_facts().health
    }

    /// How chaos finds its leader.
    pub fn leadership(self) -> Leadership {
        self.host_facts().leadership
    }

    /// What its reads promise (see [`Consistency`]).
    pub fn consistency(self) -> Consistency {
        self.spec().consistency
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
    fn the_table_follows_the_enum() {
        for (i, s) in System::ALL.into_iter().enumerate() {
            assert_eq!(s as usize, i);
            assert_eq!(SPECS[i].name, s.name());
            assert!(matches!(s.cluster().spec().hosts, Hosts::Own(_)), "{s}");
        }
        let prefixes: Vec<char> = System::ALL
            .iter()
            .filter(|s| s.cluster() == **s)
            .map(|s| s.prefix())
            .collect();
        let mut unique = prefixes.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(prefixes.len(), unique.len(), "one letter per cluster");
        let err = "consul".parse::<System>().unwrap_err().to_string();
        let names: Vec<&str> = System::ALL.iter().map(|s| s.name()).collect();
        assert!(err.ends_with(&names.join(", ")), "{err}");
    }

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
