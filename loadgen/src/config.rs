//! Command line and environment configuration (clap), validated into a [`Config`].

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use perseus_model::System;

/// Read → create-if-missing → increment → compare-and-swap load against a system's nodes
/// (each through its own client), one stdout line per second, with a consistency check of
/// every value read.
#[derive(Parser, Debug, Clone)]
#[command(name = "loadgen", version, about)]
pub struct Cli {
    /// The system under test, whose client to use (a name of model/src/system.rs: perseus,
    /// etcd, ...; perseus and etcd both speak the etcd v2 keys API)
    #[arg(long, env = "LOADGEN_SYSTEM", default_value = "perseus")]
    pub system: String,

    /// Node endpoints, comma separated (e.g. http://127.0.0.1:8081,http://127.0.0.1:8082;
    /// zk://10.77.0.31:2181; nats://10.77.0.41:4222); empty: the system's three hosts
    #[arg(long, env = "LOADGEN_NODES", value_delimiter = ',')]
    pub nodes: Vec<String>,

    /// Logical clients (connections, each with its own key) per node
    #[arg(long, env = "LOADGEN_CONNECTIONS", default_value_t = 1)]
    pub connections: u32,

    /// Run time in seconds
    #[arg(long, env = "LOADGEN_DURATION", default_value_t = 60)]
    pub duration: u64,

    /// Timeout of every request (connect + response + body), in milliseconds
    #[arg(long, env = "LOADGEN_TIMEOUT_MS", default_value_t = 1000)]
    pub timeout_ms: u64,

    /// Also write JSON lines (start, per-second, per-bucket, violations, summary) to this file
    #[arg(long, env = "LOADGEN_OUT")]
    pub out: Option<PathBuf>,

    /// Exit 0 even if consistency violations were found
    #[arg(long, env = "LOADGEN_ALLOW_VIOLATIONS")]
    pub allow_violations: bool,

    /// Run id, prefix of every key (default: UTC timestamp and a random suffix)
    #[arg(long, env = "LOADGEN_RUN_ID")]
    pub run_id: Option<String>,

    /// Width of the fine-grained buckets in the JSON output, in milliseconds (divides 1000)
    #[arg(long, env = "LOADGEN_BUCKET_MS", default_value_t = 100)]
    pub bucket_ms: u64,

    /// Pause after a failed iteration before the next one, in milliseconds
    /// (keeps a refused connection from spinning)
    #[arg(long, env = "LOADGEN_ERROR_PAUSE_MS", default_value_t = 10)]
    pub error_pause_ms: u64,

    /// Skip the final read of every key after the run
    #[arg(long, env = "LOADGEN_NO_FINAL_READ")]
    pub no_final_read: bool,

    /// Which keys the clients use: `own` (each connection its own key) or `shared:N` (the
    /// connections of all nodes race on N shared keys, checked by the contention checker)
    #[arg(long, env = "LOADGEN_KEYS", default_value = "own")]
    pub keys: String,

    /// What each client does: `counter` (read, create if missing, increment with a
    /// compare-and-set) or `register` (reads, blind writes of unique values and
    /// compare-and-sets on shared keys, checked from the history after the run)
    #[arg(long, env = "LOADGEN_WORKLOAD", default_value = "counter")]
    pub workload: String,

    /// Write every operation's invocation and completion to this file (JSON lines) and check
    /// the whole history after the run
    #[arg(long, env = "LOADGEN_HISTORY")]
    pub history: Option<PathBuf>,

    /// etcd v2 only: read without `quorum=true`, from the member's own copy (the stale-reads
    /// control: an isolated member keeps answering with what it last knew)
    #[arg(long, env = "LOADGEN_LOCAL_READS")]
    pub local_reads: bool,

    /// etcd3 only: speak etcd's v3 API through its JSON gateway (HTTP/1.1) instead of gRPC,
    /// to measure what the gateway costs
    #[arg(long, env = "LOADGEN_ETCD3_GATEWAY")]
    pub etcd3_gateway: bool,

