//! Network faults inside a host's namespace: iptables rules (each kind in its own chain
//! `PERSEUS-<KIND>`, jumped to from INPUT and/or OUTPUT) and traffic-control qdiscs on the
//! host's interface. What a rule does at the packet level:
//!
//! - loss: `-m statistic --mode random --probability P -j DROP` on packets to and from the
//!   peers (or every packet that leaves the namespace), both directions;
//! - inbound / outbound one-way cuts: `-m conntrack --ctdir ORIGINAL` drops the packets of
//!   connections the peers open to the host (inbound) or of the connections the host opens to
//!   the peers (outbound, matched as ORIGINAL leaving and REPLY arriving); connections the
//!   other way still work. A packet-level one-way drop would break every TCP connection both
//!   ways and be an isolation under another name;
//! - partition: the host's grudge from partition.rs (cut = every packet from those peers,
//!   refuse = the connections they open);
//! - client cut: packets to the client port from anyone but the peers;
//! - layer cut (Perseus): only the Redis acceptor (port 6379 served to the peers) or only
//!   the node (its connections to the peers' 6379);
//! - limit: a `tbf` root qdisc on the interface (egress); delay: a `netem` root qdisc, which
//!   needs the kernel's sch_netem (an error naming it when the kernel lacks it).
//!
//! Heal and status read what is present (`iptables -S`, `tc qdisc show`), never a memory of
//! what chaos did, so they undo and show exactly what is there.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use anyhow::{bail, Result};
use bollard::Docker;

use perseus_model::{Rate, Scope, Span};

use crate::docker;
use crate::error::ChaosError;

/// Every chain chaos creates starts with this.
pub const PREFIX: &str = "PERSEUS-";
/// The interface of a container on the testbed network.
pub const IFACE: &str = "eth0";
/// The Redis port of a Perseus acceptor.
pub const ACCEPTOR_PORT: u16 = 6379;

/// A fault made of iptables rules in one chain.
#[derive(Debug, Clone, PartialEq)]
pub enum RuleFault {
    Loss {
        percent: f64,
        scope: Scope,
        own: Ipv4Addr,
        peers: Vec<Ipv4Addr>,
    },
    Inbound {
        peers: Vec<Ipv4Addr>,
    },
    Outbound {
        peers: Vec<Ipv4Addr>,
    },
    Partition {
        cut: Vec<Ipv4Addr>,
        refuse: Vec<Ipv4Addr>,
    },
    CutClients {
        port: u16,
        peers: Vec<Ipv4Addr>,
    },
    CutAcceptor {
        peers: Vec<Ipv4Addr>,
    },
    CutNode {
        peers: Vec<Ipv4Addr>,
    },
}

/// The chain and its rules, ready to run.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub chain: &'static str,
    /// Rules appended to the chain (arguments after `-A CHAIN`).
    pub rules: Vec<Vec<String>>,
    /// Built-in chains that jump to it.
    pub hooks: &'static [&'static str],
}

fn ipt(args: &[&str]) -> Vec<String> {
    ["iptables", "-w"]
        .iter()
        .chain(args.iter())
        .map(|s| s.to_string())
        .collect()
}

fn words(text: &str) -> Vec<String> {
    text.split_whitespace().map(String::from).collect()
}

