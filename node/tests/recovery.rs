//! Acceptors that lose their data or go back in time, on real redis-servers with in-process
//! nodes: the bug's four steps (a wiped acceptor must not cost an acknowledged write), the
//! catch-up pass making it a member again, a member rolled back in place and a restarted one
//! (never counted before they are caught up), a majority loss (data loss, 503, never
//! re-initialised) that serves nothing until `accept-loss`, which keeps the highest value any
//! acceptor holds, a node configured with another acceptor set (refused), a node restarted
//! after every acceptor was wiped (it remembers its cluster: data loss, never a new cluster),
//! an acceptor left initialising for another cluster by a raced initialisation (claimed), and
//! a catch-up lease left by a node that died (void once the acceptor restarted), and keys held
//! by only one member reaching the recovered acceptor (the pass skips only keys it caught up).

use std::sync::Arc;
use std::time::{Duration, Instant};

use perseus_model::Verdict;
use perseus_node::acceptor::redis::RedisAcceptor;
use perseus_node::acceptor::{
    acceptor_set, Acceptor, AdminAcceptor, Identity, IdentityOp, Standing,
};
use perseus_node::ballot::BallotSource;
use perseus_node::membership;
use perseus_node::server;
use perseus_node::testing::{client, cluster, settings, three_redis, Node, Redis};
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
    accept_loss_remembering(redis, None)
        .await
        .expect("accept-loss")
}

