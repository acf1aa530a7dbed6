//! Delay without netem: the host's packets to (and, for `delay`, from) each peer go to a
//! netfilter queue of the host's namespace, served by a `delayer` (delayer/) that holds each one
//! for DELAY ± JITTER and accepts it then. This kernel has the netfilter queue but no
//! sch_netem; `CHAOS_DELAY=netem` still takes netem's road where the kernel has it (egress only).
//!
//! What is installed on a delayed host:
//! - a helper container from the Perseus image (`CHAOS_DELAYER_IMAGE`, default
//!   `perseus:latest`) in the host's network namespace (`network_mode: container:<owner>`,
//!   CAP_NET_ADMIN), running `delayer QUEUE=DELAY[,JITTER]...`, one queue per peer
//!   ([`QUEUE_BASE`] + the peer's number). It carries the project's Compose label (an orphan
//!   `make down` removes) and `perseus.delayer.host=<host>`;
//! - chain `PERSEUS-DELAY` in the **mangle** table, jumped to from OUTPUT (`-d PEER -j NFQUEUE
//!   --queue-num Q --queue-bypass`) and, for `delay`, from INPUT (`-s PEER`). Mangle runs before
//!   filter at both hooks, so a packet the delayer accepts still meets the filter table's
//!   isolation and loss rules (an accept ends the packet's walk through the table it was
//!   queued from). `--queue-bypass` lets packets pass undelayed when no delayer listens, so a
//!   dead delayer never cuts a host off.
//!
//! `delay HOST` delays both ways (p1's round trip to a2's Redis is 2 × DELAY); `delay-links`
//! delays each host's outgoing packets per peer, so a link's round trip is twice its one-way
//! delay. Heal removes the chain first (no new packet is queued), then stops the delayer with
//! SIGTERM: it releases every packet it holds and prints what it did; status reads the chain
//! and the helper, never a memory of what chaos did.

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{LogsOptionsBuilder, RemoveContainerOptionsBuilder};
use bollard::Docker;
use futures::StreamExt;
use perseus_model::Span;

use crate::docker;
use crate::host::Host;
use crate::netfault;

/// The chain in the mangle table.
pub const CHAIN: &str = "PERSEUS-DELAY";
/// Queue of the peer numbered N: QUEUE_BASE + N.
pub const QUEUE_BASE: u16 = 7700;
/// The label that names the host a delayer serves.
const LABEL_HOST: &str = "perseus.delayer.host";
/// How long the delayer may take to bind its queues.
const READY_WAIT: Duration = Duration::from_secs(10);
/// What the delayer prints once its queues are bound (delayer/src/queue.rs).
const READY_LINE: &str = "delayer: serving";

/// Which packets are delayed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ways {
    /// To and from each peer (`delay HOST`).
    Both,
    /// Only to each peer (`delay-links`: each end delays its own side of the link).
    Outgoing,
}

/// One peer's delay on a host.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerDelay {
    pub peer: Ipv4Addr,
    /// The peer's number in its system (a2 → 2): its queue is QUEUE_BASE + n.
    pub n: u8,
    pub delay: Span,
    pub jitter: Option<Span>,
}

impl PeerDelay {
    pub fn queue(&self) -> u16 {
        QUEUE_BASE + u16::from(self.n)
    }

    /// The delayer's operand `QUEUE=DELAY[,JITTER]`.
    pub fn operand(&self) -> String {
        match self.jitter {
            Some(j) => format!("{}={},{j}", self.queue(), self.delay),
            None => format!("{}={}", self.queue(), self.delay),
        }
    }
}

/// Whether chaos delays with netem (`CHAOS_DELAY=netem`) instead of the delayer.
pub fn use_netem() -> bool {
    std::env::var("CHAOS_DELAY").is_ok_and(|v| v == "netem")
}

fn image() -> String {
    std::env::var("CHAOS_DELAYER_IMAGE").unwrap_or_else(|_| "perseus:latest".to_string())
}

fn ipt(args: &[&str]) -> Vec<String> {
    ["iptables", "-w", "-t", "mangle"]
        .iter()
        .chain(args)
        .map(|s| s.to_string())
        .collect()
}

