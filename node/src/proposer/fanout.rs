//! The hedged fan-out of one phase: each acceptor's call in its own task, bounded by the
//! timeout; thrifty, only the first quorum of connected, unsuspected acceptors is asked at
//! once and the others when the phase widens or the hedge delay passes (a held call that was
//! never released is never sent); acceptors that let a phase wait past the hedge delay are
//! passed over for a while.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::Proposer;
use crate::acceptor::{Acceptor, AcceptorError};
use crate::quorum::Answer;

impl Proposer {
    /// Sends one call to the acceptors, each in its own task bounded by the timeout (so the
    /// slowest acceptor still gets the message after the caller stopped listening), and
    /// returns the answers as they arrive, with the acceptor's index. Thrifty, the calls to
    /// all but the first quorum of connected acceptors are held back until
    /// [`Fanout::widen`] or the hedge delay; a held call that was never released is never
    /// sent.
    pub(super) fn send_all<T, F, Fut>(&self, call: F) -> Fanout<T>
    where
        T: Send + 'static,
        F: Fn(Arc<dyn Acceptor>) -> Fut,
        Fut: std::future::Future<Output = Answer<T>> + Send + 'static,
    {
        let (tx, rx) = mpsc::channel(self.acceptors.len().max(1));
        // The first quorum of connected acceptors in the configured order, passing over those
        // that lately let a phase wait past the hedge delay; all of them when fewer remain.
        let now = Instant::now();
        let first: Vec<bool> = if self.thrifty {
            let suspected = self.suspects.at(now);
            let mut chosen = 0;
            let connected: Vec<bool> = self
                .acceptors
                .iter()
                .enumerate()
                .map(|(index, acceptor)| {
                    let take = chosen < self.quorum && acceptor.is_connected() && !suspected[index];
                    chosen += usize::from(take);
                    take
                })
                .collect();
            if chosen < self.quorum {
                vec![true; self.acceptors.len()]
            } else {
                connected
            }
        } else {
            vec![true; self.acceptors.len()]
        };
        let (release, released) = watch::channel(false);
        let mut held = 0;
        for (index, acceptor) in self.acceptors.iter().enumerate() {
            let tx = tx.clone();
            let answer = call(acceptor.clone());
            let timeout = self.timeout;
            let hold = (!first[index]).then(|| (released.clone(), self.hedge));
            held += usize::from(hold.is_some());
            tokio::spawn(async move {
                if let Some((mut released, hedge)) = hold {
                    let ask = tokio::select! {
                        biased;
                        // Nobody listens any more: the phase was decided without it.
                        _ = tx.closed() => false,
                        released = released.wait_for(|released| *released) => released.is_ok(),
                        _ = tokio::time::sleep(hedge) => true,
                    };
                    if !ask {
                        return;
                    }
                }
                let answer = match tokio::time::timeout(timeout, answer).await {
                    Ok(answer) => answer,
                    Err(_) => Answer::Failed(AcceptorError::Timeout),
                };
                // The receiver is gone once the phase is decided; that is fine.
                let _ = tx.send((index, answer)).await;
            });
        }
        Fanout {
            rx,
            release: (held > 0).then_some(release),
            heard: vec![false; first.len()],
            first,
            suspect_after: now + self.hedge,
            suspects: (held > 0).then(|| self.suspects.clone()),
        }
    }
}

/// How long an acceptor that let a thrifty phase wait past the hedge delay is passed over
/// when choosing whom to ask first. A cut-off acceptor stays "connected" until its
/// connection has been silent for seconds; without this every phase would wait the hedge
/// delay for it meanwhile. With it, about one phase per node in this time does.
const SUSPICION: Duration = Duration::from_millis(500);

/// Per acceptor, until when it is passed over by thrifty phases.
#[derive(Debug, Default)]
pub(super) struct Suspects(Mutex<Vec<Option<Instant>>>);

impl Suspects {
    pub(super) fn new(acceptors: usize) -> Self {
        Suspects(Mutex::new(vec![None; acceptors]))
    }

    /// Per acceptor, whether it is passed over at `now` (one lock per phase).
    fn at(&self, now: Instant) -> Vec<bool> {
        let until = self.0.lock().unwrap_or_else(|e| e.into_inner());
        until
            .iter()
            .map(|until| until.is_some_and(|until| until > now))
            .collect()
    }

    fn suspect(&self, index: usize, now: Instant) {
        let mut until = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(slot) = until.get_mut(index) {
            *slot = Some(now + SUSPICION);
        }
    }
}

/// The answers of one phase as they arrive, and the calls held back for it (thrifty).
pub(super) struct Fanout<T> {
    rx: mpsc::Receiver<(usize, Answer<T>)>,
    /// Releases the held calls; `None` once released or when none were held.
    release: Option<watch::Sender<bool>>,
    /// Which acceptors were asked at once, and which of all have answered (anything but a
    /// failure) so far.
    pub(super) first: Vec<bool>,
    heard: Vec<bool>,
    /// When the hedge delay of the phase ends: a phase still undecided then passes over
    /// the acceptors asked at once that had not answered.
    suspect_after: Instant,
    /// The proposer's suspects, when calls were held back.
    suspects: Option<Arc<Suspects>>,
}

impl<T> Fanout<T> {
    pub(super) async fn recv(&mut self) -> Option<(usize, Answer<T>)> {
        let answer = self.rx.recv().await;
        if let Some((index, Answer::Yes(_) | Answer::Conflict(_))) = &answer {
            if let Some(heard) = self.heard.get_mut(*index) {
                *heard = true;
            }
        }
        answer
    }

    /// Asks the acceptors held back too (at once; idempotent).
    pub(super) fn widen(&mut self) {
        if let Some(release) = self.release.take() {
            let _ = release.send(true);
        }
    }

    /// NEGATIVE CONTROL ONLY: stops listening but leaves the held calls armed, to go out
    /// when the hedge delay passes (leaked: the held tasks must see neither the receiver nor
    /// the release go away).
    pub(super) fn abandon(self) {
        std::mem::forget(self);
    }
}

impl<T> Drop for Fanout<T> {
    /// A phase that lasted past the hedge delay: the acceptors asked at once that had not
    /// answered by its end are passed over for a while.
    fn drop(&mut self) {
        let Some(suspects) = &self.suspects else {
            return;
        };
        let now = Instant::now();
        if now < self.suspect_after {
            return;
        }
        for (index, (first, heard)) in self.first.iter().zip(&self.heard).enumerate() {
            if *first && !*heard {
                suspects.suspect(index, now);
            }
        }
    }
}
