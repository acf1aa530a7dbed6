//! What chaos sees: each host's containers, shared namespace, health from where its users
//! stand, the node's view of its acceptors, and every fault present (`nemesis::active_faults`,
//! read from the engine and the namespace, never from a memory of what chaos did, so it cannot
//! lie), as one typed `perseus_model::HostStatus` per host, printed as the status table, as
//! JSON lines, or one field of it for scripts.

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;

use anyhow::{bail, Result};
use chrono::Utc;
use perseus_model::{HealthCheck, HostStatus, Netns};

use crate::host::{Cluster, Host, HostName, System};
use crate::nemesis::active_faults;
use crate::{netns, probe, storage};

/// How `status` answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// The table, then one line per problem and per saved snapshot.
    Table,
    /// One JSON line per host ([`HostStatus`]).
    Json,
    /// One field of each host's status, one line per host ([`HostStatus::get`]).
    Field(String),
}

/// Shows the target hosts as `output` says; the table is Ok(false) when a host's containers no
/// longer share its network namespace (a broken testbed, not a fault chaos made), JSON and a
/// field are Ok(true) once answered (the answer says it).
pub async fn status(cluster: &Cluster, targets: &[HostName], output: &Output) -> Result<bool> {
    if let Output::Field(field) = output {
        // A misspelt field is refused before any engine is asked.
        if let Err(e) = placeholder(targets[0]).get(field) {
            bail!("{e}");
        }
    }
    let found = look(cluster, targets).await;
    let detached = found
        .iter()
        .any(|f| matches!(f, Ok(s) if s.netns == Netns::Detached));
    match output {
        Output::Json => {
            for (name, f) in targets.iter().zip(&found) {
                match f {
                    Ok(s) => println!("{}", serde_json::to_string(s)?),
                    Err(e) => bail!("{name}: {e:#}"),
                }
            }
        }
        Output::Field(field) => {
            for (name, f) in targets.iter().zip(&found) {
                match f {
                    Ok(s) => println!("{}", s.get(field)?),
                    Err(e) => bail!("{name}: {e:#}"),
                }
            }
        }
        Output::Table => {
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
            for (name, f) in targets.iter().zip(&found) {
                match f {
                    Ok(s) => println!("{}", row(s)),
                    Err(e) => println!("{:<5} error: {e:#}", name.to_string()),
                }
            }
            saved_snapshots(cluster, targets).await;
            for s in found.iter().flatten() {
                for p in &s.problems {
                    println!("! {p}");
                }
            }
        }
    }
    Ok(*output != Output::Table || !detached)
}

/// A status with nothing found, to check a field's name against.
fn placeholder(host: HostName) -> HostStatus {
    HostStatus {
        host,
        containers: String::new(),
        netns: Netns::Unknown,
        healthy: false,
        addresses: vec![],
        engine: String::new(),
        verdict: None,
        acceptors: BTreeMap::new(),
        acceptors_line: String::new(),
        faults: vec![],
        problems: vec![],
    }
}

/// One row of the table.
fn row(s: &HostStatus) -> String {
    let health = if s.healthy { "ok" } else { "NO" };
    let netns = match s.netns {
        Netns::Detached => "DETACHED",
        n => n.as_str(),
    };
    let addr = if s.addresses.is_empty() {
        "-".to_string()
    } else {
        s.addresses.join(",")
    };
    let faults = if s.faults.is_empty() {
        "-".to_string()
    } else {
        s.faults.join("; ")
    };
    format!(
        "{:<5} {:<28} {netns:<9} {health:<7} {addr:<12} {:<26} {:<46} {faults}",
        s.host.to_string(),
        s.containers,
        s.engine,
        s.acceptors_line
    )
}

/// Every target host's status (an error for a host chaos could not find).
async fn look(cluster: &Cluster, targets: &[HostName]) -> Vec<Result<HostStatus>> {
    // Addresses → host names, so faults read "isolated from a2,a3" and acceptors are named
    // `a2`: every host's address in the systems table, then the found containers' own (which
    // differ on a swarm).
    let mut names: HashMap<Ipv4Addr, String> = HashMap::new();
    for system in System::ALL {
        for h in system.hosts() {
            names.insert(system.address(h.n), h.to_string());
        }
    }
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
        hosts.push(host);
    }
    let mut found = Vec::new();
    for host in hosts {
        found.push(match host {
            Ok(h) => Ok(host_status(&h, &names).await),
            Err(e) => Err(e),
        });
    }
    found
}

/// What one host is now.
async fn host_status(host: &Host, names: &HashMap<Ipv4Addr, String>) -> HostStatus {
    let name = host.name;
    let docker = host.docker();
    let mut problems = Vec::new();
    let sharing = netns::check(docker, host).await;
    let netns = if host.members.len() < 2 {
        Netns::Alone
    } else if netns::detached(&sharing).next().is_some() {
        Netns::Detached
    } else if sharing.iter().all(|s| *s == netns::Sharing::Shared) {
        Netns::Shared
    } else {
        Netns::Unknown
    };
    for s in netns::detached(&sharing) {
        problems.push(format!(
            "{name}: {}: `make up` or `chaos start {name}` restarts it into the current one",
            s.describe()
        ));
    }
    // The node's own view of every acceptor (member, recovering with its catch-up
    // progress, unmarked, ...) comes with its health answer; etcd's body has none.
    // Perseus and etcd answer GET /health on their client port (with the node's view in the
    // body); every other system is asked its own health question (srvr, Sentinel's quorum,
    // its health check's port), as heal and the storage faults ask it.
    let asked = match host.name.system.health() {
        HealthCheck::Http { port, path }
            if port == host.name.system.client_port() && path == "/health" =>
        {
            probe::health(host).await
        }
        _ => probe::healthy(host).await.map(|()| (200, None)),
    };
    let (healthy, body) = match asked {
        Ok((200, body)) => (true, body),
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
            (false, body)
        }
        Err(e) => {
            if host.running() {
                problems.push(format!("{name}: unhealthy where its users stand: {e:#}"));
            }
            (false, None)
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
    let (acceptors, acceptors_line, verdict) = match &body {
        Some(h) => {
            let mut states = BTreeMap::new();
            let named = h
                .membership
                .as_ref()
                .map(|v| v.acceptors.iter().map(|a| a.name.clone()).collect())
                .unwrap_or_else(|| {
                    h.acceptors
                        .iter()
                        .map(|a| a.name.clone())
                        .collect::<Vec<_>>()
                });
            for a in named {
                if let Some(state) = h.acceptor_state(&a) {
                    states.insert(host_name(&a), state);
                }
            }
            (
                states,
                h.acceptors_line_named(host_name),
                h.membership.as_ref().map(|m| m.verdict),
            )
        }
        None => (BTreeMap::new(), "-".to_string(), None),
    };
    let faults = match active_faults(docker, host, names).await {
        Ok(f) => f,
        Err(e) => vec![format!("? ({e:#})")],
    };
    let mut addresses: Vec<String> = host.addresses().into_values().collect();
    addresses.sort();
    HostStatus {
        host: name,
        containers: host.states(),
        netns,
        healthy,
        addresses,
        engine: host.engine.label.clone(),
        verdict,
        acceptors,
        acceptors_line,
        faults,
        problems,
    }
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
