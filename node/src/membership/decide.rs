//! The membership task's decision, a pure function of what the inspections saw ([`decide`]):
//! how each acceptor is judged against the cluster ([`classify`]), the verdict and the steps
//! to take. Everything it needs is in its arguments, so its table test lists every case in
//! the manner of etcd-io/raft's quorum tests (docs/design-acceptor-recovery.md).

use perseus_model::health::{AcceptorState, Verdict};

use super::ACCEPT_LOSS_PREFIX;
use crate::acceptor::{acceptor_set, Identity, Inspection, Standing};

/// What one inspection saw of one acceptor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Seen {
    Unreachable,
    /// Answers, but its persistence settings could lose writes: refused.
    NotDurable,
    Answered(Inspection),
}

impl Seen {
    pub(super) fn record(&self) -> Option<&Identity> {
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
    /// Claimed by an initialisation of another cluster `cluster` and intact since: it never
    /// counted anywhere, so it may be claimed for this cluster like an acceptor without a
    /// record (two initialisations raced while an acceptor was wiped; it would otherwise stay
    /// foreign for good).
    ForeignInitialising {
        cluster: String,
    },
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
            Class::Foreign | Class::ForeignInitialising { .. } => AcceptorState::Foreign,
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
        let replaceable = id.acceptor == name
            && id.standing == Standing::Initialising
            && inspection.level()
            && !id.cluster.starts_with(ACCEPT_LOSS_PREFIX);
        return if replaceable {
            Class::ForeignInitialising {
                cluster: id.cluster.clone(),
            }
        } else {
            Class::Foreign
        };
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
    /// Whether this node has seen a quorum of members of its cluster since it started: from
    /// then on `initialising` records of it are late claims landed on wiped acceptors (a
    /// paused initialiser's, a delayed message), never an initialisation to finish.
    pub established: bool,
    /// NEGATIVE CONTROL (false but in the simulation's control): finish and join an
    /// initialisation even beside a recovering or suspect record of its cluster.
    pub join_after_counted: bool,
}

/// A step the membership task takes after an inspection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Initialise a brand-new cluster: claim every acceptor `initialising` (acceptor 1 first,
    /// with a fresh id), then join them all.
    Initialise,
    /// Claim acceptor `acceptor` (it has no record) with this standing and a fresh mark.
    Claim { acceptor: usize, standing: Standing },
    /// Claim acceptor `acceptor` (it holds an intact `initialising` record of the other
    /// cluster `over`) with this standing and a fresh mark, in place of that record.
    Replace {
        acceptor: usize,
        over: String,
        standing: Standing,
    },
    /// initialising -> member, if its life is still `life` (the one this inspection saw).
    Join { acceptor: usize, life: String },
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
/// temporary ids. Ids carried by records that counted (member, recovering) win over ids
/// carried only by initialising claims: a node that never learned its cluster, finding the
/// claims of a new initialisation beside another cluster's recovering mark, must see that
/// cluster (and its data loss), not the newcomer.
fn majority_cluster(seen: &[Seen]) -> Option<String> {
    let carried = |counted_only: bool| -> Vec<&str> {
        seen.iter()
            .filter_map(|s| s.record())
            .filter(|id| !counted_only || id.standing != Standing::Initialising)
            .map(|id| id.cluster.as_str())
            .filter(|id| !id.starts_with(ACCEPT_LOSS_PREFIX))
            .collect()
    };
    let counted = carried(true);
    let ids = if counted.is_empty() {
        carried(false)
    } else {
        counted
    };
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
    // Joining is always safe (it never counted, it forgot nothing), but only worth it once
    // this cluster holds a quorum of records (members and intact initialising ones): a node
    // that saw one initialising acceptor of a raced initialisation, the others not yet
    // answering, would otherwise make it a member of the losing id, foreign for good.
    // Claiming others for the initialisation only while no quorum of members can ever have
    // existed.
    // Once a quorum of members exists, an `initialising` record is never joined: it may be
    // the late claim of an initialisation decided long ago (a paused node, a delayed packet)
    // that landed on a member wiped since, stamped with its new life; it is marked
    // recovering and caught up like an acceptor without a record (q members can do that).
    // A recovering or suspect record proves the initialisation over: a recovering mark is
    // written only where a node saw a quorum of members (or in data loss, below), a suspect
    // was a member. Its acceptors are never claimed nor joined for an initialisation again,
    // whatever initialising records turn up (late claims on wiped members).
    let counted_before = !situation.join_after_counted
        && classes
            .iter()
            .any(|c| matches!(c, Class::Suspect | Class::Recovering { .. }));
    // A node that knows the cluster saw it counted: without a member left, initialising
    // records beside it are late claims landed on wiped acceptors, never a half-done
    // initialisation; and it never claims acceptors for one.
    let may_join =
        !counted_before && !situation.established && (situation.known.is_none() || members > 0);
    let finishing = may_join && situation.known.is_none() && initialising >= q && members < q;
    let joinable = may_join && members + initialising >= q && members < q;
    // Initialising acceptors that may never join cannot be members.
    let possible = members + unknown + if may_join { initialising } else { 0 };
    for (i, c) in classes.iter().enumerate() {
        match c {
            Class::Initialising if joinable => actions.push(Action::Join {
                acceptor: i,
                life: match &seen[i] {
                    Seen::Answered(inspection) => inspection.life.clone(),
                    _ => String::new(),
                },
            }),
            Class::Initialising if members >= q => actions.push(Action::Suspect { acceptor: i }),
            Class::Suspect => actions.push(Action::Suspect { acceptor: i }),
            // Only once it can be caught up: marked recovering during a half-done
            // initialisation it would stop the others joining (above).
            Class::StaleInitialising if members >= q => {
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
            // Data loss: a node that knows its cluster leaves its id on the wiped acceptors
            // (recovering, which counts for nothing), so a node that never learned it finds
            // them marked instead of empty and declares data loss too, never initialising a
            // new cluster over them.
            Class::Unmarked { .. } if possible < q && situation.known.is_some() => {
                actions.push(Action::Claim {
                    acceptor: i,
                    standing: Standing::Recovering,
                })
            }
            Class::ForeignInitialising { cluster: over } if finishing || members >= q => actions
                .push(Action::Replace {
                    acceptor: i,
                    over: over.clone(),
                    standing: if finishing {
                        Standing::Initialising
                    } else {
                        Standing::Recovering
                    },
                }),
            _ => {}
        }
    }
    let ever_counted = classes
        .iter()
        .any(|c| matches!(c, Class::Member | Class::Suspect | Class::Recovering { .. }));
    if possible < q && !ever_counted && initialising > 0 && situation.known.is_none() {
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

#[cfg(test)]
#[path = "decide_tests.rs"]
mod tests;
