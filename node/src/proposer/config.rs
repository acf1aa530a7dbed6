//! A proposer's settings, and the negative controls: deliberately unsafe variants of the
//! proposer that exist only in builds with the `sim-controls` feature, so that the
//! simulation can show its checks catch them. [`Proposer::control`] is their one hook.

use std::time::Duration;

use super::Proposer;

/// NEGATIVE CONTROLS, for the simulation only: deliberately unsafe variants the simulation
/// must catch. They take effect only in a build with the cargo feature `sim-controls` (enabled
/// by the node's own tests, never by the binary), through [`Proposer::control`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnsafeControl {
    /// An accept that fails without a conflict reply keeps its ballot cached, so a later
    /// change sends a different value under the same ballot (the 2018 Gryadka bug).
    KeepCacheAfterFailedAccept,
    /// A change whose accept had an unknown outcome is retried at once, re-applied to what a
    /// new prepare reads, without resolving the outcome first.
    RetryAfterUnknownOutcome,
    /// Outcome resolution declares "not applied" on any chosen state that is not ours,
    /// without checking its version against ours.
    NotAppliedOnForeignState,
    /// Outcome resolution trusts the state a prepare read (possibly held by a minority)
    /// instead of the state its own follow-up accept chose on a majority.
    ResolveFromPrepare,
    /// A quorum read returns the state with the highest accepted ballot among the first
    /// quorum of answers, whether or not they agree (a state possibly held by one acceptor).
    QuorumReadWithoutAgreement,
    /// A thrifty accept that every acceptor it asked at once refused is judged stored
    /// nowhere without hearing the others, whose calls the hedge delay may already have
    /// released, or still will: the "stored nowhere" write may be accepted by one of them.
    /// (At 1bd9f8e, even with the held calls cancelled at the decision instead, it was
    /// caught in about as many seeds: the hedge delay often released them before the
    /// refusals arrived.)
    ThriftyRefusalWithHeldCalls,
    /// Outcome resolution declares "applied" on any chosen state past our write's version,
    /// without checking that the chosen state was built upon our write.
    AppliedPastOurVersion,
    /// Outcome resolution declares "not applied" on a chosen state below our write's
    /// version whatever its ballot, as if it had been chosen above our accept's (a quorum
    /// read may find one chosen below it: our write may still be chosen after).
    NotAppliedBelowOurBallot,
}

/// Settings of a proposer.
#[derive(Clone, Debug)]
pub struct ProposerConfig {
    pub id: u64,
    pub quorum: usize,
    /// Bound of every acceptor call.
    pub timeout: Duration,
    /// The time a change may spend: no new round starts after it (a round already started
    /// ends within two acceptor timeouts plus two hedge delays, and the first follow-up read
    /// of an unknown outcome still runs: at most four of each past it).
    pub deadline: Duration,
    /// Budget of the one-round-trip cache: keys and cached states, in bytes.
    pub cache_bytes: usize,
    /// Reads try a quorum read first (no promise, no write; see [`Proposer::read`]).
    pub quorum_reads: bool,
    /// Every phase asks only a quorum of acceptors first (see [`super::fanout::Fanout`]).
    pub thrifty: bool,
    /// How long a thrifty phase waits for a decision before it asks the other acceptors too.
    pub hedge: Duration,
    /// First backoff pause after a lost race; doubles with every further loss.
    pub backoff_base: Duration,
    /// Longest backoff pause.
    pub backoff_cap: Duration,
    /// Seeds the backoff jitter (the simulation sets it so that a seed replays).
    pub jitter_seed: u64,
    /// The lineage of a state: its version, which grows by one with every change that
    /// writes, its write id and the ids of the writes it was built upon, so that a follow-up
    /// read can prove a write of unknown outcome applied or not applied (see
    /// [`super::judge`]). `None`: not a state this proposer understands (nothing is proved).
    pub lineage: fn(&str) -> Option<crate::record::Lineage>,
    /// See [`UnsafeControl`]; only in builds with the `sim-controls` feature.
    #[cfg(feature = "sim-controls")]
    pub unsafe_control: Option<UnsafeControl>,
}

impl Default for ProposerConfig {
    fn default() -> Self {
        ProposerConfig {
            id: 1,
            quorum: 2,
            timeout: Duration::from_millis(300),
            deadline: Duration::from_millis(1000),
            cache_bytes: 64 << 20,
            quorum_reads: true,
            thrifty: true,
            hedge: Duration::from_millis(10),
            backoff_base: Duration::from_millis(1),
            backoff_cap: Duration::from_millis(64),
            jitter_seed: 0,
            lineage: crate::record::lineage,
            #[cfg(feature = "sim-controls")]
            unsafe_control: None,
        }
    }
}

impl Proposer {
    /// THE hook of the negative controls: always false unless built with `sim-controls`
    /// and configured with `which`.
    #[inline]
    pub(super) fn control(&self, which: UnsafeControl) -> bool {
        #[cfg(feature = "sim-controls")]
        {
            self.unsafe_control == Some(which)
        }
        #[cfg(not(feature = "sim-controls"))]
        {
            let _ = which;
            false
        }
    }
}
