//! Counting acceptor answers for one phase until a quorum is reached or cannot be, and
//! counting a quorum read's answers until a quorum agrees or cannot.
//!
//! Pure logic, separate from the I/O: the proposer feeds each answer in as it arrives and
//! stops at the first decision, never waiting for the answers it does not need.

use std::fmt;

use crate::acceptor::{AcceptorError, ReadReply};
use crate::ballot::Ballot;

/// One acceptor's answer to one phase, reduced to what the count needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer<T> {
    /// The acceptor did what was asked (promised / accepted).
    Yes(T),
    /// The acceptor refused because of a higher ballot.
    Conflict(Ballot),
    /// No usable answer (timeout, lost connection, bad reply, a recovering acceptor).
    Failed(AcceptorError),
}

/// What went wrong with one acceptor that did not say yes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The acceptor's name.
    pub acceptor: String,
    pub kind: ProblemKind,
}

/// Why one acceptor did not say yes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProblemKind {
    /// It refused: it had promised or accepted this higher ballot.
    Conflict(Ballot),
    /// It gave no usable answer.
    Failed(AcceptorError),
}

/// Several acceptors' problems, shown as one line.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Problems(pub Vec<Problem>);

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.0.iter().enumerate() {
            write!(f, "{}{problem}", if i == 0 { "" } else { "; " })?;
        }
        Ok(())
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ProblemKind::Conflict(ballot) => {
                write!(f, "{}: conflict with {ballot}", self.acceptor)
            }
            ProblemKind::Failed(error) => write!(f, "{}: {error}", self.acceptor),
        }
    }
}

/// Where the count stands.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision<T> {
    Pending,
    /// A quorum said yes; these are their answers (exactly `quorum` of them).
    Quorum(Vec<T>),
    /// A quorum can no longer be reached.
    NoQuorum(Failure),
}

/// Why a phase could not reach a quorum.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub yes: usize,
    pub total: usize,
    pub quorum: usize,
    /// The highest ballot seen in a conflict, if any acceptor refused.
    pub conflict: Option<Ballot>,
    /// How many acceptors refused with a conflict.
    pub refused: usize,
    /// What went wrong with each acceptor that did not say yes.
    pub problems: Vec<Problem>,
}

impl Failure {
    /// Every acceptor answered, and every one refused.
    pub fn all_refused(&self) -> bool {
        self.refused == self.total
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} of {} acceptors answered (quorum {})",
            self.yes, self.total, self.quorum
        )?;
        if let Some(ballot) = self.conflict {
            write!(f, ", lost a ballot race to {ballot}")?;
        }
        for (i, problem) in self.problems.iter().enumerate() {
            write!(f, "{}{problem}", if i == 0 { ": " } else { "; " })?;
        }
        Ok(())
    }
}

/// The running count for one phase.
#[derive(Debug)]
pub struct Tally<T> {
    total: usize,
    quorum: usize,
    yes: Vec<T>,
    conflict: Option<Ballot>,
    refused: usize,
    problems: Vec<Problem>,
}

impl<T> Tally<T> {
    pub fn new(total: usize, quorum: usize) -> Self {
        Tally {
            total,
            quorum,
            yes: Vec::with_capacity(quorum),
            conflict: None,
            refused: 0,
            problems: Vec::new(),
        }
    }

    /// The highest conflicting ballot seen so far.
    pub fn conflict(&self) -> Option<Ballot> {
        self.conflict
    }

    /// Records one answer (`who` names the acceptor) and says whether the phase is decided.
    pub fn add(&mut self, who: &str, answer: Answer<T>) -> Decision<T> {
        let kind = match answer {
            Answer::Yes(t) => {
                self.yes.push(t);
                return self.decision();
            }
            Answer::Conflict(ballot) => {
                self.conflict = self.conflict.max(Some(ballot));
                self.refused += 1;
                ProblemKind::Conflict(ballot)
            }
            Answer::Failed(error) => ProblemKind::Failed(error),
        };
        self.problems.push(Problem {
            acceptor: who.to_string(),
            kind,
        });
        self.decision()
    }

    fn decision(&mut self) -> Decision<T> {
        let answered = self.yes.len() + self.problems.len();
        if self.yes.len() >= self.quorum {
            Decision::Quorum(std::mem::take(&mut self.yes))
        } else if self.yes.len() + (self.total - answered) < self.quorum {
            Decision::NoQuorum(self.failure())
        } else {
            Decision::Pending
        }
    }

