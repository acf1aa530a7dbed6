//! Clock faults: the wall clock of a host's processes shifted, stepped or drifting, through
//! libfaketime (Debian's `faketime`, copied into the Perseus image at [`LIB`]). The node
//! containers carry libfaketime's settings in their environment from the start
//! (docker-compose.yml: `FAKETIME_TIMESTAMP_FILE` = [`SPEC_FILE`], the monotonic clock left
//! true, the file re-read every second), inert until the library is loaded. A clock fault:
//!
//! - writes the spec (`+300`, `+0 x1.001000`) to [`SPEC_FILE`] and the library's path to
//!   `/etc/ld.so.preload` in the container, so that every process started there loads it;
//! - `offset` and `drift`: restarts the container (the node starts again on the shifted clock)
//!   and waits for the host's health; `jump`: only rewrites the spec (the running node sees
//!   the step within a second), after a restart if the library was not loaded yet;
//! - checks the result: `date +%s` run in the container against chaos's own clock.
//!
//! Heal removes both files and restarts the container on the true clock. What it reaches: the
//! Perseus node (pN). Not the Redis acceptor: Debian's redis-server, linked with jemalloc, never
//! starts under libfaketime 0.9.10 (a recursive clock_gettime during jemalloc's start; neither
//! the environment form, the MT build, preloading jemalloc first nor MALLOC_CONF changes it).
//! Not etcd or NATS: Go reads the clock through the vDSO without libc, out of any preload's
//! reach. Those are refused as not applicable, never skipped.

use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use bollard::Docker;
use perseus_model::ClockShift;

use crate::docker;
use crate::error::ChaosError;
use crate::fault;
use crate::host::{Host, Member, System};

/// The library, as the Perseus image carries it.
pub const LIB: &str = "/usr/local/lib/faketime/libfaketime.so.1";
/// libfaketime's spec file (FAKETIME_TIMESTAMP_FILE in the container's environment).
pub const SPEC_FILE: &str = "/etc/perseus/faketime";
const PRELOAD: &str = "/etc/ld.so.preload";

/// The container of the host whose clock a fault shifts, or why there is none.
fn target(host: &Host) -> Result<&Member> {
    let why = match host.name.system {
        System::Perseus if host.members.len() > 1 => return Ok(&host.members[1]),
        System::Perseus => "on swarm the node shares its container with Redis, which libfaketime \
                            cannot start (jemalloc); clock faults need the Compose testbed"
            .to_string(),
        System::Etcd | System::Etcd3 | System::Nats => format!(
            "{} is written in Go, whose runtime reads the clock through the vDSO without libc: \
             libfaketime cannot reach it",
            host.name.system
        ),
        other => format!(
            "libfaketime is not wired into {other}'s containers yet (its image and compose \
             service need the library and the FAKETIME_* environment the Perseus node has)"
        ),
    };
    Err(ChaosError::Unsupported(format!(
        "clock fault not applicable to {}: {why}",
        host.name
    ))
    .into())
}

/// What a clock fault finds in the container: the spec in force, if libfaketime is loaded.
async fn current(docker: &Docker, m: &Member) -> Result<Option<String>> {
    let script = format!("test -s {PRELOAD} && cat {SPEC_FILE} || true");
    let out = docker::exec_ok(docker, &m.container.id, &sh(&script)).await?;
    let spec = out.trim();
    Ok((!spec.is_empty()).then(|| spec.to_string()))
}

fn sh(script: &str) -> Vec<String> {
    vec!["sh".into(), "-c".into(), script.to_string()]
}

/// The offset in seconds at the start of a spec (`+300 x1.001` → 300).
pub fn offset_of(spec: &str) -> i64 {
    spec.split_whitespace()
        .next()
        .and_then(|o| o.strip_prefix('+').unwrap_or(o).parse().ok())
        .unwrap_or(0)
}

/// How far the container's clock is from chaos's, in seconds (`date` in the container runs
/// under the same preload as the node).
async fn measured_offset(docker: &Docker, m: &Member) -> Result<f64> {
    let out = docker::exec_ok(docker, &m.container.id, &sh("date +%s.%N")).await?;
    let theirs: f64 = out
        .trim()
        .parse()
        .map_err(|_| anyhow!("`date` in {} printed {out:?}", m.container.name))?;
    let ours = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default();
    Ok(theirs - ours)
}

