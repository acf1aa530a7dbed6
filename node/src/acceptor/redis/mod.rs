//! A Redis server used as a CASPaxos acceptor: the rules run as Lua scripts inside Redis.
//!
//! The scripts are loaded with SCRIPT LOAD on every (re)connection and invoked by EVALSHA;
//! a NOSCRIPT reply (a restarted or flushed Redis) makes the redis crate load them again.
//! Every call is bounded by a timeout. A broken connection, or one that has answered nothing
//! for [`LIVENESS`] (3 s), is dropped and a background task reconnects until the server
//! answers again, so a Redis that comes back is used again without restarting the node. While
//! no connection exists calls fail at once instead of waiting for the timeout, except just
//! after a loss, when the call waits (within its timeout) for the new connection: it was never
//! sent, so sending it later is safe. A keepalive PING every second, which waits up to
//! [`LIVENESS`] for its answer, finds a dead connection (a restarted, frozen or cut-off Redis)
//! before a request needs it.
//!
//! A call that times out does not by itself condemn the connection: on a lossy link one lost
//! segment costs a TCP retransmission (at least 200 ms on Linux, doubling on each further
//! loss), so a healthy connection to a reachable Redis misses a 300 ms timeout now and then.
//! Dropping it for that (as this client once did after two timeouts in a row) replaced a slow
//! link by none: a new connection needs a handshake (a lost SYN costs 1 s) and its set-up
//! commands, and under 30 % loss each way it rarely came up within its budget, so a node
//! whose links to two acceptors lost packets nearly stopped. A connection is replaced only
//! when it breaks or stays silent for [`LIVENESS`]; the set-up after the handshake is one
//! pipelined round trip, bounded by [`LIVENESS`] too.
//!
//! A call that failed on the connection is never sent again: the redis crate reports the same
//! I/O error ("broken pipe") for a request Redis never received and for one it ran whose reply
//! was lost with the connection. Sent again, an accept that already ran would be refused by the
//! promise it set itself, and that refusal would tell the proposer the value was stored
//! nowhere. The failure goes up as it is, an outcome the proposer must treat as unknown.
//!
//! Every prepare and accept also checks, inside the same script, the acceptor's identity
//! record against the cluster id the node learned (see `membership`): a wiped, replaced or
//! foreign Redis refuses and changes nothing, even on a connection opened before it was
//! wiped; a member whose record is stamped under another life of the data (`life.lua`: the
//! Redis restarted, or its data was replaced wholesale) answers as recovering. On every
//! connection and every inspection the node reads the persistence settings and, unless told
//! otherwise, refuses a Redis that could lose acknowledged writes (`appendonly yes`,
//! `appendfsync always`, `no-appendfsync-on-rewrite no`, no eviction): an acceptor that
//! forgets after a crash is not an acceptor.

mod conn;
mod reply;

use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::MultiplexedConnection;
use redis::io::tcp::TcpSettings;
use redis::{Client, IntoConnectionInfo, RedisError, Script};

use super::rules::{Identity, IdentityRefusal};
use super::{
    counted, AcceptReply, Acceptor, AcceptorError, AdminAcceptor, Answers, IdentityOp, Inspection,
    PrepareReply, ReadReply,
};
use crate::ballot::Ballot;
pub use conn::{durability_problem, Settings, LIVENESS};
use conn::{read_settings, Inner, RECENT_LOSS};
use reply::parse_inspection;
pub use reply::{parse_accept, parse_accept_many, parse_prepare, parse_prepare_many, parse_read};

