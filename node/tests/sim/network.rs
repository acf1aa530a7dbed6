//! The simulated network: acceptors behind lossy links, with acceptor invariants checked on
//! every step.
//!
//! Every (proposer, acceptor) pair is a [`Link`] implementing the proposer's `Acceptor` trait.
//! For each call the link draws, from the seeded RNG shared by the whole world, whether the
//! request is lost, how long it travels, whether it is delivered twice (the copy later),
//! whether the reply is lost or late, and whether the caller sees a connection error although
//! the request was applied. Links can be cut (partitions); a cut is checked when the request
//! arrives and when the reply leaves. Delivery runs in its own task, so a request the proposer
//! already gave up on (its timeout fired, or it crashed) still lands later: late messages and
//! reordering come for free from the random delays.
//!
//! Acceptors are `MemoryAcceptor`s applying the pure rules atomically; they can be wiped (data
//! and identity lost, like FLUSHALL), after which they refuse until marked recovering, and a
//! recovering acceptor's answers reach the proposer as `AcceptorError::Recovering` (through
//! the production `acceptor::counted`), except under the negative controls, which count them
//! (see [`Controls`]). Another control resends a call whose reply was lost, as a connection
//! layer that retries "broken pipe" would. [`AimedWipes`] wipes an acceptor at the moment a
//! call lands on it in the window where counting a recovering acceptor is unsafe. Around every step the world checks: the promise never decreases, the accepted ballot never decreases nor exceeds
//! the promise, the value changes only with the accepted ballot, and one value per ballot:
//! every (key, ballot) ever accepted anywhere maps to a single value.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use perseus_node::acceptor::memory::{MemoryAcceptor, Snapshot, MEMORY_CLUSTER};
use perseus_node::acceptor::rules::Slot;
use perseus_node::acceptor::{
    acceptor_set, counted, AcceptReply, Acceptor, AcceptorError, AdminAcceptor, Answers, Identity,
    IdentityOp, Inspection, PrepareReply, ReadReply, Standing,
};
use perseus_node::ballot::Ballot;
use rand::rngs::StdRng;
use rand::Rng;
use tokio::sync::oneshot;

/// Fault probabilities of one run (drawn per seed).
#[derive(Clone, Copy, Debug, Default)]
pub struct Faults {
    /// The request is lost (the caller waits for its timeout).
    pub drop_request: f64,
    /// The reply is lost.
    pub drop_reply: f64,
    /// The caller gets a connection error (after the request was applied).
    pub error_reply: f64,
    /// The request is applied a second time, later.
    pub duplicate: f64,
    /// The request or reply is slow (possibly beyond the proposer's timeout).
    pub slow: f64,
    /// A cut link refuses the connection at once instead of swallowing the request.
    pub refuse_when_cut: f64,
    /// Normal one-way latency bound.
    pub max_delay: Duration,
    /// Slow one-way latency bound.
    pub max_slow_delay: Duration,
}

impl Faults {
    /// A perfect network (used to read the final state).
    pub fn none() -> Self {
        Faults {
            max_delay: Duration::from_millis(1),
            max_slow_delay: Duration::from_millis(1),
            ..Faults::default()
        }
    }
}

/// NEGATIVE CONTROLS at the acceptors' end of the links: unsafe ways of counting a recovering
/// acceptor's answers, and an unsafe resend.
#[derive(Clone, Copy, Debug, Default)]
pub struct Controls {
    /// Count a recovering acceptor's promise in prepare quorums.
    pub count_recovering_prepare: bool,
    /// Count a recovering acceptor's acceptance in accept quorums (and so trust the
    /// one-round-trip promise it gave with it).
    pub count_recovering_accept: bool,
    /// Count a recovering acceptor's answer to a quorum read.
    pub count_recovering_read: bool,
    /// Now and then the reply is lost with the connection after the acceptor ran the call,
    /// and the call is sent once more; the caller gets the second reply (an accept refused by
    /// the promise its first copy set). What sending a call again on "broken pipe" does.
    pub resend_after_lost_reply: bool,
}

