//! The catch-up pass of a recovering acceptor, as the membership task runs it: one node at a
//! time (the catch-up lease in the target's record), the keys of every other acceptor one SCAN
//! page at a time, each page caught up in batches (`recovery::catch_up_batch`), resumed where
//! it stopped for the same (target, mark, life), then the promotion.
//!
//! Keys already caught up by this pass (listed on an earlier acceptor) are not caught up again
//! when the next acceptor lists them ([`CaughtUp`]): the acceptors mostly hold the same keys,
//! and the pass did the work once per other acceptor.
//!
//! The pages are pipelined: the next SCAN page is listed, and up to [`PAGES_IN_FLIGHT`] pages
//! are caught up, while the earlier ones finish (one page at a time left the acceptors idle
//! between pages: a SCAN round trip, the slowest chunk of the page, a lease renewal). The
//! place a later pass resumes from still moves only past pages whose every key is done, in
//! listing order. The lease is renewed between pages once [`RENEW_AFTER`] has passed, not
//! after every page (each renewal is a write the target fsyncs).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::stream::{FuturesOrdered, StreamExt};
use rand::Rng;

use super::{lock, Membership, MembershipControl, LEASE};
use crate::acceptor::{Acceptor, AcceptorError, Identity, IdentityOp, Standing};
use crate::ballot::BallotSource;
use crate::recovery::catch_up_batch;

/// SCAN pages of a pass caught up at once (each in chunks, `recovery::CHUNKS_IN_FLIGHT` at a
/// time): the next page's listing and first chunks overlap the last chunks of the one before.
pub const PAGES_IN_FLIGHT: usize = 2;
/// The lease is renewed between pages once this long has passed since it was last taken: well
/// inside [`LEASE`], so a pass that runs normally never loses it.
pub const RENEW_AFTER: Duration = Duration::from_millis(1000);

/// Bytes of key names a pass remembers as caught up (each counted with [`KEY_OVERHEAD`]):
/// about 260,000 keys of 16 bytes, well inside the node's memory bound (design-proposer.md).
/// Past it a later acceptor's keys already caught up get a second round (as before the pass
/// remembered any): memory stays bounded, only time is lost.
pub const REMEMBER_BYTES: usize = 16 << 20;
/// What one remembered key costs besides its name (the set's slot at its load factor, the
/// allocation's rounding).
const KEY_OVERHEAD: usize = 48;

/// The keys a pass has caught up so far, so that the listing of the next acceptor does not
/// catch them up again (the acceptors mostly hold the same keys: without it the pass did the
/// work once per other acceptor). Exact, never a filter that may err: a key is skipped only if
/// a round of this very pass (same target, mark and life) caught it up, and one round is all
/// the recovery argument asks of a key (docs/design-acceptor-recovery.md).
#[derive(Debug, Default)]
pub(super) struct CaughtUp {
    keys: HashSet<Box<str>>,
    bytes: usize,
}

impl CaughtUp {
    fn contains(&self, key: &str) -> bool {
        self.keys.contains(key)
    }

    /// Remembers `keys` (every one caught up), as far as [`REMEMBER_BYTES`] allows.
    fn extend(&mut self, keys: &[String]) {
        for key in keys {
            let cost = key.len() + KEY_OVERHEAD;
            if self.bytes + cost > REMEMBER_BYTES {
                return;
            }
            if self.keys.insert(key.as_str().into()) {
                self.bytes += cost;
            }
        }
    }
}

/// Where a catch-up pass stands: kept per (target, mark, life), so a pass that stopped
/// resumes at the SCAN page it stopped in instead of the first key, and knows which keys it
/// caught up already.
#[derive(Clone, Debug)]
pub(super) struct Place {
    pub(super) target: usize,
    pub(super) mark: String,
    pub(super) life: String,
    /// The acceptor being listed and the SCAN cursor of its current page.
    pub(super) source: usize,
    pub(super) cursor: u64,
    /// Keys listed and done (caught up now or earlier in the pass).
    pub(super) done: u64,
    /// Shared, not copied, by the clones `/health` takes.
    pub(super) caught: Arc<Mutex<CaughtUp>>,
}

/// One listed SCAN page: its keys to catch up and where the listing goes on after it.
struct Page {
    /// The page's keys less those the pass caught up already.
    keys: Vec<String>,
    /// How many keys the SCAN page listed.
    listed: usize,
    /// The (source, cursor) a later pass resumes from once this page is done.
    after: (usize, u64),
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

impl Membership {
    pub(super) fn start_pass(
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

    /// The next SCAN page of the listing at `at` (an acceptor other than `target` and its
    /// cursor; `None` once every acceptor is listed), moving `at` past it.
    async fn list(
        &self,
        target: usize,
        at: &mut Option<(usize, u64)>,
        caught: &Mutex<CaughtUp>,
    ) -> Result<Option<Page>, PassError> {
        let Some((mut source, cursor)) = *at else {
            return Ok(None);
        };
        if source == target {
            source += 1;
        }
        if source >= self.acceptors.len() {
            *at = None;
            return Ok(None);
        }
        let (next, keys) =
            tokio::time::timeout(self.timeout * 8, self.acceptors[source].scan_keys(cursor))
                .await
                .unwrap_or(Err(AcceptorError::Timeout))
                .map_err(|error| PassError::Listing {
                    acceptor: self.names[source].clone(),
                    error,
                })?;
        let after = if next == 0 {
            (source + 1, 0)
        } else {
            (source, next)
        };
        *at = Some(after);
        let listed = keys.len();
        let keys = {
            let caught = lock(caught);
            keys.into_iter().filter(|k| !caught.contains(k)).collect()
        };
        Ok(Some(Page {
            keys,
            listed,
            after,
        }))
    }

    /// One page in batches (one script per acceptor and phase for a chunk of keys, failed
    /// keys retried with jitter inside): the page back when every key is caught up.
    async fn catch_up_page(
        &self,
        dyns: &[Arc<dyn Acceptor>],
        ballots: &BallotSource,
        target: usize,
        page: Page,
    ) -> Result<Page, PassError> {
        let results =
            catch_up_batch(dyns, self.quorum, self.timeout, ballots, &page.keys, target).await;
        match results.into_iter().find(Result::is_err) {
            Some(Err(e)) => Err(e.into()),
            _ => Ok(page),
        }
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
                    caught: Arc::default(),
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
        // The listing goes on (one SCAN page of the next acceptor at a time) while up to
        // PAGES_IN_FLIGHT pages are caught up; they finish in listing order.
        let mut listing = Some((place.source, place.cursor));
        let mut in_flight = FuturesOrdered::new();
        let mut renewed = tokio::time::Instant::now();
        loop {
            while in_flight.len() < PAGES_IN_FLIGHT {
                let Some(page) = self.list(target, &mut listing, &place.caught).await? else {
                    break;
                };
                in_flight.push_back(self.catch_up_page(&dyns, ballots, target, page));
            }
            let Some(page) = in_flight.next().await else {
                break;
            };
            let page = page?;
            // The page is done (and every one before it): the next pass for the same mark and
            // life resumes after it.
            place.done += page.listed as u64;
            (place.source, place.cursor) = page.after;
            lock(&place.caught).extend(&page.keys);
            *lock(&self.place) = Some(place.clone());
            if renewed.elapsed() >= RENEW_AFTER {
                self.take_lease(target).await?;
                renewed = tokio::time::Instant::now();
            }
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
}
