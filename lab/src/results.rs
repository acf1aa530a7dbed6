//! `lab results`: the one page of current results (`docs/results.md`), regenerated from the
//! runs. Every `lab compare`, `lab matrix` and `lab bench` leaves a small `summary.json` in
//! its results folder: what it measured, with where and when (date, machine, commit) and the
//! command that reproduces it. `lab results` folds every such summary under `results/` into a
//! checked-in store (`docs/results/{compare,matrix,bench}.json`: the newest figures for each
//! system, each fault, each set of systems benched together), so that the page can be
//! regenerated on a clean checkout where `results/` is empty, and then writes the page from
//! the store. Sections written by hand or by other tools (`docs/results/*.md`: each carries
//! its own date and command) are included verbatim after the tables, in name order.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::figures::{Group, Row, Stats};

/// Where and when figures were measured, and how to measure them again.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    /// UTC, `2026-12-07 15:04`.
    pub date: String,
    /// `2 cores (…), 24 GB`.
    pub machine: String,
    /// `abc1234`, with ` (with local changes)` when the tree was not clean.
    pub commit: String,
    /// The command that produced the figures (`make compare SYSTEMS="perseus etcd"`).
    pub command: String,
}

impl Provenance {
    /// This machine, now, the checkout's commit, and `command`.
    pub fn here(command: &str) -> Provenance {
        Provenance {
            date: chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(),
            machine: machine(),
            commit: commit(),
            command: command.to_string(),
        }
    }

    /// One line under a table.
    fn line(&self) -> String {
        format!(
            "Measured {} on {}, commit {}: `{}`.",
            self.date, self.machine, self.commit, self.command
        )
    }
}

/// The command that measured: `$LAB_COMMAND` (the make target, set by the scripts), else
/// this program's own command line.
pub fn command() -> String {
    std::env::var("LAB_COMMAND")
        .ok()
        .filter(|c| !c.trim().is_empty())
        .unwrap_or_else(|| {
            std::iter::once("lab".to_string())
                .chain(std::env::args().skip(1))
                .collect::<Vec<_>>()
                .join(" ")
        })
}

fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, m)| m.trim().to_string());
    let memory_gb = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map(|kb| kb / 1_048_576.0);
    let mut text = format!("{cores} cores");
    if let Some(model) = model {
        let _ = write!(text, " ({model})");
    }
    if let Some(gb) = memory_gb {
        let _ = write!(text, ", {gb:.0} GB");
    }
    text
}

fn commit() -> String {
    let git = |args: &[&str]| std::process::Command::new("git").args(args).output();
    let hash = git(&["rev-parse", "--short", "HEAD"])
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    let dirty = git(&["diff", "--quiet", "HEAD"])
        .map(|o| !o.status.success())
        .unwrap_or(false);
    if dirty {
        format!("{hash} (with local changes)")
    } else {
        hash
    }
}

/// One system's row of a comparison, and where it was measured.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CompareEntry {
    pub provenance: Provenance,
    pub row: Row,
}

/// One system × fault of a matrix.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MatrixEntry {
    pub provenance: Provenance,
    pub group: Group,
}

/// One system at one load level of a bench.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BenchLine {
    pub system: String,
    pub connections: u32,
    pub rounds: usize,
    /// The median round's iterations/s, and the range of all rounds.
    pub per_s: f64,
    pub per_s_min: f64,
    pub per_s_max: f64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

/// One bench run: the systems measured together (their ratios are paired).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BenchEntry {
    pub provenance: Provenance,
    pub systems: Vec<String>,
    pub lines: Vec<BenchLine>,
}

/// What a run's `summary.json` holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Summary {
    Compare {
        provenance: Provenance,
        rows: Vec<Row>,
    },
    Matrix {
        provenance: Provenance,
        groups: Vec<Group>,
    },
    Bench(BenchEntry),
}

impl Summary {
    fn provenance(&self) -> &Provenance {
        match self {
            Summary::Compare { provenance, .. } | Summary::Matrix { provenance, .. } => provenance,
            Summary::Bench(b) => &b.provenance,
        }
    }
}

