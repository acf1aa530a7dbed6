//! `chaos`: the faults of the Perseus testbed through the Docker Engine API.
//!
//! `chaos [--project perseus] [--target auto|perseus|etcd] [--events FILE] [--wait SECS]
//! [--layer host|acceptor|node] [--scope peers|all] COMMAND [HOST] [PARAMS]` with HOST one of
//! a1, a2, a3 (Perseus), e1, e2, e3 (etcd) or `leader` (all hosts of the target when omitted),
//! and COMMAND one of: kill, start, restart, pause, resume, isolate (both ways),
//! isolate-inbound, isolate-outbound (one way), cut-clients, loss PERCENT, limit RATE,
//! delay DELAY [JITTER], partition SHAPE (no host: `"a1 | a2 a3"`, halves, bridge,
//! majorities-ring), amnesia, the storage faults wipe, snapshot, rollback and truncate [BYTES]
//! (storage.rs), heal (undoes every kind that can be undone), status. A Perseus host is the Redis
//! acceptor `aN` with the node `pN` in its network namespace (`--layer` picks one of them), an
//! etcd host the member container `eN`; containers are found through their Compose labels.
//! `leader` is resolved before acting (see leader.rs) and events name the resolved host.
//! docs/faults.md describes every fault at the iptables/tc level.

mod amnesia;
mod docker;
mod engines;
mod events;
mod fault;
mod host;
mod isolate;
mod layer;
mod leader;
mod netfault;
mod netns;
mod partition;
mod probe;
mod storage;

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use bollard::Docker;
use chrono::Utc;
use clap::{Parser, ValueEnum};
use perseus_model::{FaultKind, Leadership};

use events::{Event, Recorder};
use host::{Cluster, Host, HostArg, HostName, System, Target};
use netfault::{Layer, RuleFault, Scope};

/// What chaos can do to a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Command {
    /// SIGKILL the host's containers (--layer acceptor: only Redis; node: only the node).
    Kill,
    /// Start what kill stopped (repairing a node left in an old namespace), wait for /health.
    Start,
    /// Kill, then start.
    Restart,
    /// Freeze the host's containers (docker pause; --layer picks one).
    Pause,
    /// Thaw them (docker unpause).
    Resume,
    /// Drop all traffic between the host and its peers (clients still reach it);
    /// --layer acceptor: only the peers' connections to its Redis; node: only its node's
    /// connections to the peers' Redis.
    Isolate,
    /// One way: drop the connections the peers open to the host (it still reaches them).
    IsolateInbound,
    /// One way: drop the connections the host opens to its peers (they still reach it).
    IsolateOutbound,
    /// Drop the clients' traffic to the host (its peers still reach it).
    CutClients,
    /// Drop PERCENT % of the packets to and from the peers (--scope all: every packet).
    Loss,
    /// Limit the host's outgoing bandwidth to RATE (tc tbf), e.g. 256kbit.
    Limit,
    /// Delay the host's outgoing packets by DELAY [JITTER] (tc netem; needs sch_netem).
    Delay,
    /// Partition the target system's hosts: "a1 | a2 a3", halves, bridge, majorities-ring.
    Partition,
    /// Stop the host, erase its data volumes, start it empty (breaks durable acceptors).
    Amnesia,
    /// Stop the host (--layer acceptor: only a Perseus host's Redis), empty its data
    /// directory, start it.
    Wipe,
    /// Save a copy of the host's data directory (frozen while copied); every host of the
    /// target when HOST is omitted.
    Snapshot,
    /// Stop the host (--layer acceptor: only its Redis), put its snapshot back, start it.
    Rollback,
    /// Stop the host (--layer acceptor: only its Redis), cut [BYTES] (4096) off the tail of
    /// its log, repair it as the system's tools advise, start it.
    Truncate,
    /// Undo every fault chaos made on the host: rules, qdiscs, pauses, kills.
    Heal,
    /// Show each host: containers, shared namespace, health from outside, active faults.
    Status,
    /// Wait (up to --wait) until every target host answers its health URL.
    Health,
    /// Print the target system's facts as KEY=VALUE lines (for scripts): profile, services,
    /// nodes, title. Needs no Docker.
    Describe,
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
            Command::IsolateInbound => "isolate-inbound",
            Command::IsolateOutbound => "isolate-outbound",
            Command::CutClients => "cut-clients",
            Command::Loss => "loss",
            Command::Limit => "limit",
            Command::Delay => "delay",
            Command::Partition => "partition",
            Command::Amnesia => "amnesia",
            Command::Wipe => "wipe",
            Command::Snapshot => "snapshot",
            Command::Rollback => "rollback",
            Command::Truncate => "truncate",
            Command::Heal => "heal",
            Command::Status => "status",
            Command::Health => "health",
            Command::Describe => "describe",
        }
    }

    /// The parameters after HOST: (required, optional) names.
    fn params(self) -> (&'static [&'static str], &'static [&'static str]) {
        match self {
            Command::Loss => (&["PERCENT"], &[]),
            Command::Limit => (&["RATE"], &[]),
            Command::Delay => (&["DELAY"], &["JITTER"]),
            Command::Truncate => (&[], &["BYTES"]),
            _ => (&[], &[]),
        }
    }

    /// Whether --layer means something for it.
    fn layered(self) -> bool {
        matches!(
            self,
            Command::Kill
                | Command::Start
                | Command::Restart
                | Command::Pause
                | Command::Resume
                | Command::Isolate
        ) || self.storage_layered()
    }

    /// The storage faults that can stop only a Perseus host's acceptor (`--layer acceptor`).
    fn storage_layered(self) -> bool {
        matches!(self, Command::Wipe | Command::Rollback | Command::Truncate)
    }
}

