//! The fault kinds: what chaos can do to a host and how each is undone. One enum with typed
//! parameters, and one table, [`KINDS`], that says everything else about each kind: its name,
//! how its parameters are written, which hosts it names, what it leaves a host in, what undoes
//! it, whether a layer or a scope applies, whether it takes a node away, and its weight and
//! parameter draws in the soak. chaos's command line, the events file, lab's scenario steps,
//! the soak, the matrix and the analysis all read the kind and this table; none keeps a list
//! of its own.
//!
//! Text form (`Display`/`FromStr`, also the serde form): the kind's name, then its parameters
//! after a colon when it has any (`kill`, `heal`, `loss:30`, `limit:256kbit`,
//! `delay:50ms,10ms`, `partition:a1 | a2 a3`). Which layer of a host a fault hit and which
//! packets a loss drops are not part of the kind: they travel beside it ([`crate::ChaosCall`],
//! [`crate::ChaosEvent`]).
//!
//! Adding a kind: a variant here and its row in [`KINDS`]; when it takes a parameter of a new
//! shape, its arm in [`FaultKind::from_parts`] and [`FaultKind::param`]. Then chaos's
//! `nemesis.rs` says how to do it (and `status.rs` how to see it). docs/design.md walks
//! through it.

use std::fmt;
use std::mem::discriminant;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::params::{Layer, Rate, RateUnit};
use crate::partition::Shape;
use crate::span::Span;

/// One thing chaos does to a host: a fault, or the action that undoes one.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum FaultKind {
    /// SIGKILL every container of the host (a crash).
    Kill,
    /// Start a stopped host and wait for its health URL (undoes `kill`).
    Start,
    /// Kill, then start (a crash with an immediate restart).
    Restart,
    /// Freeze every container of the host (a gray failure).
    Pause,
    /// Thaw a paused host (undoes `pause`).
    Resume,
    /// Drop all traffic between the host and its peers; clients still reach it.
    Isolate,
    /// Undo every fault chaos made on the host: rules, qdiscs, pauses, killed acceptors and
    /// killed hosts (ends every lasting kind).
    Heal,
    /// One way: drop the connections the peers open to the host.
    IsolateInbound,
    /// One way: drop the connections the host opens to its peers.
    IsolateOutbound,
    /// Drop the clients' traffic to the host; its peers still reach it.
    CutClients,
    /// Drop this percentage (1..=100) of the packets to and from the peers.
    Loss(u8),
    /// Limit the host's outgoing bandwidth (tc rate).
    Limit(Rate),
    /// Delay the host's outgoing packets (netem): delay and optional jitter.
    Delay(Span, Option<Span>),
    /// Partition the system's hosts by a shape.
    Partition(Shape),
    /// Stop the host, erase its data volumes, start it empty (over when it returns).
    Amnesia,
    /// The storage fault of every system: stop the host, empty its data directory (its data
    /// volume), start it (over when it returns). The same as `amnesia`, under the name the
    /// storage faults share.
    Wipe,
    /// Save a copy of the host's data directory now, taken frozen (a crash-consistent copy, as
    /// a volume snapshot takes it); not a fault by itself, the preparation of `rollback`.
    Snapshot,
    /// Stop the host, put the copy `snapshot` saved back in place of its data directory,
    /// start it: its disk went back in time (over when it returns).
    Rollback,
    /// Stop the host, cut this many bytes off the tail of its log (AOF, WAL, transaction log),
    /// repair what is left the way the system's own tools advise, start it (over when it
    /// returns).
    Truncate(u32),
}

/// How many bytes `truncate` cuts when no size is given: one 4 KiB page, the unit a torn
/// write loses.
pub const DEFAULT_TRUNCATE_BYTES: u32 = 4096;

/// How a kind's parameters are written after its host on chaos's command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Params {
    Nothing,
    /// A whole percentage, 1..=100.
    Percent,
    Rate,
    /// A delay and an optional jitter.
    Delay,
    /// A partition shape, in place of the host.
    Shape,
    /// An optional byte count (a default when omitted).
    Bytes,
}

