//! `lab matrix DIR`: the results of a matrix (scripts/matrix.sh: every system × every fault ×
//! N runs) as distributions. Reads every finished run under `DIR/runs/` (a `lab run` folder
//! with the `matrix-run.json` the script wrote and its `done` marker), takes the six measures
//! of the run's fault, and writes `matrix.md` (per system and fault: median, p95 and max over
//! the runs, with N; throughput during and after the fault; violations), `matrix.json` (every
//! run's figures) and `matrix.png` (one strip per system and fault for each measure).

use std::fmt::Write;
use std::path::{Path, PathBuf};

use crate::analysis::Subject;
use crate::data::Run;
use crate::figures::{Group, Plan, RunFigures, Stats};
use crate::measures;
use crate::{impact, plot, report};
use anyhow::{bail, Context, Result};

const PLAN_FILE: &str = "matrix-run.json";
const DONE_FILE: &str = "done";

/// The figures of one run folder.
pub fn figures(matrix_dir: &Path, dir: &Path) -> Result<RunFigures> {
    let plan: Plan = serde_json::from_str(
        &std::fs::read_to_string(dir.join(PLAN_FILE))
            .with_context(|| format!("reading {}/{PLAN_FILE}", dir.display()))?,
    )
    .with_context(|| format!("{}/{PLAN_FILE}", dir.display()))?;
    let exit = std::fs::read_to_string(dir.join(DONE_FILE))
        .ok()
        .and_then(|s| s.trim().parse().ok());
    let run = Run::load(dir)?;
    let reports = impact::analyse(&run);
    let report = reports
        .iter()
        .find(|r| r.fault.kind.to_string() == plan.fault);
    let cluster = report.and_then(|r| r.impacts.iter().find(|i| i.subject == Subject::Cluster));
    let violations = run.violation_count();
    let quiet = report.map(|r| {
        let (from, to) = measures::quiet_window(r.fault.begin_ms);
        measures::downtimes(&run, from, to)
    });
    Ok(RunFigures {
        quiet_downtime_ms: quiet.map(|q| q.0),
        quiet_partial_downtime_ms: quiet.map(|q| q.1),
        dir: dir
            .strip_prefix(matrix_dir)
            .unwrap_or(dir)
            .display()
            .to_string(),
        host: report.map(|r| r.fault.host.to_string()),
        exit,
        measures: report.map(|r| r.measures.clone()),
        baseline_per_s: cluster.and_then(|c| c.baseline_per_s),
        during_per_s: cluster.and_then(|c| c.during_per_s),
        after_per_s: cluster.and_then(|c| c.after_per_s),
        violations,
        plan,
    })
}

fn pct(v: Option<f64>, base: Option<f64>) -> Option<f64> {
    match (v, base) {
        (Some(v), Some(b)) if b > 0.0 => Some(100.0 * v / b),
        _ => None,
    }
}

/// Groups runs by system and fault, in the order they first appear.
pub fn groups(runs: &[RunFigures]) -> Vec<Group> {
    let mut keys: Vec<(String, String)> = Vec::new();
    for r in runs {
        let key = (r.plan.system.clone(), r.plan.fault.clone());
        if !keys.contains(&key) {
            keys.push(key);
        }
    }
    keys.into_iter()
        .map(|(system, fault)| {
            let mine: Vec<&RunFigures> = runs
                .iter()
                .filter(|r| r.plan.system == system && r.plan.fault == fault)
                .collect();
            let measures = measures::NAMES
                .iter()
                .enumerate()
                .map(|(k, name)| {
                    let values: Vec<Option<f64>> = mine
                        .iter()
                        .map(|r| r.measures.as_ref().and_then(|m| m.values()[k]))
                        .collect();
                    (name.to_string(), Stats::of(&values))
                })
                .collect();
            let during: Vec<Option<f64>> = mine
                .iter()
                .map(|r| pct(r.during_per_s, r.baseline_per_s))
                .collect();
            let after: Vec<Option<f64>> = mine
                .iter()
                .map(|r| pct(r.after_per_s, r.baseline_per_s))
                .collect();
            let quiet = |f: fn(&RunFigures) -> Option<f64>| -> Stats {
                Stats::of(&mine.iter().map(|r| f(r)).collect::<Vec<_>>())
            };
            Group {
                quiet_downtime: quiet(|r| r.quiet_downtime_ms),
                quiet_partial_downtime: quiet(|r| r.quiet_partial_downtime_ms),
                runs: mine.len(),
                measures,
                during_pct: Stats::of(&during),
                after_pct: Stats::of(&after),
                violations: mine.iter().map(|r| r.violations).sum(),
                failed_runs: mine.iter().filter(|r| r.exit != Some(0)).count(),
                system,
                fault,
            }
        })
        .collect()
}

