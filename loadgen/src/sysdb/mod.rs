//! Clients of the replicated databases under test: MariaDB Galera, PostgreSQL with Patroni and
//! Redis with Sentinel. Each speaks its store's own protocol through a well-kept async driver
//! and offers the loop's three operations on one key — read (value and version), create as 0
//! when missing, compare-and-set on the version — with the same answers as the etcd client
//! ([`KeyNode`], [`WriteResult`], [`ClientError`]): applied, definitely not applied, or an error
//! whose outcome is unknown.
//!
//! The three stores keep the same shape of data: a key, an integer value and a version that
//! starts at 1 and grows by one with every applied compare-and-set.

pub mod galera;
pub mod postgres;
pub mod sentinel;

use std::future::Future;
use std::time::Duration;

use crate::client::{ClientError, ErrorKind};

/// Runs `fut` within `timeout`; a late answer is a [`ErrorKind::Timeout`] (outcome unknown).
pub(crate) async fn bounded<T>(
    timeout: Duration,
    what: &str,
    fut: impl Future<Output = Result<T, ClientError>>,
) -> Result<T, ClientError> {
    match tokio::time::timeout(timeout, fut).await {
        Ok(r) => r,
        Err(_) => Err(ClientError::new(
            ErrorKind::Timeout,
            format!("{what}: no answer within {timeout:?}"),
        )),
    }
}
