//! The load generator's side of the system adapters: one client per system, all behind the
//! [`Store`] trait, each bound to one host (one connection, so the per-node columns keep their
//! meaning) and to one key. The loop in `worker.rs` only sees the trait: read the key with its
//! version, create it if missing, compare-and-set it on the version read.
//!
//! Every write ends in one of three typed outcomes, which the checker relies on:
//! - `Ok(WriteResult::Applied(node))`: the store acknowledged it; `node` is the key after it;
//! - `Ok(WriteResult::Rejected(_))`: the store said for sure it did not apply (compare failed,
//!   key exists): a conflict;
//! - `Err(ClientError)`: unknown (timeout, lost connection, unavailable, unexpected answer):
//!   it may still take effect later, and the checker keeps it pending.
//!
//! After any error the worker calls [`Store::reset`]: the connection is dropped and the next
//! request opens a new one to the same host. Every call is bounded by the run's timeout.
//!
//! Modules: Perseus and etcd v2 speak the etcd v2 keys API (`crate::client::EtcdClient`),
//! [`etcd3`] etcd's v3 API through gRPC (the `etcd-client` crate), [`etcd3_gateway`] the same
//! through etcd's JSON gateway (`--etcd3-gateway`, to measure its cost), [`zookeeper`] ZooKeeper through the
//! zookeeper-client crate, [`nats`] NATS JetStream KV through async-nats; [`galera`] MariaDB
//! Galera through mysql_async, [`postgres`] PostgreSQL behind Patroni and HAProxy through
//! tokio-postgres, [`sentinel`] Redis with Sentinel through the redis crate.

pub mod etcd3;
pub mod etcd3_gateway;
pub mod galera;
pub mod nats;
pub mod postgres;
pub mod sentinel;
pub mod zookeeper;

use std::time::Duration;

use perseus_model::System;

pub use crate::client::{ClientError, ErrorKind, EtcdClient, KeyNode, WriteResult};

/// One client of one key on one host of a system.
// Static dispatch only (through [`AnyStore`]); the futures run on the worker's own task, so
// no Send bound needs to be named on them.
#[allow(async_fn_in_trait)]
pub trait Store {
    /// Reads the key and its version: `Ok(None)` when it does not exist.
    async fn read(&mut self) -> Result<Option<KeyNode>, ClientError>;
    /// Creates the key with `value` unless it exists.
    async fn create(&mut self, value: i64) -> Result<WriteResult, ClientError>;
    /// Sets the key to `value` if its version is still `prev`.
    async fn cas(&mut self, prev: u64, value: i64) -> Result<WriteResult, ClientError>;
    /// Sets the key to `value` whatever it holds (a blind write, the register workload's);
    /// `Ok` with the version it made when the store tells it.
    async fn put(&mut self, value: i64) -> Result<Option<u64>, ClientError>;
    /// Drops the connection; the next call opens a new one.
    fn reset(&mut self);
    /// Where it goes (for logs): the host's endpoint and the key.
    fn endpoint(&self) -> &str;
}

impl Store for EtcdClient {
    async fn read(&mut self) -> Result<Option<KeyNode>, ClientError> {
        self.get().await
    }
    async fn create(&mut self, value: i64) -> Result<WriteResult, ClientError> {
        EtcdClient::create(self, value).await
    }
    async fn cas(&mut self, prev: u64, value: i64) -> Result<WriteResult, ClientError> {
        EtcdClient::cas(self, prev, value).await
    }
    async fn put(&mut self, value: i64) -> Result<Option<u64>, ClientError> {
        EtcdClient::set(self, value)
            .await
            .map(|n| Some(n.modified_index))
    }
    fn reset(&mut self) {
        EtcdClient::reset(self)
    }
    fn endpoint(&self) -> &str {
        self.url()
    }
}

/// The client of whichever system the run loads.
pub enum AnyStore {
    /// Perseus and etcd v2.
    EtcdV2(EtcdClient),
    /// Boxed: etcd-client's handle is large, as async-nats' is.
    EtcdV3(Box<etcd3::Etcd3Client>),
    EtcdV3Gateway(etcd3_gateway::Etcd3GatewayClient),
    Zookeeper(zookeeper::ZookeeperClient),
    /// Boxed: async-nats' store handle is large, the others are small.
    Nats(Box<nats::NatsClient>),
    Galera(galera::GaleraClient),
    Postgres(postgres::PostgresClient),
    Sentinel(sentinel::SentinelClient),
}

