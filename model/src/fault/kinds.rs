//! The fault kinds and their table: the enum with typed parameters, and [`KINDS`], one row
//! ([`Spec`]) per kind saying everything about it but its parameters' values. A new kind is a
//! variant and a row here, its parameters' arms in `param` and `with_param` when it takes any
//! (and an arm in the test below).

use serde::{Deserialize, Serialize};

use crate::params::{Layer, Rate, RateUnit};
use crate::partition::Shape;
use crate::span::Span;
use crate::timefault::{ClockShift, Links};

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
    /// Delay the host's packets to and from its peers, each way (a delayer serving a netfilter
    /// queue in the host's namespace; netem where asked): delay and optional jitter.
    Delay(Span, Option<Span>),
    /// One-way delays per pair of hosts of one system (a multi-region topology).
    DelayLinks(Links),
    /// Shift, step or drift the wall clock of the host's processes (libfaketime).
    Clock(ClockShift),
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
    /// Cut the power of the machine that runs the host: its whole engine stops, with every
    /// container on it (the host's, and any other host's there).
    KillMachine,
    /// Power the machine on again, wait for its engine, start the hosts it runs and wait for
    /// their health (undoes `kill-machine`).
    StartMachine,
}

/// How many bytes `truncate` cuts when no size is given: one 4 KiB page, the unit a torn
/// write loses.
pub const DEFAULT_TRUNCATE_BYTES: u32 = 4096;

/// A parameter of a type that reads itself (a rate, a shape, links, a clock shift); Err its
/// reason.
fn read<T>(param: &str) -> Result<T, String>
where
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    param.parse().map_err(|e: T::Err| e.to_string())
}

/// The parameters of each kind, as text: how a kind writes them after the colon and how it
/// reads them back. A kind with parameters has its arm in both.
impl FaultKind {
    /// The parameter text after the colon, if the kind has parameters.
    pub fn param(&self) -> Option<String> {
        match self {
            FaultKind::Loss(p) => Some(p.to_string()),
            FaultKind::Limit(r) => Some(r.to_string()),
            FaultKind::Delay(d, None) => Some(d.to_string()),
            FaultKind::Delay(d, Some(j)) => Some(format!("{d},{j}")),
            FaultKind::Partition(shape) => Some(shape.to_string()),
            FaultKind::DelayLinks(links) => Some(links.to_string()),
            FaultKind::Clock(shift) => Some(shift.to_string()),
            FaultKind::Truncate(bytes) if *bytes != DEFAULT_TRUNCATE_BYTES => {
                Some(bytes.to_string())
            }
            _ => None,
        }
    }

