//! The outcome of a write whose accept did not reach a quorum: a follow-up read round
//! chooses the key's state on a majority, and [`judge`] tells from it whether the write was
//! applied, was not applied (and never will be), or cannot be told. The argument is in
//! docs/design-proposer.md.

use tokio::time::Instant;

use super::{Proposer, ProposerError, UnsafeControl};
use crate::ballot::Ballot;

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
    /// The chosen state is our write.
    Applied,
    /// The chosen state proves our write was not chosen and never will be.
    NotApplied,
    /// Neither can be proved.
    Unknown,
}

/// Judges a write of unknown outcome: `base` is the state it was computed from, `ours` the
/// state it tried to write, `chosen` the state a follow-up round CHOSE (accepted on a
/// majority under a ballot above our accept's; a state merely seen by a prepare proves
/// nothing). States carry a unique write id, so equal text is the same write.
///
/// Our write sits at version v(base)+1. Versions grow by one per write along the chosen
/// chain, and once a state is chosen every higher ballot carries it or a descendant. So a
/// chosen state below our version, or another state at our version, means ours never was
/// and never will be chosen. A chosen state above our version may descend from ours or
/// not: unknown.
pub fn judge(
    version: fn(&str) -> Option<u64>,
    base: Option<&str>,
    ours: Option<&str>,
    chosen: Option<&str>,
) -> Verdict {
    if chosen == ours {
        return Verdict::Applied;
    }
    let v = |state: Option<&str>| state.map_or(Some(0), version);
    match (v(base), v(ours), v(chosen)) {
        (Some(b), Some(o), Some(c)) if o == b + 1 && c <= o => Verdict::NotApplied,
        _ => Verdict::Unknown,
    }
}

impl Proposer {
    /// Resolves an accept of unknown outcome: follow-up read rounds (each a prepare and an
    /// accept of the state read, so that state is CHOSEN on a majority) until one succeeds or
    /// the deadline passes. `Ok(before)` if the chosen state is our write (applied, computed
    /// from `before`), else the verdict.
    pub(super) async fn resolve(
        &self,
        key: &str,
        failed: &FailedAttempt,
        deadline: Instant,
    ) -> Result<Option<String>, Verdict> {
        let Some(ours) = &failed.after else {
            return Err(Verdict::Unknown);
        };
        let mut tries = 0u32;
        loop {
            let chosen = if self.control(UnsafeControl::ResolveFromPrepare) {
                self.prepare(key).await.map(|(_, state)| state)
            } else {
                self.read_round(key).await
            };
            match chosen {
                Ok(chosen) => {
                    let verdict = if self.control(UnsafeControl::NotAppliedOnForeignState) {
                        if chosen == *ours {
                            Verdict::Applied
                        } else {
                            Verdict::NotApplied
                        }
                    } else {
                        judge(
                            self.version,
                            failed.before.as_deref(),
                            ours.as_deref(),
                            chosen.as_deref(),
                        )
                    };
                    log::debug!("{key}: write of unknown outcome resolved: {verdict:?}");
                    return match verdict {
                        Verdict::Applied => Ok(failed.before.clone()),
                        other => Err(other),
                    };
                }
                Err(e) => {
                    tries += 1;
                    let pause = self.backoff(tries);
                    if Instant::now() + pause >= deadline {
                        log::debug!("{key}: outcome unresolved by the deadline: {e}");
                        return Err(Verdict::Unknown);
                    }
                    tokio::time::sleep(pause).await;
                }
            }
        }
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
