//! Acceptors that lose their data or go back in time, on real redis-servers with in-process
//! nodes: the bug's four steps (a wiped acceptor must not cost an acknowledged write), the
//! catch-up pass making it a member again, a member rolled back in place and a restarted one
//! (never counted before they are caught up), a majority loss (data loss, 503, never
//! re-initialised) that serves nothing until `accept-loss`, which keeps the highest value any
//! acceptor holds, and a node configured with another acceptor set (refused).

use std::sync::Arc;
use std::time::{Duration, Instant};

use perseus_model::Verdict;
use perseus_node::acceptor::AdminAcceptor;
use perseus_node::ballot::BallotSource;
use perseus_node::membership;
use perseus_node::server;
use perseus_node::testing::{client, cluster, settings, Node, Redis};
use reqwest::StatusCode;
use serde_json::Value;

fn redis_cli(redis: &Redis, args: &[&str]) -> String {
    let output = std::process::Command::new("redis-cli")
        .args(["-p", &redis.port.to_string()])
        .args(args)
        .output()
        .expect("redis-cli runs");
    assert!(output.status.success());
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

fn flushall(redis: &Redis) {
    redis_cli(redis, &["FLUSHALL"]);
}

fn verdict(node: &Node) -> Option<Verdict> {
    node.app.membership.as_ref().map(|m| m.view().verdict)
}

/// The operator's command, as `node accept-loss` runs it.
async fn accept_loss(redis: &[Redis]) -> Vec<String> {
    let acceptors = server::redis_acceptors(&settings(9, redis, 300)).expect("acceptors");
    for a in &acceptors {
        assert!(a.wait_connected(Duration::from_secs(5)).await);
    }
    let acceptors: Vec<Arc<dyn AdminAcceptor>> = acceptors
        .into_iter()
        .map(|a| a as Arc<dyn AdminAcceptor>)
        .collect();
    let ballots = BallotSource::starting_at(9, 77, 1 << 40);
    membership::accept_loss(&acceptors, Duration::from_millis(300), &ballots)
        .await
        .expect("accept-loss")
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
    // 1. a3 away (frozen: a restarted Redis would be caught up before it counts again, see
    // a_restarted_acceptor_is_caught_up_before_it_counts); the write lands on a1 and a2 only.
    redis[2].signal("STOP");
    assert_eq!(put(&nodes[0], "k", "", "v1").await, StatusCode::CREATED);
    // 2. a3 back; a2 loses everything.
    redis[2].signal("CONT");
    flushall(&redis[1]);
    // 3. a1 away: a2 (wiped) and a3 (never saw v1) are all that is left.
    redis[0].signal("STOP");
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
    redis[0].signal("CONT");
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
    let lines = accept_loss(&redis).await;
    assert_eq!(lines.len(), 4, "{lines:?}");
    wait_for("serving again", Duration::from_secs(10), || {
        nodes[0]
            .app
            .membership
            .as_ref()
            .is_some_and(|m| m.serving())
    })
    .await;
    // a1 still held v1: the operator's command kept it.
    let (status, body) = get(&nodes[0], "k").await;
    assert_eq!(
        (status, body["node"]["value"].clone()),
        (StatusCode::OK, "v1".into()),
        "{body}"
    );
}

/// The review's rollback: a1 restored in place (FLUSHALL + RESTORE of its identity record as
/// it was before the write, atomically, the same Redis process) while a3, left out by the
/// thrifty fan-out, never saw the write. a1 must not count: the read finds v1 on a2 and
/// carries it to a3; the second create is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolled_back_member_never_costs_an_acknowledged_write() {
    let (redis, nodes) = cluster().await;
    let mut a1 = redis::Client::open(redis[0].url())
        .expect("client")
        .get_multiplexed_async_connection()
        .await
        .expect("connection");
    let backup: Vec<u8> = redis::cmd("DUMP")
        .arg("perseus-identity")
        .query_async(&mut a1)
        .await
        .expect("DUMP");
    assert_eq!(
        put(&nodes[0], "k", "?prevExist=false", "v1").await,
        StatusCode::CREATED
    );
    // Precondition (thrifty): a3 holds only its identity record.
    assert_eq!(redis_cli(&redis[2], &["DBSIZE"]), "1");
    let () = redis::pipe()
        .atomic()
        .cmd("FLUSHALL")
        .ignore()
        .cmd("RESTORE")
        .arg("perseus-identity")
        .arg(0)
        .arg(backup)
        .ignore()
        .query_async(&mut a1)
        .await
        .expect("FLUSHALL + RESTORE");
    let (status, body) = get(&nodes[1], "k").await;
    assert_eq!(
        (status, body["node"]["value"].clone()),
        (StatusCode::OK, "v1".into()),
        "{body}"
    );
    assert_ne!(
        put(&nodes[2], "k", "?prevExist=false", "v2").await,
        StatusCode::CREATED,
        "a second create was acknowledged"
    );
    // The membership tasks mark a1 recovering and catch it up.
    wait_for("a1 a member again", Duration::from_secs(20), || {
        state(&nodes[2], 0) == "member"
    })
    .await;
    let (status, body) = get(&nodes[2], "k").await;
    assert_eq!(
        (status, body["node"]["value"].clone()),
        (StatusCode::OK, "v1".into())
    );
}

