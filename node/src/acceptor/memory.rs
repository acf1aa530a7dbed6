//! An in-memory acceptor that applies [`super::rules`] to a map of slots.
//!
//! Used by tests and the deterministic simulation in place of Redis. It can be switched off
//! (every call fails as if the connection were lost) to model a dead acceptor, wiped (slots
//! and identity gone, like `FLUSHALL`) to model one that lost its data, restarted (a new
//! life, data intact, like a Redis restarted from a complete AOF) and rolled back to a
//! snapshot of its whole state, identity included (a new life too, like a Redis restarted
//! from an old backup or an in-place `FLUSHALL` + `RESTORE`). Its life counts those events,
//! as a Redis's run id and reset count do (`life.lua`). It starts as a member of the cluster
//! [`MEMORY_CLUSTER`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use async_trait::async_trait;

use super::rules::{self, Identity, Slot, Standing};
use super::{
    counted, AcceptReply, Acceptor, AcceptorError, AdminAcceptor, Answers, IdentityOp, Inspection,
    PrepareReply, ReadReply,
};
use crate::ballot::Ballot;

/// The cluster id of in-memory acceptors.
pub const MEMORY_CLUSTER: &str = "memory";

#[derive(Debug)]
struct Store {
    slots: HashMap<String, Slot>,
    identity: Option<Identity>,
    /// Restarts, wipes and rollbacks so far: the life is `life-<n>`.
    lives: u64,
    /// The catch-up lease: holder, until when, and the life it was taken under (void once
    /// the life changes: a restart or a restore ends it, as in `identity.lua`).
    lease: Option<(String, tokio::time::Instant, String)>,
}

impl Store {
    fn life(&self) -> String {
        format!("life-{}", self.lives)
    }
}

/// A copy of an in-memory acceptor's whole state (slots and identity), for a rollback.
#[derive(Clone, Debug)]
pub struct Snapshot {
    slots: HashMap<String, Slot>,
    identity: Option<Identity>,
}

impl Snapshot {
    /// Keys the snapshot holds a slot for.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }
}

#[derive(Debug)]
pub struct MemoryAcceptor {
    name: String,
    store: Mutex<Store>,
    down: AtomicBool,
}

impl MemoryAcceptor {
    /// A member of [`MEMORY_CLUSTER`] named `name` (in a set of acceptors of its own).
    pub fn new(name: impl Into<String>) -> Self {
        let name = name.into();
        let set = name.clone();
        Self::in_set(name, set)
    }

    /// A member of [`MEMORY_CLUSTER`] named `name`, in the acceptor set `set`
    /// ([`rules::acceptor_set`]).
    pub fn in_set(name: impl Into<String>, set: impl Into<String>) -> Self {
        let name = name.into();
        let store = Store {
            slots: HashMap::new(),
            identity: None,
            lives: 0,
            lease: None,
        };
        let identity = Identity {
            cluster: MEMORY_CLUSTER.into(),
            acceptor: name.clone(),
            standing: Standing::Member,
            mark: String::new(),
            set: set.into(),
            stamp: store.life(),
        };
        MemoryAcceptor {
            store: Mutex::new(Store {
                identity: Some(identity),
                ..store
            }),
            name,
            down: AtomicBool::new(false),
        }
    }

