//! Test harness (feature `testing`): real `redis-server` processes on loopback ports and nodes
//! served in-process, for the node's and the load generator's integration tests.
//!
//! The Redis binary is `$REDIS_SERVER` or `redis-server` on the PATH (`.ci/run` installs
//! Debian's). A missing binary fails the test with a message; it is never skipped. Panics
//! here are test failures, which is what a harness is for.
#![allow(clippy::missing_panics_doc)]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::acceptor::redis::IDENTITY_KEY;
use crate::config::Settings;
use crate::http::App;
use crate::server;

/// A free loopback port (bound and released; good enough for tests).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

fn wait_for_port(port: u16, up: bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let open = TcpStream::connect_timeout(
            &SocketAddr::from(([127, 0, 0, 1], port)),
            Duration::from_millis(100),
        )
        .is_ok();
        if open == up {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!(
        "port {port} did not become {}",
        if up { "open" } else { "closed" }
    );
}

/// One redis-server process with AOF on and fsync always, data in its own directory.
pub struct Redis {
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl Redis {
    pub fn start() -> Redis {
        let dir = std::env::temp_dir().join(format!(
            "perseus-redis-{}-{}",
            std::process::id(),
            rand::random::<u64>()
        ));
        std::fs::create_dir_all(&dir).expect("redis data dir");
        let mut redis = Redis {
            port: free_port(),
            dir,
            child: None,
        };
        redis.spawn();
        redis
    }

    fn spawn(&mut self) {
        let binary = std::env::var("REDIS_SERVER").unwrap_or_else(|_| "redis-server".into());
        let child = Command::new(&binary)
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1", "--protected-mode", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .args(["--appendonly", "yes", "--appendfsync", "always"])
            .args(["--save", "", "--daemonize", "no", "--loglevel", "warning"])
            // As compose/redis.conf: CONFIG RESETSTAT would set back the counts the acceptor's
            // life is made of (life.lua).
            .args(["--user", "default", "on", "nopass", "~*", "&*", "+@all"])
            .args(["-config|resetstat", "-acl|setuser", "-acl|load"])
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start {binary} ({e}): install redis-server or set REDIS_SERVER")
            });
        self.child = Some(child);
        wait_for_port(self.port, true);
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// A copy of the acceptor's identity record as it is now, kept with an open connection,
    /// to be put back later while the same process runs ([`IdentityCopy::restore_in_place`]).
    pub async fn copy_identity(&self) -> IdentityCopy {
        let mut connection = redis::Client::open(self.url())
            .expect("client")
            .get_multiplexed_async_connection()
            .await
            .expect("connection");
        let record: Vec<u8> = redis::cmd("DUMP")
            .arg(IDENTITY_KEY)
            .query_async(&mut connection)
            .await
            .expect("DUMP");
        IdentityCopy { connection, record }
    }

    /// SIGKILL, like `kill -9`: no chance to flush anything.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        wait_for_port(self.port, false);
    }

    /// Freezes (`SIGSTOP`) or thaws (`SIGCONT`) the process: a gray failure, like
    /// `docker pause`; the port stays open and calls simply get no answer.
    pub fn signal(&self, signal: &str) {
        let Some(child) = &self.child else { return };
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(child.id().to_string())
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{signal} failed");
    }

    /// Starts again on the same port with the same data directory.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// An identity record saved by [`Redis::copy_identity`], with the connection it came by.
pub struct IdentityCopy {
    connection: redis::aio::MultiplexedConnection,
    record: Vec<u8>,
}

impl IdentityCopy {
    /// A restore in place, as a backup put back while the same process runs: FLUSHALL, then
    /// RESTORE of the saved record, in one transaction.
    pub async fn restore_in_place(&mut self) {
        let () = redis::pipe()
            .atomic()
            .cmd("FLUSHALL")
            .ignore()
            .cmd("RESTORE")
            .arg(IDENTITY_KEY)
            .arg(0)
            .arg(self.record.clone())
            .ignore()
            .query_async(&mut self.connection)
            .await
            .expect("FLUSHALL + RESTORE");
    }

    /// The connection the copy came by (opened before the restore).
    pub fn connection(&mut self) -> &mut redis::aio::MultiplexedConnection {
        &mut self.connection
    }
}

/// Three Redis acceptors.
pub fn three_redis() -> Vec<Redis> {
    (0..3).map(|_| Redis::start()).collect()
}

/// Three Redis acceptors and three nodes (ids 1..=3) using them, all connected.
pub async fn cluster() -> (Vec<Redis>, Vec<Node>) {
    let redis = three_redis();
    let mut nodes = Vec::new();
    for id in 1..=3 {
        nodes.push(Node::start(settings(id, &redis, 300)).await);
    }
    (redis, nodes)
}

pub fn settings(id: u64, redis: &[Redis], timeout_ms: u64) -> Settings {
    Settings {
        id,
        listen: "127.0.0.1:0".into(),
        acceptors: redis.iter().map(Redis::url).collect(),
        quorum: None,
        acceptor_timeout_ms: timeout_ms,
        request_deadline_ms: 1000,
        cache_bytes: 1 << 20,
        max_in_flight: 64,
        max_key_bytes: 512,
        max_value_bytes: 1024,
        acceptor_require_fsync: true,
        quorum_reads: true,
        thrifty: true,
        hedge_ms: 10,
        advertise_client_urls: Vec::new(),
        members: Vec::new(),
        cluster_file: None,
    }
}

/// A node served in-process on an ephemeral loopback port.
pub struct Node {
    pub url: String,
    pub app: Arc<App>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Node {
    pub async fn start(settings: Settings) -> Node {
        let node = Node::start_unchecked(settings).await;
        node.wait_reachable(3).await;
        node.wait_serving().await;
        node
    }

    /// As [`Node::start`], without waiting for the membership task to serve (a node that
    /// must find data loss).
    pub async fn start_unchecked(settings: Settings) -> Node {
        let app = server::app(&settings).expect("node app");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let addr = settings.listen.parse().expect("listen address");
        let (bound, serve) = server::serve(app.clone(), addr, async {
            let _ = rx.await;
        })
        .expect("node listens");
        tokio::spawn(serve);
        Node {
            url: format!("http://{bound}"),
            app,
            shutdown: Some(tx),
        }
    }

    /// Waits (bounded) until the membership task has found or initialised the cluster.
    pub async fn wait_serving(&self) {
        let Some(membership) = &self.app.membership else {
            return;
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            // Serving, and a quorum of the acceptors already members (the verdict is serving
            // while a new cluster's acceptors are still being joined).
            let view = membership.view();
            let members = view
                .acceptors
                .iter()
                .filter(|a| a.state == perseus_model::health::AcceptorState::Member)
                .count();
            if membership.serving() && members > view.acceptors.len() / 2 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("node is not serving: {:?}", membership.view());
    }

    pub fn key_url(&self, key: &str) -> String {
        format!("{}/v2/keys/{key}", self.url)
    }

    /// Waits (bounded) until `n` acceptors are connected.
    pub async fn wait_reachable(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            let reachable = self.app.proposer.reachable();
            if reachable >= n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("node did not reach {n} acceptors");
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// An HTTP client with a 5 s timeout.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("http client")
}
