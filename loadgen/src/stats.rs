//! Counters shared by all workers: per-second and per-bucket slots, and run totals.
//!
//! Every event is timestamped (monotonic clock, offset from the run start) when it is recorded
//! and lands in the slot of the time it happened: second N (1-based) holds events in
//! `[start + N-1 s, start + N s)`, and each second is split into buckets of `bucket_ms`
//! (default 100 ms) per node, with successes, errors and the offsets of the first and last
//! success and the longest gap between successes inside the bucket — enough to compute the
//! longest stretch without a success at microsecond precision later. The reporter takes a
//! second's slot once the second is over (see [`crate::run`]); an event recorded after its
//! second was taken (rare: microseconds of lock delay) still counts in the totals.
//! Latencies go to hdrhistograms (microseconds): per second for iterations, and for the run
//! per iteration and per request kind.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::checker::{Violation, ViolationKind};
use crate::client::ErrorKind;

/// Error counters, one per [`ErrorKind`].
pub type ErrorCounts = [u64; ErrorKind::COUNT];
/// Violation counters, one per [`ViolationKind`].
pub type ViolationCounts = [u64; ViolationKind::COUNT];

/// Request kinds with their own latency histogram (shared with the records).
pub use perseus_model::Op;

/// A fresh histogram of microseconds (auto-resizing, 3 significant digits).
pub fn new_histogram() -> Histogram<u64> {
    // lowest 1, highest 2 with auto-resize: valid constants, cannot fail
    let mut h = Histogram::<u64>::new_with_bounds(1, 2, 3).expect("valid histogram bounds");
    h.auto(true);
    h
}

/// Records `us` in an auto-resizing histogram (clamped if it still cannot be recorded).
pub fn record(h: &mut Histogram<u64>, us: u64) {
    if h.record(us).is_err() {
        h.saturating_record(us);
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
}

/// One bucket of one node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BucketNode {
    pub ok: u64,
    pub err: u64,
    /// Offset from the run start (µs) of the first success in the bucket.
    pub first_us: Option<u64>,
    /// Offset from the run start (µs) of the last success in the bucket.
    pub last_us: Option<u64>,
    /// Longest gap between two successes inside the bucket (µs).
    pub max_gap_us: u64,
}

/// Everything that happened in one second.
#[derive(Debug, Clone)]
pub struct SecondSlot {
    /// Successful iterations per node.
    pub ok: Vec<u64>,
    /// Errors per node and kind.
    pub errors: Vec<ErrorCounts>,
    /// Iteration latencies (µs) of the successes.
    pub latency: Histogram<u64>,
    /// Violations by kind.
    pub violations: ViolationCounts,
    /// `buckets[b][node]`.
    pub buckets: Vec<Vec<BucketNode>>,
}

impl SecondSlot {
    fn new(nodes: usize, buckets: usize) -> Self {
        SecondSlot {
            ok: vec![0; nodes],
            errors: vec![[0; ErrorKind::COUNT]; nodes],
            latency: new_histogram(),
            violations: [0; ViolationKind::COUNT],
            buckets: vec![vec![BucketNode::default(); nodes]; buckets],
        }
    }

    pub fn total_ok(&self) -> u64 {
        self.ok.iter().sum()
    }

    /// Errors of all nodes by kind.
    pub fn errors_by_kind(&self) -> ErrorCounts {
        sum_errors(&self.errors)
    }

    pub fn total_violations(&self) -> u64 {
        self.violations.iter().sum()
    }
}

/// Adds up per-node error counters.
pub fn sum_errors(per_node: &[ErrorCounts]) -> ErrorCounts {
    let mut out = [0; ErrorKind::COUNT];
    for e in per_node {
        for (o, v) in out.iter_mut().zip(e.iter()) {
            *o += v;
        }
    }
    out
}

/// Run totals.
#[derive(Debug, Clone)]
pub struct Totals {
    pub ok: Vec<u64>,
    pub errors: Vec<ErrorCounts>,
    pub iteration: Histogram<u64>,
    /// Per request kind, indexed like [`Op::ALL`].
    pub requests: Vec<Histogram<u64>>,
    pub violations: ViolationCounts,
    /// Events recorded after their second had been reported.
    pub late: u64,
    /// Requests sent (every read, create and CAS, answered or not).
    pub sent: u64,
    /// Requests the node answered with a 5xx (503: no quorum, conflict, outcome unknown).
    pub answered_5xx: u64,
}

impl Totals {
    /// The share of requests answered with a 5xx, in percent (0 when nothing was sent).
    pub fn share_5xx_percent(&self) -> f64 {
        if self.sent == 0 {
            0.0
        } else {
            self.answered_5xx as f64 * 100.0 / self.sent as f64
        }
    }
}