/// Each script is the shared life.lua (the data's life) and slot.lua (identity check, ballot
/// comparison, state reading) followed by its own.
const PREPARE_LUA: &str = concat!(
    include_str!("../life.lua"),
    include_str!("../slot.lua"),
    include_str!("../prepare.lua")
);
const ACCEPT_LUA: &str = concat!(
    include_str!("../life.lua"),
    include_str!("../slot.lua"),
    include_str!("../accept.lua")
);
const IDENTITY_LUA: &str = concat!(include_str!("../life.lua"), include_str!("../identity.lua"));
/// The catch-up pass's batches: prepare and accept of many keys in one script run.
const PREPARE_MANY_LUA: &str = concat!(
    include_str!("../life.lua"),
    include_str!("../slot.lua"),
    include_str!("../prepare_many.lua")
);
const ACCEPT_MANY_LUA: &str = concat!(
    include_str!("../life.lua"),
    include_str!("../slot.lua"),
    include_str!("../accept_many.lua")
);
/// The quorum read: declared `no-writes` (the shebang must be the first line), so Redis
/// itself refuses any write in it.
const READ_LUA: &str = concat!(
    "#!lua flags=no-writes\n",
    include_str!("../life.lua"),
    include_str!("../slot.lua"),
    include_str!("../read.lua")
);
/// The acceptor's identity record (outside the `perseus:` key space, so no key collides).
pub const IDENTITY_KEY: &str = "perseus-identity";

/// Every key's acceptor state lives in one hash named with this prefix.
const KEY_PREFIX: &str = "perseus:";

/// One Redis acceptor: its supervised connection (`conn`) and the scripts.
pub struct RedisAcceptor {
    inner: Arc<Inner>,
}

impl RedisAcceptor {
    /// An acceptor for the Redis at `url` (e.g. `redis://10.77.0.11:6379`). Connects in the
    /// background; must be called inside a tokio runtime.
    pub fn new(url: &str, timeout: Duration) -> Result<Self, RedisError> {
        Self::with_durability(url, timeout, true)
    }

    /// As [`RedisAcceptor::new`]; with `require_fsync` false, a Redis without
    /// `appendfsync always` is used anyway (with a warning in the log).
    pub fn with_durability(
        url: &str,
        timeout: Duration,
        require_fsync: bool,
    ) -> Result<Self, RedisError> {
        // TCP_NODELAY (the redis crate leaves Nagle on): a call is one small write, and Nagle
        // holds it back while an earlier one is unacknowledged. On a lossy link that earlier
        // one may wait for a retransmission (200 ms or more), and every call behind it with
        // it; sent at once, the later segments also make the receiver report the gap, so the
        // lost one is retransmitted after a round trip instead of after the timeout.
        let info = url
            .into_connection_info()?
            .set_tcp_settings(TcpSettings::default().set_nodelay(true));
        // No CLIENT SETINFO exchange before the set-up: the crate waits for its reply within
        // the connection timeout (the acceptor timeout), so one retransmission on a lossy
        // link, or a Redis still frozen, failed the whole attempt. The set-up is then one
        // pipelined round trip (`set_up`).
        let redis_settings = info.redis_settings().clone().set_skip_set_lib_name();
        let info = info.set_redis_settings(redis_settings);
        let client = Client::open(info)?;
        let inner = Arc::new(Inner {
            name: url.trim_start_matches("redis://").to_string(),
            client,
            timeout,
            connection: Mutex::new(None),
            generation: AtomicU64::new(0),
            reconnecting: AtomicBool::new(false),
            lost_at: Mutex::new(None),
            answered_at: Mutex::new((0, std::time::Instant::now())),
            prepare: Script::new(PREPARE_LUA),
            accept: Script::new(ACCEPT_LUA),
            identity: Script::new(IDENTITY_LUA),
            read: Script::new(READ_LUA),
            prepare_many: Script::new(PREPARE_MANY_LUA),
            accept_many: Script::new(ACCEPT_MANY_LUA),
            cluster: RwLock::new(None),
            require_fsync,
            durability_problem: Mutex::new(None),
        });
        Inner::reconnect(&inner, None);
        Inner::keepalive(&inner);
        Ok(RedisAcceptor { inner })
    }

