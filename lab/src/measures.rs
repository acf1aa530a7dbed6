//! The six measures of the original Perseus's 2018 round, at millisecond resolution, for one
//! fault of a run: downtime, partial downtime and disturbance while the fault lasts; downtime,
//! partial downtime on recovery and the recovery time after its heal/start/resume.
//!
//! They are computed from the same stretches without successes as the unavailability windows
//! (analysis.rs), per phase: the *fault phase* runs from the fault until its recovery began
//! (or the run ended), the *recovery phase* from the recovery until another fault begins (or
//! the run ends). With n nodes:
//! - downtime: the longest part of the phase in which no node succeeded;
//! - partial downtime: the longest part of the phase in which at most one node succeeded
//!   (some n-1 nodes had no success), so never below the downtime;
//! - disturbance: from the fault until n-1 nodes are steady;
//! - recovery time: from the recovery until all n nodes are steady.
//!
//! A node is *down* inside every stretch between two of its successes longer than the outage
//! gap (or from its last success to the end of the run, when that is longer); it is *steady*
//! from instant t when none of its down stretches meets `[t, t + STEADY_HOLD_MS]` and that
//! interval ends inside the run. The outage gap is [`STEADY_GAP_MS`], or the longest stretch
//! any single node showed in the fault-free seconds before the fault when that is longer (a
//! loaded machine's slow iterations are not outages). Stretches that long always cross a
//! bucket border, so they are located exactly.

use crate::analysis::{self, Fault, Stretch};
use crate::data::Run;

/// A gap between two successes of a node longer than this is an outage, not load noise (unless
/// the nodes showed longer ones before the fault).
pub const STEADY_GAP_MS: i64 = 100;
/// How far before a fault its fault-free reference reaches (not before the warm-up's end).
pub const QUIET_MS: i64 = 5000;
/// How long a node must serve without such a gap to count as steady.
pub const STEADY_HOLD_MS: i64 = 1000;

/// The six measures of one fault, in ms. `None`: the phase did not happen in the run (no
/// recovery) or the nodes never became steady before the run ended.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct Measures {
    pub downtime_ms: f64,
    pub partial_downtime_ms: f64,
    pub disturbance_ms: Option<f64>,
    pub recovery_downtime_ms: Option<f64>,
    pub recovery_partial_downtime_ms: Option<f64>,
    pub recovery_time_ms: Option<f64>,
    /// The outage gap steadiness was judged with, ms (not one of the six).
    pub outage_gap_ms: f64,
}

/// The names of the measures, in the order of [`Measures::values`].
pub const NAMES: [&str; 6] = [
    "downtime",
    "partial downtime",
    "disturbance",
    "downtime on recovery",
    "partial downtime on recovery",
    "recovery time",
];

impl Measures {
    /// The six values in the order of [`NAMES`].
    pub fn values(&self) -> [Option<f64>; 6] {
        [
            Some(self.downtime_ms),
            Some(self.partial_downtime_ms),
            self.disturbance_ms,
            self.recovery_downtime_ms,
            self.recovery_partial_downtime_ms,
            self.recovery_time_ms,
        ]
    }
}

/// The n-1-node subsets (all nodes but one); the single node itself when n = 1.
fn all_but_one(n: usize) -> Vec<Vec<usize>> {
    if n < 2 {
        return vec![(0..n).collect()];
    }
    (0..n)
        .map(|left_out| (0..n).filter(|&i| i != left_out).collect())
        .collect()
}

/// Downtime and partial downtime inside `[from_ms, to_ms]`.
pub fn downtimes(run: &Run, from_ms: i64, to_ms: i64) -> (f64, f64) {
    let all: Vec<usize> = (0..run.node_count()).collect();
    let downtime = analysis::longest_within_ms(run, &all, from_ms, to_ms);
    let partial = all_but_one(run.node_count())
        .iter()
        .map(|nodes| analysis::longest_within_ms(run, nodes, from_ms, to_ms))
        .fold(downtime, f64::max);
    (downtime, partial)
}

/// A node's down stretches as open intervals (µs); `u64::MAX` as the end when it never
/// succeeded again before the run ended.
fn down_spans(run: &Run, node: usize, gap_ms: f64) -> Vec<(u64, u64)> {
    let gap_us = (gap_ms * 1000.0) as u64;
    let end_us = analysis::run_end_ms(run).max(0) as u64 * 1000;
    analysis::stretches(run, &[node])
        .iter()
        .filter(|s: &&Stretch| s.len_us > gap_us)
        .map(|s| {
            let to = if s.to_us >= end_us { u64::MAX } else { s.to_us };
            (s.from_us, to)
        })
        .collect()
}

