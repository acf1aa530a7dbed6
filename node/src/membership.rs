//! Who may count: the acceptors' identity records, the cluster's initialisation, detection of
//! an acceptor that lost its data, and its recovery.
//!
//! A background task of every node inspects every acceptor each [`INTERVAL`]:
//! - a brand-new cluster (every acceptor reachable, none holding data, none marked) is
//!   initialised once: the node claims acceptor 1 with a fresh random cluster id (claims write
//!   only where no record exists), adopts whatever id acceptor 1 then holds, and claims the
//!   others with it, in order; three nodes starting at once therefore agree on one id. A
//!   partly initialised cluster (some marked, none holding data) is finished the same way;
//! - an acceptor without a record while the members still form a quorum is marked
//!   *recovering* (with a fresh random mark): it lost its data (FLUSHALL, a new volume, a
//!   replaced disk). It stores what it is sent but counts toward no quorum (see
//!   `acceptor::counted`);
//! - a recovering acceptor is brought back by the catch-up pass: every key held by the members
//!   (SCAN on each of them) gets one catch-up round (`recovery`), then the record goes from
//!   recovering to member, only if it still carries the mark the pass started from. A fault
//!   during the pass leaves it recovering; any node may run the pass, twice is harmless;
//! - when the members can no longer form a quorum, acknowledged writes may be lost for good:
//!   the node says so in its log and `/health`, and serves nothing (no quorum counts) until
//!   the operator runs `node accept-loss` (docs/design-acceptor-recovery.md).

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::join_all;
use perseus_model::health::{AcceptorMembership, AcceptorState, MembershipView, Verdict};

use crate::acceptor::redis::{Inspection, RedisAcceptor};
use crate::acceptor::{Acceptor, AcceptorError, Identity, Standing};
use crate::ballot::BallotSource;
use crate::recovery::catch_up_batch;

/// How often every acceptor is inspected.
pub const INTERVAL: Duration = Duration::from_millis(1000);
/// Keys per catch-up batch (`recovery::catch_up_batch`, which retries a key a few times).
const PAGE: usize = 1000;

/// One acceptor as the membership task last saw it (the shared `/health` type).
pub type AcceptorView = AcceptorMembership;

/// The whole picture, for `/health` and the log (the shared `/health` type).
pub type View = MembershipView;

pub struct Membership {
    acceptors: Vec<Arc<RedisAcceptor>>,
    quorum: usize,
    timeout: Duration,
    view: Mutex<View>,
    /// Index of the acceptor a catch-up pass is running for, and its progress.
    pass: Mutex<Option<(usize, u64, u64)>>,
}

/// A fresh random id (cluster ids and marks).
fn random_id() -> String {
    format!("{:016x}", rand::random::<u64>())
}

impl Membership {
    pub fn new(acceptors: Vec<Arc<RedisAcceptor>>, quorum: usize, timeout: Duration) -> Self {
        let view = View {
            cluster: None,
            verdict: Verdict::Waiting,
            message: "acceptors not inspected yet".into(),
            acceptors: acceptors
                .iter()
                .map(|a| AcceptorView {
                    name: a.name().to_string(),
                    state: AcceptorState::Unreachable,
                    keys: None,
                    catch_up: None,
                })
                .collect(),
        };
        Membership {
            acceptors,
            quorum,
            timeout,
            view: Mutex::new(view),
            pass: Mutex::new(None),
        }
    }

    pub fn view(&self) -> View {
        let mut view = self.view.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some((index, done, total)) = *self.pass.lock().unwrap_or_else(|e| e.into_inner()) {
            if let Some(a) = view.acceptors.get_mut(index) {
                a.catch_up = Some((done, total));
            }
        }
        view
    }

    /// Runs forever (the node's lifetime): one inspection per [`INTERVAL`]. `ballots` is the
    /// node's proposer's ballot source (catch-up ballots must be unique too).
    pub async fn run(self: Arc<Self>, ballots: Arc<BallotSource>) {
        loop {
            self.tick(&ballots).await;
            // Quick ticks until the cluster is known (a starting node serves sooner).
            let pause = if self.cluster().is_some() {
                INTERVAL
            } else {
                Duration::from_millis(50)
            };
            tokio::time::sleep(pause).await;
        }
    }