impl AnyStore {
    /// A client of `key` on the host at `endpoint` (one of [`System::nodes`]' forms).
    pub fn new(system: System, endpoint: &str, key: &str, timeout: Duration) -> Self {
        match system {
            System::Perseus | System::Etcd => {
                AnyStore::EtcdV2(EtcdClient::new(endpoint, key, timeout))
            }
            System::Etcd3 => {
                AnyStore::EtcdV3(Box::new(etcd3::Etcd3Client::new(endpoint, key, timeout)))
            }
            System::Zookeeper => {
                AnyStore::Zookeeper(zookeeper::ZookeeperClient::new(endpoint, key, timeout))
            }
            System::Nats => AnyStore::Nats(Box::new(nats::NatsClient::new(endpoint, key, timeout))),
            System::Galera => AnyStore::Galera(galera::GaleraClient::new(endpoint, key, timeout)),
            System::Postgres => {
                AnyStore::Postgres(postgres::PostgresClient::new(endpoint, key, timeout))
            }
            System::Sentinel => {
                AnyStore::Sentinel(sentinel::SentinelClient::new(endpoint, key, timeout))
            }
        }
    }

    /// Reads without a quorum where the API has the choice (etcd v2's `quorum=false`): the
    /// stale-reads control. Other systems read as they always do.
    pub fn with_local_reads(self) -> Self {
        match self {
            AnyStore::EtcdV2(c) => AnyStore::EtcdV2(c.with_local_reads()),
            other => other,
        }
    }

    /// etcd3 through its JSON gateway instead of gRPC (`--etcd3-gateway`); other systems as
    /// they are.
    pub fn through_etcd3_gateway(self) -> Self {
        match self {
            AnyStore::EtcdV3(c) => AnyStore::EtcdV3Gateway(etcd3_gateway::Etcd3GatewayClient::new(
                c.base(),
                c.key(),
                c.timeout(),
            )),
            other => other,
        }
    }

    /// A client that reads `key` from the own copy of the replica at `endpoint`, for the
    /// replica comparison after a run; `None` where this load generator has no such read for
    /// the system yet (Perseus' acceptors, NATS, PostgreSQL and Sentinel replicas are not
    /// behind the load's endpoints).
    pub fn replica(system: System, endpoint: &str, key: &str, timeout: Duration) -> Option<Self> {
        let store = AnyStore::new(system, endpoint, key, timeout);
        match (system, store) {
            // `quorum=false`: the member answers from its own copy
            (System::Etcd, AnyStore::EtcdV2(c)) => Some(AnyStore::EtcdV2(c.with_local_reads())),
            (System::Etcd3, AnyStore::EtcdV3(c)) => {
                Some(AnyStore::EtcdV3(Box::new(c.with_serializable_reads())))
            }
            // getData without sync: the server's own copy
            (System::Zookeeper, s @ AnyStore::Zookeeper(_)) => Some(s),
            (System::Galera, AnyStore::Galera(c)) => Some(AnyStore::Galera(c.with_local_reads())),
            _ => None,
        }
    }

    /// Reads the key as the latest state the store has: what the final read after a run uses.
    /// The same as [`Store::read`] except for ZooKeeper, whose local reads may lag: there it
    /// syncs the server with the leader first.
    pub async fn read_latest(&mut self) -> Result<Option<KeyNode>, ClientError> {
        match self {
            AnyStore::Zookeeper(c) => c.read_synced().await,
            other => other.read().await,
        }
    }
}

