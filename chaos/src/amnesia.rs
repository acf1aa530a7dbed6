//! Amnesia: stop a host, erase its data volumes, start it empty. A process that crashes and
//! comes back without what it promised: on Perseus this breaks CASPaxos's assumption that
//! acceptors never forget (their `appendfsync always` is what normally keeps it true), so
//! acknowledged writes may be lost; docs/faults.md explains it.
//!
//! The erase runs in the storage faults' helper container (`storage::helper`: the host's own
//! image, no network) that mounts the host's named volumes; every entry under each mount is
//! deleted, the volume itself stays (Compose owns it and `make down` removes it).

use std::time::Duration;

use anyhow::{bail, Context, Result};
use bollard::Docker;
use futures::StreamExt;

use crate::host::Host;
use crate::{fault, storage};

/// The helper's script: delete everything inside each mount point.
fn erase_script(destinations: &[String]) -> String {
    destinations
        .iter()
        .map(|d| format!("find '{d}' -mindepth 1 -delete"))
        .collect::<Vec<_>>()
        .join(" && ")
}

/// Kill, erase, start (waiting up to `wait` until the host answers `/health` at all: an
/// empty Perseus acceptor counts toward no quorum, so whether the host is *healthy* depends
/// on the others, and a scenario may wipe it while they are cut off).
pub async fn amnesia(
    docker: &Docker,
    project: &str,
    host: &Host,
    wait: Duration,
) -> Result<String> {
    let vols = storage::volumes(host);
    if vols.is_empty() {
        bail!("host {} has no data volume to erase", host.name);
    }
    let killed = if host.members.iter().any(|m| fault::is_up(&m.info)) {
        fault::kill(docker, host).await?
    } else {
        "already stopped".to_string()
    };
    for m in &host.members {
        // Kill returns before the containers are down; the erase must not race Redis.
        let _ = docker
            .wait_container(
                &m.container.id,
                None::<bollard::query_parameters::WaitContainerOptions>,
            )
            .next()
            .await;
    }
    // The storage faults' helper container (the host's image, no network, the project's
    // label so that `make down` removes one left behind).
    let binds = vols.iter().map(|(n, d)| format!("{n}:{d}")).collect();
    let dests: Vec<String> = vols.iter().map(|(_, d)| d.clone()).collect();
    storage::helper(docker, project, host, binds, erase_script(&dests))
        .await
        .context("erasing the data volumes")?;
    let fresh = host.refresh().await?;
    let mut started = fault::start(docker, &fresh, Duration::ZERO).await?;
    if !wait.is_zero() {
        let (took, code) = fault::wait_answering(docker, &fresh, wait).await?;
        started.push_str(&format!(
            "; {} answers /health ({code}) after {:.1} s",
            host.name,
            took.as_secs_f64()
        ));
    }
    let names: Vec<String> = vols.iter().map(|(n, d)| format!("{n} ({d})")).collect();
    Ok(format!("{killed}; erased {}; {started}", names.join(", ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erases_inside_each_mount() {
        assert_eq!(
            erase_script(&["/data".into()]),
            "find '/data' -mindepth 1 -delete"
        );
    }
}
