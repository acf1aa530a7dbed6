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

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use lru::LruCache;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::acceptor::{AcceptReply, Acceptor, AcceptorError, PrepareReply, ReadReply};
use crate::ballot::{Ballot, BallotSource};
use crate::quorum::{Agreed, Agreement, Answer, Decision, Failure, Tally};

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
    fn stored_nowhere(&mut self) {
        if let ProposerError::NoQuorum {
            effect_possible, ..
        } = self
        {
            *effect_possible = false;
        }
    }

    /// Marks a write of unknown outcome as proved not applied.
    fn proved_not_applied(&mut self) {
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

/// The result of a change that reached a quorum.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change<R> {
    /// The state before the change.
    pub before: Option<String>,
    /// `Ok(state after)` if `f` produced a new state (now chosen), `Err(reason)` if `f`
    /// refused; a refusal still commits the unchanged state, so it is linearizable too.
    pub outcome: Result<Option<String>, R>,
}

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
    /// Every phase asks only a quorum of acceptors first (see [`Fanout`]).
    pub thrifty: bool,
    /// How long a thrifty phase waits for a decision before it asks the other acceptors too.
    pub hedge: Duration,
    /// First backoff pause after a lost race; doubles with every further loss.
    pub backoff_base: Duration,
    /// Longest backoff pause.
    pub backoff_cap: Duration,
    /// Seeds the backoff jitter (the simulation sets it so that a seed replays).
    pub jitter_seed: u64,
    /// The version of a state: it grows by one with every change that writes, so that a
    /// follow-up read can prove a write of unknown outcome was not applied (see
    /// [`judge`]). `None`: not a state this proposer understands (nothing is proved).
    pub version: fn(&str) -> Option<u64>,
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
            version: crate::record::version,
            #[cfg(feature = "sim-controls")]
            unsafe_control: None,
        }
    }
}

/// A failed round, with what a resolution or a retry needs to know about it.
struct FailedAttempt {
    error: ProposerError,
    ballot: Option<Ballot>,
    /// The state the change was computed from (after a failed accept).
    before: Option<String>,
    /// The new state the failed accept carried, if it changed the state.
    after: Option<Option<String>>,
}

/// The yeses of a phase that reached a quorum, and the highest conflict seen on the way.
struct Round<T> {
    yes: Vec<T>,
    conflict: Option<Ballot>,
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

/// The one-round-trip cache: per key, the ballot the acceptors promised us after our last
/// successful accept and the state then chosen; least recently used first out, bounded in
/// bytes.
struct LeaderCache {
    entries: LruCache<String, (Ballot, Option<String>)>,
    bytes: usize,
    budget: usize,
}

/// Bytes an entry costs beyond its key and state (ballot, LRU links, allocation headers).
const CACHE_ENTRY_OVERHEAD: usize = 128;

impl LeaderCache {
    fn cost(key: &str, state: &Option<String>) -> usize {
        key.len() + state.as_ref().map_or(0, String::len) + CACHE_ENTRY_OVERHEAD
    }

    /// Takes the key's entry out: a cached ballot is used at most once.
    fn take(&mut self, key: &str) -> Option<(Ballot, Option<String>)> {
        let entry = self.entries.pop(key)?;
        self.bytes -= Self::cost(key, &entry.1);
        Some(entry)
    }

