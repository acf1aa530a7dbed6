//! The nemesis: how each fault kind is done to a host. [`run`] resolves the hosts a call names
//! (one, `leader`, or every host of the target), acts on each and records one event per host;
//! [`act`] is the kind × layer table that calls the mechanisms (fault.rs for the containers,
//! layer.rs for a Perseus host's acceptor, isolate.rs and netfault.rs for the namespace,
//! storage/ for the volumes); [`heal`] undoes whatever it finds on a host.
//!
//! Adding a fault kind: its arm in [`act`] and, when it leaves something that lasts, how
//! [`heal`] undoes it and how [`active_faults`] sees it (the status table and `heal leader`
//! read that).

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use bollard::Docker;
use chrono::Utc;
use perseus_model::partition::{self, Grudges};
use perseus_model::{ChaosCall, FaultKind, Layer, Leadership, Shape};

use crate::delay::{self, PeerDelay, Ways};
use crate::error::{outcome, ChaosError};
use crate::events::{Event, Recorder};
use crate::host::{self, Cluster, Host, HostArg, HostName, System, Target};
use crate::netfault::{self, RuleFault};
use crate::{clock, docker, fault, isolate, layer, leader, machine, storage};

/// How long actions wait, and which system they aim at.
pub struct Options {
    pub target: Target,
    /// How long `start`/`restart`/`amnesia`/`heal` wait for health (zero: not at all).
    pub wait: Duration,
    /// How long to wait for a leader to be agreed on.
    pub leader_wait: Duration,
}

/// Does the call on every host it names; Ok(false) if any action failed.
pub async fn run(
    cluster: &Cluster,
    call: &ChaosCall,
    options: &Options,
    recorder: &Recorder,
) -> Result<bool> {
    let kind = &call.fault;
    if let FaultKind::Partition(shape) = kind {
        return partition_all(cluster, options.target, shape, recorder).await;
    }
    if let FaultKind::DelayLinks(links) = kind {
        return delay_links_all(cluster, links, recorder).await;
    }
    let record = |host: HostArg, begin, result: Result<String>| {
        recorder.record(
            &Event::new(kind.clone(), host, begin, outcome(result)).applied(call.layer, call.scope),
        )
    };
    let targets = match call.host {
        Some(HostArg::Host(h)) => vec![h],
        Some(HostArg::Leader) => {
            let begin = Utc::now();
            match resolve_leader(cluster, kind, options).await {
                Ok(hosts) if hosts.is_empty() => {
                    println!(
                        "{} {} leader: no {} host to {} (nothing was hit)",
                        perseus_model::time::rfc3339_ms(begin),
                        kind.name(),
                        cluster.resolve_target(options.target),
                        kind.name()
                    );
                    return Ok(true);
                }
                Ok(hosts) => hosts,
                Err(e) => {
                    record(
                        HostArg::Leader,
                        begin,
                        Err(e.context("resolving the leader")),
                    )?;
                    return Ok(false);
                }
            }
        }
        None => every_host(cluster, options.target),
    };
    if targets.is_empty() {
        bail!(
            "project {:?} has no hosts of any system (for --target {})",
            cluster.project,
            options.target
        );
    }
    let wait = options.wait;
    // Healing hosts whose machine is down: power it on first (that starts its hosts), then
    // heal the others with the engines as they are now.
    let reloaded;
    let mut cluster = cluster;
    let mut targets = targets;
    let mut machines_ok = true;
    if *kind == FaultKind::Heal && targets.iter().any(|h| cluster.off(*h).is_some()) {
        let mut started: Vec<HostName> = Vec::new();
        for &h in &targets {
            if cluster.off(h).is_none() || started.contains(&h) {
                continue;
            }
            let begin = Utc::now();
            let result = machine::start(cluster, h, wait).await;
            machines_ok &= result.is_ok();
            started.extend(machine::same_machine(cluster, h));
            record(HostArg::Host(h), begin, result)?;
        }
        reloaded = Cluster::load(&cluster.hosts, &cluster.project).await?;
        cluster = &reloaded;
        targets.retain(|h| !started.contains(h));
        if targets.is_empty() {
            return Ok(machines_ok);
        }
    }
    // Healing several hosts: undo every host's faults first, then wait for all of them. A
    // host healed first cannot be healthy while the others are still paused or cut off (it
    // has no quorum), so waiting host by host would fail on faults about to be undone.
    if *kind == FaultKind::Heal && targets.len() > 1 && !wait.is_zero() {
        let mut undone = Vec::new();
        for &h in &targets {
            let begin = Utc::now();
            undone.push((h, begin, act(cluster, h, call, Duration::ZERO).await));
        }
        let health = wait_healthy(cluster, &targets, wait).await;
        let mut all_ok = health.is_ok();
        for (h, begin, result) in undone {
            let result = match (result, &health) {
                (Ok(d), Ok(())) => Ok(format!("{d}; every host healthy")),
                (Ok(d), Err(e)) => Err(anyhow!("{e:#} (undone: {d})")),
                (Err(e), _) => Err(e),
            };
            all_ok &= result.is_ok();
            record(HostArg::Host(h), begin, result)?;
        }
        return Ok(all_ok && machines_ok);
    }
    let mut all_ok = machines_ok;
    for h in targets {
        let begin = Utc::now();
        let result = act(cluster, h, call, wait).await;
        all_ok &= result.is_ok();
        record(HostArg::Host(h), begin, result)?;
    }
    Ok(all_ok)
}

