//! Process faults on a whole host: kill (SIGKILL both containers), start (acceptor first,
//! then node, then wait for the node's /health), pause and resume (freeze, a gray failure).

use std::time::Duration;

use anyhow::{bail, Context, Result};
use bollard::models::ContainerStateStatusEnum;
use bollard::query_parameters::KillContainerOptionsBuilder;
use bollard::Docker;
use tokio::time::{sleep, Instant};

use crate::docker;
use crate::host::Host;

fn status(info: &bollard::models::ContainerInspectResponse) -> Option<ContainerStateStatusEnum> {
    info.state.as_ref().and_then(|s| s.status)
}

fn is_paused(info: &bollard::models::ContainerInspectResponse) -> bool {
    status(info) == Some(ContainerStateStatusEnum::PAUSED)
}

fn is_up(info: &bollard::models::ContainerInspectResponse) -> bool {
    matches!(
        status(info),
        Some(ContainerStateStatusEnum::RUNNING | ContainerStateStatusEnum::PAUSED)
    )
}

/// SIGKILLs the node and the acceptor together; fails if neither runs.
pub async fn kill(docker: &Docker, host: &Host) -> Result<String> {
    let node_up = is_up(&host.node_info);
    let acc_up = is_up(&host.acceptor_info);
    if !node_up && !acc_up {
        bail!("host {} is not running ({})", host.name, host.states());
    }
    let opts = || {
        Some(
            KillContainerOptionsBuilder::default()
                .signal("KILL")
                .build(),
        )
    };
    let kill_node = async {
        if node_up {
            docker
                .kill_container(&host.node.id, opts())
                .await
                .with_context(|| format!("killing {}", host.node.name))?;
        }
        Ok::<_, anyhow::Error>(())
    };
    let kill_acc = async {
        if acc_up {
            docker
                .kill_container(&host.acceptor.id, opts())
                .await
                .with_context(|| format!("killing {}", host.acceptor.name))?;
        }
        Ok::<_, anyhow::Error>(())
    };
    let (n, a) = tokio::join!(kill_node, kill_acc);
    n?;
    a?;
    let mut killed = Vec::new();
    if acc_up {
        killed.push(host.acceptor.service.as_str());
    }
    if node_up {
        killed.push(host.node.service.as_str());
    }
    Ok(format!("SIGKILL sent to {}", killed.join(", ")))
}

/// Starts the acceptor, then the node, then waits (up to `wait`, zero = no wait) for /health.
pub async fn start(docker: &Docker, host: &Host, wait: Duration) -> Result<String> {
    if is_paused(&host.acceptor_info) || is_paused(&host.node_info) {
        bail!("host {} is paused: use resume", host.name);
    }
    let mut started = Vec::new();
    for (c, info) in [
        (&host.acceptor, &host.acceptor_info),
        (&host.node, &host.node_info),
    ] {
        if !docker::is_running(info) {
            docker
                .start_container(&c.id, None)
                .await
                .with_context(|| format!("starting {}", c.name))?;
            started.push(c.service.as_str());
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
        host.node.service,
        took.as_secs_f64()
    ))
}

/// Polls the node's GET /health from inside the host (curl in the acceptor container).
pub async fn wait_healthy(docker: &Docker, host: &Host, wait: Duration) -> Result<Duration> {
    let begin = Instant::now();
    let argv: Vec<String> = [
        "curl",
        "-fsS",
        "-o",
        "/dev/null",
        "-m",
        "2",
        "http://127.0.0.1:8080/health",
    ]
    .map(String::from)
    .to_vec();
    let mut last = String::new();
    while begin.elapsed() < wait {
        match docker::exec(docker, &host.acceptor.id, &argv).await {
            Ok(out) if out.code == 0 => return Ok(begin.elapsed()),
            Ok(out) => last = format!("curl exit {}: {}", out.code, out.output),
            Err(e) => last = format!("{e:#}"),
        }
        let node = docker.inspect_container(&host.node.id, None).await?;
        if !docker::is_running(&node) {
            let code = node.state.and_then(|s| s.exit_code).unwrap_or(-1);
            bail!(
                "{} exited with code {code} while starting (docker logs {})",
                host.node.name,
                host.node.name
            );
        }
        sleep(Duration::from_millis(250)).await;
    }
    bail!(
        "{} did not answer GET /health within {} s (last: {last})",
        host.node.service,
        wait.as_secs()
    )
}

/// Freezes both containers.
pub async fn pause(docker: &Docker, host: &Host) -> Result<String> {
    if !host.running() {
        bail!("host {} is not running ({})", host.name, host.states());
    }
    docker
        .pause_container(&host.node.id)
        .await
        .with_context(|| format!("pausing {}", host.node.name))?;
    if let Err(e) = docker.pause_container(&host.acceptor.id).await {
        // Leave nothing half-done.
        let _ = docker.unpause_container(&host.node.id).await;
        return Err(anyhow::Error::new(e).context(format!("pausing {}", host.acceptor.name)));
    }
    Ok(format!(
        "paused {}, {}",
        host.acceptor.service, host.node.service
    ))
}

/// Thaws both containers.
pub async fn resume(docker: &Docker, host: &Host) -> Result<String> {
    let mut resumed = Vec::new();
    for (c, info) in [
        (&host.acceptor, &host.acceptor_info),
        (&host.node, &host.node_info),
    ] {
        if is_paused(info) {
            docker
                .unpause_container(&c.id)
                .await
                .with_context(|| format!("resuming {}", c.name))?;
            resumed.push(c.service.as_str());
        }
    }
    if resumed.is_empty() {
        bail!("host {} is not paused ({})", host.name, host.states());
    }
    Ok(format!("resumed {}", resumed.join(", ")))
}
