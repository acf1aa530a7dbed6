//! The connection to one Redis acceptor, supervised: a live connection and its generation, a
//! background reconnection when it breaks or stays silent for [`LIVENESS`], a keepalive PING,
//! and the persistence settings read (with the scripts loaded) on every connection and judged
//! (`durability_problem`). See the module comment of `acceptor::redis` for why a connection
//! is replaced only when it breaks or stays silent.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, RedisError, Script};

use super::super::AcceptorError;
use super::{ACCEPT_LUA, ACCEPT_MANY_LUA, IDENTITY_LUA, PREPARE_LUA, PREPARE_MANY_LUA, READ_LUA};

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
pub(super) const RECENT_LOSS: Duration = Duration::from_secs(2);

pub(super) struct Inner {
    pub(super) name: String,
    pub(super) client: Client,
    pub(super) timeout: Duration,
    /// The live connection and its generation (a failure on an older connection must not
    /// drop a newer one).
    pub(super) connection: Mutex<Option<(u64, MultiplexedConnection)>>,
    pub(super) generation: AtomicU64,
    pub(super) reconnecting: AtomicBool,
    /// When the last live connection was dropped.
    pub(super) lost_at: Mutex<Option<std::time::Instant>>,
    /// When connection `.0` last answered anything (or was made).
    pub(super) answered_at: Mutex<(u64, std::time::Instant)>,
    pub(super) prepare: Script,
    pub(super) accept: Script,
    pub(super) identity: Script,
    pub(super) read: Script,
    pub(super) prepare_many: Script,
    pub(super) accept_many: Script,
    /// The cluster id the scripts check the identity record against (learned by the
    /// membership task; `None` until then, and calls are refused).
    pub(super) cluster: RwLock<Option<String>>,
    /// Refuse a Redis whose persistence settings could lose acknowledged writes.
    pub(super) require_fsync: bool,
    /// The last refusal of the persistence settings, for `/health`.
    pub(super) durability_problem: Mutex<Option<String>>,
}

impl Inner {
    pub(super) fn current(&self) -> Option<(u64, MultiplexedConnection)> {
        self.connection
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Notes that connection `generation` answered just now. A late answer on a replaced
    /// connection says nothing about the live one.
    pub(super) fn answered(&self, generation: u64) {
        let mut answered = self.answered_at.lock().unwrap_or_else(|e| e.into_inner());
        if answered.0 <= generation {
            *answered = (generation, std::time::Instant::now());
        }
    }

    /// How long the live connection has answered nothing.
    pub(super) fn silent_for(&self) -> Duration {
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
    pub(super) fn settle<T>(
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
    pub(super) fn timed_out(this: &Arc<Inner>, generation: u64) -> AcceptorError {
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
    pub(super) fn reconnect(this: &Arc<Inner>, failed: Option<u64>) {
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
    pub(super) fn keepalive(this: &Arc<Inner>) {
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
    pub(super) async fn connect(&self) -> Result<MultiplexedConnection, String> {
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
    pub(super) fn judge_durability(&self, settings: &Settings) -> Result<(), String> {
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
pub(super) async fn read_settings(
    connection: &mut MultiplexedConnection,
) -> Result<Settings, RedisError> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
