//! The protocol rounds: phase 1 (prepare), phase 2 (accept, which also asks for the promise
//! of the proposer's next ballot), the generic round that collects a quorum of answers and
//! fast-forwards past any conflict, and the quorum read that promises and writes nothing.

use std::sync::Arc;

use tokio::time::Instant;

use super::{Phase, Proposer, ProposerError, UnsafeControl};
use crate::acceptor::{AcceptReply, Acceptor, PrepareReply, ReadReply};
use crate::ballot::Ballot;
use crate::quorum::{Agreed, Agreement, Answer, Decision, Failure, Tally};

/// The yeses of a phase that reached a quorum, and the highest conflict seen on the way.
struct Round<T> {
    yes: Vec<T>,
    conflict: Option<Ballot>,
}

impl Proposer {
    /// The quorum read: every acceptor is asked for its accepted ballot and value (no
    /// promise, no write). `Some(reply)` as soon as a quorum of answers carry the same
    /// accepted ballot and value: that state is chosen (at that ballot), and no newer state was chosen
    /// before this read began (docs/design-proposer.md has the argument). `None` once no
    /// ballot can gather a quorum any more (answers split by a write in flight, acceptors
    /// down): the caller runs the full round. Neither the key lock nor the one-round-trip
    /// cache is touched: nothing this does changes a promise, so a cached ballot stays
    /// exactly as valid as it was.
    pub(super) async fn quorum_read(&self, key: &str) -> Option<ReadReply> {
        let mut answers = self.send_all(|acceptor| {
            let key = key.to_string();
            async move {
                match acceptor.read(&key).await {
                    Ok(reply) => Answer::Yes(reply),
                    Err(e) => Answer::Failed(e),
                }
            }
        });
        let mut agreement = Agreement::new(self.acceptors.len(), self.quorum);
        let mut first: Vec<ReadReply> = Vec::new();
        let mut answered = 0;
        // Once a quorum has answered without agreeing, the rest get one hedge delay more:
        // an acceptor that is slow to answer (an fsync stall, a frozen Redis still connected)
        // must not hold the read for its timeout when a full round on the others is quicker.
        let mut patience: Option<Instant> = None;
        loop {
            let next = match patience {
                Some(until) => tokio::time::timeout_at(until, answers.recv())
                    .await
                    .unwrap_or(None),
                None => answers.recv().await,
            };
            let Some((_, answer)) = next else { break };
            answered += 1;
            let reply = match answer {
                Answer::Yes(reply) => Some(reply),
                Answer::Conflict(_) | Answer::Failed(_) => None,
            };
            if self.control(UnsafeControl::QuorumReadWithoutAgreement) {
                // NEGATIVE CONTROL: the newest of the first quorum of answers, agreed or not.
                if reply.is_none() {
                    answers.widen();
                }
                first.extend(reply);
                if first.len() == self.quorum {
                    return first.into_iter().max_by_key(|reply| reply.accepted);
                }
                continue;
            }
            let failed = reply.is_none();
            match agreement.add(reply) {
                Agreed::Pending => {}
                Agreed::Chosen(reply) => return Some(reply),
                Agreed::Never => break,
            }
            // A failed answer, or a quorum of answers that did not agree: the others too.
            if failed || answered >= self.quorum {
                answers.widen();
            }
            if answered >= self.quorum && patience.is_none() {
                patience = Some(Instant::now() + self.hedge);
            }
        }
        log::debug!("{key}: quorum read without agreement, full read round");
        None
    }

    /// Phase 1: a fresh ballot promised by a quorum, and the state it found.
    pub(super) async fn prepare(
        &self,
        key: &str,
    ) -> Result<(Ballot, Option<String>), ProposerError> {
        let ballot = self.ballots.next();
        let replies = self
            .round(false, |acceptor| {
                let key = key.to_string();
                async move {
                    match acceptor.prepare(&key, ballot).await {
                        Ok(PrepareReply::Promised { accepted, value }) => {
                            Answer::Yes((accepted, value))
                        }
                        Ok(PrepareReply::Conflict(b)) => Answer::Conflict(b),
                        Err(e) => Answer::Failed(e),
                    }
                }
            })
            .await;
        self.count_round(Phase::Prepare, replies.as_ref().err());
        let replies = replies.map_err(|failure| ProposerError::NoQuorum {
            phase: Phase::Prepare,
            failure,
            effect_possible: false,
            resolved: false,
        })?;
        let state = replies
            .yes
            .into_iter()
            .max_by_key(|(accepted, _)| *accepted)
            .and_then(|(_, value)| value);
        Ok((ballot, state))
    }

