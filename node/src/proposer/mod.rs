//! The CASPaxos proposer: `change(key, f)` over a set of acceptors.
//!
//! A change prepares a fresh ballot on all acceptors, continues on the first quorum of
//! promises, takes the value with the highest accepted ballot, applies `f` and sends accept,
//! again continuing on the first quorum. Each accept also asks the acceptors to promise the
//! proposer's next ballot; after a successful accept the proposer caches that ballot and the
//! new state, and the next change of the key skips prepare (one round trip).
//!
//! A read first tries a *quorum read* (`quorum_reads`, on by default): it asks every acceptor
//! for its accepted ballot and value, promising and writing nothing, and returns at once when
//! a quorum of answers carry the same accepted ballot (that state is chosen, and no newer one
//! was chosen before the read began); otherwise it runs the full round above. See
//! docs/design-proposer.md.
//!
//! Every phase is *thrifty* (`thrifty`, on by default): it asks only the first quorum of
//! acceptors in the configured order that are connected, and asks the others too as soon as
//! one of those refuses or fails, when their answers do not agree (a quorum read), when a
//! phase that failed must hear every acceptor, or when no decision came within the hedge
//! delay (`hedge`). A quorum of answers is a quorum whoever gave it, so this only saves the
//! calls (and the fsyncs) a decision does not need; see docs/design-proposer.md.
//!
//! Within one request deadline a change is retried, with jittered exponential backoff, when
//! the failed round cannot have had an effect and lost a ballot race; an accept whose outcome
//! is unknown is first *resolved*: a follow-up read round chooses the key's state on a
//! majority, and the write is reported applied (that state is ours), not applied (that state
//! proves ours can never be chosen; then the change is retried on it) or, only when neither
//! can be proved in time, unknown. See docs/design-proposer.md.
//!
//! Safety rules kept here (see docs/design.md): a cached ballot is used for exactly one accept and
//! any accept that does not reach a quorum (conflict, error or timeout) drops the cache, so
//! two values are never sent under one ballot; ballots carry the incarnation, so a restarted
//! proposer never reuses one; every acceptor call has a timeout; the cache is bounded in
//! bytes. Changes of one key are serialized inside the proposer; different keys run in
//! parallel.
//!
//! The parts: [`config`] (settings and negative controls), [`error`] (why a change failed),
//! [`rounds`] (prepare, accept, quorum read), [`fanout`] (hedged, thrifty fan-out of a
//! phase), [`cache`] (the one-round-trip cache), [`outcome`] (resolving a write of unknown
//! outcome); this file holds the proposer itself: changes, retries and reads.

mod cache;
mod config;
mod error;
mod fanout;
mod outcome;
mod rounds;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::time::Instant;

use crate::acceptor::Acceptor;
use crate::ballot::{Ballot, BallotSource};
use crate::metrics::ProposerCounters;
use cache::LeaderCache;
use fanout::Suspects;
use outcome::FailedAttempt;

pub use crate::record::Lineage;
pub use config::{ProposerConfig, UnsafeControl};
pub use error::{Phase, ProposerError};
pub use outcome::{judge, OutcomeCounts, Unresolved, Verdict};

/// The result of a change that reached a quorum.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change<R> {
    /// The state before the change.
    pub before: Option<String>,
    /// `Ok(state after)` if `f` produced a new state (now chosen), `Err(reason)` if `f`
    /// refused; a refusal still commits the unchanged state, so it is linearizable too.
    pub outcome: Result<Option<String>, R>,
}

pub struct Proposer {
    acceptors: Vec<Arc<dyn Acceptor>>,
    quorum: usize,
    timeout: Duration,
    deadline: Duration,
    quorum_reads: bool,
    thrifty: bool,
    hedge: Duration,
    backoff_base: Duration,
    backoff_cap: Duration,
    lineage: fn(&str) -> Option<Lineage>,
    ballots: Arc<BallotSource>,
    cache: Mutex<LeaderCache>,
    /// One lock per key being changed right now (serializes a key's changes in this
    /// proposer); an entry lives while someone holds its lock.
    locks: Mutex<HashMap<String, Weak<tokio::sync::Mutex<()>>>>,
    jitter: Mutex<StdRng>,
    writes: AtomicU64,
    /// Quorum reads answered from agreeing acceptors, and those that fell back.
    reads_agreed: AtomicU64,
    reads_fell_back: AtomicU64,
    /// What the resolutions of writes of unknown outcome concluded (see [`OutcomeCounts`]).
    outcomes: outcome::Tallies,
    /// Phases, lost races, retries and resolutions, for `/metrics`.
    counters: ProposerCounters,
    /// Acceptors thrifty phases pass over for now (see [`SUSPICION`]).
    suspects: Arc<Suspects>,
    #[cfg(feature = "sim-controls")]
    unsafe_control: Option<UnsafeControl>,
}

