//! `chaos`: the faults of the Perseus testbed through the Docker Engine API.
//!
//! `chaos [--project perseus] [--target auto|perseus|etcd] [--events FILE] [--wait SECS] COMMAND
//! [HOST]` with COMMAND a fault kind (kill, start, restart, pause, resume, isolate, heal: the
//! shared `perseus_model::FaultKind`), `status` or `health`, and HOST one of a1, a2, a3
//! (Perseus), e1, e2, e3 (etcd) or `leader` (all hosts of the target when omitted). A Perseus host is the Redis acceptor `aN` with the node `pN` in its network
//! namespace, an etcd host the member container `eN`; containers are found through their
//! Compose labels. `leader` is resolved before acting (see leader.rs) and events name the
//! resolved host.

mod docker;
mod events;
mod fault;
mod host;
mod isolate;
mod leader;

use std::fmt;
use std::path::PathBuf;
use std::process::ExitCode;
use std::str::FromStr;
use std::time::Duration;

use anyhow::{bail, Result};
use bollard::Docker;
use chrono::Utc;
use clap::Parser;
use perseus_model::FaultKind;

use events::{Event, Recorder};
use host::{Cluster, HostArg, HostName, System, Target};

/// What chaos is asked to do: act out a fault kind (or its undo) on hosts, or show them.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Command {
    Fault(FaultKind),
    /// Show each host: containers and their state, isolated or not, address.
    Status,
    /// Wait (up to --wait) until every target host answers its health URL.
    Health,
}

impl FromStr for Command {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "status" => Ok(Command::Status),
            "health" => Ok(Command::Health),
            _ => s
                .parse()
                .map(Command::Fault)
                .map_err(|e| format!("{e}, status or health")),
        }
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Command::Fault(kind) => kind.fmt(f),
            Command::Status => f.write_str("status"),
            Command::Health => f.write_str("health"),
        }
    }
}