impl RuleFault {
    pub fn plan(&self) -> Plan {
        const BOTH: &[&str] = &["INPUT", "OUTPUT"];
        match self {
            RuleFault::Loss {
                percent,
                scope,
                own,
                peers,
            } => {
                let p = format!("{:.4}", percent / 100.0);
                let drop = format!("-m statistic --mode random --probability {p} -j DROP");
                let rules = match scope {
                    Scope::Peers => peers
                        .iter()
                        .flat_map(|ip| {
                            [
                                words(&format!("-s {ip} {drop}")),
                                words(&format!("-d {ip} {drop}")),
                            ]
                        })
                        .collect(),
                    Scope::All => vec![
                        // Loopback and the host talking to itself are not links.
                        words("-s 127.0.0.0/8 -j RETURN"),
                        words("-d 127.0.0.0/8 -j RETURN"),
                        words(&format!("-s {own} -d {own} -j RETURN")),
                        words(&drop),
                    ],
                };
                Plan {
                    chain: "PERSEUS-LOSS",
                    rules,
                    hooks: BOTH,
                }
            }
            RuleFault::Inbound { peers } => Plan {
                chain: "PERSEUS-INBOUND",
                rules: peers
                    .iter()
                    .flat_map(|ip| {
                        [
                            words(&format!("-s {ip} -m conntrack --ctdir ORIGINAL -j DROP")),
                            words(&format!("-d {ip} -m conntrack --ctdir REPLY -j DROP")),
                        ]
                    })
                    .collect(),
                hooks: BOTH,
            },
            RuleFault::Outbound { peers } => Plan {
                chain: "PERSEUS-OUTBOUND",
                rules: peers
                    .iter()
                    .flat_map(|ip| {
                        [
                            words(&format!("-d {ip} -m conntrack --ctdir ORIGINAL -j DROP")),
                            words(&format!("-s {ip} -m conntrack --ctdir REPLY -j DROP")),
                        ]
                    })
                    .collect(),
                hooks: BOTH,
            },
            RuleFault::Partition { cut, refuse } => {
                Plan {
                    chain: "PERSEUS-PARTITION",
                    rules: cut
                        .iter()
                        .map(|ip| words(&format!("-s {ip} -j DROP")))
                        .chain(refuse.iter().map(|ip| {
                            words(&format!("-s {ip} -m conntrack --ctdir ORIGINAL -j DROP"))
                        }))
                        .collect(),
                    hooks: &["INPUT"],
                }
            }
            RuleFault::CutClients { port, peers } => Plan {
                chain: "PERSEUS-CLIENTS",
                rules: peers
                    .iter()
                    .map(|ip| words(&format!("-s {ip} -j RETURN")))
                    .chain(std::iter::once(words(&format!(
                        "-p tcp --dport {port} -j DROP"
                    ))))
                    .collect(),
                hooks: &["INPUT"],
            },
            RuleFault::CutAcceptor { peers } => Plan {
                chain: "PERSEUS-ACCEPTOR",
                rules: peers
                    .iter()
                    .map(|ip| words(&format!("-s {ip} -p tcp --dport {ACCEPTOR_PORT} -j DROP")))
                    .collect(),
                hooks: &["INPUT"],
            },
            RuleFault::CutNode { peers } => Plan {
                chain: "PERSEUS-NODE",
                rules: peers
                    .iter()
                    .map(|ip| words(&format!("-d {ip} -p tcp --dport {ACCEPTOR_PORT} -j DROP")))
                    .collect(),
                hooks: &["OUTPUT"],
            },
        }
    }
}

/// The commands that install a plan (the chain must not exist yet).
pub fn install_commands(plan: &Plan) -> Vec<Vec<String>> {
    let mut cmds = vec![ipt(&["-N", plan.chain])];
    for r in &plan.rules {
        let mut c = ipt(&["-A", plan.chain]);
        c.extend(r.iter().cloned());
        cmds.push(c);
    }
    for hook in plan.hooks {
        cmds.push(ipt(&["-I", hook, "1", "-j", plan.chain]));
    }
    cmds
}

/// What `iptables -S` lists that belongs to chaos: the jumps to remove (as `-D` commands)
/// and the chains with their rules.
#[derive(Debug, Default, PartialEq)]
pub struct Present {
    pub jumps: Vec<Vec<String>>,
    /// Chain name → its rules (the words after `-A CHAIN`).
    pub chains: Vec<(String, Vec<Vec<String>>)>,
}

/// Parses `iptables -S` (the filter table).
pub fn parse_rules(listing: &str) -> Present {
    let mut present = Present::default();
    for line in listing.lines() {
        let w: Vec<&str> = line.split_whitespace().collect();
        match w.as_slice() {
            ["-N", chain] if chain.starts_with(PREFIX) => {
                present.chains.push((chain.to_string(), Vec::new()))
            }
            ["-A", chain, rest @ ..] if chain.starts_with(PREFIX) => {
                if let Some((_, rules)) = present.chains.iter_mut().find(|(c, _)| c == chain) {
                    rules.push(rest.iter().map(|s| s.to_string()).collect());
                }
            }
            ["-A", builtin, rest @ ..]
                if rest
                    .windows(2)
                    .any(|p| p[0] == "-j" && p[1].starts_with(PREFIX)) =>
            {
                let mut c = ipt(&["-D", builtin]);
                c.extend(rest.iter().map(|s| s.to_string()));
                present.jumps.push(c);
            }
            _ => {}
        }
    }
    present
}

