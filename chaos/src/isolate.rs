//! Network isolation of a host: iptables rules in the acceptor's network namespace (which the
//! node shares) that drop all traffic to and from the other hosts' addresses, and only those,
//! so clients still reach the node. Everything lives in one chain, `PERSEUS-ISOLATE`, jumped to
//! from INPUT and OUTPUT; heal removes the jumps and the chain and nothing else.
//!
//! Rule construction is pure (and unit tested); `apply`/`remove` run it through docker exec,
//! check every exit code and roll back an isolation that fails half-way; `isolate_host` and
//! `heal_host` are the `isolate` and `heal` actions on a whole host.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use anyhow::{anyhow, bail, Result};
use bollard::Docker;

use crate::docker;
use crate::error::ChaosError;
use crate::host::{Cluster, Host};

/// The chain that holds every rule chaos adds.
pub const CHAIN: &str = "PERSEUS-ISOLATE";
/// Upper bound on the jumps heal removes from one built-in chain (there is normally one).
const MAX_JUMPS: usize = 16;

fn ipt(args: &[&str]) -> Vec<String> {
    std::iter::once("iptables")
        .chain(std::iter::once("-w"))
        .chain(args.iter().copied())
        .map(String::from)
        .collect()
}

/// The commands that isolate a host from `peers`, in order.
pub fn isolate_commands(peers: &[Ipv4Addr]) -> Vec<Vec<String>> {
    let mut cmds = vec![ipt(&["-N", CHAIN])];
    for p in peers {
        let p = p.to_string();
        cmds.push(ipt(&["-A", CHAIN, "-s", &p, "-j", "DROP"]));
        cmds.push(ipt(&["-A", CHAIN, "-d", &p, "-j", "DROP"]));
    }
    cmds.push(ipt(&["-I", "INPUT", "1", "-j", CHAIN]));
    cmds.push(ipt(&["-I", "OUTPUT", "1", "-j", CHAIN]));
    cmds
}

/// The command that removes one jump to the chain from a built-in chain (fails when none left).
pub fn unjump_command(builtin: &str) -> Vec<String> {
    ipt(&["-D", builtin, "-j", CHAIN])
}

/// The commands that empty and delete the chain once no jump refers to it.
pub fn drop_chain_commands() -> Vec<Vec<String>> {
    vec![ipt(&["-F", CHAIN]), ipt(&["-X", CHAIN])]
}

/// The command whose success means the chain exists.
pub fn probe_command() -> Vec<String> {
    ipt(&["-S", CHAIN])
}

/// The peers' addresses: for each other host, its address on a network this host is also on.
/// `own` and each of `others` map network name → IPv4 address.
pub fn peer_addresses(
    own: &HashMap<String, String>,
    others: &[(String, HashMap<String, String>)],
) -> Result<Vec<Ipv4Addr>> {
    if own.is_empty() {
        bail!("the host has no network address");
    }
    let mut nets: Vec<&String> = own.keys().collect();
    nets.sort();
    let mut peers = Vec::new();
    for (name, addrs) in others {
        let addr = nets
            .iter()
            .find_map(|n| addrs.get(*n))
            .ok_or_else(|| anyhow!("peer {name} shares no network with the host"))?;
        let ip: Ipv4Addr = addr
            .parse()
            .map_err(|_| anyhow!("peer {name} has a bad IPv4 address {addr:?}"))?;
        if !peers.contains(&ip) {
            peers.push(ip);
        }
    }
    if peers.is_empty() {
        bail!("no peers to isolate from");
    }
    Ok(peers)
}

/// Whether the chain exists in the container's namespace.
pub async fn is_isolated(docker: &Docker, container: &str) -> Result<bool> {
    let out = docker::exec(docker, container, &probe_command()).await?;
    if out.code == 0 {
        return Ok(true);
    }
    if out.code == 126 || out.code == 127 {
        bail!("iptables cannot run in {container}: {}", out.output);
    }
    Ok(false)
}

/// Removes the jumps and the chain; returns whether anything was there. Idempotent.
pub async fn remove(docker: &Docker, container: &str) -> Result<bool> {
    let mut removed = 0;
    for builtin in ["INPUT", "OUTPUT"] {
        for _ in 0..MAX_JUMPS {
            let out = docker::exec(docker, container, &unjump_command(builtin)).await?;
            if out.code != 0 {
                break;
            }
            removed += 1;
        }
    }
    let existed = is_isolated(docker, container).await?;
    if existed {
        for cmd in drop_chain_commands() {
            docker::exec_ok(docker, container, &cmd).await?;
        }
    }
    if is_isolated(docker, container).await? {
        bail!("chain {CHAIN} still present in {container} after heal");
    }
    Ok(existed || removed > 0)
}

