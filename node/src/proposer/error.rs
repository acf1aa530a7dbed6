//! Why a change did not complete: the failed phase and the quorum failure, and whether the
//! write may still have taken effect (`effect_possible`) or was proved not applied
//! (`resolved`). The HTTP layer turns these into etcd-style errors and outcomes.

use crate::quorum::Failure;

/// Which phase of a change failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Prepare,
    Accept,
}

/// Why a change did not complete.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProposerError {
    #[error("{phase:?} failed: {failure}{}", resolved_note(.resolved))]
    NoQuorum {
        phase: Phase,
        failure: Failure,
        /// The failed accept carried a new state, which may have reached some acceptors and
        /// may still be chosen later: the change's outcome is unknown. False after a failed
        /// prepare, an accept of the unchanged state (a read or a refusal), or a write a
        /// follow-up read proved not applied.
        effect_possible: bool,
        /// A follow-up read proved the write not applied (and no retry fitted in the
        /// deadline).
        resolved: bool,
    },
    /// The request waited behind earlier changes of the same key until its deadline;
    /// nothing was sent.
    #[error("waited behind other changes of the key until the request deadline; nothing was sent")]
    Queued,
}

fn resolved_note(resolved: &bool) -> &'static str {
    if *resolved {
        "; a follow-up read proved the write not applied"
    } else {
        ""
    }
}

impl ProposerError {
    /// The phase that failed (`None`: no phase ran).
    pub fn phase(&self) -> Option<Phase> {
        match self {
            ProposerError::NoQuorum { phase, .. } => Some(*phase),
            ProposerError::Queued => None,
        }
    }

    pub fn failure(&self) -> Option<&Failure> {
        match self {
            ProposerError::NoQuorum { failure, .. } => Some(failure),
            ProposerError::Queued => None,
        }
    }

    /// True if an acceptor refused because of a higher ballot.
    pub fn lost_race(&self) -> bool {
        self.failure().is_some_and(|f| f.conflict.is_some())
    }

    /// True if every acceptor answered with a refusal (so nothing was stored anywhere).
    pub fn all_refused(&self) -> bool {
        self.failure().is_some_and(Failure::all_refused)
    }

    /// True if the change may have taken effect.
    pub fn outcome_unknown(&self) -> bool {
        match self {
            ProposerError::NoQuorum {
                effect_possible, ..
            } => *effect_possible,
            ProposerError::Queued => false,
        }
    }

    /// Marks a failed accept that every acceptor refused as without effect.
    pub(super) fn stored_nowhere(&mut self) {
        if let ProposerError::NoQuorum {
            effect_possible, ..
        } = self
        {
            *effect_possible = false;
        }
    }

    /// Marks a write of unknown outcome as proved not applied.
    pub(super) fn proved_not_applied(&mut self) {
        if let ProposerError::NoQuorum {
            effect_possible,
            resolved,
            ..
        } = self
        {
            *effect_possible = false;
            *resolved = true;
        }
    }
}
