//! `lab storage DIR...`: what each system made of a storage fault (wipe, rollback, truncate;
//! chaos's storage.rs) of one of its hosts under load, one row per results folder of a storage
//! scenario (`compose/scenarios/storage-*.toml`, run by `make compare FAULTS="wipe rollback
//! truncate"`): whether the node was refused, repaired or silently rejoined, the acknowledged
//! writes lost (each listed), the stale reads, the cluster's downtime and when the node served
//! again. Written as `storage.md`.
//!
//! The outcome is read from what clients saw, not from the system's logs:
//! - **refused**: the node never served a client again before the end of the run (the system
//!   kept it out, or it would not start);
//! - **silently rejoined**: it served again, and acknowledged writes were lost or reads went
//!   stale, with no refusal;
//! - **repaired**: it served again and no acknowledged write was lost, no read was stale (the
//!   system put back what the disk lost, or never needed it);
//! - **not applicable**: chaos refused the fault for this system before touching anything (a
//!   log no file cut can reach: Galera's), so there is nothing to classify.

use std::fmt::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use perseus_model::ViolationKind;

use crate::analysis::{self, Subject};
use crate::compare::system_name;
use crate::data::{Event, Run, ViolationRecord};

/// What became of the faulted node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Refused,
    Repaired,
    SilentlyRejoined,
    NotApplicable,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Refused => "refused",
            Outcome::Repaired => "repaired",
            Outcome::SilentlyRejoined => "silently rejoined",
            Outcome::NotApplicable => "not applicable",
        }
    }
}

/// One system's answer to one storage fault.
#[derive(Clone, Debug)]
pub struct Row {
    pub system: String,
    /// The fault's text (`rollback`, `truncate:512`) with ` (acceptor only)` for a layer.
    pub fault: String,
    pub host: String,
    /// Whether chaos's own command succeeded (it fails when the host will not start).
    pub applied: bool,
    pub outcome: Outcome,
    pub lost: Vec<ViolationRecord>,
    pub stale: u64,
    pub other_violations: u64,
    /// The longest stretch without any success of the cluster that overlaps the fault, ms.
    pub cluster_downtime_ms: f64,
    /// From the fault's beginning until the end of the faulted node's outage, ms (None: it
    /// never served again).
    pub back_ms: Option<f64>,
    /// What chaos said it did (the system's repair included).
    pub detail: String,
    /// When the fault began, ms from the run start.
    pub at_ms: i64,
}

/// The storage fault of a run: the first wipe, rollback, truncate or amnesia, applied or not
/// (a failed one is a host that would not come back).
fn storage_event(run: &Run) -> Option<&Event> {
    run.events
        .iter()
        .find(|e| e.command.is_storage() && e.command != perseus_model::FaultKind::Snapshot)
}

/// The row of one run; None when it holds no storage fault.
pub fn row(system: &str, run: &Run) -> Option<Row> {
    let event = storage_event(run)?;
    let begin = run.offset_ms(event.begin_unix_ms);
    let end = run.offset_ms(event.unix_ms);
    let run_end = analysis::run_end_ms(run);
    let node = event.host.host().map(|h| h.node_index());
    // The node's outage is its longest stretch without a success that overlaps the fault's
    // command (stopped, files changed, started, waited for its first answer); it is back at
    // that stretch's end, or never when the stretch lasts to the end of the run. Not the
    // first success after the command returned: a command that waited long for an answer
    // (a system slow to answer its health question) would push "back" after the fact.
    let back_ms = node.filter(|&i| i < run.node_count()).and_then(|i| {
        let run_end_us = run_end.max(0) as u64 * 1000;
        let (from_us, to_us) = (
            begin.max(0) as u64 * 1000,
            end.max(begin).max(0) as u64 * 1000,
        );
        let outage = analysis::stretches(run, &[i])
            .into_iter()
            .filter(|s| s.overlaps(from_us, to_us))
            .max_by_key(|s| s.len_us);
        match outage {
            Some(s) if s.to_us >= run_end_us => None,
            Some(s) => Some((s.to_us as f64 / 1000.0 - begin as f64).max(0.0)),
            None => Some(0.0),
        }
    });
    let count = |kind: ViolationKind| {
        run.violations
            .iter()
            .filter(|v| v.violation.kind == kind)
            .count() as u64
    };
    let lost: Vec<ViolationRecord> = run
        .violations
        .iter()
        .filter(|v| v.violation.kind == ViolationKind::LostWrite)
        .cloned()
        .collect();
    let stale = count(ViolationKind::StaleRead);
    let other = count(ViolationKind::IndexBackwards) + count(ViolationKind::UnexpectedValue);
    // Without a summary the records are all there is; with one, the loadgen's total counts
    // violations whose records it did not write.
    let unsupported = event.failure == Some(perseus_model::Failure::Unsupported);
    let outcome = match back_ms {
        _ if unsupported => Outcome::NotApplicable,
        None => Outcome::Refused,
        Some(_) if !lost.is_empty() || stale > 0 || other > 0 => Outcome::SilentlyRejoined,
        Some(_) => Outcome::Repaired,
    };
    let layer = event
        .layer
        .map(|l| format!(" ({l} only)"))
        .unwrap_or_default();
    Some(Row {
        system: system.to_string(),
        fault: format!("{}{layer}", event.command),
        host: event.host.to_string(),
        applied: event.ok,
        outcome,
        lost,
        stale,
        other_violations: other,
        cluster_downtime_ms: analysis::unavailability_ms(run, Subject::Cluster, begin, run_end),
        back_ms,
        detail: event.detail.clone(),
        at_ms: begin,
    })
}

