//! The acceptor's rules, as pure functions over one key's state.
//!
//! This is the single statement of what an acceptor does. The Redis Lua scripts
//! (`slot.lua`, `prepare.lua`, `accept.lua`, `read.lua`) implement exactly these rules inside Redis, the
//! in-memory acceptor runs them directly, and a differential test (`tests/acceptors.rs`) runs
//! thousands of random sequences against both and requires identical answers and states.
//!
//! Before the ballot rules, every call passes [`admit`]: the acceptor's identity record must
//! name the expected cluster and acceptor, or the call is refused and changes nothing (a
//! wiped, replaced or foreign Redis never answers as if it had never promised anything).

use crate::ballot::{is_exact, Ballot};

/// An acceptor's state in the cluster, from its identity record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Standing {
    /// Counts toward every quorum (while its stamp is the acceptor's current life).
    Member,
    /// Lost its data, or may have (found without an identity among marked acceptors, or a
    /// member whose data may have gone back in time): it stores what it is sent, but counts
    /// toward no quorum until the catch-up pass makes it a member again.
    Recovering,
    /// Claimed by a cluster being initialised: stores, counts toward no quorum, becomes a
    /// member when the initialisation finishes (`join`). It never counted, so it has nothing
    /// to have forgotten.
    Initialising,
}

impl Standing {
    pub fn as_str(self) -> &'static str {
        match self {
            Standing::Member => "member",
            Standing::Recovering => "recovering",
            Standing::Initialising => "initialising",
        }
    }

    pub fn parse(text: &str) -> Option<Standing> {
        match text {
            "member" => Some(Standing::Member),
            "recovering" => Some(Standing::Recovering),
            "initialising" => Some(Standing::Initialising),
            _ => None,
        }
    }
}

/// An acceptor's identity record, written when the cluster is initialised (or when the
/// acceptor is found wiped and marked recovering).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// Random id of the cluster, the same on every acceptor.
    pub cluster: String,
    /// The acceptor's own name (its address in the nodes' configuration).
    pub acceptor: String,
    pub standing: Standing,
    /// Random token written with each mark: a catch-up pass promotes only the mark it started
    /// from, so an acceptor wiped and re-marked during the pass is never promoted by it.
    pub mark: String,
    /// The acceptor set the cluster was made with ([`acceptor_set`]): a node configured with
    /// another set refuses to use the acceptor.
    pub set: String,
    /// The acceptor's life (see [`admit`]) when the record was last brought level: written by
    /// the acceptor itself on claim, promotion and the operator's command (what a caller
    /// passes is ignored).
    pub stamp: String,
}

/// The acceptor set as an identity record carries it: the names, sorted, space-separated.
pub fn acceptor_set<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
    let mut names: Vec<&str> = names.into_iter().collect();
    names.sort_unstable();
    names.join(" ")
}

/// Why an acceptor refused a call before looking at the ballot (nothing was changed).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IdentityRefusal {
    #[error("no identity record (a new, wiped or replaced Redis)")]
    Missing,
    #[error("identity of cluster {cluster} acceptor {acceptor}, not this cluster's")]
    Foreign { cluster: String, acceptor: String },
    /// The node does not know its cluster's id yet (nothing was sent).
    #[error("the cluster is not initialised yet (no identity known)")]
    NotInitialised,
}

/// The admission check run first by every prepare and accept (inside the same script in
/// Redis): the standing an answer of an acceptor whose identity is `stored` counts with, for
/// a caller expecting cluster `cluster` and acceptor `acceptor`, while the acceptor's data
/// has the life `life`. A life names one unbroken history of the data (in Redis: the
/// process's run id and its count of wholesale data replacements, `life.lua`); a member
/// stamped under another life may have gone back in time (restarted from an old file,
/// restored from a snapshot) and counts as recovering until caught up. Only
/// [`Standing::Member`] or [`Standing::Recovering`] come out.
pub fn admit(
    stored: Option<&Identity>,
    cluster: &str,
    acceptor: &str,
    life: &str,
) -> Result<Standing, IdentityRefusal> {
    match stored {
        None => Err(IdentityRefusal::Missing),
        Some(id) if id.cluster != cluster || id.acceptor != acceptor => {
            Err(IdentityRefusal::Foreign {
                cluster: id.cluster.clone(),
                acceptor: id.acceptor.clone(),
            })
        }
        Some(id) if id.standing == Standing::Member && id.stamp == life => Ok(Standing::Member),
        Some(_) => Ok(Standing::Recovering),
    }
}

/// The ballots of a call must be exactly comparable in Lua (every part below 2^53); the
/// acceptors refuse any other call.
pub fn check_exact(ballots: &[Ballot]) -> Result<(), String> {
    match ballots.iter().find(|b| !is_exact(b)) {
        Some(b) => Err(format!("ballot {b} has a part beyond 2^53")),
        None => Ok(()),
    }
}

/// What one acceptor stores for one key.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Slot {
    /// The highest ballot this acceptor promised not to go below.
    pub promise: Ballot,
    /// The ballot of the last accepted value (zero if none).
    pub accepted: Ballot,
    /// The accepted value (`None`: no value, the key does not exist).
    pub value: Option<String>,
}

