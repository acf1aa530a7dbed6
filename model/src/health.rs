//! The body of a Perseus node's `GET /health`, written by the node and read back by chaos
//! (`chaos status`) and the scripts: etcd's `{"health":"true"}` plus the node's view of every
//! acceptor. etcd's own body carries only `health`; every other field is optional when read,
//! so one parser reads both systems.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Whether one acceptor counts toward quorums, as a node's membership task last saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AcceptorState {
    /// Marked with the cluster's identity as a member: counts toward every quorum.
    Member,
    /// Lost its data and was marked again: takes accepts, counts toward no quorum until the
    /// catch-up pass makes it a member.
    Recovering,
    /// Marked as a member, but its data may have gone back in time since it was last brought
    /// level (the Redis restarted, or its data was restored): counts toward no quorum until
    /// marked recovering and caught up.
    Suspect,
    /// Claimed by a cluster being initialised: counts toward no quorum until it joins.
    Initialising,
    /// Answers but holds no identity record (just wiped, or a new cluster not yet initialised).
    Unmarked,
    /// Holds another cluster's identity, or another acceptor's.
    Foreign,
    /// Holds this cluster's identity, made with another set of acceptors than this node's
    /// configuration names: refused.
    OtherSet,
    /// Does not answer.
    Unreachable,
    /// Answers, but does not write every change to disk before replying: refused.
    RefusedNotDurable,
    /// A state this reader does not know (a newer node).
    #[serde(other)]
    Unknown,
}

impl AcceptorState {
    pub fn as_str(self) -> &'static str {
        match self {
            AcceptorState::Member => "member",
            AcceptorState::Recovering => "recovering",
            AcceptorState::Suspect => "suspect",
            AcceptorState::Initialising => "initialising",
            AcceptorState::Unmarked => "unmarked",
            AcceptorState::Foreign => "foreign",
            AcceptorState::OtherSet => "other-set",
            AcceptorState::Unreachable => "unreachable",
            AcceptorState::RefusedNotDurable => "refused-not-durable",
            AcceptorState::Unknown => "unknown",
        }
    }
}

impl fmt::Display for AcceptorState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a node concludes from its acceptors.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// The cluster is known and a quorum of members may exist.
    Serving,
    /// A new cluster waits for every acceptor before it is initialised.
    Waiting,
    /// The members can no longer form a quorum: acknowledged writes may be lost; serving
    /// nothing until the operator accepts the loss.
    DataLoss,
    /// The acceptors belong to a cluster made with another set of acceptors than this node's
    /// configuration names: serving nothing until the configuration is fixed.
    Misconfigured,
    #[serde(other)]
    Unknown,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Serving => "serving",
            Verdict::Waiting => "waiting",
            Verdict::DataLoss => "data-loss",
            Verdict::Misconfigured => "misconfigured",
            Verdict::Unknown => "unknown",
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One acceptor in the membership view.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcceptorMembership {
    pub name: String,
    pub state: AcceptorState,
    /// Keys holding CASPaxos state (when reachable).
    #[serde(default)]
    pub keys: Option<u64>,
    /// Catch-up progress of a recovering acceptor: keys done of keys listed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catch_up: Option<(u64, u64)>,
}

/// A node's membership view: the cluster id, the verdict with its reason, every acceptor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MembershipView {
    pub cluster: Option<String>,
    pub verdict: Verdict,
    pub message: String,
    pub acceptors: Vec<AcceptorMembership>,
}

/// One acceptor as `/health` probed it just now, with its membership state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcceptorHealth {
    pub name: String,
    /// Whether it answered the probe within the acceptor timeout.
    pub answers: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// None for in-memory acceptors (tests), which have no identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<AcceptorState>,
}

/// The whole `/health` body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// etcd's format: the string `"true"` or `"false"`.
    pub health: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incarnation: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quorum: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answering: Option<usize>,
    #[serde(default)]
    pub membership: Option<MembershipView>,
    #[serde(default)]
    pub acceptors: Vec<AcceptorHealth>,
}

