//! The replica comparison at the end of every run: once the load has stopped (and the
//! scenario's faults are healed), every key of the run is read from every replica's own copy
//! — a read the replica answers alone (etcd v2 `quorum=false`, etcd v3 `serializable`,
//! ZooKeeper `getData` without `sync`, Galera with `wsrep_sync_wait = 0`) — and the copies are
//! compared. A checker of client reads never sees a follower that diverged but is never read
//! from; this does.
//!
//! What must agree: these systems replicate one log (Raft, ZAB, Galera's certification
//! order), so once settled every replica holds the same value of every key. A replica may lag
//! for a moment after the load stops, so the comparison repeats, once a second for up to
//! [`SETTLE`], until the copies agree; a copy that still differs then is a
//! `replica-divergence` violation on that replica's node, one per key and replica, naming the
//! value the others hold. A replica that does not answer is not compared (and said so).
//! Systems whose replicas are not behind the load's endpoints (Perseus' acceptors, NATS,
//! PostgreSQL's standbys, Redis replicas) are not compared yet: the run says so.

use std::time::{Duration, Instant};

use perseus_model::{System, Violation, ViolationKind};

use crate::store::{AnyStore, Store};

/// How long the copies may take to agree after the load stops.
pub const SETTLE: Duration = Duration::from_secs(10);

/// One replica's copy of a key: its value (`None`: missing), or why it was not read.
pub type Copy = Result<Option<String>, String>;

/// What the comparison found.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Whether the system has a per-replica read here (else nothing was compared).
    pub compared: bool,
    pub keys: usize,
    /// Replica reads that got no answer in the last round.
    pub unanswered: usize,
    /// (node index, violation) per key and diverged replica.
    pub divergences: Vec<(usize, Violation)>,
    /// Rounds it took (1 when the copies agreed at once).
    pub rounds: u32,
}

/// The divergences among the copies of `key` (by node): every answering replica whose copy
/// differs from the one most replicas hold (ties: the lowest node's).
pub fn divergences(key: &str, copies: &[Copy]) -> Vec<(usize, Violation)> {
    let answered: Vec<(usize, &Option<String>)> = copies
        .iter()
        .enumerate()
        .filter_map(|(n, c)| c.as_ref().ok().map(|v| (n, v)))
        .collect();
    let count = |v: &Option<String>| answered.iter().filter(|(_, w)| *w == v).count();
    let Some(&(_, majority)) = answered
        .iter()
        .max_by_key(|(n, v)| (count(v), std::cmp::Reverse(*n)))
    else {
        return Vec::new();
    };
    let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "missing".into());
    let holders: Vec<String> = answered
        .iter()
        .filter(|(_, v)| *v == majority)
        .map(|(n, _)| format!("n{}", n + 1))
        .collect();
    answered
        .iter()
        .filter(|(_, v)| *v != majority)
        .map(|&(n, v)| {
            (
                n,
                Violation {
                    key: key.to_string(),
                    kind: ViolationKind::ReplicaDivergence,
                    expected: format!("{} hold {}", holders.join(", "), show(majority)),
                    got: format!("n{} holds {}", n + 1, show(v)),
                },
            )
        })
        .collect()
}

/// Reads every key from every replica (`nodes`: the load's endpoints, one per replica) until
/// the copies agree or [`SETTLE`] has passed.
pub async fn compare(
    system: System,
    nodes: &[String],
    keys: &[String],
    timeout: Duration,
) -> Outcome {
    let mut out = Outcome {
        keys: keys.len(),
        ..Outcome::default()
    };
    if nodes
        .first()
        .and_then(|n| AnyStore::replica(system, n, "probe", timeout))
        .is_none()
    {
        return out;
    }
    out.compared = true;
    let start = Instant::now();
    loop {
        out.rounds += 1;
        out.unanswered = 0;
        out.divergences.clear();
        for key in keys {
            let mut copies: Vec<Copy> = Vec::with_capacity(nodes.len());
            for node in nodes {
                let copy = match AnyStore::replica(system, node, key, timeout) {
                    Some(mut c) => c
                        .read()
                        .await
                        .map(|k| k.map(|k| k.value.trim().to_string()))
                        .map_err(|e| e.to_string()),
                    None => Err("no per-replica read".into()),
                };
                out.unanswered += usize::from(copy.is_err());
                copies.push(copy);
            }
            out.divergences.extend(divergences(key, &copies));
        }
        if out.divergences.is_empty() || start.elapsed() >= SETTLE {
            return out;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(x: &str) -> Copy {
        Ok(Some(x.to_string()))
    }

    #[test]
    fn agreeing_copies_are_no_violation() {
        assert!(divergences("k", &[v("7"), v("7"), v("7")]).is_empty());
        assert!(divergences("k", &[Ok(None), Ok(None)]).is_empty());
        // a replica that did not answer is not compared
        assert!(divergences("k", &[v("7"), Err("timeout".into()), v("7")]).is_empty());
        assert!(divergences("k", &[]).is_empty());
    }

    #[test]
    fn the_odd_replica_out_is_named() {
        let d = divergences("k", &[v("7"), v("9"), v("7")]);
        assert_eq!(d.len(), 1);
        let (n, viol) = &d[0];
        assert_eq!(*n, 1);
        assert_eq!(viol.kind, ViolationKind::ReplicaDivergence);
        assert_eq!(viol.expected, "n1, n3 hold 7");
        assert_eq!(viol.got, "n2 holds 9");
        // a replica missing the key diverges as well
        let d = divergences("k", &[v("7"), v("7"), Ok(None)]);
        assert_eq!(d[0].1.got, "n3 holds missing");
        // no majority: the lowest node's copy stands, the others are named
        let d = divergences("k", &[v("1"), v("2"), v("3")]);
        assert_eq!(d.iter().map(|(n, _)| *n).collect::<Vec<_>>(), vec![1, 2]);
    }
}
