//! An in-memory acceptor that applies [`super::rules`] to a map of slots.
//!
//! Used by tests and the deterministic simulation in place of Redis. It can be switched off
//! (every call fails as if the connection were lost) to model a dead acceptor, and wiped
//! (slots and identity gone, like `FLUSHALL`) to model one that lost its data. It starts as a
//! member of the cluster [`MEMORY_CLUSTER`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use async_trait::async_trait;

use super::rules::{self, Identity, Slot, Standing};
use super::{counted, AcceptReply, Acceptor, AcceptorError, Answers, PrepareReply, ReadReply};
use crate::ballot::Ballot;

/// The cluster id of in-memory acceptors.
pub const MEMORY_CLUSTER: &str = "memory";

#[derive(Debug)]
struct Store {
    slots: HashMap<String, Slot>,
    identity: Option<Identity>,
}

#[derive(Debug)]
pub struct MemoryAcceptor {
    name: String,
    store: Mutex<Store>,
    down: AtomicBool,
}

impl MemoryAcceptor {
    /// A member of [`MEMORY_CLUSTER`] named `name`.
    pub fn new(name: impl Into<String>) -> Self {
        let name = name.into();
        MemoryAcceptor {
            store: Mutex::new(Store {
                slots: HashMap::new(),
                identity: Some(Identity {
                    cluster: MEMORY_CLUSTER.into(),
                    acceptor: name.clone(),
                    standing: Standing::Member,
                    mark: String::new(),
                }),
            }),
            name,
            down: AtomicBool::new(false),
        }
    }

    /// Makes every later call fail (`down = true`) or succeed again.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    /// A copy of one key's slot, for invariant checks.
    pub fn slot(&self, key: &str) -> Slot {
        self.with_store(|s| s.slots.get(key).cloned().unwrap_or_default())
    }

    /// Every key with a slot (the catch-up pass lists them).
    pub fn keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self.with_store(|s| s.slots.keys().cloned().collect());
        keys.sort();
        keys
    }

    pub fn identity(&self) -> Option<Identity> {
        self.with_store(|s| s.identity.clone())
    }

    /// Loses everything, identity included (`FLUSHALL`).
    pub fn wipe(&self) {
        self.with_store(|s| {
            s.slots.clear();
            s.identity = None;
        });
    }

    /// Writes the identity only if there is none; returns the stored one.
    pub fn claim(&self, identity: Identity) -> Identity {
        self.with_store(|s| s.identity.get_or_insert(identity).clone())
    }

    /// Recovering -> member, only for the mark `mark`. True if it is now a member by this call.
    pub fn promote(&self, mark: &str) -> bool {
        self.with_store(|s| match &mut s.identity {
            Some(id) if id.standing == Standing::Recovering && id.mark == mark => {
                id.standing = Standing::Member;
                true
            }
            _ => false,
        })
    }

    /// Applies a prepare synchronously (the simulation delivers messages itself): the
    /// answer and the acceptor's standing, or the refusal that changed nothing.
    pub fn apply_prepare(
        &self,
        key: &str,
        ballot: Ballot,
    ) -> Result<(PrepareReply, Standing), AcceptorError> {
        self.with_store(|s| {
            let standing = admit(s, &self.name)?;
            rules::check_exact(&[ballot]).map_err(AcceptorError::Protocol)?;
            let slot = s.slots.entry(key.to_string()).or_default();
            Ok((rules::prepare(slot, ballot), standing))
        })
    }

    /// Applies a read synchronously: the answer and the acceptor's standing (no slot is
    /// created, nothing changes).
    pub fn apply_read(&self, key: &str) -> Result<(ReadReply, Standing), AcceptorError> {
        self.with_store(|s| {
            let standing = admit(s, &self.name)?;
            Ok((rules::read(s.slots.get(key)), standing))
        })
    }

    /// Applies an accept synchronously.
    pub fn apply_accept(
        &self,
        key: &str,
        ballot: Ballot,
        value: Option<&str>,
        next_promise: Ballot,
    ) -> Result<(AcceptReply, Standing), AcceptorError> {
        self.with_store(|s| {
            let standing = admit(s, &self.name)?;
            rules::check_exact(&[ballot, next_promise]).map_err(AcceptorError::Protocol)?;
            let slot = s.slots.entry(key.to_string()).or_default();
            let reply = rules::accept(slot, ballot, value.map(str::to_string), next_promise);
            Ok((reply, standing))
        })
    }

    /// Applies a prepare of many keys synchronously and atomically (one lock hold, as Redis
    /// runs `prepare_many.lua` as one script): the identity is checked once, then every key
    /// is prepared by the rules exactly as [`MemoryAcceptor::apply_prepare`] would.
    pub fn apply_prepare_many(
        &self,
        keys: &[String],
        ballot: Ballot,
    ) -> Result<(Vec<PrepareReply>, Standing), AcceptorError> {
        self.with_store(|s| {
            let standing = admit(s, &self.name)?;
            rules::check_exact(&[ballot]).map_err(AcceptorError::Protocol)?;
            let replies = keys
                .iter()
                .map(|key| rules::prepare(s.slots.entry(key.clone()).or_default(), ballot))
                .collect();
            Ok((replies, standing))
        })
    }

    /// Applies an accept of many keys synchronously and atomically (see
    /// [`MemoryAcceptor::apply_prepare_many`]), each as [`MemoryAcceptor::apply_accept`].
    pub fn apply_accept_many(
        &self,
        writes: &[(String, Option<String>)],
        ballot: Ballot,
        next_promise: Ballot,
    ) -> Result<(Vec<AcceptReply>, Standing), AcceptorError> {
        self.with_store(|s| {
            let standing = admit(s, &self.name)?;
            rules::check_exact(&[ballot, next_promise]).map_err(AcceptorError::Protocol)?;
            let replies = writes
                .iter()
                .map(|(key, value)| {
                    let slot = s.slots.entry(key.clone()).or_default();
                    rules::accept(slot, ballot, value.clone(), next_promise)
                })
                .collect();
            Ok((replies, standing))
        })
    }

    fn with_store<T>(&self, f: impl FnOnce(&mut Store) -> T) -> T {
        // A panic while holding the lock cannot leave a slot half-written (the rules update
        // plain fields), so a poisoned lock is still safe to use.
        let mut store = self.store.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut store)
    }

    fn check_up(&self) -> Result<(), AcceptorError> {
        if self.down.load(Ordering::SeqCst) {
            Err(AcceptorError::NotConnected)
        } else {
            Ok(())
        }
    }
}