    /// The failure as it stands (used when answers stop arriving).
    pub fn failure(&self) -> Failure {
        Failure {
            yes: self.yes.len(),
            total: self.total,
            quorum: self.quorum,
            conflict: self.conflict,
            refused: self.refused,
            problems: self.problems.clone(),
        }
    }
}

/// Where a quorum read's count stands.
#[derive(Debug, PartialEq, Eq)]
pub enum Agreed {
    Pending,
    /// A quorum of acceptors answered with this accepted ballot and value: it is chosen.
    Chosen(ReadReply),
    /// No accepted ballot can gather a quorum of answers any more.
    Never,
}

/// The running count of a quorum read: answers grouped by accepted ballot and value. Two
/// quorums intersect, so at most one group can ever reach a quorum.
#[derive(Debug)]
pub struct Agreement {
    total: usize,
    quorum: usize,
    answered: usize,
    /// Each distinct answer with the number of acceptors that gave it.
    groups: Vec<(ReadReply, usize)>,
}

impl Agreement {
    pub fn new(total: usize, quorum: usize) -> Self {
        Agreement {
            total,
            quorum,
            answered: 0,
            groups: Vec::with_capacity(total),
        }
    }

    /// Records one acceptor's answer (`None`: no usable answer) and says whether the read is
    /// decided. The ballot AND the value must match: one ballot never carries two values, and
    /// comparing the value costs nothing next to the round trip.
    pub fn add(&mut self, reply: Option<ReadReply>) -> Agreed {
        self.answered += 1;
        if let Some(reply) = reply {
            match self.groups.iter_mut().find(|(seen, _)| *seen == reply) {
                Some((_, count)) => *count += 1,
                None => self.groups.push((reply, 1)),
            }
        }
        if let Some(at) = self.groups.iter().position(|(_, n)| *n >= self.quorum) {
            return Agreed::Chosen(self.groups.swap_remove(at).0);
        }
        let largest = self.groups.iter().map(|(_, n)| *n).max().unwrap_or(0);
        if largest + self.total.saturating_sub(self.answered) < self.quorum {
            Agreed::Never
        } else {
            Agreed::Pending
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(counter: u64, value: &str) -> Option<ReadReply> {
        Some(ReadReply {
            accepted: Ballot::new(counter, 1, 1),
            value: Some(value.into()),
        })
    }

    #[test]
    fn a_quorum_read_is_chosen_when_a_quorum_agrees() {
        let mut agreement = Agreement::new(3, 2);
        assert_eq!(agreement.add(read(4, "a")), Agreed::Pending);
        assert_eq!(
            agreement.add(read(4, "a")),
            Agreed::Chosen(read(4, "a").expect("a reply"))
        );
    }

    #[test]
    fn a_split_quorum_read_waits_for_the_third_answer() {
        // A write in flight reached one acceptor: the other two still agree.
        let mut agreement = Agreement::new(3, 2);
        assert_eq!(agreement.add(read(5, "new")), Agreed::Pending);
        assert_eq!(agreement.add(read(4, "old")), Agreed::Pending);
        assert_eq!(
            agreement.add(read(4, "old")),
            Agreed::Chosen(read(4, "old").expect("a reply"))
        );
        // Three different answers, or a failure after a split: no agreement.
        let mut agreement = Agreement::new(3, 2);
        agreement.add(read(5, "new"));
        agreement.add(read(4, "old"));
        assert_eq!(agreement.add(read(3, "older")), Agreed::Never);
        let mut agreement = Agreement::new(3, 2);
        agreement.add(read(5, "new"));
        assert_eq!(agreement.add(None), Agreed::Pending);
        assert_eq!(agreement.add(read(4, "old")), Agreed::Never);
    }

    #[test]
    fn a_quorum_read_needs_the_same_value_and_a_quorum_of_answers() {
        let mut agreement = Agreement::new(3, 2);
        agreement.add(read(4, "a"));
        assert_eq!(agreement.add(read(4, "b")), Agreed::Pending);
        assert_eq!(agreement.add(None), Agreed::Never);
        let mut agreement = Agreement::new(3, 2);
        assert_eq!(agreement.add(None), Agreed::Pending);
        assert_eq!(agreement.add(None), Agreed::Never);
        // A key nobody wrote: the zero ballot, agreed, is an answer too.
        let nothing = ReadReply {
            accepted: Ballot::ZERO,
            value: None,
        };
        let mut agreement = Agreement::new(3, 2);
        agreement.add(Some(nothing.clone()));
        assert_eq!(
            agreement.add(Some(nothing.clone())),
            Agreed::Chosen(nothing)
        );
    }

    #[test]
    fn decides_on_the_first_quorum_without_the_third_answer() {
        let mut tally = Tally::new(3, 2);
        assert_eq!(tally.add("a1", Answer::Yes(1)), Decision::Pending);
        assert_eq!(
            tally.add("a2", Answer::Yes(2)),
            Decision::Quorum(vec![1, 2])
        );
    }

    #[test]
    fn one_failure_still_allows_a_quorum() {
        let mut tally = Tally::new(3, 2);
        assert_eq!(
            tally.add("a1", Answer::Failed(AcceptorError::Timeout)),
            Decision::Pending
        );
        assert_eq!(tally.add("a2", Answer::Yes(2)), Decision::Pending);
        assert_eq!(
            tally.add("a3", Answer::Yes(3)),
            Decision::Quorum(vec![2, 3])
        );
    }

    /// The same value under different ballots is not agreement. A history where it would be
    /// wrong (all acceptors start at (b0, u)): P prepares b1 on a1, a2; X prepares b1.5 on a2,
    /// a3 and its accept (b1.5, w) lands on a3 only; P's accept (b1, v) lands on a1 only; Q
    /// prepares b2 on a1, a2, sees v and its accept (b2, v) lands on a2 only; R prepares b5 on
    /// a1, a3, picks w (b1.5 is the highest it saw) and accepts (b5, w) on a3. A read now sees
    /// a1 (b1, v), a2 (b2, v), a3 (b5, w), and v was never chosen: once R's accept reaches
    /// a1, w is. Grouping the answers by value alone would return v.
    #[test]
    fn the_same_value_under_two_ballots_is_not_agreement() {
        let at = |counter, proposer, value: &str| {
            Some(ReadReply {
                accepted: Ballot::new(counter, proposer, 1),
                value: Some(value.to_string()),
            })
        };
        let mut agreement = Agreement::new(3, 2);
        assert_eq!(agreement.add(at(1, 1, "v")), Agreed::Pending);
        assert_eq!(agreement.add(at(2, 3, "v")), Agreed::Pending);
        assert_eq!(agreement.add(at(5, 4, "w")), Agreed::Never);
    }

    #[test]
    fn gives_up_as_soon_as_a_quorum_is_impossible() {
        let mut tally: Tally<u8> = Tally::new(3, 2);
        assert_eq!(
            tally.add("a1", Answer::Failed(AcceptorError::Timeout)),
            Decision::Pending
        );
        match tally.add("a2", Answer::Conflict(Ballot::new(9, 2, 1))) {
            Decision::NoQuorum(failure) => {
                assert_eq!(failure.yes, 0);
                assert_eq!(failure.conflict, Some(Ballot::new(9, 2, 1)));
                let text = failure.to_string();
                assert!(text.starts_with("0 of 3 acceptors answered"), "{text}");
                assert!(text.contains("a1: timed out"), "{text}");
            }
            other => panic!("expected NoQuorum, got {other:?}"),
        }
    }

    #[test]
    fn all_refused_only_when_every_acceptor_refused() {
        let mut tally: Tally<u8> = Tally::new(3, 2);
        tally.add("a1", Answer::Conflict(Ballot::new(3, 1, 1)));
        tally.add("a2", Answer::Failed(AcceptorError::Timeout));
        assert!(!tally.failure().all_refused());
        let mut tally: Tally<u8> = Tally::new(3, 2);
        for who in ["a1", "a2", "a3"] {
            tally.add(who, Answer::Conflict(Ballot::new(3, 1, 1)));
        }
        assert!(tally.failure().all_refused());
    }

    #[test]
    fn keeps_the_highest_conflict() {
        let mut tally: Tally<u8> = Tally::new(5, 3);
        tally.add("a1", Answer::Conflict(Ballot::new(3, 1, 1)));
        tally.add("a2", Answer::Conflict(Ballot::new(7, 1, 1)));
        tally.add("a3", Answer::Conflict(Ballot::new(5, 1, 1)));
        assert_eq!(tally.conflict(), Some(Ballot::new(7, 1, 1)));
    }

    #[test]
    fn quorum_of_one_decides_on_the_first_yes() {
        let mut tally = Tally::new(3, 1);
        assert_eq!(tally.add("a1", Answer::Yes(())), Decision::Quorum(vec![()]));
    }
}
