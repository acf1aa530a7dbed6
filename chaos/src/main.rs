//! `chaos`: the faults of the Perseus testbed through the Docker Engine API.
//!
//! `chaos [--project perseus] [--target auto|perseus|etcd] [--events FILE] [--wait SECS] COMMAND
//! [HOST]` with COMMAND one of kill, start, restart, pause, resume, isolate, heal, status and HOST
//! one of a1, a2, a3 (Perseus), e1, e2, e3 (etcd) or `leader` (all hosts of the target when
//! omitted). A Perseus host is the Redis acceptor `aN` with the node `pN` in its network
//! namespace, an etcd host the member container `eN`; containers are found through their
//! Compose labels. `leader` is resolved before acting (see leader.rs) and events name the
//! resolved host.

mod docker;
mod events;
mod fault;
mod host;
mod isolate;
mod leader;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Result};
use bollard::Docker;
use chrono::Utc;
use clap::{Parser, ValueEnum};

use events::{Event, Recorder};
use host::{Cluster, HostArg, HostName, System, Target};

/// What chaos can do to a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Command {
    /// SIGKILL every container of the host (acceptor and node; the etcd member).
    Kill,
    /// Start the host (acceptor first, then node) and wait until it answers its health URL.
    Start,
    /// Kill, then start.
    Restart,
    /// Freeze both containers (docker pause).
    Pause,
    /// Thaw both containers (docker unpause).
    Resume,
    /// Drop all traffic between the host and the other hosts (clients still reach it).
    Isolate,
    /// Remove the isolation rules chaos added (idempotent).
    Heal,
    /// Show each host: containers and their state, isolated or not, address.
    Status,
}

