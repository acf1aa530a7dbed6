//! The cluster endpoints etcd's clients read: `/v2/members`, `/v2/members/leader`,
//! `/v2/machines`, `/version`, and `/health` (the acceptors probed right now, with the
//! membership state of each).

use std::convert::Infallible;
use std::sync::Arc;

use perseus_model::health::{AcceptorHealth, AcceptorState, Health, Verdict};
use serde_json::{json, Value};
use warp::http::{Method, StatusCode};
use warp::reply::{self, Response};
use warp::{Filter, Rejection, Reply};

use super::{get_route, ApiError, App, ETCD_CLUSTER_VERSION, ETCD_SERVER_VERSION};
use crate::acceptor::AcceptorError;
use crate::config::Member;

/// Every cluster endpoint (GET only; 405 for another method).
pub(super) fn routes(
    with_app: impl Filter<Extract = (Arc<App>,), Error = Infallible> + Clone + Send + Sync + 'static,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let members = get_route(warp::path!("v2" / "members"), with_app.clone(), |app| {
        let list: Vec<Value> = app.members.iter().map(member_json).collect();
        reply::json(&json!({ "members": list })).into_response()
    });
    let leader = get_route(
        warp::path!("v2" / "members" / "leader"),
        with_app.clone(),
        |app| match app.me() {
            // No leader in CASPaxos: every node proposes. The node asked answers with itself,
            // so a client that goes to "the leader" stays where it is.
            Some(me) => reply::json(&member_json(me)).into_response(),
            None => ApiError::internal("/v2/members/leader", "this node is not in `members`")
                .into_response(),
        },
    );
    let machines = get_route(warp::path!("v2" / "machines"), with_app.clone(), |app| {
        let urls: Vec<&str> = app
            .members
            .iter()
            .flat_map(|m| m.client_urls.iter().map(String::as_str))
            .collect();
        reply::with_header(urls.join(", "), "content-type", "text/plain; charset=utf-8")
            .into_response()
    });
    let version = get_route(warp::path!("version"), with_app.clone(), |_| {
        reply::json(&json!({
            "etcdserver": ETCD_SERVER_VERSION,
            "etcdcluster": ETCD_CLUSTER_VERSION,
            "perseus": env!("CARGO_PKG_VERSION"),
        }))
        .into_response()
    });
    let health = warp::path!("health")
        .and(warp::method())
        .and(with_app.clone())
        .then(|method: Method, app: Arc<App>| async move {
            if method != Method::GET {
                return ApiError::method_not_allowed("GET").into_response();
            }
            health(&app).await
        });
    members
        .or(leader)
        .unify()
        .or(machines)
        .unify()
        .or(version)
        .unify()
        .or(health)
        .unify()
}

/// A member as etcd's members API shows it (ids in hex; no peer URLs: nodes do not talk to
/// each other, only to the acceptors).
fn member_json(member: &Member) -> Value {
    json!({
        "id": format!("{:x}", member.id),
        "name": member.name(),
        "peerURLs": [],
        "clientURLs": member.client_urls,
    })
}

/// `GET /health`: etcd's `{"health":"true"}` while a quorum of acceptors answers a probe
/// right now (each bounded by the acceptor timeout) and, with identities, a quorum of members
/// (see `membership`), else 503 `{"health":"false"}`; with the probe's answer and the
/// membership state per acceptor.
async fn health(app: &App) -> Response {
    let timeout = app.probe_timeout;
    let probes = app.proposer.acceptors().iter().map(|a| async move {
        let answer = match tokio::time::timeout(timeout, a.ping()).await {
            Ok(answer) => answer,
            Err(_) => Err(AcceptorError::Timeout),
        };
        (a.name().to_string(), answer)
    });
    let answers = futures::future::join_all(probes).await;
    let answering = answers.iter().filter(|(_, a)| a.is_ok()).count();
    // With identities: only members count (a recovering, wiped or foreign acceptor answers
    // pings but counts toward no quorum); the state per acceptor is the membership task's
    // last inspection (at most a second old).
    let view = app.membership.as_ref().map(|m| m.view());
    let state = |name: &str| -> Option<AcceptorState> {
        let view = view.as_ref()?;
        let a = view.acceptors.iter().find(|a| a.name == name)?;
        Some(a.state)
    };
    let counting = answers
        .iter()
        .filter(|(name, a)| {
            a.is_ok() && (view.is_none() || state(name) == Some(AcceptorState::Member))
        })
        .count();
    let healthy = counting >= app.proposer.quorum()
        && view.as_ref().is_none_or(|v| v.verdict == Verdict::Serving);
    let acceptors: Vec<AcceptorHealth> = answers
        .iter()
        .map(|(name, answer)| AcceptorHealth {
            name: name.clone(),
            answers: answer.is_ok(),
            error: answer.as_ref().err().map(|e| e.to_string()),
            state: state(name),
        })
        .collect();
    let body = Health {
        health: if healthy { "true" } else { "false" }.into(),
        id: Some(app.proposer.id()),
        incarnation: Some(app.proposer.incarnation()),
        quorum: Some(app.proposer.quorum()),
        answering: Some(answering),
        // The cluster id, the verdict (serving, waiting, data-loss) with its reason, and per
        // acceptor: member, recovering (with catch-up progress), unmarked, foreign, unreachable.
        membership: view,
        acceptors,
    };
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    reply::with_status(reply::json(&body), status).into_response()
}
