//! The tokio runtime the node and the load generator run on, chosen the same way for both
//! from `TOKIO_WORKER_THREADS` (behind the `runtime` feature: the other tools need no tokio
//! from this crate).
//!
//! With one runtime thread asked for (`TOKIO_WORKER_THREADS=1`, the compose default: three
//! nodes, three Redis and the load generator share two cores), tokio's current-thread
//! scheduler runs every task on the main thread without the work-stealing machinery a single
//! worker does not use (measured: 1.13x the iterations at 16 connections per node against
//! the multi-thread scheduler with one worker; docs/results-log.md). Otherwise the multi-thread
//! scheduler, one worker per core unless `TOKIO_WORKER_THREADS` says otherwise.

/// Builds the runtime `TOKIO_WORKER_THREADS` asks for (see the module docs).
pub fn from_env() -> std::io::Result<tokio::runtime::Runtime> {
    let one_thread = std::env::var("TOKIO_WORKER_THREADS").is_ok_and(|v| v.trim() == "1");
    if one_thread {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
    }
}
