//! How one tool asks another to act: a chaos action ([`ChaosCall`]) and a load generator run
//! ([`LoadCall`]), typed, and turned into the command line the called tool parses. lab and
//! watch build their processes from these, so the two never drift from each other or from
//! what chaos and loadgen accept. [`Target`] is chaos's `--target`.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use crate::fault::FaultKind;
use crate::host::HostArg;
use crate::params::{Layer, Scope};
use crate::system::{ParseSystemError, System};

/// `--target`: which system `leader` and "all hosts" refer to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Target {
    /// Perseus when the project has Perseus hosts (or none at all), else the first other
    /// system with hosts.
    #[default]
    Auto,
    /// A system by name.
    System(System),
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Auto => f.write_str("auto"),
            Target::System(s) => s.fmt(f),
        }
    }
}

/// A `--target` that is neither `auto` nor a system.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0} (or auto)")]
pub struct ParseTargetError(#[from] ParseSystemError);

impl FromStr for Target {
    type Err = ParseTargetError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "auto" {
            return Ok(Target::Auto);
        }
        Ok(Target::System(s.parse()?))
    }
}

/// One chaos action: the kind with its parameters, the host, and how it is applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChaosCall {
    pub fault: FaultKind,
    /// `None` for a kind that names no host (partition) or acts on every host (heal).
    pub host: Option<HostArg>,
    /// Which part of a Perseus host (only for layered kinds).
    pub layer: Layer,
    /// Which packets (only for scoped kinds; `None`: chaos's default).
    pub scope: Option<Scope>,
}

impl ChaosCall {
    /// The fault on `host`, on the whole host.
    pub fn new(fault: FaultKind, host: Option<HostArg>) -> ChaosCall {
        ChaosCall {
            fault,
            host,
            layer: Layer::Host,
            scope: None,
        }
    }

    /// The action that ends this one's fault, on the same host (and the same layer when the
    /// undoing kind has layers: `start` of a killed acceptor starts the acceptor).
    pub fn undo(&self) -> Option<ChaosCall> {
        let fault = self.fault.undo()?;
        let layer = if fault.spec().takes(self.layer) {
            self.layer
        } else {
            Layer::Host
        };
        Some(ChaosCall {
            fault,
            host: if self.fault.takes_no_host() {
                None
            } else {
                self.host
            },
            layer,
            scope: None,
        })
    }

    /// The command line after chaos's global options (`--layer acceptor kill a1`,
    /// `--scope all loss a1 30`, `partition a1 | a2 a3`).
    pub fn argv(&self) -> Vec<String> {
        let mut v = Vec::new();
        if self.layer != Layer::Host {
            v.extend(["--layer".to_string(), self.layer.to_string()]);
        }
        if let Some(scope) = self.scope {
            v.extend(["--scope".to_string(), scope.to_string()]);
        }
        v.push(self.fault.name().to_string());
        v.extend(self.host.map(|h| h.to_string()));
        v.extend(self.fault.cli_params());
        v
    }
}

impl fmt::Display for ChaosCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.argv().join(" "))
    }
}

/// chaos's global options for a run: where events go and which system it aims at.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ChaosOptions {
    pub events: Option<PathBuf>,
    pub target: Option<Target>,
}

impl ChaosOptions {
    /// The options, then the call.
    pub fn argv(&self, call: &ChaosCall) -> Vec<String> {
        let mut v = Vec::new();
        if let Some(events) = &self.events {
            v.extend(["--events".to_string(), events.display().to_string()]);
        }
        if let Some(target) = self.target {
            v.extend(["--target".to_string(), target.to_string()]);
        }
        v.extend(call.argv());
        v
    }
}

/// One load generator run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadCall {
    /// Which client it uses.
    pub system: System,
    /// Endpoints in column order.
    pub nodes: Vec<String>,
    /// Logical clients per node.
    pub connections: u32,
    pub duration_secs: u64,
    /// Its JSON-lines record.
    pub out: PathBuf,
    /// Keep going (and exit 0) when the checker finds violations: the report judges them.
    pub allow_violations: bool,
}

impl LoadCall {
    pub fn argv(&self) -> Vec<String> {
        let mut v = vec![
            "--system".to_string(),
            self.system.name().to_string(),
            "--nodes".to_string(),
            self.nodes.join(","),
            "--connections".to_string(),
            self.connections.to_string(),
            "--duration".to_string(),
            self.duration_secs.max(1).to_string(),
            "--out".to_string(),
            self.out.display().to_string(),
        ];
        if self.allow_violations {
            v.push("--allow-violations".to_string());
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::HostName;

    #[test]
    fn chaos_command_lines() {
        let a1 = Some(HostArg::Host(HostName::perseus(1)));
        let call = |text: &str, host| ChaosCall::new(text.parse().unwrap(), host);
        assert_eq!(call("kill", a1).argv(), ["kill", "a1"]);
        assert_eq!(
            call("delay:50ms,10ms", a1).argv(),
            ["delay", "a1", "50ms", "10ms"]
        );
        assert_eq!(
            call("partition:a1 | a2 a3", None).argv(),
            ["partition", "a1 | a2 a3"]
        );
        let mut loss = call("loss:30", a1);
        loss.scope = Some(Scope::All);
        assert_eq!(loss.to_string(), "--scope all loss a1 30");
        let mut kill = call("kill", a1);
        kill.layer = Layer::Acceptor;
        assert_eq!(
            kill.undo().unwrap().to_string(),
            "--layer acceptor start a1"
        );
        kill.fault = FaultKind::Isolate;
        assert_eq!(kill.undo().unwrap().to_string(), "heal a1");
        assert_eq!(call("amnesia", a1).undo(), None);
        assert_eq!(
            call("partition:halves", None).undo().unwrap().to_string(),
            "heal"
        );
        let options = ChaosOptions {
            events: Some("/r/events.jsonl".into()),
            target: Some(Target::System(System::Etcd)),
        };
        assert_eq!(
            options.argv(&call("kill", Some(HostArg::Leader))).join(" "),
            "--events /r/events.jsonl --target etcd kill leader"
        );
    }

    #[test]
    fn targets() {
        assert_eq!("auto".parse::<Target>(), Ok(Target::Auto));
        assert_eq!("etcd3".parse::<Target>(), Ok(Target::System(System::Etcd3)));
        assert!("consul"
            .parse::<Target>()
            .unwrap_err()
            .to_string()
            .contains("or auto"));
    }

    #[test]
    fn load_command_line() {
        let call = LoadCall {
            system: System::Nats,
            nodes: System::Nats.nodes(),
            connections: 2,
            duration_secs: 0,
            out: "/r/load.jsonl".into(),
            allow_violations: true,
        };
        assert_eq!(
            call.argv().join(" "),
            "--system nats --nodes nats://10.77.0.41:4222,nats://10.77.0.42:4222,\
             nats://10.77.0.43:4222 --connections 2 --duration 1 --out /r/load.jsonl \
             --allow-violations"
        );
    }
}
