//! A Redis server used as a CASPaxos acceptor: the rules run as Lua scripts inside Redis.
//!
//! The scripts are loaded with SCRIPT LOAD on every (re)connection and invoked by EVALSHA;
//! a NOSCRIPT reply (a restarted or flushed Redis) makes the redis crate load them again.
//! Every call is bounded by a timeout. A lost connection, or calls that keep timing out, drop
//! the connection and start a background task that reconnects until the server answers again,
//! so a Redis that comes back is used again without restarting the node. While no connection
//! exists calls fail at once instead of waiting for the timeout.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, RedisError, Script};

use super::{AcceptReply, Acceptor, AcceptorError, PrepareReply};
use crate::ballot::Ballot;

/// Each script is the shared slot.lua (ballot comparison, state reading) followed by its own.
const PREPARE_LUA: &str = concat!(include_str!("slot.lua"), include_str!("prepare.lua"));
const ACCEPT_LUA: &str = concat!(include_str!("slot.lua"), include_str!("accept.lua"));

/// Consecutive timeouts after which the connection is presumed dead and replaced.
const TIMEOUTS_BEFORE_RECONNECT: u32 = 2;
/// Pause between reconnection attempts.
const RECONNECT_PAUSE: Duration = Duration::from_millis(200);
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
    timeouts_in_a_row: AtomicU32,
    prepare: Script,
    accept: Script,
}

