//! The hosts as found in the Docker engines: which containers make up a host and which engine
//! runs them (the host and system names themselves are shared with the other tools, see
//! `perseus_model::host`), and which system `--target` means. With Compose a Perseus host is
//! two containers (the acceptor aN owning the namespace, the node pN in it); on Docker Swarm it
//! is one (aN runs both, compose/perseus-host).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use bollard::models::ContainerInspectResponse;
use bollard::Docker;

use crate::docker::{self, Container};
use crate::engines::{Engine, EngineSpec, HostsMap};

/// How long chaos waits for an engine of the hosts file to answer before it counts its
/// machine as down (a stopped machine's address answers nothing: a connection would hang).
const ENGINE_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

pub use perseus_model::{HostArg, HostName, System, Target};

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
    /// The engine that runs the host: every action on it goes there.
    pub engine: Arc<Engine>,
}

impl Host {
    /// The engine's API.
    pub fn docker(&self) -> &Docker {
        &self.engine.docker
    }

    /// Whether the host is a swarm task (one container; health through its published port).
    pub fn swarm(&self) -> bool {
        self.main().container.swarm
    }

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
    pub async fn refresh(&self) -> Result<Host> {
        let mut fresh = Vec::new();
        for m in &self.members {
            let info = self
                .docker()
                .inspect_container(&m.container.id, None)
                .await?;
            fresh.push(Member {
                container: m.container.clone(),
                info,
            });
        }
        Ok(Host {
            name: self.name,
            members: fresh,
            engine: self.engine.clone(),
        })
    }

    /// The namespace owner's address on each network.
    pub fn addresses(&self) -> HashMap<String, String> {
        docker::addresses(&self.main().info)
    }
}

/// The project's containers on every engine, looked up once per command.
pub struct Cluster {
    pub project: String,
    /// The hosts file it was loaded from (which engine, and which machine, runs each host).
    pub hosts: HostsMap,
    /// service → (container, index of its engine in `engines`).
    containers: HashMap<String, (Container, usize)>,
    engines: Vec<Arc<Engine>>,
    /// Hosts whose engine does not answer (its machine is down), with why.
    off: BTreeMap<HostName, String>,
}

/// Connects to an engine of the hosts file, or says why its machine counts as down: its
/// machine's container (`machine=`) is not running, or the engine does not answer in time.
pub async fn connect_spec(spec: &EngineSpec) -> Result<Engine, String> {
    if let Some(machine) = &spec.machine {
        if let Ok(local) = Engine::local().await {
            match local.docker.inspect_container(machine, None).await {
                Ok(info) if !docker::is_running(&info) => {
                    return Err(format!(
                        "machine {machine} is off ({}): make start-machine",
                        docker::state_of(&info)
                    ))
                }
                Ok(_) => {}
                Err(e) => return Err(format!("machine {machine}: {e}")),
            }
        }
    }
    match tokio::time::timeout(ENGINE_CONNECT_TIMEOUT, Engine::connect(spec)).await {
        Ok(Ok(engine)) => Ok(engine),
        Ok(Err(e)) => Err(format!("{e:#}")),
        Err(_) => Err(format!(
            "the engine {} does not answer within {} s (is its machine down?)",
            spec.endpoint,
            ENGINE_CONNECT_TIMEOUT.as_secs()
        )),
    }
}

