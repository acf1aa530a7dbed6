//! The host model. Two systems share the testbed's network:
//!
//! - Perseus: a host `aN` is the Redis acceptor container `aN` plus the node container `pN`
//!   that shares its network namespace;
//! - etcd: a host `eN` is the single etcd member container `eN`.
//!
//! Faults act on the host as a whole. The first container of a host owns the network
//! namespace (rules and qdiscs go there); health is judged from outside (see probe.rs) and
//! whether the later containers still share that namespace by netns.rs.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use anyhow::{anyhow, Result};
use bollard::models::ContainerInspectResponse;
use bollard::Docker;

use crate::docker::{self, Container};

/// Which cluster a host belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum System {
    Perseus,
    Etcd,
}

impl System {
    pub const ALL: [System; 2] = [System::Perseus, System::Etcd];

    /// The letter of its host names (`a1`, `e1`).
    fn prefix(self) -> char {
        match self {
            System::Perseus => 'a',
            System::Etcd => 'e',
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            System::Perseus => "perseus",
            System::Etcd => "etcd",
        }
    }

    /// The hosts of the system, in order.
    pub fn hosts(self) -> [HostName; 3] {
        [1, 2, 3].map(|n| HostName { system: self, n })
    }

    /// The port clients use (and `/health` answers on), on the host's network address.
    pub fn client_port(self) -> u16 {
        match self {
            System::Perseus => 8080,
            System::Etcd => 2379,
        }
    }
}

impl fmt::Display for System {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A host name, `a1`..`a3` or `e1`..`e3`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HostName {
    pub system: System,
    pub n: u8,
}

impl HostName {
    pub const fn perseus(n: u8) -> Self {
        HostName {
            system: System::Perseus,
            n,
        }
    }

    #[cfg(test)]
    pub const fn etcd(n: u8) -> Self {
        HostName {
            system: System::Etcd,
            n,
        }
    }

    /// The Compose services of the host; the first owns the network namespace.
    pub fn services(self) -> Vec<String> {
        match self.system {
            System::Perseus => vec![format!("a{}", self.n), format!("p{}", self.n)],
            System::Etcd => vec![format!("e{}", self.n)],
        }
    }
}

impl fmt::Display for HostName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.system.prefix(), self.n)
    }
}

impl FromStr for HostName {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        System::ALL
            .iter()
            .flat_map(|sys| sys.hosts())
            .find(|h| h.to_string() == s)
            .ok_or_else(|| format!("unknown host {s:?}: expected a1, a2, a3, e1, e2, e3 or leader"))
    }
}

/// What the command line names: a host, or `leader` (resolved against a system).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostArg {
    Host(HostName),
    Leader,
}

impl FromStr for HostArg {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "leader" {
            Ok(HostArg::Leader)
        } else {
            s.parse().map(HostArg::Host)
        }
    }
}

/// `--target`: which system `leader` and "all hosts" refer to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Target {
    /// etcd when the project has etcd hosts and no Perseus hosts, else Perseus.
    Auto,
    Perseus,
    Etcd,
}

/// One container of a host with its inspection.
pub struct Member {
    pub container: Container,
    pub info: ContainerInspectResponse,
}

/// A host's containers as found in the engine right now.
pub struct Host {
    pub name: HostName,
    /// In start order; the first owns the network namespace.
    pub members: Vec<Member>,
}

impl Host {
    /// The container that owns the network namespace.
    pub fn main(&self) -> &Member {
        &self.members[0]
    }

    /// Whether every container runs (and is not paused).
    pub fn running(&self) -> bool {
        self.members.iter().all(|m| docker::is_running(&m.info))
    }

    /// `a1=running p1=running`.
    pub fn states(&self) -> String {
        self.members
            .iter()
            .map(|m| format!("{}={}", m.container.service, docker::state_of(&m.info)))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The same containers, inspected again (their state after an action).
    pub async fn inspect(docker: &Docker, name: HostName, members: &[Member]) -> Result<Host> {
        let mut fresh = Vec::new();
        for m in members {
            let info = docker.inspect_container(&m.container.id, None).await?;
            fresh.push(Member {
                container: m.container.clone(),
                info,
            });
        }
        Ok(Host {
            name,
            members: fresh,
        })
    }

    /// The namespace owner's address on each network.
    pub fn addresses(&self) -> HashMap<String, String> {
        docker::addresses(&self.main().info)
    }
}

/// The project's containers, looked up once per command.
pub struct Cluster {
    pub project: String,
    containers: HashMap<String, Container>,
}

impl Cluster {
    /// Finds the project's containers; fails if there are none at all.
    pub async fn load(docker: &Docker, project: &str) -> Result<Self> {
        let containers = docker::project_containers(docker, project).await?;
        if containers.is_empty() {
            return Err(anyhow!(
                "no containers of Compose project {project:?}: is the testbed up? (make up / make up-etcd)"
            ));
        }
        Ok(Cluster {
            project: project.to_string(),
            containers,
        })
    }

    /// Inspects the containers of a host.
    pub async fn host(&self, docker: &Docker, name: HostName) -> Result<Host> {
        let mut members = Vec::new();
        for service in name.services() {
            let container = self.containers.get(&service).cloned().ok_or_else(|| {
                anyhow!(
                    "host {name}: no container for service {service} in project {:?}",
                    self.project
                )
            })?;
            let info = docker.inspect_container(&container.id, None).await?;
            members.push(Member { container, info });
        }
        Ok(Host { name, members })
    }

    /// The hosts of `system` that exist in the project.
    pub fn host_names(&self, system: System) -> Vec<HostName> {
        system
            .hosts()
            .into_iter()
            .filter(|h| self.containers.contains_key(&h.services()[0]))
            .collect()
    }

    /// Which systems have hosts in the project.
    pub fn systems(&self) -> Vec<System> {
        System::ALL
            .into_iter()
            .filter(|s| !self.host_names(*s).is_empty())
            .collect()
    }

    /// The system `leader` refers to under `target`.
    pub fn resolve_target(&self, target: Target) -> System {
        pick_system(target, &self.systems())
    }
}

/// `auto`: etcd only when it is the only system with hosts.
pub fn pick_system(target: Target, present: &[System]) -> System {
    match target {
        Target::Perseus => System::Perseus,
        Target::Etcd => System::Etcd,
        Target::Auto => {
            if present.contains(&System::Etcd) && !present.contains(&System::Perseus) {
                System::Etcd
            } else {
                System::Perseus
            }
        }
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
    }

    #[test]
    fn target_resolution() {
        use System::*;
        assert_eq!(pick_system(Target::Auto, &[Etcd]), Etcd);
        assert_eq!(pick_system(Target::Auto, &[Perseus]), Perseus);
        assert_eq!(pick_system(Target::Auto, &[Perseus, Etcd]), Perseus);
        assert_eq!(pick_system(Target::Auto, &[]), Perseus);
        assert_eq!(pick_system(Target::Etcd, &[Perseus]), Etcd);
        assert_eq!(pick_system(Target::Perseus, &[Etcd]), Perseus);
    }
}
