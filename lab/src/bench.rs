//! The table of `make bench`: one line per load level (connections per node) from each run's
//! `start` and `summary` records — iterations/s, the ratio to the first level, and iteration
//! latency percentiles — then where the time went, from the costs scripts/bench.sh measured
//! around each level (a `NAME.costs` file next to `NAME.jsonl`, `key value` lines): the CPU
//! share of the nodes, the Redis acceptors, the etcd members and the load generator, the CPU
//! time per iteration, and the Redis calls and fsyncs per iteration; with several systems, the
//! ratio of each to the first at every level and at each one's best level. A level run several
//! times (rounds) is shown by its median round, with the range of all rounds' rates, and a
//! ratio by the range of the paired rounds' ratios too.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use perseus_model::load::{self, Record, Start, Summary};

/// What scripts/bench.sh counted around one level: counter deltas by name (`wall_ns`,
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

/// The CPU counters of the groups that run for a system under test: the nodes, the Redis
/// acceptors, the etcd members and the load generator.
const CPU_GROUPS: [&str; 4] = [
    "cpu_nodes_ns",
    "cpu_redis_ns",
    "cpu_etcd_ns",
    "cpu_loadgen_ns",
];

fn ms(us: Option<u64>) -> f64 {
    us.map_or(f64::NAN, |us| us as f64 / 1000.0)
}

fn pct(v: Option<f64>) -> String {
    v.map_or("–".into(), |v| format!("{v:.0}%"))
}

fn per_iteration(v: Option<f64>, iterations: u64) -> String {
    match v {
        Some(v) if iterations > 0 => format!("{:.2}", v / iterations as f64),
        _ => "–".into(),
    }
}

/// The round shown for one system at one level: the median by iterations/s (the lower of
/// the middle two for an even count), with every round's rate.
struct Median<'a> {
    level: &'a Level,
    rates: Vec<f64>,
}

/// The systems of `levels`, each once, in the order first seen.
fn first_seen<'a>(levels: impl Iterator<Item = &'a Level>) -> Vec<&'a str> {
    let mut systems: Vec<&str> = Vec::new();
    for l in levels {
        if !systems.contains(&l.system.as_str()) {
            systems.push(&l.system);
        }
    }
    systems
}

/// One [`Median`] per system and connection count: systems in the order first seen, levels
/// by connections.
fn medians(levels: &[Level]) -> Vec<Median<'_>> {
    let systems = first_seen(levels.iter());
    let mut out = Vec::new();
    for system in systems {
        let mut connections: Vec<u32> = levels
            .iter()
            .filter(|l| l.system == system)
            .map(|l| l.start.connections)
            .collect();
        connections.sort_unstable();
        connections.dedup();
        for c in connections {
            let mut rounds: Vec<&Level> = levels
                .iter()
                .filter(|l| l.system == system && l.start.connections == c)
                .collect();
            rounds.sort_by(|a, b| a.summary.mean_per_s.total_cmp(&b.summary.mean_per_s));
            let rates = rounds.iter().map(|l| l.summary.mean_per_s).collect();
            out.push(Median {
                level: rounds[(rounds.len() - 1) / 2],
                rates,
            });
        }
    }
    out
}

/// The figures `lab results` keeps of a bench: per system and level, the median round's
/// rate with the range of all rounds, and its latency.
pub fn summary(levels: &[Level]) -> crate::results::BenchEntry {
    let lines = medians(levels)
        .iter()
        .map(|m| crate::results::BenchLine {
            system: m.level.system.clone(),
            connections: m.level.start.connections,
            rounds: m.rates.len(),
            per_s: m.level.summary.mean_per_s,
            per_s_min: m.rates.iter().copied().fold(f64::INFINITY, f64::min),
            per_s_max: m.rates.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            p50_ms: m.level.summary.latency_us.p50.map(|us| us as f64 / 1000.0),
            p99_ms: m.level.summary.latency_us.p99.map(|us| us as f64 / 1000.0),
        })
        .collect();
    crate::results::BenchEntry {
        provenance: crate::results::Provenance::here(&crate::results::command()),
        systems: first_seen(levels.iter())
            .into_iter()
            .map(String::from)
            .collect(),
        lines,
    }
}