impl Params {
    /// The parameters' names for a usage line (`PERCENT`, `DELAY [JITTER]`).
    pub fn usage(self) -> &'static str {
        match self {
            Params::Nothing => "",
            Params::Percent => "PERCENT",
            Params::Rate => "RATE",
            Params::Delay => "DELAY [JITTER]",
            Params::Shape => "SHAPE",
            Params::Bytes => "[BYTES]",
        }
    }

    /// How many words the parameters take on a command line: (required, optional).
    pub fn arity(self) -> (usize, usize) {
        match self {
            Params::Nothing => (0, 0),
            Params::Delay => (1, 1),
            Params::Bytes => (0, 1),
            _ => (1, 0),
        }
    }

    /// An example of the text form, for error messages (`loss:30`).
    fn example(self) -> &'static str {
        match self {
            Params::Nothing => "",
            Params::Percent => "a PERCENT (loss:30)",
            Params::Rate => "a RATE (limit:256kbit)",
            Params::Delay => "a DELAY (delay:50ms or delay:50ms,10ms)",
            Params::Shape => "a SHAPE (partition:majorities-ring)",
            Params::Bytes => "a byte count (truncate:512)",
        }
    }
}

/// Which hosts an action names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aim {
    /// One host (or `leader`).
    Host,
    /// One host, or every host of the system when none is named (harmless on a healthy one).
    HostOrEvery,
    /// No host: its parameter names them (a partition's shape).
    System,
}

/// What an action is to the faults around it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// A fault that lasts until this action (or `heal`) ends it.
    Lasting(FaultKind),
    /// A fault over when the action returns (its window is the action itself).
    Instant,
    /// An action that ends faults (start, resume, heal).
    Undoing,
}

/// Everything about one kind but its parameters' values.
#[derive(Debug)]
pub struct Spec {
    pub name: &'static str,
    /// The kind with typical parameters; the first names the variant. The soak and the matrix
    /// draw a fault's parameters from them.
    pub examples: &'static [FaultKind],
    pub params: Params,
    pub aim: Aim,
    pub role: Role,
    /// What a host under this fault is, for tables (`killed`, `isolated`).
    pub state: &'static str,
    /// The parts of a Perseus host `--layer` may name besides the whole host (empty: no
    /// layer applies).
    pub layers: &'static [Layer],
    /// Whether `--scope` (which packets) applies.
    pub scoped: bool,
    /// Whether the whole host's fault leaves its node serving nothing (lab's
    /// `faulted-node-down`; the soak may hit two hosts at once with these).
    pub takes_node_away: bool,
    /// Whether it acts on the host's stored data (the storage faults and amnesia; snapshot
    /// only reads it): a loss no `heal` can undo, so it never acts on every host by default.
    pub touches_data: bool,
    /// What must have happened to the same host before it means anything (`snapshot` before
    /// `rollback`): the soak draws the two as a pair.
    pub after: Option<FaultKind>,
    /// The soak's default weight (0: drawn only when a mix names it).
    pub soak: u32,
    /// One line for help texts.
    pub doc: &'static str,
}

const fn kbit(n: u64) -> Rate {
    Rate::new(n, RateUnit::Kbit)
}

/// Either part of a Perseus host.
const BOTH: &[Layer] = &[Layer::Acceptor, Layer::Node];
/// Only its acceptor (the node keeps no data).
const ACCEPTOR: &[Layer] = &[Layer::Acceptor];

