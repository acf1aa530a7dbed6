//! The table of `make bench`: one line per load level (connections per node) from each run's
//! `start` and `summary` records — iterations/s, the ratio to the first level, and iteration
//! latency percentiles.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use perseus_model::load::{self, Record, Start, Summary};

/// One run of the bench: its settings and totals.
pub struct Level {
    pub start: Start,
    pub summary: Summary,
}

impl Level {
    /// Reads a loadgen `--out` file; fails when it has no start or no summary (cut short).
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
        match (start, summary) {
            (Some(start), Some(summary)) => Ok(Level { start, summary }),
            _ => bail!(
                "{}: no start or no summary record (the run was cut short?)",
                path.display()
            ),
        }
    }
}

fn ms(us: Option<u64>) -> f64 {
    us.map_or(f64::NAN, |us| us as f64 / 1000.0)
}

/// The table, in the order given.
pub fn table(levels: &[Level]) -> String {
    let mut out = String::new();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let duration = levels.first().map_or(0.0, |l| l.start.duration_s);
    let nodes = levels.first().map_or(0, |l| l.start.nodes.len());
    let _ = writeln!(
        out,
        "# bench on {cores} cores, {duration:.0} s per level, {nodes} nodes, no faults ({})",
        chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ")
    );
    let _ = writeln!(
        out,
        "{:<12} {:>8} {:>14} {:>8} {:>9} {:>9} {:>9}",
        "conn/node", "clients", "iterations/s", "ratio", "p50 ms", "p99 ms", "max ms"
    );
    let first = levels.first().map_or(0.0, |l| l.summary.mean_per_s);
    for l in levels {
        let c = l.start.connections;
        let rate = l.summary.mean_per_s;
        let lat = &l.summary.latency_us;
        let _ = writeln!(
            out,
            "{:<12} {:>8} {:>14.0} {:>7.2}x {:>9.2} {:>9.2} {:>9.2}",
            c,
            c as usize * l.start.nodes.len(),
            rate,
            if first > 0.0 { rate / first } else { 0.0 },
            ms(lat.p50),
            ms(lat.p99),
            ms(lat.max)
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use perseus_model::load::Latency;

    fn level(c: u32, rate: f64) -> Level {
        Level {
            start: Start {
                connections: c,
                nodes: vec!["a".into(), "b".into(), "c".into()],
                duration_s: 20.0,
                ..Default::default()
            },
            summary: Summary {
                mean_per_s: rate,
                latency_us: Latency {
                    p50: Some(2500),
                    p99: Some(9000),
                    max: Some(30_000),
                    ..Default::default()
                },
                ..Default::default()
            },
        }
    }

    #[test]
    fn ratios_to_the_first_level() {
        let t = table(&[level(1, 700.0), level(4, 1400.0)]);
        assert!(t.contains("20 s per level, 3 nodes"), "{t}");
        assert!(
            t.contains(
                "1                   3            700    1.00x      2.50      9.00     30.00"
            ),
            "{t}"
        );
        assert!(
            t.contains("4                  12           1400    2.00x"),
            "{t}"
        );
    }
}
