//! Single-layer process faults on a Perseus host: the Redis acceptor or the node alone.
//!
//! The node `pN` is its own container: killing, starting or pausing it leaves the acceptor
//! and the namespace alone. The acceptor container `aN` owns the namespace, so stopping it
//! would take the node's network away too (its interface goes with the owner); Redis therefore
//! runs as a child of a small supervisor (compose/perseus-acceptor), and killing the acceptor
//! alone is: create the supervisor's down-file, SIGKILL redis-server. Starting it removes the
//! file; the supervisor starts Redis on the same data. Whether the acceptor is down is read
//! from the container (the file and the process), so status cannot disagree with it.

use std::time::Duration;

use anyhow::{bail, Result};
use bollard::Docker;
use tokio::time::{sleep, Instant};

use crate::docker;
use crate::host::Member;

/// The supervisor's down-file (see compose/perseus-acceptor).
pub const DOWN_FILE: &str = "/run/perseus-acceptor.down";

fn sh(script: &str) -> Vec<String> {
    vec!["sh".into(), "-c".into(), script.into()]
}

/// The script that kills Redis and keeps it down.
pub fn kill_script() -> String {
    format!(
        "test -x /usr/local/bin/perseus-acceptor || {{ echo 'this acceptor does not run under \
         perseus-acceptor (rebuild with make up)' >&2; exit 3; }}; \
         pgrep -x redis-server >/dev/null || {{ echo 'redis-server is not running' >&2; exit 4; }}; \
         touch {DOWN_FILE} && pkill -KILL -x redis-server"
    )
}

/// Whether the acceptor was killed by chaos (down-file present).
pub async fn acceptor_down(docker: &Docker, acceptor: &Member) -> Result<bool> {
    let out = docker::exec(
        docker,
        &acceptor.container.id,
        &sh(&format!("test -e {DOWN_FILE}")),
    )
    .await?;
    Ok(out.code == 0)
}

/// SIGKILLs Redis inside the acceptor container and keeps it down.
pub async fn kill_acceptor(docker: &Docker, acceptor: &Member) -> Result<String> {
    if !docker::is_running(&acceptor.info) {
        bail!(
            "{} is {}",
            acceptor.container.service,
            docker::state_of(&acceptor.info)
        );
    }
    let out = docker::exec(docker, &acceptor.container.id, &sh(&kill_script())).await?;
    if out.code != 0 {
        bail!(
            "killing Redis in {} failed (exit {}): {}",
            acceptor.container.name,
            out.code,
            out.output
        );
    }
    Ok(format!(
        "SIGKILL sent to redis-server in {} (container and namespace stay up)",
        acceptor.container.service
    ))
}

/// Lets the supervisor start Redis again and waits (bounded) until it answers PING; with a
/// zero `wait`, does not wait (a Redis loading a large AOF answers `LOADING` for seconds).
pub async fn start_acceptor(docker: &Docker, acceptor: &Member, wait: Duration) -> Result<String> {
    if !acceptor_down(docker, acceptor).await? {
        return Ok(format!(
            "{}: acceptor not killed: nothing to start",
            acceptor.container.service
        ));
    }
    let out = docker::exec(
        docker,
        &acceptor.container.id,
        &sh(&format!("rm -f {DOWN_FILE}")),
    )
    .await?;
    if out.code != 0 {
        bail!("removing {DOWN_FILE}: {}", out.output);
    }
    if wait.is_zero() {
        return Ok(format!(
            "redis-server in {} let start again (not waiting for it)",
            acceptor.container.service
        ));
    }
    let begin = Instant::now();
    let ping = sh("timeout 2 redis-cli ping");
    loop {
        let out = docker::exec(docker, &acceptor.container.id, &ping).await?;
        if out.code == 0 && out.output.contains("PONG") {
            return Ok(format!(
                "redis-server in {} started again, answering after {:.1} s",
                acceptor.container.service,
                begin.elapsed().as_secs_f64()
            ));
        }
        if begin.elapsed() >= wait {
            bail!(
                "redis-server in {} did not answer PING within {} s: {}",
                acceptor.container.name,
                wait.as_secs(),
                out.output
            );
        }
        sleep(Duration::from_millis(200)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kill_script_keeps_redis_down_before_killing_it() {
        let s = kill_script();
        let touch = s.find("touch /run/perseus-acceptor.down").unwrap();
        let kill = s.find("pkill -KILL -x redis-server").unwrap();
        assert!(touch < kill);
    }
}