impl RedisAcceptor {
    /// An acceptor for the Redis at `url` (e.g. `redis://10.77.0.11:6379`). Connects in the
    /// background; must be called inside a tokio runtime.
    pub fn new(url: &str, timeout: Duration) -> Result<Self, RedisError> {
        let client = Client::open(url)?;
        let inner = Arc::new(Inner {
            name: url.trim_start_matches("redis://").to_string(),
            client,
            timeout,
            connection: Mutex::new(None),
            generation: AtomicU64::new(0),
            reconnecting: AtomicBool::new(false),
            timeouts_in_a_row: AtomicU32::new(0),
            prepare: Script::new(PREPARE_LUA),
            accept: Script::new(ACCEPT_LUA),
        });
        Inner::reconnect(&inner, None);
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
}

impl Inner {
    fn current(&self) -> Option<(u64, MultiplexedConnection)> {
        self.connection
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Drops the connection (only if it is still generation `failed`, when given) and makes
    /// sure one background task is reconnecting.
    fn reconnect(this: &Arc<Inner>, failed: Option<u64>) {
        {
            let mut connection = this.connection.lock().unwrap_or_else(|e| e.into_inner());
            match (&*connection, failed) {
                (Some((current, _)), Some(failed)) if *current != failed => return,
                _ => *connection = None,
            }
        }
        if this.reconnecting.swap(true, Ordering::SeqCst) {
            return;
        }
        let weak: Weak<Inner> = Arc::downgrade(this);
        tokio::spawn(async move {
            let mut logged = false;
            // Ends when connected, or when the acceptor is dropped.
            while let Some(inner) = weak.upgrade() {
                match inner.connect().await {
                    Ok(connection) => {
                        let generation = inner.generation.fetch_add(1, Ordering::SeqCst) + 1;
                        *inner.connection.lock().unwrap_or_else(|e| e.into_inner()) =
                            Some((generation, connection));
                        inner.timeouts_in_a_row.store(0, Ordering::SeqCst);
                        inner.reconnecting.store(false, Ordering::SeqCst);
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

    async fn connect(&self) -> Result<MultiplexedConnection, String> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout));
        let attempt = async {
            let mut connection = self
                .client
                .get_multiplexed_async_connection_with_config(&config)
                .await?;
            for script in [&self.prepare, &self.accept] {
                script.load_async(&mut connection).await?;
            }
            Ok::<_, RedisError>(connection)
        };
        match tokio::time::timeout(self.timeout * 2, attempt).await {
            Ok(Ok(connection)) => Ok(connection),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("timed out".to_string()),
        }
    }
}

impl RedisAcceptor {
    /// Runs one script invocation with the timeout, keeping the connection healthy.
    async fn call(
        &self,
        invocation: redis::ScriptInvocation<'_>,
    ) -> Result<Vec<String>, AcceptorError> {
        let inner = &self.inner;
        let Some((generation, mut connection)) = inner.current() else {
            return Err(AcceptorError::NotConnected);
        };
        match tokio::time::timeout(inner.timeout, invocation.invoke_async(&mut connection)).await {
            Ok(Ok(reply)) => {
                inner.timeouts_in_a_row.store(0, Ordering::SeqCst);
                Ok(reply)
            }
            Ok(Err(e)) if e.is_timeout() => Err(self.timed_out(generation)),
            Ok(Err(e))
                if e.is_io_error()
                    || e.is_connection_dropped()
                    || e.is_connection_refusal()
                    || e.is_unrecoverable_error() =>
            {
                Inner::reconnect(inner, Some(generation));
                Err(AcceptorError::Io(e.to_string()))
            }
            Ok(Err(e)) => Err(AcceptorError::Protocol(e.to_string())),
            Err(_) => Err(self.timed_out(generation)),
        }
    }

    /// Counts a timeout of a call on connection `generation`; timeouts of an older connection
    /// say nothing about the current one.
    fn timed_out(&self, generation: u64) -> AcceptorError {
        let inner = &self.inner;
        let current = inner.current().map(|(g, _)| g) == Some(generation);
        if current
            && inner.timeouts_in_a_row.fetch_add(1, Ordering::SeqCst) + 1
                >= TIMEOUTS_BEFORE_RECONNECT
        {
            Inner::reconnect(inner, Some(generation));
        }
        AcceptorError::Timeout
    }
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

/// Turns a prepare script reply into a [`PrepareReply`].
fn parse_prepare(reply: &[String]) -> Result<PrepareReply, AcceptorError> {
    match reply.first().map(String::as_str) {
        Some("ok") if reply.len() == 6 => Ok(PrepareReply::Promised {
            accepted: parse_ballot(&reply[1..4])?,
            value: (reply[4] == "1").then(|| reply[5].clone()),
        }),
        Some("conflict") if reply.len() == 4 => {
            Ok(PrepareReply::Conflict(parse_ballot(&reply[1..4])?))
        }
        _ => Err(AcceptorError::Protocol(format!(
            "unexpected prepare reply {reply:?}"
        ))),
    }
}

/// Turns an accept script reply into an [`AcceptReply`].
fn parse_accept(reply: &[String]) -> Result<AcceptReply, AcceptorError> {
    match reply.first().map(String::as_str) {
        Some("ok") if reply.len() == 1 => Ok(AcceptReply::Accepted),
        Some("conflict") if reply.len() == 4 => {
            Ok(AcceptReply::Conflict(parse_ballot(&reply[1..4])?))
        }
        _ => Err(AcceptorError::Protocol(format!(
            "unexpected accept reply {reply:?}"
        ))),
    }
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
        match tokio::time::timeout(inner.timeout, ping).await {
            Ok(Ok(_)) => {
                inner.timeouts_in_a_row.store(0, Ordering::SeqCst);
                Ok(())
            }
            Ok(Err(e)) if e.is_timeout() => Err(self.timed_out(generation)),
            Ok(Err(e)) => {
                if e.is_io_error()
                    || e.is_connection_dropped()
                    || e.is_connection_refusal()
                    || e.is_unrecoverable_error()
                {
                    Inner::reconnect(inner, Some(generation));
                }
                Err(AcceptorError::Io(e.to_string()))
            }
            Err(_) => Err(self.timed_out(generation)),
        }
    }

    async fn prepare(&self, key: &str, ballot: Ballot) -> Result<PrepareReply, AcceptorError> {
        let mut invocation = self.inner.prepare.key(redis_key(key));
        invocation
            .arg(ballot.counter)
            .arg(ballot.proposer)
            .arg(ballot.incarnation);
        parse_prepare(&self.call(invocation).await?)
    }

    async fn accept(
        &self,
        key: &str,
        ballot: Ballot,
        value: Option<&str>,
        next_promise: Ballot,
    ) -> Result<AcceptReply, AcceptorError> {
        let mut invocation = self.inner.accept.key(redis_key(key));
        invocation
            .arg(ballot.counter)
            .arg(ballot.proposer)
            .arg(ballot.incarnation)
            .arg(if value.is_some() { "1" } else { "0" })
            .arg(value.unwrap_or(""))
            .arg(next_promise.counter)
            .arg(next_promise.proposer)
            .arg(next_promise.incarnation);
        parse_accept(&self.call(invocation).await?)
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
            parse_prepare(&strings(&["ok", "3", "1", "9", "1", "v"])),
            Ok(PrepareReply::Promised {
                accepted: Ballot::new(3, 1, 9),
                value: Some("v".into())
            })
        );
        assert_eq!(
            parse_prepare(&strings(&["ok", "0", "0", "0", "0", ""])),
            Ok(PrepareReply::Promised {
                accepted: Ballot::ZERO,
                value: None
            })
        );
        assert_eq!(
            parse_prepare(&strings(&["conflict", "7", "2", "1"])),
            Ok(PrepareReply::Conflict(Ballot::new(7, 2, 1)))
        );
        assert!(parse_prepare(&strings(&["ok"])).is_err());
        assert!(parse_prepare(&strings(&["conflict", "x", "2", "1"])).is_err());
    }

    #[test]
    fn parses_accept_replies() {
        assert_eq!(parse_accept(&strings(&["ok"])), Ok(AcceptReply::Accepted));
        assert_eq!(
            parse_accept(&strings(&["conflict", "1", "2", "3"])),
            Ok(AcceptReply::Conflict(Ballot::new(1, 2, 3)))
        );
        assert!(parse_accept(&strings(&[])).is_err());
    }
}
