//! The outcome of a write whose accept did not reach a quorum: a follow-up read finds a state
//! CHOSEN on a majority, and [`judge`] tells from that state's lineage whether the write was
//! applied (the chosen state is the write or was built upon it), was not applied and never
//! will be (another write holds its index in the chosen chain), or cannot be told. The
//! argument is in docs/design-proposer.md ("Resolving an unknown outcome").

use std::sync::atomic::{AtomicU64, Ordering};

use tokio::time::Instant;

use super::{Proposer, ProposerError, UnsafeControl};
use crate::ballot::Ballot;
use crate::record::Lineage;

/// A failed round, with what a resolution or a retry needs to know about it.
pub(super) struct FailedAttempt {
    pub(super) error: ProposerError,
    pub(super) ballot: Option<Ballot>,
    /// The state the change was computed from (after a failed accept).
    pub(super) before: Option<String>,
    /// The new state the failed accept carried, if it changed the state.
    pub(super) after: Option<Option<String>>,
}

/// What a follow-up round proved about a write whose accept had an unknown outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The chosen state is our write, or was built upon it.
    Applied,
    /// Another write holds our write's version in the chosen chain (or the chain, chosen
    /// above our ballot, is still below it): ours was not chosen and never will be.
    NotApplied,
    /// Neither can be proved, and why.
    Unknown(Unresolved),
}

/// Why a write's outcome stayed unknown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unresolved {
    /// No follow-up round chose a state before the deadline (acceptors down or slow, or
    /// every follow-up round lost its ballot race).
    NoChosenState,
    /// The chosen state is more writes past ours than its lineage names.
    PastLineage,
    /// The chosen state is below our version but chosen under a ballot below our accept's
    /// (a quorum read): our write may still be chosen. A read round follows.
    BelowOurBallot,
    /// The states carry no lineage (not records, or records of older nodes).
    NoLineage,
}

/// Judges a write of unknown outcome: `base` is the state it was computed from, `ours` the
/// state it tried to write, `chosen` a state CHOSEN (accepted by a majority under one
/// ballot; a state merely seen by a prepare proves nothing), `above` whether that ballot is
/// above our accept's. Every state names its write (unique per request) and the writes it
/// was built upon, so equal text is the same write.
///
/// Our write O sits at version o = v(base)+1. Chosen states form one chain: each later one
/// was built upon every earlier one, and the chain holds exactly one state per version. O
/// took effect iff it is in that chain, i.e. iff the chain's write at version o is O.
/// - The chosen state C at version c ≥ o names the chain's write at o (itself if c = o, else
///   its lineage if c − o ≤ its length): O's id there means applied, another id means not
///   applied, for ever (every later chosen state is built upon C, so has C's write at o).
/// - c < o: O is not chosen yet; if C was chosen above our ballot, no later ballot can
///   carry O (a prepare quorum sees C's ballot above ours), so not applied; otherwise O may
///   still be chosen: unknown.
pub fn judge(
    lineage: fn(&str) -> Option<Lineage>,
    base: Option<&str>,
    ours: Option<&str>,
    chosen: Option<&str>,
    above: bool,
) -> Verdict {
    if chosen == ours {
        return Verdict::Applied;
    }
    let of = |state: Option<&str>| state.map_or(Some(Lineage::default()), lineage);
    let (Some(b), Some(o), Some(c)) = (of(base), of(ours), of(chosen)) else {
        return Verdict::Unknown(Unresolved::NoLineage);
    };
    if o.version != b.version + 1 {
        return Verdict::Unknown(Unresolved::NoLineage);
    }
    if c.version < o.version {
        return if above {
            Verdict::NotApplied
        } else {
            Verdict::Unknown(Unresolved::BelowOurBallot)
        };
    }
    if c.version == o.version {
        // C itself holds version o, and C is not ours.
        return Verdict::NotApplied;
    }
    let Some(mine) = o.write.as_deref() else {
        return Verdict::Unknown(Unresolved::NoLineage);
    };
    match c.write_at(o.version) {
        Some(there) if there == mine => Verdict::Applied,
        Some(_) => Verdict::NotApplied,
        None => Verdict::Unknown(Unresolved::PastLineage),
    }
}

/// What the resolutions of writes of unknown outcome concluded so far, by cause (for
/// metrics and the contention measurement).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OutcomeCounts {
    /// Proved applied: the chosen state was the write itself.
    pub applied: u64,
    /// Proved applied: the chosen state was built upon the write.
    pub applied_built_upon: u64,
    /// Proved not applied (the change was then retried if the deadline allowed).
    pub not_applied: u64,
    /// Left unknown, by cause.
    pub unknown_no_chosen_state: u64,
    pub unknown_past_lineage: u64,
    pub unknown_no_lineage: u64,
}

/// The proposer's running [`OutcomeCounts`].
#[derive(Debug, Default)]
pub(super) struct Tallies {
    applied: AtomicU64,
    applied_built_upon: AtomicU64,
    not_applied: AtomicU64,
    unknown_no_chosen_state: AtomicU64,
    unknown_past_lineage: AtomicU64,
    unknown_no_lineage: AtomicU64,
}

