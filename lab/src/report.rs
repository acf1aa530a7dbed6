//! The Markdown report of a run: one table per fault and a summary in the shape of the
//! original Perseus README ("Crashed leader" / "Isolated leader"), all from measured data.

use std::fmt::Write;

use crate::analysis::{self, FaultKind, Subject};
use crate::data::Run;
use crate::impact::{self, FaultReport};
use crate::measures;
use perseus_model::ViolationKind;

fn ms(v: f64) -> String {
    format!("{v:.0}")
}

fn per_s(v: Option<f64>) -> String {
    v.map_or("–".into(), |v| format!("{v:.0}"))
}

fn relative(v: Option<f64>, base: Option<f64>) -> String {
    match (v, base) {
        (Some(v), Some(b)) if b > 0.0 => format!("{:.0}%", 100.0 * v / b),
        _ => "–".into(),
    }
}

fn subject_name(run: &Run, subject: Subject) -> String {
    match subject {
        Subject::Node(i) => format!("n{}", i + 1),
        Subject::Cluster => {
            let _ = run;
            "cluster".into()
        }
    }
}

/// The worst window among the nodes other than the faulted one.
pub fn survivors_worst_ms(report: &FaultReport) -> Option<f64> {
    let faulted = analysis::node_index(report.fault.host);
    report
        .impacts
        .iter()
        .filter(|i| matches!(i.subject, Subject::Node(n) if Some(n) != faulted))
        .map(|i| i.unavailability_ms)
        .reduce(f64::max)
}

pub fn cluster_ms(report: &FaultReport) -> Option<f64> {
    report
        .impacts
        .iter()
        .find(|i| i.subject == Subject::Cluster)
        .map(|i| i.unavailability_ms)
}

/// A measure in ms, or a dash when it does not apply (no recovery, never steady).
pub fn opt_ms(v: Option<f64>) -> String {
    v.map_or("–".to_string(), ms)
}

/// The table of the original Perseus's six measures, one row per fault.
fn six_measures(out: &mut String, reports: &[FaultReport]) {
    if reports.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "## The six measures (ms)

As in the original Perseus's 2018 round, at ms resolution (docs/matrix.md): \
         downtime = no node succeeding; partial downtime = at most one node succeeding; disturbance = \
         from the fault until all nodes but one are steady; the same two downtimes after the \
         recovery began; recovery time = from the recovery until every node is steady (steady: no \
         gap over the outage gap for {} ms; the outage gap is {} ms, or the longest gap of a node \
         in the {} s before the fault when longer). –: no recovery in the run, or never steady \
         before it ended.\n",
        measures::STEADY_HOLD_MS,
        measures::STEADY_GAP_MS,
        measures::QUIET_MS / 1000
    );
    let _ = writeln!(
        out,
        "| fault | {} | outage gap |",
        measures::NAMES.join(" | ")
    );
    let _ = writeln!(out, "|---|{}", "---:|".repeat(measures::NAMES.len() + 1));
    for report in reports {
        let cells: Vec<String> = report
            .measures
            .values()
            .iter()
            .map(|v| opt_ms(*v))
            .collect();
        let _ = writeln!(
            out,
            "| {} {} at {:.1} s | {} | {} |",
            report.fault.kind,
            report.fault.host,
            report.fault.start_ms as f64 / 1000.0,
            cells.join(" | "),
            ms(report.measures.outage_gap_ms)
        );
    }
    let _ = writeln!(out);
}

/// The acknowledged writes the run found lost, one row each: when the checker saw it, on which
/// node and key, the state it had acknowledged (or expected) and the state read instead. A
/// system that replicates asynchronously (Redis with Sentinel) loses them on a failover; this
/// is where the report shows them, never hidden.
fn lost_writes(out: &mut String, run: &Run) {
    let lost: Vec<_> = run
        .violations
        .iter()
        .filter(|v| v.violation.kind == ViolationKind::LostWrite)
        .collect();
    if lost.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "## Lost acknowledged writes: {}\n\nEach row: a read that returned less than a write the store had \
         acknowledged (value and version), on the client's own key.\n",
        lost.len()
    );
    let _ = writeln!(
        out,
        "| at (s) | node | key | acknowledged / expected | read |"
    );
    let _ = writeln!(out, "|---:|---|---|---|---|");
    for v in &lost {
        let _ = writeln!(
            out,
            "| {:.3} | n{} | {} | {} | {} |",
            v.t_us as f64 / 1e6,
            v.node,
            v.violation.key,
            v.violation.expected,
            v.violation.got
        );
    }
    let _ = writeln!(out);
}

