//! MariaDB with Galera: every host accepts reads and writes (multi-primary, no leader). The
//! client of one host connects to that host's MariaDB (port 3306) and stays there.
//!
//! Data: `perseus.kv(k primary key, v bigint, ver bigint)`, created when the cluster is
//! bootstrapped (compose/sysdb/galera-init.sql). Read: `SELECT v, ver`; create: `INSERT` (a
//! duplicate key means not applied); compare-and-set: `UPDATE kv SET v = ?, ver = ver + 1 WHERE
//! k = ? AND ver = ?` — one affected row means applied, none means not applied. Autocommit.
//!
//! What it promises: Galera certifies every transaction on all hosts of the primary component
//! in one global order, and the session runs with `wsrep_sync_wait = 15`, the strongest setting
//! (reads, updates, inserts and SHOW first wait until the host has applied everything the
//! cluster committed before them), so reads are linearizable. A host cut off from the majority
//! leaves the primary component and refuses queries (error 1047) rather than serve stale data.
//! The checker checks exactly that: any lost or stale value is a violation.
//!
//! A write the server refused (not in the primary component) or rolled back (a certification
//! failure, a deadlock, a lock wait timeout) is known not to have happened, and the history
//! records it as failed; a write that got no answer is unknown.

use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, OptsBuilder};

use super::{bounded, ClientError, ErrorKind, KeyNode, Store, WriteResult};

/// The strongest causality check Galera offers (all statement kinds wait for the cluster).
pub const SYNC_WAIT: u8 = 15;
/// MariaDB's "duplicate entry" error: a create of a key that exists.
const ER_DUP_ENTRY: u16 = 1062;
/// Server errors after which the statement is known not to have been applied: the host is not
/// in the primary component and refused the statement (1047, "WSREP has not yet prepared node
/// for application use"); the transaction was rolled back by a certification failure or a
/// deadlock (1213) or a lock wait timeout (1205). An autocommit statement that got one of them
/// did not commit, so the history records it as failed, not unknown.
const NOT_APPLIED: [u16; 3] = [1047, 1205, 1213];

fn my_error(e: mysql_async::Error) -> ClientError {
    match &e {
        // the server answered (unavailable, rolled back, …): the windows count it as a 5xx
        mysql_async::Error::Server(s) => {
            let err = ClientError::new(ErrorKind::Http5xx, e.to_string());
            if NOT_APPLIED.contains(&s.code) {
                err.not_applied()
            } else {
                err
            }
        }
        // no answer (connection lost, I/O, protocol): the statement may have committed
        _ => ClientError::new(ErrorKind::Connect, e.to_string()),
    }
}

/// A client for one key on one Galera host.
pub struct GaleraClient {
    /// For logs: the endpoint and the key.
    endpoint: String,
    /// `host:port` of the host's MariaDB.
    addr: String,
    key: String,
    timeout: Duration,
    conn: Option<Conn>,
    /// The session's `wsrep_sync_wait` (0: the host answers from its own copy at once).
    sync_wait: u8,
}

impl GaleraClient {
    /// `endpoint` is `mysql://host:port` (the scheme is optional).
    pub fn new(endpoint: &str, key: &str, timeout: Duration) -> Self {
        let addr = endpoint
            .split_once("://")
            .map_or(endpoint, |(_, a)| a)
            .trim_end_matches('/');
        GaleraClient {
            endpoint: format!("mysql://{addr} {key}"),
            addr: addr.to_string(),
            key: key.to_string(),
            timeout,
            conn: None,
            sync_wait: SYNC_WAIT,
        }
    }

    /// Reads the host's own copy as it is (`wsrep_sync_wait = 0`): the replica comparison.
    pub fn with_local_reads(mut self) -> Self {
        self.sync_wait = 0;
        self
    }

    /// Drops the connection; the next operation opens a new one.
    pub fn reset(&mut self) {
        self.conn = None;
    }

    async fn connect(&self) -> Result<Conn, ClientError> {
        let (host, port) = self.addr.rsplit_once(':').ok_or_else(|| {
            ClientError::new(ErrorKind::Connect, format!("bad address {:?}", self.addr))
        })?;
        let port: u16 = port.parse().map_err(|_| {
            ClientError::new(ErrorKind::Connect, format!("bad port in {:?}", self.addr))
        })?;
        let opts = OptsBuilder::default()
            .ip_or_hostname(host)
            .tcp_port(port)
            .user(Some("perseus"))
            .db_name(Some("perseus"))
            .prefer_socket(false);
        let mut conn = Conn::new(opts).await.map_err(my_error)?;
        conn.query_drop(format!("SET SESSION wsrep_sync_wait = {}", self.sync_wait))
            .await
            .map_err(my_error)?;
        Ok(conn)
    }

