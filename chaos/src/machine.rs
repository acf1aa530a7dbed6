//! A machine's power: `kill-machine` and `start-machine`. The machine is the engine that runs
//! a host (engines.rs). When the hosts file names the container that engine runs in
//! (`machine=`, the simulated machines of `make cluster-up`), the power cut stops that
//! container on the local engine with SIGKILL: the engine, its containerd and every container
//! on it die at once, as with a power cut, and its disk (the engine's volume) stays. Without
//! it (a real machine, whose power Docker cannot reach) the nearest thing is done: every
//! container of the testbed on that engine is killed at once. `start-machine` starts the
//! container again, waits until its engine answers, then starts the hosts it runs (their
//! restart policy is none, as for a killed host) and waits for their health.

use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use bollard::query_parameters::KillContainerOptionsBuilder;
use futures::future::join_all;

use crate::docker;
use crate::engines::{Engine, EngineSpec};
use crate::fault;
use crate::host::{connect_spec, Cluster, HostName};

/// How long `start-machine` waits for the engine to answer when no wait is given.
const ENGINE_START: Duration = Duration::from_secs(90);

/// The hosts the same engine runs as `name` (the hosts file's entries with its endpoint).
pub fn same_machine(cluster: &Cluster, name: HostName) -> Vec<HostName> {
    match cluster.hosts.get(&name) {
        Some(spec) => cluster
            .hosts
            .iter()
            .filter(|(_, s)| s.endpoint == spec.endpoint)
            .map(|(h, _)| *h)
            .collect(),
        None => vec![name],
    }
}

fn names(hosts: &[HostName]) -> String {
    hosts
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// The local engine and the container that plays `machine` (named by `machine=` of `name` in
/// the hosts file): the machines are containers of this engine.
async fn machine_container(
    name: HostName,
    machine: &str,
) -> Result<(Engine, bollard::models::ContainerInspectResponse)> {
    let local = Engine::local().await?;
    let info = local
        .docker
        .inspect_container(machine, None)
        .await
        .with_context(|| format!("machine {machine} (machine= of {name} in the hosts file)"))?;
    Ok((local, info))
}

/// Cuts the power of the machine that runs `name`.
pub async fn kill(cluster: &Cluster, name: HostName) -> Result<String> {
    let on = same_machine(cluster, name);
    if let Some(machine) = cluster.hosts.get(&name).and_then(|s| s.machine.as_deref()) {
        let (local, info) = machine_container(name, machine).await?;
        if !docker::is_running(&info) {
            bail!(
                "machine {machine} is already off ({})",
                docker::state_of(&info)
            );
        }
        let opts = KillContainerOptionsBuilder::default()
            .signal("KILL")
            .build();
        local
            .docker
            .kill_container(machine, Some(opts))
            .await
            .with_context(|| format!("cutting the power of {machine}"))?;
        return Ok(format!(
            "power cut: SIGKILL to machine {machine} (its engine and every container on it; \
             hosts {})",
            names(&on)
        ));
    }
    // No machine to stop: every container of the testbed on the engine, at once.
    let host = cluster.host(name).await?;
    let found = docker::project_containers(host.docker(), &cluster.project).await?;
    let mut up = Vec::new();
    for c in found.into_values() {
        let info = host.docker().inspect_container(&c.id, None).await?;
        if fault::is_up(&info) {
            up.push(c);
        }
    }
    if up.is_empty() {
        bail!(
            "nothing of project {:?} runs on {}'s engine ({})",
            cluster.project,
            name,
            host.engine.label
        );
    }
    let opts = KillContainerOptionsBuilder::default()
        .signal("KILL")
        .build();
    let kills = up.iter().map(|c| {
        let opts = opts.clone();
        let docker = host.docker();
        async move {
            docker
                .kill_container(&c.id, Some(opts))
                .await
                .with_context(|| format!("killing {}", c.name))
        }
    });
    for result in join_all(kills).await {
        result?;
    }
    let mut killed: Vec<&str> = up.iter().map(|c| c.name.as_str()).collect();
    killed.sort_unstable();
    Ok(format!(
        "no machine= for {name}: SIGKILL at once to every container of the testbed on engine {} \
         ({})",
        host.engine.label,
        killed.join(", ")
    ))
}

/// Powers the machine of `name` on again: its engine, then its hosts, each waited for.
pub async fn start(cluster: &Cluster, name: HostName, wait: Duration) -> Result<String> {
    let begin = Instant::now();
    let on = same_machine(cluster, name);
    let mut done = Vec::new();
    let spec = cluster.hosts.get(&name);
    if let Some((spec, machine)) = spec.and_then(|s| s.machine.as_deref().map(|m| (s, m))) {
        let (local, info) = machine_container(name, machine).await?;
        if docker::is_running(&info) {
            done.push(format!("machine {machine} already on"));
        } else {
            local
                .docker
                .start_container(machine, None)
                .await
                .with_context(|| format!("powering {machine} on"))?;
            let took = wait_engine(spec, if wait.is_zero() { ENGINE_START } else { wait }).await?;
            done.push(format!(
                "machine {machine} on, its engine answers after {:.1} s",
                took.as_secs_f64()
            ));
        }
    }
    // The hosts on it, found afresh now that its engine answers.
    let fresh = Cluster::load(&cluster.hosts, &cluster.project).await?;
    for h in &on {
        if let Some(why) = fresh.off(*h) {
            bail!("host {h}: {why} (done: {})", done.join("; "));
        }
        let host = fresh.host(*h).await?;
        if fault::is_down(&host) {
            let left = wait.saturating_sub(begin.elapsed());
            let wait_host = if wait.is_zero() {
                Duration::ZERO
            } else {
                left.max(Duration::from_secs(1))
            };
            done.push(fault::start(host.docker(), &host, wait_host).await?);
        } else {
            done.push(format!("{h} already running"));
        }
    }
    Ok(format!(
        "{} (hosts {}; {:.1} s in all)",
        done.join("; "),
        names(&on),
        begin.elapsed().as_secs_f64()
    ))
}

/// Waits until the engine answers; how long that took.
async fn wait_engine(spec: &EngineSpec, wait: Duration) -> Result<Duration> {
    let begin = Instant::now();
    loop {
        match connect_spec(spec).await {
            Ok(_) => return Ok(begin.elapsed()),
            Err(why) if begin.elapsed() >= wait => {
                return Err(anyhow!(
                    "the engine {} does not answer after {:.0} s: {why}",
                    spec.endpoint,
                    wait.as_secs_f64()
                ))
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}
