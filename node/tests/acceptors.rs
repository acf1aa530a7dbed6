//! The Redis Lua acceptor against the in-memory rules (a table of cases and a seeded
//! differential test of thousands of random calls), its identity check, its durability
//! across kill -9, its refusal of a Redis that does not fsync, and its quorum-read call,
//! which must write nothing.

use std::collections::HashMap;
use std::time::Duration;

use perseus_node::acceptor::memory::{MemoryAcceptor, MEMORY_CLUSTER};
use perseus_node::acceptor::redis::RedisAcceptor;
use perseus_node::acceptor::rules::Slot;
use perseus_node::acceptor::{
    AcceptReply, Acceptor, AcceptorError, AdminAcceptor, Identity, IdentityOp, IdentityRefusal,
    Inspection, PrepareReply, ReadReply, Standing,
};
use perseus_node::ballot::{Ballot, MAX_COUNTER};
use perseus_node::testing::Redis;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn identity(acceptor: &RedisAcceptor, standing: Standing, mark: &str) -> Identity {
    Identity {
        cluster: MEMORY_CLUSTER.into(),
        acceptor: acceptor.name().into(),
        standing,
        mark: mark.into(),
        set: acceptor.name().into(),
        stamp: String::new(),
    }
}

/// An identity as both acceptors can agree on it: the stamp only as "the current life or
/// not" (a Redis life is a run id and a count; a memory one a counter).
fn comparable(identity: Option<Identity>, life: &str) -> String {
    match identity {
        None => "None".into(),
        Some(id) => format!(
            "{} {} {:?} {} {} level={}",
            id.cluster,
            id.acceptor,
            id.standing,
            id.mark,
            id.set,
            id.stamp == life
        ),
    }
}

fn comparable_inspection(inspection: Inspection) -> String {
    comparable(inspection.identity, &inspection.life)
}

/// A connected Redis acceptor, initialised as a member of the cluster `MEMORY_CLUSTER` (the
/// cluster in-memory acceptors belong to, so both can be compared).
async fn member(redis: &Redis) -> RedisAcceptor {
    let acceptor = RedisAcceptor::new(&redis.url(), Duration::from_secs(2)).expect("acceptor");
    assert!(acceptor.wait_connected(Duration::from_secs(5)).await);
    acceptor
        .claim(&identity(&acceptor, Standing::Member, ""))
        .await
        .expect("claim");
    acceptor.set_cluster(Some(MEMORY_CLUSTER));
    acceptor
}

