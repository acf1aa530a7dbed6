//! The node under acceptor faults, against real redis-server processes: one Redis killed,
//! two killed, one restarted, and two proposers racing on one key.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use perseus_model::AcceptorState;
use perseus_node::testing::{client, settings, three_redis, Node};
use reqwest::StatusCode;
use serde_json::Value;

/// Reads the key and CAS-increments it once. `Ok(Some(index))` if acknowledged.
async fn increment(http: &reqwest::Client, url: &str) -> Result<u64, (StatusCode, Value)> {
    let response = http.get(url).send().await.expect("node answers");
    let status = response.status();
    let body: Value = response.json().await.expect("JSON");
    let (value, index) = match status {
        StatusCode::OK => (
            body["node"]["value"]
                .as_str()
                .and_then(|v| v.parse::<u64>().ok())
                .expect("a number"),
            body["node"]["modifiedIndex"].as_u64().expect("an index"),
        ),
        StatusCode::NOT_FOUND => {
            let response = http
                .put(url)
                .query(&[("prevExist", "false")])
                .form(&[("value", "0")])
                .send()
                .await
                .expect("node answers");
            let status = response.status();
            let body: Value = response.json().await.expect("JSON");
            return match status {
                StatusCode::CREATED => Ok(body["node"]["modifiedIndex"].as_u64().expect("index")),
                _ => Err((status, body)),
            };
        }
        _ => return Err((status, body)),
    };
    let response = http
        .put(url)
        .query(&[("prevIndex", index.to_string())])
        .form(&[("value", (value + 1).to_string())])
        .send()
        .await
        .expect("node answers");
    let status = response.status();
    let body: Value = response.json().await.expect("JSON");
    match status {
        StatusCode::OK => Ok(body["node"]["modifiedIndex"].as_u64().expect("index")),
        _ => Err((status, body)),
    }
}

#[tokio::test]
async fn one_dead_acceptor_costs_nothing() {
    let mut redis = three_redis();
    let node = Node::start(settings(1, &redis, 300)).await;
    let http = client();
    let url = node.key_url("one-dead");
    increment(&http, &url).await.expect("first write");
    redis[2].kill();
    for i in 0..50 {
        if let Err(e) = increment(&http, &url).await {
            panic!("iteration {i} failed with one acceptor dead: {e:?}");
        }
    }
    // A key never touched before also works (the prepare path, not only one round trip).
    increment(&http, &node.key_url("fresh-key"))
        .await
        .expect("fresh key");
}

#[tokio::test]
async fn two_dead_acceptors_give_503_within_the_timeout() {
    let mut redis = three_redis();
    let timeout_ms = 300;
    let node = Node::start(settings(1, &redis, timeout_ms)).await;
    let http = client();
    let url = node.key_url("two-dead");
    increment(&http, &url).await.expect("first write");
    redis[0].kill();
    redis[1].kill();
    for _ in 0..3 {
        let started = Instant::now();
        let response = http.get(&url).send().await.expect("node answers");
        let elapsed = started.elapsed();
        // A read never has an unknown outcome: 503 "not applied", safe to send again.
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            response
                .headers()
                .get("x-perseus-outcome")
                .and_then(|v| v.to_str().ok()),
            Some("not-applied")
        );
        let body: Value = response.json().await.expect("JSON");
        assert_eq!(body["errorCode"], 301);
        assert_eq!(body["outcome"], "not applied");
        let message = body["message"].as_str().expect("a message");
        assert!(message.contains(" of 3 acceptors answered"), "{message}");
        assert!(message.contains("quorum 2"), "{message}");
        // One phase at most, each bounded by the acceptor timeout.
        assert!(
            elapsed < Duration::from_millis(2 * timeout_ms + 500),
            "took {elapsed:?}"
        );
    }
}

