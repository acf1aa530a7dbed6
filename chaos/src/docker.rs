//! The connection to the Docker Engine and the lookup of containers by their Compose labels.
//!
//! Connects through the local socket (`/var/run/docker.sock`, or `DOCKER_HOST=unix://...`),
//! negotiates the API version down to what the engine speaks (Docker 20.10 = API 1.41), and
//! runs commands inside containers (`docker exec`) with their exit code and output.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use bollard::container::LogOutput;
use bollard::exec::{CreateExecOptions, StartExecResults};
use bollard::models::{ContainerInspectResponse, ContainerStateStatusEnum};
use bollard::query_parameters::ListContainersOptionsBuilder;
use bollard::Docker;
use futures::StreamExt;

/// The socket used when `DOCKER_HOST` does not name another unix socket.
const DEFAULT_SOCKET: &str = "/var/run/docker.sock";

/// Compose labels that identify a container.
pub const LABEL_PROJECT: &str = "com.docker.compose.project";
pub const LABEL_SERVICE: &str = "com.docker.compose.service";
const LABEL_ONEOFF: &str = "com.docker.compose.oneoff";

/// The socket path chaos talks to.
fn socket_path() -> String {
    match std::env::var("DOCKER_HOST") {
        Ok(h) if h.starts_with("unix://") => h.trim_start_matches("unix://").to_string(),
        _ => DEFAULT_SOCKET.to_string(),
    }
}

/// Connects to the engine and negotiates the API version; every failure is one clear error.
pub async fn connect() -> Result<Docker> {
    let path = socket_path();
    if !Path::new(&path).exists() {
        bail!(
            "no Docker socket at {path}: is Docker running? (inside a container, mount it with \
             -v /var/run/docker.sock:/var/run/docker.sock)"
        );
    }
    let docker = Docker::connect_with_unix(&path, 120, bollard::API_DEFAULT_VERSION)
        .map_err(|e| anyhow!("cannot use the Docker socket {path}: {e}"))?;
    let docker = docker
        .negotiate_version()
        .await
        .map_err(|e| explain(&path, e))?;
    docker.ping().await.map_err(|e| explain(&path, e))?;
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

/// One container of the Compose project, found by its labels.
#[derive(Debug, Clone)]
pub struct Container {
    pub id: String,
    pub name: String,
    pub service: String,
}

/// Lists the project's service containers (one-off `run` containers excluded), by service.
pub async fn project_containers(
    docker: &Docker,
    project: &str,
) -> Result<HashMap<String, Container>> {
    let mut filters = HashMap::new();
    filters.insert("label", vec![format!("{LABEL_PROJECT}={project}")]);
    let opts = ListContainersOptionsBuilder::default()
        .all(true)
        .filters(&filters)
        .build();
    let list = docker
        .list_containers(Some(opts))
        .await
        .context("listing containers")?;
    let mut out = HashMap::new();
    for c in list {
        let labels = c.labels.unwrap_or_default();
        if labels.get(LABEL_ONEOFF).map(String::as_str) == Some("True") {
            continue;
        }
        let (Some(id), Some(service)) = (c.id, labels.get(LABEL_SERVICE).cloned()) else {
            continue;
        };
        let name = c
            .names
            .and_then(|n| n.into_iter().next())
            .map(|n| n.trim_start_matches('/').to_string())
            .unwrap_or_else(|| id.chars().take(12).collect());
        out.insert(service.clone(), Container { id, name, service });
    }
    Ok(out)
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
}