impl Store for AnyStore {
    async fn read(&mut self) -> Result<Option<KeyNode>, ClientError> {
        match self {
            AnyStore::EtcdV2(c) => c.read().await,
            AnyStore::EtcdV3(c) => c.read().await,
            AnyStore::EtcdV3Gateway(c) => c.read().await,
            AnyStore::Zookeeper(c) => c.read().await,
            AnyStore::Nats(c) => c.as_mut().read().await,
            AnyStore::Galera(c) => c.read().await,
            AnyStore::Postgres(c) => c.read().await,
            AnyStore::Sentinel(c) => c.read().await,
        }
    }
    async fn create(&mut self, value: i64) -> Result<WriteResult, ClientError> {
        match self {
            AnyStore::EtcdV2(c) => Store::create(c, value).await,
            AnyStore::EtcdV3(c) => c.create(value).await,
            AnyStore::EtcdV3Gateway(c) => c.create(value).await,
            AnyStore::Zookeeper(c) => c.create(value).await,
            AnyStore::Nats(c) => c.create(value).await,
            AnyStore::Galera(c) => Store::create(c, value).await,
            AnyStore::Postgres(c) => Store::create(c, value).await,
            AnyStore::Sentinel(c) => Store::create(c, value).await,
        }
    }
    async fn cas(&mut self, prev: u64, value: i64) -> Result<WriteResult, ClientError> {
        match self {
            AnyStore::EtcdV2(c) => Store::cas(c, prev, value).await,
            AnyStore::EtcdV3(c) => c.cas(prev, value).await,
            AnyStore::EtcdV3Gateway(c) => c.cas(prev, value).await,
            AnyStore::Zookeeper(c) => c.cas(prev, value).await,
            AnyStore::Nats(c) => c.cas(prev, value).await,
            AnyStore::Galera(c) => Store::cas(c, prev, value).await,
            AnyStore::Postgres(c) => Store::cas(c, prev, value).await,
            AnyStore::Sentinel(c) => Store::cas(c, prev, value).await,
        }
    }
    async fn put(&mut self, value: i64) -> Result<Option<u64>, ClientError> {
        match self {
            AnyStore::EtcdV2(c) => Store::put(c, value).await,
            AnyStore::EtcdV3(c) => c.put(value).await,
            AnyStore::EtcdV3Gateway(c) => c.put(value).await,
            AnyStore::Zookeeper(c) => c.put(value).await,
            AnyStore::Nats(c) => c.put(value).await,
            AnyStore::Galera(c) => Store::put(c, value).await,
            AnyStore::Postgres(c) => Store::put(c, value).await,
            AnyStore::Sentinel(c) => Store::put(c, value).await,
        }
    }
    fn reset(&mut self) {
        match self {
            AnyStore::EtcdV2(c) => Store::reset(c),
            AnyStore::EtcdV3(c) => c.reset(),
            AnyStore::EtcdV3Gateway(c) => c.reset(),
            AnyStore::Zookeeper(c) => c.reset(),
            AnyStore::Nats(c) => c.reset(),
            AnyStore::Galera(c) => Store::reset(c),
            AnyStore::Postgres(c) => Store::reset(c),
            AnyStore::Sentinel(c) => Store::reset(c),
        }
    }
    fn endpoint(&self) -> &str {
        match self {
            AnyStore::EtcdV2(c) => Store::endpoint(c),
            AnyStore::EtcdV3(c) => Store::endpoint(c.as_ref()),
            AnyStore::EtcdV3Gateway(c) => Store::endpoint(c),
            AnyStore::Zookeeper(c) => Store::endpoint(c),
            AnyStore::Nats(c) => Store::endpoint(c.as_ref()),
            AnyStore::Galera(c) => Store::endpoint(c),
            AnyStore::Postgres(c) => Store::endpoint(c),
            AnyStore::Sentinel(c) => Store::endpoint(c),
        }
    }
}

/// Runs `fut` within `timeout`; past it, an unknown outcome ([`ErrorKind::Timeout`]).
pub(crate) async fn bounded<T>(
    timeout: Duration,
    fut: impl std::future::Future<Output = Result<T, ClientError>>,
) -> Result<T, ClientError> {
    match tokio::time::timeout(timeout, fut).await {
        Ok(r) => r,
        Err(_) => Err(ClientError::new(ErrorKind::Timeout, "request timed out")),
    }
}

/// The integer a value holds, or a body error naming it.
pub(crate) fn text(bytes: &[u8]) -> Result<String, ClientError> {
    String::from_utf8(bytes.to_vec())
        .map_err(|_| ClientError::new(ErrorKind::Body, "value is not UTF-8"))
}
