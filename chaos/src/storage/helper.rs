//! The storage faults' helper: a short-lived container from the host's own image (so the
//! system's own tools are at hand), without network, that mounts the host's volumes and runs
//! one script on them.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{LogsOptionsBuilder, RemoveContainerOptionsBuilder};
use bollard::Docker;
use futures::StreamExt;

use super::disk::DATA;
use crate::host::Host;

/// How long a helper may run (a copy of a few hundred MB on this machine takes seconds).
const HELPER_TIMEOUT: Duration = Duration::from_secs(120);

/// The named volumes of the host's containers: (volume name, where it is mounted).
pub fn volumes(host: &Host) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for m in &host.members {
        for mount in m.info.mounts.iter().flatten() {
            if mount.typ.as_deref() != Some("volume") {
                continue;
            }
            if let (Some(name), Some(dest)) = (&mount.name, &mount.destination) {
                if !out.iter().any(|(n, _)| n == name) {
                    out.push((name.clone(), dest.clone()));
                }
            }
        }
    }
    out
}

/// Runs `script` in a helper container from the host's image with these volume binds
/// (`name:/path[:ro]`), no network; returns its output, an error with it on a non-zero exit.
/// The helper carries the project's Compose label, so that a helper left behind by an
/// interrupted chaos is an orphan `make down` removes.
pub(crate) async fn helper(
    docker: &Docker,
    project: &str,
    host: &Host,
    binds: Vec<String>,
    script: String,
) -> Result<String> {
    let image = host
        .main()
        .info
        .image
        .clone()
        .ok_or_else(|| anyhow!("{} has no image id", host.main().container.name))?;
    let body = ContainerCreateBody {
        image: Some(image),
        cmd: Some(vec!["sh".into(), "-c".into(), script]),
        entrypoint: Some(vec![]),
        user: Some("0".into()),
        network_disabled: Some(true),
        labels: Some(HashMap::from([
            (
                "com.docker.compose.project".to_string(),
                project.to_string(),
            ),
            (
                "com.docker.compose.service".to_string(),
                "storage-helper".to_string(),
            ),
        ])),
        host_config: Some(HostConfig {
            binds: Some(binds),
            network_mode: Some("none".into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let created = docker
        .create_container(None, body)
        .await
        .context("creating the storage helper container")?;
    let result = async {
        docker.start_container(&created.id, None).await?;
        let waited = tokio::time::timeout(
            HELPER_TIMEOUT,
            docker
                .wait_container(
                    &created.id,
                    None::<bollard::query_parameters::WaitContainerOptions>,
                )
                .next(),
        )
        .await
        .map_err(|_| {
            anyhow!(
                "the storage helper took over {} s",
                HELPER_TIMEOUT.as_secs()
            )
        })?;
        let mut output = String::new();
        let opts = LogsOptionsBuilder::default()
            .stdout(true)
            .stderr(true)
            .build();
        let mut logs = docker.logs(&created.id, Some(opts));
        while let Some(chunk) = logs.next().await {
            output.push_str(&chunk?.to_string());
        }
        let output = output.trim().to_string();
        // A non-zero exit arrives as an error of the wait stream.
        match waited {
            Some(Ok(r)) if r.status_code == 0 => Ok(output),
            Some(Ok(r)) => bail!("the storage helper exited with {}: {output}", r.status_code),
            Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => {
                bail!("the storage helper exited with {code}: {output}")
            }
            Some(Err(e)) => Err(anyhow!("the storage helper failed: {e}: {output}")),
            None => bail!("the storage helper vanished"),
        }
    }
    .await;
    let rm = RemoveContainerOptionsBuilder::default().force(true).build();
    let removed = docker.remove_container(&created.id, Some(rm)).await;
    let out = result?;
    removed.context("removing the storage helper container")?;
    Ok(out)
}

/// The host's data volume (its one named volume, mounted at /data).
pub(super) fn data_volume(host: &Host) -> Result<String> {
    let vols = volumes(host);
    vols.iter()
        .find(|(_, dest)| dest == DATA)
        .map(|(name, _)| name.clone())
        .ok_or_else(|| {
            anyhow!(
                "host {} has no data volume mounted at {DATA} (found: {vols:?})",
                host.name
            )
        })
}
