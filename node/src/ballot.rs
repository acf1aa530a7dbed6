//! Ballots: the totally ordered numbers that CASPaxos proposers compete with.
//!
//! A ballot is `(counter, proposer, incarnation)`, compared in that order. `proposer` is the
//! configured proposer id; `incarnation` is drawn at random when the proposer process starts,
//! so a restarted proposer never reuses a ballot it may have sent before its crash (the
//! counter restarts from zero, the incarnation does not repeat). The zero ballot means
//! "nothing promised / nothing accepted" and is never issued by a proposer.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

/// One CASPaxos ballot. The derived ordering compares the fields in declaration order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ballot {
    pub counter: u64,
    pub proposer: u64,
    pub incarnation: u64,
}

impl Ballot {
    /// The ballot below every issued ballot.
    pub const ZERO: Ballot = Ballot {
        counter: 0,
        proposer: 0,
        incarnation: 0,
    };

    pub fn new(counter: u64, proposer: u64, incarnation: u64) -> Self {
        Ballot {
            counter,
            proposer,
            incarnation,
        }
    }

    pub fn is_zero(&self) -> bool {
        *self == Ballot::ZERO
    }
}

impl fmt::Display for Ballot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.counter, self.proposer, self.incarnation)
    }
}

/// Issues the ballots of one proposer incarnation: strictly increasing, never repeated,
/// and fast-forwarded past any ballot seen in a conflict.
#[derive(Debug)]
pub struct BallotSource {
    proposer: u64,
    incarnation: u64,
    counter: AtomicU64,
}

/// Lua numbers are doubles: counters must stay exactly representable in the acceptors.
pub const MAX_COUNTER: u64 = (1 << 53) - 1;

impl BallotSource {
    /// A source whose counter starts at zero (tests and the simulation).
    pub fn new(proposer: u64, incarnation: u64) -> Self {
        Self::starting_at(proposer, incarnation, 0)
    }

    /// A source whose counter starts at `counter`. A node starts it at the wall clock in
    /// microseconds, so a restarted node begins past the ballots it sent before (the random
    /// incarnation is the guarantee; this makes collisions need a clock gone backwards too).
    pub fn starting_at(proposer: u64, incarnation: u64, counter: u64) -> Self {
        BallotSource {
            proposer,
            incarnation,
            counter: AtomicU64::new(counter.min(MAX_COUNTER / 2)),
        }
    }

    pub fn proposer(&self) -> u64 {
        self.proposer
    }

    pub fn incarnation(&self) -> u64 {
        self.incarnation
    }

    /// A ballot never issued before by this source.
    pub fn next(&self) -> Ballot {
        let counter = self.counter.fetch_add(1, Ordering::SeqCst) + 1;
        Ballot::new(counter, self.proposer, self.incarnation)
    }

    /// Makes every later ballot greater than `seen`.
    pub fn fast_forward(&self, seen: Ballot) {
        self.counter.fetch_max(seen.counter, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordering_is_counter_then_proposer_then_incarnation() {
        assert!(Ballot::new(2, 1, 1) > Ballot::new(1, 9, 9));
        assert!(Ballot::new(1, 2, 0) > Ballot::new(1, 1, 9));
        assert!(Ballot::new(1, 1, 2) > Ballot::new(1, 1, 1));
        assert_eq!(Ballot::new(1, 1, 1), Ballot::new(1, 1, 1));
        assert!(Ballot::ZERO < Ballot::new(1, 0, 0));
    }

    #[test]
    fn source_issues_increasing_unique_ballots() {
        let source = BallotSource::new(3, 7);
        let a = source.next();
        let b = source.next();
        assert!(b > a);
        assert_eq!(a.proposer, 3);
        assert_eq!(a.incarnation, 7);
    }

    #[test]
    fn fast_forward_moves_past_the_seen_ballot() {
        let source = BallotSource::new(1, 1);
        let seen = Ballot::new(41, 9, 9);
        source.fast_forward(seen);
        assert!(source.next() > seen);
        // Never moves backwards.
        source.fast_forward(Ballot::new(3, 9, 9));
        assert!(source.next().counter > 42);
    }

    #[test]
    fn restarted_proposer_never_repeats_a_ballot() {
        let before = BallotSource::new(1, 100);
        let after = BallotSource::new(1, 101);
        assert_ne!(before.next(), after.next());
    }
}
