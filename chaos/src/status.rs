//! What chaos sees: the status table, each host's containers, shared namespace, health from
//! where its users stand, the node's view of its acceptors, and every fault present
//! (`nemesis::active_faults`, read from the engine and the namespace, never from a memory of
//! what chaos did, so it cannot lie).

use anyhow::Result;
use chrono::Utc;
use std::collections::HashMap;
use std::net::Ipv4Addr;

use crate::host::{Cluster, HostName};
use crate::nemesis::active_faults;
use crate::{netns, probe, storage};

/// Prints the status table, then one line per problem found; Ok(false) when a host's
/// containers no longer share its network namespace (a broken testbed, not a fault chaos made).
pub async fn status(cluster: &Cluster, targets: &[HostName]) -> Result<bool> {
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
    saved_snapshots(cluster, targets).await;
    for p in &problems {
        println!("! {p}");
    }
    Ok(!detached_any)
}

/// One line per saved snapshot (storage.rs): not faults, but what `rollback` would put back.
async fn saved_snapshots(cluster: &Cluster, targets: &[HostName]) {
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
}
