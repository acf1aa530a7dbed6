//! The catch-up round: brings keys' chosen values onto a recovering acceptor.
//!
//! A CASPaxos identity round of its own (any node may run it, as often as it likes: it writes
//! the value it finds): prepare a fresh ballot, counting only members' promises (a recovering
//! acceptor's answers arrive as [`AcceptorError::Recovering`] and never count), take the value
//! with the highest accepted ballot, and accept it under the same ballot on every acceptor. It
//! succeeds only when a quorum of members AND the recovering acceptor accepted: the key's
//! chosen value then sits on a majority that includes the recovering acceptor, above every
//! ballot it may have promised before it lost its data (see docs/design-acceptor-recovery.md).
//!
//! [`catch_up_key`] runs the round for one key; [`catch_up_batch`] runs it for a page of keys
//! at once: the same round, key by key the same decision ([`tally_promises`],
//! [`tally_accepts`]), but each phase is one call per acceptor for a chunk of keys
//! ([`Acceptor::prepare_many`], [`Acceptor::accept_many`]: one script run in Redis, so one
//! round trip and one fsync instead of one per key). The chunk shares one ballot: ballots
//! order the rounds of one key, and b is still fresh and unique for each key of the chunk
//! (no other round, of this node or another, ever uses b for it). Keys that lose a race are
//! retried with a new ballot after a jittered pause, so passes on several nodes do not duel in
//! lock-step.

use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use futures::stream::{self, StreamExt};

use crate::acceptor::{AcceptReply, Acceptor, AcceptorError, Answers, PrepareReply};
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

/// The prepare phase's decision for one key, from each acceptor's answer (in the order of
/// the acceptors): the value to carry (the one with the highest accepted ballot among the
/// members' promises; `None`: no value, the key does not exist) when a quorum of members
/// promised, or the refusal. Conflicts fast-forward `ballots` past the ballot that beat us.
pub fn tally_promises(
    acceptors: &[Arc<dyn Acceptor>],
    quorum: usize,
    ballots: &BallotSource,
    key: &str,
    answers: impl IntoIterator<Item = Result<PrepareReply, AcceptorError>>,
) -> Result<Option<String>, CatchUpError> {
    let mut best: Option<(Ballot, Option<String>)> = None;
    let mut promised = 0;
    let mut problems = Vec::new();
    for (acceptor, answer) in acceptors.iter().zip(answers) {
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
    Ok(best.and_then(|(_, value)| value))
}

/// The accept phase's decision for one key: caught up only when a quorum of members AND the
/// acceptor at index `target` accepted (its acceptance arrives as
/// [`AcceptorError::Recovering`] while it recovers, or as a plain one if it is a member
/// already). Conflicts fast-forward `ballots`.
pub fn tally_accepts(
    acceptors: &[Arc<dyn Acceptor>],
    quorum: usize,
    ballots: &BallotSource,
    key: &str,
    target: usize,
    answers: impl IntoIterator<Item = Result<AcceptReply, AcceptorError>>,
) -> Result<(), CatchUpError> {
    let (mut accepted, mut target_took_it) = (0, false);
    let mut problems = Vec::new();
    for (index, (acceptor, answer)) in acceptors.iter().zip(answers).enumerate() {
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
            target: acceptors
                .get(target)
                .map_or_else(|| format!("#{target}"), |a| a.name().to_string()),
            problems: Problems(problems),
        })
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
    let value = tally_promises(acceptors, quorum, ballots, key, promises)?;
    let accepts = join_all(
        acceptors
            .iter()
            .map(|a| bounded(timeout, a.accept(key, ballot, value.as_deref(), ballot))),
    )
    .await;
    tally_accepts(acceptors, quorum, ballots, key, target, accepts)
}