    /// Phase 2: `value` accepted under `ballot` by a quorum, which also promise `next`.
    /// Returns whether `next` may be used for one round trip (no acceptor reported a conflict).
    /// On failure every acceptor's answer is awaited (each bounded by the timeout), so the
    /// failure tells whether all of them refused.
    pub(super) async fn accept(
        &self,
        key: &str,
        ballot: Ballot,
        value: Option<&str>,
        next: Ballot,
    ) -> Result<bool, Failure> {
        let value = value.map(str::to_string);
        let round = self
            .round(true, |acceptor| {
                let key = key.to_string();
                let value = value.clone();
                async move {
                    match acceptor.accept(&key, ballot, value.as_deref(), next).await {
                        Ok(AcceptReply::Accepted) => Answer::Yes(()),
                        Ok(AcceptReply::Conflict(b)) => Answer::Conflict(b),
                        Err(e) => Answer::Failed(e),
                    }
                }
            })
            .await;
        self.count_round(Phase::Accept, round.as_ref().err());
        round.map(|round| round.conflict.is_none())
    }

    /// Counts a phase sent and, when it reached no quorum, its failure and a lost race
    /// (`/metrics`).
    fn count_round(&self, phase: Phase, failure: Option<&Failure>) {
        let c = &self.counters;
        let (sent, failed) = match phase {
            Phase::Prepare => (&c.prepares, &c.prepares_failed),
            Phase::Accept => (&c.accepts, &c.accepts_failed),
        };
        sent.inc();
        if let Some(failure) = failure {
            failed.inc();
            if failure.conflict.is_some() {
                c.conflicts.inc();
            }
        }
    }

    /// Sends one phase to every acceptor and returns the first quorum of yeses. Any conflict
    /// seen fast-forwards the ballot counter past it. With `complete_failures`, a phase that
    /// cannot reach a quorum still collects every answer before it reports.
    async fn round<T, F, Fut>(&self, complete_failures: bool, call: F) -> Result<Round<T>, Failure>
    where
        T: Send + 'static,
        F: Fn(Arc<dyn Acceptor>) -> Fut,
        Fut: std::future::Future<Output = Answer<T>> + Send + 'static,
    {
        let mut rx = self.send_all(call);
        let mut tally = Tally::new(self.acceptors.len(), self.quorum);
        let decided = loop {
            let Some((index, answer)) = rx.recv().await else {
                break Err(tally.failure());
            };
            let refused_or_failed = !matches!(answer, Answer::Yes(_));
            match tally.add(self.acceptors[index].name(), answer) {
                Decision::Pending => {
                    // The acceptors asked first can no longer all say yes: the others too.
                    if refused_or_failed {
                        rx.widen();
                    }
                }
                Decision::Quorum(yes) => break Ok(yes),
                Decision::NoQuorum(failure) => break Err(failure),
            }
        };
        let decided = match decided {
            Err(failure)
                if complete_failures
                    && self.control(UnsafeControl::ThriftyRefusalWithHeldCalls) =>
            {
                // NEGATIVE CONTROL: judged on the acceptors asked so far, the held calls
                // still armed (a refusal by all of them reads as "stored nowhere").
                let asked = rx.first.iter().filter(|first| **first).count();
                rx.abandon();
                Err(Failure {
                    total: asked,
                    ..failure
                })
            }
            Err(_) if complete_failures => {
                // Every acceptor's answer, so that the failure tells whether all refused:
                // the ones held back are asked now.
                rx.widen();
                while let Some((index, answer)) = rx.recv().await {
                    tally.add(self.acceptors[index].name(), answer);
                }
                Err(tally.failure())
            }
            decided => decided,
        };
        let conflict = tally.conflict();
        if let Some(seen) = conflict {
            self.ballots.fast_forward(seen);
        }
        decided.map(|yes| Round { yes, conflict })
    }
}
