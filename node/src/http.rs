//! The etcd-v2 HTTP API (warp): routes, request parsing and JSON replies.
//!
//! Keys: `GET`, `PUT` (form body `value=…`, with `prevExist`, `prevIndex` or `prevValue`) and
//! `DELETE` (with `prevIndex` or `prevValue`) on `/v2/keys/{key}`. Cluster: `GET /v2/members`,
//! `/v2/members/leader`, `/v2/machines`, `/version`, and `/health` (200 `{"health":"true"}`
//! while a quorum of acceptors answers a probe, else 503). Every reply carries
//! `X-Etcd-Index` (see [`App::index`]); every error is an [`ApiError`], a JSON body in etcd's
//! shape (`errorCode`, `message`, `cause`, `index`); nothing a client sends can panic the node.
//! The errors hyper answers itself, before any route runs, are rewritten in
//! [`crate::wire`].

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use perseus_model::health::{AcceptorHealth, AcceptorState, Health, Verdict};
use serde_json::{json, Value};
use warp::http::{HeaderValue, Method, StatusCode};
use warp::hyper::body::Bytes;
use warp::path::Tail;
use warp::reply::{self, Response};
use warp::{Filter, Rejection, Reply};

use crate::acceptor::AcceptorError;
use crate::config::Member;
use crate::proposer::{Proposer, ProposerError};
use crate::record::{self, Record, Refusal, Write};

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
        App {
            proposer,
            limits,
            members,
            probe_timeout,
            index: AtomicU64::new(0),
            membership: None,
            in_flight: Arc::new(tokio::sync::Semaphore::new(DEFAULT_MAX_IN_FLIGHT)),
            turn_wait: Duration::from_secs(1),
        }
    }

    /// Bounds the keys requests served at once to `max` (each waits at most `wait`).
    pub fn with_in_flight(mut self, max: usize, wait: Duration) -> Self {
        self.in_flight = Arc::new(tokio::sync::Semaphore::new(max.max(1)));
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

    /// This node's entry in [`App::members`].
    fn me(&self) -> Option<&Member> {
        self.members.iter().find(|m| m.id == self.proposer.id())
    }
}

/// etcd v2 error codes used here.
mod code {
    pub const KEY_NOT_FOUND: u32 = 100;
    pub const COMPARE_FAILED: u32 = 101;
    pub const NODE_EXIST: u32 = 105;
    pub const ROOT_READ_ONLY: u32 = 107;
    pub const VALUE_REQUIRED: u32 = 200;
    pub const PREV_VALUE_REQUIRED: u32 = 201;
    pub const INDEX_NAN: u32 = 203;
    pub const INVALID_FIELD: u32 = 209;
    pub const INVALID_FORM: u32 = 210;
    pub const UNAVAILABLE: u32 = 300;
    /// Perseus's own (etcd has no such state): a majority of acceptors lost data, or may
    /// have; nothing is served until the operator's `node accept-loss`.
    pub const DATA_LOSS: u32 = 310;
    /// Perseus's own: the acceptors belong to a cluster made with another acceptor set.
    pub const MISCONFIGURED: u32 = 311;
    pub const INTERNAL: u32 = 400;
}