fn cell(s: &Stats) -> String {
    cell_with(s, "never")
}

/// A cell whose missing runs are called `missing` (a measure "never" happened; a throughput
/// window did not fit in the run).
fn cell_with(s: &Stats, missing: &str) -> String {
    let v = |x: Option<f64>| x.map_or("–".to_string(), |x| format!("{x:.0}"));
    let mut text = if s.n == 0 {
        "–".to_string()
    } else {
        format!("{} / {} / {}", v(s.median), v(s.p95), v(s.max))
    };
    if s.missing > 0 {
        let _ = write!(text, " ({} {missing})", s.missing);
    }
    text
}

/// The Markdown table of the groups, with the notes under it.
pub fn markdown(groups: &[Group]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| system | fault | N | {} | throughput during (%) | after (%) | without faults: downtime / partial (ms, median) | violations |",
        measures::NAMES
            .iter()
            .map(|n| format!("{n} (ms)"))
            .collect::<Vec<_>>()
            .join(" | ")
    );
    let _ = writeln!(
        out,
        "|---|---|---:|{}---:|---:|---:|---:|",
        "---:|".repeat(measures::NAMES.len())
    );
    for g in groups {
        let cells: Vec<String> = g.measures.iter().map(|(_, s)| cell(s)).collect();
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} / {} | {} |",
            g.system,
            g.fault,
            g.runs,
            cells.join(" | "),
            cell_with(&g.during_pct, "n/a"),
            cell_with(&g.after_pct, "n/a"),
            report::opt_ms(g.quiet_downtime.median),
            report::opt_ms(g.quiet_partial_downtime.median),
            g.violations
        );
    }
    let _ = writeln!(
        out,
        "\nEach cell: median / p95 / max over the N runs (p95 by nearest rank: with fewer than 20 \
         runs it is the max); \"k never\": runs where the measure does not exist (the nodes never \
         became steady before the run ended); \"k n/a\": runs whose throughput window did not \
         fit in the run. Definitions: docs/matrix.md. Throughput: cluster \
         iterations/s during the fault and in the 5 s after the recovery, relative to the 5 s \
         before the fault. Without faults: the downtime and partial downtime measured the same \
         way over those 5 s before the fault, the floor the load leaves on this machine."
    );
    let failed: Vec<String> = groups
        .iter()
        .filter(|g| g.failed_runs > 0)
        .map(|g| format!("{} {}: {}", g.system, g.fault, g.failed_runs))
        .collect();
    if !failed.is_empty() {
        let _ = writeln!(
            out,
            "\nRuns whose `lab run` failed (chaos step, load generator or violations; their \
             figures are included, see each run's folder): {}.",
            failed.join(", ")
        );
    }
    out
}

