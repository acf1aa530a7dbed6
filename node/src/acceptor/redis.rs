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

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::MultiplexedConnection;
use redis::io::tcp::TcpSettings;
use redis::{AsyncConnectionConfig, Client, IntoConnectionInfo, RedisError, Script};

use super::rules::{Identity, IdentityRefusal, Standing};
use super::{
    counted, AcceptReply, Acceptor, AcceptorError, AdminAcceptor, Answers, IdentityOp, Inspection,
    PrepareReply, ReadReply,
};
use crate::ballot::Ballot;

/// Each script is the shared life.lua (the data's life) and slot.lua (identity check, ballot
/// comparison, state reading) followed by its own.
const PREPARE_LUA: &str = concat!(
    include_str!("life.lua"),
    include_str!("slot.lua"),
    include_str!("prepare.lua")
);
const ACCEPT_LUA: &str = concat!(
    include_str!("life.lua"),
    include_str!("slot.lua"),
    include_str!("accept.lua")
);
const IDENTITY_LUA: &str = concat!(include_str!("life.lua"), include_str!("identity.lua"));
/// The catch-up pass's batches: prepare and accept of many keys in one script run.
const PREPARE_MANY_LUA: &str = concat!(
    include_str!("life.lua"),
    include_str!("slot.lua"),
    include_str!("prepare_many.lua")
);
const ACCEPT_MANY_LUA: &str = concat!(
    include_str!("life.lua"),
    include_str!("slot.lua"),
    include_str!("accept_many.lua")
);
/// The quorum read: declared `no-writes` (the shebang must be the first line), so Redis
/// itself refuses any write in it.
const READ_LUA: &str = concat!(
    "#!lua flags=no-writes\n",
    include_str!("life.lua"),
    include_str!("slot.lua"),
    include_str!("read.lua")
);
/// The acceptor's identity record (outside the `perseus:` key space, so no key collides).
pub const IDENTITY_KEY: &str = "perseus-identity";

/// How long a connection may answer nothing (no reply to a call, nor to the keepalive PING,
/// which waits this long) before it is presumed dead and replaced. Longer than a few TCP
/// retransmissions (200, 400, 800 ms) on a lossy link; short enough that a Redis cut off or
/// frozen is given up (and calls to it fail at once) within about 4 s, and that a replaced
/// connection comes up again within a second of the link healing.
pub const LIVENESS: Duration = Duration::from_secs(3);
/// Pause between reconnection attempts.
const RECONNECT_PAUSE: Duration = Duration::from_millis(200);
/// Interval of the keepalive PING.
const KEEPALIVE: Duration = Duration::from_secs(1);
/// A call made this soon after the connection was lost waits for the new one.
const RECENT_LOSS: Duration = Duration::from_secs(2);
/// Every key's acceptor state lives in one hash named with this prefix.
const KEY_PREFIX: &str = "perseus:";

pub struct RedisAcceptor {
    inner: Arc<Inner>,
}

