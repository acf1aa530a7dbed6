//! The fault kinds: what chaos can do to a host and how each is undone. One enum, one text
//! form (`Display`/`FromStr`, also the serde form), used by chaos's command line, the events
//! file, lab's scenario steps and lab's analysis.
//!
//! Text form: the kind's name, then its parameters after a colon when it has any
//! (`kill`, `heal`; a kind with a parameter would read e.g. `loss:30`).
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
    /// Remove every network rule chaos added (undoes `isolate`).
    Heal,
}

/// A text that is not a fault kind (or has wrong parameters).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseFaultError {
    #[error("unknown fault {0:?} (one of {names})", names = FaultKind::NAMES.join(", "))]
    Unknown(String),
    #[error("fault {kind:?} takes no parameter (got {param:?})")]
    UnexpectedParameter { kind: String, param: String },
}

impl FaultKind {
    /// Every kind's name, for help texts and error messages.
    pub const NAMES: &'static [&'static str] = &[
        "kill", "start", "restart", "pause", "resume", "isolate", "heal",
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
            _ => Err(ParseFaultError::Unknown(name.to_string())),
        }
    }

    /// The action that ends this fault, `None` for the undoing actions themselves and for
    /// `restart` (over when it returns).
    pub fn undo(&self) -> Option<FaultKind> {
        match self {
            FaultKind::Kill => Some(FaultKind::Start),
            FaultKind::Pause => Some(FaultKind::Resume),
            FaultKind::Isolate => Some(FaultKind::Heal),
            FaultKind::Start | FaultKind::Restart | FaultKind::Resume | FaultKind::Heal => None,
        }
    }

    /// Whether this action ends a fault of kind `fault`.
    pub fn undoes(&self, fault: &FaultKind) -> bool {
        fault.undo().as_ref() == Some(self)
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
        matches!(self, FaultKind::Restart)
    }

    /// Whether the action may run without naming a host (then it acts on every host):
    /// only the undoing actions that are harmless on a healthy host.
    pub fn may_omit_host(&self) -> bool {
        matches!(self, FaultKind::Heal)
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Kinds with parameters write `name:param` here.
        f.write_str(self.name())
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
    fn every_name_round_trips() {
        for name in FaultKind::NAMES {
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
