//! The node's counters, as `GET /metrics` serves them (rendered in `http::metrics`).
//!
//! Counters and histograms are plain atomics updated where the event happens: the keys API
//! counts each request's outcome and latency ([`Metrics::request`]), the proposer its phases,
//! lost races, retries and resolutions ([`ProposerCounters`]), and every call the proposer
//! makes to an acceptor goes through [`Timed`], which counts it by acceptor, call and result
//! and records its latency. Gauges (membership state, catch-up progress, in-flight requests)
//! are read from their owners when `/metrics` is scraped, so nothing here copies them.
//! Nothing takes a lock: a scrape costs the readers nothing.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::acceptor::{AcceptReply, Acceptor, AcceptorError, Answers, PrepareReply, ReadReply};
use crate::ballot::Ballot;

/// Upper bounds (seconds) of the latency histograms' buckets: from a loopback Redis call
/// (~0.1 ms) to the longest request deadline in use (seconds).
pub const BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// A latency histogram: cumulative only when rendered (each observation counts in one
/// bucket here), the sum kept in nanoseconds.
#[derive(Default)]
pub struct Histogram {
    buckets: [AtomicU64; BUCKETS.len()],
    /// Observations above the last bound (the `+Inf` bucket minus the others).
    over: AtomicU64,
    count: AtomicU64,
    sum_ns: AtomicU64,
}

/// What a histogram holds at one instant, cumulative as Prometheus shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct HistogramSnapshot {
    /// `(le, observations <= le)` for every bound of [`BUCKETS`].
    pub buckets: Vec<(f64, u64)>,
    pub count: u64,
    pub sum_seconds: f64,
}

impl Histogram {
    pub fn observe(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        match BUCKETS.iter().position(|le| seconds <= *le) {
            Some(i) => self.buckets[i].fetch_add(1, Ordering::Relaxed),
            None => self.over.fetch_add(1, Ordering::Relaxed),
        };
        self.sum_ns.fetch_add(
            elapsed.as_nanos().min(u64::MAX as u128) as u64,
            Ordering::Relaxed,
        );
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut total = 0;
        let buckets = BUCKETS
            .iter()
            .zip(&self.buckets)
            .map(|(le, n)| {
                total += n.load(Ordering::Relaxed);
                (*le, total)
            })
            .collect();
        // `count` is read last and never below the buckets' total, so a scrape racing an
        // observation still shows a well-formed histogram (+Inf >= every bucket).
        let count = self.count.load(Ordering::Relaxed).max(total);
        HistogramSnapshot {
            buckets,
            count,
            sum_seconds: self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9,
        }
    }
}

/// A counter.
#[derive(Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// The keys API's operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Get,
    Put,
    Delete,
}

impl Op {
    pub const ALL: [Op; 3] = [Op::Get, Op::Put, Op::Delete];
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Get => "get",
            Op::Put => "put",
            Op::Delete => "delete",
        }
    }
}

/// How a keys request ended, as its client can tell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// 2xx: a write applied, a read served.
    Applied,
    /// 404 / 412: the key's state refused it (not found, compare failed, exists); nothing
    /// changed.
    Refused,
    /// 503 saying "not applied": nothing changed, the client may retry.
    NotApplied,
    /// 503 saying "unknown": the write may still take effect.
    Unknown,
    /// Any other 4xx/5xx (bad input, too large, internal): nothing changed.
    Rejected,
}

impl Outcome {
    pub const ALL: [Outcome; 5] = [
        Outcome::Applied,
        Outcome::Refused,
        Outcome::NotApplied,
        Outcome::Unknown,
        Outcome::Rejected,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Applied => "applied",
            Outcome::Refused => "refused",
            Outcome::NotApplied => "not_applied",
            Outcome::Unknown => "unknown",
            Outcome::Rejected => "rejected",
        }
    }
}

/// One operation's outcomes and latency.
#[derive(Default)]
pub struct OpStats {
    pub outcomes: [Counter; Outcome::ALL.len()],
    pub latency: Histogram,
}

