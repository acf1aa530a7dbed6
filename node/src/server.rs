//! Wiring: builds the acceptors, the proposer and the HTTP server from the settings.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::acceptor::redis::RedisAcceptor;
use crate::acceptor::Acceptor;
use crate::config::Settings;
use crate::http::{self, App, Limits};
use crate::proposer::{Proposer, ProposerConfig};

/// Builds the application state (connects to the acceptors in the background).
pub fn app(settings: &Settings) -> Result<Arc<App>, String> {
    let mut acceptors: Vec<Arc<dyn Acceptor>> = Vec::new();
    for url in &settings.acceptors {
        let acceptor = RedisAcceptor::new(url, settings.acceptor_timeout())
            .map_err(|e| format!("bad configuration: field `acceptors`: {url}: {e}"))?;
        acceptors.push(Arc::new(acceptor));
    }
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
    Ok(Arc::new(App {
        proposer,
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