/// One line per chain, in the user's words; `names` maps addresses to host names.
pub fn describe(present: &Present, names: &HashMap<Ipv4Addr, String>) -> Vec<String> {
    let who = |rules: &[Vec<String>], flag: &str| -> String {
        let mut out: Vec<String> = Vec::new();
        for r in rules {
            if let Some(i) = r.iter().position(|w| w == flag) {
                let addr = r[i + 1].trim_end_matches("/32");
                let name = addr
                    .parse::<Ipv4Addr>()
                    .ok()
                    .and_then(|ip| names.get(&ip).cloned())
                    .unwrap_or_else(|| addr.to_string());
                if !out.contains(&name) {
                    out.push(name);
                }
            }
        }
        out.join(",")
    };
    let refusing = |rules: &[Vec<String>], ctdir: bool| -> Vec<Vec<String>> {
        rules
            .iter()
            .filter(|r| r.iter().any(|w| w == "--ctdir") == ctdir)
            .cloned()
            .collect()
    };
    present
        .chains
        .iter()
        .map(|(chain, rules)| match chain.as_str() {
            "PERSEUS-ISOLATE" => format!("isolated from {}", who(rules, "-s")),
            "PERSEUS-LOSS" => {
                let p = rules
                    .iter()
                    .find_map(|r| {
                        r.iter()
                            .position(|w| w == "--probability")
                            .and_then(|i| r[i + 1].parse::<f64>().ok())
                    })
                    .unwrap_or(0.0);
                let scope = if rules.iter().any(|r| r.iter().any(|w| w == "RETURN")) {
                    "all traffic".to_string()
                } else {
                    who(rules, "-s")
                };
                format!("loss {:.0}% ({scope})", p * 100.0)
            }
            "PERSEUS-INBOUND" => format!("refuses connections from {}", who(rules, "-s")),
            "PERSEUS-OUTBOUND" => format!("cannot connect to {}", who(rules, "-d")),
            "PERSEUS-PARTITION" => {
                let cut = who(&refusing(rules, false), "-s");
                let refuse = who(&refusing(rules, true), "-s");
                match (cut.is_empty(), refuse.is_empty()) {
                    (false, true) => format!("partition: cut from {cut}"),
                    (true, false) => format!("partition: refuses connections from {refuse}"),
                    _ => format!("partition: cut from {cut}, refuses connections from {refuse}"),
                }
            }
            "PERSEUS-CLIENTS" => "clients cut (peers still reach it)".to_string(),
            "PERSEUS-ACCEPTOR" => format!("acceptor cut from {}", who(rules, "-s")),
            "PERSEUS-NODE" => format!("node cut from {}", who(rules, "-d")),
            other => format!("chain {other}"),
        })
        .collect()
}

/// What chaos's rules in the container's namespace are right now.
pub async fn present(docker: &Docker, container: &str) -> Result<Present> {
    let listing = docker::exec_ok(docker, container, &ipt(&["-S"])).await?;
    Ok(parse_rules(&listing))
}

/// Removes one chain (its jumps first); returns whether it was there.
pub async fn remove_chain(docker: &Docker, container: &str, chain: &str) -> Result<bool> {
    let p = present(docker, container).await?;
    for jump in p
        .jumps
        .iter()
        .filter(|j| j.last().map(String::as_str) == Some(chain))
    {
        docker::exec_ok(docker, container, jump).await?;
    }
    if !p.chains.iter().any(|(c, _)| c == chain) {
        return Ok(false);
    }
    docker::exec_ok(docker, container, &ipt(&["-F", chain])).await?;
    docker::exec_ok(docker, container, &ipt(&["-X", chain])).await?;
    Ok(true)
}

/// Installs the fault, replacing an earlier one of the same kind; rolls back on failure.
pub async fn apply(docker: &Docker, container: &str, fault: &RuleFault) -> Result<Plan> {
    let plan = fault.plan();
    remove_chain(docker, container, plan.chain).await?;
    for cmd in install_commands(&plan) {
        if let Err(e) = docker::exec_ok(docker, container, &cmd).await {
            return match remove_chain(docker, container, plan.chain).await {
                Ok(_) => Err(e.context(format!("{} rolled back", plan.chain))),
                Err(r) => Err(e.context(format!("rollback failed too: {r:#}"))),
            };
        }
    }
    Ok(plan)
}

/// Removes every chain chaos made (and every jump to one); returns their names.
pub async fn remove_all(docker: &Docker, container: &str) -> Result<Vec<String>> {
    let p = present(docker, container).await?;
    for jump in &p.jumps {
        docker::exec_ok(docker, container, jump).await?;
    }
    let mut removed = Vec::new();
    for (chain, _) in &p.chains {
        docker::exec_ok(docker, container, &ipt(&["-F", chain])).await?;
        docker::exec_ok(docker, container, &ipt(&["-X", chain])).await?;
        removed.push(chain.clone());
    }
    let left = present(docker, container).await?;
    if !left.chains.is_empty() || !left.jumps.is_empty() {
        bail!("chaos rules still present in {container} after heal: {left:?}");
    }
    Ok(removed)
}

