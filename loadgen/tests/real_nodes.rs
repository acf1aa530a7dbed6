//! The loadgen against a real cluster on loopback: three `redis-server` acceptors (processes,
//! AOF with fsync always) and three perseus nodes served in-process from the `perseus-node`
//! library. Needs `redis-server` on the PATH (or `$REDIS_SERVER`); a missing binary fails the
//! test, it is never skipped.

mod common;

use std::time::Duration;

use common::{data_lines, SharedBuf};
use loadgen::config::Config;
use perseus_node::testing::{cluster, Node};

fn config(nodes: &[Node], secs: u64, tag: &str) -> Config {
    let mut c = Config::new(nodes.iter().map(|n| n.url.clone()).collect());
    c.duration = Duration::from_secs(secs);
    c.connections = 2;
    c.run_id = format!("{tag}-{}", loadgen::config::default_run_id());
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_cluster_counts_and_no_violations() {
    let (_redis, nodes) = cluster().await;
    let buf = SharedBuf::default();
    let res = loadgen::run(
        config(&nodes, 3, "real"),
        Box::new(buf.clone()),
        std::future::pending(),
    )
    .await
    .expect("run");
    let text = buf.text();
    eprintln!("{text}");
    let data = data_lines(&text, 3);
    assert_eq!(data.len(), 3, "{text}");
    assert!(data.iter().map(|d| d[1]).sum::<u64>() > 0, "{text}");
    for d in &data {
        assert!(
            d[2] > 0 && d[3] > 0 && d[4] > 0,
            "every node served: {text}"
        );
    }
    assert_eq!(res.summary.total_violations(), 0, "{text}");
    assert_eq!(res.summary.final_checked, 6, "{text}");
    assert_eq!(res.exit_code, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_cluster_survives_a_killed_acceptor_without_violations() {
    let (mut redis, nodes) = cluster().await;
    let mut victim = redis.remove(0);
    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(1500));
        victim.kill();
        victim
    });
    let buf = SharedBuf::default();
    let res = loadgen::run(
        config(&nodes, 4, "kill"),
        Box::new(buf.clone()),
        std::future::pending(),
    )
    .await
    .expect("run");
    let _victim = killer.join().expect("killer thread");
    let text = buf.text();
    eprintln!("{text}");
    let data = data_lines(&text, 3);
    assert_eq!(data.len(), 4, "{text}");
    // two of three acceptors left: the cluster serves every second, and every node still
    // serves after the kill
    assert!(data.iter().all(|d| d[1] > 0), "{text}");
    let last = &data[3];
    assert!(last[2] > 0 && last[3] > 0 && last[4] > 0, "{text}");
    assert_eq!(res.summary.total_violations(), 0, "{text}");
    assert_eq!(res.exit_code, 0);
}
