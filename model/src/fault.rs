//! The fault kinds: what chaos can do to a host and how each is undone. One enum, one text
//! form (`Display`/`FromStr`, also the serde form), used by chaos's command line, the events
//! file, lab's scenario steps and lab's analysis.
//!
//! Text form: the kind's name, then its parameters after a colon when it has any
//! (`kill`, `heal`, `loss:30`, `limit:256kbit`, `delay:50ms,10ms`, `partition:a1 | a2 a3`).
//! Which layer of a host a kill/pause/isolate hit (`--layer`) and which packets a loss drops
//! (`--scope`) travel in the event's `params`, not in the kind.
//!
//! Adding a kind: a variant here, its names in [`FaultKind::NAMES`], [`FaultKind::name`] and
//! [`FaultKind::state`], its parameters in [`FaultKind::from_parts`] and `Display`, and its
//! place in [`FaultKind::undo`] (what ends it) — the rest (scenario parsing, events, the
//! analysis's windows, the undo at the end of a scenario) follows from these.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

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
    /// killed hosts (ends every kind below, and kill, pause and isolate too).
    Heal,
    /// One way: drop the connections the peers open to the host.
    IsolateInbound,
    /// One way: drop the connections the host opens to its peers.
    IsolateOutbound,
    /// Drop the clients' traffic to the host; its peers still reach it.
    CutClients,
    /// Drop this percentage (1..=100) of the packets to and from the peers.
    Loss(u8),
    /// Limit the host's outgoing bandwidth (tc rate, e.g. `256kbit`).
    Limit(String),
    /// Delay the host's outgoing packets (netem): delay and optional jitter (`50ms`, `10ms`).
    Delay(String, Option<String>),
    /// Partition the system's hosts by a shape (`a1 | a2 a3`, halves, bridge, majorities-ring).
    Partition(String),
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

/// A text that is not a fault kind (or has wrong parameters).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseFaultError {
    #[error("unknown fault {0:?} (one of {names})", names = FaultKind::NAMES.join(", "))]
    Unknown(String),
    #[error("fault {kind:?} takes no parameter (got {param:?})")]
    UnexpectedParameter { kind: String, param: String },
    #[error("fault {kind:?} needs {what}")]
    MissingParameter { kind: String, what: &'static str },
    #[error("fault {kind:?}: {why}")]
    BadParameter { kind: String, why: String },
}