/// The proposer's own counters (it updates them; see [`crate::proposer`]).
#[derive(Default)]
pub struct ProposerCounters {
    /// Phase-1 rounds (prepare) sent, and those that reached no quorum.
    pub prepares: Counter,
    pub prepares_failed: Counter,
    /// Phase-2 rounds (accept) sent, and those that reached no quorum.
    pub accepts: Counter,
    pub accepts_failed: Counter,
    /// Changes that skipped prepare with the cached ballot (one round trip).
    pub one_round_trip: Counter,
    /// Rounds that lost a ballot race (an acceptor answered with a higher ballot).
    pub conflicts: Counter,
    /// Changes run again within their deadline after a lost race or a not-applied resolution.
    pub retries: Counter,
    /// Writes of unknown outcome resolved by a follow-up read: applied, not applied, or left
    /// unknown at the deadline.
    pub resolved_applied: Counter,
    pub resolved_not_applied: Counter,
    pub resolved_unknown: Counter,
    /// Quorum reads answered by agreeing acceptors, and those that fell back to a full round.
    pub quorum_reads_agreed: Counter,
    pub quorum_reads_fell_back: Counter,
}

/// The acceptor calls [`Timed`] counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Call {
    Prepare,
    Accept,
    Read,
    Ping,
    PrepareMany,
    AcceptMany,
}

impl Call {
    pub const ALL: [Call; 6] = [
        Call::Prepare,
        Call::Accept,
        Call::Read,
        Call::Ping,
        Call::PrepareMany,
        Call::AcceptMany,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Call::Prepare => "prepare",
            Call::Accept => "accept",
            Call::Read => "read",
            Call::Ping => "ping",
            Call::PrepareMany => "prepare_many",
            Call::AcceptMany => "accept_many",
        }
    }
}

/// How an acceptor call ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallResult {
    /// Promised, accepted, answered.
    Ok,
    /// Refused for a higher ballot.
    Conflict,
    /// No answer that counts (timeout, connection, refusal of its identity, recovering).
    Error,
}

impl CallResult {
    pub const ALL: [CallResult; 3] = [CallResult::Ok, CallResult::Conflict, CallResult::Error];
    pub fn as_str(self) -> &'static str {
        match self {
            CallResult::Ok => "ok",
            CallResult::Conflict => "conflict",
            CallResult::Error => "error",
        }
    }
}

/// One kind of call to one acceptor.
#[derive(Default)]
pub struct CallStats {
    pub results: [Counter; CallResult::ALL.len()],
    pub latency: Histogram,
}

/// Every call to one acceptor.
pub struct AcceptorStats {
    pub name: String,
    pub calls: [CallStats; Call::ALL.len()],
}

impl AcceptorStats {
    fn record(&self, call: Call, result: CallResult, elapsed: Duration) {
        let stats = &self.calls[call as usize];
        stats.results[result as usize].inc();
        stats.latency.observe(elapsed);
    }
}

/// Everything `/metrics` counts (gauges are read from their owners at scrape time).
pub struct Metrics {
    pub ops: [OpStats; Op::ALL.len()],
    pub acceptors: Vec<Arc<AcceptorStats>>,
}

impl Metrics {
    /// Counters for a node whose acceptors have these names (in the configured order).
    pub fn new<S: AsRef<str>>(acceptors: &[S]) -> Self {
        Metrics {
            ops: Default::default(),
            acceptors: acceptors
                .iter()
                .map(|name| {
                    Arc::new(AcceptorStats {
                        name: name.as_ref().to_string(),
                        calls: Default::default(),
                    })
                })
                .collect(),
        }
    }

    /// Counts one keys request: how it ended and how long it took.
    pub fn request(&self, op: Op, outcome: Outcome, elapsed: Duration) {
        let stats = &self.ops[op as usize];
        stats.outcomes[outcome as usize].inc();
        stats.latency.observe(elapsed);
    }

    /// `acceptors` wrapped so that each call is counted and timed (same order).
    pub fn timed(&self, acceptors: Vec<Arc<dyn Acceptor>>) -> Vec<Arc<dyn Acceptor>> {
        acceptors
            .into_iter()
            .zip(&self.acceptors)
            .map(|(inner, stats)| {
                Arc::new(Timed {
                    inner,
                    stats: stats.clone(),
                }) as Arc<dyn Acceptor>
            })
            .collect()
    }
}