/// The Markdown text.
pub fn markdown(title: &str, system: &str, run: &Run, reports: &[FaultReport]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# {title}\n");
    let seconds = run.seconds.len();
    let total: u64 = run.seconds.iter().map(|s| s.cluster).sum();
    let violations = run.violation_count();
    let _ = writeln!(
        out,
        "System: {system}. {seconds} s of load on {} nodes, {total} iterations ({:.0}/s), {violations} consistency violations.\n",
        run.node_count(),
        if seconds > 0 { total as f64 / seconds as f64 } else { 0.0 }
    );
    let _ = writeln!(
        out,
        "Unavailability window: the longest stretch with no successful iteration that overlaps the fault, in ms \
         (per node exact; cluster = no node succeeding, exact across 100 ms bucket borders). \
         Throughput: iterations/s; during/after relative to the 5 s before the fault.\n"
    );

    // The summary speaks of one host failing alone: faults that overlap another are left out.
    let end = analysis::run_end_ms(run);
    let crash = impact::first_lone(reports, FaultKind::Kill, end);
    let isolate = impact::first_lone(reports, FaultKind::Isolate, end);
    let cell = |r: Option<&FaultReport>, f: fn(&FaultReport) -> Option<f64>| {
        r.and_then(f).map_or("–".to_string(), ms)
    };
    let _ = writeln!(
        out,
        "## Summary\n\nThe first kill and the first isolation of a single host that overlap no other fault.\n"
    );
    let _ = writeln!(out, "| {system} | Crashed leader | Isolated leader |");
    let _ = writeln!(out, "|---|---|---|");
    let _ = writeln!(
        out,
        "| cluster unavailable (ms) | {} | {} |",
        cell(crash, cluster_ms),
        cell(isolate, cluster_ms)
    );
    let _ = writeln!(
        out,
        "| worst surviving node unavailable (ms) | {} | {} |",
        cell(crash, survivors_worst_ms),
        cell(isolate, survivors_worst_ms)
    );
    let _ = writeln!(
        out,
        "| faulted node back after start/heal (ms) | {} | {} |\n",
        cell(crash, |r| r.recovery_ms),
        cell(isolate, |r| r.recovery_ms)
    );

    lost_writes(&mut out, run);
    six_measures(&mut out, reports);

    for report in reports {
        let f = &report.fault;
        let end = f.recover_ms.map_or("end of run".to_string(), |t| {
            format!("{:.1} s", t as f64 / 1000.0)
        });
        let _ = writeln!(
            out,
            "## {} at {:.1} s, until {}\n",
            f.label(),
            f.start_ms as f64 / 1000.0,
            end
        );
        let _ = writeln!(out, "| | unavailable (ms) | before (/s) | during | after |");
        let _ = writeln!(out, "|---|---|---|---|---|");
        for impact in &report.impacts {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} |",
                subject_name(run, impact.subject),
                ms(impact.unavailability_ms),
                per_s(impact.baseline_per_s),
                relative(impact.during_per_s, impact.baseline_per_s),
                relative(impact.after_per_s, impact.baseline_per_s),
            );
        }
        let recovery = report
            .recovery_ms
            .map_or("–".to_string(), |v| format!("{v:.0} ms"));
        let _ = writeln!(
            out,
            "\nFaulted node's first success after the recovery began: {recovery}. Violations during the fault: {}.\n",
            report.violations
        );
    }
    if let Some(h) = &run.history {
        out.push_str(&crate::history::markdown(h, run.control, run.promise));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Run;

    const LOAD: &str = include_str!("../tests/data/kill-and-isolate/load.jsonl");
    const EVENTS: &str = include_str!("../tests/data/kill-and-isolate/events.jsonl");
    const REPORT: &str = include_str!("../tests/data/kill-and-isolate/report.md");

    /// A real run recorded on the testbed (`make experiment SCENARIO=kill-and-isolate`):
    /// the report computed from its data again is the report that was written then.
    #[test]
    fn recorded_run_gives_the_recorded_report() {
        let run = Run::parse(LOAD, EVENTS).expect("recorded data parses");
        let reports = impact::analyse(&run);
        assert_eq!(reports.len(), 2);
        let (kill, isolate) = (&reports[0], &reports[1]);
        assert_eq!(kill.fault.kind, FaultKind::Kill);
        assert_eq!(isolate.fault.kind, FaultKind::Isolate);
        // The faulted node is down for the whole fault; the survivors and the cluster never
        // stop for more than a few tens of milliseconds.
        let windows = |r: &FaultReport| -> Vec<i64> {
            r.impacts
                .iter()
                .map(|i| i.unavailability_ms.round() as i64)
                .collect()
        };
        // n1, n2, n3, cluster, as in the recorded report.md.
        assert_eq!(windows(kill), vec![11295, 22, 27, 19]);
        assert_eq!(windows(isolate), vec![9685, 41, 29, 14]);
        assert_eq!(kill.recovery_ms.map(|v| v.round() as i64), Some(1344));
        for report in [kill, isolate] {
            assert!(survivors_worst_ms(report).is_some_and(|ms| ms < 100.0));
            assert!(cluster_ms(report).is_some_and(|ms| ms < 100.0));
            assert_eq!(report.violations, 0);
        }
        assert_eq!(
            markdown(
                "kill-and-isolate",
                "Perseus (Gryadka/CASPaxos)",
                &run,
                &reports
            ),
            REPORT
        );
    }
}