async fn write_spec(docker: &Docker, m: &Member, spec: &str) -> Result<()> {
    // The spec file first, then the preload: a process started in between runs on the true
    // clock, never on a missing spec.
    let script = format!(
        "set -e; test -e {LIB} || {{ echo 'no {LIB} in this image: make images' >&2; exit 1; }}; \
         printf '%s\\n' '{spec}' > {SPEC_FILE}.new && mv {SPEC_FILE}.new {SPEC_FILE}; \
         echo {LIB} > {PRELOAD}"
    );
    docker::exec_ok(docker, &m.container.id, &sh(&script)).await?;
    Ok(())
}

/// Kills and starts the member again, waiting for the host's health.
async fn restart(docker: &Docker, host: &Host, m: &Member, wait: Duration) -> Result<String> {
    fault::kill_members(docker, host, &[m]).await?;
    // Kill returns before the container is down: wait until the engine says so.
    for _ in 0..50 {
        let info = docker.inspect_container(&m.container.id, None).await?;
        if !docker::is_running(&info) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let fresh = host.refresh().await?;
    let m = fresh
        .members
        .iter()
        .find(|x| x.container.id == m.container.id)
        .ok_or_else(|| anyhow!("{} vanished", m.container.name))?;
    fault::start_member(docker, &fresh, m, wait).await
}

/// Applies the clock fault to the host.
pub async fn apply(
    docker: &Docker,
    host: &Host,
    shift: ClockShift,
    wait: Duration,
) -> Result<String> {
    let m = target(host)?;
    if !docker::is_running(&m.info) {
        return Err(ChaosError::not_running(&m.container.service, host.states()).into());
    }
    let before = current(docker, m).await?;
    let offset = before.as_deref().map(offset_of).unwrap_or(0);
    let spec = shift.faketime_spec(offset);
    let mut done = Vec::new();
    match shift {
        ClockShift::Jump(_) => {
            if before.is_none() {
                // Load the library first, on the clock it has now; the step follows.
                write_spec(docker, m, &format!("{offset:+}")).await?;
                done.push(restart(docker, host, m, wait).await?);
            }
            write_spec(docker, m, &spec).await?;
            // libfaketime re-reads its spec file every second (FAKETIME_CACHE_DURATION=1).
            tokio::time::sleep(Duration::from_millis(1500)).await;
        }
        ClockShift::Offset(_) | ClockShift::Drift(_) => {
            write_spec(docker, m, &spec).await?;
            done.push(restart(docker, host, m, wait).await?);
        }
    }
    let fresh = host.refresh().await?;
    let m = target(&fresh)?;
    let seen = measured_offset(docker, m).await?;
    let want = offset_of(&spec) as f64;
    if (seen - want).abs() > 5.0 + want.abs() * 1e-3 {
        bail!(
            "{}'s clock reads {seen:+.1} s off after the fault, not {want:+} s (libfaketime spec \
             {spec:?}; {})",
            m.container.service,
            done.join("; ")
        );
    }
    done.push(format!(
        "{} runs on libfaketime {spec:?}: its clock reads {seen:+.1} s off",
        m.container.service
    ));
    Ok(done.join("; "))
}

/// Restores the true clock (restarts the container without libfaketime); None when no clock
/// fault was there.
pub async fn heal(docker: &Docker, host: &Host, wait: Duration) -> Result<Option<String>> {
    let Ok(m) = target(host) else {
        return Ok(None);
    };
    if !docker::is_running(&m.info) {
        return Ok(None);
    }
    let Some(spec) = current(docker, m).await? else {
        return Ok(None);
    };
    let script = format!("rm -f {PRELOAD} {SPEC_FILE}");
    docker::exec_ok(docker, &m.container.id, &sh(&script)).await?;
    let restarted = restart(docker, host, m, wait).await?;
    Ok(Some(format!(
        "clock {spec:?} undone: {} restarted on the true clock ({restarted})",
        m.container.service
    )))
}

/// The clock fault in force on the host, in the user's words.
pub async fn describe(docker: &Docker, host: &Host) -> Result<Option<String>> {
    let Ok(m) = target(host) else {
        return Ok(None);
    };
    if !docker::is_running(&m.info) {
        return Ok(None);
    }
    Ok(current(docker, m)
        .await?
        .map(|spec| format!("clock {spec:?} (libfaketime in {})", m.container.service)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_of_specs() {
        assert_eq!(offset_of("+300"), 300);
        assert_eq!(offset_of("-60 x1.001000"), -60);
        assert_eq!(offset_of("+0 x0.999"), 0);
        assert_eq!(offset_of("garbage"), 0);
        assert_eq!(format!("{:+}", 0i64), "+0");
    }
}
