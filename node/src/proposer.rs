//! The CASPaxos proposer: `change(key, f)` over a set of acceptors.
//!
//! A change prepares a fresh ballot on all acceptors, continues on the first quorum of
//! promises, takes the value with the highest accepted ballot, applies `f` and sends accept,
//! again continuing on the first quorum. Each accept also asks the acceptors to promise the
//! proposer's next ballot; after a successful accept the proposer caches that ballot and the
//! new state, and the next change of the key skips prepare (one round trip).
//!
//! Safety rules kept here (see docs/design.md): a cached ballot is used for exactly one accept and
//! any accept that does not reach a quorum (conflict, error or timeout) drops the cache, so
//! two values are never sent under one ballot; ballots carry the incarnation, so a restarted
//! proposer never reuses one; every acceptor call has a timeout; the cache is bounded (LRU).
//! Changes of one key are serialized inside the proposer; different keys run in parallel.

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lru::LruCache;
use tokio::sync::mpsc;

use crate::acceptor::{AcceptReply, Acceptor, AcceptorError, PrepareReply};
use crate::ballot::{Ballot, BallotSource};
use crate::quorum::{Answer, Decision, Failure, Tally};

/// Which phase of a change failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Prepare,
    Accept,
}

/// Why a change did not complete.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProposerError {
    #[error("{phase:?} failed: {failure}")]
    NoQuorum {
        phase: Phase,
        failure: Failure,
        /// The failed accept carried a new state, which may have reached some acceptors and
        /// may still be chosen later: the change's outcome is unknown. False after a failed
        /// prepare, or an accept of the unchanged state (a read or a refusal).
        effect_possible: bool,
    },
}

impl ProposerError {
    pub fn phase(&self) -> Phase {
        match self {
            ProposerError::NoQuorum { phase, .. } => *phase,
        }
    }

    pub fn failure(&self) -> &Failure {
        match self {
            ProposerError::NoQuorum { failure, .. } => failure,
        }
    }

    /// True if an acceptor refused because of a higher ballot.
    pub fn lost_race(&self) -> bool {
        self.failure().conflict.is_some()
    }

    /// True if the change may have taken effect.
    pub fn outcome_unknown(&self) -> bool {
        match self {
            ProposerError::NoQuorum {
                effect_possible, ..
            } => *effect_possible,
        }
    }
}

/// The result of a change that reached a quorum.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change<R> {
    /// The state before the change.
    pub before: Option<String>,
    /// `Ok(state after)` if `f` produced a new state (now chosen), `Err(reason)` if `f`
    /// refused; a refusal still commits the unchanged state, so it is linearizable too.
    pub outcome: Result<Option<String>, R>,
}

/// Settings of a proposer.
#[derive(Clone, Debug)]
pub struct ProposerConfig {
    pub id: u64,
    pub quorum: usize,
    pub timeout: Duration,
    pub cache_capacity: usize,
    /// NEGATIVE-CONTROL HOOK for the simulation test (`node/tests/simulation.rs`) only: when
    /// true, an accept that fails without a conflict reply (timeout, lost connection) keeps
    /// its ballot cached, so the next change sends a different value under the same ballot —
    /// the exact 2018 Gryadka bug. Production always sets it to false.
    #[doc(hidden)]
    pub unsafe_keep_cache_after_failed_accept: bool,
}

/// An accept that did not reach a quorum, with the state it started from.
struct FailedAttempt {
    error: ProposerError,
    /// Only for the negative-control hook.
    stale_before: Option<String>,
}

impl std::ops::Deref for FailedAttempt {
    type Target = ProposerError;
    fn deref(&self) -> &ProposerError {
        &self.error
    }
}

/// The yeses of a phase that reached a quorum, and the highest conflict seen on the way.
struct Round<T> {
    yes: Vec<T>,
    conflict: Option<Ballot>,
}

/// What the proposer remembers about one key between changes.
#[derive(Debug, Default)]
struct KeyState {
    /// The ballot the acceptors promised us after our last successful accept, with the state
    /// then chosen. Present only while we are the key's last writer as far as we know.
    leader: Option<(Ballot, Option<String>)>,
}

pub struct Proposer {
    acceptors: Vec<Arc<dyn Acceptor>>,
    quorum: usize,
    timeout: Duration,
    ballots: BallotSource,
    keys: Mutex<LruCache<String, Arc<tokio::sync::Mutex<KeyState>>>>,
    /// See [`ProposerConfig::unsafe_keep_cache_after_failed_accept`] (negative control only).
    unsafe_keep_cache_after_failed_accept: bool,
}

