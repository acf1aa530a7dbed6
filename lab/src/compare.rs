//! `lab compare DIR...`: the same scenario run on several systems, side by side. One row per
//! results folder: the unavailability windows after the crashed and the isolated leader (whole
//! cluster, and the worst surviving node) and how soon the faulted host served again after its
//! start or heal, the partition's windows, the throughput and p99 latency without faults, and
//! the consistency violations; written as `compare.md`, with the throughput plots stacked in
//! `compare.png`.

use std::fmt::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::analysis::{self, FaultKind, Subject};
use crate::data::Run;
use crate::figures::Row;
use crate::{impact, plot, report};

/// The file `lab run` leaves in a results folder with the system's name.
pub const SYSTEM_FILE: &str = "system.txt";

fn median(mut values: Vec<f64>) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    Some(if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    })
}

/// The numbers of one run (the first crash and isolation that overlap no other fault).
pub fn row(system: &str, run: &Run) -> Row {
    let reports = impact::analyse(run);
    let end = analysis::run_end_ms(run);
    let first = |kind: FaultKind| impact::first_lone(&reports, kind, end);
    let (crash, isolate) = (first(FaultKind::Kill), first(FaultKind::Isolate));
    let first_fault = analysis::faults(run)
        .iter()
        .map(|f| f.start_ms)
        .min()
        .unwrap_or(end);
    let from = analysis::WARM_UP_MS;
    let baseline_p99: Vec<f64> = analysis::seconds_within(run, from, first_fault)
        .filter_map(|s| s.latency_us.p99.map(|us| us as f64 / 1000.0))
        .collect();
    let summary = run.summary.as_ref();
    let partition = reports
        .iter()
        .find(|r| matches!(r.fault.kind, FaultKind::Partition(_)));
    Row {
        system: system.to_string(),
        crash_host: crash.map(|r| r.fault.host.to_string()),
        crash_cluster_ms: crash.and_then(report::cluster_ms),
        crash_survivors_ms: crash.and_then(report::survivors_worst_ms),
        crash_back_ms: crash.and_then(|r| r.recovery_ms),
        isolate_host: isolate.map(|r| r.fault.host.to_string()),
        isolate_cluster_ms: isolate.and_then(report::cluster_ms),
        isolate_survivors_ms: isolate.and_then(report::survivors_worst_ms),
        isolate_back_ms: isolate.and_then(|r| r.recovery_ms),
        partition_shape: partition.and_then(|r| r.fault.kind.param()),
        partition_cluster_ms: partition.and_then(report::cluster_ms),
        partition_worst_node_ms: partition.and_then(|r| {
            r.impacts
                .iter()
                .filter(|i| matches!(i.subject, Subject::Node(_)))
                .map(|i| i.unavailability_ms)
                .reduce(f64::max)
        }),
        baseline_per_s: analysis::rate(run, Subject::Cluster, from, first_fault),
        baseline_p99_ms: median(baseline_p99),
        run_p99_ms: summary
            .and_then(|s| s.latency_us.p99)
            .map(|us| us as f64 / 1000.0),
        violations: run.violation_count(),
        lost_writes: lost_writes(run),
    }
}

/// The acknowledged writes a run found lost: the load generator's count by kind, or the
/// violation records when the run has no summary.
pub fn lost_writes(run: &Run) -> u64 {
    let kind = perseus_model::ViolationKind::LostWrite;
    match &run.summary {
        Some(s) => s.violations_by_kind.get(&kind).copied().unwrap_or(0),
        None => run
            .violations
            .iter()
            .filter(|v| v.violation.kind == kind)
            .count() as u64,
    }
}

fn num(v: Option<f64>) -> String {
    v.map_or("–".into(), |v| format!("{v:.0}"))
}

fn num1(v: Option<f64>) -> String {
    v.map_or("–".into(), |v| format!("{v:.1}"))
}

/// The Markdown table (and the notes under it).
pub fn markdown(rows: &[Row]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| system | crashed leader: cluster unavailable (ms) | crashed leader: survivors unavailable (ms) \
         | crashed leader: back after start (ms) \
         | isolated leader: cluster unavailable (ms) | isolated leader: survivors unavailable (ms) \
         | isolated leader: back after heal (ms) \
         | partition: cluster unavailable (ms) | partition: worst node unavailable (ms) \
         | iterations/s, no faults | p99 ms, no faults | p99 ms, whole run | violations |"
    );
    let _ = writeln!(
        out,
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for r in rows {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.system,
            num(r.crash_cluster_ms),
            num(r.crash_survivors_ms),
            num(r.crash_back_ms),
            num(r.isolate_cluster_ms),
            num(r.isolate_survivors_ms),
            num(r.isolate_back_ms),
            num(r.partition_cluster_ms),
            num(r.partition_worst_node_ms),
            num(r.baseline_per_s),
            num1(r.baseline_p99_ms),
            num1(r.run_p99_ms),
            r.violations
        );
    }
    let _ = writeln!(out);
    for r in rows {
        let _ = writeln!(
            out,
            "- {}: the crash hit {}, the isolation hit {}, the partition was {}.",
            r.system,
            r.crash_host.as_deref().unwrap_or("nothing"),
            r.isolate_host.as_deref().unwrap_or("nothing"),
            r.partition_shape.as_deref().unwrap_or("none")
        );
    }
    let _ = writeln!(
        out,
        "\nUnavailable: the longest stretch with no successful iteration overlapping the fault \
         (cluster: no node succeeding; survivors: the worst of the nodes not hit). Back: from the \
         start or heal until the faulted host's node served again. No faults: the \
         whole seconds after the 2 s warm-up and before the first fault; p99 there is the median \
         of the per-second p99s."
    );
    out
}

