//! Node configuration: a TOML file layered with `PERSEUS_*` environment variables.

use std::time::Duration;

use config::{Config, Environment, File, FileFormat};
use serde::Deserialize;

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
    /// How many keys' one-round-trip state the proposer keeps (LRU).
    #[serde(default = "default_cache_capacity")]
    pub cache_capacity: usize,
    /// Longest key accepted, in bytes.
    #[serde(default = "default_max_key_bytes")]
    pub max_key_bytes: usize,
    /// Longest value accepted, in bytes.
    #[serde(default = "default_max_value_bytes")]
    pub max_value_bytes: usize,
    /// Refuse an acceptor whose Redis does not fsync every write (`appendonly yes`,
    /// `appendfsync always`). Turning it off trades acknowledged writes for speed.
    #[serde(default = "default_true")]
    pub acceptor_require_fsync: bool,
}

fn default_true() -> bool {
    true
}

fn default_listen() -> String {
    "0.0.0.0:8080".into()
}
fn default_timeout_ms() -> u64 {
    300
}
fn default_cache_capacity() -> usize {
    100_000
}
fn default_max_key_bytes() -> usize {
    512
}
fn default_max_value_bytes() -> usize {
    65_536
}

impl Settings {
    /// Loads the file (if given) and the environment, and checks the result.
    pub fn load(file: Option<&str>) -> Result<Settings, String> {
        let mut builder = Config::builder();
        if let Some(path) = file {
            builder = builder.add_source(File::new(path, FileFormat::Toml));
        }
        builder = builder.add_source(
            Environment::with_prefix("PERSEUS")
                .try_parsing(true)
                .list_separator(",")
                .with_list_parse_key("acceptors"),
        );
        let settings: Settings = builder
            .build()
            .and_then(|c| c.try_deserialize())
            .map_err(|e| format!("bad configuration: {e}"))?;
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

    pub fn validate(&self) -> Result<(), String> {
        let n = self.acceptors.len();
        if n == 0 {
            return Err("bad configuration: field `acceptors` is empty".into());
        }
        let quorum = self.quorum();
        if quorum <= n / 2 || quorum > n {
            return Err(format!(
                "bad configuration: field `quorum` is {quorum}, must be a majority of the {n} acceptors ({}..={n}), or two proposers could choose different values",
                n / 2 + 1
            ));
        }
        if self.acceptor_timeout_ms == 0 {
            return Err("bad configuration: field `acceptor_timeout_ms` must be above 0".into());
        }
        if self.max_key_bytes == 0 || self.max_value_bytes == 0 {
            return Err(
                "bad configuration: fields `max_key_bytes` and `max_value_bytes` must be above 0"
                    .into(),
            );
        }
        if self.id > crate::ballot::MAX_COUNTER {
            return Err(format!(
                "bad configuration: field `id` is {}, the largest id is {} (ballots are compared as Lua numbers)",
                self.id,
                crate::ballot::MAX_COUNTER
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for url in &self.acceptors {
            if !seen.insert(url.trim_end_matches('/')) {
                return Err(format!(
                    "bad configuration: field `acceptors` lists {url} twice: a quorum would not be a majority of distinct acceptors"
                ));
            }
            if !url.starts_with("redis://") {
                return Err(format!(
                    "bad configuration: field `acceptors`: {url:?} is not a redis:// URL"
                ));
            }
        }
        if self.listen.parse::<std::net::SocketAddr>().is_err() {
            return Err(format!(
                "bad configuration: field `listen`: {:?} is not an address like 0.0.0.0:8080",
                self.listen
            ));
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
    }

    #[test]
    fn missing_field_is_named() {
        let file = write("acceptors = [\"redis://a:1\"]\n");
        let error = Settings::load(Some(file.as_str())).unwrap_err();
        assert!(error.contains("id"), "{error}");
    }

    #[test]
    fn minority_quorum_is_refused() {
        let file = write(
            "id = 1\nquorum = 1\nacceptors = [\"redis://a:1\", \"redis://b:1\", \"redis://c:1\"]\n",
        );
        let error = Settings::load(Some(file.as_str())).unwrap_err();
        assert!(error.contains("quorum"), "{error}");
    }

    #[test]
    fn an_id_beyond_lua_precision_is_refused() {
        let file = write(&format!(
            "id = {}\nacceptors = [\"redis://a:1\"]\n",
            1u64 << 53
        ));
        let error = Settings::load(Some(file.as_str())).unwrap_err();
        assert!(error.contains("`id`"), "{error}");
    }

    #[test]
    fn a_repeated_acceptor_is_refused() {
        let file =
            write("id = 1\nacceptors = [\"redis://a:1\", \"redis://a:1\", \"redis://b:1\"]\n");
        let error = Settings::load(Some(file.as_str())).unwrap_err();
        assert!(error.contains("twice"), "{error}");
    }

    #[test]
    fn bad_acceptor_url_is_named() {
        let file = write("id = 1\nacceptors = [\"10.0.0.1:6379\"]\n");
        let error = Settings::load(Some(file.as_str())).unwrap_err();
        assert!(error.contains("acceptors"), "{error}");
    }
}