/// Every kind, in the order help texts list them.
pub static KINDS: &[Spec] = &[
    Spec {
        name: "kill",
        examples: &[FaultKind::Kill],
        params: Params::Nothing,
        aim: Aim::Host,
        role: Role::Lasting(FaultKind::Start),
        state: "killed",
        layers: BOTH,
        scoped: false,
        takes_node_away: true,
        touches_data: false,
        after: None,
        soak: 3,
        doc: "SIGKILL the host's containers (--layer acceptor: only Redis; node: only the node)",
    },
    Spec {
        name: "start",
        examples: &[FaultKind::Start],
        params: Params::Nothing,
        aim: Aim::Host,
        role: Role::Undoing,
        state: "started",
        layers: BOTH,
        scoped: false,
        takes_node_away: false,
        touches_data: false,
        after: None,
        soak: 0,
        doc: "start what kill stopped (repairing a node left in an old namespace), wait for health",
    },
    Spec {
        name: "restart",
        examples: &[FaultKind::Restart],
        params: Params::Nothing,
        aim: Aim::Host,
        role: Role::Instant,
        state: "restarted",
        layers: BOTH,
        scoped: false,
        takes_node_away: false,
        touches_data: false,
        after: None,
        soak: 0,
        doc: "kill, then start",
    },
    Spec {
        name: "pause",
        examples: &[FaultKind::Pause],
        params: Params::Nothing,
        aim: Aim::Host,
        role: Role::Lasting(FaultKind::Resume),
        state: "paused",
        layers: BOTH,
        scoped: false,
        takes_node_away: true,
        touches_data: false,
        after: None,
        soak: 2,
        doc: "freeze the host's containers (docker pause; --layer picks one)",
    },
    Spec {
        name: "resume",
        examples: &[FaultKind::Resume],
        params: Params::Nothing,
        aim: Aim::Host,
        role: Role::Undoing,
        state: "resumed",
        layers: BOTH,
        scoped: false,
        takes_node_away: false,
        touches_data: false,
        after: None,
        soak: 0,
        doc: "thaw them (docker unpause)",
    },
    Spec {
        name: "isolate",
        examples: &[FaultKind::Isolate],
        params: Params::Nothing,
        aim: Aim::Host,
        role: Role::Lasting(FaultKind::Heal),
        state: "isolated",
        layers: BOTH,
        scoped: false,
        takes_node_away: true,
        touches_data: false,
        after: None,
        soak: 3,
        doc: "drop all traffic between the host and its peers (clients still reach it); \
              --layer acceptor: only the peers' connections to its Redis; node: only its \
              node's connections to the peers' Redis",
    },
    Spec {
        name: "isolate-inbound",
        examples: &[FaultKind::IsolateInbound],
        params: Params::Nothing,
        aim: Aim::Host,
        role: Role::Lasting(FaultKind::Heal),
        state: "cut inbound",
        layers: &[],
        scoped: false,
        takes_node_away: false,
        touches_data: false,
        after: None,
        soak: 1,
        doc: "one way: drop the connections the peers open to the host (it still reaches them)",
    },
    Spec {
        name: "isolate-outbound",
        examples: &[FaultKind::IsolateOutbound],
        params: Params::Nothing,
        aim: Aim::Host,
        role: Role::Lasting(FaultKind::Heal),
        state: "cut outbound",
        layers: &[],
        scoped: false,
        takes_node_away: false,
        touches_data: false,
        after: None,
        soak: 1,
        doc: "one way: drop the connections the host opens to its peers (they still reach it)",
    },
    Spec {
        name: "cut-clients",
        examples: &[FaultKind::CutClients],
        params: Params::Nothing,
        aim: Aim::Host,
        role: Role::Lasting(FaultKind::Heal),
        state: "clients cut",
        layers: &[],
        scoped: false,
        takes_node_away: false,
        touches_data: false,
        after: None,
        soak: 1,
        doc: "drop the clients' traffic to the host (its peers still reach it)",
    },
    Spec {
        name: "loss",
        examples: &[
            FaultKind::Loss(30),
            FaultKind::Loss(10),
            FaultKind::Loss(50),
        ],
        params: Params::Percent,
        aim: Aim::Host,
        role: Role::Lasting(FaultKind::Heal),
        state: "lossy",
        layers: &[],
        scoped: true,
        takes_node_away: false,
        touches_data: false,
        after: None,
        soak: 2,
        doc: "drop PERCENT % of the packets to and from the peers (--scope all: every packet)",
    },
    Spec {
        name: "limit",
        examples: &[
            FaultKind::Limit(kbit(256)),
            FaultKind::Limit(kbit(128)),
            FaultKind::Limit(kbit(512)),
            FaultKind::Limit(Rate::new(2, RateUnit::Mbit)),
        ],
        params: Params::Rate,
        aim: Aim::Host,
        role: Role::Lasting(FaultKind::Heal),
        state: "throttled",
        layers: &[],
        scoped: false,
        takes_node_away: false,
        touches_data: false,
        after: None,
        soak: 1,
        doc: "limit the host's outgoing bandwidth to RATE (tc tbf), e.g. 256kbit",
    },
    Spec {
        name: "delay",
        examples: &[
            FaultKind::Delay(Span::from_millis(20), Some(Span::from_millis(10))),
            FaultKind::Delay(Span::from_millis(100), Some(Span::from_millis(10))),
        ],
        params: Params::Delay,
        aim: Aim::Host,
        role: Role::Lasting(FaultKind::Heal),
        state: "delayed",
        layers: &[],
        scoped: false,
        takes_node_away: false,
        touches_data: false,
        after: None,
        soak: 1,
        doc: "delay the host's outgoing packets by DELAY [JITTER] (tc netem; needs sch_netem)",
    },
    Spec {
        name: "partition",
        examples: &[
            FaultKind::Partition(Shape::Halves),
            FaultKind::Partition(Shape::Bridge),
            FaultKind::Partition(Shape::MajoritiesRing),
        ],
        params: Params::Shape,
        aim: Aim::System,
        role: Role::Lasting(FaultKind::Heal),
        state: "partitioned",
        layers: &[],
        scoped: false,
        takes_node_away: false,
        touches_data: false,
        after: None,
        soak: 2,
        doc: "partition the target system's hosts: \"a1 | a2 a3\", halves, bridge, majorities-ring",
    },
    Spec {
        name: "amnesia",
        examples: &[FaultKind::Amnesia],
        params: Params::Nothing,
        aim: Aim::Host,
        role: Role::Instant,
        state: "wiped",
        layers: &[],
        scoped: false,
        takes_node_away: false,
        touches_data: true,
        after: None,
        // It may lose acknowledged writes by design (docs/faults.md): only when a mix asks.
        soak: 0,
        doc: "stop the host, erase its data volumes, start it empty (breaks durable acceptors)",
    },
    Spec {
        name: "wipe",
        examples: &[FaultKind::Wipe],
        params: Params::Nothing,
        aim: Aim::Host,
        role: Role::Instant,
        state: "wiped",
        layers: ACCEPTOR,
        scoped: false,
        takes_node_away: false,
        touches_data: true,
        after: None,
        soak: 0,
        doc: "stop the host (--layer acceptor: only its Redis), empty its data directory, start it",
    },
    Spec {
        name: "snapshot",
        examples: &[FaultKind::Snapshot],
        params: Params::Nothing,
        aim: Aim::HostOrEvery,
        role: Role::Instant,
        state: "snapshot taken",
        layers: &[],
        scoped: false,
        takes_node_away: false,
        touches_data: true,
        after: None,
        soak: 0,
        doc: "save a copy of the host's data directory (frozen while copied); every host of \
              the target when HOST is omitted",
    },
    Spec {
        name: "rollback",
        examples: &[FaultKind::Rollback],
        params: Params::Nothing,
        aim: Aim::Host,
        role: Role::Instant,
        state: "rolled back",
        layers: ACCEPTOR,
        scoped: false,
        takes_node_away: false,
        touches_data: true,
        after: Some(FaultKind::Snapshot),
        soak: 0,
        doc: "stop the host (--layer acceptor: only its Redis), put its snapshot back, start it",
    },
    Spec {
        name: "truncate",
        examples: &[FaultKind::Truncate(DEFAULT_TRUNCATE_BYTES)],
        params: Params::Bytes,
        aim: Aim::Host,
        role: Role::Instant,
        state: "log truncated",
        layers: ACCEPTOR,
        scoped: false,
        takes_node_away: false,
        touches_data: true,
        after: None,
        soak: 0,
        doc: "stop the host (--layer acceptor: only its Redis), cut [BYTES] (4096) off the tail \
              of its log, repair it as the system's tools advise, start it",
    },
    Spec {
        name: "heal",
        examples: &[FaultKind::Heal],
        params: Params::Nothing,
        aim: Aim::HostOrEvery,
        role: Role::Undoing,
        state: "healed",
        layers: &[],
        scoped: false,
        takes_node_away: false,
        touches_data: false,
        after: None,
        soak: 0,
        doc: "undo every fault chaos made on the host: rules, qdiscs, pauses, kills",
    },
];