impl FaultKind {
    /// Every kind's name, for help texts and error messages.
    pub const NAMES: &'static [&'static str] = &[
        "kill",
        "start",
        "restart",
        "pause",
        "resume",
        "isolate",
        "heal",
        "isolate-inbound",
        "isolate-outbound",
        "cut-clients",
        "loss",
        "limit",
        "delay",
        "partition",
        "amnesia",
        "wipe",
        "snapshot",
        "rollback",
        "truncate",
    ];

    /// The kind's name without its parameters.
    pub fn name(&self) -> &'static str {
        match self {
            FaultKind::Kill => "kill",
            FaultKind::Start => "start",
            FaultKind::Restart => "restart",
            FaultKind::Pause => "pause",
            FaultKind::Resume => "resume",
            FaultKind::Isolate => "isolate",
            FaultKind::Heal => "heal",
            FaultKind::IsolateInbound => "isolate-inbound",
            FaultKind::IsolateOutbound => "isolate-outbound",
            FaultKind::CutClients => "cut-clients",
            FaultKind::Loss(_) => "loss",
            FaultKind::Limit(_) => "limit",
            FaultKind::Delay(..) => "delay",
            FaultKind::Partition(_) => "partition",
            FaultKind::Amnesia => "amnesia",
            FaultKind::Wipe => "wipe",
            FaultKind::Snapshot => "snapshot",
            FaultKind::Rollback => "rollback",
            FaultKind::Truncate(_) => "truncate",
        }
    }

    /// The parameters as chaos's command line takes them after the host (`loss a1 30`,
    /// `delay a1 50ms 10ms`; for partition, the shape in place of a host).
    pub fn cli_params(&self) -> Vec<String> {
        match self {
            FaultKind::Delay(d, j) => std::iter::once(d.clone()).chain(j.clone()).collect(),
            _ => self.param().into_iter().collect(),
        }
    }

    /// The parameter text after the colon, if the kind has parameters.
    pub fn param(&self) -> Option<String> {
        match self {
            FaultKind::Loss(p) => Some(p.to_string()),
            FaultKind::Limit(r) => Some(r.clone()),
            FaultKind::Delay(d, None) => Some(d.clone()),
            FaultKind::Delay(d, Some(j)) => Some(format!("{d},{j}")),
            FaultKind::Partition(shape) => Some(shape.clone()),
            FaultKind::Truncate(bytes) if *bytes != DEFAULT_TRUNCATE_BYTES => {
                Some(bytes.to_string())
            }
            _ => None,
        }
    }

    /// What a host under this fault is, for tables (`killed`, `isolated`).
    pub fn state(&self) -> &'static str {
        match self {
            FaultKind::Kill => "killed",
            FaultKind::Start => "started",
            FaultKind::Restart => "restarted",
            FaultKind::Pause => "paused",
            FaultKind::Resume => "resumed",
            FaultKind::Isolate => "isolated",
            FaultKind::Heal => "healed",
            FaultKind::IsolateInbound => "cut inbound",
            FaultKind::IsolateOutbound => "cut outbound",
            FaultKind::CutClients => "clients cut",
            FaultKind::Loss(_) => "lossy",
            FaultKind::Limit(_) => "throttled",
            FaultKind::Delay(..) => "delayed",
            FaultKind::Partition(_) => "partitioned",
            FaultKind::Amnesia => "wiped",
            FaultKind::Wipe => "wiped",
            FaultKind::Snapshot => "snapshot taken",
            FaultKind::Rollback => "rolled back",
            FaultKind::Truncate(_) => "log truncated",
        }
    }

    /// Builds a kind from its name and its parameter text (`None` when there is none).
    pub fn from_parts(name: &str, param: Option<&str>) -> Result<FaultKind, ParseFaultError> {
        let plain = |kind: FaultKind| match param {
            None => Ok(kind),
            Some(p) => Err(ParseFaultError::UnexpectedParameter {
                kind: name.to_string(),
                param: p.to_string(),
            }),
        };
        match name {
            "kill" => plain(FaultKind::Kill),
            "start" => plain(FaultKind::Start),
            "restart" => plain(FaultKind::Restart),
            "pause" => plain(FaultKind::Pause),
            "resume" => plain(FaultKind::Resume),
            "isolate" => plain(FaultKind::Isolate),
            "heal" => plain(FaultKind::Heal),
            "isolate-inbound" => plain(FaultKind::IsolateInbound),
            "isolate-outbound" => plain(FaultKind::IsolateOutbound),
            "cut-clients" => plain(FaultKind::CutClients),
            "amnesia" => plain(FaultKind::Amnesia),
            "wipe" => plain(FaultKind::Wipe),
            "snapshot" => plain(FaultKind::Snapshot),
            "rollback" => plain(FaultKind::Rollback),
            "truncate" => match param {
                None => Ok(FaultKind::Truncate(DEFAULT_TRUNCATE_BYTES)),
                Some(p) => {
                    let bytes: u32 =
                        p.trim()
                            .parse()
                            .map_err(|_| ParseFaultError::BadParameter {
                                kind: name.to_string(),
                                why: format!("{p:?} is not a whole number of bytes"),
                            })?;
                    if bytes == 0 {
                        return Err(ParseFaultError::BadParameter {
                            kind: name.to_string(),
                            why: "cutting 0 bytes cuts nothing".into(),
                        });
                    }
                    Ok(FaultKind::Truncate(bytes))
                }
            },
            "loss" | "limit" | "delay" | "partition" => {
                let missing = |what| ParseFaultError::MissingParameter {
                    kind: name.to_string(),
                    what,
                };
                let bad = |why: String| ParseFaultError::BadParameter {
                    kind: name.to_string(),
                    why,
                };
                match name {
                    "loss" => {
                        let p = param.ok_or_else(|| missing("a PERCENT (loss:30)"))?;
                        let n: u8 = p
                            .trim_end_matches('%')
                            .parse()
                            .map_err(|_| bad(format!("{p:?} is not a whole percentage")))?;
                        if n == 0 || n > 100 {
                            return Err(bad(format!("{n} % is not between 1 and 100")));
                        }
                        Ok(FaultKind::Loss(n))
                    }
                    "limit" => {
                        let r = param.ok_or_else(|| missing("a RATE (limit:256kbit)"))?;
                        check_rate(r).map_err(bad)?;
                        Ok(FaultKind::Limit(r.to_string()))
                    }
                    "delay" => {
                        let p = param
                            .ok_or_else(|| missing("a DELAY (delay:50ms or delay:50ms,10ms)"))?;
                        let (d, j) = match p.split_once(',') {
                            Some((d, j)) => (d.trim(), Some(j.trim())),
                            None => (p.trim(), None),
                        };
                        check_time(d).map_err(bad)?;
                        if let Some(j) = j {
                            check_time(j).map_err(bad)?;
                        }
                        Ok(FaultKind::Delay(d.to_string(), j.map(String::from)))
                    }
                    _ => {
                        let shape =
                            param.ok_or_else(|| missing("a SHAPE (partition:majorities-ring)"))?;
                        if shape.trim().is_empty() {
                            return Err(missing("a SHAPE (partition:majorities-ring)"));
                        }
                        Ok(FaultKind::Partition(shape.trim().to_string()))
                    }
                }
            }
            _ => Err(ParseFaultError::Unknown(name.to_string())),
        }
    }

    /// The action that ends this fault, `None` for the undoing actions themselves and for
    /// `restart` (over when it returns).
    pub fn undo(&self) -> Option<FaultKind> {
        match self {
            FaultKind::Kill => Some(FaultKind::Start),
            FaultKind::Pause => Some(FaultKind::Resume),
            FaultKind::Isolate
            | FaultKind::IsolateInbound
            | FaultKind::IsolateOutbound
            | FaultKind::CutClients
            | FaultKind::Loss(_)
            | FaultKind::Limit(_)
            | FaultKind::Delay(..)
            | FaultKind::Partition(_) => Some(FaultKind::Heal),
            FaultKind::Start
            | FaultKind::Restart
            | FaultKind::Resume
            | FaultKind::Heal
            | FaultKind::Amnesia
            | FaultKind::Wipe
            | FaultKind::Snapshot
            | FaultKind::Rollback
            | FaultKind::Truncate(_) => None,
        }
    }

    /// Whether this action ends a fault of kind `fault` (heal ends every lasting fault).
    pub fn undoes(&self, fault: &FaultKind) -> bool {
        let own = fault.undo();
        own.as_ref() == Some(self) || (*self == FaultKind::Heal && own.is_some())
    }

    /// Whether the action ends some fault (start, resume, heal).
    pub fn is_undo(&self) -> bool {
        FaultKind::NAMES
            .iter()
            .filter_map(|n| FaultKind::from_parts(n, None).ok())
            .any(|f| self.undoes(&f))
    }

    /// A fault over when the action returns (its window is the action itself): `restart`.
    pub fn is_instant(&self) -> bool {
        matches!(
            self,
            FaultKind::Restart
                | FaultKind::Amnesia
                | FaultKind::Wipe
                | FaultKind::Snapshot
                | FaultKind::Rollback
                | FaultKind::Truncate(_)
        )
    }

    /// Whether the action acts on the host's stored data (wipe, rollback, truncate, amnesia;
    /// snapshot only reads it): a fault whose loss no `heal` can undo.
    pub fn is_storage(&self) -> bool {
        matches!(
            self,
            FaultKind::Amnesia
                | FaultKind::Wipe
                | FaultKind::Snapshot
                | FaultKind::Rollback
                | FaultKind::Truncate(_)
        )
    }

    /// Whether the action may run without naming a host (then it acts on every host):
    /// only the undoing actions that are harmless on a healthy host.
    pub fn may_omit_host(&self) -> bool {
        matches!(self, FaultKind::Heal | FaultKind::Snapshot)
    }

    /// Whether the action names no host at all (it acts on the whole system): `partition`.
    pub fn takes_no_host(&self) -> bool {
        matches!(self, FaultKind::Partition(_))
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

/// Checks a rate like `256kbit`, `10mbit` (tc's units).
fn check_rate(rate: &str) -> Result<(), String> {
    let digits = rate.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = &rate[digits.len()..];
    let number: f64 = digits
        .parse()
        .map_err(|_| format!("{rate:?} is not a rate like 256kbit or 10mbit"))?;
    if !(number > 0.0 && number.is_finite()) {
        return Err(format!("{rate:?}: the rate must be above zero"));
    }
    if !["bit", "kbit", "mbit", "gbit", "bps", "kbps", "mbps"].contains(&unit) {
        return Err(format!(
            "{rate:?}: unit must be bit, kbit, mbit, gbit, bps, kbps or mbps"
        ));
    }
    Ok(())
}

/// Checks a time like `50ms`, `1s`, `200us` (tc's units).
fn check_time(text: &str) -> Result<(), String> {
    let digits = text.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = &text[digits.len()..];
    let ok = digits
        .parse::<f64>()
        .is_ok_and(|n| n >= 0.0 && n.is_finite())
        && ["us", "ms", "s"].contains(&unit);
    if ok {
        Ok(())
    } else {
        Err(format!("{text:?} is not a time like 50ms, 1s or 200us"))
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
    }

    #[test]
    fn every_name_round_trips() {
        let with_param = ["loss", "limit", "delay", "partition"];
        for name in FaultKind::NAMES.iter().filter(|n| !with_param.contains(n)) {
            let f: FaultKind = name.parse().unwrap();
            assert_eq!(f.name(), *name);
            assert_eq!(f.to_string(), *name);
            let json = serde_json::to_string(&f).unwrap();
            assert_eq!(json, format!("\"{name}\""));
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
    }
}