impl Tallies {
    fn count(&self, verdict: Verdict, itself: bool) {
        let counter = match verdict {
            Verdict::Applied if itself => &self.applied,
            Verdict::Applied => &self.applied_built_upon,
            Verdict::NotApplied => &self.not_applied,
            Verdict::Unknown(Unresolved::PastLineage) => &self.unknown_past_lineage,
            Verdict::Unknown(Unresolved::NoLineage) => &self.unknown_no_lineage,
            Verdict::Unknown(Unresolved::NoChosenState | Unresolved::BelowOurBallot) => {
                &self.unknown_no_chosen_state
            }
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn snapshot(&self) -> OutcomeCounts {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        OutcomeCounts {
            applied: get(&self.applied),
            applied_built_upon: get(&self.applied_built_upon),
            not_applied: get(&self.not_applied),
            unknown_no_chosen_state: get(&self.unknown_no_chosen_state),
            unknown_past_lineage: get(&self.unknown_past_lineage),
            unknown_no_lineage: get(&self.unknown_no_lineage),
        }
    }
}

impl Proposer {
    /// What the resolutions of writes of unknown outcome concluded so far.
    pub fn outcome_counts(&self) -> OutcomeCounts {
        self.outcomes.snapshot()
    }

    /// Resolves an accept of unknown outcome. First a quorum read (no promise, no write, so
    /// it does not disturb the other writers of the key): a quorum agreeing on one accepted
    /// ballot is a chosen state. If that proves nothing, follow-up read rounds (each a
    /// prepare and an accept of the state read, so that state is CHOSEN on a majority,
    /// above our ballot) until one succeeds or the deadline passes. `Ok(before)` if our
    /// write took effect (computed from `before`), else the verdict.
    pub(super) async fn resolve(
        &self,
        key: &str,
        failed: &FailedAttempt,
        deadline: Instant,
    ) -> Result<Option<String>, Verdict> {
        let (verdict, itself) = self.resolution(key, failed, deadline).await;
        self.outcomes.count(verdict, itself);
        match verdict {
            Verdict::Applied => Ok(failed.before.clone()),
            Verdict::Unknown(cause) => {
                log::info!("{key}: a write's outcome stays unknown: {cause:?}");
                Err(verdict)
            }
            other => Err(other),
        }
    }

    /// The verdict of [`Proposer::resolve`], and whether the chosen state was our write itself.
    async fn resolution(
        &self,
        key: &str,
        failed: &FailedAttempt,
        deadline: Instant,
    ) -> (Verdict, bool) {
        let Some(ours) = &failed.after else {
            return (Verdict::Unknown(Unresolved::NoLineage), false);
        };
        let judge = |chosen: Option<&str>, above: bool| {
            let verdict =
                self.judge_controlled(failed.before.as_deref(), ours.as_deref(), chosen, above);
            (verdict, chosen == ours.as_deref())
        };
        if self.quorum_reads && !self.control(UnsafeControl::ResolveFromPrepare) {
            if let Some(reply) = self.quorum_read(key).await {
                let above = failed.ballot.is_some_and(|ours| reply.accepted > ours);
                let verdict = judge(reply.value.as_deref(), above);
                log::debug!("{key}: unknown outcome, quorum read: {:?}", verdict.0);
                if !matches!(verdict.0, Verdict::Unknown(_)) {
                    return verdict;
                }
            }
        }
        let mut tries = 0u32;
        loop {
            let chosen = if self.control(UnsafeControl::ResolveFromPrepare) {
                self.prepare(key).await.map(|(_, state)| state)
            } else {
                self.read_round(key).await
            };
            match chosen {
                Ok(chosen) => {
                    // A read round's ballot is drawn after our accept's: above it.
                    let verdict = judge(chosen.as_deref(), true);
                    log::debug!("{key}: unknown outcome, read round: {:?}", verdict.0);
                    return verdict;
                }
                Err(e) => {
                    tries += 1;
                    let pause = self.backoff(tries);
                    if Instant::now() + pause >= deadline {
                        log::debug!("{key}: outcome unresolved by the deadline: {e}");
                        return (Verdict::Unknown(Unresolved::NoChosenState), false);
                    }
                    tokio::time::sleep(pause).await;
                }
            }
        }
    }

    /// [`judge`], or the unsafe judgement a negative control asks for.
    fn judge_controlled(
        &self,
        base: Option<&str>,
        ours: Option<&str>,
        chosen: Option<&str>,
        above: bool,
    ) -> Verdict {
        if self.control(UnsafeControl::NotAppliedOnForeignState) {
            return if chosen == ours {
                Verdict::Applied
            } else {
                Verdict::NotApplied
            };
        }
        let above = above || self.control(UnsafeControl::NotAppliedBelowOurBallot);
        let verdict = judge(self.lineage, base, ours, chosen, above);
        if self.control(UnsafeControl::AppliedPastOurVersion) {
            let version = |s: Option<&str>| s.and_then(self.lineage).map(|l| l.version);
            if let (Some(o), Some(c)) = (version(ours), version(chosen)) {
                if c > o {
                    return Verdict::Applied;
                }
            }
        }
        verdict
    }

    /// One full read round (never the cache): the state it chose on a quorum.
    async fn read_round(&self, key: &str) -> Result<Option<String>, ProposerError> {
        let (ballot, before) = self.prepare(key).await?;
        let identity = |current: Option<&str>| Ok::<_, ()>(current.map(str::to_string));
        match self.attempt(key, ballot, before, &identity).await {
            Ok((change, next)) => {
                if let Some((next, state)) = next {
                    self.lock_cache().put(key, next, state);
                }
                Ok(change.before)
            }
            Err(failed) => Err(failed.error),
        }
    }
}
