//! etcd's v3 API for one key on one member, through etcd's gRPC API with the `etcd-client`
//! crate (tonic), as etcd's own Go client speaks it:
//! - read: `Range` of the key, linearizable (not `serializable`): its value and `mod_revision`;
//! - create: a `Txn` comparing `create_revision == 0` (the key does not exist), then a put;
//! - compare-and-set: the same txn comparing `mod_revision == prev`;
//! - blind write: a `Txn` without a compare (its header names the revision it made).
//!
//! A txn whose compare fails answers `succeeded: false`: a definite conflict. Every other
//! failure (a gRPC status, a broken or refused connection, the run's timeout) is an unknown
//! outcome. One client (one HTTP/2 connection) per logical client, bound to its member only
//! (etcd-client balances over the endpoints it is given: it is given one), dropped on
//! [`Etcd3Client::reset`] and opened again by the next call.

use std::time::Duration;

use etcd_client::{Client, Compare, CompareOp, ConnectOptions, GetOptions, Txn, TxnOp};
use tonic::Code;

use super::{bounded, text, ClientError, ErrorKind, KeyNode, Store, WriteResult};

/// A client for one key on one etcd member.
pub struct Etcd3Client {
    base: String,
    endpoint: String,
    key: String,
    timeout: Duration,
    client: Option<Client>,
    /// Reads answered from the member's own copy (`serializable`): the replica comparison.
    serializable: bool,
}

/// The kind of a failed call: what the checker and the error columns show.
fn kind_of(e: &etcd_client::Error) -> ErrorKind {
    use etcd_client::Error;
    match e {
        Error::GRpcStatus(status) => match status.code() {
            Code::DeadlineExceeded => ErrorKind::Timeout,
            // no leader, a member cut off from the majority, a stopped server
            Code::Unavailable => ErrorKind::Http5xx,
            _ => ErrorKind::HttpUnexpected,
        },
        Error::TransportError(_) | Error::IoError(_) => ErrorKind::Connect,
        _ => ErrorKind::HttpUnexpected,
    }
}

fn error(e: etcd_client::Error) -> ClientError {
    ClientError::new(kind_of(&e), e.to_string())
}

impl Etcd3Client {
    /// `base` is the member's client URL (`http://10.77.0.21:2379`).
    pub fn new(base: &str, key: &str, timeout: Duration) -> Self {
        let base = base.trim_end_matches('/').to_string();
        Etcd3Client {
            endpoint: format!("{base} (gRPC) key {key}"),
            base,
            key: key.to_string(),
            timeout,
            client: None,
            serializable: false,
        }
    }

    /// Reads the member's own copy (a serializable range, no round through the leader).
    pub fn with_serializable_reads(mut self) -> Self {
        self.serializable = true;
        self
    }

    pub fn base(&self) -> &str {
        &self.base
    }
    pub fn key(&self) -> &str {
        &self.key
    }
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The open client, or a new one (a new connection) to the member.
    async fn client(&mut self) -> Result<Client, ClientError> {
        if let Some(c) = &self.client {
            return Ok(c.clone());
        }
        let options = ConnectOptions::new()
            .with_connect_timeout(self.timeout)
            .with_timeout(self.timeout);
        let c = bounded(self.timeout, async {
            Client::connect([self.base.as_str()], Some(options))
                .await
                .map_err(|e| ClientError::new(ErrorKind::Connect, e.to_string()))
        })
        .await?;
        self.client = Some(c.clone());
        Ok(c)
    }

    /// One txn: `compare` (none: always), then a put of `value`.
    async fn txn(
        &mut self,
        compare: Option<Compare>,
        value: i64,
    ) -> Result<WriteResult, ClientError> {
        let mut client = self.client().await?;
        let mut txn = Txn::new();
        if let Some(compare) = compare {
            txn = txn.when([compare]);
        }
        let txn = txn.and_then([TxnOp::put(self.key.as_str(), value.to_string(), None)]);
        let answer = bounded(self.timeout + Duration::from_millis(50), async move {
            client.txn(txn).await.map_err(error)
        })
        .await?;
        if !answer.succeeded() {
            return Ok(WriteResult::Rejected(None));
        }
        let revision = answer.header().map_or(0, |h| h.revision());
        if revision <= 0 {
            return Err(ClientError::new(
                ErrorKind::Body,
                "txn answer without revision",
            ));
        }
        Ok(WriteResult::Applied(KeyNode {
            value: value.to_string(),
            modified_index: revision as u64,
        }))
    }
}

impl Store for Etcd3Client {
    async fn read(&mut self) -> Result<Option<KeyNode>, ClientError> {
        let mut client = self.client().await?;
        let key = self.key.clone();
        let options = self
            .serializable
            .then(|| GetOptions::new().with_serializable());
        let answer = bounded(self.timeout + Duration::from_millis(50), async move {
            client.get(key, options).await.map_err(error)
        })
        .await?;
        let Some(kv) = answer.kvs().first() else {
            return Ok(None);
        };
        Ok(Some(KeyNode {
            value: text(kv.value())?,
            modified_index: kv.mod_revision().max(0) as u64,
        }))
    }

    async fn create(&mut self, value: i64) -> Result<WriteResult, ClientError> {
        let compare = Compare::create_revision(self.key.as_str(), CompareOp::Equal, 0);
        self.txn(Some(compare), value).await
    }

    async fn cas(&mut self, prev: u64, value: i64) -> Result<WriteResult, ClientError> {
        let prev = i64::try_from(prev).map_err(|_| {
            ClientError::new(ErrorKind::Body, format!("revision {prev} out of range"))
        })?;
        let compare = Compare::mod_revision(self.key.as_str(), CompareOp::Equal, prev);
        self.txn(Some(compare), value).await
    }

    async fn put(&mut self, value: i64) -> Result<Option<u64>, ClientError> {
        match self.txn(None, value).await? {
            WriteResult::Applied(n) => Ok(Some(n.modified_index)),
            WriteResult::Rejected(_) => Err(ClientError::new(
                ErrorKind::Body,
                "a txn without a compare did not succeed",
            )),
        }
    }

    fn reset(&mut self) {
        self.client = None;
    }

    fn endpoint(&self) -> &str {
        &self.endpoint
    }
}