    /// The kind of `spec`'s row with its parameters read from `param` (not empty); Err says
    /// why they are not the kind's.
    pub(super) fn with_param(spec: &Spec, param: &str) -> Result<FaultKind, String> {
        Ok(match spec.example() {
            FaultKind::Loss(_) => {
                let n: u8 = param
                    .trim_end_matches('%')
                    .parse()
                    .map_err(|_| format!("{param:?} is not a whole percentage"))?;
                if n == 0 || n > 100 {
                    return Err(format!("{n} % is not between 1 and 100"));
                }
                FaultKind::Loss(n)
            }
            FaultKind::Limit(_) => FaultKind::Limit(read(param)?),
            FaultKind::Delay(..) => {
                let (d, j) = match param.split_once(',') {
                    Some((d, j)) => (d, Some(j)),
                    None => (param, None),
                };
                let time = |t: &str| {
                    t.trim()
                        .parse::<Span>()
                        .map_err(|_| format!("{t:?} is not a time like 50ms, 1s or 200us"))
                };
                FaultKind::Delay(time(d)?, j.map(time).transpose()?)
            }
            FaultKind::Partition(_) => FaultKind::Partition(read(param)?),
            FaultKind::DelayLinks(_) => FaultKind::DelayLinks(read(param)?),
            FaultKind::Clock(_) => FaultKind::Clock(read(param)?),
            FaultKind::Truncate(_) => {
                let bytes: u32 = param
                    .parse()
                    .map_err(|_| format!("{param:?} is not a whole number of bytes"))?;
                if bytes == 0 {
                    return Err("0 bytes: cut at least one".to_string());
                }
                FaultKind::Truncate(bytes)
            }
            other => other.clone(),
        })
    }
}

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
    /// Per-link delays, in place of the host (`a1-a2=11ms a1-a3=85ms`).
    Links,
    /// A clock fault (`offset=+300s`, `jump=-60s`, `drift=+1000ppm`).
    Clock,
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
            Params::Links => "LINKS",
            Params::Clock => "offset=+300s|jump=-60s|drift=+1000ppm",
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
    pub(super) fn example(self) -> &'static str {
        match self {
            Params::Nothing => "",
            Params::Percent => "a PERCENT (loss:30)",
            Params::Rate => "a RATE (limit:256kbit)",
            Params::Delay => "a DELAY (delay:50ms or delay:50ms,10ms)",
            Params::Shape => "a SHAPE (partition:majorities-ring)",
            Params::Bytes => "a byte count (truncate:512)",
            Params::Links => "LINKS (delay-links:a1-a2=11ms a1-a3=85ms a2-a3=95ms)",
            Params::Clock => {
                "a clock fault (clock:offset=+300s, clock:jump=-60s, clock:drift=+1000ppm)"
            }
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

impl Spec {
    /// What a row of [`KINDS`] leaves unsaid: no parameters, aimed at one host, no layer or
    /// scope, leaves the node serving and the data alone, nothing before it, not drawn by the
    /// soak unless a mix names it. (Name, examples, role, state and doc every row gives.)
    const PLAIN: Spec = Spec {
        name: "",
        examples: &[],
        params: Params::Nothing,
        aim: Aim::Host,
        role: Role::Instant,
        state: "",
        layers: &[],
        scoped: false,
        takes_node_away: false,
        touches_data: false,
        after: None,
        soak: 0,
        doc: "",
    };

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
        role: Role::Lasting(FaultKind::Start),
        state: "killed",
        layers: BOTH,
        takes_node_away: true,
        soak: 3,
        doc: "SIGKILL the host's containers (--layer acceptor: only Redis; node: only the node)",
        ..Spec::PLAIN
    },
    Spec {
        name: "start",
        examples: &[FaultKind::Start],
        role: Role::Undoing,
        state: "started",
        layers: BOTH,
        doc: "start what kill stopped (repairing a node left in an old namespace), wait for health",
        ..Spec::PLAIN
    },
    Spec {
        name: "restart",
        examples: &[FaultKind::Restart],
        role: Role::Instant,
        state: "restarted",
        layers: BOTH,
        doc: "kill, then start",
        ..Spec::PLAIN
    },
    Spec {
        name: "pause",
        examples: &[FaultKind::Pause],
        role: Role::Lasting(FaultKind::Resume),
        state: "paused",
        layers: BOTH,
        takes_node_away: true,
        soak: 2,
        doc: "freeze the host's containers (docker pause; --layer picks one)",
        ..Spec::PLAIN
    },
    Spec {
        name: "resume",
        examples: &[FaultKind::Resume],
        role: Role::Undoing,
        state: "resumed",
        layers: BOTH,
        doc: "thaw them (docker unpause)",
        ..Spec::PLAIN
    },
    Spec {
        name: "isolate",
        examples: &[FaultKind::Isolate],
        role: Role::Lasting(FaultKind::Heal),
        state: "isolated",
        layers: BOTH,
        takes_node_away: true,
        soak: 3,
        doc: "drop all traffic between the host and its peers (clients still reach it); \
              --layer acceptor: only the peers' connections to its Redis; node: only its \
              node's connections to the peers' Redis",
        ..Spec::PLAIN
    },
    Spec {
        name: "isolate-inbound",
        examples: &[FaultKind::IsolateInbound],
        role: Role::Lasting(FaultKind::Heal),
        state: "cut inbound",
        soak: 1,
        doc: "one way: drop the connections the peers open to the host (it still reaches them)",
        ..Spec::PLAIN
    },
    Spec {
        name: "isolate-outbound",
        examples: &[FaultKind::IsolateOutbound],
        role: Role::Lasting(FaultKind::Heal),
        state: "cut outbound",
        soak: 1,
        doc: "one way: drop the connections the host opens to its peers (they still reach it)",
        ..Spec::PLAIN
    },
    Spec {
        name: "cut-clients",
        examples: &[FaultKind::CutClients],
        role: Role::Lasting(FaultKind::Heal),
        state: "clients cut",
        soak: 1,
        doc: "drop the clients' traffic to the host (its peers still reach it)",
        ..Spec::PLAIN
    },
    Spec {
        name: "loss",
        examples: &[
            FaultKind::Loss(30),
            FaultKind::Loss(10),
            FaultKind::Loss(50),
        ],
        params: Params::Percent,
        role: Role::Lasting(FaultKind::Heal),
        state: "lossy",
        scoped: true,
        soak: 2,
        doc: "drop PERCENT % of the packets to and from the peers (--scope all: every packet)",
        ..Spec::PLAIN
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
        role: Role::Lasting(FaultKind::Heal),
        state: "throttled",
        soak: 1,
        doc: "limit the host's outgoing bandwidth to RATE (tc tbf), e.g. 256kbit",
        ..Spec::PLAIN
    },
    Spec {
        name: "delay",
        examples: &[
            FaultKind::Delay(Span::from_millis(20), Some(Span::from_millis(10))),
            FaultKind::Delay(Span::from_millis(100), Some(Span::from_millis(10))),
        ],
        params: Params::Delay,
        role: Role::Lasting(FaultKind::Heal),
        state: "delayed",
        soak: 1,
        doc: "delay the host's packets to and from its peers by DELAY [JITTER] each way (a \
              delayer on a netfilter queue; CHAOS_DELAY=netem: tc netem, egress only)",
        ..Spec::PLAIN
    },
    Spec {
        name: "delay-links",
        examples: &[FaultKind::DelayLinks(Links::EXAMPLE)],
        params: Params::Links,
        aim: Aim::System,
        role: Role::Lasting(FaultKind::Heal),
        state: "delayed",
        doc:
            "one-way delays per link of the target system: \"a1-a2=11ms a1-a3=85ms,5ms a2-a3=95ms\"",
        ..Spec::PLAIN
    },
    Spec {
        name: "clock",
        examples: &[
            FaultKind::Clock(ClockShift::Offset(300)),
            FaultKind::Clock(ClockShift::Offset(-300)),
            FaultKind::Clock(ClockShift::Jump(-60)),
            FaultKind::Clock(ClockShift::Jump(60)),
            FaultKind::Clock(ClockShift::Drift(1000)),
            FaultKind::Clock(ClockShift::Drift(-1000)),
        ],
        params: Params::Clock,
        role: Role::Lasting(FaultKind::Heal),
        state: "clock skewed",
        // Drawn when a mix names it: it restarts the host's processes (libfaketime is loaded
        // at start), and systems written in Go cannot take it.
        soak: 0,
        doc: "the wall clock of the host's processes (libfaketime, monotonic clock true): \
              offset=+300s (restarted shifted), jump=-60s (a step now), drift=+1000ppm",
        ..Spec::PLAIN
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
        soak: 2,
        doc: "partition the target system's hosts: \"a1 | a2 a3\", halves, bridge, majorities-ring",
        ..Spec::PLAIN
    },
    Spec {
        name: "amnesia",
        examples: &[FaultKind::Amnesia],
        role: Role::Instant,
        state: "wiped",
        touches_data: true,
        // It may lose acknowledged writes by design (docs/faults.md): only when a mix asks.
        soak: 0,
        doc: "stop the host, erase its data volumes, start it empty (breaks durable acceptors)",
        ..Spec::PLAIN
    },
    Spec {
        name: "wipe",
        examples: &[FaultKind::Wipe],
        role: Role::Instant,
        state: "wiped",
        layers: ACCEPTOR,
        touches_data: true,
        doc: "stop the host (--layer acceptor: only its Redis), empty its data directory, start it",
        ..Spec::PLAIN
    },
    Spec {
        name: "snapshot",
        examples: &[FaultKind::Snapshot],
        aim: Aim::HostOrEvery,
        role: Role::Instant,
        state: "snapshot taken",
        touches_data: true,
        doc: "save a copy of the host's data directory (frozen while copied); every host of \
              the target when HOST is omitted",
        ..Spec::PLAIN
    },
    Spec {
        name: "rollback",
        examples: &[FaultKind::Rollback],
        role: Role::Instant,
        state: "rolled back",
        layers: ACCEPTOR,
        touches_data: true,
        after: Some(FaultKind::Snapshot),
        doc: "stop the host (--layer acceptor: only its Redis), put its snapshot back, start it",
        ..Spec::PLAIN
    },
    Spec {
        name: "truncate",
        examples: &[FaultKind::Truncate(DEFAULT_TRUNCATE_BYTES)],
        params: Params::Bytes,
        role: Role::Instant,
        state: "log truncated",
        layers: ACCEPTOR,
        touches_data: true,
        doc: "stop the host (--layer acceptor: only its Redis), cut [BYTES] (4096) off the tail \
              of its log, repair it as the system's tools advise, start it",
        ..Spec::PLAIN
    },
    Spec {
        name: "kill-machine",
        examples: &[FaultKind::KillMachine],
        role: Role::Lasting(FaultKind::StartMachine),
        state: "machine down",
        takes_node_away: true,
        // Drawn by the soak only when a mix names it: only where machines can be powered off
        // (make cluster-up).
        doc: "cut the power of the machine running the host: its whole engine stops, with every \
              container on it (machine= in the hosts file; without it, every container of the \
              testbed on that engine is killed at once)",
        ..Spec::PLAIN
    },
    Spec {
        name: "start-machine",
        examples: &[FaultKind::StartMachine],
        role: Role::Undoing,
        state: "machine started",
        doc: "power the host's machine on again: its engine, then the hosts on it, wait for health",
        ..Spec::PLAIN
    },
    Spec {
        name: "heal",
        examples: &[FaultKind::Heal],
        aim: Aim::HostOrEvery,
        role: Role::Undoing,
        state: "healed",
        doc: "undo every fault chaos made on the host: rules, qdiscs, pauses, kills",
        ..Spec::PLAIN
    },
];