/// The file a run leaves its summary in.
pub const SUMMARY_FILE: &str = "summary.json";

/// Writes `dir/summary.json`.
pub fn write_summary(dir: &Path, summary: &Summary) -> Result<()> {
    let path = dir.join(SUMMARY_FILE);
    std::fs::write(&path, serde_json::to_string_pretty(summary)? + "\n")
        .with_context(|| format!("writing {}", path.display()))
}

/// The checked-in figures: the newest per key.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Store {
    /// By system.
    pub compare: BTreeMap<String, CompareEntry>,
    /// By `system fault`.
    pub matrix: BTreeMap<String, MatrixEntry>,
    /// By the systems benched together, joined by spaces.
    pub bench: BTreeMap<String, BenchEntry>,
}

fn read_json<T: for<'de> Deserialize<'de> + Default>(path: &Path) -> Result<T> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text).with_context(|| format!("{}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(T::default()),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    std::fs::write(path, serde_json::to_string_pretty(value)? + "\n")
        .with_context(|| format!("writing {}", path.display()))
}

impl Store {
    pub fn load(dir: &Path) -> Result<Store> {
        Ok(Store {
            compare: read_json(&dir.join("compare.json"))?,
            matrix: read_json(&dir.join("matrix.json"))?,
            bench: read_json(&dir.join("bench.json"))?,
        })
    }

    pub fn save(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        write_json(&dir.join("compare.json"), &self.compare)?;
        write_json(&dir.join("matrix.json"), &self.matrix)?;
        write_json(&dir.join("bench.json"), &self.bench)
    }

    /// Takes a run's figures in, replacing older ones of the same key (a newer run wins; an
    /// older one changes nothing).
    pub fn fold(&mut self, summary: &Summary) {
        let newer = |old: &Provenance| old.date <= summary.provenance().date;
        match summary {
            Summary::Compare { provenance, rows } => {
                for row in rows {
                    if self
                        .compare
                        .get(&row.system)
                        .is_none_or(|e| newer(&e.provenance))
                    {
                        self.compare.insert(
                            row.system.clone(),
                            CompareEntry {
                                provenance: provenance.clone(),
                                row: row.clone(),
                            },
                        );
                    }
                }
            }
            Summary::Matrix { provenance, groups } => {
                for group in groups {
                    let key = format!("{} {}", group.system, group.fault);
                    if self.matrix.get(&key).is_none_or(|e| newer(&e.provenance)) {
                        self.matrix.insert(
                            key,
                            MatrixEntry {
                                provenance: provenance.clone(),
                                group: group.clone(),
                            },
                        );
                    }
                }
            }
            Summary::Bench(entry) => {
                let key = entry.systems.join(" ");
                if self.bench.get(&key).is_none_or(|e| newer(&e.provenance)) {
                    self.bench.insert(key, entry.clone());
                }
            }
        }
    }
}

/// Every `summary.json` one level under `results`, oldest first.
fn summaries(results: &Path) -> Result<Vec<(PathBuf, Summary)>> {
    let mut found = Vec::new();
    let entries = match std::fs::read_dir(results) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(found),
        Err(e) => return Err(e).with_context(|| format!("reading {}", results.display())),
    };
    for entry in entries.flatten() {
        let path = entry.path().join(SUMMARY_FILE);
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        match serde_json::from_str::<Summary>(&text) {
            Ok(summary) => found.push((path, summary)),
            Err(e) => eprintln!("lab results: skipping {}: {e}", path.display()),
        }
    }
    found.sort_by(|a, b| a.1.provenance().date.cmp(&b.1.provenance().date));
    Ok(found)
}

fn ms(v: Option<f64>) -> String {
    v.map_or("–".into(), |v| format!("{v:.0}"))
}

/// `median (p95, max)` of a matrix cell.
fn spread(s: &Stats) -> String {
    match (s.median, s.p95, s.max) {
        (Some(m), Some(p), Some(x)) if s.n > 1 => format!("{m:.0} ({p:.0}, {x:.0})"),
        (Some(m), _, _) => format!("{m:.0}"),
        _ => "–".into(),
    }
}