/// The operator's command run with a node's configuration that remembers `remembered`.
async fn accept_loss_remembering(
    redis: &[Redis],
    remembered: Option<&str>,
) -> Result<Vec<String>, membership::AcceptLossError> {
    let acceptors = server::redis_acceptors(&settings(9, redis, 300)).expect("acceptors");
    for a in &acceptors {
        assert!(a.wait_connected(Duration::from_secs(5)).await);
    }
    let acceptors: Vec<Arc<dyn AdminAcceptor>> = acceptors
        .into_iter()
        .map(|a| a as Arc<dyn AdminAcceptor>)
        .collect();
    let ballots = BallotSource::starting_at(9, 77, 1 << 40);
    membership::accept_loss(&acceptors, Duration::from_millis(300), &ballots, remembered).await
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

/// Three nodes whose thrifty phases wait 250 ms (not 10) before asking the third acceptor:
/// on a loaded machine a 10 ms wait is common, and the tests that need a3 left out of a
/// write (the usual state under the thrifty fan-out) would find it there now and then.
async fn patient_cluster() -> (Vec<Redis>, Vec<Node>) {
    let redis = three_redis();
    let mut nodes = Vec::new();
    for id in 1..=3 {
        let mut config = settings(id, &redis, 300);
        config.hedge_ms = 250;
        nodes.push(Node::start(config).await);
    }
    (redis, nodes)
}

/// The cluster id `node` knows, once it knows one (bounded wait).
async fn known(node: &Node) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(id) = node.app.membership.as_ref().and_then(|m| m.known()) {
            return id;
        }
        assert!(Instant::now() < deadline, "the cluster is not known");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
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
    let (redis, nodes) = patient_cluster().await;
    let mut a1 = redis[0].copy_identity().await;
    assert_eq!(
        put(&nodes[0], "k", "?prevExist=false", "v1").await,
        StatusCode::CREATED
    );
    // Precondition (thrifty): a3 holds only its identity record.
    assert_eq!(redis_cli(&redis[2], &["DBSIZE"]), "1");
    a1.restore_in_place().await;
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
    let mark = redis_cli(&redis[0], &["HGET", "perseus-identity", "mark"]);
    redis[0].restart();
    // Marked recovering (a fresh mark) before it counts again; with three nodes inspecting
    // quickly while anything is under way, the whole recovery of one key may pass between two
    // inspections of one node, so the record tells.
    wait_for("a1 marked recovering", Duration::from_secs(10), || {
        redis_cli(&redis[0], &["HGET", "perseus-identity", "mark"]) != mark
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
    let (redis, nodes) = patient_cluster().await;
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
    // Never re-initialised: a few inspections on, the wiped acceptors carry only the
    // cluster's recovering mark (counting for nothing, it tells a node that never learned the
    // cluster that it existed).
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(marked_state(&redis[0]), "recovering");
    assert_eq!(marked_state(&redis[1]), "recovering");
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

/// A node that remembers its cluster (`cluster_file`) and is restarted after every acceptor
/// lost its data: data loss on its first inspection, never a new empty cluster (a node
/// without the file cannot tell empty acceptors from a new cluster). A node without the file
/// that does initialise a new cluster over them is refused as foreign by the one that
/// remembers, and the operator's command refuses to adopt it; run for the remembered cluster
/// it makes the node serve again under the same id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_restarted_after_every_acceptor_was_wiped_remembers_its_cluster() {
    let redis = three_redis();
    let dir = std::env::temp_dir().join(format!("perseus-remember-{}", rand::random::<u64>()));
    let file = dir.join("p1").join("cluster-id");
    let remembering_with = |redis: &[Redis]| {
        let mut config = settings(1, redis, 300);
        config.cluster_file = Some(file.to_string_lossy().into_owned());
        config
    };
    let remembering = || remembering_with(&redis);
    let first = Node::start(remembering()).await;
    assert_eq!(
        put(&first, "k", "?prevExist=false", "v1").await,
        StatusCode::CREATED
    );
    let known = known(&first).await;
    wait_for("the cluster remembered", Duration::from_secs(5), || {
        membership::cluster_file::read(&file)
            .ok()
            .flatten()
            .as_deref()
            == Some(known.as_str())
    })
    .await;
    drop(first);
    for r in &redis {
        flushall(r);
    }
    // Restarted: it remembers the cluster, so empty acceptors are data loss.
    let node = Node::start_unchecked(remembering()).await;
    wait_for("data loss", Duration::from_secs(10), || {
        verdict(&node) == Some(Verdict::DataLoss)
    })
    .await;
    let (status, body) = get(&node, "k").await;
    assert_eq!(
        (status, body["errorCode"].clone()),
        (StatusCode::SERVICE_UNAVAILABLE, 310.into()),
        "{body}"
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for r in &redis {
        assert_eq!(marked_state(r), "recovering");
    }
    // The operator accepts the loss for the remembered cluster: serving again, same id.
    accept_loss_remembering(&redis, Some(&known))
        .await
        .expect("accept-loss");
    wait_for("serving again", Duration::from_secs(10), || {
        verdict(&node) == Some(Verdict::Serving)
    })
    .await;
    assert_eq!(get(&node, "k").await.0, StatusCode::NOT_FOUND);
    // Acceptors on which a node that remembers nothing initialised a new cluster (as it would
    // over wiped ones): the node that remembers refuses them as foreign.
    let other = three_redis();
    let _forgetful = Node::start(settings(2, &other, 300)).await;
    let again = Node::start_unchecked(remembering_with(&other)).await;
    wait_for("the new cluster refused", Duration::from_secs(10), || {
        verdict(&again) == Some(Verdict::DataLoss) && state(&again, 0) == "foreign"
    })
    .await;
    assert_eq!(get(&again, "k").await.0, StatusCode::SERVICE_UNAVAILABLE);
    let refused = accept_loss_remembering(&other, Some(&known)).await;
    assert!(
        matches!(
            refused,
            Err(membership::AcceptLossError::OtherCluster { .. })
        ),
        "{refused:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The state in the identity record of `redis` (empty: no record).
fn marked_state(redis: &Redis) -> String {
    redis_cli(redis, &["HGET", "perseus-identity", "state"])
}

/// Claims `identity` on the acceptor at `url`, as a node's membership task would.
async fn claim(url: &str, standing: Standing, cluster: &str, set: &str) -> RedisAcceptor {
    let a = RedisAcceptor::new(url, Duration::from_millis(300)).expect("acceptor");
    assert!(a.wait_connected(Duration::from_secs(5)).await);
    let identity = Identity {
        cluster: cluster.into(),
        acceptor: a.name().into(),
        standing,
        mark: "m".into(),
        set: set.into(),
        stamp: String::new(),
    };
    a.claim(&identity).await.expect("claim");
    a
}

/// Two initialisations raced while a1 was wiped: a1 holds the intact `initialising` record
/// of one cluster, a2 and a3 the other's. a1 never counted anywhere, so it is claimed for the
/// cluster the others carry and joins it (it stayed "foreign" for good before).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acceptor_left_initialising_for_another_cluster_is_claimed() {
    let redis = three_redis();
    let urls: Vec<String> = redis.iter().map(Redis::url).collect();
    let set = acceptor_set(urls.iter().map(|u| u.trim_start_matches("redis://")));
    claim(&urls[0], Standing::Initialising, "lost-the-race", &set).await;
    claim(&urls[1], Standing::Initialising, "won", &set).await;
    claim(&urls[2], Standing::Initialising, "won", &set).await;
    let mut nodes = Vec::new();
    for id in 1..=3 {
        nodes.push(Node::start_unchecked(settings(id, &redis, 300)).await);
    }
    let all_members = || {
        nodes
            .iter()
            .all(|n| (0..3).all(|i| state(n, i) == "member"))
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !all_members() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let views: Vec<_> = nodes
        .iter()
        .filter_map(|n| n.app.membership.as_ref().map(|m| m.view()))
        .collect();
    let a1 = RedisAcceptor::new(&urls[0], Duration::from_millis(300)).expect("acceptor");
    assert!(a1.wait_connected(Duration::from_secs(5)).await);
    let seen = a1.inspect().await;
    assert!(
        all_members(),
        "three members of one cluster: {views:#?} {seen:?}"
    );
    assert_eq!(
        redis_cli(&redis[0], &["HGET", "perseus-identity", "cluster"]),
        "won"
    );
    assert_eq!(put(&nodes[0], "k", "", "v").await, StatusCode::CREATED);
}

/// A catch-up lease left on a recovering acceptor by a node that died (here: taken for a
/// minute by a node that never runs a pass) blocks nobody once the acceptor's Redis restarts
/// (a host killed and started: the lease was taken under another life of its data); the
/// nodes' own leases last 5 s, so a dead holder blocks for at most that long anyway.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_left_by_a_dead_node_is_void_after_a_restart() {
    let (mut redis, nodes) = cluster().await;
    assert_eq!(put(&nodes[0], "k", "", "v1").await, StatusCode::CREATED);
    let a1 = RedisAcceptor::new(&redis[0].url(), Duration::from_millis(300)).expect("acceptor");
    assert!(a1.wait_connected(Duration::from_secs(5)).await);
    let mut record = a1
        .inspect()
        .await
        .expect("inspect")
        .identity
        .expect("record");
    record.standing = Standing::Recovering;
    record.mark = "dead-nodes-pass".into();
    a1.identity(IdentityOp::Force(record)).await.expect("force");
    let lease = IdentityOp::Lease {
        node: "node-dead".into(),
        ms: 60_000,
    };
    let leased = a1.identity(lease).await.expect("lease");
    assert_eq!(leased.lease.as_deref(), Some("node-dead"));
    wait_for(
        "a1 recovering, left to the dead node",
        Duration::from_secs(5),
        || state(&nodes[1], 0) == "recovering",
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        state(&nodes[1], 0),
        "recovering",
        "the live lease is respected"
    );
    redis[0].restart();
    wait_for(
        "a1 caught up and a member again",
        Duration::from_secs(15),
        || nodes.iter().all(|n| state(n, 0) == "member"),
    )
    .await;
    let (status, body) = get(&nodes[2], "k").await;
    assert_eq!(
        (status, body["node"]["value"].clone()),
        (StatusCode::OK, "v1".into())
    );
}

/// REVIEW (not for main): a claim as `initialising` that lands late (a node's stale
/// decision: `initialise()`'s claim loop, or `decide`'s `Unmarked if finishing`, delayed by a
/// pause or the network) on an acceptor that was a member and has been wiped since. The
/// record is intact (stamped with the life after the wipe), so `decide` joins it as a member
/// without a catch-up pass, although it forgot every write it acknowledged as a member.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_initialising_claim_on_a_wiped_member_never_counts() {
    let (redis, nodes) = cluster().await;
    let known = known(&nodes[0]).await;
    let urls: Vec<String> = redis.iter().map(Redis::url).collect();
    let set = acceptor_set(urls.iter().map(|u| u.trim_start_matches("redis://")));
    // The write lands on a1 and a2 only.
    redis[2].signal("STOP");
    assert_eq!(
        put(&nodes[0], "k", "?prevExist=false", "v1").await,
        StatusCode::CREATED
    );
    redis[2].signal("CONT");
    // a2 loses everything, and the late claim of a stale initialisation lands on it before
    // any node's own `Claim { Recovering }` (one transaction here, so the test is exact).
    let a2 = RedisAcceptor::new(&urls[1], Duration::from_millis(300)).expect("acceptor");
    let name = a2.name().to_string();
    let script = format!(
        "{}\n{}",
        include_str!("../src/acceptor/life.lua"),
        include_str!("../src/acceptor/identity.lua")
    );
    let mut conn = redis::Client::open(urls[1].as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let _: redis::Value = redis::pipe()
        .atomic()
        .cmd("FLUSHALL")
        .cmd("EVAL")
        .arg(&script)
        .arg(1)
        .arg("perseus-identity")
        .arg("claim")
        .arg(&known)
        .arg(&name)
        .arg("initialising")
        .arg("m")
        .arg(&set)
        .query_async(&mut conn)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let a2 = state(&nodes[2], 1);
    let record = redis_cli(&redis[1], &["HGET", "perseus-identity", "state"]);
    // a1 away: a2 (wiped) and a3 (never saw v1) are all that is left.
    redis[0].signal("STOP");
    let (status, body) = get(&nodes[2], "k").await;
    assert!(
        status == StatusCode::SERVICE_UNAVAILABLE
            || (status == StatusCode::OK && body["node"]["value"] == "v1"),
        "a2 is {a2} (record {record}); GET after the wipe: {status} {body}"
    );
    assert_ne!(
        put(&nodes[2], "k", "?prevExist=false", "v2").await,
        StatusCode::CREATED,
        "a2 is {a2} (record {record}); a second create was acknowledged"
    );
    redis[0].signal("CONT");
}

/// Stores `n` keys `{prefix}{i}` on `redis` as one accepted write each left them (the value is
/// the key's name), in one script run.
fn store_keys(redis: &Redis, prefix: &str, n: usize) {
    let script = "for i = 1, tonumber(ARGV[2]) do local k = ARGV[1] .. i \
        redis.call('HSET', 'perseus:' .. k, 'pc', '1', 'pp', '9', 'pi', '1', \
        'ac', '1', 'ap', '9', 'ai', '1', 'hv', '1', 'v', k) end return 1";
    redis_cli(redis, &["EVAL", script, "0", prefix, &n.to_string()]);
}

/// How many of the keys `{prefix}1..={n}` `redis` holds with their value.
fn keys_held(redis: &Redis, prefix: &str, n: usize) -> usize {
    let script = "local held = 0 for i = 1, tonumber(ARGV[2]) do local k = ARGV[1] .. i \
        if redis.call('HGET', 'perseus:' .. k, 'v') == k then held = held + 1 end end \
        return held";
    redis_cli(redis, &["EVAL", script, "0", prefix, &n.to_string()])
        .parse()
        .expect("a count")
}

/// The pass lists every other acceptor and skips the keys it already caught up from an
/// earlier one: keys held by only one of the members (thrifty writes, an acceptor that was
/// away) still reach the recovered acceptor, whichever member is listed first, across several
/// SCAN pages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_members_keys_reach_the_recovered_acceptor() {
    let (redis, nodes) = cluster().await;
    known(&nodes[0]).await;
    for r in &redis[..2] {
        store_keys(r, "both/", 1200);
    }
    store_keys(&redis[0], "a1-only/", 300);
    store_keys(&redis[1], "a2-only/", 500);
    flushall(&redis[2]);
    // The record tells (the view of one node may miss the short recovering spell). Generous:
    // on a loaded machine the rounds time out, and the pass stops and resumes.
    wait_for(
        "a3 marked and a member again",
        Duration::from_secs(120),
        || {
            redis_cli(&redis[2], &["HGET", "perseus-identity", "state"]) == "member"
                && nodes.iter().all(|n| state(n, 2) == "member")
        },
    )
    .await;
    assert_eq!(keys_held(&redis[2], "both/", 1200), 1200);
    assert_eq!(keys_held(&redis[2], "a1-only/", 300), 300);
    assert_eq!(keys_held(&redis[2], "a2-only/", 500), 500);
}
