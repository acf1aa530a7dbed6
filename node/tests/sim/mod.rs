//! One seeded simulation run: proposers, acceptors, clients and chaos on virtual time.
//!
//! [`run_seed`] builds a fresh current-thread tokio runtime with paused time (sleeps are
//! free, scheduling is deterministic) and derives everything from one `StdRng` seeded with
//! the seed: the run's shape (clients, keys, cache size, fault rates), every network fault,
//! every client choice, every crash and partition, every proposer incarnation. The same seed
//! therefore replays the same run, step for step.
//!
//! The run: `PROPOSERS` proposers share `ACCEPTORS` acceptors through lossy links; clients do
//! increments, compare-and-swaps and reads on a few keys through random proposers; a chaos
//! task cuts links (one acceptor away, one proposer away, a minority side, single links) and
//! another crashes proposers (their in-flight changes are abandoned, their cache is lost, the
//! messages they already sent may still land) and restarts them with a new incarnation; a
//! wiper makes one acceptor at a time lose its data and identity (FLUSHALL); a roller
//! restarts one acceptor at a time or rolls its whole state, identity included, back to a
//! snapshot taken earlier (an old backup, a truncated AOF); and three real membership tasks
//! (`perseus_node::membership`, one per node, over the same lossy links) inspect the
//! acceptors, mark the wiped and the suspect ones recovering, run the catch-up passes and
//! promote them (the recovering-accept and recovering-read controls wipe only at aimed
//! moments instead, see `network::AimedWipes`, which correct runs may add with
//! `SIM_AIMED_WIPES=on`). Some seeds lose a majority: two or three acceptors wiped at once;
//! from then on no operation invoked may succeed (the membership tasks must declare data
//! loss and never re-initialise), and the history is checked against the state chosen just
//! before the loss. Each node's calls check the cluster its own membership task decided, one
//! seed in ten starts from blank acceptors (the tasks initialise the cluster), a pauser stops
//! nodes now and then, and the run ends by checking that no acceptor became a member of
//! another cluster (initialised again). When
//! the clients are done, the network is healed and drained, every key is read through a fresh
//! proposer, and the history is checked (see [`history`]); the acceptor invariants were
//! checked on every step (see [`network`]).

pub mod history;
pub mod network;

use std::collections::hash_map::DefaultHasher;
use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use perseus_node::acceptor::memory::{MemoryAcceptor, Snapshot, MEMORY_CLUSTER};
use perseus_node::acceptor::{
    acceptor_set, Acceptor, AdminAcceptor, Identity, IdentityOp, Standing,
};
use perseus_node::ballot::BallotSource;
use perseus_node::membership::{Membership, MembershipControl};
use perseus_node::proposer::{
    Change, Phase, Proposer, ProposerConfig, ProposerError, UnsafeControl,
};
use perseus_node::record::{self, Record, Write};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::Notify;

use history::{History, HistoryStats, Outcome};
use network::{AimedWipes, Controls, Faults, Link, NetStats, World};

pub const PROPOSERS: usize = 3;
pub const ACCEPTORS: usize = 3;
/// A majority of the acceptors: what the proposers and the membership tasks count.
pub const QUORUM: usize = ACCEPTORS / 2 + 1;
const TIMEOUT: Duration = Duration::from_millis(50);
/// Seeds whose last digit is this start from blank acceptors (see [`simulate`]).
const BLANK_SEEDS_END_IN: u64 = 3;

/// Which proposer the clients talk to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    /// The real proposer, majority quorum.
    Correct,
    /// Negative control: quorum of one.
    QuorumOfOne,
    /// Negative control: the 2018 Gryadka bug (ballot kept after a failed accept).
    KeepCacheAfterFailedAccept,
    /// Negative control: a change retried after an accept of unknown outcome, unresolved.
    RetryAfterUnknownOutcome,
    /// Negative control: "not applied" declared on any chosen state that is not ours.
    NotAppliedOnForeignState,
    /// Negative control: the outcome resolved from a prepare's read (not chosen).
    ResolveFromPrepare,
    /// Negative control: "applied" declared on any chosen state past our write's version,
    /// whether or not it was built upon our write.
    AppliedPastOurVersion,
    /// Negative control: a recovering acceptor's promise counts in prepare quorums.
    CountRecoveringPrepare,
    /// Negative control: a recovering acceptor's acceptance counts in accept quorums (so the
    /// one-round-trip promise given with it is trusted).
    CountRecoveringAccept,
    /// Negative control: a call whose reply was lost after the acceptor ran it is sent again
    /// (an accept then comes back refused by its own promise, read as "stored nowhere").
    ResendAfterLostReply,
    /// Negative control: a quorum read returns the newest state among the first quorum of
    /// answers without their agreement (a state perhaps held by one acceptor only).
    QuorumReadWithoutAgreement,
    /// Negative control: a recovering acceptor's answer counts in quorum reads (it may have
    /// forgotten an acknowledged write and agree with an acceptor that never saw it).
    CountRecoveringRead,
    /// Negative control: a thrifty accept refused by every acceptor it asked is judged
    /// stored nowhere while the calls it held back still go out at the hedge delay.
    ThriftyRefusalWithHeldCalls,
    /// Negative control: "not applied" declared on a chosen state below our write's version
    /// even when it was chosen under a ballot below our accept's.
    NotAppliedBelowOurBallot,
    /// Negative control (membership): a recovering acceptor promoted without its catch-up.
    PromoteWithoutCatchUp,
    /// Negative control (membership): a restarted or rolled-back member trusted again at
    /// once (re-stamped a member instead of marked recovering).
    CountSuspect,
    /// Negative control (membership): after a majority was lost, the acceptors without a
    /// record are claimed as members of the known cluster.
    InitialiseOverKnownCluster,
    /// Negative control (membership): after a majority was lost, the acceptors without a
    /// record are claimed as members of a fresh cluster id (caught by the new-cluster checks
    /// alone: nothing is served after the loss, so the history has nothing to find).
    InitialiseUnderNewId,
    /// Negative control (membership): a node that never learned the cluster, finding every
    /// acceptor empty, initialises a new one and adopts whatever id acceptor 1 then holds,
    /// even a recovering mark another node left after the loss.
    AdoptAnyRecordAtInitialisation,
}