/// The provenance lines of some entries, each once.
fn sources<'a>(provenances: impl Iterator<Item = &'a Provenance>) -> String {
    let mut seen: Vec<&Provenance> = Vec::new();
    for p in provenances {
        if !seen.contains(&p) {
            seen.push(p);
        }
    }
    seen.iter().map(|p| format!("{}\n", p.line())).collect()
}

/// The order systems appear in: Perseus first (by its title in the systems' table, by its
/// name, or by the title older summaries carry), then by name.
fn system_order(a: &str, b: &str) -> std::cmp::Ordering {
    fn is_perseus(system: &str) -> bool {
        system == perseus_model::System::Perseus.title()
            || system == "Perseus (Gryadka/CASPaxos)"
            || system.starts_with("perseus")
    }
    (!is_perseus(a), a).cmp(&(!is_perseus(b), b))
}

fn compare_section(out: &mut String, store: &Store) {
    let mut entries: Vec<&CompareEntry> = store.compare.values().collect();
    entries.sort_by(|a, b| system_order(&a.row.system, &b.row.system));
    let _ = writeln!(
        out,
        "## When the leader dies or is cut off\n\nThe same load (one client per node, each \
         on its own key) and the same faults on each system, one after the other: the leader \
         killed and started again, the leader isolated from its peers (its clients still reach \
         it) and healed, then a majorities-ring partition. Unavailable: the longest stretch \
         with no successful iteration (cluster: on no node; survivors: the worst node not \
         hit), exact to the millisecond.\n"
    );
    if entries.is_empty() {
        let _ = writeln!(out, "No comparison recorded yet: run `make compare`.\n");
        return;
    }
    let _ = writeln!(
        out,
        "| system | leader killed: cluster unavailable (ms) | survivors (ms) | leader cut off: cluster unavailable (ms) | survivors (ms) | majorities-ring: cluster (ms) | lost writes | violations | it/s without faults |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for e in &entries {
        let r = &e.row;
        let _ = writeln!(
            out,
            "| {} | **{}** | {} | **{}** | {} | {} | {} | {} | {} |",
            r.system,
            ms(r.crash_cluster_ms),
            ms(r.crash_survivors_ms),
            ms(r.isolate_cluster_ms),
            ms(r.isolate_survivors_ms),
            ms(r.partition_cluster_ms),
            r.lost_writes,
            r.violations,
            ms(r.baseline_per_s)
        );
    }
    let losers: Vec<String> = entries
        .iter()
        .filter(|e| e.row.lost_writes > 0)
        .map(|e| format!("{} ({})", e.row.system, e.row.lost_writes))
        .collect();
    let _ = writeln!(
        out,
        "\n**Who loses writes:** {}\n",
        if losers.is_empty() {
            "none of these systems lost an acknowledged write in these runs.".to_string()
        } else {
            format!(
                "{} lost acknowledged writes; the others none.",
                losers.join(", ")
            )
        }
    );
    out.push_str(&sources(entries.iter().map(|e| &e.provenance)));
    out.push('\n');
}

/// The measures the page shows of a matrix (of the six; all are in each run's matrix.md).
const MATRIX_MEASURES: [&str; 4] = [
    "downtime",
    "partial downtime",
    "disturbance",
    "recovery time",
];

