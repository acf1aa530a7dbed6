//! Storage faults: the host's disk goes wrong while its processes do nothing wrong. `amnesia`
//! erases every volume of the host, `wipe` empties the data directory, `snapshot` saves a copy
//! of it, `rollback` puts that copy back (the disk went back in time), `truncate` cuts the tail
//! of the log and repairs what is left the way the system's own tools advise. Each stops the host (or, with `--layer acceptor`,
//! only a Perseus host's Redis), changes the data and starts it again; snapshot only freezes it.
//!
//! Every system keeps its data on one named volume mounted at `/data` ([`layout`] says what
//! lies inside and which file is its log); the data directory is that volume. The file work runs
//! in a short-lived helper container (the host's own image, so the system's own tools are at
//! hand; no network) that mounts the host's volume and, for snapshot and rollback, the host's
//! snapshot volume (`<project>_<host>-snapshot`, labelled [`SNAPSHOT_LABEL`]; `make down`
//! removes it). The scripts are built by pure functions; docs/faults.md says per system what
//! the data directory and the log are and what its recovery makes of each fault.
//!
//! Layout: `disk.rs` says what lies on each system's volume and writes the helper's scripts
//! (pure, tested without Docker); `helper.rs` runs a script in the helper container next to
//! the host's volumes; this file acts out the faults (stop, change the files, start).

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use bollard::models::VolumeCreateRequest;
use bollard::query_parameters::ListVolumesOptionsBuilder;
use bollard::Docker;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use tokio::time::Instant;

use crate::error::ChaosError;
use crate::fault;
use crate::host::Host;
use crate::layer;

mod disk;
mod helper;

use disk::{
    copy_back_script, copy_out_script, erase_all_script, erase_script, layout, snapshot_volume,
    truncate_script, DATA, SNAPSHOT_MOUNT,
};
use helper::data_volume;
use helper::{helper, volumes};

/// The label that marks a snapshot volume; its value is the host's name.
pub const SNAPSHOT_LABEL: &str = "perseus.snapshot.host";
/// The label with the project the snapshot belongs to.
pub const PROJECT_LABEL: &str = "perseus.snapshot.project";
/// The label with the moment the copy began (RFC 3339).
pub const TAKEN_LABEL: &str = "perseus.snapshot.taken";

/// A saved snapshot: its volume and when it was taken.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Saved {
    pub host: String,
    pub volume: String,
    pub taken: Option<DateTime<Utc>>,
}

/// The snapshots of the project, by host name.
pub async fn snapshots(docker: &Docker, project: &str) -> Result<HashMap<String, Saved>> {
    let mut filters = HashMap::new();
    filters.insert(
        "label".to_string(),
        vec![format!("{PROJECT_LABEL}={project}")],
    );
    let opts = ListVolumesOptionsBuilder::default()
        .filters(&filters)
        .build();
    let listed = docker
        .list_volumes(Some(opts))
        .await
        .context("listing the snapshot volumes")?;
    let mut out = HashMap::new();
    for v in listed.volumes.unwrap_or_default() {
        let Some(host) = v.labels.get(SNAPSHOT_LABEL) else {
            continue;
        };
        let taken = v
            .labels
            .get(TAKEN_LABEL)
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc));
        out.insert(
            host.clone(),
            Saved {
                host: host.clone(),
                volume: v.name.clone(),
                taken,
            },
        );
    }
    Ok(out)
}

/// Which part of a Perseus host a storage fault stops: the whole host, or only its Redis.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    Host,
    Acceptor,
}

/// Stops the host (SIGKILL, as `kill` does, and waits until its containers are down) or only
/// a Perseus host's Redis; says what it did.
async fn stop(docker: &Docker, host: &Host, how: Stop) -> Result<String> {
    match how {
        Stop::Acceptor => {
            if layer::acceptor_down(docker, host.main()).await? {
                Ok("acceptor already stopped".into())
            } else {
                layer::kill_acceptor(docker, host.main()).await
            }
        }
        Stop::Host => {
            let killed = if host.members.iter().any(|m| fault::is_up(&m.info)) {
                if fault::any_paused(host) {
                    bail!("host {} is paused: resume it first", host.name);
                }
                fault::kill(docker, host).await?
            } else {
                "already stopped".to_string()
            };
            for m in &host.members {
                // Kill returns before the containers are down: nothing may write while the
                // helper changes the files.
                let _ = docker
                    .wait_container(
                        &m.container.id,
                        None::<bollard::query_parameters::WaitContainerOptions>,
                    )
                    .next()
                    .await;
            }
            Ok(killed)
        }
    }
}

