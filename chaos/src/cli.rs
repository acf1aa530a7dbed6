//! chaos's command line, parsed straight into the shared vocabulary: a fault command becomes
//! a [`ChaosCall`] (a `perseus_model::FaultKind` with its typed parameters, the host, the
//! layer and the scope), checked against the kind's row in `perseus_model::fault::KINDS`
//! (which parameters it takes, whether a layer or scope applies). The other commands look
//! (`status`, `health`) or describe (`describe`). Bad input is refused here, before anything
//! touches an engine.

use std::path::PathBuf;

use anyhow::{anyhow, bail, Result};
use clap::Parser;
use perseus_model::fault::{Aim, Spec, KINDS};
use perseus_model::{ChaosCall, FaultKind, HostArg, Layer, Scope, Target};

/// The commands that are not faults.
const LOOKS: &[(&str, &str)] = &[
    (
        "status",
        "show each host: containers, shared namespace, health from outside, active faults \
         (--json: one JSON line per host; --get FIELD: one field, for scripts)",
    ),
    (
        "health",
        "wait (up to --wait) until every target host answers its health URL",
    ),
    (
        "describe",
        "print the target system's facts as KEY=VALUE lines (for scripts); needs no Docker",
    ),
    (
        "systems",
        "print every system's name, one a line (for scripts); needs no Docker",
    ),
];

/// The command list for `--help`, from the fault table.
fn commands_help() -> String {
    let mut text = String::from("Commands:\n");
    for spec in KINDS {
        let usage = format!("{} {}", spec.name, spec.params.usage());
        text.push_str(&format!("  {:<24} {}\n", usage.trim(), spec.doc));
    }
    for (name, doc) in LOOKS {
        text.push_str(&format!("  {name:<24} {doc}\n"));
    }
    text.push_str(
        "\nExit status: 0 done; 1 bad input or an action failed; 3 every failed action needs \
         what this kernel lacks (e.g. sch_netem for delay)\n",
    );
    text
}

/// Faults for the Perseus testbed: kill, pause, isolate (both ways or one), cut clients,
/// packet loss, bandwidth, delay, partitions, amnesia and heal of the hosts of every system
/// or the leader.
#[derive(Debug, Parser)]
#[command(name = "chaos", version, after_help = commands_help())]
pub struct Args {
    /// Compose project whose containers to act on.
    #[arg(long, env = "COMPOSE_PROJECT_NAME", default_value = "perseus")]
    pub project: String,
    /// Which Docker engine runs each host (docs/swarm.md): `HOST ENDPOINT [certs=DIR]
    /// [address=ADDR]` per line; hosts not listed use the local engine.
    #[arg(long, env = "CHAOS_HOSTS_FILE", value_name = "FILE")]
    pub hosts_file: Option<PathBuf>,
    /// Append one JSON line per action to this file.
    #[arg(long, env = "CHAOS_EVENTS")]
    pub events: Option<PathBuf>,
    /// How long `start`/`restart`/`amnesia`/`heal` wait for the node's /health (0 = do not wait).
    #[arg(long, default_value_t = 30, value_name = "SECS")]
    pub wait: u64,
    /// Which system `leader`, a partition and a missing HOST refer to (auto: etcd when the
    /// project has etcd hosts and no Perseus hosts, else Perseus; a missing HOST with auto =
    /// every host).
    #[arg(long, env = "CHAOS_TARGET", default_value = "auto")]
    pub target: Target,
    /// How long to wait for an etcd leader to be agreed on when resolving `leader`.
    #[arg(long, default_value_t = 15, value_name = "SECS")]
    pub leader_wait: u64,
    /// Which part of a Perseus host kill/start/restart/pause/resume/isolate hit: host,
    /// acceptor or node.
    #[arg(long, default_value = "host")]
    pub layer: Layer,
    /// Which packets `loss` drops: peers (default) or all.
    #[arg(long)]
    pub scope: Option<Scope>,
    /// status: one JSON line per host (perseus_model::HostStatus) instead of the table.
    #[arg(long)]
    pub json: bool,
    /// status: print only this field of each host's status, one line per host, for scripts
    /// (netns, healthy, verdict, acceptor.NAME, faults, ...).
    #[arg(long, value_name = "FIELD")]
    pub get: Option<String>,
    /// What to do (see Commands below).
    pub command: String,
    /// HOST (a host of any system, or leader; all hosts of the target when omitted), then the
    /// command's parameters (loss PERCENT, limit RATE, delay DELAY [JITTER]); for partition the
    /// SHAPE instead of a host.
    #[arg(value_name = "HOST [PARAMS]")]
    pub operands: Vec<String>,
}

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    /// A fault or the action that undoes one.
    Fault(ChaosCall),
    /// Show the hosts (all of the target when `None`).
    Status(Option<HostArg>),
    /// Wait until the hosts answer their health URL.
    Health(Option<HostArg>),
    /// Print the target system's facts.
    Describe,
    /// Print every system's name.
    Systems,
}