fn matrix_section(out: &mut String, store: &Store) {
    let mut entries: Vec<&MatrixEntry> = store.matrix.values().collect();
    if entries.is_empty() {
        return;
    }
    entries.sort_by(|a, b| {
        system_order(&a.group.system, &b.group.system).then(a.group.fault.cmp(&b.group.fault))
    });
    let _ = writeln!(
        out,
        "## Many runs of each fault: medians and spreads\n\nEach run on a fresh cluster, the \
         fault hitting the leader at a random moment for 8 s. Each cell: median (p95, max) \
         over N runs, in ms. Downtime: no node succeeding; partial downtime: at most one; \
         disturbance: until all nodes but one are steady again; recovery time: from the \
         start/heal/resume until every node is steady (definitions: [matrix.md](matrix.md)).\n"
    );
    let _ = writeln!(
        out,
        "| system | fault | N | {} | violations |",
        MATRIX_MEASURES
            .iter()
            .map(|m| format!("{m} (ms)"))
            .collect::<Vec<_>>()
            .join(" | ")
    );
    let _ = writeln!(
        out,
        "|---|---|---:|{}---:|",
        "---:|".repeat(MATRIX_MEASURES.len())
    );
    for e in &entries {
        let g = &e.group;
        let cells: Vec<String> = MATRIX_MEASURES
            .iter()
            .map(|name| {
                g.measures
                    .iter()
                    .find(|(n, _)| n == name)
                    .map_or("–".into(), |(_, s)| spread(s))
            })
            .collect();
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} |",
            g.system,
            g.fault,
            g.runs,
            cells.join(" | "),
            g.violations
        );
    }
    out.push('\n');
    out.push_str(&sources(entries.iter().map(|e| &e.provenance)));
    out.push('\n');
}

fn bench_section(out: &mut String, store: &Store) {
    if store.bench.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "## Throughput without faults, and the ratios\n\nIterations per second (median round, \
         with the range of the rounds) at each number of connections per node; the systems \
         took turns, so the ratio to the first system compares runs seconds apart.\n"
    );
    for entry in store.bench.values() {
        let Some(first) = entry.systems.first() else {
            continue;
        };
        let mut levels: Vec<u32> = entry.lines.iter().map(|l| l.connections).collect();
        levels.sort_unstable();
        levels.dedup();
        let _ = writeln!(
            out,
            "| conn/node | {} |",
            entry
                .systems
                .iter()
                .map(|s| format!("{s} it/s (range) | p99 ms"))
                .chain(
                    entry
                        .systems
                        .iter()
                        .skip(1)
                        .map(|s| format!("{s} / {first}"))
                )
                .collect::<Vec<_>>()
                .join(" | ")
        );
        let columns = entry.systems.len() * 2 + entry.systems.len().saturating_sub(1);
        let _ = writeln!(out, "|---:|{}", "---:|".repeat(columns));
        for c in levels {
            let line = |s: &str| {
                entry
                    .lines
                    .iter()
                    .find(|l| l.system == s && l.connections == c)
            };
            let mut cells: Vec<String> = Vec::new();
            for s in &entry.systems {
                match line(s) {
                    Some(l) => {
                        cells.push(format!(
                            "{:.0} ({:.0}–{:.0})",
                            l.per_s, l.per_s_min, l.per_s_max
                        ));
                        cells.push(l.p99_ms.map_or("–".into(), |v| format!("{v:.1}")));
                    }
                    None => cells.extend(["–".to_string(), "–".to_string()]),
                }
            }
            for s in entry.systems.iter().skip(1) {
                cells.push(match (line(s), line(first)) {
                    (Some(a), Some(b)) if b.per_s > 0.0 => format!("{:.2}", a.per_s / b.per_s),
                    _ => "–".into(),
                });
            }
            let _ = writeln!(out, "| {c} | {} |", cells.join(" | "));
        }
        let _ = writeln!(out, "\n{}", entry.provenance.line());
    }
    out.push('\n');
}