/// The outage gap for a fault whose command began at `begin_ms`: [`STEADY_GAP_MS`], or the
/// longest stretch of a single node in the fault-free time before it when that is longer.
pub fn outage_gap_ms(run: &Run, begin_ms: i64) -> f64 {
    let (from, to) = quiet_window(begin_ms);
    (0..run.node_count())
        .filter(|_| from < to)
        .map(|i| analysis::longest_within_ms(run, &[i], from, to))
        .fold(STEADY_GAP_MS as f64, f64::max)
}

/// The fault-free reference before a fault whose command began at `begin_ms`: at most
/// [`QUIET_MS`], not before the warm-up's end (empty when the fault came earlier).
pub fn quiet_window(begin_ms: i64) -> (i64, i64) {
    let from = (begin_ms - QUIET_MS).max(analysis::WARM_UP_MS);
    (from, begin_ms.max(from))
}

/// The earliest instant at or after `from_ms` from which at least `count` nodes are steady
/// (judged with `gap_ms`), as ms after `from_ms`; `None` when that does not happen inside the
/// run.
pub fn steady_after_ms(run: &Run, count: usize, from_ms: i64, gap_ms: f64) -> Option<f64> {
    let from_us = from_ms.max(0) as u64 * 1000;
    let end_us = analysis::run_end_ms(run).max(0) as u64 * 1000;
    let hold_us = STEADY_HOLD_MS as u64 * 1000;
    let downs: Vec<Vec<(u64, u64)>> = (0..run.node_count())
        .map(|i| down_spans(run, i, gap_ms))
        .collect();
    // Steadiness only begins where a down stretch ends (or at `from` itself).
    let mut candidates: Vec<u64> = downs
        .iter()
        .flatten()
        .map(|&(_, to)| to)
        .filter(|&to| to > from_us && to != u64::MAX)
        .chain([from_us])
        .collect();
    candidates.sort_unstable();
    candidates.dedup();
    for t in candidates {
        if t + hold_us > end_us {
            return None;
        }
        let steady = downs
            .iter()
            .filter(|spans| !spans.iter().any(|&(a, b)| a < t + hold_us && b > t))
            .count();
        if steady >= count {
            return Some((t - from_us) as f64 / 1000.0);
        }
    }
    None
}

