//! Storage faults: the host's disk goes wrong while its processes do nothing wrong. `wipe`
//! empties the data directory, `snapshot` saves a copy of it, `rollback` puts that copy back
//! (the disk went back in time), `truncate` cuts the tail of the log and repairs what is left
//! the way the system's own tools advise. Each stops the host (or, with `--layer acceptor`,
//! only a Perseus host's Redis), changes the data and starts it again; snapshot only freezes it.
//!
//! Every system keeps its data on one named volume mounted at `/data` ([`layout`] says what
//! lies inside and which file is its log); the data directory is that volume. The file work runs
//! in a short-lived helper container (the host's own image, so the system's own tools are at
//! hand; no network) that mounts the host's volume and, for snapshot and rollback, the host's
//! snapshot volume (`<project>_<host>-snapshot`, labelled [`SNAPSHOT_LABEL`]; `make down`
//! removes it). The scripts are built by pure functions; docs/faults.md says per system what
//! the data directory and the log are and what its recovery makes of each fault.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use bollard::models::{ContainerCreateBody, HostConfig, VolumeCreateRequest};
use bollard::query_parameters::{
    ListVolumesOptionsBuilder, LogsOptionsBuilder, RemoveContainerOptionsBuilder,
};
use bollard::Docker;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use tokio::time::Instant;

use crate::amnesia;
use crate::fault;
use crate::host::{Host, HostName, System};
use crate::layer;

/// The label that marks a snapshot volume; its value is the host's name.
pub const SNAPSHOT_LABEL: &str = "perseus.snapshot.host";
/// The label with the project the snapshot belongs to.
pub const PROJECT_LABEL: &str = "perseus.snapshot.project";
/// The label with the moment the copy began (RFC 3339).
pub const TAKEN_LABEL: &str = "perseus.snapshot.taken";

/// Where a host's volume is mounted, in its containers and in the helper.
const DATA: &str = "/data";
/// Where the helper mounts the snapshot volume.
const SNAPSHOT_MOUNT: &str = "/snapshot";
/// How long a helper may run (a copy of a few hundred MB on this machine takes seconds).
const HELPER_TIMEOUT: Duration = Duration::from_secs(120);

