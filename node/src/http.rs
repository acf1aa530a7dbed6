//! The etcd-v2-style keys API over HTTP (warp): routes, request parsing and JSON replies.
//!
//! `GET /v2/keys/{key}`, `PUT /v2/keys/{key}` (form body `value=…`, with `prevExist`,
//! `prevIndex` or `prevValue`), and `GET /health`. Every error is a JSON body in etcd's shape
//! (`errorCode`, `message`, `cause`, `index`); nothing a client sends can panic the node.

// Request parsers return the finished error reply in `Err`; it is only built on the error
// path, so its size does not matter.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;

use serde_json::{json, Value};
use warp::http::StatusCode;
use warp::hyper::body::Bytes;
use warp::path::Tail;
use warp::reply::{self, Response};
use warp::{Filter, Rejection, Reply};

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
    /// The acceptors' identities and recovery (`None` for in-memory acceptors in tests).
    pub membership: Option<Arc<crate::membership::Membership>>,
}

/// etcd v2 error codes used here.
mod code {
    pub const KEY_NOT_FOUND: u32 = 100;
    pub const COMPARE_FAILED: u32 = 101;
    pub const NODE_EXIST: u32 = 105;
    pub const VALUE_REQUIRED: u32 = 200;
    pub const PREV_VALUE_REQUIRED: u32 = 201;
    pub const INDEX_NAN: u32 = 203;
    pub const INVALID_FIELD: u32 = 209;
    pub const INVALID_FORM: u32 = 210;
    pub const UNAVAILABLE: u32 = 300;
    pub const INTERNAL: u32 = 400;
}

fn error(status: StatusCode, code: u32, message: &str, cause: &str, index: u64) -> Response {
    let body = json!({"errorCode": code, "message": message, "cause": cause, "index": index});
    reply::with_status(reply::json(&body), status).into_response()
}

fn bad_request(code: u32, message: &str, cause: &str) -> Response {
    error(StatusCode::BAD_REQUEST, code, message, cause, 0)
}

/// All routes, with rejections turned into JSON errors.
pub fn routes(app: Arc<App>) -> impl Filter<Extract = (Response,), Error = Infallible> + Clone {
    // The form body carries the value percent-encoded (up to 3 bytes per byte) and a few
    // short fields; anything longer is refused before it is read.
    let body_limit = app
        .limits
        .max_value_bytes
        .saturating_mul(3)
        .saturating_add(4096);
    let with_app = warp::any().map(move || app.clone());

    // Path before method, so an unknown path is a 404 and a wrong method a 405.
    let get = warp::path!("v2" / "keys" / ..)
        .and(warp::get())
        .and(warp::path::tail())
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .and(with_app.clone())
        .then(get_key);

    let put = warp::path!("v2" / "keys" / ..)
        .and(warp::put())
        .and(warp::path::tail())
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .and(warp::header::optional::<String>("content-type"))
        .and(warp::body::stream())
        .and(with_app.clone())
        .then(move |tail, query, content_type, body, app| async move {
            match read_limited(body, body_limit).await {
                Ok(body) => put_key(tail, query, content_type, body, app).await,
                Err(response) => response,
            }
        });

    let health = warp::path!("health")
        .and(warp::get())
        .and(with_app)
        .map(|app: Arc<App>| health(&app));

    get.or(put)
        .unify()
        .or(health)
        .unify()
        .recover(rejection)
        .unify()
}

