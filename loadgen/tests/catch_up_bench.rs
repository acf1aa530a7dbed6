//! The catch-up benchmark: how fast a wiped acceptor is brought back, in keys caught up per
//! second, on real redis-servers (loopback processes, AOF with fsync always) with the
//! production code. It prints numbers and asserts only that the work was done (every key on
//! the recovering acceptor, no violation under load): performance is reported, never asserted.
//! Ignored by default (minutes of both cores); run it with `make bench-catchup` (release
//! build, one test at a time; `CATCHUP_KEYS`, default 100,000 keys; `CATCHUP_PER_KEY`, default
//! 2,000, the keys of the one-by-one comparison; `BENCH_ONLY=batches` runs one part).
//!
//! It lives with the load generator because its last part runs the load generator's default
//! load (one connection per node, each on its own keys) against three in-process nodes.
//!
//! Measurements, each on fresh servers:
//! - `batch`: `recovery::catch_up_batch` over SCAN pages of a member, driven directly (no
//!   nodes, no load): the rate of the catch-up itself;
//! - `one-by-one` and `concurrent`: the same rounds one key at a time (`catch_up_key`, the
//!   former pass), sequentially and 64 at once, on the first `CATCHUP_PER_KEY` keys: what the
//!   batches are measured against;
//! - `nodes`: end to end. Three nodes serve; every acceptor holds the keys; a3 is FLUSHALLed;
//!   the nodes find it, mark it recovering, run their catch-up passes and promote it. Timed
//!   from the FLUSHALL and from the first pass progress seen to every node seeing a3 a member,
//!   without load and with the default load running throughout.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::stream::{self, StreamExt};
use perseus_node::acceptor::redis::RedisAcceptor;
use perseus_node::acceptor::{acceptor_set, Acceptor, AdminAcceptor, Identity, Standing};
use perseus_node::ballot::BallotSource;
use perseus_node::recovery::{catch_up_batch, catch_up_key};
use perseus_node::testing::{settings, three_redis, Node, Redis};
use redis::aio::MultiplexedConnection;

const CLUSTER: &str = "bench";
const QUORUM: usize = 2;
/// The node's default acceptor timeout.
const TIMEOUT: Duration = Duration::from_millis(300);
/// Keys per catch-up call in the direct measurement (what a SCAN page with COUNT 1000 gives).
const PAGE: usize = 1000;
/// Keys per pipelined write while loading the acceptors.
const PRELOAD_PIPELINE: usize = 1000;

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace(['_', ','], "").parse().ok())
        .unwrap_or(default)
}

fn key(i: usize) -> String {
    format!("bench/{i:07}")
}

/// A plain connection without a response timeout (a big pipeline on a busy machine outlasts
/// the client's default).
async fn connection(redis: &Redis) -> MultiplexedConnection {
    let config = redis::AsyncConnectionConfig::new().set_response_timeout(None);
    redis::Client::open(redis.url())
        .expect("client")
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .expect("connection")
}

/// Stores `n` keys on `redis` as an acceptor holds them after one accepted write each (the
/// same ballot and a 64-byte value), in pipelined batches: the state a cluster has after
/// `n` writes, without making them one by one.
async fn preload(redis: &Redis, n: usize) {
    let mut c = connection(redis).await;
    let value = "x".repeat(64);
    for start in (0..n).step_by(PRELOAD_PIPELINE) {
        let mut pipe = redis::pipe();
        for i in start..(start + PRELOAD_PIPELINE).min(n) {
            pipe.cmd("HSET")
                .arg(format!("perseus:{}", key(i)))
                .arg(&[
                    "pc", "1", "pp", "9", "pi", "1", "ac", "1", "ap", "9", "ai", "1",
                ])
                .arg("hv")
                .arg("1")
                .arg("v")
                .arg(format!("{value}{i}"))
                .ignore();
        }
        let () = pipe.query_async(&mut c).await.expect("preload");
    }
}

async fn dbsize(redis: &Redis) -> usize {
    let mut c = connection(redis).await;
    redis::cmd("DBSIZE")
        .query_async(&mut c)
        .await
        .expect("DBSIZE")
}

