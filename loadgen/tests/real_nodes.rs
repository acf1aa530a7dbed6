//! The loadgen against a real cluster on loopback: three `redis-server` acceptors (processes,
//! AOF with fsync always) and three perseus nodes served in-process from the `perseus-node`
//! library. Needs `redis-server` on the PATH (or `$REDIS_SERVER`); a missing binary fails the
//! test, it is never skipped.

mod common;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{data_lines, SharedBuf};
use loadgen::config::Config;
use perseus_node::config::Settings;

fn free_port() -> u16 {
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

struct Redis {
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl Redis {
    fn start() -> Redis {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("loadgen-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("redis data dir");
        let binary = std::env::var("REDIS_SERVER").unwrap_or_else(|_| "redis-server".into());
        let child = Command::new(&binary)
            .args(["--port", &port.to_string()])
            .args(["--bind", "127.0.0.1", "--protected-mode", "no"])
            .arg("--dir")
            .arg(&dir)
            .args(["--appendonly", "yes", "--appendfsync", "always"])
            .args(["--save", "", "--daemonize", "no", "--loglevel", "warning"])
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start {binary} ({e}): install redis-server or set REDIS_SERVER")
            });
        wait_for_port(port, true);
        Redis {
            port,
            dir,
            child: Some(child),
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

struct Node {
    url: String,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

async fn start_node(id: u64, redis: &[Redis]) -> Node {
    let settings = Settings {
        id,
        listen: "127.0.0.1:0".into(),
        acceptors: redis.iter().map(Redis::url).collect(),
        quorum: None,
        acceptor_timeout_ms: 300,
        cache_capacity: 1000,
        max_key_bytes: 512,
        max_value_bytes: 1024,
    };
    let app = perseus_node::server::app(&settings).expect("node app");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let addr = settings.listen.parse().expect("listen address");
    let (bound, serve) = perseus_node::server::serve(app, addr, async {
        let _ = rx.await;
    })
    .expect("node listens");
    tokio::spawn(serve);
    let node = Node {
        url: format!("http://{bound}"),
        shutdown: Some(tx),
    };
    wait_healthy(&node.url).await;
    node
}

/// Waits (bounded) until GET /health reports all three acceptors reachable.
async fn wait_healthy(url: &str) {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(r) = client
            .get(format!("{url}/health"))
            .timeout(Duration::from_millis(500))
            .send()
            .await
        {
            if let Ok(v) = r.json::<serde_json::Value>().await {
                if v["reachable"].as_u64() == Some(3) {
                    return;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("node {url} did not reach its 3 acceptors");
}

async fn cluster() -> (Vec<Redis>, Vec<Node>) {
    let redis: Vec<Redis> = (0..3).map(|_| Redis::start()).collect();
    let mut nodes = Vec::new();
    for id in 1..=3 {
        nodes.push(start_node(id, &redis).await);
    }
    (redis, nodes)
}

fn config(nodes: &[Node], secs: u64, tag: &str) -> Config {
    let mut c = Config::new(nodes.iter().map(|n| n.url.clone()).collect());
    c.duration = Duration::from_secs(secs);
    c.connections = 2;
    c.run_id = format!("{tag}-{}", loadgen::config::default_run_id());
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_cluster_counts_and_no_violations() {
    let (_redis, nodes) = cluster().await;
    let buf = SharedBuf::default();
    let res = loadgen::run(
        config(&nodes, 3, "real"),
        Box::new(buf.clone()),
        std::future::pending(),
    )
    .await
    .expect("run");
    let text = buf.text();
    eprintln!("{text}");
    let data = data_lines(&text, 3);
    assert_eq!(data.len(), 3, "{text}");
    assert!(data.iter().map(|d| d[1]).sum::<u64>() > 0, "{text}");
    for d in &data {
        assert!(
            d[2] > 0 && d[3] > 0 && d[4] > 0,
            "every node served: {text}"
        );
    }
    assert_eq!(res.summary.total_violations(), 0, "{text}");
    assert_eq!(res.summary.final_checked, 6, "{text}");
    assert_eq!(res.exit_code, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_cluster_survives_a_killed_acceptor_without_violations() {
    let (mut redis, nodes) = cluster().await;
    let mut victim = redis.remove(0);
    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(1500));
        victim.kill();
        victim
    });
    let buf = SharedBuf::default();
    let res = loadgen::run(
        config(&nodes, 4, "kill"),
        Box::new(buf.clone()),
        std::future::pending(),
    )
    .await
    .expect("run");
    let _victim = killer.join().expect("killer thread");
    let text = buf.text();
    eprintln!("{text}");
    let data = data_lines(&text, 3);
    assert_eq!(data.len(), 4, "{text}");
    // two of three acceptors left: the cluster serves every second, and every node still
    // serves after the kill
    assert!(data.iter().all(|d| d[1] > 0), "{text}");
    let last = &data[3];
    assert!(last[2] > 0 && last[3] > 0 && last[4] > 0, "{text}");
    assert_eq!(res.summary.total_violations(), 0, "{text}");
    assert_eq!(res.exit_code, 0);
}
