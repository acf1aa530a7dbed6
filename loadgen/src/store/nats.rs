//! NATS JetStream key-value for one key on one server, through async-nats (NATS' own Rust
//! client). The bucket is `perseus` (its stream `KV_perseus`: three replicas, file storage,
//! one value per key), created by the first client that finds it missing. The version of a key
//! is its revision (the stream sequence of its last put):
//! - read: the bucket's `entry` (value and revision);
//! - create: `update` with expected revision 0 (the header
//!   `Nats-Expected-Last-Subject-Sequence: 0`, what `create` sends first; `create` itself reads
//!   the key after a failed attempt and would turn a timed-out create that did apply into
//!   "already exists", an outcome it does not know);
//! - compare-and-set: `update` with the expected revision (wrong last sequence: a conflict).
//!
//! Consistent reads: the bucket is made with `allow_direct` off, so `entry` asks the stream
//! leader (`$JS.API.STREAM.MSG.GET.KV_perseus`, last message by subject) instead of letting any
//! replica answer a direct get (which may be behind). Writes also go to the stream leader, which
//! acknowledges after a quorum stored them.
//!
//! The connection is bound to this one server: the servers the cluster advertises are ignored
//! and the client does not reconnect elsewhere; after an error [`NatsClient::reset`] drops it.

use std::time::Duration;

use async_nats::jetstream::{self, kv, stream};

use super::{bounded, text, ClientError, ErrorKind, KeyNode, Store, WriteResult};

/// The bucket the load uses (its stream is `KV_perseus`, which chaos's leader lookup reads).
pub const BUCKET: &str = "perseus";

/// The stream behind [`BUCKET`], as async-nats' `create_key_value` would make it but with
/// `allow_direct` off.
fn bucket_stream() -> stream::Config {
    stream::Config {
        name: format!("KV_{BUCKET}"),
        subjects: vec![format!("$KV.{BUCKET}.>")],
        max_messages_per_subject: 1,
        num_replicas: 3,
        storage: stream::StorageType::File,
        discard: stream::DiscardPolicy::New,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: false,
        ..Default::default()
    }
}

/// A client for one key on one NATS server.
pub struct NatsClient {
    url: String,
    key: String,
    endpoint: String,
    timeout: Duration,
    store: Option<kv::Store>,
}

fn err(kind: ErrorKind, what: &str, e: impl std::fmt::Display) -> ClientError {
    ClientError::new(kind, format!("nats {what}: {e}"))
}

/// "No responders" and JetStream's 503 mean nobody could serve it now: unavailable.
fn kind_of(e: &impl std::fmt::Display) -> ErrorKind {
    let text = e.to_string().to_lowercase();
    if text.contains("no responders") || text.contains("503") || text.contains("unavailable") {
        ErrorKind::Http5xx
    } else if text.contains("timed out") || text.contains("timeout") {
        ErrorKind::Timeout
    } else {
        ErrorKind::HttpUnexpected
    }
}

impl NatsClient {
    /// `endpoint` is `nats://host:port`.
    pub fn new(endpoint: &str, key: &str, timeout: Duration) -> Self {
        NatsClient {
            url: endpoint.trim_end_matches('/').to_string(),
            key: key.to_string(),
            endpoint: format!("{endpoint} {BUCKET}/{key}"),
            timeout,
            store: None,
        }
    }

    /// The bucket over a connection to this server, opened (and the bucket made when missing)
    /// within the timeout.
    async fn store(&mut self) -> Result<kv::Store, ClientError> {
        if let Some(s) = &self.store {
            return Ok(s.clone());
        }
        let url = self.url.clone();
        let timeout = self.timeout;
        let store = bounded(timeout, async move {
            let client = async_nats::ConnectOptions::new()
                .ignore_discovered_servers()
                .connection_timeout(timeout)
                .request_timeout(Some(timeout))
                .max_reconnects(Some(1))
                .connect(url.as_str())
                .await
                .map_err(|e| err(ErrorKind::Connect, "connect", e))?;
            let js = jetstream::new(client);
            match js.get_key_value(BUCKET).await {
                Ok(s) => Ok(s),
                Err(_) => {
                    // Missing (or not readable yet): make it; a concurrent maker is fine.
                    if let Err(e) = js.get_or_create_stream(bucket_stream()).await {
                        return Err(err(kind_of(&e), "create bucket", e));
                    }
                    js.get_key_value(BUCKET)
                        .await
                        .map_err(|e| err(kind_of(&e), "bucket", e))
                }
            }
        })
        .await?;
        self.store = Some(store.clone());
        Ok(store)
    }

    async fn update(&mut self, prev: u64, value: i64) -> Result<WriteResult, ClientError> {
        let store = self.store().await?;
        let key = self.key.clone();
        bounded(self.timeout, async move {
            let data = value.to_string();
            match store.update(&key, data.clone().into(), prev).await {
                Ok(revision) => Ok(WriteResult::Applied(KeyNode {
                    value: data,
                    modified_index: revision,
                })),
                Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => {
                    Ok(WriteResult::Rejected(None))
                }
                Err(e) => Err(err(kind_of(&e), "update", e)),
            }
        })
        .await
    }
}

impl Store for NatsClient {
    async fn read(&mut self) -> Result<Option<KeyNode>, ClientError> {
        let store = self.store().await?;
        let key = self.key.clone();
        bounded(self.timeout, async move {
            match store.entry(&key).await {
                Ok(None) => Ok(None),
                Ok(Some(e)) if e.operation != kv::Operation::Put => Ok(None),
                Ok(Some(e)) => Ok(Some(KeyNode {
                    value: text(&e.value)?,
                    modified_index: e.revision,
                })),
                Err(e) => Err(err(kind_of(&e), "entry", e)),
            }
        })
        .await
    }

    async fn create(&mut self, value: i64) -> Result<WriteResult, ClientError> {
        self.update(0, value).await
    }

    async fn cas(&mut self, prev: u64, value: i64) -> Result<WriteResult, ClientError> {
        self.update(prev, value).await
    }

    async fn put(&mut self, value: i64) -> Result<Option<u64>, ClientError> {
        let store = self.store().await?;
        let key = self.key.clone();
        bounded(self.timeout, async move {
            match store.put(&key, value.to_string().into()).await {
                Ok(revision) => Ok(Some(revision)),
                Err(e) => Err(err(kind_of(&e), "put", e)),
            }
        })
        .await
    }

    fn reset(&mut self) {
        self.store = None;
    }

    fn endpoint(&self) -> &str {
        &self.endpoint
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bucket_reads_through_the_stream_leader() {
        let c = bucket_stream();
        assert!(!c.allow_direct);
        assert_eq!(c.num_replicas, 3);
        assert_eq!(c.max_messages_per_subject, 1);
        assert_eq!(c.name, "KV_perseus");
    }

    #[test]
    fn unavailable_is_told_apart() {
        assert_eq!(kind_of(&"no responders"), ErrorKind::Http5xx);
        assert_eq!(kind_of(&"request timed out"), ErrorKind::Timeout);
        assert_eq!(kind_of(&"weird"), ErrorKind::HttpUnexpected);
    }
}