struct Inner {
    name: String,
    client: Client,
    timeout: Duration,
    /// The live connection and its generation (a failure on an older connection must not
    /// drop a newer one).
    connection: Mutex<Option<(u64, MultiplexedConnection)>>,
    generation: AtomicU64,
    reconnecting: AtomicBool,
    /// When the last live connection was dropped.
    lost_at: Mutex<Option<std::time::Instant>>,
    /// When connection `.0` last answered anything (or was made).
    answered_at: Mutex<(u64, std::time::Instant)>,
    prepare: Script,
    accept: Script,
    identity: Script,
    read: Script,
    prepare_many: Script,
    accept_many: Script,
    /// The cluster id the scripts check the identity record against (learned by the
    /// membership task; `None` until then, and calls are refused).
    cluster: RwLock<Option<String>>,
    /// Refuse a Redis whose persistence settings could lose acknowledged writes.
    require_fsync: bool,
    /// The last refusal of the persistence settings, for `/health`.
    durability_problem: Mutex<Option<String>>,
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

impl Inner {
    fn current(&self) -> Option<(u64, MultiplexedConnection)> {
        self.connection
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Notes that connection `generation` answered just now. A late answer on a replaced
    /// connection says nothing about the live one.
    fn answered(&self, generation: u64) {
        let mut answered = self.answered_at.lock().unwrap_or_else(|e| e.into_inner());
        if answered.0 <= generation {
            *answered = (generation, std::time::Instant::now());
        }
    }

    /// How long the live connection has answered nothing.
    fn silent_for(&self) -> Duration {
        self.answered_at
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .1
            .elapsed()
    }

    /// What one bounded request on connection `generation` came to, with the connection kept
    /// healthy on the way, the same for every request (scripts, PING, SCAN, the keepalive):
    /// any reply, an error reply included, shows the server is there; a broken connection is
    /// replaced at once; a timeout replaces it only after [`LIVENESS`] of silence (module
    /// comment). `reply_error` classifies an error reply.
    fn settle<T>(
        this: &Arc<Inner>,
        generation: u64,
        answer: Result<Result<T, RedisError>, tokio::time::error::Elapsed>,
        reply_error: fn(String) -> AcceptorError,
    ) -> Result<T, AcceptorError> {
        match answer {
            Ok(Ok(reply)) => {
                this.answered(generation);
                Ok(reply)
            }
            Ok(Err(e)) if e.is_timeout() => Err(Inner::timed_out(this, generation)),
            Ok(Err(e)) if is_broken(&e) => {
                Inner::reconnect(this, Some(generation));
                Err(AcceptorError::Io(e.to_string()))
            }
            Ok(Err(e)) => {
                this.answered(generation);
                Err(reply_error(e.to_string()))
            }
            Err(_) => Err(Inner::timed_out(this, generation)),
        }
    }

    /// A request on connection `generation` timed out. The connection is replaced only if it
    /// has answered nothing for [`LIVENESS`]: a late answer is a slow link, not a dead one.
    /// Timeouts of an older connection say nothing about the current one.
    fn timed_out(this: &Arc<Inner>, generation: u64) -> AcceptorError {
        let current = this.current().map(|(g, _)| g) == Some(generation);
        let silent = this.silent_for();
        if current && silent >= LIVENESS {
            log::warn!(
                "acceptor {}: no answer for {} ms, reconnecting",
                this.name,
                silent.as_millis()
            );
            Inner::reconnect(this, Some(generation));
        }
        AcceptorError::Timeout
    }

    /// Drops the connection (only if it is still generation `failed`, when given) and makes
    /// sure one background task is reconnecting.
    fn reconnect(this: &Arc<Inner>, failed: Option<u64>) {
        {
            let mut connection = this.connection.lock().unwrap_or_else(|e| e.into_inner());
            match (&*connection, failed) {
                (Some((current, _)), Some(failed)) if *current != failed => return,
                (Some(_), _) => {
                    *connection = None;
                    *this.lost_at.lock().unwrap_or_else(|e| e.into_inner()) =
                        Some(std::time::Instant::now());
                }
                (None, _) => {}
            }
            if this.reconnecting.swap(true, Ordering::SeqCst) {
                return;
            }
        }
        let weak: Weak<Inner> = Arc::downgrade(this);
        tokio::spawn(async move {
            let mut logged = false;
            // Ends when connected, or when the acceptor is dropped.
            while let Some(inner) = weak.upgrade() {
                match inner.connect().await {
                    Ok(connection) => {
                        let generation = inner.generation.fetch_add(1, Ordering::SeqCst) + 1;
                        inner.answered(generation);
                        // Published and the flag cleared under the same lock that `reconnect`
                        // checks both under: a failure of this new connection seen at once
                        // either finds the flag set (before) or starts a new task (after),
                        // never a flag about to be cleared by a task that is ending.
                        let mut slot = inner.connection.lock().unwrap_or_else(|e| e.into_inner());
                        *slot = Some((generation, connection));
                        inner.reconnecting.store(false, Ordering::SeqCst);
                        drop(slot);
                        log::info!("acceptor {}: connected", inner.name);
                        return;
                    }
                    Err(e) => {
                        if !logged {
                            log::warn!("acceptor {}: cannot connect: {e}", inner.name);
                            logged = true;
                        }
                    }
                }
                drop(inner);
                tokio::time::sleep(RECONNECT_PAUSE).await;
            }
        });
    }

    /// PINGs the acceptor every [`KEEPALIVE`] while it exists, so that an idle node finds a
    /// dead connection (e.g. the Redis restarted) and replaces it before a request needs it.
    /// The PING waits up to [`LIVENESS`] (a late answer over a lossy link still proves the
    /// connection alive); a connection that has answered nothing at all by then, neither this
    /// PING nor any call, is replaced.
    fn keepalive(this: &Arc<Inner>) {
        let weak: Weak<Inner> = Arc::downgrade(this);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(KEEPALIVE).await;
                let Some(inner) = weak.upgrade() else {
                    return;
                };
                let Some((generation, mut connection)) = inner.current() else {
                    continue;
                };
                // Not holding the acceptor while waiting: it may be dropped meanwhile.
                drop(inner);
                let command = redis::cmd("PING");
                let answer =
                    tokio::time::timeout(LIVENESS, command.query_async::<String>(&mut connection))
                        .await;
                let Some(inner) = weak.upgrade() else {
                    return;
                };
                // Handled inside (an answer noted, a broken or silent connection replaced).
                let _ = Inner::settle(&inner, generation, answer, AcceptorError::Io);
            }
        });
    }

    /// One connection attempt: the TCP handshake within the acceptor timeout (a lost SYN is
    /// retransmitted only after 1 s; a fresh attempt is quicker), then the persistence settings
    /// and the scripts in one pipelined round trip within [`LIVENESS`] (on a lossy link it may
    /// take a retransmission or two; a frozen Redis answers it as soon as it thaws).
    async fn connect(&self) -> Result<MultiplexedConnection, String> {
        // Every call bounds itself (`call`, `ping`); this only bounds what nothing else does.
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.timeout))
            // No response timeout inside the crate: it reports one as an I/O error, which
            // reads as a broken connection, and every call, the keepalive PING and the set-up
            // below already bound their own wait (a late reply is discarded in order).
            .set_response_timeout(None);
        let attempt = async {
            let mut connection = self
                .client
                .get_multiplexed_async_connection_with_config(&config)
                .await?;
            let settings = set_up(&mut connection).await?;
            Ok::<_, RedisError>((connection, settings))
        };
        let (connection, settings) =
            match tokio::time::timeout(self.timeout + LIVENESS, attempt).await {
                Ok(Ok(connected)) => connected,
                Ok(Err(e)) => return Err(e.to_string()),
                Err(_) => return Err("timed out".to_string()),
            };
        self.judge_durability(&settings)?;
        Ok(connection)
    }

    /// Records and judges the persistence settings: an error (refused) unless they are
    /// durable or the node was told to use a Redis anyway (then a warning, once per
    /// connection and inspection).
    fn judge_durability(&self, settings: &Settings) -> Result<(), String> {
        let problem = durability_problem(settings);
        *self
            .durability_problem
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = problem.clone().filter(|_| self.require_fsync);
        match problem {
            Some(problem) if self.require_fsync => Err(format!(
                "refused: {problem}; an acceptor must write every change to disk before it \
                 answers and never drop a key, or it forgets promises (set \
                 acceptor_require_fsync = false to use it anyway)"
            )),
            Some(problem) => {
                log::warn!(
                    "acceptor {}: {problem}; used anyway (acceptor_require_fsync = false): a \
                     crash of this Redis can lose acknowledged writes",
                    self.name
                );
                Ok(())
            }
            None => Ok(()),
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

/// A failure that ends the connection (as opposed to a timeout or an error reply).
fn is_broken(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_unrecoverable_error()
}

/// The persistence settings an acceptor depends on ("" for one the server does not know).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Settings {
    pub appendonly: String,
    pub appendfsync: String,
    pub no_appendfsync_on_rewrite: String,
    pub maxmemory: String,
    pub maxmemory_policy: String,
}

const SETTINGS: [&str; 5] = [
    "appendonly",
    "appendfsync",
    "no-appendfsync-on-rewrite",
    "maxmemory",
    "maxmemory-policy",
];

fn settings_from(answers: Vec<Vec<String>>) -> Settings {
    let mut values = answers
        .into_iter()
        .map(|pair| pair.get(1).cloned().unwrap_or_default());
    let mut next = || values.next().unwrap_or_default();
    Settings {
        appendonly: next(),
        appendfsync: next(),
        no_appendfsync_on_rewrite: next(),
        maxmemory: next(),
        maxmemory_policy: next(),
    }
}

/// Reads the persistence settings in one pipelined round trip.
async fn read_settings(connection: &mut MultiplexedConnection) -> Result<Settings, RedisError> {
    let mut pipe = redis::pipe();
    for setting in SETTINGS {
        pipe.cmd("CONFIG").arg("GET").arg(setting);
    }
    let answers: Vec<Vec<String>> = pipe.query_async(connection).await?;
    Ok(settings_from(answers))
}

/// Reads the persistence settings and loads the scripts, in one pipelined round trip.
async fn set_up(connection: &mut MultiplexedConnection) -> Result<Settings, RedisError> {
    let mut pipe = redis::pipe();
    for setting in SETTINGS {
        pipe.cmd("CONFIG").arg("GET").arg(setting);
    }
    let scripts = [
        PREPARE_LUA,
        ACCEPT_LUA,
        IDENTITY_LUA,
        READ_LUA,
        PREPARE_MANY_LUA,
        ACCEPT_MANY_LUA,
    ];
    for code in scripts {
        pipe.cmd("SCRIPT").arg("LOAD").arg(code).ignore();
    }
    let answers: Vec<Vec<String>> = pipe.query_async(connection).await?;
    Ok(settings_from(answers))
}

/// What is wrong with these persistence settings for an acceptor, if anything: every change
/// must be on disk before the answer (AOF, fsync always, also while a rewrite runs) and no
/// key may ever be dropped to make room (no eviction of keys without a TTL, which acceptor
/// keys never have).
pub fn durability_problem(settings: &Settings) -> Option<String> {
    let Settings {
        appendonly,
        appendfsync,
        no_appendfsync_on_rewrite,
        maxmemory,
        maxmemory_policy,
    } = settings;
    if appendonly != "yes" {
        return Some(format!("appendonly is {appendonly:?}, not \"yes\""));
    }
    if appendfsync != "always" {
        return Some(format!("appendfsync is {appendfsync:?}, not \"always\""));
    }
    if no_appendfsync_on_rewrite == "yes" {
        return Some(
            "no-appendfsync-on-rewrite is \"yes\": writes are not fsynced while the AOF is \
             rewritten"
                .into(),
        );
    }
    if maxmemory != "0" && maxmemory_policy.starts_with("allkeys-") {
        return Some(format!(
            "maxmemory-policy is {maxmemory_policy:?} with maxmemory {maxmemory}: Redis may \
             evict acceptor keys (use noeviction)"
        ));
    }
    None
}

fn redis_key(key: &str) -> String {
    format!("{KEY_PREFIX}{key}")
}

fn parse_ballot(parts: &[String]) -> Result<Ballot, AcceptorError> {
    let number = |i: usize| -> Result<u64, AcceptorError> {
        parts
            .get(i)
            .and_then(|s| s.parse::<u64>().ok())
            .ok_or_else(|| AcceptorError::Protocol(format!("bad ballot in reply: {parts:?}")))
    };
    Ok(Ballot::new(number(0)?, number(1)?, number(2)?))
}

fn parse_standing(text: &str) -> Result<Standing, AcceptorError> {
    Standing::parse(text)
        .ok_or_else(|| AcceptorError::Protocol(format!("unknown acceptor state {text:?}")))
}

/// The replies every script may give instead of an answer: the identity refusal (nothing
/// changed) and the refusal of a ballot beyond 2^53.
fn parse_refusal(reply: &[String]) -> AcceptorError {
    match reply.first().map(String::as_str) {
        Some("unmarked") if reply.get(1).map(String::as_str) == Some("missing") => {
            AcceptorError::Unmarked(IdentityRefusal::Missing)
        }
        Some("unmarked") if reply.len() == 4 => AcceptorError::Unmarked(IdentityRefusal::Foreign {
            cluster: reply[2].clone(),
            acceptor: reply[3].clone(),
        }),
        Some("invalid") => AcceptorError::Protocol("a ballot beyond 2^53 was refused".into()),
        _ => AcceptorError::Protocol(format!("unexpected reply {reply:?}")),
    }
}

/// Turns a prepare script reply into a [`PrepareReply`] and the acceptor's standing.
pub fn parse_prepare(reply: &[String]) -> Result<(PrepareReply, Standing), AcceptorError> {
    match reply.first().map(String::as_str) {
        Some("ok") if reply.len() == 7 => Ok((
            PrepareReply::Promised {
                accepted: parse_ballot(&reply[2..5])?,
                value: (reply[5] == "1").then(|| reply[6].clone()),
            },
            parse_standing(&reply[1])?,
        )),
        // A refusal counts from anyone; its standing does not matter.
        Some("conflict") if reply.len() == 4 => Ok((
            PrepareReply::Conflict(parse_ballot(&reply[1..4])?),
            Standing::Member,
        )),
        _ => Err(parse_refusal(reply)),
    }
}

/// Turns a read script reply into a [`ReadReply`] and the acceptor's standing.
pub fn parse_read(reply: &[String]) -> Result<(ReadReply, Standing), AcceptorError> {
    match reply.first().map(String::as_str) {
        Some("ok") if reply.len() == 7 => Ok((
            ReadReply {
                accepted: parse_ballot(&reply[2..5])?,
                value: (reply[5] == "1").then(|| reply[6].clone()),
            },
            parse_standing(&reply[1])?,
        )),
        _ => Err(parse_refusal(reply)),
    }
}

/// Turns an accept script reply into an [`AcceptReply`] and the acceptor's standing.
pub fn parse_accept(reply: &[String]) -> Result<(AcceptReply, Standing), AcceptorError> {
    match reply.first().map(String::as_str) {
        Some("ok") if reply.len() == 2 => Ok((AcceptReply::Accepted, parse_standing(&reply[1])?)),
        Some("conflict") if reply.len() == 4 => Ok((
            AcceptReply::Conflict(parse_ballot(&reply[1..4])?),
            Standing::Member,
        )),
        _ => Err(parse_refusal(reply)),
    }
}

/// The envelope both batch scripts answer with: "ok", the acceptor's standing, then `width`
/// fields per key, each turned into a reply by `one` (the `phase` names the call in errors).
fn parse_many<T>(
    reply: &[String],
    keys: usize,
    width: usize,
    phase: &str,
    one: impl Fn(&[String]) -> Result<T, AcceptorError>,
) -> Result<(Vec<T>, Standing), AcceptorError> {
    if reply.first().map(String::as_str) != Some("ok") {
        return Err(parse_refusal(reply));
    }
    if reply.len() != 2 + width * keys {
        return Err(AcceptorError::Protocol(format!(
            "{phase} of {keys} keys answered {} fields",
            reply.len()
        )));
    }
    let standing = parse_standing(&reply[1])?;
    let replies = reply[2..]
        .chunks(width)
        .map(one)
        .collect::<Result<_, _>>()?;
    Ok((replies, standing))
}

/// Turns a `prepare_many.lua` reply for `keys` keys into one [`PrepareReply`] per key and the
/// acceptor's standing.
pub fn parse_prepare_many(
    reply: &[String],
    keys: usize,
) -> Result<(Vec<PrepareReply>, Standing), AcceptorError> {
    parse_many(reply, keys, 6, "prepare", |one| match one[0].as_str() {
        "ok" => Ok(PrepareReply::Promised {
            accepted: parse_ballot(&one[1..4])?,
            value: (one[4] == "1").then(|| one[5].clone()),
        }),
        "conflict" => Ok(PrepareReply::Conflict(parse_ballot(&one[1..4])?)),
        other => Err(AcceptorError::Protocol(format!(
            "unexpected answer {other:?} in a prepare of many keys"
        ))),
    })
}

/// Turns an `accept_many.lua` reply for `keys` keys into one [`AcceptReply`] per key and the
/// acceptor's standing.
pub fn parse_accept_many(
    reply: &[String],
    keys: usize,
) -> Result<(Vec<AcceptReply>, Standing), AcceptorError> {
    parse_many(reply, keys, 4, "accept", |one| match one[0].as_str() {
        "ok" => Ok(AcceptReply::Accepted),
        "conflict" => Ok(AcceptReply::Conflict(parse_ballot(&one[1..4])?)),
        other => Err(AcceptorError::Protocol(format!(
            "unexpected answer {other:?} in an accept of many keys"
        ))),
    })
}

/// Turns an identity script reply into an [`Inspection`].
fn parse_inspection(reply: &[String]) -> Result<Inspection, AcceptorError> {
    let [cluster, acceptor, state, mark, set, stamp, life, keys, lease] = reply else {
        return Err(AcceptorError::Protocol(format!(
            "unexpected identity reply {reply:?}"
        )));
    };
    let keys: u64 = keys
        .parse()
        .map_err(|_| AcceptorError::Protocol(format!("bad key count {keys:?}")))?;
    let lease = (!lease.is_empty()).then(|| lease.clone());
    if cluster.is_empty() {
        return Ok(Inspection {
            identity: None,
            life: life.clone(),
            data_keys: keys,
            lease,
        });
    }
    Ok(Inspection {
        identity: Some(Identity {
            cluster: cluster.clone(),
            acceptor: acceptor.clone(),
            standing: parse_standing(state)?,
            mark: mark.clone(),
            set: set.clone(),
            stamp: stamp.clone(),
        }),
        life: life.clone(),
        data_keys: keys.saturating_sub(1),
        lease,
    })
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
            IdentityOp::Claim(id) => {
                let standing = id.standing.as_str();
                let args = [
                    "claim",
                    &id.cluster,
                    &id.acceptor,
                    standing,
                    &id.mark,
                    &id.set,
                ];
                self.identity_script(&args).await
            }
            IdentityOp::Join { cluster } => self.identity_script(&["join", &cluster, &name]).await,
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
            IdentityOp::Force(id) => {
                let standing = id.standing.as_str();
                let args = [
                    "force",
                    &id.cluster,
                    &id.acceptor,
                    standing,
                    &id.mark,
                    &id.set,
                ];
                self.identity_script(&args).await
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(parts: &[&str]) -> Vec<String> {
        parts.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn parses_prepare_replies() {
        assert_eq!(
            parse_prepare(&strings(&["ok", "member", "3", "1", "9", "1", "v"])),
            Ok((
                PrepareReply::Promised {
                    accepted: Ballot::new(3, 1, 9),
                    value: Some("v".into())
                },
                Standing::Member
            ))
        );
        assert_eq!(
            parse_prepare(&strings(&["ok", "recovering", "0", "0", "0", "0", ""])),
            Ok((
                PrepareReply::Promised {
                    accepted: Ballot::ZERO,
                    value: None
                },
                Standing::Recovering
            ))
        );
        assert_eq!(
            parse_prepare(&strings(&["conflict", "7", "2", "1"])),
            Ok((
                PrepareReply::Conflict(Ballot::new(7, 2, 1)),
                Standing::Member
            ))
        );
        assert_eq!(
            parse_prepare(&strings(&["unmarked", "missing"])),
            Err(AcceptorError::Unmarked(IdentityRefusal::Missing))
        );
        assert!(parse_prepare(&strings(&["ok"])).is_err());
        assert!(parse_prepare(&strings(&["conflict", "x", "2", "1"])).is_err());
        assert!(parse_prepare(&strings(&["ok", "boss", "0", "0", "0", "0", ""])).is_err());
    }

    #[test]
    fn parses_read_replies() {
        assert_eq!(
            parse_read(&strings(&["ok", "member", "3", "1", "9", "1", "v"])),
            Ok((
                ReadReply {
                    accepted: Ballot::new(3, 1, 9),
                    value: Some("v".into())
                },
                Standing::Member
            ))
        );
        assert_eq!(
            parse_read(&strings(&["unmarked", "missing"])),
            Err(AcceptorError::Unmarked(IdentityRefusal::Missing))
        );
        assert!(parse_read(&strings(&["conflict", "7", "2", "1"])).is_err());
    }

    #[test]
    fn parses_accept_replies() {
        assert_eq!(
            parse_accept(&strings(&["ok", "member"])),
            Ok((AcceptReply::Accepted, Standing::Member))
        );
        assert_eq!(
            parse_accept(&strings(&["conflict", "1", "2", "3"])),
            Ok((
                AcceptReply::Conflict(Ballot::new(1, 2, 3)),
                Standing::Member
            ))
        );
        assert_eq!(
            parse_accept(&strings(&["unmarked", "foreign", "c9", "x:1"])),
            Err(AcceptorError::Unmarked(IdentityRefusal::Foreign {
                cluster: "c9".into(),
                acceptor: "x:1".into()
            }))
        );
        assert!(parse_accept(&strings(&[])).is_err());
    }

    #[test]
    fn only_settings_that_lose_nothing_are_durable() {
        let good = Settings {
            appendonly: "yes".into(),
            appendfsync: "always".into(),
            no_appendfsync_on_rewrite: "no".into(),
            maxmemory: "0".into(),
            maxmemory_policy: "allkeys-lru".into(),
        };
        assert_eq!(durability_problem(&good), None);
        let with = |f: fn(&mut Settings)| {
            let mut s = good.clone();
            f(&mut s);
            durability_problem(&s)
        };
        assert!(with(|s| s.appendfsync = "everysec".into()).is_some());
        assert!(with(|s| s.appendonly = "no".into()).is_some());
        assert!(with(|s| s.no_appendfsync_on_rewrite = "yes".into()).is_some());
        assert!(with(|s| s.maxmemory = "100mb".into()).is_some());
        assert_eq!(
            with(|s| {
                s.maxmemory = "100mb".into();
                s.maxmemory_policy = "noeviction".into()
            }),
            None
        );
        assert_eq!(
            with(|s| {
                s.maxmemory = "100mb".into();
                s.maxmemory_policy = "volatile-lru".into()
            }),
            None
        );
    }
}