impl Health {
    pub fn healthy(&self) -> bool {
        self.health == "true"
    }

    /// One short line of acceptor states, as the status table shows it:
    /// `a1 member, a2 recovering 120/400, a3 member`; `-` when the body has none (etcd).
    pub fn acceptors_line(&self) -> String {
        self.acceptors_line_named(str::to_string)
    }

    /// The same, with each acceptor's name (its address in the node's configuration) shown
    /// as `rename` says (chaos shows the host name).
    pub fn acceptors_line_named(&self, rename: impl Fn(&str) -> String) -> String {
        let from_view = self.membership.as_ref().map(|v| {
            v.acceptors
                .iter()
                .map(|a| match a.catch_up {
                    Some((done, total)) => {
                        format!("{} {} {done}/{total}", rename(&a.name), a.state)
                    }
                    None => format!("{} {}", rename(&a.name), a.state),
                })
                .collect::<Vec<_>>()
        });
        let parts = from_view.unwrap_or_else(|| {
            self.acceptors
                .iter()
                .map(|a| match a.state {
                    Some(s) => format!("{} {s}", rename(&a.name)),
                    None if a.answers => format!("{} answers", rename(&a.name)),
                    None => format!("{} unreachable", rename(&a.name)),
                })
                .collect()
        });
        if parts.is_empty() {
            "-".into()
        } else {
            parts.join(", ")
        }
    }

    /// The state of acceptor `name` in this node's view, if it gives one.
    pub fn acceptor_state(&self, name: &str) -> Option<AcceptorState> {
        self.membership
            .as_ref()
            .and_then(|v| v.acceptors.iter().find(|a| a.name == name))
            .map(|a| a.state)
            .or_else(|| {
                self.acceptors
                    .iter()
                    .find(|a| a.name == name)
                    .and_then(|a| a.state)
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_perseus_body_and_an_etcd_body() {
        let body = r#"{"health":"true","id":1,"incarnation":7,"quorum":2,"answering":3,
            "membership":{"cluster":"ab12","verdict":"serving","message":"a1 member",
              "acceptors":[{"name":"a1","state":"member","keys":10},
                           {"name":"a2","state":"recovering","keys":3,"catch_up":[4,10]},
                           {"name":"a3","state":"refused-not-durable","keys":null}]},
            "acceptors":[{"name":"a1","answers":true,"state":"member"},
                         {"name":"a2","answers":true,"state":"recovering"},
                         {"name":"a3","answers":false,"error":"timeout","state":"unreachable"}]}"#;
        let h: Health = serde_json::from_str(body).unwrap();
        assert!(h.healthy());
        assert_eq!(h.acceptor_state("a2"), Some(AcceptorState::Recovering));
        assert_eq!(
            h.acceptors_line(),
            "a1 member, a2 recovering 4/10, a3 refused-not-durable"
        );
        let etcd: Health = serde_json::from_str(r#"{"health":"false","reason":""}"#).unwrap();
        assert!(!etcd.healthy());
        assert_eq!(etcd.acceptors_line(), "-");
        let short = h.acceptors_line_named(|n| n.replace("a", "acceptor "));
        assert!(
            short.starts_with("acceptor 1 member, acceptor 2 recovering"),
            "{short}"
        );
        assert_eq!(etcd.acceptor_state("a1"), None);
    }

    #[test]
    fn unknown_states_and_verdicts_still_parse() {
        let a: AcceptorMembership =
            serde_json::from_str(r#"{"name":"a1","state":"retired"}"#).unwrap();
        assert_eq!(a.state, AcceptorState::Unknown);
        let v: Verdict = serde_json::from_str(r#""resting""#).unwrap();
        assert_eq!(v, Verdict::Unknown);
        // And the written form is the one read back.
        let s = serde_json::to_string(&AcceptorState::RefusedNotDurable).unwrap();
        assert_eq!(s, r#""refused-not-durable""#);
        assert_eq!(
            serde_json::from_str::<Verdict>(r#""data-loss""#).unwrap(),
            Verdict::DataLoss
        );
    }
}