/// A text that is not a fault kind (or has wrong parameters).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseFaultError {
    #[error("unknown fault {0:?} (one of {names})", names = FaultKind::names().join(", "))]
    Unknown(String),
    #[error("fault {kind:?} takes no parameter (got {param:?})")]
    UnexpectedParameter { kind: String, param: String },
    #[error("fault {kind:?} needs {what}")]
    MissingParameter { kind: String, what: &'static str },
    #[error("fault {kind:?}: {why}")]
    BadParameter { kind: String, why: String },
}

impl Spec {
    /// The row of the kind called `name`.
    pub fn named(name: &str) -> Option<&'static Spec> {
        KINDS.iter().find(|s| s.name == name)
    }

    /// The kind's variant with its first example's parameters.
    pub fn example(&self) -> &'static FaultKind {
        &self.examples[0]
    }

    /// Whether `--layer` applies at all.
    pub fn layered(&self) -> bool {
        !self.layers.is_empty()
    }

    /// Whether the kind may hit `layer` of a host.
    pub fn takes(&self, layer: Layer) -> bool {
        layer == Layer::Host || self.layers.contains(&layer)
    }
}

impl FaultKind {
    /// Every kind's name, for help texts and error messages.
    pub fn names() -> Vec<&'static str> {
        KINDS.iter().map(|s| s.name).collect()
    }

    /// The kind's row in [`KINDS`].
    pub fn spec(&self) -> &'static Spec {
        let me = discriminant(self);
        KINDS
            .iter()
            .find(|s| discriminant(s.example()) == me)
            // Every variant has its row: `every_variant_has_a_row` checks it.
            .expect("a FaultKind variant without its row in KINDS")
    }

    /// The kind's name without its parameters.
    pub fn name(&self) -> &'static str {
        self.spec().name
    }

    /// What a host under this fault is, for tables (`killed`, `isolated`).
    pub fn state(&self) -> &'static str {
        self.spec().state
    }

    /// The parameters as chaos's command line takes them after the host (`loss a1 30`,
    /// `delay a1 50ms 10ms`; for partition, the shape in place of a host).
    pub fn cli_params(&self) -> Vec<String> {
        match self {
            FaultKind::Delay(d, j) => std::iter::once(d.to_string())
                .chain(j.map(|j| j.to_string()))
                .collect(),
            _ => self.param().into_iter().collect(),
        }
    }

    /// The parameter text after the colon, if the kind has parameters.
    pub fn param(&self) -> Option<String> {
        match self {
            FaultKind::Loss(p) => Some(p.to_string()),
            FaultKind::Limit(r) => Some(r.to_string()),
            FaultKind::Delay(d, None) => Some(d.to_string()),
            FaultKind::Delay(d, Some(j)) => Some(format!("{d},{j}")),
            FaultKind::Partition(shape) => Some(shape.to_string()),
            FaultKind::Truncate(bytes) if *bytes != DEFAULT_TRUNCATE_BYTES => {
                Some(bytes.to_string())
            }
            _ => None,
        }
    }

    /// Builds a kind from its name and its parameter text (`None` when there is none).
    pub fn from_parts(name: &str, param: Option<&str>) -> Result<FaultKind, ParseFaultError> {
        let spec = Spec::named(name).ok_or_else(|| ParseFaultError::Unknown(name.to_string()))?;
        let bad = |why: String| ParseFaultError::BadParameter {
            kind: name.to_string(),
            why,
        };
        let param = match (spec.params, param.map(str::trim)) {
            (Params::Nothing | Params::Bytes, None) => return Ok(spec.example().clone()),
            (Params::Nothing, Some(p)) => {
                return Err(ParseFaultError::UnexpectedParameter {
                    kind: name.to_string(),
                    param: p.to_string(),
                })
            }
            (what, None | Some("")) => {
                return Err(ParseFaultError::MissingParameter {
                    kind: name.to_string(),
                    what: what.example(),
                })
            }
            (_, Some(p)) => p,
        };
        Ok(match spec.example() {
            FaultKind::Loss(_) => {
                let n: u8 = param
                    .trim_end_matches('%')
                    .parse()
                    .map_err(|_| bad(format!("{param:?} is not a whole percentage")))?;
                if n == 0 || n > 100 {
                    return Err(bad(format!("{n} % is not between 1 and 100")));
                }
                FaultKind::Loss(n)
            }
            FaultKind::Limit(_) => {
                FaultKind::Limit(param.parse().map_err(|e| bad(format!("{e}")))?)
            }
            FaultKind::Delay(..) => {
                let (d, j) = match param.split_once(',') {
                    Some((d, j)) => (d, Some(j)),
                    None => (param, None),
                };
                let time = |t: &str| {
                    t.trim()
                        .parse::<Span>()
                        .map_err(|_| bad(format!("{t:?} is not a time like 50ms, 1s or 200us")))
                };
                FaultKind::Delay(time(d)?, j.map(time).transpose()?)
            }
            FaultKind::Partition(_) => {
                FaultKind::Partition(param.parse().map_err(|e| bad(format!("{e}")))?)
            }
            FaultKind::Truncate(_) => {
                let bytes: u32 = param
                    .parse()
                    .map_err(|_| bad(format!("{param:?} is not a whole number of bytes")))?;
                if bytes == 0 {
                    return Err(bad("0 bytes: cut at least one".to_string()));
                }
                FaultKind::Truncate(bytes)
            }
            other => other.clone(),
        })
    }

    /// The action that ends this fault, `None` for the undoing actions themselves and for the
    /// instant ones (over when they return).
    pub fn undo(&self) -> Option<FaultKind> {
        match &self.spec().role {
            Role::Lasting(undo) => Some(undo.clone()),
            Role::Instant | Role::Undoing => None,
        }
    }

    /// Whether this action ends a fault of kind `fault` (heal ends every lasting fault).
    pub fn undoes(&self, fault: &FaultKind) -> bool {
        let own = fault.undo();
        own.as_ref() == Some(self) || (*self == FaultKind::Heal && own.is_some())
    }

    /// Whether the action ends some fault (start, resume, heal).
    pub fn is_undo(&self) -> bool {
        self.spec().role == Role::Undoing
    }

    /// A fault over when the action returns (its window is the action itself).
    pub fn is_instant(&self) -> bool {
        self.spec().role == Role::Instant
    }

    /// Whether the action acts on the host's stored data (wipe, rollback, truncate, amnesia;
    /// snapshot only reads it): a fault whose loss no `heal` can undo.
    pub fn is_storage(&self) -> bool {
        self.spec().touches_data
    }

    /// Whether the action may run without naming a host (then it acts on every host):
    /// only the undoing actions that are harmless on a healthy host.
    pub fn may_omit_host(&self) -> bool {
        self.spec().aim == Aim::HostOrEvery
    }

    /// Whether the action names no host at all (it acts on the whole system): `partition`.
    pub fn takes_no_host(&self) -> bool {
        self.spec().aim == Aim::System
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.param() {
            Some(p) => write!(f, "{}:{p}", self.name()),
            None => f.write_str(self.name()),
        }
    }
}

