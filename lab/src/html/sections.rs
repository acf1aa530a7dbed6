//! The sections of `report.html` that are tables and timelines rather than charts: the
//! operation timeline around each fault, the six measures, the violations with the timeline
//! around each, the chaos actions, and the settings of the load and the system.

use std::fmt::Write;

use perseus_model::load::Latency;

use super::charts::{lanes, ms};
use super::esc;
use crate::analysis::{self, Subject};
use crate::data::Run;
use crate::impact::FaultReport;
use crate::measures;
use crate::spans::Span;

/// How far before a fault and after its recovery its timeline reaches, ms; and the longest a
/// timeline gets (a long fault shows its start and its end).
pub(super) const TIMELINE_BEFORE_MS: i64 = 2000;
pub(super) const TIMELINE_AFTER_MS: i64 = 3000;
pub(super) const TIMELINE_MAX_MS: i64 = 24_000;

pub(super) fn timelines(out: &mut String, run: &Run, reports: &[FaultReport], spans: &[Span]) {
    let end = analysis::run_end_ms(run);
    // One timeline per span (the hosts of one partition share it).
    for span in spans {
        let from = (span.from_ms - TIMELINE_BEFORE_MS).max(0);
        let to = (span.to_ms + TIMELINE_AFTER_MS).min(end);
        let _ = writeln!(
            out,
            "<h3>{} at {:.1} s</h3>",
            esc(&span.label()),
            span.from_ms as f64 / 1000.0
        );
        if to - from <= TIMELINE_MAX_MS {
            lanes(out, run, from, to, spans, &span.label());
        } else {
            let half = TIMELINE_MAX_MS / 2;
            lanes(
                out,
                run,
                from,
                from + half,
                spans,
                &format!("{}: its start", span.label()),
            );
            lanes(
                out,
                run,
                to - half,
                to,
                spans,
                &format!("{}: its end", span.label()),
            );
        }
        if let Some(r) = reports
            .iter()
            .find(|r| r.fault.start_ms == span.from_ms && r.fault.kind == span.kind)
        {
            impacts(out, r);
        }
    }
}

/// The unavailability and throughput of every node and the cluster during one fault.
pub(super) fn impacts(out: &mut String, r: &FaultReport) {
    let pct = |v: Option<f64>, b: Option<f64>| match (v, b) {
        (Some(v), Some(b)) if b > 0.0 => format!("{:.0} %", 100.0 * v / b),
        _ => "–".into(),
    };
    out.push_str("<table class=\"impacts\"><tr><th></th><th>unavailable (ms)</th><th>before (it/s)</th><th>during</th><th>after</th></tr>\n");
    for i in &r.impacts {
        let who = match i.subject {
            Subject::Node(n) => format!("n{}", n + 1),
            Subject::Cluster => "cluster".into(),
        };
        let _ = writeln!(
            out,
            "<tr><td>{who}</td><td>{:.0}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            i.unavailability_ms,
            i.baseline_per_s.map_or("–".into(), |v| format!("{v:.0}")),
            pct(i.during_per_s, i.baseline_per_s),
            pct(i.after_per_s, i.baseline_per_s)
        );
    }
    let _ = writeln!(
        out,
        "</table><p>The faulted node's first success after the recovery began: {}. Violations during the fault and the 5 s after: {}.</p>",
        r.recovery_ms.map_or("–".into(), |v| format!("{v:.0} ms")),
        r.violations
    );
}

/// The six measures, one row per fault.
pub(super) fn six_measures(out: &mut String, reports: &[FaultReport]) {
    if reports.is_empty() {
        out.push_str("<p>No fault in this run.</p>\n");
        return;
    }
    out.push_str("<table><tr><th>fault</th>");
    for name in measures::NAMES {
        let _ = write!(out, "<th>{} (ms)</th>", esc(name));
    }
    out.push_str("<th>outage gap (ms)</th></tr>\n");
    for r in reports {
        let _ = write!(
            out,
            "<tr><td>{} at {:.1} s</td>",
            esc(&r.fault.label()),
            r.fault.start_ms as f64 / 1000.0
        );
        for v in r.measures.values() {
            let _ = write!(out, "<td>{}</td>", ms(v));
        }
        let _ = writeln!(out, "<td>{:.0}</td></tr>", r.measures.outage_gap_ms);
    }
    let _ = writeln!(
        out,
        "</table><p class=\"note\">Downtime: no node succeeding; partial downtime: at most one node \
         succeeding; disturbance: from the fault until all nodes but one are steady; the same two \
         downtimes after the recovery began; recovery time: from the recovery until every node is \
         steady (no gap over the outage gap for {} ms). –: no recovery in the run, or never steady \
         before it ended.</p>",
        measures::STEADY_HOLD_MS
    );
}