/// An error reply in etcd's JSON shape. `code` is etcd's errorCode; errors etcd answers
/// without one (an unknown path, a wrong method, a request hyper cannot parse) leave it out,
/// as etcd does, rather than claim a code that means something else.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: Option<u32>,
    pub message: String,
    pub cause: String,
    pub index: u64,
    /// 503 only: `(reason, outcome)`, e.g. `("conflict", "not applied")`.
    pub unavailable: Option<(&'static str, &'static str)>,
    /// 405 only: the methods the path takes.
    pub allow: Option<&'static str>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: u32, message: impl Into<String>, cause: &str) -> Self {
        ApiError {
            status,
            code: Some(code),
            message: message.into(),
            cause: cause.to_string(),
            index: 0,
            unavailable: None,
            allow: None,
        }
    }

    fn bad_request(code: u32, message: impl Into<String>, cause: &str) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message, cause)
    }

    fn with_index(mut self, index: u64) -> Self {
        self.index = index;
        self
    }

    /// An error etcd answers without an errorCode (its body is plain text there).
    pub fn without_code(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            code: None,
            ..Self::new(status, 0, message, "")
        }
    }

    fn method_not_allowed(allow: &'static str) -> Self {
        ApiError {
            allow: Some(allow),
            ..Self::without_code(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed")
        }
    }

    fn key_not_found(key: &str, index: u64) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            code::KEY_NOT_FOUND,
            "Key not found",
            key,
        )
        .with_index(index)
    }

    /// 503: every turn (`max_in_flight`) stayed taken for the request deadline; nothing was
    /// read or applied.
    fn busy(cause: &str) -> Self {
        ApiError {
            unavailable: Some(("busy", "not applied")),
            ..Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                code::UNAVAILABLE,
                "too many requests in flight (max_in_flight); nothing was applied",
                cause,
            )
        }
    }

    /// 503 for every keys request while the membership verdict forbids serving (data loss,
    /// misconfiguration): the reason is the verdict's, nothing was read or applied.
    fn refused_by_membership(app: &App, cause: &str) -> Option<Self> {
        let (verdict, message) = app.membership.as_ref()?.verdict();
        let (code, reason) = match verdict {
            Verdict::DataLoss => (code::DATA_LOSS, "data loss"),
            Verdict::Misconfigured => (code::MISCONFIGURED, "misconfigured"),
            _ => return None,
        };
        Some(ApiError {
            unavailable: Some((reason, "not applied")),
            ..Self::new(StatusCode::SERVICE_UNAVAILABLE, code, message, cause)
        })
    }

    fn internal(key: &str, message: &str) -> Self {
        log::error!("{key}: {message}");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            code::INTERNAL,
            message,
            key,
        )
    }

    /// The JSON body.
    pub fn body(&self) -> Value {
        let mut body = json!({"message": self.message, "cause": self.cause, "index": self.index});
        if let Some(code) = self.code {
            body["errorCode"] = json!(code);
        }
        if let Some((reason, outcome)) = self.unavailable {
            body["reason"] = json!(reason);
            body["outcome"] = json!(outcome);
        }
        body
    }
}

impl Reply for ApiError {
    fn into_response(self) -> Response {
        let mut response =
            reply::with_status(reply::json(&self.body()), self.status).into_response();
        if let Some(allow) = self.allow {
            response
                .headers_mut()
                .insert("allow", HeaderValue::from_static(allow));
        }
        response
    }
}

impl From<Refusal> for ApiError {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            // the key's index is not known here; the handler adds the node's
            Refusal::NotFound => Self::new(
                StatusCode::NOT_FOUND,
                code::KEY_NOT_FOUND,
                "Key not found",
                "",
            ),
            Refusal::AlreadyExists { index } => Self::new(
                StatusCode::PRECONDITION_FAILED,
                code::NODE_EXIST,
                "Key already exists",
                "",
            )
            .with_index(index),
            Refusal::CompareFailed { cause, index } => Self::new(
                StatusCode::PRECONDITION_FAILED,
                code::COMPARE_FAILED,
                "Compare failed",
                &cause,
            )
            .with_index(index),
            Refusal::Corrupt(why) => {
                Self::internal("", &format!("stored state is not a record: {why}"))
            }
        }
    }
}

/// A refusal about `key`: the cause names the key unless etcd names the comparison.
fn refused(key: &str, refusal: Refusal, index: u64) -> ApiError {
    let mut e = ApiError::from(refusal);
    if e.cause.is_empty() {
        e.cause = key.to_string();
    }
    if e.code == Some(code::KEY_NOT_FOUND) {
        e.index = index;
    }
    e
}

/// 503: no quorum, timeouts or a lost ballot race, saying which and whether the write may
/// still have happened.
fn unavailable(key: &str, e: &ProposerError) -> ApiError {
    ApiError {
        unavailable: Some((
            if e.lost_race() {
                "conflict"
            } else if e.phase().is_none() {
                "busy"
            } else {
                "no quorum"
            },
            if e.outcome_unknown() {
                "unknown"
            } else {
                "not applied"
            },
        )),
        ..ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            code::UNAVAILABLE,
            e.to_string(),
            key,
        )
    }
}