#[tokio::test]
async fn a_restarted_acceptor_is_used_again() {
    let mut redis = three_redis();
    let node = Node::start(settings(1, &redis, 300)).await;
    let http = client();
    let url = node.key_url("restarted");
    increment(&http, &url).await.expect("first write");
    redis[0].restart();
    // Let the node find out and reconnect (a call on the dead connection triggers it).
    let _ = increment(&http, &url).await;
    node.wait_reachable(3).await;
    // A restarted Redis cannot prove it lost nothing: it counts again once the membership
    // task has caught it up (docs/design-acceptor-recovery.md, "Rollback").
    let membership = node.app.membership.clone().expect("membership");
    let a1_is_member = || membership.view().acceptors[0].state == AcceptorState::Member;
    let deadline = Instant::now() + Duration::from_secs(20);
    while a1_is_member() {
        assert!(Instant::now() < deadline, "a1 never seen restarted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    while !a1_is_member() {
        assert!(
            Instant::now() < deadline,
            "a1 not caught up: {:?}",
            membership.view()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Now lose another acceptor: the quorum needs the restarted one.
    redis[1].kill();
    for i in 0..20 {
        if let Err(e) = increment(&http, &url).await {
            panic!("iteration {i} failed: {e:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_proposers_lose_no_acknowledged_write() {
    let redis = three_redis();
    let nodes = Arc::new([
        Node::start(settings(1, &redis, 300)).await,
        Node::start(settings(2, &redis, 300)).await,
    ]);
    let mut tasks = Vec::new();
    for t in 0..16 {
        let nodes = nodes.clone();
        tasks.push(tokio::spawn(async move {
            let http = client();
            let url = nodes[t % 2].key_url("contended");
            let (mut acked, mut failed) = (Vec::new(), 0u64);
            // Until five acknowledged increments each (bounded): most attempts lose the CAS
            // race to the other fifteen clients.
            for _ in 0..300 {
                if acked.len() == 5 {
                    break;
                }
                match increment(&http, &url).await {
                    Ok(index) => acked.push(index),
                    Err(_) => failed += 1,
                }
            }
            (acked, failed)
        }));
    }
    let mut indexes = Vec::new();
    for task in tasks {
        let (acked, _failed) = task.await.expect("task");
        indexes.extend(acked);
    }
    eprintln!("{} increments acknowledged", indexes.len());
    assert!(
        indexes.len() >= 40,
        "too few writes succeeded: {}",
        indexes.len()
    );
    let distinct: HashSet<u64> = indexes.iter().copied().collect();
    assert_eq!(
        distinct.len(),
        indexes.len(),
        "an acknowledged modifiedIndex repeated: a write was lost"
    );

    // The final state: each write (create = index 1, value 0) adds one to both. The first
    // read may lose a race against the other proposer's cached ballot: retry a few times.
    let mut body = Value::Null;
    for _ in 0..5 {
        let response = client()
            .get(nodes[0].key_url("contended"))
            .send()
            .await
            .expect("read");
        if response.status() == StatusCode::OK {
            body = response.json().await.expect("JSON");
            break;
        }
    }
    let value: u64 = body["node"]["value"]
        .as_str()
        .and_then(|v| v.parse().ok())
        .expect("number");
    let index = body["node"]["modifiedIndex"].as_u64().expect("index");
    assert_eq!(value + 1, index);
    let highest_acked = indexes.iter().copied().max().unwrap_or(0);
    assert!(
        index >= highest_acked,
        "final index {index} below an acknowledged {highest_acked}"
    );
}

#[tokio::test]
async fn a_stale_one_round_trip_ballot_costs_no_error() {
    let redis = three_redis();
    let nodes = [
        Node::start(settings(1, &redis, 300)).await,
        Node::start(settings(2, &redis, 300)).await,
    ];
    let http = client();
    // Alternate writers and readers strictly one request at a time: every node's cached
    // ballot is stale each time it comes back to the key.
    for i in 0..30u32 {
        let node = &nodes[(i % 2) as usize];
        let url = node.key_url("shared");
        let put = http
            .put(&url)
            .form(&[("value", i.to_string())])
            .send()
            .await
            .expect("node answers");
        assert_eq!(
            put.status().as_u16() / 100,
            2,
            "write {i}: {}",
            put.status()
        );
        let other = &nodes[((i + 1) % 2) as usize];
        let read: Value = http
            .get(other.key_url("shared"))
            .send()
            .await
            .expect("node answers")
            .json()
            .await
            .expect("JSON");
        assert_eq!(read["node"]["value"], i.to_string(), "read after write {i}");
        assert_eq!(read["node"]["modifiedIndex"], u64::from(i) + 1);
    }
}

#[tokio::test]
async fn a_frozen_acceptor_costs_nothing_and_is_used_again_when_thawed() {
    let mut redis = three_redis();
    let node = Node::start(settings(1, &redis, 300)).await;
    let http = client();
    let url = node.key_url("frozen");
    increment(&http, &url).await.expect("first write");
    redis[0].signal("STOP");
    for i in 0..20 {
        let started = Instant::now();
        if let Err(e) = increment(&http, &url).await {
            panic!("iteration {i} failed with one acceptor frozen: {e:?}");
        }
        // The quorum of the other two answers; the frozen one is never waited for (an iteration
        // that waited for it would take two acceptor timeouts, 600 ms).
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "iteration {i} took {:?}",
            started.elapsed()
        );
    }
    redis[0].signal("CONT");
    node.wait_reachable(3).await;
    // The thawed acceptor is needed once another one dies.
    redis[1].kill();
    for i in 0..10 {
        if let Err(e) = increment(&http, &url).await {
            panic!("iteration {i} after the thaw failed: {e:?}");
        }
    }
}