    /// No load: only compare every replica's own copy of the run's keys (give the run's
    /// --run-id, --keys and --connections); exits 1 on a divergence
    #[arg(long, env = "LOADGEN_COMPARE_REPLICAS_ONLY")]
    pub compare_replicas_only: bool,
}

/// What the clients do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// Read → create if missing → increment → compare-and-set, each client on its key (or
    /// racing on shared ones).
    Counter,
    /// Reads, blind writes of unique values and compare-and-sets from many clients on a few
    /// shared keys.
    Register,
}

impl Workload {
    pub fn parse(s: &str) -> Result<Workload, String> {
        match s.trim() {
            "counter" => Ok(Workload::Counter),
            "register" => Ok(Workload::Register),
            other => Err(format!("--workload {other:?}: use `counter` or `register`")),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Workload::Counter => "counter",
            Workload::Register => "register",
        }
    }
}

/// Which keys the logical clients work on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyMode {
    /// Every connection owns its key (single writer, checked by [`crate::checker`]).
    Own,
    /// All connections of all nodes race on this many shared keys ([`crate::contention`]).
    Shared(u32),
}

impl KeyMode {
    /// `own` or `shared:N` (1 ≤ N ≤ 10000).
    pub fn parse(s: &str) -> Result<KeyMode, String> {
        let bad = || format!("--keys {s:?}: use `own` or `shared:N` with N from 1 to 10000");
        match s.trim() {
            "own" => Ok(KeyMode::Own),
            other => {
                let n = other
                    .strip_prefix("shared:")
                    .and_then(|n| n.parse::<u32>().ok())
                    .ok_or_else(bad)?;
                if n == 0 || n > 10_000 {
                    return Err(bad());
                }
                Ok(KeyMode::Shared(n))
            }
        }
    }

    /// `own` or `shared:N`, as parsed.
    pub fn as_string(self) -> String {
        match self {
            KeyMode::Own => "own".into(),
            KeyMode::Shared(n) => format!("shared:{n}"),
        }
    }
}

/// Validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Which system's client to use.
    pub system: System,
    /// Node endpoints (base URLs) without a trailing slash.
    pub nodes: Vec<String>,
    pub connections: u32,
    pub duration: Duration,
    pub timeout: Duration,
    pub out: Option<PathBuf>,
    pub allow_violations: bool,
    pub run_id: String,
    pub bucket_ms: u64,
    pub error_pause: Duration,
    pub final_read: bool,
    pub keys: KeyMode,
    pub workload: Workload,
    /// Where the operation history goes (none: not written).
    pub history: Option<PathBuf>,
    /// etcd v2: reads without a quorum.
    pub local_reads: bool,
    /// etcd3: through the JSON gateway instead of gRPC.
    pub etcd3_gateway: bool,
    /// No load: only the replica comparison of the run's keys.
    pub compare_replicas_only: bool,
}

impl Config {
    /// A configuration with the defaults for the given nodes (used by tests).
    pub fn new(nodes: Vec<String>) -> Self {
        Config {
            system: System::Perseus,
            nodes,
            connections: 1,
            duration: Duration::from_secs(60),
            timeout: Duration::from_millis(1000),
            out: None,
            allow_violations: false,
            run_id: default_run_id(),
            bucket_ms: 100,
            error_pause: Duration::from_millis(10),
            final_read: true,
            keys: KeyMode::Own,
            workload: Workload::Counter,
            history: None,
            local_reads: false,
            etcd3_gateway: false,
            compare_replicas_only: false,
        }
    }
}

/// `YYYYmmddTHHMMSSZ-xxxxxx`: UTC time and 24 random bits.
pub fn default_run_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    let r = h.finish() & 0xff_ffff;
    format!("{}-{:06x}", chrono::Utc::now().format("%Y%m%dT%H%M%SZ"), r)
}