/// The six measures of `fault`; `faults` are all faults of the run (the recovery phase ends
/// where the next one begins).
pub fn of(run: &Run, fault: &Fault, faults: &[Fault]) -> Measures {
    let end = analysis::run_end_ms(run);
    let n = run.node_count();
    let fault_end = fault.end_ms(end);
    let (downtime_ms, partial_downtime_ms) = downtimes(run, fault.start_ms, fault_end);
    let gap = outage_gap_ms(run, fault.begin_ms);
    let disturbance_ms = steady_after_ms(run, n.saturating_sub(1).max(1), fault.start_ms, gap);
    let mut measures = Measures {
        downtime_ms,
        partial_downtime_ms,
        disturbance_ms,
        outage_gap_ms: gap,
        ..Default::default()
    };
    if let Some(recover) = fault.recover_ms {
        let phase_end = faults
            .iter()
            .map(|f| f.start_ms)
            .filter(|&s| s > recover)
            .min()
            .unwrap_or(end)
            .min(end);
        let (down, partial) = downtimes(run, recover, phase_end);
        measures.recovery_downtime_ms = Some(down);
        measures.recovery_partial_downtime_ms = Some(partial);
        measures.recovery_time_ms = steady_after_ms(run, n, recover, gap);
    }
    measures
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::fixtures::synthetic;
    use crate::analysis::{faults, FaultKind};
    use crate::data::Event;

    /// A chaos event whose command begins and ends at `at_ms`.
    fn event(run: &Run, command: &str, host: &str, at_ms: i64) -> Event {
        crate::analysis::fixtures::event(run, command, host, at_ms, at_ms)
    }

    fn measures(run: &Run) -> Vec<Measures> {
        let all = faults(run);
        all.iter().map(|f| of(run, f, &all)).collect()
    }

    /// Every node succeeds at t = 5, 15, 25 … ms unless down (see fixtures::synthetic).
    #[test]
    fn isolated_leader_with_an_election_and_a_disruption_on_heal() {
        // n1 isolated 5.0 s → 12.0 s. Everyone stops until 6.5 s (election); n1 serves
        // again only at 12.8 s, and everyone stops 12.3 s → 12.8 s (the old leader's return).
        let mut run = synthetic(20, 3, |i, t| {
            (5000..6500).contains(&t)
                || (i == 0 && (5000..12800).contains(&t))
                || (12300..12800).contains(&t)
        });
        run.events = vec![
            event(&run, "isolate", "e1", 5000),
            event(&run, "heal", "e1", 12000),
        ];
        let m = &measures(&run)[0];
        // Last success 4.995 s, next 6.505 s; counted from the fault at 5.000 s.
        assert_eq!(m.downtime_ms, 1505.0);
        assert_eq!(m.partial_downtime_ms, 1505.0);
        // n2 and n3 steady from their first success after the election.
        assert_eq!(m.disturbance_ms, Some(1505.0));
        // 12.295 s → 12.805 s, all down.
        assert_eq!(m.recovery_downtime_ms, Some(510.0));
        assert_eq!(m.recovery_partial_downtime_ms, Some(510.0));
        // From the heal (12.0 s) until all three serve steadily (12.805 s).
        assert_eq!(m.recovery_time_ms, Some(805.0));
    }

    #[test]
    fn leaderless_kill_has_only_the_load_noise() {
        // n1 killed at 3.0 s, started at 6.0 s, serving again at 6.5 s; n2 and n3 go on.
        let mut run = synthetic(10, 3, |i, t| i == 0 && (3000..6500).contains(&t));
        run.events = vec![
            event(&run, "kill", "a1", 3000),
            event(&run, "start", "a1", 6000),
        ];
        let m = &measures(&run)[0];
        // The 10 ms between two successes is all that is left (buckets cross every 100 ms).
        assert_eq!(m.downtime_ms, 10.0);
        assert_eq!(m.partial_downtime_ms, 10.0);
        assert_eq!(m.disturbance_ms, Some(0.0));
        assert_eq!(m.recovery_downtime_ms, Some(10.0));
        assert_eq!(m.recovery_partial_downtime_ms, Some(10.0));
        assert_eq!(m.recovery_time_ms, Some(505.0));
    }

    #[test]
    fn a_fault_with_no_success_before_it() {
        // Nothing succeeds before 0.8 s; n1 is killed at 0.3 s and never succeeds until
        // 3.5 s (start at 3.0 s).
        let mut run = synthetic(8, 3, |i, t| t < 800 || (i == 0 && t < 3500));
        run.events = vec![
            event(&run, "kill", "a1", 300),
            event(&run, "start", "a1", 3000),
        ];
        let m = &measures(&run)[0];
        // From the fault (0.3 s) to the first success (0.805 s).
        assert_eq!(m.downtime_ms, 505.0);
        assert_eq!(m.partial_downtime_ms, 505.0);
        assert_eq!(m.disturbance_ms, Some(505.0));
        assert_eq!(m.recovery_time_ms, Some(505.0));
    }

    #[test]
    fn overlapping_faults_are_each_measured_with_the_others_effects() {
        // n1 killed 2 s → 8 s (serving at 8.5 s); n2 killed 4 s → 6 s (serving at 6.5 s);
        // without a majority n3 stops too from 4 s to 6.5 s.
        let mut run = synthetic(14, 3, |i, t| {
            (i == 0 && (2000..8500).contains(&t)) || (i > 0 && (4000..6500).contains(&t))
        });
        run.events = vec![
            event(&run, "kill", "a1", 2000),
            event(&run, "kill", "a2", 4000),
            event(&run, "start", "a2", 6000),
            event(&run, "start", "a1", 8000),
        ];
        let all = faults(&run);
        assert_eq!(all[0].kind, FaultKind::Kill);
        assert_eq!((all[0].start_ms, all[0].recover_ms), (2000, Some(8000)));
        assert_eq!((all[1].start_ms, all[1].recover_ms), (4000, Some(6000)));
        let m = measures(&run);
        // a1's fault phase holds the whole stop, 3.995 s → 6.505 s.
        assert_eq!(m[0].downtime_ms, 2510.0);
        assert_eq!(m[0].partial_downtime_ms, 2510.0);
        // At 2 s n2 and n3 were steady: a1 alone disturbs nothing.
        assert_eq!(m[0].disturbance_ms, Some(0.0));
        assert_eq!(m[0].recovery_downtime_ms, Some(10.0));
        assert_eq!(m[0].recovery_time_ms, Some(505.0));
        // a2's fault phase (4 s → 6 s) is all downtime; it goes on 505 ms after the start.
        assert_eq!(m[1].downtime_ms, 2000.0);
        assert_eq!(m[1].disturbance_ms, Some(2505.0));
        assert_eq!(m[1].recovery_downtime_ms, Some(505.0));
        // All three serve only when a1 is back (8.505 s).
        assert_eq!(m[1].recovery_time_ms, Some(2505.0));
    }

    #[test]
    fn a_node_that_never_recovers() {
        // n1 killed at 3 s and "started" at 6 s, but it never serves again.
        let mut run = synthetic(10, 3, |i, t| i == 0 && t >= 3000);
        run.events = vec![
            event(&run, "kill", "a1", 3000),
            event(&run, "start", "a1", 6000),
        ];
        let m = &measures(&run)[0];
        assert_eq!(m.disturbance_ms, Some(0.0));
        assert_eq!(m.recovery_partial_downtime_ms, Some(10.0));
        assert_eq!(m.recovery_time_ms, None);
        // A pause never resumed: no recovery phase at all.
        let mut run = synthetic(10, 3, |i, t| i == 0 && t >= 3000);
        run.events = vec![event(&run, "pause", "a1", 3000)];
        let m = &measures(&run)[0];
        assert_eq!(m.recovery_downtime_ms, None);
        assert_eq!(m.recovery_time_ms, None);
        assert_eq!(m.values()[3], None);
    }

    #[test]
    fn slow_iterations_before_the_fault_raise_the_outage_gap() {
        // Every node stalls 300 ms once a second (t % 1000 in 500..800) before the fault at
        // 8 s: those stalls are the load, not outages. n1 is then killed for good.
        let mut run = synthetic(20, 3, |i, t| {
            (t < 8000 && (500..800).contains(&(t % 1000))) || (i == 0 && t >= 8000)
        });
        run.events = vec![event(&run, "kill", "a1", 8000)];
        // From 7.495 s to 7.805 s: 310 ms.
        assert_eq!(outage_gap_ms(&run, 8000), 310.0);
        let m = &measures(&run)[0];
        assert_eq!(m.outage_gap_ms, 310.0);
        assert_eq!(m.disturbance_ms, Some(0.0));
        // With the fixed 100 ms the stall would count until 8 s… and n2, n3 are steady at once.
        assert_eq!(steady_after_ms(&run, 2, 7600, 100.0), Some(205.0));
        assert_eq!(steady_after_ms(&run, 2, 7600, 310.0), Some(0.0));
        // Nothing fault-free before a fault at 1 s: the fixed 100 ms.
        assert_eq!(outage_gap_ms(&run, 1000), 100.0);
    }

    #[test]
    fn steadiness_needs_the_whole_hold_inside_the_run() {
        // Everyone stops from 1 s until 9.5 s of a 10 s run: only 0.5 s left to be steady in.
        let run = synthetic(10, 3, |_, t| (1000..9500).contains(&t));
        assert_eq!(steady_after_ms(&run, 2, 1000, 100.0), None);
        // The stop at 1 s falls inside the hold that would begin at 0.
        assert_eq!(steady_after_ms(&run, 3, 0, 100.0), None);
        let run = synthetic(10, 3, |_, t| (2000..3000).contains(&t));
        // Steady for the 1 s from 0 already; from 1.5 s only once the stop is over.
        assert_eq!(steady_after_ms(&run, 3, 0, 100.0), Some(0.0));
        assert_eq!(steady_after_ms(&run, 3, 1500, 100.0), Some(1505.0));
        assert_eq!(steady_after_ms(&run, 3, 4000, 100.0), Some(0.0));
    }

    #[test]
    fn islands_of_different_nodes_that_do_not_overlap_leave_an_exact_stretch() {
        // n1 serves only in the first half of every bucket, n2 only in the second half, n3 never.
        let run = synthetic(3, 3, |i, t| {
            i == 2 || (i == 0 && t % 100 >= 50) || (i == 1 && t % 100 < 50)
        });
        // n1: 5..45, n2: 55..95 → 10 ms between them, exact.
        assert_eq!(analysis::longest_within_ms(&run, &[0, 1], 0, 3000), 10.0);
        // n1 alone: 45 → 105 between buckets.
        assert_eq!(analysis::longest_within_ms(&run, &[0], 0, 3000), 60.0);
        // Clipped to the phase: only 15 ms of 1.045 → 1.105 s lie inside [1.085 s, 1.1 s].
        assert_eq!(analysis::longest_within_ms(&run, &[0], 1085, 1100), 15.0);
    }
}