    /// Waits (bounded) until the first connection is up; for tests and start-up logs.
    pub async fn wait_connected(&self, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        while tokio::time::Instant::now() < deadline {
            if self.is_connected() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.is_connected()
    }

    /// Reads the identity record and the number of data keys (and checks the persistence
    /// settings).
    pub async fn inspect(&self) -> Result<Inspection, AcceptorError> {
        self.identity(IdentityOp::Inspect).await
    }

    /// Writes `identity` unless the acceptor already has one; returns what is stored.
    pub async fn claim(&self, identity: &Identity) -> Result<Inspection, AcceptorError> {
        self.identity(IdentityOp::Claim(identity.clone())).await
    }

    /// The persistence settings, read now (on the live connection); refused ones drop the
    /// connection, so no call counts until they are right again.
    async fn check_durability(&self) -> Result<(), AcceptorError> {
        let inner = &self.inner;
        let Some((generation, mut connection)) = inner.current() else {
            return Err(AcceptorError::NotConnected);
        };
        let answer = tokio::time::timeout(inner.timeout, read_settings(&mut connection)).await;
        let settings = Inner::settle(inner, generation, answer, AcceptorError::Io)?;
        match inner.judge_durability(&settings) {
            Ok(()) => Ok(()),
            Err(problem) => {
                log::error!("acceptor {}: refused from now on: {problem}", inner.name);
                Inner::reconnect(inner, Some(generation));
                Err(AcceptorError::NotDurable(problem))
            }
        }
    }

    async fn identity_script(&self, args: &[&str]) -> Result<Inspection, AcceptorError> {
        let mut invocation = self.inner.identity.key(IDENTITY_KEY);
        for arg in args {
            invocation.arg(*arg);
        }
        parse_inspection(&self.call(invocation).await?)
    }

    /// The identity and cluster arguments every CASPaxos script starts with.
    fn expected(&self) -> Result<(String, String), AcceptorError> {
        match self.cluster() {
            Some(cluster) => Ok((cluster, self.inner.name.clone())),
            None => Err(AcceptorError::Unmarked(IdentityRefusal::NotInitialised)),
        }
    }
}

impl RedisAcceptor {
    /// Runs one script invocation with the timeout, keeping the connection healthy. Sent at
    /// most once: a failure after sending may hide a call the acceptor ran (module comment).
    async fn call(
        &self,
        invocation: redis::ScriptInvocation<'_>,
    ) -> Result<Vec<String>, AcceptorError> {
        let inner = &self.inner;
        let started = tokio::time::Instant::now();
        let Some((generation, mut connection)) = self.connection_for(started).await else {
            return Err(AcceptorError::NotConnected);
        };
        let left = inner.timeout.saturating_sub(started.elapsed());
        let answer = tokio::time::timeout(left, invocation.invoke_async(&mut connection)).await;
        Inner::settle(inner, generation, answer, AcceptorError::Protocol)
    }

    /// The live connection. With none, but one lost less than [`RECENT_LOSS`] ago (the
    /// reconnection is likely under way), waits for the new one until the call's timeout
    /// (nothing was sent yet, so waiting is safe); otherwise fails at once.
    async fn connection_for(
        &self,
        started: tokio::time::Instant,
    ) -> Option<(u64, MultiplexedConnection)> {
        let inner = &self.inner;
        if let Some(live) = inner.current() {
            return Some(live);
        }
        let lost_at = *inner.lost_at.lock().unwrap_or_else(|e| e.into_inner());
        if lost_at.is_none_or(|t| t.elapsed() >= RECENT_LOSS) {
            return None;
        }
        while started.elapsed() < inner.timeout {
            tokio::time::sleep(Duration::from_millis(10)).await;
            if let Some(live) = inner.current() {
                return Some(live);
            }
        }
        None
    }
}

fn redis_key(key: &str) -> String {
    format!("{KEY_PREFIX}{key}")
}

#[async_trait]
impl Acceptor for RedisAcceptor {
    fn name(&self) -> &str {
        &self.inner.name
    }

    fn is_connected(&self) -> bool {
        self.inner.current().is_some()
    }