/// Faults for the Perseus testbed: kill, pause, isolate (both ways or one), cut clients,
/// packet loss, bandwidth, delay, partitions, amnesia and heal of hosts a1..a3, e1..e3 or the
/// leader.
#[derive(Debug, Parser)]
#[command(name = "chaos", version)]
struct Args {
    /// Compose project whose containers to act on.
    #[arg(long, env = "COMPOSE_PROJECT_NAME", default_value = "perseus")]
    project: String,
    /// Which Docker engine runs each host (docs/swarm.md): `HOST ENDPOINT [certs=DIR]
    /// [address=ADDR]` per line; hosts not listed use the local engine.
    #[arg(long, env = "CHAOS_HOSTS_FILE", value_name = "FILE")]
    hosts_file: Option<PathBuf>,
    /// Append one JSON line per action to this file.
    #[arg(long, env = "CHAOS_EVENTS")]
    events: Option<PathBuf>,
    /// How long `start`/`restart`/`amnesia`/`heal` wait for the node's /health (0 = do not wait).
    #[arg(long, default_value_t = 30, value_name = "SECS")]
    wait: u64,
    /// Which system `leader`, a partition and a missing HOST refer to (auto: etcd when the
    /// project has etcd hosts and no Perseus hosts, else Perseus; a missing HOST with auto =
    /// every host).
    #[arg(long, env = "CHAOS_TARGET", value_parser = Target::parse, default_value = "auto")]
    target: Target,
    /// How long to wait for an etcd leader to be agreed on when resolving `leader`.
    #[arg(long, default_value_t = 15, value_name = "SECS")]
    leader_wait: u64,
    /// Which part of a Perseus host kill/start/restart/pause/resume/isolate hit.
    #[arg(long, value_enum, default_value = "host")]
    layer: Layer,
    /// Which packets `loss` drops.
    #[arg(long, value_enum, default_value = "peers")]
    scope: Scope,
    /// What to do.
    #[arg(value_enum)]
    command: Command,
    /// HOST (a1..a3, e1..e3, z1..z3, j1..j3 or leader; all hosts of the target when omitted), then the
    /// command's parameters (loss PERCENT, limit RATE, delay DELAY [JITTER]); for partition the
    /// SHAPE instead of a host.
    #[arg(value_name = "HOST [PARAMS]")]
    operands: Vec<String>,
}

impl Args {
    /// HOST and the parameters, checked against the command.
    fn split(&self) -> Result<(Option<HostArg>, Vec<String>)> {
        if self.layer != Layer::Host && !self.command.layered() {
            bail!(
                "--layer applies to kill, start, restart, pause, resume, isolate, wipe, \
                 rollback and truncate only"
            );
        }
        if self.layer == Layer::Node && self.command.storage_layered() {
            bail!(
                "--layer node: the node keeps no data; {} takes --layer acceptor (its Redis) \
                 or the whole host",
                self.command.name()
            );
        }
        if self.command == Command::Partition {
            return match self.operands.as_slice() {
                [shape] => Ok((None, vec![shape.clone()])),
                _ => bail!(
                    "partition takes one SHAPE (quote it): \"a1 | a2 a3\", {}",
                    partition::NAMED.join(", ")
                ),
            };
        }
        let (required, optional) = self.command.params();
        let host = match self.operands.first() {
            Some(h) => Some(h.parse::<HostArg>().map_err(|e| anyhow!(e))?),
            None => None,
        };
        let params: Vec<String> = self.operands.iter().skip(1).cloned().collect();
        if params.len() < required.len() || params.len() > required.len() + optional.len() {
            let mut usage = vec!["HOST".to_string()];
            usage.extend(required.iter().map(|s| s.to_string()));
            usage.extend(optional.iter().map(|s| format!("[{s}]")));
            bail!("usage: chaos {} {}", self.command.name(), usage.join(" "));
        }
        if !required.is_empty() && host.is_none() {
            bail!("{} needs a HOST", self.command.name());
        }
        // Data loss on every host at once is never what a missing HOST meant.
        if host.is_none()
            && matches!(
                self.command,
                Command::Wipe | Command::Rollback | Command::Truncate | Command::Amnesia
            )
        {
            bail!(
                "{} needs a HOST (it loses data; every host at once is not a default)",
                self.command.name()
            );
        }
        // The parameters' values are checked where the kind is defined.
        self.fault_kind(&params)?;
        Ok((host, params))
    }

