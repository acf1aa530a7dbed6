//! Perseus node: a Rust re-implementation of Gryadka, a leaderless key-value store that runs
//! CASPaxos over Redis acceptors, served through an etcd-v2-style keys API.
//!
//! # Layout
//!
//! A one-way stack, each floor using only those below it:
//!
//! - [`server`]: the wiring (the acceptors, the proposer, the membership task and the HTTP
//!   server from the [`config`] settings).
//! - [`http`]: the etcd-v2 API (routes, parsing, replies; [`wire`] the replies hyper writes by
//!   itself) over [`record`], a key's etcd view and the writes as pure functions.
//! - [`proposer`]: CASPaxos's `change(key, f)` and the quorum read, over [`quorum`] (counting
//!   answers, pure), [`ballot`] and [`record`]'s `Lineage` (how a stored state names the
//!   writes it was built upon, which resolves a write of unknown outcome).
//! - [`membership`]: which acceptors count (identities, initialisation, lost or rolled-back
//!   data) and [`recovery`], the catch-up round that brings a recovering acceptor level.
//! - [`acceptor`]: the trait the proposer talks through, its Redis implementation (Lua
//!   scripts) and an in-memory one pinned to the same rules.
//! - [`testing`] (feature `testing`): real `redis-server` processes and in-process nodes for
//!   the integration tests.

pub mod acceptor;
pub mod ballot;
pub mod config;
pub mod http;
pub mod membership;
pub mod metrics;
pub mod proposer;
pub mod quorum;
pub mod record;
pub mod recovery;
pub mod server;
#[cfg(feature = "testing")]
pub mod testing;
pub mod wire;
