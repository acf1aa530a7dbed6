//! PostgreSQL 15 with Patroni: the client of one host connects to that host's HAProxy (port
//! 5000), which leads to whichever host Patroni's REST API names the primary; a failover closes
//! the connection and the next one reaches the new primary.
//!
//! Data: `kv(k text primary key, v bigint, ver bigint)`, created by the first client that
//! connects. Read: `SELECT v, ver`; create: `INSERT … ON CONFLICT DO NOTHING`; compare-and-set:
//! `UPDATE kv SET v = $2, ver = ver + 1 WHERE k = $1 AND ver = $3` — one row affected means
//! applied, none means not applied. Every statement commits on its own (autocommit).
//!
//! What it promises: Patroni runs with `synchronous_mode`, so a commit is acknowledged only
//! after the synchronous standby has it and only that standby can be promoted: reads on the
//! primary are linearizable and no acknowledged write is lost by a failover. The checker checks
//! exactly that (any lost or stale value is a violation).

use std::time::Duration;

use tokio_postgres::{Client, NoTls};

use super::{bounded, ClientError, ErrorKind, KeyNode, Store, WriteResult};

/// The table, created if missing by every new connection (a no-op once it exists).
const CREATE_TABLE: &str =
    "CREATE TABLE IF NOT EXISTS kv (k text PRIMARY KEY, v bigint NOT NULL, ver bigint NOT NULL)";

fn pg_error(e: tokio_postgres::Error) -> ClientError {
    let kind = if e.as_db_error().is_some() {
        // the server answered with an error (read-only standby, shutting down, …)
        ErrorKind::Http5xx
    } else {
        ErrorKind::Connect
    };
    ClientError::new(kind, e.to_string())
}

/// A client for one key through one host's HAProxy.
pub struct PostgresClient {
    /// For logs: the endpoint and the key.
    endpoint: String,
    /// `host:port` of the host's HAProxy.
    addr: String,
    key: String,
    timeout: Duration,
    client: Option<Client>,
}

impl PostgresClient {
    /// `endpoint` is `postgres://host:port` (the scheme is optional).
    pub fn new(endpoint: &str, key: &str, timeout: Duration) -> Self {
        let addr = endpoint
            .split_once("://")
            .map_or(endpoint, |(_, a)| a)
            .trim_end_matches('/');
        PostgresClient {
            endpoint: format!("postgres://{addr} {key}"),
            addr: addr.to_string(),
            key: key.to_string(),
            timeout,
            client: None,
        }
    }

    /// Drops the connection; the next operation opens a new one.
    pub fn reset(&mut self) {
        self.client = None;
    }