impl Proposer {
    /// A proposer with a fresh random incarnation, counting ballots from the wall clock.
    pub fn new(config: ProposerConfig, acceptors: Vec<Arc<dyn Acceptor>>) -> Self {
        let now_us = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64);
        let mut proposer =
            Self::with_incarnation(config, acceptors, u64::from(rand::random::<u32>()));
        proposer.ballots = BallotSource::starting_at(
            proposer.ballots.proposer(),
            proposer.ballots.incarnation(),
            now_us,
        );
        proposer
    }

    /// A proposer with a given incarnation (tests and the simulation choose it).
    pub fn with_incarnation(
        config: ProposerConfig,
        acceptors: Vec<Arc<dyn Acceptor>>,
        incarnation: u64,
    ) -> Self {
        let capacity = NonZeroUsize::new(config.cache_capacity).unwrap_or(NonZeroUsize::MIN);
        Proposer {
            acceptors,
            quorum: config.quorum,
            timeout: config.timeout,
            ballots: BallotSource::new(config.id, incarnation),
            keys: Mutex::new(LruCache::new(capacity)),
            unsafe_keep_cache_after_failed_accept: config.unsafe_keep_cache_after_failed_accept,
        }
    }

    pub fn id(&self) -> u64 {
        self.ballots.proposer()
    }

    pub fn incarnation(&self) -> u64 {
        self.ballots.incarnation()
    }

    pub fn quorum(&self) -> usize {
        self.quorum
    }

    pub fn acceptors(&self) -> &[Arc<dyn Acceptor>] {
        &self.acceptors
    }

    /// How many acceptors are connected right now.
    pub fn reachable(&self) -> usize {
        self.acceptors.iter().filter(|a| a.is_connected()).count()
    }

    /// Applies `f` to the key's current state (`None`: the key does not exist) and makes the
    /// result the new state, linearizably. `f` returns `Err` to refuse the change. `f` may be
    /// called twice, but only when its first result cannot have taken effect.
    pub async fn change<R>(
        &self,
        key: &str,
        f: impl Fn(Option<&str>) -> Result<Option<String>, R>,
    ) -> Result<Change<R>, ProposerError> {
        let slot = self.slot(key);
        let mut state = slot.lock().await;

        // One round trip if we hold the key's next ballot. The cached ballot is taken out, so
        // it can never be used for a second accept.
        if let Some((ballot, before)) = state.leader.take() {
            match self.attempt(key, ballot, before, &f).await {
                Ok((change, next)) => {
                    state.leader = next;
                    return Ok(change);
                }
                // The cache was stale (another proposer wrote the key since). A full round is
                // safe if the failed accept cannot have had an effect: it carried the
                // unchanged state (a read or a refusal), or every acceptor refused it, so it
                // can never be accepted anywhere (promises never decrease).
                Err(e) if e.lost_race() && (!e.outcome_unknown() || e.failure().all_refused()) => {
                    log::debug!(
                        "{key}: stale one-round-trip ballot, running a full round: {}",
                        e.error
                    );
                }
                Err(e) => {
                    // NEGATIVE CONTROL ONLY (never set in production): reproduce the 2018
                    // Gryadka bug by keeping the ballot after an accept failed without a
                    // conflict reply.
                    if self.unsafe_keep_cache_after_failed_accept && !e.lost_race() {
                        state.leader = Some((ballot, e.stale_before.clone()));
                    }
                    return Err(e.error);
                }
            }
        }
        // A prepare that lost a race wrote nothing: one retry, past the ballot that won.
        let (ballot, before) = match self.prepare(key).await {
            Err(e) if e.lost_race() => self.prepare(key).await?,
            result => result?,
        };
        let (change, next) = self.attempt(key, ballot, before, &f).await.map_err(|e| {
            if self.unsafe_keep_cache_after_failed_accept && !e.error.lost_race() {
                state.leader = Some((ballot, e.stale_before.clone()));
            }
            e.error
        })?;
        state.leader = next;
        Ok(change)
    }

    /// Applies `f` to `before` and sends the result under `ballot` (phase 2). On success, the
    /// change and the ballot and state to cache for the next change (if any).
    async fn attempt<R>(
        &self,
        key: &str,
        ballot: Ballot,
        before: Option<String>,
        f: &impl Fn(Option<&str>) -> Result<Option<String>, R>,
    ) -> Result<(Change<R>, Option<(Ballot, Option<String>)>), FailedAttempt> {
        let (outcome, after) = match f(before.as_deref()) {
            Ok(after) => (Ok(after.clone()), after),
            Err(reason) => (Err(reason), before.clone()),
        };
        let next = self.ballots.next();
        let changes_state = after != before;
        match self.accept(key, ballot, after.as_deref(), next).await {
            Ok(clean) => Ok((Change { before, outcome }, clean.then_some((next, after)))),
            Err(failure) => Err(FailedAttempt {
                error: ProposerError::NoQuorum {
                    phase: Phase::Accept,
                    failure,
                    effect_possible: changes_state,
                },
                stale_before: before,
            }),
        }
    }

    /// Reads the key linearizably (a change with the identity function).
    pub async fn read(&self, key: &str) -> Result<Option<String>, ProposerError> {
        let change = self
            .change(key, |current| Ok::<_, ()>(current.map(str::to_string)))
            .await?;
        Ok(change.before)
    }

    fn slot(&self, key: &str) -> Arc<tokio::sync::Mutex<KeyState>> {
        let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(slot) = keys.get(key) {
            return slot.clone();
        }
        let slot = Arc::new(tokio::sync::Mutex::new(KeyState::default()));
        keys.put(key.to_string(), slot.clone());
        slot
    }

    /// Phase 1: a fresh ballot promised by a quorum, and the state it found.
    async fn prepare(&self, key: &str) -> Result<(Ballot, Option<String>), ProposerError> {
        let ballot = self.ballots.next();
        let replies = self
            .round(false, |acceptor| {
                let key = key.to_string();
                async move {
                    match acceptor.prepare(&key, ballot).await {
                        Ok(PrepareReply::Promised { accepted, value }) => {
                            Answer::Yes((accepted, value))
                        }
                        Ok(PrepareReply::Conflict(b)) => Answer::Conflict(b),
                        Err(e) => Answer::Failed(e.to_string()),
                    }
                }
            })
            .await
            .map_err(|failure| ProposerError::NoQuorum {
                phase: Phase::Prepare,
                failure,
                effect_possible: false,
            })?;
        let state = replies
            .yes
            .into_iter()
            .max_by_key(|(accepted, _)| *accepted)
            .and_then(|(_, value)| value);
        Ok((ballot, state))
    }

    /// Phase 2: `value` accepted under `ballot` by a quorum, which also promise `next`.
    /// Returns whether `next` may be used for one round trip (no acceptor reported a conflict).
    /// On failure every acceptor's answer is awaited (each bounded by the timeout), so the
    /// failure tells whether all of them refused.
    async fn accept(
        &self,
        key: &str,
        ballot: Ballot,
        value: Option<&str>,
        next: Ballot,
    ) -> Result<bool, Failure> {
        let value = value.map(str::to_string);
        self.round(true, |acceptor| {
            let key = key.to_string();
            let value = value.clone();
            async move {
                match acceptor.accept(&key, ballot, value.as_deref(), next).await {
                    Ok(AcceptReply::Accepted) => Answer::Yes(()),
                    Ok(AcceptReply::Conflict(b)) => Answer::Conflict(b),
                    Err(e) => Answer::Failed(e.to_string()),
                }
            }
        })
        .await
        .map(|round| round.conflict.is_none())
    }

    /// Sends one phase to every acceptor (each call in its own task, bounded by the timeout,
    /// so the slowest acceptor still gets the message) and returns the first quorum of yeses.
    /// Any conflict seen fast-forwards the ballot counter past it. With `complete_failures`,
    /// a phase that cannot reach a quorum still collects every answer before it reports.
    async fn round<T, F, Fut>(&self, complete_failures: bool, call: F) -> Result<Round<T>, Failure>
    where
        T: Send + 'static,
        F: Fn(Arc<dyn Acceptor>) -> Fut,
        Fut: std::future::Future<Output = Answer<T>> + Send + 'static,
    {
        let (tx, mut rx) = mpsc::channel(self.acceptors.len().max(1));
        for (index, acceptor) in self.acceptors.iter().enumerate() {
            let tx = tx.clone();
            let answer = call(acceptor.clone());
            let timeout = self.timeout;
            tokio::spawn(async move {
                let answer = match tokio::time::timeout(timeout, answer).await {
                    Ok(answer) => answer,
                    Err(_) => Answer::Failed(AcceptorError::Timeout.to_string()),
                };
                // The receiver is gone once the phase is decided; that is fine.
                let _ = tx.send((index, answer)).await;
            });
        }
        drop(tx);

        let mut tally = Tally::new(self.acceptors.len(), self.quorum);
        let decided = loop {
            let Some((index, answer)) = rx.recv().await else {
                break Err(tally.failure());
            };
            match tally.add(self.acceptors[index].name(), answer) {
                Decision::Pending => continue,
                Decision::Quorum(yes) => break Ok(yes),
                Decision::NoQuorum(failure) => break Err(failure),
            }
        };
        let decided = match decided {
            Err(_) if complete_failures => {
                while let Some((index, answer)) = rx.recv().await {
                    tally.add(self.acceptors[index].name(), answer);
                }
                Err(tally.failure())
            }
            decided => decided,
        };
        let conflict = tally.conflict();
        if let Some(seen) = conflict {
            self.ballots.fast_forward(seen);
        }
        decided.map(|yes| Round { yes, conflict })
    }
}
