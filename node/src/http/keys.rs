//! The keys API: `GET`, `PUT` and `DELETE` on `/v2/keys/{key}`, each one CASPaxos read or
//! change of one key, answered as etcd answers (the node, `prevNode`, 201 for a new key).
//! Every request waits for a turn (`max_in_flight`), is refused while the membership verdict
//! forbids serving, and is counted in `/metrics` by operation, outcome and latency.

use std::sync::Arc;
use std::time::Instant;

use serde_json::{json, Value};
use warp::http::{Method, StatusCode};
use warp::hyper::body::Bytes;
use warp::path::Tail;
use warp::reply::{self, Response};
use warp::{Filter, Rejection, Reply};

use super::errors::{code, refused, unavailable};
use super::parse::{
    check_get_params, clean_key, is_form, parse_delete, parse_form, parse_key, parse_query,
    parse_write, read_limited,
};
use super::{ApiError, App};
use crate::metrics::{Op, Outcome};
use crate::record::{self, Record, Write};

/// `/v2/keys/…`: the path first, then the method inside the handler, so that an unknown
/// path is a 404 and a wrong method a 405 naming the methods the path takes.
pub(super) fn route(
    app: &App,
    with_app: impl Filter<Extract = (Arc<App>,), Error = std::convert::Infallible>
        + Clone
        + Send
        + Sync
        + 'static,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    // The form body carries the value percent-encoded (up to 3 bytes per byte) and a few
    // short fields; anything longer is refused before it is read.
    let body_limit = app
        .limits
        .max_value_bytes
        .saturating_mul(3)
        .saturating_add(4096);
    warp::path!("v2" / "keys" / ..)
        .and(warp::method())
        .and(warp::path::tail())
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .and(warp::header::optional::<String>("content-type"))
        .and(warp::body::stream())
        .and(with_app)
        .then(
            move |method: Method,
                  tail: Tail,
                  query: String,
                  content_type: Option<String>,
                  body,
                  app: Arc<App>| async move {
                let start = Instant::now();
                let op = match method {
                    Method::GET => Some(Op::Get),
                    Method::PUT => Some(Op::Put),
                    Method::DELETE => Some(Op::Delete),
                    _ => None,
                };
                let result = serve(op, &tail, &query, content_type, body, body_limit, &app).await;
                if let Some(op) = op {
                    let outcome = match &result {
                        Ok(_) => Outcome::Applied,
                        Err(e) => e.outcome(),
                    };
                    app.metrics.request(op, outcome, start.elapsed());
                }
                result.unwrap_or_else(Reply::into_response)
            },
        )
}

/// One keys request, from its turn to its answer.
async fn serve<S, B>(
    op: Option<Op>,
    tail: &Tail,
    query: &str,
    content_type: Option<String>,
    body: S,
    body_limit: usize,
    app: &App,
) -> Result<Response, ApiError>
where
    S: futures::Stream<Item = Result<B, warp::Error>>,
    B: warp::Buf,
{
    // A turn first (bounded wait), then the body: what the node holds at once is bounded by
    // `max_in_flight` requests.
    let turn = tokio::time::timeout(app.turn_wait, app.in_flight.clone().acquire_owned()).await;
    let Ok(Ok(_turn)) = turn else {
        return Err(ApiError::busy(tail.as_str()));
    };
    if let Some(refusal) = ApiError::refused_by_membership(app, tail.as_str()) {
        return Err(refusal);
    }
    match op {
        Some(Op::Get) => get_key(tail, query, app).await,
        Some(Op::Put) => {
            let body = read_limited(body, body_limit).await?;
            put_key(tail, query, content_type, body, app).await
        }
        Some(Op::Delete) => delete_key(tail, query, app).await,
        None => Err(ApiError::method_not_allowed("GET, PUT, DELETE")),
    }
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
