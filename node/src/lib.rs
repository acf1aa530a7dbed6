//! Perseus node: a Rust re-implementation of Gryadka, a leaderless key-value store that runs
//! CASPaxos over Redis acceptors, served through an etcd-v2-style keys API.

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