/// The tables, levels grouped by system in the order first seen.
pub fn table(levels: &[Level]) -> String {
    let mut out = String::new();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let duration = levels.first().map_or(0.0, |l| l.start.duration_s);
    let nodes = levels.first().map_or(0, |l| l.start.nodes.len());
    let rows = medians(levels);
    let rounds = rows.iter().map(|m| m.rates.len()).max().unwrap_or(0);
    let _ = writeln!(
        out,
        "# bench on {cores} cores, {duration:.0} s per level{}, {nodes} nodes, no faults ({})",
        if rounds > 1 {
            format!(", median of {rounds} rounds (the systems taking turns)")
        } else {
            String::new()
        },
        chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ")
    );
    let systems = first_seen(rows.iter().map(|m| m.level));
    for system in &systems {
        let mine: Vec<&Median> = rows.iter().filter(|m| m.level.system == *system).collect();
        if systems.len() > 1 {
            let _ = writeln!(out, "\n## {system}");
        }
        let _ = writeln!(
            out,
            "{:<12} {:>8} {:>14} {:>8} {:>9} {:>9} {:>9}{}",
            "conn/node",
            "clients",
            "iterations/s",
            "ratio",
            "p50 ms",
            "p99 ms",
            "max ms",
            if rounds > 1 { "   rounds it/s" } else { "" }
        );
        let first = mine.first().map_or(0.0, |m| m.level.summary.mean_per_s);
        for m in &mine {
            let l = m.level;
            let c = l.start.connections;
            let rate = l.summary.mean_per_s;
            let lat = &l.summary.latency_us;
            let spread = match (m.rates.first(), m.rates.last()) {
                (Some(low), Some(high)) if m.rates.len() > 1 => format!("   {low:.0}-{high:.0}"),
                _ => String::new(),
            };
            let _ = writeln!(
                out,
                "{:<12} {:>8} {:>14.0} {:>7.2}x {:>9.2} {:>9.2} {:>9.2}{spread}",
                c,
                c as usize * l.start.nodes.len(),
                rate,
                if first > 0.0 { rate / first } else { 0.0 },
                ms(lat.p50),
                ms(lat.p99),
                ms(lat.max)
            );
        }
        if mine.iter().any(|m| m.level.costs.is_some()) {
            let _ = writeln!(
                out,
                "where the time goes (CPU: % of all {cores} cores over the level, stolen: taken by \
                 the hypervisor for other guests; per iteration: the CPU time of the system and \
                 the load generator together, Redis script calls, Redis commands run (inside \
                 scripts too), fsyncs):"
            );
            let _ = writeln!(
                out,
                "{:<12} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>10} {:>10} {:>9} {:>10}",
                "conn/node",
                "nodes",
                "redis",
                "etcd",
                "loadgen",
                "stolen",
                "other",
                "cpu µs/it",
                "scripts/it",
                "cmds/it",
                "fsyncs/it"
            );
            for m in &mine {
                let l = m.level;
                let Some(c) = &l.costs else { continue };
                let [nodes, redis, etcd, loadgen] = CPU_GROUPS.map(|k| c.cpu_share(k));
                let steal = c.cpu_share("steal_ns");
                let shares = [nodes, redis, etcd, loadgen, steal];
                // What none of them used: idle time, the kernel, anything else on the machine.
                let idle = shares
                    .iter()
                    .any(Option::is_some)
                    .then(|| 100.0 - shares.iter().flatten().sum::<f64>());
                let it = l.summary.iterations;
                // What one iteration cost: tells a round that was slow for want of CPU time
                // (more CPU per iteration) from one that waited (the same CPU, more idle).
                let cpu_us = CPU_GROUPS
                    .iter()
                    .filter_map(|k| c.get(k))
                    .reduce(|a, b| a + b)
                    .map(|ns| ns / 1000.0);
                let _ = writeln!(
                    out,
                    "{:<12} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>10} {:>10} {:>9} {:>10}",
                    l.start.connections,
                    pct(nodes),
                    pct(redis),
                    pct(etcd),
                    pct(loadgen),
                    pct(steal),
                    pct(idle),
                    match cpu_us {
                        Some(us) if it > 0 => format!("{:.0}", us / it as f64),
                        _ => "–".into(),
                    },
                    per_iteration(c.get("redis_scripts"), it),
                    per_iteration(c.get("redis_calls"), it),
                    per_iteration(c.get("fsyncs"), it)
                );
            }
        }
    }
    if systems.len() > 1 {
        let shown: Vec<&Level> = rows.iter().map(|m| m.level).collect();
        ratios(&mut out, &shown, levels, &systems);
    }
    out
}

