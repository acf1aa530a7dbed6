//! The hosts as found in the Docker engine: which containers make up a host (the host and
//! system names themselves are shared with the other tools, see `perseus_model::host`), and
//! which system `--target` means.

use std::collections::HashMap;

use anyhow::{anyhow, Result};
use bollard::models::ContainerInspectResponse;
use bollard::Docker;

use crate::docker::{self, Container};

pub use perseus_model::{HostArg, HostName, System};

/// `--target`: which system `leader` and "all hosts" refer to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Perseus when the project has Perseus hosts (or none at all), else the first other
    /// system with hosts (etcd, ZooKeeper, NATS, in that order).
    Auto,
    /// A system by name (perseus, etcd, etcd3, zookeeper, nats).
    System(System),
}

impl Target {
    /// `auto` or a system's name (clap's value parser).
    pub fn parse(s: &str) -> std::result::Result<Target, String> {
        if s == "auto" {
            return Ok(Target::Auto);
        }
        s.parse::<System>()
            .map(Target::System)
            .map_err(|e| format!("{e} (or auto)"))
    }
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

    /// Which systems have hosts in the project (each cluster once: etcd, not etcd3).
    pub fn systems(&self) -> Vec<System> {
        System::ALL
            .into_iter()
            .filter(|s| s.cluster() == *s && !self.host_names(*s).is_empty())
            .collect()
    }

    /// The system `leader` refers to under `target`.
    pub fn resolve_target(&self, target: Target) -> System {
        pick_system(target, &self.systems())
    }
}

/// `auto`: Perseus unless only other systems have hosts; then the first of those.
pub fn pick_system(target: Target, present: &[System]) -> System {
    match target {
        Target::System(s) => s,
        Target::Auto => {
            if present.is_empty() || present.contains(&System::Perseus) {
                System::Perseus
            } else {
                present[0]
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_resolution() {
        use System::*;
        assert_eq!(pick_system(Target::Auto, &[Etcd]), Etcd);
        assert_eq!(pick_system(Target::Auto, &[Perseus]), Perseus);
        assert_eq!(pick_system(Target::Auto, &[Perseus, Etcd]), Perseus);
        assert_eq!(pick_system(Target::Auto, &[]), Perseus);
        assert_eq!(pick_system(Target::Auto, &[Zookeeper]), Zookeeper);
        assert_eq!(pick_system(Target::System(Etcd), &[Perseus]), Etcd);
        assert_eq!(pick_system(Target::System(Perseus), &[Etcd]), Perseus);
        assert_eq!(Target::parse("etcd3"), Ok(Target::System(Etcd3)));
        assert_eq!(Target::parse("auto"), Ok(Target::Auto));
        assert!(Target::parse("consul").is_err());
    }
}
