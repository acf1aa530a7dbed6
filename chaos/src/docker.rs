//! The connection to the Docker Engine and the lookup of containers by their Compose labels.
//!
//! Connects through the local socket (`/var/run/docker.sock`, or `DOCKER_HOST=unix://...`;
//! other engines through engines.rs), negotiates the API version down to what the engine
//! speaks (Docker 20.10 = API 1.41), and runs commands inside containers (`docker exec`) with
//! their exit code and output. A host's container is found by its Compose labels, or, for the
//! stack that `docker stack deploy` made (Docker Swarm), by the swarm's labels: the stack is the
//! project and the service name without the `STACK_` prefix is the Compose service.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use bollard::container::LogOutput;
use bollard::exec::{CreateExecOptions, StartExecResults};
use bollard::models::{
    ContainerInspectResponse, ContainerStateStatusEnum, ContainerSummary, ContainerSummaryStateEnum,
};
use bollard::query_parameters::ListContainersOptionsBuilder;
use bollard::Docker;
use futures::StreamExt;

/// The socket used when `DOCKER_HOST` does not name another unix socket.
const DEFAULT_SOCKET: &str = "/var/run/docker.sock";

/// Compose labels that identify a container.
pub const LABEL_PROJECT: &str = "com.docker.compose.project";
pub const LABEL_SERVICE: &str = "com.docker.compose.service";
const LABEL_ONEOFF: &str = "com.docker.compose.oneoff";
/// Swarm labels of a stack's task containers.
pub const LABEL_STACK: &str = "com.docker.stack.namespace";
pub const LABEL_SWARM_SERVICE: &str = "com.docker.swarm.service.name";
/// Networks every swarm task is on besides its own (the bridge to the outside and the routing
/// mesh): not where its peers reach it.
pub const SWARM_PLUMBING: [&str; 2] = ["docker_gwbridge", "ingress"];

/// The socket path chaos talks to.
fn socket_path() -> String {
    match std::env::var("DOCKER_HOST") {
        Ok(h) if h.starts_with("unix://") => h.trim_start_matches("unix://").to_string(),
        _ => DEFAULT_SOCKET.to_string(),
    }
}

/// Connects to the local engine and negotiates the API version; every failure is one clear
/// error.
pub async fn connect() -> Result<Docker> {
    connect_unix(&socket_path()).await
}

/// Connects to the engine behind a unix socket.
pub async fn connect_unix(path: &str) -> Result<Docker> {
    let path = path.to_string();
    if !Path::new(&path).exists() {
        bail!(
            "no Docker socket at {path}: is Docker running? (inside a container, mount it with \
             -v /var/run/docker.sock:/var/run/docker.sock)"
        );
    }
    let docker = Docker::connect_with_unix(&path, 120, bollard::API_DEFAULT_VERSION)
        .map_err(|e| anyhow!("cannot use the Docker socket {path}: {e}"))?;
    negotiate(docker, &path).await
}

/// Negotiates the API version down and checks that the engine answers.
pub async fn negotiate(docker: Docker, endpoint: &str) -> Result<Docker> {
    let docker = docker
        .negotiate_version()
        .await
        .map_err(|e| explain(endpoint, e))?;
    docker.ping().await.map_err(|e| explain(endpoint, e))?;
    Ok(docker)
}

/// Turns a connection error into a message that says what to do.
fn explain(path: &str, e: bollard::errors::Error) -> anyhow::Error {
    if is_permission_denied(&e) {
        anyhow!(
            "permission denied on the Docker socket {path}: run as root or join the docker group"
        )
    } else {
        anyhow!("cannot talk to the Docker engine at {path}: {e}")
    }
}

/// Whether an I/O error somewhere in the error's chain of causes is a refused permission
/// (connecting to a socket the user may not open).
fn is_permission_denied(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::PermissionDenied {
                return true;
            }
        }
        if let Some(bollard::errors::Error::IOError { err }) =
            c.downcast_ref::<bollard::errors::Error>()
        {
            if err.kind() == std::io::ErrorKind::PermissionDenied {
                return true;
            }
        }
        cause = c.source();
    }
    false
}

/// One container of the Compose project (or of the swarm stack), found by its labels.
#[derive(Debug, Clone)]
pub struct Container {
    pub id: String,
    pub name: String,
    pub service: String,
    /// A swarm task's container (deployed by `docker stack deploy`).
    pub swarm: bool,
}