/// The range of the ratios of `base`'s rounds at `a` connections per node to `other`'s at `b`,
/// pairing rounds by their number (` (rounds 2.10-2.90x)`); nothing without two pairs.
fn paired(all: &[Level], base: &str, a: u32, other: &str, b: u32) -> String {
    let rate = |system: &str, c: u32, round: u32| {
        all.iter()
            .find(|l| l.system == system && l.start.connections == c && l.round == Some(round))
            .map(|l| l.summary.mean_per_s)
    };
    let mut ratios: Vec<f64> = all
        .iter()
        .filter(|l| l.system == base && l.start.connections == a)
        .filter_map(|l| {
            let round = l.round?;
            let theirs = rate(other, b, round)?;
            (theirs > 0.0).then(|| l.summary.mean_per_s / theirs)
        })
        .collect();
    ratios.sort_by(f64::total_cmp);
    match (ratios.first(), ratios.last()) {
        (Some(low), Some(high)) if ratios.len() > 1 => format!(" (rounds {low:.2}-{high:.2}x)"),
        _ => String::new(),
    }
}

/// Each system against the first one: per level (same connections per node) and at each
/// one's best level, with the range of the paired rounds' ratios.
fn ratios(out: &mut String, levels: &[&Level], all: &[Level], systems: &[&str]) {
    let base = systems[0];
    let rate = |system: &str, c: u32| {
        levels
            .iter()
            .find(|l| l.system == system && l.start.connections == c)
            .map(|l| l.summary.mean_per_s)
    };
    let best = |system: &str| {
        levels
            .iter()
            .filter(|l| l.system == system)
            .max_by(|a, b| a.summary.mean_per_s.total_cmp(&b.summary.mean_per_s))
    };
    let _ = writeln!(out, "\n## {base} against the others (iterations/s ratio)");
    let mut connections: Vec<u32> = levels.iter().map(|l| l.start.connections).collect();
    connections.sort_unstable();
    connections.dedup();
    for other in &systems[1..] {
        for &c in &connections {
            if let (Some(a), Some(b)) = (rate(base, c), rate(other, c)) {
                let ratio = if b > 0.0 { a / b } else { f64::INFINITY };
                let _ = writeln!(
                    out,
                    "{c:>3} conn/node: {base} {a:.0}/s, {other} {b:.0}/s: {ratio:.2}x{}",
                    paired(all, base, c, other, c)
                );
            }
        }
        if let (Some(a), Some(b)) = (best(base), best(other)) {
            let (ra, rb) = (a.summary.mean_per_s, b.summary.mean_per_s);
            let ratio = if rb > 0.0 { ra / rb } else { f64::INFINITY };
            let (ca, cb) = (a.start.connections, b.start.connections);
            let _ = writeln!(
                out,
                "best levels: {base} {ra:.0}/s at {ca}, {other} {rb:.0}/s at {cb}: {ratio:.2}x{}",
                paired(all, base, ca, other, cb)
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use perseus_model::load::Latency;

    fn level(c: u32, rate: f64) -> Level {
        Level {
            costs: None,
            system: "perseus".into(),
            round: None,
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
        assert!(!t.contains("where the time goes"), "{t}");
    }

    #[test]
    fn rounds_are_shown_by_their_median_and_range() {
        let mut e = level(1, 400.0);
        e.system = "etcd".into();
        let t = table(&[
            level(1, 900.0),
            e,
            level(1, 1200.0),
            level(1, 1000.0),
            level(4, 1500.0),
            level(4, 1400.0),
        ]);
        assert!(t.contains("median of 3 rounds"), "{t}");
        assert!(
            t.contains("1                   3           1000    1.00x      2.50      9.00     30.00   900-1200"),
            "{t}"
        );
        // two rounds: the lower of the middle two
        assert!(
            t.contains("4                  12           1400    1.40x"),
            "{t}"
        );
        assert!(
            t.contains("1 conn/node: perseus 1000/s, etcd 400/s: 2.50x"),
            "{t}"
        );
    }

    #[test]
    fn explains_the_costs_and_compares_systems() {
        let costs = Costs::parse(
            "system perseus\ncores 2\nwall_ns 10000000000\ncpu_nodes_ns 5000000000\n\
             cpu_redis_ns 4000000000\ncpu_loadgen_ns 3000000000\nsteal_ns 2000000000\n\
             redis_scripts 60000\n\
             redis_calls 240000\nfsyncs 30000\n",
        )
        .unwrap();
        let mut p = level(1, 1000.0);
        p.summary.iterations = 10_000;
        p.costs = Some(costs);
        let mut e = level(1, 400.0);
        e.system = "etcd".into();
        let mut e4 = level(4, 500.0);
        e4.system = "etcd".into();
        let t = table(&[p, e, e4]);
        // 5 s of CPU over 10 s on 2 cores: 25 %; 2 s stolen: 10 %; 6 scripts, 24 commands,
        // 3 fsyncs per iteration.
        // 12 s of CPU (nodes, Redis, load generator) over 10,000 iterations: 1200 µs each.
        assert!(
            t.contains("1                 25%      20%        –      15%      10%      30%       1200       6.00     24.00       3.00"),
            "{t}"
        );
        assert!(t.contains("## etcd"), "{t}");
        assert!(
            t.contains("1 conn/node: perseus 1000/s, etcd 400/s: 2.50x"),
            "{t}"
        );
        assert!(
            t.contains("best levels: perseus 1000/s at 1, etcd 500/s at 4: 2.00x"),
            "{t}"
        );
        assert!(Costs::parse("cores two\n").is_err());
        assert!(Costs::parse("lonely\n").is_err());
        assert_eq!(system_of(Path::new("r/etcd-16.jsonl")), "etcd");
        assert_eq!(system_of(Path::new("r/load-16.jsonl")), "perseus");
        assert_eq!(
            round_of(Path::new("r/perseus-full-rounds-16-r3.jsonl")),
            Some(3)
        );
        assert_eq!(round_of(Path::new("r/etcd-16.jsonl")), None);
    }

    #[test]
    fn paired_rounds_give_the_range_of_ratios() {
        let at = |system: &str, c: u32, round: u32, rate: f64| {
            let mut l = level(c, rate);
            l.system = system.into();
            l.round = Some(round);
            l
        };
        let t = table(&[
            at("perseus", 1, 1, 1000.0),
            at("etcd", 1, 1, 500.0),
            at("perseus", 1, 2, 1200.0),
            at("etcd", 1, 2, 400.0),
            at("perseus", 1, 3, 900.0),
            at("etcd", 1, 3, 450.0),
        ]);
        // medians 1000 / 450; rounds 2.00x, 3.00x, 2.00x
        assert!(
            t.contains("1 conn/node: perseus 1000/s, etcd 450/s: 2.22x (rounds 2.00-3.00x)"),
            "{t}"
        );
        assert!(t.contains("at 1: 2.22x (rounds 2.00-3.00x)"), "{t}");
        // one round each: no range
        let one = table(&[at("perseus", 1, 1, 1000.0), at("etcd", 1, 1, 500.0)]);
        assert!(one.contains("etcd 500/s: 2.00x\n"), "{one}");
    }
}
