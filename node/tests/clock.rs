//! The node's ballots do not depend on the wall clock being right. A node starts its ballot
//! counter at the wall clock (microseconds, capped at half the exact range), so a node whose
//! clock is far ahead starts at the cap and one far behind starts below every ballot the
//! others use. Neither may refuse a request or lose a write: the one behind is refused by the
//! acceptors' promises, fast-forwards past them and retries; the one ahead leaves 2^52 ballots
//! of room.
//!
//! Real parts: three redis-server acceptors and three `node` processes, two of them under
//! libfaketime (`LD_PRELOAD`, the mechanism of the clock fault, docs/faults.md) 200 years ahead
//! and 50 years behind, their monotonic clocks left true as on a machine whose wall clock is
//! wrong. The HTTP `Date` header of each node shows the clock it runs on. Needs libfaketime
//! (`apt-get install faketime`; `make test` installs it) or PERSEUS_FAKETIME_LIB.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use perseus_node::testing::{client, free_port, three_redis, Redis};

const LIBS: &[&str] = &[
    "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
    "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
    "/usr/local/lib/faketime/libfaketime.so.1",
];

fn faketime_lib() -> PathBuf {
    if let Ok(p) = std::env::var("PERSEUS_FAKETIME_LIB") {
        return PathBuf::from(p);
    }
    LIBS.iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .unwrap_or_else(|| {
            panic!(
                "libfaketime not found ({}): apt-get install faketime, or set PERSEUS_FAKETIME_LIB",
                LIBS.join(", ")
            )
        })
}

/// A node process; killed when dropped.
struct NodeProcess {
    child: Child,
    url: String,
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts node `id` on the acceptors, its wall clock shifted by `offset` (libfaketime's form:
/// `+200y`, `-50y`) when given; waits (bounded) until it serves.
async fn start_node(id: u64, redis: &[Redis], offset: Option<&str>) -> NodeProcess {
    let port = free_port();
    let acceptors: Vec<String> = redis.iter().map(Redis::url).collect();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_node"));
    cmd.env("PERSEUS_ID", id.to_string())
        .env("PERSEUS_LISTEN", format!("127.0.0.1:{port}"))
        .env("PERSEUS_ACCEPTORS", acceptors.join(","))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null());
    if let Some(o) = offset {
        cmd.env("LD_PRELOAD", faketime_lib())
            .env("FAKETIME", o)
            .env("FAKETIME_DONT_FAKE_MONOTONIC", "1");
    }
    let child = cmd.spawn().expect("node starts");
    let node = NodeProcess {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(r) = client().get(format!("{}/health", node.url)).send().await {
            if r.status().is_success() {
                return node;
            }
        }
        assert!(
            Instant::now() < deadline,
            "node {id} (clock {offset:?}) did not serve within 20 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The year in the node's HTTP `Date` header (`Tue, 07 Dec 2226 15:00:00 GMT`).
async fn node_year(node: &NodeProcess) -> i32 {
    let r = client()
        .get(format!("{}/health", node.url))
        .send()
        .await
        .expect("health answers");
    let date = r
        .headers()
        .get("date")
        .and_then(|d| d.to_str().ok())
        .expect("a Date header")
        .to_string();
    date.split_whitespace()
        .nth(3)
        .and_then(|y| y.parse().ok())
        .unwrap_or_else(|| panic!("no year in {date:?}"))
}

async fn get(node: &NodeProcess, key: &str) -> Option<String> {
    let r = client()
        .get(format!("{}/v2/keys/{key}", node.url))
        .send()
        .await
        .expect("GET answers");
    if r.status() == 404 {
        return None;
    }
    assert!(r.status().is_success(), "GET {key}: {}", r.status());
    let body: serde_json::Value = r.json().await.expect("JSON");
    body["node"]["value"].as_str().map(String::from)
}

/// PUT, with `?prevValue=` when `prev` is given, until it is applied. A 500 of unknown outcome
/// (a ballot race lost on the one-round-trip path: it happens the same with every clock right,
/// whenever nodes take turns on a key) is read back and retried, as a client would, at most
/// five times; any other answer is a refusal and fails the test. Returns the retries.
async fn put(node: &NodeProcess, key: &str, value: &str, prev: Option<&str>) -> u32 {
    for retry in 0..5 {
        let mut req = client()
            .put(format!("{}/v2/keys/{key}", node.url))
            .form(&[("value", value)]);
        if let Some(p) = prev {
            req = req.query(&[("prevValue", p)]);
        }
        let r = req.send().await.expect("PUT answers");
        let status = r.status();
        let text = r.text().await.unwrap_or_default();
        if status.is_success() {
            return retry;
        }
        assert!(
            status == 500 && text.contains("\"outcome\":\"unknown\""),
            "PUT {key}={value} (prev {prev:?}) via {} refused: {status} {text}",
            node.url
        );
        if get(node, key).await.as_deref() == Some(value) {
            return retry + 1;
        }
    }
    panic!(
        "PUT {key}={value} via {} not applied after 5 tries",
        node.url
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_with_wrong_clocks_neither_refuse_nor_lose() {
    let redis = three_redis();
    let ahead = start_node(1, &redis, Some("+200y")).await;
    let behind = start_node(2, &redis, Some("-50y")).await;
    let right = start_node(3, &redis, None).await;
    let this_year = node_year(&right).await;
    let (y_ahead, y_behind) = (node_year(&ahead).await, node_year(&behind).await);
    assert!(
        y_ahead >= this_year + 199,
        "the clock is ahead: {y_ahead} against {this_year}"
    );
    assert!(
        y_behind <= this_year - 49,
        "the clock is behind: {y_behind} against {this_year}"
    );

    // A counter incremented in turn by all three (compare-and-set on the value read), and a
    // key of each node's own, overwritten by the others: the one behind always comes after a
    // higher ballot, the one ahead after a lower one.
    let nodes = [&ahead, &behind, &right];
    let mut expected = 0u64;
    let mut retries = 0;
    for round in 0..20 {
        for (i, node) in nodes.iter().enumerate() {
            let seen = get(node, "counter").await;
            let now: u64 = seen.as_deref().map_or(0, |v| v.parse().expect("a number"));
            assert_eq!(
                now,
                expected,
                "node {} reads every acknowledged increment",
                i + 1
            );
            retries += put(node, "counter", &(now + 1).to_string(), seen.as_deref()).await;
            expected += 1;
            let key = format!("k{}", (i + round) % 3);
            retries += put(node, &key, &format!("{round}-{i}"), None).await;
        }
    }
    println!("120 writes applied, {retries} retried after a lost ballot race");
    for node in nodes {
        assert_eq!(get(node, "counter").await.as_deref(), Some("60"));
        for k in 0..3 {
            // Round 19 wrote key k last from the node with (i + 19) % 3 == k.
            let i = (k + 3 - 19 % 3) % 3;
            assert_eq!(
                get(node, &format!("k{k}")).await,
                Some(format!("19-{i}")),
                "key k{k} via {}",
                node.url
            );
        }
    }

    // The node whose clock was 200 years ahead restarts with a true clock: its new ballots
    // start far below the ones it sent; its new incarnation keeps them distinct, and the
    // acceptors' promises move it past its old ones.
    drop(ahead);
    let restarted = start_node(1, &redis, None).await;
    let seen = get(&restarted, "counter").await;
    assert_eq!(seen.as_deref(), Some("60"));
    put(&restarted, "counter", "61", Some("60")).await;
    put(&behind, "counter", "62", Some("61")).await;
    assert_eq!(get(&right, "counter").await.as_deref(), Some("62"));
}
