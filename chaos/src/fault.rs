//! Process faults on a whole host: kill (SIGKILL all its containers), start (in order, the
//! namespace owner first, then wait until the host answers `/health` where its users stand),
//! pause and resume (freeze, a gray failure). `start` also repairs a host whose later
//! containers run in a namespace that is no longer the owner's (see netns.rs) by restarting
//! them into the current one.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use bollard::models::{ContainerInspectResponse, ContainerStateStatusEnum};
use bollard::query_parameters::KillContainerOptionsBuilder;
use bollard::Docker;
use futures::future::join_all;
use futures::StreamExt;
use tokio::time::{sleep, Instant};

use crate::docker;
use crate::error::ChaosError;
use crate::host::{Host, Member};
use crate::netns::{self, Sharing};
use crate::probe;
use crate::retask;

fn status(info: &ContainerInspectResponse) -> Option<ContainerStateStatusEnum> {
    info.state.as_ref().and_then(|s| s.status)
}

pub fn is_paused(info: &ContainerInspectResponse) -> bool {
    status(info) == Some(ContainerStateStatusEnum::PAUSED)
}

pub fn is_up(info: &ContainerInspectResponse) -> bool {
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
        return Err(ChaosError::not_running(format!("host {}", host.name), host.states()).into());
    }
    let kills = up.iter().map(|m| async move {
        sigkill(docker, m)
            .await
            .with_context(|| format!("killing {}", m.container.name))
    });
    for result in join_all(kills).await {
        result?;
    }
    let killed: Vec<&str> = up.iter().map(|m| m.container.service.as_str()).collect();
    Ok(format!("SIGKILL sent to {}", killed.join(", ")))
}

/// SIGKILL to one container.
async fn sigkill(docker: &Docker, m: &Member) -> Result<(), bollard::errors::Error> {
    let opts = KillContainerOptionsBuilder::default()
        .signal("KILL")
        .build();
    docker.kill_container(&m.container.id, Some(opts)).await
}

/// SIGKILLs only the given members (e.g. the node of a Perseus host).
pub async fn kill_members(docker: &Docker, host: &Host, members: &[&Member]) -> Result<String> {
    let mut killed = Vec::new();
    for m in members {
        if !is_up(&m.info) {
            return Err(ChaosError::not_running(&m.container.service, host.states()).into());
        }
        sigkill(docker, m)
            .await
            .with_context(|| format!("killing {}", m.container.name))?;
        killed.push(m.container.service.as_str());
    }
    Ok(format!("SIGKILL sent to {} only", killed.join(", ")))
}

/// Starts one stopped member (it joins the owner's current namespace), waits for health.
pub async fn start_member(
    docker: &Docker,
    host: &Host,
    member: &Member,
    wait: Duration,
) -> Result<String> {
    if docker::is_running(&member.info) {
        return Ok(format!("{} already running", member.container.service));
    }
    if !docker::is_running(&host.main().info) {
        bail!(
            "{} cannot start while {} is {}: start the host",
            member.container.service,
            host.main().container.service,
            docker::state_of(&host.main().info)
        );
    }
    docker
        .start_container(&member.container.id, None)
        .await
        .with_context(|| format!("starting {}", member.container.name))?;
    let what = format!("started {}", member.container.service);
    then_healthy(docker, host, wait, what).await
}

/// Freezes only the given members.
pub async fn pause_members(docker: &Docker, host: &Host, members: &[&Member]) -> Result<String> {
    let mut paused = Vec::new();
    for m in members {
        if !docker::is_running(&m.info) {
            return Err(ChaosError::not_running(&m.container.service, host.states()).into());
        }
        docker
            .pause_container(&m.container.id)
            .await
            .with_context(|| format!("pausing {}", m.container.name))?;
        paused.push(m.container.service.as_str());
    }
    Ok(format!("paused {} only", paused.join(", ")))
}

