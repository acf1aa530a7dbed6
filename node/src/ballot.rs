//! Ballots: the totally ordered numbers that CASPaxos proposers compete with.
//!
//! A ballot is `(counter, proposer, incarnation)`, compared in that order. `proposer` is the
//! configured proposer id; `incarnation` is drawn at random (52 bits) when the proposer process
//! starts, so a restarted proposer never reuses a ballot it may have sent before its crash.
//! The acceptors compare ballot parts as Lua numbers (doubles), exact only below 2^53: every
//! part stays at or below [`MAX_COUNTER`] (the incarnation by construction, the counter by
//! [`BallotSource`], which never issues a counter beyond it, and the acceptors refuse any
//! ballot with a larger part). The zero ballot means "nothing promised / nothing accepted" and
//! is never issued by a proposer.

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

/// Lua numbers are doubles: every ballot part must stay exactly representable in the
/// acceptors (2^53 - 1).
pub const MAX_COUNTER: u64 = (1 << 53) - 1;

/// Random bits of an incarnation: as many as a double holds exactly, less one, so that an
/// incarnation is always below [`MAX_COUNTER`]. A repeat after a restart needs a 1 in 2^52
/// draw (and a counter that also lands on the same values).
pub const INCARNATION_BITS: u32 = 52;

/// A fresh random incarnation of `INCARNATION_BITS` bits (never zero).
pub fn random_incarnation() -> u64 {
    (rand::random::<u64>() >> (64 - INCARNATION_BITS)).max(1)
}

/// True when every part of the ballot is exactly representable in the acceptors' Lua.
pub fn is_exact(ballot: &Ballot) -> bool {
    ballot.counter <= MAX_COUNTER
        && ballot.proposer <= MAX_COUNTER
        && ballot.incarnation <= MAX_COUNTER
}

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

    /// A ballot never issued before by this source. Past [`MAX_COUNTER`] the counter stops at
    /// `MAX_COUNTER + 1`: such a ballot is refused by every acceptor (it cannot be compared
    /// exactly), so the proposer fails its changes instead of risking two values under one
    /// ballot. Reaching it takes 2^53 ballots, or an acceptor holding a ballot at the limit.
    pub fn next(&self) -> Ballot {
        let previous = self
            .counter
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |c| {
                Some(c.saturating_add(1).min(MAX_COUNTER + 1))
            })
            .unwrap_or(MAX_COUNTER);
        let counter = previous.saturating_add(1).min(MAX_COUNTER + 1);
        if counter > MAX_COUNTER {
            log::error!(
                "proposer {}: ballot counter exhausted (2^53): every change will fail",
                self.proposer
            );
        }
        Ballot::new(counter, self.proposer, self.incarnation)
    }

    /// Makes every later ballot greater than `seen` (clamped to the exact range: a ballot
    /// beyond it cannot come from an acceptor, which refuses such ballots).
    pub fn fast_forward(&self, seen: Ballot) {
        self.counter
            .fetch_max(seen.counter.min(MAX_COUNTER), Ordering::SeqCst);
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
    fn counters_never_pass_the_exact_range() {
        let source = BallotSource::new(1, 1);
        source.fast_forward(Ballot::new(u64::MAX, 1, 1));
        let a = source.next();
        assert_eq!(a.counter, MAX_COUNTER + 1);
        assert!(!is_exact(&a));
        // Saturates: never wraps back to small (already used) counters.
        assert_eq!(source.next().counter, MAX_COUNTER + 1);
        let source = BallotSource::starting_at(1, 1, MAX_COUNTER - 1);
        source.fast_forward(Ballot::new(MAX_COUNTER - 1, 1, 1));
        assert!(is_exact(&source.next()));
    }

    #[test]
    fn incarnations_fill_52_bits_and_stay_exact() {
        let drawn: Vec<u64> = (0..64).map(|_| random_incarnation()).collect();
        assert!(drawn
            .iter()
            .all(|i| *i >= 1 && *i < (1 << INCARNATION_BITS)));
        // With 52 random bits, 64 draws all below 2^32 would be a broken generator.
        assert!(drawn.iter().any(|i| *i >= 1 << 32));
    }

    #[test]
    fn restarted_proposer_never_repeats_a_ballot() {
        let before = BallotSource::new(1, 100);
        let after = BallotSource::new(1, 101);
        assert_ne!(before.next(), after.next());
    }
}