/// Lists the project's service containers (one-off `run` containers excluded), by service:
/// the Compose project's, or else the swarm stack's of that name. A swarm service may have
/// several task containers on an engine (older tasks are kept): the running one, else the
/// newest, stands for the service.
pub async fn project_containers(
    docker: &Docker,
    project: &str,
) -> Result<HashMap<String, Container>> {
    let compose = list(docker, &format!("{LABEL_PROJECT}={project}")).await?;
    let mut out = HashMap::new();
    for c in compose {
        let labels = c.labels.unwrap_or_default();
        if labels.get(LABEL_ONEOFF).map(String::as_str) == Some("True") {
            continue;
        }
        let (Some(id), Some(service)) = (c.id, labels.get(LABEL_SERVICE).cloned()) else {
            continue;
        };
        out.insert(service.clone(), container(c.names, id, service, false));
    }
    if !out.is_empty() {
        return Ok(out);
    }
    // (running?, created) of the container chosen for each service so far.
    let mut rank: HashMap<String, (bool, i64)> = HashMap::new();
    for c in list(docker, &format!("{LABEL_STACK}={project}")).await? {
        let labels = c.labels.unwrap_or_default();
        let Some(service) = labels
            .get(LABEL_SWARM_SERVICE)
            .and_then(|s| stack_service(project, s))
        else {
            continue;
        };
        let Some(id) = c.id else { continue };
        let this = (
            c.state == Some(ContainerSummaryStateEnum::RUNNING),
            c.created.unwrap_or(0),
        );
        if rank.get(&service).is_some_and(|best| *best >= this) {
            continue;
        }
        rank.insert(service.clone(), this);
        out.insert(service.clone(), container(c.names, id, service, true));
    }
    Ok(out)
}

/// A listed container as chaos names it.
fn container(names: Option<Vec<String>>, id: String, service: String, swarm: bool) -> Container {
    Container {
        name: display_name(names, &id),
        id,
        service,
        swarm,
    }
}