/// Keys per call of a batch: a page is cut into chunks of this size, each one script run per
/// acceptor and phase (a few milliseconds of Redis time; live traffic waits no longer).
pub const CHUNK: usize = 256;
/// Chunks of one page in flight at once.
pub const CHUNKS_IN_FLIGHT: usize = 4;
/// Rounds per key in [`catch_up_batch`] before its failure is reported.
pub const BATCH_ATTEMPTS: usize = 8;
/// The jittered pause before retry r is uniform in [0, min(BACKOFF_BASE * 2^r, BACKOFF_CAP)].
const BACKOFF_BASE: Duration = Duration::from_millis(5);
const BACKOFF_CAP: Duration = Duration::from_millis(400);

/// Catches up every key of `keys` (a page of a pass) on the acceptor at index `target`: one
/// result per key, in the same order. Each key gets exactly the safety of [`catch_up_key`]
/// (module comment); keys that fail are retried, each time with a fresh ballot, after a
/// jittered pause, up to [`BATCH_ATTEMPTS`] rounds, except when an acceptor refused for its
/// identity (it was wiped or replaced: the pass must look again, not retry). The acceptor at
/// `target` is sent the accepts but asked to promise only when `quorum` needs it (more than
/// the other acceptors): a recovering acceptor's promise never counts.
pub async fn catch_up_batch(
    acceptors: &[Arc<dyn Acceptor>],
    quorum: usize,
    timeout: Duration,
    ballots: &BallotSource,
    keys: &[String],
    target: usize,
) -> Vec<Result<(), CatchUpError>> {
    let mut results: Vec<Option<Result<(), CatchUpError>>> = vec![None; keys.len()];
    let mut pending: Vec<usize> = (0..keys.len()).collect();
    for attempt in 1..=BATCH_ATTEMPTS {
        let chunks: Vec<Vec<usize>> = pending.chunks(CHUNK).map(<[usize]>::to_vec).collect();
        let rounds = stream::iter(chunks.into_iter().map(|chunk| async move {
            let names: Vec<String> = chunk.iter().map(|&i| keys[i].clone()).collect();
            let outcome = batch_round(acceptors, quorum, timeout, ballots, &names, target).await;
            chunk.into_iter().zip(outcome).collect::<Vec<_>>()
        }))
        .buffer_unordered(CHUNKS_IN_FLIGHT)
        .collect::<Vec<_>>()
        .await;
        let mut again = Vec::new();
        let mut seed = 0u64;
        for (index, outcome) in rounds.into_iter().flatten() {
            match outcome {
                Err(e) if attempt < BATCH_ATTEMPTS && worth_retrying(&e) => {
                    again.push(index);
                    results[index] = Some(Err(e));
                }
                outcome => results[index] = Some(outcome),
            }
            seed = seed.wrapping_add(index as u64);
        }
        if again.is_empty() {
            break;
        }
        again.sort_unstable();
        pending = again;
        let node = ballots.incarnation() ^ ballots.proposer().rotate_left(32);
        tokio::time::sleep(backoff(attempt, node, seed)).await;
    }
    // Every key has its result by now; one without (impossible) is never reported caught up.
    results
        .into_iter()
        .zip(keys)
        .map(|(r, key)| r.unwrap_or_else(|| Err(not_run(key, quorum))))
        .collect()
}

/// The failure of a key no round decided (never expected; never taken for success).
fn not_run(key: &str, quorum: usize) -> CatchUpError {
    CatchUpError::Prepare {
        key: key.into(),
        promised: 0,
        quorum,
        problems: Problems::default(),
    }
}

/// A failure worth another round: a lost race or an acceptor that did not answer. An
/// identity refusal is not (the acceptor was wiped, replaced or re-marked: retrying cannot
/// help; the pass must inspect again).
fn worth_retrying(e: &CatchUpError) -> bool {
    let problems = match e {
        CatchUpError::Prepare { problems, .. } | CatchUpError::Accept { problems, .. } => problems,
    };
    !problems
        .0
        .iter()
        .any(|p| matches!(p.kind, ProblemKind::Failed(AcceptorError::Unmarked(_))))
}

