//! Acceptors that lose their data, on real redis-servers with in-process nodes: the bug's four
//! steps (a wiped acceptor must not cost an acknowledged write), the catch-up pass making it a
//! member again, and a majority loss that serves nothing until `accept-loss`.

use std::time::{Duration, Instant};

use perseus_node::membership;
use perseus_node::server;
use perseus_node::testing::{client, cluster, settings, Node, Redis};
use reqwest::StatusCode;
use serde_json::Value;

fn flushall(redis: &Redis) {
    let status = std::process::Command::new("redis-cli")
        .args(["-p", &redis.port.to_string(), "FLUSHALL"])
        .status()
        .expect("redis-cli runs");
    assert!(status.success());
}

async fn get(node: &Node, key: &str) -> (StatusCode, Value) {
    let response = client()
        .get(node.key_url(key))
        .send()
        .await
        .expect("GET answered");
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn put(node: &Node, key: &str, query: &str, value: &str) -> StatusCode {
    client()
        .put(format!("{}{query}", node.key_url(key)))
        .form(&[("value", value)])
        .send()
        .await
        .expect("PUT answered")
        .status()
}

/// The state of acceptor `index` in `node`'s membership view.
fn state(node: &Node, index: usize) -> String {
    node.app
        .membership
        .as_ref()
        .map(|m| m.view().acceptors[index].state.to_string())
        .unwrap_or_default()
}

async fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what}: not within {limit:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wiped_acceptor_never_costs_an_acknowledged_write() {
    let (mut redis, nodes) = cluster().await;
    for i in 0..20 {
        assert_eq!(
            put(&nodes[0], &format!("other{i}"), "", "x").await,
            StatusCode::CREATED
        );
    }
    // 1. a3 down; the write lands on a1 and a2 only.
    redis[2].kill();
    assert_eq!(put(&nodes[0], "k", "", "v1").await, StatusCode::CREATED);
    // 2. a3 back; a2 loses everything.
    redis[2].restart();
    flushall(&redis[1]);
    // 3. a1 away: a2 (wiped) and a3 (never saw v1) are all that is left.
    redis[0].kill();
    let (status, body) = get(&nodes[2], "k").await;
    assert!(
        status == StatusCode::SERVICE_UNAVAILABLE
            || (status == StatusCode::OK && body["node"]["value"] == "v1"),
        "GET after the wipe: {status} {body}"
    );
    assert_ne!(
        put(&nodes[2], "k", "?prevExist=false", "v2").await,
        StatusCode::CREATED,
        "a second create was acknowledged"
    );
    // The nodes see a2 without its identity (the view is refreshed once a second).
    wait_for("a2 seen unmarked", Duration::from_secs(10), || {
        state(&nodes[2], 1) != "member"
    })
    .await;
    // 4. a1 back: a2 is caught up and becomes a member again.
    redis[0].restart();
    wait_for("a2 a member again", Duration::from_secs(20), || {
        state(&nodes[2], 1) == "member"
    })
    .await;
    // The cluster tolerates one fault again: without a1, v1 is read from a2 and a3.
    redis[0].kill();
    let (status, body) = get(&nodes[2], "k").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["node"]["value"], "v1");
    let (status, body) = get(&nodes[1], "other7").await;
    assert_eq!(
        (status, body["node"]["value"].clone()),
        (StatusCode::OK, "x".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_majority_loss_serves_nothing_until_accept_loss() {
    let (redis, nodes) = cluster().await;
    assert_eq!(put(&nodes[0], "k", "", "v1").await, StatusCode::CREATED);
    flushall(&redis[1]);
    flushall(&redis[2]);
    wait_for("data-loss verdict", Duration::from_secs(10), || {
        nodes[0]
            .app
            .membership
            .as_ref()
            .is_some_and(|m| m.view().verdict == perseus_model::Verdict::DataLoss)
    })
    .await;
    let (status, body) = get(&nodes[0], "k").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    // The operator accepts the loss.
    let acceptors = server::redis_acceptors(&settings(9, &redis, 300)).expect("acceptors");
    for a in &acceptors {
        assert!(a.wait_connected(Duration::from_secs(5)).await);
    }
    let lines = membership::accept_loss(&acceptors)
        .await
        .expect("accept-loss");
    assert_eq!(lines.len(), 3, "{lines:?}");
    wait_for("serving again", Duration::from_secs(10), || {
        nodes[0]
            .app
            .membership
            .as_ref()
            .is_some_and(|m| m.serving())
    })
    .await;
    let (status, body) = get(&nodes[0], "k").await;
    assert!(
        status == StatusCode::OK || status == StatusCode::NOT_FOUND,
        "{status} {body}"
    );
}
