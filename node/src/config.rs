//! Node configuration: a TOML file layered with `PERSEUS_*` environment variables, checked
//! into [`Settings`] or a [`ConfigError`] that names the field.

use std::time::Duration;

use config::{Config, Environment, File, FileFormat};
use serde::Deserialize;

/// Why a configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("bad configuration: {0}")]
    Load(#[from] config::ConfigError),
    #[error("bad configuration: field `acceptors` is empty")]
    NoAcceptors,
    #[error("bad configuration: field `quorum` is {quorum}, must be a majority of the {acceptors} acceptors ({}..={acceptors}), or two proposers could choose different values", acceptors / 2 + 1)]
    MinorityQuorum { quorum: usize, acceptors: usize },
    #[error("bad configuration: field `acceptor_timeout_ms` must be above 0")]
    ZeroTimeout,
    #[error("bad configuration: field `{0}` must be above 0")]
    Zero(&'static str),
    #[error("bad configuration: field `hedge_ms` is {hedge_ms}, must be below `acceptor_timeout_ms` ({timeout_ms}): a held call starts at the latest after the hedge delay, so a phase ends within one timeout plus it; a longer one would let a phase take two timeouts")]
    HedgeNotBelowTimeout { hedge_ms: u64, timeout_ms: u64 },
    #[error("bad configuration: fields `max_key_bytes` and `max_value_bytes` must be above 0")]
    ZeroLimit,
    #[error("bad configuration: field `id` is {id}, the largest id is {max} (ballots are compared as Lua numbers)")]
    IdTooLarge { id: u64, max: u64 },
    #[error("bad configuration: field `acceptors` lists {0} twice: a quorum would not be a majority of distinct acceptors")]
    RepeatedAcceptor(String),
    #[error("bad configuration: field `acceptors`: {0:?} is not a redis:// URL")]
    NotRedisUrl(String),
    #[error("bad configuration: field `acceptors`: {url}: {reason}")]
    BadAcceptor { url: String, reason: String },
    #[error("bad configuration: field `listen`: {0:?} is not an address like 0.0.0.0:8080")]
    Listen(String),
    #[error("bad configuration: field `{field}`: {url:?} is not an http:// URL with a host")]
    NotHttpUrl { field: &'static str, url: String },
    #[error("bad configuration: field `members`: {0}")]
    Members(String),
    #[error("bad configuration: field `cluster_file`: {0}")]
    ClusterFile(String),
    #[error("bad configuration: {file}: unknown key `{key}` (the keys are listed in docs/api.md)")]
    UnknownKey { file: String, key: String },
}

/// Every key of the node's configuration, with its default.
#[derive(Clone, Debug, Deserialize)]
pub struct Settings {
    /// This proposer's id, unique in the cluster (required).
    pub id: u64,
    /// Address the HTTP API listens on.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// The acceptors, as `redis://host:port` URLs (required).
    pub acceptors: Vec<String>,
    /// Acceptors that must answer each phase; defaults to a majority.
    #[serde(default)]
    pub quorum: Option<usize>,
    /// Timeout of every call to an acceptor, in milliseconds.
    #[serde(default = "default_timeout_ms")]
    pub acceptor_timeout_ms: u64,
    /// The time one request may spend in the proposer (lost races retried with backoff, an
    /// unknown outcome resolved by a follow-up read), in milliseconds.
    #[serde(default = "default_request_deadline_ms")]
    pub request_deadline_ms: u64,
    /// Bytes of keys and values the one-round-trip cache keeps (LRU).
    #[serde(default = "default_cache_bytes")]
    pub cache_bytes: usize,
    /// Requests served at once; more wait for a turn (each waits at most the request
    /// deadline, then gets a 503 that says nothing was applied).
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: usize,
    /// Longest key accepted, in bytes.
    #[serde(default = "default_max_key_bytes")]
    pub max_key_bytes: usize,
    /// Longest value accepted, in bytes.
    #[serde(default = "default_max_value_bytes")]
    pub max_value_bytes: usize,
    /// The URLs clients reach this node at (etcd's `--advertise-client-urls`); shown by
    /// `/v2/members` and `/v2/machines` when `members` is empty. Default: `http://` + `listen`.
    #[serde(default)]
    pub advertise_client_urls: Vec<String>,
    /// Every node of the cluster as `/v2/members` and `/v2/machines` show it, this one
    /// included. etcd's clients switch to these URLs, so they must be reachable from where the
    /// clients run. Empty: this node alone.
    #[serde(default)]
    pub members: Vec<Member>,
    /// Serve a read from one round of reads of the acceptors (no promise, no write) when a
    /// quorum of them hold the same accepted ballot; a full round otherwise. Off: every read
    /// is a full round (prepare, or the cached ballot, then an accept that writes).
    #[serde(default = "default_true")]
    pub quorum_reads: bool,
    /// Ask only a quorum of acceptors (the first ones in `acceptors` that are connected)
    /// in every phase, and the others only when one of those refuses or fails, their
    /// answers disagree, or no decision came within `hedge_ms`. Off: every phase asks every
    /// acceptor at once.
    #[serde(default = "default_true")]
    pub thrifty: bool,
    /// How long a thrifty phase waits for a decision before asking the other acceptors too.
    #[serde(default = "default_hedge_ms")]
    pub hedge_ms: u64,
    /// Refuse an acceptor whose Redis does not fsync every write (`appendonly yes`,
    /// `appendfsync always`). Turning it off trades acknowledged writes for speed.
    #[serde(default = "default_true")]
    pub acceptor_require_fsync: bool,
    /// Where the node remembers its cluster id across restarts (written once it has seen
    /// the cluster; read at start). With it, a node restarted after every acceptor lost its
    /// data says "data loss" instead of initialising a new, empty cluster. None: the id is
    /// learned from the acceptors at every start.
    #[serde(default)]
    pub cluster_file: Option<String>,
}

fn default_true() -> bool {
    true
}

/// A node of the cluster as the etcd members API shows it.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct Member {
    /// The node's proposer id (shown in hex, like etcd's member ids).
    pub id: u64,
    /// Its name (etcd's `--name`); default `p{id}`.
    #[serde(default)]
    pub name: Option<String>,
    /// The URLs clients reach it at.
    pub client_urls: Vec<String>,
}

impl Member {
    pub fn name(&self) -> String {
        self.name.clone().unwrap_or_else(|| format!("p{}", self.id))
    }
}

fn default_listen() -> String {
    "0.0.0.0:8080".into()
}
fn default_timeout_ms() -> u64 {
    300
}
fn default_hedge_ms() -> u64 {
    10
}
fn default_request_deadline_ms() -> u64 {
    1000
}
fn default_cache_bytes() -> usize {
    32 << 20
}
fn default_max_in_flight() -> usize {
    64
}
fn default_max_key_bytes() -> usize {
    512
}
fn default_max_value_bytes() -> usize {
    65_536
}

impl Settings {
    /// Loads the file (if given) and the environment, and checks the result.
    pub fn load(file: Option<&str>) -> Result<Settings, ConfigError> {
        // The file is read once: a source of the settings, and the list of keys it sets.
        let from_file = file
            .map(|path| {
                Config::builder()
                    .add_source(File::new(path, FileFormat::Toml))
                    .build()
            })
            .transpose()?;
        let mut builder = Config::builder();
        if let Some(from_file) = &from_file {
            builder = builder.add_source(from_file.clone());
        }
        builder = builder.add_source(
            Environment::with_prefix("PERSEUS")
                .try_parsing(true)
                .list_separator(",")
                .with_list_parse_key("acceptors")
                .with_list_parse_key("advertise_client_urls"),
        );
        // A key serde does not know is ignored by default, so a typo (`cache_capacity` for
        // `cache_bytes`) would silently leave the default in force. Keys the file sets that no
        // field reads are refused; the environment's are not checked, because `PERSEUS_*`
        // also carries the host script's own variables (PERSEUS_HOST, PERSEUS_PEERS, ...).
        let mut ignored = Vec::new();
        let settings: Settings =
            serde_ignored::deserialize(builder.build()?, |path| ignored.push(path.to_string()))?;
        if let (Some(path), Some(from_file)) = (file, from_file) {
            let in_file =
                from_file.try_deserialize::<std::collections::HashMap<String, config::Value>>()?;
            let top = |key: &String| key.split(['.', '[']).next().unwrap_or("").to_string();
            if let Some(key) = ignored.iter().find(|k| in_file.contains_key(&top(k))) {
                return Err(ConfigError::UnknownKey {
                    file: path.to_string(),
                    key: key.clone(),
                });
            }
        }
        settings.validate()?;
        Ok(settings)
    }

    /// The quorum in effect (configured or majority).
    pub fn quorum(&self) -> usize {
        self.quorum.unwrap_or(self.acceptors.len() / 2 + 1)
    }

    pub fn acceptor_timeout(&self) -> Duration {
        Duration::from_millis(self.acceptor_timeout_ms)
    }

    pub fn hedge(&self) -> Duration {
        Duration::from_millis(self.hedge_ms)
    }

    pub fn request_deadline(&self) -> Duration {
        Duration::from_millis(self.request_deadline_ms)
    }

    /// This node's client URLs: `advertise_client_urls`, or `http://` + `listen`.
    pub fn client_urls(&self) -> Vec<String> {
        if self.advertise_client_urls.is_empty() {
            vec![format!("http://{}", self.listen)]
        } else {
            self.advertise_client_urls.clone()
        }
    }

    /// The cluster's members: `members`, or this node alone.
    pub fn cluster_members(&self) -> Vec<Member> {
        if self.members.is_empty() {
            vec![Member {
                id: self.id,
                name: None,
                client_urls: self.client_urls(),
            }]
        } else {
            self.members.clone()
        }
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let n = self.acceptors.len();
        if n == 0 {
            return Err(ConfigError::NoAcceptors);
        }
        let quorum = self.quorum();
        if quorum <= n / 2 || quorum > n {
            return Err(ConfigError::MinorityQuorum {
                quorum,
                acceptors: n,
            });
        }
        if self.acceptor_timeout_ms == 0 {
            return Err(ConfigError::ZeroTimeout);
        }
        if self.thrifty && self.hedge_ms >= self.acceptor_timeout_ms {
            return Err(ConfigError::HedgeNotBelowTimeout {
                hedge_ms: self.hedge_ms,
                timeout_ms: self.acceptor_timeout_ms,
            });
        }
        if self.request_deadline_ms == 0 {
            return Err(ConfigError::Zero("request_deadline_ms"));
        }
        if self.max_in_flight == 0 {
            return Err(ConfigError::Zero("max_in_flight"));
        }
        if self.max_key_bytes == 0 || self.max_value_bytes == 0 {
            return Err(ConfigError::ZeroLimit);
        }
        if self.id > crate::ballot::MAX_COUNTER {
            return Err(ConfigError::IdTooLarge {
                id: self.id,
                max: crate::ballot::MAX_COUNTER,
            });
        }
        let mut seen = std::collections::HashSet::new();
        for url in &self.acceptors {
            if !seen.insert(url.trim_end_matches('/')) {
                return Err(ConfigError::RepeatedAcceptor(url.clone()));
            }
            if !url.starts_with("redis://") {
                return Err(ConfigError::NotRedisUrl(url.clone()));
            }
        }
        if self.listen.parse::<std::net::SocketAddr>().is_err() {
            return Err(ConfigError::Listen(self.listen.clone()));
        }
        self.validate_members()
    }

    fn validate_members(&self) -> Result<(), ConfigError> {
        let http_url = |field: &'static str, url: &String| {
            let rest = url.strip_prefix("http://").unwrap_or("");
            if rest.is_empty() || rest.starts_with('/') {
                Err(ConfigError::NotHttpUrl {
                    field,
                    url: url.clone(),
                })
            } else {
                Ok(())
            }
        };
        for url in &self.advertise_client_urls {
            http_url("advertise_client_urls", url)?;
        }
        let mut ids = std::collections::HashSet::new();
        for member in &self.members {
            if !ids.insert(member.id) {
                return Err(ConfigError::Members(format!(
                    "id {} is listed twice",
                    member.id
                )));
            }
            if member.client_urls.is_empty() {
                return Err(ConfigError::Members(format!(
                    "member {} has no client_urls",
                    member.id
                )));
            }
            for url in &member.client_urls {
                http_url("members", url)?;
            }
        }
        if !self.members.is_empty() && !ids.contains(&self.id) {
            return Err(ConfigError::Members(format!(
                "this node (id {}) is not listed",
                self.id
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> tempfile_path::TempPath {
        tempfile_path::TempPath::new(text)
    }

    /// A minimal self-deleting temporary file (no extra crate for one test helper).
    mod tempfile_path {
        pub struct TempPath(pub std::path::PathBuf);
        impl TempPath {
            pub fn new(text: &str) -> Self {
                let path = std::env::temp_dir().join(format!(
                    "perseus-config-{}-{}.toml",
                    std::process::id(),
                    rand::random::<u64>()
                ));
                std::fs::write(&path, text).expect("write temp config");
                TempPath(path)
            }
            pub fn as_str(&self) -> &str {
                self.0.to_str().expect("utf-8 temp path")
            }
        }
        impl Drop for TempPath {
            fn drop(&mut self) {
                let _ = std::fs::remove_file(&self.0);
            }
        }
    }

    #[test]
    fn loads_a_file_with_defaults() {
        let file =
            write("id = 2\nacceptors = [\"redis://a:1\", \"redis://b:1\", \"redis://c:1\"]\n");
        let settings = Settings::load(Some(file.as_str())).unwrap();
        assert_eq!(settings.id, 2);
        assert_eq!(settings.quorum(), 2);
        assert_eq!(settings.listen, "0.0.0.0:8080");
        assert_eq!(settings.acceptor_timeout_ms, 300);
        assert_eq!(settings.client_urls(), vec!["http://0.0.0.0:8080"]);
        assert_eq!(settings.cluster_members().len(), 1);
        assert_eq!(settings.cluster_members()[0].name(), "p2");
    }

    #[test]
    fn an_unknown_key_in_the_file_is_refused_by_name() {
        let acceptors = "acceptors = [\"redis://a:1\", \"redis://b:1\", \"redis://c:1\"]\n";
        let file = write(&format!("id = 2\n{acceptors}cache_capacity = 1000\n"));
        let e = Settings::load(Some(file.as_str())).unwrap_err();
        assert!(
            matches!(&e, ConfigError::UnknownKey { key, .. } if key == "cache_capacity"),
            "{e}"
        );
        assert!(
            e.to_string().contains("unknown key `cache_capacity`"),
            "{e}"
        );
        // Inside a table too.
        let file = write(&format!(
            "id = 1\n{acceptors}[[members]]\nid = 1\nclient_urls = [\"http://x:1\"]\nclients = 3\n"
        ));
        let e = Settings::load(Some(file.as_str())).unwrap_err();
        assert!(e.to_string().contains("clients"), "{e}");
    }

    #[test]
    fn members_are_read_and_checked() {
        let acceptors = "acceptors = [\"redis://a:1\"]\n";
        let member = |id: u64, port: u16| {
            format!("[[members]]\nid = {id}\nclient_urls = [\"http://127.0.0.1:{port}\"]\n")
        };
        let file = write(&format!(
            "id = 1\n{acceptors}{}{}",
            member(1, 8081),
            member(2, 8082)
        ));
        let settings = Settings::load(Some(file.as_str())).unwrap();
        assert_eq!(settings.cluster_members().len(), 2);
        assert_eq!(
            settings.cluster_members()[1].client_urls,
            vec!["http://127.0.0.1:8082"]
        );
        let file = write(&format!("id = 3\n{acceptors}{}", member(1, 8081)));
        let error = Settings::load(Some(file.as_str())).unwrap_err();
        assert!(matches!(error, ConfigError::Members(_)), "{error}");
        let file = write(&format!(
            "id = 1\n{acceptors}{}{}",
            member(1, 8081),
            member(1, 8082)
        ));
        assert!(Settings::load(Some(file.as_str())).is_err());
        let file = write(&format!(
            "id = 1\n{acceptors}advertise_client_urls = [\"https://x:1\"]\n"
        ));
        let error = Settings::load(Some(file.as_str())).unwrap_err();
        assert!(matches!(error, ConfigError::NotHttpUrl { .. }), "{error}");
    }

    #[test]
    fn missing_field_is_named() {
        let file = write("acceptors = [\"redis://a:1\"]\n");
        let error = Settings::load(Some(file.as_str())).unwrap_err().to_string();
        assert!(error.contains("id"), "{error}");
    }

    #[test]
    fn minority_quorum_is_refused() {
        let file = write(
            "id = 1\nquorum = 1\nacceptors = [\"redis://a:1\", \"redis://b:1\", \"redis://c:1\"]\n",
        );
        let error = Settings::load(Some(file.as_str())).unwrap_err().to_string();
        assert!(error.contains("quorum"), "{error}");
    }

    #[test]
    fn an_id_beyond_lua_precision_is_refused() {
        let file = write(&format!(
            "id = {}\nacceptors = [\"redis://a:1\"]\n",
            1u64 << 53
        ));
        let error = Settings::load(Some(file.as_str())).unwrap_err().to_string();
        assert!(error.contains("`id`"), "{error}");
    }

    #[test]
    fn a_hedge_delay_not_below_the_timeout_is_refused() {
        let acceptors = "acceptors = [\"redis://a:1\"]\n";
        let file = write(&format!(
            "id = 1\n{acceptors}acceptor_timeout_ms = 100\nhedge_ms = 100\n"
        ));
        let error = Settings::load(Some(file.as_str())).unwrap_err().to_string();
        assert!(error.contains("`hedge_ms`"), "{error}");
        // Not thrifty, the hedge delay is unused.
        let file = write(&format!(
            "id = 1\n{acceptors}acceptor_timeout_ms = 100\nhedge_ms = 100\nthrifty = false\n"
        ));
        assert!(Settings::load(Some(file.as_str())).is_ok());
    }

    #[test]
    fn a_repeated_acceptor_is_refused() {
        let file =
            write("id = 1\nacceptors = [\"redis://a:1\", \"redis://a:1\", \"redis://b:1\"]\n");
        let error = Settings::load(Some(file.as_str())).unwrap_err().to_string();
        assert!(error.contains("twice"), "{error}");
    }

    #[test]
    fn bad_acceptor_url_is_named() {
        let file = write("id = 1\nacceptors = [\"10.0.0.1:6379\"]\n");
        let error = Settings::load(Some(file.as_str())).unwrap_err().to_string();
        assert!(error.contains("acceptors"), "{error}");
    }
}
