//! Redis with Sentinel: the client of one host asks that host's sentinel which server is the
//! primary (`SENTINEL get-master-addr-by-name`), checks with `ROLE` that the server agrees, and
//! sends every operation there. It asks again every [`RECHECK`] and after any error, so it
//! follows a failover the way Sentinel-aware clients do.
//!
//! Data: a hash per key with fields `v` (the value) and `ver` (the version). Create and
//! compare-and-set are Lua scripts, so the check and the write are one atomic step on the
//! primary. What Redis promises: nothing beyond the primary's own order. Replication is
//! asynchronous — a write is acknowledged before any replica has it — so a failover can lose
//! acknowledged writes, and the checker reports each one (lost-write violations).

use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, Script, Value};

use super::{bounded, ClientError, ErrorKind, KeyNode, Store, WriteResult};

/// The name the sentinels monitor the primary under (compose/sysdb/sentinel.conf).
pub const SERVICE: &str = "perseus";
/// How long a primary address from the sentinel is trusted before asking again.
pub const RECHECK: Duration = Duration::from_millis(200);

/// Creates the key with version 1 unless it exists; returns 1 if created, 0 if not.
const CREATE: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'v', ARGV[1], 'ver', 1)
return 1";

/// Sets the value and bumps the version if the version is ARGV[1]; returns the new version,
/// or 0 when the key is missing or its version differs.
const CAS: &str = r"
local ver = redis.call('HGET', KEYS[1], 'ver')
if not ver or tonumber(ver) ~= tonumber(ARGV[1]) then return 0 end
local next = tonumber(ver) + 1
redis.call('HSET', KEYS[1], 'v', ARGV[2], 'ver', next)
return next";

/// Sets the value and bumps the version whatever it was; returns the new version.
const PUT: &str = r"
redis.call('HSET', KEYS[1], 'v', ARGV[1])
return redis.call('HINCRBY', KEYS[1], 'ver', 1)";

struct Primary {
    addr: String,
    conn: MultiplexedConnection,
    checked: Instant,
}

/// A client for one key, bound to one host's sentinel.
pub struct SentinelClient {
    /// For logs: the endpoint and the key.
    endpoint: String,
    sentinel: String,
    key: String,
    timeout: Duration,
    primary: Option<Primary>,
    create: Script,
    cas: Script,
    put: Script,
}

fn redis_error(e: redis::RedisError) -> ClientError {
    let kind = if e.is_timeout() {
        ErrorKind::Timeout
    } else if e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() {
        ErrorKind::Connect
    } else {
        // an error reply (e.g. READONLY from a demoted primary, LOADING, MASTERDOWN)
        ErrorKind::Http5xx
    };
    ClientError::new(kind, e.to_string())
}

fn config(timeout: Duration) -> AsyncConnectionConfig {
    AsyncConnectionConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout))
}

/// The address in a `SENTINEL get-master-addr-by-name` reply (`[ip, port]` or nil).
fn primary_addr(reply: Option<(String, u16)>) -> Result<String, ClientError> {
    match reply {
        Some((ip, port)) => Ok(format!("{ip}:{port}")),
        None => Err(ClientError::new(
            ErrorKind::Http5xx,
            format!("the sentinel knows no primary {SERVICE:?}"),
        )),
    }
}

/// The value of a hash read with `HMGET key v ver`.
fn parse_hash(v: Option<String>, ver: Option<String>) -> Result<Option<KeyNode>, ClientError> {
    match (v, ver) {
        (None, None) => Ok(None),
        (Some(value), Some(ver)) => {
            let modified_index = ver.trim().parse::<u64>().map_err(|_| {
                ClientError::new(ErrorKind::Body, format!("version is not a number: {ver:?}"))
            })?;
            Ok(Some(KeyNode {
                value,
                modified_index,
            }))
        }
        (v, ver) => Err(ClientError::new(
            ErrorKind::Body,
            format!("half a record: v={v:?} ver={ver:?}"),
        )),
    }
}

impl SentinelClient {
    /// `sentinel` is `host:port` of the host's sentinel; `key` the key this client owns.
    /// `endpoint` is `sentinel://host:port` (the scheme is optional).
    pub fn new(endpoint: &str, key: &str, timeout: Duration) -> Self {
        let addr = endpoint
            .split_once("://")
            .map_or(endpoint, |(_, a)| a)
            .trim_end_matches('/');
        SentinelClient {
            endpoint: format!("sentinel://{addr} {key}"),
            sentinel: addr.to_string(),
            key: key.to_string(),
            timeout,
            primary: None,
            create: Script::new(CREATE),
            cas: Script::new(CAS),
            put: Script::new(PUT),
        }
    }

    /// Forgets the primary and its connection; the next operation asks the sentinel again.
    pub fn reset(&mut self) {
        self.primary = None;
    }

    async fn ask_sentinel(&self) -> Result<String, ClientError> {
        let client = Client::open(format!("redis://{}/", self.sentinel))
            .map_err(|e| ClientError::new(ErrorKind::Connect, e.to_string()))?;
        let mut conn = client
            .get_multiplexed_async_connection_with_config(&config(self.timeout))
            .await
            .map_err(redis_error)?;
        let reply: Option<(String, u16)> = redis::cmd("SENTINEL")
            .arg("get-master-addr-by-name")
            .arg(SERVICE)
            .query_async(&mut conn)
            .await
            .map_err(redis_error)?;
        primary_addr(reply)
    }