#[derive(Clone, Debug)]
enum Op {
    Prepare(Ballot),
    Accept(Ballot, Option<&'static str>, Ballot),
}

#[derive(Debug, PartialEq)]
enum Reply {
    Prepare(PrepareReply),
    Accept(AcceptReply),
}

async fn run(acceptor: &dyn Acceptor, key: &str, op: &Op) -> Reply {
    match op {
        Op::Prepare(b) => Reply::Prepare(acceptor.prepare(key, *b).await.expect("prepare")),
        Op::Accept(b, v, next) => {
            Reply::Accept(acceptor.accept(key, *b, *v, *next).await.expect("accept"))
        }
    }
}

/// A slot as stored in Redis (the hash's fields), for comparing states.
async fn redis_slot(connection: &mut redis::aio::MultiplexedConnection, key: &str) -> Slot {
    let h: HashMap<String, String> = redis::cmd("HGETALL")
        .arg(format!("perseus:{key}"))
        .query_async(connection)
        .await
        .expect("HGETALL");
    let n = |f: &str| h.get(f).map_or(0, |v| v.parse::<u64>().expect("a number"));
    Slot {
        promise: Ballot::new(n("pc"), n("pp"), n("pi")),
        accepted: Ballot::new(n("ac"), n("ap"), n("ai")),
        value: (h.get("hv").map(String::as_str) == Some("1"))
            .then(|| h.get("v").cloned().unwrap_or_default()),
    }
}

fn b(counter: u64, proposer: u64, incarnation: u64) -> Ballot {
    Ballot::new(counter, proposer, incarnation)
}

/// Sequences of calls on one key; Lua and rules must give the same replies.
fn cases() -> Vec<Vec<Op>> {
    use Op::*;
    vec![
        vec![
            Prepare(b(1, 1, 1)),
            Prepare(b(1, 1, 1)),
            Prepare(b(0, 9, 9)),
        ],
        vec![
            Prepare(b(2, 1, 1)),
            Accept(b(2, 1, 1), Some("a"), b(3, 1, 1)),
            Accept(b(3, 1, 1), Some("b"), b(4, 1, 1)),
            Accept(b(3, 1, 1), Some("c"), b(5, 1, 1)),
            Prepare(b(4, 1, 1)),
            Prepare(b(4, 2, 1)),
        ],
        vec![
            Prepare(b(5, 2, 1)),
            Accept(b(4, 1, 1), Some("low"), b(6, 1, 1)),
            Accept(b(5, 2, 1), None, b(6, 2, 1)),
            Prepare(b(7, 1, 1)),
        ],
        vec![
            // Accept without prepare on a fresh key (one round trip after a promise elsewhere).
            Accept(b(3, 1, 7), Some("x"), b(4, 1, 7)),
            Prepare(b(3, 2, 0)),
            Prepare(b(4, 1, 6)),
            Prepare(b(4, 1, 8)),
            Accept(b(4, 1, 8), Some("y"), b(5, 1, 8)),
            Prepare(b(1, 1, 1)),
        ],
        vec![
            // Big numbers survive the trip through Lua's doubles.
            Prepare(b((1 << 53) - 2, u64::from(u32::MAX), u64::from(u32::MAX))),
            Accept(
                b((1 << 53) - 2, u64::from(u32::MAX), u64::from(u32::MAX)),
                Some("big"),
                b((1 << 53) - 1, 1, 1),
            ),
            Prepare(b((1 << 53) - 1, 1, 1)),
            Prepare(b((1 << 53) - 1, 1, 2)),
        ],
        vec![
            // A value with characters that need care in Lua and JSON.
            Prepare(b(1, 1, 1)),
            Accept(b(1, 1, 1), Some("{\"v\":\"a\\nb\"} ∑ \u{0}"), b(2, 1, 1)),
            Prepare(b(3, 1, 1)),
        ],
    ]
}

#[tokio::test]
async fn lua_scripts_and_rules_agree() {
    let redis = Redis::start();
    let lua = member(&redis).await;
    for (i, case) in cases().iter().enumerate() {
        let memory = MemoryAcceptor::new(lua.name());
        let key = format!("case-{i}");
        for (step, op) in case.iter().enumerate() {
            let expected = run(&memory, &key, op).await;
            let got = run(&lua, &key, op).await;
            assert_eq!(got, expected, "case {i} step {step}: {op:?}");
        }
    }
}

#[tokio::test]
async fn promises_survive_kill_9() {
    let mut redis = Redis::start();
    let high = b(1000, 2, 5);
    {
        let acceptor = member(&redis).await;
        acceptor.prepare("k", b(10, 1, 1)).await.expect("prepare");
        let accepted = acceptor
            .accept("k", b(10, 1, 1), Some("v"), high)
            .await
            .expect("accept");
        assert_eq!(accepted, AcceptReply::Accepted);
    }
    redis.restart();
    let acceptor = RedisAcceptor::new(&redis.url(), Duration::from_secs(2)).expect("acceptor");
    assert!(acceptor.wait_connected(Duration::from_secs(5)).await);
    acceptor.set_cluster(Some(MEMORY_CLUSTER));
    assert_eq!(
        acceptor.prepare("k", b(999, 9, 9)).await.expect("prepare"),
        PrepareReply::Conflict(high),
        "the promise was forgotten across kill -9"
    );
    // A restarted Redis cannot prove it lost nothing (it might have been restored from an
    // old file): it answers as recovering until caught up, and still holds what it had.
    assert_eq!(
        acceptor.prepare("k", b(1001, 1, 1)).await,
        Err(AcceptorError::Recovering)
    );
    let mut connection = redis::Client::open(redis.url())
        .expect("client")
        .get_multiplexed_async_connection()
        .await
        .expect("connection");
    let slot = redis_slot(&mut connection, "k").await;
    assert_eq!(
        (slot.accepted, slot.value.as_deref()),
        (b(10, 1, 1), Some("v"))
    );
}

/// The life of a Redis's data (`life.lua`): a member answers as one only while its record is
/// stamped with the current life. A restore while the same process runs (FLUSHALL, then
/// RESTORE of the record as it was, in one transaction) makes it answer as recovering at
/// once, on a connection opened before; the identity script calls it suspect, and
/// `suspect` + a catch-up `promote` under the new life make it a member again.
#[tokio::test]
async fn a_member_restored_in_place_answers_as_recovering() {
    let redis = Redis::start();
    let acceptor = member(&redis).await;
    let mut copy = redis.copy_identity().await;
    acceptor.prepare("k", b(5, 1, 1)).await.expect("prepare");
    assert!(acceptor.inspect().await.expect("inspect").level());
    copy.restore_in_place().await;
    assert_eq!(
        acceptor.prepare("k", b(6, 1, 1)).await,
        Err(AcceptorError::Recovering)
    );
    assert_eq!(acceptor.read("k").await, Err(AcceptorError::Recovering));
    let seen = acceptor.inspect().await.expect("inspect");
    assert!(!seen.level(), "{seen:?}");
    let suspect = IdentityOp::Suspect {
        cluster: MEMORY_CLUSTER.into(),
        mark: "m9".into(),
    };
    let marked = acceptor.identity(suspect).await.expect("suspect");
    assert_eq!(
        marked.identity.as_ref().map(|id| id.standing),
        Some(Standing::Recovering)
    );
    let promote = IdentityOp::Promote {
        cluster: MEMORY_CLUSTER.into(),
        mark: "m9".into(),
        life: marked.life.clone(),
    };
    let promoted = acceptor.identity(promote).await.expect("promote");
    assert!(promoted.level(), "{promoted:?}");
    assert!(matches!(
        acceptor.prepare("k", b(7, 1, 1)).await,
        Ok(PrepareReply::Promised { .. })
    ));
}

/// `CONFIG RESETSTAT` would set back the counts the life is made of, so a restore in place
/// followed by it could bring back the life the restored record was stamped with: the
/// acceptors' Redis (compose/redis.conf, the test harness) denies it, and denies changing
/// that rule at runtime; the restored member stays recovering.
#[tokio::test]
async fn config_resetstat_is_denied_so_a_restore_stays_detected() {
    let redis = Redis::start();
    let acceptor = member(&redis).await;
    let mut copy = redis.copy_identity().await;
    copy.restore_in_place().await;
    for command in [
        vec!["CONFIG", "RESETSTAT"],
        vec!["ACL", "SETUSER", "default", "+config|resetstat"],
    ] {
        let denied: redis::RedisResult<()> = redis::cmd(command[0])
            .arg(&command[1..])
            .query_async(copy.connection())
            .await;
        let text = format!("{denied:?}");
        assert!(
            text.to_lowercase().contains("noperm"),
            "{command:?}: {text}"
        );
    }
    assert_eq!(
        acceptor.prepare("k", b(6, 1, 1)).await,
        Err(AcceptorError::Recovering)
    );
    assert!(!acceptor.inspect().await.expect("inspect").level());
}

/// A join lands only under the life its deciding inspection saw: an initialising claim that
/// landed after a wipe (a late claim on a wiped member) is not joined by a join decided from
/// an inspection made before the wipe. The same on Redis and in memory.
#[tokio::test]
async fn a_join_decided_before_a_wipe_never_lands_on_a_later_claim() {
    let redis = Redis::start();
    let on_redis = RedisAcceptor::new(&redis.url(), Duration::from_secs(2)).expect("acceptor");
    assert!(on_redis.wait_connected(Duration::from_secs(5)).await);
    let in_memory = MemoryAcceptor::blank(on_redis.name());
    let both: [(&dyn AdminAcceptor, bool); 2] = [(&on_redis, true), (&in_memory, false)];
    let mut connection = redis::Client::open(redis.url())
        .expect("client")
        .get_multiplexed_async_connection()
        .await
        .expect("connection");
    for (acceptor, is_redis) in both {
        let claim = IdentityOp::Claim(identity(&on_redis, Standing::Initialising, ""));
        let seen = acceptor.identity(claim.clone()).await.expect("claim");
        // Wiped, then the same claim lands again (late).
        if is_redis {
            let () = redis::cmd("FLUSHALL")
                .query_async(&mut connection)
                .await
                .expect("FLUSHALL");
        } else {
            in_memory.wipe();
        }
        let again = acceptor.identity(claim).await.expect("late claim");
        assert_ne!(seen.life, again.life);
        let join = |life: &str| IdentityOp::Join {
            cluster: MEMORY_CLUSTER.into(),
            life: life.into(),
        };
        let stale = acceptor.identity(join(&seen.life)).await.expect("join");
        assert_eq!(
            stale.identity.map(|id| id.standing),
            Some(Standing::Initialising),
            "{}",
            acceptor.name()
        );
        let fresh = acceptor.identity(join(&again.life)).await.expect("join");
        assert_eq!(fresh.identity.map(|id| id.standing), Some(Standing::Member));
    }
}

/// A member turned into a replica of another Redis (a full resync replaces its whole dataset
/// in the same process, run id unchanged) and detached again answers as recovering: the
/// other Redis may hold an old copy of it.
#[tokio::test]
async fn a_member_resynced_from_a_replica_master_answers_as_recovering() {
    let redis = Redis::start();
    let old_copy = Redis::start();
    let acceptor = member(&redis).await;
    acceptor.prepare("k", b(5, 1, 1)).await.expect("prepare");
    assert!(acceptor.inspect().await.expect("inspect").level());
    let mut connection = redis::Client::open(redis.url())
        .expect("client")
        .get_multiplexed_async_connection()
        .await
        .expect("connection");
    // The old copy: this member's identity record as it is now (a backup of it).
    let identity: Vec<u8> = redis::cmd("DUMP")
        .arg("perseus-identity")
        .query_async(&mut connection)
        .await
        .expect("DUMP");
    let mut copy = redis::Client::open(old_copy.url())
        .expect("client")
        .get_multiplexed_async_connection()
        .await
        .expect("connection to the copy");
    let () = redis::cmd("RESTORE")
        .arg("perseus-identity")
        .arg(0)
        .arg(identity)
        .query_async(&mut copy)
        .await
        .expect("RESTORE on the copy");
    let port = old_copy
        .url()
        .rsplit(':')
        .next()
        .and_then(|p| p.trim_end_matches('/').parse::<u16>().ok())
        .expect("port of the second redis-server");
    let () = redis::cmd("REPLICAOF")
        .arg("127.0.0.1")
        .arg(port)
        .query_async(&mut connection)
        .await
        .expect("REPLICAOF");
    // Wait for the full resync (the copy's dataset, identity included, replaces ours).
    for _ in 0..100 {
        let info: String = redis::cmd("INFO")
            .arg("replication")
            .query_async(&mut connection)
            .await
            .expect("INFO");
        if info.contains("master_link_status:up") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let () = redis::cmd("REPLICAOF")
        .arg("NO")
        .arg("ONE")
        .query_async(&mut connection)
        .await
        .expect("REPLICAOF NO ONE");
    let seen = acceptor.inspect().await.expect("inspect");
    assert!(!seen.level(), "{seen:?}");
}

/// Data written before the `hv` field existed keeps its value in `v` alone: both scripts read
/// it as a value (never as "no value", which would make every such key read as missing).
#[tokio::test]
async fn a_value_without_the_hv_field_is_read_as_a_value() {
    let redis = Redis::start();
    let acceptor = member(&redis).await;
    let mut connection = redis::Client::open(redis.url())
        .expect("client")
        .get_multiplexed_async_connection()
        .await
        .expect("connection");
    let () = redis::cmd("HSET")
        .arg("perseus:k")
        .arg(&[
            "pc", "5", "pp", "1", "pi", "1", "ac", "5", "ap", "1", "ai", "1", "v", "old",
        ])
        .query_async(&mut connection)
        .await
        .expect("HSET");
    let expected = ReadReply {
        accepted: b(5, 1, 1),
        value: Some("old".into()),
    };
    assert_eq!(acceptor.read("k").await, Ok(expected));
    assert_eq!(
        acceptor.prepare("k", b(6, 1, 1)).await,
        Ok(PrepareReply::Promised {
            accepted: b(5, 1, 1),
            value: Some("old".into())
        })
    );
}

/// `no-appendfsync-on-rewrite yes` and an evicting `maxmemory-policy` are refused, and the
/// settings are read again at every inspection: a Redis switched at runtime is refused from
/// then on (its connection dropped) and accepted again once fixed.
#[tokio::test]
async fn persistence_settings_are_checked_at_every_inspection() {
    let redis = Redis::start();
    let acceptor = member(&redis).await;
    let config = |args: &[&str]| {
        let status = std::process::Command::new("redis-cli")
            .args(["-p", &redis.port.to_string(), "CONFIG", "SET"])
            .args(args)
            .status()
            .expect("redis-cli runs");
        assert!(status.success());
    };
    assert!(acceptor.inspect().await.is_ok());
    config(&["no-appendfsync-on-rewrite", "yes"]);
    assert!(matches!(
        acceptor.inspect().await,
        Err(AcceptorError::NotDurable(_))
    ));
    assert!(acceptor
        .durability_problem()
        .is_some_and(|p| p.contains("no-appendfsync-on-rewrite")));
    config(&["no-appendfsync-on-rewrite", "no"]);
    config(&["maxmemory", "1gb", "maxmemory-policy", "allkeys-lru"]);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!acceptor.is_connected() || acceptor.inspect().await.is_err());
    config(&["maxmemory-policy", "noeviction"]);
    assert!(acceptor.wait_connected(Duration::from_secs(5)).await);
    assert!(acceptor.inspect().await.is_ok());
}

#[tokio::test]
async fn scripts_are_reloaded_after_script_flush() {
    let redis = Redis::start();
    let acceptor = member(&redis).await;
    acceptor.prepare("k", b(1, 1, 1)).await.expect("prepare");
    let status = std::process::Command::new("redis-cli")
        .args(["-p", &redis.port.to_string(), "SCRIPT", "FLUSH"])
        .status()
        .expect("redis-cli runs");
    assert!(status.success());
    assert!(matches!(
        acceptor.prepare("k", b(2, 1, 1)).await,
        Ok(PrepareReply::Promised { .. })
    ));
}

/// One random call of the differential test.
#[derive(Clone, Debug)]
enum Step {
    Prepare(Ballot),
    Accept(Ballot, Option<String>, Ballot),
    /// FLUSHALL (the memory acceptor: wipe): slots and identity gone.
    Flush,
    /// Write the identity if none (member or recovering, with a mark).
    Claim(Standing, &'static str),
    /// Recovering -> member for this mark.
    Promote(&'static str),
}

/// A ballot from a small space (so equal and neighbouring ballots are frequent), sometimes at
/// the edge of the exact range, sometimes beyond it.
fn random_ballot(rng: &mut StdRng, step: usize) -> Ballot {
    // The counters climb with the steps, so fresh ballots keep beating the stored ones.
    let base = step as u64 / 8;
    match rng.random_range(0..40) {
        0 => Ballot::new(MAX_COUNTER - rng.random_range(0..2), 1, MAX_COUNTER),
        1 => Ballot::new(MAX_COUNTER + 1, 1, 1),
        2 => Ballot::new(1, 1, MAX_COUNTER + rng.random_range(1..3)),
        3 => Ballot::ZERO,
        _ => Ballot::new(
            base + rng.random_range(0..4),
            rng.random_range(0..3),
            rng.random_range(0..3),
        ),
    }
}

fn random_step(rng: &mut StdRng, step: usize) -> Step {
    match rng.random_range(0..200) {
        0..=89 => Step::Prepare(random_ballot(rng, step)),
        90..=189 => {
            let value = match rng.random_range(0..4) {
                0 => None,
                1 => Some(String::new()),
                2 => Some("{\"v\":\"a\\nb\"} \u{2211} \u{0}".to_string()),
                _ => Some(format!("v{}", rng.random_range(0..1000))),
            };
            let ballot = random_ballot(rng, step);
            // Mostly next > ballot (what proposers send), sometimes anything.
            let next = if rng.random_bool(0.8) {
                Ballot::new(ballot.counter.saturating_add(rng.random_range(0..3)), 1, 2)
            } else {
                random_ballot(rng, step)
            };
            Step::Accept(ballot, value, next)
        }
        190 => Step::Flush,
        191..=196 => Step::Claim(
            if rng.random_bool(0.5) {
                Standing::Member
            } else {
                Standing::Recovering
            },
            ["m1", "m2"][rng.random_range(0..2)],
        ),
        _ => Step::Promote(["m1", "m2"][rng.random_range(0..2)]),
    }
}

/// Answers compared between the two: replies, and errors by kind (the Lua and Rust texts of
/// a refused ballot differ; the refusal must not).
fn kind<T: std::fmt::Debug>(result: &Result<T, AcceptorError>) -> String {
    match result {
        Ok(reply) => format!("{reply:?}"),
        Err(AcceptorError::Protocol(_)) => "invalid ballot".into(),
        Err(e) => format!("{e:?}"),
    }
}

/// The differential test: thousands of random calls (seeded, `DIFF_SEED`/`DIFF_STEPS` to
/// change) on a few keys, against the Lua scripts on a real redis-server and against the
/// in-memory rules: identical answers and identical states after every call.
#[tokio::test]
async fn differential_lua_against_rules() {
    let seed: u64 = std::env::var("DIFF_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(22);
    let steps: usize = std::env::var("DIFF_STEPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3000);
    let mut rng = StdRng::seed_from_u64(seed);
    let redis = Redis::start();
    let lua = member(&redis).await;
    let memory = MemoryAcceptor::in_set(lua.name(), lua.name());
    let mut connection = redis::Client::open(redis.url())
        .expect("client")
        .get_multiplexed_async_connection()
        .await
        .expect("connection");
    let keys = ["k0", "k1", "k2", "k3"];
    let (mut counts, mut refused) = (HashMap::new(), 0usize);
    for step in 0..steps {
        let key = keys[rng.random_range(0..keys.len())];
        let what = random_step(&mut rng, step);
        let (got, expected) = match &what {
            Step::Prepare(b) => (
                kind(&lua.prepare(key, *b).await),
                kind(&memory.prepare(key, *b).await),
            ),
            Step::Accept(b, v, next) => (
                kind(&lua.accept(key, *b, v.as_deref(), *next).await),
                kind(&memory.accept(key, *b, v.as_deref(), *next).await),
            ),
            Step::Flush => {
                let _: () = redis::cmd("FLUSHALL")
                    .query_async(&mut connection)
                    .await
                    .expect("FLUSHALL");
                memory.wipe();
                (String::new(), String::new())
            }
            Step::Claim(standing, mark) => {
                let id = identity(&lua, *standing, mark);
                let stored = lua.claim(&id).await.expect("claim");
                (
                    comparable_inspection(stored),
                    comparable(Some(memory.claim(id)), &memory.life()),
                )
            }
            Step::Promote(mark) => {
                let life = lua.inspect().await.expect("inspect").life;
                let op = IdentityOp::Promote {
                    cluster: MEMORY_CLUSTER.into(),
                    mark: mark.to_string(),
                    life,
                };
                let stored = lua.identity(op).await.expect("promote");
                memory.promote(mark);
                (
                    comparable_inspection(stored),
                    comparable(memory.identity(), &memory.life()),
                )
            }
        };
        assert_eq!(got, expected, "seed {seed} step {step}: {what:?} on {key}");
        // The quorum read after every call (no random draw, so the seeds' sequences stay).
        assert_eq!(
            kind(&lua.read(key).await),
            kind(&memory.read(key).await),
            "seed {seed} step {step}: read of {key} after {what:?}"
        );
        refused += usize::from(got.contains("Unmarked") || got.contains("Recovering"));
        *counts
            .entry(got.split(['(', ' ', '{']).next().unwrap_or("").to_string())
            .or_insert(0usize) += 1;
        // A call changes its own key; FLUSHALL changes every key.
        let changed: Vec<&str> = match what {
            Step::Flush => keys.to_vec(),
            _ => vec![key],
        };
        for key in changed {
            assert_eq!(
                redis_slot(&mut connection, key).await,
                memory.slot(key),
                "seed {seed} step {step}: state of {key} after {what:?}"
            );
        }
    }
    eprintln!("differential: {steps} calls, seed {seed}, answers {counts:?}, {refused} refused or recovering");
    assert!(refused > 0, "the identity paths were not exercised");
}

/// A wiped Redis refuses even on a connection opened before the wipe, and changes nothing.
#[tokio::test]
async fn a_wiped_acceptor_refuses_on_an_open_connection() {
    let redis = Redis::start();
    let acceptor = member(&redis).await;
    acceptor.prepare("k", b(5, 1, 1)).await.expect("prepare");
    let status = std::process::Command::new("redis-cli")
        .args(["-p", &redis.port.to_string(), "FLUSHALL"])
        .status()
        .expect("redis-cli runs");
    assert!(status.success());
    assert_eq!(
        acceptor.prepare("k", b(6, 1, 1)).await,
        Err(AcceptorError::Unmarked(IdentityRefusal::Missing))
    );
    assert_eq!(
        acceptor
            .accept("k", b(6, 1, 1), Some("x"), b(7, 1, 1))
            .await,
        Err(AcceptorError::Unmarked(IdentityRefusal::Missing))
    );
    assert_eq!(
        acceptor.read("k").await,
        Err(AcceptorError::Unmarked(IdentityRefusal::Missing))
    );
    assert_eq!(acceptor.inspect().await.expect("inspect").data_keys, 0);
    // A foreign identity is refused too.
    acceptor
        .claim(&Identity {
            cluster: "someone-else".into(),
            ..identity(&acceptor, Standing::Member, "")
        })
        .await
        .expect("claim");
    assert!(matches!(
        acceptor.prepare("k", b(8, 1, 1)).await,
        Err(AcceptorError::Unmarked(IdentityRefusal::Foreign { .. }))
    ));
}

/// A Redis without `appendfsync always` is refused by default, used when allowed.
#[tokio::test]
async fn a_redis_that_does_not_fsync_is_refused() {
    let redis = Redis::start();
    let status = std::process::Command::new("redis-cli")
        .args([
            "-p",
            &redis.port.to_string(),
            "CONFIG",
            "SET",
            "appendfsync",
            "everysec",
        ])
        .status()
        .expect("redis-cli runs");
    assert!(status.success());
    let strict = RedisAcceptor::new(&redis.url(), Duration::from_secs(1)).expect("acceptor");
    assert!(!strict.wait_connected(Duration::from_secs(2)).await);
    let problem = strict.durability_problem().expect("a reason");
    assert!(problem.contains("appendfsync"), "{problem}");
    let lenient = RedisAcceptor::with_durability(&redis.url(), Duration::from_secs(1), false)
        .expect("acceptor");
    assert!(lenient.wait_connected(Duration::from_secs(5)).await);
}

/// One `INFO` section as field -> value.
async fn info(
    connection: &mut redis::aio::MultiplexedConnection,
    section: &str,
) -> HashMap<String, String> {
    let text: String = redis::cmd("INFO")
        .arg(section)
        .query_async(connection)
        .await
        .expect("INFO");
    text.lines()
        .filter_map(|line| line.trim().split_once(':'))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// What a write to Redis would move: the count of changes since the last save (every write
/// to the dataset), the AOF's size (every write appended, and fsynced with `appendfsync
/// always`) and the calls of the write command the scripts use.
async fn write_marks(connection: &mut redis::aio::MultiplexedConnection) -> Vec<(String, String)> {
    let persistence = info(connection, "persistence").await;
    let commands = info(connection, "commandstats").await;
    let field = |map: &HashMap<String, String>, name: &str| {
        (name.to_string(), map.get(name).cloned().unwrap_or_default())
    };
    let hset_calls = commands
        .get("cmdstat_hset")
        .and_then(|stats| stats.split(',').next().map(str::to_string))
        .unwrap_or_default();
    vec![
        field(&persistence, "rdb_changes_since_last_save"),
        field(&persistence, "aof_current_size"),
        ("hset".to_string(), hset_calls),
    ]
}

/// The quorum-read call against a real redis-server (AOF on, fsync always): it answers the
/// accepted ballot and value, and writes nothing: no change counted, the AOF not one byte
/// longer, no HSET run, no hash created for a key never written. Its script is declared
/// `no-writes`, so Redis itself would refuse a write in it.
#[tokio::test]
async fn a_quorum_read_writes_nothing() {
    let redis = Redis::start();
    let acceptor = member(&redis).await;
    let mut connection = redis::Client::open(redis.url())
        .expect("client")
        .get_multiplexed_async_connection()
        .await
        .expect("connection");
    acceptor.prepare("k", b(3, 1, 1)).await.expect("prepare");
    let accepted = acceptor
        .accept("k", b(3, 1, 1), Some("v"), b(4, 1, 1))
        .await
        .expect("accept");
    assert_eq!(accepted, AcceptReply::Accepted);
    let before = write_marks(&mut connection).await;
    assert!(
        before.iter().all(|(_, v)| !v.is_empty() && v != "0"),
        "the marks must be readable and moved by the writes above: {before:?}"
    );
    let calls_before = info(&mut connection, "commandstats").await;
    for _ in 0..100 {
        assert_eq!(
            acceptor.read("k").await,
            Ok(ReadReply {
                accepted: b(3, 1, 1),
                value: Some("v".into())
            })
        );
        assert_eq!(
            acceptor.read("never-written").await,
            Ok(ReadReply {
                accepted: Ballot::ZERO,
                value: None
            })
        );
    }
    assert_eq!(
        write_marks(&mut connection).await,
        before,
        "200 quorum reads wrote to Redis"
    );
    let exists: u64 = redis::cmd("EXISTS")
        .arg("perseus:never-written")
        .query_async(&mut connection)
        .await
        .expect("EXISTS");
    assert_eq!(exists, 0, "a read created the key's hash");
    // The reads did run in Redis (as scripts), 200 of them.
    let evalsha = |stats: &HashMap<String, String>| {
        stats
            .get("cmdstat_evalsha")
            .and_then(|s| s.strip_prefix("calls="))
            .and_then(|s| s.split(',').next())
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let calls_after = info(&mut connection, "commandstats").await;
    assert!(
        evalsha(&calls_after) >= evalsha(&calls_before) + 200,
        "{calls_before:?} -> {calls_after:?}"
    );
    // The promise is untouched: the one-round-trip ballot still works.
    assert_eq!(
        acceptor
            .accept("k", b(4, 1, 1), Some("w"), b(5, 1, 1))
            .await
            .expect("accept"),
        AcceptReply::Accepted
    );
}

/// One random call of the batch differential test: a batch on several keys (some repeated:
/// each key's rule applies in order, in Redis as in memory), or any call of the single-key
/// test.
#[derive(Clone, Debug)]
enum BatchStep {
    PrepareMany(Vec<String>, Ballot),
    AcceptMany(Vec<(String, Option<String>)>, Ballot, Ballot),
    Single(String, Step),
    /// FLUSHALL, then a member's identity again: fresh keys (a key that once promised a
    /// ballot at the edge of the exact range refuses everything after it).
    Fresh,
}

/// A ballot for a batch: often above everything stored so far (the catch-up's fresh ballots,
/// so that batches are promised and accepted, not only refused), otherwise as for one call.
fn batch_ballot(rng: &mut StdRng, step: usize) -> Ballot {
    if rng.random_bool(0.6) {
        Ballot::new(
            step as u64 + 1,
            rng.random_range(0..3),
            rng.random_range(0..3),
        )
    } else {
        random_ballot(rng, step)
    }
}

fn random_batch_step(rng: &mut StdRng, step: usize, keys: &[&str]) -> BatchStep {
    let some_keys = |rng: &mut StdRng| -> Vec<String> {
        (0..rng.random_range(1..=6))
            .map(|_| keys[rng.random_range(0..keys.len())].to_string())
            .collect()
    };
    match rng.random_range(0..20) {
        0..=5 => BatchStep::PrepareMany(some_keys(rng), batch_ballot(rng, step)),
        6 => BatchStep::Fresh,
        7..=12 => {
            let writes = some_keys(rng)
                .into_iter()
                .map(|key| {
                    let value = match rng.random_range(0..4) {
                        0 => None,
                        1 => Some(String::new()),
                        2 => Some("{\"v\":\"a\\nb\"} \u{2211} \u{0}".to_string()),
                        _ => Some(format!("v{}", rng.random_range(0..1000))),
                    };
                    (key, value)
                })
                .collect();
            let ballot = batch_ballot(rng, step);
            let next = if rng.random_bool(0.8) {
                Ballot::new(ballot.counter.saturating_add(rng.random_range(0..3)), 1, 2)
            } else {
                random_ballot(rng, step)
            };
            BatchStep::AcceptMany(writes, ballot, next)
        }
        _ => BatchStep::Single(
            keys[rng.random_range(0..keys.len())].to_string(),
            random_step(rng, step),
        ),
    }
}

/// Answers of a batch call compared between the two, as [`kind`] does for one call.
fn kinds<T: std::fmt::Debug>(answers: &perseus_node::acceptor::Answers<T>) -> String {
    match answers {
        Ok(each) => format!("{:?}", each.iter().map(kind).collect::<Vec<_>>()),
        Err(AcceptorError::Protocol(_)) => "invalid ballot".into(),
        Err(e) => format!("{e:?}"),
    }
}

/// The batch calls of the catch-up pass (`prepare_many.lua`, `accept_many.lua`) against the
/// in-memory rules, mixed with single-key calls, wipes, claims and promotions (seeded,
/// `DIFF_SEED`/`DIFF_STEPS` to change): identical answers per key and identical states of
/// every key after every call.
#[tokio::test]
async fn differential_batches_against_rules() {
    let seed: u64 = std::env::var("DIFF_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(31);
    let steps: usize = std::env::var("DIFF_STEPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2000);
    let mut rng = StdRng::seed_from_u64(seed);
    let redis = Redis::start();
    let lua = member(&redis).await;
    let memory = MemoryAcceptor::new(lua.name());
    let mut connection = redis::Client::open(redis.url())
        .expect("client")
        .get_multiplexed_async_connection()
        .await
        .expect("connection");
    let keys = ["k0", "k1", "k2", "k3", "k4"];
    let (mut batches, mut promised, mut accepted, mut refused) = (0usize, 0usize, 0usize, 0usize);
    let mut conflicts = 0usize;
    for step in 0..steps {
        let what = random_batch_step(&mut rng, step, &keys);
        let (got, expected) = match &what {
            BatchStep::PrepareMany(batch, b) => {
                batches += 1;
                (
                    kinds(&lua.prepare_many(batch, *b).await),
                    kinds(&memory.prepare_many(batch, *b).await),
                )
            }
            BatchStep::AcceptMany(writes, b, next) => {
                batches += 1;
                (
                    kinds(&lua.accept_many(writes, *b, *next).await),
                    kinds(&memory.accept_many(writes, *b, *next).await),
                )
            }
            BatchStep::Single(key, Step::Prepare(b)) => (
                kind(&lua.prepare(key, *b).await),
                kind(&memory.prepare(key, *b).await),
            ),
            BatchStep::Single(key, Step::Accept(b, v, next)) => (
                kind(&lua.accept(key, *b, v.as_deref(), *next).await),
                kind(&memory.accept(key, *b, v.as_deref(), *next).await),
            ),
            BatchStep::Single(_, Step::Flush) => {
                let _: () = redis::cmd("FLUSHALL")
                    .query_async(&mut connection)
                    .await
                    .expect("FLUSHALL");
                memory.wipe();
                (String::new(), String::new())
            }
            BatchStep::Fresh => {
                let _: () = redis::cmd("FLUSHALL")
                    .query_async(&mut connection)
                    .await
                    .expect("FLUSHALL");
                memory.wipe();
                let id = identity(&lua, Standing::Member, "m1");
                let stored = lua.claim(&id).await.expect("claim");
                (
                    comparable_inspection(stored),
                    comparable(Some(memory.claim(id)), &memory.life()),
                )
            }
            BatchStep::Single(_, Step::Claim(standing, mark)) => {
                let id = identity(&lua, *standing, mark);
                let stored = lua.claim(&id).await.expect("claim");
                (
                    comparable_inspection(stored),
                    comparable(Some(memory.claim(id)), &memory.life()),
                )
            }
            BatchStep::Single(_, Step::Promote(mark)) => {
                let life = lua.inspect().await.expect("inspect").life;
                let op = IdentityOp::Promote {
                    cluster: MEMORY_CLUSTER.into(),
                    mark: mark.to_string(),
                    life,
                };
                let stored = lua.identity(op).await.expect("promote");
                memory.promote(mark);
                (
                    comparable_inspection(stored),
                    comparable(memory.identity(), &memory.life()),
                )
            }
        };
        assert_eq!(got, expected, "seed {seed} step {step}: {what:?}");
        if matches!(what, BatchStep::PrepareMany(..) | BatchStep::AcceptMany(..)) {
            promised += got.matches("Promised").count();
            accepted += got.matches("Accepted").count();
            refused += got.matches("Unmarked").count() + got.matches("Recovering").count();
            conflicts += got.matches("Conflict").count();
        }
        for key in keys {
            assert_eq!(
                redis_slot(&mut connection, key).await,
                memory.slot(key),
                "seed {seed} step {step}: state of {key} after {what:?}"
            );
        }
    }
    eprintln!(
        "batch differential: {steps} calls ({batches} batches), seed {seed}: {promised} keys \
         promised, {accepted} accepted, {conflicts} refused for their ballot, {refused} answers \
         refused for the identity or recovering"
    );
    assert!(
        promised > 0 && accepted > 0 && refused > 0,
        "paths not exercised"
    );
}