impl Proposer {
    /// A proposer with a fresh random incarnation, counting ballots from the wall clock.
    pub fn new(config: ProposerConfig, acceptors: Vec<Arc<dyn Acceptor>>) -> Self {
        let now_us = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64);
        let mut proposer =
            Self::with_incarnation(config, acceptors, crate::ballot::random_incarnation());
        proposer.ballots = Arc::new(BallotSource::starting_at(
            proposer.ballots.proposer(),
            proposer.ballots.incarnation(),
            now_us,
        ));
        proposer
    }

    /// A proposer with a given incarnation (tests and the simulation choose it).
    pub fn with_incarnation(
        config: ProposerConfig,
        acceptors: Vec<Arc<dyn Acceptor>>,
        incarnation: u64,
    ) -> Self {
        let count = acceptors.len();
        Proposer {
            acceptors,
            quorum: config.quorum,
            timeout: config.timeout,
            deadline: config.deadline,
            quorum_reads: config.quorum_reads,
            thrifty: config.thrifty,
            hedge: config.hedge,
            backoff_base: config.backoff_base,
            backoff_cap: config.backoff_cap.max(config.backoff_base),
            lineage: config.lineage,
            ballots: Arc::new(BallotSource::new(config.id, incarnation)),
            cache: Mutex::new(LeaderCache::new(config.cache_bytes)),
            locks: Mutex::new(HashMap::new()),
            jitter: Mutex::new(StdRng::seed_from_u64(config.jitter_seed ^ incarnation)),
            writes: AtomicU64::new(0),
            reads_agreed: AtomicU64::new(0),
            reads_fell_back: AtomicU64::new(0),
            outcomes: outcome::Tallies::default(),
            counters: ProposerCounters::default(),
            suspects: Arc::new(Suspects::new(count)),
            #[cfg(feature = "sim-controls")]
            unsafe_control: config.unsafe_control,
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

    /// The ballot source, shared with the catch-up pass (its ballots must be unique too).
    pub fn ballots(&self) -> Arc<BallotSource> {
        self.ballots.clone()
    }

    pub fn acceptors(&self) -> &[Arc<dyn Acceptor>] {
        &self.acceptors
    }

    /// How many acceptors are connected right now.
    pub fn reachable(&self) -> usize {
        self.acceptors.iter().filter(|a| a.is_connected()).count()
    }

    /// Quorum reads so far: answered from a quorum that agreed, and fallen back to a full
    /// round.
    pub fn counters(&self) -> &ProposerCounters {
        &self.counters
    }

    pub fn quorum_read_counts(&self) -> (u64, u64) {
        (
            self.reads_agreed.load(Ordering::Relaxed),
            self.reads_fell_back.load(Ordering::Relaxed),
        )
    }

    /// Bytes the one-round-trip cache holds now.
    pub fn cache_bytes(&self) -> usize {
        self.lock_cache().bytes()
    }

    /// A write id unique across proposers and their restarts: proposer id, incarnation and
    /// a counter. Stored in the record a write produces, so that equal states are the same
    /// write (what outcome resolution relies on).
    pub fn write_id(&self) -> String {
        format!(
            "{}.{:x}.{}",
            self.id(),
            self.incarnation(),
            self.writes.fetch_add(1, Ordering::Relaxed) + 1
        )
    }

    /// Applies `f` to the key's current state (`None`: the key does not exist) and makes the
    /// result the new state, linearizably. `f` returns `Err` to refuse the change. `f` may be
    /// called several times, each time only after every earlier result of it was proved
    /// never to take effect.
    pub async fn change<R>(
        &self,
        key: &str,
        f: impl Fn(Option<&str>) -> Result<Option<String>, R>,
    ) -> Result<Change<R>, ProposerError> {
        self.change_by(key, f, Instant::now() + self.deadline).await
    }

    /// [`Proposer::change`] with the request's deadline given.
    async fn change_by<R>(
        &self,
        key: &str,
        f: impl Fn(Option<&str>) -> Result<Option<String>, R>,
        deadline: Instant,
    ) -> Result<Change<R>, ProposerError> {
        let lock = self.key_lock(key);
        let Ok(_serialized) = tokio::time::timeout_at(deadline, lock.lock()).await else {
            return Err(ProposerError::Queued);
        };
        let mut losses = 0u32;
        loop {
            let failed = match self.try_once(key, &f).await {
                Ok(change) => return Ok(change),
                Err(failed) => failed,
            };
            let mut error = failed.error.clone();
            // May the change run again? Only if the failed round cannot have had an effect
            // (a failed prepare, an accept of the unchanged state, an accept every acceptor
            // refused) or the outcome was resolved as not applied; and only after a lost race
            // or a resolution (other failures, e.g. acceptors down, are answered at once).
            if error.all_refused() {
                // Stored nowhere, and promises only grow: it never will be.
                error.stored_nowhere();
            }
            let unresolved = self.control(UnsafeControl::RetryAfterUnknownOutcome);
            let retry = if !error.outcome_unknown() || unresolved {
                error.lost_race()
            } else {
                match self.resolve(key, &failed, deadline).await {
                    Ok(change) => {
                        self.counters.resolved_applied.inc();
                        return Ok(Change {
                            before: change,
                            outcome: Ok(failed.after.clone().flatten()),
                        });
                    }
                    Err(Verdict::NotApplied) => {
                        self.counters.resolved_not_applied.inc();
                        error.proved_not_applied();
                        true
                    }
                    Err(_) => {
                        self.counters.resolved_unknown.inc();
                        self.keep_stale_cache_if_controlled(key, &failed);
                        return Err(error);
                    }
                }
            };
            if !retry {
                self.keep_stale_cache_if_controlled(key, &failed);
                return Err(error);
            }
            losses += 1;
            self.counters.retries.inc();
            let pause = self.backoff(losses);
            if Instant::now() + pause >= deadline {
                return Err(error);
            }
            tokio::time::sleep(pause).await;
        }
    }

    /// NEGATIVE CONTROL ONLY: the 2018 Gryadka bug, the ballot of an accept that failed
    /// without a conflict reply stays cached with the state it started from.
    fn keep_stale_cache_if_controlled(&self, key: &str, failed: &FailedAttempt) {
        if self.control(UnsafeControl::KeepCacheAfterFailedAccept) && !failed.error.lost_race() {
            if let (Some(ballot), Some(_)) = (failed.ballot, &failed.after) {
                self.lock_cache().put(key, ballot, failed.before.clone());
            }
        }
    }

    /// One attempt: the cached ballot (one round trip) or a fresh prepare, then accept.
    async fn try_once<R>(
        &self,
        key: &str,
        f: &impl Fn(Option<&str>) -> Result<Option<String>, R>,
    ) -> Result<Change<R>, FailedAttempt> {
        // Taken out of the cache: a cached ballot can never be used for a second accept.
        let cached = self.lock_cache().take(key);
        let (ballot, before) = match cached {
            Some(cached) => {
                self.counters.one_round_trip.inc();
                cached
            }
            None => self.prepare(key).await.map_err(|error| FailedAttempt {
                error,
                ballot: None,
                before: None,
                after: None,
            })?,
        };
        let (change, next) = self.attempt(key, ballot, before, f).await?;
        if let Some((next, state)) = next {
            self.lock_cache().put(key, next, state);
        }
        Ok(change)
    }

    /// A jittered pause after `losses` lost rounds: uniform in [0, base * 2^(losses-1)],
    /// capped. A proposer that keeps losing waits longer, which lets the winner finish and
    /// leaves the key to it next; the ballot seen in a conflict is jumped past at once.
    fn backoff(&self, losses: u32) -> Duration {
        let ceiling = self
            .backoff_base
            .saturating_mul(1u32 << losses.saturating_sub(1).min(16))
            .min(self.backoff_cap);
        let micros = ceiling.as_micros() as u64;
        let mut rng = self.jitter.lock().unwrap_or_else(|e| e.into_inner());
        Duration::from_micros(rng.random_range(0..=micros))
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
                    resolved: false,
                },
                ballot: Some(ballot),
                before,
                after: changes_state.then_some(after),
            }),
        }
    }

    /// Reads the key linearizably. With `quorum_reads`, a quorum read first (one round trip,
    /// no write); when its answers do not agree, or it gets no quorum of answers, a change
    /// with the identity function (which chooses the state it reads), within the same
    /// deadline.
    pub async fn read(&self, key: &str) -> Result<Option<String>, ProposerError> {
        let deadline = Instant::now() + self.deadline;
        if self.quorum_reads {
            // Within the request's deadline like the rest of the read (each acceptor's answer
            // is bounded by the acceptor timeout too, which may be set longer).
            if let Ok(Some(reply)) = tokio::time::timeout_at(deadline, self.quorum_read(key)).await
            {
                self.reads_agreed.fetch_add(1, Ordering::Relaxed);
                return Ok(reply.value);
            }
            self.reads_fell_back.fetch_add(1, Ordering::Relaxed);
        }
        let change = self
            .change_by(
                key,
                |current| Ok::<_, ()>(current.map(str::to_string)),
                deadline,
            )
            .await?;
        Ok(change.before)
    }

    fn lock_cache(&self) -> std::sync::MutexGuard<'_, LeaderCache> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The lock serializing this proposer's changes of `key`.
    fn key_lock(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(lock) = locks.get(key).and_then(Weak::upgrade) {
            return lock;
        }
        // Forget the keys nobody is changing any more (amortized: when the map doubled).
        if locks.len() >= 64 && locks.len().is_power_of_two() {
            locks.retain(|_, lock| lock.strong_count() > 0);
        }
        let lock = Arc::new(tokio::sync::Mutex::new(()));
        locks.insert(key.to_string(), Arc::downgrade(&lock));
        lock
    }
}