impl FromStr for FaultKind {
    type Err = ParseFaultError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        match s.split_once(':') {
            Some((name, param)) => FaultKind::from_parts(name.trim(), Some(param.trim())),
            None => FaultKind::from_parts(s, None),
        }
    }
}

impl From<FaultKind> for String {
    fn from(f: FaultKind) -> String {
        f.to_string()
    }
}

impl TryFrom<String> for FaultKind {
    type Error = ParseFaultError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_round_trip_and_are_checked() {
        for text in [
            "loss:30",
            "limit:256kbit",
            "delay:50ms",
            "delay:50ms,10ms",
            "partition:a1 | a2 a3",
            "partition:majorities-ring",
        ] {
            let f: FaultKind = text.parse().unwrap();
            assert_eq!(f.to_string(), text);
            let json = serde_json::to_string(&f).unwrap();
            assert_eq!(serde_json::from_str::<FaultKind>(&json).unwrap(), f);
        }
        assert_eq!("loss:30".parse::<FaultKind>().unwrap(), FaultKind::Loss(30));
        for bad in [
            "loss",
            "loss:0",
            "loss:101",
            "loss:lots",
            "limit:fast",
            "limit:10furlongs",
            "delay:soon",
            "delay:5ms,x",
            "partition:",
            "partition:majorities-rnig",
            "partition:a1 | a9",
            "amnesia:3",
            "truncate:0",
            "truncate:lots",
            "snapshot:1",
        ] {
            assert!(bad.parse::<FaultKind>().is_err(), "{bad}");
        }
        assert!(FaultKind::Heal.undoes(&FaultKind::Loss(30)));
        assert!(FaultKind::Heal.undoes(&FaultKind::Kill));
        assert!(!FaultKind::Heal.undoes(&FaultKind::Amnesia));
        assert!(FaultKind::Amnesia.is_instant());
        assert_eq!(
            "truncate".parse::<FaultKind>().unwrap(),
            FaultKind::Truncate(DEFAULT_TRUNCATE_BYTES)
        );
        assert_eq!(
            FaultKind::Truncate(DEFAULT_TRUNCATE_BYTES).to_string(),
            "truncate"
        );
        let t: FaultKind = "truncate:512".parse().unwrap();
        assert_eq!(
            (t.to_string(), t.cli_params()),
            ("truncate:512".into(), vec!["512".into()])
        );
        for f in [FaultKind::Wipe, FaultKind::Rollback, FaultKind::Snapshot, t] {
            assert!(
                f.is_instant() && f.is_storage() && f.undo().is_none(),
                "{f}"
            );
            assert!(!FaultKind::Heal.undoes(&f), "{f}");
        }
        assert!(FaultKind::Snapshot.may_omit_host() && !FaultKind::Rollback.may_omit_host());
        assert!(Spec::named("wipe").unwrap().takes(Layer::Acceptor));
        assert!(!Spec::named("wipe").unwrap().takes(Layer::Node));
    }