    /// The open connection, opening one first if there is none.
    async fn conn(&mut self) -> Result<&mut Conn, ClientError> {
        if self.conn.is_none() {
            let c = bounded(self.timeout, self.connect()).await?;
            self.conn = Some(c);
        }
        self.conn
            .as_mut()
            .ok_or_else(|| ClientError::new(ErrorKind::Connect, "no connection"))
    }

    /// Reads the key: `Ok(None)` if it does not exist.
    pub async fn get(&mut self) -> Result<Option<KeyNode>, ClientError> {
        let timeout = self.timeout;
        let key = self.key.clone();
        let conn = self.conn().await?;
        let row: Option<(i64, i64)> = bounded(timeout, async {
            conn.exec_first("SELECT v, ver FROM kv WHERE k = ?", (key,))
                .await
                .map_err(my_error)
        })
        .await?;
        row.map(|(v, ver)| node(v, ver)).transpose()
    }

    /// Creates the key with `value` (version 1) if it does not exist.
    pub async fn create(&mut self, value: i64) -> Result<WriteResult, ClientError> {
        let timeout = self.timeout;
        let key = self.key.clone();
        let conn = self.conn().await?;
        let created = bounded(timeout, async {
            match conn
                .exec_drop("INSERT INTO kv (k, v, ver) VALUES (?, ?, 1)", (key, value))
                .await
            {
                Ok(()) => Ok(true),
                Err(mysql_async::Error::Server(s)) if s.code == ER_DUP_ENTRY => Ok(false),
                Err(e) => Err(my_error(e)),
            }
        })
        .await?;
        Ok(if created {
            WriteResult::Applied(node(value, 1)?)
        } else {
            WriteResult::Rejected(None)
        })
    }

    /// Sets the key to `value` if its version is `prev`.
    pub async fn cas(&mut self, prev: u64, value: i64) -> Result<WriteResult, ClientError> {
        let timeout = self.timeout;
        let key = self.key.clone();
        let conn = self.conn().await?;
        let affected = bounded(timeout, async {
            conn.exec_drop(
                "UPDATE kv SET v = ?, ver = ver + 1 WHERE k = ? AND ver = ?",
                (value, key, prev),
            )
            .await
            .map_err(my_error)?;
            Ok(conn.affected_rows())
        })
        .await?;
        if affected == 1 {
            let next = i64::try_from(prev + 1)
                .map_err(|_| ClientError::new(ErrorKind::Body, "version overflow"))?;
            Ok(WriteResult::Applied(node(value, next)?))
        } else {
            Ok(WriteResult::Rejected(None))
        }
    }
}

impl Store for GaleraClient {
    async fn read(&mut self) -> Result<Option<KeyNode>, ClientError> {
        self.get().await
    }
    async fn create(&mut self, value: i64) -> Result<WriteResult, ClientError> {
        GaleraClient::create(self, value).await
    }
    async fn cas(&mut self, prev: u64, value: i64) -> Result<WriteResult, ClientError> {
        GaleraClient::cas(self, prev, value).await
    }
    async fn put(&mut self, value: i64) -> Result<Option<u64>, ClientError> {
        let timeout = self.timeout;
        let key = self.key.clone();
        let conn = self.conn().await?;
        // an upsert; MariaDB does not say the version it made (the register check needs none)
        bounded(timeout, async {
            conn.exec_drop(
                "INSERT INTO kv (k, v, ver) VALUES (?, ?, 1) \
                 ON DUPLICATE KEY UPDATE v = VALUES(v), ver = ver + 1",
                (key, value),
            )
            .await
            .map_err(my_error)
        })
        .await?;
        Ok(None)
    }
    fn reset(&mut self) {
        GaleraClient::reset(self)
    }
    fn endpoint(&self) -> &str {
        &self.endpoint
    }
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
    use crate::history_log::HistoryLog;
    use perseus_history::{EventKind, Func};

    fn server(code: u16) -> mysql_async::Error {
        mysql_async::Error::Server(mysql_async::ServerError {
            code,
            message: "refused".into(),
            state: "HY000".into(),
        })
    }

    #[test]
    fn refusals_and_rollbacks_are_failures_other_errors_unknown() {
        // not in the primary component, a certification failure: the write did not happen
        for code in [1047, 1213, 1205] {
            let e = my_error(server(code));
            assert!(e.not_applied, "{code}");
            assert_eq!(e.kind, ErrorKind::Http5xx);
            assert_eq!(HistoryLog::failed_kind(Func::Cas, &e), EventKind::Fail);
        }
        // any other server error, or no answer at all: it may have committed
        let e = my_error(server(1064));
        assert!(!e.not_applied);
        assert_eq!(HistoryLog::failed_kind(Func::Write, &e), EventKind::Info);
        let e = my_error(mysql_async::Error::Other("connection reset".into()));
        assert_eq!((e.kind, e.not_applied), (ErrorKind::Connect, false));
        assert_eq!(HistoryLog::failed_kind(Func::Create, &e), EventKind::Info);
    }
}
