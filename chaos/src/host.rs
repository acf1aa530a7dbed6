//! The host model: a host `aN` is the Redis acceptor container `aN` plus the node container
//! `pN` that shares its network namespace. Faults act on the host as a whole.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use anyhow::{anyhow, Result};
use bollard::models::ContainerInspectResponse;
use bollard::Docker;

use crate::docker::{self, Container};

/// The hosts of the testbed, in order.
pub const HOSTS: [HostName; 3] = [HostName(1), HostName(2), HostName(3)];

/// A host name, `a1`..`a3`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HostName(pub u8);

impl HostName {
    /// The acceptor (Redis) service, which owns the network namespace.
    pub fn acceptor(self) -> String {
        format!("a{}", self.0)
    }
    /// The node service living in the acceptor's namespace.
    pub fn node(self) -> String {
        format!("p{}", self.0)
    }
}

impl fmt::Display for HostName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a{}", self.0)
    }
}

impl FromStr for HostName {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        HOSTS
            .iter()
            .copied()
            .find(|h| h.to_string() == s)
            .ok_or_else(|| format!("unknown host {s:?}: expected one of a1, a2, a3"))
    }
}

/// A host's containers as found in the engine right now.
pub struct Host {
    pub name: HostName,
    pub acceptor: Container,
    pub node: Container,
    pub acceptor_info: ContainerInspectResponse,
    pub node_info: ContainerInspectResponse,
}

impl Host {
    /// Whether both containers run (and are not paused).
    pub fn running(&self) -> bool {
        docker::is_running(&self.acceptor_info) && docker::is_running(&self.node_info)
    }

    /// `a1=running p1=running`.
    pub fn states(&self) -> String {
        format!(
            "{}={} {}={}",
            self.acceptor.service,
            docker::state_of(&self.acceptor_info),
            self.node.service,
            docker::state_of(&self.node_info)
        )
    }

    /// The acceptor's address on each network.
    pub fn addresses(&self) -> HashMap<String, String> {
        docker::addresses(&self.acceptor_info)
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
                "no containers of Compose project {project:?}: is the testbed up? (make up)"
            ));
        }
        Ok(Cluster {
            project: project.to_string(),
            containers,
        })
    }

    /// Inspects the two containers of a host.
    pub async fn host(&self, docker: &Docker, name: HostName) -> Result<Host> {
        let find = |service: String| {
            self.containers.get(&service).cloned().ok_or_else(|| {
                anyhow!(
                    "host {name}: no container for service {service} in project {:?}",
                    self.project
                )
            })
        };
        let acceptor = find(name.acceptor())?;
        let node = find(name.node())?;
        let acceptor_info = docker.inspect_container(&acceptor.id, None).await?;
        let node_info = docker.inspect_container(&node.id, None).await?;
        Ok(Host {
            name,
            acceptor,
            node,
            acceptor_info,
            node_info,
        })
    }

    /// The hosts of the project that exist (all of a1..a3 normally).
    pub fn host_names(&self) -> Vec<HostName> {
        HOSTS
            .iter()
            .copied()
            .filter(|h| self.containers.contains_key(&h.acceptor()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hosts() {
        assert_eq!("a1".parse::<HostName>(), Ok(HostName(1)));
        assert_eq!("a3".parse::<HostName>().map(|h| h.node()), Ok("p3".into()));
        assert!("a4".parse::<HostName>().is_err());
        assert!("p1".parse::<HostName>().is_err());
        assert!("".parse::<HostName>().is_err());
    }
}