    /// True once the node knows its cluster and a quorum of members exists.
    pub fn serving(&self) -> bool {
        self.view.lock().unwrap_or_else(|e| e.into_inner()).verdict == Verdict::Serving
    }

    /// One inspection and whatever it calls for.
    pub async fn tick(self: &Arc<Self>, ballots: &Arc<BallotSource>) {
        let inspections: Vec<Result<Inspection, AcceptorError>> =
            join_all(self.acceptors.iter().map(|a| a.inspect())).await;
        let n = self.acceptors.len();
        let reachable = inspections.iter().filter(|i| i.is_ok()).count();
        let empty = inspections
            .iter()
            .all(|i| matches!(i, Ok(Inspection { data_keys: 0, .. })));
        let cluster = self.cluster().or_else(|| majority_cluster(&inspections));

        let Some(cluster) = cluster else {
            if reachable == n && empty {
                self.initialise(&random_id()).await;
            } else if reachable == n {
                self.publish(
                    None,
                    &inspections,
                    Verdict::DataLoss,
                    "the acceptors hold data but none has an identity record (written by an \
                     older node, or every one of them was wiped): acknowledged writes may be \
                     lost; serving nothing. To accept that and start serving: node accept-loss"
                        .into(),
                );
            } else {
                self.publish(
                    None,
                    &inspections,
                    Verdict::Waiting,
                    format!(
                        "a new cluster is initialised once every acceptor is reachable ({reachable} of {n})"
                    ),
                );
            }
            return;
        };
        for acceptor in &self.acceptors {
            acceptor.set_cluster(&cluster);
        }

        let standing = |i: usize| -> Option<Standing> {
            match &inspections[i] {
                Ok(Inspection {
                    identity: Some(id), ..
                }) if id.cluster == cluster && id.acceptor == self.acceptors[i].name() => {
                    Some(id.standing)
                }
                _ => None,
            }
        };
        let unmarked: Vec<usize> = (0..n)
            .filter(|&i| matches!(inspections[i], Ok(Inspection { identity: None, .. })))
            .collect();
        let members = (0..n)
            .filter(|&i| standing(i) == Some(Standing::Member))
            .count();
        let recovering = (0..n).any(|i| standing(i) == Some(Standing::Recovering));

        if !unmarked.is_empty() && reachable == n && empty && !recovering {
            // A cluster whose initialisation stopped half-way (nothing written yet).
            self.initialise(&cluster).await;
            return;
        }
        if members >= self.quorum {
            for &i in &unmarked {
                let identity = Identity {
                    cluster: cluster.clone(),
                    acceptor: self.acceptors[i].name().to_string(),
                    standing: Standing::Recovering,
                    mark: random_id(),
                };
                match self.acceptors[i].claim(&identity).await {
                    Ok(_) => log::warn!(
                        "acceptor {}: no identity record (wiped, replaced or new): marked \
                         recovering; it counts toward no quorum until caught up",
                        self.acceptors[i].name()
                    ),
                    Err(e) => log::warn!(
                        "acceptor {}: cannot mark recovering: {e}",
                        self.acceptors[i].name()
                    ),
                }
            }
        }
        // Members that may exist (the unreachable ones may be members).
        let possible = members + (n - reachable);
        if possible < self.quorum {
            let message = format!(
                "only {members} of {n} acceptors are members of cluster {cluster} ({}): a \
                 majority lost its data or is foreign, so acknowledged writes may be lost for \
                 good; serving nothing. To accept the loss and serve again: node accept-loss",
                describe(&self.acceptors, &inspections, &cluster)
            );
            log::error!("{message}");
            self.publish(Some(cluster), &inspections, Verdict::DataLoss, message);
            return;
        }
        self.publish(
            Some(cluster.clone()),
            &inspections,
            Verdict::Serving,
            describe(&self.acceptors, &inspections, &cluster),
        );
        // One catch-up pass at a time per node.
        if members >= self.quorum && reachable == n {
            if let Some(target) = (0..n).find(|&i| standing(i) == Some(Standing::Recovering)) {
                let mark = match &inspections[target] {
                    Ok(Inspection {
                        identity: Some(id), ..
                    }) => id.mark.clone(),
                    _ => return,
                };
                let running = {
                    let mut pass = self.pass.lock().unwrap_or_else(|e| e.into_inner());
                    let running = pass.is_some();
                    if !running {
                        *pass = Some((target, 0, 0));
                    }
                    running
                };
                if !running {
                    let this = self.clone();
                    let ballots = ballots.clone();
                    tokio::spawn(async move {
                        let result = this.catch_up(&cluster, target, &mark, &ballots).await;
                        *this.pass.lock().unwrap_or_else(|e| e.into_inner()) = None;
                        let name = this.acceptors[target].name();
                        match result {
                            Ok(keys) => log::warn!(
                                "acceptor {name}: caught up ({keys} keys): a member again"
                            ),
                            Err(e) => log::warn!(
                                "acceptor {name}: catch-up pass stopped, still recovering: {e}"
                            ),
                        }
                    });
                }
            }
        }
    }