    /// Adding a variant breaks this match until its row is in KINDS (then add it here).
    #[test]
    fn every_variant_has_a_row() {
        let mut seen = Vec::new();
        for spec in KINDS {
            for example in spec.examples {
                assert_eq!(example.spec().name, spec.name);
                assert_eq!(
                    FaultKind::from_parts(spec.name, example.param().as_deref()).as_ref(),
                    Ok(example)
                );
                match example {
                    FaultKind::Kill
                    | FaultKind::Start
                    | FaultKind::Restart
                    | FaultKind::Pause
                    | FaultKind::Resume
                    | FaultKind::Isolate
                    | FaultKind::Heal
                    | FaultKind::IsolateInbound
                    | FaultKind::IsolateOutbound
                    | FaultKind::CutClients
                    | FaultKind::Loss(_)
                    | FaultKind::Limit(_)
                    | FaultKind::Delay(..)
                    | FaultKind::Partition(_)
                    | FaultKind::Amnesia
                    | FaultKind::Wipe
                    | FaultKind::Snapshot
                    | FaultKind::Rollback
                    | FaultKind::Truncate(_) => seen.push(discriminant(example)),
                }
            }
            let optional = matches!(spec.params, Params::Nothing | Params::Bytes);
            assert_eq!(optional, spec.example().param().is_none(), "{}", spec.name);
            assert!(!spec.layered() || spec.aim == Aim::Host, "{}", spec.name);
        }
        seen.dedup();
        assert_eq!(seen.len(), KINDS.len(), "one row per variant");
    }

