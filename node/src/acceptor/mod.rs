//! Acceptors: the proposer's view of the three places a key's CASPaxos state is stored.
//!
//! `Acceptor` is the transport trait the proposer talks through. Production uses
//! [`redis::RedisAcceptor`] (Lua scripts in Redis); tests and the simulation use
//! [`memory::MemoryAcceptor`], which runs the same [`rules`] in memory.

pub mod memory;
pub mod redis;
pub mod rules;

use async_trait::async_trait;

use crate::ballot::Ballot;
pub use rules::{AcceptReply, PrepareReply};

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
}

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

    async fn accept(
        &self,
        key: &str,
        ballot: Ballot,
        value: Option<&str>,
        next_promise: Ballot,
    ) -> Result<AcceptReply, AcceptorError>;
}