    /// An acceptor with no identity record at all (a fresh Redis), named `name`.
    pub fn blank(name: impl Into<String>) -> Self {
        let acceptor = Self::new(name);
        acceptor.with_store(|s| s.identity = None);
        acceptor
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

    /// Loses everything, identity included (`FLUSHALL`: a wholesale replacement, so a new
    /// life too).
    pub fn wipe(&self) {
        self.with_store(|s| {
            s.slots.clear();
            s.identity = None;
            s.lives += 1;
        });
    }

    /// A restart that lost nothing (a Redis restarted from a complete AOF): a new life, so a
    /// member answers as recovering until caught up (nothing proves it lost nothing).
    pub fn restart(&self) {
        self.with_store(|s| s.lives += 1);
    }

    /// A copy of the whole state, identity included.
    pub fn snapshot(&self) -> Snapshot {
        self.with_store(|s| Snapshot {
            slots: s.slots.clone(),
            identity: s.identity.clone(),
        })
    }

    /// The whole state goes back to `snapshot` (a restored backup, a truncated AOF, an
    /// in-place FLUSHALL + RESTORE): a new life.
    pub fn roll_back(&self, snapshot: &Snapshot) {
        self.with_store(|s| {
            s.slots = snapshot.slots.clone();
            s.identity = snapshot.identity.clone();
            s.lives += 1;
        });
    }

    /// The current life (see [`rules::admit`]).
    pub fn life(&self) -> String {
        self.with_store(|s| s.life())
    }

    /// Writes the identity only if there is none (stamped with the current life); returns
    /// the stored one.
    pub fn claim(&self, identity: Identity) -> Identity {
        self.with_store(|s| {
            let life = s.life();
            s.identity
                .get_or_insert(Identity {
                    stamp: life,
                    ..identity
                })
                .clone()
        })
    }

    /// Recovering -> member, only for the mark `mark` and only under the current life (the
    /// life the pass started under must be passed by the caller: see [`IdentityOp`]). True
    /// if it is now a member by this call.
    pub fn promote(&self, mark: &str) -> bool {
        let life = self.life();
        self.apply_identity(&IdentityOp::Promote {
            cluster: MEMORY_CLUSTER.into(),
            mark: mark.into(),
            life,
        });
        self.identity()
            .is_some_and(|id| id.standing == Standing::Member && id.mark == mark)
    }

    /// Applies one identity operation synchronously (same rules as `identity.lua`).
    pub fn apply_identity(&self, op: &IdentityOp) -> Inspection {
        self.with_store(|s| {
            let life = s.life();
            let now = tokio::time::Instant::now();
            let ours =
                |id: &Identity, cluster: &str| id.cluster == cluster && id.acceptor == self.name;
            match op {
                IdentityOp::Inspect => {}
                IdentityOp::Claim(identity) => {
                    if s.identity.is_none() {
                        s.identity = Some(Identity {
                            stamp: life.clone(),
                            ..identity.clone()
                        });
                    }
                }
                IdentityOp::Replace { over, identity } => {
                    let replaceable = s.identity.as_ref().is_some_and(|id| {
                        id.cluster == *over
                            && id.acceptor == identity.acceptor
                            && id.standing == Standing::Initialising
                            && id.stamp == life
                    });
                    if replaceable {
                        s.identity = Some(Identity {
                            stamp: life.clone(),
                            ..identity.clone()
                        });
                    }
                }
                IdentityOp::Join {
                    cluster,
                    life: seen,
                } => {
                    if let Some(id) = &mut s.identity {
                        if ours(id, cluster)
                            && id.standing == Standing::Initialising
                            && id.stamp == life
                            && *seen == life
                        {
                            id.standing = Standing::Member;
                        }
                    }
                }
                IdentityOp::Suspect { cluster, mark } => {
                    if let Some(id) = &mut s.identity {
                        if ours(id, cluster)
                            && ((id.standing == Standing::Member && id.stamp != life)
                                || id.standing == Standing::Initialising)
                        {
                            id.standing = Standing::Recovering;
                            id.mark = mark.clone();
                        }
                    }
                }
                IdentityOp::Promote {
                    cluster,
                    mark,
                    life: started,
                } => {
                    if let Some(id) = &mut s.identity {
                        if ours(id, cluster)
                            && id.standing == Standing::Recovering
                            && id.mark == *mark
                            && *started == life
                        {
                            id.standing = Standing::Member;
                            id.stamp = life.clone();
                        }
                    }
                }
                IdentityOp::Lease { node, ms } => {
                    let free = s.lease.as_ref().is_none_or(|(holder, until, taken)| {
                        holder == node || *until < now || *taken != life
                    });
                    if s.identity.is_some() && free {
                        let until = now + std::time::Duration::from_millis(*ms);
                        s.lease = Some((node.clone(), until, life.clone()));
                    }
                }
                IdentityOp::Force(identity) => {
                    s.identity = Some(Identity {
                        stamp: life.clone(),
                        ..identity.clone()
                    });
                }
            }
            let lease = s
                .lease
                .as_ref()
                .filter(|(_, until, taken)| *until >= now && *taken == life)
                .map(|(holder, _, _)| holder.clone());
            Inspection {
                identity: s.identity.clone(),
                life,
                data_keys: s.slots.len() as u64,
                lease,
            }
        })
    }

    /// Applies a prepare synchronously (the simulation delivers messages itself) for a
    /// caller expecting `cluster` (its own calls: [`MEMORY_CLUSTER`]): the answer and the
    /// acceptor's standing, or the refusal that changed nothing.
    pub fn apply_prepare(
        &self,
        cluster: Option<&str>,
        key: &str,
        ballot: Ballot,
    ) -> Result<(PrepareReply, Standing), AcceptorError> {
        self.with_store(|s| {
            let standing = admit(s, &self.name, cluster)?;
            rules::check_exact(&[ballot]).map_err(AcceptorError::Protocol)?;
            let slot = s.slots.entry(key.to_string()).or_default();
            Ok((rules::prepare(slot, ballot), standing))
        })
    }

    /// Applies a read synchronously: the answer and the acceptor's standing (no slot is
    /// created, nothing changes).
    pub fn apply_read(
        &self,
        cluster: Option<&str>,
        key: &str,
    ) -> Result<(ReadReply, Standing), AcceptorError> {
        self.with_store(|s| {
            let standing = admit(s, &self.name, cluster)?;
            Ok((rules::read(s.slots.get(key)), standing))
        })
    }

    /// Applies an accept synchronously.
    pub fn apply_accept(
        &self,
        cluster: Option<&str>,
        key: &str,
        ballot: Ballot,
        value: Option<&str>,
        next_promise: Ballot,
    ) -> Result<(AcceptReply, Standing), AcceptorError> {
        self.with_store(|s| {
            let standing = admit(s, &self.name, cluster)?;
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
        cluster: Option<&str>,
        keys: &[String],
        ballot: Ballot,
    ) -> Result<(Vec<PrepareReply>, Standing), AcceptorError> {
        self.with_store(|s| {
            let standing = admit(s, &self.name, cluster)?;
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
        cluster: Option<&str>,
        writes: &[(String, Option<String>)],
        ballot: Ballot,
        next_promise: Ballot,
    ) -> Result<(Vec<AcceptReply>, Standing), AcceptorError> {
        self.with_store(|s| {
            let standing = admit(s, &self.name, cluster)?;
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

/// The identity check of every call, against the cluster the caller expects (`None`: the
/// caller's node knows no cluster, so it refuses every call, as a Redis acceptor does).
fn admit(store: &Store, name: &str, cluster: Option<&str>) -> Result<Standing, AcceptorError> {
    let cluster = cluster.ok_or(AcceptorError::Unmarked(
        rules::IdentityRefusal::NotInitialised,
    ))?;
    rules::admit(store.identity.as_ref(), cluster, name, &store.life())
        .map_err(AcceptorError::Unmarked)
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
        let (reply, standing) = self.apply_prepare(Some(MEMORY_CLUSTER), key, ballot)?;
        counted(standing, reply, |r| {
            matches!(r, PrepareReply::Promised { .. })
        })
    }

    async fn read(&self, key: &str) -> Result<ReadReply, AcceptorError> {
        self.check_up()?;
        let (reply, standing) = self.apply_read(Some(MEMORY_CLUSTER), key)?;
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
        let (reply, standing) =
            self.apply_accept(Some(MEMORY_CLUSTER), key, ballot, value, next_promise)?;
        counted(standing, reply, |r| *r == AcceptReply::Accepted)
    }

    async fn prepare_many(&self, keys: &[String], ballot: Ballot) -> Answers<PrepareReply> {
        self.check_up()?;
        let (replies, standing) = self.apply_prepare_many(Some(MEMORY_CLUSTER), keys, ballot)?;
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
        let (replies, standing) =
            self.apply_accept_many(Some(MEMORY_CLUSTER), writes, ballot, next_promise)?;
        Ok(replies
            .into_iter()
            .map(|r| counted(standing, r, |r| *r == AcceptReply::Accepted))
            .collect())
    }
}

#[async_trait]
impl AdminAcceptor for MemoryAcceptor {
    async fn identity(&self, op: IdentityOp) -> Result<Inspection, AcceptorError> {
        self.check_up()?;
        Ok(self.apply_identity(&op))
    }

    /// All keys at once (a memory acceptor has few).
    async fn scan_keys(&self, _cursor: u64) -> Result<(u64, Vec<String>), AcceptorError> {
        self.check_up()?;
        Ok((0, self.keys()))
    }

    /// In-memory acceptors always check [`MEMORY_CLUSTER`].
    fn set_cluster(&self, _cluster: Option<&str>) {}

    fn cluster(&self) -> Option<String> {
        Some(MEMORY_CLUSTER.into())
    }
}