/// Starts what `stop` stopped; with a non-zero `wait`, waits until the host answers its
/// health URL at all (whether it is *healthy* may depend on the others and on the system's
/// repair, which is what the fault measures). A host that exits while starting or does not
/// answer within `wait` is said so in the detail, not failed: the data change was made, and a
/// system that refuses to start on it (etcd on an emptied data directory) or takes longer to
/// recover has given its answer to the fault, which the run's table reports.
async fn start(docker: &Docker, host: &Host, how: Stop, wait: Duration) -> Result<String> {
    match how {
        Stop::Acceptor => layer::start_acceptor(docker, host.main(), wait).await,
        Stop::Host => {
            let fresh = host.refresh().await?;
            let mut started = fault::start(docker, &fresh, Duration::ZERO).await?;
            if !wait.is_zero() {
                match fault::wait_answering(docker, &fresh, wait).await {
                    Ok((took, code)) => started.push_str(&format!(
                        "; {} answers its health check ({code}) after {:.1} s",
                        host.name,
                        took.as_secs_f64()
                    )),
                    Err(e) => started.push_str(&format!(
                        "; but {} is not back: {e:#} (the system's answer to the fault)",
                        host.name
                    )),
                }
            }
            Ok(started)
        }
    }
}

/// `snapshot`: freezes the containers that hold the data (docker pause, as a volume snapshot
/// freezes the file system), copies the data volume into the host's snapshot volume
/// (replacing an older one), thaws them. A stopped host is copied as it lies; a paused one
/// stays paused.
pub async fn snapshot(docker: &Docker, project: &str, host: &Host) -> Result<String> {
    let data = data_volume(host)?;
    let volume = snapshot_volume(project, host.name);
    let taken = Utc::now();
    // Only the containers that mount the volume write to it (a Perseus host: aN, not pN).
    let holders: Vec<_> = host
        .members
        .iter()
        .filter(|m| {
            m.info
                .mounts
                .iter()
                .flatten()
                .any(|mount| mount.name.as_deref() == Some(data.as_str()))
        })
        .filter(|m| crate::docker::is_running(&m.info))
        .collect();
    match docker
        .remove_volume(
            &volume,
            None::<bollard::query_parameters::RemoveVolumeOptions>,
        )
        .await
    {
        Ok(()) => {}
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => {}
        Err(e) => return Err(anyhow!(e).context(format!("removing the old snapshot {volume}"))),
    }
    let labels = HashMap::from([
        (SNAPSHOT_LABEL.to_string(), host.name.to_string()),
        (PROJECT_LABEL.to_string(), project.to_string()),
        (
            TAKEN_LABEL.to_string(),
            perseus_model::time::rfc3339_ms(taken),
        ),
    ]);
    docker
        .create_volume(VolumeCreateRequest {
            name: Some(volume.clone()),
            labels: Some(labels),
            ..Default::default()
        })
        .await
        .with_context(|| format!("creating the snapshot volume {volume}"))?;
    let frozen = Instant::now();
    let mut paused: Vec<String> = Vec::new();
    for m in &holders {
        if let Err(e) = docker.pause_container(&m.container.id).await {
            for id in &paused {
                let _ = docker.unpause_container(id).await;
            }
            return Err(anyhow!(e).context(format!("freezing {}", m.container.name)));
        }
        paused.push(m.container.id.clone());
    }
    let copied = helper(
        docker,
        project,
        host,
        vec![
            format!("{data}:{DATA}:ro"),
            format!("{volume}:{SNAPSHOT_MOUNT}"),
        ],
        copy_out_script(),
    )
    .await;
    let mut thaw_failed = Vec::new();
    for id in &paused {
        if let Err(e) = docker.unpause_container(id).await {
            thaw_failed.push(format!("{e}"));
        }
    }
    let held = frozen.elapsed();
    if !thaw_failed.is_empty() {
        bail!(
            "the snapshot's copy {}, but thawing failed: {} (chaos resume {} thaws it)",
            if copied.is_ok() {
                "succeeded"
            } else {
                "failed"
            },
            thaw_failed.join("; "),
            host.name
        );
    }
    let size = copied.with_context(|| format!("copying {data} into {volume}"))?;
    let how = if paused.is_empty() {
        "copied as it lies (not running)".to_string()
    } else {
        format!("frozen for {:.2} s while copied", held.as_secs_f64())
    };
    Ok(format!(
        "snapshot of {data} ({size}) saved in {volume} at {}; {how}",
        perseus_model::time::rfc3339_ms(taken)
    ))
}

