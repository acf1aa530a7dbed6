//! The errors of the keys and cluster API, in etcd's JSON shape: [`ApiError`] (status,
//! `errorCode`, `message`, `cause`, `index`), the error codes used, and the answers that say
//! why nothing was applied (503) or maybe something was (500): `reason`, `outcome` and the
//! header `X-Perseus-Outcome`.

use perseus_model::health::Verdict;
use serde_json::{json, Value};
use warp::http::{HeaderValue, StatusCode};
use warp::reply::{self, Response};
use warp::Reply;

use super::App;
use crate::metrics::Outcome;
use crate::proposer::ProposerError;
use crate::record::Refusal;

/// etcd v2 error codes used here.
pub(super) mod code {
    pub const KEY_NOT_FOUND: u32 = 100;
    pub const COMPARE_FAILED: u32 = 101;
    pub const NODE_EXIST: u32 = 105;
    pub const ROOT_READ_ONLY: u32 = 107;
    pub const VALUE_REQUIRED: u32 = 200;
    pub const PREV_VALUE_REQUIRED: u32 = 201;
    pub const INDEX_NAN: u32 = 203;
    pub const INVALID_FIELD: u32 = 209;
    pub const INVALID_FORM: u32 = 210;
    /// etcd's "Raft Internal Error", which etcd answers (with 500) when a proposal timed out
    /// and may or may not have been applied: here only for a write of unknown outcome.
    pub const OUTCOME_UNKNOWN: u32 = 300;
    /// etcd's "During Leader Election" (python-etcd raises EtcdLeaderElectionInProgress,
    /// a retryable error): here every 503 whose request was not applied and never will be.
    pub const NOT_APPLIED: u32 = 301;
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
    /// 503 and 500 with an outcome only: `(reason, outcome)`, e.g. `("conflict", "not
    /// applied")`; the outcome also goes out as the header `X-Perseus-Outcome`.
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

    pub(super) fn bad_request(code: u32, message: impl Into<String>, cause: &str) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message, cause)
    }

    pub(super) fn with_index(mut self, index: u64) -> Self {
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

    pub(super) fn method_not_allowed(allow: &'static str) -> Self {
        ApiError {
            allow: Some(allow),
            ..Self::without_code(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed")
        }
    }

    pub(super) fn key_not_found(key: &str, index: u64) -> Self {
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
    pub(super) fn busy(cause: &str) -> Self {
        ApiError {
            unavailable: Some(("busy", "not applied")),
            ..Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                code::NOT_APPLIED,
                "too many requests in flight (max_in_flight); nothing was applied",
                cause,
            )
        }
    }

    /// 503 for every keys request while the membership verdict forbids serving (data loss,
    /// misconfiguration): the reason is the verdict's, nothing was read or applied.
    pub(super) fn refused_by_membership(app: &App, cause: &str) -> Option<Self> {
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

    pub(super) fn internal(key: &str, message: &str) -> Self {
        log::error!("{key}: {message}");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            code::INTERNAL,
            message,
            key,
        )
    }

    /// How the request ended, as `/metrics` counts it: a 404 or 412 is the key's state
    /// refusing, a 503 says whether the write may still take effect, anything else is
    /// rejected input.
    pub fn outcome(&self) -> Outcome {
        match (self.status, self.unavailable) {
            (StatusCode::NOT_FOUND | StatusCode::PRECONDITION_FAILED, _) if self.code.is_some() => {
                Outcome::Refused
            }
            (_, Some((_, "unknown"))) => Outcome::Unknown,
            (_, Some(_)) => Outcome::NotApplied,
            _ => Outcome::Rejected,
        }
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
        if let Some((_, outcome)) = self.unavailable {
            let outcome = if outcome == "unknown" {
                "unknown"
            } else {
                "not-applied"
            };
            response
                .headers_mut()
                .insert("x-perseus-outcome", HeaderValue::from_static(outcome));
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
pub(super) fn refused(key: &str, refusal: Refusal, index: u64) -> ApiError {
    let mut e = ApiError::from(refusal);
    if e.cause.is_empty() {
        e.cause = key.to_string();
    }
    if e.code == Some(code::KEY_NOT_FOUND) {
        e.index = index;
    }
    e
}

/// No quorum, timeouts or a lost ballot race, saying which and whether the write may still
/// have happened: 503 errorCode 301 when it was not applied and never will be (sending it
/// again is safe), 500 errorCode 300 when its outcome is unknown (as etcd answers a
/// proposal that timed out); `X-Perseus-Outcome` says `not-applied` or `unknown`.
pub(super) fn unavailable(key: &str, e: &ProposerError) -> ApiError {
    let (status, code) = if e.outcome_unknown() {
        (StatusCode::INTERNAL_SERVER_ERROR, code::OUTCOME_UNKNOWN)
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, code::NOT_APPLIED)
    };
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
        ..ApiError::new(status, code, e.to_string(), key)
    }
}
