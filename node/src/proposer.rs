//! The CASPaxos proposer: `change(key, f)` over a set of acceptors.
//!
//! A change prepares a fresh ballot on all acceptors, continues on the first quorum of
//! promises, takes the value with the highest accepted ballot, applies `f` and sends accept,
//! again continuing on the first quorum. Each accept also asks the acceptors to promise the
//! proposer's next ballot; after a successful accept the proposer caches that ballot and the
//! new state, and the next change of the key skips prepare (one round trip).
//!
//! Safety rules kept here (see NOTES.md): a cached ballot is used for exactly one accept and
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

/// Why a change did not complete. After a failed accept the outcome is unknown: the new
/// value may have reached some acceptors and may still be chosen later.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProposerError {
    #[error("{phase:?} failed: {failure}")]
    NoQuorum { phase: Phase, failure: Failure },
}

impl ProposerError {
    pub fn phase(&self) -> Phase {
        match self {
            ProposerError::NoQuorum { phase, .. } => *phase,
        }
    }

    /// True if an acceptor refused because of a higher ballot.
    pub fn lost_race(&self) -> bool {
        match self {
            ProposerError::NoQuorum { failure, .. } => failure.conflict.is_some(),
        }
    }

    /// True if the change may have taken effect (the accept phase was reached).
    pub fn outcome_unknown(&self) -> bool {
        self.phase() == Phase::Accept
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
    /// A proposer with a fresh random incarnation.
    pub fn new(config: ProposerConfig, acceptors: Vec<Arc<dyn Acceptor>>) -> Self {
        Self::with_incarnation(config, acceptors, u64::from(rand::random::<u32>()))
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

    /// Applies `f` to the key's current state (`None`: the key does not exist) and makes the
    /// result the new state, linearizably. `f` returns `Err` to refuse the change.
    pub async fn change<R>(
        &self,
        key: &str,
        f: impl FnOnce(Option<&str>) -> Result<Option<String>, R>,
    ) -> Result<Change<R>, ProposerError> {
        let slot = self.slot(key);
        let mut state = slot.lock().await;

        // One round trip if we hold the key's next ballot; a full round otherwise. Either way
        // the cached ballot is taken out, so it can never be used for a second accept.
        let (ballot, before) = match state.leader.take() {
            Some(cached) => cached,
            // A prepare that lost a race wrote nothing: one retry, past the ballot that won.
            None => match self.prepare(key).await {
                Err(e) if e.lost_race() => self.prepare(key).await?,
                result => result?,
            },
        };
        let (outcome, after) = match f(before.as_deref()) {
            Ok(after) => (Ok(after.clone()), after),
            Err(reason) => (Err(reason), before.clone()),
        };
        let next = self.ballots.next();
        match self.accept(key, ballot, after.as_deref(), next).await {
            Ok(true) => state.leader = Some((next, after)),
            Ok(false) => {}
            Err(e) => {
                // NEGATIVE CONTROL ONLY (never set in production): reproduce the 2018 Gryadka
                // bug by keeping the ballot after an accept failed without a conflict reply.
                if self.unsafe_keep_cache_after_failed_accept && !e.lost_race() {
                    state.leader = Some((ballot, before));
                }
                return Err(e);
            }
        }
        Ok(Change { before, outcome })
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
            .round(Phase::Prepare, |acceptor| {
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
            .await?;
        let state = replies
            .yes
            .into_iter()
            .max_by_key(|(accepted, _)| *accepted)
            .and_then(|(_, value)| value);
        Ok((ballot, state))
    }

    /// Phase 2: `value` accepted under `ballot` by a quorum, which also promise `next`.
    /// Returns whether `next` may be used for one round trip (no acceptor reported a conflict).
    async fn accept(
        &self,
        key: &str,
        ballot: Ballot,
        value: Option<&str>,
        next: Ballot,
    ) -> Result<bool, ProposerError> {
        let value = value.map(str::to_string);
        self.round(Phase::Accept, |acceptor| {
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
    /// Any conflict seen fast-forwards the ballot counter past it.
    async fn round<T, F, Fut>(&self, phase: Phase, call: F) -> Result<Round<T>, ProposerError>
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
        let conflict = tally.conflict();
        if let Some(seen) = conflict {
            self.ballots.fast_forward(seen);
        }
        match decided {
            Ok(yes) => Ok(Round { yes, conflict }),
            Err(failure) => Err(ProposerError::NoQuorum { phase, failure }),
        }
    }
}