/// The system a results folder ran (its system.txt, else the folder's name).
pub fn system_name(dir: &Path) -> String {
    std::fs::read_to_string(dir.join(SYSTEM_FILE))
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| dir.file_name().map(|n| n.to_string_lossy().to_string()))
        .unwrap_or_else(|| "run".into())
}

/// Where a table over several results folders goes: `out`, or else the first folder's parent
/// (created when missing).
pub fn output_folder(dirs: &[PathBuf], out: Option<&Path>) -> Result<PathBuf> {
    let out = match out {
        Some(o) => o.to_path_buf(),
        None => dirs
            .first()
            .and_then(|d| d.parent())
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf),
    };
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    Ok(out)
}

/// Reads the folders, prints the table, writes compare.md and compare.png; Ok(false) when
/// any run saw a consistency violation.
pub fn run(dirs: &[PathBuf], out: Option<&Path>) -> Result<bool> {
    if dirs.is_empty() {
        bail!("no results folders given");
    }
    let mut rows = Vec::new();
    let mut runs = Vec::new();
    for dir in dirs {
        let run = Run::load(dir).with_context(|| format!("results folder {}", dir.display()))?;
        let system = system_name(dir);
        rows.push(row(&system, &run));
        runs.push((system, run));
    }
    let out = output_folder(dirs, out)?;
    let text = markdown(&rows);
    let mut md = String::from("# Side by side: the same load and faults\n\n");
    md.push_str(&text);
    md.push('\n');
    for dir in dirs {
        let _ = writeln!(
            md,
            "- {}: {}/report.md, {}/throughput.png",
            system_name(dir),
            dir.display(),
            dir.display()
        );
    }
    let _ = writeln!(md, "\n![throughput, side by side](compare.png)");
    std::fs::write(out.join("compare.md"), &md)?;
    crate::results::write_summary(
        &out,
        &crate::results::Summary::Compare {
            provenance: crate::results::Provenance::here(&crate::results::command()),
            rows: rows.clone(),
        },
    )?;
    println!("{text}");
    plot::stacked_throughput(&out.join("compare.png"), &runs)?;
    println!("# wrote {0}/compare.md, {0}/compare.png", out.display());
    Ok(rows.iter().all(|r| r.violations == 0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Event;

    /// 20 s, 3 nodes, each succeeding every 10 ms unless `down(i, t_ms)`.
    fn synthetic(down: impl Fn(usize, u64) -> bool) -> Run {
        let mut run = crate::analysis::fixtures::synthetic(20, 3, down);
        run.summary = Some(crate::data::Summary {
            latency_us: perseus_model::load::Latency {
                p99: Some(7500),
                ..Default::default()
            },
            ..Default::default()
        });
        run
    }

    fn event(run: &Run, command: &str, host: &str, at_ms: i64) -> Event {
        crate::analysis::fixtures::event(run, command, host, at_ms - 5, at_ms)
    }

    #[test]
    fn a_leader_based_run_and_its_row() {
        // e2 killed at 6 s; everyone down until 7.5 s (election), e2 back at 10.2 s.
        // e3 isolated at 12 s: everyone down until 13.2 s, e3 until the heal at 16 s.
        let mut run = synthetic(|i, t| {
            (6000..7500).contains(&t)
                || (i == 1 && (6000..10200).contains(&t))
                || (12000..13200).contains(&t)
                || (i == 2 && (12000..16100).contains(&t))
        });
        run.events = vec![
            event(&run, "kill", "e2", 6000),
            event(&run, "start", "e2", 10000),
            event(&run, "isolate", "e3", 12000),
            event(&run, "heal", "e3", 16000),
        ];
        let r = row("etcd", &run);
        assert_eq!(r.crash_host.as_deref(), Some("e2"));
        assert_eq!(r.isolate_host.as_deref(), Some("e3"));
        // Last success 5.995 s, next 7.505 s.
        assert_eq!(r.crash_cluster_ms, Some(1510.0));
        assert_eq!(r.crash_survivors_ms, Some(1510.0));
        assert_eq!(r.isolate_cluster_ms, Some(1210.0));
        assert_eq!(r.isolate_survivors_ms, Some(1210.0));
        // How soon each faulted node served again after its start and its heal.
        assert_eq!(r.crash_back_ms, Some(210.0));
        assert_eq!(r.isolate_back_ms, Some(110.0));
        // Seconds 3..6 (whole seconds from 2 s to the kill at 6 s): 300/s.
        assert_eq!(r.baseline_per_s, Some(300.0));
        // p99 of seconds 3, 4, 5, 6 = 3, 4, 5, 6 ms: median 4.5.
        assert_eq!(r.baseline_p99_ms, Some(4.5));
        assert_eq!(r.run_p99_ms, Some(7.5));
        assert_eq!(r.violations, 0);
        let md = markdown(&[r]);
        assert!(
            md.contains(
                "| etcd | 1510 | 1510 | 210 | 1210 | 1210 | 110 | – | – | 300 | 4.5 | 7.5 | 0 |"
            ),
            "{md}"
        );
        assert!(md.contains("the crash hit e2, the isolation hit e3"));
    }

    #[test]
    fn a_run_without_faults_has_dashes() {
        let run = synthetic(|_, _| false);
        let r = row("quiet", &run);
        assert_eq!(r.crash_cluster_ms, None);
        assert_eq!(r.baseline_per_s, Some(300.0));
        assert!(markdown(&[r]).contains("| quiet | – | – | – | – | – | – | – | – | 300 |"));
    }

    #[test]
    fn medians() {
        assert_eq!(median(vec![]), None);
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![4.0, 1.0]), Some(2.5));
    }
}