fn ms(v: Option<f64>) -> String {
    v.map_or_else(|| "never".to_string(), |v| format!("{v:.0}"))
}

/// One cell of the summary: `repaired, 0 lost, back 1.2 s`.
fn cell(r: &Row) -> String {
    if r.outcome == Outcome::NotApplicable {
        return "not applicable".into();
    }
    let mut c = format!("{}, {} lost", r.outcome.as_str(), r.lost.len());
    if r.stale > 0 {
        let _ = write!(c, ", {} stale", r.stale);
    }
    match r.back_ms {
        Some(ms) => {
            let _ = write!(c, ", back {:.1} s", ms / 1000.0);
        }
        None => c.push_str(", never back"),
    }
    if r.cluster_downtime_ms >= 1000.0 {
        let _ = write!(c, ", all down {:.1} s", r.cluster_downtime_ms / 1000.0);
    }
    c
}

/// The rows as one line per system and one column per fault (in the order first seen), for a
/// page where 24 rows would not fit.
pub fn summary(rows: &[Row]) -> String {
    let mut systems: Vec<&str> = Vec::new();
    let mut faults: Vec<&str> = Vec::new();
    for r in rows {
        if !systems.contains(&r.system.as_str()) {
            systems.push(&r.system);
        }
        if !faults.contains(&r.fault.as_str()) {
            faults.push(&r.fault);
        }
    }
    let mut md = format!("| system | {} |\n|---|", faults.join(" | "));
    md.push_str(&"---|".repeat(faults.len()));
    md.push('\n');
    for s in &systems {
        let cells: Vec<String> = faults
            .iter()
            .map(|f| {
                rows.iter()
                    .find(|r| r.system == *s && r.fault == *f)
                    .map_or_else(|| "–".to_string(), cell)
            })
            .collect();
        let _ = writeln!(md, "| {s} | {} |", cells.join(" | "));
    }
    md
}

/// The table, then every lost write, then what chaos did per row.
pub fn markdown(rows: &[Row]) -> String {
    let mut md = String::new();
    md.push_str(
        "| system | fault | host | outcome | lost acknowledged writes | stale reads | other violations | cluster downtime ms | node served again after ms |\n\
         |---|---|---|---|---|---|---|---|---|\n",
    );
    for r in rows {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {}{} | {} | {} | {} | {:.0} | {} |",
            r.system,
            r.fault,
            r.host,
            r.outcome.as_str(),
            if r.applied || r.outcome == Outcome::NotApplicable {
                ""
            } else {
                " (chaos: failed)"
            },
            r.lost.len(),
            r.stale,
            r.other_violations,
            r.cluster_downtime_ms,
            ms(r.back_ms)
        );
    }
    let lost: Vec<&Row> = rows.iter().filter(|r| !r.lost.is_empty()).collect();
    if !lost.is_empty() {
        md.push_str("\nLost acknowledged writes (key, the acknowledged value, what was read instead, when the read found it, in s from the start of the load):\n\n");
        for r in lost {
            for v in &r.lost {
                let _ = writeln!(
                    md,
                    "- {} {} of {} at {:.1} s: key {}, acknowledged [{}], read [{}] at {:.1} s ({})",
                    r.system,
                    r.fault,
                    r.host,
                    r.at_ms as f64 / 1000.0,
                    v.violation.key,
                    v.violation.expected,
                    v.violation.got,
                    v.t_us as f64 / 1e6,
                    perseus_model::time::rfc3339_ms(v.time)
                );
            }
        }
    }
    md.push_str("\nWhat chaos did (the system's own repair included):\n\n");
    for r in rows {
        let mut detail = r.detail.clone();
        if detail.len() > 600 {
            let mut cut = 600;
            while !detail.is_char_boundary(cut) {
                cut -= 1;
            }
            detail.truncate(cut);
            detail.push('…');
        }
        let _ = writeln!(md, "- {} {} {}: {detail}", r.system, r.fault, r.host);
    }
    md
}