    fn put(&mut self, key: &str, ballot: Ballot, state: Option<String>) {
        self.take(key);
        let cost = Self::cost(key, &state);
        if cost > self.budget {
            return;
        }
        self.bytes += cost;
        self.entries.put(key.to_string(), (ballot, state));
        while self.bytes > self.budget {
            let Some((k, (_, s))) = self.entries.pop_lru() else {
                break;
            };
            self.bytes -= Self::cost(&k, &s);
        }
    }
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
    version: fn(&str) -> Option<u64>,
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
            version: config.version,
            ballots: Arc::new(BallotSource::new(config.id, incarnation)),
            cache: Mutex::new(LeaderCache {
                entries: LruCache::unbounded(),
                bytes: 0,
                budget: config.cache_bytes,
            }),
            locks: Mutex::new(HashMap::new()),
            jitter: Mutex::new(StdRng::seed_from_u64(config.jitter_seed ^ incarnation)),
            writes: AtomicU64::new(0),
            reads_agreed: AtomicU64::new(0),
            reads_fell_back: AtomicU64::new(0),
            suspects: Arc::new(Suspects::new(count)),
            #[cfg(feature = "sim-controls")]
            unsafe_control: config.unsafe_control,
        }
    }

    /// THE hook of the negative controls: always false unless built with `sim-controls`
    /// and configured with `which`.
    #[inline]
    fn control(&self, which: UnsafeControl) -> bool {
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
    pub fn quorum_read_counts(&self) -> (u64, u64) {
        (
            self.reads_agreed.load(Ordering::Relaxed),
            self.reads_fell_back.load(Ordering::Relaxed),
        )
    }

    /// Bytes the one-round-trip cache holds now.
    pub fn cache_bytes(&self) -> usize {
        self.lock_cache().bytes
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
                        return Ok(Change {
                            before: change,
                            outcome: Ok(failed.after.clone().flatten()),
                        })
                    }
                    Err(Verdict::NotApplied) => {
                        error.proved_not_applied();
                        true
                    }
                    Err(_) => {
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
            Some(cached) => cached,
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

    /// Resolves an accept of unknown outcome: follow-up read rounds (each a prepare and an
    /// accept of the state read, so that state is CHOSEN on a majority) until one succeeds or
    /// the deadline passes. `Ok(before)` if the chosen state is our write (applied, computed
    /// from `before`), else the verdict.
    async fn resolve(
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
            if let Ok(Some(state)) = tokio::time::timeout_at(deadline, self.quorum_read(key)).await
            {
                self.reads_agreed.fetch_add(1, Ordering::Relaxed);
                return Ok(state);
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

    /// The quorum read: every acceptor is asked for its accepted ballot and value (no
    /// promise, no write). `Some(state)` as soon as a quorum of answers carry the same
    /// accepted ballot and value: that state is chosen, and no newer state was chosen
    /// before this read began (docs/design-proposer.md has the argument). `None` once no
    /// ballot can gather a quorum any more (answers split by a write in flight, acceptors
    /// down): the caller runs the full round. Neither the key lock nor the one-round-trip
    /// cache is touched: nothing this does changes a promise, so a cached ballot stays
    /// exactly as valid as it was.
    async fn quorum_read(&self, key: &str) -> Option<Option<String>> {
        let mut answers = self.send_all(|acceptor| {
            let key = key.to_string();
            async move {
                match acceptor.read(&key).await {
                    Ok(reply) => Answer::Yes(reply),
                    Err(e) => Answer::Failed(e),
                }
            }
        });
        let mut agreement = Agreement::new(self.acceptors.len(), self.quorum);
        let mut first: Vec<ReadReply> = Vec::new();
        let mut answered = 0;
        // Once a quorum has answered without agreeing, the rest get one hedge delay more:
        // an acceptor that is slow to answer (an fsync stall, a frozen Redis still connected)
        // must not hold the read for its timeout when a full round on the others is quicker.
        let mut patience: Option<Instant> = None;
        loop {
            let next = match patience {
                Some(until) => tokio::time::timeout_at(until, answers.recv())
                    .await
                    .unwrap_or(None),
                None => answers.recv().await,
            };
            let Some((_, answer)) = next else { break };
            answered += 1;
            let reply = match answer {
                Answer::Yes(reply) => Some(reply),
                Answer::Conflict(_) | Answer::Failed(_) => None,
            };
            if self.control(UnsafeControl::QuorumReadWithoutAgreement) {
                // NEGATIVE CONTROL: the newest of the first quorum of answers, agreed or not.
                if reply.is_none() {
                    answers.widen();
                }
                first.extend(reply);
                if first.len() == self.quorum {
                    return first
                        .into_iter()
                        .max_by_key(|reply| reply.accepted)
                        .map(|reply| reply.value);
                }
                continue;
            }
            let failed = reply.is_none();
            match agreement.add(reply) {
                Agreed::Pending => {}
                Agreed::Chosen(reply) => return Some(reply.value),
                Agreed::Never => break,
            }
            // A failed answer, or a quorum of answers that did not agree: the others too.
            if failed || answered >= self.quorum {
                answers.widen();
            }
            if answered >= self.quorum && patience.is_none() {
                patience = Some(Instant::now() + self.hedge);
            }
        }
        log::debug!("{key}: quorum read without agreement, full read round");
        None
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
                        Err(e) => Answer::Failed(e),
                    }
                }
            })
            .await
            .map_err(|failure| ProposerError::NoQuorum {
                phase: Phase::Prepare,
                failure,
                effect_possible: false,
                resolved: false,
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
                    Err(e) => Answer::Failed(e),
                }
            }
        })
        .await
        .map(|round| round.conflict.is_none())
    }

    /// Sends one phase to every acceptor and returns the first quorum of yeses. Any conflict
    /// seen fast-forwards the ballot counter past it. With `complete_failures`, a phase that
    /// cannot reach a quorum still collects every answer before it reports.
    async fn round<T, F, Fut>(&self, complete_failures: bool, call: F) -> Result<Round<T>, Failure>
    where
        T: Send + 'static,
        F: Fn(Arc<dyn Acceptor>) -> Fut,
        Fut: std::future::Future<Output = Answer<T>> + Send + 'static,
    {
        let mut rx = self.send_all(call);
        let mut tally = Tally::new(self.acceptors.len(), self.quorum);
        let decided = loop {
            let Some((index, answer)) = rx.recv().await else {
                break Err(tally.failure());
            };
            let refused_or_failed = !matches!(answer, Answer::Yes(_));
            match tally.add(self.acceptors[index].name(), answer) {
                Decision::Pending => {
                    // The acceptors asked first can no longer all say yes: the others too.
                    if refused_or_failed {
                        rx.widen();
                    }
                }
                Decision::Quorum(yes) => break Ok(yes),
                Decision::NoQuorum(failure) => break Err(failure),
            }
        };
        let decided = match decided {
            Err(failure)
                if complete_failures
                    && self.control(UnsafeControl::ThriftyRefusalWithHeldCalls) =>
            {
                // NEGATIVE CONTROL: judged on the acceptors asked so far, the held calls
                // still armed (a refusal by all of them reads as "stored nowhere").
                let asked = rx.first.iter().filter(|first| **first).count();
                rx.abandon();
                Err(Failure {
                    total: asked,
                    ..failure
                })
            }
            Err(_) if complete_failures => {
                // Every acceptor's answer, so that the failure tells whether all refused:
                // the ones held back are asked now.
                rx.widen();
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

    /// Sends one call to the acceptors, each in its own task bounded by the timeout (so the
    /// slowest acceptor still gets the message after the caller stopped listening), and
    /// returns the answers as they arrive, with the acceptor's index. Thrifty, the calls to
    /// all but the first quorum of connected acceptors are held back until
    /// [`Fanout::widen`] or the hedge delay; a held call that was never released is never
    /// sent.
    fn send_all<T, F, Fut>(&self, call: F) -> Fanout<T>
    where
        T: Send + 'static,
        F: Fn(Arc<dyn Acceptor>) -> Fut,
        Fut: std::future::Future<Output = Answer<T>> + Send + 'static,
    {
        let (tx, rx) = mpsc::channel(self.acceptors.len().max(1));
        // The first quorum of connected acceptors in the configured order, passing over those
        // that lately let a phase wait past the hedge delay; all of them when fewer remain.
        let now = Instant::now();
        let first: Vec<bool> = if self.thrifty {
            let suspected = self.suspects.at(now);
            let mut chosen = 0;
            let connected: Vec<bool> = self
                .acceptors
                .iter()
                .enumerate()
                .map(|(index, acceptor)| {
                    let take = chosen < self.quorum && acceptor.is_connected() && !suspected[index];
                    chosen += usize::from(take);
                    take
                })
                .collect();
            if chosen < self.quorum {
                vec![true; self.acceptors.len()]
            } else {
                connected
            }
        } else {
            vec![true; self.acceptors.len()]
        };
        let (release, released) = watch::channel(false);
        let mut held = 0;
        for (index, acceptor) in self.acceptors.iter().enumerate() {
            let tx = tx.clone();
            let answer = call(acceptor.clone());
            let timeout = self.timeout;
            let hold = (!first[index]).then(|| (released.clone(), self.hedge));
            held += usize::from(hold.is_some());
            tokio::spawn(async move {
                if let Some((mut released, hedge)) = hold {
                    let ask = tokio::select! {
                        biased;
                        // Nobody listens any more: the phase was decided without it.
                        _ = tx.closed() => false,
                        released = released.wait_for(|released| *released) => released.is_ok(),
                        _ = tokio::time::sleep(hedge) => true,
                    };
                    if !ask {
                        return;
                    }
                }
                let answer = match tokio::time::timeout(timeout, answer).await {
                    Ok(answer) => answer,
                    Err(_) => Answer::Failed(AcceptorError::Timeout),
                };
                // The receiver is gone once the phase is decided; that is fine.
                let _ = tx.send((index, answer)).await;
            });
        }
        Fanout {
            rx,
            release: (held > 0).then_some(release),
            heard: vec![false; first.len()],
            first,
            suspect_after: now + self.hedge,
            suspects: (held > 0).then(|| self.suspects.clone()),
        }
    }
}

/// How long an acceptor that let a thrifty phase wait past the hedge delay is passed over
/// when choosing whom to ask first. A cut-off acceptor stays "connected" until its
/// connection has been silent for seconds; without this every phase would wait the hedge
/// delay for it meanwhile. With it, about one phase per node in this time does.
const SUSPICION: Duration = Duration::from_millis(500);

/// Per acceptor, until when it is passed over by thrifty phases.
#[derive(Debug, Default)]
struct Suspects(Mutex<Vec<Option<Instant>>>);

impl Suspects {
    fn new(acceptors: usize) -> Self {
        Suspects(Mutex::new(vec![None; acceptors]))
    }

    /// Per acceptor, whether it is passed over at `now` (one lock per phase).
    fn at(&self, now: Instant) -> Vec<bool> {
        let until = self.0.lock().unwrap_or_else(|e| e.into_inner());
        until
            .iter()
            .map(|until| until.is_some_and(|until| until > now))
            .collect()
    }

    fn suspect(&self, index: usize, now: Instant) {
        let mut until = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(slot) = until.get_mut(index) {
            *slot = Some(now + SUSPICION);
        }
    }
}

/// The answers of one phase as they arrive, and the calls held back for it (thrifty).
struct Fanout<T> {
    rx: mpsc::Receiver<(usize, Answer<T>)>,
    /// Releases the held calls; `None` once released or when none were held.
    release: Option<watch::Sender<bool>>,
    /// Which acceptors were asked at once, and which of all have answered (anything but a
    /// failure) so far.
    first: Vec<bool>,
    heard: Vec<bool>,
    /// When the hedge delay of the phase ends: a phase still undecided then passes over
    /// the acceptors asked at once that had not answered.
    suspect_after: Instant,
    /// The proposer's suspects, when calls were held back.
    suspects: Option<Arc<Suspects>>,
}

impl<T> Fanout<T> {
    async fn recv(&mut self) -> Option<(usize, Answer<T>)> {
        let answer = self.rx.recv().await;
        if let Some((index, Answer::Yes(_) | Answer::Conflict(_))) = &answer {
            if let Some(heard) = self.heard.get_mut(*index) {
                *heard = true;
            }
        }
        answer
    }

    /// Asks the acceptors held back too (at once; idempotent).
    fn widen(&mut self) {
        if let Some(release) = self.release.take() {
            let _ = release.send(true);
        }
    }

    /// NEGATIVE CONTROL ONLY: stops listening but leaves the held calls armed, to go out
    /// when the hedge delay passes (leaked: the held tasks must see neither the receiver nor
    /// the release go away).
    fn abandon(self) {
        std::mem::forget(self);
    }
}

impl<T> Drop for Fanout<T> {
    /// A phase that lasted past the hedge delay: the acceptors asked at once that had not
    /// answered by its end are passed over for a while.
    fn drop(&mut self) {
        let Some(suspects) = &self.suspects else {
            return;
        };
        let now = Instant::now();
        if now < self.suspect_after {
            return;
        }
        for (index, (first, heard)) in self.first.iter().zip(&self.heard).enumerate() {
            if *first && !*heard {
                suspects.suspect(index, now);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acceptor::memory::MemoryAcceptor;
    use crate::record::{self, Write};

    fn set(value: &str, state: Option<&str>, id: &str) -> String {
        record::apply(
            &Write::Set {
                value: value.into(),
            },
            state,
            id,
        )
        .map(|r| r.encode())
        .unwrap_or_default()
    }

    #[test]
    fn judge_tells_applied_not_applied_and_unknown() {
        let v = record::version;
        let base = set("a", None, "w1"); // index 1
        let ours = set("b", Some(&base), "w2"); // index 2
        let rival = set("b", Some(&base), "w3"); // same value, another write at index 2
        let later = set("c", Some(&ours), "w4"); // index 3
        let older = set("z", None, "w0"); // index 1, not our base
        assert_eq!(
            judge(v, Some(&base), Some(&ours), Some(&ours)),
            Verdict::Applied
        );
        assert_eq!(
            judge(v, Some(&base), Some(&ours), Some(&base)),
            Verdict::NotApplied
        );
        assert_eq!(
            judge(v, Some(&base), Some(&ours), Some(&rival)),
            Verdict::NotApplied
        );
        assert_eq!(
            judge(v, Some(&base), Some(&ours), Some(&older)),
            Verdict::NotApplied
        );
        assert_eq!(
            judge(v, Some(&base), Some(&ours), None),
            Verdict::NotApplied
        );
        // Above our index: may descend from ours or not.
        assert_eq!(
            judge(v, Some(&base), Some(&ours), Some(&later)),
            Verdict::Unknown
        );
        // Not records: nothing is proved.
        assert_eq!(judge(v, Some("x"), Some("y"), Some("z")), Verdict::Unknown);
    }

    /// Three in-memory acceptors and a proposer over them.
    fn cluster(quorum_reads: bool) -> (Vec<Arc<MemoryAcceptor>>, Proposer) {
        let acceptors: Vec<Arc<MemoryAcceptor>> = (1..=3)
            .map(|i| Arc::new(MemoryAcceptor::new(format!("a{i}"))))
            .collect();
        let config = ProposerConfig {
            quorum_reads,
            ..ProposerConfig::default()
        };
        let proposer = proposer_over(&acceptors, config);
        (acceptors, proposer)
    }

    /// A proposer (incarnation 7) over the acceptors given.
    fn proposer_over<A: Acceptor>(acceptors: &[Arc<A>], config: ProposerConfig) -> Proposer {
        let dyns = acceptors
            .iter()
            .map(|a| a.clone() as Arc<dyn Acceptor>)
            .collect();
        Proposer::with_incarnation(config, dyns, 7)
    }

    fn put(value: &'static str) -> impl Fn(Option<&str>) -> Result<Option<String>, ()> {
        move |_| Ok(Some(value.to_string()))
    }

    #[tokio::test]
    async fn a_quorum_read_writes_nothing_and_keeps_the_cached_ballot() {
        let (acceptors, proposer) = cluster(true);
        proposer.change("k", put("v1")).await.expect("write");
        let slots: Vec<_> = acceptors.iter().map(|a| a.slot("k")).collect();
        let cached = proposer.cache_bytes();
        assert!(cached > 0);
        assert_eq!(proposer.read("k").await, Ok(Some("v1".into())));
        assert_eq!(proposer.quorum_read_counts(), (1, 0));
        // Nothing changed anywhere: not a promise, not the cache.
        let after: Vec<_> = acceptors.iter().map(|a| a.slot("k")).collect();
        assert_eq!(after, slots);
        assert_eq!(proposer.cache_bytes(), cached);
        // The cached ballot still serves the next write in one round trip: it is accepted
        // under exactly the ballot the first write's accept had them promise.
        proposer.change("k", put("v2")).await.expect("write");
        for (acceptor, before) in acceptors.iter().zip(&slots) {
            assert_eq!(acceptor.slot("k").accepted, before.promise);
        }
        assert_eq!(proposer.read("k").await, Ok(Some("v2".into())));
    }

    #[tokio::test]
    async fn a_split_quorum_read_falls_back_to_the_full_round() {
        let (acceptors, proposer) = cluster(true);
        proposer.change("k", put("v1")).await.expect("write");
        // A write in flight at a higher ballot reached a1 only, and a3 is down: a1 and a2
        // disagree and no third answer can settle it.
        let high = Ballot::new(u64::from(u32::MAX), 9, 9);
        acceptors[0]
            .apply_accept("k", high, Some("v-minority"), high)
            .expect("accept");
        acceptors[2].set_down(true);
        let read = proposer.read("k").await;
        assert_eq!(proposer.quorum_read_counts(), (0, 1));
        // The full round either chose the minority's value (now on a quorum) or refused
        // against its promise; never a value only one acceptor held, unchosen.
        match read {
            Ok(state) => {
                assert_eq!(state.as_deref(), Some("v-minority"));
                assert_eq!(acceptors[1].slot("k").value.as_deref(), Some("v-minority"));
            }
            Err(e) => assert!(e.lost_race(), "{e}"),
        }
        // Without quorum reads a read is always a full round.
        let (_, proposer) = cluster(false);
        proposer.change("k", put("v1")).await.expect("write");
        assert_eq!(proposer.read("k").await, Ok(Some("v1".into())));
        assert_eq!(proposer.quorum_read_counts(), (0, 0));
    }

    /// An acceptor that lost its data answers reads as if it never saw the key; while it is
    /// recovering that answer must not count, or it and an acceptor that missed the write
    /// would agree on "missing" and lose an acknowledged write (the `CountRecoveringRead`
    /// control, which the simulation catches in only a few seeds, made deterministic).
    #[tokio::test]
    async fn a_recovering_acceptor_never_helps_a_quorum_read_agree() {
        use crate::acceptor::memory::MEMORY_CLUSTER;
        use crate::acceptor::{Identity, Standing};
        let (acceptors, proposer) = cluster(true);
        // v1 acknowledged on a1 and a2 while a3 was down: a3 never saw it.
        acceptors[2].set_down(true);
        proposer.change("k", put("v1")).await.expect("write");
        acceptors[2].set_down(false);
        // a2 loses everything and is marked again, as recovering.
        acceptors[1].wipe();
        acceptors[1].claim(Identity {
            cluster: MEMORY_CLUSTER.into(),
            acceptor: "a2".into(),
            standing: Standing::Recovering,
            mark: "m1".into(),
            set: "a2".into(),
            stamp: String::new(),
        });
        // a1 (v1) against a3 (nothing): no agreement, so the full round runs, in which a2
        // does not count either; a1 and a3 carry v1 forward.
        assert_eq!(proposer.read("k").await, Ok(Some("v1".into())));
        assert_eq!(proposer.quorum_read_counts(), (0, 1));
        assert_eq!(acceptors[2].slot("k").value.as_deref(), Some("v1"));
    }

    /// An in-memory acceptor whose every call is delivered and answered `lag` late (on the
    /// test's paused clock), counting the calls it was sent: a slow or hung acceptor that
    /// still looks connected.
    struct Lagging {
        inner: Arc<MemoryAcceptor>,
        lag: Mutex<Duration>,
        calls: AtomicU64,
        /// Every call fails, while the acceptor still counts as connected.
        failing: std::sync::atomic::AtomicBool,
    }

    impl Lagging {
        fn new(name: &str) -> Arc<Lagging> {
            Arc::new(Lagging {
                inner: Arc::new(MemoryAcceptor::new(name)),
                lag: Mutex::new(Duration::ZERO),
                calls: AtomicU64::new(0),
                failing: Default::default(),
            })
        }

        fn set_failing(&self, failing: bool) {
            self.failing.store(failing, Ordering::SeqCst);
        }

        fn set_lag(&self, lag: Duration) {
            *self.lag.lock().unwrap_or_else(|e| e.into_inner()) = lag;
        }

        fn calls(&self) -> u64 {
            self.calls.load(Ordering::SeqCst)
        }

        async fn arrive(&self) -> Result<(), AcceptorError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            let lag = *self.lag.lock().unwrap_or_else(|e| e.into_inner());
            if !lag.is_zero() {
                tokio::time::sleep(lag).await;
            }
            if self.failing.load(Ordering::SeqCst) {
                return Err(AcceptorError::Timeout);
            }
            Ok(())
        }
    }

    #[async_trait::async_trait]
    impl Acceptor for Lagging {
        fn name(&self) -> &str {
            self.inner.name()
        }

        fn is_connected(&self) -> bool {
            self.inner.is_connected()
        }

        async fn prepare(&self, key: &str, ballot: Ballot) -> Result<PrepareReply, AcceptorError> {
            self.arrive().await?;
            self.inner.prepare(key, ballot).await
        }

        async fn read(&self, key: &str) -> Result<ReadReply, AcceptorError> {
            self.arrive().await?;
            self.inner.read(key).await
        }

        async fn accept(
            &self,
            key: &str,
            ballot: Ballot,
            value: Option<&str>,
            next_promise: Ballot,
        ) -> Result<AcceptReply, AcceptorError> {
            self.arrive().await?;
            self.inner.accept(key, ballot, value, next_promise).await
        }
    }

    /// Three lagging acceptors and a proposer over them (quorum reads on).
    fn lagging_cluster(thrifty: bool) -> (Vec<Arc<Lagging>>, Proposer) {
        let acceptors: Vec<Arc<Lagging>> =
            (1..=3).map(|i| Lagging::new(&format!("a{i}"))).collect();
        let config = ProposerConfig {
            thrifty,
            ..ProposerConfig::default()
        };
        let proposer = proposer_over(&acceptors, config);
        (acceptors, proposer)
    }

    #[tokio::test(start_paused = true)]
    async fn a_thrifty_phase_asks_only_the_first_quorum() {
        let (acceptors, proposer) = lagging_cluster(true);
        proposer.change("k", put("v1")).await.expect("write");
        proposer.change("k", put("v2")).await.expect("write");
        assert_eq!(proposer.read("k").await, Ok(Some("v2".into())));
        // prepare, accept, accept (cached ballot), quorum read: never a3.
        let calls: Vec<u64> = acceptors.iter().map(|a| a.calls()).collect();
        assert_eq!(calls, [4, 4, 0]);
        // Let the held tasks see the phases end: still nothing for a3.
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(acceptors[2].calls(), 0);
    }

    /// One of the two asked first fails while still counted as connected: the failure itself
    /// widens the phase to the third. One known to be down is not asked at all.
    #[tokio::test(start_paused = true)]
    async fn a_thrifty_phase_asks_the_third_when_one_of_the_first_fails() {
        let (acceptors, proposer) = lagging_cluster(true);
        proposer.change("k", put("v1")).await.expect("write");
        acceptors[0].set_failing(true);
        proposer.change("k", put("v2")).await.expect("write");
        assert_eq!(acceptors[2].inner.slot("k").value.as_deref(), Some("v2"));
        assert_eq!(proposer.read("k").await, Ok(Some("v2".into())));
        acceptors[0].set_failing(false);
        acceptors[1].inner.set_down(true);
        let asked = acceptors[1].calls();
        proposer.change("k", put("v3")).await.expect("write");
        assert_eq!(proposer.read("k").await, Ok(Some("v3".into())));
        assert_eq!(acceptors[1].calls(), asked, "a2 is down: never asked");
        assert_eq!(acceptors[0].inner.slot("k").value.as_deref(), Some("v3"));
    }

    /// The accept that the two acceptors asked first both refuse is not "stored nowhere"
    /// until the held one answered: here it accepted, so the write may still be chosen.
    #[tokio::test(start_paused = true)]
    async fn a_thrifty_accept_refused_by_those_asked_hears_the_held_acceptor() {
        let (acceptors, proposer) = lagging_cluster(true);
        let high = Ballot::new(1 << 40, 9, 9);
        let ours = Ballot::new(5, 1, 7);
        let next = Ballot::new(6, 1, 7);
        for a in &acceptors[..2] {
            a.inner.apply_prepare("k", high).expect("prepare");
        }
        let failure = proposer
            .accept("k", ours, Some("v"), next)
            .await
            .expect_err("refused by a1 and a2");
        assert_eq!((failure.refused, failure.total, failure.yes), (2, 3, 1));
        assert!(!failure.all_refused(), "{failure}");
        assert_eq!(acceptors[2].inner.slot("k").value.as_deref(), Some("v"));
        // Refused by a3 too: now, and only now, stored nowhere.
        acceptors[2]
            .inner
            .apply_prepare("k", high)
            .expect("prepare");
        let failure = proposer
            .accept("k", Ballot::new(7, 1, 7), Some("w"), Ballot::new(8, 1, 7))
            .await
            .expect_err("refused by all");
        assert!(failure.all_refused(), "{failure}");
        assert_eq!(acceptors[2].calls(), 2);
    }

    /// A first acceptor that hangs but still looks connected costs each phase the hedge
    /// delay, not the acceptor timeout.
    #[tokio::test(start_paused = true)]
    async fn a_hung_first_acceptor_costs_a_write_the_hedge_not_the_timeout() {
        let (acceptors, proposer) = lagging_cluster(true);
        acceptors[0].set_lag(Duration::from_secs(60));
        let started = Instant::now();
        proposer.change("k", put("v1")).await.expect("write");
        // The prepare after one hedge delay; a1, which let it wait, is then passed over, so
        // the accept asks a2 and a3 at once.
        assert_eq!(started.elapsed(), ProposerConfig::default().hedge);
    }

    /// Thrifty writes leave the third acceptor without the keys' latest states. When the
    /// first acceptor then turns slow while still connected (an fsync stall, a frozen Redis
    /// for up to the 3 s liveness), a quorum read asks the third after one hedge delay, finds
    /// it stale, waits one hedge delay more and falls back to a full round on the two that
    /// answer, which brings the third up to date; the slow one is passed over meanwhile, so
    /// the next read agrees at once. (Before the bounded wait, found by the review of the
    /// thrifty change: 200 ms with a1 lagging 200 ms, 310 ms with a1 hung.)
    #[tokio::test(start_paused = true)]
    async fn a_slow_first_acceptor_costs_one_read_two_hedge_delays() {
        let hedge = ProposerConfig::default().hedge;
        for lag in [200, 60_000] {
            let (acceptors, proposer) = lagging_cluster(true);
            proposer.change("k", put("v1")).await.expect("write");
            acceptors[0].set_lag(Duration::from_millis(lag));
            let started = Instant::now();
            assert_eq!(proposer.read("k").await, Ok(Some("v1".into())));
            assert_eq!(started.elapsed(), 2 * hedge, "a1 lagging {lag} ms");
            assert_eq!(proposer.quorum_read_counts(), (0, 1));
            let started = Instant::now();
            assert_eq!(proposer.read("k").await, Ok(Some("v1".into())));
            assert_eq!(started.elapsed(), Duration::ZERO, "a1 lagging {lag} ms");
            assert_eq!(proposer.quorum_read_counts(), (1, 1));
        }
    }

    /// Once the first acceptor is gone, the second and third answer a quorum read; the third
    /// missed the thrifty writes, so the first read of each key written since cannot agree
    /// and becomes a full round, which brings the third up to date: one full round per key,
    /// then quorum reads agree again. Asking everyone, the first read agrees already.
    #[tokio::test(start_paused = true)]
    async fn after_a_failover_each_key_costs_one_full_round() {
        let mut counts = Vec::new();
        for thrifty in [false, true] {
            let (acceptors, proposer) = lagging_cluster(thrifty);
            proposer.change("k", put("v1")).await.expect("write");
            acceptors[0].inner.set_down(true);
            assert_eq!(proposer.read("k").await, Ok(Some("v1".into())));
            assert_eq!(proposer.read("k").await, Ok(Some("v1".into())));
            counts.push(proposer.quorum_read_counts());
        }
        // (agreed, fell back): asking everyone (2, 0); thrifty (1, 1).
        assert_eq!(counts, [(2, 0), (1, 1)]);
    }

    /// A held call starts at the latest when the hedge delay passes, so a thrifty phase
    /// ends within one acceptor timeout plus the hedge delay, as long as the hedge delay is
    /// below the timeout (the configuration refuses any other): a failure that arrives
    /// only at the timeout would otherwise release the held call then, and the phase would
    /// take two timeouts.
    #[tokio::test(start_paused = true)]
    async fn a_thrifty_phase_ends_within_the_timeout_plus_the_hedge() {
        for hedge_ms in [10, 299, 1000] {
            let (acceptors, _) = lagging_cluster(true);
            let config = ProposerConfig {
                hedge: Duration::from_millis(hedge_ms),
                ..ProposerConfig::default()
            };
            let proposer = proposer_over(&acceptors, config);
            // a1 answers at once, a2 and a3 hang: the prepare fails.
            acceptors[1].set_lag(Duration::from_secs(60));
            acceptors[2].set_lag(Duration::from_secs(60));
            let started = Instant::now();
            let error = proposer
                .change("k", put("v1"))
                .await
                .expect_err("no quorum");
            assert_eq!(error.phase(), Some(Phase::Prepare));
            let timeout = ProposerConfig::default().timeout;
            let expected = timeout + Duration::from_millis(hedge_ms).min(timeout);
            assert_eq!(started.elapsed(), expected, "hedge {hedge_ms} ms");
        }
    }

    #[test]
    fn the_cache_is_bounded_in_bytes_and_hands_a_ballot_out_once() {
        let mut cache = LeaderCache {
            entries: LruCache::unbounded(),
            bytes: 0,
            budget: 1000,
        };
        let b = Ballot::new(1, 1, 1);
        for i in 0..20 {
            cache.put(&format!("k{i}"), b, Some("x".repeat(200)));
            assert!(cache.bytes <= 1000, "{} bytes", cache.bytes);
        }
        assert_eq!(cache.entries.len(), 3);
        assert!(cache.take("k19").is_some());
        assert!(cache.take("k19").is_none());
        cache.put("huge", b, Some("x".repeat(2000)));
        assert!(cache.take("huge").is_none());
    }
}
