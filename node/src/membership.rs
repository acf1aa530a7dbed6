//! Who may count: the acceptors' identity records, the cluster's initialisation, detection of
//! an acceptor that lost its data or may have gone back in time, and its recovery.
//!
//! A background task of every node inspects every acceptor each [`INTERVAL`] and hands what
//! it saw to [`decide`], a pure function (table-tested below), which returns the verdict and
//! the steps to take; the task then takes them through [`AdminAcceptor`] (Redis in
//! production, the simulated acceptors in the seeded simulation, which runs this very code):
//! - a brand-new cluster (every acceptor reachable, none marked, none holding data) is
//!   initialised in two steps: every acceptor is claimed `initialising` (acceptor 1 first,
//!   with a fresh random id; whatever id acceptor 1 then holds is everyone's), then each
//!   joins as `member`. An initialisation that stopped half-way is finished only while so
//!   many acceptors are still `initialising` that no quorum of members can ever have existed;
//! - an acceptor without a record while the members form a quorum is marked *recovering*
//!   (with a fresh random mark): it lost its data. A member whose record is stamped under
//!   another life of its data (the Redis restarted, or its data was restored) is *suspect*:
//!   it answers as recovering at once (inside the scripts) and is marked recovering here. A
//!   recovering acceptor counts toward no quorum (`acceptor::counted`);
//! - a recovering acceptor is brought back by the catch-up pass ([`Membership::pass`]): the
//!   keys of the other acceptors, one SCAN page at a time, each get a catch-up round
//!   (`recovery`), then the record goes from recovering to member, only if it still carries
//!   the mark and the life the pass started under. The pass keeps its place per (acceptor,
//!   mark, life) and resumes there; one node at a time runs it (a lease in the target's
//!   record); failed rounds back off with jitter;
//! - when the members can no longer form a quorum, acknowledged writes may be lost for good:
//!   the node says so in its log, `/health` and every keys request (503, data loss), and
//!   serves nothing until the operator runs `node accept-loss` ([`accept_loss`]), which keeps
//!   the highest value any acceptor still holds for every key
//!   (docs/design-acceptor-recovery.md).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::join_all;
use perseus_model::health::{AcceptorMembership, AcceptorState, MembershipView, Verdict};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::acceptor::{
    acceptor_set, Acceptor, AcceptorError, AdminAcceptor, Identity, IdentityOp, Inspection,
    Standing,
};
use crate::ballot::BallotSource;
use crate::recovery::catch_up_batch;

/// How often every acceptor is inspected.
pub const INTERVAL: Duration = Duration::from_millis(1000);
/// How long a catch-up lease lasts; renewed after every SCAN page (at most about a thousand
/// keys, caught up in batches by `recovery::catch_up_batch`).
const LEASE: Duration = Duration::from_secs(30);
/// Cluster ids the operator's `accept-loss` uses while it runs: never adopted by a node.
pub const ACCEPT_LOSS_PREFIX: &str = "accept-loss:";

/// NEGATIVE CONTROLS: unsafe variants of the membership rules the seeded simulation must
/// catch. They take effect only in a build with the cargo feature `sim-controls`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MembershipControl {
    /// Promote a recovering acceptor at once, without its catch-up rounds.
    PromoteWithoutCatchUp,
    /// Trust a restarted or rolled-back member: re-stamp it a member instead of marking it
    /// recovering (it counts before any catch-up).
    CountSuspect,
    /// When the members cannot form a quorum, claim the acceptors without a record as members
    /// of the known cluster (the half-done-initialisation branch of old).
    InitialiseOverKnownCluster,
}

/// One acceptor as the membership task last saw it (the shared `/health` type).
pub type AcceptorView = AcceptorMembership;

/// The whole picture, for `/health` and the log (the shared `/health` type).
pub type View = MembershipView;

// ---------------------------------------------------------------------------------------
// The pure decision
// ---------------------------------------------------------------------------------------

/// What one inspection saw of one acceptor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Seen {
    Unreachable,
    /// Answers, but its persistence settings could lose writes: refused.
    NotDurable,
    Answered(Inspection),
}

impl Seen {
    fn record(&self) -> Option<&Identity> {
        match self {
            Seen::Answered(i) => i.identity.as_ref(),
            _ => None,
        }
    }
}

/// One acceptor, judged against the cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Class {
    /// A member whose data is one unbroken history since it was brought level: counts.
    Member,
    /// Marked member, but stamped under another life: may have gone back in time.
    Suspect,
    Recovering {
        mark: String,
        life: String,
        lease: Option<String>,
    },
    /// Claimed by an initialisation and intact since: never counted, lost nothing.
    Initialising,
    /// Claimed by an initialisation, then restarted or restored.
    StaleInitialising,
    Unmarked {
        data_keys: u64,
    },
    Foreign,
    /// This cluster's record, made with another acceptor set than this node's.
    OtherSet(String),
    Unreachable,
    NotDurable,
}

impl Class {
    pub fn state(&self) -> AcceptorState {
        match self {
            Class::Member => AcceptorState::Member,
            Class::Suspect | Class::StaleInitialising => AcceptorState::Suspect,
            Class::Recovering { .. } => AcceptorState::Recovering,
            Class::Initialising => AcceptorState::Initialising,
            Class::Unmarked { .. } => AcceptorState::Unmarked,
            Class::Foreign => AcceptorState::Foreign,
            Class::OtherSet(_) => AcceptorState::OtherSet,
            Class::Unreachable => AcceptorState::Unreachable,
            Class::NotDurable => AcceptorState::RefusedNotDurable,
        }
    }
}