/// CHAOS aimed at the window in which counting a recovering acceptor is unsafe: an acceptor is
/// wiped, and marked recovering at once (as a membership task that noticed it would), at the
/// worst moment, and only while every acceptor is a member (one wiped at a time, as the
/// wiper does). Two moments:
/// - just before an accept lands on it that its promise would refuse, while the other members
///   that take that accept are one short of a quorum: the wipe erases the promise that refused
///   it, so the wiped acceptor completes a quorum for a ballot that a higher one, promised
///   by a quorum including the wiped acceptor, has already overtaken. A correct proposer does
///   not count the recovering acceptance and fails the accept; one that counts it
///   (`count_recovering_accept`) reports a write that the higher ballot then overwrites, and
///   a quorum read that counts the recovering answer (`count_recovering_read`) may return
///   that state, which is never chosen;
/// - just before a read lands on it while it holds an accepted state for the key and another
///   member never accepted one: wiped, it agrees with that member on "no value", though the
///   state it forgot may be an acknowledged write (`count_recovering_read`).
///
/// Only calls whose reply the caller will hear (still waiting, the reply not lost) are aimed
/// at: a wipe for a late copy nobody hears is wasted.
#[derive(Clone, Copy, Debug, Default)]
pub struct AimedWipes {
    pub enabled: bool,
}

/// How often a call is resent under [`Controls::resend_after_lost_reply`].
const RESEND_RATE: f64 = 0.1;

/// Counters for the closing summary.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetStats {
    pub sent: u64,
    pub delivered: u64,
    pub lost_requests: u64,
    pub lost_replies: u64,
    pub duplicates: u64,
    pub refused: u64,
}

struct WorldState {
    rng: StdRng,
    faults: Faults,
    /// Links currently cut, with how many overlapping partitions cut them.
    cuts: BTreeMap<(usize, usize), u32>,
    /// One value per ballot: every (key, ballot) accepted anywhere, with its value.
    chosen: HashMap<(String, Ballot), Option<String>>,
    violations: Vec<String>,
    stats: NetStats,
    /// Acceptors wiped by [`AimedWipes`] (numbering their marks).
    aimed_wipes_done: u64,
    /// A running hash of every acceptor step (what, where, when), to prove replays identical.
    trace: u64,
}

/// The acceptors, the network between them and the proposers, and the shared RNG.
pub struct World {
    /// Virtual time at creation (the trace hashes times relative to it).
    start: tokio::time::Instant,
    acceptors: Vec<MemoryAcceptor>,
    controls: Controls,
    aimed_wipes: AimedWipes,
    state: Mutex<WorldState>,
    /// The cluster each node's calls check, as its membership task set it last
    /// (`AdminAcceptor::set_cluster`, as on a Redis acceptor): `None` refuses every call. A
    /// node not listed (the final reader) checks [`World::original`].
    clusters: Mutex<HashMap<usize, Option<String>>>,
    /// Nodes paused (a process stopped: a long GC, SIGSTOP, a VM descheduled) until when:
    /// nothing they send leaves before.
    paused: Mutex<HashMap<usize, tokio::time::Instant>>,
    /// Pauses waiting for their node's next initialising claim on an acceptor after the first
    /// (the node stopped half-way through an initialisation: its later claims land whenever
    /// it resumes).
    armed: Mutex<HashMap<usize, Duration>>,
    blank: Mutex<bool>,
    /// The cluster the run's data belongs to: [`MEMORY_CLUSTER`], or, for acceptors that
    /// start blank, the first cluster any acceptor became a member of.
    original: Mutex<Option<String>>,
}

/// What the network will do with one request, drawn when it is sent.
struct Plan {
    refuse: bool,
    request_delay: Duration,
    drop_request: bool,
    duplicate: Option<Duration>,
    reply_delay: Duration,
    drop_reply: bool,
    error_reply: bool,
    /// The call runs twice and the caller gets the second reply (negative control).
    resend: bool,
}