/// The Compose service a swarm service of the stack stands for (`perseus_a1` → `a1`).
pub fn stack_service(stack: &str, swarm_service: &str) -> Option<String> {
    swarm_service
        .strip_prefix(stack)
        .and_then(|s| s.strip_prefix('_'))
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

pub(crate) async fn list(docker: &Docker, label: &str) -> Result<Vec<ContainerSummary>> {
    let mut filters = HashMap::new();
    filters.insert("label", vec![label.to_string()]);
    let opts = ListContainersOptionsBuilder::default()
        .all(true)
        .filters(&filters)
        .build();
    docker
        .list_containers(Some(opts))
        .await
        .context("listing containers")
}

fn display_name(names: Option<Vec<String>>, id: &str) -> String {
    names
        .and_then(|n| n.into_iter().next())
        .map(|n| n.trim_start_matches('/').to_string())
        .unwrap_or_else(|| id.chars().take(12).collect())
}

/// The machine port the container's `port`/tcp is published on (live binding, else the
/// configured one, as for a stopped container).
pub fn published_port(info: &ContainerInspectResponse, port: u16) -> Option<u16> {
    let key = format!("{port}/tcp");
    let live = info
        .network_settings
        .as_ref()
        .and_then(|n| n.ports.as_ref())
        .and_then(|p| p.get(&key).cloned().flatten());
    let configured = info
        .host_config
        .as_ref()
        .and_then(|h| h.port_bindings.as_ref())
        .and_then(|p| p.get(&key).cloned().flatten());
    live.into_iter()
        .chain(configured)
        .flatten()
        .find_map(|b| b.host_port.and_then(|p| p.parse().ok()))
}

/// The state of a container as `docker ps` would name it.
pub fn state_of(info: &ContainerInspectResponse) -> String {
    info.state
        .as_ref()
        .and_then(|s| s.status)
        .map(|s| s.to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// Whether the container is running and not paused.
pub fn is_running(info: &ContainerInspectResponse) -> bool {
    info.state
        .as_ref()
        .and_then(|s| s.status)
        .is_some_and(|s| s == ContainerStateStatusEnum::RUNNING)
}

/// The container's IPv4 address on each network (the configured static address when the
/// container is not running and has none at the moment).
pub fn addresses(info: &ContainerInspectResponse) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let nets = info
        .network_settings
        .as_ref()
        .and_then(|n| n.networks.as_ref());
    for (name, ep) in nets.into_iter().flatten() {
        if SWARM_PLUMBING.contains(&name.as_str()) {
            continue;
        }
        let live = ep.ip_address.clone().filter(|a| !a.is_empty());
        let fixed = ep
            .ipam_config
            .as_ref()
            .and_then(|c| c.ipv4_address.clone())
            .filter(|a| !a.is_empty());
        if let Some(addr) = live.or(fixed) {
            out.insert(name.clone(), addr);
        }
    }
    out
}

/// What a command run in a container returned.
#[derive(Debug)]
pub struct ExecOutput {
    pub code: i64,
    pub output: String,
}

/// Runs `argv` inside the container and waits (bounded) for it to finish.
pub async fn exec(docker: &Docker, container: &str, argv: &[String]) -> Result<ExecOutput> {
    let created = docker
        .create_exec(
            container,
            CreateExecOptions {
                attach_stdout: Some(true),
                attach_stderr: Some(true),
                cmd: Some(argv.to_vec()),
                ..Default::default()
            },
        )
        .await
        .with_context(|| format!("exec {:?} in {container}", argv.join(" ")))?;
    let mut output = String::new();
    let run = async {
        if let StartExecResults::Attached {
            output: mut out, ..
        } = docker.start_exec(&created.id, None).await?
        {
            while let Some(chunk) = out.next().await {
                match chunk? {
                    LogOutput::StdOut { message } | LogOutput::StdErr { message } => {
                        output.push_str(&String::from_utf8_lossy(&message))
                    }
                    _ => {}
                }
            }
        }
        Ok::<_, bollard::errors::Error>(())
    };
    tokio::time::timeout(std::time::Duration::from_secs(30), run)
        .await
        .map_err(|_| anyhow!("exec {:?} in {container} took over 30 s", argv.join(" ")))?
        .with_context(|| format!("exec {:?} in {container}", argv.join(" ")))?;
    let info = docker.inspect_exec(&created.id).await?;
    let code = info.exit_code.unwrap_or(-1);
    Ok(ExecOutput {
        code,
        output: output.trim().to_string(),
    })
}

/// Runs `argv` in the container and returns its output; a non-zero exit is an error that
/// names the command, the container, the exit code and the output.
pub async fn exec_ok(docker: &Docker, container: &str, argv: &[String]) -> Result<String> {
    let out = exec(docker, container, argv).await?;
    if out.code != 0 {
        bail!(
            "`{}` in {container} exited with {}: {}",
            argv.join(" "),
            out.code,
            if out.output.is_empty() {
                "(no output)"
            } else {
                &out.output
            }
        );
    }
    Ok(out.output)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permission_denied_is_found_in_the_chain_of_causes() {
        let denied = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        let e = bollard::errors::Error::IOError { err: denied };
        assert!(is_permission_denied(&e));
        assert!(explain("/s", e).to_string().contains("permission denied"));
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let e = bollard::errors::Error::IOError { err: refused };
        assert!(!is_permission_denied(&e));
        assert!(explain("/s", e).to_string().contains("cannot talk"));
    }

    #[test]
    fn swarm_plumbing_networks_are_not_addresses_and_ports_are_found() {
        use bollard::models::{EndpointSettings, HostConfig, NetworkSettings, PortBinding};
        let ep = |ip: &str| EndpointSettings {
            ip_address: Some(ip.into()),
            ..Default::default()
        };
        let binding = |port: &str| {
            Some(vec![PortBinding {
                host_ip: Some(String::new()),
                host_port: Some(port.into()),
            }])
        };
        let mut info = ContainerInspectResponse {
            network_settings: Some(NetworkSettings {
                networks: Some(HashMap::from([
                    ("docker_gwbridge".to_string(), ep("172.18.0.4")),
                    ("perseus_perseus".to_string(), ep("10.78.0.5")),
                ])),
                ..Default::default()
            }),
            host_config: Some(HostConfig {
                port_bindings: Some(HashMap::from([("8080/tcp".to_string(), binding("8081"))])),
                ..Default::default()
            }),
            ..Default::default()
        };
        let addrs = addresses(&info);
        assert_eq!(addrs.len(), 1);
        assert_eq!(addrs["perseus_perseus"], "10.78.0.5");
        // Stopped: only the configured binding is left.
        assert_eq!(published_port(&info, 8080), Some(8081));
        assert_eq!(published_port(&info, 2379), None);
        if let Some(n) = info.network_settings.as_mut() {
            n.ports = Some(HashMap::from([("8080/tcp".to_string(), binding("8091"))]));
        }
        assert_eq!(published_port(&info, 8080), Some(8091));
    }

    #[test]
    fn stack_services_are_the_compose_services() {
        assert_eq!(stack_service("perseus", "perseus_a1"), Some("a1".into()));
        assert_eq!(stack_service("perseus", "perseus_"), None);
        assert_eq!(stack_service("perseus", "other_a1"), None);
        assert_eq!(stack_service("perseus", "perseusx_a1"), None);
    }
}