    /// The fault kind (with its parameters) the command line asks for; None for status.
    fn fault_kind(&self, params: &[String]) -> Result<Option<FaultKind>> {
        if matches!(
            self.command,
            Command::Status | Command::Health | Command::Describe
        ) {
            return Ok(None);
        }
        let param = (!params.is_empty()).then(|| params.join(","));
        Ok(Some(FaultKind::from_parts(
            self.command.name(),
            param.as_deref(),
        )?))
    }
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
    // Bad input changes nothing: check the operands before touching the engine.
    let (host_arg, params) = args.split()?;
    if args.command == Command::Describe {
        let system = match args.target {
            Target::System(s) => s,
            Target::Auto => System::Perseus,
        };
        print!("{}", perseus_model::system::describe(system));
        return Ok(true);
    }
    let kind = args.fault_kind(&params)?;
    let engines = engines::load(args.hosts_file.as_deref())?;
    let cluster = Cluster::load(&engines, &args.project).await?;
    let recorder = Recorder::new(args.events.as_deref());
    if let Some(FaultKind::Partition(shape)) = &kind {
        return partition_cmd(&cluster, args, shape, &recorder).await;
    }
    let targets = match host_arg {
        Some(HostArg::Host(h)) => vec![h],
        Some(HostArg::Leader) => {
            let begin = Utc::now();
            match resolve_leader(&cluster, args).await {
                Ok(hosts) if hosts.is_empty() => {
                    println!(
                        "{} {} leader: no {} host to {} (nothing was hit)",
                        perseus_model::time::rfc3339_ms(begin),
                        args.command.name(),
                        cluster.resolve_target(args.target),
                        args.command.name()
                    );
                    return Ok(true);
                }
                Ok(hosts) => hosts,
                Err(e) => {
                    let detail = format!("resolving the leader: {e:#}");
                    if let Some(kind) = kind {
                        recorder.record(&Event::new(
                            kind,
                            HostArg::Leader,
                            begin,
                            false,
                            detail,
                        ))?;
                    } else {
                        eprintln!("chaos: {detail}");
                    }
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
            "project {:?} has no hosts of any system (for --target {:?})",
            args.project,
            args.target
        );
    }
    let Some(kind) = kind else {
        if args.command == Command::Health {
            wait_healthy(&cluster, &targets, Duration::from_secs(args.wait)).await?;
            return Ok(true);
        }
        return status(&cluster, &targets).await;
    };
    let wait = Duration::from_secs(args.wait);
    // Healing several hosts: undo every host's faults first, then wait for all of them. A
    // host healed first cannot be healthy while the others are still paused or cut off (it
    // has no quorum), so waiting host by host would fail on faults about to be undone.
    if kind == FaultKind::Heal && targets.len() > 1 && !wait.is_zero() {
        let mut undone = Vec::new();
        for &h in &targets {
            let begin = Utc::now();
            undone.push((
                h,
                begin,
                act(&cluster, h, &kind, args, Duration::ZERO).await,
            ));
        }
        let health = wait_healthy(&cluster, &targets, wait).await;
        let mut all_ok = health.is_ok();
        for (h, begin, result) in undone {
            let (ok, detail) = match (result, &health) {
                (Ok(d), Ok(())) => (true, format!("{d}; every host healthy")),
                (Ok(d), Err(e)) => (false, format!("{e:#} (undone: {d})")),
                (Err(e), _) => (false, format!("{e:#}")),
            };
            all_ok &= ok;
            recorder.record(
                &Event::new(kind.clone(), HostArg::Host(h), begin, ok, detail)
                    .with_params(event_params(args)),
            )?;
        }
        return Ok(all_ok);
    }
    let mut all_ok = true;
    for h in targets {
        let begin = Utc::now();
        let result = act(&cluster, h, &kind, args, wait).await;
        let (ok, detail) = match result {
            Ok(d) => (true, d),
            Err(e) => (false, format!("{e:#}")),
        };
        all_ok &= ok;
        recorder.record(
            &Event::new(kind.clone(), HostArg::Host(h), begin, ok, detail)
                .with_params(event_params(args)),
        )?;
    }
    Ok(all_ok)
}

/// Waits until every host answers its health URL from outside, all within one `wait`.
async fn wait_healthy(cluster: &Cluster, targets: &[HostName], wait: Duration) -> Result<()> {
    let begin = std::time::Instant::now();
    for &name in targets {
        let host = cluster.host(name).await?;
        let left = wait.saturating_sub(begin.elapsed());
        fault::wait_healthy(host.docker(), &host, left.max(Duration::from_secs(1))).await?;
    }
    let names: Vec<String> = targets.iter().map(ToString::to_string).collect();
    println!(
        "all hosts healthy where their users stand: {} (after {:.1} s)",
        names.join(" "),
        begin.elapsed().as_secs_f64()
    );
    Ok(())
}

/// How the fault was applied beyond its kind (the kind carries its own values): the layer
/// and the loss's scope.
fn event_params(args: &Args) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if args.layer != Layer::Host {
        out.insert("layer".into(), format!("{:?}", args.layer).to_lowercase());
    }
    if args.command == Command::Loss {
        out.insert("scope".into(), format!("{:?}", args.scope).to_lowercase());
    }
    out
}

/// The host(s) `leader` stands for, for this command (see leader.rs). For the undoing
/// commands the answer may be empty (nothing to undo).
async fn resolve_leader(cluster: &Cluster, args: &Args) -> Result<Vec<HostName>> {
    let system = cluster.resolve_target(args.target);
    if system.leadership() == Leadership::Leaderless {
        let first = system.hosts()[0];
        eprintln!("{system} has no leader (every host serves on its own): `leader` means {first}");
        return Ok(vec![first]);
    }
    let names = cluster.host_names(system);
    if names.is_empty() {
        bail!("project {:?} has no {system} hosts", cluster.project);
    }
    let mut hit = Vec::new();
    match args.command {
        Command::Start | Command::Resume | Command::Heal => {
            for name in names {
                let host = cluster.host(name).await?;
                let broken = match args.command {
                    Command::Start => fault::is_down(&host),
                    Command::Resume => fault::any_paused(&host),
                    _ => !active_faults(host.docker(), &host, &HashMap::new())
                        .await?
                        .is_empty(),
                };
                if broken {
                    hit.push(name);
                }
            }
        }
        _ => {
            hit.push(leader::leader(cluster, system, Duration::from_secs(args.leader_wait)).await?)
        }
    }
    Ok(hit)
}

/// The other hosts' addresses on a network this host is on.
async fn peers_of(cluster: &Cluster, host: &Host) -> Result<Vec<Ipv4Addr>> {
    let mut others = Vec::new();
    for other in cluster
        .host_names(host.name.system)
        .into_iter()
        .filter(|o| *o != host.name)
    {
        let o = cluster.host(other).await?;
        others.push((other.to_string(), o.addresses()));
    }
    isolate::peer_addresses(&host.addresses(), &others)
}

/// The host's own address (the first network's, in name order).
fn own_address(host: &Host) -> Result<Ipv4Addr> {
    let mut addrs: Vec<(String, String)> = host.addresses().into_iter().collect();
    addrs.sort();
    let (_, a) = addrs
        .first()
        .ok_or_else(|| anyhow!("host {} has no network address", host.name))?;
    a.parse()
        .map_err(|_| anyhow!("host {} has a bad address {a:?}", host.name))
}

/// The member a layer names; an error for systems without layers. On swarm a Perseus host is
/// one container running both: the acceptor layer works there (Redis has its supervisor), a
/// node-only fault does not (the node is not a container of its own).
fn layer_member(host: &Host, layer: Layer) -> Result<&host::Member> {
    if host.name.system != System::Perseus {
        bail!(
            "--layer {layer:?} needs a Perseus host (acceptor + node); {} has one container",
            host.name
        );
    }
    match layer {
        Layer::Node if host.members.len() < 2 => bail!(
            "--layer node: on swarm {} runs its acceptor and its node in one container \
             (compose/perseus-host); node-only faults need the Compose testbed",
            host.name
        ),
        Layer::Node => Ok(&host.members[1]),
        _ => Ok(host.main()),
    }
}

/// Installs a rule fault in the host's namespace.
async fn rules(docker: &Docker, host: &Host, fault: RuleFault) -> Result<String> {
    if !docker::is_running(&host.main().info) {
        bail!("host {} is not running ({})", host.name, host.states());
    }
    let plan = netfault::apply(docker, &host.main().container.name, &fault).await?;
    Ok(format!(
        "{} rule(s) in chain {} (from {}) in {}",
        plan.rules.len(),
        plan.chain,
        plan.hooks.join(", "),
        host.main().container.service
    ))
}

/// One action on one host; returns what was done.
async fn act(
    cluster: &Cluster,
    name: HostName,
    kind: &FaultKind,
    args: &Args,
    wait: Duration,
) -> Result<String> {
    let host = cluster.host(name).await?;
    // Every action goes to the engine that runs the host.
    let engine = host.engine.clone();
    let docker = &engine.docker;
    let layer = args.layer;
    match kind {
        FaultKind::Kill => match layer {
            Layer::Host => fault::kill(docker, &host).await,
            Layer::Acceptor => layer::kill_acceptor(docker, layer_member(&host, layer)?).await,
            Layer::Node => fault::kill_members(docker, &host, &[layer_member(&host, layer)?]).await,
        },
        FaultKind::Start => match layer {
            Layer::Host => fault::start(docker, &host, wait).await,
            Layer::Acceptor => {
                layer::start_acceptor(docker, layer_member(&host, layer)?, wait).await
            }
            Layer::Node => {
                let m = layer_member(&host, layer)?;
                fault::start_member(docker, &host, m, wait).await
            }
        },
        FaultKind::Restart => {
            let killed = match layer {
                Layer::Host => fault::kill(docker, &host).await?,
                Layer::Acceptor => {
                    layer::kill_acceptor(docker, layer_member(&host, layer)?).await?
                }
                Layer::Node => {
                    fault::kill_members(docker, &host, &[layer_member(&host, layer)?]).await?
                }
            };
            // Inspect again: the start must see the stopped state.
            let host = cluster.host(name).await?;
            let started = match layer {
                Layer::Host => fault::start(docker, &host, wait).await?,
                Layer::Acceptor => {
                    layer::start_acceptor(docker, layer_member(&host, layer)?, wait).await?
                }
                Layer::Node => {
                    let m = layer_member(&host, layer)?;
                    fault::start_member(docker, &host, m, wait).await?
                }
            };
            Ok(format!("{killed}; {started}"))
        }
        FaultKind::Pause => match layer {
            Layer::Host => fault::pause(docker, &host).await,
            _ => fault::pause_members(docker, &host, &[layer_member(&host, layer)?]).await,
        },
        FaultKind::Resume => fault::resume(docker, &host).await,
        FaultKind::Isolate => {
            let peers = peers_of(cluster, &host).await?;
            match layer {
                Layer::Host => isolate::isolate_host(cluster, &host).await,
                Layer::Acceptor => {
                    layer_member(&host, layer)?;
                    rules(docker, &host, RuleFault::CutAcceptor { peers }).await
                }
                Layer::Node => {
                    layer_member(&host, layer)?;
                    rules(docker, &host, RuleFault::CutNode { peers }).await
                }
            }
        }
        FaultKind::IsolateInbound => {
            let peers = peers_of(cluster, &host).await?;
            rules(docker, &host, RuleFault::Inbound { peers }).await
        }
        FaultKind::IsolateOutbound => {
            let peers = peers_of(cluster, &host).await?;
            rules(docker, &host, RuleFault::Outbound { peers }).await
        }
        FaultKind::CutClients => {
            let peers = peers_of(cluster, &host).await?;
            let port = name.system.client_port();
            rules(docker, &host, RuleFault::CutClients { port, peers }).await
        }
        FaultKind::Loss(percent) => {
            let percent = f64::from(*percent);
            let peers = peers_of(cluster, &host).await?;
            let own = own_address(&host)?;
            let scope = args.scope;
            rules(
                docker,
                &host,
                RuleFault::Loss {
                    percent,
                    scope,
                    own,
                    peers,
                },
            )
            .await
        }
        FaultKind::Limit(rate) => {
            running(&host)?;
            let cmd = netfault::limit_command(rate);
            netfault::add_qdisc(docker, &host.main().container.name, &cmd).await?;
            Ok(format!(
                "`{}` in {}",
                cmd.join(" "),
                host.main().container.service
            ))
        }
        FaultKind::Delay(delay, jitter) => {
            running(&host)?;
            let cmd = netfault::delay_command(delay, jitter.as_deref());
            netfault::add_qdisc(docker, &host.main().container.name, &cmd).await?;
            Ok(format!(
                "`{}` in {}",
                cmd.join(" "),
                host.main().container.service
            ))
        }
        FaultKind::Amnesia => amnesia::amnesia(docker, &host, wait).await,
        FaultKind::Wipe => {
            let how = storage_stop(&host, layer)?;
            storage::wipe(docker, &cluster.project, &host, how, wait).await
        }
        FaultKind::Snapshot => storage::snapshot(docker, &cluster.project, &host).await,
        FaultKind::Rollback => {
            let how = storage_stop(&host, layer)?;
            storage::rollback(docker, &cluster.project, &host, how, wait).await
        }
        FaultKind::Truncate(bytes) => {
            let how = storage_stop(&host, layer)?;
            storage::truncate(docker, &cluster.project, &host, how, *bytes, wait).await
        }
        FaultKind::Heal => heal(docker, &host, wait).await,
        FaultKind::Partition(_) => bail!("partition acts on the whole system, not on a host"),
    }
}

/// What a storage fault stops: the whole host, or (`--layer acceptor`) a Perseus host's Redis.
fn storage_stop(host: &Host, layer: Layer) -> Result<storage::Stop> {
    match layer {
        Layer::Host => Ok(storage::Stop::Host),
        _ => {
            layer_member(host, layer)?;
            Ok(storage::Stop::Acceptor)
        }
    }
}

fn running(host: &Host) -> Result<()> {
    if !docker::is_running(&host.main().info) {
        bail!("host {} is not running ({})", host.name, host.states());
    }
    Ok(())
}

/// Undoes every fault on the host: thaws, starts what was killed, removes every chaos chain
/// and qdisc, starts a killed acceptor; says what it found. One undo failing does not stop the
/// others (the error names every failure).
async fn heal(docker: &Docker, host: &Host, wait: Duration) -> Result<String> {
    let mut done = Vec::new();
    let mut failed = Vec::new();
    if fault::any_paused(host) {
        match fault::resume(docker, host).await {
            Ok(d) => done.push(d),
            Err(e) => failed.push(format!("{e:#}")),
        }
    }
    let host = &host.refresh().await?;
    if fault::is_down(host) && !fault::any_paused(host) {
        match fault::start(docker, host, wait).await {
            Ok(d) => done.push(d),
            Err(e) => failed.push(format!("{e:#}")),
        }
    }
    let host = &host.refresh().await?;
    if docker::is_running(&host.main().info) {
        let main = &host.main().container.name;
        match netfault::remove_all(docker, main).await {
            Ok(chains) if chains.is_empty() => {}
            Ok(chains) => done.push(format!("removed chain(s) {}", chains.join(", "))),
            Err(e) => failed.push(format!("{e:#}")),
        }
        match netfault::remove_qdisc(docker, main).await {
            Ok(Some(q)) => done.push(format!(
                "removed the {} on {}",
                q.describe(),
                netfault::IFACE
            )),
            Ok(None) => {}
            Err(e) => failed.push(format!("{e:#}")),
        }
        // The acceptor runs under its supervisor on Compose (aN) and on swarm (aN, with the node).
        if host.name.system == System::Perseus {
            match layer::acceptor_down(docker, host.main()).await {
                Ok(true) => match layer::start_acceptor(docker, host.main(), wait).await {
                    Ok(d) => done.push(d),
                    Err(e) => failed.push(format!("{e:#}")),
                },
                Ok(false) => {}
                Err(e) => failed.push(format!("{e:#}")),
            }
        }
    } else {
        failed.push(format!(
            "host {} is not running ({})",
            host.name,
            host.states()
        ));
    }
    if !failed.is_empty() {
        bail!(
            "{} (undone: {})",
            failed.join("; "),
            if done.is_empty() {
                "nothing".to_string()
            } else {
                done.join("; ")
            }
        );
    }
    if done.is_empty() {
        Ok("no fault found: nothing to undo".into())
    } else {
        Ok(done.join("; "))
    }
}

/// `partition SHAPE`: every host of the target system gets its grudge (earlier partition
/// rules replaced); hosts without one have their partition chain removed.
async fn partition_cmd(
    cluster: &Cluster,
    args: &Args,
    spec: &str,
    recorder: &Recorder,
) -> Result<bool> {
    let system = cluster.resolve_target(args.target);
    let names = cluster.host_names(system);
    let shape = partition::parse(spec, &names)?;
    let mut hosts = HashMap::new();
    for &n in &names {
        let h = cluster.host(n).await?;
        if !docker::is_running(&h.main().info) {
            bail!(
                "host {n} is not running ({}): a partition needs every host up",
                h.states()
            );
        }
        hosts.insert(n, h);
    }
    let addr = |n: &HostName| own_address(&hosts[n]);
    let mut all_ok = true;
    for &n in &names {
        let begin = Utc::now();
        let grudge = shape.get(&n).cloned().unwrap_or_default();
        let result = async {
            let docker = hosts[&n].docker();
            let main = &hosts[&n].main().container.name;
            if grudge.cut.is_empty() && grudge.refuse.is_empty() {
                netfault::remove_chain(docker, main, "PERSEUS-PARTITION").await?;
                return Ok(None);
            }
            let cut = grudge.cut.iter().map(addr).collect::<Result<Vec<_>>>()?;
            let refuse = grudge.refuse.iter().map(addr).collect::<Result<Vec<_>>>()?;
            netfault::apply(docker, main, &RuleFault::Partition { cut, refuse }).await?;
            let list = |v: &[HostName]| {
                v.iter()
                    .map(|h| h.to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            };
            Ok::<_, anyhow::Error>(Some(format!(
                "partition {spec:?}: drops everything from [{}], refuses connections from [{}]; \
                 reaches [{}]",
                list(&grudge.cut),
                list(&grudge.refuse),
                list(&partition::reaches(&shape, &names, n))
            )))
        }
        .await;
        let (ok, detail) = match result {
            Ok(Some(d)) => (true, d),
            Ok(None) => continue,
            Err(e) => (false, format!("{e:#}")),
        };
        all_ok &= ok;
        recorder.record(&Event::new(
            FaultKind::Partition(spec.to_string()),
            HostArg::Host(n),
            begin,
            ok,
            detail,
        ))?;
    }
    Ok(all_ok)
}

/// Every fault present on the host, read from the engine and the namespace.
async fn active_faults(
    docker: &Docker,
    host: &Host,
    names: &HashMap<Ipv4Addr, String>,
) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for m in &host.members {
        if fault::is_paused(&m.info) {
            out.push(format!("{} paused", m.container.service));
        }
    }
    if !docker::is_running(&host.main().info) {
        return Ok(out);
    }
    let main = &host.main().container.name;
    if host.name.system == System::Perseus && layer::acceptor_down(docker, host.main()).await? {
        out.push("acceptor (redis-server) killed".into());
    }
    let present = netfault::present(docker, main).await?;
    out.extend(netfault::describe(&present, names));
    if let Some(q) = netfault::qdisc(docker, main).await? {
        out.push(q.describe());
    }
    Ok(out)
}

/// Prints the status table, then one line per problem found; Ok(false) when a host's
/// containers no longer share its network namespace (a broken testbed, not a fault chaos made).
async fn status(cluster: &Cluster, targets: &[HostName]) -> Result<bool> {
    // Addresses → host names, so faults read "isolated from a2,a3".
    let mut names: HashMap<Ipv4Addr, String> = HashMap::new();
    let mut hosts = Vec::new();
    for &name in targets {
        let host = cluster.host(name).await;
        if let Ok(h) = &host {
            for a in h.addresses().values() {
                if let Ok(ip) = a.parse() {
                    names.insert(ip, name.to_string());
                }
            }
        }
        hosts.push((name, host));
    }
    println!(
        "{:<5} {:<28} {:<9} {:<7} {:<12} {:<26} {:<46} FAULTS",
        "HOST",
        "CONTAINERS",
        "NETNS",
        "HEALTH",
        "ADDRESS",
        "ENGINE",
        "ACCEPTORS (as the node sees them)"
    );
    let mut problems = Vec::new();
    let mut detached_any = false;
    for (name, host) in hosts {
        let host = match host {
            Ok(h) => h,
            Err(e) => {
                println!("{:<5} error: {e:#}", name.to_string());
                continue;
            }
        };
        let docker = host.docker();
        let sharing = netns::check(docker, &host).await;
        let netns_col = if host.members.len() < 2 {
            "-"
        } else if netns::detached(&sharing).next().is_some() {
            "DETACHED"
        } else if sharing.iter().all(|s| *s == netns::Sharing::Shared) {
            "shared"
        } else {
            "?"
        };
        for s in netns::detached(&sharing) {
            detached_any = true;
            problems.push(format!(
                "{name}: {}: `make up` or `chaos start {name}` restarts it into the current one",
                s.describe()
            ));
        }
        // The node's own view of every acceptor (member, recovering with its catch-up
        // progress, unmarked, ...) comes with its health answer; etcd's body has none.
        let (health, acceptors) = match probe::health(&host).await {
            Ok((200, body)) => ("ok".to_string(), body),
            Ok((code, body)) => {
                if host.running() {
                    let why = body
                        .as_ref()
                        .and_then(|b| b.membership.as_ref())
                        .map(|m| format!(" ({}: {})", m.verdict, m.message))
                        .unwrap_or_default();
                    problems.push(format!(
                        "{name}: unhealthy where its users stand: /health answered {code}{why}"
                    ));
                }
                ("NO".to_string(), body)
            }
            Err(e) => {
                if host.running() {
                    problems.push(format!("{name}: unhealthy where its users stand: {e:#}"));
                }
                ("NO".to_string(), None)
            }
        };
        // Acceptors are named by address (10.77.0.12:6379): show the host's name instead.
        let host_name = |addr: &str| -> String {
            addr.split(':')
                .next()
                .and_then(|ip| ip.parse::<Ipv4Addr>().ok())
                .and_then(|ip| names.get(&ip).cloned())
                .unwrap_or_else(|| addr.to_string())
        };
        let acceptors =
            acceptors.map_or_else(|| "-".to_string(), |h| h.acceptors_line_named(host_name));
        let faults = match active_faults(docker, &host, &names).await {
            Ok(f) if f.is_empty() => "-".to_string(),
            Ok(f) => f.join("; "),
            Err(e) => format!("? ({e:#})"),
        };
        let mut addrs: Vec<String> = host.addresses().into_values().collect();
        addrs.sort();
        let addr = if addrs.is_empty() {
            "-".to_string()
        } else {
            addrs.join(",")
        };
        println!(
            "{:<5} {:<28} {netns_col:<9} {health:<7} {addr:<12} {:<26} {acceptors:<46} {faults}",
            name.to_string(),
            host.states(),
            host.engine.label
        );
    }
    // Saved snapshots (storage.rs): not faults, but what `rollback` would put back.
    let mut seen = std::collections::BTreeMap::new();
    for &name in targets {
        if let Ok(h) = cluster.host(name).await {
            if let Ok(saved) = storage::snapshots(h.docker(), &cluster.project).await {
                if let Some(s) = saved.get(&name.to_string()) {
                    seen.insert(name.to_string(), s.clone());
                }
            }
        }
    }
    for (name, s) in &seen {
        let when = s.taken.map_or_else(
            || "at an unknown time".to_string(),
            |t| {
                format!(
                    "{} ({:.0} s ago)",
                    perseus_model::time::rfc3339_ms(t),
                    (Utc::now() - t).num_milliseconds() as f64 / 1000.0
                )
            },
        );
        println!(
            "snapshot of {name} saved {when} in volume {}: `chaos rollback {name}` (make rollback-{name}) puts it back",
            s.volume
        );
    }
    for p in &problems {
        println!("! {p}");
    }
    Ok(!detached_any)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(argv: &[&str]) -> Result<Args, clap::Error> {
        Args::try_parse_from(std::iter::once("chaos").chain(argv.iter().copied()))
    }

    fn split(argv: &[&str]) -> Result<(Option<HostArg>, Vec<String>)> {
        parse(argv).map_err(|e| anyhow!("{e}"))?.split()
    }

    #[test]
    fn parses_commands() {
        let a = parse(&["kill", "a1"]).unwrap();
        assert_eq!(a.command, Command::Kill);
        assert_eq!(
            a.split().unwrap().0,
            Some(HostArg::Host(HostName::perseus(1)))
        );
        assert_eq!(a.target, Target::Auto);
        let a = parse(&["heal"]).unwrap();
        assert_eq!(a.command, Command::Heal);
        assert_eq!(a.split().unwrap().0, None);
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
        assert_eq!(
            a.split().unwrap().0,
            Some(HostArg::Host(HostName::perseus(3)))
        );
        let a = parse(&["start", "a2", "--wait", "5"]).unwrap();
        assert_eq!((a.command, a.wait), (Command::Start, 5));
        assert_eq!(parse(&["status"]).unwrap().command, Command::Status);
        assert_eq!(parse(&["health"]).unwrap().command, Command::Health);
    }

    #[test]
    fn parses_etcd_hosts_leader_and_target() {
        let a = parse(&["--target", "etcd", "kill", "leader"]).unwrap();
        assert_eq!(a.target, Target::System(System::Etcd));
        assert_eq!(
            (a.command, a.split().unwrap().0),
            (Command::Kill, Some(HostArg::Leader))
        );
        assert_eq!(
            split(&["isolate", "e2"]).unwrap().0,
            Some(HostArg::Host(HostName::etcd(2)))
        );
        let a = parse(&["--target", "perseus", "heal"]).unwrap();
        assert_eq!(
            (a.target, a.split().unwrap().0),
            (Target::System(System::Perseus), None)
        );
        let a = parse(&["start", "leader", "--leader-wait", "3"]).unwrap();
        assert_eq!(a.leader_wait, 3);
        assert!(parse(&["--target", "consul", "kill", "leader"]).is_err());
        assert!(split(&["kill", "e4"]).is_err());
        assert!(split(&["kill", "LEADER"]).is_err());
    }

    #[test]
    fn parses_the_new_faults_and_their_parameters() {
        let (h, p) = split(&["loss", "a1", "30"]).unwrap();
        assert_eq!(
            (h, p),
            (Some(HostArg::Host(HostName::perseus(1))), vec!["30".into()])
        );
        assert_eq!(
            parse(&["--scope", "all", "loss", "a1", "5"]).unwrap().scope,
            Scope::All
        );
        assert!(split(&["limit", "a2", "256kbit"]).is_ok());
        assert_eq!(split(&["delay", "a2", "50ms", "10ms"]).unwrap().1.len(), 2);
        assert!(split(&["delay", "a2", "50ms"]).is_ok());
        assert_eq!(
            split(&["partition", "a1 | a2 a3"]).unwrap(),
            (None, vec!["a1 | a2 a3".to_string()])
        );
        assert!(split(&["partition", "majorities-ring"]).is_ok());
        let a = parse(&["--layer", "acceptor", "kill", "a1"]).unwrap();
        assert_eq!(a.layer, Layer::Acceptor);
        assert!(a.split().is_ok());
        assert_eq!(
            parse(&["isolate-inbound", "a1"]).unwrap().command,
            Command::IsolateInbound
        );
        assert_eq!(
            parse(&["cut-clients", "a1"]).unwrap().command,
            Command::CutClients
        );
        assert_eq!(parse(&["amnesia", "a3"]).unwrap().command, Command::Amnesia);
        let a = parse(&["--layer", "acceptor", "rollback", "a1"]).unwrap();
        assert_eq!(
            a.split().unwrap().0,
            Some(HostArg::Host(HostName::perseus(1)))
        );
        let a = parse(&["truncate", "e2", "512"]).unwrap();
        let (_, p) = a.split().unwrap();
        assert_eq!(a.fault_kind(&p).unwrap(), Some(FaultKind::Truncate(512)));
        let a = parse(&["truncate", "leader"]).unwrap();
        let (h, p) = a.split().unwrap();
        assert_eq!(h, Some(HostArg::Leader));
        assert_eq!(
            a.fault_kind(&p).unwrap(),
            Some(FaultKind::Truncate(
                perseus_model::fault::DEFAULT_TRUNCATE_BYTES
            ))
        );
        assert_eq!(split(&["snapshot"]).unwrap(), (None, vec![]));
        assert!(split(&["wipe", "z3"]).is_ok() && split(&["rollback", "q1"]).is_ok());
        let a = parse(&["--scope", "all", "loss", "a1", "30"]).unwrap();
        let (_, p) = a.split().unwrap();
        assert_eq!(a.fault_kind(&p).unwrap(), Some(FaultKind::Loss(30)));
        assert_eq!(event_params(&a)["scope"], "all");
        let a = parse(&["delay", "a1", "50ms", "10ms"]).unwrap();
        let (_, p) = a.split().unwrap();
        assert_eq!(
            a.fault_kind(&p).unwrap().unwrap().to_string(),
            "delay:50ms,10ms"
        );
    }

    #[test]
    fn rejects_bad_input() {
        assert!(parse(&[]).is_err());
        assert!(parse(&["explode", "a1"]).is_err());
        assert!(split(&["kill", "a4"]).is_err());
        assert!(split(&["kill", "p1"]).is_err());
        assert!(split(&["kill", "a1", "a2"]).is_err());
        assert!(parse(&["start", "a1", "--wait", "-1"]).is_err());
        let err = |argv: &[&str]| format!("{:#}", split(argv).unwrap_err());
        assert!(err(&["loss", "a1"]).contains("usage: chaos loss HOST PERCENT"));
        assert!(err(&["loss", "a1", "150"]).contains("between 1 and 100"));
        assert!(err(&["loss", "a1", "lots"]).contains("percentage"));
        assert!(err(&["loss"]).contains("usage"));
        assert!(err(&["limit", "a1", "fast"]).contains("rate"));
        assert!(err(&["delay", "a1", "50ms", "10ms", "5ms"]).contains("usage"));
        assert!(err(&["delay", "a1", "soon"]).contains("time"));
        assert!(err(&["partition"]).contains("SHAPE"));
        assert!(err(&["--layer", "node", "loss", "a1", "3"]).contains("--layer"));
        assert!(err(&["--layer", "node", "wipe", "a1"]).contains("keeps no data"));
        assert!(err(&["wipe"]).contains("needs a HOST"));
        assert!(err(&["truncate"]).contains("needs a HOST"));
        assert!(err(&["truncate", "a1", "0"]).contains("0 bytes"));
        assert!(err(&["truncate", "a1", "1", "2"]).contains("usage: chaos truncate HOST [BYTES]"));
        assert!(err(&["snapshot", "a1", "now"]).contains("usage"));
        assert!(parse(&["--layer", "redis", "kill", "a1"]).is_err());
    }

    #[test]
    fn project_default() {
        // The env var may be set by the caller; only check when it is not.
        if std::env::var_os("COMPOSE_PROJECT_NAME").is_none() {
            assert_eq!(parse(&["status"]).unwrap().project, "perseus");
        }
    }
}