/// Faults for the Perseus testbed: kill, start, pause, isolate and heal hosts a1..a3, e1..e3
/// or the leader.
#[derive(Debug, Parser)]
#[command(name = "chaos", version)]
struct Args {
    /// Compose project whose containers to act on.
    #[arg(long, env = "COMPOSE_PROJECT_NAME", default_value = "perseus")]
    project: String,
    /// Append one JSON line per action to this file.
    #[arg(long, env = "CHAOS_EVENTS")]
    events: Option<PathBuf>,
    /// How long `start`/`restart`/`health` wait for the node's /health (0 = do not wait).
    #[arg(long, default_value_t = 30, value_name = "SECS")]
    wait: u64,
    /// Which system `leader` and a missing HOST refer to (auto: etcd when the project has
    /// etcd hosts and no Perseus hosts, else Perseus; a missing HOST with auto = every host).
    #[arg(long, env = "CHAOS_TARGET", value_enum, default_value = "auto")]
    target: Target,
    /// How long to wait for an etcd leader to be agreed on when resolving `leader`.
    #[arg(long, default_value_t = 15, value_name = "SECS")]
    leader_wait: u64,
    /// What to do: kill (SIGKILL the host's containers), start (acceptor first, then node, and
    /// wait for its health URL), restart (kill, then start), pause / resume (freeze / thaw),
    /// isolate (drop traffic with the other hosts; clients still reach it), heal (remove the
    /// isolation rules; idempotent), status (each host's containers, isolation, address), or
    /// health (wait up to --wait seconds until every host answers its health URL).
    #[arg(value_name = "COMMAND")]
    command: Command,
    /// a1, a2, a3, e1, e2, e3 or leader; all hosts (of the target) when omitted.
    host: Option<HostArg>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("chaos: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the command; Ok(false) if any action failed.
async fn run(args: &Args) -> Result<bool> {
    let docker = docker::connect().await?;
    let cluster = Cluster::load(&docker, &args.project).await?;
    match &args.command {
        Command::Status => {
            let targets = match args.host {
                Some(HostArg::Leader) => resolve_leader(&docker, &cluster, args, None).await?,
                _ => named_hosts(&cluster, args)?,
            };
            status(&docker, &cluster, &targets).await?;
            Ok(true)
        }
        Command::Health => {
            let targets = named_hosts(&cluster, args)?;
            wait_healthy(&docker, &cluster, &targets, Duration::from_secs(args.wait)).await?;
            Ok(true)
        }
        Command::Fault(kind) => act_on_hosts(&docker, &cluster, kind, args).await,
    }
}

/// Waits until every host answers its health URL, all within one `wait`.
async fn wait_healthy(
    docker: &Docker,
    cluster: &Cluster,
    targets: &[HostName],
    wait: Duration,
) -> Result<()> {
    let begin = std::time::Instant::now();
    for &name in targets {
        let host = cluster.host(docker, name).await?;
        let left = wait.saturating_sub(begin.elapsed());
        fault::wait_healthy(docker, &host, left.max(Duration::from_secs(1))).await?;
    }
    let names: Vec<String> = targets.iter().map(ToString::to_string).collect();
    println!(
        "all hosts healthy: {} (after {:.1} s)",
        names.join(" "),
        begin.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The hosts a command names without `leader`: the one given, or every host of the target.
fn named_hosts(cluster: &Cluster, args: &Args) -> Result<Vec<HostName>> {
    let targets = match args.host {
        Some(HostArg::Host(h)) => vec![h],
        _ => match args.target {
            Target::Auto => cluster
                .systems()
                .into_iter()
                .flat_map(|s| cluster.host_names(s))
                .collect(),
            t => cluster.host_names(cluster.resolve_target(t)),
        },
    };
    if targets.is_empty() {
        bail!(
            "project {:?} has no hosts a1..a3 or e1..e3 (for --target {:?})",
            args.project,
            args.target
        );
    }
    Ok(targets)
}

/// Acts out `kind` on each target host, recording an event per host.
async fn act_on_hosts(
    docker: &Docker,
    cluster: &Cluster,
    kind: &FaultKind,
    args: &Args,
) -> Result<bool> {
    let recorder = Recorder::new(args.events.as_deref());
    let targets = match args.host {
        Some(HostArg::Leader) => {
            let begin = Utc::now();
            match resolve_leader(docker, cluster, args, Some(kind)).await {
                Ok(hosts) if hosts.is_empty() => {
                    println!(
                        "{} {kind} leader: no {} host to {kind} (nothing was hit)",
                        perseus_model::time::rfc3339_ms(begin),
                        cluster.resolve_target(args.target),
                    );
                    return Ok(true);
                }
                Ok(hosts) => hosts,
                Err(e) => {
                    let detail = format!("resolving the leader: {e:#}");
                    recorder.record(&Event::new(
                        kind.clone(),
                        HostArg::Leader,
                        begin,
                        false,
                        detail,
                    ))?;
                    return Ok(false);
                }
            }
        }
        _ => named_hosts(cluster, args)?,
    };
    let mut all_ok = true;
    for h in targets {
        let begin = Utc::now();
        let (ok, detail) = match act(docker, cluster, h, kind, args).await {
            Ok(d) => (true, d),
            Err(e) => (false, format!("{e:#}")),
        };
        all_ok &= ok;
        recorder.record(&Event::new(
            kind.clone(),
            HostArg::Host(h),
            begin,
            ok,
            detail,
        ))?;
    }
    Ok(all_ok)
}

/// The host(s) `leader` stands for, for this fault kind (see leader.rs; `None`: for
/// `status`). For the undoing kinds the answer may be empty (nothing to undo).
async fn resolve_leader(
    docker: &Docker,
    cluster: &Cluster,
    args: &Args,
    kind: Option<&FaultKind>,
) -> Result<Vec<HostName>> {
    let system = cluster.resolve_target(args.target);
    if system == System::Perseus {
        return Ok(vec![HostName::perseus(1)]);
    }
    let names = cluster.host_names(system);
    if names.is_empty() {
        bail!("project {:?} has no {system} hosts", cluster.project);
    }
    let Some(undo) = kind.filter(|k| k.is_undo()) else {
        let wait = Duration::from_secs(args.leader_wait);
        return Ok(vec![leader::etcd_leader(docker, cluster, wait).await?]);
    };
    // Undoing `leader`: the hosts that have the fault this action undoes.
    let mut hit = Vec::new();
    for name in names {
        let host = cluster.host(docker, name).await?;
        let broken = match undo {
            FaultKind::Start => fault::is_down(&host),
            FaultKind::Resume => fault::any_paused(&host),
            FaultKind::Heal => {
                docker::is_running(&host.main().info)
                    && isolate::is_isolated(docker, &host.main().container.name).await?
            }
            _ => false,
        };
        if broken {
            hit.push(name);
        }
    }
    Ok(hit)
}

/// One action on one host; returns what was done.
async fn act(
    docker: &Docker,
    cluster: &Cluster,
    name: HostName,
    kind: &FaultKind,
    args: &Args,
) -> Result<String> {
    let host = cluster.host(docker, name).await?;
    let wait = Duration::from_secs(args.wait);
    match kind {
        FaultKind::Kill => fault::kill(docker, &host).await,
        FaultKind::Start => fault::start(docker, &host, wait).await,
        FaultKind::Restart => {
            let killed = fault::kill(docker, &host).await?;
            // Inspect again: the start must see the stopped state.
            let host = cluster.host(docker, name).await?;
            let started = fault::start(docker, &host, wait).await?;
            Ok(format!("{killed}; {started}"))
        }
        FaultKind::Pause => fault::pause(docker, &host).await,
        FaultKind::Resume => fault::resume(docker, &host).await,
        FaultKind::Isolate => isolate::isolate_host(docker, cluster, &host).await,
        FaultKind::Heal => isolate::heal_host(docker, &host).await,
    }
}

/// Prints the status table.
async fn status(docker: &Docker, cluster: &Cluster, targets: &[HostName]) -> Result<()> {
    println!(
        "{:<5} {:<40} {:<9} ADDRESS",
        "HOST", "CONTAINERS", "ISOLATED"
    );
    for &name in targets {
        let host = match cluster.host(docker, name).await {
            Ok(h) => h,
            Err(e) => {
                println!(
                    "{:<5} {:<40} {:<9} -",
                    name.to_string(),
                    format!("error: {e:#}"),
                    "-"
                );
                continue;
            }
        };
        let isolated = if docker::is_running(&host.main().info) {
            match isolate::is_isolated(docker, &host.main().container.name).await {
                Ok(true) => "yes".to_string(),
                Ok(false) => "no".to_string(),
                Err(_) => "?".to_string(),
            }
        } else {
            "-".to_string()
        };
        let mut addrs: Vec<String> = host.addresses().into_values().collect();
        addrs.sort();
        let addr = if addrs.is_empty() {
            "-".to_string()
        } else {
            addrs.join(",")
        };
        println!(
            "{:<5} {:<40} {isolated:<9} {addr}",
            name.to_string(),
            host.states()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(argv: &[&str]) -> Result<Args, clap::Error> {
        Args::try_parse_from(std::iter::once("chaos").chain(argv.iter().copied()))
    }

    #[test]
    fn parses_commands() {
        let a = parse(&["kill", "a1"]).unwrap();
        assert_eq!(a.command, Command::Fault(FaultKind::Kill));
        assert_eq!(a.host, Some(HostArg::Host(HostName::perseus(1))));
        assert_eq!(a.target, Target::Auto);
        let a = parse(&["heal"]).unwrap();
        assert_eq!(a.command, Command::Fault(FaultKind::Heal));
        assert_eq!(a.host, None);
        let a = parse(&[
            "--events",
            "/tmp/e.jsonl",
            "--project",
            "x",
            "isolate",
            "a3",
        ])
        .unwrap();
        assert_eq!(a.project, "x");
        assert_eq!(a.events, Some(PathBuf::from("/tmp/e.jsonl")));
        assert_eq!(a.host, Some(HostArg::Host(HostName::perseus(3))));
        let a = parse(&["start", "a2", "--wait", "5"]).unwrap();
        assert_eq!((a.command, a.wait), (Command::Fault(FaultKind::Start), 5));
        assert_eq!(parse(&["status"]).unwrap().command, Command::Status);
        assert_eq!(parse(&["health"]).unwrap().command, Command::Health);
    }

    #[test]
    fn parses_etcd_hosts_leader_and_target() {
        let a = parse(&["--target", "etcd", "kill", "leader"]).unwrap();
        assert_eq!(a.target, Target::Etcd);
        assert_eq!(
            (a.command, a.host),
            (Command::Fault(FaultKind::Kill), Some(HostArg::Leader))
        );
        let a = parse(&["isolate", "e2"]).unwrap();
        assert_eq!(a.host, Some(HostArg::Host(HostName::etcd(2))));
        let a = parse(&["--target", "perseus", "heal"]).unwrap();
        assert_eq!((a.target, a.host), (Target::Perseus, None));
        let a = parse(&["start", "leader", "--leader-wait", "3"]).unwrap();
        assert_eq!(a.leader_wait, 3);
        assert!(parse(&["--target", "consul", "kill", "leader"]).is_err());
        assert!(parse(&["kill", "e4"]).is_err());
        assert!(parse(&["kill", "LEADER"]).is_err());
    }

    #[test]
    fn rejects_bad_input() {
        assert!(parse(&[]).is_err());
        assert!(parse(&["explode", "a1"]).is_err());
        assert!(parse(&["kill", "a4"]).is_err());
        assert!(parse(&["kill", "p1"]).is_err());
        assert!(parse(&["kill", "a1", "a2"]).is_err());
        assert!(parse(&["start", "a1", "--wait", "-1"]).is_err());
    }

    #[test]
    fn project_default() {
        // The env var may be set by the caller; only check when it is not.
        if std::env::var_os("COMPOSE_PROJECT_NAME").is_none() {
            assert_eq!(parse(&["status"]).unwrap().project, "perseus");
        }
    }
}