/// Every key's value on `recovered` equals the member's (a sample of 200 and the key count).
async fn check_caught_up(member: &Redis, recovered: &Redis, n: usize) {
    assert!(
        dbsize(recovered).await > n,
        "not every key reached the recovered acceptor"
    );
    let (mut m, mut r) = (connection(member).await, connection(recovered).await);
    for i in (0..n).step_by((n / 200).max(1)) {
        let hash = format!("perseus:{}", key(i));
        let get = |c: &mut MultiplexedConnection| {
            let mut c = c.clone();
            let hash = hash.clone();
            async move {
                redis::cmd("HGET")
                    .arg(&hash)
                    .arg("v")
                    .query_async::<Option<String>>(&mut c)
                    .await
                    .expect("HGET")
            }
        };
        let expected = get(&mut m).await;
        assert!(expected.is_some(), "{hash} missing on the member");
        assert_eq!(get(&mut r).await, expected, "{hash}");
    }
}

/// Three connected acceptors of cluster `bench`: a1 and a2 members holding `n` keys, a3
/// recovering and empty.
async fn recovering_cluster(n: usize) -> (Vec<Redis>, Vec<Arc<dyn Acceptor>>, RedisAcceptor) {
    let redis = three_redis();
    let mut acceptors = Vec::new();
    for r in &redis {
        let a = RedisAcceptor::new(&r.url(), TIMEOUT).expect("acceptor");
        assert!(a.wait_connected(Duration::from_secs(5)).await);
        acceptors.push(a);
    }
    let set = acceptor_set(acceptors.iter().map(|a| a.name()));
    for (i, a) in acceptors.iter().enumerate() {
        // Claimed (stamped with the Redis's current life) before the keys are loaded: the
        // loading is plain HSETs, which leave the life as it is.
        let standing = if i == 2 {
            Standing::Recovering
        } else {
            Standing::Member
        };
        let identity = Identity {
            cluster: CLUSTER.into(),
            acceptor: a.name().into(),
            standing,
            mark: "m".into(),
            set: set.clone(),
            stamp: String::new(),
        };
        a.claim(&identity).await.expect("claim");
        a.set_cluster(Some(CLUSTER));
    }
    preload(&redis[0], n).await;
    preload(&redis[1], n).await;
    let acceptors: Vec<Arc<dyn Acceptor>> = acceptors
        .into_iter()
        .map(|a| Arc::new(a) as Arc<dyn Acceptor>)
        .collect();
    let lister = RedisAcceptor::new(&redis[0].url(), TIMEOUT * 10).expect("acceptor");
    assert!(lister.wait_connected(Duration::from_secs(5)).await);
    (redis, acceptors, lister)
}

fn rate(keys: usize, took: Duration) -> f64 {
    keys as f64 / took.as_secs_f64()
}

/// The catch-up batches over SCAN pages of a1, as a node's pass runs them.
async fn measure_batch(n: usize) {
    let (redis, acceptors, lister) = recovering_cluster(n).await;
    let ballots = BallotSource::new(1, 7);
    let started = Instant::now();
    let (mut cursor, mut done, mut failed, mut calls) = (0u64, 0usize, 0usize, 0usize);
    let mut page = Vec::new();
    loop {
        let (next, keys) = lister.scan_keys(cursor).await.expect("SCAN");
        page.extend(keys);
        if page.len() >= PAGE || (next == 0 && !page.is_empty()) {
            let results = catch_up_batch(&acceptors, QUORUM, TIMEOUT, &ballots, &page, 2).await;
            calls += 1;
            failed += results.iter().filter(|r| r.is_err()).count();
            done += page.len();
            page.clear();
        }
        if next == 0 {
            break;
        }
        cursor = next;
    }
    let took = started.elapsed();
    check_caught_up(&redis[0], &redis[2], n).await;
    println!(
        "catch-up batch: {done} keys in {:.2} s = {:.0} keys/s ({calls} pages, {failed} keys \
         failed after retries; no nodes, no load)",
        took.as_secs_f64(),
        rate(done, took)
    );
    assert_eq!(done, n);
}

/// One round per key (`catch_up_key`), `in_flight` at once (1: the former pass).
async fn measure_per_key(n: usize, in_flight: usize) {
    let (_redis, acceptors, _) = recovering_cluster(n).await;
    let ballots = BallotSource::new(1, 7);
    let keys: Vec<String> = (0..n).map(key).collect();
    let started = Instant::now();
    let failed = stream::iter(keys.iter().map(|k| {
        let (acceptors, ballots) = (&acceptors, &ballots);
        async move { catch_up_key(acceptors, QUORUM, TIMEOUT, ballots, k, 2).await }
    }))
    .buffer_unordered(in_flight)
    .filter(|r| std::future::ready(r.is_err()))
    .count()
    .await;
    let took = started.elapsed();
    println!(
        "catch-up one key per round, {in_flight} in flight: {n} keys in {:.2} s = {:.0} keys/s \
         ({failed} failed, no retries)",
        took.as_secs_f64(),
        rate(n, took)
    );
}