/// Every host of the target (of every system for `auto`), those on a machine that is down too.
pub fn every_host(cluster: &Cluster, target: Target) -> Vec<HostName> {
    let of = |s: System| {
        let mut hosts = cluster.host_names(s);
        hosts.extend(cluster.off_hosts(s));
        hosts.sort();
        hosts
    };
    match target {
        Target::Auto => cluster.systems().into_iter().flat_map(of).collect(),
        t => of(cluster.resolve_target(t)),
    }
}

/// The host(s) `leader` stands for, for this kind (see leader.rs). For the undoing kinds the
/// answer may be empty (nothing to undo).
async fn resolve_leader(
    cluster: &Cluster,
    kind: &FaultKind,
    options: &Options,
) -> Result<Vec<HostName>> {
    let system = cluster.resolve_target(options.target);
    if system.leadership() == Leadership::Leaderless {
        let first = system.hosts()[0];
        eprintln!("{system} has no leader (every host serves on its own): `leader` means {first}");
        return Ok(vec![first]);
    }
    let names = cluster.host_names(system);
    if names.is_empty() {
        bail!("project {:?} has no {system} hosts", cluster.project);
    }
    if !kind.is_undo() {
        return Ok(vec![
            leader::leader(cluster, system, options.leader_wait).await?,
        ]);
    }
    let mut hit = Vec::new();
    // A machine that is down is what start-machine and heal bring back.
    if matches!(kind, FaultKind::StartMachine | FaultKind::Heal) {
        hit.extend(cluster.off_hosts(system));
    }
    for name in names {
        let host = cluster.host(name).await?;
        let broken = match kind {
            FaultKind::Start => fault::is_down(&host),
            FaultKind::Resume => fault::any_paused(&host),
            _ => !active_faults(host.docker(), &host, &HashMap::new())
                .await?
                .is_empty(),
        };
        if broken {
            hit.push(name);
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
            "--layer {layer} needs a Perseus host (acceptor + node); {} has one container",
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

/// Fails unless the container owning the host's namespace runs.
fn running(host: &Host) -> Result<()> {
    if !docker::is_running(&host.main().info) {
        return Err(ChaosError::not_running(format!("host {}", host.name), host.states()).into());
    }
    Ok(())
}

/// Installs a rule fault in the host's namespace.
async fn rules(docker: &Docker, host: &Host, fault: RuleFault) -> Result<String> {
    running(host)?;
    let plan = netfault::apply(docker, &host.main().container.name, &fault).await?;
    Ok(format!(
        "{} rule(s) in chain {} (from {}) in {}",
        plan.rules.len(),
        plan.chain,
        plan.hooks.join(", "),
        host.main().container.service
    ))
}

/// Installs a root qdisc on the host's interface.
async fn qdisc(docker: &Docker, host: &Host, cmd: Vec<String>) -> Result<String> {
    running(host)?;
    netfault::add_qdisc(docker, &host.main().container.name, &cmd).await?;
    Ok(format!(
        "`{}` in {}",
        cmd.join(" "),
        host.main().container.service
    ))
}

/// SIGKILLs the layer of the host.
async fn kill(docker: &Docker, host: &Host, layer: Layer) -> Result<String> {
    match layer {
        Layer::Host => fault::kill(docker, host).await,
        Layer::Acceptor => layer::kill_acceptor(docker, layer_member(host, layer)?).await,
        Layer::Node => fault::kill_members(docker, host, &[layer_member(host, layer)?]).await,
    }
}

/// Starts the layer of the host again and waits for its health.
async fn start(docker: &Docker, host: &Host, layer: Layer, wait: Duration) -> Result<String> {
    match layer {
        Layer::Host => fault::start(docker, host, wait).await,
        Layer::Acceptor => layer::start_acceptor(docker, layer_member(host, layer)?, wait).await,
        Layer::Node => {
            let m = layer_member(host, layer)?;
            fault::start_member(docker, host, m, wait).await
        }
    }
}

/// One action on one host; returns what was done.
pub async fn act(
    cluster: &Cluster,
    name: HostName,
    call: &ChaosCall,
    wait: Duration,
) -> Result<String> {
    // The machine's power is switched from outside its engine (which may not answer).
    match &call.fault {
        FaultKind::KillMachine => return machine::kill(cluster, name).await,
        FaultKind::StartMachine => return machine::start(cluster, name, wait).await,
        _ => {}
    }
    let host = cluster.host(name).await?;
    // Every action goes to the engine that runs the host.
    let engine = host.engine.clone();
    let docker = &engine.docker;
    let layer = call.layer;
    match &call.fault {
        FaultKind::Kill => kill(docker, &host, layer).await,
        FaultKind::Start => start(docker, &host, layer, wait).await,
        FaultKind::Restart => {
            let killed = kill(docker, &host, layer).await?;
            // Inspect again: the start must see the stopped state.
            let host = cluster.host(name).await?;
            let started = start(docker, &host, layer, wait).await?;
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
            let fault = RuleFault::Loss {
                percent: f64::from(*percent),
                scope: call.scope.unwrap_or_default(),
                own: own_address(&host)?,
                peers: peers_of(cluster, &host).await?,
            };
            rules(docker, &host, fault).await
        }
        FaultKind::Limit(rate) => qdisc(docker, &host, netfault::limit_command(*rate)).await,
        FaultKind::Delay(d, jitter) if delay::use_netem() => {
            qdisc(docker, &host, netfault::delay_command(*d, *jitter)).await
        }
        FaultKind::Delay(d, jitter) => {
            let mut peers = Vec::new();
            for other in cluster.host_names(name.system) {
                if other != name {
                    peers.push(PeerDelay {
                        peer: own_address(&cluster.host(other).await?)?,
                        n: other.n,
                        delay: *d,
                        jitter: *jitter,
                    });
                }
            }
            delay::delay(docker, &host, &peers, Ways::Both).await
        }
        FaultKind::Clock(shift) => clock::apply(docker, &host, *shift, wait).await,
        FaultKind::DelayLinks(_) => bail!("delay-links acts on the whole system, not on a host"),
        FaultKind::Amnesia => storage::amnesia(docker, &cluster.project, &host, wait).await,
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
        FaultKind::KillMachine | FaultKind::StartMachine => {
            bail!("the machine faults are done before the host is looked up")
        }
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

/// Waits until every host answers its health URL from outside, all within one `wait`.
pub async fn wait_healthy(cluster: &Cluster, targets: &[HostName], wait: Duration) -> Result<()> {
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

/// Every fault present on the host, read from the engine and the namespace.
pub async fn active_faults(
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
    out.extend(delay::describe(docker, host, names).await?);
    out.extend(clock::describe(docker, host).await?);
    Ok(out)
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
        match delay::heal(docker, host).await {
            Ok(Some(d)) => done.push(d),
            Ok(None) => {}
            Err(e) => failed.push(format!("{e:#}")),
        }
        match clock::heal(docker, host, wait).await {
            Ok(Some(d)) => done.push(d),
            Ok(None) => {}
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
async fn partition_all(
    cluster: &Cluster,
    target: Target,
    shape: &Shape,
    recorder: &Recorder,
) -> Result<bool> {
    let system = cluster.resolve_target(target);
    let names = cluster.host_names(system);
    let grudges = shape.grudges(&names)?;
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
    let mut all_ok = true;
    for &n in &names {
        let begin = Utc::now();
        let result = partition_one(&hosts, &grudges, &names, shape, n).await;
        let result = match result {
            Ok(Some(d)) => Ok(d),
            Ok(None) => continue,
            Err(e) => Err(e),
        };
        all_ok &= result.is_ok();
        recorder.record(&Event::new(
            FaultKind::Partition(shape.clone()),
            HostArg::Host(n),
            begin,
            outcome(result),
        ))?;
    }
    Ok(all_ok)
}

/// Lays host `n`'s grudge; `None` when it has none (its partition chain removed).
async fn partition_one(
    hosts: &HashMap<HostName, Host>,
    grudges: &Grudges,
    names: &[HostName],
    shape: &Shape,
    n: HostName,
) -> Result<Option<String>> {
    let addr = |h: &HostName| own_address(&hosts[h]);
    let grudge = grudges.get(&n).cloned().unwrap_or_default();
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
    Ok(Some(format!(
        "partition {:?}: drops everything from [{}], refuses connections from [{}]; reaches [{}]",
        shape.to_string(),
        list(&grudge.cut),
        list(&grudge.refuse),
        list(&partition::reaches(grudges, names, n))
    )))
}

/// `delay-links LINKS`: every host of the links' system gets its outgoing delays per peer
/// (earlier delays replaced); hosts without a link have their delay removed.
async fn delay_links_all(
    cluster: &Cluster,
    links: &perseus_model::Links,
    recorder: &Recorder,
) -> Result<bool> {
    let system = links.system();
    let names = cluster.host_names(system);
    let mut hosts = HashMap::new();
    let mut addresses = HashMap::new();
    for &n in &names {
        let h = cluster.host(n).await?;
        if !docker::is_running(&h.main().info) {
            bail!(
                "host {n} is not running ({}): per-link delays need every host up",
                h.states()
            );
        }
        addresses.insert(n, own_address(&h)?);
        hosts.insert(n, h);
    }
    let per_host = delay::link_delays(links, &addresses)?;
    let mut all_ok = true;
    for &n in &names {
        let begin = Utc::now();
        let h = &hosts[&n];
        let result = match per_host.get(&n) {
            Some(peers) => delay::delay(h.docker(), h, peers, Ways::Outgoing).await,
            None => match delay::heal(h.docker(), h).await {
                Ok(Some(d)) => Ok(format!("no link: {d}")),
                Ok(None) => continue,
                Err(e) => Err(e),
            },
        };
        all_ok &= result.is_ok();
        recorder.record(&Event::new(
            FaultKind::DelayLinks(links.clone()),
            HostArg::Host(n),
            begin,
            outcome(result),
        ))?;
    }
    Ok(all_ok)
}