impl Args {
    /// The request, checked against the kind's row.
    pub fn request(&self) -> Result<Request> {
        let command = self.command.as_str();
        if let Some((look, _)) = LOOKS.iter().find(|(name, _)| *name == command) {
            if self.layer != Layer::Host || self.scope.is_some() {
                bail!("--layer and --scope apply to faults, not to {look}");
            }
            if *look != "status" && (self.json || self.get.is_some()) {
                bail!("--json and --get apply to status, not to {look}");
            }
            if self.json && self.get.is_some() {
                bail!("status takes --json or --get FIELD, not both");
            }
            let host = match self.operands.as_slice() {
                [] => None,
                [h] if matches!(*look, "status" | "health") => {
                    Some(h.parse::<HostArg>().map_err(|e| anyhow!(e))?)
                }
                _ if matches!(*look, "status" | "health") => bail!("usage: chaos {look} [HOST]"),
                _ => bail!("usage: chaos {look}"),
            };
            return Ok(match *look {
                "status" => Request::Status(host),
                "health" => Request::Health(host),
                "systems" => Request::Systems,
                _ => Request::Describe,
            });
        }
        // The text form (`loss:30`) names the kind and its parameters in one word.
        let (name, inline) = match command.split_once(':') {
            Some((n, p)) => (n, Some(p)),
            None => (command, None),
        };
        if self.json || self.get.is_some() {
            bail!("--json and --get apply to status, not to {name}");
        }
        let spec = Spec::named(name).ok_or_else(|| {
            let mut names = FaultKind::names();
            names.extend(LOOKS.iter().map(|(n, _)| *n));
            anyhow!("unknown command {command:?} (one of {})", names.join(", "))
        })?;
        if self.layer != Layer::Host && !spec.layered() {
            let layered: Vec<&str> = KINDS
                .iter()
                .filter(|s| s.layered())
                .map(|s| s.name)
                .collect();
            bail!("--layer applies to {} only", layered.join(", "));
        }
        if !spec.takes(self.layer) {
            let takes: Vec<&str> = spec.layers.iter().map(|l| l.name()).collect();
            bail!(
                "--layer {}: {} takes --layer {} or the whole host",
                self.layer,
                spec.name,
                takes.join(" or ")
            );
        }
        if self.scope.is_some() && !spec.scoped {
            let scoped: Vec<&str> = KINDS.iter().filter(|s| s.scoped).map(|s| s.name).collect();
            bail!("--scope applies to {} only", scoped.join(", "));
        }
        let usage = || {
            let what = if spec.aim == Aim::System { "" } else { "HOST " };
            anyhow!("usage: chaos {} {what}{}", spec.name, spec.params.usage())
        };
        let (host, params): (Option<HostArg>, &[String]) = match (spec.aim, inline) {
            (Aim::System, None) => match self.operands.as_slice() {
                [_] => (None, self.operands.as_slice()),
                _ => bail!(
                    "{} takes one SHAPE (quote it): \"a1 | a2 a3\", {}",
                    spec.name,
                    perseus_model::Shape::NAMED.join(", ")
                ),
            },
            (Aim::System, Some(_)) if self.operands.is_empty() => (None, &[]),
            (Aim::System, Some(_)) => return Err(usage()),
            (_, _) => match self.operands.split_first() {
                Some((h, rest)) => (Some(h.parse::<HostArg>().map_err(|e| anyhow!(e))?), rest),
                None => (None, &[]),
            },
        };
        let fault = match inline {
            Some(p) if params.is_empty() => FaultKind::from_parts(name, Some(p))?,
            Some(_) => return Err(usage()),
            None => {
                let (required, optional) = spec.params.arity();
                if params.len() < required || params.len() > required + optional {
                    return Err(usage());
                }
                let param = (!params.is_empty()).then(|| params.join(","));
                FaultKind::from_parts(name, param.as_deref())?
            }
        };
        if spec.aim == Aim::Host && host.is_none() {
            if spec.params.arity().0 > 0 {
                bail!("{} needs a HOST", spec.name);
            }
            // Data loss on every host at once is never what a missing HOST meant.
            if spec.touches_data {
                bail!(
                    "{} needs a HOST (it loses data; every host at once is not a default)",
                    spec.name
                );
            }
        }
        Ok(Request::Fault(ChaosCall {
            fault,
            host,
            layer: self.layer,
            scope: spec.scoped.then(|| self.scope.unwrap_or_default()),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use perseus_model::{HostName, System};

    fn parse(argv: &[&str]) -> Result<Args, clap::Error> {
        Args::try_parse_from(std::iter::once("chaos").chain(argv.iter().copied()))
    }

    fn request(argv: &[&str]) -> Result<Request> {
        parse(argv).map_err(|e| anyhow!("{e}"))?.request()
    }

    fn call(argv: &[&str]) -> ChaosCall {
        match request(argv).unwrap() {
            Request::Fault(c) => c,
            other => panic!("{other:?}"),
        }
    }

    const A1: Option<HostArg> = Some(HostArg::Host(HostName::perseus(1)));

    #[test]
    fn parses_commands() {
        assert_eq!(call(&["kill", "a1"]), ChaosCall::new(FaultKind::Kill, A1));
        let a = parse(&["heal"]).unwrap();
        assert_eq!(a.target, Target::Auto);
        assert_eq!(call(&["heal"]).host, None);
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
            call(&["isolate", "a3"]).host,
            Some(HostArg::Host(HostName::perseus(3)))
        );
        let a = parse(&["start", "a2", "--wait", "5"]).unwrap();
        assert_eq!(a.wait, 5);
        assert_eq!(request(&["status"]).unwrap(), Request::Status(None));
        assert_eq!(request(&["health"]).unwrap(), Request::Health(None));
        assert_eq!(request(&["describe"]).unwrap(), Request::Describe);
        assert_eq!(request(&["systems"]).unwrap(), Request::Systems);
        assert!(request(&["systems", "a1"]).is_err());
    }

    #[test]
    fn parses_etcd_hosts_leader_and_target() {
        let a = parse(&["--target", "etcd", "kill", "leader"]).unwrap();
        assert_eq!(a.target, Target::System(System::Etcd));
        assert_eq!(
            a.request().unwrap(),
            Request::Fault(ChaosCall::new(FaultKind::Kill, Some(HostArg::Leader)))
        );
        assert_eq!(
            call(&["isolate", "e2"]).host,
            Some(HostArg::Host(HostName::etcd(2)))
        );
        let a = parse(&["start", "leader", "--leader-wait", "3"]).unwrap();
        assert_eq!(a.leader_wait, 3);
        assert!(parse(&["--target", "consul", "kill", "leader"]).is_err());
        assert!(request(&["kill", "e4"]).is_err());
        assert!(request(&["kill", "LEADER"]).is_err());
    }

    #[test]
    fn parses_the_faults_and_their_parameters() {
        let loss = call(&["loss", "a1", "30"]);
        assert_eq!(
            (loss.fault, loss.scope),
            (FaultKind::Loss(30), Some(Scope::Peers))
        );
        assert_eq!(
            call(&["--scope", "all", "loss", "a1", "5"]).scope,
            Some(Scope::All)
        );
        assert_eq!(
            call(&["limit", "a2", "256kbit"]).fault.to_string(),
            "limit:256kbit"
        );
        assert_eq!(
            call(&["delay", "a2", "50ms", "10ms"]).fault.to_string(),
            "delay:50ms,10ms"
        );
        assert_eq!(
            call(&["delay", "a2", "50ms"]).fault.to_string(),
            "delay:50ms"
        );
        let p = call(&["partition", "a1 | a2 a3"]);
        assert_eq!(
            (p.fault.to_string().as_str(), p.host),
            ("partition:a1 | a2 a3", None)
        );
        assert!(request(&["partition", "majorities-ring"]).is_ok());
        assert_eq!(
            call(&["--layer", "acceptor", "kill", "a1"]).layer,
            Layer::Acceptor
        );
        assert_eq!(
            call(&["isolate-inbound", "a1"]).fault,
            FaultKind::IsolateInbound
        );
        assert_eq!(call(&["cut-clients", "a1"]).fault, FaultKind::CutClients);
        assert_eq!(call(&["amnesia", "a3"]).fault, FaultKind::Amnesia);
        // The text form, as a scenario writes it.
        assert_eq!(call(&["loss:30", "a1"]), call(&["loss", "a1", "30"]));
        assert_eq!(
            call(&["partition:halves"]).fault.to_string(),
            "partition:halves"
        );
    }

    #[test]
    fn rejects_bad_input() {
        assert!(parse(&[]).is_err());
        let err = |argv: &[&str]| format!("{:#}", request(argv).unwrap_err());
        assert!(err(&["explode", "a1"]).contains("unknown command \"explode\" (one of kill"));
        assert!(err(&["explode"]).contains("status, health, describe"));
        assert!(request(&["kill", "a4"]).is_err());
        assert!(request(&["kill", "p1"]).is_err());
        assert!(request(&["kill", "a1", "a2"]).is_err());
        assert!(parse(&["start", "a1", "--wait", "-1"]).is_err());
        assert!(err(&["loss", "a1"]).contains("usage: chaos loss HOST PERCENT"));
        assert!(err(&["loss", "a1", "150"]).contains("between 1 and 100"));
        assert!(err(&["loss", "a1", "lots"]).contains("percentage"));
        assert!(err(&["loss"]).contains("usage"));
        assert!(err(&["limit", "a1", "fast"]).contains("rate"));
        assert!(err(&["delay", "a1", "50ms", "10ms", "5ms"]).contains("usage"));
        assert!(err(&["delay", "a1", "soon"]).contains("time"));
        assert!(err(&["partition"]).contains("SHAPE"));
        assert!(err(&["partition", "majorities-rnig"]).contains("unknown partition"));
        assert!(err(&["partition", "a1 | a9"]).contains("unknown host"));
        assert!(err(&["--layer", "node", "loss", "a1", "3"]).contains("--layer applies to kill"));
        assert!(err(&["--scope", "all", "kill", "a1"]).contains("--scope applies to loss"));
        assert!(err(&["--layer", "node", "status"]).contains("not to status"));
        assert!(err(&["--json", "kill", "a1"]).contains("apply to status, not to kill"));
        assert!(err(&["--get", "netns", "health"]).contains("not to health"));
        assert!(err(&["--json", "--get", "netns", "status"]).contains("not both"));
        assert_eq!(
            request(&["status", "a2", "--get", "acceptor.a2"]).unwrap(),
            Request::Status(Some(HostArg::Host(HostName::perseus(2))))
        );
        assert!(parse(&["--layer", "redis", "kill", "a1"])
            .unwrap_err()
            .to_string()
            .contains("host, acceptor, node"));
    }

    #[test]
    fn parses_the_storage_faults() {
        assert_eq!(
            call(&["--layer", "acceptor", "rollback", "a1"]).layer,
            Layer::Acceptor
        );
        assert_eq!(
            call(&["truncate", "e2", "512"]).fault,
            FaultKind::Truncate(512)
        );
        let t = call(&["truncate", "leader"]);
        assert_eq!(t.host, Some(HostArg::Leader));
        assert_eq!(
            t.fault,
            FaultKind::Truncate(perseus_model::fault::DEFAULT_TRUNCATE_BYTES)
        );
        assert_eq!(
            call(&["snapshot"]),
            ChaosCall::new(FaultKind::Snapshot, None)
        );
        assert!(request(&["wipe", "z3"]).is_ok() && request(&["rollback", "q1"]).is_ok());
        let err = |argv: &[&str]| format!("{:#}", request(argv).unwrap_err());
        assert!(err(&["--layer", "node", "wipe", "a1"]).contains("takes --layer acceptor"));
        assert!(err(&["wipe"]).contains("needs a HOST"));
        assert!(err(&["amnesia"]).contains("needs a HOST"));
        assert!(err(&["truncate"]).contains("needs a HOST"));
        assert!(err(&["truncate", "a1", "0"]).contains("0 bytes"));
        assert!(err(&["truncate", "a1", "1", "2"]).contains("usage: chaos truncate HOST [BYTES]"));
        assert!(err(&["snapshot", "a1", "now"]).contains("usage"));
    }

    #[test]
    fn help_lists_every_kind() {
        let help = commands_help();
        for spec in KINDS {
            assert!(help.contains(spec.name), "{}", spec.name);
        }
        assert!(help.contains("delay DELAY [JITTER]"));
    }

    #[test]
    fn project_default() {
        // The env var may be set by the caller; only check when it is not.
        if std::env::var_os("COMPOSE_PROJECT_NAME").is_none() {
            assert_eq!(parse(&["status"]).unwrap().project, "perseus");
        }
    }
}
