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
//! Layout: `kinds.rs` holds the enum and its table, [`KINDS`], with the table's columns
//! ([`Spec`], [`Params`], [`Aim`], [`Role`]); this file the text form and the questions lab
//! and chaos ask of a kind.
//!
//! Adding a kind: its variant, its row in [`KINDS`] and, when it takes parameters, its arms in
//! `FaultKind::with_param` and [`FaultKind::param`] (a parameter of a new shape also its
//! [`Params`]), all in `kinds.rs`. Then chaos's `nemesis.rs` says how to do it (and
//! `status.rs` how to see it). docs/design.md walks through it.

use std::fmt;
use std::mem::discriminant;
use std::str::FromStr;

mod kinds;

pub use kinds::{Aim, FaultKind, Params, Role, Spec, DEFAULT_TRUNCATE_BYTES, KINDS};

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

    /// Builds a kind from its name and its parameter text (`None` when there is none).
    pub fn from_parts(name: &str, param: Option<&str>) -> Result<FaultKind, ParseFaultError> {
        let spec = Spec::named(name).ok_or_else(|| ParseFaultError::Unknown(name.to_string()))?;
        let bad = |why| ParseFaultError::BadParameter {
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
        FaultKind::with_param(spec, param).map_err(bad)
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
    use crate::params::Layer;
    use crate::partition::Shape;

    #[test]
    fn parameters_round_trip_and_are_checked() {
        for text in [
            "loss:30",
            "limit:256kbit",
            "delay:50ms",
            "delay:50ms,10ms",
            "partition:a1 | a2 a3",
            "partition:majorities-ring",
            "delay-links:a1-a2=11ms a1-a3=85ms,5ms a2-a3=95ms",
            "clock:offset=+300s",
            "clock:jump=-60s",
            "clock:drift=+1000ppm",
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
            "delay-links:a1-a1=5ms",
            "clock",
            "clock:+300s",
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
        assert!(
            err.to_string().contains(&FaultKind::names().join(", ")),
            "{err}"
        );
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