/// Every violation the checker found, with the node's timeline around the first ones.
pub(super) fn violations(out: &mut String, run: &Run, spans: &[Span]) {
    let count = run.violation_count();
    if count == 0 {
        out.push_str("<p class=\"good\">None: no lost acknowledged write, stale read, index going backwards or value nobody wrote.</p>\n");
        return;
    }
    let _ = writeln!(
        out,
        "<p class=\"bad\">{count} consistency violations.</p><table><tr><th>at (s)</th><th>node</th><th>kind</th><th>key</th><th>allowed / acknowledged</th><th>read</th></tr>"
    );
    for v in &run.violations {
        let _ = writeln!(
            out,
            "<tr><td>{:.3}</td><td>n{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            v.t_us as f64 / 1e6,
            v.node,
            esc(&v.violation.kind.to_string()),
            esc(&v.violation.key),
            esc(&v.violation.expected),
            esc(&v.violation.got)
        );
    }
    out.push_str("</table>\n");
    // The requests around the first few: what every node did in the 2 s before and 1 s after.
    for v in run.violations.iter().take(MAX_VIOLATION_TIMELINES) {
        let at_ms = (v.t_us / 1000) as i64;
        let _ = writeln!(
            out,
            "<h3>Around the {} on n{} at {:.3} s</h3>",
            esc(&v.violation.kind.to_string()),
            v.node,
            at_ms as f64 / 1000.0
        );
        lanes(
            out,
            run,
            (at_ms - 2000).max(0),
            at_ms + 1000,
            spans,
            "requests around a violation",
        );
    }
}

/// The violations drawn with a timeline of their own (all are in the table).
pub(super) const MAX_VIOLATION_TIMELINES: usize = 5;

/// The chaos actions in order.
pub(super) fn events(out: &mut String, run: &Run) {
    if run.events.is_empty() {
        out.push_str("<p>No chaos action recorded.</p>\n");
        return;
    }
    out.push_str("<table><tr><th>began (s)</th><th>done (s)</th><th>action</th><th>host</th><th>ok</th><th>detail</th></tr>\n");
    for e in &run.events {
        let _ = writeln!(
            out,
            "<tr><td>{:.3}</td><td>{:.3}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            run.offset_ms(e.begin_unix_ms) as f64 / 1000.0,
            run.offset_ms(e.unix_ms) as f64 / 1000.0,
            esc(&e.command.to_string()),
            esc(&e.host.to_string()),
            if e.ok { "yes" } else { "<b>failed</b>" },
            esc(&e.detail)
        );
    }
    out.push_str("</table>\n");
}

/// The load's settings and totals.
pub(super) fn settings(out: &mut String, system: &str, run: &Run) {
    let s = &run.settings;
    let mut rows: Vec<(&str, String)> = vec![
        ("system", system.to_string()),
        (
            "load began",
            s.time.format("%Y-%m-%d %H:%M:%S%.3f UTC").to_string(),
        ),
        ("run id", s.run_id.clone()),
        ("nodes", run.nodes.join(", ")),
        ("connections per node", s.connections.to_string()),
        (
            "keys",
            if s.key_mode.is_empty() {
                "own".into()
            } else {
                s.key_mode.clone()
            },
        ),
        ("duration asked", format!("{} s", s.duration_s)),
        ("request timeout", format!("{} ms", s.timeout_ms)),
        ("bucket", format!("{} ms", s.bucket_ms)),
    ];
    if let Some(sum) = &run.summary {
        rows.push((
            "iterations",
            format!(
                "{} ({:.0}/s over {:.1} s)",
                sum.iterations, sum.mean_per_s, sum.elapsed_s
            ),
        ));
        let errors: Vec<String> = sum.errors.iter().map(|(k, n)| format!("{k} {n}")).collect();
        rows.push((
            "failed requests",
            if errors.is_empty() {
                "none".into()
            } else {
                errors.join(", ")
            },
        ));
        rows.push((
            "requests answered 5xx",
            format!(
                "{} of {} ({:.1} %)",
                sum.requests.answered_5xx, sum.requests.sent, sum.requests.share_5xx_pct
            ),
        ));
        let latency = |l: &Latency| {
            let f =
                |v: Option<u64>| v.map_or("–".into(), |us| format!("{:.1}", us as f64 / 1000.0));
            format!(
                "p50 {} / p90 {} / p99 {} / max {} ms",
                f(l.p50),
                f(l.p90),
                f(l.p99),
                f(l.max)
            )
        };
        rows.push(("iteration latency", latency(&sum.latency_us)));
        for (op, l) in &sum.request_latency_us {
            rows.push(("request latency", format!("{op}: {}", latency(l))));
        }
        rows.push(("stopped by", sum.stopped_by.to_string()));
    } else {
        rows.push(("summary", "none: the load was cut short".into()));
    }
    out.push_str("<table class=\"settings\">\n");
    for (k, v) in rows {
        let _ = writeln!(out, "<tr><th>{}</th><td>{}</td></tr>", esc(k), esc(&v));
    }
    out.push_str("</table>\n");
}