    /// PING on the live connection, bounded by the timeout. A broken connection found this
    /// way is replaced, and a timeout counts like one of a call, exactly as for the scripts:
    /// otherwise a node nobody sends requests to would report a Redis that came back as
    /// still gone.
    async fn ping(&self) -> Result<(), AcceptorError> {
        let inner = &self.inner;
        let Some((generation, mut connection)) = inner.current() else {
            return Err(AcceptorError::NotConnected);
        };
        let command = redis::cmd("PING");
        let ping = command.query_async::<String>(&mut connection);
        let answer = tokio::time::timeout(inner.timeout, ping).await;
        Inner::settle(inner, generation, answer, AcceptorError::Io).map(|_: String| ())
    }

    async fn prepare(&self, key: &str, ballot: Ballot) -> Result<PrepareReply, AcceptorError> {
        let (cluster, me) = self.expected()?;
        let mut invocation = self.inner.prepare.key(redis_key(key));
        invocation
            .key(IDENTITY_KEY)
            .arg(cluster)
            .arg(me)
            .arg(ballot.counter)
            .arg(ballot.proposer)
            .arg(ballot.incarnation);
        let (reply, standing) = parse_prepare(&self.call(invocation).await?)?;
        counted(standing, reply, |r| {
            matches!(r, PrepareReply::Promised { .. })
        })
    }

    /// `read.lua`: the accepted ballot and value, no write (quorum reads).
    async fn read(&self, key: &str) -> Result<ReadReply, AcceptorError> {
        let (cluster, me) = self.expected()?;
        let mut invocation = self.inner.read.key(redis_key(key));
        invocation.key(IDENTITY_KEY).arg(cluster).arg(me);
        let (reply, standing) = parse_read(&self.call(invocation).await?)?;
        counted(standing, reply, |_| true)
    }

    async fn accept(
        &self,
        key: &str,
        ballot: Ballot,
        value: Option<&str>,
        next_promise: Ballot,
    ) -> Result<AcceptReply, AcceptorError> {
        let (cluster, me) = self.expected()?;
        let mut invocation = self.inner.accept.key(redis_key(key));
        invocation
            .key(IDENTITY_KEY)
            .arg(cluster)
            .arg(me)
            .arg(ballot.counter)
            .arg(ballot.proposer)
            .arg(ballot.incarnation)
            .arg(if value.is_some() { "1" } else { "0" })
            .arg(value.unwrap_or(""))
            .arg(next_promise.counter)
            .arg(next_promise.proposer)
            .arg(next_promise.incarnation);
        let (reply, standing) = parse_accept(&self.call(invocation).await?)?;
        counted(standing, reply, |r| *r == AcceptReply::Accepted)
    }

    /// `prepare_many.lua`: one script run for the whole batch.
    async fn prepare_many(&self, keys: &[String], ballot: Ballot) -> Answers<PrepareReply> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let (cluster, me) = self.expected()?;
        let mut invocation = self.inner.prepare_many.key(IDENTITY_KEY);
        invocation.key(IDENTITY_KEY);
        for key in keys {
            invocation.key(redis_key(key));
        }
        invocation
            .arg(cluster)
            .arg(me)
            .arg(ballot.counter)
            .arg(ballot.proposer)
            .arg(ballot.incarnation);
        let (replies, standing) = parse_prepare_many(&self.call(invocation).await?, keys.len())?;
        Ok(replies
            .into_iter()
            .map(|r| counted(standing, r, |r| matches!(r, PrepareReply::Promised { .. })))
            .collect())
    }

    /// `accept_many.lua`: one script run for the whole batch.
    async fn accept_many(
        &self,
        writes: &[(String, Option<String>)],
        ballot: Ballot,
        next_promise: Ballot,
    ) -> Answers<AcceptReply> {
        if writes.is_empty() {
            return Ok(Vec::new());
        }
        let (cluster, me) = self.expected()?;
        let mut invocation = self.inner.accept_many.key(IDENTITY_KEY);
        invocation.key(IDENTITY_KEY);
        for (key, _) in writes {
            invocation.key(redis_key(key));
        }
        invocation
            .arg(cluster)
            .arg(me)
            .arg(ballot.counter)
            .arg(ballot.proposer)
            .arg(ballot.incarnation)
            .arg(next_promise.counter)
            .arg(next_promise.proposer)
            .arg(next_promise.incarnation);
        for (_, value) in writes {
            invocation
                .arg(if value.is_some() { "1" } else { "0" })
                .arg(value.as_deref().unwrap_or(""));
        }
        let (replies, standing) = parse_accept_many(&self.call(invocation).await?, writes.len())?;
        Ok(replies
            .into_iter()
            .map(|r| counted(standing, r, |r| *r == AcceptReply::Accepted))
            .collect())
    }
}