/// A root qdisc chaos may have put on the interface.
#[derive(Debug, Clone, PartialEq)]
pub struct Qdisc {
    pub kind: String,
    /// The rest of `tc qdisc show`'s line (rate, delay...).
    pub detail: String,
}

/// The kinds chaos installs; a default root (noqueue, pfifo_fast, fq_codel...) is not one.
const CHAOS_QDISCS: &[&str] = &["tbf", "netem", "htb"];

/// The chaos-made root qdisc in `tc qdisc show dev IFACE` output, if any.
pub fn parse_qdisc(listing: &str) -> Option<Qdisc> {
    listing.lines().find_map(|line| {
        let w: Vec<&str> = line.split_whitespace().collect();
        match w.as_slice() {
            ["qdisc", kind, _handle, "root", rest @ ..] if CHAOS_QDISCS.contains(kind) => {
                Some(Qdisc {
                    kind: kind.to_string(),
                    detail: rest.join(" "),
                })
            }
            _ => None,
        }
    })
}

impl Qdisc {
    pub fn describe(&self) -> String {
        let after = |key: &str| {
            let w: Vec<&str> = self.detail.split_whitespace().collect();
            w.iter()
                .position(|x| *x == key)
                .and_then(|i| w.get(i + 1))
                .map(|s| s.to_string())
                .unwrap_or_default()
        };
        match self.kind.as_str() {
            "tbf" => format!("bandwidth limit {}", after("rate")),
            "netem" => format!("netem {}", self.detail),
            k => format!("qdisc {k} {}", self.detail),
        }
    }
}

/// The chaos-made root qdisc of the container's interface.
pub async fn qdisc(docker: &Docker, container: &str) -> Result<Option<Qdisc>> {
    let argv = words(&format!("tc qdisc show dev {IFACE}"));
    Ok(parse_qdisc(
        &docker::exec_ok(docker, container, &argv).await?,
    ))
}

/// The tc command of a bandwidth limit (egress, token bucket).
pub fn limit_command(rate: Rate) -> Vec<String> {
    words(&format!(
        "tc qdisc add dev {IFACE} root tbf rate {rate} burst 32kb latency 400ms"
    ))
}

/// The tc command of a delay with optional jitter.
pub fn delay_command(delay: Span, jitter: Option<Span>) -> Vec<String> {
    let mut c = words(&format!(
        "tc qdisc add dev {IFACE} root netem delay {delay}"
    ));
    if let Some(j) = jitter {
        c.push(j.to_string());
    }
    c
}

/// Installs a root qdisc; refuses when chaos already has one there (heal first), and turns
/// tc's "unknown qdisc" into an error naming the missing kernel module.
pub async fn add_qdisc(docker: &Docker, container: &str, argv: &[String]) -> Result<()> {
    if let Some(q) = qdisc(docker, container).await? {
        bail!(
            "{container} already has a {} on {IFACE}: heal it first (one shaping qdisc at a time)",
            q.describe()
        );
    }
    let out = docker::exec(docker, container, argv).await?;
    if out.code == 0 {
        return Ok(());
    }
    let kind = argv.get(6).map(String::as_str).unwrap_or("?");
    if out.output.contains("kind is unknown") || out.output.contains("not found") {
        return Err(ChaosError::Unsupported(format!(
            "this kernel has no `{kind}` qdisc (kernel module sch_{kind} missing): {}; nothing \
             was changed (see docs/faults.md for which kernels support what)",
            out.output
        ))
        .into());
    }
    bail!("`{}` in {container} failed: {}", argv.join(" "), out.output)
}

