//! The history the load generator writes, against a real cluster on loopback (three
//! `redis-server` acceptors and three perseus nodes in-process): the counter loop's and the
//! register workload's histories are complete (every invocation completed, or unknown) and
//! linearizable, and the counter loop's final reads account for every acknowledged write.

mod common;

use std::time::Duration;

use common::SharedBuf;
use loadgen::config::{Config, KeyMode, Workload};
use perseus_history::{check_file, CheckOptions, Func, History, Outcome, Verdict};
use perseus_node::testing::{cluster, Node};

fn config(nodes: &[Node], tag: &str, dir: &std::path::Path) -> Config {
    let mut c = Config::new(nodes.iter().map(|n| n.url.clone()).collect());
    c.duration = Duration::from_secs(2);
    c.connections = 2;
    c.run_id = format!("{tag}-{}", loadgen::config::default_run_id());
    c.history = Some(dir.join(format!("{tag}.jsonl")));
    c
}

fn temp_dir(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("loadgen-history-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counter_loop_history_is_complete_and_linearizable() {
    let (_redis, nodes) = cluster().await;
    let dir = temp_dir("counter");
    let cfg = config(&nodes, "counter", &dir);
    let path = cfg.history.clone().expect("history path");
    let buf = SharedBuf::default();
    let res = loadgen::run(cfg, Box::new(buf.clone()), std::future::pending())
        .await
        .expect("run");
    let text = buf.text();
    assert_eq!(res.exit_code, 0, "{text}");
    assert!(text.contains("# history: "), "{text}");
    let report = check_file(&path, CheckOptions::default()).expect("check");
    assert_eq!(report.verdict, Verdict::Linearizable, "{report:#?}");
    assert_eq!(report.keys, 6);
    // every key's last read (the final read) holds every acknowledged write of the key and
    // nothing but acknowledged or unknown ones: acknowledged ≤ held ≤ acknowledged + unknown
    let h = History::read(std::io::BufReader::new(std::fs::File::open(&path).unwrap())).unwrap();
    for ops in &h.ops {
        let writes = |o: Outcome| {
            ops.iter()
                .filter(|x| x.f.is_write() && x.outcome == o)
                .count()
        };
        let (acked, unknown) = (writes(Outcome::Ok), writes(Outcome::Info));
        let last = ops
            .iter()
            .rev()
            .find(|o| o.f == Func::Read && o.outcome == Outcome::Ok)
            .expect("a final read");
        // the counter: created as 0, then one per increment
        let held = last.value.map_or(0, |v| v as usize + 1);
        assert!(
            acked <= held && held <= acked + unknown,
            "{acked} {held} {unknown}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_workload_history_is_linearizable() {
    let (_redis, nodes) = cluster().await;
    let dir = temp_dir("register");
    let mut cfg = config(&nodes, "register", &dir);
    cfg.workload = Workload::Register;
    cfg.keys = KeyMode::Shared(2);
    let path = cfg.history.clone().expect("history path");
    let buf = SharedBuf::default();
    let res = loadgen::run(cfg, Box::new(buf.clone()), std::future::pending())
        .await
        .expect("run");
    let text = buf.text();
    assert_eq!(res.exit_code, 0, "{text}");
    let report = check_file(&path, CheckOptions::default()).expect("check");
    assert_eq!(report.verdict, Verdict::Linearizable, "{report:#?}\n{text}");
    assert_eq!(report.keys, 2);
    let h = History::read(std::io::BufReader::new(std::fs::File::open(&path).unwrap())).unwrap();
    let all: Vec<_> = h.ops.iter().flatten().collect();
    for f in [Func::Read, Func::Write, Func::Cas] {
        assert!(
            all.iter().any(|o| o.f == f && o.outcome == Outcome::Ok),
            "no acknowledged {f:?}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