/// Which proposers run with a setting on, read from an environment variable: `mixed` (the
/// default), `on` or `off`. Mixed leaves one proposer with it off and the others with it on,
/// so every run has both paths, as in a cluster in the middle of switching the setting:
/// `SIM_QUORUM_READS` (proposer 1 without quorum reads) and `SIM_THRIFTY` (proposer 2 asking
/// every acceptor at once).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mix {
    Mixed,
    On,
    Off,
}

impl Mix {
    pub fn from_env(var: &str) -> Mix {
        match std::env::var(var).as_deref() {
            Err(_) | Ok("mixed") => Mix::Mixed,
            Ok("on") => Mix::On,
            Ok("off") => Mix::Off,
            Ok(other) => panic!("{var}={other:?}: expected mixed, on or off"),
        }
    }

    /// Whether proposer `node` runs with the setting on; `off_when_mixed` is the one left
    /// without it in a mixed run.
    fn for_node(self, node: usize, off_when_mixed: usize) -> bool {
        match self {
            Mix::Mixed => node != off_when_mixed,
            Mix::On => true,
            Mix::Off => false,
        }
    }
}

/// The hedge delay of thrifty proposers: within a round trip of the simulated network
/// (up to 5 ms each way), so it fires on slow links and not only on lost messages
/// (`SIM_HEDGE_MS` sets another).
const HEDGE: Duration = Duration::from_millis(3);

/// What one run did and found.
#[derive(Clone, Debug)]
pub struct Report {
    pub seed: u64,
    pub history: HistoryStats,
    pub net: NetStats,
    pub crashes: u64,
    pub partitions: u64,
    /// Nodes paused (see [`pauser`]).
    pub pauses: u64,
    /// Whether the majority was lost while a node that had not learned the cluster was
    /// paused (its initialisation's later claims still to land).
    pub lost_beside_paused_initialiser: bool,
    /// Acceptors wiped, restarted or rolled back, and catch-up passes that made one a member
    /// again.
    pub wipes: u64,
    pub rollbacks: u64,
    pub recoveries: u64,
    /// Whether the run lost a majority of acceptors at once (on purpose).
    pub majority_lost: bool,
    /// Quorum reads answered from agreeing acceptors, and fallen back to a full round.
    pub reads_agreed: u64,
    pub reads_fell_back: u64,
    /// A hash of every acceptor step and of the final states: equal for equal runs.
    pub fingerprint: u64,
    /// Acceptor invariants (one value per ballot...) and client-side anomalies.
    pub invariant_violations: Vec<String>,
    /// The history check (lost acknowledged writes, chain, real-time order).
    pub history_violations: Vec<String>,
}

impl Report {
    pub fn failed(&self) -> bool {
        !self.invariant_violations.is_empty() || !self.history_violations.is_empty()
    }

    pub fn violations(&self) -> impl Iterator<Item = &String> {
        self.invariant_violations
            .iter()
            .chain(&self.history_violations)
    }
}

/// The shape of one run, drawn from the seed.
#[derive(Debug)]
struct Shape {
    clients: usize,
    keys: usize,
    ops_per_client: usize,
    /// Of every ten operations, how many are reads and how many compare-and-swaps (3 and 3,
    /// not drawn; the rest are increments).
    reads_in_ten: u32,
    cas_in_ten: u32,
    cache_bytes: usize,
    deadline: Duration,
    faults: Faults,
    crash_every: Duration,
    partition_every: Duration,
    wipe_every: Duration,
    /// Restarts and rollbacks of one acceptor (see [`roller`]).
    roll_every: Duration,
    /// When (if ever) two or three acceptors are wiped at once, and how many.
    majority_loss: Option<(Duration, usize)>,
}

impl Shape {
    fn draw(rng: &mut StdRng) -> Shape {
        let intensity = [0.3, 1.0, 2.5][rng.random_range(0..3)];
        let ms = Duration::from_millis;
        Shape {
            clients: rng.random_range(6..=10),
            keys: rng.random_range(2..=3),
            ops_per_client: rng.random_range(10..=25),
            reads_in_ten: 3,
            cas_in_ten: 3,
            // Nothing, about one and about two entries (a record, its key and the overhead
            // take about 220 bytes): forced evictions of keys whose change is in flight.
            cache_bytes: [0, 300, 500, 1 << 16][rng.random_range(0..4)],
            deadline: ms([60, 150, 400][rng.random_range(0..3)]),
            faults: Faults {
                drop_request: 0.04 * intensity,
                drop_reply: 0.04 * intensity,
                error_reply: 0.02 * intensity,
                duplicate: 0.05 * intensity,
                slow: 0.05 * intensity,
                refuse_when_cut: 0.5,
                max_delay: ms(5),
                // Beyond the proposer's timeout: late requests and replies.
                max_slow_delay: ms(150),
            },
            crash_every: ms(rng.random_range(100..=600)),
            partition_every: ms(rng.random_range(50..=400)),
            wipe_every: ms(rng.random_range(100..=500)),
            roll_every: ms(rng.random_range(100..=500)),
            majority_loss: rng
                .random_bool(0.1)
                .then(|| (ms(rng.random_range(20..=300)), rng.random_range(2..=3))),
        }
    }
}

/// A proposer process: up (a `Proposer` and the signal its clients watch for its death) or
/// down.
struct Node {
    index: usize,
    up: Mutex<Option<(Arc<Proposer>, Arc<Life>)>>,
}

