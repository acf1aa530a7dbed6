//! The bench table on hand-made levels: ratios, medians of rounds, costs, paired ratios.

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
        t.contains("1                   3            700    1.00x      2.50      9.00     30.00"),
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