/// Starts the containers in order, restarts members detached from the owner's namespace into
/// it, then waits (up to `wait`, zero = no wait) for health seen from outside.
pub async fn start(docker: &Docker, host: &Host, wait: Duration) -> Result<String> {
    if any_paused(host) {
        bail!("host {} is paused: use resume", host.name);
    }
    let mut started = Vec::new();
    let mut replaced = None;
    for m in &host.members {
        if !docker::is_running(&m.info) {
            match retask::start(docker, m).await? {
                None => started.push(m.container.service.clone()),
                Some((fresh, what)) => {
                    started.push(what);
                    replaced = Some(fresh);
                }
            }
        }
    }
    let mut what = if started.is_empty() {
        "already running".to_string()
    } else {
        format!("started {}", started.join(", "))
    };
    // A swarm host on several engines is one container, replaced by its new task's.
    let fresh = match replaced {
        Some(member) => Host {
            name: host.name,
            members: vec![member],
            engine: host.engine.clone(),
        },
        None => host.refresh().await?,
    };
    // A member left running while its owner was started (or restarted on its own) sits in
    // the old namespace: inspect again, then repair.
    if let Some(repaired) = repair(docker, &fresh).await? {
        what = format!("{what}; {repaired}");
    }
    then_healthy(docker, &fresh, wait, what).await
}

/// Restarts every member that runs in a namespace no longer the owner's; a start joins the
/// owner's current namespace. Returns what was done, None when nothing was detached.
pub async fn repair(docker: &Docker, host: &Host) -> Result<Option<String>> {
    let sharing = netns::check(docker, host).await;
    let mut done = Vec::new();
    for s in netns::detached(&sharing) {
        let Sharing::Detached { member, owner, .. } = s else {
            continue;
        };
        let Some(m) = host.members.iter().find(|m| &m.container.service == member) else {
            continue;
        };
        sigkill(docker, m)
            .await
            .with_context(|| format!("stopping the detached {}", m.container.name))?;
        // Kill returns before the container is down; start refuses a running container.
        docker
            .wait_container(
                &m.container.id,
                None::<bollard::query_parameters::WaitContainerOptions>,
            )
            .next()
            .await;
        docker
            .start_container(&m.container.id, None)
            .await
            .with_context(|| format!("starting {} again", m.container.name))?;
        done.push(format!(
            "repaired: {}; restarted {member} into {owner}'s current network namespace",
            s.describe()
        ));
    }
    Ok((!done.is_empty()).then(|| done.join("; ")))
}

/// Asks `ask` every 250 ms until it answers or `wait` passes; stops early with an error when
/// one of the host's containers exits (it will never answer then). `Ok(Err(last))`: the time
/// ran out, `last` the last failure.
async fn poll<T, F, Fut>(
    docker: &Docker,
    host: &Host,
    wait: Duration,
    mut ask: F,
) -> Result<Result<(Duration, T), String>>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let begin = Instant::now();
    let mut last = String::new();
    while begin.elapsed() < wait {
        match ask().await {
            Ok(v) => return Ok(Ok((begin.elapsed(), v))),
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
    Ok(Err(last))
}

/// `what` was done; then waits (up to `wait`, zero = no wait) for the host's health and says
/// how long it took.
async fn then_healthy(
    docker: &Docker,
    host: &Host,
    wait: Duration,
    what: String,
) -> Result<String> {
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

/// Polls the host's `/health` from where its users stand (see probe.rs).
pub async fn wait_healthy(docker: &Docker, host: &Host, wait: Duration) -> Result<Duration> {
    match poll(docker, host, wait, || probe::healthy(host)).await? {
        Ok((took, ())) => Ok(took),
        Err(last) => bail!(
            "{} did not answer its health check on {} within {} s (last: {last})",
            host.name,
            probe::user_address(host)
                .map(|a| a.to_string())
                .unwrap_or_else(|e| format!("{e:#}")),
            wait.as_secs()
        ),
    }
}

/// Waits until the host answers its system's health question where its users stand, with any
/// answer (its processes are up, whether or not it has a quorum: [`probe::answers`]); returns
/// how long it took and what it said.
pub async fn wait_answering(
    docker: &Docker,
    host: &Host,
    wait: Duration,
) -> Result<(Duration, String)> {
    match poll(docker, host, wait, || probe::answers(host)).await? {
        Ok(answer) => Ok(answer),
        Err(last) => bail!(
            "{} did not answer its health check within {} s (last: {last})",
            host.name,
            wait.as_secs()
        ),
    }
}

/// Freezes every container, the last first (the node before its acceptor).
pub async fn pause(docker: &Docker, host: &Host) -> Result<String> {
    if !host.running() {
        return Err(ChaosError::not_running(format!("host {}", host.name), host.states()).into());
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
