//! Wiring: builds the acceptors, the proposer, the membership task and the HTTP server from
//! the settings.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use warp::hyper;

use crate::acceptor::redis::RedisAcceptor;
use crate::acceptor::{Acceptor, AdminAcceptor};
use crate::config::{ConfigError, Settings};
use crate::http::{self, App, Limits};
use crate::membership::Membership;
use crate::metrics::Metrics;
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

/// The Redis acceptors of the settings (connecting in the background).
pub fn redis_acceptors(settings: &Settings) -> Result<Vec<Arc<RedisAcceptor>>, ConfigError> {
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
            .map_err(|e| ConfigError::BadAcceptor {
                url: url.clone(),
                reason: e.to_string(),
            })
        })
        .collect()
}

/// Builds the application state (connects to the acceptors and starts the membership task
/// in the background; must be called inside a tokio runtime).
pub fn app(settings: &Settings) -> Result<Arc<App>, ConfigError> {
    let redis = redis_acceptors(settings)?;
    // Every call the proposer makes goes through a counting, timing wrapper (`/metrics`).
    let names: Vec<&str> = redis.iter().map(|a| a.name()).collect();
    let metrics = Arc::new(Metrics::new(&names));
    let acceptors = metrics.timed(
        redis
            .iter()
            .map(|a| a.clone() as Arc<dyn Acceptor>)
            .collect(),
    );
    let proposer = Proposer::new(
        ProposerConfig {
            id: settings.id,
            quorum: settings.quorum(),
            timeout: settings.acceptor_timeout(),
            deadline: settings.request_deadline(),
            cache_bytes: settings.cache_bytes,
            quorum_reads: settings.quorum_reads,
            thrifty: settings.thrifty,
            hedge: settings.hedge(),
            jitter_seed: rand::random(),
            ..ProposerConfig::default()
        },
        acceptors,
    );
    let mut membership = Membership::new(
        redis
            .iter()
            .map(|a| a.clone() as Arc<dyn AdminAcceptor>)
            .collect(),
        settings.quorum(),
        settings.acceptor_timeout(),
    );
    if let Some(path) = &settings.cluster_file {
        membership = membership
            .with_cluster_file(path.into())
            .map_err(|e| ConfigError::ClusterFile(e.to_string()))?;
    }
    let membership = Arc::new(membership);
    tokio::spawn(membership.clone().run(proposer.ballots()));
    let mut app = App::new(
        proposer,
        Limits {
            max_key_bytes: settings.max_key_bytes,
            max_value_bytes: settings.max_value_bytes,
        },
        settings.cluster_members(),
        settings.acceptor_timeout(),
    )
    .with_in_flight(settings.max_in_flight, settings.request_deadline())
    .with_metrics(metrics);
    app.membership = Some(membership);
    Ok(Arc::new(app))
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