/// The finished run folders under `dir/runs`, in name order.
fn finished_runs(dir: &Path) -> Result<Vec<PathBuf>> {
    let runs = dir.join("runs");
    let mut found: Vec<PathBuf> = std::fs::read_dir(&runs)
        .with_context(|| format!("reading {}", runs.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join(DONE_FILE).exists() && p.join(PLAN_FILE).exists())
        .collect();
    found.sort();
    Ok(found)
}

/// Writes matrix.md, matrix.json and matrix.png for `dir`; Ok(false) when a run saw a
/// consistency violation.
pub fn run(dir: &Path) -> Result<bool> {
    let mut runs = Vec::new();
    for run_dir in finished_runs(dir)? {
        match figures(dir, &run_dir) {
            Ok(f) => runs.push(f),
            Err(e) => eprintln!("lab matrix: skipping {}: {e:#}", run_dir.display()),
        }
    }
    if runs.is_empty() {
        bail!("no finished runs under {}/runs", dir.display());
    }
    runs.sort_by_key(|r| (r.plan.system.clone(), r.plan.fault.clone(), r.plan.run));
    let groups = groups(&runs);
    let table = markdown(&groups);
    let header = std::fs::read_to_string(dir.join("header.md")).unwrap_or_default();
    let mut md = format!("# Matrix: every system × every fault\n\n{header}\n{table}\n");
    let _ = writeln!(md, "![the six measures, run by run](matrix.png)\n");
    let _ = writeln!(md, "## Runs\n");
    let _ = writeln!(
        md,
        "| system | fault | run | fault at (s) | host | {} | exit | report |",
        measures::NAMES.join(" | ")
    );
    let _ = writeln!(
        md,
        "|---|---|---:|---:|---|{}---:|---|",
        "---:|".repeat(measures::NAMES.len())
    );
    for r in &runs {
        let values: Vec<String> = match &r.measures {
            Some(m) => m.values().iter().map(|v| report::opt_ms(*v)).collect(),
            None => vec!["no fault".into(); measures::NAMES.len()],
        };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {:.1} | {} | {} | {} | [report]({dir}/report.md), [throughput]({dir}/throughput.png) |",
            r.plan.system,
            r.plan.fault,
            r.plan.run,
            r.plan.at_s,
            r.host.as_deref().unwrap_or("–"),
            values.join(" | "),
            r.exit.map_or("–".into(), |e| e.to_string()),
            dir = r.dir,
        );
    }
    std::fs::write(dir.join("matrix.md"), &md)?;
    let json = serde_json::json!({ "groups": groups, "runs": runs });
    std::fs::write(
        dir.join("matrix.json"),
        serde_json::to_string_pretty(&json)? + "\n",
    )?;
    crate::results::write_summary(
        dir,
        &crate::results::Summary::Matrix {
            provenance: crate::results::Provenance::here(&crate::results::command()),
            groups: groups.clone(),
        },
    )?;
    println!("{table}");
    match plot::distributions(&dir.join("matrix.png"), &runs) {
        Ok(()) => println!(
            "# wrote {0}/matrix.md, {0}/matrix.json, {0}/matrix.png",
            dir.display()
        ),
        Err(e) => {
            eprintln!("lab matrix: plot not drawn: {e:#}");
            println!("# wrote {0}/matrix.md, {0}/matrix.json", dir.display());
        }
    }
    Ok(runs.iter().all(|r| r.violations == 0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measures::Measures;

    fn figures(
        system: &str,
        fault: &str,
        run: u32,
        downtime: f64,
        recovery: Option<f64>,
    ) -> RunFigures {
        RunFigures {
            plan: Plan {
                system: system.into(),
                fault: fault.into(),
                run,
                seed: 1,
                at_s: 8.0,
                hold_s: 8.0,
            },
            dir: format!("runs/{system}-{fault}-{run}"),
            host: Some("e1".into()),
            exit: Some(0),
            measures: Some(Measures {
                downtime_ms: downtime,
                partial_downtime_ms: downtime,
                disturbance_ms: Some(downtime),
                recovery_downtime_ms: Some(0.0),
                recovery_partial_downtime_ms: Some(0.0),
                recovery_time_ms: recovery,
                outage_gap_ms: 100.0,
            }),
            quiet_downtime_ms: Some(10.0),
            quiet_partial_downtime_ms: Some(20.0),
            baseline_per_s: Some(300.0),
            during_per_s: Some(150.0),
            after_per_s: Some(300.0),
            violations: 0,
        }
    }

    #[test]
    fn stats_median_p95_max() {
        let s = Stats::of(&[Some(3.0), Some(1.0), None, Some(2.0)]);
        assert_eq!(s.n, 3);
        assert_eq!(s.median, Some(2.0));
        assert_eq!(s.p95, Some(3.0));
        assert_eq!(s.max, Some(3.0));
        assert_eq!(s.missing, 1);
        let many: Vec<Option<f64>> = (1..=40).map(|v| Some(v as f64)).collect();
        let s = Stats::of(&many);
        assert_eq!(s.median, Some(20.5));
        assert_eq!(s.p95, Some(38.0));
        assert_eq!(Stats::of(&[]).median, None);
    }

    #[test]
    fn groups_per_system_and_fault_in_the_table() {
        let runs = vec![
            figures("etcd", "kill", 1, 1000.0, Some(2000.0)),
            figures("etcd", "kill", 2, 1500.0, None),
            figures("etcd", "kill", 3, 2500.0, Some(3000.0)),
            figures("perseus", "kill", 1, 12.0, Some(900.0)),
        ];
        let g = groups(&runs);
        assert_eq!(g.len(), 2);
        assert_eq!(g[0].runs, 3);
        assert_eq!(g[0].measures[0].1.median, Some(1500.0));
        assert_eq!(g[0].measures[5].1.missing, 1);
        assert_eq!(g[0].during_pct.median, Some(50.0));
        let md = markdown(&g);
        assert!(
            md.contains("| etcd | kill | 3 | 1500 / 2500 / 2500 | "),
            "{md}"
        );
        assert!(md.contains("2500 / 3000 / 3000 (1 never)"), "{md}");
        assert!(md.contains("| perseus | kill | 1 | 12 / 12 / 12 |"), "{md}");
        assert!(
            md.contains("| 50 / 50 / 50 | 100 / 100 / 100 | 10 / 20 | 0 |"),
            "{md}"
        );
    }
}