/// A violation with when and where it was seen.
#[derive(Debug, Clone)]
pub struct ViolationEvent {
    /// Offset from the run start (µs).
    pub at_us: u64,
    /// Node index (0-based).
    pub node: usize,
    pub violation: Violation,
}

struct Inner {
    /// Seconds `1..=emitted` have been taken by the reporter.
    emitted: u64,
    seconds: BTreeMap<u64, SecondSlot>,
    totals: Totals,
    new_violations: Vec<ViolationEvent>,
}

/// Shared recorder of all events of a run.
pub struct Recorder {
    start: Instant,
    nodes: usize,
    bucket_us: u64,
    buckets_per_second: usize,
    inner: Mutex<Inner>,
}

impl Recorder {
    /// `bucket_ms` must divide 1000.
    pub fn new(start: Instant, nodes: usize, bucket_ms: u64) -> Self {
        let bucket_ms = bucket_ms.clamp(1, 1000);
        Recorder {
            start,
            nodes,
            bucket_us: bucket_ms * 1000,
            buckets_per_second: (1000 / bucket_ms) as usize,
            inner: Mutex::new(Inner {
                emitted: 0,
                seconds: BTreeMap::new(),
                totals: Totals {
                    ok: vec![0; nodes],
                    errors: vec![[0; ErrorKind::COUNT]; nodes],
                    iteration: new_histogram(),
                    requests: Op::ALL.iter().map(|_| new_histogram()).collect(),
                    violations: [0; ViolationKind::COUNT],
                    late: 0,
                    sent: 0,
                    answered_5xx: 0,
                },
                new_violations: Vec::new(),
            }),
        }
    }

    pub fn start(&self) -> Instant {
        self.start
    }

    pub fn nodes(&self) -> usize {
        self.nodes
    }

    pub fn bucket_ms(&self) -> u64 {
        self.bucket_us / 1000
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // a panic while holding the lock leaves plain counters: keep using them
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn offset_us(&self, now: Instant) -> u64 {
        u64::try_from(now.saturating_duration_since(self.start).as_micros()).unwrap_or(u64::MAX)
    }

    /// The slot of the second containing `us`, or `None` if it was already reported.
    fn slot<'a>(&self, inner: &'a mut Inner, us: u64) -> Option<&'a mut SecondSlot> {
        let second = us / 1_000_000 + 1;
        if second <= inner.emitted {
            inner.totals.late += 1;
            return None;
        }
        let (nodes, b) = (self.nodes, self.buckets_per_second);
        Some(
            inner
                .seconds
                .entry(second)
                .or_insert_with(|| SecondSlot::new(nodes, b)),
        )
    }

    fn bucket_index(&self, us: u64) -> usize {
        (((us % 1_000_000) / self.bucket_us) as usize).min(self.buckets_per_second - 1)
    }

    /// A successful iteration on `node` that took `latency`; timestamped now.
    pub fn success(&self, node: usize, latency: Duration) {
        let lat = micros(latency);
        let mut g = self.lock();
        let us = self.offset_us(Instant::now());
        let inner = &mut *g;
        inner.totals.ok[node] += 1;
        record(&mut inner.totals.iteration, lat);
        let b = self.bucket_index(us);
        if let Some(slot) = self.slot(inner, us) {
            slot.ok[node] += 1;
            record(&mut slot.latency, lat);
            let bn = &mut slot.buckets[b][node];
            bn.ok += 1;
            if bn.first_us.is_none() {
                bn.first_us = Some(us);
            }
            if let Some(last) = bn.last_us {
                bn.max_gap_us = bn.max_gap_us.max(us.saturating_sub(last));
            }
            bn.last_us = Some(bn.last_us.map_or(us, |l| l.max(us)));
        }
    }

    /// A failed iteration on `node`; timestamped now.
    pub fn error(&self, node: usize, kind: ErrorKind) {
        let mut g = self.lock();
        let us = self.offset_us(Instant::now());
        let inner = &mut *g;
        inner.totals.errors[node][kind.idx()] += 1;
        let b = self.bucket_index(us);
        if let Some(slot) = self.slot(inner, us) {
            slot.errors[node][kind.idx()] += 1;
            slot.buckets[b][node].err += 1;
        }
    }

    /// Latency of one request that got an HTTP answer.
    pub fn request(&self, op: Op, latency: Duration) {
        let i = Op::ALL.iter().position(|o| *o == op).unwrap_or(0);
        record(&mut self.lock().totals.requests[i], micros(latency));
    }

    /// One request sent; `answered_5xx` if the node answered it with a 5xx.
    pub fn sent(&self, answered_5xx: bool) {
        let mut g = self.lock();
        g.totals.sent += 1;
        if answered_5xx {
            g.totals.answered_5xx += 1;
        }
    }

    /// A consistency violation seen by a worker of `node`; timestamped now. Returns the number
    /// of violations of the run so far, this one included.
    pub fn violation(&self, node: usize, v: Violation) -> u64 {
        let mut g = self.lock();
        let us = self.offset_us(Instant::now());
        let inner = &mut *g;
        inner.totals.violations[v.kind.idx()] += 1;
        if let Some(slot) = self.slot(inner, us) {
            slot.violations[v.kind.idx()] += 1;
        }
        inner.new_violations.push(ViolationEvent {
            at_us: us,
            node,
            violation: v,
        });
        inner.totals.violations.iter().sum()
    }

    /// Takes the slot of second `n` (empty if nothing happened) and marks all seconds up to `n`
    /// as reported.
    pub fn take_second(&self, n: u64) -> SecondSlot {
        let mut g = self.lock();
        g.emitted = g.emitted.max(n);
        let older: Vec<u64> = g.seconds.range(..n).map(|(k, _)| *k).collect();
        for k in older {
            g.seconds.remove(&k);
        }
        g.seconds
            .remove(&n)
            .unwrap_or_else(|| SecondSlot::new(self.nodes, self.buckets_per_second))
    }

    /// Violations recorded since the last call.
    pub fn drain_violations(&self) -> Vec<ViolationEvent> {
        std::mem::take(&mut self.lock().new_violations)
    }

    /// A copy of the totals.
    pub fn totals(&self) -> Totals {
        self.lock().totals.clone()
    }

    /// Total violations so far.
    pub fn total_violations(&self) -> u64 {
        self.lock().totals.violations.iter().sum()
    }
}

