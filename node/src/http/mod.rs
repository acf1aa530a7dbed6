//! The etcd-v2 HTTP API (warp): the routes and what every reply carries.
//!
//! Keys (`keys`): `GET`, `PUT` (form body `value=…`, with `prevExist`, `prevIndex` or
//! `prevValue`) and `DELETE` (with `prevIndex` or `prevValue`) on `/v2/keys/{key}`, read from
//! the request by `parse`. Cluster (`cluster`): `GET /v2/members`, `/v2/members/leader`,
//! `/v2/machines`, `/version`, and `/health` (200 `{"health":"true"}` while a quorum of
//! acceptors answers a probe, else 503). `GET /metrics` (`metrics`): the node's counters in
//! Prometheus's text format. Every reply carries `X-Etcd-Index` (see [`App::index`]) and,
//! once the node knows its cluster, `X-Etcd-Cluster-Id`; every error is an [`ApiError`]
//! (`errors`), a JSON body in etcd's shape (`errorCode`, `message`, `cause`, `index`);
//! nothing a client sends can panic the node. The errors hyper answers itself, before any
//! route runs, are rewritten in [`crate::wire`].

mod cluster;
mod errors;
mod keys;
mod metrics;
mod parse;

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use warp::http::{HeaderValue, Method, StatusCode};
use warp::reply::{Reply, Response};
use warp::{Filter, Rejection};

use crate::config::Member;
use crate::metrics::Metrics;
use crate::proposer::Proposer;
use errors::code;
pub use errors::ApiError;

/// Limits applied to client input.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_key_bytes: usize,
    pub max_value_bytes: usize,
}

/// What the handlers share.
pub struct App {
    pub proposer: Proposer,
    pub limits: Limits,
    /// The cluster as `/v2/members` and `/v2/machines` show it (this node included).
    pub members: Vec<Member>,
    /// How long `/health` waits for each acceptor's answer.
    pub probe_timeout: Duration,
    /// See [`App::index`].
    index: AtomicU64,
    /// The acceptors' identities and recovery (`None` for in-memory acceptors in tests).
    pub membership: Option<Arc<crate::membership::Membership>>,
    /// Turns of the keys API (`max_in_flight`): a request holds one from before its body is
    /// read until its answer, so the bodies and states held at once are bounded.
    pub in_flight: Arc<tokio::sync::Semaphore>,
    /// How long a request may wait for a turn (the request deadline).
    pub turn_wait: Duration,
    /// The number of turns (`max_in_flight`).
    pub max_in_flight: usize,
    /// The counters `/metrics` serves.
    pub metrics: Arc<Metrics>,
    /// `X-Etcd-Cluster-Id`, once the membership task knows the cluster (never changes after).
    cluster_id: OnceLock<HeaderValue>,
}

/// The versions `/version` reports: the etcd release whose v2 API this node speaks.
pub const ETCD_SERVER_VERSION: &str = "2.3.8";
pub const ETCD_CLUSTER_VERSION: &str = "2.3.0";
/// Keys requests served at once unless configured (`max_in_flight`).
pub const DEFAULT_MAX_IN_FLIGHT: usize = 64;

impl App {
    pub fn new(
        proposer: Proposer,
        limits: Limits,
        members: Vec<Member>,
        probe_timeout: Duration,
    ) -> Self {
        let names: Vec<&str> = proposer.acceptors().iter().map(|a| a.name()).collect();
        let metrics = Arc::new(Metrics::new(&names));
        App {
            proposer,
            limits,
            members,
            probe_timeout,
            index: AtomicU64::new(0),
            membership: None,
            in_flight: Arc::new(tokio::sync::Semaphore::new(DEFAULT_MAX_IN_FLIGHT)),
            turn_wait: Duration::from_secs(1),
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            metrics,
            cluster_id: OnceLock::new(),
        }
    }

    /// Counts into `metrics` (those whose [`Metrics::timed`] wrapped the proposer's
    /// acceptors) instead of counters of its own.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// Bounds the keys requests served at once to `max` (each waits at most `wait`).
    pub fn with_in_flight(mut self, max: usize, wait: Duration) -> Self {
        self.in_flight = Arc::new(tokio::sync::Semaphore::new(max.max(1)));
        self.max_in_flight = max.max(1);
        self.turn_wait = wait;
        self
    }