/// The pause before retry `attempt`: uniform in [0, min(BACKOFF_BASE * 2^attempt,
/// BACKOFF_CAP)], drawn from `node` (the ballot source's random incarnation and id: it
/// differs per node, so passes of two nodes that lost to each other wait different times; a
/// simulation seed still replays, its incarnations being drawn from the seed) and `seed`
/// (the failed keys).
fn backoff(attempt: usize, node: u64, seed: u64) -> Duration {
    let ceiling = BACKOFF_BASE
        .saturating_mul(1u32 << attempt.min(16))
        .min(BACKOFF_CAP);
    let draw = splitmix(node ^ splitmix(attempt as u64 ^ seed));
    let micros = u64::try_from(ceiling.as_micros()).unwrap_or(u64::MAX);
    Duration::from_micros(draw % micros.max(1))
}

/// A 64-bit mixing function (splitmix64's finaliser): cheap, well-spread draws from a seed.
fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Every acceptor's answers to a call on many keys, turned into one answer per key per
/// acceptor: `per_key[k][a]` is acceptor `a`'s answer for key `k`. A whole-call failure (or an
/// answer of the wrong length) is that acceptor's failure for every key.
fn by_key<T>(answers: Vec<Answers<T>>, keys: usize) -> Vec<Vec<Result<T, AcceptorError>>> {
    let mut per_key: Vec<Vec<Result<T, AcceptorError>>> = (0..keys)
        .map(|_| Vec::with_capacity(answers.len()))
        .collect();
    for answer in answers {
        match answer {
            Ok(each) if each.len() == keys => {
                for (slot, one) in per_key.iter_mut().zip(each) {
                    slot.push(one);
                }
            }
            Ok(each) => {
                let e = AcceptorError::Protocol(format!("{} answers for {keys} keys", each.len()));
                per_key
                    .iter_mut()
                    .for_each(|slot| slot.push(Err(e.clone())));
            }
            Err(e) => per_key
                .iter_mut()
                .for_each(|slot| slot.push(Err(e.clone()))),
        }
    }
    per_key
}