/// Answer to a prepare.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PrepareReply {
    /// Promised: here is the last accepted ballot and value.
    Promised {
        accepted: Ballot,
        value: Option<String>,
    },
    /// Refused: this ballot beat the request.
    Conflict(Ballot),
}

/// Answer to a read (for quorum reads): the last accepted ballot and value. A read promises
/// nothing and changes nothing, so it is never refused for its ballot (it has none).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadReply {
    pub accepted: Ballot,
    pub value: Option<String>,
}

/// Answer to an accept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AcceptReply {
    Accepted,
    Conflict(Ballot),
}

/// The ballot a refusal reports: the higher of the promise and the accepted ballot.
fn beaten_by(slot: &Slot) -> Ballot {
    slot.promise.max(slot.accepted)
}

/// prepare(ballot): promise `ballot` if it is above both the promise and the accepted ballot.
pub fn prepare(slot: &mut Slot, ballot: Ballot) -> PrepareReply {
    if ballot > slot.promise && ballot > slot.accepted {
        slot.promise = ballot;
        PrepareReply::Promised {
            accepted: slot.accepted,
            value: slot.value.clone(),
        }
    } else {
        PrepareReply::Conflict(beaten_by(slot))
    }
}

/// read(): the accepted ballot and value, and nothing else: no promise is made, nothing is
/// written (a slot that does not exist reads as the zero ballot and no value).
pub fn read(slot: Option<&Slot>) -> ReadReply {
    slot.map_or(
        ReadReply {
            accepted: Ballot::ZERO,
            value: None,
        },
        |slot| ReadReply {
            accepted: slot.accepted,
            value: slot.value.clone(),
        },
    )
}

/// accept(ballot, value, next_promise): store the value if `ballot` is not below the promise
/// and above the accepted ballot, then promise `next_promise` (the proposer's next ballot, for
/// the one-round-trip path). `next_promise` must be above `ballot`; the caller guarantees it.
pub fn accept(
    slot: &mut Slot,
    ballot: Ballot,
    value: Option<String>,
    next_promise: Ballot,
) -> AcceptReply {
    if ballot >= slot.promise && ballot > slot.accepted {
        slot.accepted = ballot;
        slot.value = value;
        slot.promise = next_promise.max(ballot);
        AcceptReply::Accepted
    } else {
        AcceptReply::Conflict(beaten_by(slot))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(c: u64) -> Ballot {
        Ballot::new(c, 1, 1)
    }

    #[test]
    fn prepare_promises_only_higher_ballots() {
        let mut slot = Slot::default();
        assert_eq!(
            prepare(&mut slot, b(2)),
            PrepareReply::Promised {
                accepted: Ballot::ZERO,
                value: None
            }
        );
        assert_eq!(prepare(&mut slot, b(2)), PrepareReply::Conflict(b(2)));
        assert_eq!(prepare(&mut slot, b(1)), PrepareReply::Conflict(b(2)));
        assert_eq!(slot.promise, b(2));
    }

    #[test]
    fn accept_at_the_promise_and_sets_next_promise() {
        let mut slot = Slot::default();
        prepare(&mut slot, b(2));
        assert_eq!(
            accept(&mut slot, b(2), Some("x".into()), b(3)),
            AcceptReply::Accepted
        );
        assert_eq!(slot.accepted, b(2));
        assert_eq!(slot.promise, b(3));
        // One round trip: the next ballot is accepted without a prepare.
        assert_eq!(
            accept(&mut slot, b(3), Some("y".into()), b(4)),
            AcceptReply::Accepted
        );
        // The same ballot twice is refused: one value per ballot.
        assert_eq!(
            accept(&mut slot, b(3), Some("z".into()), b(5)),
            AcceptReply::Conflict(b(4))
        );
        assert_eq!(slot.value.as_deref(), Some("y"));
    }

    #[test]
    fn accept_below_the_promise_is_refused() {
        let mut slot = Slot::default();
        prepare(&mut slot, b(5));
        assert_eq!(
            accept(&mut slot, b(4), Some("x".into()), b(6)),
            AcceptReply::Conflict(b(5))
        );
        assert_eq!(slot.value, None);
    }

    #[test]
    fn read_reports_the_accepted_value_and_changes_nothing() {
        assert_eq!(
            read(None),
            ReadReply {
                accepted: Ballot::ZERO,
                value: None
            }
        );
        let mut slot = Slot::default();
        prepare(&mut slot, b(2));
        accept(&mut slot, b(2), Some("x".into()), b(3));
        let before = slot.clone();
        assert_eq!(
            read(Some(&slot)),
            ReadReply {
                accepted: b(2),
                value: Some("x".into())
            }
        );
        assert_eq!(slot, before);
    }

    #[test]
    fn prepare_at_or_below_the_accepted_ballot_is_refused() {
        let mut slot = Slot::default();
        accept(&mut slot, b(5), Some("x".into()), b(5));
        assert_eq!(prepare(&mut slot, b(5)), PrepareReply::Conflict(b(5)));
    }
}
