//! The acceptor's rules, as pure functions over one key's state.
//!
//! This is the single statement of what an acceptor does. The Redis Lua scripts
//! (`prepare.lua`, `accept.lua`) implement exactly these rules inside Redis, the in-memory
//! acceptor runs them directly, and a test checks that the two agree on a table of cases.

use crate::ballot::Ballot;

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
    fn prepare_at_or_below_the_accepted_ballot_is_refused() {
        let mut slot = Slot::default();
        accept(&mut slot, b(5), Some("x".into()), b(5));
        assert_eq!(prepare(&mut slot, b(5)), PrepareReply::Conflict(b(5)));
    }
}
