//! ZooKeeper 3.8 for one key on one server, through the zookeeper-client crate (an async
//! client of ZooKeeper's own protocol). The key is the znode `/KEY`, its value the integer as
//! text, its version the znode's `version` (0 at create, one more per setData):
//! - read: `getData` (the value and the stat);
//! - create: `create` of a persistent znode (NodeExists: a conflict);
//! - compare-and-set: `setData` with the expected version (BadVersion or NoNode: a conflict).
//!
//! The session is bound to this one server (a connect string of one host), so the node column
//! means what it means for the other systems. What its reads promise: a server answers reads
//! from its own copy (sequentially consistent: a session sees its own writes and never goes
//! back, but may lag behind other sessions' writes; not linearizable unless preceded by
//! `sync`). A server cut off from the quorum stops serving and closes its sessions. One key per
//! session, written only through that session, is therefore checked exactly as on a
//! linearizable store; [`ZookeeperClient::read_synced`] (`sync`, then `getData`) is the read
//! after a run. A new session (after [`ZookeeperClient::reset`]) goes to the same server.

use std::time::Duration;

use zookeeper_client as zk;

use super::{bounded, text, ClientError, ErrorKind, KeyNode, Store, WriteResult};

/// How long the server keeps a session whose client went silent (ZooKeeper bounds it to 2..20
/// ticks of 2 s). A dropped session's ephemeral state does not matter here: the znodes are
/// persistent.
const SESSION_TIMEOUT: Duration = Duration::from_secs(6);

/// A client for one key on one ZooKeeper server.
pub struct ZookeeperClient {
    /// `host:port` of the server.
    server: String,
    path: String,
    endpoint: String,
    timeout: Duration,
    session: Option<zk::Client>,
}

/// The outcome class of a ZooKeeper error that is not a definite answer.
fn unknown(e: zk::Error) -> ClientError {
    let kind = match e {
        zk::Error::ConnectionLoss | zk::Error::SessionExpired | zk::Error::ClientClosed => {
            ErrorKind::Connect
        }
        zk::Error::Timeout => ErrorKind::Timeout,
        _ => ErrorKind::HttpUnexpected,
    };
    ClientError::new(kind, format!("zookeeper: {e}"))
}

fn node(data: &[u8], stat: &zk::Stat) -> Result<KeyNode, ClientError> {
    let version = u64::try_from(stat.version)
        .map_err(|_| ClientError::new(ErrorKind::Body, "negative znode version"))?;
    Ok(KeyNode {
        value: text(data)?,
        modified_index: version,
    })
}

impl ZookeeperClient {
    /// `endpoint` is `zk://host:port`.
    pub fn new(endpoint: &str, key: &str, timeout: Duration) -> Self {
        let server = endpoint
            .trim_start_matches("zk://")
            .trim_end_matches('/')
            .to_string();
        ZookeeperClient {
            endpoint: format!("{endpoint} /{key}"),
            server,
            path: format!("/{key}"),
            timeout,
            session: None,
        }
    }

    /// The session, opened (within the timeout) when there is none.
    async fn session(&mut self) -> Result<zk::Client, ClientError> {
        if let Some(s) = &self.session {
            return Ok(s.clone());
        }
        let connector = zk::Client::connector()
            .with_session_timeout(SESSION_TIMEOUT)
            .with_connection_timeout(self.timeout)
            .with_fail_eagerly();
        let server = self.server.clone();
        let client = bounded(self.timeout, async move {
            connector.connect(&server).await.map_err(unknown)
        })
        .await?;
        self.session = Some(client.clone());
        Ok(client)
    }

    /// `sync` (the server catches up with the leader), then `getData`: the latest state.
    pub async fn read_synced(&mut self) -> Result<Option<KeyNode>, ClientError> {
        let s = self.session().await?;
        let path = self.path.clone();
        bounded(self.timeout, async move {
            s.sync(&path).await.map_err(unknown)?;
            Ok(())
        })
        .await?;
        self.read().await
    }
}

impl Store for ZookeeperClient {
    async fn read(&mut self) -> Result<Option<KeyNode>, ClientError> {
        let s = self.session().await?;
        let path = self.path.clone();
        bounded(self.timeout, async move {
            match s.get_data(&path).await {
                Ok((data, stat)) => node(&data, &stat).map(Some),
                Err(zk::Error::NoNode) => Ok(None),
                Err(e) => Err(unknown(e)),
            }
        })
        .await
    }

    async fn create(&mut self, value: i64) -> Result<WriteResult, ClientError> {
        let s = self.session().await?;
        let path = self.path.clone();
        bounded(self.timeout, async move {
            let options = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
            let data = value.to_string();
            match s.create(&path, data.as_bytes(), &options).await {
                Ok((stat, _)) => node(data.as_bytes(), &stat).map(WriteResult::Applied),
                Err(zk::Error::NodeExists) => Ok(WriteResult::Rejected(None)),
                Err(e) => Err(unknown(e)),
            }
        })
        .await
    }

    async fn cas(&mut self, prev: u64, value: i64) -> Result<WriteResult, ClientError> {
        let expected = i32::try_from(prev)
            .map_err(|_| ClientError::new(ErrorKind::Body, "version beyond i32"))?;
        let s = self.session().await?;
        let path = self.path.clone();
        bounded(self.timeout, async move {
            let data = value.to_string();
            match s.set_data(&path, data.as_bytes(), Some(expected)).await {
                Ok(stat) => node(data.as_bytes(), &stat).map(WriteResult::Applied),
                Err(zk::Error::BadVersion | zk::Error::NoNode) => Ok(WriteResult::Rejected(None)),
                Err(e) => Err(unknown(e)),
            }
        })
        .await
    }

    async fn put(&mut self, value: i64) -> Result<Option<u64>, ClientError> {
        let s = self.session().await?;
        let path = self.path.clone();
        bounded(self.timeout, async move {
            let data = value.to_string();
            // setData of any version; a missing znode is created (and if another client
            // created it meanwhile, set once more)
            for _ in 0..2 {
                match s.set_data(&path, data.as_bytes(), None).await {
                    Ok(stat) => {
                        return node(data.as_bytes(), &stat).map(|n| Some(n.modified_index))
                    }
                    Err(zk::Error::NoNode) => {}
                    Err(e) => return Err(unknown(e)),
                }
                let options = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
                match s.create(&path, data.as_bytes(), &options).await {
                    Ok((stat, _)) => {
                        return node(data.as_bytes(), &stat).map(|n| Some(n.modified_index))
                    }
                    Err(zk::Error::NodeExists) => {}
                    Err(e) => return Err(unknown(e)),
                }
            }
            Err(ClientError::new(
                ErrorKind::HttpUnexpected,
                "zookeeper: the znode kept appearing and vanishing",
            ))
        })
        .await
    }

    fn reset(&mut self) {
        self.session = None;
    }

    fn endpoint(&self) -> &str {
        &self.endpoint
    }
}
