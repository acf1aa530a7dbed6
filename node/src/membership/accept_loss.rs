//! The operator's command after a loss the node refuses to guess about: `node accept-loss`
//! keeps, for every key, the highest value any acceptor still holds, then makes every
//! acceptor a member again.

use std::sync::Arc;
use std::time::Duration;

use perseus_model::health::AcceptorState;

use super::{classify, Seen, ACCEPT_LOSS_PREFIX};
use crate::acceptor::{
    acceptor_set, Acceptor, AcceptorError, AdminAcceptor, Identity, IdentityOp, Standing,
};
use crate::ballot::BallotSource;
use crate::recovery::catch_up_batch;

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
    #[error(
        "the acceptors carry cluster {carried}, but this node remembers cluster {remembered} \
         (its cluster_file): they may be another cluster's; check the acceptor list, or remove \
         the cluster file to accept {carried}"
    )]
    OtherCluster { carried: String, remembered: String },
    #[error("keeping the highest value of key {key}: {error}")]
    Key { key: String, error: String },
}

/// `node accept-loss`: after a loss the node refuses to guess about, keeps, for every key,
/// the value with the highest accepted ballot any acceptor still holds, then makes every
/// acceptor a member of the cluster most of them carry (or, when none carries one, of the
/// cluster `remembered` names: the one the node remembers in its cluster file, so that the
/// nodes, which know it, serve again; or of a new one). Every acceptor
/// must be reachable. While it runs the acceptors carry a temporary cluster id, so no node
/// counts any of them; for each key it runs a catch-up round that needs the promise and the
/// acceptance of every acceptor (the highest accepted value among all of them, written to
/// all of them). Returns what it did, one line per acceptor (and one for the keys).
pub async fn accept_loss(
    acceptors: &[Arc<dyn AdminAcceptor>],
    timeout: Duration,
    ballots: &BallotSource,
    remembered: Option<&str>,
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
        .or_else(|| remembered.map(str::to_string))
        .unwrap_or_else(|| format!("{:016x}", rand::random::<u64>()));
    if let Some(remembered) = remembered.filter(|r| *r != cluster) {
        return Err(AcceptLossError::OtherCluster {
            carried: cluster,
            remembered: remembered.to_string(),
        });
    }
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