/// An acceptor whose calls are counted and timed; otherwise exactly the acceptor it wraps.
pub struct Timed {
    inner: Arc<dyn Acceptor>,
    stats: Arc<AcceptorStats>,
}

/// The result class of one answer.
fn classify<T>(answer: &Result<T, AcceptorError>, conflict: impl Fn(&T) -> bool) -> CallResult {
    match answer {
        Ok(reply) if conflict(reply) => CallResult::Conflict,
        Ok(_) => CallResult::Ok,
        Err(_) => CallResult::Error,
    }
}

/// The result class of a batch: an error for the whole call, a conflict if any key was
/// refused, an error if any key failed, else ok.
fn classify_many<T>(answers: &Answers<T>, conflict: impl Fn(&T) -> bool) -> CallResult {
    match answers {
        Err(_) => CallResult::Error,
        Ok(each) => each
            .iter()
            .map(|a| classify(a, &conflict))
            .max_by_key(|r| match r {
                CallResult::Ok => 0,
                CallResult::Error => 1,
                CallResult::Conflict => 2,
            })
            .unwrap_or(CallResult::Ok),
    }
}

fn prepare_conflict(reply: &PrepareReply) -> bool {
    matches!(reply, PrepareReply::Conflict(_))
}

fn accept_conflict(reply: &AcceptReply) -> bool {
    matches!(reply, AcceptReply::Conflict(_))
}

#[async_trait]
impl Acceptor for Timed {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn is_connected(&self) -> bool {
        self.inner.is_connected()
    }

    async fn ping(&self) -> Result<(), AcceptorError> {
        let start = Instant::now();
        let answer = self.inner.ping().await;
        let result = classify(&answer, |_| false);
        self.stats.record(Call::Ping, result, start.elapsed());
        answer
    }

    async fn prepare(&self, key: &str, ballot: Ballot) -> Result<PrepareReply, AcceptorError> {
        let start = Instant::now();
        let answer = self.inner.prepare(key, ballot).await;
        let result = classify(&answer, prepare_conflict);
        self.stats.record(Call::Prepare, result, start.elapsed());
        answer
    }

    async fn read(&self, key: &str) -> Result<ReadReply, AcceptorError> {
        let start = Instant::now();
        let answer = self.inner.read(key).await;
        let result = classify(&answer, |_| false);
        self.stats.record(Call::Read, result, start.elapsed());
        answer
    }

    async fn accept(
        &self,
        key: &str,
        ballot: Ballot,
        value: Option<&str>,
        next_promise: Ballot,
    ) -> Result<AcceptReply, AcceptorError> {
        let start = Instant::now();
        let answer = self.inner.accept(key, ballot, value, next_promise).await;
        let result = classify(&answer, accept_conflict);
        self.stats.record(Call::Accept, result, start.elapsed());
        answer
    }

    async fn prepare_many(&self, keys: &[String], ballot: Ballot) -> Answers<PrepareReply> {
        let start = Instant::now();
        let answers = self.inner.prepare_many(keys, ballot).await;
        let result = classify_many(&answers, prepare_conflict);
        self.stats
            .record(Call::PrepareMany, result, start.elapsed());
        answers
    }

    async fn accept_many(
        &self,
        writes: &[(String, Option<String>)],
        ballot: Ballot,
        next_promise: Ballot,
    ) -> Answers<AcceptReply> {
        let start = Instant::now();
        let answers = self.inner.accept_many(writes, ballot, next_promise).await;
        let result = classify_many(&answers, accept_conflict);
        self.stats.record(Call::AcceptMany, result, start.elapsed());
        answers
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_histogram_is_cumulative_and_counts_the_overflow() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(50));
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_secs(10));
        let s = h.snapshot();
        assert_eq!(s.count, 3);
        assert_eq!(s.buckets[0], (0.0001, 1));
        assert_eq!(s.buckets.last(), Some(&(2.5, 2)));
        let at_5ms = s.buckets.iter().find(|(le, _)| *le == 0.005).unwrap();
        assert_eq!(at_5ms.1, 2);
        assert!((s.sum_seconds - 10.00305).abs() < 1e-9);
    }
}