#[cfg(test)]
mod tests {
    use std::mem::discriminant;

    use super::*;

    /// Adding a variant breaks this match until its row is in KINDS (then add it here).
    #[test]
    fn every_variant_has_a_row() {
        let mut seen = Vec::new();
        for spec in KINDS {
            // What Spec::PLAIN cannot say for a row.
            assert!(
                !spec.name.is_empty()
                    && !spec.examples.is_empty()
                    && !spec.state.is_empty()
                    && !spec.doc.is_empty(),
                "a row without its name, examples, state or doc: {spec:?}"
            );
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
                    | FaultKind::DelayLinks(_)
                    | FaultKind::Clock(_)
                    | FaultKind::Partition(_)
                    | FaultKind::Amnesia
                    | FaultKind::Wipe
                    | FaultKind::Snapshot
                    | FaultKind::Rollback
                    | FaultKind::Truncate(_)
                    | FaultKind::KillMachine
                    | FaultKind::StartMachine => seen.push(discriminant(example)),
                }
            }
            let optional = matches!(spec.params, Params::Nothing | Params::Bytes);
            assert_eq!(optional, spec.example().param().is_none(), "{}", spec.name);
            assert!(!spec.layered() || spec.aim == Aim::Host, "{}", spec.name);
        }
        seen.dedup();
        assert_eq!(seen.len(), KINDS.len(), "one row per variant");
    }
}