    #[test]
    fn every_name_round_trips() {
        for spec in KINDS.iter().filter(|s| s.params == Params::Nothing) {
            let f: FaultKind = spec.name.parse().unwrap();
            assert_eq!(f.name(), spec.name);
            assert_eq!(f.to_string(), spec.name);
            let json = serde_json::to_string(&f).unwrap();
            assert_eq!(json, format!("\"{}\"", spec.name));
            assert_eq!(serde_json::from_str::<FaultKind>(&json).unwrap(), f);
        }
    }

    #[test]
    fn bad_text_is_refused_with_the_reason() {
        let err = "explode".parse::<FaultKind>().unwrap_err();
        assert!(
            err.to_string().contains("unknown fault \"explode\""),
            "{err}"
        );
        assert!(err.to_string().contains("kill, start"), "{err}");
        let err = "kill:3".parse::<FaultKind>().unwrap_err();
        assert!(err.to_string().contains("takes no parameter"), "{err}");
        let err = "loss".parse::<FaultKind>().unwrap_err();
        assert!(err.to_string().contains("needs a PERCENT"), "{err}");
        assert!("Kill".parse::<FaultKind>().is_err());
        assert!(serde_json::from_str::<FaultKind>("\"status\"").is_err());
    }

    #[test]
    fn undo_relation() {
        use FaultKind::*;
        assert_eq!(Kill.undo(), Some(Start));
        assert!(Start.undoes(&Kill));
        assert!(Heal.undoes(&Isolate));
        assert!(Resume.undoes(&Pause));
        assert!(!Start.undoes(&Pause));
        assert!(!Restart.undoes(&Kill));
        assert!(Start.is_undo() && Heal.is_undo() && Resume.is_undo());
        assert!(!Kill.is_undo() && !Restart.is_undo());
        assert!(Restart.is_instant());
        assert!(Heal.may_omit_host() && !Kill.may_omit_host());
        assert!(Partition(Shape::Halves).takes_no_host());
    }
}
