//! One host as `chaos status` sees it ([`HostStatus`]): its containers, whether they share the
//! host's network namespace, its health where its users stand, its node's view of the
//! acceptors, the faults present and what is wrong. chaos builds one per host and prints it as
//! a row of the status table, as a JSON line (`chaos status --json`), or one field of it
//! (`chaos status HOST --get FIELD`, [`HostStatus::get`]), so that scripts ask for a fact
//! instead of reading the table's prose.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::health::{AcceptorState, Verdict};
use crate::host::HostName;

/// Whether a host's containers share the namespace of the one that owns it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Netns {
    /// One container: nothing to share.
    Alone,
    Shared,
    /// A container runs in a namespace that is no longer its owner's (the owner was restarted
    /// on its own): a broken testbed, not a fault chaos made.
    Detached,
    /// Cannot be judged now (a container stopped or paused).
    Unknown,
}

impl Netns {
    pub fn as_str(self) -> &'static str {
        match self {
            Netns::Alone => "-",
            Netns::Shared => "shared",
            Netns::Detached => "detached",
            Netns::Unknown => "?",
        }
    }
}

impl fmt::Display for Netns {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One host, as `chaos status` found it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HostStatus {
    pub host: HostName,
    /// Each container and its state: `a1=running p1=running`.
    pub containers: String,
    pub netns: Netns,
    /// Whether its health check answered 200 where its users stand.
    pub healthy: bool,
    pub addresses: Vec<String>,
    /// The Docker engine that runs it (`local`, or the endpoint).
    pub engine: String,
    /// The node's verdict on its acceptors (Perseus only).
    #[serde(default)]
    pub verdict: Option<Verdict>,
    /// The node's view of each acceptor, by host name (`a2` → recovering); empty for a system
    /// without acceptors.
    #[serde(default)]
    pub acceptors: BTreeMap<String, AcceptorState>,
    /// The same view as the table's ACCEPTORS column shows it, with catch-up progress
    /// (`a1 member, a2 recovering 120/400, a3 member`); `-` when there is none.
    pub acceptors_line: String,
    /// Every fault present on the host (`isolated from a2,a3`), read from the host itself.
    pub faults: Vec<String>,
    /// What is wrong with the host beyond the faults (unhealthy, detached), one sentence each.
    #[serde(default)]
    pub problems: Vec<String>,
}

/// A field [`HostStatus::get`] does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown status field {0:?} (one of {fields})", fields = HostStatus::FIELDS.join(", "))]
pub struct UnknownField(pub String);

impl HostStatus {
    /// The fields [`HostStatus::get`] answers.
    pub const FIELDS: &'static [&'static str] = &[
        "containers",
        "netns",
        "healthy",
        "addresses",
        "engine",
        "verdict",
        "acceptor.NAME",
        "acceptors",
        "faults",
    ];

    /// One field as text, for scripts: `netns` → `detached`, `acceptor.a2` → `recovering`
    /// (`none` when the node names no such acceptor), `verdict` → `data-loss` (`none` for a
    /// system without one), `healthy` → `true`, `faults` → one per line (nothing when none).
    pub fn get(&self, field: &str) -> Result<String, UnknownField> {
        let none = || "none".to_string();
        Ok(match field {
            "containers" => self.containers.clone(),
            "netns" => self.netns.to_string(),
            "healthy" => self.healthy.to_string(),
            "addresses" => self.addresses.join(","),
            "engine" => self.engine.clone(),
            "verdict" => self.verdict.map_or_else(none, |v| v.to_string()),
            "acceptors" => self.acceptors_line.clone(),
            "faults" => self.faults.join("\n"),
            _ => match field.strip_prefix("acceptor.") {
                Some(name) if !name.is_empty() => self
                    .acceptors
                    .get(name)
                    .map_or_else(none, |s| s.to_string()),
                _ => return Err(UnknownField(field.to_string())),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a2() -> HostStatus {
        HostStatus {
            host: HostName::perseus(2),
            containers: "a2=running p2=running".into(),
            netns: Netns::Detached,
            healthy: false,
            addresses: vec!["10.77.0.12".into()],
            engine: "local".into(),
            verdict: Some(Verdict::DataLoss),
            acceptors: BTreeMap::from([
                ("a1".to_string(), AcceptorState::Member),
                ("a2".to_string(), AcceptorState::Recovering),
            ]),
            acceptors_line: "a1 member, a2 recovering 4/10".into(),
            faults: vec![],
            problems: vec!["a2: unhealthy".into()],
        }
    }

    #[test]
    fn fields_answer_as_scripts_compare_them() {
        let s = a2();
        assert_eq!(s.get("netns").unwrap(), "detached");
        assert_eq!(s.get("acceptor.a2").unwrap(), "recovering");
        assert_eq!(s.get("acceptor.a3").unwrap(), "none");
        assert_eq!(s.get("verdict").unwrap(), "data-loss");
        assert_eq!(s.get("healthy").unwrap(), "false");
        assert_eq!(s.get("faults").unwrap(), "");
        let err = s.get("acceptor.").unwrap_err().to_string();
        assert!(err.contains("one of containers, netns"), "{err}");
        assert!(s.get("mood").is_err());
    }

    #[test]
    fn the_json_line_reads_back() {
        let s = a2();
        let line = serde_json::to_string(&s).unwrap();
        assert!(line.contains(r#""netns":"detached""#), "{line}");
        assert!(line.contains(r#""a2":"recovering""#), "{line}");
        assert_eq!(serde_json::from_str::<HostStatus>(&line).unwrap(), s);
    }
}
