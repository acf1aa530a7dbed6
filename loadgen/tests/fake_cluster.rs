//! Runs the loadgen library for a few seconds against fake etcd-v2 clusters (tests/common):
//! a correct one (no violations), one that forgets writes (violations found) and a flaky but
//! correct one (errors of every kind, still no violations).

mod common;

use std::time::Duration;

use common::{data_lines, start, Mode, SharedBuf};
use loadgen::config::Config;
use serde_json::Value;

fn config(urls: &[String], secs: u64, tag: &str) -> Config {
    let mut c = Config::new(urls.to_vec());
    c.duration = Duration::from_secs(secs);
    c.connections = 2;
    c.timeout = Duration::from_millis(300);
    c.run_id = format!("{tag}-{}", loadgen::config::default_run_id());
    c
}

/// The `--out` file as JSON values (to check the wire form itself), after checking that every
/// line is a record the other tools read.
fn json_lines(path: &std::path::Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).expect("read --out file");
    let records: Vec<perseus_model::load::Record> =
        perseus_model::load::parse_lines(&text).expect("every line is a record");
    assert!(!records.contains(&perseus_model::load::Record::Other));
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l:?}: {e}")))
        .collect()
}

fn of_type<'a>(lines: &'a [Value], t: &str) -> Vec<&'a Value> {
    lines.iter().filter(|l| l["type"] == t).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn correct_cluster_counts_and_no_violations() {
    let fake = start(3, Mode::Correct).await;
    let dir = std::env::temp_dir().join(format!("loadgen-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let out_path = dir.join("correct.jsonl");
    let mut cfg = config(&fake.urls, 3, "ok");
    cfg.out = Some(out_path.clone());
    let buf = SharedBuf::default();
    let t0 = std::time::Instant::now();
    let res = loadgen::run(cfg, Box::new(buf.clone()), std::future::pending())
        .await
        .expect("run");
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_secs(3) && took < Duration::from_secs(6),
        "{took:?}"
    );

    let text = buf.text();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("# start="), "{}", lines[0]);
    assert!(lines[0].contains(" unix_ms=") && lines[0].contains(" run_id=ok-"));
    assert_eq!(lines[1], "# second\tcluster\tn1\tn2\tn3");
    let data = data_lines(&text, 3);
    assert_eq!(
        data.iter().map(|d| d[0]).collect::<Vec<_>>(),
        vec![1, 2, 3],
        "{text}"
    );
    let total: u64 = data.iter().map(|d| d[1]).sum();
    assert!(total > 0, "{text}");
    for d in &data {
        assert!(d[2] > 0 && d[3] > 0 && d[4] > 0, "every node served: {d:?}");
    }
    assert_eq!(res.summary.total_violations(), 0, "{text}");
    assert_eq!(res.exit_code, 0);
    assert!(text.contains("# violations total=0 "), "{text}");
    assert!(
        text.contains("# final-read checked=6 unreachable=0"),
        "{text}"
    );
    assert!(text.lines().last().unwrap_or("").starts_with("# result ok"));
    // everything after the table is a comment
    let last_data = lines.iter().rposition(|l| !l.starts_with('#')).unwrap_or(0);
    assert!(lines[last_data + 1..].iter().all(|l| l.starts_with('#')));

    let js = json_lines(&out_path);
    assert_eq!(of_type(&js, "start").len(), 1);
    let seconds = of_type(&js, "second");
    assert_eq!(seconds.len(), 3);
    let buckets = of_type(&js, "bucket");
    assert_eq!(buckets.len(), 30);
    assert_eq!(of_type(&js, "summary").len(), 1);
    assert!(of_type(&js, "violation").is_empty());
    // the JSON per-second counts are the stdout ones, and the buckets add up to them
    for (s, d) in seconds.iter().zip(&data) {
        assert_eq!(s["cluster"].as_u64(), Some(d[1]));
        assert!(s["time"].as_str().unwrap_or("").ends_with('Z'));
        let n = s["second"].as_u64().unwrap_or(0);
        let from_buckets: u64 = buckets
            .iter()
            .filter(|b| b["second"].as_u64() == Some(n))
            .flat_map(|b| b["ok"].as_array().cloned().unwrap_or_default())
            .filter_map(|v| v.as_u64())
            .sum();
        assert_eq!(from_buckets, d[1]);
        assert!(s["latency_us"]["p50"].as_u64().unwrap_or(0) > 0);
    }
    // first/last success offsets lie inside their bucket
    for b in &buckets {
        let t_us = b["t_ms"].as_u64().unwrap_or(0) * 1000;
        for f in b["first_us"].as_array().into_iter().flatten() {
            if let Some(f) = f.as_u64() {
                assert!(f >= t_us && f < t_us + 100_000, "{b}");
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forgetful_cluster_is_caught() {
    let fake = start(3, Mode::ForgetWrites(7)).await;
    let dir = std::env::temp_dir().join(format!("loadgen-test-forget-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let out_path = dir.join("forget.jsonl");
    let mut cfg = config(&fake.urls, 2, "forget");
    cfg.out = Some(out_path.clone());
    let buf = SharedBuf::default();
    let res = loadgen::run(cfg, Box::new(buf.clone()), std::future::pending())
        .await
        .expect("run");
    let text = buf.text();
    assert!(res.summary.total_violations() > 0, "{text}");
    assert_eq!(res.exit_code, 1);
    let lost = res.summary.totals.violations[loadgen::checker::ViolationKind::LostWrite.idx()];
    assert!(lost > 0, "{text}");
    assert!(text.contains("# violation t_ms="), "{text}");
    assert!(text.contains("lost-write key=forget-"), "{text}");
    assert!(text
        .lines()
        .last()
        .unwrap_or("")
        .starts_with("# result VIOLATIONS"));

    let js = json_lines(&out_path);
    let v = of_type(&js, "violation");
    assert_eq!(v.len() as u64, res.summary.total_violations());
    assert!(v[0]["key"].as_str().unwrap_or("").starts_with("forget-"));
    assert!(v[0]["expected"].is_string() && v[0]["got"].is_string());
    let per_second: u64 = of_type(&js, "second")
        .iter()
        .filter_map(|s| s["violations"].as_u64())
        .sum();
    assert!(per_second > 0);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forgetful_cluster_allowed_exits_zero() {
    let fake = start(1, Mode::ForgetWrites(3)).await;
    let mut cfg = config(&fake.urls, 1, "allow");
    cfg.allow_violations = true;
    let buf = SharedBuf::default();
    let res = loadgen::run(cfg, Box::new(buf.clone()), std::future::pending())
        .await
        .expect("run");
    assert!(res.summary.total_violations() > 0);
    assert_eq!(res.exit_code, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flaky_but_correct_cluster_has_errors_and_no_violations() {
    let fake = start(
        3,
        Mode::Flaky {
            late: Duration::from_millis(400),
        },
    )
    .await;
    let mut cfg = config(&fake.urls, 3, "flaky");
    cfg.error_pause = Duration::from_millis(1);
    let buf = SharedBuf::default();
    let res = loadgen::run(cfg, Box::new(buf.clone()), std::future::pending())
        .await
        .expect("run");
    let text = buf.text();
    let t = &res.summary.totals;
    let errs = loadgen::stats::sum_errors(&t.errors);
    use loadgen::client::ErrorKind;
    assert!(errs[ErrorKind::Connect.idx()] > 0, "{text}");
    assert!(errs[ErrorKind::Http5xx.idx()] > 0, "{text}");
    assert!(errs[ErrorKind::Timeout.idx()] > 0, "{text}");
    assert!(res.summary.total_ok() > 0, "{text}");
    assert_eq!(res.summary.total_violations(), 0, "{text}");
    assert_eq!(res.exit_code, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_stops_early_and_dead_node_shows_zero() {
    let fake = start(2, Mode::Correct).await;
    // a third "node" nobody listens on
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let dead = format!("http://{}", l.local_addr().expect("addr"));
    drop(l);
    let mut urls = fake.urls.clone();
    urls.push(dead);
    let mut cfg = config(&urls, 30, "stop");
    cfg.final_read = false;
    let buf = SharedBuf::default();
    let t0 = std::time::Instant::now();
    let res = loadgen::run(
        cfg,
        Box::new(buf.clone()),
        tokio::time::sleep(Duration::from_millis(2500)),
    )
    .await
    .expect("run");
    assert!(t0.elapsed() < Duration::from_secs(5));
    let text = buf.text();
    let data = data_lines(&text, 3);
    assert_eq!(data.len(), 2, "{text}");
    assert!(data.iter().all(|d| d[4] == 0 && d[2] > 0), "{text}");
    assert_eq!(
        res.summary.stopped_by,
        perseus_model::load::StopReason::Signal
    );
    assert!(text.contains("stopped_by=signal"));
    assert!(text.contains("# final-read checked=0 unreachable=0 skipped=6"));
    let errs = loadgen::stats::sum_errors(&res.summary.totals.errors[2..]);
    assert!(
        errs[loadgen::client::ErrorKind::Connect.idx()] > 0,
        "{text}"
    );
}
