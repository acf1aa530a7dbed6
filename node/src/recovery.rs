//! The catch-up round: brings one key's chosen value onto a recovering acceptor.
//!
//! A CASPaxos identity round of its own (any node may run it, as often as it likes: it writes
//! the value it finds): prepare a fresh ballot, counting only members' promises (a recovering
//! acceptor's answers arrive as [`AcceptorError::Recovering`] and never count), take the value
//! with the highest accepted ballot, and accept it under the same ballot on every acceptor. It
//! succeeds only when a quorum of members AND the recovering acceptor accepted: the key's
//! chosen value then sits on a majority that includes the recovering acceptor, above every
//! ballot it may have promised before it lost its data (see docs/design-acceptor-recovery.md).

use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;

use crate::acceptor::{AcceptReply, Acceptor, AcceptorError, PrepareReply};
use crate::ballot::{Ballot, BallotSource};
use crate::quorum::{Problem, ProblemKind, Problems};

/// Why one key's catch-up round failed (the acceptor stays recovering).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CatchUpError {
    #[error("key {key}: prepare: {promised} member promises, quorum {quorum}: {problems}")]
    Prepare {
        key: String,
        promised: usize,
        quorum: usize,
        problems: Problems,
    },
    #[error("key {key}: accept: {accepted} members accepted (quorum {quorum}), the recovering acceptor {target}: {problems}")]
    Accept {
        key: String,
        accepted: usize,
        quorum: usize,
        target: String,
        problems: Problems,
    },
}

async fn bounded<T>(
    timeout: Duration,
    call: impl std::future::Future<Output = Result<T, AcceptorError>>,
) -> Result<T, AcceptorError> {
    tokio::time::timeout(timeout, call)
        .await
        .unwrap_or(Err(AcceptorError::Timeout))
}

fn problem(acceptor: &Arc<dyn Acceptor>, kind: ProblemKind) -> Problem {
    Problem {
        acceptor: acceptor.name().to_string(),
        kind,
    }
}

/// One catch-up round of `key` for the acceptor at index `target`.
pub async fn catch_up_key(
    acceptors: &[Arc<dyn Acceptor>],
    quorum: usize,
    timeout: Duration,
    ballots: &BallotSource,
    key: &str,
    target: usize,
) -> Result<(), CatchUpError> {
    let ballot = ballots.next();
    let promises = join_all(
        acceptors
            .iter()
            .map(|a| bounded(timeout, a.prepare(key, ballot))),
    )
    .await;
    let mut best: Option<(Ballot, Option<String>)> = None;
    let mut promised = 0;
    let mut problems = Vec::new();
    for (acceptor, answer) in acceptors.iter().zip(promises) {
        match answer {
            Ok(PrepareReply::Promised { accepted, value }) => {
                promised += 1;
                if best.as_ref().is_none_or(|(b, _)| accepted > *b) {
                    best = Some((accepted, value));
                }
            }
            Ok(PrepareReply::Conflict(seen)) => {
                ballots.fast_forward(seen);
                problems.push(problem(acceptor, ProblemKind::Conflict(seen)));
            }
            Err(e) => problems.push(problem(acceptor, ProblemKind::Failed(e))),
        }
    }
    if promised < quorum {
        return Err(CatchUpError::Prepare {
            key: key.into(),
            promised,
            quorum,
            problems: Problems(problems),
        });
    }
    let value = best.and_then(|(_, value)| value);
    let accepts = join_all(
        acceptors
            .iter()
            .map(|a| bounded(timeout, a.accept(key, ballot, value.as_deref(), ballot))),
    )
    .await;
    let (mut accepted, mut target_took_it) = (0, false);
    let mut problems = Vec::new();
    for (index, (acceptor, answer)) in acceptors.iter().zip(accepts).enumerate() {
        match answer {
            Ok(AcceptReply::Accepted) => {
                accepted += 1;
                target_took_it |= index == target;
            }
            // The recovering acceptor stored it: exactly what this round is for.
            Err(AcceptorError::Recovering) if index == target => target_took_it = true,
            Ok(AcceptReply::Conflict(seen)) => {
                ballots.fast_forward(seen);
                problems.push(problem(acceptor, ProblemKind::Conflict(seen)));
            }
            Err(e) => problems.push(problem(acceptor, ProblemKind::Failed(e))),
        }
    }
    if accepted >= quorum && target_took_it {
        Ok(())
    } else {
        Err(CatchUpError::Accept {
            key: key.into(),
            accepted,
            quorum,
            target: acceptors[target].name().to_string(),
            problems: Problems(problems),
        })
    }
}

/// [`catch_up_key`] with a few retries (a conflict with live traffic is normal).
pub async fn catch_up_key_with_retries(
    acceptors: &[Arc<dyn Acceptor>],
    quorum: usize,
    timeout: Duration,
    ballots: &BallotSource,
    key: &str,
    target: usize,
    attempts: usize,
) -> Result<(), CatchUpError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match catch_up_key(acceptors, quorum, timeout, ballots, key, target).await {
            Ok(()) => return Ok(()),
            Err(e) if attempt >= attempts => return Err(e),
            Err(_) => tokio::time::sleep(Duration::from_millis(5 * attempt as u64)).await,
        }
    }
}
