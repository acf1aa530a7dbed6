//! Wiring: builds the acceptors, the proposer and the HTTP server from the settings.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use warp::hyper;

use crate::acceptor::redis::RedisAcceptor;
use crate::acceptor::Acceptor;
use crate::config::{ConfigError, Settings};
use crate::http::{self, App, Limits};
use crate::proposer::{Proposer, ProposerConfig};
use crate::wire::EtcdErrors;

/// Why the server cannot start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// Builds the application state (connects to the acceptors in the background).
pub fn app(settings: &Settings) -> Result<Arc<App>, ConfigError> {
    let mut acceptors: Vec<Arc<dyn Acceptor>> = Vec::new();
    for url in &settings.acceptors {
        let acceptor = RedisAcceptor::new(url, settings.acceptor_timeout()).map_err(|e| {
            ConfigError::BadAcceptor {
                url: url.clone(),
                reason: e.to_string(),
            }
        })?;
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
    Ok(Arc::new(App::new(
        proposer,
        Limits {
            max_key_bytes: settings.max_key_bytes,
            max_value_bytes: settings.max_value_bytes,
        },
        settings.cluster_members(),
        settings.acceptor_timeout(),
    )))
}

/// Serves the API on `addr` until `shutdown` completes (then lets open requests finish).
/// Returns the bound address. Must be called inside a tokio runtime.
pub fn serve(
    app: Arc<App>,
    addr: SocketAddr,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(SocketAddr, impl std::future::Future<Output = ()>), ServeError> {
    let listen = |source| ServeError::Listen { addr, source };
    let listener = std::net::TcpListener::bind(addr).map_err(listen)?;
    listener.set_nonblocking(true).map_err(listen)?;
    let listener = tokio::net::TcpListener::from_std(listener).map_err(listen)?;
    let bound = listener.local_addr().map_err(listen)?;

    // Each connection is wrapped so that hyper's own empty error replies go out as JSON.
    let wrap_app = app.clone();
    let incoming = futures::stream::unfold(listener, move |listener| {
        let app = wrap_app.clone();
        async move {
            loop {
                match listener.accept().await {
                    Ok((stream, _)) => {
                        let _ = stream.set_nodelay(true);
                        let connection = EtcdErrors::new(stream, app);
                        return Some((Ok::<_, std::io::Error>(connection), listener));
                    }
                    // e.g. out of file descriptors: keep serving the open connections
                    Err(e) => {
                        log::warn!("accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
        }
    });
    let service = warp::service(http::routes(app));
    let make_service = hyper::service::make_service_fn(move |_| {
        let service = service.clone();
        async move { Ok::<_, Infallible>(service) }
    });
    let server = hyper::Server::builder(hyper::server::accept::from_stream(incoming))
        .http1_only(true)
        .serve(make_service)
        .with_graceful_shutdown(shutdown);
    Ok((bound, async move {
        if let Err(e) = server.await {
            log::error!("HTTP server stopped: {e}");
        }
    }))
}