/// What the polling saw of a3 in the nodes' views.
#[derive(Default)]
struct Seen {
    recovering: Option<Duration>,
    pass: Option<Duration>,
    member: Option<Duration>,
}

/// End to end through three nodes: a3 wiped with `n` keys everywhere, timed until every node
/// sees it a member again; with `load`, the load generator's default load runs throughout.
async fn measure_nodes(n: usize, load: bool) {
    let redis = three_redis();
    let mut nodes = Vec::new();
    for id in 1..=3 {
        nodes.push(Node::start(settings(id, &redis, TIMEOUT.as_millis() as u64)).await);
    }
    for r in &redis {
        preload(r, n).await;
    }
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let load_run = load.then(|| {
        let mut config =
            loadgen::config::Config::new(nodes.iter().map(|n| n.url.clone()).collect());
        config.duration = Duration::from_secs(900);
        config.run_id = format!("catchup-{}", loadgen::config::default_run_id());
        tokio::spawn(loadgen::run(
            config,
            Box::new(std::io::sink()),
            async move {
                let _ = stopped.await;
            },
        ))
    });
    if load {
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    let mut c = connection(&redis[2]).await;
    let () = redis::cmd("FLUSHALL")
        .query_async(&mut c)
        .await
        .expect("FLUSHALL");
    let wiped = Instant::now();
    let mut seen = Seen::default();
    let views = |nodes: &[Node]| {
        nodes
            .iter()
            .filter_map(|node| node.app.membership.as_ref().map(|m| m.view()))
            .map(|view| {
                let a3 = &view.acceptors[2];
                (a3.state.to_string(), a3.catch_up.is_some())
            })
            .collect::<Vec<_>>()
    };
    while wiped.elapsed() < Duration::from_secs(900) {
        let now = views(&nodes);
        if seen.recovering.is_none() && now.iter().any(|(s, _)| s == "recovering") {
            seen.recovering = Some(wiped.elapsed());
        }
        if seen.pass.is_none() && now.iter().any(|(_, pass)| *pass) {
            seen.pass = Some(wiped.elapsed());
        }
        if seen.recovering.is_some() && now.iter().all(|(s, _)| s == "member") {
            seen.member = Some(wiped.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let load_text = match load_run {
        Some(run) => {
            let _ = stop.send(());
            let result = run.await.expect("load task").expect("load run");
            let s = &result.summary;
            assert_eq!(s.total_violations(), 0, "violations under load");
            format!(
                "with the default load ({:.0} ok ops/s, 0 violations)",
                s.total_ok() as f64 / s.elapsed.as_secs_f64()
            )
        }
        None => "without load".to_string(),
    };
    let Seen {
        recovering,
        pass,
        member: Some(member),
    } = seen
    else {
        panic!("a3 was not a member again within 900 s");
    };
    check_caught_up(&redis[0], &redis[2], n).await;
    let from_pass = pass.map(|p| member.saturating_sub(p));
    println!(
        "catch-up through 3 nodes, {load_text}: {n} keys; a3 marked recovering after {:.2} s, \
         first pass progress after {:.2} s, a member again after {:.2} s: {:.0} keys/s from the \
         wipe{}",
        recovering.unwrap_or_default().as_secs_f64(),
        pass.unwrap_or_default().as_secs_f64(),
        member.as_secs_f64(),
        rate(n, member),
        from_pass.map_or(String::new(), |d| format!(
            ", {:.0} keys/s from the first progress seen",
            rate(n, d)
        ))
    );
}

fn keys() -> usize {
    env_number("CATCHUP_KEYS", 100_000)
}

// Run one at a time (`--test-threads=1`, as `make bench-catchup` does): they share the cores.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: make bench-catchup"]
async fn catch_up_rate_1_one_key_per_round() {
    let n = env_number("CATCHUP_PER_KEY", 2_000).min(keys());
    measure_per_key(n, 1).await;
    measure_per_key((n * 5).min(keys()), 64).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: make bench-catchup"]
async fn catch_up_rate_2_batches() {
    measure_batch(keys()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: make bench-catchup"]
async fn catch_up_rate_3_through_nodes() {
    measure_nodes(keys(), false).await;
    measure_nodes(keys(), true).await;
}
