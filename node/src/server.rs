//! Wiring: builds the acceptors, the proposer, the membership task and the HTTP server from
//! the settings.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::acceptor::redis::RedisAcceptor;
use crate::acceptor::Acceptor;
use crate::config::Settings;
use crate::http::{self, App, Limits};
use crate::membership::Membership;
use crate::proposer::{Proposer, ProposerConfig};

/// The Redis acceptors of the settings (connecting in the background).
pub fn redis_acceptors(settings: &Settings) -> Result<Vec<Arc<RedisAcceptor>>, String> {
    settings
        .acceptors
        .iter()
        .map(|url| {
            RedisAcceptor::with_durability(
                url,
                settings.acceptor_timeout(),
                settings.acceptor_require_fsync,
            )
            .map(Arc::new)
            .map_err(|e| format!("bad configuration: field `acceptors`: {url}: {e}"))
        })
        .collect()
}

/// Builds the application state (connects to the acceptors and starts the membership task
/// in the background; must be called inside a tokio runtime).
pub fn app(settings: &Settings) -> Result<Arc<App>, String> {
    let redis = redis_acceptors(settings)?;
    let acceptors: Vec<Arc<dyn Acceptor>> = redis
        .iter()
        .map(|a| a.clone() as Arc<dyn Acceptor>)
        .collect();
    let proposer = Proposer::new(
        ProposerConfig {
            id: settings.id,
            quorum: settings.quorum(),
            timeout: settings.acceptor_timeout(),
            cache_capacity: settings.cache_capacity,
            unsafe_keep_cache_after_failed_accept: false,
        },
        acceptors,
    );
    let membership = Arc::new(Membership::new(
        redis,
        settings.quorum(),
        settings.acceptor_timeout(),
    ));
    tokio::spawn(membership.clone().run(proposer.ballots()));
    Ok(Arc::new(App {
        proposer,
        membership: Some(membership),
        limits: Limits {
            max_key_bytes: settings.max_key_bytes,
            max_value_bytes: settings.max_value_bytes,
        },
    }))
}

/// Serves the API on `addr` until `shutdown` completes. Returns the bound address.
pub fn serve(
    app: Arc<App>,
    addr: SocketAddr,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(SocketAddr, impl std::future::Future<Output = ()>), String> {
    warp::serve(http::routes(app))
        .try_bind_with_graceful_shutdown(addr, shutdown)
        .map_err(|e| format!("cannot listen on {addr}: {e}"))
}