#[async_trait]
impl AdminAcceptor for RedisAcceptor {
    /// `identity.lua`; an inspection also reads the persistence settings first (a Redis
    /// switched to a setting that can lose writes is refused from then on).
    async fn identity(&self, op: IdentityOp) -> Result<Inspection, AcceptorError> {
        let name = self.inner.name.clone();
        match op {
            IdentityOp::Inspect => {
                self.check_durability().await?;
                self.identity_script(&["inspect"]).await
            }
            IdentityOp::Claim(id) => self.identity_script(&record_args(&["claim"], &id)).await,
            IdentityOp::Replace { over, identity: id } => {
                self.identity_script(&record_args(&["replace", &over], &id))
                    .await
            }
            IdentityOp::Join { cluster, life } => {
                self.identity_script(&["join", &cluster, &name, &life])
                    .await
            }
            IdentityOp::Suspect { cluster, mark } => {
                self.identity_script(&["suspect", &cluster, &name, &mark])
                    .await
            }
            IdentityOp::Promote {
                cluster,
                mark,
                life,
            } => {
                self.identity_script(&["promote", &cluster, &name, &mark, &life])
                    .await
            }
            IdentityOp::Lease { node, ms } => {
                self.identity_script(&["lease", &node, &ms.to_string()])
                    .await
            }
            IdentityOp::Force(id) => self.identity_script(&record_args(&["force"], &id)).await,
        }
    }

    /// One SCAN step over the keys holding CASPaxos state: the next cursor (0: done) and the
    /// keys (without the prefix).
    async fn scan_keys(&self, cursor: u64) -> Result<(u64, Vec<String>), AcceptorError> {
        let inner = &self.inner;
        let Some((generation, mut connection)) = inner.current() else {
            return Err(AcceptorError::NotConnected);
        };
        let mut command = redis::cmd("SCAN");
        command
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{KEY_PREFIX}*"))
            .arg("COUNT")
            .arg(1000);
        let step = command.query_async::<(u64, Vec<String>)>(&mut connection);
        let answer = tokio::time::timeout(inner.timeout * 4, step).await;
        let (next, keys) = Inner::settle(inner, generation, answer, AcceptorError::Io)?;
        Ok((
            next,
            keys.into_iter()
                .filter_map(|k| k.strip_prefix(KEY_PREFIX).map(str::to_string))
                .collect(),
        ))
    }

    /// Sets (or clears) the cluster id every prepare and accept checks the identity record
    /// against.
    fn set_cluster(&self, cluster: Option<&str>) {
        *self
            .inner
            .cluster
            .write()
            .unwrap_or_else(|e| e.into_inner()) = cluster.map(str::to_string);
    }

    fn cluster(&self) -> Option<String> {
        self.inner
            .cluster
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Why the last connection or inspection was refused for its persistence settings.
    fn durability_problem(&self) -> Option<String> {
        self.inner
            .durability_problem
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// The identity script's arguments for a verb that writes a whole record: the verb (and what
/// it needs before the record), then the record's fields in the order identity.lua reads them.
fn record_args<'a>(head: &[&'a str], id: &'a Identity) -> Vec<&'a str> {
    let mut args = head.to_vec();
    args.extend([
        id.cluster.as_str(),
        id.acceptor.as_str(),
        id.standing.as_str(),
        id.mark.as_str(),
        id.set.as_str(),
    ]);
    args
}