/// Reads a request body of at most `limit` bytes (413 beyond), with or without a
/// Content-Length header.
async fn read_limited<S, B>(body: S, limit: usize) -> Result<Bytes, Response>
where
    S: futures::Stream<Item = Result<B, warp::Error>>,
    B: warp::Buf,
{
    use futures::StreamExt;
    let mut body = std::pin::pin!(body);
    let mut bytes = Vec::new();
    while let Some(chunk) = body.next().await {
        let mut chunk = chunk.map_err(|e| {
            bad_request(
                code::INVALID_FORM,
                &format!("cannot read the body: {e}"),
                "",
            )
        })?;
        if bytes.len() + chunk.remaining() > limit {
            return Err(error(
                StatusCode::PAYLOAD_TOO_LARGE,
                code::INVALID_FIELD,
                &format!("request body over {limit} bytes"),
                "",
                0,
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

/// `GET /health`: the HTTP side is up; how many acceptors are reachable right now.
fn health(app: &App) -> Response {
    let acceptors = app.proposer.acceptors();
    let reachable = app.proposer.reachable();
    let detail: Vec<Value> = acceptors
        .iter()
        .map(|a| json!({"name": a.name(), "connected": a.is_connected()}))
        .collect();
    reply::json(&json!({
        "status": "ok",
        "id": app.proposer.id(),
        "incarnation": app.proposer.incarnation(),
        "acceptors": acceptors.len(),
        "reachable": reachable,
        "quorum": app.proposer.quorum(),
        "quorum_reachable": reachable >= app.proposer.quorum(),
        "detail": detail,
        // Per acceptor: member, recovering (with catch-up progress), unmarked, foreign,
        // unreachable; and the verdict (serving, waiting, data-loss) with its reason.
        "membership": app.membership.as_ref().map(|m| m.view()),
    }))
    .into_response()
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

fn parse_bool(params: &HashMap<String, String>, name: &str) -> Result<Option<bool>, Response> {
    // The spellings Go's strconv.ParseBool (and so etcd) accepts.
    match params.get(name).map(String::as_str) {
        None => Ok(None),
        Some("1" | "t" | "T" | "true" | "TRUE" | "True") => Ok(Some(true)),
        Some("0" | "f" | "F" | "false" | "FALSE" | "False") => Ok(Some(false)),
        Some(other) => Err(bad_request(
            code::INVALID_FIELD,
            &format!("Invalid field: {name} must be true or false, got {other:?}"),
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
fn parse_key(tail: &Tail, limits: Limits) -> Result<String, Response> {
    let key = clean_key(tail.as_str())
        .map_err(|e| bad_request(code::INVALID_FIELD, &format!("Invalid field: {e}"), "key"))?;
    if key == "/" {
        return Err(bad_request(
            code::INVALID_FIELD,
            "Invalid field: a key is required (/v2/keys/{key}); directories are not supported",
            "/",
        ));
    }
    if key.len() > limits.max_key_bytes {
        return Err(bad_request(
            code::INVALID_FIELD,
            &format!(
                "Invalid field: key is {} bytes, the limit is {}",
                key.len(),
                limits.max_key_bytes
            ),
            "key",
        ));
    }
    Ok(key)
}

/// Options etcd accepts on a GET that a single-key store cannot honour are refused, the
/// harmless ones are checked for well-formedness and otherwise ignored (reads here are
/// always linearizable, as `quorum=true`).
fn check_get_params(params: &HashMap<String, String>) -> Result<(), Response> {
    for name in ["quorum", "recursive", "sorted", "stream"] {
        parse_bool(params, name)?;
    }
    if parse_bool(params, "wait")? == Some(true) {
        return Err(bad_request(
            code::INVALID_FIELD,
            "Invalid field: wait=true (watches) is not supported",
            "wait",
        ));
    }
    Ok(())
}

async fn get_key(tail: Tail, query: String, app: Arc<App>) -> Response {
    let key = match parse_key(&tail, app.limits) {
        Ok(key) => key,
        Err(response) => return response,
    };
    let params = match parse_form(query.as_bytes()) {
        Ok(params) => params,
        Err(e) => return bad_request(code::INVALID_FORM, &format!("Invalid query: {e}"), &key),
    };
    if let Err(response) = check_get_params(&params) {
        return response;
    }
    match app.proposer.read(&key).await {
        Err(e) => unavailable(&key, &e),
        Ok(state) => match record::current(state.as_deref()) {
            Err(refusal) => refused(&key, refusal),
            Ok(None) => error(
                StatusCode::NOT_FOUND,
                code::KEY_NOT_FOUND,
                "Key not found",
                &key,
                0,
            ),
            Ok(Some(record)) => {
                reply::json(&json!({"action": "get", "node": node_json(&key, &record)}))
                    .into_response()
            }
        },
    }
}

/// Turns a PUT's query and form into a [`Write`], or a 4xx reply.
fn parse_write(
    key: &str,
    query: &HashMap<String, String>,
    form: &HashMap<String, String>,
    limits: Limits,
) -> Result<Write, Response> {
    for name in ["ttl", "dir", "refresh"] {
        if query.contains_key(name) || form.contains_key(name) {
            return Err(bad_request(
                code::INVALID_FIELD,
                &format!("Invalid field: {name} is not supported by this store"),
                name,
            ));
        }
    }
    let field = |name: &str| form.get(name).or_else(|| query.get(name)).cloned();
    let Some(value) = field("value") else {
        return Err(bad_request(
            code::VALUE_REQUIRED,
            "Value is Required in POST form",
            key,
        ));
    };
    if value.len() > limits.max_value_bytes {
        return Err(error(
            StatusCode::PAYLOAD_TOO_LARGE,
            code::INVALID_FIELD,
            &format!(
                "Invalid field: value is {} bytes, the limit is {}",
                value.len(),
                limits.max_value_bytes
            ),
            key,
            0,
        ));
    }
    let mut both = query.clone();
    both.extend(form.iter().map(|(k, v)| (k.clone(), v.clone())));
    let prev_exist = parse_bool(&both, "prevExist")?;
    let prev_index = match both.get("prevIndex") {
        None => None,
        // etcd reads prevIndex=0 as no condition.
        Some(raw) => match raw.parse::<u64>() {
            Ok(0) => None,
            Ok(n) => Some(n),
            Err(_) => {
                return Err(bad_request(
                    code::INDEX_NAN,
                    &format!("The given index in POST form is not a number: prevIndex={raw:?}"),
                    "prevIndex",
                ))
            }
        },
    };
    let prev_value = both.get("prevValue").cloned();
    if prev_value.as_deref() == Some("") {
        return Err(bad_request(
            code::PREV_VALUE_REQUIRED,
            "PrevValue is Required in POST form",
            key,
        ));
    }
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

fn is_form(content_type: Option<&str>) -> bool {
    content_type.is_none_or(|ct| {
        ct.split(';').next().is_some_and(|t| {
            t.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
    })
}

async fn put_key(
    tail: Tail,
    query: String,
    content_type: Option<String>,
    body: Bytes,
    app: Arc<App>,
) -> Response {
    let key = match parse_key(&tail, app.limits) {
        Ok(key) => key,
        Err(response) => return response,
    };
    if !body.is_empty() && !is_form(content_type.as_deref()) {
        return error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            code::INVALID_FORM,
            "the body must be a form: Content-Type: application/x-www-form-urlencoded, value=...",
            &key,
            0,
        );
    }
    let (query, form) = match (parse_form(query.as_bytes()), parse_form(&body)) {
        (Ok(q), Ok(f)) => (q, f),
        (Err(e), _) | (_, Err(e)) => {
            return bad_request(code::INVALID_FORM, &format!("Invalid form: {e}"), &key)
        }
    };
    let write = match parse_write(&key, &query, &form, app.limits) {
        Ok(write) => write,
        Err(response) => return response,
    };
    let result = app
        .proposer
        .change(&key, |state| {
            record::apply(&write, state).map(|record| Some(record.encode()))
        })
        .await;
    let change = match result {
        Ok(change) => change,
        Err(e) => return unavailable(&key, &e),
    };
    let after = match change.outcome {
        Ok(Some(after)) => after,
        Ok(None) => return internal(&key, "a write produced no record"),
        Err(refusal) => return refused(&key, refusal),
    };
    let (Ok(after), Ok(before)) = (
        Record::decode(&after),
        record::current(change.before.as_deref()),
    ) else {
        return internal(&key, "a stored record could not be decoded");
    };
    let mut body = json!({"action": write.action(), "node": node_json(&key, &after)});
    if let Some(before) = &before {
        body["prevNode"] = node_json(&key, before);
    }
    let status = if before.is_none() {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    reply::with_status(reply::json(&body), status).into_response()
}

fn node_json(key: &str, record: &Record) -> Value {
    json!({
        "key": key,
        "value": record.value,
        "modifiedIndex": record.modified,
        "createdIndex": record.created,
    })
}

fn refused(key: &str, refusal: Refusal) -> Response {
    match refusal {
        Refusal::NotFound => error(
            StatusCode::NOT_FOUND,
            code::KEY_NOT_FOUND,
            "Key not found",
            key,
            0,
        ),
        Refusal::AlreadyExists { index } => error(
            StatusCode::PRECONDITION_FAILED,
            code::NODE_EXIST,
            "Key already exists",
            key,
            index,
        ),
        Refusal::CompareFailed { cause, index } => error(
            StatusCode::PRECONDITION_FAILED,
            code::COMPARE_FAILED,
            "Compare failed",
            &cause,
            index,
        ),
        Refusal::Corrupt(why) => internal(key, &format!("stored state is not a record: {why}")),
    }
}

fn internal(key: &str, message: &str) -> Response {
    log::error!("{key}: {message}");
    error(
        StatusCode::INTERNAL_SERVER_ERROR,
        code::INTERNAL,
        message,
        key,
        0,
    )
}

/// 503: no quorum, timeouts or a lost ballot race, saying which and whether the write may
/// still have happened.
fn unavailable(key: &str, e: &ProposerError) -> Response {
    let ProposerError::NoQuorum { failure, .. } = e;
    let body = json!({
        "errorCode": code::UNAVAILABLE,
        "message": e.to_string(),
        "cause": key,
        "index": 0,
        "reason": if failure.conflict.is_some() { "conflict" } else { "no quorum" },
        "outcome": if e.outcome_unknown() { "unknown" } else { "not applied" },
    });
    reply::with_status(reply::json(&body), StatusCode::SERVICE_UNAVAILABLE).into_response()
}

/// Rejections (no route, wrong method, body too large, …) as JSON errors.
async fn rejection(rejection: Rejection) -> Result<Response, Infallible> {
    let (status, message) = if rejection.is_not_found() {
        (
            StatusCode::NOT_FOUND,
            "no such endpoint: use /v2/keys/{key} or /health".to_string(),
        )
    } else if rejection.find::<warp::reject::MethodNotAllowed>().is_some() {
        (
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed: GET or PUT /v2/keys/{key}, GET /health".to_string(),
        )
    } else {
        (
            StatusCode::BAD_REQUEST,
            format!("bad request: {rejection:?}"),
        )
    };
    Ok(error(status, code::INVALID_FIELD, &message, "", 0))
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
        parse_write("/k", &query, &form, limits).map_err(|r| r.status().as_u16())
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
