//! The replicated databases' clients against the real servers, when they run: set
//! SYSDB_SENTINEL=10.77.0.81:26379, SYSDB_POSTGRES=10.77.0.71:5000 or SYSDB_GALERA=10.77.0.61:3306
//! (after `make up SYSTEM=sentinel|postgres|galera`) and run `cargo test -p loadgen --test
//! sysdb_real -- --ignored`: the tests are ignored otherwise (and fail, naming the variable,
//! when run without it), so `make test` reports them as ignored instead of passing silently.
//! Each runs the loop's contract once on a fresh key: missing, created once, a compare-and-set
//! that applies and one that does not.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use loadgen::client::{ClientError, KeyNode, WriteResult};
use loadgen::store::{galera::GaleraClient, postgres::PostgresClient, sentinel::SentinelClient};

const TIMEOUT: Duration = Duration::from_secs(3);

fn fresh_key(system: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("test-{system}-{nanos}")
}

fn node(v: i64, ver: u64) -> KeyNode {
    KeyNode {
        value: v.to_string(),
        modified_index: ver,
    }
}

/// The contract, through the three calls of one client.
macro_rules! contract {
    ($c:expr) => {{
        let c = &mut $c;
        assert_eq!(c.get().await?, None);
        assert_eq!(c.create(0).await?, WriteResult::Applied(node(0, 1)));
        assert_eq!(c.create(0).await?, WriteResult::Rejected(None));
        assert_eq!(c.get().await?, Some(node(0, 1)));
        assert_eq!(c.cas(1, 1).await?, WriteResult::Applied(node(1, 2)));
        assert_eq!(c.cas(1, 9).await?, WriteResult::Rejected(None));
        c.reset();
        assert_eq!(c.get().await?, Some(node(1, 2)));
        Ok::<(), ClientError>(())
    }};
}

#[tokio::test]
#[ignore = "needs a running sentinel (make up SYSTEM=sentinel) and SYSDB_SENTINEL=HOST:PORT"]
async fn sentinel_client_contract() -> Result<(), ClientError> {
    let addr = std::env::var("SYSDB_SENTINEL")
        .expect("SYSDB_SENTINEL=HOST:PORT of a running sentinel host");
    contract!(SentinelClient::new(&addr, &fresh_key("sentinel"), TIMEOUT))
}

#[tokio::test]
#[ignore = "needs a running postgres (make up SYSTEM=postgres) and SYSDB_POSTGRES=HOST:PORT"]
async fn postgres_client_contract() -> Result<(), ClientError> {
    let addr = std::env::var("SYSDB_POSTGRES")
        .expect("SYSDB_POSTGRES=HOST:PORT of a running postgres host");
    contract!(PostgresClient::new(&addr, &fresh_key("postgres"), TIMEOUT))
}

#[tokio::test]
#[ignore = "needs a running galera (make up SYSTEM=galera) and SYSDB_GALERA=HOST:PORT"]
async fn galera_client_contract() -> Result<(), ClientError> {
    let addr =
        std::env::var("SYSDB_GALERA").expect("SYSDB_GALERA=HOST:PORT of a running galera host");
    contract!(GaleraClient::new(&addr, &fresh_key("galera"), TIMEOUT))
}