/// All routes, with rejections turned into JSON errors and `X-Etcd-Index` on every reply.
pub fn routes(app: Arc<App>) -> impl Filter<Extract = (Response,), Error = Infallible> + Clone {
    // The form body carries the value percent-encoded (up to 3 bytes per byte) and a few
    // short fields; anything longer is refused before it is read.
    let body_limit = app
        .limits
        .max_value_bytes
        .saturating_mul(3)
        .saturating_add(4096);
    let with_app = {
        let app = app.clone();
        warp::any().map(move || app.clone())
    };

    // Path, then the method inside the handler: an unknown path is a 404 and a wrong method
    // a 405 naming the methods the path takes.
    let keys =
        warp::path!("v2" / "keys" / ..)
            .and(warp::method())
            .and(warp::path::tail())
            .and(warp::query::raw().or(warp::any().map(String::new)).unify())
            .and(warp::header::optional::<String>("content-type"))
            .and(warp::body::stream())
            .and(with_app.clone())
            .then(
                move |method: Method,
                      tail: Tail,
                      query: String,
                      content_type,
                      body,
                      app: Arc<App>| async move {
                    // A turn first (bounded wait), then the body: what the node holds at
                    // once is bounded by `max_in_flight` requests.
                    let turn =
                        tokio::time::timeout(app.turn_wait, app.in_flight.clone().acquire_owned())
                            .await;
                    let Ok(Ok(_turn)) = turn else {
                        return ApiError::busy(tail.as_str()).into_response();
                    };
                    if let Some(refusal) = ApiError::refused_by_membership(&app, tail.as_str()) {
                        return refusal.into_response();
                    }
                    let result = match method {
                        Method::GET => get_key(&tail, &query, &app).await,
                        Method::PUT => match read_limited(body, body_limit).await {
                            Ok(body) => put_key(&tail, &query, content_type, body, &app).await,
                            Err(e) => Err(e),
                        },
                        Method::DELETE => delete_key(&tail, &query, &app).await,
                        _ => Err(ApiError::method_not_allowed("GET, PUT, DELETE")),
                    };
                    result.unwrap_or_else(Reply::into_response)
                },
            );

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

    keys.or(members)
        .unify()
        .or(leader)
        .unify()
        .or(machines)
        .unify()
        .or(version)
        .unify()
        .or(health)
        .unify()
        .recover(rejection)
        .unify()
        .and(with_app)
        .map(|mut response: Response, app: Arc<App>| {
            response
                .headers_mut()
                .insert("x-etcd-index", HeaderValue::from(app.index()));
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

/// Reads a request body of at most `limit` bytes (413 beyond), with or without a
/// Content-Length header.
async fn read_limited<S, B>(body: S, limit: usize) -> Result<Bytes, ApiError>
where
    S: futures::Stream<Item = Result<B, warp::Error>>,
    B: warp::Buf,
{
    use futures::StreamExt;
    let mut body = std::pin::pin!(body);
    let mut bytes = Vec::new();
    while let Some(chunk) = body.next().await {
        let mut chunk = chunk.map_err(|e| {
            ApiError::bad_request(code::INVALID_FORM, format!("cannot read the body: {e}"), "")
        })?;
        if bytes.len() + chunk.remaining() > limit {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                code::INVALID_FIELD,
                format!("request body over {limit} bytes"),
                "",
            ));
        }
        while chunk.has_remaining() {
            let piece = chunk.chunk();
            bytes.extend_from_slice(piece);
            let n = piece.len();
            chunk.advance(n);
        }
    }
    Ok(Bytes::from(bytes))
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

/// Parses `a=1&b=2` into a map; a repeated field keeps its first value. Like etcd (Go's
/// ParseQuery), a malformed percent-escape is an error, and so is text that is not UTF-8.
fn parse_form(raw: &[u8]) -> Result<HashMap<String, String>, String> {
    check_escapes(raw)?;
    for piece in raw.split(|b| *b == b'&') {
        let decoded: Vec<u8> = percent_decode(piece, true);
        if std::str::from_utf8(&decoded).is_err() {
            return Err("the form is not UTF-8 text".into());
        }
    }
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_bytes(raw).map_err(|e| e.to_string())?;
    let mut map = HashMap::new();
    for (k, v) in pairs {
        map.entry(k).or_insert(v);
    }
    Ok(map)
}

/// Every `%` must start a two-digit hex escape.
fn check_escapes(raw: &[u8]) -> Result<(), String> {
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'%' {
            let escape = raw.get(i + 1..i + 3);
            if !escape.is_some_and(|e| e.iter().all(u8::is_ascii_hexdigit)) {
                return Err(format!("invalid URL escape at byte {i}"));
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    Ok(())
}

/// Percent-decodes `raw` (escapes already checked); in a form `+` is a space, in a path not.
fn percent_decode(raw: &[u8], plus_as_space: bool) -> Vec<u8> {
    let hex = |b: u8| (b as char).to_digit(16).unwrap_or(0) as u8;
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'%' if i + 2 < raw.len() => {
                out.push(hex(raw[i + 1]) * 16 + hex(raw[i + 2]));
                i += 3;
            }
            b'+' if plus_as_space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

fn parse_bool(params: &HashMap<String, String>, name: &str) -> Result<Option<bool>, ApiError> {
    // The spellings Go's strconv.ParseBool (and so etcd) accepts.
    match params.get(name).map(String::as_str) {
        None => Ok(None),
        Some("1" | "t" | "T" | "true" | "TRUE" | "True") => Ok(Some(true)),
        Some("0" | "f" | "F" | "false" | "FALSE" | "False") => Ok(Some(false)),
        Some(other) => Err(ApiError::bad_request(
            code::INVALID_FIELD,
            format!("Invalid field: {name} must be true or false, got {other:?}"),
            name,
        )),
    }
}

/// Percent-decodes a URL path and cleans it as etcd does (Go's path.Clean): `/a//b/./c/`
/// becomes `/a/b/c`, `..` climbs (never above the root).
fn clean_key(raw: &str) -> Result<String, String> {
    check_escapes(raw.as_bytes()).map_err(|e| format!("key: {e}"))?;
    let decoded = String::from_utf8(percent_decode(raw.as_bytes(), false))
        .map_err(|_| "the key is not UTF-8 text".to_string())?;
    let mut parts: Vec<&str> = Vec::new();
    for part in decoded.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            part => parts.push(part),
        }
    }
    Ok(format!("/{}", parts.join("/")))
}

/// The key from the path tail, as etcd shows it (`/k`), checked against the limits.
fn parse_key(tail: &Tail, limits: Limits) -> Result<String, ApiError> {
    let key = clean_key(tail.as_str()).map_err(|e| {
        ApiError::bad_request(code::INVALID_FIELD, format!("Invalid field: {e}"), "key")
    })?;
    if key == "/" {
        return Err(ApiError::bad_request(
            code::INVALID_FIELD,
            "Invalid field: a key is required (/v2/keys/{key}); directories are not supported",
            "/",
        ));
    }
    if key.len() > limits.max_key_bytes {
        return Err(ApiError::bad_request(
            code::INVALID_FIELD,
            format!(
                "Invalid field: key is {} bytes, the limit is {}",
                key.len(),
                limits.max_key_bytes
            ),
            "key",
        ));
    }
    Ok(key)
}

/// Parses the query string.
fn parse_query(query: &str, key: &str) -> Result<HashMap<String, String>, ApiError> {
    parse_form(query.as_bytes())
        .map_err(|e| ApiError::bad_request(code::INVALID_FORM, format!("Invalid query: {e}"), key))
}

/// Options etcd accepts on a GET that a single-key store cannot honour are refused, the
/// harmless ones are checked for well-formedness and otherwise ignored (reads here are
/// always linearizable, as `quorum=true`).
fn check_get_params(params: &HashMap<String, String>) -> Result<(), ApiError> {
    for name in ["quorum", "recursive", "sorted", "stream"] {
        parse_bool(params, name)?;
    }
    if parse_bool(params, "wait")? == Some(true) {
        return Err(ApiError::bad_request(
            code::INVALID_FIELD,
            "Invalid field: wait=true (watches) is not supported",
            "wait",
        ));
    }
    Ok(())
}

async fn get_key(tail: &Tail, query: &str, app: &App) -> Result<Response, ApiError> {
    let key = parse_key(tail, app.limits)?;
    check_get_params(&parse_query(query, &key)?)?;
    let state = app
        .proposer
        .read(&key)
        .await
        .map_err(|e| unavailable(&key, &e))?;
    app.saw_index(record::index_of(state.as_deref()));
    match record::current(state.as_deref()) {
        Err(refusal) => Err(refused(&key, refusal, app.index())),
        Ok(None) => Err(ApiError::key_not_found(&key, app.index())),
        Ok(Some(record)) => Ok(reply::json(
            &json!({"action": "get", "node": node_json(&key, &record)}),
        )
        .into_response()),
    }
}

/// `prevIndex` (0 = no condition, as etcd reads it) and `prevValue` (never empty).
fn parse_conditions(
    key: &str,
    params: &HashMap<String, String>,
) -> Result<(Option<u64>, Option<String>), ApiError> {
    let prev_index = match params.get("prevIndex") {
        None => None,
        Some(raw) => match raw.parse::<u64>() {
            Ok(0) => None,
            Ok(n) => Some(n),
            Err(_) => {
                return Err(ApiError::bad_request(
                    code::INDEX_NAN,
                    format!("The given index in POST form is not a number: prevIndex={raw:?}"),
                    "prevIndex",
                ))
            }
        },
    };
    let prev_value = params.get("prevValue").cloned();
    if prev_value.as_deref() == Some("") {
        return Err(ApiError::bad_request(
            code::PREV_VALUE_REQUIRED,
            "PrevValue is Required in POST form",
            key,
        ));
    }
    Ok((prev_index, prev_value))
}

/// Refuses the options of directories and TTLs (out of scope) wherever they appear.
fn refuse_unsupported(params: &[&HashMap<String, String>], names: &[&str]) -> Result<(), ApiError> {
    for name in names {
        if params.iter().any(|p| p.contains_key(*name)) {
            return Err(ApiError::bad_request(
                code::INVALID_FIELD,
                format!("Invalid field: {name} is not supported by this store"),
                name,
            ));
        }
    }
    Ok(())
}

/// Turns a PUT's query and form into a [`Write`], or a 4xx reply.
fn parse_write(
    key: &str,
    query: &HashMap<String, String>,
    form: &HashMap<String, String>,
    limits: Limits,
) -> Result<Write, ApiError> {
    refuse_unsupported(&[query, form], &["ttl", "dir", "refresh"])?;
    let field = |name: &str| form.get(name).or_else(|| query.get(name)).cloned();
    let Some(value) = field("value") else {
        return Err(ApiError::bad_request(
            code::VALUE_REQUIRED,
            "Value is Required in POST form",
            key,
        ));
    };
    if value.len() > limits.max_value_bytes {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            code::INVALID_FIELD,
            format!(
                "Invalid field: value is {} bytes, the limit is {}",
                value.len(),
                limits.max_value_bytes
            ),
            key,
        ));
    }
    let mut both = query.clone();
    both.extend(form.iter().map(|(k, v)| (k.clone(), v.clone())));
    let prev_exist = parse_bool(&both, "prevExist")?;
    let (prev_index, prev_value) = parse_conditions(key, &both)?;
    let conditional = prev_index.is_some() || prev_value.is_some();
    // As etcd decides: prevExist=false creates whatever else is given.
    match (prev_exist, conditional) {
        (Some(false), _) => Ok(Write::Create { value }),
        (_, true) => Ok(Write::CompareAndSwap {
            value,
            prev_index,
            prev_value,
        }),
        (Some(true), false) => Ok(Write::Update { value }),
        (None, false) => Ok(Write::Set { value }),
    }
}

/// Turns a DELETE's query into a [`Write::Delete`]. `prevExist` and `recursive` are checked
/// and, as etcd does for a single key, change nothing; `dir` is refused.
fn parse_delete(key: &str, query: &HashMap<String, String>) -> Result<Write, ApiError> {
    refuse_unsupported(&[query], &["dir"])?;
    parse_bool(query, "prevExist")?;
    parse_bool(query, "recursive")?;
    let (prev_index, prev_value) = parse_conditions(key, query)?;
    Ok(Write::Delete {
        prev_index,
        prev_value,
    })
}

fn is_form(content_type: Option<&str>) -> bool {
    content_type.is_none_or(|ct| {
        ct.split(';').next().is_some_and(|t| {
            t.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
    })
}

async fn put_key(
    tail: &Tail,
    query: &str,
    content_type: Option<String>,
    body: Bytes,
    app: &App,
) -> Result<Response, ApiError> {
    let key = parse_key(tail, app.limits)?;
    if !body.is_empty() && !is_form(content_type.as_deref()) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            code::INVALID_FORM,
            "the body must be a form: Content-Type: application/x-www-form-urlencoded, value=...",
            &key,
        ));
    }
    let query = parse_query(query, &key)?;
    let form = parse_form(&body).map_err(|e| {
        ApiError::bad_request(code::INVALID_FORM, format!("Invalid form: {e}"), &key)
    })?;
    let write = parse_write(&key, &query, &form, app.limits)?;
    change(&key, &write, app).await
}