/// The death signal of one proposer process. (Not a `tokio::sync::watch`: its waiters are
/// spread over notifiers chosen by tokio's unseeded thread RNG, so wake-up order, and with it
/// the run, would not replay. `Notify` wakes its waiters in order.)
#[derive(Default)]
struct Life {
    dead: AtomicBool,
    notify: Notify,
}

impl Life {
    async fn died(&self) {
        let notified = self.notify.notified();
        if !self.dead.load(Ordering::SeqCst) {
            notified.await;
        }
    }
}

impl Node {
    fn get(&self) -> Option<(Arc<Proposer>, Arc<Life>)> {
        let up = self.up.lock().unwrap_or_else(|e| e.into_inner());
        up.clone()
    }

    fn start(&self, proposer: Proposer) {
        *self.up.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((Arc::new(proposer), Arc::default()));
    }

    /// Kills the process: its clients' calls are abandoned, its memory is gone. Returns its
    /// quorum-read counts (agreed, fell back).
    fn crash(&self) -> (u64, u64) {
        let up = self.up.lock().unwrap_or_else(|e| e.into_inner()).take();
        match up {
            Some((proposer, life)) => {
                life.dead.store(true, Ordering::SeqCst);
                life.notify.notify_waiters();
                proposer.quorum_read_counts()
            }
            None => (0, 0),
        }
    }
}

fn links(world: &Arc<World>, proposer: usize) -> Vec<Arc<dyn Acceptor>> {
    (0..world.acceptor_count())
        .map(|a| Arc::new(Link::new(world.clone(), proposer, a)) as Arc<dyn Acceptor>)
        .collect()
}

struct Run {
    world: Arc<World>,
    history: History,
    nodes: Vec<Node>,
    shape: Shape,
    variant: Variant,
    quorum_reads: Mix,
    thrifty: Mix,
    done: AtomicBool,
    incarnations: Mutex<Vec<u64>>,
    crashes: AtomicU64,
    partitions: AtomicU64,
    pauses: AtomicU64,
    lost_beside_paused_initialiser: AtomicBool,
    /// Which nodes' membership tasks know the cluster.
    learned: [AtomicBool; PROPOSERS],
    wipes: AtomicU64,
    rollbacks: AtomicU64,
    recoveries: AtomicU64,
    /// The acceptors' states just before a majority was lost (the chosen state then is what
    /// the history is checked against), once it happened.
    lost: Mutex<Option<Vec<Snapshot>>>,
    /// Set when a majority was lost: no operation invoked from then on may succeed.
    majority_lost: AtomicBool,
    /// Quorum reads answered from agreeing acceptors / fallen back, over every process.
    reads_agreed: AtomicU64,
    reads_fell_back: AtomicU64,
}

impl Run {
    fn count_reads(&self, (agreed, fell_back): (u64, u64)) {
        self.reads_agreed.fetch_add(agreed, Ordering::SeqCst);
        self.reads_fell_back.fetch_add(fell_back, Ordering::SeqCst);
    }

    fn proposer(&self, node: usize) -> Proposer {
        let config = ProposerConfig {
            id: node as u64 + 1,
            quorum: match self.variant {
                Variant::QuorumOfOne => 1,
                _ => QUORUM,
            },
            timeout: TIMEOUT,
            deadline: self.shape.deadline,
            cache_bytes: self.shape.cache_bytes,
            quorum_reads: match self.variant {
                // These controls need the quorum read they break.
                Variant::QuorumReadWithoutAgreement
                | Variant::CountRecoveringRead
                | Variant::NotAppliedBelowOurBallot => true,
                // This one breaks the accept path: every read a full round, as before quorum
                // reads, so reads make accepts too (its single catch before aimed wipes was a
                // read's accept).
                Variant::CountRecoveringAccept => false,
                _ => self.quorum_reads.for_node(node, 0),
            },
            thrifty: match self.variant {
                Variant::Correct | Variant::AdoptAnyRecordAtInitialisation => {
                    self.thrifty.for_node(node, 1)
                }
                // The control breaks the thrifty accept.
                Variant::ThriftyRefusalWithHeldCalls => true,
                // The other controls run as they did before thrifty phases existed (the
                // same runs, the same catches), unless `SIM_CONTROLS_THRIFTY=on` makes them
                // thrifty too (how well the checks still catch them among thrifty phases).
                _ => std::env::var("SIM_CONTROLS_THRIFTY").as_deref() == Ok("on"),
            },
            hedge: std::env::var("SIM_HEDGE_MS")
                .ok()
                .and_then(|ms| ms.parse().ok())
                .map_or(HEDGE, Duration::from_millis),
            jitter_seed: self.world.with_rng(|rng| rng.random()),
            unsafe_control: match self.variant {
                Variant::KeepCacheAfterFailedAccept => {
                    Some(UnsafeControl::KeepCacheAfterFailedAccept)
                }
                Variant::RetryAfterUnknownOutcome => Some(UnsafeControl::RetryAfterUnknownOutcome),
                Variant::NotAppliedOnForeignState => Some(UnsafeControl::NotAppliedOnForeignState),
                Variant::ResolveFromPrepare => Some(UnsafeControl::ResolveFromPrepare),
                Variant::AppliedPastOurVersion => Some(UnsafeControl::AppliedPastOurVersion),
                Variant::NotAppliedBelowOurBallot => Some(UnsafeControl::NotAppliedBelowOurBallot),
                Variant::QuorumReadWithoutAgreement => {
                    Some(UnsafeControl::QuorumReadWithoutAgreement)
                }
                Variant::ThriftyRefusalWithHeldCalls => {
                    Some(UnsafeControl::ThriftyRefusalWithHeldCalls)
                }
                _ => None,
            },
            ..ProposerConfig::default()
        };
        // A new incarnation never seen before in this run (as the production random one is
        // meant to be).
        let incarnation = loop {
            let candidate = self.world.with_rng(|rng| rng.random::<u32>()) as u64;
            let mut used = self.incarnations.lock().unwrap_or_else(|e| e.into_inner());
            if !used.contains(&candidate) {
                used.push(candidate);
                break candidate;
            }
        };
        Proposer::with_incarnation(config, links(&self.world, node), incarnation)
    }