/// Judges what acceptor `name` showed against cluster `cluster` and the acceptor set `set`.
pub fn classify(seen: &Seen, cluster: &str, name: &str, set: &str) -> Class {
    let inspection = match seen {
        Seen::Unreachable => return Class::Unreachable,
        Seen::NotDurable => return Class::NotDurable,
        Seen::Answered(i) => i,
    };
    let Some(id) = &inspection.identity else {
        return Class::Unmarked {
            data_keys: inspection.data_keys,
        };
    };
    if id.cluster != cluster || id.acceptor != name {
        return Class::Foreign;
    }
    if id.set != set {
        return Class::OtherSet(id.set.clone());
    }
    let level = inspection.level();
    match id.standing {
        Standing::Member if level => Class::Member,
        Standing::Member => Class::Suspect,
        Standing::Initialising if level => Class::Initialising,
        Standing::Initialising => Class::StaleInitialising,
        Standing::Recovering => Class::Recovering {
            mark: id.mark.clone(),
            life: inspection.life.clone(),
            lease: inspection.lease.clone(),
        },
    }
}

/// What the node knows besides the inspections.
#[derive(Clone, Debug)]
pub struct Situation<'a> {
    /// The cluster id this node learned before (never given up while it runs).
    pub known: Option<&'a str>,
    /// The acceptors' names, in the configuration's order.
    pub names: &'a [String],
    /// This node's name for catch-up leases.
    pub node: &'a str,
    pub quorum: usize,
}

/// A step the membership task takes after an inspection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Initialise a brand-new cluster: claim every acceptor `initialising` (acceptor 1 first,
    /// with a fresh id), then join them all.
    Initialise,
    /// Claim acceptor `acceptor` (it has no record) with this standing and a fresh mark.
    Claim { acceptor: usize, standing: Standing },
    /// initialising -> member.
    Join { acceptor: usize },
    /// A suspect or stale initialising acceptor -> recovering with a fresh mark.
    Suspect { acceptor: usize },
    /// Run (or resume) the catch-up pass of `target`, marked `mark`, under `life`.
    CatchUp {
        target: usize,
        mark: String,
        life: String,
    },
}

/// What [`decide`] concludes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// The cluster the node's calls must check (None: refuse every call).
    pub cluster: Option<String>,
    pub verdict: Verdict,
    pub message: String,
    pub classes: Vec<Class>,
    pub actions: Vec<Action>,
}

/// The cluster id most acceptors carry (ties: the first acceptor's), ignoring the operator's
/// temporary ids.
fn majority_cluster(seen: &[Seen]) -> Option<String> {
    let ids: Vec<&str> = seen
        .iter()
        .filter_map(|s| s.record())
        .map(|id| id.cluster.as_str())
        .filter(|id| !id.starts_with(ACCEPT_LOSS_PREFIX))
        .collect();
    ids.iter()
        .copied()
        .max_by_key(|id| {
            (
                ids.iter().filter(|x| *x == id).count(),
                std::cmp::Reverse(ids.iter().position(|x| x == id)),
            )
        })
        .map(str::to_string)
}