async fn delete_key(tail: &Tail, query: &str, app: &App) -> Result<Response, ApiError> {
    if clean_key(tail.as_str()).as_deref() == Ok("/") {
        return Err(ApiError::bad_request(
            code::ROOT_READ_ONLY,
            "Root is read only",
            "/",
        ));
    }
    let key = parse_key(tail, app.limits)?;
    let write = parse_delete(&key, &parse_query(query, &key)?)?;
    change(&key, &write, app).await
}

/// Runs `write` as one CASPaxos change of `key` and answers as etcd does: the new node (201
/// when the key did not exist before, else 200) and the previous one as `prevNode`.
async fn change(key: &str, write: &Write, app: &App) -> Result<Response, ApiError> {
    // One id per request: every attempt of this write carries it.
    let write_id = app.proposer.write_id();
    let change = app
        .proposer
        .change(key, |state| {
            record::apply(write, state, &write_id).map(|record| Some(record.encode()))
        })
        .await
        .map_err(|e| unavailable(key, &e))?;
    app.saw_index(record::index_of(change.before.as_deref()));
    let after = match change.outcome {
        Ok(Some(after)) => after,
        Ok(None) => return Err(ApiError::internal(key, "a write produced no record")),
        Err(refusal) => return Err(refused(key, refusal, app.index())),
    };
    let (Ok(after), Ok(before)) = (
        Record::decode(&after),
        record::current(change.before.as_deref()),
    ) else {
        return Err(ApiError::internal(
            key,
            "a stored record could not be decoded",
        ));
    };
    app.saw_index(after.modified);
    let mut body = json!({"action": write.action(), "node": node_json(key, &after)});
    if let Some(before) = &before {
        body["prevNode"] = node_json(key, before);
    }
    let status = if before.is_none() {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(reply::with_status(reply::json(&body), status).into_response())
}

/// A node as etcd shows it; a deleted one (the `node` of a delete) has no value.
fn node_json(key: &str, record: &Record) -> Value {
    let mut node = json!({
        "key": key,
        "modifiedIndex": record.modified,
        "createdIndex": record.created,
    });
    if !record.deleted {
        node["value"] = json!(record.value);
    }
    node
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_decoded_and_cleaned_like_etcd() {
        assert_eq!(clean_key("a%20b").as_deref(), Ok("/a b"));
        assert_eq!(clean_key("a%41").as_deref(), Ok("/aA"));
        assert_eq!(clean_key("a+b").as_deref(), Ok("/a+b"));
        assert_eq!(clean_key("//x/./y/").as_deref(), Ok("/x/y"));
        assert_eq!(clean_key("x/../../y").as_deref(), Ok("/y"));
        assert_eq!(clean_key("..").as_deref(), Ok("/"));
        assert!(clean_key("a%zz").is_err());
        assert!(clean_key("a%2").is_err());
        assert!(clean_key("%ff%fe").is_err());
    }

    #[test]
    fn forms_reject_bad_escapes_and_keep_the_first_value() {
        let form = parse_form(b"value=a+b%21&value=second&x=").unwrap();
        assert_eq!(form["value"], "a b!");
        assert_eq!(form["x"], "");
        assert!(parse_form(b"value=%zz").is_err());
        assert!(parse_form(b"value=%c3%28").is_err());
    }

    fn write_for(query: &[(&str, &str)]) -> Result<Write, u16> {
        let query: HashMap<String, String> = query
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let form = HashMap::from([("value".to_string(), "v".to_string())]);
        let limits = Limits {
            max_key_bytes: 10,
            max_value_bytes: 10,
        };
        parse_write("/k", &query, &form, limits).map_err(|e| e.status.as_u16())
    }

    #[test]
    fn put_options_are_read_as_etcd_reads_them() {
        let value = || "v".to_string();
        assert_eq!(write_for(&[]), Ok(Write::Set { value: value() }));
        assert_eq!(
            write_for(&[("prevExist", "0")]),
            Ok(Write::Create { value: value() })
        );
        assert_eq!(
            write_for(&[("prevExist", "false"), ("prevIndex", "3")]),
            Ok(Write::Create { value: value() })
        );
        assert_eq!(
            write_for(&[("prevExist", "T")]),
            Ok(Write::Update { value: value() })
        );
        assert_eq!(
            write_for(&[("prevIndex", "0")]),
            Ok(Write::Set { value: value() })
        );
        assert_eq!(
            write_for(&[("prevExist", "true"), ("prevIndex", "4")]),
            Ok(Write::CompareAndSwap {
                value: value(),
                prev_index: Some(4),
                prev_value: None
            })
        );
        assert_eq!(write_for(&[("prevIndex", "-1")]), Err(400));
        assert_eq!(write_for(&[("prevExist", "yes")]), Err(400));
        assert_eq!(write_for(&[("ttl", "5")]), Err(400));
    }
}
