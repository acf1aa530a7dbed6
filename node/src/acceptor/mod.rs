//! Acceptors: the proposer's view of the three places a key's CASPaxos state is stored.
//!
//! `Acceptor` is the transport trait the proposer talks through. Production uses
//! [`redis::RedisAcceptor`] (Lua scripts in Redis); tests and the simulation use
//! [`memory::MemoryAcceptor`], which runs the same [`rules`] in memory.
//!
//! Every answer carries the acceptor's [`Standing`]; [`counted`] turns an answer from a
//! recovering acceptor into [`AcceptorError::Recovering`], so the proposer's quorums never
//! count it (it still stores what it was sent). See docs/design-acceptor-recovery.md.

pub mod memory;
pub mod redis;
pub mod rules;

use async_trait::async_trait;
use futures::future::join_all;

use crate::ballot::Ballot;
pub use rules::{
    acceptor_set, AcceptReply, Identity, IdentityRefusal, PrepareReply, ReadReply, Standing,
};

/// Why an acceptor gave no answer.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum AcceptorError {
    #[error("not connected")]
    NotConnected,
    #[error("timed out")]
    Timeout,
    #[error("connection failed: {0}")]
    Io(String),
    #[error("bad reply: {0}")]
    Protocol(String),
    /// The acceptor's identity record is missing or foreign: the script refused before
    /// changing anything, and the answer never counts.
    #[error("refused: {0}")]
    Unmarked(IdentityRefusal),
    /// The acceptor is recovering from lost data: it applied the call (a promise or an accept
    /// is stored) but its answer counts toward no quorum until it is a member again.
    #[error("recovering (lost its data; stores writes, counts toward no quorum yet)")]
    Recovering,
    /// The Redis's persistence settings could lose acknowledged writes: refused.
    #[error("not durable: {0}")]
    NotDurable(String),
}

/// The answer as the proposer may count it: a member's answer as is; a recovering acceptor's
/// promise or acceptance becomes [`AcceptorError::Recovering`]. A refusal (conflict) counts
/// from anyone: an acceptor's promise only grows, so it will never accept that ballot.
pub fn counted<T>(
    standing: Standing,
    answer: T,
    is_yes: impl Fn(&T) -> bool,
) -> Result<T, AcceptorError> {
    match standing {
        Standing::Member => Ok(answer),
        Standing::Recovering | Standing::Initialising if is_yes(&answer) => {
            Err(AcceptorError::Recovering)
        }
        Standing::Recovering | Standing::Initialising => Ok(answer),
    }
}

/// What the membership task reads from an acceptor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inspection {
    pub identity: Option<Identity>,
    /// The acceptor's current life (see [`rules::admit`]): a member whose stamp differs may
    /// have gone back in time.
    pub life: String,
    /// Keys holding CASPaxos state (the identity record not counted).
    pub data_keys: u64,
    /// The node holding the catch-up lease on this acceptor, if the lease is live.
    pub lease: Option<String>,
}

impl Inspection {
    /// Whether the record is stamped with the current life (its data is one unbroken history
    /// since it was last brought level).
    pub fn level(&self) -> bool {
        self.identity
            .as_ref()
            .is_some_and(|id| id.stamp == self.life)
    }
}

/// A change (or a read) of an acceptor's identity record; each is one atomic step on the
/// acceptor (see `identity.lua` for the exact conditions).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IdentityOp {
    /// Read it, and the key count and the life (and, for Redis, check the persistence
    /// settings).
    Inspect,
    /// Write it only where there is none, stamped with the current life.
    Claim(Identity),
    /// Write it in place of an `initialising` record of the cluster `over`, only while that
    /// record is still stamped with the current life (it never counted anywhere: two
    /// initialisations raced), stamped with the current life.
    Replace { over: String, identity: Identity },
    /// initialising -> member, only while stamped with the current life and only if that is
    /// `life`, the life the inspection that decided the join saw: a join decided long ago
    /// (a stale inspection, a delayed message) never lands on a record claimed since, after a
    /// wipe (a late claim on a wiped member).
    Join { cluster: String, life: String },
    /// A member record stamped under another life, or any initialising one -> recovering,
    /// `mark`.
    Suspect { cluster: String, mark: String },
    /// recovering -> member for exactly `mark`, only if the life is still `life`.
    Promote {
        cluster: String,
        mark: String,
        life: String,
    },
    /// Take (or renew) the catch-up lease for `node`, for `ms` milliseconds.
    Lease { node: String, ms: u64 },
    /// Overwrite (the operator's accept-loss), stamped with the current life.
    Force(Identity),
}