    fn draw<T>(&self, f: impl FnOnce(&mut StdRng) -> T) -> T {
        self.world.with_rng(f)
    }

    async fn sleep_random(&self, mean: Duration) {
        let micros = self.draw(|rng| rng.random_range(0..=mean.as_micros() as u64 * 2));
        tokio::time::sleep(Duration::from_micros(micros)).await;
    }
}

/// One client: `ops_per_client` operations on random keys through random proposers.
async fn client(run: Arc<Run>, client: usize) {
    let mut last_seen: BTreeMap<String, u64> = BTreeMap::new();
    for n in 0..run.shape.ops_per_client {
        let think = run.draw(|rng| rng.random_range(0..=20_000));
        tokio::time::sleep(Duration::from_micros(think)).await;
        let (node, key, kind) = run.draw(|rng| {
            (
                rng.random_range(0..PROPOSERS),
                format!("k{}", rng.random_range(0..run.shape.keys)),
                rng.random_range(0..10),
            )
        });
        let Some((proposer, life)) = run.nodes[node].get() else {
            continue; // The process is down: the request is refused, nothing invoked.
        };
        // Each call of the function writes under its own tag `c{client}.{n}.{call}`.
        let op_tag = format!("c{client}.{n}");
        let prev_index = last_seen.get(&key).copied().unwrap_or(0);
        let (reads, cas) = (run.shape.reads_in_ten, run.shape.cas_in_ten);
        let what = if kind < reads {
            "read"
        } else if kind < reads + cas {
            "cas"
        } else {
            "increment"
        };
        let write_id = proposer.write_id();
        let after_loss = run.majority_lost.load(Ordering::SeqCst);
        let pending = run.history.invoke(client, &key, what, node);
        let tags: Arc<Mutex<Vec<String>>> = Arc::default();
        let f = {
            let (history, key, tags) = (run.history.clone(), key.clone(), tags.clone());
            let op_tag = op_tag.clone();
            move |state: Option<&str>| -> Result<Option<String>, record::Refusal> {
                let mut tags = tags.lock().unwrap_or_else(|e| e.into_inner());
                let tag = format!("{op_tag}.{}", tags.len());
                let write = match what {
                    // Reads go through `Proposer::read` (below); kept total anyway.
                    "read" => return Ok(state.map(str::to_string)),
                    "cas" => Write::CompareAndSwap {
                        value: tag.clone(),
                        prev_index: Some(prev_index),
                        prev_value: None,
                    },
                    _ => Write::Set { value: tag.clone() },
                };
                let next = record::apply(&write, state, &write_id)?;
                let before = record::current(state).ok().flatten().map(|r| r.value);
                history.attempt(&key, &next, before);
                tags.push(tag);
                Ok(Some(next.encode()))
            }
        };
        // A read goes through the production read (a quorum read, or the full round with the
        // identity function), as a GET does.
        let change = async {
            if what == "read" {
                proposer.read(&key).await.map(|state| Change {
                    before: state.clone(),
                    outcome: Ok(state),
                })
            } else {
                proposer.change(&key, f).await
            }
        };
        let result = tokio::select! {
            biased;
            _ = life.died() => None,
            result = change => Some(result),
        };
        drop(proposer);
        let tags = std::mem::take(&mut *tags.lock().unwrap_or_else(|e| e.into_inner()));
        let attempted = !tags.is_empty();
        let outcome = match result {
            Some(Ok(change)) => {
                let decode = |state: Option<&str>| match record::current(state) {
                    Ok(r) => Some(r),
                    Err(e) => {
                        run.world
                            .violation(format!("key {key}: undecodable state {state:?}: {e:?}"));
                        None
                    }
                };
                let Some(before) = decode(change.before.as_deref()) else {
                    continue;
                };
                match change.outcome {
                    Ok(after) if what != "read" => {
                        let Some(after) = decode(after.as_deref()) else {
                            continue;
                        };
                        match after {
                            Some(Record {
                                value, modified, ..
                            }) if tags.last() == Some(&value) => Outcome::Wrote {
                                index: modified,
                                tag: value,
                            },
                            other => {
                                run.world.violation(format!(
                                    "key {key}: client {client} wrote {tags:?} but got {other:?}"
                                ));
                                continue;
                            }
                        }
                    }
                    // A read, or a refused CAS (which commits the unchanged state).
                    _ => Outcome::Saw {
                        index: before.as_ref().map_or(0, |r| r.modified),
                        tag: before.map(|r| r.value),
                    },
                }
            }
            // The proposer's word is taken for "cannot have taken effect" (a failed prepare,
            // or an accept every acceptor refused), so the history check verifies it: such a
            // write turning up in the final chain is a violation.
            Some(Err(e)) => {
                if e.phase() != Some(Phase::Accept) && e.outcome_unknown() {
                    run.world.violation(format!(
                        "key {key}: a failed prepare claims an unknown outcome: {e}"
                    ));
                }
                if attempted && e.outcome_unknown() {
                    Outcome::Unknown
                } else {
                    Outcome::NoEffect
                }
            }
            None if attempted => Outcome::Unknown, // crashed mid-change
            None => Outcome::NoEffect,
        };
        if let Outcome::Wrote { index, .. } | Outcome::Saw { index, .. } = &outcome {
            last_seen.insert(key.clone(), *index);
            if after_loss {
                run.world.violation(format!(
                    "key {key}: client {client}'s {what} invoked after a majority of acceptors \
                     lost their data succeeded ({outcome:?}): served without the data"
                ));
            }
        }
        run.history.complete(pending, tags, outcome);
    }
}

