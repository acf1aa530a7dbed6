//! Starting a swarm task's container again, on a swarm of several engines. On one engine chaos
//! starts the same container (it keeps its address). Across engines that does not work: once
//! the task has failed (restart policy none), its engine drops its copy of the overlay network
//! when nothing else there uses it ("network … not found"), the other engines forget where its
//! address lives, and swarm hands the address back to its pool. So there the host's service
//! is told to replace its task (`docker service update --force`, through the host's engine,
//! which must be a manager): the new container is swarm's own, announced to every engine, on
//! the same machine (placement) with the same data volume; it takes the lowest free address
//! of the network, which is the old one unless another task took it meanwhile (the result
//! says both).

use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use bollard::query_parameters::{
    InspectServiceOptions, ListContainersOptionsBuilder, UpdateServiceOptionsBuilder,
};
use bollard::Docker;
use tokio::time::{sleep, Instant};

use crate::docker::{self, Container, LABEL_SWARM_SERVICE};
use crate::host::Member;

/// How long the new task may take to run.
const TASK_START: Duration = Duration::from_secs(60);

/// Whether the engine is part of a swarm of more than one node.
async fn many_engines(docker: &Docker) -> Result<(bool, bool)> {
    let info = docker.info().await?;
    let swarm = info.swarm.unwrap_or_default();
    Ok((
        swarm.nodes.unwrap_or(0) > 1,
        swarm.control_available.unwrap_or(false),
    ))
}

/// Starts the member's container; a swarm task on a swarm of several engines is replaced by a
/// new task instead (returned, with what was done, when that happened).
pub async fn start(docker: &Docker, member: &Member) -> Result<Option<(Member, String)>> {
    let id = &member.container.id;
    if member.container.swarm {
        let (many, manager) = many_engines(docker).await?;
        if many {
            if !manager {
                bail!(
                    "{}: on a swarm of several engines a host's task is replaced through its \
                     service, and its engine is a worker: make every machine a manager \
                     (docs/swarm.md)",
                    member.container.name
                );
            }
            return replace(docker, member).await.map(Some);
        }
    }
    docker
        .start_container(id, None)
        .await
        .with_context(|| format!("starting {}", member.container.name))?;
    Ok(None)
}

/// The address of the container on its first network of its own.
fn address(member_info: &bollard::models::ContainerInspectResponse) -> String {
    let mut addrs: Vec<(String, String)> = docker::addresses(member_info).into_iter().collect();
    addrs.sort();
    addrs.first().map(|(_, a)| a.clone()).unwrap_or_default()
}

async fn replace(docker: &Docker, member: &Member) -> Result<(Member, String)> {
    let labels = member
        .info
        .config
        .as_ref()
        .and_then(|c| c.labels.clone())
        .unwrap_or_default();
    let service = labels
        .get(LABEL_SWARM_SERVICE)
        .cloned()
        .ok_or_else(|| anyhow!("{} has no swarm service label", member.container.name))?;
    // Right after a machine comes back the swarm may still be choosing its leader: retry.
    let begin = Instant::now();
    loop {
        match force_update(docker, &service).await {
            Ok(()) => break,
            Err(e) if begin.elapsed() > TASK_START => return Err(e),
            Err(_) => sleep(Duration::from_millis(500)).await,
        }
    }
    // The new task's container, running, on this engine.
    let begin = Instant::now();
    let filter = format!("{LABEL_SWARM_SERVICE}={service}");
    loop {
        let list = docker
            .list_containers(Some(
                ListContainersOptionsBuilder::default()
                    .filters(&std::collections::HashMap::from([
                        ("label", vec![filter.as_str()]),
                        ("status", vec!["running"]),
                    ]))
                    .build(),
            ))
            .await?;
        if let Some(c) = list
            .into_iter()
            .find(|c| c.id.as_deref() != Some(id_of(member)))
        {
            let id = c.id.unwrap_or_default();
            let info = docker.inspect_container(&id, None).await?;
            let name = info
                .name
                .clone()
                .unwrap_or_default()
                .trim_start_matches('/')
                .to_string();
            let what = format!(
                "new task of {service} (the old one failed): {name}, address {} (was {})",
                address(&info),
                address(&member.info)
            );
            let fresh = Member {
                container: Container {
                    id,
                    name,
                    service: member.container.service.clone(),
                    swarm: true,
                },
                info,
            };
            return Ok((fresh, what));
        }
        if begin.elapsed() > TASK_START {
            bail!(
                "the new task of {service} is not running on this engine after {} s (docker service ps {service})",
                TASK_START.as_secs()
            );
        }
        sleep(Duration::from_millis(250)).await;
    }
}

/// `docker service update --force SERVICE`: a new task with the same spec.
async fn force_update(docker: &Docker, service: &str) -> Result<()> {
    let svc = docker
        .inspect_service(service, None::<InspectServiceOptions>)
        .await
        .with_context(|| format!("inspecting service {service}"))?;
    let version = svc
        .version
        .and_then(|v| v.index)
        .ok_or_else(|| anyhow!("service {service} has no version"))?;
    let mut spec = svc
        .spec
        .ok_or_else(|| anyhow!("service {service} has no spec"))?;
    let mut template = spec.task_template.take().unwrap_or_default();
    template.force_update = Some(template.force_update.unwrap_or(0) + 1);
    spec.task_template = Some(template);
    let opts = UpdateServiceOptionsBuilder::default()
        .version(i32::try_from(version).unwrap_or(i32::MAX))
        .build();
    docker
        .update_service(service, spec, opts, None)
        .await
        .with_context(|| format!("replacing the task of {service}"))?;
    Ok(())
}

fn id_of(member: &Member) -> &str {
    &member.container.id
}