/// An acceptor as the membership task administers it: identity records, key listing, the
/// cluster id its calls check. Implemented by Redis and by the in-memory acceptor (and the
/// simulation's links), so the same membership code runs in production and in the
/// simulation.
#[async_trait]
pub trait AdminAcceptor: Acceptor {
    /// One identity operation; the record as it is afterwards.
    async fn identity(&self, op: IdentityOp) -> Result<Inspection, AcceptorError>;

    /// One SCAN step over the keys holding CASPaxos state: the next cursor (0: done) and
    /// the keys.
    async fn scan_keys(&self, cursor: u64) -> Result<(u64, Vec<String>), AcceptorError>;

    /// Sets (or clears) the cluster id the calls check the identity record against; with
    /// none, every call is refused before it is sent.
    fn set_cluster(&self, cluster: Option<&str>);

    fn cluster(&self) -> Option<String>;

    /// Why the persistence settings were refused at the last connection or inspection.
    fn durability_problem(&self) -> Option<String> {
        None
    }
}

/// The answers of a call on many keys: an error for the whole call (nothing answered, as for a
/// single key), or one answer per key, in the order of the keys, each already [`counted`].
pub type Answers<T> = Result<Vec<Result<T, AcceptorError>>, AcceptorError>;

/// One acceptor, as seen by a proposer.
#[async_trait]
pub trait Acceptor: Send + Sync + 'static {
    /// A short name for logs and errors (e.g. the Redis address).
    fn name(&self) -> &str;

    /// Whether the acceptor is believed reachable right now (for `/health`).
    fn is_connected(&self) -> bool;

    /// A cheap round trip proving the acceptor answers right now (for `/health`); changes
    /// nothing. The default trusts [`Acceptor::is_connected`].
    async fn ping(&self) -> Result<(), AcceptorError> {
        if self.is_connected() {
            Ok(())
        } else {
            Err(AcceptorError::NotConnected)
        }
    }

    async fn prepare(&self, key: &str, ballot: Ballot) -> Result<PrepareReply, AcceptorError>;

    /// The key's accepted ballot and value, for a quorum read: promises nothing and writes
    /// nothing (in Redis: no write, so nothing for the AOF to fsync). A recovering acceptor's
    /// answer comes back as [`AcceptorError::Recovering`], like its promises: it may have lost
    /// what it accepted, so it counts toward no quorum.
    async fn read(&self, key: &str) -> Result<ReadReply, AcceptorError>;

    async fn accept(
        &self,
        key: &str,
        ballot: Ballot,
        value: Option<&str>,
        next_promise: Ballot,
    ) -> Result<AcceptReply, AcceptorError>;

    /// `prepare(key, ballot)` for every key of `keys` in one call (the catch-up pass): each
    /// key is promised or refused exactly as [`Acceptor::prepare`] would, independently of
    /// the others. Redis runs the batch as one script (atomic: one identity check, one round
    /// trip, one fsync). The default sends the keys one by one, concurrently.
    async fn prepare_many(&self, keys: &[String], ballot: Ballot) -> Answers<PrepareReply> {
        Ok(join_all(keys.iter().map(|key| self.prepare(key, ballot))).await)
    }

    /// `accept(key, ballot, value, next_promise)` for every `(key, value)` of `writes` in one
    /// call (the catch-up pass), each exactly as [`Acceptor::accept`] would. As
    /// [`Acceptor::prepare_many`]: one script in Redis, one by one by default.
    async fn accept_many(
        &self,
        writes: &[(String, Option<String>)],
        ballot: Ballot,
        next_promise: Ballot,
    ) -> Answers<AcceptReply> {
        Ok(join_all(
            writes
                .iter()
                .map(|(key, value)| self.accept(key, ballot, value.as_deref(), next_promise)),
        )
        .await)
    }
}