/// A Redis restarted (kill -9, complete AOF) cannot prove it lost nothing: it counts toward no
/// quorum until its catch-up pass, which the other two serve through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_acceptor_is_caught_up_before_it_counts() {
    let (mut redis, nodes) = cluster().await;
    assert_eq!(put(&nodes[0], "k", "", "v1").await, StatusCode::CREATED);
    redis[0].restart();
    wait_for("a1 seen as not a member", Duration::from_secs(10), || {
        state(&nodes[1], 0) != "member"
    })
    .await;
    assert_eq!(put(&nodes[1], "k", "", "v2").await, StatusCode::OK);
    wait_for("a1 a member again", Duration::from_secs(20), || {
        state(&nodes[1], 0) == "member"
    })
    .await;
    assert_eq!(verdict(&nodes[1]), Some(Verdict::Serving));
    let (status, body) = get(&nodes[2], "k").await;
    assert_eq!(
        (status, body["node"]["value"].clone()),
        (StatusCode::OK, "v2".into())
    );
}

/// Two acceptors wiped while the third holds no data key (the usual state of the third
/// acceptor under the thrifty fan-out): data loss, 503 with its own code on every node, and
/// nothing re-initialised until the operator's command.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_majority_wipe_with_an_empty_third_acceptor_is_data_loss() {
    let (redis, nodes) = cluster().await;
    assert_eq!(
        put(&nodes[0], "k", "?prevExist=false", "v1").await,
        StatusCode::CREATED
    );
    assert_eq!(redis_cli(&redis[2], &["DBSIZE"]), "1");
    flushall(&redis[0]);
    flushall(&redis[1]);
    wait_for("data loss on every node", Duration::from_secs(10), || {
        nodes.iter().all(|n| verdict(n) == Some(Verdict::DataLoss))
    })
    .await;
    for node in &nodes {
        let (status, body) = get(node, "k").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert_eq!(body["errorCode"], 310, "{body}");
        assert_eq!(body["reason"], "data loss", "{body}");
    }
    assert_eq!(
        put(&nodes[2], "k", "?prevExist=false", "v2").await,
        StatusCode::SERVICE_UNAVAILABLE
    );
    // Never re-initialised: the wiped acceptors still carry no record a few inspections on.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(redis_cli(&redis[0], &["EXISTS", "perseus-identity"]), "0");
    assert_eq!(redis_cli(&redis[1], &["EXISTS", "perseus-identity"]), "0");
    assert_eq!(verdict(&nodes[1]), Some(Verdict::DataLoss));
}

/// After a majority loss, the operator's command keeps the highest value any acceptor still
/// holds: k2 was written while a2 was away (on a1 and a3), then a1 and a2 lost everything;
/// a3 alone holds k2, and every node reads it afterwards (never 404, never flipping).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accept_loss_keeps_the_highest_value_any_acceptor_holds() {
    let (redis, nodes) = cluster().await;
    assert_eq!(put(&nodes[0], "k1", "", "old").await, StatusCode::CREATED);
    redis[1].signal("STOP");
    assert_eq!(put(&nodes[0], "k2", "", "kept").await, StatusCode::CREATED);
    redis[1].signal("CONT");
    flushall(&redis[0]);
    flushall(&redis[1]);
    wait_for("data loss", Duration::from_secs(10), || {
        verdict(&nodes[0]) == Some(Verdict::DataLoss)
    })
    .await;
    accept_loss(&redis).await;
    wait_for("serving again", Duration::from_secs(10), || {
        nodes.iter().all(|n| verdict(n) == Some(Verdict::Serving))
    })
    .await;
    for _ in 0..3 {
        for node in &nodes {
            let (status, body) = get(node, "k2").await;
            assert_eq!(
                (status, body["node"]["value"].clone()),
                (StatusCode::OK, "kept".into()),
                "{body}"
            );
        }
    }
}

/// A node configured with another acceptor set than the cluster was made with refuses to
/// serve and says why (two sets could choose on quorums that do not intersect).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_configured_with_another_acceptor_set_refuses() {
    let (redis, _nodes) = cluster().await;
    let other = Redis::start();
    let mut config = settings(7, &redis, 300);
    config.acceptors[2] = other.url();
    let app = server::app(&config).expect("app");
    let membership = app.membership.clone().expect("membership");
    wait_for("misconfigured", Duration::from_secs(10), || {
        membership.view().verdict == Verdict::Misconfigured
    })
    .await;
    assert!(membership.view().message.contains("configured with"));
    // The fresh acceptor was never claimed.
    assert_eq!(redis_cli(&other, &["EXISTS", "perseus-identity"]), "0");
}
