//! An accept whose reply is lost after Redis ran it, against a real redis-server behind a TCP
//! proxy that swallows that one reply and closes the connection.
//!
//! The node cannot tell this from a request that never arrived: the redis crate reports the
//! same connection error for both. So the only safe answer is a failure of unknown outcome.
//! Sending the accept again would be refused by the promise the first copy set, and a refusal
//! tells the proposer the value was stored nowhere, while Redis holds it and a later round may
//! choose it (the simulation's negative control `ResendAfterLostReply` shows where that leads).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use perseus_node::acceptor::memory::MEMORY_CLUSTER;
use perseus_node::acceptor::redis::RedisAcceptor;
use perseus_node::acceptor::{
    AcceptReply, Acceptor, AcceptorError, AdminAcceptor, Identity, Standing,
};
use perseus_node::ballot::Ballot;
use perseus_node::testing::Redis;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The accept script's "ok" reply from a member, as RESP on the wire.
const ACCEPTED_REPLY: &[u8] = b"*2\r\n$2\r\nok\r\n$6\r\nmember\r\n";

/// A TCP proxy on a free loopback port in front of Redis at `upstream`. While `armed` is set,
/// the first reply that is an accept's "ok" is swallowed and that client connection closed:
/// Redis ran the accept, the node never hears of it. Returns the proxy's port.
async fn reply_dropping_proxy(upstream: u16, armed: Arc<AtomicBool>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("proxy address").port();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let armed = armed.clone();
            tokio::spawn(async move {
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)).await else {
                    return; // The node sees a dropped connection and reconnects.
                };
                let (mut from_client, mut to_client) = client.into_split();
                let (mut from_server, mut to_server) = server.into_split();
                let requests = tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut from_client, &mut to_server).await;
                });
                let mut buf = vec![0u8; 1 << 16];
                loop {
                    let n = match from_server.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    let chunk = &buf[..n];
                    if armed.load(Ordering::SeqCst)
                        && chunk
                            .windows(ACCEPTED_REPLY.len())
                            .any(|w| w == ACCEPTED_REPLY)
                    {
                        armed.store(false, Ordering::SeqCst);
                        break; // Swallowed; dropping both halves closes the connection.
                    }
                    if to_client.write_all(chunk).await.is_err() {
                        break;
                    }
                }
                requests.abort();
            });
        }
    });
    port
}

#[tokio::test]
async fn an_accept_whose_reply_was_lost_is_an_unknown_outcome_never_a_refusal() {
    let redis = Redis::start();
    let armed = Arc::new(AtomicBool::new(false));
    let port = reply_dropping_proxy(redis.port, armed.clone()).await;
    let acceptor = RedisAcceptor::new(&format!("redis://127.0.0.1:{port}"), Duration::from_secs(2))
        .expect("acceptor");
    assert!(acceptor.wait_connected(Duration::from_secs(5)).await);
    acceptor
        .claim(&Identity {
            cluster: MEMORY_CLUSTER.into(),
            acceptor: acceptor.name().into(),
            standing: Standing::Member,
            mark: String::new(),
            set: acceptor.name().into(),
            stamp: String::new(),
        })
        .await
        .expect("claim");
    acceptor.set_cluster(Some(MEMORY_CLUSTER));

    armed.store(true, Ordering::SeqCst);
    let reply = acceptor
        .accept("k", Ballot::new(5, 1, 1), Some("v1"), Ballot::new(6, 1, 1))
        .await;
    assert!(
        !armed.load(Ordering::SeqCst),
        "the proxy never saw the accept's reply"
    );

    // Redis ran it: the value is stored, under the promise it set for the next round.
    let client = redis::Client::open(redis.url()).expect("client");
    let mut direct = client
        .get_multiplexed_async_connection()
        .await
        .expect("a direct connection");
    let stored: HashMap<String, String> = redis::cmd("HGETALL")
        .arg("perseus:k")
        .query_async(&mut direct)
        .await
        .expect("HGETALL");
    assert_eq!(
        stored.get("v").map(String::as_str),
        Some("v1"),
        "the accept ran: {stored:?}"
    );

    // The node must say "failed, outcome unknown", not "refused" (nor "accepted", which it
    // cannot know).
    assert!(
        matches!(reply, Err(AcceptorError::Io(_) | AcceptorError::Timeout)),
        "an accept Redis ran, whose reply was lost, was answered {reply:?} (a refusal would \
         claim the value was stored nowhere)"
    );
    assert!(!matches!(reply, Ok(AcceptReply::Conflict(_))));

    // The connection is replaced: the next call goes through.
    assert!(acceptor.wait_connected(Duration::from_secs(5)).await);
    let next = acceptor
        .accept("k", Ballot::new(6, 1, 1), Some("v2"), Ballot::new(7, 1, 1))
        .await;
    assert_eq!(next, Ok(AcceptReply::Accepted));
}
