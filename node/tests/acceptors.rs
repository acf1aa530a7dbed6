//! The Redis Lua acceptor against the in-memory rules, and its durability across kill -9.

use std::time::Duration;

use perseus_node::acceptor::memory::MemoryAcceptor;
use perseus_node::acceptor::redis::RedisAcceptor;
use perseus_node::acceptor::{AcceptReply, Acceptor, PrepareReply};
use perseus_node::ballot::Ballot;
use perseus_node::testing::Redis;

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
    let lua = RedisAcceptor::new(&redis.url(), Duration::from_secs(2)).expect("acceptor");
    assert!(lua.wait_connected(Duration::from_secs(5)).await);
    for (i, case) in cases().iter().enumerate() {
        let memory = MemoryAcceptor::new("memory");
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
        let acceptor = RedisAcceptor::new(&redis.url(), Duration::from_secs(2)).expect("acceptor");
        assert!(acceptor.wait_connected(Duration::from_secs(5)).await);
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
    assert_eq!(
        acceptor.prepare("k", b(999, 9, 9)).await.expect("prepare"),
        PrepareReply::Conflict(high),
        "the promise was forgotten across kill -9"
    );
    assert_eq!(
        acceptor.prepare("k", b(1001, 1, 1)).await.expect("prepare"),
        PrepareReply::Promised {
            accepted: b(10, 1, 1),
            value: Some("v".into())
        }
    );
}

#[tokio::test]
async fn scripts_are_reloaded_after_script_flush() {
    let redis = Redis::start();
    let acceptor = RedisAcceptor::new(&redis.url(), Duration::from_secs(2)).expect("acceptor");
    assert!(acceptor.wait_connected(Duration::from_secs(5)).await);
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
