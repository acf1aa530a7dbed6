//! Reading a keys request as etcd reads it: the body (bounded), forms and query strings
//! (percent-escapes checked, the first of a repeated field kept), Go's boolean spellings, the
//! key cleaned like Go's `path.Clean`, and the options turned into a [`Write`] or a 4xx.

use std::collections::HashMap;

use warp::http::StatusCode;
use warp::hyper::body::Bytes;
use warp::path::Tail;

use super::errors::code;
use super::{ApiError, Limits};
use crate::record::Write;

/// Reads a request body of at most `limit` bytes (413 beyond), with or without a
/// Content-Length header.
pub(super) async fn read_limited<S, B>(body: S, limit: usize) -> Result<Bytes, ApiError>
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
/// Parses `a=1&b=2` into a map; a repeated field keeps its first value. Like etcd (Go's
/// ParseQuery), a malformed percent-escape is an error, and so is text that is not UTF-8.
pub(super) fn parse_form(raw: &[u8]) -> Result<HashMap<String, String>, String> {
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
pub(super) fn clean_key(raw: &str) -> Result<String, String> {
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
pub(super) fn parse_key(tail: &Tail, limits: Limits) -> Result<String, ApiError> {
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
pub(super) fn parse_query(query: &str, key: &str) -> Result<HashMap<String, String>, ApiError> {
    parse_form(query.as_bytes())
        .map_err(|e| ApiError::bad_request(code::INVALID_FORM, format!("Invalid query: {e}"), key))
}

/// Options etcd accepts on a GET that a single-key store cannot honour are refused, the
/// harmless ones are checked for well-formedness and otherwise ignored (reads here are
/// always linearizable, as `quorum=true`).
pub(super) fn check_get_params(params: &HashMap<String, String>) -> Result<(), ApiError> {
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
pub(super) fn parse_write(
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
pub(super) fn parse_delete(key: &str, query: &HashMap<String, String>) -> Result<Write, ApiError> {
    refuse_unsupported(&[query], &["dir"])?;
    parse_bool(query, "prevExist")?;
    parse_bool(query, "recursive")?;
    let (prev_index, prev_value) = parse_conditions(key, query)?;
    Ok(Write::Delete {
        prev_index,
        prev_value,
    })
}

pub(super) fn is_form(content_type: Option<&str>) -> bool {
    content_type.is_none_or(|ct| {
        ct.split(';').next().is_some_and(|t| {
            t.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
    })
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