/// Violation counters as (name, count) pairs.
pub fn violation_pairs(c: &ViolationCounts) -> Vec<(&'static str, u64)> {
    ViolationKind::ALL
        .iter()
        .map(|k| (k.as_str(), c[k.idx()]))
        .collect()
}

/// Error counters as (name, count) pairs.
pub fn error_pairs(c: &ErrorCounts) -> Vec<(&'static str, u64)> {
    ErrorKind::ALL
        .iter()
        .map(|k| (k.as_str(), c[k.idx()]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_land_in_their_second_and_bucket() {
        let start = Instant::now() - Duration::from_millis(1250);
        let r = Recorder::new(start, 2, 100);
        r.success(1, Duration::from_millis(3));
        r.success(1, Duration::from_millis(5));
        r.error(0, ErrorKind::Timeout);
        let s1 = r.take_second(1);
        assert_eq!(s1.total_ok(), 0);
        let s2 = r.take_second(2);
        assert_eq!(s2.ok, vec![0, 2]);
        assert_eq!(s2.errors[0][ErrorKind::Timeout.idx()], 1);
        assert_eq!(s2.buckets.len(), 10);
        let b: u64 = s2.buckets.iter().map(|b| b[1].ok).sum();
        assert_eq!(b, 2);
        // 1.25 s after start → bucket 2 of second 2
        assert_eq!(s2.buckets[2][1].ok + s2.buckets[3][1].ok, 2);
        assert!(s2.latency.max() >= 4900);
        // late event: second 2 already taken
        let t = r.totals();
        assert_eq!(t.ok, vec![0, 2]);
        assert_eq!(t.late, 0);
    }

    #[test]
    fn late_events_count_in_totals_only() {
        let start = Instant::now();
        let r = Recorder::new(start, 1, 100);
        r.take_second(1);
        r.success(0, Duration::from_millis(1));
        assert_eq!(r.totals().late, 1);
        assert_eq!(r.totals().ok, vec![1]);
    }

    #[test]
    fn bucket_tracks_first_last_and_gap() {
        let r = Recorder::new(Instant::now(), 1, 1000);
        r.success(0, Duration::from_micros(10));
        std::thread::sleep(Duration::from_millis(20));
        r.success(0, Duration::from_micros(10));
        r.success(0, Duration::from_micros(10));
        let s = r.take_second(1);
        let b = &s.buckets[0][0];
        assert_eq!(b.ok, 3);
        let (f, l) = (b.first_us.unwrap(), b.last_us.unwrap());
        assert!(l - f >= 20_000);
        assert!(b.max_gap_us >= 20_000 && b.max_gap_us <= l - f);
    }

    #[test]
    fn violations_are_queued_and_counted() {
        let r = Recorder::new(Instant::now(), 1, 100);
        let v = Violation {
            key: "k".into(),
            kind: ViolationKind::StaleRead,
            expected: "a".into(),
            got: "b".into(),
        };
        r.violation(0, v);
        assert_eq!(r.total_violations(), 1);
        assert_eq!(r.drain_violations().len(), 1);
        assert!(r.drain_violations().is_empty());
        assert_eq!(
            r.take_second(1).violations[ViolationKind::StaleRead.idx()],
            1
        );
    }
}