/// One catch-up round of every key of `keys` (one chunk) under one fresh ballot: one
/// prepare call and one accept call per acceptor; per key the decision of [`catch_up_key`].
async fn batch_round(
    acceptors: &[Arc<dyn Acceptor>],
    quorum: usize,
    timeout: Duration,
    ballots: &BallotSource,
    keys: &[String],
    target: usize,
) -> Vec<Result<(), CatchUpError>> {
    let ballot = ballots.next();
    // The recovering acceptor is not asked to promise when the others can make the quorum
    // alone: its promise never counts (it would come back as `Recovering`), and the accept
    // tells just as well whether it is still below b. That spares a sixth of the batch's
    // work. A caller whose quorum needs it (every acceptor, a member each) still asks it.
    let ask_target = acceptors.len().saturating_sub(1) < quorum;
    let promises = join_all(acceptors.iter().enumerate().map(|(i, a)| async move {
        if i == target && !ask_target {
            Err(AcceptorError::Recovering)
        } else {
            bounded(timeout, a.prepare_many(keys, ballot)).await
        }
    }))
    .await;
    let decisions: Vec<Result<Option<String>, CatchUpError>> = by_key(promises, keys.len())
        .into_iter()
        .zip(keys)
        .map(|(answers, key)| tally_promises(acceptors, quorum, ballots, key, answers))
        .collect();
    // Only keys a quorum of members promised are accepted (with the value they carried).
    let writes: Vec<(String, Option<String>)> = decisions
        .iter()
        .zip(keys)
        .filter_map(|(decision, key)| Some((key.clone(), decision.as_ref().ok()?.clone())))
        .collect();
    let accepts = if writes.is_empty() {
        Vec::new()
    } else {
        let answers = join_all(
            acceptors
                .iter()
                .map(|a| bounded(timeout, a.accept_many(&writes, ballot, ballot))),
        )
        .await;
        by_key(answers, writes.len())
    };
    let mut accepts = accepts.into_iter();
    decisions
        .into_iter()
        .zip(keys)
        .map(|(decision, key)| {
            decision?;
            // No answers (impossible) tallies as nobody accepted: never a false success.
            let answers = accepts.next().unwrap_or_default();
            tally_accepts(acceptors, quorum, ballots, key, target, answers)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acceptor::memory::{MemoryAcceptor, MEMORY_CLUSTER};
    use crate::acceptor::{Identity, Standing};

    const TIMEOUT: Duration = Duration::from_millis(100);

    /// Three in-memory acceptors, the third wiped and marked recovering.
    fn cluster() -> (Vec<Arc<MemoryAcceptor>>, Vec<Arc<dyn Acceptor>>) {
        let memory: Vec<Arc<MemoryAcceptor>> = (1..=3)
            .map(|i| Arc::new(MemoryAcceptor::new(format!("a{i}"))))
            .collect();
        let dyns = memory
            .iter()
            .map(|a| a.clone() as Arc<dyn Acceptor>)
            .collect();
        (memory, dyns)
    }

    fn mark_recovering(a: &MemoryAcceptor) {
        a.wipe();
        a.claim(Identity {
            cluster: MEMORY_CLUSTER.into(),
            acceptor: a.name().into(),
            standing: Standing::Recovering,
            mark: "m".into(),
            set: a.name().into(),
            stamp: String::new(),
        });
    }

    /// Stores `value` under `ballot` on the acceptors `on` (as a past write did).
    fn write(
        acceptors: &[Arc<MemoryAcceptor>],
        on: &[usize],
        key: &str,
        ballot: Ballot,
        value: &str,
    ) {
        for &i in on {
            acceptors[i]
                .apply_accept(Some(MEMORY_CLUSTER), key, ballot, Some(value), ballot)
                .expect("accepted");
        }
    }

    fn keys(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("k{i}")).collect()
    }

    #[tokio::test]
    async fn a_batch_brings_every_key_onto_the_recovering_acceptor() {
        let (memory, dyns) = cluster();
        let keys = keys(600); // more than two chunks
        for (i, key) in keys.iter().enumerate() {
            write(
                &memory,
                &[0, 1, 2],
                key,
                Ballot::new(5, 1, 1),
                &format!("v{i}"),
            );
        }
        mark_recovering(&memory[2]);
        let ballots = BallotSource::starting_at(7, 1, 100);
        let results = catch_up_batch(&dyns, 2, TIMEOUT, &ballots, &keys, 2).await;
        assert_eq!(results.len(), keys.len());
        assert!(results.iter().all(Result::is_ok), "{results:?}");
        for (i, key) in keys.iter().enumerate() {
            let slot = memory[2].slot(key);
            assert_eq!(slot.value, Some(format!("v{i}")), "{key}");
            assert_eq!(
                slot.accepted, slot.promise,
                "{key}: accepted under the round's ballot"
            );
            assert_eq!(memory[0].slot(key).value, Some(format!("v{i}")));
        }
    }

    #[tokio::test]
    async fn the_highest_accepted_value_among_the_members_is_carried() {
        let (memory, dyns) = cluster();
        mark_recovering(&memory[2]);
        write(&memory, &[0], "k", Ballot::new(3, 1, 1), "old");
        write(&memory, &[1], "k", Ballot::new(4, 2, 1), "new");
        // A key the members never held reads as no value: the target gets no value either.
        let keys = vec!["k".to_string(), "absent".to_string()];
        let results = catch_up_batch(
            &dyns,
            2,
            TIMEOUT,
            &BallotSource::starting_at(7, 1, 100),
            &keys,
            2,
        )
        .await;
        assert!(results.iter().all(Result::is_ok), "{results:?}");
        assert_eq!(memory[2].slot("k").value.as_deref(), Some("new"));
        assert_eq!(memory[0].slot("k").value.as_deref(), Some("new"));
        assert_eq!(memory[2].slot("absent").value, None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_lost_race_is_retried_past_the_winning_ballot() {
        let (memory, dyns) = cluster();
        mark_recovering(&memory[2]);
        write(&memory, &[0, 1], "k", Ballot::new(9, 2, 1), "v");
        // Another proposer promised a high ballot on both members.
        for a in &memory[..2] {
            a.apply_prepare(Some(MEMORY_CLUSTER), "k", Ballot::new(1000, 3, 1))
                .expect("promised");
        }
        let keys = vec!["k".to_string(), "calm".to_string()];
        let ballots = BallotSource::starting_at(7, 1, 100);
        let results = catch_up_batch(&dyns, 2, TIMEOUT, &ballots, &keys, 2).await;
        assert!(results.iter().all(Result::is_ok), "{results:?}");
        assert_eq!(memory[2].slot("k").value.as_deref(), Some("v"));
        assert!(memory[2].slot("k").accepted > Ballot::new(1000, 3, 1));
    }

    #[tokio::test(start_paused = true)]
    async fn without_a_quorum_of_members_nothing_is_caught_up() {
        let (memory, dyns) = cluster();
        write(&memory, &[0, 1], "k", Ballot::new(2, 1, 1), "v");
        mark_recovering(&memory[2]);
        memory[1].set_down(true);
        let keys = vec!["k".to_string()];
        let results = catch_up_batch(
            &dyns,
            2,
            TIMEOUT,
            &BallotSource::starting_at(7, 1, 100),
            &keys,
            2,
        )
        .await;
        assert!(
            matches!(
                &results[..],
                [Err(CatchUpError::Prepare { promised: 1, .. })]
            ),
            "{results:?}"
        );
        assert_eq!(
            memory[2].slot("k").value,
            None,
            "nothing accepted without a quorum"
        );
    }

    #[tokio::test]
    async fn a_target_without_its_record_fails_at_once() {
        let (memory, dyns) = cluster();
        write(&memory, &[0, 1], "k", Ballot::new(2, 1, 1), "v");
        memory[2].wipe(); // wiped again: no record, refuses everything
        let keys = vec!["k".to_string()];
        let started = tokio::time::Instant::now();
        let results = catch_up_batch(
            &dyns,
            2,
            TIMEOUT,
            &BallotSource::starting_at(7, 1, 100),
            &keys,
            2,
        )
        .await;
        assert!(
            matches!(
                &results[..],
                [Err(CatchUpError::Accept { accepted: 2, .. })]
            ),
            "{results:?}"
        );
        assert!(started.elapsed() < Duration::from_millis(50), "not retried");
    }

    #[tokio::test]
    async fn the_batch_and_the_single_key_round_agree() {
        let (memory, dyns) = cluster();
        let (single, single_dyns) = cluster();
        for m in [&memory, &single] {
            write(m, &[0], "a", Ballot::new(3, 1, 1), "x");
            write(m, &[1], "b", Ballot::new(4, 1, 1), "y");
            write(m, &[0, 1], "c", Ballot::new(5, 1, 1), "z");
            mark_recovering(&m[2]);
        }
        let keys = vec!["a".to_string(), "b".to_string(), "c".to_string()];
        let batch = catch_up_batch(
            &dyns,
            2,
            TIMEOUT,
            &BallotSource::starting_at(7, 1, 100),
            &keys,
            2,
        )
        .await;
        let ballots = BallotSource::starting_at(7, 1, 100);
        for key in &keys {
            catch_up_key(&single_dyns, 2, TIMEOUT, &ballots, key, 2)
                .await
                .expect("caught up");
        }
        assert!(batch.iter().all(Result::is_ok));
        for key in &keys {
            for i in 0..3 {
                assert_eq!(
                    memory[i].slot(key).value,
                    single[i].slot(key).value,
                    "{key} on a{i}"
                );
            }
        }
    }

    #[tokio::test]
    async fn a_quorum_of_every_acceptor_asks_the_target_to_promise_too() {
        let (memory, dyns) = cluster();
        write(&memory, &[0], "k", Ballot::new(3, 1, 1), "on-the-target");
        write(&memory, &[1], "k", Ballot::new(2, 1, 1), "older");
        let keys = vec!["k".to_string()];
        let ballots = BallotSource::starting_at(7, 1, 100);
        let results = catch_up_batch(&dyns, 3, TIMEOUT, &ballots, &keys, 0).await;
        assert!(results.iter().all(Result::is_ok), "{results:?}");
        for a in &memory {
            assert_eq!(a.slot("k").value.as_deref(), Some("on-the-target"));
        }
    }
}
