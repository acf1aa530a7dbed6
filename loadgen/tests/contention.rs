//! `--keys shared:N` against the fake etcd-v2 clusters (tests/common): every connection of every
//! node races on the same keys. A correct cluster gives no violation and a final count equal to
//! the acknowledged increments; a flaky one gives unknown outcomes, some of them applied, and
//! still no violation; one that forgets writes is caught.

mod common;

use std::time::Duration;

use common::{start, Mode, SharedBuf};
use loadgen::config::{Config, KeyMode};
use loadgen::output::contention_total;

fn config(urls: &[String], keys: u32, tag: &str) -> Config {
    let mut c = Config::new(urls.to_vec());
    c.duration = Duration::from_secs(2);
    c.connections = 3;
    c.timeout = Duration::from_millis(300);
    c.keys = KeyMode::Shared(keys);
    c.run_id = format!("{tag}-{}", loadgen::config::default_run_id());
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn correct_cluster_under_contention_adds_up() {
    let fake = start(3, Mode::Correct).await;
    let buf = SharedBuf::default();
    let res = loadgen::run(
        config(&fake.urls, 1, "shared-ok"),
        Box::new(buf.clone()),
        std::future::pending(),
    )
    .await
    .expect("run");
    let text = buf.text();
    assert_eq!(res.summary.total_violations(), 0, "{text}");
    assert_eq!(res.summary.contention.len(), 1, "{text}");
    let t = contention_total(&res.summary.contention);
    assert!(t.acknowledged > 0, "{text}");
    assert!(
        t.rejected > 0,
        "nine clients on one key must collide: {text}"
    );
    // only the requests cut off by the end of the run are unknown, one per client at most
    assert!(t.unknown <= 9, "{text}");
    let final_value = t.final_value.unwrap_or(0) as u64;
    assert!(
        final_value >= t.acknowledged && final_value <= t.acknowledged + t.unknown,
        "{text}"
    );
    assert_eq!(t.failed_but_applied, final_value - t.acknowledged, "{text}");
    assert_eq!(t.creates_acknowledged, 1, "{text}");
    assert_eq!(res.summary.final_checked, 1, "{text}");
    assert!(text.contains("# contention keys=shared:1 "), "{text}");
    assert!(text.contains("# requests sent="), "{text}");
    assert!(res.summary.totals.sent > t.increments_sent, "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flaky_cluster_under_contention_has_unknowns_and_no_violations() {
    let fake = start(
        3,
        Mode::Flaky {
            late: Duration::from_millis(400),
        },
    )
    .await;
    let buf = SharedBuf::default();
    let res = loadgen::run(
        config(&fake.urls, 3, "shared-flaky"),
        Box::new(buf.clone()),
        std::future::pending(),
    )
    .await
    .expect("run");
    let text = buf.text();
    assert_eq!(res.summary.total_violations(), 0, "{text}");
    let t = contention_total(&res.summary.contention);
    assert_eq!(res.summary.contention.len(), 3, "{text}");
    assert!(t.unknown > 0, "{text}");
    assert!(res.summary.totals.answered_5xx > 0, "{text}");
    let final_value = t.final_value.unwrap_or(0) as u64;
    assert!(
        final_value >= t.acknowledged && final_value <= t.acknowledged + t.unknown,
        "{text}"
    );
    assert_eq!(t.failed_but_applied, final_value - t.acknowledged, "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forgetful_cluster_under_contention_is_caught() {
    let fake = start(3, Mode::ForgetWrites(5)).await;
    let buf = SharedBuf::default();
    let res = loadgen::run(
        config(&fake.urls, 1, "shared-forget"),
        Box::new(buf.clone()),
        std::future::pending(),
    )
    .await
    .expect("run");
    let text = buf.text();
    let lost = res.summary.totals.violations[loadgen::checker::ViolationKind::LostWrite.idx()];
    assert!(lost > 0, "{text}");
    assert_eq!(res.exit_code, 1, "{text}");
}