/// Crashes and restarts proposers until the clients are done.
async fn crasher(run: Arc<Run>) {
    loop {
        run.sleep_random(run.shape.crash_every).await;
        if run.done.load(Ordering::SeqCst) {
            return;
        }
        let node = run.draw(|rng| rng.random_range(0..PROPOSERS));
        run.count_reads(run.nodes[node].crash());
        run.crashes.fetch_add(1, Ordering::SeqCst);
        run.sleep_random(Duration::from_millis(25)).await;
        run.nodes[node].start(run.proposer(node));
    }
}

/// Wipes one acceptor now and then (only when every other acceptor is a member that counts:
/// two lost at once is a real loss of a majority, which [`majority_loss`] makes on purpose),
/// until the clients are done.
async fn wiper(run: Arc<Run>) {
    loop {
        run.sleep_random(run.shape.wipe_every).await;
        if run.done.load(Ordering::SeqCst) || run.majority_lost.load(Ordering::SeqCst) {
            return;
        }
        let a = run.draw(|rng| rng.random_range(0..ACCEPTORS));
        if (0..ACCEPTORS)
            .filter(|&i| i != a)
            .all(|i| run.world.level_member(i))
        {
            run.world.wipe(a);
            run.wipes.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// Restarts one acceptor now and then, or takes a snapshot of its whole state and rolls it
/// back to it a little later (promises and accepts since forgotten, the old identity back):
/// only when every other acceptor is a member that counts, until the clients are done.
async fn roller(run: Arc<Run>) {
    loop {
        run.sleep_random(run.shape.roll_every).await;
        if run.done.load(Ordering::SeqCst) || run.majority_lost.load(Ordering::SeqCst) {
            return;
        }
        let (a, restart, later) = run.draw(|rng| {
            (
                rng.random_range(0..ACCEPTORS),
                rng.random_bool(0.3),
                Duration::from_millis(rng.random_range(20..=300)),
            )
        });
        let others_count = |run: &Run| {
            (0..ACCEPTORS)
                .filter(|&i| i != a)
                .all(|i| run.world.level_member(i))
        };
        if restart {
            if others_count(&run) {
                run.world.restart(a);
                run.rollbacks.fetch_add(1, Ordering::SeqCst);
            }
            continue;
        }
        let snapshot = run.world.snapshot(a);
        tokio::time::sleep(later).await;
        if !run.majority_lost.load(Ordering::SeqCst) && others_count(&run) {
            run.world.roll_back(a, &snapshot);
            run.rollbacks.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// Two or three acceptors wiped at once, once, if the seed says so: the acceptors' states
/// just before are kept (the history is checked against what was chosen then).
async fn majority_loss(run: Arc<Run>) {
    let Some((at, count)) = run.shape.majority_loss else {
        return;
    };
    // From blank acceptors, counted from the cluster's birth (while a node paused half-way
    // through initialising may still have claims to send).
    while run.world.original().is_none() && run.world.start_was_blank() {
        if run.done.load(Ordering::SeqCst) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(at).await;
    // Acceptors lost before any became a member held nothing: not a loss (a blank start).
    // Nor is one lost before every node learned the cluster made (after a blank start) a
    // fault a node can tell from a new cluster: nodes remember their cluster once learned
    // (their cluster files), so the loss strikes once they all have.
    // A node stopped half-way through initialising the cluster (its later claims held until
    // it resumes) has not learned it either, and may be struck: its late claims must never
    // make wiped acceptors members.
    let all_learned =
        (0..PROPOSERS).all(|n| run.learned[n].load(Ordering::SeqCst) || run.world.paused_now(n));
    let late_node = run.variant == Variant::AdoptAnyRecordAtInitialisation;
    if run.done.load(Ordering::SeqCst)
        || run.world.original().is_none()
        || !(all_learned || late_node)
    {
        return;
    }
    let paused_initialiser = (0..PROPOSERS).any(|n| !run.learned[n].load(Ordering::SeqCst));
    run.lost_beside_paused_initialiser
        .store(paused_initialiser && !late_node, Ordering::SeqCst);
    let first = run.draw(|rng| rng.random_range(0..ACCEPTORS));
    let before: Vec<Snapshot> = (0..ACCEPTORS).map(|i| run.world.snapshot(i)).collect();
    *run.lost.lock().unwrap_or_else(|e| e.into_inner()) = Some(before);
    run.majority_lost.store(true, Ordering::SeqCst);
    for k in 0..count {
        run.world.wipe((first + k) % ACCEPTORS);
        run.wipes.fetch_add(1, Ordering::SeqCst);
    }
}

/// The membership task of node `node`: the production code (`Membership::tick`) over the
/// node's own links, ticking faster than the nodes' once a second (the runs are short).
/// Ends when the clients are done and every acceptor counts again (or after a bounded
/// number of ticks).
async fn membership(run: Arc<Run>, node: usize) {
    let (seed, incarnation) = run.draw(|rng| (rng.random::<u64>(), rng.random::<u32>() as u64));
    let ballots = Arc::new(BallotSource::new(900 + node as u64, incarnation));
    let acceptors: Vec<Arc<dyn AdminAcceptor>> = (0..ACCEPTORS)
        .map(|a| Arc::new(Link::new(run.world.clone(), node, a)) as Arc<dyn AdminAcceptor>)
        .collect();
    let control = match run.variant {
        Variant::PromoteWithoutCatchUp => Some(MembershipControl::PromoteWithoutCatchUp),
        Variant::CountSuspect => Some(MembershipControl::CountSuspect),
        Variant::InitialiseOverKnownCluster => Some(MembershipControl::InitialiseOverKnownCluster),
        Variant::InitialiseUnderNewId => Some(MembershipControl::InitialiseUnderNewId),
        Variant::AdoptAnyRecordAtInitialisation => {
            Some(MembershipControl::AdoptAnyRecordAtInitialisation)
        }
        _ => None,
    };
    let mut membership = Membership::with_rng(
        acceptors,
        QUORUM,
        TIMEOUT,
        format!("p{}", node + 1),
        StdRng::seed_from_u64(seed),
    )
    .with_control(control);
    // The nodes of a cluster that exists before the run remember it (their cluster files,
    // as the testbed's nodes): a node that never learned its cluster cannot tell acceptors
    // all lost before its first inspection from a new cluster (design-acceptor-recovery.md,
    // "A node remembers its cluster"). Except the one the adopt-any-record control starts
    // late, which is exactly such a node.
    let late = run.variant == Variant::AdoptAnyRecordAtInitialisation && node == PROPOSERS - 1;
    if let (Some(original), false) = (run.world.original(), late) {
        membership = membership.remembering(&original);
        run.learned[node].store(true, Ordering::SeqCst);
    }
    let membership = Arc::new(membership);
    // Under the adopt-any-record control the last node starts around the loss of every
    // acceptor, so it never learned the cluster (a node without a cluster file, new or
    // recreated) and may find them all empty while the others mark them.
    if let (Variant::AdoptAnyRecordAtInitialisation, Some((at, _))) =
        (run.variant, run.shape.majority_loss)
    {
        if node == PROPOSERS - 1 {
            let late = run.draw(|rng| rng.random_range(0..=20_000));
            tokio::time::sleep(at + Duration::from_micros(late)).await;
        }
    }
    let mut recovering = [false; ACCEPTORS];
    let mut after_done = 0;
    loop {
        // Unhurried, like the nodes' inspection: the recovering windows are what the negative
        // controls need to be caught in.
        run.sleep_random(Duration::from_millis(60)).await;
        membership.tick(&ballots).await;
        if membership.known().is_some() {
            run.learned[node].store(true, Ordering::SeqCst);
        }
        for (i, was) in recovering.iter_mut().enumerate() {
            let now = run
                .world
                .acceptor(i)
                .identity()
                .is_some_and(|id| id.standing == Standing::Recovering);
            if node == 0 && *was && !now && run.world.level_member(i) {
                run.recoveries.fetch_add(1, Ordering::SeqCst);
            }
            *was = now;
        }
        if run.done.load(Ordering::SeqCst) {
            after_done += 1;
            let all = (0..ACCEPTORS).all(|i| run.world.level_member(i));
            if all || after_done > 200 || run.majority_lost.load(Ordering::SeqCst) {
                // A node never learns another cluster than the run's own (it would write it
                // to its cluster file and serve it).
                if let (Some(known), Some(original)) = (membership.known(), run.world.original()) {
                    if known != original {
                        run.world.violation(format!(
                            "node p{} LEARNED A NEW CLUSTER {known} (the run's is {original})",
                            node + 1
                        ));
                    }
                }
                return;
            }
        }
    }
}

/// Pauses one node now and then (its proposer and its membership task: a long GC, SIGSTOP, a
/// VM descheduled), until the clients are done: what it sends meanwhile leaves when it
/// resumes, so its membership task acts on old inspections and its claims land late.
async fn pauser(run: Arc<Run>) {
    loop {
        run.sleep_random(Duration::from_millis(300)).await;
        if run.done.load(Ordering::SeqCst) {
            return;
        }
        let (node, pause) = run.draw(|rng| {
            (
                rng.random_range(0..PROPOSERS),
                Duration::from_millis(rng.random_range(10..=300)),
            )
        });
        run.world.pause(node, pause);
        run.pauses.fetch_add(1, Ordering::SeqCst);
    }
}

/// Cuts links for a while until the clients are done (partitions may overlap).
async fn partitioner(run: Arc<Run>) {
    loop {
        run.sleep_random(run.shape.partition_every).await;
        if run.done.load(Ordering::SeqCst) {
            return;
        }
        let (shape, p, a, duration) = run.draw(|rng| {
            (
                rng.random_range(0..4),
                rng.random_range(0..PROPOSERS),
                rng.random_range(0..ACCEPTORS),
                Duration::from_millis(rng.random_range(10..=300)),
            )
        });
        let all = (0..PROPOSERS).flat_map(|p| (0..ACCEPTORS).map(move |a| (p, a)));
        let cut: Vec<(usize, usize)> = match shape {
            // One acceptor away from every proposer.
            0 => all.filter(|&(_, x)| x == a).collect(),
            // One proposer away from every acceptor.
            1 => all.filter(|&(x, _)| x == p).collect(),
            // A minority side {p, a} against the rest.
            2 => all.filter(|&(x, y)| (x == p) != (y == a)).collect(),
            // A single link.
            _ => vec![(p, a)],
        };
        run.world.cut(&cut);
        run.partitions.fetch_add(1, Ordering::SeqCst);
        let world = run.world.clone();
        tokio::spawn(async move {
            tokio::time::sleep(duration).await;
            world.heal(&cut);
        });
    }
}

async fn simulate(
    seed: u64,
    variant: Variant,
    quorum_reads: Mix,
    thrifty: Mix,
    aimed_in_correct: bool,
) -> Report {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut shape = Shape::draw(&mut rng);
    // The accept and read controls bite only in the window `AimedWipes` aims at: their wipes
    // are all aimed there (the wiper's random ones, which gave them one or two catches in 300
    // seeds, would only keep an acceptor recovering, and so every acceptor not a member,
    // when an aimed one could strike). A correct run may add aimed wipes to its own: the
    // proposer must survive the very moments that catch the controls.
    let aimed_wipes = AimedWipes {
        enabled: match variant {
            Variant::CountRecoveringAccept | Variant::CountRecoveringRead => true,
            Variant::Correct => aimed_in_correct,
            _ => false,
        },
    };
    let random_wipes = !matches!(
        variant,
        Variant::CountRecoveringAccept | Variant::CountRecoveringRead
    );
    match variant {
        // It can only bite while an acceptor is recovering: wipe more often.
        Variant::CountRecoveringPrepare => shape.wipe_every /= 3,
        // They bite only after a wipe, a restart or a rollback: more of them.
        Variant::PromoteWithoutCatchUp => shape.wipe_every /= 3,
        Variant::CountSuspect => shape.roll_every /= 3,
        // It bites only after a majority was lost: always lose one.
        Variant::InitialiseOverKnownCluster | Variant::InitialiseUnderNewId => {
            shape.majority_loss = Some((
                shape
                    .majority_loss
                    .map_or(Duration::from_millis(100), |(at, _)| at),
                2,
            ));
        }
        // It bites only when every acceptor is lost while one node has not learned the
        // cluster yet and the others have: all three lost once the others' first inspections
        // are done; the last node starts just then (see `membership`).
        Variant::AdoptAnyRecordAtInitialisation => {
            let at = shape
                .majority_loss
                .map_or(30, |(at, _)| at.as_millis() as u64);
            shape.majority_loss = Some((Duration::from_millis(150 + at % 60), 3));
        }
        // Its windows are a read landing on a wiped acceptor while a key is new to another
        // member (or while both took an accept that will not be chosen): more reads, more
        // keys to be new, and writes that always change the state (increments: a CAS on a
        // stale index is refused and writes nothing). 70 seeds of 300 caught, instead of 18
        // with the usual mix.
        Variant::CountRecoveringRead => {
            shape.reads_in_ten = 6;
            shape.cas_in_ten = 0;
            shape.keys *= 3;
        }
        _ => {}
    }
    let controls = Controls {
        count_recovering_prepare: variant == Variant::CountRecoveringPrepare,
        count_recovering_accept: variant == Variant::CountRecoveringAccept,
        count_recovering_read: variant == Variant::CountRecoveringRead,
        resend_after_lost_reply: variant == Variant::ResendAfterLostReply,
    };
    let world = World::new(ACCEPTORS, rng, shape.faults, controls, aimed_wipes);
    // One seed in ten starts from blank acceptors (new Redis servers): the membership tasks
    // initialise the cluster, and the nodes serve nothing until they learned it. Chosen
    // from the seed without a draw, so the other seeds' runs are drawn as before.
    if seed % 10 == BLANK_SEEDS_END_IN {
        world.start_blank(PROPOSERS);
        // The first node to send an initialising claim to acceptor 2 stops for 0.2 to 1.5 s (a VM
        // paused half-way through the initialisation), so its later claims land late, maybe
        // after a majority was lost. Drawn from a stream of its own: the run's draws stay.
        let mut own = StdRng::seed_from_u64(seed ^ 0x9e37_79b9_7f4a_7c15);
        world.arm_pause(Duration::from_millis(own.random_range(200..=1500)));
    }
    let run = Arc::new(Run {
        world: world.clone(),
        history: History::default(),
        nodes: (0..PROPOSERS)
            .map(|index| Node {
                index,
                up: Mutex::new(None),
            })
            .collect(),
        shape,
        variant,
        quorum_reads,
        thrifty,
        done: AtomicBool::new(false),
        incarnations: Mutex::new(Vec::new()),
        crashes: AtomicU64::new(0),
        partitions: AtomicU64::new(0),
        pauses: AtomicU64::new(0),
        lost_beside_paused_initialiser: AtomicBool::new(false),
        learned: Default::default(),
        wipes: AtomicU64::new(0),
        rollbacks: AtomicU64::new(0),
        recoveries: AtomicU64::new(0),
        lost: Mutex::new(None),
        majority_lost: AtomicBool::new(false),
        reads_agreed: AtomicU64::new(0),
        reads_fell_back: AtomicU64::new(0),
    });
    for node in &run.nodes {
        node.start(run.proposer(node.index));
    }
    let mut chaos = vec![
        tokio::spawn(crasher(run.clone())),
        tokio::spawn(partitioner(run.clone())),
        tokio::spawn(pauser(run.clone())),
    ];
    if random_wipes {
        chaos.push(tokio::spawn(wiper(run.clone())));
        chaos.push(tokio::spawn(roller(run.clone())));
        chaos.push(tokio::spawn(majority_loss(run.clone())));
    }
    for node in 0..PROPOSERS {
        chaos.push(tokio::spawn(membership(run.clone(), node)));
    }
    let clients: Vec<_> = (0..run.shape.clients)
        .map(|c| tokio::spawn(client(run.clone(), c)))
        .collect();
    for handle in clients {
        if let Err(e) = handle.await {
            world.violation(format!("client task failed: {e}"));
        }
    }
    run.done.store(true, Ordering::SeqCst);
    for handle in chaos {
        if let Err(e) = handle.await {
            world.violation(format!("chaos task failed: {e}"));
        }
    }
    for node in &run.nodes {
        if let Some((proposer, _)) = node.get() {
            run.count_reads(proposer.quorum_read_counts());
        }
    }

    // Heal, let every late message and duplicate land, then read each key through a fresh,
    // correct proposer on a perfect network.
    world.heal_all();
    world.set_faults(Faults::none());
    tokio::time::sleep(Duration::from_secs(5)).await;
    // After a majority was lost: for every key, the value with the highest accepted ballot
    // among the acceptors as they were just before the loss and as they are now (what the
    // operator's accept-loss would keep; a write acknowledged after the loss can only sit on
    // an acceptor that kept its data, with its quorum's other acceptance made before it), read
    // with a quorum of all of them.
    let lost = run.lost.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let (final_acceptors, final_quorum) = match &lost {
        None => (links(&world, PROPOSERS), QUORUM),
        Some(before) => {
            let mut states = before.clone();
            states.extend((0..ACCEPTORS).map(|i| world.snapshot(i)));
            let n = states.len();
            (restored(&states), n)
        }
    };
    let checker = Proposer::with_incarnation(
        ProposerConfig {
            id: 1000,
            quorum: final_quorum,
            timeout: TIMEOUT,
            // The final state is CHOSEN by a full round of its own, on every acceptor.
            quorum_reads: false,
            thrifty: false,
            ..ProposerConfig::default()
        },
        final_acceptors,
        1,
    );
    let mut finals = BTreeMap::new();
    // Acceptors that start blank and were never initialised (every node cut off or paused
    // for the whole run) hold nothing: no operation can have taken effect.
    let never_initialised = world.original().is_none();
    for k in 0..run.shape.keys {
        if never_initialised {
            finals.insert(format!("k{k}"), None);
            continue;
        }
        let key = format!("k{k}");
        let mut last_error: Option<ProposerError> = None;
        let mut state = None;
        for _ in 0..5 {
            match checker.read(&key).await {
                Ok(found) => {
                    state = Some(found);
                    break;
                }
                Err(e) => last_error = Some(e),
            }
        }
        match state.map(|s| record::current(s.as_deref())) {
            Some(Ok(record)) => {
                finals.insert(key, record);
            }
            Some(Err(e)) => world.violation(format!("key {key}: undecodable final state: {e:?}")),
            None => world.violation(format!(
                "key {key}: the final read failed on a healed network: {last_error:?}"
            )),
        }
    }

    // Never initialised again: no acceptor is a member of any cluster but the run's own (a
    // node that serves a new, empty cluster is also caught by the history when an operation
    // succeeds on it; this catches it when none did).
    if let Some(original) = world.original() {
        let records: Vec<String> = (0..ACCEPTORS)
            .map(|i| {
                world.acceptor(i).identity().map_or("none".into(), |id| {
                    format!("{}:{}", id.cluster, id.standing.as_str())
                })
            })
            .collect();
        for i in 0..ACCEPTORS {
            if let Some(id) = world.acceptor(i).identity() {
                // Recovering too: a recovering mark of another id was written by a node
                // that learned that id.
                let counted = matches!(id.standing, Standing::Member | Standing::Recovering);
                if counted && id.cluster != original {
                    world.violation(format!(
                        "acceptor a{} is a member of cluster {}, not the run's {original}: \
                         INITIALISED AGAIN (records: {records:?})",
                        i + 1,
                        id.cluster
                    ));
                }
            }
        }
    }
    let (history_violations, history) = run.history.check(&finals);
    let mut hasher = DefaultHasher::new();
    world.trace().hash(&mut hasher);
    for (key, record) in &finals {
        (key, record.as_ref().map(Record::encode)).hash(&mut hasher);
    }
    Report {
        seed,
        history,
        net: world.stats(),
        crashes: run.crashes.load(Ordering::SeqCst),
        partitions: run.partitions.load(Ordering::SeqCst),
        pauses: run.pauses.load(Ordering::SeqCst),
        lost_beside_paused_initialiser: run.lost_beside_paused_initialiser.load(Ordering::SeqCst),
        wipes: run.wipes.load(Ordering::SeqCst) + world.aimed_wipes_done(),
        rollbacks: run.rollbacks.load(Ordering::SeqCst),
        majority_lost: run.majority_lost.load(Ordering::SeqCst),
        recoveries: run.recoveries.load(Ordering::SeqCst),
        reads_agreed: run.reads_agreed.load(Ordering::SeqCst),
        reads_fell_back: run.reads_fell_back.load(Ordering::SeqCst),
        fingerprint: hasher.finish(),
        invariant_violations: world.violations(),
        history_violations,
    }
}

/// In-memory acceptors holding `states` (the acceptors just before a majority was lost, and
/// at the end), each made a member that counts, for the final read.
fn restored(states: &[Snapshot]) -> Vec<Arc<dyn Acceptor>> {
    let names: Vec<String> = (0..states.len()).map(|i| format!("a{}", i + 1)).collect();
    let set = acceptor_set(names.iter().map(String::as_str));
    names
        .iter()
        .zip(states)
        .map(|(name, state)| {
            let a = MemoryAcceptor::in_set(name.clone(), set.clone());
            a.roll_back(state);
            a.apply_identity(&IdentityOp::Force(Identity {
                cluster: MEMORY_CLUSTER.into(),
                acceptor: name.clone(),
                standing: Standing::Member,
                mark: String::new(),
                set: set.clone(),
                stamp: String::new(),
            }));
            Arc::new(a) as Arc<dyn Acceptor>
        })
        .collect()
}

/// Runs one seed on its own deterministic runtime (a correct run with aimed wipes too when
/// `SIM_AIMED_WIPES=on`).
pub fn run_seed(seed: u64, variant: Variant) -> Report {
    run_seed_with(seed, variant, aimed_wipes_from_env())
}

/// `SIM_AIMED_WIPES`: `on` or `off` (the default).
pub fn aimed_wipes_from_env() -> bool {
    match std::env::var("SIM_AIMED_WIPES").as_deref() {
        Err(_) | Ok("off") => false,
        Ok("on") => true,
        Ok(other) => panic!("SIM_AIMED_WIPES={other:?}: expected on or off"),
    }
}

/// [`run_seed`], a correct run with aimed wipes (`network::AimedWipes`) added or not (the
/// recovering-accept and recovering-read controls always have them).
pub fn run_seed_with(seed: u64, variant: Variant, aimed_in_correct: bool) -> Report {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a current-thread runtime");
    runtime.block_on(simulate(
        seed,
        variant,
        Mix::from_env("SIM_QUORUM_READS"),
        Mix::from_env("SIM_THRIFTY"),
        aimed_in_correct,
    ))
}