/// Adds the rules (replacing any earlier ones); on failure removes what was added.
pub async fn apply(docker: &Docker, container: &str, peers: &[Ipv4Addr]) -> Result<()> {
    remove(docker, container).await?;
    for cmd in isolate_commands(peers) {
        if let Err(e) = docker::exec_ok(docker, container, &cmd).await {
            return match remove(docker, container).await {
                Ok(_) => Err(e.context("isolation rolled back")),
                Err(r) => Err(e.context(format!("rollback failed too: {r:#}"))),
            };
        }
    }
    Ok(())
}

/// `isolate`: drops the host's traffic with every other host of its system.
pub async fn isolate_host(cluster: &Cluster, host: &Host) -> Result<String> {
    let docker = host.docker();
    let name = host.name;
    if !docker::is_running(&host.main().info) {
        return Err(ChaosError::not_running(format!("host {name}"), host.states()).into());
    }
    let mut others = Vec::new();
    for other in cluster
        .host_names(name.system)
        .into_iter()
        .filter(|o| *o != name)
    {
        let o = cluster.host(other).await?;
        others.push((other.to_string(), o.addresses()));
    }
    let peers = peer_addresses(&host.addresses(), &others)?;
    apply(docker, &host.main().container.name, &peers).await?;
    let list: Vec<String> = peers.iter().map(|p| p.to_string()).collect();
    Ok(format!(
        "isolated from {} (chain {CHAIN} in {})",
        list.join(", "),
        host.main().container.service
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn isolate_rules() {
        let peers = ["10.77.0.12".parse().unwrap(), "10.77.0.13".parse().unwrap()];
        let cmds: Vec<String> = isolate_commands(&peers)
            .iter()
            .map(|c| c.join(" "))
            .collect();
        assert_eq!(
            cmds,
            vec![
                "iptables -w -N PERSEUS-ISOLATE",
                "iptables -w -A PERSEUS-ISOLATE -s 10.77.0.12 -j DROP",
                "iptables -w -A PERSEUS-ISOLATE -d 10.77.0.12 -j DROP",
                "iptables -w -A PERSEUS-ISOLATE -s 10.77.0.13 -j DROP",
                "iptables -w -A PERSEUS-ISOLATE -d 10.77.0.13 -j DROP",
                "iptables -w -I INPUT 1 -j PERSEUS-ISOLATE",
                "iptables -w -I OUTPUT 1 -j PERSEUS-ISOLATE",
            ]
        );
    }

    #[test]
    fn heal_rules() {
        assert_eq!(
            unjump_command("INPUT").join(" "),
            "iptables -w -D INPUT -j PERSEUS-ISOLATE"
        );
        let cmds: Vec<String> = drop_chain_commands().iter().map(|c| c.join(" ")).collect();
        assert_eq!(
            cmds,
            vec![
                "iptables -w -F PERSEUS-ISOLATE",
                "iptables -w -X PERSEUS-ISOLATE"
            ]
        );
        assert_eq!(probe_command().join(" "), "iptables -w -S PERSEUS-ISOLATE");
    }

    #[test]
    fn peers_on_shared_network() {
        let own = map(&[("perseus_perseus", "10.77.0.11")]);
        let others = vec![
            (
                "a2".to_string(),
                map(&[("bridge", "172.17.0.2"), ("perseus_perseus", "10.77.0.12")]),
            ),
            ("a3".to_string(), map(&[("perseus_perseus", "10.77.0.13")])),
        ];
        let peers = peer_addresses(&own, &others).unwrap();
        assert_eq!(
            peers,
            vec![
                "10.77.0.12".parse::<Ipv4Addr>().unwrap(),
                "10.77.0.13".parse().unwrap()
            ]
        );
    }

    #[test]
    fn peers_errors() {
        let own = map(&[("perseus_perseus", "10.77.0.11")]);
        let elsewhere = vec![("a2".to_string(), map(&[("other", "10.1.0.2")]))];
        assert!(peer_addresses(&own, &elsewhere).is_err());
        let bad = vec![("a2".to_string(), map(&[("perseus_perseus", "10.77.0")]))];
        assert!(peer_addresses(&own, &bad).is_err());
        assert!(peer_addresses(&HashMap::new(), &elsewhere).is_err());
        assert!(peer_addresses(&own, &[]).is_err());
    }
}