fn admit(store: &Store, name: &str) -> Result<Standing, AcceptorError> {
    rules::admit(store.identity.as_ref(), MEMORY_CLUSTER, name).map_err(AcceptorError::Unmarked)
}

#[async_trait]
impl Acceptor for MemoryAcceptor {
    fn name(&self) -> &str {
        &self.name
    }

    fn is_connected(&self) -> bool {
        !self.down.load(Ordering::SeqCst)
    }

    async fn prepare(&self, key: &str, ballot: Ballot) -> Result<PrepareReply, AcceptorError> {
        self.check_up()?;
        let (reply, standing) = self.apply_prepare(key, ballot)?;
        counted(standing, reply, |r| {
            matches!(r, PrepareReply::Promised { .. })
        })
    }

    async fn read(&self, key: &str) -> Result<ReadReply, AcceptorError> {
        self.check_up()?;
        let (reply, standing) = self.apply_read(key)?;
        counted(standing, reply, |_| true)
    }

    async fn accept(
        &self,
        key: &str,
        ballot: Ballot,
        value: Option<&str>,
        next_promise: Ballot,
    ) -> Result<AcceptReply, AcceptorError> {
        self.check_up()?;
        let (reply, standing) = self.apply_accept(key, ballot, value, next_promise)?;
        counted(standing, reply, |r| *r == AcceptReply::Accepted)
    }

    async fn prepare_many(&self, keys: &[String], ballot: Ballot) -> Answers<PrepareReply> {
        self.check_up()?;
        let (replies, standing) = self.apply_prepare_many(keys, ballot)?;
        Ok(replies
            .into_iter()
            .map(|r| counted(standing, r, |r| matches!(r, PrepareReply::Promised { .. })))
            .collect())
    }

    async fn accept_many(
        &self,
        writes: &[(String, Option<String>)],
        ballot: Ballot,
        next_promise: Ballot,
    ) -> Answers<AcceptReply> {
        self.check_up()?;
        let (replies, standing) = self.apply_accept_many(writes, ballot, next_promise)?;
        Ok(replies
            .into_iter()
            .map(|r| counted(standing, r, |r| *r == AcceptReply::Accepted))
            .collect())
    }
}