impl Cluster {
    /// Finds the project's containers: each host of the hosts map on its engine, the others
    /// on the local engine (connected only when some host needs it); fails if there are none
    /// at all.
    pub async fn load(hosts: &HostsMap, project: &str) -> Result<Self> {
        let mut engines: Vec<Arc<Engine>> = Vec::new();
        let mut containers = HashMap::new();
        let mut wanted: Vec<(Option<&crate::engines::EngineSpec>, Vec<HostName>)> = Vec::new();
        let all: Vec<HostName> = System::ALL.iter().flat_map(|s| s.hosts()).collect();
        let unlisted: Vec<HostName> = all
            .iter()
            .copied()
            .filter(|h| !hosts.contains_key(h))
            .collect();
        let specs: BTreeSet<_> = hosts.values().map(|s| &s.endpoint).collect();
        for endpoint in specs {
            let names = hosts
                .iter()
                .filter(|(_, s)| &s.endpoint == endpoint)
                .map(|(h, _)| *h)
                .collect();
            let spec = hosts.values().find(|s| &s.endpoint == endpoint);
            wanted.push((spec, names));
        }
        if !unlisted.is_empty() {
            wanted.push((None, unlisted));
        }
        // With a hosts file, the local engine only serves the hosts the file leaves out: when
        // it cannot be reached, that matters only if nothing is found elsewhere either.
        let mut local_error = None;
        let mut off = BTreeMap::new();
        for (spec, names) in wanted {
            let engine = match spec {
                // A machine that is down takes only its own hosts away.
                Some(spec) => match connect_spec(spec).await {
                    Ok(e) => Ok(e),
                    Err(why) => {
                        for h in &names {
                            off.insert(*h, why.clone());
                        }
                        continue;
                    }
                },
                None => Engine::local().await,
            };
            let engine = match engine {
                Ok(e) => Arc::new(e),
                Err(e) if spec.is_none() && !hosts.is_empty() => {
                    local_error = Some(e);
                    continue;
                }
                Err(e) => return Err(e),
            };
            let found = docker::project_containers(&engine.docker, project).await?;
            let index = engines.len();
            for (service, c) in found {
                let belongs = names.iter().any(|h| h.services().contains(&service));
                if belongs && !containers.contains_key(&service) {
                    containers.insert(service, (c, index));
                }
            }
            engines.push(engine);
        }
        if containers.is_empty() && off.is_empty() {
            if let Some(e) = local_error {
                return Err(e.context(format!(
                    "no containers of project {project:?} on the engines of the hosts file, \
                     and the local engine (for the hosts it leaves out) cannot be reached"
                )));
            }
            bail!(
                "no containers of Compose project or swarm stack {project:?}: is the testbed up? \
                 (make up / make up-etcd / make up ENGINE=swarm)"
            );
        }
        Ok(Cluster {
            project: project.to_string(),
            hosts: hosts.clone(),
            containers,
            engines,
            off,
        })
    }

    /// Why the host's machine counts as down, if it does.
    pub fn off(&self, name: HostName) -> Option<&str> {
        self.off.get(&name).map(String::as_str)
    }

    /// The hosts of `system` whose machine is down.
    pub fn off_hosts(&self, system: System) -> Vec<HostName> {
        self.off
            .keys()
            .copied()
            .filter(|h| h.system == system)
            .collect()
    }

    /// Inspects the containers of a host, on its engine. A swarm host is one container (the
    /// first service's); a Compose host needs every service's.
    pub async fn host(&self, name: HostName) -> Result<Host> {
        if let Some(why) = self.off(name) {
            bail!("host {name}: its machine is down: {why}");
        }
        let mut members = Vec::new();
        let mut engine = None;
        for (i, service) in name.services().into_iter().enumerate() {
            let found = self.containers.get(&service).cloned();
            let (container, index) = match found {
                Some(c) => c,
                None if i > 0 && members.first().is_some_and(|m: &Member| m.container.swarm) => {
                    continue
                }
                None => {
                    return Err(anyhow!(
                        "host {name}: no container for service {service} in project {:?}",
                        self.project
                    ))
                }
            };
            let e = self.engines[index].clone();
            let info = e.docker.inspect_container(&container.id, None).await?;
            members.push(Member { container, info });
            engine.get_or_insert(e);
        }
        let engine = engine.ok_or_else(|| anyhow!("host {name} has no container"))?;
        Ok(Host {
            name,
            members,
            engine,
        })
    }

    /// The hosts of `system` that exist in the project.
    pub fn host_names(&self, system: System) -> Vec<HostName> {
        system
            .hosts()
            .into_iter()
            .filter(|h| self.containers.contains_key(&h.services()[0]))
            .collect()
    }

    /// Which systems have hosts in the project (each cluster once: etcd, not etcd3), counting
    /// the hosts of machines that are down.
    pub fn systems(&self) -> Vec<System> {
        System::ALL
            .into_iter()
            .filter(|s| {
                s.cluster() == *s
                    && !(self.host_names(*s).is_empty() && self.off_hosts(*s).is_empty())
            })
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
    }
}
