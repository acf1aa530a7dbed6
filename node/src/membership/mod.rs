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

mod accept_loss;
pub mod cluster_file;
mod decide;
mod pass;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::join_all;
use perseus_model::health::{AcceptorMembership, AcceptorState, MembershipView, Verdict};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::acceptor::{
    acceptor_set, AcceptorError, AdminAcceptor, Identity, IdentityOp, Inspection, Standing,
};
use crate::ballot::BallotSource;

pub use accept_loss::{accept_loss, AcceptLossError};
pub use decide::{classify, decide, Action, Class, Decision, Seen, Situation};
pub use pass::PassError;
use pass::Place;

/// How often every acceptor is inspected while every acceptor counts.
pub const INTERVAL: Duration = Duration::from_millis(1000);
/// How often while anything is under way (the cluster not yet known, an acceptor not a member:
/// wiped, suspect, recovering, unreachable): a wiped acceptor is marked, its pass started and
/// its promotion seen by every node within a fraction of a second instead of a second each.
pub const QUICK_INTERVAL: Duration = Duration::from_millis(200);
/// How long a catch-up lease lasts; renewed between SCAN pages every `pass::RENEW_AFTER`.
/// Short, so that a lease held by a node that died (or lost its links) blocks the other
/// nodes' passes for at most this long; a lease taken under an earlier life of the target's
/// data (it restarted or was restored since) is void at once.
const LEASE: Duration = Duration::from_secs(5);
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
    /// When the members cannot form a quorum, start over: claim the acceptors without a record
    /// as members of a fresh cluster id (the data loss hidden under a new cluster, which the
    /// simulation's new-cluster checks must see: the history alone cannot).
    InitialiseUnderNewId,
    /// A node initialising a new cluster adopts the id of whatever record acceptor 1 holds,
    /// even one that counted (a recovering or member record another node wrote after every
    /// acceptor was wiped), claims the others `initialising` under it, and joins them beside
    /// that record (`decide` as it was before both rules).
    AdoptAnyRecordAtInitialisation,
}

/// One acceptor as the membership task last saw it (the shared `/health` type).
pub type AcceptorView = AcceptorMembership;

/// The whole picture, for `/health` and the log (the shared `/health` type).
pub type View = MembershipView;

