//! A tiny fake etcd-v2 keys server for the tests (plain tokio, HTTP/1.1 keep-alive).
//!
//! Several listeners ("nodes") share one store, like a cluster. Modes:
//! - `Correct`: a linearizable register per key with a cluster-wide modifiedIndex;
//! - `ForgetWrites(n)`: acknowledges every n-th CAS without storing it (loses writes);
//! - `Flaky`: correct, but some requests fail in every way a real node can: the connection is
//!   closed before or after a write is applied, 503 before or after applying, or the write is
//!   applied only after the client has timed out.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Correct,
    ForgetWrites(u64),
    /// Late writes are applied after this delay (pick it above the client's timeout).
    Flaky {
        late: Duration,
    },
}

#[derive(Default)]
struct Store {
    index: u64,
    keys: HashMap<String, (String, u64, u64)>,
    counter: u64,
}

pub struct FakeCluster {
    pub urls: Vec<String>,
    handles: Vec<JoinHandle<()>>,
}

impl Drop for FakeCluster {
    fn drop(&mut self) {
        for h in &self.handles {
            h.abort();
        }
    }
}

/// Starts `nodes` listeners on 127.0.0.1 sharing one store.
pub async fn start(nodes: usize, mode: Mode) -> FakeCluster {
    let store = Arc::new(Mutex::new(Store::default()));
    let mut urls = Vec::new();
    let mut handles = Vec::new();
    for _ in 0..nodes {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        urls.push(format!("http://{}", l.local_addr().expect("addr")));
        let store = store.clone();
        handles.push(tokio::spawn(async move {
            loop {
                let Ok((s, _)) = l.accept().await else { return };
                let store = store.clone();
                tokio::spawn(async move {
                    let _ = serve(s, store, mode).await;
                });
            }
        }));
    }
    FakeCluster { urls, handles }
}

struct Req {
    method: String,
    path: String,
    query: HashMap<String, String>,
    form: HashMap<String, String>,
}

fn parse_pairs(s: &str) -> HashMap<String, String> {
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (p.to_string(), String::new()),
        })
        .collect()
}

async fn read_req(r: &mut BufReader<TcpStream>) -> std::io::Result<Option<Req>> {
    let mut line = String::new();
    if r.read_line(&mut line).await? == 0 {
        return Ok(None);
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let target = parts.next().unwrap_or("").to_string();
    let mut len = 0usize;
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).await? == 0 {
            return Ok(None);
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).await?;
    let (path, q) = target.split_once('?').unwrap_or((&target, ""));
    Ok(Some(Req {
        method,
        path: path.to_string(),
        query: parse_pairs(q),
        form: parse_pairs(&String::from_utf8_lossy(&body)),
    }))
}