impl Command {
    fn name(self) -> &'static str {
        match self {
            Command::Kill => "kill",
            Command::Start => "start",
            Command::Restart => "restart",
            Command::Pause => "pause",
            Command::Resume => "resume",
            Command::Isolate => "isolate",
            Command::Heal => "heal",
            Command::Status => "status",
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
    /// How long `start`/`restart` wait for the node's /health (0 = do not wait).
    #[arg(long, default_value_t = 30, value_name = "SECS")]
    wait: u64,
    /// Which system `leader` and a missing HOST refer to (auto: etcd when the project has
    /// etcd hosts and no Perseus hosts, else Perseus; a missing HOST with auto = every host).
    #[arg(long, env = "CHAOS_TARGET", value_enum, default_value = "auto")]
    target: Target,
    /// How long to wait for an etcd leader to be agreed on when resolving `leader`.
    #[arg(long, default_value_t = 15, value_name = "SECS")]
    leader_wait: u64,
    /// What to do.
    #[arg(value_enum)]
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

/// Runs the command on each target host; Ok(false) if any action failed.
async fn run(args: &Args) -> Result<bool> {
    let docker = docker::connect().await?;
    let cluster = Cluster::load(&docker, &args.project).await?;
    let recorder = Recorder::new(args.events.as_deref());
    let targets = match args.host {
        Some(HostArg::Host(h)) => vec![h],
        Some(HostArg::Leader) => {
            let begin = Utc::now();
            match resolve_leader(&docker, &cluster, args).await {
                Ok(hosts) if hosts.is_empty() => {
                    println!(
                        "{} {} leader: no {} host to {} (nothing was hit)",
                        begin.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                        args.command.name(),
                        cluster.resolve_target(args.target),
                        args.command.name()
                    );
                    return Ok(true);
                }
                Ok(hosts) => hosts,
                Err(e) => {
                    let detail = format!("resolving the leader: {e:#}");
                    recorder.record(&Event::new(
                        args.command.name(),
                        "leader",
                        begin,
                        false,
                        detail,
                    ))?;
                    return Ok(false);
                }
            }
        }
        None => match args.target {
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
    if args.command == Command::Status {
        status(&docker, &cluster, &targets).await?;
        return Ok(true);
    }
    let mut all_ok = true;
    for h in targets {
        let begin = Utc::now();
        let result = act(&docker, &cluster, h, args).await;
        let (ok, detail) = match result {
            Ok(d) => (true, d),
            Err(e) => (false, format!("{e:#}")),
        };
        all_ok &= ok;
        recorder.record(&Event::new(
            args.command.name(),
            &h.to_string(),
            begin,
            ok,
            detail,
        ))?;
    }
    Ok(all_ok)
}

/// The host(s) `leader` stands for, for this command (see leader.rs). For the undoing
/// commands the answer may be empty (nothing to undo).
async fn resolve_leader(docker: &Docker, cluster: &Cluster, args: &Args) -> Result<Vec<HostName>> {
    let system = cluster.resolve_target(args.target);
    if system == System::Perseus {
        return Ok(vec![HostName::perseus(1)]);
    }
    let names = cluster.host_names(system);
    if names.is_empty() {
        bail!("project {:?} has no {system} hosts", cluster.project);
    }
    let mut hit = Vec::new();
    match args.command {
        Command::Start | Command::Resume | Command::Heal => {
            for name in names {
                let host = cluster.host(docker, name).await?;
                let broken = match args.command {
                    Command::Start => fault::is_down(&host),
                    Command::Resume => fault::any_paused(&host),
                    _ => {
                        docker::is_running(&host.main().info)
                            && isolate::is_isolated(docker, &host.main().container.name).await?
                    }
                };
                if broken {
                    hit.push(name);
                }
            }
        }
        _ => hit.push(
            leader::etcd_leader(docker, cluster, Duration::from_secs(args.leader_wait)).await?,
        ),
    }
    Ok(hit)
}

/// One action on one host; returns what was done.
async fn act(docker: &Docker, cluster: &Cluster, name: HostName, args: &Args) -> Result<String> {
    let host = cluster.host(docker, name).await?;
    let wait = Duration::from_secs(args.wait);
    match args.command {
        Command::Kill => fault::kill(docker, &host).await,
        Command::Start => fault::start(docker, &host, wait).await,
        Command::Restart => {
            let killed = fault::kill(docker, &host).await?;
            // Inspect again: the start must see the stopped state.
            let host = cluster.host(docker, name).await?;
            let started = fault::start(docker, &host, wait).await?;
            Ok(format!("{killed}; {started}"))
        }
        Command::Pause => fault::pause(docker, &host).await,
        Command::Resume => fault::resume(docker, &host).await,
        Command::Isolate => {
            if !docker::is_running(&host.main().info) {
                bail!("host {name} is not running ({})", host.states());
            }
            let mut others = Vec::new();
            for other in cluster
                .host_names(name.system)
                .into_iter()
                .filter(|o| *o != name)
            {
                let o = cluster.host(docker, other).await?;
                others.push((other.to_string(), o.addresses()));
            }
            let peers = isolate::peer_addresses(&host.addresses(), &others)?;
            isolate::apply(docker, &host.main().container.name, &peers).await?;
            let list: Vec<String> = peers.iter().map(|p| p.to_string()).collect();
            Ok(format!(
                "isolated from {} (chain {} in {})",
                list.join(", "),
                isolate::CHAIN,
                host.main().container.service
            ))
        }
        Command::Heal => {
            if !docker::is_running(&host.main().info) {
                return Ok(format!(
                    "not running ({}): no rules (they die with the namespace)",
                    host.states()
                ));
            }
            if isolate::remove(docker, &host.main().container.name).await? {
                Ok(format!("removed chain {} and its jumps", isolate::CHAIN))
            } else {
                Ok("not isolated: nothing to remove".into())
            }
        }
        Command::Status => unreachable!("status is handled by run"),
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
        assert_eq!(a.command, Command::Kill);
        assert_eq!(a.host, Some(HostArg::Host(HostName::perseus(1))));
        assert_eq!(a.target, Target::Auto);
        let a = parse(&["heal"]).unwrap();
        assert_eq!(a.command, Command::Heal);
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
        assert_eq!((a.command, a.wait), (Command::Start, 5));
        assert_eq!(parse(&["status"]).unwrap().command, Command::Status);
    }

    #[test]
    fn parses_etcd_hosts_leader_and_target() {
        let a = parse(&["--target", "etcd", "kill", "leader"]).unwrap();
        assert_eq!(a.target, Target::Etcd);
        assert_eq!((a.command, a.host), (Command::Kill, Some(HostArg::Leader)));
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