    fn cluster(&self) -> Option<String> {
        self.acceptors.iter().find_map(|a| a.cluster())
    }

    /// Claims every acceptor in order; the id acceptor 1 ends up with is everyone's.
    async fn initialise(&self, candidate: &str) {
        let mut cluster = candidate.to_string();
        for acceptor in &self.acceptors {
            let identity = Identity {
                cluster: cluster.clone(),
                acceptor: acceptor.name().to_string(),
                standing: Standing::Member,
                mark: String::new(),
            };
            match acceptor.claim(&identity).await {
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
                    log::warn!("initialising the cluster: {}: {e}", acceptor.name());
                    return;
                }
            }
        }
        log::info!("acceptors initialised as cluster {cluster}");
        for acceptor in &self.acceptors {
            acceptor.set_cluster(&cluster);
        }
    }

    /// The catch-up pass for acceptor `target`; the number of keys on success.
    async fn catch_up(
        &self,
        cluster: &str,
        target: usize,
        mark: &str,
        ballots: &BallotSource,
    ) -> Result<u64, String> {
        let name = self.acceptors[target].name().to_string();
        let mut keys = BTreeSet::new();
        for (i, acceptor) in self.acceptors.iter().enumerate() {
            if i == target {
                continue;
            }
            let mut cursor = 0;
            loop {
                let (next, batch) = acceptor
                    .scan_keys(cursor)
                    .await
                    .map_err(|e| format!("listing the keys of {}: {e}", acceptor.name()))?;
                keys.extend(batch);
                if next == 0 {
                    break;
                }
                cursor = next;
            }
        }
        let total = keys.len() as u64;
        log::warn!("acceptor {name}: catch-up pass over {total} keys");
        let dyns: Vec<Arc<dyn Acceptor>> = self
            .acceptors
            .iter()
            .map(|a| a.clone() as Arc<dyn Acceptor>)
            .collect();
        let keys: Vec<String> = keys.into_iter().collect();
        let mut done = 0u64;
        for page in keys.chunks(PAGE) {
            let results =
                catch_up_batch(&dyns, self.quorum, self.timeout, ballots, page, target).await;
            if let Some(Err(e)) = results.into_iter().find(Result::is_err) {
                return Err(e.to_string());
            }
            done += page.len() as u64;
            *self.pass.lock().unwrap_or_else(|e| e.into_inner()) = Some((target, done, total));
            log::info!("acceptor {name}: caught up {done} of {total} keys");
        }
        let after = self.acceptors[target]
            .promote(cluster, mark)
            .await
            .map_err(|e| format!("promoting: {e}"))?;
        match after.identity {
            Some(id) if id.standing == Standing::Member && id.mark == mark => Ok(total),
            other => Err(format!(
                "not promoted: its identity changed during the pass (now {other:?})"
            )),
        }
    }

    fn publish(
        &self,
        cluster: Option<String>,
        inspections: &[Result<Inspection, AcceptorError>],
        verdict: Verdict,
        message: String,
    ) {
        let acceptors = self
            .acceptors
            .iter()
            .zip(inspections)
            .map(|(a, i)| AcceptorView {
                name: a.name().to_string(),
                state: state_name(a, i, cluster.as_deref()),
                keys: i.as_ref().ok().map(|i| i.data_keys),
                catch_up: None,
            })
            .collect();
        let mut view = self.view.lock().unwrap_or_else(|e| e.into_inner());
        if view.verdict != verdict {
            log::info!("membership: {verdict}: {message}");
        }
        *view = View {
            cluster,
            verdict,
            message,
            acceptors,
        };
    }
}

