//! Process faults on a whole host: kill (SIGKILL all its containers), start (in order, the
//! namespace owner first, then wait for the host's health URL), pause and resume (freeze, a
//! gray failure).

use std::time::Duration;

use anyhow::{bail, Context, Result};
use bollard::models::{ContainerInspectResponse, ContainerStateStatusEnum};
use bollard::query_parameters::KillContainerOptionsBuilder;
use bollard::Docker;
use futures::future::join_all;
use tokio::time::{sleep, Instant};

use crate::docker;
use crate::host::Host;

fn status(info: &ContainerInspectResponse) -> Option<ContainerStateStatusEnum> {
    info.state.as_ref().and_then(|s| s.status)
}

pub fn is_paused(info: &ContainerInspectResponse) -> bool {
    status(info) == Some(ContainerStateStatusEnum::PAUSED)
}

fn is_up(info: &ContainerInspectResponse) -> bool {
    matches!(
        status(info),
        Some(ContainerStateStatusEnum::RUNNING | ContainerStateStatusEnum::PAUSED)
    )
}

/// Whether any container of the host is stopped (neither running nor paused).
pub fn is_down(host: &Host) -> bool {
    host.members.iter().any(|m| !is_up(&m.info))
}

/// Whether any container of the host is paused.
pub fn any_paused(host: &Host) -> bool {
    host.members.iter().any(|m| is_paused(&m.info))
}

/// SIGKILLs every container of the host together; fails if none runs.
pub async fn kill(docker: &Docker, host: &Host) -> Result<String> {
    let up: Vec<_> = host.members.iter().filter(|m| is_up(&m.info)).collect();
    if up.is_empty() {
        bail!("host {} is not running ({})", host.name, host.states());
    }
    let kills = up.iter().map(|m| async move {
        let opts = KillContainerOptionsBuilder::default()
            .signal("KILL")
            .build();
        docker
            .kill_container(&m.container.id, Some(opts))
            .await
            .with_context(|| format!("killing {}", m.container.name))
    });
    for result in join_all(kills).await {
        result?;
    }
    let killed: Vec<&str> = up.iter().map(|m| m.container.service.as_str()).collect();
    Ok(format!("SIGKILL sent to {}", killed.join(", ")))
}

/// Starts the containers in order, then waits (up to `wait`, zero = no wait) for health.
pub async fn start(docker: &Docker, host: &Host, wait: Duration) -> Result<String> {
    if any_paused(host) {
        bail!("host {} is paused: use resume", host.name);
    }
    let mut started = Vec::new();
    for m in &host.members {
        if !docker::is_running(&m.info) {
            docker
                .start_container(&m.container.id, None)
                .await
                .with_context(|| format!("starting {}", m.container.name))?;
            started.push(m.container.service.as_str());
        }
    }
    let what = if started.is_empty() {
        "already running".to_string()
    } else {
        format!("started {}", started.join(", "))
    };
    if wait.is_zero() {
        return Ok(what);
    }
    let took = wait_healthy(docker, host, wait).await?;
    Ok(format!(
        "{what}; {} healthy after {:.1} s",
        host.name,
        took.as_secs_f64()
    ))
}

/// Polls the host's health URL from inside it (curl in the namespace owner).
pub async fn wait_healthy(docker: &Docker, host: &Host, wait: Duration) -> Result<Duration> {
    let begin = Instant::now();
    let argv: Vec<String> = [
        "curl",
        "-fsS",
        "-o",
        "/dev/null",
        "-m",
        "2",
        host.name.system.health_url(),
    ]
    .map(String::from)
    .to_vec();
    let mut last = String::new();
    while begin.elapsed() < wait {
        match docker::exec(docker, &host.main().container.id, &argv).await {
            Ok(out) if out.code == 0 => return Ok(begin.elapsed()),
            Ok(out) => last = format!("curl exit {}: {}", out.code, out.output),
            Err(e) => last = format!("{e:#}"),
        }
        for m in &host.members {
            let info = docker.inspect_container(&m.container.id, None).await?;
            if !docker::is_running(&info) {
                let code = info.state.and_then(|s| s.exit_code).unwrap_or(-1);
                bail!(
                    "{} exited with code {code} while starting (docker logs {})",
                    m.container.name,
                    m.container.name
                );
            }
        }
        sleep(Duration::from_millis(250)).await;
    }
    bail!(
        "{} did not answer {} within {} s (last: {last})",
        host.name,
        host.name.system.health_url(),
        wait.as_secs()
    )
}

/// Freezes every container, the last first (the node before its acceptor).
pub async fn pause(docker: &Docker, host: &Host) -> Result<String> {
    if !host.running() {
        bail!("host {} is not running ({})", host.name, host.states());
    }
    let mut paused: Vec<String> = Vec::new();
    for m in host.members.iter().rev() {
        if let Err(e) = docker.pause_container(&m.container.id).await {
            // Leave nothing half-done.
            for id in &paused {
                let _ = docker.unpause_container(id).await;
            }
            return Err(anyhow::Error::new(e).context(format!("pausing {}", m.container.name)));
        }
        paused.push(m.container.id.clone());
    }
    let names: Vec<&str> = host
        .members
        .iter()
        .map(|m| m.container.service.as_str())
        .collect();
    Ok(format!("paused {}", names.join(", ")))
}

/// Thaws every paused container.
pub async fn resume(docker: &Docker, host: &Host) -> Result<String> {
    let mut resumed = Vec::new();
    for m in &host.members {
        if is_paused(&m.info) {
            docker
                .unpause_container(&m.container.id)
                .await
                .with_context(|| format!("resuming {}", m.container.name))?;
            resumed.push(m.container.service.as_str());
        }
    }
    if resumed.is_empty() {
        bail!("host {} is not paused ({})", host.name, host.states());
    }
    Ok(format!("resumed {}", resumed.join(", ")))
}