    async fn connect(&self) -> Result<Client, ClientError> {
        let (host, port) = self.addr.rsplit_once(':').ok_or_else(|| {
            ClientError::new(ErrorKind::Connect, format!("bad address {:?}", self.addr))
        })?;
        let port: u16 = port.parse().map_err(|_| {
            ClientError::new(ErrorKind::Connect, format!("bad port in {:?}", self.addr))
        })?;
        let mut config = tokio_postgres::Config::new();
        config
            .host(host)
            .port(port)
            .user("postgres")
            .dbname("postgres")
            .application_name("perseus-loadgen")
            .connect_timeout(self.timeout);
        let (client, connection) = config.connect(NoTls).await.map_err(pg_error)?;
        // The connection task ends when the client is dropped or the server goes away.
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                log::debug!("postgres connection: {e}");
            }
        });
        client.batch_execute(CREATE_TABLE).await.map_err(pg_error)?;
        Ok(client)
    }

    /// The open connection, opening one first if there is none.
    async fn client(&mut self) -> Result<&Client, ClientError> {
        if self.client.is_none() {
            let c = bounded(self.timeout, self.connect()).await?;
            self.client = Some(c);
        }
        self.client
            .as_ref()
            .ok_or_else(|| ClientError::new(ErrorKind::Connect, "no connection"))
    }

    /// Reads the key: `Ok(None)` if it does not exist.
    pub async fn get(&mut self) -> Result<Option<KeyNode>, ClientError> {
        let timeout = self.timeout;
        let key = self.key.clone();
        let client = self.client().await?;
        let rows = bounded(timeout, async {
            client
                .query("SELECT v, ver FROM kv WHERE k = $1", &[&key])
                .await
                .map_err(pg_error)
        })
        .await?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        let v: i64 = row.try_get(0).map_err(|e| body_error(&e))?;
        let ver: i64 = row.try_get(1).map_err(|e| body_error(&e))?;
        Ok(Some(node(v, ver)?))
    }

    /// Creates the key with `value` (version 1) if it does not exist.
    pub async fn create(&mut self, value: i64) -> Result<WriteResult, ClientError> {
        let timeout = self.timeout;
        let key = self.key.clone();
        let client = self.client().await?;
        let n = bounded(timeout, async {
            client
                .execute(
                    "INSERT INTO kv (k, v, ver) VALUES ($1, $2, 1) ON CONFLICT (k) DO NOTHING",
                    &[&key, &value],
                )
                .await
                .map_err(pg_error)
        })
        .await?;
        Ok(if n == 1 {
            WriteResult::Applied(node(value, 1)?)
        } else {
            WriteResult::Rejected(None)
        })
    }

    /// Sets the key to `value` if its version is `prev`.
    pub async fn cas(&mut self, prev: u64, value: i64) -> Result<WriteResult, ClientError> {
        let timeout = self.timeout;
        let key = self.key.clone();
        let prev_i = i64::try_from(prev)
            .map_err(|_| ClientError::new(ErrorKind::Body, format!("version {prev} too large")))?;
        let client = self.client().await?;
        let rows = bounded(timeout, async {
            client
                .query(
                    "UPDATE kv SET v = $2, ver = ver + 1 WHERE k = $1 AND ver = $3 RETURNING ver",
                    &[&key, &value, &prev_i],
                )
                .await
                .map_err(pg_error)
        })
        .await?;
        match rows.first() {
            None => Ok(WriteResult::Rejected(None)),
            Some(row) => {
                let ver: i64 = row.try_get(0).map_err(|e| body_error(&e))?;
                Ok(WriteResult::Applied(node(value, ver)?))
            }
        }
    }
}

impl Store for PostgresClient {
    async fn read(&mut self) -> Result<Option<KeyNode>, ClientError> {
        self.get().await
    }
    async fn create(&mut self, value: i64) -> Result<WriteResult, ClientError> {
        PostgresClient::create(self, value).await
    }
    async fn cas(&mut self, prev: u64, value: i64) -> Result<WriteResult, ClientError> {
        PostgresClient::cas(self, prev, value).await
    }
    async fn put(&mut self, value: i64) -> Result<Option<u64>, ClientError> {
        let timeout = self.timeout;
        let key = self.key.clone();
        let client = self.client().await?;
        let rows = bounded(timeout, async {
            client
                .query(
                    "INSERT INTO kv (k, v, ver) VALUES ($1, $2, 1) ON CONFLICT (k) \
                     DO UPDATE SET v = EXCLUDED.v, ver = kv.ver + 1 RETURNING ver",
                    &[&key, &value],
                )
                .await
                .map_err(pg_error)
        })
        .await?;
        let ver: Option<i64> = match rows.first() {
            Some(row) => Some(row.try_get(0).map_err(|e| body_error(&e))?),
            None => None,
        };
        Ok(ver.and_then(|v| u64::try_from(v).ok()))
    }
    fn reset(&mut self) {
        PostgresClient::reset(self)
    }
    fn endpoint(&self) -> &str {
        &self.endpoint
    }
}

fn body_error(e: &tokio_postgres::Error) -> ClientError {
    ClientError::new(ErrorKind::Body, format!("bad row: {e}"))
}

/// A row as the loop sees it (versions are never negative).
fn node(v: i64, ver: i64) -> Result<KeyNode, ClientError> {
    let modified_index = u64::try_from(ver)
        .map_err(|_| ClientError::new(ErrorKind::Body, format!("negative version {ver}")))?;
    Ok(KeyNode {
        value: v.to_string(),
        modified_index,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_become_nodes() {
        assert_eq!(
            node(5, 3).unwrap(),
            KeyNode {
                value: "5".into(),
                modified_index: 3
            }
        );
        assert_eq!(node(5, -1).unwrap_err().kind, ErrorKind::Body);
    }

    #[tokio::test]
    async fn refused_connection_is_connect_error() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        let mut c = PostgresClient::new(
            &format!("127.0.0.1:{port}"),
            "k",
            Duration::from_millis(500),
        );
        assert_eq!(c.get().await.unwrap_err().kind, ErrorKind::Connect);
    }
}