impl World {
    pub fn new(
        acceptors: usize,
        rng: StdRng,
        faults: Faults,
        controls: Controls,
        aimed_wipes: AimedWipes,
    ) -> Arc<World> {
        let names: Vec<String> = (0..acceptors).map(|i| format!("a{}", i + 1)).collect();
        let set = acceptor_set(names.iter().map(String::as_str));
        Arc::new(World {
            start: tokio::time::Instant::now(),
            acceptors: names
                .iter()
                .map(|name| MemoryAcceptor::in_set(name.clone(), set.clone()))
                .collect(),
            controls,
            aimed_wipes,
            clusters: Mutex::new(HashMap::new()),
            paused: Mutex::new(HashMap::new()),
            armed: Mutex::new(HashMap::new()),
            blank: Mutex::new(false),
            original: Mutex::new(Some(MEMORY_CLUSTER.into())),
            state: Mutex::new(WorldState {
                rng,
                faults,
                cuts: BTreeMap::new(),
                chosen: HashMap::new(),
                violations: Vec::new(),
                stats: NetStats::default(),
                aimed_wipes_done: 0,
                trace: 0,
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, WorldState> {
        // A panic elsewhere cannot leave the state inconsistent in a way that matters here.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every acceptor loses its identity record at the start (new Redis servers): the nodes'
    /// membership tasks initialise the cluster, and nodes know none until then.
    pub fn start_blank(&self, nodes: usize) {
        for a in &self.acceptors {
            a.wipe();
        }
        *lock_plain(&self.original) = None;
        *lock_plain(&self.blank) = true;
        let mut clusters = lock_plain(&self.clusters);
        for node in 0..nodes {
            clusters.insert(node, None);
        }
    }

    /// Node `node` stops for `pause`: whatever it sends meanwhile leaves when it resumes
    /// (its membership task may then act on an inspection made before, its initialisation's
    /// claims land late).
    pub fn pause(&self, node: usize, pause: Duration) {
        let until = tokio::time::Instant::now() + pause;
        lock_plain(&self.paused).insert(node, until);
    }

    /// The first node to send an initialising claim to an acceptor after the first stops
    /// for `pause` (see `armed`).
    pub fn arm_pause(&self, pause: Duration) {
        lock_plain(&self.armed).insert(usize::MAX, pause);
    }

    /// Whether the acceptors started blank ([`World::start_blank`]).
    pub fn start_was_blank(&self) -> bool {
        lock_plain(&self.blank).to_owned()
    }

    /// Whether node `node` is stopped right now.
    pub fn paused_now(&self, node: usize) -> bool {
        self.paused_until(node)
            .is_some_and(|until| until > tokio::time::Instant::now())
    }

    /// A call of node `node` that acceptor `acceptor` admitted as `standing`: one that counts
    /// (a member's) under another cluster than the run's own means the node serves a cluster
    /// initialised again under a new id (reported once per node).
    fn check_served(&self, node: usize, acceptor: usize, standing: Standing) {
        if standing != Standing::Member {
            return;
        }
        let (Some(original), Some(cluster)) = (self.original(), self.cluster_of(node)) else {
            return;
        };
        if cluster != original {
            let message = format!(
                "node p{} SERVED UNDER A NEW CLUSTER {cluster} (acceptor {} counted; the run's \
                 cluster is {original})",
                node + 1,
                self.acceptors[acceptor].name()
            );
            let mut state = self.lock();
            if !state
                .violations
                .iter()
                .any(|v| v.starts_with(&message[..12]))
            {
                state.violations.push(message);
            }
        }
    }

    fn paused_until(&self, node: usize) -> Option<tokio::time::Instant> {
        lock_plain(&self.paused).get(&node).copied()
    }

    /// The cluster node `node`'s calls check.
    pub fn cluster_of(&self, node: usize) -> Option<String> {
        match lock_plain(&self.clusters).get(&node) {
            Some(cluster) => cluster.clone(),
            None => self.original(),
        }
    }

    fn set_cluster(&self, node: usize, cluster: Option<&str>) {
        lock_plain(&self.clusters).insert(node, cluster.map(str::to_string));
    }

    /// The cluster the run's data belongs to (see [`World::original`]).
    pub fn original(&self) -> Option<String> {
        lock_plain(&self.original).clone()
    }

    /// Runs `f` with the world's RNG (the single source of randomness of a run).
    pub fn with_rng<T>(&self, f: impl FnOnce(&mut StdRng) -> T) -> T {
        f(&mut self.lock().rng)
    }

    pub fn set_faults(&self, faults: Faults) {
        self.lock().faults = faults;
    }

    pub fn cut(&self, links: &[(usize, usize)]) {
        let mut state = self.lock();
        for link in links {
            *state.cuts.entry(*link).or_default() += 1;
        }
    }

    pub fn heal(&self, links: &[(usize, usize)]) {
        let mut state = self.lock();
        for link in links {
            if let Some(n) = state.cuts.get_mut(link) {
                *n -= 1;
                if *n == 0 {
                    state.cuts.remove(link);
                }
            }
        }
    }

    pub fn heal_all(&self) {
        self.lock().cuts.clear();
    }

    fn is_cut(&self, link: (usize, usize)) -> bool {
        self.lock().cuts.contains_key(&link)
    }

    pub fn violation(&self, message: String) {
        self.lock().violations.push(message);
    }

    pub fn violations(&self) -> Vec<String> {
        self.lock().violations.clone()
    }

    /// The running hash of every acceptor step so far.
    pub fn trace(&self) -> u64 {
        self.lock().trace
    }

    pub fn stats(&self) -> NetStats {
        self.lock().stats
    }

    pub fn acceptor_count(&self) -> usize {
        self.acceptors.len()
    }

    fn plan(&self, link: (usize, usize)) -> Plan {
        let mut state = self.lock();
        let f = state.faults;
        let cut = state.cuts.contains_key(&link);
        state.stats.sent += 1;
        let rng = &mut state.rng;
        let delay = |rng: &mut StdRng| {
            let bound = if rng.random_bool(f.slow) {
                f.max_slow_delay
            } else {
                f.max_delay
            };
            Duration::from_micros(rng.random_range(0..=bound.as_micros() as u64))
        };
        let request_delay = delay(rng);
        let reply_delay = delay(rng);
        let duplicate = if rng.random_bool(f.duplicate) {
            Some(Duration::from_micros(
                rng.random_range(0..=f.max_slow_delay.as_micros() as u64 * 2),
            ))
        } else {
            None
        };
        Plan {
            refuse: cut && rng.random_bool(f.refuse_when_cut),
            request_delay,
            drop_request: rng.random_bool(f.drop_request),
            duplicate,
            reply_delay,
            drop_reply: rng.random_bool(f.drop_reply),
            error_reply: rng.random_bool(f.error_reply),
            // Drawn only under the control, so correct runs replay as before.
            resend: self.controls.resend_after_lost_reply && rng.random_bool(RESEND_RATE),
        }
    }

    /// Acceptor `index` itself (identity, wipe, keys: the membership task's view).
    pub fn acceptor(&self, index: usize) -> &MemoryAcceptor {
        &self.acceptors[index]
    }

    /// Acceptor `index` loses its data and identity (FLUSHALL, a new volume).
    pub fn wipe(&self, index: usize) {
        self.acceptors[index].wipe();
        self.trace_event("wipe", index);
    }

    /// Acceptor `index` restarts with every write it took (a new life: nothing proves it).
    pub fn restart(&self, index: usize) {
        self.acceptors[index].restart();
        self.trace_event("restart", index);
    }

    /// A copy of acceptor `index`'s whole state, identity included.
    pub fn snapshot(&self, index: usize) -> Snapshot {
        self.acceptors[index].snapshot()
    }

    /// Acceptor `index`'s whole state goes back to `snapshot` (an old backup restored, a
    /// truncated AOF): promises and accepts since are forgotten, its identity is the old one.
    pub fn roll_back(&self, index: usize, snapshot: &Snapshot) {
        self.acceptors[index].roll_back(snapshot);
        self.trace_event("roll back", index);
    }

    /// Whether acceptor `index` is a member whose data is one unbroken history (it counts).
    pub fn level_member(&self, index: usize) -> bool {
        let a = &self.acceptors[index];
        a.identity()
            .is_some_and(|id| id.standing == Standing::Member && id.stamp == a.life())
    }

    fn trace_event(&self, what: &str, index: usize) {
        let mut state = self.lock();
        let mut hasher = DefaultHasher::new();
        (state.trace, what, index, self.start.elapsed()).hash(&mut hasher);
        state.trace = hasher.finish();
    }

    /// An identity operation of a node's membership task, at the acceptor.
    fn deliver_identity(&self, acceptor: usize, op: &IdentityOp) -> Inspection {
        let inspection = self.acceptors[acceptor].apply_identity(op);
        if let Some(id) = &inspection.identity {
            let mut original = lock_plain(&self.original);
            if original.is_none() && id.standing == Standing::Member {
                *original = Some(id.cluster.clone());
            }
        }
        let mut state = self.lock();
        let mut hasher = DefaultHasher::new();
        let record = inspection
            .identity
            .as_ref()
            .map(|id| (id.standing.as_str(), id.mark.clone(), id.stamp.clone()));
        (
            state.trace,
            "identity",
            acceptor,
            record,
            self.start.elapsed(),
        )
            .hash(&mut hasher);
        state.trace = hasher.finish();
        inspection
    }

    /// Acceptors wiped by [`AimedWipes`] so far.
    pub fn aimed_wipes_done(&self) -> u64 {
        self.lock().aimed_wipes_done
    }

    /// [`AimedWipes`]: wipes acceptor `acceptor` and marks it recovering if the accept of
    /// `ballot` about to land on it falls in the window (see there). `heard`: the caller will
    /// hear this reply.
    fn wipe_if_in_window(&self, acceptor: usize, key: &str, ballot: Ballot, heard: bool) {
        if !self.aimed_wipes.enabled || !heard {
            return;
        }
        let all_members = self.all_members();
        let refuses = |slot: &Slot| ballot < slot.promise || ballot <= slot.accepted;
        let here = self.acceptors[acceptor].slot(key);
        // The other members that take (or already took) this very accept: with the wiped
        // acceptor's acceptance they make a quorum, without it they do not (the others refuse
        // already, and promises only grow).
        let taken_elsewhere = self
            .acceptors
            .iter()
            .enumerate()
            .filter(|&(i, a)| {
                let slot = a.slot(key);
                i != acceptor && (slot.accepted == ballot || !refuses(&slot))
            })
            .count();
        let quorum = self.acceptors.len() / 2 + 1;
        if !(all_members && refuses(&here) && taken_elsewhere + 1 == quorum) {
            return;
        }
        self.wipe_and_mark(acceptor);
    }

    fn all_members(&self) -> bool {
        (0..self.acceptors.len()).all(|i| self.level_member(i))
    }

    /// Wipes acceptor `acceptor` and marks it recovering at once (its own mark, `w<n>`,
    /// which no catch-up pass started before can promote).
    fn wipe_and_mark(&self, acceptor: usize) {
        self.wipe(acceptor);
        let mark = {
            let mut state = self.lock();
            state.aimed_wipes_done += 1;
            format!("w{}", state.aimed_wipes_done)
        };
        self.mark_recovering(acceptor, mark);
    }

    /// Writes acceptor `acceptor`'s identity as recovering with `mark`, as the nodes'
    /// membership task does for an acceptor found without one.
    pub fn mark_recovering(&self, acceptor: usize, mark: String) {
        let Some(cluster) = self.original() else {
            return;
        };
        let a = &self.acceptors[acceptor];
        let set = acceptor_set(self.acceptors.iter().map(|a| a.name()));
        a.claim(Identity {
            cluster,
            acceptor: a.name().into(),
            standing: Standing::Recovering,
            mark,
            set,
            stamp: String::new(),
        });
    }

    /// [`AimedWipes`] for reads: wipes acceptor `acceptor` and marks it recovering if it holds
    /// an accepted state of `key` that another member never accepted (see there).
    fn wipe_if_in_read_window(&self, acceptor: usize, key: &str, heard: bool) {
        if !self.aimed_wipes.enabled || !heard {
            return;
        }
        let all_members = self.all_members();
        let holds = self.acceptors[acceptor].slot(key).accepted != Ballot::ZERO;
        let never_accepted_elsewhere = self
            .acceptors
            .iter()
            .enumerate()
            .any(|(i, a)| i != acceptor && a.slot(key).accepted == Ballot::ZERO);
        if all_members && holds && never_accepted_elsewhere {
            self.wipe_and_mark(acceptor);
        }
    }

    fn deliver_prepare(
        &self,
        node: usize,
        acceptor: usize,
        key: &str,
        ballot: Ballot,
    ) -> Result<PrepareReply, AcceptorError> {
        let a = &self.acceptors[acceptor];
        let before = a.slot(key);
        let reply = a.apply_prepare(self.cluster_of(node).as_deref(), key, ballot);
        self.check_step(acceptor, key, &before, &a.slot(key));
        let (reply, standing) = reply?;
        self.check_served(node, acceptor, standing);
        if self.controls.count_recovering_prepare {
            return Ok(reply);
        }
        counted(standing, reply, |r| {
            matches!(r, PrepareReply::Promised { .. })
        })
    }

    /// A quorum read at the acceptor: it must change nothing (checked), and a recovering
    /// acceptor's answer never counts, except under its negative control.
    fn deliver_read(
        &self,
        node: usize,
        acceptor: usize,
        key: &str,
        heard: bool,
    ) -> Result<ReadReply, AcceptorError> {
        self.wipe_if_in_read_window(acceptor, key, heard);
        let a = &self.acceptors[acceptor];
        let before = a.slot(key);
        let reply = a.apply_read(self.cluster_of(node).as_deref(), key);
        let after = a.slot(key);
        self.check_step(acceptor, key, &before, &after);
        if after != before {
            self.violation(format!(
                "acceptor {}, key {key}: a read changed the slot from {before:?} to {after:?}",
                a.name()
            ));
        }
        let (reply, standing) = reply?;
        self.check_served(node, acceptor, standing);
        if self.controls.count_recovering_read {
            return Ok(reply);
        }
        counted(standing, reply, |_| true)
    }

    /// `link`: the calling node and the acceptor.
    fn deliver_accept(
        &self,
        (node, acceptor): (usize, usize),
        key: &str,
        ballot: Ballot,
        value: Option<&str>,
        next: Ballot,
        heard: bool,
    ) -> Result<AcceptReply, AcceptorError> {
        self.wipe_if_in_window(acceptor, key, ballot, heard);
        let a = &self.acceptors[acceptor];
        let before = a.slot(key);
        let reply = a.apply_accept(self.cluster_of(node).as_deref(), key, ballot, value, next);
        self.check_step(acceptor, key, &before, &a.slot(key));
        let (reply, standing) = reply?;
        self.check_served(node, acceptor, standing);
        if self.controls.count_recovering_accept {
            return Ok(reply);
        }
        counted(standing, reply, |r| *r == AcceptReply::Accepted)
    }

    /// A prepare of many keys (the catch-up pass's batch), applied atomically as Redis runs
    /// its one script, with the invariants checked on every key.
    fn deliver_prepare_many(
        &self,
        node: usize,
        acceptor: usize,
        keys: &[String],
        ballot: Ballot,
    ) -> Answers<PrepareReply> {
        let a = &self.acceptors[acceptor];
        let before: Vec<Slot> = keys.iter().map(|k| a.slot(k)).collect();
        let reply = a.apply_prepare_many(self.cluster_of(node).as_deref(), keys, ballot);
        for (key, before) in keys.iter().zip(&before) {
            self.check_step(acceptor, key, before, &a.slot(key));
        }
        let (replies, standing) = reply?;
        Ok(replies
            .into_iter()
            .map(|reply| {
                if self.controls.count_recovering_prepare {
                    return Ok(reply);
                }
                counted(standing, reply, |r| {
                    matches!(r, PrepareReply::Promised { .. })
                })
            })
            .collect())
    }

    /// An accept of many keys (the catch-up pass's batch), as [`World::deliver_prepare_many`].
    fn deliver_accept_many(
        &self,
        node: usize,
        acceptor: usize,
        writes: &[(String, Option<String>)],
        ballot: Ballot,
        next: Ballot,
    ) -> Answers<AcceptReply> {
        let a = &self.acceptors[acceptor];
        let before: Vec<Slot> = writes.iter().map(|(k, _)| a.slot(k)).collect();
        let reply = a.apply_accept_many(self.cluster_of(node).as_deref(), writes, ballot, next);
        for ((key, _), before) in writes.iter().zip(&before) {
            self.check_step(acceptor, key, before, &a.slot(key));
        }
        let (replies, standing) = reply?;
        Ok(replies
            .into_iter()
            .map(|reply| {
                if self.controls.count_recovering_accept {
                    return Ok(reply);
                }
                counted(standing, reply, |r| *r == AcceptReply::Accepted)
            })
            .collect())
    }

    /// The acceptor invariants, checked around every step.
    fn check_step(&self, acceptor: usize, key: &str, before: &Slot, after: &Slot) {
        let mut state = self.lock();
        state.stats.delivered += 1;
        let mut hasher = DefaultHasher::new();
        (state.trace, acceptor, key, after.promise, after.accepted).hash(&mut hasher);
        (&after.value, self.start.elapsed()).hash(&mut hasher);
        state.trace = hasher.finish();
        let name = self.acceptors[acceptor].name();
        let mut problems = Vec::new();
        if after.promise < before.promise {
            problems.push(format!(
                "promise decreased from {} to {}",
                before.promise, after.promise
            ));
        }
        if after.accepted < before.accepted {
            problems.push(format!(
                "accepted ballot decreased from {} to {}",
                before.accepted, after.accepted
            ));
        }
        if after.accepted > after.promise {
            problems.push(format!(
                "accepted ballot {} above the promise {}",
                after.accepted, after.promise
            ));
        }
        if after.accepted == before.accepted && after.value != before.value {
            problems.push(format!(
                "value changed without a new ballot (still {})",
                after.accepted
            ));
        }
        if after.accepted != before.accepted {
            match state.chosen.get(&(key.to_string(), after.accepted)) {
                Some(value) if *value != after.value => problems.push(format!(
                    "ONE VALUE PER BALLOT broken: ballot {} carries {:?} here but {:?} elsewhere",
                    after.accepted, after.value, value
                )),
                Some(_) => {}
                None => {
                    state
                        .chosen
                        .insert((key.to_string(), after.accepted), after.value.clone());
                }
            }
        }
        for problem in problems {
            state
                .violations
                .push(format!("acceptor {name}, key {key}: {problem}"));
        }
    }
}

/// The link from proposer `proposer` to acceptor `acceptor`, as that proposer's `Acceptor`.
pub struct Link {
    world: Arc<World>,
    proposer: usize,
    acceptor: usize,
    name: String,
}

impl Link {
    pub fn new(world: Arc<World>, proposer: usize, acceptor: usize) -> Self {
        Link {
            name: format!("a{}", acceptor + 1),
            world,
            proposer,
            acceptor,
        }
    }

    /// Sends one request through the network; `deliver` applies it at the acceptor, told
    /// whether the caller will hear its reply (still waiting, and the reply will not be lost
    /// on the way: what only [`AimedWipes`] looks at).
    async fn send<R: Send + 'static>(
        &self,
        deliver: impl Fn(&World, bool) -> Result<R, AcceptorError> + Send + Sync + 'static,
    ) -> Result<R, AcceptorError> {
        let link = (self.proposer, self.acceptor);
        if let Some(until) = self.world.paused_until(self.proposer) {
            tokio::time::sleep_until(until).await;
        }
        let plan = self.world.plan(link);
        if plan.refuse {
            self.world.lock().stats.refused += 1;
            return Err(AcceptorError::NotConnected);
        }
        let (tx, rx) = oneshot::channel();
        let world = self.world.clone();
        let deliver = Arc::new(deliver);
        tokio::spawn(async move {
            tokio::time::sleep(plan.request_delay).await;
            if plan.drop_request || world.is_cut(link) {
                world.lock().stats.lost_requests += 1;
                return;
            }
            let heard = !tx.is_closed() && !plan.drop_reply && !plan.error_reply;
            let mut reply = deliver(&world, heard && !plan.resend);
            if plan.resend {
                reply = deliver(&world, heard);
            }
            if let Some(later) = plan.duplicate {
                let world = world.clone();
                let deliver = deliver.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(later).await;
                    if !world.is_cut(link) {
                        world.lock().stats.duplicates += 1;
                        let _ = deliver(&world, false);
                    }
                });
            }
            tokio::time::sleep(plan.reply_delay).await;
            if plan.drop_reply || world.is_cut(link) {
                world.lock().stats.lost_replies += 1;
                return;
            }
            // The caller may be gone (timed out, crashed): the reply is then simply lost.
            let _ = tx.send(reply);
        });
        match rx.await {
            Ok(_) if plan.error_reply => Err(AcceptorError::Io("connection reset".into())),
            Ok(reply) => reply,
            // Lost on the way: no answer ever comes, the proposer's timeout must fire.
            Err(_) => std::future::pending().await,
        }
    }
}

#[async_trait]
impl Acceptor for Link {
    fn name(&self) -> &str {
        &self.name
    }

    fn is_connected(&self) -> bool {
        !self.world.is_cut((self.proposer, self.acceptor))
    }

    async fn prepare(&self, key: &str, ballot: Ballot) -> Result<PrepareReply, AcceptorError> {
        let (key, acceptor, node) = (key.to_string(), self.acceptor, self.proposer);
        self.send(move |world, _| world.deliver_prepare(node, acceptor, &key, ballot))
            .await
    }

    async fn read(&self, key: &str) -> Result<ReadReply, AcceptorError> {
        let (key, acceptor, node) = (key.to_string(), self.acceptor, self.proposer);
        self.send(move |world, heard| world.deliver_read(node, acceptor, &key, heard))
            .await
    }

    async fn accept(
        &self,
        key: &str,
        ballot: Ballot,
        value: Option<&str>,
        next_promise: Ballot,
    ) -> Result<AcceptReply, AcceptorError> {
        let (key, acceptor, node) = (key.to_string(), self.acceptor, self.proposer);
        let value = value.map(str::to_string);
        self.send(move |world, heard| {
            world.deliver_accept(
                (node, acceptor),
                &key,
                ballot,
                value.as_deref(),
                next_promise,
                heard,
            )
        })
        .await
    }

    async fn prepare_many(&self, keys: &[String], ballot: Ballot) -> Answers<PrepareReply> {
        let (keys, acceptor, node) = (keys.to_vec(), self.acceptor, self.proposer);
        self.send(move |world, _| Ok(world.deliver_prepare_many(node, acceptor, &keys, ballot)))
            .await?
    }

    async fn accept_many(
        &self,
        writes: &[(String, Option<String>)],
        ballot: Ballot,
        next_promise: Ballot,
    ) -> Answers<AcceptReply> {
        let (writes, acceptor, node) = (writes.to_vec(), self.acceptor, self.proposer);
        self.send(move |world, _| {
            Ok(world.deliver_accept_many(node, acceptor, &writes, ballot, next_promise))
        })
        .await?
    }
}

/// The nodes' membership tasks talk to the acceptors through the same lossy links.
#[async_trait]
impl AdminAcceptor for Link {
    async fn identity(&self, op: IdentityOp) -> Result<Inspection, AcceptorError> {
        let acceptor = self.acceptor;
        let initialising =
            matches!(&op, IdentityOp::Claim(id) if id.standing == Standing::Initialising);
        if initialising && acceptor > 0 {
            // Armed for any node: the first to get this far (the initialiser) stops.
            let armed = lock_plain(&self.world.armed).remove(&usize::MAX);
            if let Some(pause) = armed {
                self.world.pause(self.proposer, pause);
            }
        }
        self.send(move |world, _| Ok(world.deliver_identity(acceptor, &op)))
            .await
    }

    /// Every key at once (a simulated acceptor has few).
    async fn scan_keys(&self, _cursor: u64) -> Result<(u64, Vec<String>), AcceptorError> {
        let acceptor = self.acceptor;
        self.send(move |world, _| Ok((0, world.acceptors[acceptor].keys())))
            .await
    }

    /// The node's calls check the cluster its membership task decided (its proposer's links
    /// share it), as a Redis acceptor's scripts do.
    fn set_cluster(&self, cluster: Option<&str>) {
        self.world.set_cluster(self.proposer, cluster);
    }

    fn cluster(&self) -> Option<String> {
        self.world.cluster_of(self.proposer)
    }
}

fn lock_plain<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Plain data: a panic elsewhere cannot leave it half-written.
    m.lock().unwrap_or_else(|e| e.into_inner())
}