fn state_name(
    acceptor: &RedisAcceptor,
    inspection: &Result<Inspection, AcceptorError>,
    cluster: Option<&str>,
) -> AcceptorState {
    match inspection {
        Err(_) if acceptor.durability_problem().is_some() => AcceptorState::RefusedNotDurable,
        Err(_) => AcceptorState::Unreachable,
        Ok(Inspection { identity: None, .. }) => AcceptorState::Unmarked,
        Ok(Inspection {
            identity: Some(id), ..
        }) if Some(id.cluster.as_str()) != cluster || id.acceptor != acceptor.name() => {
            AcceptorState::Foreign
        }
        Ok(Inspection {
            identity: Some(id), ..
        }) => match id.standing {
            Standing::Member => AcceptorState::Member,
            Standing::Recovering => AcceptorState::Recovering,
        },
    }
}

fn describe(
    acceptors: &[Arc<RedisAcceptor>],
    inspections: &[Result<Inspection, AcceptorError>],
    cluster: &str,
) -> String {
    acceptors
        .iter()
        .zip(inspections)
        .map(|(a, i)| format!("{} {}", a.name(), state_name(a, i, Some(cluster))))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The cluster id most acceptors carry (ties: the first acceptor's), if any is marked.
fn majority_cluster(inspections: &[Result<Inspection, AcceptorError>]) -> Option<String> {
    let ids: Vec<&str> = inspections
        .iter()
        .filter_map(|i| i.as_ref().ok()?.identity.as_ref())
        .map(|id| id.cluster.as_str())
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

/// `node accept-loss`: makes every acceptor a member of the cluster most of them carry (or of
/// a new one), accepting that writes acknowledged before may be lost. Every acceptor must be
/// reachable. Returns what it did, one line per acceptor.
pub async fn accept_loss(acceptors: &[Arc<RedisAcceptor>]) -> Result<Vec<String>, String> {
    let inspections: Vec<Result<Inspection, AcceptorError>> =
        join_all(acceptors.iter().map(|a| a.inspect())).await;
    for (a, i) in acceptors.iter().zip(&inspections) {
        if let Err(e) = i {
            return Err(format!(
                "acceptor {} is unreachable ({e}): every acceptor must be reachable",
                a.name()
            ));
        }
    }
    let cluster = majority_cluster(&inspections).unwrap_or_else(random_id);
    let mut lines = Vec::new();
    for (a, i) in acceptors.iter().zip(&inspections) {
        let before = state_name(a, i, Some(&cluster));
        if before == AcceptorState::Member {
            lines.push(format!("{}: member of {cluster}, unchanged", a.name()));
            continue;
        }
        let identity = Identity {
            cluster: cluster.clone(),
            acceptor: a.name().to_string(),
            standing: Standing::Member,
            mark: String::new(),
        };
        a.force(&identity)
            .await
            .map_err(|e| format!("acceptor {}: {e}", a.name()))?;
        lines.push(format!(
            "{}: was {before}, now a member of {cluster}",
            a.name()
        ));
    }
    Ok(lines)
}
