//! A swarm task's network on an engine where nothing else uses it. A worker engine drops its
//! copy of the stack's overlay network once no running task there uses it: after a killed
//! host (restart policy none) on a machine that runs only that host, or after a power cut of
//! the machine, the host's own container then refuses to start ("network … not found"). The
//! keeper is a container that only sleeps, attached to the same networks by name, which makes
//! the engine fetch the network from the swarm again; it stays, so that the network does too,
//! carries the stack's label (`make down ENGINE=swarm` removes it with the stack's
//! containers) and is one per engine and stack.

use std::collections::HashMap;

use anyhow::{anyhow, Context, Result};
use bollard::errors::Error as DockerError;
use bollard::models::{ContainerCreateBody, EndpointSettings, HostConfig, NetworkingConfig};
use bollard::query_parameters::{CreateContainerOptionsBuilder, RemoveContainerOptionsBuilder};
use bollard::Docker;

use crate::docker::{self, LABEL_STACK};
use crate::host::Member;

/// Whether starting failed because the engine no longer has one of the container's networks.
fn missing_network(e: &DockerError) -> bool {
    matches!(e, DockerError::DockerResponseServerError { status_code: 404, message }
        if message.contains("network") && message.contains("not found"))
}

/// Starts the container; a swarm task whose network the engine dropped gets it back through
/// a keeper first.
pub async fn start(docker: &Docker, member: &Member) -> Result<()> {
    let id = &member.container.id;
    match docker.start_container(id, None).await {
        Ok(()) => Ok(()),
        Err(e) if member.container.swarm && missing_network(&e) => {
            let kept = keep_networks(docker, member)
                .await
                .with_context(|| format!("{e}; bringing the network back failed"))?;
            docker.start_container(id, None).await.with_context(|| {
                format!(
                    "starting {} (after a keeper on {kept})",
                    member.container.name
                )
            })
        }
        Err(e) => Err(anyhow!(e)).with_context(|| format!("starting {}", member.container.name)),
    }
}

/// Runs the engine's keeper on the member's networks (replacing a stopped one); names them.
async fn keep_networks(docker: &Docker, member: &Member) -> Result<String> {
    let labels = member
        .info
        .config
        .as_ref()
        .and_then(|c| c.labels.clone())
        .unwrap_or_default();
    let stack = labels
        .get(LABEL_STACK)
        .cloned()
        .ok_or_else(|| anyhow!("{} has no stack label", member.container.name))?;
    let networks: Vec<String> = member
        .info
        .network_settings
        .as_ref()
        .and_then(|n| n.networks.as_ref())
        .map(|n| {
            n.keys()
                .filter(|k| !docker::SWARM_PLUMBING.contains(&k.as_str()))
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    let first = networks
        .first()
        .cloned()
        .ok_or_else(|| anyhow!("{} is on no network of its own", member.container.name))?;
    let image = member
        .info
        .image
        .clone()
        .ok_or_else(|| anyhow!("{} has no image id", member.container.name))?;
    let name = format!("{stack}-network-keeper");
    let _ = docker
        .remove_container(
            &name,
            Some(RemoveContainerOptionsBuilder::default().force(true).build()),
        )
        .await;
    let endpoints: HashMap<String, EndpointSettings> = networks
        .iter()
        .map(|n| (n.clone(), EndpointSettings::default()))
        .collect();
    let body = ContainerCreateBody {
        image: Some(image),
        entrypoint: Some(vec!["sleep".into()]),
        cmd: Some(vec!["infinity".into()]),
        labels: Some(HashMap::from([
            (LABEL_STACK.to_string(), stack.clone()),
            ("perseus.network-keeper".to_string(), "true".to_string()),
        ])),
        host_config: Some(HostConfig {
            network_mode: Some(first),
            ..Default::default()
        }),
        networking_config: Some(NetworkingConfig {
            endpoints_config: Some(endpoints),
        }),
        ..Default::default()
    };
    let opts = CreateContainerOptionsBuilder::default().name(&name).build();
    let created = docker
        .create_container(Some(opts), body)
        .await
        .with_context(|| format!("creating {name}"))?;
    docker
        .start_container(&created.id, None)
        .await
        .with_context(|| format!("starting {name}"))?;
    Ok(networks.join(", "))
}
