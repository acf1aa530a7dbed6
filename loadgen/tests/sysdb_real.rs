//! Every store client against its real server, when it runs: one test per system, each
//! through the client the load generator uses for it (`AnyStore`: etcd's v2 client for
//! Perseus and etcd, the v3 gateway client, ZooKeeper, NATS JetStream KV, Galera, PostgreSQL
//! behind Patroni, Redis with Sentinel). Set SYSDB_<SYSTEM> to a host's client endpoint, as
//! `HOST:PORT` or in `System::nodes`' form (after `make up SYSTEM=...`), e.g.
//! SYSDB_ETCD3=10.77.0.21:2379, SYSDB_ZOOKEEPER=10.77.0.31:2181, SYSDB_NATS=10.77.0.41:4222,
//! SYSDB_SENTINEL=10.77.0.81:26379, SYSDB_POSTGRES=10.77.0.71:5000, SYSDB_GALERA=10.77.0.61:3306
//! (`chaos describe` prints each system's endpoints), and run `cargo test -p loadgen --test
//! sysdb_real -- --ignored`: the tests are ignored otherwise (and fail, naming the variable,
//! when run without it), so `make test` reports them as ignored instead of passing silently.
//! Each runs the loop's contract once on a fresh key: missing, created once, a compare-and-set
//! on the version read that applies and one on a stale version that does not, and the value
//! read again on a new connection.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use loadgen::store::{AnyStore, ClientError, KeyNode, Store, WriteResult};
use perseus_model::System;

const TIMEOUT: Duration = Duration::from_secs(3);

fn fresh_key(system: System) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("test-{system}-{nanos}")
}

/// The endpoint SYSDB_<SYSTEM> names, with the system's scheme when it has none.
fn endpoint(system: System) -> String {
    let var = format!("SYSDB_{}", system.name().to_uppercase());
    let value = std::env::var(&var)
        .unwrap_or_else(|_| panic!("{var}=HOST:PORT of a running {system} host"));
    if value.contains("://") {
        value
    } else {
        format!("{}://{value}", system.scheme())
    }
}

fn applied(result: WriteResult, what: &str) -> KeyNode {
    match result {
        WriteResult::Applied(node) => node,
        other => panic!("{what}: {other:?}, not applied"),
    }
}

/// The contract, through the calls the load generator's loop makes.
async fn contract(system: System) -> Result<(), ClientError> {
    let mut c = AnyStore::new(system, &endpoint(system), &fresh_key(system), TIMEOUT);
    assert_eq!(c.read().await?, None, "a fresh key is missing");
    let created = applied(c.create(0).await?, "create");
    assert_eq!(created.value, "0");
    let again = c.create(0).await?;
    assert!(
        matches!(again, WriteResult::Rejected(_)),
        "a second create: {again:?}"
    );
    assert_eq!(c.read().await?, Some(created.clone()));
    let next = applied(
        c.cas(created.modified_index, 1).await?,
        "cas on the version read",
    );
    assert_eq!(next.value, "1");
    assert_ne!(next.modified_index, created.modified_index);
    let stale = c.cas(created.modified_index, 9).await?;
    assert!(
        matches!(stale, WriteResult::Rejected(_)),
        "cas on a stale version: {stale:?}"
    );
    c.reset();
    assert_eq!(
        c.read().await?,
        Some(next),
        "read again on a new connection"
    );
    Ok(())
}

macro_rules! contract_tests {
    ($($test:ident: $system:expr, $why:literal;)*) => {$(
        #[tokio::test]
        #[ignore = $why]
        async fn $test() -> Result<(), ClientError> {
            contract($system).await
        }
    )*};
}

contract_tests! {
    perseus_client_contract: System::Perseus,
        "needs a running Perseus (make up) and SYSDB_PERSEUS=HOST:PORT";
    etcd_client_contract: System::Etcd,
        "needs a running etcd (make up SYSTEM=etcd) and SYSDB_ETCD=HOST:PORT";
    etcd3_client_contract: System::Etcd3,
        "needs a running etcd (make up SYSTEM=etcd3) and SYSDB_ETCD3=HOST:PORT";
    zookeeper_client_contract: System::Zookeeper,
        "needs a running zookeeper (make up SYSTEM=zookeeper) and SYSDB_ZOOKEEPER=HOST:PORT";
    nats_client_contract: System::Nats,
        "needs a running nats (make up SYSTEM=nats) and SYSDB_NATS=HOST:PORT";
    galera_client_contract: System::Galera,
        "needs a running galera (make up SYSTEM=galera) and SYSDB_GALERA=HOST:PORT";
    postgres_client_contract: System::Postgres,
        "needs a running postgres (make up SYSTEM=postgres) and SYSDB_POSTGRES=HOST:PORT";
    sentinel_client_contract: System::Sentinel,
        "needs a running sentinel (make up SYSTEM=sentinel) and SYSDB_SENTINEL=HOST:PORT";
}
