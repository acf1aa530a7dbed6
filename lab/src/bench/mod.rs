//! The table of `make bench`: one line per load level (connections per node) from each run's
//! `start` and `summary` records — iterations/s, the ratio to the first level, and iteration
//! latency percentiles — then where the time went, from the costs `lab bench-costs` measured
//! around each level (a `NAME.costs` file next to `NAME.jsonl`, `key value` lines): the CPU
//! share of the nodes, the Redis acceptors, the etcd members and the load generator, the CPU
//! time per iteration, and the Redis calls and fsyncs per iteration; with several systems, the
//! ratio of each to the first at every level and at each one's best level. A level run several
//! times (rounds) is shown by its median round, with the range of all rounds' rates, and a
//! ratio by the range of the paired rounds' ratios too.
//!
//! Layout: this file reads a level (its records and its costs); `measure.rs` counts the costs
//! on the machine and in the containers (scripts/bench.sh only takes turns and runs the
//! load); `table.rs` writes the table and the summary `lab results` keeps.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use perseus_model::load::{self, Record, Start, Summary};

mod measure;
mod table;
#[cfg(test)]
mod tests;

pub use measure::{costs, Counters};
pub use table::{summary, table};

/// What `lab bench-costs` counted around one level: counter deltas by name (`wall_ns`,
/// `cores`, `cpu_nodes_ns`, `cpu_redis_ns`, `cpu_etcd_ns`, `cpu_loadgen_ns`, `steal_ns`, `redis_scripts`,
/// `redis_calls`, `fsyncs`) and the system's name.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Costs {
    pub system: Option<String>,
    pub counters: BTreeMap<String, f64>,
}

impl Costs {
    /// Parses `key value` lines; a line that is not one is an error naming it.
    pub fn parse(text: &str) -> Result<Costs> {
        let mut costs = Costs::default();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((key, value)) = line.split_once(char::is_whitespace) else {
                bail!("line {}: not `key value`: {line:?}", i + 1);
            };
            let value = value.trim();
            if key == "system" {
                costs.system = Some(value.to_string());
                continue;
            }
            let number: f64 = value
                .parse()
                .with_context(|| format!("line {}: {key}: {value:?} is not a number", i + 1))?;
            costs.counters.insert(key.to_string(), number);
        }
        Ok(costs)
    }

    fn get(&self, key: &str) -> Option<f64> {
        self.counters.get(key).copied()
    }

    /// The share of the machine (all cores over the level's wall time) a CPU counter took, %.
    fn cpu_share(&self, key: &str) -> Option<f64> {
        let (ns, wall, cores) = (self.get(key)?, self.get("wall_ns")?, self.get("cores")?);
        (wall > 0.0 && cores > 0.0).then(|| 100.0 * ns / (wall * cores))
    }
}

/// One run of the bench: its settings and totals, and what it cost when measured.
pub struct Level {
    pub start: Start,
    pub summary: Summary,
    pub costs: Option<Costs>,
    /// The system it ran on: the costs' `system`, else the file name's part before `-`.
    pub system: String,
    /// Which round it was (the file name's `-rN` ending), when the bench ran several: rounds
    /// of two systems with the same number ran seconds apart, so their ratio is paired.
    pub round: Option<u32>,
}

impl Level {
    /// Reads a loadgen `--out` file; fails when it has no start or no summary (cut short).
    /// Reads `NAME.costs` next to it when present.
    pub fn load(path: &PathBuf) -> Result<Level> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let mut start = None;
        let mut summary = None;
        for record in
            load::parse_lines::<Record>(&text).with_context(|| path.display().to_string())?
        {
            match record {
                Record::Start(s) => start = Some(s),
                Record::Summary(s) => summary = Some(s),
                _ => {}
            }
        }
        let costs_path = path.with_extension("costs");
        let costs = match std::fs::read_to_string(&costs_path) {
            Ok(text) => {
                Some(Costs::parse(&text).with_context(|| costs_path.display().to_string())?)
            }
            Err(_) => None,
        };
        let system = costs
            .as_ref()
            .and_then(|c| c.system.clone())
            .unwrap_or_else(|| system_of(path));
        match (start, summary) {
            (Some(start), Some(summary)) => Ok(Level {
                start,
                summary,
                costs,
                system,
                round: round_of(path),
            }),
            _ => bail!(
                "{}: no start or no summary record (the run was cut short?)",
                path.display()
            ),
        }
    }
}

/// `perseus-4.jsonl` → `perseus`; a name without a system part (`load-4.jsonl`) → `perseus`.
fn system_of(path: &Path) -> String {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_default();
    match stem.split_once('-') {
        Some((system, _)) if system != "load" => system.to_string(),
        _ => "perseus".into(),
    }
}

/// `perseus-4-r2.jsonl` → 2; a name without a round ending → none.
fn round_of(path: &Path) -> Option<u32> {
    let stem = path.file_stem()?.to_string_lossy().to_string();
    let (_, round) = stem.rsplit_once("-r")?;
    round.parse().ok()
}