/// The iptables commands that send the peers' packets to their queues.
pub fn rule_commands(peers: &[PeerDelay], ways: Ways) -> Vec<Vec<String>> {
    let mut cmds = vec![ipt(&["-N", CHAIN])];
    for p in peers {
        let q = p.queue().to_string();
        let peer = p.peer.to_string();
        let mut dirs = vec!["-d"];
        if ways == Ways::Both {
            dirs.push("-s");
        }
        for dir in dirs {
            cmds.push(ipt(&[
                "-A",
                CHAIN,
                dir,
                &peer,
                "-j",
                "NFQUEUE",
                "--queue-num",
                &q,
                "--queue-bypass",
            ]));
        }
    }
    if ways == Ways::Both {
        cmds.push(ipt(&["-I", "INPUT", "1", "-j", CHAIN]));
    }
    cmds.push(ipt(&["-I", "OUTPUT", "1", "-j", CHAIN]));
    cmds
}

/// The delayer's command line.
pub fn delayer_command(peers: &[PeerDelay], seed: u64) -> Vec<String> {
    let mut argv = vec!["delayer".to_string(), "--seed".into(), seed.to_string()];
    argv.extend(peers.iter().map(PeerDelay::operand));
    argv
}

/// The delay chain's rules and jumps in the mangle table of the container's namespace.
async fn present(docker: &Docker, container: &str) -> Result<netfault::Present> {
    let listing = docker::exec_ok(docker, container, &ipt(&["-S"])).await?;
    let mut p = netfault::parse_rules(&listing);
    // parse_rules writes filter-table deletions: these live in mangle.
    for j in &mut p.jumps {
        j.splice(2..2, ["-t".to_string(), "mangle".to_string()]);
    }
    p.chains.retain(|(c, _)| c == CHAIN);
    p.jumps
        .retain(|j| j.last().map(String::as_str) == Some(CHAIN));
    Ok(p)
}

/// Removes the chain and its jumps; returns whether it was there.
pub async fn remove_rules(docker: &Docker, container: &str) -> Result<bool> {
    let p = present(docker, container).await?;
    for jump in &p.jumps {
        docker::exec_ok(docker, container, jump).await?;
    }
    let had = !p.chains.is_empty();
    if had {
        docker::exec_ok(docker, container, &ipt(&["-F", CHAIN])).await?;
        docker::exec_ok(docker, container, &ipt(&["-X", CHAIN])).await?;
    }
    let left = present(docker, container).await?;
    if !left.chains.is_empty() || !left.jumps.is_empty() {
        bail!("{CHAIN} still present in {container}'s mangle table after removal: {left:?}");
    }
    Ok(had || !p.jumps.is_empty())
}

/// The project (Compose label, or swarm stack) the host's containers belong to.
fn project_of(host: &Host) -> String {
    let labels = host
        .main()
        .info
        .config
        .as_ref()
        .and_then(|c| c.labels.clone())
        .unwrap_or_default();
    labels
        .get(docker::LABEL_PROJECT)
        .or_else(|| labels.get(docker::LABEL_STACK))
        .cloned()
        .unwrap_or_else(|| "perseus".to_string())
}

/// The delayer containers of the host (running or not).
async fn helpers(docker: &Docker, host: &Host) -> Result<Vec<bollard::models::ContainerSummary>> {
    let project = project_of(host);
    let all = docker::list(docker, &format!("{LABEL_HOST}={}", host.name)).await?;
    Ok(all
        .into_iter()
        .filter(|c| {
            c.labels
                .as_ref()
                .and_then(|l| l.get(docker::LABEL_PROJECT))
                .is_some_and(|p| *p == project)
        })
        .collect())
}

async fn logs(docker: &Docker, id: &str) -> String {
    let opts = LogsOptionsBuilder::default()
        .stdout(true)
        .stderr(true)
        .build();
    let mut out = String::new();
    let mut stream = docker.logs(id, Some(opts));
    while let Some(Ok(chunk)) = stream.next().await {
        out.push_str(&chunk.to_string());
    }
    out
}