/// Removes chaos's root qdisc, if any; returns what it was.
pub async fn remove_qdisc(docker: &Docker, container: &str) -> Result<Option<Qdisc>> {
    let Some(q) = qdisc(docker, container).await? else {
        return Ok(None);
    };
    docker::exec_ok(
        docker,
        container,
        &words(&format!("tc qdisc del dev {IFACE} root")),
    )
    .await?;
    if let Some(left) = qdisc(docker, container).await? {
        bail!("{container} still has {} after heal", left.describe());
    }
    Ok(Some(q))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    fn lines(p: &Plan) -> Vec<String> {
        install_commands(p).iter().map(|c| c.join(" ")).collect()
    }

    #[test]
    fn loss_rules() {
        let f = RuleFault::Loss {
            percent: 30.0,
            scope: Scope::Peers,
            own: ip("10.77.0.11"),
            peers: vec![ip("10.77.0.12")],
        };
        assert_eq!(
            lines(&f.plan()),
            vec![
                "iptables -w -N PERSEUS-LOSS",
                "iptables -w -A PERSEUS-LOSS -s 10.77.0.12 -m statistic --mode random --probability 0.3000 -j DROP",
                "iptables -w -A PERSEUS-LOSS -d 10.77.0.12 -m statistic --mode random --probability 0.3000 -j DROP",
                "iptables -w -I INPUT 1 -j PERSEUS-LOSS",
                "iptables -w -I OUTPUT 1 -j PERSEUS-LOSS",
            ]
        );
        let all = RuleFault::Loss {
            percent: 5.0,
            scope: Scope::All,
            own: ip("10.77.0.11"),
            peers: vec![],
        };
        let l = lines(&all.plan());
        assert!(l.contains(
            &"iptables -w -A PERSEUS-LOSS -s 10.77.0.11 -d 10.77.0.11 -j RETURN".to_string()
        ));
        assert!(l.last().unwrap().ends_with("OUTPUT 1 -j PERSEUS-LOSS"));
    }

    #[test]
    fn one_way_and_layer_rules() {
        let peers = vec![ip("10.77.0.12")];
        let l = lines(
            &RuleFault::Inbound {
                peers: peers.clone(),
            }
            .plan(),
        );
        assert!(l.contains(
            &"iptables -w -A PERSEUS-INBOUND -s 10.77.0.12 -m conntrack --ctdir ORIGINAL -j DROP"
                .to_string()
        ));
        let l = lines(
            &RuleFault::CutAcceptor {
                peers: peers.clone(),
            }
            .plan(),
        );
        assert_eq!(
            l[1],
            "iptables -w -A PERSEUS-ACCEPTOR -s 10.77.0.12 -p tcp --dport 6379 -j DROP"
        );
        assert_eq!(l[2], "iptables -w -I INPUT 1 -j PERSEUS-ACCEPTOR");
        let l = lines(&RuleFault::CutClients { port: 8080, peers }.plan());
        assert_eq!(
            l[1],
            "iptables -w -A PERSEUS-CLIENTS -s 10.77.0.12 -j RETURN"
        );
        assert_eq!(
            l[2],
            "iptables -w -A PERSEUS-CLIENTS -p tcp --dport 8080 -j DROP"
        );
    }

    #[test]
    fn reads_back_what_is_present() {
        let listing = "-P INPUT ACCEPT\n-P FORWARD ACCEPT\n-P OUTPUT ACCEPT\n-N PERSEUS-LOSS\n\
            -N PERSEUS-PARTITION\n-A INPUT -j PERSEUS-PARTITION\n-A INPUT -j PERSEUS-LOSS\n\
            -A OUTPUT -j PERSEUS-LOSS\n\
            -A PERSEUS-LOSS -s 10.77.0.12/32 -m statistic --mode random --probability 0.29999999981 -j DROP\n\
            -A PERSEUS-PARTITION -s 10.77.0.13/32 -m conntrack --ctdir ORIGINAL -j DROP\n";
        let p = parse_rules(listing);
        assert_eq!(p.jumps.len(), 3);
        assert_eq!(
            p.jumps[0].join(" "),
            "iptables -w -D INPUT -j PERSEUS-PARTITION"
        );
        let names: HashMap<Ipv4Addr, String> = [(ip("10.77.0.12"), "a2".to_string())].into();
        assert_eq!(
            describe(&p, &names),
            vec![
                "loss 30% (a2)",
                "partition: refuses connections from 10.77.0.13"
            ]
        );
        assert_eq!(parse_rules("-P INPUT ACCEPT\n"), Present::default());
    }

    #[test]
    fn qdiscs_and_units() {
        let q = parse_qdisc("qdisc tbf 8001: root refcnt 3 rate 256Kbit burst 4Kb lat 400ms \n")
            .unwrap();
        assert_eq!(q.describe(), "bandwidth limit 256Kbit");
        assert_eq!(parse_qdisc("qdisc noqueue 0: root refcnt 2 \n"), None);
        assert_eq!(
            delay_command(Span::from_millis(50), Some(Span::from_millis(10))).join(" "),
            "tc qdisc add dev eth0 root netem delay 50ms 10ms"
        );
        assert_eq!(limit_command("1mbit".parse().unwrap())[6], "tbf");
        assert_eq!(delay_command(Span::from_millis(1), None)[6], "netem");
    }
}