fn valid_run_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 100
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
}

impl TryFrom<Cli> for Config {
    type Error = String;

    fn try_from(c: Cli) -> Result<Self, String> {
        let system: System = c
            .system
            .trim()
            .parse()
            .map_err(|e| format!("--system: {e}"))?;
        let mut given: Vec<String> = c
            .nodes
            .iter()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        if given.is_empty() {
            given = system.nodes();
        }
        let mut nodes = Vec::new();
        for n in given.iter().map(String::as_str) {
            let url = reqwest::Url::parse(n).map_err(|e| format!("bad node URL {n:?}: {e}"))?;
            if url.scheme() != system.scheme() {
                return Err(format!(
                    "node URL {n:?}: {system} nodes are {}://HOST:PORT",
                    system.scheme()
                ));
            }
            if url.host_str().is_none() {
                return Err(format!("node URL {n:?} has no host"));
            }
            nodes.push(n.trim_end_matches('/').to_string());
        }
        if nodes.is_empty() {
            return Err("--nodes: at least one node URL is needed".into());
        }
        if c.connections == 0 || c.connections > 10_000 {
            return Err("--connections must be between 1 and 10000".into());
        }
        if c.duration == 0 {
            return Err("--duration must be at least 1 second".into());
        }
        if c.timeout_ms == 0 {
            return Err("--timeout-ms must be positive".into());
        }
        if c.bucket_ms == 0 || 1000 % c.bucket_ms != 0 {
            return Err("--bucket-ms must divide 1000 (e.g. 10, 50, 100, 250)".into());
        }
        let mut keys = KeyMode::parse(&c.keys)?;
        let workload = Workload::parse(&c.workload)?;
        if c.local_reads && !matches!(system, System::Etcd | System::Perseus) {
            return Err(format!(
                "--local-reads is for the etcd v2 API (etcd, perseus), not {system}"
            ));
        }
        if c.etcd3_gateway && system != System::Etcd3 {
            return Err(format!("--etcd3-gateway is for etcd3, not {system}"));
        }
        if workload == Workload::Register {
            // clients (node i, connection c) take key (i * connections + c) mod N
            let clients = c.connections as usize * nodes.len();
            match keys {
                KeyMode::Own => keys = KeyMode::Shared((clients / 5).max(1) as u32),
                KeyMode::Shared(n) if n as usize > clients => {
                    return Err(format!(
                        "--workload register --keys shared:{n} needs at least {n} clients \
                         (nodes × --connections)"
                    ))
                }
                KeyMode::Shared(_) => {}
            }
        } else if let KeyMode::Shared(n) = keys {
            if c.connections < n {
                return Err(format!(
                    "--keys shared:{n} needs --connections {n} or more: connection i of every node works on shared key i mod {n}, so fewer connections would leave keys unused"
                ));
            }
        }
        let run_id = match c.run_id {
            Some(r) if valid_run_id(&r) => r,
            Some(r) => {
                return Err(format!(
                    "--run-id {r:?}: use 1-100 characters from A-Z a-z 0-9 - _ ."
                ))
            }
            None => default_run_id(),
        };
        Ok(Config {
            system,
            nodes,
            connections: c.connections,
            duration: Duration::from_secs(c.duration),
            timeout: Duration::from_millis(c.timeout_ms),
            out: c.out,
            allow_violations: c.allow_violations,
            run_id,
            bucket_ms: c.bucket_ms,
            error_pause: Duration::from_millis(c.error_pause_ms),
            final_read: !c.no_final_read,
            keys,
            workload,
            history: c.history,
            local_reads: c.local_reads,
            etcd3_gateway: c.etcd3_gateway,
            compare_replicas_only: c.compare_replicas_only,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Config, String> {
        let cli = Cli::try_parse_from(args).map_err(|e| e.to_string())?;
        Config::try_from(cli)
    }

    #[test]
    fn parses_nodes_and_defaults() {
        let c = parse(&[
            "loadgen",
            "--nodes",
            "http://127.0.0.1:8081/,http://127.0.0.1:8082",
        ])
        .unwrap();
        assert_eq!(
            c.nodes,
            vec!["http://127.0.0.1:8081", "http://127.0.0.1:8082"]
        );
        assert_eq!(c.connections, 1);
        assert_eq!(c.duration, Duration::from_secs(60));
        assert_eq!(c.timeout, Duration::from_millis(1000));
        assert_eq!(c.bucket_ms, 100);
        assert!(!c.allow_violations);
        assert!(c.final_read);
        assert!(valid_run_id(&c.run_id), "{}", c.run_id);
    }

    #[test]
    fn systems_and_their_nodes() {
        let c = parse(&["loadgen"]).unwrap();
        assert_eq!((c.system, c.nodes.len()), (System::Perseus, 3));
        let c = parse(&["loadgen", "--system", "zookeeper"]).unwrap();
        assert_eq!(c.nodes[0], "zk://10.77.0.31:2181");
        let c = parse(&[
            "loadgen",
            "--system",
            "nats",
            "--nodes",
            "nats://127.0.0.1:4222",
        ])
        .unwrap();
        assert_eq!((c.system, c.nodes.len()), (System::Nats, 1));
        assert!(parse(&["loadgen", "--system", "nats", "--nodes", "http://x:1"]).is_err());
        assert!(parse(&["loadgen", "--system", "consul"]).is_err());
    }

    #[test]
    fn rejects_bad_input() {
        assert!(parse(&["loadgen", "--nodes", "not a url"]).is_err());
        assert!(parse(&["loadgen", "--nodes", "https://x:1"]).is_err());
        assert!(parse(&["loadgen", "--nodes", "http://x:1", "--bucket-ms", "300"]).is_err());
        assert!(parse(&["loadgen", "--nodes", "http://x:1", "--run-id", "a/b"]).is_err());
        assert!(parse(&["loadgen", "--nodes", "http://x:1", "--duration", "0"]).is_err());
        assert!(parse(&["loadgen", "--nodes", "http://x:1", "--connections", "x"]).is_err());
        for keys in ["shared", "shared:0", "shared:x", "mine", "shared:2"] {
            assert!(parse(&["loadgen", "--nodes", "http://x:1", "--keys", keys]).is_err());
        }
    }

    #[test]
    fn key_modes() {
        let c = parse(&["loadgen", "--nodes", "http://x:1"]).unwrap();
        assert_eq!(c.keys, KeyMode::Own);
        let c = parse(&[
            "loadgen",
            "--nodes",
            "http://x:1",
            "--keys",
            "shared:3",
            "--connections",
            "3",
        ])
        .unwrap();
        assert_eq!(c.keys, KeyMode::Shared(3));
        assert_eq!(c.keys.as_string(), "shared:3");
    }

    #[test]
    fn register_workload_keys() {
        let nodes = "http://x:1,http://x:2,http://x:3";
        let c = parse(&["loadgen", "--nodes", nodes, "--workload", "register"]).unwrap();
        assert_eq!(
            (c.workload, c.keys),
            (Workload::Register, KeyMode::Shared(1))
        );
        let c = parse(&[
            "loadgen",
            "--nodes",
            nodes,
            "--workload",
            "register",
            "--connections",
            "10",
        ])
        .unwrap();
        assert_eq!(c.keys, KeyMode::Shared(6));
        assert!(parse(&[
            "loadgen",
            "--nodes",
            nodes,
            "--workload",
            "register",
            "--keys",
            "shared:4"
        ])
        .is_err());
        assert!(parse(&["loadgen", "--nodes", nodes, "--workload", "regster"]).is_err());
        assert!(parse(&["loadgen", "--system", "nats", "--local-reads"]).is_err());
    }

    #[test]
    fn run_ids_differ() {
        assert_ne!(default_run_id(), default_run_id());
    }
}