/// Stops every delayer of the host (SIGTERM: it releases what it holds) and removes it;
/// returns the delayers' own last words (packets released, CPU per packet).
pub async fn stop_delayers(docker: &Docker, host: &Host) -> Result<Vec<String>> {
    let mut said = Vec::new();
    for c in helpers(docker, host).await? {
        let Some(id) = c.id else { continue };
        let stop = bollard::query_parameters::StopContainerOptionsBuilder::default()
            .t(5)
            .build();
        // Already stopped is fine: the removal below is what must succeed.
        let _ = docker.stop_container(&id, Some(stop)).await;
        let words = logs(docker, &id).await;
        let last = words
            .lines()
            .rev()
            .find(|l| l.contains("released"))
            .map(|l| l.trim().trim_start_matches("delayer: ").to_string())
            .unwrap_or_else(|| "it had stopped before".to_string());
        let rm = RemoveContainerOptionsBuilder::default().force(true).build();
        docker
            .remove_container(&id, Some(rm))
            .await
            .with_context(|| format!("removing the delayer of {}", host.name))?;
        said.push(format!("stopped the delayer ({last})"));
    }
    Ok(said)
}

/// Starts a delayer in the host's namespace and waits until its queues are bound.
async fn start_delayer(docker: &Docker, host: &Host, argv: Vec<String>) -> Result<String> {
    let project = project_of(host);
    let owner = &host.main().container;
    let body = ContainerCreateBody {
        image: Some(image()),
        entrypoint: Some(vec![]),
        cmd: Some(argv),
        user: Some("0".into()),
        labels: Some(HashMap::from([
            (docker::LABEL_PROJECT.to_string(), project),
            (
                docker::LABEL_SERVICE.to_string(),
                format!("delayer-{}", host.name),
            ),
            (LABEL_HOST.to_string(), host.name.to_string()),
        ])),
        host_config: Some(HostConfig {
            network_mode: Some(format!("container:{}", owner.id)),
            cap_add: Some(vec!["NET_ADMIN".into()]),
            ..Default::default()
        }),
        ..Default::default()
    };
    let created = docker
        .create_container(None, body)
        .await
        .with_context(|| format!("creating the delayer of {} (image {})", host.name, image()))?;
    docker
        .start_container(&created.id, None)
        .await
        .with_context(|| format!("starting the delayer of {}", host.name))?;
    let begin = std::time::Instant::now();
    loop {
        let words = logs(docker, &created.id).await;
        if let Some(line) = words.lines().find(|l| l.starts_with(READY_LINE)) {
            return Ok(line.trim().to_string());
        }
        let info = docker.inspect_container(&created.id, None).await?;
        if !docker::is_running(&info) || begin.elapsed() > READY_WAIT {
            let rm = RemoveContainerOptionsBuilder::default().force(true).build();
            let _ = docker.remove_container(&created.id, Some(rm)).await;
            bail!(
                "the delayer of {} did not start serving its queues: {}",
                host.name,
                words.trim()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Delays the host's packets to its peers (and from them with [`Ways::Both`]); replaces an
/// earlier delay of the host. Undone (and nothing left) on failure.
pub async fn delay(
    docker: &Docker,
    host: &Host,
    peers: &[PeerDelay],
    ways: Ways,
) -> Result<String> {
    if !docker::is_running(&host.main().info) {
        bail!("host {} is not running ({})", host.name, host.states());
    }
    if peers.is_empty() {
        bail!("host {} has no peer to delay", host.name);
    }
    let main = &host.main().container.name;
    remove_rules(docker, main).await?;
    stop_delayers(docker, host).await?;
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or_default()
        ^ u64::from(host.name.n);
    let ready = start_delayer(docker, host, delayer_command(peers, seed)).await?;
    for cmd in rule_commands(peers, ways) {
        if let Err(e) = docker::exec_ok(docker, main, &cmd).await {
            let undo = async {
                remove_rules(docker, main).await?;
                stop_delayers(docker, host).await
            };
            return match undo.await {
                Ok(_) => Err(e.context("delay undone")),
                Err(u) => Err(e.context(format!("undoing the delay failed too: {u:#}"))),
            };
        }
    }
    let how = match ways {
        Ways::Both => "to and from",
        Ways::Outgoing => "to",
    };
    Ok(format!(
        "{ready}; packets {how} {} queued in chain {CHAIN} (mangle) of {}",
        peers
            .iter()
            .map(|p| p.peer.to_string())
            .collect::<Vec<_>>()
            .join(", "),
        host.main().container.service
    ))
}

/// Removes the host's delay (rules, then delayers); None when there was none.
pub async fn heal(docker: &Docker, host: &Host) -> Result<Option<String>> {
    let mut done = Vec::new();
    if docker::is_running(&host.main().info)
        && remove_rules(docker, &host.main().container.name).await?
    {
        done.push(format!("removed chain {CHAIN} (mangle)"));
    }
    done.extend(stop_delayers(docker, host).await?);
    Ok((!done.is_empty()).then(|| done.join("; ")))
}

/// The delay in force on the host, in the user's words (`delayed: a2 50ms±10ms, a3 50ms±10ms,
/// both ways`); `names` maps addresses to host names.
pub async fn describe(
    docker: &Docker,
    host: &Host,
    names: &HashMap<Ipv4Addr, String>,
) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let rules = if docker::is_running(&host.main().info) {
        present(docker, &host.main().container.name).await?
    } else {
        netfault::Present::default()
    };
    let mut specs: BTreeMap<String, String> = BTreeMap::new();
    let mut running = false;
    let helpers = helpers(docker, host).await?;
    for c in &helpers {
        running |= c.state == Some(bollard::models::ContainerSummaryStateEnum::RUNNING);
        let command = c.command.clone().unwrap_or_default();
        for word in command.split_whitespace() {
            if let Some((q, spec)) = word.split_once('=') {
                specs.insert(q.to_string(), spec.replace(',', "±"));
            }
        }
    }
    if let Some((_, chain_rules)) = rules.chains.first() {
        out.push(describe_rules(chain_rules, &specs, names, running));
    } else if !helpers.is_empty() {
        out.push(format!(
            "a delayer without its rules ({}): heal removes it",
            if running { "running" } else { "stopped" }
        ));
    }
    Ok(out)
}

/// `delayed: a2 50ms±10ms, a3 50ms, both ways` from the chain's rules and the queues' specs.
pub fn describe_rules(
    rules: &[Vec<String>],
    specs: &BTreeMap<String, String>,
    names: &HashMap<Ipv4Addr, String>,
    running: bool,
) -> String {
    let mut peers: Vec<String> = Vec::new();
    let mut both = false;
    for r in rules {
        let after = |flag: &str| {
            r.iter()
                .position(|w| w == flag)
                .and_then(|i| r.get(i + 1))
                .cloned()
        };
        if after("-s").is_some() {
            both = true;
            continue;
        }
        let Some(addr) = after("-d") else { continue };
        let addr = addr.trim_end_matches("/32").to_string();
        let name = addr
            .parse::<Ipv4Addr>()
            .ok()
            .and_then(|ip| names.get(&ip).cloned())
            .unwrap_or(addr);
        let spec = after("--queue-num")
            .and_then(|q| specs.get(&q).cloned())
            .unwrap_or_else(|| "?".into());
        peers.push(format!("{name} {spec}"));
    }
    format!(
        "delayed{}: {}{}",
        if running {
            ""
        } else {
            " (NO delayer running: packets pass undelayed)"
        },
        peers.join(", "),
        if both { ", both ways" } else { ", outgoing" }
    )
}

/// The peers' delays of every host a set of links touches, by host number.
pub fn link_delays(
    links: &perseus_model::Links,
    addresses: &HashMap<perseus_model::HostName, Ipv4Addr>,
) -> Result<BTreeMap<perseus_model::HostName, Vec<PeerDelay>>> {
    let mut out = BTreeMap::new();
    for (host, peers) in links.per_host() {
        let mut list = Vec::new();
        for (peer, delay, jitter) in peers {
            let addr = addresses
                .get(&peer)
                .copied()
                .ok_or_else(|| anyhow!("no address for {peer}: is it up?"))?;
            list.push(PeerDelay {
                peer: addr,
                n: peer.n,
                delay,
                jitter,
            });
        }
        out.insert(host, list);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use perseus_model::{HostName, Links};

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    fn peers() -> Vec<PeerDelay> {
        vec![
            PeerDelay {
                peer: ip("10.77.0.12"),
                n: 2,
                delay: Span::from_millis(50),
                jitter: Some(Span::from_millis(10)),
            },
            PeerDelay {
                peer: ip("10.77.0.13"),
                n: 3,
                delay: Span::from_millis(50),
                jitter: None,
            },
        ]
    }

    #[test]
    fn both_ways_rules_and_the_delayer_command() {
        let lines: Vec<String> = rule_commands(&peers(), Ways::Both)
            .iter()
            .map(|c| c.join(" "))
            .collect();
        assert_eq!(
            lines,
            vec![
                "iptables -w -t mangle -N PERSEUS-DELAY",
                "iptables -w -t mangle -A PERSEUS-DELAY -d 10.77.0.12 -j NFQUEUE --queue-num 7702 --queue-bypass",
                "iptables -w -t mangle -A PERSEUS-DELAY -s 10.77.0.12 -j NFQUEUE --queue-num 7702 --queue-bypass",
                "iptables -w -t mangle -A PERSEUS-DELAY -d 10.77.0.13 -j NFQUEUE --queue-num 7703 --queue-bypass",
                "iptables -w -t mangle -A PERSEUS-DELAY -s 10.77.0.13 -j NFQUEUE --queue-num 7703 --queue-bypass",
                "iptables -w -t mangle -I INPUT 1 -j PERSEUS-DELAY",
                "iptables -w -t mangle -I OUTPUT 1 -j PERSEUS-DELAY",
            ]
        );
        let out = rule_commands(&peers(), Ways::Outgoing);
        assert_eq!(out.len(), 4);
        assert!(out.iter().all(|c| !c.contains(&"-s".to_string())));
        assert_eq!(
            delayer_command(&peers(), 7).join(" "),
            "delayer --seed 7 7702=50ms,10ms 7703=50ms"
        );
    }

    #[test]
    fn reads_back_what_is_present() {
        let rules = vec![
            "-d 10.77.0.12/32 -j NFQUEUE --queue-num 7702 --queue-bypass",
            "-s 10.77.0.12/32 -j NFQUEUE --queue-num 7702 --queue-bypass",
            "-d 10.77.0.13/32 -j NFQUEUE --queue-num 7703 --queue-bypass",
        ]
        .into_iter()
        .map(|r| r.split_whitespace().map(String::from).collect())
        .collect::<Vec<Vec<String>>>();
        let specs: BTreeMap<String, String> = [
            ("7702".to_string(), "50ms±10ms".to_string()),
            ("7703".to_string(), "50ms".to_string()),
        ]
        .into();
        let names: HashMap<Ipv4Addr, String> = [(ip("10.77.0.12"), "a2".to_string())].into();
        assert_eq!(
            describe_rules(&rules, &specs, &names, true),
            "delayed: a2 50ms±10ms, 10.77.0.13 50ms, both ways"
        );
        assert!(describe_rules(&rules, &specs, &names, false).contains("NO delayer"));
    }

    #[test]
    fn links_become_each_hosts_outgoing_delays() {
        let links: Links = "a1-a2=11ms a1-a3=85ms,5ms a2-a3=95ms".parse().unwrap();
        let addresses: HashMap<HostName, Ipv4Addr> = (1..=3)
            .map(|n| (HostName::perseus(n), ip(&format!("10.77.0.1{n}"))))
            .collect();
        let per = link_delays(&links, &addresses).unwrap();
        let a3: Vec<String> = per[&HostName::perseus(3)]
            .iter()
            .map(PeerDelay::operand)
            .collect();
        assert_eq!(a3, vec!["7701=85ms,5ms", "7702=95ms"]);
        let missing: HashMap<HostName, Ipv4Addr> = HashMap::new();
        assert!(link_delays(&links, &missing).is_err());
    }
}