pub struct Membership {
    acceptors: Vec<Arc<dyn AdminAcceptor>>,
    names: Vec<String>,
    /// This node's name in leases.
    node: String,
    quorum: usize,
    timeout: Duration,
    view: Mutex<View>,
    /// The cluster this node learned (kept while it runs, and across restarts in
    /// `cluster_file`).
    known: Mutex<Option<String>>,
    /// Where the node remembers its cluster across restarts, and whether the file holds it.
    cluster_file: Option<PathBuf>,
    remembered: Mutex<bool>,
    /// Whether a quorum of members was seen since the node started (see `Situation`).
    established: Mutex<bool>,
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
            cluster_file: None,
            remembered: Mutex::new(false),
            established: Mutex::new(false),
            running: Mutex::new(false),
            place: Mutex::new(None),
            rng: Mutex::new(rng),
            #[cfg(feature = "sim-controls")]
            control: None,
        }
    }

    /// Remembers the cluster in `path` across restarts ([`cluster_file`]): a cluster id
    /// already there is known from the first inspection on (never initialised over); one
    /// learned later is written there.
    pub fn with_cluster_file(
        mut self,
        path: PathBuf,
    ) -> Result<Self, cluster_file::ClusterFileError> {
        if let Some(id) = cluster_file::read(&path)? {
            log::info!(
                "remembers cluster {id} ({}): never initialises another",
                path.display()
            );
            *lock(&self.known) = Some(id);
            *lock(&self.remembered) = true;
        }
        self.cluster_file = Some(path);
        Ok(self)
    }

    /// Knows `cluster` from the first inspection on, as a node whose cluster file holds it
    /// (the simulation's nodes of a cluster that exists before the run).
    pub fn remembering(self, cluster: &str) -> Self {
        *lock(&self.known) = Some(cluster.to_string());
        self
    }

    /// The cluster this node knows (learned, or remembered from its cluster file).
    pub fn known(&self) -> Option<String> {
        lock(&self.known).clone()
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
            // Quick ticks until the cluster is known (a starting node serves sooner), and
            // while anything is under way (a recovery is seen through sooner).
            let settled = {
                let view = lock(&self.view);
                view.verdict == Verdict::Serving
                    && view
                        .acceptors
                        .iter()
                        .all(|a| a.state == AcceptorState::Member)
            };
            let pause = if lock(&self.known).is_none() {
                Duration::from_millis(50)
            } else if settled {
                INTERVAL
            } else {
                QUICK_INTERVAL
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
                established: *lock(&self.established),
                join_after_counted: self.control(MembershipControl::AdoptAnyRecordAtInitialisation),
            },
            &seen,
        );
        // Learned for good once any acceptor is seen that counted in it (a member, or one
        // that was: suspect, recovering); never given up while the node runs, and remembered
        // in the cluster file. An id seen only on acceptors being initialised is not learned:
        // it may still give way to another initialisation's (`decide`).
        let counted = decision
            .classes
            .iter()
            .any(|c| matches!(c, Class::Member | Class::Suspect | Class::Recovering { .. }));
        if let (None, Some(c), true) = (&known, &decision.cluster, counted) {
            *lock(&self.known) = Some(c.clone());
        }
        let members = decision.classes.iter().filter(|c| **c == Class::Member);
        if members.count() >= self.quorum {
            *lock(&self.established) = true;
        }
        self.remember();
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
        if decision.verdict == Verdict::DataLoss
            && self.control(MembershipControl::InitialiseUnderNewId)
        {
            let fresh = self.random_id();
            for (i, class) in decision.classes.iter().enumerate() {
                if matches!(class, Class::Unmarked { .. }) {
                    let op = IdentityOp::Claim(self.identity_for(&fresh, i, Standing::Member));
                    let _ = self.on(i, op).await;
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
                Action::Replace {
                    acceptor,
                    over,
                    standing,
                } => {
                    let identity = self.identity_for(&cluster, acceptor, standing);
                    match self
                        .on(
                            acceptor,
                            IdentityOp::Replace {
                                over: over.clone(),
                                identity,
                            },
                        )
                        .await
                    {
                        Ok(_) => log::warn!(
                            "acceptor {}: held an initialising record of cluster {over} (two \
                             initialisations raced): claimed for cluster {cluster} as {}",
                            self.names[acceptor],
                            standing.as_str()
                        ),
                        Err(e) => {
                            log::warn!("acceptor {}: cannot claim: {e}", self.names[acceptor])
                        }
                    }
                }
                Action::Join { acceptor, life } => {
                    let op = IdentityOp::Join {
                        cluster: cluster.clone(),
                        life,
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

    /// Writes the known cluster to the cluster file once (a failure is logged and retried at
    /// the next tick: the node serves meanwhile, it just would not remember after a restart).
    fn remember(&self) {
        let Some(path) = &self.cluster_file else {
            return;
        };
        if *lock(&self.remembered) {
            return;
        }
        let Some(id) = lock(&self.known).clone() else {
            return;
        };
        match cluster_file::write(path, &id) {
            Ok(()) => {
                *lock(&self.remembered) = true;
                log::info!("cluster {id} remembered in {}", path.display());
            }
            Err(e) => log::error!("{e}"),
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
    /// up with is everyone's); `decide` joins them.
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
                    life,
                    ..
                }) => {
                    // Only another initialisation's intact claim is adopted (two nodes
                    // started at once): a record that counted (member, suspect, recovering)
                    // says a cluster exists whose data was lost since this node's inspection
                    // (another node marked the wiped acceptor); initialising under its id
                    // would make empty acceptors its members.
                    let raced = !self.control(MembershipControl::AdoptAnyRecordAtInitialisation);
                    if raced && !intact_claim(&stored, &self.names[i], &life) {
                        log::error!(
                            "not initialising: acceptor {} holds a record of cluster {} ({}): \
                             a cluster existed; its acceptors lost their data",
                            self.names[i],
                            stored.cluster,
                            stored.standing.as_str()
                        );
                        return;
                    }
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
        // The joins go through `decide` at the next inspection (joined only while no quorum
        // of members exists, so a claim of this one that lands late never makes a wiped
        // member a member again).
        log::info!("acceptors claimed for cluster {cluster}");
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

/// Whether `id` is an initialisation's claim on acceptor `name`, untouched since (stamped with
/// the acceptor's current life `life`): it never counted anywhere, so another initialisation
/// may adopt its id. Never the operator's temporary id.
fn intact_claim(id: &Identity, name: &str, life: &str) -> bool {
    id.standing == Standing::Initialising
        && id.acceptor == name
        && id.stamp == life
        && !id.cluster.starts_with(ACCEPT_LOSS_PREFIX)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Plain data behind these locks: a panic elsewhere cannot leave it half-written.
    m.lock().unwrap_or_else(|e| e.into_inner())
}