fn describe(names: &[String], classes: &[Class]) -> String {
    names
        .iter()
        .zip(classes)
        .map(|(n, c)| format!("{n} {}", c.state()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The decision for one inspection: the verdict, its reason, and the steps to take. Pure:
/// everything it needs is in `situation` and `seen` (one entry per acceptor, in order).
///
/// The rules, with n acceptors and quorum q (docs/design-acceptor-recovery.md):
/// - a node never initialises over a cluster id it knows or any acceptor carries; a new
///   cluster needs every acceptor reachable, unmarked and empty;
/// - an `initialising` acceptor intact since its claim never counted and forgot nothing, so
///   it may join at any time; the other acceptors are claimed for the initialisation only
///   while at least q are still initialising (no quorum of members can ever have existed);
/// - suspects (and stale initialising records) are marked recovering; unmarked acceptors
///   are marked recovering while at least q members exist;
/// - data loss when fewer than q acceptors can be members (members, intact initialising
///   ones, and the unreachable or refused ones, which may be members);
/// - a recovering acceptor is caught up when q members exist, it answers, the others all
///   answer (one of them holds every key it may have forgotten), and its lease is free or
///   ours.
pub fn decide(situation: &Situation, seen: &[Seen]) -> Decision {
    let n = situation.names.len();
    let q = situation.quorum;
    let set = acceptor_set(situation.names.iter().map(String::as_str));
    let reachable = seen
        .iter()
        .filter(|s| matches!(s, Seen::Answered(_)))
        .count();
    let records = seen.iter().filter(|s| s.record().is_some()).count();
    let Some(cluster) = situation
        .known
        .map(str::to_string)
        .or_else(|| majority_cluster(seen))
    else {
        let classes: Vec<Class> = seen.iter().map(|s| classify(s, "", "", &set)).collect();
        let empty = seen
            .iter()
            .all(|s| matches!(s, Seen::Answered(i) if i.data_keys == 0 && i.identity.is_none()));
        let (verdict, message, actions) = if reachable == n && empty {
            (
                Verdict::Waiting,
                "initialising a new cluster".to_string(),
                vec![Action::Initialise],
            )
        } else if records > 0 {
            (
                Verdict::Waiting,
                "the operator's accept-loss is running".to_string(),
                vec![],
            )
        } else if reachable == n {
            (
                Verdict::DataLoss,
                "DATA LOSS: the acceptors hold data but none has an identity record (written by \
                 an older node, or every one of them was wiped): acknowledged writes may be lost; \
                 serving nothing. To keep what they hold and serve again: node accept-loss"
                    .to_string(),
                vec![],
            )
        } else {
            (
                Verdict::Waiting,
                format!(
                    "a new cluster is initialised once every acceptor is reachable \
                     ({reachable} of {n})"
                ),
                vec![],
            )
        };
        return Decision {
            cluster: None,
            verdict,
            message,
            classes,
            actions,
        };
    };

    let classes: Vec<Class> = seen
        .iter()
        .zip(situation.names)
        .map(|(s, name)| classify(s, &cluster, name, &set))
        .collect();
    if let Some((i, other)) = classes.iter().enumerate().find_map(|(i, c)| match c {
        Class::OtherSet(other) => Some((i, other)),
        _ => None,
    }) {
        return Decision {
            cluster: None,
            verdict: Verdict::Misconfigured,
            message: format!(
                "acceptor {} belongs to cluster {cluster} made with the acceptors [{other}], but \
                 this node is configured with [{set}]: serving nothing (two sets could choose \
                 on quorums that do not intersect); fix the node's acceptor list",
                situation.names[i]
            ),
            classes,
            actions: vec![],
        };
    }
    let count = |f: fn(&Class) -> bool| classes.iter().filter(|c| f(c)).count();
    let members = count(|c| *c == Class::Member);
    let initialising = count(|c| *c == Class::Initialising);
    let unknown = count(|c| matches!(c, Class::Unreachable | Class::NotDurable));

    let mut actions = Vec::new();
    // Joining is always safe (it never counted, it forgot nothing); claiming others for the
    // initialisation only while no quorum of members can ever have existed.
    let finishing = initialising >= q;
    for (i, c) in classes.iter().enumerate() {
        match c {
            Class::Initialising => actions.push(Action::Join { acceptor: i }),
            Class::Suspect | Class::StaleInitialising => {
                actions.push(Action::Suspect { acceptor: i })
            }
            Class::Unmarked { .. } if finishing => actions.push(Action::Claim {
                acceptor: i,
                standing: Standing::Initialising,
            }),
            Class::Unmarked { .. } if members >= q => actions.push(Action::Claim {
                acceptor: i,
                standing: Standing::Recovering,
            }),
            _ => {}
        }
    }
    let possible = members + initialising + unknown;
    let ever_counted = classes
        .iter()
        .any(|c| matches!(c, Class::Member | Class::Suspect | Class::Recovering { .. }));
    if possible < q && !ever_counted && initialising > 0 {
        // Most likely another node's initialisation under way (its claims come one by one);
        // nothing is served meanwhile either way.
        return Decision {
            cluster: Some(cluster.clone()),
            verdict: Verdict::Waiting,
            message: format!(
                "cluster {cluster} is being initialised ({}); if this lasts, an initialisation \
                 stopped half-way and acceptors were wiped since: node accept-loss",
                describe(situation.names, &classes)
            ),
            classes,
            actions,
        };
    }
    if possible < q {
        let message = format!(
            "DATA LOSS: only {members} of {n} acceptors are members of cluster {cluster} whose \
             data is proven complete ({}); the others lost their data, may have gone back in \
             time (restarted or restored) or are foreign, so acknowledged writes may be lost \
             for good; serving nothing. To keep the highest value any acceptor still holds for \
             every key and serve again: node accept-loss",
            describe(situation.names, &classes)
        );
        return Decision {
            cluster: Some(cluster),
            verdict: Verdict::DataLoss,
            message,
            classes,
            actions,
        };
    }
    let others_answer = |target: usize| {
        classes
            .iter()
            .enumerate()
            .all(|(i, c)| i == target || !matches!(c, Class::Unreachable | Class::NotDurable))
    };
    if members >= q {
        if let Some((target, mark, life)) = classes.iter().enumerate().find_map(|(i, c)| match c {
            Class::Recovering { mark, life, lease }
                if lease.as_deref().is_none_or(|l| l == situation.node) && others_answer(i) =>
            {
                Some((i, mark.clone(), life.clone()))
            }
            _ => None,
        }) {
            actions.push(Action::CatchUp { target, mark, life });
        }
    }
    Decision {
        cluster: Some(cluster),
        verdict: Verdict::Serving,
        message: describe(situation.names, &classes),
        classes,
        actions,
    }
}

// ---------------------------------------------------------------------------------------
// The task
// ---------------------------------------------------------------------------------------

/// Where a catch-up pass stands: kept per (target, mark, life), so a pass that stopped
/// resumes at the SCAN page it stopped in instead of the first key.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Place {
    target: usize,
    mark: String,
    life: String,
    /// The acceptor being listed and the SCAN cursor of its current page.
    source: usize,
    cursor: u64,
    done: u64,
}

/// Why a catch-up pass stopped (the acceptor stays recovering; the next tick resumes).
#[derive(Debug, thiserror::Error)]
pub enum PassError {
    #[error("listing the keys of {acceptor}: {error}")]
    Listing {
        acceptor: String,
        error: AcceptorError,
    },
    #[error("{0}")]
    Key(#[from] crate::recovery::CatchUpError),
    #[error("another node holds the catch-up lease ({0})")]
    Leased(String),
    #[error("the lease could not be taken: {0}")]
    Lease(AcceptorError),
    #[error("promoting: {0}")]
    Promote(AcceptorError),
    #[error("not promoted: its record or its life changed during the pass (now {0:?})")]
    Changed(Option<Identity>),
}

pub struct Membership {
    acceptors: Vec<Arc<dyn AdminAcceptor>>,
    names: Vec<String>,
    /// This node's name in leases.
    node: String,
    quorum: usize,
    timeout: Duration,
    view: Mutex<View>,
    /// The cluster this node learned (kept while it runs).
    known: Mutex<Option<String>>,
    /// The running pass, if any, and where each pass stands.
    running: Mutex<bool>,
    place: Mutex<Option<Place>>,
    rng: Mutex<StdRng>,
    #[cfg(feature = "sim-controls")]
    control: Option<MembershipControl>,
}

impl Membership {
    pub fn new(acceptors: Vec<Arc<dyn AdminAcceptor>>, quorum: usize, timeout: Duration) -> Self {
        let node = format!("node-{:016x}", rand::random::<u64>());
        Self::with_rng(acceptors, quorum, timeout, node, StdRng::from_os_rng())
    }

    /// As [`Membership::new`], with this node's lease name and a seeded RNG (marks, ids,
    /// jitter): the simulation replays a seed exactly.
    pub fn with_rng(
        acceptors: Vec<Arc<dyn AdminAcceptor>>,
        quorum: usize,
        timeout: Duration,
        node: String,
        rng: StdRng,
    ) -> Self {
        let names: Vec<String> = acceptors.iter().map(|a| a.name().to_string()).collect();
        let view = View {
            cluster: None,
            verdict: Verdict::Waiting,
            message: "acceptors not inspected yet".into(),
            acceptors: names
                .iter()
                .map(|name| AcceptorView {
                    name: name.clone(),
                    state: AcceptorState::Unreachable,
                    keys: None,
                    catch_up: None,
                })
                .collect(),
        };
        Membership {
            acceptors,
            names,
            node,
            quorum,
            timeout,
            view: Mutex::new(view),
            known: Mutex::new(None),
            running: Mutex::new(false),
            place: Mutex::new(None),
            rng: Mutex::new(rng),
            #[cfg(feature = "sim-controls")]
            control: None,
        }
    }

    /// See [`MembershipControl`]; only in builds with the `sim-controls` feature.
    #[cfg(feature = "sim-controls")]
    pub fn with_control(mut self, control: Option<MembershipControl>) -> Self {
        self.control = control;
        self
    }

    /// THE hook of the negative controls: always false unless built with `sim-controls` and
    /// asked for.
    fn control(&self, which: MembershipControl) -> bool {
        #[cfg(feature = "sim-controls")]
        {
            self.control == Some(which)
        }
        #[cfg(not(feature = "sim-controls"))]
        {
            let _ = which;
            false
        }
    }

    pub fn view(&self) -> View {
        let mut view = lock(&self.view).clone();
        if let Some(place) = &*lock(&self.place) {
            if *lock(&self.running) {
                if let Some(a) = view.acceptors.get_mut(place.target) {
                    a.catch_up = Some((place.done, a.keys.unwrap_or(0).max(place.done)));
                }
            }
        }
        view
    }

    /// The verdict and its reason (cheap: for every keys request).
    pub fn verdict(&self) -> (Verdict, String) {
        let view = lock(&self.view);
        (view.verdict, view.message.clone())
    }

    /// True once the node knows its cluster and a quorum of members may exist.
    pub fn serving(&self) -> bool {
        lock(&self.view).verdict == Verdict::Serving
    }

    fn random_id(&self) -> String {
        format!("{:016x}", lock(&self.rng).random::<u64>())
    }

    /// Runs forever (the node's lifetime): one inspection per [`INTERVAL`]. `ballots` is the
    /// node's proposer's ballot source (catch-up ballots must be unique too).
    pub async fn run(self: Arc<Self>, ballots: Arc<BallotSource>) {
        loop {
            self.tick(&ballots).await;
            // Quick ticks until the cluster is known (a starting node serves sooner).
            let pause = if lock(&self.known).is_some() {
                INTERVAL
            } else {
                Duration::from_millis(50)
            };
            tokio::time::sleep(pause).await;
        }
    }

    /// One identity operation on acceptor `i`, bounded (a lost message must not stall the
    /// task).
    async fn on(&self, i: usize, op: IdentityOp) -> Result<Inspection, AcceptorError> {
        tokio::time::timeout(self.timeout * 4, self.acceptors[i].identity(op))
            .await
            .unwrap_or(Err(AcceptorError::Timeout))
    }

    async fn inspect_all(&self) -> Vec<Seen> {
        join_all(self.acceptors.iter().map(|a| async move {
            match tokio::time::timeout(self.timeout * 4, a.identity(IdentityOp::Inspect)).await {
                Ok(Ok(inspection)) => Seen::Answered(inspection),
                Ok(Err(AcceptorError::NotDurable(_))) => Seen::NotDurable,
                Ok(Err(_)) if a.durability_problem().is_some() => Seen::NotDurable,
                _ => Seen::Unreachable,
            }
        }))
        .await
    }

    /// One inspection and whatever it calls for.
    pub async fn tick(self: &Arc<Self>, ballots: &Arc<BallotSource>) {
        let seen = self.inspect_all().await;
        let known = lock(&self.known).clone();
        let decision = decide(
            &Situation {
                known: known.as_deref(),
                names: &self.names,
                node: &self.node,
                quorum: self.quorum,
            },
            &seen,
        );
        if decision.verdict != Verdict::Waiting || decision.cluster.is_some() {
            // Learned for good once seen (never given up while the node runs).
            if let (None, Some(c)) = (&known, &decision.cluster) {
                *lock(&self.known) = Some(c.clone());
            }
        }
        for a in &self.acceptors {
            a.set_cluster(decision.cluster.as_deref());
        }
        self.publish(&decision, &seen);
        if decision.verdict == Verdict::DataLoss
            && self.control(MembershipControl::InitialiseOverKnownCluster)
        {
            if let Some(cluster) = &decision.cluster {
                for (i, class) in decision.classes.iter().enumerate() {
                    if matches!(class, Class::Unmarked { .. }) {
                        let op = IdentityOp::Claim(self.identity_for(cluster, i, Standing::Member));
                        let _ = self.on(i, op).await;
                    }
                }
            }
        }
        let Some(cluster) = decision.cluster.clone() else {
            if decision.actions.contains(&Action::Initialise) {
                self.initialise().await;
            }
            return;
        };
        for action in decision.actions {
            match action {
                Action::Initialise => {}
                Action::Claim { acceptor, standing } => {
                    self.claim(&cluster, acceptor, standing).await
                }
                Action::Join { acceptor } => {
                    let op = IdentityOp::Join {
                        cluster: cluster.clone(),
                    };
                    if let Err(e) = self.on(acceptor, op).await {
                        log::warn!("acceptor {}: cannot join: {e}", self.names[acceptor]);
                    }
                }
                Action::Suspect { acceptor } => {
                    let op = if self.control(MembershipControl::CountSuspect) {
                        IdentityOp::Force(self.identity_for(&cluster, acceptor, Standing::Member))
                    } else {
                        IdentityOp::Suspect {
                            cluster: cluster.clone(),
                            mark: self.random_id(),
                        }
                    };
                    match self.on(acceptor, op).await {
                        Ok(_) => log::warn!(
                            "acceptor {}: restarted or restored since it was last brought level \
                             (its data may have gone back in time): marked recovering; it \
                             counts toward no quorum until caught up",
                            self.names[acceptor]
                        ),
                        Err(e) => log::warn!(
                            "acceptor {}: cannot mark recovering: {e}",
                            self.names[acceptor]
                        ),
                    }
                }
                Action::CatchUp { target, mark, life } => {
                    self.start_pass(&cluster, target, mark, life, ballots)
                }
            }
        }
    }

    /// A record for acceptor `acceptor` of `cluster` in `standing`, with a fresh mark.
    fn identity_for(&self, cluster: &str, acceptor: usize, standing: Standing) -> Identity {
        Identity {
            cluster: cluster.to_string(),
            acceptor: self.names[acceptor].clone(),
            standing,
            mark: self.random_id(),
            set: acceptor_set(self.names.iter().map(String::as_str)),
            stamp: String::new(),
        }
    }

    async fn claim(&self, cluster: &str, acceptor: usize, standing: Standing) {
        let identity = self.identity_for(cluster, acceptor, standing);
        match self.on(acceptor, IdentityOp::Claim(identity)).await {
            Ok(_) if standing == Standing::Recovering => log::warn!(
                "acceptor {}: no identity record (wiped, replaced or new): marked recovering; \
                 it counts toward no quorum until caught up",
                self.names[acceptor]
            ),
            Ok(_) => {}
            Err(e) => log::warn!("acceptor {}: cannot claim: {e}", self.names[acceptor]),
        }
    }

    /// A new cluster: claims every acceptor `initialising`, in order (the id acceptor 1 ends
    /// up with is everyone's), then joins them all.
    async fn initialise(&self) {
        let mut cluster = self.random_id();
        let set = acceptor_set(self.names.iter().map(String::as_str));
        for i in 0..self.acceptors.len() {
            let identity = Identity {
                cluster: cluster.clone(),
                acceptor: self.names[i].clone(),
                standing: Standing::Initialising,
                mark: String::new(),
                set: set.clone(),
                stamp: String::new(),
            };
            match self.on(i, IdentityOp::Claim(identity)).await {
                Ok(Inspection {
                    identity: Some(stored),
                    ..
                }) => {
                    if stored.cluster != cluster {
                        // Someone else initialised first: theirs is the cluster.
                        cluster = stored.cluster;
                    }
                }
                Ok(_) => return,
                Err(e) => {
                    log::warn!("initialising the cluster: {}: {e}", self.names[i]);
                    return;
                }
            }
        }
        for i in 0..self.acceptors.len() {
            let op = IdentityOp::Join {
                cluster: cluster.clone(),
            };
            if let Err(e) = self.on(i, op).await {
                log::warn!("initialising the cluster: {}: {e}", self.names[i]);
                return;
            }
        }
        log::info!("acceptors initialised as cluster {cluster}");
    }

    fn start_pass(
        self: &Arc<Self>,
        cluster: &str,
        target: usize,
        mark: String,
        life: String,
        ballots: &Arc<BallotSource>,
    ) {
        {
            let mut running = lock(&self.running);
            if *running {
                return;
            }
            *running = true;
        }
        let this = self.clone();
        let ballots = ballots.clone();
        let cluster = cluster.to_string();
        tokio::spawn(async move {
            let result = this.pass(&cluster, target, &mark, &life, &ballots).await;
            *lock(&this.running) = false;
            let name = &this.names[target];
            match result {
                Ok(keys) => {
                    log::warn!("acceptor {name}: caught up ({keys} keys): a member again")
                }
                Err(PassError::Leased(holder)) => {
                    log::info!("acceptor {name}: its catch-up pass runs on {holder}")
                }
                Err(e) => {
                    log::warn!("acceptor {name}: catch-up pass stopped, still recovering: {e}");
                    // Jittered pause before the next attempt, so passes of several nodes
                    // (or a hot key's writers) do not meet again in lock-step.
                    let pause = lock(&this.rng).random_range(50..500);
                    tokio::time::sleep(Duration::from_millis(pause)).await;
                }
            }
        });
    }

    async fn take_lease(&self, target: usize) -> Result<(), PassError> {
        let op = IdentityOp::Lease {
            node: self.node.clone(),
            ms: LEASE.as_millis() as u64,
        };
        let after = self.on(target, op).await.map_err(PassError::Lease)?;
        match after.lease {
            Some(holder) if holder == self.node => Ok(()),
            Some(holder) => Err(PassError::Leased(holder)),
            None => Err(PassError::Lease(AcceptorError::Protocol(
                "no lease after taking it".into(),
            ))),
        }
    }

    /// The catch-up pass for acceptor `target`, marked `mark`, under `life`: resumes where
    /// the last pass for the same (target, mark, life) stopped; the number of keys on success.
    pub async fn pass(
        &self,
        cluster: &str,
        target: usize,
        mark: &str,
        life: &str,
        ballots: &BallotSource,
    ) -> Result<u64, PassError> {
        self.take_lease(target).await?;
        let mut place = {
            let saved = lock(&self.place).clone();
            match saved {
                Some(p) if p.target == target && p.mark == mark && p.life == life => p,
                _ => Place {
                    target,
                    mark: mark.to_string(),
                    life: life.to_string(),
                    source: 0,
                    cursor: 0,
                    done: 0,
                },
            }
        };
        if place.done == 0 {
            log::warn!("acceptor {}: catch-up pass starts", self.names[target]);
        } else {
            log::warn!(
                "acceptor {}: catch-up pass resumes after {} keys",
                self.names[target],
                place.done
            );
        }
        let dyns: Vec<Arc<dyn Acceptor>> = self
            .acceptors
            .iter()
            .map(|a| a.clone() as Arc<dyn Acceptor>)
            .collect();
        if self.control(MembershipControl::PromoteWithoutCatchUp) {
            place.source = self.acceptors.len();
        }
        while place.source < self.acceptors.len() {
            if place.source == target {
                place.source += 1;
                place.cursor = 0;
                continue;
            }
            let source = &self.acceptors[place.source];
            let (next, keys) =
                tokio::time::timeout(self.timeout * 8, source.scan_keys(place.cursor))
                    .await
                    .unwrap_or(Err(AcceptorError::Timeout))
                    .map_err(|error| PassError::Listing {
                        acceptor: self.names[place.source].clone(),
                        error,
                    })?;
            // The page in batches (one script per acceptor and phase for a chunk of keys,
            // failed keys retried with jitter inside).
            let results =
                catch_up_batch(&dyns, self.quorum, self.timeout, ballots, &keys, target).await;
            if let Some(Err(e)) = results.into_iter().find(Result::is_err) {
                return Err(e.into());
            }
            self.take_lease(target).await?;
            // The page is done: the next pass for the same mark and life resumes after it.
            place.done += keys.len() as u64;
            if next == 0 {
                place.source += 1;
                place.cursor = 0;
            } else {
                place.cursor = next;
            }
            *lock(&self.place) = Some(place.clone());
        }
        let op = IdentityOp::Promote {
            cluster: cluster.to_string(),
            mark: mark.to_string(),
            life: life.to_string(),
        };
        let after = self.on(target, op).await.map_err(PassError::Promote)?;
        *lock(&self.place) = None;
        match after.identity {
            Some(id) if id.standing == Standing::Member && id.mark == mark => Ok(place.done),
            other => Err(PassError::Changed(other)),
        }
    }

    fn publish(&self, decision: &Decision, seen: &[Seen]) {
        let acceptors = self
            .names
            .iter()
            .zip(&decision.classes)
            .zip(seen)
            .map(|((name, class), seen)| AcceptorView {
                name: name.clone(),
                state: class.state(),
                keys: match seen {
                    Seen::Answered(i) => Some(i.data_keys),
                    _ => None,
                },
                catch_up: None,
            })
            .collect();
        let mut view = lock(&self.view);
        if view.verdict != decision.verdict {
            match decision.verdict {
                Verdict::DataLoss | Verdict::Misconfigured => {
                    log::error!("membership: {}: {}", decision.verdict, decision.message)
                }
                _ => log::info!("membership: {}: {}", decision.verdict, decision.message),
            }
        }
        *view = View {
            cluster: decision.cluster.clone(),
            verdict: decision.verdict,
            message: decision.message.clone(),
            acceptors,
        };
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Plain data behind these locks: a panic elsewhere cannot leave it half-written.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

// ---------------------------------------------------------------------------------------
// The operator's command
// ---------------------------------------------------------------------------------------

/// Why `accept-loss` stopped (nothing counted in between: the acceptors carry a temporary
/// cluster id until the end, so running again finishes the job).
#[derive(Debug, thiserror::Error)]
pub enum AcceptLossError {
    #[error("acceptor {acceptor} is unreachable ({error}): every acceptor must be reachable")]
    Unreachable {
        acceptor: String,
        error: AcceptorError,
    },
    #[error("acceptor {acceptor}: {error}")]
    Write {
        acceptor: String,
        error: AcceptorError,
    },
    #[error("listing the keys of {acceptor}: {error}")]
    Listing {
        acceptor: String,
        error: AcceptorError,
    },
    #[error("keeping the highest value of key {key}: {error}")]
    Key { key: String, error: String },
}

/// `node accept-loss`: after a loss the node refuses to guess about, keeps, for every key,
/// the value with the highest accepted ballot any acceptor still holds, then makes every
/// acceptor a member of the cluster most of them carry (or of a new one). Every acceptor
/// must be reachable. While it runs the acceptors carry a temporary cluster id, so no node
/// counts any of them; for each key it runs a catch-up round that needs the promise and the
/// acceptance of every acceptor (the highest accepted value among all of them, written to
/// all of them). Returns what it did, one line per acceptor (and one for the keys).
pub async fn accept_loss(
    acceptors: &[Arc<dyn AdminAcceptor>],
    timeout: Duration,
    ballots: &BallotSource,
) -> Result<Vec<String>, AcceptLossError> {
    let names: Vec<String> = acceptors.iter().map(|a| a.name().to_string()).collect();
    let set = acceptor_set(names.iter().map(String::as_str));
    let mut seen = Vec::new();
    for (a, name) in acceptors.iter().zip(&names) {
        match a.identity(IdentityOp::Inspect).await {
            Ok(i) => seen.push(Seen::Answered(i)),
            Err(error) => {
                return Err(AcceptLossError::Unreachable {
                    acceptor: name.clone(),
                    error,
                })
            }
        }
    }
    // The cluster most carry (a temporary id left by an interrupted run names it too).
    let carried: Vec<String> = seen
        .iter()
        .filter_map(|s| s.record())
        .map(|id| {
            id.cluster
                .strip_prefix(ACCEPT_LOSS_PREFIX)
                .unwrap_or(&id.cluster)
                .to_string()
        })
        .collect();
    let cluster = carried
        .iter()
        .max_by_key(|c| carried.iter().filter(|x| x == c).count())
        .cloned()
        .unwrap_or_else(|| format!("{:016x}", rand::random::<u64>()));
    let before: Vec<AcceptorState> = seen
        .iter()
        .zip(&names)
        .map(|(s, name)| classify(s, &cluster, name, &set).state())
        .collect();
    let temporary = format!("{ACCEPT_LOSS_PREFIX}{cluster}");
    let force = |a: &Arc<dyn AdminAcceptor>, name: &str, cluster: &str| {
        let identity = Identity {
            cluster: cluster.to_string(),
            acceptor: name.to_string(),
            standing: Standing::Member,
            mark: String::new(),
            set: set.clone(),
            stamp: String::new(),
        };
        let a = a.clone();
        let name = name.to_string();
        async move {
            a.identity(IdentityOp::Force(identity))
                .await
                .map_err(|error| AcceptLossError::Write {
                    acceptor: name,
                    error,
                })
        }
    };
    for (a, name) in acceptors.iter().zip(&names) {
        force(a, name, &temporary).await?;
        a.set_cluster(Some(&temporary));
    }
    // Every key any acceptor holds, one SCAN page at a time per acceptor.
    let dyns: Vec<Arc<dyn Acceptor>> = acceptors
        .iter()
        .map(|a| a.clone() as Arc<dyn Acceptor>)
        .collect();
    let all = acceptors.len();
    let mut keys_done = 0u64;
    for (a, name) in acceptors.iter().zip(&names) {
        let mut cursor = 0;
        loop {
            let (next, keys) =
                a.scan_keys(cursor)
                    .await
                    .map_err(|error| AcceptLossError::Listing {
                        acceptor: name.clone(),
                        error,
                    })?;
            // Quorum: every acceptor (the highest value among all of them, written to all).
            let results = catch_up_batch(&dyns, all, timeout, ballots, &keys, 0).await;
            if let Some((key, Err(e))) = keys.iter().zip(results).find(|(_, r)| r.is_err()) {
                return Err(AcceptLossError::Key {
                    key: key.clone(),
                    error: e.to_string(),
                });
            }
            keys_done += keys.len() as u64;
            if next == 0 {
                break;
            }
            cursor = next;
        }
    }
    let mut lines = Vec::new();
    for ((a, name), before) in acceptors.iter().zip(&names).zip(before) {
        force(a, name, &cluster).await?;
        lines.push(format!("{name}: was {before}, now a member of {cluster}"));
    }
    lines.push(format!(
        "{keys_done} key listings: each key now holds the highest value any acceptor held"
    ));
    Ok(lines)
}

#[cfg(test)]
mod tests {
    //! The decision table, in the manner of etcd-io/raft's quorum tests: each row is what the
    //! inspections saw and what must follow.

    use super::*;

    const NAMES: [&str; 3] = ["a1", "a2", "a3"];

    fn names() -> Vec<String> {
        NAMES.iter().map(|s| s.to_string()).collect()
    }

    fn set() -> String {
        acceptor_set(NAMES)
    }

    /// A shorthand per acceptor: `M` member (level), `S` suspect (member, other life), `R`
    /// recovering, `I` initialising (level), `i` stale initialising, `U` unmarked empty, `D`
    /// unmarked with data, `F` foreign, `O` other set, `X` unreachable, `N` not durable.
    fn seen(code: char, index: usize) -> Seen {
        let name = NAMES[index];
        let record = |standing: Standing, stamp: &str, set: String, cluster: &str| {
            Seen::Answered(Inspection {
                identity: Some(Identity {
                    cluster: cluster.into(),
                    acceptor: name.into(),
                    standing,
                    mark: "m".into(),
                    set,
                    stamp: stamp.into(),
                }),
                life: "L".into(),
                data_keys: 1,
                lease: None,
            })
        };
        let unmarked = |keys: u64| {
            Seen::Answered(Inspection {
                identity: None,
                life: "L".into(),
                data_keys: keys,
                lease: None,
            })
        };
        match code {
            'M' => record(Standing::Member, "L", set(), "c"),
            'S' => record(Standing::Member, "old", set(), "c"),
            'R' => record(Standing::Recovering, "L", set(), "c"),
            'I' => record(Standing::Initialising, "L", set(), "c"),
            'i' => record(Standing::Initialising, "old", set(), "c"),
            'U' => unmarked(0),
            'D' => unmarked(5),
            'F' => record(Standing::Member, "L", set(), "other"),
            'O' => record(Standing::Member, "L", "a1 a2 a4".into(), "c"),
            'X' => Seen::Unreachable,
            'N' => Seen::NotDurable,
            _ => panic!("unknown code {code}"),
        }
    }

    fn run(known: Option<&str>, codes: &str) -> Decision {
        let seen: Vec<Seen> = codes.chars().enumerate().map(|(i, c)| seen(c, i)).collect();
        let names = names();
        decide(
            &Situation {
                known,
                names: &names,
                node: "me",
                quorum: 2,
            },
            &seen,
        )
    }

    fn kinds(d: &Decision) -> String {
        d.actions
            .iter()
            .map(|a| match a {
                Action::Initialise => "init".to_string(),
                Action::Claim {
                    acceptor,
                    standing: Standing::Initialising,
                } => format!("claim-i{}", acceptor + 1),
                Action::Claim { acceptor, .. } => format!("claim-r{}", acceptor + 1),
                Action::Join { acceptor } => format!("join{}", acceptor + 1),
                Action::Suspect { acceptor } => format!("suspect{}", acceptor + 1),
                Action::CatchUp { target, .. } => format!("catchup{}", target + 1),
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn decision_table() {
        use Verdict::*;
        // (known cluster, what was seen, verdict, actions)
        let rows: &[(Option<&str>, &str, Verdict, &str)] = &[
            // A brand-new cluster, and one not yet reachable.
            (None, "UUU", Waiting, "init"),
            (None, "UUX", Waiting, ""),
            (None, "UDU", DataLoss, ""),
            // Healthy.
            (None, "MMM", Serving, ""),
            (Some("c"), "MMM", Serving, ""),
            (Some("c"), "MMX", Serving, ""),
            // One wiped: marked recovering; once recovering, caught up.
            (Some("c"), "MUM", Serving, "claim-r2"),
            (Some("c"), "MRM", Serving, "catchup2"),
            // The pass needs every other acceptor's keys.
            (Some("c"), "MRX", Serving, ""),
            // One restarted or restored: suspect, then the same road.
            (Some("c"), "SMM", Serving, "suspect1"),
            // Two restarted at once, or one restarted and one wiped: nothing proves the data.
            (Some("c"), "SSM", DataLoss, "suspect1 suspect2"),
            (Some("c"), "SUM", DataLoss, "suspect1"),
            // Two wiped while the third holds no data key (the review's F2): never
            // re-initialised, data loss.
            (Some("c"), "UUM", DataLoss, ""),
            (None, "UUM", DataLoss, ""),
            // Every acceptor wiped while the node runs: it knows the cluster, so data loss.
            (Some("c"), "UUU", DataLoss, ""),
            // A majority may still be there: unreachable ones may be members.
            (Some("c"), "MXX", Serving, ""),
            (Some("c"), "UXX", Serving, ""),
            (Some("c"), "UUX", DataLoss, ""),
            (Some("c"), "MNU", Serving, ""),
            // A half-done initialisation: finished while at least a quorum is initialising.
            (None, "IIU", Serving, "join1 join2 claim-i3"),
            (None, "MIU", Serving, "join2"),
            (None, "III", Serving, "join1 join2 join3"),
            // ...but not when a quorum may have been members: a1 joined, then a1 and a3
            // (members?) were wiped.
            (None, "UIU", Waiting, "join2"),
            (Some("c"), "MIU", Serving, "join2"),
            // A stale initialising record may have been a member since: suspect.
            (None, "iII", Serving, "suspect1 join2 join3"),
            // Foreign and other-set acceptors.
            (Some("c"), "FMM", Serving, ""),
            (Some("c"), "FFM", DataLoss, ""),
            (Some("c"), "MMO", Misconfigured, ""),
        ];
        for (known, codes, verdict, actions) in rows {
            let d = run(*known, codes);
            assert_eq!(
                (d.verdict, kinds(&d).as_str()),
                (*verdict, *actions),
                "known {known:?}, seen {codes}: {}",
                d.message
            );
        }
    }

    #[test]
    fn a_recovering_acceptor_leased_by_another_node_is_left_to_it() {
        let mut seen: Vec<Seen> = "MRM".chars().enumerate().map(|(i, c)| seen(c, i)).collect();
        if let Seen::Answered(i) = &mut seen[1] {
            i.lease = Some("other".into());
        }
        let names = names();
        let situation = Situation {
            known: Some("c"),
            names: &names,
            node: "me",
            quorum: 2,
        };
        assert_eq!(kinds(&decide(&situation, &seen)), "");
        if let Seen::Answered(i) = &mut seen[1] {
            i.lease = Some("me".into());
        }
        assert_eq!(kinds(&decide(&situation, &seen)), "catchup2");
    }

    #[test]
    fn the_operators_temporary_cluster_is_never_adopted() {
        let mut seen: Vec<Seen> = "MMM".chars().enumerate().map(|(i, c)| seen(c, i)).collect();
        for s in &mut seen {
            if let Seen::Answered(Inspection {
                identity: Some(id), ..
            }) = s
            {
                id.cluster = format!("{ACCEPT_LOSS_PREFIX}c");
            }
        }
        let names = names();
        let d = decide(
            &Situation {
                known: None,
                names: &names,
                node: "me",
                quorum: 2,
            },
            &seen,
        );
        assert_eq!((d.verdict, d.cluster), (Verdict::Waiting, None));
    }
}