/// What a system's log is, on its data volume.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Log {
    /// Redis 7's multi-part AOF: the newest `*.incr.aof` in `dir` (Perseus acceptors, the
    /// Redis of a Sentinel host). Repaired with `redis-check-aof --fix`, Redis's own advice
    /// for a damaged AOF (it drops the torn command at the end).
    RedisAof { dir: &'static str },
    /// etcd's write-ahead log: the newest `*.wal` in `dir`, preallocated (64 MB of zeros after
    /// the records). etcd repairs a torn last record itself when it starts (`wal.Repair`).
    EtcdWal { dir: &'static str },
    /// ZooKeeper's transaction log: the newest `log.*` in `dir`, preallocated. ZooKeeper
    /// reads up to the torn record and takes that as the end of the log.
    ZookeeperTxns { dir: &'static str },
    /// JetStream's message blocks: the newest `*.blk` of the key-value bucket's stream under
    /// `store`. The server checks the last block when it starts and drops a torn record.
    NatsBlocks { store: &'static str },
    /// PostgreSQL's write-ahead log in `pgdata/pg_wal`: segments are recycled, so the end is
    /// found with `pg_waldump` from the last checkpoint, and the tail before it is zeroed (a
    /// torn page); crash recovery stops at the first invalid record and takes it as the end.
    PostgresWal {
        pgdata: &'static str,
        bin: &'static str,
    },
    /// No log a file cut can reach (why).
    Unreachable { why: &'static str },
}

/// What lives on a system's data volume.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// The data directory proper, inside the volume (the whole volume is wiped, copied and
    /// restored: configuration a system rewrites at run time lives there too).
    pub data: &'static str,
    pub log: Log,
}

/// Where each system keeps its data (compose/systems/*, docker-compose.yml).
pub fn layout(system: System) -> Layout {
    match system.cluster() {
        System::Perseus => Layout {
            data: "/data",
            log: Log::RedisAof {
                dir: "/data/appendonlydir",
            },
        },
        System::Sentinel => Layout {
            data: "/data",
            log: Log::RedisAof {
                dir: "/data/appendonlydir",
            },
        },
        System::Zookeeper => Layout {
            data: "/data/zookeeper",
            log: Log::ZookeeperTxns {
                dir: "/data/zookeeper/version-2",
            },
        },
        System::Nats => Layout {
            data: "/data/nats",
            log: Log::NatsBlocks {
                store: "/data/nats/jetstream",
            },
        },
        System::Galera => Layout {
            data: "/data/mysql",
            log: Log::Unreachable {
                why: "InnoDB's redo log (ib_logfile0) is a fixed-size circular file whose end \
                      only InnoDB's own recovery can find, and Galera's write-set cache \
                      (galera.cache) is a ring buffer; a cut file would not be a torn tail. \
                      Use rollback (an older data directory) or wipe instead",
            },
        },
        System::Postgres => Layout {
            data: "/data/pg",
            log: Log::PostgresWal {
                pgdata: "/data/pg",
                bin: "/usr/lib/postgresql/15/bin",
            },
        },
        // etcd (both APIs)
        _ => Layout {
            data: "/data/etcd",
            log: Log::EtcdWal {
                dir: "/data/etcd/member/wal",
            },
        },
    }
}

/// The snapshot volume of a host: `perseus_a1-snapshot`.
pub fn snapshot_volume(project: &str, host: HostName) -> String {
    format!("{project}_{host}-snapshot")
}

/// Shell functions the truncate scripts share: `data_end FILE` prints the offset after the
/// last non-zero byte (a preallocated log is zeros after its records; the search halves the
/// file with `cmp` against /dev/zero, so a 64 MB file costs ~26 reads), `cut FILE END BYTES`
/// shortens the file to END - BYTES (not below 0) and says so.
const SHELL_FUNCTIONS: &str = r#"data_end() {
  size=$(stat -c %s "$1"); lo=0; hi=$size
  while [ "$lo" -lt "$hi" ]; do
    mid=$(( (lo + hi) / 2 ))
    if cmp -s -i "$mid:0" -n "$((size - mid))" "$1" /dev/zero; then hi=$mid; else lo=$((mid + 1)); fi
  done
  echo "$hi"
}
cut_tail() {
  size=$(stat -c %s "$1"); new=$(( $2 > $3 ? $2 - $3 : 0 ))
  truncate -s "$new" "$1"
  echo "cut $(( $2 - new )) bytes off the end of the records of $1 (records ended at $2 of $size bytes; now $new bytes)"
}
newest() { f=$(ls -t $1 2>/dev/null | head -n 1); [ -n "$f" ] || { echo "no log file matches $1" >&2; exit 3; }; echo "$f"; }
"#;

/// The helper's script that cuts `bytes` off the tail of the log and repairs it; it prints
/// what it did. An error for a system whose log cannot be cut.
pub fn truncate_script(log: Log, bytes: u32) -> Result<String> {
    let body = match log {
        Log::RedisAof { dir } => format!(
            "f=$(ls {dir}/*.incr.aof 2>/dev/null | sort -t. -k3,3n | tail -n 1)\n\
             [ -n \"$f\" ] || {{ echo 'no *.incr.aof in {dir}' >&2; exit 3; }}\n\
             cut_tail \"$f\" \"$(stat -c %s \"$f\")\" {bytes}\n\
             echo \"redis-check-aof --fix: $(echo y | redis-check-aof --fix \"$f\" 2>&1 | \
             grep -E 'Successfully truncated|is valid|not valid|Truncated|shrink' | tr '\\n' ' ')\"\n"
        ),
        Log::EtcdWal { dir } => format!(
            "f=$(ls {dir}/*.wal 2>/dev/null | sort | tail -n 1)\n\
             [ -n \"$f\" ] || {{ echo 'no *.wal in {dir}' >&2; exit 3; }}\n\
             cut_tail \"$f\" \"$(data_end \"$f\")\" {bytes}\n\
             echo 'etcd repairs the torn last record when it starts (wal.Repair)'\n"
        ),
        Log::ZookeeperTxns { dir } => format!(
            "f=$(newest '{dir}/log.*')\n\
             cut_tail \"$f\" \"$(data_end \"$f\")\" {bytes}\n\
             echo 'ZooKeeper reads up to the torn record and takes it as the end of the log'\n"
        ),
        Log::NatsBlocks { store } => format!(
            "f=$(newest '{store}/*/streams/KV_*/msgs/*.blk')\n\
             cut_tail \"$f\" \"$(data_end \"$f\")\" {bytes}\n\
             echo 'JetStream checks the last block when it starts and drops a torn record'\n"
        ),
        Log::PostgresWal { pgdata, bin } => format!(
            "ctl=$({bin}/pg_controldata {pgdata})\n\
             redo=$(echo \"$ctl\" | sed -n \"s/^Latest checkpoint's REDO location: *//p\")\n\
             tli=$(echo \"$ctl\" | sed -n \"s/^Latest checkpoint's TimeLineID: *//p\")\n\
             seg=$(echo \"$ctl\" | sed -n 's/^Bytes per WAL segment: *//p')\n\
             last=$({bin}/pg_waldump -p {pgdata}/pg_wal -t \"$tli\" -s \"$redo\" 2>/dev/null | tail -n 1)\n\
             set -- $(echo \"$last\" | sed -n 's/.*len (rec\\/tot): *[0-9]*\\/ *\\([0-9]*\\),.*lsn: \\([0-9A-F]*\\)\\/\\([0-9A-F]*\\),.*/\\1 \\2 \\3/p')\n\
             [ $# = 3 ] || {{ echo \"cannot find the end of the WAL from $redo: $last\" >&2; exit 3; }}\n\
             end=$(( (0x$2 << 32) + 0x$3 + $1 ))\n\
             segno=$(( end / seg )); off=$(( end % seg ))\n\
             f=$(printf '{pgdata}/pg_wal/%08X%08X%08X' \"$tli\" $(( segno / (0x100000000 / seg) )) $(( segno % (0x100000000 / seg) )))\n\
             n=$(( off > {bytes} ? {bytes} : off ))\n\
             dd if=/dev/zero of=\"$f\" bs=1 seek=$(( off - n )) count=$n conv=notrunc 2>/dev/null\n\
             echo \"zeroed the last $n bytes of the WAL before its end ($f, offset $off; the last record began at $2/$3); recovery stops at the torn record\"\n"
        ),
        Log::Unreachable { why } => bail!("truncate: {why}"),
    };
    Ok(format!("set -eu\n{SHELL_FUNCTIONS}{body}"))
}

/// The helper's script that saves the data volume (mounted at /data) into the snapshot
/// volume and prints its size.
pub fn copy_out_script() -> String {
    format!(
        "set -eu; find {SNAPSHOT_MOUNT} -mindepth 1 -delete; cp -a {DATA}/. {SNAPSHOT_MOUNT}/; \
         echo \"$(du -sk {SNAPSHOT_MOUNT} | cut -f1) KiB\""
    )
}

/// The helper's script that replaces the data volume's content by the snapshot's.
pub fn copy_back_script() -> String {
    format!(
        "set -eu; find {DATA} -mindepth 1 -delete; cp -a {SNAPSHOT_MOUNT}/. {DATA}/; \
         echo \"$(du -sk {DATA} | cut -f1) KiB\""
    )
}

/// The helper's script that empties the data volume.
pub fn erase_script() -> String {
    format!("set -eu; find {DATA} -mindepth 1 -delete; echo emptied")
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
fn data_volume(host: &Host) -> Result<String> {
    let vols = amnesia::volumes(host);
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
/// repair, which is what the fault measures).
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
                    Err(e) => bail!("{started}; but: {e:#}"),
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
    // Bad input changes nothing: a system without a reachable log is refused before the stop.
    let script = truncate_script(layout(host.name.system).log, bytes)
        .with_context(|| format!("{} ({})", host.name, host.name.system.title()))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_system_has_a_data_directory_on_its_volume() {
        for s in System::ALL {
            let l = layout(s);
            assert!(l.data.starts_with(DATA), "{s}: {}", l.data);
        }
        assert_eq!(layout(System::Etcd3), layout(System::Etcd));
        assert_eq!(
            snapshot_volume("perseus", HostName::perseus(1)),
            "perseus_a1-snapshot"
        );
    }

    #[test]
    fn truncate_scripts_name_the_log_and_its_repair() {
        let s = truncate_script(layout(System::Perseus).log, 4096).unwrap();
        assert!(s.starts_with("set -eu\n"), "{s}");
        assert!(
            s.contains("/data/appendonlydir/*.incr.aof") && s.contains("redis-check-aof --fix")
        );
        assert!(s.contains("cut_tail \"$f\" \"$(stat -c %s \"$f\")\" 4096"));
        let s = truncate_script(layout(System::Etcd).log, 100).unwrap();
        assert!(
            s.contains("/data/etcd/member/wal/*.wal") && s.contains("data_end"),
            "{s}"
        );
        let s = truncate_script(layout(System::Zookeeper).log, 100).unwrap();
        assert!(
            s.contains("newest '/data/zookeeper/version-2/log.*'"),
            "{s}"
        );
        let s = truncate_script(layout(System::Nats).log, 100).unwrap();
        assert!(s.contains("KV_*/msgs/*.blk"), "{s}");
        let s = truncate_script(layout(System::Postgres).log, 100).unwrap();
        assert!(
            s.contains("pg_waldump") && s.contains("conv=notrunc"),
            "{s}"
        );
        let err = truncate_script(layout(System::Galera).log, 100).unwrap_err();
        assert!(format!("{err}").contains("circular"), "{err}");
    }

    /// The shared shell functions, run by the real `sh` with the real coreutils and `cmp` on a
    /// preallocated file (records, then zeros) and on one without zeros.
    #[test]
    fn the_shell_finds_the_end_of_the_records_and_cuts_before_it() {
        let dir = std::env::temp_dir().join(format!("chaos-storage-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("log");
        let mut bytes: Vec<u8> = (0..1000u32).map(|i| (i % 251) as u8 | 1).collect();
        bytes.extend(std::iter::repeat_n(0u8, 70_000));
        std::fs::write(&log, &bytes).unwrap();
        let plain = dir.join("plain");
        std::fs::write(&plain, b"abc").unwrap();
        let script = format!(
            "set -eu\n{SHELL_FUNCTIONS}data_end '{l}'; data_end '{p}'; cut_tail '{l}' \"$(data_end '{l}')\" 300; stat -c %s '{l}'; cut_tail '{p}' 3 4096",
            l = log.display(),
            p = plain.display()
        );
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(&script)
            .output()
            .unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{text} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "1000", "{text}");
        assert_eq!(lines[1], "3", "{text}");
        assert!(
            lines[2].contains("cut 300 bytes") && lines[2].contains("ended at 1000 of 71000"),
            "{text}"
        );
        assert_eq!(lines[3], "700", "{text}");
        assert!(
            lines[4].contains("cut 3 bytes") && lines[4].contains("now 0 bytes"),
            "{text}"
        );
    }

    /// The AOF cut and `redis-check-aof --fix` against a real redis-server (AOF on, fsync
    /// always, as the acceptors run): after the cut Redis starts and holds fewer keys, every
    /// one of them intact.
    #[test]
    fn a_cut_aof_is_repaired_and_loads_with_its_tail_gone() {
        use std::process::Command;
        let dir = std::env::temp_dir().join(format!("chaos-aof-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let sock = dir.join("redis.sock");
        let server = |extra: &[&str]| {
            let mut c = Command::new("redis-server");
            c.args(["--port", "0", "--save", "", "--appendonly", "yes"])
                .args(["--appendfsync", "always", "--unixsocket"])
                .arg(&sock)
                .arg("--dir")
                .arg(&dir)
                .args(extra)
                .stdout(std::process::Stdio::null());
            c.spawn()
                .expect("redis-server (make test installs it: scripts/lib.sh need redis-server)")
        };
        let cli = |args: &[&str]| {
            let out = Command::new("redis-cli")
                .arg("-s")
                .arg(&sock)
                .args(args)
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout).trim().to_string()
        };
        let wait_up = || {
            for _ in 0..100 {
                if cli(&["ping"]) == "PONG" {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            panic!("redis-server did not answer");
        };
        let mut redis = server(&[]);
        wait_up();
        for i in 0..300 {
            cli(&[
                "set",
                &format!("k{i}"),
                &format!("value-{i}-of-the-acceptor"),
            ]);
        }
        assert_eq!(cli(&["dbsize"]), "300");
        redis.kill().unwrap();
        redis.wait().unwrap();
        let aof: &'static str =
            Box::leak(format!("{}/appendonlydir", dir.display()).into_boxed_str());
        let script = truncate_script(Log::RedisAof { dir: aof }, 4096).unwrap();
        let out = Command::new("sh").arg("-c").arg(&script).output().unwrap();
        let said = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "{said} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            said.contains("cut 4096 bytes") && said.contains("Successfully truncated"),
            "{said}"
        );
        let mut redis = server(&[]);
        wait_up();
        let left: usize = cli(&["dbsize"]).parse().unwrap();
        let last = cli(&["get", &format!("k{}", left - 1)]);
        redis.kill().unwrap();
        redis.wait().unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        assert!((200..300).contains(&left), "{left} keys left");
        assert_eq!(last, format!("value-{}-of-the-acceptor", left - 1));
    }

    #[test]
    fn copies_replace_everything_inside_the_mounts() {
        assert!(copy_out_script()
            .contains("find /snapshot -mindepth 1 -delete; cp -a /data/. /snapshot/"));
        assert!(
            copy_back_script().contains("find /data -mindepth 1 -delete; cp -a /snapshot/. /data/")
        );
        assert!(erase_script().contains("find /data -mindepth 1 -delete"));
    }
}