fn resp(code: u16, body: String) -> Vec<u8> {
    let reason = match code {
        200 => "OK",
        201 => "Created",
        404 => "Not Found",
        412 => "Precondition Failed",
        503 => "Service Unavailable",
        _ => "Other",
    };
    let mut v = Vec::new();
    let _ = write!(
        v,
        "HTTP/1.1 {code} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    v
}

fn node_json(action: &str, key: &str, v: &(String, u64, u64)) -> String {
    format!(
        r#"{{"action":"{action}","node":{{"key":"/{key}","value":"{}","modifiedIndex":{},"createdIndex":{}}}}}"#,
        v.0, v.1, v.2
    )
}

fn err_json(code: u32, msg: &str, index: u64) -> String {
    format!(r#"{{"errorCode":{code},"message":"{msg}","cause":"/k","index":{index}}}"#)
}

/// What the fake does with a request, decided before handling it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Fault {
    None,
    DropBefore,
    DropAfter,
    Unavailable503Before,
    Unavailable503After,
    Late,
}

/// Applies a request to the store; returns status and body.
fn apply(store: &Mutex<Store>, req: &Req, forget_every: Option<u64>) -> (u16, String) {
    let mut s = store.lock().expect("store lock");
    let key = req.path.trim_start_matches("/v2/keys/").to_string();
    match req.method.as_str() {
        "GET" => match s.keys.get(&key) {
            Some(v) => (200, node_json("get", &key, v)),
            None => (404, err_json(100, "Key not found", s.index)),
        },
        "PUT" => {
            let value = req.form.get("value").cloned().unwrap_or_default();
            if req.query.get("prevExist").map(String::as_str) == Some("false") {
                if s.keys.contains_key(&key) {
                    return (412, err_json(105, "Key already exists", s.index));
                }
                s.index += 1;
                let v = (value, s.index, s.index);
                s.keys.insert(key.clone(), v.clone());
                return (201, node_json("create", &key, &v));
            }
            let Some(prev) = req
                .query
                .get("prevIndex")
                .and_then(|p| p.parse::<u64>().ok())
            else {
                return (400, err_json(209, "bad request", s.index));
            };
            let Some(cur) = s.keys.get(&key).cloned() else {
                return (404, err_json(100, "Key not found", s.index));
            };
            if cur.1 != prev {
                return (412, err_json(101, "Compare failed", s.index));
            }
            s.index += 1;
            s.counter += 1;
            let v = (value, s.index, cur.2);
            let forget = forget_every.is_some_and(|n| s.counter.is_multiple_of(n));
            if !forget {
                s.keys.insert(key.clone(), v.clone());
            }
            (200, node_json("compareAndSwap", &key, &v))
        }
        _ => (400, err_json(0, "bad method", s.index)),
    }
}

async fn serve(s: TcpStream, store: Arc<Mutex<Store>>, mode: Mode) -> std::io::Result<()> {
    let mut r = BufReader::new(s);
    while let Some(req) = read_req(&mut r).await? {
        let forget = match mode {
            Mode::ForgetWrites(n) => Some(n),
            _ => None,
        };
        let fault = match mode {
            Mode::Flaky { .. } => {
                let n = {
                    let mut st = store.lock().expect("store lock");
                    st.counter += 1;
                    st.counter
                };
                match n % 23 {
                    3 => Fault::DropBefore,
                    7 => Fault::DropAfter,
                    11 => Fault::Unavailable503Before,
                    15 => Fault::Unavailable503After,
                    19 => Fault::Late,
                    _ => Fault::None,
                }
            }
            _ => Fault::None,
        };
        match fault {
            Fault::None => {
                let (code, body) = apply(&store, &req, forget);
                r.get_mut().write_all(&resp(code, body)).await?;
            }
            Fault::DropBefore => return Ok(()),
            Fault::DropAfter => {
                apply(&store, &req, None);
                return Ok(());
            }
            Fault::Unavailable503Before => {
                let body = err_json(300, "no quorum", 0);
                r.get_mut().write_all(&resp(503, body)).await?;
            }
            Fault::Unavailable503After => {
                apply(&store, &req, None);
                let body = err_json(300, "no quorum", 0);
                r.get_mut().write_all(&resp(503, body)).await?;
            }
            Fault::Late => {
                if let Mode::Flaky { late } = mode {
                    tokio::time::sleep(late).await;
                }
                let (code, body) = apply(&store, &req, None);
                // the client has given up by now; the write still took effect
                r.get_mut().write_all(&resp(code, body)).await?;
            }
        }
    }
    Ok(())
}

/// A `Write` that collects what the loadgen prints.
#[derive(Clone, Default)]
pub struct SharedBuf(pub Arc<Mutex<Vec<u8>>>);

impl Write for SharedBuf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("buf lock").extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl SharedBuf {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("buf lock")).into_owned()
    }
}

/// Parses the data lines of the stdout table; panics on any malformed line.
pub fn data_lines(stdout: &str, nodes: usize) -> Vec<Vec<u64>> {
    stdout
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            let f: Vec<u64> = l
                .split('\t')
                .map(|x| {
                    x.parse::<u64>()
                        .unwrap_or_else(|_| panic!("not an integer: {x:?} in {l:?}"))
                })
                .collect();
            assert_eq!(f.len(), nodes + 2, "columns in {l:?}");
            assert_eq!(f[1], f[2..].iter().sum::<u64>(), "cluster = sum in {l:?}");
            f
        })
        .collect()
}