    /// The `X-Etcd-Index` of every reply: the highest modifiedIndex this node has read or
    /// written since it started (tombstones of deleted keys included). etcd's index is one
    /// counter for the whole cluster; here every key counts its own writes, so this is only a
    /// lower bound of the index of the next write this node makes, never a cluster-wide
    /// position (0 until the node has touched a key).
    pub fn index(&self) -> u64 {
        self.index.load(Ordering::Relaxed)
    }

    fn saw_index(&self, index: u64) {
        self.index.fetch_max(index, Ordering::Relaxed);
    }

    /// `X-Etcd-Cluster-Id`: the cluster id the acceptors' identity records carry (16 hex
    /// digits, as etcd's), the same on every node of the cluster; `None` until the membership
    /// task has found or made the cluster (and always with in-memory acceptors). python-etcd
    /// warns on a reply without it and raises once when it changes.
    pub fn cluster_id(&self) -> Option<HeaderValue> {
        if let Some(id) = self.cluster_id.get() {
            return Some(id.clone());
        }
        let cluster = self.membership.as_ref()?.view().cluster?;
        let header = HeaderValue::from_str(&cluster).ok()?;
        Some(self.cluster_id.get_or_init(|| header).clone())
    }

    /// This node's entry in [`App::members`].
    fn me(&self) -> Option<&Member> {
        self.members.iter().find(|m| m.id == self.proposer.id())
    }
}

/// All routes, with rejections turned into JSON errors and `X-Etcd-Index` (and
/// `X-Etcd-Cluster-Id`) on every reply.
pub fn routes(app: Arc<App>) -> impl Filter<Extract = (Response,), Error = Infallible> + Clone {
    let with_app = {
        let app = app.clone();
        warp::any().map(move || app.clone())
    };
    keys::route(&app, with_app.clone())
        .or(cluster::routes(with_app.clone()))
        .unify()
        .or(get_route(
            warp::path!("metrics"),
            with_app.clone(),
            metrics::answer,
        ))
        .unify()
        .recover(rejection)
        .unify()
        .and(with_app)
        .map(|mut response: Response, app: Arc<App>| {
            let headers = response.headers_mut();
            headers.insert("x-etcd-index", HeaderValue::from(app.index()));
            if let Some(id) = app.cluster_id() {
                headers.insert("x-etcd-cluster-id", id);
            }
            response
        })
}

/// A GET-only route answering from the app alone (405 for any other method).
fn get_route<P>(
    path: P,
    with_app: impl Filter<Extract = (Arc<App>,), Error = Infallible> + Clone + Send + Sync + 'static,
    answer: fn(&App) -> Response,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone
where
    P: Filter<Extract = (), Error = Rejection> + Clone + Send + Sync + 'static,
{
    path.and(warp::method())
        .and(with_app)
        .map(move |method: Method, app: Arc<App>| {
            if method == Method::GET {
                answer(&app)
            } else {
                ApiError::method_not_allowed("GET").into_response()
            }
        })
}

/// Rejections that no route turned into a reply: an unknown path (etcd's 404 page), and
/// whatever warp refuses before a handler runs (a header it cannot read, …) as a 400.
async fn rejection(rejection: Rejection) -> Result<Response, Infallible> {
    let error = if rejection.is_not_found() {
        ApiError::without_code(StatusCode::NOT_FOUND, "404 page not found")
    } else if rejection.find::<warp::reject::MethodNotAllowed>().is_some() {
        ApiError::method_not_allowed("GET, PUT, DELETE")
    } else if rejection.find::<warp::reject::PayloadTooLarge>().is_some() {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            code::INVALID_FIELD,
            "request body too large",
            "",
        )
    } else {
        ApiError::bad_request(
            code::INVALID_FORM,
            format!("bad request: {rejection:?}"),
            "",
        )
    };
    Ok(error.into_response())
}
