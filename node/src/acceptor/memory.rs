//! An in-memory acceptor that applies [`super::rules`] to a map of slots.
//!
//! Used by tests and the deterministic simulation in place of Redis. It can be switched off
//! (every call fails as if the connection were lost) to model a dead acceptor.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use async_trait::async_trait;

use super::rules::{self, Slot};
use super::{AcceptReply, Acceptor, AcceptorError, PrepareReply};
use crate::ballot::Ballot;

#[derive(Debug, Default)]
pub struct MemoryAcceptor {
    name: String,
    slots: Mutex<HashMap<String, Slot>>,
    down: AtomicBool,
}

impl MemoryAcceptor {
    pub fn new(name: impl Into<String>) -> Self {
        MemoryAcceptor {
            name: name.into(),
            ..Default::default()
        }
    }

    /// Makes every later call fail (`down = true`) or succeed again.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    /// A copy of one key's slot, for invariant checks.
    pub fn slot(&self, key: &str) -> Slot {
        self.with_slots(|slots| slots.get(key).cloned().unwrap_or_default())
    }

    /// Applies a prepare synchronously (the simulation delivers messages itself).
    pub fn apply_prepare(&self, key: &str, ballot: Ballot) -> PrepareReply {
        self.with_slots(|slots| rules::prepare(slots.entry(key.to_string()).or_default(), ballot))
    }

    /// Applies an accept synchronously.
    pub fn apply_accept(
        &self,
        key: &str,
        ballot: Ballot,
        value: Option<&str>,
        next_promise: Ballot,
    ) -> AcceptReply {
        self.with_slots(|slots| {
            rules::accept(
                slots.entry(key.to_string()).or_default(),
                ballot,
                value.map(str::to_string),
                next_promise,
            )
        })
    }

    fn with_slots<T>(&self, f: impl FnOnce(&mut HashMap<String, Slot>) -> T) -> T {
        // A panic while holding the lock cannot leave a slot half-written (the rules update
        // plain fields), so a poisoned lock is still safe to use.
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut slots)
    }

    fn check_up(&self) -> Result<(), AcceptorError> {
        if self.down.load(Ordering::SeqCst) {
            Err(AcceptorError::NotConnected)
        } else {
            Ok(())
        }
    }
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
        Ok(self.apply_prepare(key, ballot))
    }

    async fn accept(
        &self,
        key: &str,
        ballot: Ballot,
        value: Option<&str>,
        next_promise: Ballot,
    ) -> Result<AcceptReply, AcceptorError> {
        self.check_up()?;
        Ok(self.apply_accept(key, ballot, value, next_promise))
    }
}