/// Reads the folders, prints the table, writes storage.md into `out` (default: the first
/// folder's parent). Folders without a storage fault are named and skipped.
pub fn run(dirs: &[PathBuf], out: Option<&Path>) -> Result<()> {
    let mut rows = Vec::new();
    for dir in dirs {
        let run = Run::load(dir).with_context(|| format!("results folder {}", dir.display()))?;
        match row(&system_name(dir), &run) {
            Some(r) => rows.push(r),
            None => eprintln!(
                "lab storage: {} has no storage fault: skipped",
                dir.display()
            ),
        }
    }
    if rows.is_empty() {
        bail!("none of the folders holds a storage fault (wipe, rollback, truncate)");
    }
    let out = crate::compare::output_folder(dirs, out)?;
    let text = markdown(&rows);
    let mut md = String::from("# Storage faults: one host's disk goes wrong under load\n\n");
    md.push_str(&summary(&rows));
    md.push_str("\n(back: from the fault's beginning until the node's first success; all down: the cluster's longest stretch without any success, when 1 s or more)\n\n");
    md.push_str(&text);
    md.push('\n');
    for dir in dirs {
        let _ = writeln!(md, "- {}/report.md", dir.display());
    }
    std::fs::write(out.join("storage.md"), &md)?;
    println!("{text}");
    println!("# wrote {}/storage.md", out.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use perseus_model::load::Violation;

    fn lost(run: &Run, at_ms: u64, key: &str) -> ViolationRecord {
        ViolationRecord {
            time: chrono::DateTime::default(),
            unix_ms: run.start_unix_ms + at_ms as i64,
            t_us: at_ms * 1000,
            node: 1,
            violation: Violation {
                key: key.into(),
                kind: ViolationKind::LostWrite,
                expected: "v=41".into(),
                got: "v=30".into(),
            },
        }
    }

    #[test]
    fn outcomes_from_what_clients_saw() {
        // e1 rolled back at 6 s (the command took 2 s), served again at 9 s, one write lost.
        let mut run =
            analysis::fixtures::synthetic(20, 3, |i, t| i == 0 && (6000..9000).contains(&t));
        run.events = vec![
            analysis::fixtures::event(&run, "snapshot", "e1", 2000, 2100),
            analysis::fixtures::event(&run, "rollback", "e1", 6000, 8000),
        ];
        run.violations = vec![lost(&run, 9500, "k1")];
        let r = row("etcd", &run).unwrap();
        assert_eq!(r.outcome, Outcome::SilentlyRejoined);
        assert_eq!((r.fault.as_str(), r.host.as_str()), ("rollback", "e1"));
        assert_eq!(r.back_ms, Some(3005.0));
        // The others kept serving: only the 10 ms between two successes.
        assert_eq!(r.cluster_downtime_ms, 10.0);
        let md = markdown(&[r]);
        assert!(
            md.contains("| etcd | rollback | e1 | silently rejoined | 1 | 0 | 0 | 10 | 3005 |"),
            "{md}"
        );
        assert!(
            md.contains("key k1, acknowledged [v=41], read [v=30] at 9.5 s"),
            "{md}"
        );

        // The node never serves again: refused, whatever the others saw.
        let mut run = analysis::fixtures::synthetic(20, 3, |i, t| i == 1 && t >= 6000);
        run.events = vec![analysis::fixtures::event(
            &run, "truncate", "e2", 6000, 7000,
        )];
        let r = row("etcd", &run).unwrap();
        assert_eq!((r.outcome, r.back_ms), (Outcome::Refused, None));

        // Back, nothing lost: repaired.
        let mut run =
            analysis::fixtures::synthetic(20, 3, |i, t| i == 2 && (6000..7000).contains(&t));
        run.events = vec![analysis::fixtures::event(&run, "wipe", "a3", 6000, 6500)];
        assert_eq!(row("perseus", &run).unwrap().outcome, Outcome::Repaired);

        let md = summary(&[r.clone(), {
            let mut o = r.clone();
            o.fault = "rollback".into();
            o
        }]);
        assert!(md.contains("| system | truncate | rollback |"), "{md}");
        assert!(
            md.contains("| etcd | refused, 0 lost, never back | refused, 0 lost, never back |"),
            "{md}"
        );

        // Refused by chaos before anything was stopped (no log to cut): not applicable.
        let mut run = analysis::fixtures::synthetic(20, 3, |_, _| false);
        let mut ev = analysis::fixtures::event(&run, "truncate", "g1", 6000, 6010);
        ev.ok = false;
        ev.failure = Some(perseus_model::Failure::Unsupported);
        run.events = vec![ev];
        let r = row("galera", &run).unwrap();
        assert_eq!(r.outcome, Outcome::NotApplicable);
        assert!(
            markdown(&[r]).contains("| galera | truncate | g1 | not applicable | 0 |"),
            "the row"
        );

        // No storage fault: no row.
        let mut run = analysis::fixtures::synthetic(5, 3, |_, _| false);
        run.events = vec![analysis::fixtures::event(&run, "kill", "a1", 1000, 1100)];
        assert!(row("perseus", &run).is_none());
    }
}