/// `rollback`: stops the host (or its acceptor), replaces its data with the snapshot, starts
/// it. The snapshot stays (a later rollback puts the same copy back).
pub async fn rollback(
    docker: &Docker,
    project: &str,
    host: &Host,
    how: Stop,
    wait: Duration,
) -> Result<String> {
    let data = data_volume(host)?;
    let saved = snapshots(docker, project).await?;
    let Some(snap) = saved.get(&host.name.to_string()) else {
        bail!(
            "no snapshot of {} to roll back to: take one first (chaos snapshot {}, make snapshot-{})",
            host.name,
            host.name,
            host.name
        );
    };
    let age = snap
        .taken
        .map(|t| {
            format!(
                ", {:.0} s old",
                (Utc::now() - t).num_milliseconds() as f64 / 1000.0
            )
        })
        .unwrap_or_default();
    let stopped = stop(docker, host, how).await?;
    let copied = helper(
        docker,
        project,
        host,
        vec![
            format!("{data}:{DATA}"),
            format!("{}:{SNAPSHOT_MOUNT}:ro", snap.volume),
        ],
        copy_back_script(),
    )
    .await
    .with_context(|| format!("copying {} back into {data} ({stopped})", snap.volume))?;
    let started = start(docker, host, how, wait).await?;
    let when = snap
        .taken
        .map(perseus_model::time::rfc3339_ms)
        .unwrap_or_else(|| "?".into());
    Ok(format!(
        "{stopped}; {data} replaced by the snapshot of {when} ({copied}{age}); {started}"
    ))
}

/// `amnesia`: stops the host, erases every one of its volumes, starts it empty (waiting up to
/// `wait` until it answers its health check at all: an empty Perseus acceptor counts toward
/// no quorum, so whether the host is *healthy* depends on the others, and a scenario may wipe
/// it while they are cut off). A process that crashes and comes back without what it
/// promised: on Perseus this breaks CASPaxos's assumption that acceptors never forget (their
/// `appendfsync always` is what normally keeps it true), so acknowledged writes may be lost;
/// docs/faults.md explains it. Every entry under each mount is deleted, the volume itself
/// stays (Compose owns it and `make down` removes it).
pub async fn amnesia(
    docker: &Docker,
    project: &str,
    host: &Host,
    wait: Duration,
) -> Result<String> {
    let vols = volumes(host);
    if vols.is_empty() {
        bail!("host {} has no data volume to erase", host.name);
    }
    let stopped = stop(docker, host, Stop::Host).await?;
    let binds = vols.iter().map(|(n, d)| format!("{n}:{d}")).collect();
    let dests: Vec<String> = vols.iter().map(|(_, d)| d.clone()).collect();
    helper(docker, project, host, binds, erase_all_script(&dests))
        .await
        .context("erasing the data volumes")?;
    let started = start(docker, host, Stop::Host, wait).await?;
    let names: Vec<String> = vols.iter().map(|(n, d)| format!("{n} ({d})")).collect();
    Ok(format!("{stopped}; erased {}; {started}", names.join(", ")))
}

/// `wipe`: stops the host (or its acceptor), empties its data volume, starts it.
pub async fn wipe(
    docker: &Docker,
    project: &str,
    host: &Host,
    how: Stop,
    wait: Duration,
) -> Result<String> {
    let data = data_volume(host)?;
    let stopped = stop(docker, host, how).await?;
    helper(
        docker,
        project,
        host,
        vec![format!("{data}:{DATA}")],
        erase_script(),
    )
    .await
    .with_context(|| format!("emptying {data} ({stopped})"))?;
    let started = start(docker, host, how, wait).await?;
    Ok(format!("{stopped}; emptied {data}; {started}"))
}

/// `truncate`: stops the host (or its acceptor), cuts `bytes` off its log's tail and repairs
/// it (see [`Log`]), starts it.
pub async fn truncate(
    docker: &Docker,
    project: &str,
    host: &Host,
    how: Stop,
    bytes: u32,
    wait: Duration,
) -> Result<String> {
    // Bad input changes nothing: a system without a reachable log is refused before the stop,
    // as a fault this system cannot have (the event's failure is `unsupported`, and the
    // storage table says "not applicable" rather than counting a refusal or a repair).
    let script = truncate_script(layout(host.name.system).log, bytes).map_err(|e| {
        ChaosError::Unsupported(format!(
            "{} ({}): {e:#}; nothing was stopped or changed",
            host.name,
            host.name.system.title()
        ))
    })?;
    let data = data_volume(host)?;
    let stopped = stop(docker, host, how).await?;
    let cut = helper(
        docker,
        project,
        host,
        vec![format!("{data}:{DATA}")],
        script,
    )
    .await;
    // Start again even when the cut failed: the host must not stay down by our hand.
    let started = start(docker, host, how, wait).await;
    let cut = cut.with_context(|| format!("cutting the log ({stopped})"))?;
    let started = started?;
    Ok(format!("{stopped}; {}; {started}", cut.replace('\n', "; ")))
}