/// The page.
pub fn page(store: &Store, sections: &[(String, String)]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Results\n\n<!-- Written by `make results` (lab results) from the runs in results/ and \
         the figures kept in docs/results/; edit docs/results/*.md, not this file. -->\n\n\
         What the testbed measured, each table with its date, machine, commit and the command \
         that measures it again. Earlier measurements, dated: [results-log.md](results-log.md).\n"
    );
    compare_section(&mut out, store);
    matrix_section(&mut out, store);
    bench_section(&mut out, store);
    for (_, text) in sections {
        out.push_str(text.trim_end());
        out.push_str("\n\n");
    }
    while out.ends_with("\n\n") {
        out.pop();
    }
    out
}

/// The hand-written sections: `dir/*.md` in name order.
fn sections(dir: &Path) -> Result<Vec<(String, String)>> {
    let mut found = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "md") {
                let text = std::fs::read_to_string(&path)
                    .with_context(|| format!("reading {}", path.display()))?;
                found.push((path.display().to_string(), text));
            }
        }
    }
    found.sort();
    Ok(found)
}

/// The longest the page may be, lines: one page, not a diary.
pub const MAX_LINES: usize = 250;

/// `lab results`: folds the summaries under `results` into the store in `data`, writes the
/// page to `out`. Fails when the page would exceed [`MAX_LINES`].
pub fn run(results: &Path, data: &Path, out: &Path) -> Result<()> {
    let mut store = Store::load(data)?;
    let found = summaries(results)?;
    for (path, summary) in &found {
        store.fold(summary);
        println!("# lab results: {}", path.display());
    }
    store.save(data)?;
    let text = page(&store, &sections(data)?);
    let lines = text.lines().count();
    if lines > MAX_LINES {
        bail!("the page would have {lines} lines (at most {MAX_LINES}): shorten docs/results/*.md");
    }
    std::fs::write(out, &text).with_context(|| format!("writing {}", out.display()))?;
    println!(
        "# wrote {} ({lines} lines) from {} run summaries and {}",
        out.display(),
        found.len(),
        data.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prov(date: &str) -> Provenance {
        Provenance {
            date: date.into(),
            machine: "2 cores".into(),
            commit: "abc1234".into(),
            command: "make compare".into(),
        }
    }

    fn row(system: &str, crash: f64, lost: u64) -> Row {
        Row {
            system: system.into(),
            crash_cluster_ms: Some(crash),
            lost_writes: lost,
            violations: lost,
            ..Row::default()
        }
    }

    #[test]
    fn newer_figures_replace_older_ones_per_system() {
        let mut store = Store::default();
        store.fold(&Summary::Compare {
            provenance: prov("2026-12-07 10:00 UTC"),
            rows: vec![row("etcd", 2000.0, 0), row("Sentinel", 3000.0, 3)],
        });
        store.fold(&Summary::Compare {
            provenance: prov("2026-12-07 12:00 UTC"),
            rows: vec![row("etcd", 1900.0, 0)],
        });
        // An older run folded later changes nothing.
        store.fold(&Summary::Compare {
            provenance: prov("2026-12-06 12:00 UTC"),
            rows: vec![row("etcd", 5.0, 0)],
        });
        assert_eq!(store.compare["etcd"].row.crash_cluster_ms, Some(1900.0));
        assert_eq!(store.compare.len(), 2);
        let page = page(&store, &[("x.md".into(), "## By hand\n\nkept.\n".into())]);
        assert!(page.contains("| etcd | **1900** |"), "{page}");
        assert!(
            page.contains("Sentinel (3) lost acknowledged writes"),
            "{page}"
        );
        assert!(page.contains("2026-12-07 12:00 UTC"));
        assert!(page.ends_with("kept.\n"), "{page}");
        assert!(page.lines().count() < MAX_LINES);
    }

    #[test]
    fn the_store_round_trips_through_its_files() {
        let dir = std::env::temp_dir().join(format!("perseus-results-{}", std::process::id()));
        let mut store = Store::default();
        store.fold(&Summary::Bench(BenchEntry {
            provenance: prov("2026-12-07 10:00 UTC"),
            systems: vec!["etcd".into(), "etcd3".into()],
            lines: vec![
                BenchLine {
                    system: "etcd".into(),
                    connections: 1,
                    rounds: 3,
                    per_s: 800.0,
                    per_s_min: 700.0,
                    per_s_max: 900.0,
                    p50_ms: Some(3.0),
                    p99_ms: Some(9.0),
                },
                BenchLine {
                    system: "etcd3".into(),
                    connections: 1,
                    rounds: 3,
                    per_s: 720.0,
                    per_s_min: 700.0,
                    per_s_max: 750.0,
                    p50_ms: Some(3.2),
                    p99_ms: Some(8.0),
                },
            ],
        }));
        store.save(&dir).unwrap();
        assert_eq!(Store::load(&dir).unwrap(), store);
        let page = page(&store, &[]);
        assert!(
            page.contains("| 1 | 800 (700–900) | 9.0 | 720 (700–750) | 8.0 | 0.90 |"),
            "{page}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
