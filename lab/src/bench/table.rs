//! The `make bench` table and the summary `lab results` keeps, from the levels read.

use std::fmt::Write as _;

use super::Level;

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