    /// The connection to the current primary, asking the sentinel when the last answer is older
    /// than [`RECHECK`].
    async fn conn(&mut self) -> Result<MultiplexedConnection, ClientError> {
        if let Some(p) = &self.primary {
            if p.checked.elapsed() < RECHECK {
                return Ok(p.conn.clone());
            }
        }
        let timeout = self.timeout;
        let addr = bounded(timeout, self.ask_sentinel()).await?;
        if let Some(p) = &mut self.primary {
            if p.addr == addr {
                p.checked = Instant::now();
                return Ok(p.conn.clone());
            }
        }
        let conn = bounded(timeout, async {
            let client = Client::open(format!("redis://{addr}/"))
                .map_err(|e| ClientError::new(ErrorKind::Connect, e.to_string()))?;
            let mut conn = client
                .get_multiplexed_async_connection_with_config(&config(timeout))
                .await
                .map_err(redis_error)?;
            // A server named by the sentinel may not know yet that it was promoted (or
            // demoted): use it only once it says it is a master.
            let role: Value = redis::cmd("ROLE")
                .query_async(&mut conn)
                .await
                .map_err(redis_error)?;
            match role {
                Value::Array(items) if matches!(items.first(), Some(Value::BulkString(b)) if b.as_slice() == b"master") => Ok(conn),
                _ => Err(ClientError::new(
                    ErrorKind::Http5xx,
                    format!("{addr} is not a primary (yet)"),
                )),
            }
        })
        .await?;
        self.primary = Some(Primary {
            addr,
            conn: conn.clone(),
            checked: Instant::now(),
        });
        Ok(conn)
    }

    /// Reads the key: `Ok(None)` if it does not exist.
    pub async fn get(&mut self) -> Result<Option<KeyNode>, ClientError> {
        let mut conn = self.conn().await?;
        let key = self.key.clone();
        bounded(self.timeout, async move {
            let (v, ver): (Option<String>, Option<String>) = redis::cmd("HMGET")
                .arg(&key)
                .arg("v")
                .arg("ver")
                .query_async(&mut conn)
                .await
                .map_err(redis_error)?;
            parse_hash(v, ver)
        })
        .await
    }

    /// Creates the key with `value` (version 1) if it does not exist.
    pub async fn create(&mut self, value: i64) -> Result<WriteResult, ClientError> {
        let mut conn = self.conn().await?;
        let mut inv = self.create.prepare_invoke();
        inv.key(&self.key).arg(value);
        let created: i64 = bounded(self.timeout, async {
            inv.invoke_async(&mut conn).await.map_err(redis_error)
        })
        .await?;
        Ok(if created == 1 {
            WriteResult::Applied(KeyNode {
                value: value.to_string(),
                modified_index: 1,
            })
        } else {
            WriteResult::Rejected(None)
        })
    }

    /// Sets the key to `value` if its version is `prev`.
    pub async fn cas(&mut self, prev: u64, value: i64) -> Result<WriteResult, ClientError> {
        let mut conn = self.conn().await?;
        let mut inv = self.cas.prepare_invoke();
        inv.key(&self.key).arg(prev).arg(value);
        let next: i64 = bounded(self.timeout, async {
            inv.invoke_async(&mut conn).await.map_err(redis_error)
        })
        .await?;
        Ok(match u64::try_from(next) {
            Ok(n) if n > 0 => WriteResult::Applied(KeyNode {
                value: value.to_string(),
                modified_index: n,
            }),
            _ => WriteResult::Rejected(None),
        })
    }
}

impl Store for SentinelClient {
    async fn read(&mut self) -> Result<Option<KeyNode>, ClientError> {
        self.get().await
    }
    async fn create(&mut self, value: i64) -> Result<WriteResult, ClientError> {
        SentinelClient::create(self, value).await
    }
    async fn cas(&mut self, prev: u64, value: i64) -> Result<WriteResult, ClientError> {
        SentinelClient::cas(self, prev, value).await
    }
    async fn put(&mut self, value: i64) -> Result<Option<u64>, ClientError> {
        let mut conn = self.conn().await?;
        let mut inv = self.put.prepare_invoke();
        inv.key(&self.key).arg(value);
        let ver: i64 = bounded(self.timeout, async {
            inv.invoke_async(&mut conn).await.map_err(redis_error)
        })
        .await?;
        Ok(u64::try_from(ver).ok())
    }
    fn reset(&mut self) {
        SentinelClient::reset(self)
    }
    fn endpoint(&self) -> &str {
        &self.endpoint
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_parsing() {
        assert_eq!(parse_hash(None, None).unwrap(), None);
        assert_eq!(
            parse_hash(Some("7".into()), Some("3".into())).unwrap(),
            Some(KeyNode {
                value: "7".into(),
                modified_index: 3
            })
        );
        assert_eq!(
            parse_hash(Some("7".into()), None).unwrap_err().kind,
            ErrorKind::Body
        );
        assert_eq!(
            parse_hash(Some("7".into()), Some("x".into()))
                .unwrap_err()
                .kind,
            ErrorKind::Body
        );
    }

    #[test]
    fn sentinel_reply() {
        assert_eq!(
            primary_addr(Some(("10.77.0.82".into(), 6379))).unwrap(),
            "10.77.0.82:6379"
        );
        assert_eq!(primary_addr(None).unwrap_err().kind, ErrorKind::Http5xx);
    }
}
