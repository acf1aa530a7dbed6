//! What each fault of a run did: its impact on every node and on the cluster (the window
//! without successes, the throughput before, during and after), the recovery of the faulted
//! node, the violations around it and the original Perseus's six measures (measures.rs).
//! Built on the fault windows and stretches of analysis.rs; read by the report, the page,
//! the comparison and the matrix.

use crate::analysis::{
    faults, first_success_after_ms, node_index, rate, run_end_ms, unavailability_ms, Fault,
    FaultKind, Subject, WARM_UP_MS,
};
use crate::data::Run;
use crate::measures::{self, Measures};

/// The numbers a report gives for one subject during one fault.
#[derive(Clone, Debug, PartialEq)]
pub struct Impact {
    pub subject: Subject,
    pub unavailability_ms: f64,
    pub baseline_per_s: Option<f64>,
    pub during_per_s: Option<f64>,
    pub after_per_s: Option<f64>,
}

/// One fault with its impact on every node and on the cluster.
#[derive(Clone, Debug, PartialEq)]
pub struct FaultReport {
    pub fault: Fault,
    pub impacts: Vec<Impact>,
    /// From the start of the recovery to the faulted node's first success, in ms.
    pub recovery_ms: Option<f64>,
    pub violations: usize,
    /// The original Perseus's six measures (measures.rs).
    pub measures: Measures,
}

/// Seconds of baseline before a fault and of "after" following its recovery.
pub const WINDOW_MS: i64 = 5000;
/// The first fault of `kind` that overlaps no other fault (one host failing alone), as the
/// summaries and the comparison quote it.
pub fn first_lone(
    reports: &[FaultReport],
    kind: FaultKind,
    run_end_ms: i64,
) -> Option<&FaultReport> {
    let alone = |r: &&FaultReport| {
        !reports.iter().any(|o| {
            !std::ptr::eq(o, *r)
                && o.fault.start_ms < r.fault.end_ms(run_end_ms)
                && r.fault.start_ms < o.fault.end_ms(run_end_ms)
        })
    };
    reports.iter().filter(alone).find(|r| r.fault.kind == kind)
}

pub fn analyse(run: &Run) -> Vec<FaultReport> {
    let end = run_end_ms(run);
    let subjects: Vec<Subject> = (0..run.node_count())
        .map(Subject::Node)
        .chain([Subject::Cluster])
        .collect();
    let all = faults(run);
    all.iter()
        .cloned()
        .map(|fault| {
            let fault_end = fault.end_ms(end);
            let baseline_from = (fault.start_ms - WINDOW_MS).max(WARM_UP_MS);
            let after_from = fault.recovered_ms.unwrap_or(fault_end);
            let impacts = subjects
                .iter()
                .map(|&subject| Impact {
                    subject,
                    unavailability_ms: unavailability_ms(run, subject, fault.start_ms, fault_end),
                    baseline_per_s: rate(run, subject, baseline_from, fault.start_ms),
                    during_per_s: rate(run, subject, fault.start_ms, fault_end),
                    after_per_s: rate(run, subject, after_from, after_from + WINDOW_MS),
                })
                .collect();
            let recovery_ms = match (fault.recover_ms, node_index(fault.host)) {
                (Some(from), Some(i)) if i < run.node_count() => {
                    first_success_after_ms(run, Subject::Node(i), from)
                }
                _ => None,
            };
            let violations = run
                .violations
                .iter()
                .filter(|v| {
                    let at = run.offset_ms(v.unix_ms);
                    at >= fault.start_ms && at <= fault_end + WINDOW_MS
                })
                .count();
            FaultReport {
                measures: measures::of(run, &fault, &all),
                fault,
                impacts,
                recovery_ms,
                violations,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::fixtures::{event, synthetic};

    #[test]
    fn a_killed_node_has_a_window_and_the_survivors_none() {
        // n1 down from 3.000 s to 6.500 s.
        let mut run = synthetic(10, 3, |i, t| i == 0 && (3000..6500).contains(&t));
        run.events = vec![
            event(&run, "kill", "a1", 2990, 3000),
            event(&run, "start", "a1", 6000, 6400),
        ];
        let reports = analyse(&run);
        assert_eq!(reports.len(), 1);
        let report = &reports[0];
        assert_eq!(report.fault.kind, FaultKind::Kill);
        assert_eq!(report.fault.start_ms, 3000);
        assert_eq!(report.fault.recover_ms, Some(6000));
        // Last success 2.995 s, next 6.505 s.
        assert_eq!(report.impacts[0].unavailability_ms, 3510.0);
        assert_eq!(report.impacts[1].unavailability_ms, 10.0);
        assert_eq!(report.impacts[2].unavailability_ms, 10.0);
        // The cluster never stopped: only the usual 10 ms between successes.
        assert_eq!(report.impacts[3].unavailability_ms, 10.0);
        // 100/s per node before; n1 at 0 during the whole seconds 4..6.
        assert_eq!(report.impacts[0].baseline_per_s, Some(100.0));
        assert_eq!(report.impacts[0].during_per_s, Some(0.0));
        assert_eq!(report.impacts[3].baseline_per_s, Some(300.0));
        // From the start command (6.000 s) to n1's first success (6.505 s).
        assert_eq!(report.recovery_ms, Some(505.0));
    }

    #[test]
    fn isolation_paired_with_heal_and_an_open_fault_runs_to_the_end() {
        let mut run = synthetic(10, 3, |i, t| {
            (i == 1 && (2000..4000).contains(&t)) || (i == 2 && t >= 8000)
        });
        run.events = vec![
            event(&run, "isolate", "a2", 1990, 2000),
            event(&run, "heal", "a2", 4000, 4001),
            event(&run, "pause", "a3", 7990, 8000),
        ];
        let reports = analyse(&run);
        assert_eq!(reports.len(), 2);
        assert_eq!(reports[0].fault.kind, FaultKind::Isolate);
        assert_eq!(reports[0].impacts[1].unavailability_ms, 2010.0);
        assert_eq!(reports[0].recovery_ms, Some(5.0));
        assert_eq!(reports[1].fault.kind, FaultKind::Pause);
        assert_eq!(reports[1].fault.recover_ms, None);
        // From the last success (7.995 s) to the end of the run (10 s).
        assert_eq!(reports[1].impacts[2].unavailability_ms, 2005.0);
        assert_eq!(reports[1].recovery_ms, None);
    }
}
